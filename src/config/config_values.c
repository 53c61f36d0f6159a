/* Text parsers for config values: durations, sizes, addresses, CIDRs, URLs, origins, status
 * ranges. No YAML and no allocation here; each failure explains itself without the value. */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sidestep/error.h"

#define DURATION_EXAMPLES "(examples: 250ms, 1s, 1.5s, 2m, 1h)"
#define SIZE_EXAMPLES     "(examples: 512, 16k, 10m, 1g)"

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static char lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
}

static bool is_alnum(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Accumulates a run of digits at s[*i] into *v; false on uint64 overflow. */
static bool values_digits(sst_str_t s, size_t *i, uint64_t *v)
{
    while (*i < s.len && is_digit(s.base[*i])) {
        unsigned d = (unsigned)(s.base[*i] - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return false;
        *v = *v * 10 + d;
        (*i)++;
    }
    return true;
}

const char *sst__quote(sst_str_t s, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t max = 48; /* longer values are shortened: the position already points at them */

    if (size < 8) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.base[i];
        if (i >= max || o + 8 >= size) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *sst__fmt_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    return buf;
}

size_t sst__edit_distance(sst_str_t a, sst_str_t b)
{
    enum { MAXLEN = 64 };
    size_t rows[3][MAXLEN + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2]; /* rows i-2, i-1, i */

    if (a.len > MAXLEN || b.len > MAXLEN)
        return SIZE_MAX;
    for (size_t j = 0; j <= b.len; j++)
        prev[j] = j;
    for (size_t i = 1; i <= a.len; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= b.len; j++) {
            size_t cost = a.base[i - 1] == b.base[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a.base[i - 1] == b.base[j - 2] &&
                a.base[i - 2] == b.base[j - 1] && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[b.len];
}

int sst__parse_duration(sst_str_t s, uint64_t *out, char *why)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t whole = 0, frac = 0, scale = 1, mult = 0;
    size_t i = 0, nfrac = 0;
    char q[64];

    if (s.len == 0) {
        snprintf(why, SST__WHY_SIZE, "empty value %s", DURATION_EXAMPLES);
        return SST_EINVAL;
    }
    if (s.base[0] == '-') {
        snprintf(why, SST__WHY_SIZE, "negative durations are not allowed");
        return SST_EINVAL;
    }
    if (!is_digit(s.base[0])) {
        snprintf(why, SST__WHY_SIZE, "expected a number and a unit %s", DURATION_EXAMPLES);
        return SST_EINVAL;
    }
    if (!values_digits(s, &i, &whole)) {
        snprintf(why, SST__WHY_SIZE, "too large");
        return SST_ERANGE;
    }
    if (i < s.len && s.base[i] == '.') {
        for (i++; i < s.len && is_digit(s.base[i]); i++, nfrac++) {
            if (nfrac == 6) {
                snprintf(why, SST__WHY_SIZE, "at most 6 decimal places");
                return SST_EINVAL;
            }
            frac = frac * 10 + (uint64_t)(s.base[i] - '0');
            scale *= 10;
        }
        if (nfrac == 0) {
            snprintf(why, SST__WHY_SIZE, "expected digits after '.' %s", DURATION_EXAMPLES);
            return SST_EINVAL;
        }
    }
    sst_str_t unit = sst_str(s.base + i, s.len - i);
    if (unit.len == 0)
        mult = 1; /* a bare number counts milliseconds */
    for (size_t k = 0; mult == 0 && k < sizeof units / sizeof units[0]; k++)
        if (sst_str_eq(unit, sst_str_c(units[k].unit)))
            mult = units[k].ms;
    if (mult == 0) {
        snprintf(why, SST__WHY_SIZE, "unknown unit %s %s", sst__quote(unit, q, sizeof q),
                 DURATION_EXAMPLES);
        return SST_EINVAL;
    }
    if (whole > UINT64_MAX / mult) {
        snprintf(why, SST__WHY_SIZE, "too large");
        return SST_ERANGE;
    }
    /* frac < 10^6 and mult <= 3.6 * 10^6: the product cannot overflow */
    uint64_t part = frac * mult;
    if (part % scale != 0) {
        snprintf(why, SST__WHY_SIZE, "not a whole number of milliseconds");
        return SST_EINVAL;
    }
    part /= scale;
    if (whole * mult > UINT64_MAX - part) {
        snprintf(why, SST__WHY_SIZE, "too large");
        return SST_ERANGE;
    }
    *out = whole * mult + part;
    return 0;
}

int sst_parse_duration_ms(const char *s, size_t len, uint64_t *out)
{
    char why[SST__WHY_SIZE];
    if (s == NULL || out == NULL)
        return SST_EINVAL;
    return sst__parse_duration(sst_str(s, len), out, why);
}

int sst__parse_size(sst_str_t s, uint64_t *out, char *why)
{
    uint64_t v = 0;
    size_t i = 0;
    unsigned shift = 0;
    char q[64];

    if (s.len == 0) {
        snprintf(why, SST__WHY_SIZE, "empty value %s", SIZE_EXAMPLES);
        return SST_EINVAL;
    }
    if (s.base[0] == '-') {
        snprintf(why, SST__WHY_SIZE, "negative sizes are not allowed");
        return SST_EINVAL;
    }
    if (!is_digit(s.base[0])) {
        snprintf(why, SST__WHY_SIZE, "expected a number %s", SIZE_EXAMPLES);
        return SST_EINVAL;
    }
    if (!values_digits(s, &i, &v)) {
        snprintf(why, SST__WHY_SIZE, "too large");
        return SST_ERANGE;
    }
    sst_str_t suffix = sst_str(s.base + i, s.len - i);
    if (i < s.len) {
        switch (lower(s.base[i])) {
        case 'k':
            shift = 10;
            i++;
            break;
        case 'm':
            shift = 20;
            i++;
            break;
        case 'g':
            shift = 30;
            i++;
            break;
        default:
            break;
        }
    }
    if (i < s.len && lower(s.base[i]) == 'b')
        i++;
    if (i != s.len) {
        snprintf(why, SST__WHY_SIZE, "unknown suffix %s %s", sst__quote(suffix, q, sizeof q),
                 SIZE_EXAMPLES);
        return SST_EINVAL;
    }
    if (v > (UINT64_MAX >> shift)) {
        snprintf(why, SST__WHY_SIZE, "too large");
        return SST_ERANGE;
    }
    *out = v << shift;
    return 0;
}

int sst_parse_size(const char *s, size_t len, uint64_t *out)
{
    char why[SST__WHY_SIZE];
    if (s == NULL || out == NULL)
        return SST_EINVAL;
    return sst__parse_size(sst_str(s, len), out, why);
}

/* Host names as written in addresses: letters, digits, '-', '.', '_'. */
static bool values_is_hostname(sst_str_t h)
{
    if (h.len == 0 || h.len > 253)
        return false;
    for (size_t i = 0; i < h.len; i++)
        if (!is_alnum(h.base[i]) && h.base[i] != '-' && h.base[i] != '.' && h.base[i] != '_')
            return false;
    return true;
}

static bool values_all_digits_dots(sst_str_t h)
{
    for (size_t i = 0; i < h.len; i++)
        if (!is_digit(h.base[i]) && h.base[i] != '.')
            return false;
    return true;
}

/* Resolves a.host into a.sa, preferring IPv4 when the name has both families: a backend written
 * as "localhost:9001" most often listens on 127.0.0.1 only. */
static int values_resolve(sst_addr_t *a, char *why)
{
    struct addrinfo hints, *res = NULL, *pick = NULL;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", (unsigned)a->port);
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        char err[96] = "system error";
        if (rc == EAI_SYSTEM)
            (void)strerror_r(errno, err, sizeof err);
        snprintf(why, SST__WHY_SIZE, "cannot resolve host: %s",
                 rc == EAI_SYSTEM ? err : gai_strerror(rc));
        return SST_EINVAL;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof a->sa)
            continue;
        if (pick == NULL || (pick->ai_family != AF_INET && ai->ai_family == AF_INET))
            pick = ai;
    }
    if (pick == NULL) {
        freeaddrinfo(res);
        snprintf(why, SST__WHY_SIZE, "cannot resolve host: no usable address");
        return SST_EINVAL;
    }
    memcpy(&a->sa, pick->ai_addr, pick->ai_addrlen);
    a->salen = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int sst__parse_addr(sst_str_t s, bool allow_port0, bool resolve, sst_addr_t *out, char *why)
{
    sst_addr_t a;
    sst_str_t host, port;
    bool bracketed = false;
    uint64_t p = 0;
    char q[64];

    memset(&a, 0, sizeof a);
    if (s.len == 0) {
        snprintf(why, SST__WHY_SIZE, "empty address (expected host:port, e.g. 127.0.0.1:8080)");
        return SST_EINVAL;
    }
    if (s.base[0] == '[') {
        const char *close = memchr(s.base, ']', s.len);
        if (close == NULL) {
            snprintf(why, SST__WHY_SIZE, "missing ']' after the IPv6 address");
            return SST_EINVAL;
        }
        size_t rest = (size_t)(close - s.base) + 1;
        host = sst_str(s.base + 1, rest - 2);
        if (rest == s.len || s.base[rest] != ':') {
            snprintf(why, SST__WHY_SIZE, "missing :port after ']' (e.g. [::1]:8080)");
            return SST_EINVAL;
        }
        port = sst_str(s.base + rest + 1, s.len - rest - 1);
        bracketed = true;
    } else {
        size_t colon = s.len;
        while (colon > 0 && s.base[colon - 1] != ':')
            colon--;
        if (colon == 0) {
            snprintf(why, SST__WHY_SIZE, "missing :port (expected host:port, e.g. 127.0.0.1:8080)");
            return SST_EINVAL;
        }
        host = sst_str(s.base, colon - 1);
        port = sst_str(s.base + colon, s.len - colon);
        if (memchr(host.base, ':', host.len) != NULL) {
            snprintf(why, SST__WHY_SIZE, "IPv6 addresses need brackets (e.g. [::1]:8080)");
            return SST_EINVAL;
        }
        if (host.len == 0) {
            snprintf(why, SST__WHY_SIZE,
                     "missing host (write 0.0.0.0:PORT to listen on every IPv4 address)");
            return SST_EINVAL;
        }
    }
    if (host.len == 0 || host.len >= sizeof a.host || memchr(host.base, '\0', host.len)) {
        snprintf(why, SST__WHY_SIZE, "invalid host");
        return SST_EINVAL;
    }
    memcpy(a.host, host.base, host.len);
    if (sst_str_to_u64(port, 65535, &p) != 0) {
        snprintf(why, SST__WHY_SIZE, "invalid port %s (expected 1..65535)",
                 sst__quote(port, q, sizeof q));
        return SST_EINVAL;
    }
    if (p == 0 && !allow_port0) {
        snprintf(why, SST__WHY_SIZE, "port 0 (pick any free port) is only allowed for listeners");
        return SST_EINVAL;
    }
    a.port = (uint16_t)p;
    if (bracketed)
        snprintf(a.text, sizeof a.text, "[%s]:%u", a.host, (unsigned)a.port);
    else
        snprintf(a.text, sizeof a.text, "%s:%u", a.host, (unsigned)a.port);

    struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.sa;
    if (bracketed) {
        if (inet_pton(AF_INET6, a.host, &sin6->sin6_addr) != 1) {
            snprintf(why, SST__WHY_SIZE, "invalid IPv6 address %s", sst__quote(host, q, sizeof q));
            return SST_EINVAL;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(a.port);
        a.salen = sizeof *sin6;
    } else if (inet_pton(AF_INET, a.host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(a.port);
        a.salen = sizeof *sin;
    } else if (values_all_digits_dots(host)) {
        snprintf(why, SST__WHY_SIZE, "invalid IPv4 address %s", sst__quote(host, q, sizeof q));
        return SST_EINVAL;
    } else if (!values_is_hostname(host)) {
        snprintf(why, SST__WHY_SIZE, "invalid host name %s", sst__quote(host, q, sizeof q));
        return SST_EINVAL;
    } else if (resolve) {
        int rc = values_resolve(&a, why);
        if (rc != 0)
            return rc;
    }
    *out = a;
    return 0;
}

int sst_parse_addr(const char *s, size_t len, bool allow_port0, bool resolve, sst_addr_t *out)
{
    char why[SST__WHY_SIZE];
    if (s == NULL || out == NULL)
        return SST_EINVAL;
    return sst__parse_addr(sst_str(s, len), allow_port0, resolve, out, why);
}

bool sst_addr_is_loopback(const sst_addr_t *addr)
{
    if (addr == NULL)
        return false;
    if (addr->sa.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr->sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addr->sa;
        const uint8_t *b = sin6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && b[12] == 127;
    }
    return false;
}

int sst__parse_cidr(sst_str_t s, sst_cidr_t *out, char *why)
{
    sst_cidr_t r;
    char buf[INET6_ADDRSTRLEN + 1], masked[INET6_ADDRSTRLEN + 1], q[64];
    uint8_t bytes[16];
    unsigned max, nbytes;
    uint64_t prefix;
    int family;
    const char *slash = s.len ? memchr(s.base, '/', s.len) : NULL;
    sst_str_t addr = sst_str(s.base, slash ? (size_t)(slash - s.base) : s.len);

    memset(&r, 0, sizeof r);
    if (addr.len == 0 || addr.len >= sizeof buf) {
        snprintf(why, SST__WHY_SIZE, "expected an address or CIDR (e.g. 10.0.0.0/8, 127.0.0.1)");
        return SST_EINVAL;
    }
    memcpy(buf, addr.base, addr.len);
    buf[addr.len] = '\0';
    if (inet_pton(AF_INET, buf, bytes) == 1) {
        family = AF_INET;
        max = 32;
        nbytes = 4;
    } else if (inet_pton(AF_INET6, buf, bytes) == 1) {
        family = AF_INET6;
        max = 128;
        nbytes = 16;
    } else {
        snprintf(why, SST__WHY_SIZE, "invalid address %s (e.g. 10.0.0.0/8, 127.0.0.1, ::1)",
                 sst__quote(addr, q, sizeof q));
        return SST_EINVAL;
    }
    prefix = max;
    if (slash != NULL) {
        sst_str_t p = sst_str(slash + 1, s.len - addr.len - 1);
        if (sst_str_to_u64(p, max, &prefix) != 0) {
            snprintf(why, SST__WHY_SIZE, "invalid prefix length %s (0..%u)",
                     sst__quote(p, q, sizeof q), max);
            return SST_EINVAL;
        }
    }
    bool host_bits = false;
    for (unsigned bit = (unsigned)prefix; bit < nbytes * 8; bit++) {
        uint8_t m = (uint8_t)(0x80u >> (bit % 8));
        if (bytes[bit / 8] & m) {
            host_bits = true;
            bytes[bit / 8] &= (uint8_t)~m;
        }
    }
    if (host_bits) {
        /* A typo more often than intent: say which network would match */
        inet_ntop(family, bytes, masked, sizeof masked);
        snprintf(why, SST__WHY_SIZE, "bits are set after the /%u prefix (did you mean %s/%u?)",
                 (unsigned)prefix, masked, (unsigned)prefix);
        return SST_EINVAL;
    }
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&r.net;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, bytes, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r.net;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, bytes, 16);
    }
    r.prefix = (uint8_t)prefix;
    *out = r;
    return 0;
}

static bool values_prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & m) == (net[full] & m);
}

