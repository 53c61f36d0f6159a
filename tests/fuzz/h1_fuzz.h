/* Shared driver of the http1 fuzz targets: parses one input through sst_h1 the way conn.c and
 * upstream.c do (check each head, resume, next message), and summarises what came out so two
 * runs over the same bytes, fed in different pieces, can be compared. */
#ifndef SST_TESTS_H1_FUZZ_H
#define SST_TESTS_H1_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "http/http1.h"

/* Inputs are capped by -max_len (8192 in CMakeLists.txt): every body byte fits. */
#define H1F_BODY_MAX 65536

typedef struct h1f_outcome_s {
    int messages;        /* complete messages */
    int heads;           /* heads accepted by the check */
    int status;          /* the error that ended parsing, 0 when none */
    uint64_t body_limit; /* lim.body: never delivered past it, 0 = none */
    uint64_t msg_body;   /* body bytes of the current message */
    size_t body_len;     /* body bytes delivered, all messages */
    char body[H1F_BODY_MAX];
    uint64_t heads_hash; /* FNV-1a of what each accepted head's check reported */
} h1f_outcome_t;

static inline uint64_t h1f_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static inline uint64_t h1f_fnv_str(uint64_t h, sst_str_t s)
{
    h = h1f_fnv(h, &s.len, sizeof(s.len));
    return s.len > 0 ? h1f_fnv(h, s.base, s.len) : h;
}

static inline int h1f_on_body(void *opaque, const char *at, size_t len)
{
    h1f_outcome_t *o = opaque;
    FUZZ_CHECK(len > 0);
    o->msg_body += len;
    /* bytes past limits.body never reach the sink (conn.c forwards what it gets) */
    FUZZ_CHECK(o->body_limit == 0 || o->msg_body <= o->body_limit);
    FUZZ_CHECK(o->body_len + len <= H1F_BODY_MAX);
    memcpy(o->body + o->body_len, at, len);
    o->body_len += len;
    return 0;
}

static inline bool h1f_is_status(int s)
{
    switch (s) {
    case 400:
    case 405:
    case 413:
    case 414:
    case 417:
    case 431:
    case 501:
    case 502:
    case 503:
    case 505:
        return true;
    default:
        return false;
    }
}

/* What an accepted request head may never contain: the invariants conn.c builds on. */
static inline uint64_t h1f_check_request(const sst_h1_request_t *q, uint64_t hash)
{
    FUZZ_CHECK(q->target.len > 0);
    for (size_t i = 0; i < q->target.len; i++) {
        unsigned char c = (unsigned char)q->target.base[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '#');
    }
    for (size_t i = 0; i < q->host.len; i++) {
        unsigned char c = (unsigned char)q->host.base[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '/' && c != '@' && c != ',');
    }
    FUZZ_CHECK(!(q->chunked && q->has_length));
    FUZZ_CHECK(q->minor <= 1);
    FUZZ_CHECK(!(q->chunked && q->minor == 0));
    FUZZ_CHECK(q->has_body == (q->chunked || (q->has_length && q->content_length > 0)));
    FUZZ_CHECK(q->method_name.len > 0);
    hash = h1f_fnv_str(hash, q->method_name);
    hash = h1f_fnv_str(hash, q->target);
    hash = h1f_fnv_str(hash, q->host);
    uint64_t flags = (uint64_t)q->keep_alive | (uint64_t)q->chunked << 1 |
                     (uint64_t)q->has_length << 2 | (uint64_t)q->expect_continue << 3 |
                     (uint64_t)q->absolute_form << 4;
    hash = h1f_fnv(hash, &flags, sizeof(flags));
    return h1f_fnv(hash, &q->content_length, sizeof(q->content_length));
}

static inline uint64_t h1f_check_response(const sst_h1_response_t *r, uint64_t hash)
{
    FUZZ_CHECK(r->status >= 200 && r->status <= 599);
    FUZZ_CHECK(!(r->chunked && r->has_length));
    FUZZ_CHECK(!(r->until_close && r->keep_alive));
    FUZZ_CHECK(r->minor <= 1);
    uint64_t flags = (uint64_t)r->keep_alive | (uint64_t)r->chunked << 1 |
                     (uint64_t)r->has_length << 2 | (uint64_t)r->no_body << 3 |
                     (uint64_t)r->until_close << 4;
    hash = h1f_fnv(hash, &r->status, sizeof(r->status));
    hash = h1f_fnv(hash, &flags, sizeof(flags));
    return h1f_fnv(hash, &r->content_length, sizeof(r->content_length));
}

