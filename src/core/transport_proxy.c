/* The PROXY protocol header on a transport (transport.h): read and stripped on a client
 * connection before any kind-specific handling of its first bytes, written on a backend
 * connection right after its connect. Parsing is http/proxy_proto.c's; this file keeps the
 * bytes of a header that arrives in pieces and what a header declared. Knows no HTTP. */
#include "core/transport.h"

#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "base/list.h"
#include "sidestep/error.h"

/* An IP socket address in the room it needs (sockaddr_storage is 128 bytes). */
typedef union tp_sa_u {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} tp_sa_t;

/* Allocated only for the connections that need it (transport.h), so an idle connection
 * without a PROXY header pays one NULL pointer. */
struct sst_tp_pp_s {
    sst_pp_acc_t acc; /* a header arriving in pieces, until it is whole */
    bool declared;    /* src and dst come from a PROXY header */
    bool have_addrs;  /* src and dst are set: declared, or the socket's (sst__tp_pp_addrs) */
    uint8_t authority_len;
    tp_sa_t src, dst;
    char *authority; /* PP2_TYPE_AUTHORITY, copied out of the read chunk; NULL when none */
};

/* ---- the accumulator (pure: bytes in, a parse outcome out) ----------------------------- */

/* The most bytes a header starting with p[0..n) can have, so that the bytes of the request
 * after it are not copied: the longest v1 line, or a v2 header's announced length once its
 * fixed part is in (more than max_len is refused by the parser at that point anyway). */
static size_t pp_acc_limit(const char *p, size_t n, size_t max_len)
{
    if (n == 0)
        return SST_PP_V2_HEAD; /* enough to tell v1 from v2 and, for v2, to learn its length */
    if (p[0] == 'P')
        return SST_PP_V1_MAX;
    if (n < SST_PP_V2_HEAD)
        return SST_PP_V2_HEAD;
    size_t total = SST_PP_V2_HEAD + ((size_t)(uint8_t)p[14] << 8 | (uint8_t)p[15]);
    if (max_len < SST_PP_V2_MAX_FLOOR)
        max_len = SST_PP_V2_MAX_FLOOR;
    return total < max_len ? total : max_len;
}

static int pp_acc_append(sst_pp_acc_t *acc, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (acc->len + n > acc->cap) {
        size_t cap = acc->cap != 0 ? acc->cap : 128; /* any v1 line, a v2 header up to IPv6 */
        while (cap < acc->len + n)
            cap *= 2; /* bounded: acc never holds more than one header (pp_acc_limit) */
        char *nb = realloc(acc->buf, cap);
        if (nb == NULL)
            return SST_ENOMEM;
        acc->buf = nb;
        acc->cap = cap;
    }
    memcpy(acc->buf + acc->len, p, n);
    acc->len += n;
    return 0;
}

void sst__pp_acc_free(sst_pp_acc_t *acc)
{
    free(acc->buf);
    acc->buf = NULL;
    acc->len = acc->cap = 0;
}

int sst__pp_acc_feed(sst_pp_acc_t *acc, const char *data, size_t len, size_t max_len,
                     sst_pp_status_t *st, sst_pp_result_t *res, size_t *used)
{
    *used = len;
    if (acc->len == 0) {
        /* the common case, the whole header in one read: parsed where it lies, no copy */
        *st = sst_pp_parse(data, len, max_len, res);
        if (*st == SST_PP_DONE)
            *used = res->len;
        /* NEED_MORE: no header fits in these bytes, so every one of them is the header's */
        return *st == SST_PP_NEED_MORE ? pp_acc_append(acc, data, len) : 0;
    }
    size_t before = acc->len, off = 0, take;
    do {
        size_t limit = pp_acc_limit(acc->buf, acc->len, max_len);
        take = limit > acc->len ? limit - acc->len : 0;
        if (take > len - off)
            take = len - off;
        const char *lf = acc->buf[0] == 'P' ? memchr(data + off, '\n', take) : NULL;
        if (lf != NULL)
            take = (size_t)(lf - (data + off)) + 1; /* a v1 line ends at its first LF */
        if (pp_acc_append(acc, data + off, take) != 0)
            return SST_ENOMEM;
        off += take;
        /* the parser keeps no state: it reads the header from its first byte each time */
        *st = sst_pp_parse(acc->buf, acc->len, max_len, res);
    } while (*st == SST_PP_NEED_MORE && off < len && take > 0);
    if (*st == SST_PP_DONE) {
        *used = res->len - before; /* > 0: `before` bytes were not a whole header */
    } else if (*st == SST_PP_NEED_MORE && off < len) {
        /* every byte the header could have is in and the parser still asks for more: its
         * bounds say this cannot happen; refused rather than drop the bytes left over */
        *st = SST_PP_ERROR;
        res->error = acc->buf[0] == 'P' ? SST_PP_ERR_V1_TOO_LONG : SST_PP_ERR_V2_TOO_LONG;
    }
    return 0;
}