bool sst_config_is_trusted(const sst_config_t *cfg, const struct sockaddr *sa)
{
    return cfg != NULL && sst_cidr_match(cfg->trusted_proxies, cfg->n_trusted_proxies, sa);
}

bool sst_config_proxy_allowed(const sst_listener_cfg_t *l, const struct sockaddr *sa)
{
    return l != NULL && l->proxy_protocol &&
           sst_cidr_match(l->proxy_protocol_from, l->n_proxy_protocol_from, sa);
}

bool sst_cidr_match(const sst_cidr_t *nets, size_t n_nets, const struct sockaddr *sa)
{
    const uint8_t *v4 = NULL, *v6 = NULL;

    if (nets == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        v6 = in6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6))
            v4 = v6 + 12; /* a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d */
    } else {
        return false;
    }
    for (size_t i = 0; i < n_nets; i++) {
        const sst_cidr_t *c = &nets[i];
        if (c->net.ss_family == AF_INET && v4 != NULL) {
            const struct sockaddr_in *n = (const struct sockaddr_in *)&c->net;
            if (values_prefix_match(v4, (const uint8_t *)&n->sin_addr, c->prefix))
                return true;
        } else if (c->net.ss_family == AF_INET6 && v6 != NULL) {
            const struct sockaddr_in6 *n = (const struct sockaddr_in6 *)&c->net;
            if (values_prefix_match(v6, n->sin6_addr.s6_addr, c->prefix))
                return true;
        }
    }
    return false;
}

