/* libFuzzer target: proxy_proto.c. Each input is parsed whole, in pieces and byte by byte (each
 * prefix an exact-size copy, so a read past it is an ASan error); the runs must agree and every
 * accepted header must satisfy what a listener relies on. What the parser accepts is written
 * back and read again, and addresses taken from the input go through writer -> parser trips. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz_check.h"
#include "sidestep/error.h"

#include "http/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Selector byte: bits 0-5 the piece size - 1, bits 6-7 the v2 bound (0 counts as the floor). */
static const size_t ppf_max[4] = {SST_PP_V2_MAX_DEFAULT, 0, 300, 1024};

/* Inputs are cut here: a byte-by-byte run is quadratic, and a longer v2 header is decided by its
 * length field at byte 16 like a shorter one. */
#define PPF_MAX_INPUT 1200

/* One outcome with its slices as offsets into the parsed buffer, comparable across copies. */
typedef struct ppf_sum_s {
    sst_pp_status_t st;
    sst_pp_error_t error;
    size_t len;
    uint8_t version;
    sst_pp_command_t command;
    int family;
    struct sockaddr_storage src, dst;
    size_t off[10], n[10];
    bool crc32c, ssl;
    uint8_t ssl_client;
    uint32_t ssl_verify;
} ppf_sum_t;

static void ppf_slice(const uint8_t *buf, size_t len, sst_str_t s, size_t *off, size_t *n)
{
    if (s.base == NULL) {
        FUZZ_CHECK(s.len == 0);
        *off = *n = 0;
        return;
    }
    /* a slice lies inside the header, never in the bytes after it */
    FUZZ_CHECK((const uint8_t *)s.base >= buf && (const uint8_t *)s.base + s.len <= buf + len);
    *off = (size_t)((const uint8_t *)s.base - buf) + 1;
    *n = s.len;
}

/* Parses an exact-size copy of data[0..len) and checks the outcome's invariants. */
static void ppf_parse(const uint8_t *data, size_t len, size_t max, ppf_sum_t *sum)
{
    uint8_t *buf = malloc(len ? len : 1);
    sst_pp_result_t r;

    FUZZ_CHECK(buf != NULL);
    if (len)
        memcpy(buf, data, len);
    memset(sum, 0, sizeof *sum);
    sum->st = sst_pp_parse(buf, len, max, &r);
    sum->error = r.error;
    sum->len = r.len;
    sum->version = r.version;
    switch (sum->st) {
    case SST_PP_NEED_MORE:
        FUZZ_CHECK(r.need > len && r.error == SST_PP_OK && r.len == 0);
        FUZZ_CHECK(r.src.ss_family == AF_UNSPEC && r.authority.base == NULL);
        break;
    case SST_PP_ERROR:
        FUZZ_CHECK(r.error > SST_PP_OK && (int)r.error < SST_PP_ERR_COUNT);
        FUZZ_CHECK(strcmp(sst_pp_error_name(r.error), "unknown") != 0);
        FUZZ_CHECK(r.len == 0 && r.src.ss_family == AF_UNSPEC && r.authority.base == NULL);
        break;
    case SST_PP_DONE:
        FUZZ_CHECK(r.error == SST_PP_OK && r.len <= len);
        if (r.version == 1) {
            FUZZ_CHECK(r.len >= 15 && r.len <= SST_PP_V1_MAX);
            FUZZ_CHECK(buf[r.len - 2] == '\r' && buf[r.len - 1] == '\n');
            /* no other line end inside: one reading of where the header stops */
            FUZZ_CHECK(memchr(buf, '\n', r.len - 1) == NULL);
            FUZZ_CHECK(memchr(buf, '\r', r.len - 2) == NULL);
        } else {
            size_t cap = max < SST_PP_V2_MAX_FLOOR ? SST_PP_V2_MAX_FLOOR : max;
            FUZZ_CHECK(r.version == 2 && r.len >= SST_PP_V2_HEAD && r.len <= cap);
            FUZZ_CHECK(r.len == SST_PP_V2_HEAD + (size_t)(buf[14] << 8 | buf[15]));
        }
        if (r.command == SST_PP_PROXY) {
            FUZZ_CHECK(r.family == AF_INET || r.family == AF_INET6);
            FUZZ_CHECK(r.src.ss_family == r.family && r.dst.ss_family == r.family);
        } else {
            FUZZ_CHECK(r.src.ss_family == AF_UNSPEC && r.dst.ss_family == AF_UNSPEC);
            FUZZ_CHECK(r.family == AF_UNSPEC || (r.family == AF_UNIX && r.version == 2));
        }
        for (size_t i = 0; i < r.authority.len; i++) {
            unsigned char c = (unsigned char)r.authority.base[i];
            FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        }
        FUZZ_CHECK(r.authority.len <= 255 && r.unique_id.len <= 128);
        break;
    }
    sum->command = r.command;
    sum->family = r.family;
    sum->src = r.src;
    sum->dst = r.dst;
    sst_str_t slices[10] = {r.alpn,   r.authority,  r.unique_id,   r.netns,       r.ssl.version,
                            r.ssl.cn, r.ssl.cipher, r.ssl.sig_alg, r.ssl.key_alg, SST_STR_NULL};
    for (size_t i = 0; i < 10; i++)
        ppf_slice(buf, sum->st == SST_PP_DONE ? r.len : 0, slices[i], &sum->off[i], &sum->n[i]);
    sum->crc32c = r.crc32c;
    sum->ssl = r.ssl.present;
    sum->ssl_client = r.ssl.client;
    sum->ssl_verify = r.ssl.verify;
    free(buf);
}