/* ---- a client connection's header -------------------------------------------------------- */

static sst_tp_pp_t *pp_get(sst_transport_t *t)
{
    if (t->pp == NULL)
        t->pp = calloc(1, sizeof(*t->pp));
    return t->pp;
}

/* Frees the state once it holds nothing worth keeping. */
static void pp_trim(sst_transport_t *t)
{
    sst_tp_pp_t *pp = t->pp;
    if (pp != NULL && pp->acc.buf == NULL && !pp->have_addrs && pp->authority == NULL) {
        free(pp);
        t->pp = NULL;
    }
}

static bool pp_copy_sa(tp_sa_t *to, const struct sockaddr_storage *from)
{
    if (from->ss_family == AF_INET)
        memcpy(&to->in, from, sizeof(to->in));
    else if (from->ss_family == AF_INET6)
        memcpy(&to->in6, from, sizeof(to->in6));
    else
        return false;
    return true;
}

/* What a whole header declared and the owner may ask for later. */
static int pp_keep(sst_transport_t *t, const sst_pp_result_t *res)
{
    bool addrs = res->command == SST_PP_PROXY;
    if (!addrs && res->authority.len == 0)
        return 0; /* LOCAL, UNKNOWN: the peer stands, nothing to keep */
    sst_tp_pp_t *pp = pp_get(t);
    if (pp == NULL)
        return SST_ENOMEM;
    if (addrs && pp_copy_sa(&pp->src, &res->src) && pp_copy_sa(&pp->dst, &res->dst))
        pp->declared = pp->have_addrs = true;
    if (res->authority.len > 0) {
        /* the slice points into the read chunk or the accumulated bytes, both about to go */
        pp->authority = malloc(res->authority.len);
        if (pp->authority == NULL)
            return SST_ENOMEM;
        memcpy(pp->authority, res->authority.base, res->authority.len);
        pp->authority_len = (uint8_t)res->authority.len; /* 1..255: checked by the parser */
    }
    return 0;
}

void sst__tp_pp_expect(sst_transport_t *t)
{
    t->pp_phase = SST_TP_PP_WAIT;
}

size_t sst__tp_pp_read(sst_transport_t *t, sst_chunk_t *ch, size_t len)
{
    sst_bufs_t *bufs = t->tcp.loop->data;
    sst_pp_acc_t first = {0};
    sst_pp_acc_t *acc = t->pp != NULL ? &t->pp->acc : &first;
    sst_pp_status_t st;
    sst_pp_result_t res;
    size_t used;

    if (sst__pp_acc_feed(acc, ch->data, len, SST_PP_V2_MAX_DEFAULT, &st, &res, &used) != 0)
        goto nomem;
    if (st == SST_PP_NEED_MORE) {
        if (acc == &first) {
            /* the rare header in pieces: its bytes so far move into the state */
            if (pp_get(t) == NULL)
                goto nomem;
            t->pp->acc = first;
        }
        sst__chunk_unref(bufs, ch);
        return 0;
    }
    if (st == SST_PP_DONE && pp_keep(t, &res) != 0)
        goto nomem;
    t->pp_phase = SST_TP_PP_DONE;
    if (st == SST_PP_ERROR)
        sst__tp_read_stop(t); /* nothing after a refused header is read */
    /* before the bytes move: res's slices may point into the chunk or the accumulator */
    t->cb->on_proxy(t, st, &res);
    if (t->pp != NULL)
        sst__pp_acc_free(&t->pp->acc);
    pp_trim(t);
    if (st == SST_PP_ERROR || uv_is_closing((uv_handle_t *)&t->tcp) || used == len) {
        sst__chunk_unref(bufs, ch);
        return 0;
    }
    /* the first request shares the segment: its bytes go on from the chunk's start, where
     * every owner and kind expects them */
    memmove(ch->data, ch->data + used, len - used);
    return len - used;

nomem:
    sst__pp_acc_free(&first);
    if (t->pp != NULL)
        sst__pp_acc_free(&t->pp->acc);
    pp_trim(t);
    sst__chunk_unref(bufs, ch);
    sst__tp_read_stop(t);
    t->cb->on_read_end(t, UV_ENOBUFS); /* still waiting: the owner closes without an answer */
    return 0;
}