/* Parses `data` fed `step` bytes at a time (0: whole), with `eof` after the last byte. */
static inline void h1f_run(const uint8_t *data, size_t len, size_t step, bool response,
                           bool head_request, const sst_h1_limits_t *lim, bool eof,
                           h1f_outcome_t *o)
{
    sst_h1_t h;
    sst_head_t *head = sst_head_new();
    const char *in = (const char *)data;
    size_t off = 0;
    bool kick = false;
    size_t guard = 4 * len + 64;

    memset(o, 0, offsetof(h1f_outcome_t, body));
    o->heads_hash = 1469598103934665603ull;
    o->body_limit = response ? 0 : lim->body;
    if (head == NULL)
        abort();
    sst_h1_init(&h, response, lim, h1f_on_body, o);
    h.head = head;
    h.head_request = head_request;
    while ((off < len || kick) && guard-- > 0) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        size_t used = 0;
        kick = false;
        sst_h1_rc_t rc = sst_h1_feed(&h, in + off, n, &used);
        switch (rc) {
        case SST_H1_MORE:
            FUZZ_CHECK(used == n); /* MORE means every byte was taken */
            off += used;
            break;
        case SST_H1_HEAD: {
            FUZZ_CHECK(used <= n);
            off += used;
            const char *reason = NULL;
            int st;
            if (response) {
                sst_h1_response_t r;
                st = sst_h1_check_response(&h, &r, &reason);
                if (st == 0)
                    o->heads_hash = h1f_check_response(&r, o->heads_hash);
            } else {
                sst_h1_request_t q;
                st = sst_h1_check_request(&h, &q, &reason);
                if (st == 0)
                    o->heads_hash = h1f_check_request(&q, o->heads_hash);
            }
            if (st != 0) {
                FUZZ_CHECK(h1f_is_status(st) && reason != NULL);
                o->status = st;
                goto done;
            }
            o->heads++;
            sst_h1_resume(&h);
            kick = true;
            break;
        }
        case SST_H1_DONE:
            FUZZ_CHECK(used <= n);
            off += used;
            o->messages++;
            o->msg_body = 0;
            FUZZ_CHECK(o->messages <= o->heads);
            sst_head_clear(head, 1 << 20);
            sst_h1_next(&h);
            h.head = head;
            h.head_request = head_request;
            kick = true;
            break;
        case SST_H1_ERROR:
            FUZZ_CHECK(h1f_is_status(h.err_status) && h.err_reason != NULL);
            /* errors are sticky */
            FUZZ_CHECK(sst_h1_feed(&h, in, len, &used) == SST_H1_ERROR);
            o->status = h.err_status;
            goto done;
        }
    }
    FUZZ_CHECK(guard != (size_t)-1); /* the loop always makes progress */
    if (eof) {
        sst_h1_rc_t rc = sst_h1_eof(&h);
        if (rc == SST_H1_DONE)
            o->messages++;
        else if (rc == SST_H1_ERROR)
            o->status = h.err_status;
    }
done:
    sst_head_free(head);
}

/* Two runs over the same bytes must agree on everything but which error status (the prescan
 * sees a whole head before llhttp does when it is fed at once, so two different flaws may be
 * found in a different order) and, when parsing ended in an error, how much of the body went
 * out before it (a span that crosses limits.body is refused whole, while smaller pieces pass
 * up to the limit): then one body is a prefix of the other. */
static inline void h1f_compare(const h1f_outcome_t *a, const h1f_outcome_t *b)
{
    FUZZ_CHECK(a->messages == b->messages);
    FUZZ_CHECK(a->heads == b->heads);
    FUZZ_CHECK((a->status != 0) == (b->status != 0));
    FUZZ_CHECK(a->heads_hash == b->heads_hash);
    if (a->status == 0) {
        FUZZ_CHECK(a->body_len == b->body_len);
        FUZZ_CHECK(memcmp(a->body, b->body, a->body_len) == 0);
    } else {
        size_t n = a->body_len < b->body_len ? a->body_len : b->body_len;
        FUZZ_CHECK(memcmp(a->body, b->body, n) == 0);
    }
}

/* The first input byte picks the limits and the piece size; the rest is the message. */
static inline void h1f_limits(uint8_t sel, sst_h1_limits_t *lim)
{
    if (sel & 0x80) {
        *lim = (sst_h1_limits_t){
            .request_line = 8192, .field = 8192, .head = 32768, .headers = 100, .body = 0};
    } else {
        *lim = (sst_h1_limits_t){
            .request_line = 64, .field = 48, .head = 256, .headers = 6, .body = 64};
    }
}

/* The check both targets run: data parsed whole, in pieces of `step` bytes and (for inputs up
 * to 1 KiB) byte by byte must come out the same. */
static inline void h1f_differential(const uint8_t *data, size_t len, size_t step, bool response,
                                    bool head_request, const sst_h1_limits_t *lim)
{
    static h1f_outcome_t whole, pieces, bytes; /* large: not on the stack */

    h1f_run(data, len, 0, response, head_request, lim, true, &whole);
    h1f_run(data, len, step, response, head_request, lim, true, &pieces);
    h1f_compare(&whole, &pieces);
    if (len <= 1024) {
        h1f_run(data, len, 1, response, head_request, lim, true, &bytes);
        h1f_compare(&whole, &bytes);
    }
}

#endif
