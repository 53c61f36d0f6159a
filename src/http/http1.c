/* HTTP/1.1 parsing around llhttp (strict, no lenient flags). A prescan runs ahead of llhttp over
 * every head and rejects what Debian's llhttp 8.1 lets through (bare CR, bare LF, obs-fold,
 * control characters, a malformed request-line); head fields are copied into a bounded
 * sst_head_t; the validated view of a head is built here. No sockets, no clock. */
#include "http/http1.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "sidestep/error.h"

#define HEAD_INITIAL_TEXT    1024
#define HEAD_INITIAL_HDRS    32
/* Chunk-extension bytes allowed on one chunk line: extensions carry nothing we forward, so a
 * small cap stops a peer from streaming an endless chunk line. */
#define H1_MAX_CHUNK_EXT     4096
/* 1xx heads accepted before the final response; more is a flood (502). */
#define H1_MAX_INFORMATIONAL 16

/* ---- head storage ----------------------------------------------------------------------- */

sst_head_t *sst_head_new(void)
{
    sst_head_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->text = malloc(HEAD_INITIAL_TEXT);
    h->hdrs = malloc(HEAD_INITIAL_HDRS * sizeof(*h->hdrs));
    if (h->text == NULL || h->hdrs == NULL) {
        sst_head_free(h);
        return NULL;
    }
    h->cap = HEAD_INITIAL_TEXT;
    h->cap_hdrs = HEAD_INITIAL_HDRS;
    return h;
}

void sst_head_free(sst_head_t *h)
{
    if (h == NULL)
        return;
    free(h->text);
    free(h->hdrs);
    free(h);
}

void sst_head_clear(sst_head_t *h, uint32_t keep)
{
    h->len = 0;
    h->n_hdrs = 0;
    h->url_off = h->url_len = 0;
    h->reason_off = h->reason_len = 0;
    if (h->cap > keep && keep >= HEAD_INITIAL_TEXT) {
        char *t = realloc(h->text, HEAD_INITIAL_TEXT);
        if (t != NULL) {
            h->text = t;
            h->cap = HEAD_INITIAL_TEXT;
        }
    }
}

static int head_append(sst_head_t *h, const char *p, size_t n)
{
    if (n > UINT32_MAX - h->len)
        return SST_E2BIG;
    if (h->len + n > h->cap) {
        size_t cap = h->cap;
        while (cap < h->len + n)
            cap *= 2;
        if (cap > UINT32_MAX)
            return SST_E2BIG;
        char *t = realloc(h->text, cap);
        if (t == NULL)
            return SST_ENOMEM;
        h->text = t;
        h->cap = (uint32_t)cap;
    }
    memcpy(h->text + h->len, p, n);
    h->len += (uint32_t)n;
    return 0;
}

static sst_hdr_t *head_new_field(sst_head_t *h)
{
    if (h->n_hdrs == h->cap_hdrs) {
        uint32_t cap = h->cap_hdrs * 2;
        sst_hdr_t *t = realloc(h->hdrs, (size_t)cap * sizeof(*t));
        if (t == NULL)
            return NULL;
        h->hdrs = t;
        h->cap_hdrs = cap;
    }
    sst_hdr_t *f = &h->hdrs[h->n_hdrs];
    memset(f, 0, sizeof(*f));
    return f;
}

int sst_head_find(const sst_head_t *h, const char *name, uint32_t from)
{
    sst_str_t want = sst_str_c(name);
    for (uint32_t i = from; i < h->n_hdrs; i++)
        if (sst_str_ieq(sst_hdr_name(h, &h->hdrs[i]), want))
            return (int)i;
    return -1;
}

/* ---- the prescan ---------------------------------------------------------------------- */

enum {
    PS_START = 0, /* before a message: empty lines allowed (RFC 9112 §2.2) */
    PS_START_CR,
    PS_LINE1, /* request-line or status-line */
    PS_LINE1_CR,
    PS_LSTART, /* start of a field line, or of the final CRLF */
    PS_FIELD,
    PS_FIELD_CR,
    PS_END_CR,
    PS_DONE, /* head complete: the prescan does not look at bodies */
};

static int h1_fail(sst_h1_t *h, uint16_t status, const char *reason)
{
    if (h->err_status == 0) {
        h->err_status = h->response ? 502 : status;
        h->err_reason = reason;
    }
    return -1;
}

static inline bool h1_is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Byte classes for the prescan's fast path: runs of ordinary bytes are skipped a table lookup
 * at a time, and only CR, LF, SP, HTAB and control bytes go through the state machine. */