static bool ppf_same(const ppf_sum_t *a, const ppf_sum_t *b)
{
    return a->st == b->st && a->error == b->error && a->len == b->len && a->version == b->version &&
           a->command == b->command && a->family == b->family &&
           memcmp(&a->src, &b->src, sizeof a->src) == 0 &&
           memcmp(&a->dst, &b->dst, sizeof a->dst) == 0 &&
           memcmp(a->off, b->off, sizeof a->off) == 0 && memcmp(a->n, b->n, sizeof a->n) == 0 &&
           a->crc32c == b->crc32c && a->ssl == b->ssl && a->ssl_client == b->ssl_client &&
           a->ssl_verify == b->ssl_verify;
}

/* Feeds growing prefixes, `step` more bytes each time, as reads would arrive: all but the last
 * call ask for more, and the first decided outcome is the whole input's. */
static void ppf_pieces(const uint8_t *data, size_t len, size_t max, size_t step,
                       const ppf_sum_t *whole)
{
    ppf_sum_t s;

    for (size_t n = 0;; n = n + step < len ? n + step : len) {
        ppf_parse(data, n, max, &s);
        if (s.st != SST_PP_NEED_MORE) {
            FUZZ_CHECK(ppf_same(&s, whole));
            return;
        }
        if (n == len) {
            FUZZ_CHECK(whole->st == SST_PP_NEED_MORE);
            return;
        }
    }
}

/* An IPv4 sockaddr for a v4-mapped IPv6 one, so two ways of writing the same peer compare. */
static void ppf_canon(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)in;

    memset(out, 0, sizeof *out);
    if (in->ss_family == AF_INET6 && memcmp(s6->sin6_addr.s6_addr, mapped, 12) == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = s6->sin6_port;
        memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
    } else if (in->ss_family == AF_INET) {
        const struct sockaddr_in *i4 = (const struct sockaddr_in *)in;
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = i4->sin_port;
        s4->sin_addr = i4->sin_addr;
    } else {
        struct sockaddr_in6 *o6 = (struct sockaddr_in6 *)out;
        o6->sin6_family = AF_INET6;
        o6->sin6_port = s6->sin6_port;
        o6->sin6_addr = s6->sin6_addr;
    }
}

/* The same endpoint, written as IPv6 when the other end of the pair is IPv6. */
static void ppf_as_v6(struct sockaddr_storage *ss)
{
    if (ss->ss_family != AF_INET)
        return;
    struct sockaddr_in s4 = *(struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = s4.sin_port;
    s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(s6->sin6_addr.s6_addr + 12, &s4.sin_addr, 4);
}

/* Writes src -> dst in both versions and reads them back: the parser sees the same pair, IPv4
 * when both ends are IPv4 (mapped or not), else both IPv6. */
static void ppf_trip(const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
    struct sockaddr_storage cs, cd;
    uint8_t out[SST_PP_WRITE_MAX];
    sst_pp_result_t r;

    ppf_canon(src, &cs);
    ppf_canon(dst, &cd);
    if (cs.ss_family != cd.ss_family) {
        ppf_as_v6(&cs);
        ppf_as_v6(&cd);
    }
    for (int v = 1; v <= 2; v++) {
        int n = sst_pp_write(v, (const struct sockaddr *)src, (const struct sockaddr *)dst, out,
                             sizeof out);
        FUZZ_CHECK(n > 0 && (size_t)n <= sizeof out && (v == 2 || n <= SST_PP_V1_MAX));
        FUZZ_CHECK(sst_pp_write(v, (const struct sockaddr *)src, (const struct sockaddr *)dst, out,
                                (size_t)n - 1) == SST_E2BIG);
        n = sst_pp_write(v, (const struct sockaddr *)src, (const struct sockaddr *)dst, out,
                         (size_t)n);
        FUZZ_CHECK(sst_pp_parse(out, (size_t)n, 0, &r) == SST_PP_DONE);
        FUZZ_CHECK(r.len == (size_t)n && r.version == v && r.command == SST_PP_PROXY);
        FUZZ_CHECK(r.family == cs.ss_family);
        FUZZ_CHECK(memcmp(&r.src, &cs, sizeof cs) == 0 && memcmp(&r.dst, &cd, sizeof cd) == 0);
    }
}

/* Two endpoints from 2 x 19 input bytes: a family byte (v4, v6, or v4-mapped v6), 16 address
 * bytes, 2 port bytes. */
static void ppf_endpoint(const uint8_t *b, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if ((b[0] & 3) == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, b + 1, 4);
        memcpy(&s4->sin_port, b + 17, 2);
        return;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, b + 1, 16);
    if ((b[0] & 3) == 1) {
        memset(s6->sin6_addr.s6_addr, 0, 10);
        s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
    }
    memcpy(&s6->sin6_port, b + 17, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ppf_sum_t whole, exact;

    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] & 0x3f) + 1;
    size_t max = ppf_max[data[0] >> 6];
    const uint8_t *in = data + 1;
    size_t len = size - 1 < PPF_MAX_INPUT ? size - 1 : PPF_MAX_INPUT;

    ppf_parse(in, len, max, &whole);
    ppf_pieces(in, len, max, step, &whole);
    ppf_pieces(in, len, max, 1, &whole);
    if (whole.st == SST_PP_DONE) {
        /* the bytes after a header (the first request) play no part in it */
        ppf_parse(in, whole.len, max, &exact);
        FUZZ_CHECK(ppf_same(&exact, &whole));
        /* what was accepted is written again and read back the same (after normalisation) */
        if (whole.command == SST_PP_PROXY)
            ppf_trip(&whole.src, &whole.dst);
    }

    /* addresses from the raw input through the writer */
    if (len >= 38) {
        struct sockaddr_storage s, d;
        ppf_endpoint(in, &s);
        ppf_endpoint(in + 19, &d);
        ppf_trip(&s, &d);
    }
    return 0;
}