int sst__parse_status_ranges(sst_str_t s, sst_status_range_t *r, size_t *n, char *why)
{
    size_t pos = 0;
    sst_str_t item;
    bool any = false;
    char q[64];

    while (sst_str_next_list_item(s, &pos, &item)) {
        const char *dash = memchr(item.base, '-', item.len);
        sst_str_t lo_s = item, hi_s = item;
        uint64_t lo, hi;
        if (dash != NULL) {
            lo_s = sst_str_trim_ows(sst_str(item.base, (size_t)(dash - item.base)));
            hi_s = sst_str_trim_ows(sst_str(dash + 1, item.len - (size_t)(dash - item.base) - 1));
        }
        if (sst_str_to_u64(lo_s, 999, &lo) != 0 || sst_str_to_u64(hi_s, 999, &hi) != 0) {
            snprintf(why, SST__WHY_SIZE,
                     "invalid status range %s (examples: 200, 200-399, 200,204,300-302)",
                     sst__quote(item, q, sizeof q));
            return SST_EINVAL;
        }
        if (lo < 100 || hi > 599 || lo > hi) {
            snprintf(why, SST__WHY_SIZE, "status range %s must lie within 100-599, low to high",
                     sst__quote(item, q, sizeof q));
            return SST_EINVAL;
        }
        if (*n == SST_MAX_STATUS_RANGE) {
            snprintf(why, SST__WHY_SIZE, "more than %d status ranges", SST_MAX_STATUS_RANGE);
            return SST_EINVAL;
        }
        r[*n].lo = (uint16_t)lo;
        r[*n].hi = (uint16_t)hi;
        (*n)++;
        any = true;
    }
    if (!any) {
        snprintf(why, SST__WHY_SIZE, "no status given (examples: 200, 200-399, 200,204,300-302)");
        return SST_EINVAL;
    }
    return 0;
}