enum { B_PLAIN = 0, B_SP, B_HT, B_STOP };
static const uint8_t h1_byte_class[256] = {
    [0x00] = B_STOP, [0x01] = B_STOP, [0x02] = B_STOP, [0x03] = B_STOP, [0x04] = B_STOP,
    [0x05] = B_STOP, [0x06] = B_STOP, [0x07] = B_STOP, [0x08] = B_STOP, ['\t'] = B_HT,
    ['\n'] = B_STOP, [0x0b] = B_STOP, [0x0c] = B_STOP, ['\r'] = B_STOP, [0x0e] = B_STOP,
    [0x0f] = B_STOP, [0x10] = B_STOP, [0x11] = B_STOP, [0x12] = B_STOP, [0x13] = B_STOP,
    [0x14] = B_STOP, [0x15] = B_STOP, [0x16] = B_STOP, [0x17] = B_STOP, [0x18] = B_STOP,
    [0x19] = B_STOP, [0x1a] = B_STOP, [0x1b] = B_STOP, [0x1c] = B_STOP, [0x1d] = B_STOP,
    [0x1e] = B_STOP, [0x1f] = B_STOP, [' '] = B_SP,    [0x7f] = B_STOP,
};

/* Why a size limit was crossed: the trailer section is held to the head's limits. */
static const char *h1_too_large(const sst_h1_t *h, bool field)
{
    if (h->in_trailers)
        return field ? "trailer field too large" : "trailer section too large";
    if (field)
        return "header field too large";
    return h->response ? "response head too large" : "request head too large";
}

static const char *h1_line_too_long(const sst_h1_t *h)
{
    return h->response ? "status line too long" : "request-line too long";
}

/* Length of the run of bytes at `p` whose class is at most `max_class`. */
static inline size_t h1_run(const char *p, size_t len, uint8_t max_class)
{
    size_t i = 0;
    while (i < len && h1_byte_class[(unsigned char)p[i]] <= max_class)
        i++;
    return i;
}

/* Skips a run of ordinary bytes inside the current line, with the limits checked once for the
 * whole run. Returns the run length, or -1 when a limit is crossed. */
static inline ssize_t h1_skip(sst_h1_t *h, const char *p, size_t len, uint8_t max_class)
{
    size_t n = h1_run(p, len, max_class);
    h->head_bytes += n;
    h->line_len += (uint32_t)n;
    if (h->head_bytes > h->lim.head)
        return h1_fail(h, 431, h1_too_large(h, false));
    if (h->ps == PS_FIELD && h->line_len > h->lim.field)
        return h1_fail(h, 431, h1_too_large(h, true));
    if (h->ps == PS_LINE1 && h->line_len > h->lim.request_line)
        return h1_fail(h, 414, h1_line_too_long(h));
    return (ssize_t)n;
}

/* Scans head bytes. Returns 0 (all of data scanned, or the head ended inside it) or -1. */
static int h1_prescan(sst_h1_t *h, const char *data, size_t len)
{
    for (size_t i = 0; i < len && h->ps != PS_DONE; i++) {
        /* fast path: field values, and the target and version of a request-line */
        if (h->ps == PS_FIELD || (h->ps == PS_LINE1 && (h->response || h->rl_spaces > 0))) {
            uint8_t max = h->ps == PS_FIELD || h->response ? B_HT : B_PLAIN;
            ssize_t n = h1_skip(h, data + i, len - i, max);
            if (n < 0)
                return -1;
            if (n > 0)
                h->rl_prev_sp = false;
            i += (size_t)n;
            if (i == len)
                break;
        }
        unsigned char c = (unsigned char)data[i];
        if (++h->head_bytes > h->lim.head)
            return h1_fail(h, 431, h1_too_large(h, false));
        switch (h->ps) {
        case PS_START:
            if (c == '\r') {
                h->ps = PS_START_CR;
                break;
            }
            if (c == '\n')
                return h1_fail(h, 400, "bare LF");
            h->ps = PS_LINE1;
            h->line_len = 0;
            h->rl_spaces = 0;
            h->rl_prev_sp = false;
            h->rl_method_bad = false;
            /* the byte belongs to the first line */
            /* FALLTHROUGH */
        case PS_LINE1:
            if (c == '\r') {
                if (!h->response && (h->rl_spaces != 2 || h->rl_prev_sp))
                    return h1_fail(h, 400, "malformed request-line");
                h->ps = PS_LINE1_CR;
                break;
            }
            if (c == '\n')
                return h1_fail(h, 400, "bare LF");
            if (c == 0 || (h1_is_ctl(c) && !(h->response && c == '\t')))
                return h1_fail(h, 400, "control character in request-line");
            if (++h->line_len > h->lim.request_line)
                return h1_fail(h, 414, h1_line_too_long(h));
            if (!h->response) {
                if (c == ' ') {
                    /* RFC 9112 §3: method SP request-target SP HTTP-version, single spaces */
                    if (h->rl_prev_sp || h->line_len == 1 || h->rl_spaces == 2)
                        return h1_fail(h, 400, "malformed request-line");
                    h->rl_spaces++;
                    h->rl_prev_sp = true;
                } else {
                    h->rl_prev_sp = false;
                    if (h->rl_spaces == 0 && !sst_is_tchar(c))
                        h->rl_method_bad = true;
                }
            }
            break;
        case PS_START_CR:
            if (c != '\n')
                return h1_fail(h, 400, "bare CR");
            h->ps = PS_START;
            break;
        case PS_LINE1_CR:
        case PS_FIELD_CR:
            if (c != '\n')
                return h1_fail(h, 400, "bare CR");
            h->ps = PS_LSTART;
            break;
        case PS_LSTART:
            if (c == '\r') {
                h->ps = PS_END_CR;
                break;
            }
            if (c == '\n')
                return h1_fail(h, 400, "bare LF");
            if (c == ' ' || c == '\t')
                return h1_fail(h, 400, "obsolete line folding");
            h->ps = PS_FIELD;
            h->line_len = 0;
            /* FALLTHROUGH */
        case PS_FIELD:
            if (c == '\r') {
                h->ps = PS_FIELD_CR;
                break;
            }
            if (c == '\n')
                return h1_fail(h, 400, "bare LF");
            if (h1_is_ctl(c))
                return h1_fail(h, 400, "control character in header");
            if (++h->line_len > h->lim.field)
                return h1_fail(h, 431, h1_too_large(h, true));
            break;
        case PS_END_CR:
            if (c != '\n')
                return h1_fail(h, 400, "bare CR");
            h->ps = PS_DONE;
            break;
        case PS_DONE:
            break;
        }
    }
    return 0;
}

