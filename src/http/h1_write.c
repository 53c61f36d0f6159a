/* The HTTP/1.1 writer (h1_write.h): pure functions from parsed heads to the bytes sidestep sends
 * on. Decides nothing about routing; knows the hop-by-hop and forwarding rules of RFC 9110 §7.6
 * and the framing rules of RFC 9112 §6. */
#include "http/h1_write.h"

#include <string.h>

const sst_str_t sst_h1_tails[SST_TAILS] = {
    [SST_TAIL_PLAIN] = {"\r\n", 2},
    [SST_TAIL_CLOSE] = {"Connection: close\r\n\r\n", 21},
    [SST_TAIL_KEEPALIVE10] = {"Connection: keep-alive\r\n\r\n", 26},
};

/* An output cursor: every put checks room, and a failed put leaves `ok` false for good. */
typedef struct wbuf_s {
    char *p, *end;
    bool ok;
} wbuf_t;

static inline void w_put(wbuf_t *w, const char *s, size_t n)
{
    if (!w->ok || (size_t)(w->end - w->p) < n) {
        w->ok = false;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

#define W_LIT(w, s) w_put(w, s, sizeof(s) - 1)

static inline void w_str(wbuf_t *w, sst_str_t s)
{
    w_put(w, s.base, s.len);
}

static inline void w_field(wbuf_t *w, sst_str_t name, sst_str_t value)
{
    w_str(w, name);
    W_LIT(w, ": ");
    w_str(w, value);
    W_LIT(w, "\r\n");
}

static inline void w_u64(wbuf_t *w, uint64_t v)
{
    char num[24];
    w_put(w, num, sst_u64_to_dec(v, num));
}

/* Via names the protocol version of the hop it describes (RFC 9110 §7.6.3). */
static inline void w_via(wbuf_t *w, sst_str_t prev, unsigned minor)
{
    W_LIT(w, "Via: ");
    if (prev.len > 0) {
        w_str(w, prev);
        W_LIT(w, ", ");
    }
    if (minor == 0)
        W_LIT(w, "1.0 sidestep\r\n");
    else
        W_LIT(w, "1.1 sidestep\r\n");
}

static size_t w_done(const wbuf_t *w, const char *buf)
{
    return w->ok ? (size_t)(w->p - buf) : 0;
}

/* ---- the request ------------------------------------------------------------------------- */

static bool is_forwarding_field(sst_str_t name)
{
    return sst_str_ieq_c(name, "x-forwarded-for") || sst_str_ieq_c(name, "x-forwarded-proto") ||
           sst_str_ieq_c(name, "x-forwarded-host") || sst_str_ieq_c(name, "forwarded");
}

static sst_str_t request_host(const sst_h1w_request_t *in)
{
    return in->info->host.len > 0 ? in->info->host : in->default_host;
}

size_t sst_h1_write_request(const sst_h1w_request_t *in, char *buf, size_t size)
{
    const sst_h1_request_t *info = in->info;
    const sst_head_t *h = in->head;
    wbuf_t w = {buf, buf + size, true};
    sst_str_t xff_prev = SST_STR_NULL, via_prev = SST_STR_NULL;
    bool have_proto = false, have_host = false;

    w_str(&w, info->method_name);
    W_LIT(&w, " ");
    w_str(&w, in->target);
    W_LIT(&w, " HTTP/1.1\r\nHost: ");
    w_str(&w, request_host(in));
    W_LIT(&w, "\r\n");
    for (uint32_t i = 0; w.ok && i < h->n_hdrs; i++) {
        sst_str_t name = sst_hdr_name(h, &h->hdrs[i]);
        sst_str_t value = sst_hdr_value(h, &h->hdrs[i]);
        if (sst_h1_is_hop_by_hop(h, name) || sst_str_ieq_c(name, "host") ||
            sst_str_ieq_c(name, "expect"))
            continue; /* Expect is answered by sidestep itself */
        if (sst_str_ieq_c(name, "via")) {
            via_prev = value; /* combined with ours below */
            continue;
        }
        if (is_forwarding_field(name)) {
            /* client-sent forwarding fields are kept only from trusted proxies */
            if (!in->peer_trusted)
                continue;
            if (sst_str_ieq_c(name, "x-forwarded-for")) {
                xff_prev = value;
                continue;
            }
            have_proto = have_proto || sst_str_ieq_c(name, "x-forwarded-proto");
            have_host = have_host || sst_str_ieq_c(name, "x-forwarded-host");
        }
        w_field(&w, name, value);
    }
    W_LIT(&w, "X-Forwarded-For: ");
    if (xff_prev.len > 0) {
        w_str(&w, xff_prev);
        W_LIT(&w, ", ");
    }
    w_str(&w, in->peer);
    W_LIT(&w, "\r\n");
    if (!have_proto)
        w_field(&w, SST_STR_LIT("X-Forwarded-Proto"), in->proto);
    if (!have_host && info->host.len > 0)
        w_field(&w, SST_STR_LIT("X-Forwarded-Host"), info->host);
    w_via(&w, via_prev, info->minor);
    if (info->chunked) {
        W_LIT(&w, "Transfer-Encoding: chunked\r\n");
    } else if (info->has_length) {
        W_LIT(&w, "Content-Length: ");
        w_u64(&w, info->content_length);
        W_LIT(&w, "\r\n");
    }
    W_LIT(&w, "\r\n");
    return w_done(&w, buf);
}

size_t sst_h1_request_bound(const sst_h1w_request_t *in)
{
    const sst_h1_request_t *info = in->info;
    sst_str_t host = request_host(in);
    /* every field at most once as "name: value\r\n" (the client's X-Forwarded-For and Via go
     * into ours instead), the request line, Host, and what sidestep adds: X-Forwarded-For,
     * -Proto and -Host (the host a second time), Via, the framing and the blank line */
    return (size_t)in->head->len + 4 * (size_t)in->head->n_hdrs + info->method_name.len +
           in->target.len + 2 * host.len + in->peer.len + in->proto.len + 256;
}

/* ---- the response ------------------------------------------------------------------------ */

sst_h1_frame_t sst_h1_response_framing(const sst_h1_response_t *resp, unsigned client_minor)
{
    if (resp->no_body || resp->has_length)
        return SST_FRAME_AS_IS;
    /* chunked or close-delimited from the backend: a 1.1 client reads chunks, a 1.0 client
     * reads until the close (RFC 9112 §6.3) */
    return client_minor == 1 ? SST_FRAME_CHUNKED : SST_FRAME_CLOSE;
}

size_t sst_h1_write_response(const sst_h1w_response_t *in, char *buf, size_t size)
{
    const sst_h1_response_t *resp = in->resp;
    const sst_head_t *h = in->head;
    wbuf_t w = {buf, buf + size, true};
    sst_str_t via_prev = SST_STR_NULL;
    bool client11 = in->client_minor == 1;
    char code[3] = {(char)('0' + resp->status / 100 % 10), (char)('0' + resp->status / 10 % 10),
                    (char)('0' + resp->status % 10)};

    W_LIT(&w, "HTTP/1.1 ");
    w_put(&w, code, 3);
    W_LIT(&w, " ");
    w_str(&w, sst_str(h->text + h->reason_off, h->reason_len));
    W_LIT(&w, "\r\n");
    for (uint32_t i = 0; w.ok && i < h->n_hdrs; i++) {
        sst_str_t name = sst_hdr_name(h, &h->hdrs[i]);
        sst_str_t value = sst_hdr_value(h, &h->hdrs[i]);
        if (sst_h1_is_hop_by_hop(h, name))
            continue;
        if (sst_str_ieq_c(name, "via")) {
            via_prev = value;
            continue;
        }
        w_field(&w, name, value);
    }
    w_via(&w, via_prev, resp->minor);
    if (resp->has_length && resp->status != 204) {
        W_LIT(&w, "Content-Length: ");
        w_u64(&w, resp->content_length);
        W_LIT(&w, "\r\n");
    } else if (sst_h1_response_framing(resp, in->client_minor) == SST_FRAME_CHUNKED ||
               (resp->no_body && resp->chunked && client11)) {
        /* a body-less answer (HEAD, 304) keeps the framing the full answer would have */
        W_LIT(&w, "Transfer-Encoding: chunked\r\n");
    }
    if ((unsigned)in->tail < SST_TAILS)
        w_str(&w, sst_h1_tails[in->tail]);
    else
        w.ok = false;
    return w_done(&w, buf);
}

size_t sst_h1_response_bound(const sst_h1w_response_t *in)
{
    /* the status line, every field at most once, Via, the framing and the tail */
    return (size_t)in->head->len + 4 * (size_t)in->head->n_hdrs + 256;
}