/* host[:port] at s[*i], up to '/', '?', '#' or the end; lower-cases the host in place. */
static int values_authority(char *s, size_t *i, char *why)
{
    size_t start = *i, end = *i, h_end;
    char q[64];

    while (s[end] != '\0' && s[end] != '/' && s[end] != '?' && s[end] != '#')
        end++;
    if (end == start) {
        snprintf(why, SST__WHY_SIZE, "missing host after \"://\"");
        return SST_EINVAL;
    }
    if (memchr(s + start, '@', end - start) != NULL) {
        snprintf(why, SST__WHY_SIZE, "user information (user@) is not allowed");
        return SST_EINVAL;
    }
    if (s[start] == '[') {
        char v6[INET6_ADDRSTRLEN + 1];
        uint8_t bytes[16];
        const char *close = memchr(s + start, ']', end - start);
        size_t n = close ? (size_t)(close - s - start - 1) : 0;
        if (close == NULL || n == 0 || n >= sizeof v6) {
            snprintf(why, SST__WHY_SIZE, "invalid IPv6 host (e.g. [2001:db8::1])");
            return SST_EINVAL;
        }
        memcpy(v6, s + start + 1, n);
        v6[n] = '\0';
        if (inet_pton(AF_INET6, v6, bytes) != 1) {
            snprintf(why, SST__WHY_SIZE, "invalid IPv6 address %s",
                     sst__quote(sst_str_c(v6), q, sizeof q));
            return SST_EINVAL;
        }
        h_end = (size_t)(close - s) + 1;
    } else {
        h_end = start;
        while (h_end < end && s[h_end] != ':')
            h_end++;
        if (!values_is_hostname(sst_str(s + start, h_end - start))) {
            snprintf(why, SST__WHY_SIZE, "invalid host %s",
                     sst__quote(sst_str(s + start, h_end - start), q, sizeof q));
            return SST_EINVAL;
        }
    }
    for (size_t k = start; k < h_end; k++)
        s[k] = lower(s[k]);
    if (h_end < end) {
        uint64_t port;
        sst_str_t p = sst_str(s + h_end + 1, end - h_end - 1);
        if (s[h_end] != ':' || sst_str_to_u64(p, 65535, &port) != 0 || port == 0) {
            snprintf(why, SST__WHY_SIZE, "invalid port %s (expected 1..65535)",
                     sst__quote(sst_str(s + h_end, end - h_end), q, sizeof q));
            return SST_EINVAL;
        }
    }
    *i = end;
    return 0;
}