/* ---- llhttp callbacks ---------------------------------------------------------------- */

enum { CB_NONE = 0, CB_URL, CB_STATUS, CB_FIELD, CB_VALUE };

static inline sst_h1_t *h1_of(llhttp_t *p)
{
    return p->data;
}

static int h1_store(sst_h1_t *h, const char *at, size_t len)
{
    int rc = head_append(h->head, at, len);
    if (rc == SST_ENOMEM)
        return h1_fail(h, 503, "out of memory");
    if (rc != 0)
        return h1_fail(h, 431, h1_too_large(h, false));
    return 0;
}

static int h1_on_message_begin(llhttp_t *p)
{
    sst_h1_t *h = h1_of(p);
    h->cb_state = CB_NONE;
    h->in_trailers = false;
    h->body_bytes = 0;
    return 0;
}

static int h1_on_url(llhttp_t *p, const char *at, size_t len)
{
    sst_h1_t *h = h1_of(p);
    if (h->cb_state != CB_URL) {
        h->cb_state = CB_URL;
        h->head->url_off = h->head->len;
    }
    if (h1_store(h, at, len) != 0)
        return HPE_USER;
    h->head->url_len += (uint32_t)len;
    return 0;
}

static int h1_on_status(llhttp_t *p, const char *at, size_t len)
{
    sst_h1_t *h = h1_of(p);
    if (h->cb_state != CB_STATUS) {
        h->cb_state = CB_STATUS;
        h->head->reason_off = h->head->len;
    }
    if (h1_store(h, at, len) != 0)
        return HPE_USER;
    h->head->reason_len += (uint32_t)len;
    return 0;
}

static int h1_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    sst_h1_t *h = h1_of(p);
    if (h->in_trailers) {
        /* Trailer fields are never forwarded nor honoured, but they are held to the rules of
         * head fields (RFC 9112 §5.1: no whitespace before the colon; llhttp 8.1 accepts it
         * in trailers). Bytes, line endings and sizes are the prescan's. */
        for (size_t i = 0; i < len; i++) {
            if (!sst_is_tchar((unsigned char)at[i])) {
                h1_fail(h, 400, "invalid trailer field name");
                return HPE_USER;
            }
        }
        h->trailer_name += (uint32_t)len;
        return 0;
    }
    if (h->cb_state != CB_FIELD) {
        if (h->head->n_hdrs >= h->lim.headers) {
            h1_fail(h, 431, "too many header fields");
            return HPE_USER;
        }
        sst_hdr_t *f = head_new_field(h->head);
        if (f == NULL) {
            h1_fail(h, 503, "out of memory");
            return HPE_USER;
        }
        f->name_off = h->head->len;
        h->cb_state = CB_FIELD;
        h->field_len = 0;
    }
    h->field_len += (uint32_t)len;
    if (h1_store(h, at, len) != 0)
        return HPE_USER;
    h->head->hdrs[h->head->n_hdrs].name_len += (uint32_t)len;
    return 0;
}

static int h1_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    sst_h1_t *h = h1_of(p);
    if (h->in_trailers)
        return 0;
    sst_hdr_t *f = &h->head->hdrs[h->head->n_hdrs];
    if (h->cb_state != CB_VALUE) {
        h->cb_state = CB_VALUE;
        f->value_off = h->head->len;
    }
    if (h1_store(h, at, len) != 0)
        return HPE_USER;
    f->value_len += (uint32_t)len;
    return 0;
}

static int h1_on_header_value_complete(llhttp_t *p)
{
    sst_h1_t *h = h1_of(p);
    if (h->in_trailers) {
        if (h->trailer_name == 0) {
            h1_fail(h, 400, "empty trailer field name");
            return HPE_USER;
        }
        if (++h->n_trailers > h->lim.headers) {
            h1_fail(h, 431, "too many trailer fields");
            return HPE_USER;
        }
        h->trailer_name = 0;
        h->cb_state = CB_NONE;
        return 0;
    }
    sst_hdr_t *f = &h->head->hdrs[h->head->n_hdrs];
    if (h->cb_state != CB_VALUE) /* empty value: llhttp sends no span */
        f->value_off = h->head->len;
    if (f->name_len == 0) {
        /* llhttp 8.1 accepts ": value" with an empty name (RFC 9110 §5.1: a name is a token) */
        h1_fail(h, 400, "empty header name");
        return HPE_USER;
    }
    h->head->n_hdrs++;
    h->cb_state = CB_NONE;
    return 0;
}