sst_str_t sst__tp_pp_authority(const sst_transport_t *t)
{
    if (t->pp == NULL || t->pp->authority == NULL)
        return SST_STR_NULL;
    return sst_str(t->pp->authority, t->pp->authority_len);
}

static void pp_to_storage(const tp_sa_t *sa, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out, sa, sa->sa.sa_family == AF_INET ? sizeof(sa->in) : sizeof(sa->in6));
}

bool sst__tp_pp_peer(const sst_transport_t *t, struct sockaddr_storage *out)
{
    if (t->pp == NULL || !t->pp->declared)
        return false;
    pp_to_storage(&t->pp->src, out);
    return true;
}

int sst__tp_local(const sst_transport_t *t, struct sockaddr_storage *out)
{
    if (t->pp != NULL && t->pp->declared) {
        pp_to_storage(&t->pp->dst, out);
        return 0;
    }
    int len = sizeof(*out);
    return uv_tcp_getsockname(&t->tcp, (struct sockaddr *)out, &len);
}

int sst__tp_pp_addrs(sst_transport_t *t, const struct sockaddr **src, const struct sockaddr **dst)
{
    struct sockaddr_storage s, d;
    *src = *dst = NULL;
    if (t->pp == NULL || !t->pp->have_addrs) {
        /* two system calls once per connection instead of once per request */
        int rc = sst__tp_peer(t, &s);
        if (rc == 0)
            rc = sst__tp_local(t, &d);
        if (rc != 0)
            return rc;
        if (pp_get(t) == NULL)
            return SST_ENOMEM;
        if (!pp_copy_sa(&t->pp->src, &s) || !pp_copy_sa(&t->pp->dst, &d)) {
            pp_trim(t);
            return SST_ENOTSUP; /* not an IP connection: nothing a header can carry */
        }
        t->pp->have_addrs = true;
    }
    *src = &t->pp->src.sa;
    *dst = &t->pp->dst.sa;
    return 0;
}

void sst__tp_pp_free(sst_transport_t *t)
{
    if (t->pp == NULL)
        return;
    sst__pp_acc_free(&t->pp->acc);
    free(t->pp->authority);
    free(t->pp);
    t->pp = NULL;
}

/* ---- a backend connection's header ------------------------------------------------------- */

/* The rest of a header the socket did not take at once: a write of the transport's own,
 * which the owner never hears of (its on_write counts only its own writes). */
typedef struct pp_write_s {
    uv_write_t req;
    char bytes[SST_PP_WRITE_MAX];
} pp_write_t;

static void pp_on_written(uv_write_t *req, int status)
{
    /* a failure shows on the owner's own writes and reads, which follow on the same socket */
    free(sst_container_of(req, pp_write_t, req));
}

int sst__tp_pp_send(sst_transport_t *t, const sst_tp_pp_out_t *pp)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)pp->bytes, pp->len);
    /* nothing is queued on a connection that was just made */
    ssize_t n = sst__sock_send(t, &b, 1, pp->len);
    if (n < 0)
        return (int)n;
    if ((size_t)n == pp->len)
        return 0;
    pp_write_t *w = malloc(sizeof(*w));
    if (w == NULL)
        return SST_ENOMEM;
    memcpy(w->bytes, pp->bytes + n, pp->len - (size_t)n);
    b = uv_buf_init(w->bytes, (unsigned)(pp->len - (size_t)n));
    int rc = uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, pp_on_written);
    if (rc != 0)
        free(w);
    return rc;
}