int sst__normalize_url(char *s, char *why)
{
    size_t len = strlen(s), i;

    for (i = 0; i < len && s[i] != ':'; i++)
        s[i] = lower(s[i]);
    if (!((i == 4 && memcmp(s, "http", 4) == 0) || (i == 5 && memcmp(s, "https", 5) == 0)) ||
        strncmp(s + i, "://", 3) != 0) {
        snprintf(why, SST__WHY_SIZE,
                 "expected http:// or https:// and a host (e.g. https://eu.example.com)");
        return SST_EINVAL;
    }
    i += 3;
    int rc = values_authority(s, &i, why);
    if (rc != 0)
        return rc;
    if (s[i] == '?' || s[i] == '#') {
        snprintf(why, SST__WHY_SIZE, "a query or fragment is not allowed in a base URL");
        return SST_EINVAL;
    }
    if (s[i] != '\0') {
        int prc = sst__check_path(sst_str(s + i, len - i), why);
        if (prc != 0)
            return prc;
        if (memchr(s + i, '?', len - i) != NULL) {
            snprintf(why, SST__WHY_SIZE, "a query or fragment is not allowed in a base URL");
            return SST_EINVAL;
        }
    }
    /* The request path is appended as is, so the base must not end in '/' */
    while (len > i && s[len - 1] == '/')
        s[--len] = '\0';
    return 0;
}