static int h1_on_headers_complete(llhttp_t *p)
{
    sst_h1_t *h = h1_of(p);
    if (h->response) {
        int status = llhttp_get_status_code(p);
        if (status >= 100 && status < 200 && status != 101) {
            /* Informational: not forwarded (sidestep answers Expect itself); the final head
             * follows. Counted so that a flood cannot keep the exchange open forever. */
            if (++h->n_informational > H1_MAX_INFORMATIONAL) {
                h1_fail(h, 502, "too many 1xx responses");
                return HPE_USER;
            }
            return 0;
        }
        /* RFC 9112 §6.3: no body after HEAD, 204 or 304, whatever Content-Length says (llhttp
         * 8.1 would wait for the length of a 304). Setting F_SKIPBODY is what returning 1 from
         * this callback does; we pause instead. */
        if (h->head_request || status == 204 || status == 304)
            p->flags |= F_SKIPBODY;
    } else {
        /* sidestep never switches protocols: Upgrade is a hop-by-hop field it removes, so the
         * message is an ordinary request and llhttp must not stop for an upgrade. */
        p->upgrade = 0;
    }
    h->paused_head = true;
    return HPE_PAUSED;
}

static int h1_on_body(llhttp_t *p, const char *at, size_t len)
{
    sst_h1_t *h = h1_of(p);
    h->body_bytes += len;
    if (!h->response && h->lim.body != 0 && h->body_bytes > h->lim.body) {
        h1_fail(h, 413, "request body too large");
        return HPE_USER;
    }
    if (h->on_body != NULL && h->on_body(h->opaque, at, len) != 0) {
        h1_fail(h, 502, "body relay failed");
        return HPE_USER;
    }
    if ((p->flags & F_CHUNKED) && p->content_length == 0) {
        /* The chunk's data ends here. Debian's llhttp 8.1 is built without
         * LLHTTP_STRICT_MODE and skips the two bytes that follow unread, so "3\r\nabcXY"
         * passed for "abc" and "3\r\nabcdef\r\n" read "f" as the next chunk size and then
         * waited for 15 bytes that never came (issue 11). Stop here; sst_h1_feed checks the
         * CRLF before llhttp skips it. */
        h->paused_chunk = true;
        h->chunk_crlf = 2;
        return HPE_PAUSED;
    }
    return 0;
}

