/* libFuzzer target: the PROXY header accumulator of the transport (transport_proxy.c,
 * sst__pp_acc_feed), the stateful piece around the stateless parser. Each input (after a
 * selector byte) is fed in pieces whose sizes the selector draws, each piece an exact-size
 * copy (a read past it is an ASan error), and the outcome must be the parser's on the whole
 * input: the same status and reason, the request starting at the same byte, the same
 * addresses and AUTHORITY; the accumulator never holds more than the header. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/transport.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PPA_MAX_INPUT 6000 /* past a 4 KiB v2 header and some request bytes */

typedef struct ppa_out_s {
    sst_pp_status_t st;
    sst_pp_error_t error;
    size_t at; /* DONE: the request's first byte */
    sst_pp_command_t command;
    int family;
    struct sockaddr_storage src, dst;
    char authority[256];
    size_t authority_len;
} ppa_out_t;

static void ppa_keep(ppa_out_t *o, sst_pp_status_t st, const sst_pp_result_t *r)
{
    o->st = st;
    o->error = r->error;
    o->command = r->command;
    o->family = r->family;
    o->src = r->src;
    o->dst = r->dst;
    FUZZ_CHECK(r->authority.len < sizeof(o->authority));
    o->authority_len = r->authority.len;
    if (r->authority.len > 0)
        memcpy(o->authority, r->authority.base, r->authority.len);
}

/* The next piece size: byte by byte for selector 0, else 1..64 from a xorshift. */
static size_t ppa_piece(uint32_t *rng, uint8_t sel)
{
    if (sel == 0)
        return 1;
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    return 1 + (*rng % (sel < 0x80 ? 8u : 64u));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1 < PPA_MAX_INPUT ? size - 1 : PPA_MAX_INPUT;
    ppa_out_t whole, got;
    memset(&whole, 0, sizeof(whole));
    memset(&got, 0, sizeof(got));

    /* the reference: the parser on everything at once */
    char *all = malloc(len ? len : 1);
    FUZZ_CHECK(all != NULL);
    memcpy(all, in, len);
    sst_pp_result_t r;
    sst_pp_status_t st = sst_pp_parse(all, len, SST_PP_V2_MAX_DEFAULT, &r);
    ppa_keep(&whole, st, &r);
    if (st == SST_PP_DONE)
        whole.at = r.len;
    free(all);

    sst_pp_acc_t acc = {0};
    uint32_t rng = 0x9e3779b9u ^ sel;
    size_t off = 0;
    got.st = SST_PP_NEED_MORE;
    while (off < len && got.st == SST_PP_NEED_MORE) {
        size_t n = ppa_piece(&rng, sel);
        if (n > len - off)
            n = len - off;
        char *piece = malloc(n);
        FUZZ_CHECK(piece != NULL);
        memcpy(piece, in + off, n);
        size_t used = SIZE_MAX;
        int rc = sst__pp_acc_feed(&acc, piece, n, SST_PP_V2_MAX_DEFAULT, &st, &r, &used);
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(used <= n);
        if (st != SST_PP_NEED_MORE) {
            ppa_keep(&got, st, &r);
            if (st == SST_PP_DONE) {
                FUZZ_CHECK(used >= 1);
                got.at = off + used;
                FUZZ_CHECK(acc.len <= got.at); /* header bytes only */
            }
        } else {
            FUZZ_CHECK(used == n && acc.len == off + n); /* every byte so far is the header's */
        }
        FUZZ_CHECK(acc.len <= SST_PP_V2_MAX_DEFAULT);
        free(piece); /* *r's slices may point into it: read above, before this */
        off += n;
    }
    sst__pp_acc_free(&acc);
    FUZZ_CHECK(acc.buf == NULL && acc.len == 0);

    FUZZ_CHECK(got.st == whole.st);
    FUZZ_CHECK(got.error == whole.error);
    if (got.st == SST_PP_DONE) {
        FUZZ_CHECK(got.at == whole.at);
        FUZZ_CHECK(got.command == whole.command && got.family == whole.family);
        FUZZ_CHECK(memcmp(&got.src, &whole.src, sizeof(got.src)) == 0);
        FUZZ_CHECK(memcmp(&got.dst, &whole.dst, sizeof(got.dst)) == 0);
        FUZZ_CHECK(got.authority_len == whole.authority_len);
        FUZZ_CHECK(memcmp(got.authority, whole.authority, got.authority_len) == 0);
    }
    return 0;
}
