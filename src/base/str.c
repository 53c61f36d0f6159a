/* Slice helpers: comparisons, RFC 9110 token and list syntax, checked decimal conversion. No
 * allocation, no locale. */
#include "sidestep/str.h"

#include <string.h>

#include "sidestep/error.h"

sst_str_t sst_str_c(const char *s)
{
    return s ? sst_str(s, strlen(s)) : sst_str(NULL, 0);
}

bool sst_str_eq(sst_str_t a, sst_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static inline unsigned char str_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool sst_str_ieq(sst_str_t a, sst_str_t b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (str_lower((unsigned char)a.base[i]) != str_lower((unsigned char)b.base[i]))
            return false;
    return true;
}

bool sst_str_ieq_c(sst_str_t a, const char *b)
{
    return sst_str_ieq(a, sst_str_c(b));
}

bool sst_str_has_prefix(sst_str_t s, sst_str_t prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.base, prefix.base, prefix.len) == 0);
}

sst_str_t sst_str_trim_ows(sst_str_t s)
{
    while (s.len > 0 && (s.base[0] == ' ' || s.base[0] == '\t')) {
        s.base++;
        s.len--;
    }
    while (s.len > 0 && (s.base[s.len - 1] == ' ' || s.base[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static const uint8_t str_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,  ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1,  ['n'] = 1, ['o'] = 1,
    ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,  ['v'] = 1, ['w'] = 1,
    ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,  ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,  ['L'] = 1, ['M'] = 1,
    ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,  ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

bool sst_is_tchar(unsigned char c)
{
    return str_tchar[c] != 0;
}

bool sst_str_is_token(sst_str_t s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!sst_is_tchar((unsigned char)s.base[i]))
            return false;
    return true;
}

bool sst_str_next_list_item(sst_str_t list, size_t *pos, sst_str_t *item)
{
    while (*pos < list.len) {
        size_t start = *pos;
        size_t end = start;
        while (end < list.len && list.base[end] != ',')
            end++;
        *pos = end < list.len ? end + 1 : end;
        sst_str_t it = sst_str_trim_ows(sst_str(list.base + start, end - start));
        if (it.len > 0) {
            *item = it;
            return true;
        }
    }
    return false;
}

bool sst_str_list_has(sst_str_t list, const char *token)
{
    size_t pos = 0;
    sst_str_t item;
    sst_str_t want = sst_str_c(token);
    while (sst_str_next_list_item(list, &pos, &item))
        if (sst_str_ieq(item, want))
            return true;
    return false;
}

int sst_str_to_u64(sst_str_t s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return SST_EINVAL;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c < '0' || c > '9')
            return SST_EINVAL;
        unsigned d = c - '0';
        if (d > max || v > (max - d) / 10)
            return SST_ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

size_t sst_u64_to_dec(uint64_t v, char *buf)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}