static int h1_on_chunk_header(llhttp_t *p)
{
    sst_h1_t *h = h1_of(p);
    h->ext_bytes = 0;
    if (p->content_length == 0) {
        /* The last chunk: stop here, so that sst_h1_feed runs the prescan over the trailer
         * section from its first byte. llhttp 8.1 accepts a bare LF ending the section and
         * obs-fold in it; both are rejected like in a head, and the section is bounded like a
         * head (limits count it as neither head nor body, so a client could stream trailers
         * forever). */
        h->in_trailers = true;
        h->n_trailers = 0;
        h->trailer_name = 0;
        h->paused_trailers = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int h1_on_chunk_ext(llhttp_t *p, const char *at, size_t len)
{
    sst_h1_t *h = h1_of(p);
    h->ext_bytes += len;
    if (h->ext_bytes > H1_MAX_CHUNK_EXT) {
        h1_fail(h, 400, "chunk extension too long");
        return HPE_USER;
    }
    return 0;
}

static int h1_on_message_complete(llhttp_t *p)
{
    sst_h1_t *h = h1_of(p);
    if (h->response) {
        int status = llhttp_get_status_code(p);
        if (status >= 100 && status < 200 && status != 101) {
            /* Forget the 1xx head; stop so the prescan sees the next head from its start. */
            sst_head_clear(h->head, UINT32_MAX);
            h->ps = PS_START;
            h->line_len = 0;
            return HPE_PAUSED;
        }
    }
    if (!h->response) {
        /* Whether the connection carries another request is sidestep's decision (conn.c closes
         * when sst_h1_request_t.keep_alive says so). llhttp also decides, from flags that a
         * trailer can set ("Connection: close" there), and in its closed state silently
         * swallows every later byte: a pipelined request would hang unanswered. */
        p->flags &= ~(uint16_t)F_CONNECTION_CLOSE;
        p->flags |= F_CONNECTION_KEEP_ALIVE;
    }
    h->paused_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t h1_settings = {
    .on_message_begin = h1_on_message_begin,
    .on_url = h1_on_url,
    .on_status = h1_on_status,
    .on_header_field = h1_on_header_field,
    .on_header_value = h1_on_header_value,
    .on_header_value_complete = h1_on_header_value_complete,
    .on_headers_complete = h1_on_headers_complete,
    .on_body = h1_on_body,
    .on_chunk_header = h1_on_chunk_header,
    .on_chunk_extension_name = h1_on_chunk_ext,
    .on_chunk_extension_value = h1_on_chunk_ext,
    .on_message_complete = h1_on_message_complete,
};

/* ---- driving ---------------------------------------------------------------------------- */

void sst_h1_init(sst_h1_t *h, bool response, const sst_h1_limits_t *lim, sst_h1_body_cb on_body,
                 void *opaque)
{
    memset(h, 0, sizeof(*h));
    llhttp_init(&h->p, response ? HTTP_RESPONSE : HTTP_REQUEST, &h1_settings);
    h->p.data = h;
    h->lim = *lim;
    h->response = response;
    h->on_body = on_body;
    h->opaque = opaque;
}

void sst_h1_next(sst_h1_t *h)
{
    h->paused_chunk = false;
    h->chunk_crlf = 0;
    h->ps = PS_START;
    h->head_bytes = 0;
    h->line_len = 0;
    h->paused_head = h->paused_done = false;
    h->n_informational = 0;
    h->body_bytes = 0;
    h->in_trailers = false;
    h->head_request = false;
    if (llhttp_get_errno(&h->p) == HPE_PAUSED)
        llhttp_resume(&h->p);
}

void sst_h1_resume(sst_h1_t *h)
{
    h->paused_head = false;
    if (llhttp_get_errno(&h->p) == HPE_PAUSED)
        llhttp_resume(&h->p);
}

bool sst_h1_idle(const sst_h1_t *h)
{
    return h->ps == PS_START && h->head_bytes == 0;
}

static uint16_t h1_map_error(const sst_h1_t *h, llhttp_errno_t err, const char **reason)
{
    *reason = llhttp_get_error_reason(&h->p);
    if (h->response)
        return 502;
    switch (err) {
    case HPE_INVALID_METHOD:
        /* A well-formed token we do not know is 501 (RFC 9110 §9.1); noise is 400. */
        if (h->line_len > 0 && !h->rl_method_bad)
            return 501;
        return 400;
    case HPE_INVALID_VERSION:
        return 505;
    case HPE_PAUSED_H2_UPGRADE:
        *reason = "HTTP/2 connection preface on an HTTP/1.1 port";
        return 505;
    default:
        return 400;
    }
}

/* Checks the bytes at `p` that end a chunk's data (RFC 9112 §7.1: chunk-data CRLF), up to the
 * ones still unchecked; the CRLF may be split across reads. Returns 0 or -1. */
static int h1_chunk_crlf(sst_h1_t *h, const char *p, size_t len)
{
    for (size_t i = 0; i < len && h->chunk_crlf > 0; i++, h->chunk_crlf--)
        if (p[i] != (h->chunk_crlf == 2 ? '\r' : '\n'))
            return h1_fail(h, 400, "missing CRLF after chunk data");
    return 0;
}

sst_h1_rc_t sst_h1_feed(sst_h1_t *h, const char *data, size_t len, size_t *consumed)
{
    size_t off = 0;

    if (h->err_status != 0)
        return SST_H1_ERROR;
    /* Runs at least once: after a pause, llhttp completes a body-less message with no input. */
    do {
        if (h->ps != PS_DONE && h1_prescan(h, data + off, len - off) != 0)
            return SST_H1_ERROR;
        if (h->chunk_crlf > 0 && h1_chunk_crlf(h, data + off, len - off) != 0)
            return SST_H1_ERROR;
        llhttp_errno_t err = llhttp_execute(&h->p, data + off, len - off);
        if (err == HPE_OK)
            break;
        if (err == HPE_PAUSED) {
            off = (size_t)(llhttp_get_error_pos(&h->p) - data);
            if (h->paused_chunk) {
                /* after a chunk's data: its CRLF is checked at the top of the loop (or of the
                 * next feed when this input ends here) */
                h->paused_chunk = false;
                llhttp_resume(&h->p);
                continue;
            }
            if (h->paused_trailers) {
                /* after the last chunk: the trailer section is scanned like a head */
                h->paused_trailers = false;
                h->ps = PS_LSTART;
                h->line_len = 0;
                h->head_bytes = 0;
                llhttp_resume(&h->p);
                continue;
            }
            if (h->paused_head) {
                *consumed = off;
                return SST_H1_HEAD;
            }
            if (h->paused_done) {
                *consumed = off;
                return SST_H1_DONE;
            }
            /* paused after a 1xx head: go on with the next head */
            llhttp_resume(&h->p);
            continue;
        }
        if (err == HPE_USER) {
            if (h->err_status == 0)
                h1_fail(h, 400, "bad request");
            return SST_H1_ERROR;
        }
        const char *reason;
        uint16_t status = h1_map_error(h, err, &reason);
        h1_fail(h, status, reason);
        return SST_H1_ERROR;
    } while (off < len);
    *consumed = len;
    return SST_H1_MORE;
}

sst_h1_rc_t sst_h1_eof(sst_h1_t *h)
{
    if (h->err_status != 0)
        return SST_H1_ERROR;
    if (sst_h1_idle(h))
        return SST_H1_MORE;
    llhttp_errno_t err = llhttp_finish(&h->p);
    if (err == HPE_OK || err == HPE_PAUSED)
        return h->paused_done ? SST_H1_DONE : SST_H1_MORE;
    h1_fail(h, 400, "connection closed mid-message");
    return SST_H1_ERROR;
}

/* ---- head checks ------------------------------------------------------------------------ */

/* RFC 3986 reg-name characters, conservatively: only the unreserved ones. Sub-delims and
 * pct-encoded are legal there but no real host name uses them, and "a,b" is what two Host
 * fields look like once an intermediary folded them: routing on one host while the backend
 * reads another is the confusion to avoid (found by fuzz_http1_request). */
static const uint8_t h1_regname[256] = {
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['-'] = 1, ['.'] = 1,
    ['_'] = 1, ['~'] = 1,
};

/* RFC 3986 host: reg-name / IPv4 / IP-literal, optional ":port". */
static bool h1_valid_authority(sst_str_t a)
{
    size_t i = 0;
    if (a.len > 255)
        return false;
    if (a.len > 0 && a.base[0] == '[') {
        for (i = 1; i < a.len && a.base[i] != ']'; i++) {
            unsigned char c = (unsigned char)a.base[i];
            if (!(c == ':' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F')))
                return false;
        }
        if (i == a.len)
            return false;
        i++;
    } else {
        while (i < a.len && h1_regname[(unsigned char)a.base[i]])
            i++;
    }
    if (i < a.len) {
        if (a.base[i] != ':')
            return false;
        uint64_t port;
        sst_str_t p = sst_str(a.base + i + 1, a.len - i - 1);
        if (p.len > 0 && sst_str_to_u64(p, 65535, &port) != 0)
            return false;
    }
    return true;
}

static bool h1_connection_has(const sst_head_t *head, const char *token)
{
    for (int i = sst_head_find(head, "connection", 0); i >= 0;
         i = sst_head_find(head, "connection", (uint32_t)i + 1))
        if (sst_str_list_has(sst_hdr_value(head, &head->hdrs[i]), token))
            return true;
    return false;
}

static int h1_check_names(const sst_head_t *head)
{
    for (uint32_t i = 0; i < head->n_hdrs; i++)
        if (!sst_str_is_token(sst_hdr_name(head, &head->hdrs[i])))
            return -1;
    return 0;
}

/* Fields sst_h1_check_request looks at, found in one pass over the head. */
typedef struct h1_known_s {
    int host, host2, te, te2, expect, expect2, origin, connection;
    bool conn_close, conn_keep_alive;
} h1_known_t;

static void h1_classify(const sst_head_t *head, h1_known_t *k, bool *bad_name)
{
    memset(k, 0xff, offsetof(h1_known_t, conn_close)); /* every index -1 */
    k->conn_close = k->conn_keep_alive = false;
    *bad_name = false;
    for (uint32_t i = 0; i < head->n_hdrs; i++) {
        sst_str_t n = sst_hdr_name(head, &head->hdrs[i]);
        if (!sst_str_is_token(n)) {
            *bad_name = true;
            return;
        }
        int *slot = NULL, *slot2 = NULL;
        switch (n.len) {
        case 4:
            if (sst_str_ieq_c(n, "host"))
                slot = &k->host, slot2 = &k->host2;
            break;
        case 6:
            if (sst_str_ieq_c(n, "expect"))
                slot = &k->expect, slot2 = &k->expect2;
            else if (sst_str_ieq_c(n, "origin") && k->origin < 0)
                k->origin = (int)i;
            break;
        case 10:
            if (sst_str_ieq_c(n, "connection")) {
                sst_str_t v = sst_hdr_value(head, &head->hdrs[i]);
                if (k->connection < 0)
                    k->connection = (int)i;
                k->conn_close = k->conn_close || sst_str_list_has(v, "close");
                k->conn_keep_alive = k->conn_keep_alive || sst_str_list_has(v, "keep-alive");
            }
            break;
        case 17:
            if (sst_str_ieq_c(n, "transfer-encoding"))
                slot = &k->te, slot2 = &k->te2;
            break;
        default:
            break;
        }
        if (slot != NULL) {
            if (*slot < 0)
                *slot = (int)i;
            else if (*slot2 < 0)
                *slot2 = (int)i;
        }
    }
}

int sst_h1_check_request(const sst_h1_t *h, sst_h1_request_t *out, const char **reason)
{
    const sst_head_t *head = h->head;
    const llhttp_t *p = &h->p;
    h1_known_t k;
    bool bad_name;

    memset(out, 0, sizeof(*out));
    out->connection_idx = -1;
    if (p->http_major != 1 || p->http_minor > 1) {
        *reason = p->http_major == 0 ? "HTTP/0.9 is not supported" : "HTTP version not supported";
        return p->http_major == 0 ? 400 : 505;
    }
    out->minor = p->http_minor;
    out->method = p->method;
    out->method_name = sst_str_c(llhttp_method_name((llhttp_method_t)p->method));
    if (p->method == HTTP_CONNECT) {
        *reason = "CONNECT is not supported";
        return 405;
    }
    if (p->method == HTTP_PRI) {
        *reason = "HTTP/2 connection preface on an HTTP/1.1 port";
        return 505;
    }
    h1_classify(head, &k, &bad_name);
    if (bad_name) {
        *reason = "invalid header name";
        return 400;
    }

    out->target = sst_head_url(head);
    if (out->target.len == 0) {
        *reason = "empty request-target";
        return 400;
    }
    for (size_t i = 0; i < out->target.len; i++) {
        unsigned char c = (unsigned char)out->target.base[i];
        /* RFC 9112 §3.2: no fragment, no raw non-ASCII (llhttp 8.1 lets 0x80-0xff through) */
        if (c >= 0x80 || c <= 0x20 || c == 0x7f || c == '#') {
            *reason = "invalid character in request-target";
            return 400;
        }
    }
    sst_str_t authority = SST_STR_NULL;
    if (out->target.base[0] == '/') {
        /* origin-form */
    } else if (out->target.len == 1 && out->target.base[0] == '*') {
        if (p->method != HTTP_OPTIONS) {
            *reason = "asterisk-form is only for OPTIONS";
            return 400;
        }
    } else {
        size_t skip = 0;
        if (out->target.len > 7 &&
            sst_str_ieq(sst_str(out->target.base, 7), SST_STR_LIT("http://")))
            skip = 7;
        else if (out->target.len > 8 &&
                 sst_str_ieq(sst_str(out->target.base, 8), SST_STR_LIT("https://")))
            skip = 8;
        if (skip == 0) {
            *reason = "unsupported request-target form";
            return 400;
        }
        size_t end = skip;
        while (end < out->target.len && out->target.base[end] != '/' &&
               out->target.base[end] != '?')
            end++;
        authority = sst_str(out->target.base + skip, end - skip);
        if (authority.len == 0 || memchr(authority.base, '@', authority.len) != NULL ||
            !h1_valid_authority(authority)) {
            *reason = "invalid authority in request-target";
            return 400;
        }
        out->absolute_form = true;
    }

    if (k.host2 >= 0) {
        *reason = "repeated Host header";
        return 400;
    }
    if (k.host < 0 && out->minor == 1) {
        *reason = "missing Host header"; /* RFC 9112 §3.2 */
        return 400;
    }
    if (k.host >= 0) {
        /* llhttp 8.1 keeps trailing OWS in values (RFC 9110 §5.5 excludes it). An empty host
         * makes the target URI invalid for http (RFC 9110 §4.2.1), and a proxy that routes and
         * forwards by Host has nothing to go on. */
        sst_str_t hv = sst_str_trim_ows(sst_hdr_value(head, &head->hdrs[k.host]));
        if (hv.len == 0) {
            *reason = "empty Host header";
            return 400;
        }
        if (!h1_valid_authority(hv)) {
            *reason = "invalid Host header";
            return 400;
        }
        out->host = hv;
    }
    if (out->absolute_form)
        out->host = authority; /* RFC 9112 §3.2.2: the target's authority wins over Host */

    if (k.te >= 0) {
        if (out->minor == 0) {
            /* RFC 9112 §6.1: a 1.0 message with Transfer-Encoding cannot be trusted */
            *reason = "Transfer-Encoding in an HTTP/1.0 request";
            return 400;
        }
        if (k.te2 >= 0) {
            *reason = "repeated Transfer-Encoding";
            return 400;
        }
        sst_str_t te = sst_hdr_value(head, &head->hdrs[k.te]);
        sst_str_t item, last = SST_STR_NULL;
        size_t pos = 0, n = 0, commas = 0;
        while (sst_str_next_list_item(te, &pos, &item)) {
            last = item;
            n++;
        }
        for (size_t i = 0; i < te.len; i++)
            commas += te.base[i] == ',';
        if (commas + 1 != n) {
            /* ", chunked": RFC 9110 §5.6.1 lets a recipient skip empty elements, but nginx
             * (501) and HAProxy (422) refuse this framing field; an ambiguous one is a 400. */
            *reason = "empty element in Transfer-Encoding";
            return 400;
        }
        if (!sst_str_ieq(last, SST_STR_LIT("chunked"))) {
            /* RFC 9112 §6.3: chunked must be the final coding, else the length is unknown */
            *reason = "Transfer-Encoding does not end in chunked";
            return 400;
        }
        if (n > 1) {
            /* sidestep re-frames bodies and implements no other coding (RFC 9112 §6.1) */
            *reason = "unsupported transfer coding";
            return 501;
        }
        out->chunked = true;
    }
    if (p->flags & F_CONTENT_LENGTH) {
        out->has_length = true;
        out->content_length = p->content_length;
    }
    out->has_body = out->chunked || (out->has_length && out->content_length > 0);
    if (out->has_length && h->lim.body != 0 && out->content_length > h->lim.body) {
        *reason = "request body too large";
        return 413;
    }

    if (k.expect >= 0) {
        sst_str_t ev = sst_str_trim_ows(sst_hdr_value(head, &head->hdrs[k.expect]));
        if (!sst_str_ieq(ev, SST_STR_LIT("100-continue")) || k.expect2 >= 0) {
            *reason = "unsupported expectation"; /* RFC 9110 §10.1.1 */
            return 417;
        }
        /* A 1.0 client cannot handle 100 Continue; the expectation is ignored for it. */
        out->expect_continue = out->minor == 1 && out->has_body;
    }
    if (k.origin >= 0)
        out->origin = sst_hdr_value(head, &head->hdrs[k.origin]);
    out->connection_idx = k.connection;
    if (out->minor == 1)
        out->keep_alive = !k.conn_close;
    else
        out->keep_alive = k.conn_keep_alive && !k.conn_close;
    return 0;
}

int sst_h1_check_response(const sst_h1_t *h, sst_h1_response_t *out, const char **reason)
{
    const sst_head_t *head = h->head;
    const llhttp_t *p = &h->p;

    memset(out, 0, sizeof(*out));
    out->connection_idx = -1;
    if (p->http_major != 1 || p->http_minor > 1) {
        *reason = "backend answered with an unsupported HTTP version";
        return 502;
    }
    out->minor = p->http_minor;
    int status = llhttp_get_status_code((llhttp_t *)p);
    if (status < 200 || status > 599) {
        *reason = status == 101 ? "backend switched protocols unasked" : "invalid status code";
        return 502;
    }
    out->status = (uint16_t)status;
    if (h1_check_names(head) != 0) {
        *reason = "invalid header name from backend";
        return 502;
    }
    int te_idx = sst_head_find(head, "transfer-encoding", 0);
    if (te_idx >= 0) {
        sst_str_t te = sst_str_trim_ows(sst_hdr_value(head, &head->hdrs[te_idx]));
        if (!sst_str_ieq(te, SST_STR_LIT("chunked")) ||
            sst_head_find(head, "transfer-encoding", (uint32_t)te_idx + 1) >= 0) {
            *reason = "unsupported transfer coding from backend";
            return 502;
        }
        out->chunked = true;
    }
    if (sst_head_find(head, "content-length", 0) >= 0) {
        if (out->chunked) {
            /* RFC 9112 §6.3: a sender must not send both; treat it as an attack */
            *reason = "Content-Length with Transfer-Encoding from backend";
            return 502;
        }
        out->has_length = true;
        out->content_length = p->content_length;
    }
    out->no_body = h->head_request || status == 204 || status == 304;
    out->until_close = !out->no_body && !out->chunked && !out->has_length;
    out->connection_idx = sst_head_find(head, "connection", 0);
    if (out->minor == 1)
        out->keep_alive = !h1_connection_has(head, "close");
    else
        out->keep_alive =
            h1_connection_has(head, "keep-alive") && !h1_connection_has(head, "close");
    if (out->until_close)
        out->keep_alive = false;
    return 0;
}

bool sst_h1_is_hop_by_hop(const sst_head_t *head, sst_str_t name)
{
    static const char *const fixed[] = {
        "connection", "keep-alive",        "proxy-connection", "te",
        "trailer",    "transfer-encoding", "upgrade",          "content-length",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (sst_str_ieq_c(name, fixed[i]))
            return true;
    for (int i = sst_head_find(head, "connection", 0); i >= 0;
         i = sst_head_find(head, "connection", (uint32_t)i + 1)) {
        size_t pos = 0;
        sst_str_t item;
        sst_str_t list = sst_hdr_value(head, &head->hdrs[i]);
        while (sst_str_next_list_item(list, &pos, &item))
            if (sst_str_ieq(item, name))
                return true;
    }
    return false;
}

/* The one reason-phrase table (RFC 9110 §15): sidestep's own answers, the admin API, the
 * redirect status lines and the test stub all take their phrases from here. */
static const char *const h1_status_texts[600] = {
    [100] = "Continue",
    [200] = "OK",
    [201] = "Created",
    [202] = "Accepted",
    [204] = "No Content",
    [206] = "Partial Content",
    [301] = "Moved Permanently",
    [302] = "Found",
    [303] = "See Other",
    [304] = "Not Modified",
    [307] = "Temporary Redirect",
    [308] = "Permanent Redirect",
    [400] = "Bad Request",
    [401] = "Unauthorized",
    [403] = "Forbidden",
    [404] = "Not Found",
    [405] = "Method Not Allowed",
    [408] = "Request Timeout",
    [409] = "Conflict",
    [410] = "Gone",
    [413] = "Content Too Large",
    [414] = "URI Too Long",
    [417] = "Expectation Failed",
    [429] = "Too Many Requests",
    [431] = "Request Header Fields Too Large",
    [500] = "Internal Server Error",
    [501] = "Not Implemented",
    [502] = "Bad Gateway",
    [503] = "Service Unavailable",
    [504] = "Gateway Timeout",
    [505] = "HTTP Version Not Supported",
};

const char *sst_h1_status_text(unsigned status)
{
    /* A status without a phrase of its own gets its class name (RFC 9110 §15: a client
     * treats an unknown status as the x00 of its class). */
    static const char *const classes[] = {"Unknown",     "Informational", "Success",
                                          "Redirection", "Client Error",  "Server Error"};

    if (status >= 600 || status < 100)
        return classes[0];
    if (h1_status_texts[status] != NULL)
        return h1_status_texts[status];
    return classes[status / 100];
}
