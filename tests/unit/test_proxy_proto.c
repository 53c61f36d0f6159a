/* proxy_proto.c without a socket: valid and hostile v1 and v2 headers, each one fed at every
 * prefix length (exact-size copies, so ASan sees any read past the bytes given) and followed by
 * HTTP bytes; how early each refusal comes; TLVs; CRC32C; the writer and writer -> parser trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sidestep/error.h"

#include "http/proxy_proto.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit)      (lit), (sizeof(lit) - 1)

#define SIG      "\r\n\r\n\0\r\nQUIT\n"
#define HTTP_REQ "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
#define X10      "xxxxxxxxxx"
#define X90      X10 X10 X10 X10 X10 X10 X10 X10 X10

/* "ip:port" or "[ip6]:port" of a parsed address; "-" when it is empty. */
static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, size, "-");
    }
    return buf;
}

/* Parses an exact-size heap copy of in[0..len), so a read past len is an ASan error. */
static sst_pp_status_t parse_copy(const void *in, size_t len, size_t max, sst_pp_result_t *r)
{
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, in, len);
    sst_pp_status_t st = sst_pp_parse(copy, len, max, r);
    free(copy);
    return st;
}

/* The same header however it arrives: every prefix shorter than the point where the outcome is
 * decided asks for more (for a valid header, never past its end), every longer one gives the same
 * outcome, and HTTP bytes after a header change nothing. `at` is the header length for DONE,
 * the length at which the error is first seen for ERROR. Returns the full result in *out. */
static void check_stream(const char *name, const void *in, size_t len, size_t max,
                         sst_pp_status_t want, sst_pp_error_t err, size_t at, sst_pp_result_t *out)
{
    sst_pp_result_t r;
    sst_pp_status_t st;
    uint8_t *tail;

    for (size_t n = 0; n <= len; n++) {
        st = parse_copy(in, n, max, &r);
        if (n < at) {
            /* need is the least a whole header can take: for a valid one it is never past
             * the header's end; before an error it says nothing of where the error is */
            if (st != SST_PP_NEED_MORE || r.need <= n || (want == SST_PP_DONE && r.need > at))
                fail_msg("%s: prefix %zu/%zu: status %d need %zu error %s (want more, <= %zu)",
                         name, n, len, st, r.need, sst_pp_error_name(r.error), at);
            continue;
        }
        if (st != want || r.error != err || (want == SST_PP_DONE && r.len != at))
            fail_msg("%s: prefix %zu/%zu: status %d error %s len %zu (want %d %s at %zu)", name, n,
                     len, st, sst_pp_error_name(r.error), r.len, want, sst_pp_error_name(err), at);
    }
    *out = r;
    /* the first request's bytes in the same segment */
    tail = malloc(len + sizeof HTTP_REQ);
    assert_non_null(tail);
    memcpy(tail, in, len);
    memcpy(tail + len, HTTP_REQ, sizeof HTTP_REQ - 1);
    st = parse_copy(tail, len + sizeof HTTP_REQ - 1, max, &r);
    free(tail);
    if (st != want || r.error != err || r.len != out->len)
        fail_msg("%s: with HTTP after it: status %d error %s len %zu", name, st,
                 sst_pp_error_name(r.error), r.len);
}

/* --- v1 ---------------------------------------------------------------------------------- */

typedef struct v1_ok_s {
    const char *in;
    sst_pp_command_t command;
    int family;
    const char *src, *dst;
} v1_ok_t;

static void test_v1_valid(void **state)
{
    static const v1_ok_t cases[] = {
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", SST_PP_PROXY, AF_INET,
         "192.168.0.1:56324", "192.168.0.11:443"},
        {"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", SST_PP_PROXY, AF_INET, "0.0.0.0:0",
         "255.255.255.255:65535"},
        {"PROXY TCP4 10.0.0.1 10.0.0.2 9 10\r\n", SST_PP_PROXY, AF_INET, "10.0.0.1:9",
         "10.0.0.2:10"},
        {"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", SST_PP_PROXY, AF_INET6,
         "[2001:db8::1]:1", "[2001:db8::2]:65535"},
        {"PROXY TCP6 ::ffff:10.1.2.3 ::1 8080 80\r\n", SST_PP_PROXY, AF_INET6,
         "[::ffff:10.1.2.3]:8080", "[::1]:80"},
        {"PROXY TCP6 FFFF:ffff:FFFF:ffff:FFFF:ffff:FFFF:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n",
         SST_PP_PROXY, AF_INET6, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
         "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535"},
        {"PROXY UNKNOWN\r\n", SST_PP_UNKNOWN, AF_UNSPEC, "-", "-"},
        {"PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n", SST_PP_UNKNOWN, AF_UNSPEC, "-", "-"},
        {"PROXY UNKNOWN anything \x01\x7f\xff goes  here\r\n", SST_PP_UNKNOWN, AF_UNSPEC, "-", "-"},
        /* the spec's worst case is exactly 107 bytes */
        {"PROXY UNKNOWN " X90 "x\r\n", SST_PP_UNKNOWN, AF_UNSPEC, "-", "-"},
    };
    char a[80], b[80];

    (void)state;
    assert_int_equal(strlen(cases[COUNT_OF(cases) - 1].in), SST_PP_V1_MAX);
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const v1_ok_t *c = &cases[i];
        sst_pp_result_t r;
        check_stream(c->in, c->in, strlen(c->in), SST_PP_V2_MAX_DEFAULT, SST_PP_DONE, SST_PP_OK,
                     strlen(c->in), &r);
        if (r.version != 1 || r.command != c->command || r.family != c->family ||
            strcmp(addr_str(&r.src, a, sizeof a), c->src) != 0 ||
            strcmp(addr_str(&r.dst, b, sizeof b), c->dst) != 0)
            fail_msg("%s: v%u command %d family %d src %s dst %s", c->in, r.version, r.command,
                     r.family, a, b);
        assert_int_equal(r.authority.len, 0);
        assert_false(r.ssl.present);
    }
}

