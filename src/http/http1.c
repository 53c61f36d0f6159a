/* HTTP/1.1 parsing around llhttp (strict, no lenient flags). A prescan runs ahead of llhttp over
 * every head and rejects what Debian's llhttp 8.1 lets through (bare CR, bare LF, obs-fold,
 * control characters, a malformed request-line); head fields are copied into a bounded
 * sst_head_t; the validated view of a head is built in h1_check.c. No sockets, no clock. */
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