int sst__normalize_origin(char *s, char *why)
{
    size_t i = 0;

    if (strcmp(s, "*") == 0)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        snprintf(why, SST__WHY_SIZE,
                 "expected \"*\" or scheme://host[:port] (e.g. https://app.example.com)");
        return SST_EINVAL;
    }
    for (; is_alnum(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'; i++)
        s[i] = lower(s[i]);
    if (strncmp(s + i, "://", 3) != 0) {
        snprintf(why, SST__WHY_SIZE,
                 "expected \"*\" or scheme://host[:port] (e.g. https://app.example.com)");
        return SST_EINVAL;
    }
    i += 3;
    int rc = values_authority(s, &i, why);
    if (rc != 0)
        return rc;
    if (s[i] != '\0') {
        /* Browsers send Origin without a path; a trailing '/' would never match */
        snprintf(why, SST__WHY_SIZE, "an origin has no path, query or trailing '/'");
        return SST_EINVAL;
    }
    return 0;
}

int sst__normalize_host_pattern(char *s, char *why)
{
    size_t len = strlen(s);
    char *name = s;

    for (size_t i = 0; i < len; i++)
        s[i] = lower(s[i]);
    if (strcmp(s, "*") == 0)
        return 0;
    if (len >= 2 && s[0] == '*' && s[1] == '.')
        name = s + 2;
    if (strchr(name, ':') != NULL) {
        snprintf(why, SST__WHY_SIZE, "no port here: a route matches the host on every port");
        return SST_EINVAL;
    }
    if (strchr(name, '*') != NULL) {
        snprintf(why, SST__WHY_SIZE,
                 "'*' may only be the whole pattern or its first label (\"*.example.com\")");
        return SST_EINVAL;
    }
    size_t n = strlen(name);
    if (!values_is_hostname(sst_str(name, n)) || name[0] == '.' || name[n - 1] == '.' ||
        strstr(name, "..") != NULL) {
        snprintf(why, SST__WHY_SIZE,
                 "expected \"*\", a host name or \"*.\" and a domain (e.g. *.example.com)");
        return SST_EINVAL;
    }
    return 0;
}

int sst__check_path(sst_str_t s, char *why)
{
    if (s.len == 0 || s.base[0] != '/') {
        snprintf(why, SST__WHY_SIZE, "must start with '/'");
        return SST_EINVAL;
    }
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.base[i];
        if (ch <= 0x20 || ch == 0x7f) {
            snprintf(why, SST__WHY_SIZE, "contains a space or control character");
            return SST_EINVAL;
        }
        if (ch >= 0x80) {
            snprintf(why, SST__WHY_SIZE, "non-ASCII bytes must be percent-encoded");
            return SST_EINVAL;
        }
        if (ch == '#') {
            snprintf(why, SST__WHY_SIZE, "a fragment (#) is not allowed");
            return SST_EINVAL;
        }
    }
    return 0;
}