typedef struct bad_s {
    const char *in;
    size_t len;
    sst_pp_error_t err;
    size_t at; /* the prefix length at which the error is first reported */
} bad_t;

#define P4 "PROXY TCP4 1.2.3.4 5.6.7.8 " /* 27 bytes: the ports come next */

static const bad_t v1_bad[] = {
    /* not PROXY at all: a plain HTTP client is refused on its first bytes */
    {S("GET / HTTP/1.1\r\n"), SST_PP_ERR_BAD_SIGNATURE, 1},
    {S("POST / HTTP/1.1\r\n"), SST_PP_ERR_BAD_SIGNATURE, 2},
    {S("PUT / HTTP/1.1\r\n"), SST_PP_ERR_BAD_SIGNATURE, 2},
    {S("PRI * HTTP/2.0\r\n"), SST_PP_ERR_BAD_SIGNATURE, 3},
    {S("\x16\x03\x01\x02\x00"), SST_PP_ERR_BAD_SIGNATURE, 1},
    {S("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_BAD_SIGNATURE, 1},
    {S("PROXY\r\n"), SST_PP_ERR_BAD_SIGNATURE, 6},
    {S("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_BAD_SIGNATURE, 6},
    /* protocol word */
    {S("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_PROTOCOL, 7},
    {S("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_PROTOCOL, 7},
    {S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_PROTOCOL, 10},
    {S("PROXY TCP4\r\n"), SST_PP_ERR_V1_BAD_PROTOCOL, 11},
    {S("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_PROTOCOL, 8}, /* U of UNKNOWN */
    {S("PROXY UNKNOWNX\r\n"), SST_PP_ERR_V1_BAD_PROTOCOL, 14},
    /* line ends */
    {S("PROXY UNKNOWN\n"), SST_PP_ERR_V1_BAD_CRLF, 14},
    {S("PROXY UNKNOWN\r\r\n"), SST_PP_ERR_V1_BAD_CRLF, 15},
    {S("PROXY UNKNOWN a\nb\r\n"), SST_PP_ERR_V1_BAD_CRLF, 16},
    {S(P4 "1 2\n"), SST_PP_ERR_V1_BAD_CRLF, 31},
    {S(P4 "1 2\r\r\n"), SST_PP_ERR_V1_BAD_CRLF, 32},
    {S(P4 "1 2\rGET / HTTP/1.1\r\n"), SST_PP_ERR_V1_BAD_CRLF, 32},
    /* length: 108 bytes with the CRLF, or no CRLF at all */
    {S("PROXY UNKNOWN " X90 "xx\r\n"), SST_PP_ERR_V1_TOO_LONG, 107},
    {S("PROXY UNKNOWN " X90 X90 X90), SST_PP_ERR_V1_TOO_LONG, 107},
    {S("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
       "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n"),
     SST_PP_ERR_V1_TOO_LONG, 107},
    /* addresses */
    {S("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 12},
    {S("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 20},
    {S("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 20},
    {S("PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 21},
    {S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 17},
    {S("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 21},
    {S("PROXY TCP4 ::1 ::1 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 12},
    {S("PROXY TCP4 1111111111111111 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 27},
    {S("PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 19},
    {S("PROXY TCP4 1.2.3.4 5.6.7.8\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 27},
    {S("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 19},
    {S("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 19},
    {S("PROXY TCP6 2001:db8::1 2001:db8:::2 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 36},
    {S("PROXY TCP6 [::1] ::1 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 12},
    {S("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), SST_PP_ERR_V1_BAD_ADDRESS, 19},
    {S("PROXY TCP6 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ::1 1 2\r\n"),
     SST_PP_ERR_V1_BAD_ADDRESS, 57},
    /* ports */
    {S(P4 "65536 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 33},
    {S(P4 "1 65536\r\n"), SST_PP_ERR_V1_BAD_PORT, 35},
    {S(P4 "99999 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 33},
    {S(P4 "00 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 29},
    {S(P4 "080 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 29},
    {S(P4 "1 02\r\n"), SST_PP_ERR_V1_BAD_PORT, 31},
    {S(P4 "123456 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 33},
    {S(P4 "-1 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 28},
    {S(P4 "+1 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 28},
    {S(P4 " 1 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 28},
    {S(P4 "1  2\r\n"), SST_PP_ERR_V1_BAD_PORT, 30},
    {S(P4 "1 2 \r\n"), SST_PP_ERR_V1_BAD_PORT, 31},
    {S(P4 "1 2 3\r\n"), SST_PP_ERR_V1_BAD_PORT, 31},
    {S(P4 "1\r\n"), SST_PP_ERR_V1_BAD_PORT, 29},
    {S(P4 "0x50 2\r\n"), SST_PP_ERR_V1_BAD_PORT, 29},
};

/* --- v2 ---------------------------------------------------------------------------------- */

#define V4_BLOCK                                                                                   \
    "\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb" /* 192.0.2.1:56324 -> ..:443                \
                                                        */

static const bad_t v2_bad[] = {
    /* near misses of the signature */
    {S("\r\nGET / HTTP/1.1\r\n"), SST_PP_ERR_BAD_SIGNATURE, 3},
    {S("\r\n\r\nGET / HTTP/1.1\r\n"), SST_PP_ERR_BAD_SIGNATURE, 5},
    {S("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_BAD_SIGNATURE, 11},
    {S("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_BAD_SIGNATURE, 12},
    /* version and command */
    {S(SIG "\x11\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_VERSION, 13},
    {S(SIG "\x31\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_VERSION, 13},
    {S(SIG "\x01\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_VERSION, 13},
    {S(SIG "\x22\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_COMMAND, 13},
    {S(SIG "\x2f\x11\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_COMMAND, 13},
    /* family and transport (PROXY only: LOCAL ignores them) */
    {S(SIG "\x21\x41\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\x13\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\x10\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\x01\x00\x00"), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\x02\x00\x00"), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\x30\x00\x00"), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\xff\x00\x00"), SST_PP_ERR_V2_BAD_FAMILY, 14},
    {S(SIG "\x21\x12\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_BAD_TRANSPORT, 14},
    {S(SIG "\x21\x22\x00\x24"), SST_PP_ERR_V2_BAD_TRANSPORT, 14},
    {S(SIG "\x21\x32\x00\xd8"), SST_PP_ERR_V2_BAD_TRANSPORT, 14},
    /* lengths that lie */
    {S(SIG "\x21\x11\xff\xff" V4_BLOCK), SST_PP_ERR_V2_TOO_LONG, 16},
    {S(SIG "\x20\x00\x10\x00"), SST_PP_ERR_V2_TOO_LONG, 16}, /* 16 + 4096 > 4096 */
    {S(SIG "\x21\x11\x00\x0b" V4_BLOCK), SST_PP_ERR_V2_LENGTH, 16},
    {S(SIG "\x21\x11\x00\x00"), SST_PP_ERR_V2_LENGTH, 16},
    {S(SIG "\x21\x21\x00\x0c" V4_BLOCK), SST_PP_ERR_V2_LENGTH, 16},
    {S(SIG "\x21\x31\x00\x24"), SST_PP_ERR_V2_LENGTH, 16},
    /* TLVs that do not fit the header: decided once the whole header is in */
    {S(SIG "\x21\x11\x00\x0d" V4_BLOCK "\x04"), SST_PP_ERR_V2_TLV, 29},
    {S(SIG "\x21\x11\x00\x0e" V4_BLOCK "\x04\x00"), SST_PP_ERR_V2_TLV, 30},
    {S(SIG "\x21\x11\x00\x11" V4_BLOCK "\x04\x00\x03"
           "ab"),
     SST_PP_ERR_V2_TLV, 33},
    {S(SIG "\x21\x11\x00\x11" V4_BLOCK "\xe0\xff\xff"
           "ab"),
     SST_PP_ERR_V2_TLV, 33},
    {S(SIG "\x21\x11\x00\x12" V4_BLOCK "\x04\x00\x00\x04\x00\x01"), SST_PP_ERR_V2_TLV, 34},
};

/* Builds a v2 header: signature, ver_cmd, fam, then body (address block and TLVs); the length
 * field is body_len. Returns the length. */
static size_t v2_build(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body,
                       size_t body_len)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(body_len >> 8);
    out[15] = (uint8_t)body_len;
    if (body_len)
        memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

/* Appends one TLV and grows the length field. */
static void v2_tlv(uint8_t *h, size_t *n, uint8_t type, const void *v, size_t vlen)
{
    size_t blen;
    h[*n] = type;
    h[*n + 1] = (uint8_t)(vlen >> 8);
    h[*n + 2] = (uint8_t)vlen;
    if (vlen)
        memcpy(h + *n + 3, v, vlen);
    *n += 3 + vlen;
    blen = *n - 16;
    h[14] = (uint8_t)(blen >> 8);
    h[15] = (uint8_t)blen;
}

/* Appends a CRC32C TLV holding the checksum of the whole header. */
static void v2_crc(uint8_t *h, size_t *n)
{
    static const uint8_t zero[4] = {0};
    size_t at = *n + 3;
    v2_tlv(h, n, SST_PP2_TYPE_CRC32C, zero, 4);
    uint32_t crc = sst_pp_crc32c(0, h, *n);
    h[at] = (uint8_t)(crc >> 24);
    h[at + 1] = (uint8_t)(crc >> 16);
    h[at + 2] = (uint8_t)(crc >> 8);
    h[at + 3] = (uint8_t)crc;
}

static void check_bad_table(const bad_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const bad_t *c = &cases[i];
        char name[64];
        sst_pp_result_t r;
        snprintf(name, sizeof name, "case %zu (%s)", i, sst_pp_error_name(c->err));
        check_stream(name, c->in, c->len, SST_PP_V2_MAX_DEFAULT, SST_PP_ERROR, c->err, c->at, &r);
        /* a refused header leaves nothing behind that a caller could use by mistake */
        assert_int_equal(r.len, 0);
        assert_int_equal(r.src.ss_family, AF_UNSPEC);
        assert_null(r.authority.base);
    }
}

static void test_v1_hostile(void **state)
{
    (void)state;
    assert_int_equal(sizeof("PROXY UNKNOWN " X90 "xx\r\n") - 1, SST_PP_V1_MAX + 1);
    check_bad_table(v1_bad, COUNT_OF(v1_bad));
}

static void test_v2_hostile(void **state)
{
    (void)state;
    check_bad_table(v2_bad, COUNT_OF(v2_bad));
}

typedef struct v2_ok_s {
    const char *in;
    size_t len;
    sst_pp_command_t command;
    int family;
    const char *src, *dst;
} v2_ok_t;

static void test_v2_valid(void **state)
{
    static const v2_ok_t cases[] = {
        {S(SIG "\x21\x11\x00\x0c" V4_BLOCK), SST_PP_PROXY, AF_INET, "192.0.2.1:56324",
         "198.51.100.2:443"},
        {S(SIG "\x21\x21\x00\x24"
               "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
               "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
               "\x00\x50\x1f\x90"),
         SST_PP_PROXY, AF_INET6, "[2001:db8::1]:80", "[2001:db8::2]:8080"},
        /* LOCAL: the family, the block and anything in it are ignored (spec 2.2) */
        {S(SIG "\x20\x00\x00\x00"), SST_PP_LOCAL, AF_UNSPEC, "-", "-"},
        {S(SIG "\x20\x11\x00\x0c" V4_BLOCK), SST_PP_LOCAL, AF_UNSPEC, "-", "-"},
        {S(SIG "\x20\xff\x00\x03\x04\x00\x09"), SST_PP_LOCAL, AF_UNSPEC, "-", "-"},
        {S(SIG "\x20\x12\x00\x00"), SST_PP_LOCAL, AF_UNSPEC, "-", "-"},
        /* PROXY over UNSPEC: accepted, the peer is kept; its block may hold anything */
        {S(SIG "\x21\x00\x00\x00"), SST_PP_UNKNOWN, AF_UNSPEC, "-", "-"},
        {S(SIG "\x21\x00\x00\x02\xff\xff"), SST_PP_UNKNOWN, AF_UNSPEC, "-", "-"},
        /* unknown TLV types, NOOP padding and a top-level SSL subtype are skipped */
        {S(SIG "\x21\x11\x00\x1e" V4_BLOCK "\x04\x00\x00"
               "\xea\x00\x02id"
               "\xf8\x00\x01z"
               "\x21\x00\x00"
               "\x04\x00\x00"),
         SST_PP_PROXY, AF_INET, "192.0.2.1:56324", "198.51.100.2:443"},
    };
    char a[80], b[80];

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const v2_ok_t *c = &cases[i];
        char name[32];
        sst_pp_result_t r;
        snprintf(name, sizeof name, "v2 case %zu", i);
        check_stream(name, c->in, c->len, SST_PP_V2_MAX_DEFAULT, SST_PP_DONE, SST_PP_OK, c->len,
                     &r);
        if (r.version != 2 || r.command != c->command || r.family != c->family ||
            strcmp(addr_str(&r.src, a, sizeof a), c->src) != 0 ||
            strcmp(addr_str(&r.dst, b, sizeof b), c->dst) != 0)
            fail_msg("%s: v%u command %d family %d src %s dst %s", name, r.version, r.command,
                     r.family, a, b);
    }
}

/* AF_UNIX: 216 bytes of paths, then TLVs that are still read. */
static void test_v2_unix(void **state)
{
    uint8_t block[216], h[512];
    sst_pp_result_t r;
    size_t n;

    (void)state;
    memset(block, 0, sizeof block);
    memcpy(block, "/run/lb.sock", 12);
    n = v2_build(h, 0x21, 0x31, block, sizeof block);
    v2_tlv(h, &n, SST_PP2_TYPE_AUTHORITY, "a.example", 9);
    check_stream("unix", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_DONE, SST_PP_OK, n, &r);
    assert_int_equal(r.command, SST_PP_UNKNOWN);
    assert_int_equal(r.family, AF_UNIX);
    assert_int_equal(r.src.ss_family, AF_UNSPEC);
    assert_int_equal(r.authority.len, 9);
    assert_memory_equal(r.authority.base, "a.example", 9);

    /* a bad TLV after the paths is found too */
    n = v2_build(h, 0x21, 0x31, block, sizeof block);
    v2_tlv(h, &n, SST_PP2_TYPE_AUTHORITY, "", 0);
    check_stream("unix bad tlv", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_ERROR, SST_PP_ERR_V2_TLV, n,
                 &r);
}

/* Every TLV the parser knows, with their slices pointing into the buffer. */
static void test_v2_tlvs(void **state)
{
    uint8_t h[1024], ssl[128];
    size_t n, s = 0;
    sst_pp_result_t r;
    char uid[128];

    (void)state;
    memset(uid, 0xab, sizeof uid);
    ssl[s++] = SST_PP2_CLIENT_SSL | SST_PP2_CLIENT_CERT_CONN;
    memcpy(ssl + s, "\x00\x00\x00\x07", 4);
    s += 4;
#define SUB(type, lit)                                                                             \
    do {                                                                                           \
        ssl[s] = (type);                                                                           \
        ssl[s + 1] = 0;                                                                            \
        ssl[s + 2] = (uint8_t)(sizeof(lit) - 1);                                                   \
        memcpy(ssl + s + 3, (lit), sizeof(lit) - 1);                                               \
        s += 3 + sizeof(lit) - 1;                                                                  \
    } while (0)
    SUB(SST_PP2_SUBTYPE_VERSION, "TLSv1.3");
    SUB(SST_PP2_SUBTYPE_CN, "client.example");
    SUB(SST_PP2_SUBTYPE_CIPHER, "TLS_AES_128_GCM_SHA256");
    SUB(SST_PP2_SUBTYPE_SIG_ALG, "RSA-SHA256");
    SUB(SST_PP2_SUBTYPE_KEY_ALG, "RSA2048");
    SUB(0x29, "unknown sub-type");
#undef SUB

    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, SST_PP2_TYPE_ALPN, "h2", 2);
    v2_tlv(h, &n, SST_PP2_TYPE_AUTHORITY, "shop.example.com", 16);
    v2_tlv(h, &n, SST_PP2_TYPE_UNIQUE_ID, uid, sizeof uid);
    v2_tlv(h, &n, SST_PP2_TYPE_SSL, ssl, s);
    v2_tlv(h, &n, SST_PP2_TYPE_NETNS, "blue", 4);
    v2_tlv(h, &n, 0xee, "\x01\x02", 2);
    v2_crc(h, &n);
    check_stream("tlvs", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_DONE, SST_PP_OK, n, &r);

    /* slices into a buffer that stays alive */
    assert_int_equal(sst_pp_parse(h, n, SST_PP_V2_MAX_DEFAULT, &r), SST_PP_DONE);
    assert_true(r.crc32c);
    assert_true(r.alpn.base >= (const char *)h && r.alpn.base < (const char *)h + n);
    assert_int_equal(r.alpn.len, 2);
    assert_memory_equal(r.alpn.base, "h2", 2);
    assert_int_equal(r.authority.len, 16);
    assert_memory_equal(r.authority.base, "shop.example.com", 16);
    assert_int_equal(r.unique_id.len, 128);
    assert_memory_equal(r.unique_id.base, uid, 128);
    assert_int_equal(r.netns.len, 4);
    assert_memory_equal(r.netns.base, "blue", 4);
    assert_true(r.ssl.present);
    assert_int_equal(r.ssl.client, SST_PP2_CLIENT_SSL | SST_PP2_CLIENT_CERT_CONN);
    assert_int_equal(r.ssl.verify, 7);
    assert_int_equal(r.ssl.version.len, 7);
    assert_memory_equal(r.ssl.version.base, "TLSv1.3", 7);
    assert_memory_equal(r.ssl.cn.base, "client.example", 14);
    assert_memory_equal(r.ssl.cipher.base, "TLS_AES_128_GCM_SHA256", 22);
    assert_memory_equal(r.ssl.sig_alg.base, "RSA-SHA256", 10);
    assert_memory_equal(r.ssl.key_alg.base, "RSA2048", 7);

    /* every single byte flipped after the signature breaks the CRC or the grammar, except the
     * command bit: PROXY becomes LOCAL, whose block is never read */
    for (size_t i = 12; i < n; i++) {
        h[i] ^= 0x01;
        sst_pp_status_t st = sst_pp_parse(h, n, SST_PP_V2_MAX_DEFAULT, &r);
        if (st == SST_PP_DONE && !(i == 12 && r.command == SST_PP_LOCAL && !r.crc32c))
            fail_msg("byte %zu flipped: still accepted", i);
        h[i] ^= 0x01;
    }
    assert_int_equal(sst_pp_parse(h, n, SST_PP_V2_MAX_DEFAULT, &r), SST_PP_DONE);
}

typedef struct tlv_case_s {
    const char *tlvs; /* appended after an IPv4 block */
    size_t len;
    sst_pp_error_t err; /* SST_PP_OK: accepted */
} tlv_case_t;

static void test_v2_tlv_rules(void **state)
{
    static const tlv_case_t cases[] = {
        {S("\x02\x00\x00"), SST_PP_ERR_V2_TLV}, /* empty authority */
        {S("\x02\x00\x03"
           "a\rb"),
         SST_PP_ERR_V2_TLV}, /* CTL in authority */
        {S("\x02\x00\x03"
           "a\x7f"
           "b"),
         SST_PP_ERR_V2_TLV},                     /* DEL in authority */
        {S("\x02\x00\x03\xc3\xa9z"), SST_PP_OK}, /* UTF-8 is allowed (spec 2.2.2) */
        {S("\x02\x00\x01"
           "a"
           "\x02\x00\x01"
           "b"),
         SST_PP_ERR_V2_TLV}, /* authority twice */
        {S("\x01\x00\x01"
           "a"
           "\x01\x00\x01"
           "b"),
         SST_PP_ERR_V2_TLV},                                  /* ALPN twice */
        {S("\x01\x00\x00"), SST_PP_OK},                       /* empty ALPN: nothing to keep */
        {S("\x05\x00\x00"), SST_PP_ERR_V2_TLV},               /* empty unique id */
        {S("\x05\x00\x01x\x05\x00\x01y"), SST_PP_ERR_V2_TLV}, /* unique id twice */
        {S("\x30\x00\x01x\x30\x00\x01y"), SST_PP_ERR_V2_TLV}, /* netns twice */
        {S("\x03\x00\x03\x00\x00\x00"), SST_PP_ERR_V2_TLV},   /* CRC32C of 3 bytes */
        {S("\x03\x00\x05\x00\x00\x00\x00\x00"), SST_PP_ERR_V2_TLV},
        {S("\x03\x00\x04\x00\x00\x00\x00"), SST_PP_ERR_V2_CRC32C}, /* CRC32C of zeros: mismatch */
        {S("\x20\x00\x04\x01\x00\x00\x00"), SST_PP_ERR_V2_TLV},    /* SSL shorter than 5 */
        {S("\x20\x00\x05\x01\x00\x00\x00\x00"), SST_PP_OK},        /* SSL with no sub-TLV */
        /* SSL sub-TLV running past the SSL TLV, though not past the header */
        {S("\x20\x00\x08\x01\x00\x00\x00\x00\x22\x00\x05"
           "\x04\x00\x02zz"),
         SST_PP_ERR_V2_TLV},
        {S("\x20\x00\x07\x01\x00\x00\x00\x00\x22\x00"), SST_PP_ERR_V2_TLV}, /* sub-TLV header cut */
        {S("\x20\x00\x0b\x01\x00\x00\x00\x00\x22\x00\x00\x22\x00\x00"),
         SST_PP_ERR_V2_TLV}, /* CN x2 */
        {S("\x20\x00\x05\x01\x00\x00\x00\x00\x20\x00\x05\x01\x00\x00\x00\x00"),
         SST_PP_ERR_V2_TLV},                                    /* SSL twice */
        {S("\x04\x00\x00\x04\x00\x00\x04\x00\x00"), SST_PP_OK}, /* NOOP repeats */
        {S("\xe0\x00\x01x\xe0\x00\x01y"), SST_PP_OK},           /* unknown types may repeat */
    };
    uint8_t h[600];
    char name[32];

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const tlv_case_t *c = &cases[i];
        uint8_t body[300];
        sst_pp_result_t r;
        memcpy(body, V4_BLOCK, 12);
        memcpy(body + 12, c->tlvs, c->len);
        size_t n = v2_build(h, 0x21, 0x11, body, 12 + c->len);
        snprintf(name, sizeof name, "tlv case %zu", i);
        check_stream(name, h, n, SST_PP_V2_MAX_DEFAULT,
                     c->err == SST_PP_OK ? SST_PP_DONE : SST_PP_ERROR, c->err, n, &r);
    }

    /* lengths at their limits: authority 255, unique id 128 pass; one more fails */
    uint8_t big[256];
    memset(big, 'a', sizeof big);
    sst_pp_result_t r;
    size_t n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, SST_PP2_TYPE_AUTHORITY, big, 255);
    v2_tlv(h, &n, SST_PP2_TYPE_UNIQUE_ID, big, 128);
    check_stream("limits", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_DONE, SST_PP_OK, n, &r);
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, SST_PP2_TYPE_AUTHORITY, big, 256);
    check_stream("authority 256", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_ERROR, SST_PP_ERR_V2_TLV, n,
                 &r);
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, SST_PP2_TYPE_UNIQUE_ID, big, 129);
    check_stream("unique id 129", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_ERROR, SST_PP_ERR_V2_TLV, n,
                 &r);

    /* a CRC32C that matches, then the header changed after it was computed */
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_crc(h, &n);
    check_stream("crc ok", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_DONE, SST_PP_OK, n, &r);
    assert_true(r.crc32c);
    h[16] ^= 0x80; /* the source address */
    check_stream("crc mismatch", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_ERROR, SST_PP_ERR_V2_CRC32C, n,
                 &r);
    h[16] ^= 0x80;
    v2_crc(h, &n); /* a second CRC32C */
    check_stream("crc twice", h, n, SST_PP_V2_MAX_DEFAULT, SST_PP_ERROR, SST_PP_ERR_V2_TLV, n, &r);
}

/* max_len bounds a v2 header; below the floor it counts as the floor. */
static void test_v2_max_len(void **state)
{
    uint8_t h[4200], pad[4200];
    sst_pp_result_t r;
    size_t n;

    (void)state;
    memset(pad, 0, sizeof pad);
    /* 16 + 12 + 3 + 269 = 300 */
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, SST_PP2_TYPE_NOOP, pad, 269);
    assert_int_equal(n, 300);
    check_stream("300 at 300", h, n, 300, SST_PP_DONE, SST_PP_OK, n, &r);
    check_stream("300 at 299", h, n, 299, SST_PP_ERROR, SST_PP_ERR_V2_TOO_LONG, 16, &r);
    /* the floor: 232 */
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, SST_PP2_TYPE_NOOP, pad, 232 - 31);
    assert_int_equal(n, 232);
    check_stream("232 at 0", h, n, 0, SST_PP_DONE, SST_PP_OK, n, &r);
    v2_tlv(h, &n, SST_PP2_TYPE_NOOP, pad, 0);
    check_stream("235 at 10", h, n, 10, SST_PP_ERROR, SST_PP_ERR_V2_TOO_LONG, 16, &r);
    /* the default bound: 4096 passes, 4097 does not */
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, 0xe1, pad, 4096 - 31);
    assert_int_equal(n, 4096);
    assert_int_equal(sst_pp_parse(h, n, SST_PP_V2_MAX_DEFAULT, &r), SST_PP_DONE);
    assert_int_equal(r.len, 4096);
    n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);
    v2_tlv(h, &n, 0xe1, pad, 4097 - 31);
    assert_int_equal(sst_pp_parse(h, 16, SST_PP_V2_MAX_DEFAULT, &r), SST_PP_ERROR);
    assert_int_equal(r.error, SST_PP_ERR_V2_TOO_LONG);
}

/* NEED_MORE says how much: 16 for the fixed part, then the exact header length. */
static void test_need(void **state)
{
    uint8_t h[64];
    sst_pp_result_t r;
    size_t n = v2_build(h, 0x21, 0x11, V4_BLOCK, 12);

    (void)state;
    assert_int_equal(sst_pp_parse(h, 0, 0, &r), SST_PP_NEED_MORE);
    assert_int_equal(r.need, 1);
    assert_int_equal(r.version, 0);
    assert_int_equal(sst_pp_parse(h, 5, 0, &r), SST_PP_NEED_MORE);
    assert_int_equal(r.need, 16);
    assert_int_equal(sst_pp_parse(h, 16, 0, &r), SST_PP_NEED_MORE);
    assert_int_equal(r.need, n);
    assert_int_equal(r.version, 2);
    assert_int_equal(sst_pp_parse(h, n - 1, 0, &r), SST_PP_NEED_MORE);
    assert_int_equal(r.need, n);
    assert_int_equal(sst_pp_parse("PROXY TCP", 9, 0, &r), SST_PP_NEED_MORE);
    assert_int_equal(r.version, 1);
    assert_true(r.need > 9);
    /* NULL with no bytes is just "nothing yet" */
    assert_int_equal(sst_pp_parse(NULL, 0, 0, &r), SST_PP_NEED_MORE);
}

/* --- CRC32C ------------------------------------------------------------------------------ */

static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void test_crc32c(void **state)
{
    uint8_t buf[300];

    (void)state;
    /* the check value of CRC-32C (iSCSI) */
    assert_int_equal(sst_pp_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(sst_pp_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros, of ones, ascending */
    memset(buf, 0, 32);
    assert_int_equal(sst_pp_crc32c(0, buf, 32), 0x8a9136aau);
    memset(buf, 0xff, 32);
    assert_int_equal(sst_pp_crc32c(0, buf, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(sst_pp_crc32c(0, buf, 32), 0x46dd794eu);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof buf; n += 13) {
        assert_int_equal(sst_pp_crc32c(0, buf, n), crc32c_bitwise(buf, n));
        /* continuing over two pieces is the same as one pass */
        assert_int_equal(sst_pp_crc32c(sst_pp_crc32c(0, buf, n / 3), buf + n / 3, n - n / 3),
                         crc32c_bitwise(buf, n));
    }
}

/* --- writer ------------------------------------------------------------------------------ */

static void sa4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void sa6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

static void sa_any(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    if (strchr(ip, ':'))
        sa6(ss, ip, port);
    else
        sa4(ss, ip, port);
}

typedef struct write_case_s {
    int version;
    const char *src, *dst; /* NULL: no address */
    uint16_t sport, dport;
    const char *want; /* exact bytes */
    size_t want_len;
    const char *psrc, *pdst; /* what the parser reads back ("-": keep the peer) */
} write_case_t;

static void test_writer(void **state)
{
    static const write_case_t cases[] = {
        {1, "192.0.2.1", "198.51.100.2", 56324, 443,
         S("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"), "192.0.2.1:56324",
         "198.51.100.2:443"},
        {1, "2001:db8::1", "2001:db8::2", 0, 65535,
         S("PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n"), "[2001:db8::1]:0",
         "[2001:db8::2]:65535"},
        /* mixed families: both as IPv6, the IPv4 one mapped */
        {1, "192.0.2.1", "2001:db8::2", 1, 2, S("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 2\r\n"),
         "[::ffff:192.0.2.1]:1", "[2001:db8::2]:2"},
        /* a dual-stack socket's view of IPv4 peers is written as IPv4 */
        {1, "::ffff:192.0.2.1", "::ffff:192.0.2.2", 1, 2,
         S("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), "192.0.2.1:1", "192.0.2.2:2"},
        {1, "::ffff:192.0.2.1", "192.0.2.2", 1, 2, S("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"),
         "192.0.2.1:1", "192.0.2.2:2"},
        {1, NULL, "192.0.2.2", 1, 2, S("PROXY UNKNOWN\r\n"), "-", "-"},
        {2, "192.0.2.1", "198.51.100.2", 56324, 443, S(SIG "\x21\x11\x00\x0c" V4_BLOCK),
         "192.0.2.1:56324", "198.51.100.2:443"},
        {2, "2001:db8::1", "2001:db8::2", 80, 8080,
         S(SIG "\x21\x21\x00\x24"
               "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
               "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
               "\x00\x50\x1f\x90"),
         "[2001:db8::1]:80", "[2001:db8::2]:8080"},
        {2, "2001:db8::1", "192.0.2.2", 80, 8080,
         S(SIG "\x21\x21\x00\x24"
               "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
               "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc0\x00\x02\x02"
               "\x00\x50\x1f\x90"),
         "[2001:db8::1]:80", "[::ffff:192.0.2.2]:8080"},
        {2, "::ffff:192.0.2.1", "::ffff:198.51.100.2", 56324, 443,
         S(SIG "\x21\x11\x00\x0c" V4_BLOCK), "192.0.2.1:56324", "198.51.100.2:443"},
        /* no usable address: LOCAL, which every receiver must accept */
        {2, "192.0.2.1", NULL, 1, 2, S(SIG "\x20\x00\x00\x00"), "-", "-"},
    };
    struct sockaddr_storage s, d;
    uint8_t out[SST_PP_WRITE_MAX + 8];
    char a[80], b[80];

    (void)state;
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        const write_case_t *c = &cases[i];
        const struct sockaddr *sp = NULL, *dp = NULL;
        sst_pp_result_t r;
        if (c->src) {
            sa_any(&s, c->src, c->sport);
            sp = (const struct sockaddr *)&s;
        }
        if (c->dst) {
            sa_any(&d, c->dst, c->dport);
            dp = (const struct sockaddr *)&d;
        }
        memset(out, 0xee, sizeof out);
        int n = sst_pp_write(c->version, sp, dp, out, sizeof out);
        if (n != (int)c->want_len || memcmp(out, c->want, c->want_len) != 0)
            fail_msg("write case %zu: %d bytes (want %zu)", i, n, c->want_len);
        assert_int_equal(out[n], 0xee); /* no NUL or anything else after it */
        /* too small by one byte, or by all: an error, never a cut header */
        assert_int_equal(sst_pp_write(c->version, sp, dp, out, (size_t)n - 1), SST_E2BIG);
        assert_int_equal(sst_pp_write(c->version, sp, dp, out, 0), SST_E2BIG);
        assert_int_equal(sst_pp_write(c->version, sp, dp, out, (size_t)n), n);
        /* and the parser reads it back */
        assert_int_equal(sst_pp_parse(out, (size_t)n, 0, &r), SST_PP_DONE);
        assert_int_equal(r.len, n);
        assert_int_equal(r.version, c->version);
        if (strcmp(addr_str(&r.src, a, sizeof a), c->psrc) != 0 ||
            strcmp(addr_str(&r.dst, b, sizeof b), c->pdst) != 0)
            fail_msg("write case %zu read back as %s %s", i, a, b);
        assert_int_equal(r.command, strcmp(c->psrc, "-") ? SST_PP_PROXY
                                    : c->version == 1    ? SST_PP_UNKNOWN
                                                         : SST_PP_LOCAL);
    }

    /* a non-IP family is written as "no address" */
    struct sockaddr un = {.sa_family = AF_UNIX};
    sa4(&d, "192.0.2.2", 2);
    assert_int_equal(sst_pp_write(1, &un, (struct sockaddr *)&d, out, sizeof out), 15);
    assert_memory_equal(out, "PROXY UNKNOWN\r\n", 15);
    assert_int_equal(sst_pp_write(2, (struct sockaddr *)&d, &un, out, sizeof out), 16);
    assert_memory_equal(out, SIG "\x20\x00\x00\x00", 16);
    /* versions other than 1 and 2 */
    assert_int_equal(sst_pp_write(0, (struct sockaddr *)&d, (struct sockaddr *)&d, out, 200),
                     SST_EINVAL);
    assert_int_equal(sst_pp_write(3, NULL, NULL, out, 200), SST_EINVAL);
    assert_int_equal(sst_pp_write_local(0, out, 200), SST_EINVAL);
}

/* Health probes: v2 LOCAL, v1 UNKNOWN. */
static void test_writer_local(void **state)
{
    uint8_t out[32];
    sst_pp_result_t r;

    (void)state;
    assert_int_equal(sst_pp_write_local(2, out, sizeof out), 16);
    assert_memory_equal(out, SIG "\x20\x00\x00\x00", 16);
    assert_int_equal(sst_pp_parse(out, 16, 0, &r), SST_PP_DONE);
    assert_int_equal(r.command, SST_PP_LOCAL);
    assert_int_equal(sst_pp_write_local(2, out, 15), SST_E2BIG);
    assert_int_equal(sst_pp_write_local(1, out, sizeof out), 15);
    assert_memory_equal(out, "PROXY UNKNOWN\r\n", 15);
    assert_int_equal(sst_pp_parse(out, 15, 0, &r), SST_PP_DONE);
    assert_int_equal(r.command, SST_PP_UNKNOWN);
    assert_int_equal(sst_pp_write_local(1, out, 14), SST_E2BIG);
}

/* The longest line the writer can make still fits the 107 bytes a receiver must accept. */
static void test_writer_longest(void **state)
{
    struct sockaddr_storage s, d;
    uint8_t out[SST_PP_WRITE_MAX];
    sst_pp_result_t r;

    (void)state;
    sa6(&s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    sa6(&d, "fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    int n = sst_pp_write(1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof out);
    assert_int_equal(n, 104);
    assert_int_equal(sst_pp_parse(out, (size_t)n, 0, &r), SST_PP_DONE);
    /* mapped + full IPv6 */
    sa4(&s, "255.255.255.255", 65535);
    n = sst_pp_write(1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof out);
    assert_true(n > 0 && n <= SST_PP_V1_MAX);
    assert_int_equal(sst_pp_parse(out, (size_t)n, 0, &r), SST_PP_DONE);
}

/* Every v4/v6 combination, both versions, many ports: write then parse gives the same. */
static void test_round_trip(void **state)
{
    static const char *const ips[] = {
        "0.0.0.0",     "10.1.2.3",       "255.255.255.255", "::", "::1", "2001:db8::1",
        "fe80::1:2:3", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8"};
    static const uint16_t ports[] = {0, 1, 80, 9999, 10000, 65535};
    struct sockaddr_storage s, d;
    uint8_t out[SST_PP_WRITE_MAX];
    char a[80], b[80], ea[80], eb[80];

    (void)state;
    for (int v = 1; v <= 2; v++)
        for (size_t i = 0; i < COUNT_OF(ips); i++)
            for (size_t j = 0; j < COUNT_OF(ips); j++) {
                sst_pp_result_t r;
                uint16_t sp = ports[(i + j) % COUNT_OF(ports)];
                uint16_t dp = ports[(i * 3 + j + 1) % COUNT_OF(ports)];
                sa_any(&s, ips[i], sp);
                sa_any(&d, ips[j], dp);
                int n =
                    sst_pp_write(v, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof out);
                assert_true(n > 0);
                assert_int_equal(sst_pp_parse(out, (size_t)n, 0, &r), SST_PP_DONE);
                assert_int_equal(r.len, n);
                assert_int_equal(r.command, SST_PP_PROXY);
                /* expected: IPv4 when both are IPv4 (mapped or not), else both IPv6 */
                bool v4s = !strchr(ips[i], ':') || strstr(ips[i], "::ffff:") == ips[i];
                bool v4d = !strchr(ips[j], ':') || strstr(ips[j], "::ffff:") == ips[j];
                const char *is = ips[i], *id = ips[j];
                char ms[64], md[64];
                if (v4s && v4d) {
                    if (strchr(is, ':'))
                        is += 7;
                    if (strchr(id, ':'))
                        id += 7;
                    snprintf(ea, sizeof ea, "%s:%u", is, sp);
                    snprintf(eb, sizeof eb, "%s:%u", id, dp);
                } else {
                    snprintf(ms, sizeof ms, "%s%s", strchr(is, ':') ? "" : "::ffff:", is);
                    snprintf(md, sizeof md, "%s%s", strchr(id, ':') ? "" : "::ffff:", id);
                    snprintf(ea, sizeof ea, "[%s]:%u", ms, sp);
                    snprintf(eb, sizeof eb, "[%s]:%u", md, dp);
                }
                if (strcmp(addr_str(&r.src, a, sizeof a), ea) != 0 ||
                    strcmp(addr_str(&r.dst, b, sizeof b), eb) != 0)
                    fail_msg("v%d %s -> %s: read %s %s, want %s %s", v, ips[i], ips[j], a, b, ea,
                             eb);
            }
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(sst_pp_error_name(SST_PP_OK), "ok");
    assert_string_equal(sst_pp_error_name(SST_PP_ERR_V2_CRC32C), "v2_crc32c");
    assert_string_equal(sst_pp_error_name((sst_pp_error_t)SST_PP_ERR_COUNT), "unknown");
    assert_string_equal(sst_pp_error_name((sst_pp_error_t)-1), "unknown");
    /* labels are distinct metric-safe words */
    for (int i = 1; i < SST_PP_ERR_COUNT; i++) {
        const char *n = sst_pp_error_name((sst_pp_error_t)i);
        assert_true(strlen(n) > 0 && strcmp(n, "unknown") != 0);
        for (const char *p = n; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        for (int j = 1; j < i; j++)
            assert_string_not_equal(n, sst_pp_error_name((sst_pp_error_t)j));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_valid),       cmocka_unit_test(test_v1_hostile),
        cmocka_unit_test(test_v2_valid),       cmocka_unit_test(test_v2_hostile),
        cmocka_unit_test(test_v2_unix),        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_tlv_rules),   cmocka_unit_test(test_v2_max_len),
        cmocka_unit_test(test_need),           cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_writer),         cmocka_unit_test(test_writer_local),
        cmocka_unit_test(test_writer_longest), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
