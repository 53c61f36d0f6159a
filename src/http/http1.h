/* HTTP/1.1 message parsing around llhttp: head storage with hard limits, sidestep's own strict
 * checks where Debian's llhttp 8.1 is lax, and the validated view of a request or response head.
 * Owns no sockets and no clock, so it is tested byte by byte without a loop. */
#ifndef SST_HTTP1_H
#define SST_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "sidestep/str.h"

/* One header field: offsets into sst_head_t.text, so the text can grow by realloc. */
typedef struct sst_hdr_s {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
} sst_hdr_t;

/* Storage for one message head: the request-target or reason phrase, then the fields. Pooled
 * per worker; growing is bounded by the limits the parser enforces. */
typedef struct sst_head_s {
    struct sst_head_s *next; /* free list link */
    char *text;
    uint32_t len, cap;
    sst_hdr_t *hdrs;
    uint32_t n_hdrs, cap_hdrs;
    uint32_t url_off, url_len;       /* request-target (requests) */
    uint32_t reason_off, reason_len; /* reason phrase (responses) */
} sst_head_t;

/* Allocates an empty head with small initial capacity; NULL on ENOMEM. */
sst_head_t *sst_head_new(void);
void sst_head_free(sst_head_t *h);
/* Forgets the content, keeps the capacity (shrinks it back when it grew past `keep` bytes). */
void sst_head_clear(sst_head_t *h, uint32_t keep);

static inline sst_str_t sst_hdr_name(const sst_head_t *h, const sst_hdr_t *f)
{
    return sst_str(h->text + f->name_off, f->name_len);
}
static inline sst_str_t sst_hdr_value(const sst_head_t *h, const sst_hdr_t *f)
{
    return sst_str(h->text + f->value_off, f->value_len);
}
static inline sst_str_t sst_head_url(const sst_head_t *h)
{
    return sst_str(h->text + h->url_off, h->url_len);
}

/* Index of the first field named `name` (case-insensitive) at or after `from`, or -1. */
int sst_head_find(const sst_head_t *h, const char *name, uint32_t from);

typedef struct sst_h1_limits_s {
    uint64_t request_line; /* request-line or status-line bytes, without CRLF */
    uint64_t field;        /* one field: name + value bytes */
    uint64_t head;         /* whole head, including CRLFs */
    uint64_t headers;      /* number of fields */
    uint64_t body;         /* body bytes; 0 = unlimited */
} sst_h1_limits_t;

typedef enum sst_h1_rc_e {
    SST_H1_MORE = 0, /* all input consumed; feed more */
    SST_H1_HEAD,     /* the head is complete: *consumed stops right after it; sst_h1_resume() */
    SST_H1_DONE,     /* the message is complete: *consumed stops right after it */
    SST_H1_ERROR,    /* sticky: err_status / err_reason say why */
} sst_h1_rc_t;

/* Body bytes as parsed (chunk framing removed). Returning non-zero stops parsing with an
 * error (the callback has set its own reason). */
typedef int (*sst_h1_body_cb)(void *opaque, const char *at, size_t len);

typedef struct sst_h1_s {
    llhttp_t p;
    sst_h1_limits_t lim;
    sst_head_t *head; /* borrowed from the caller while a head is being read */
    sst_h1_body_cb on_body;
    void *opaque;
    bool response;
    bool head_request; /* responses: the request was HEAD, so no body follows */
    /* prescan of head bytes, ahead of llhttp */
    uint8_t ps;
    uint8_t rl_spaces;
    bool rl_prev_sp;
    bool rl_method_bad; /* a byte before the first SP is not a tchar */
    uint32_t line_len;
    uint64_t head_bytes;
    /* callback accumulation */
    uint8_t cb_state;
    uint32_t field_len;
    bool in_trailers;
    uint32_t n_trailers;   /* trailer fields seen: bounded like head fields */
    uint32_t trailer_name; /* bytes of the current trailer field name */
    bool paused_trailers;  /* stopped after the last chunk: the prescan takes the trailers */
    bool paused_chunk;     /* stopped after a chunk's data: its CRLF is checked next */
    uint8_t chunk_crlf;    /* bytes of the CRLF after a chunk's data not checked yet (2, 1, 0) */
    bool paused_head, paused_done;
    uint32_t n_informational; /* 1xx heads seen (responses) */
    uint64_t body_bytes;
    uint64_t ext_bytes; /* chunk-extension bytes in the current chunk line */
    uint16_t err_status;
    const char *err_reason;
} sst_h1_t;

/* Sets up a parser. `lim` is copied. */
void sst_h1_init(sst_h1_t *h, bool response, const sst_h1_limits_t *lim, sst_h1_body_cb on_body,
                 void *opaque);
/* Prepares for the next message on the same connection (after SST_H1_DONE). */
void sst_h1_next(sst_h1_t *h);
/* Continues after SST_H1_HEAD or SST_H1_DONE. */
void sst_h1_resume(sst_h1_t *h);

/* Parses up to len bytes. A head must have a storage area (h->head) before its first byte. */
sst_h1_rc_t sst_h1_feed(sst_h1_t *h, const char *data, size_t len, size_t *consumed);
/* Tells the parser the peer closed: completes a close-delimited response body (SST_H1_DONE),
 * reports MORE when idle between messages, or ERROR when a message was cut short. */
sst_h1_rc_t sst_h1_eof(sst_h1_t *h);

/* True between messages (nothing of a new message has been seen). */
bool sst_h1_idle(const sst_h1_t *h);

/* The validated request head. Slices point into the head's text. */
typedef struct sst_h1_request_s {
    uint8_t method; /* llhttp_method_t */
    sst_str_t method_name;
    sst_str_t target; /* exactly as received */
    sst_str_t host;   /* authority used for routing and forwarding */
    sst_str_t origin; /* Origin field value, empty when absent */
    uint8_t minor;    /* HTTP/1.minor */
    bool keep_alive;  /* the client allows another request on this connection */
    bool chunked;
    bool has_length; /* Content-Length present */
    uint64_t content_length;
    bool has_body; /* chunked, or Content-Length > 0 */
    bool expect_continue;
    bool absolute_form;
    int connection_idx; /* index of the (first) Connection field, -1 when absent */
} sst_h1_request_t;

/* Checks a complete request head (call at SST_H1_HEAD) and fills *out. Returns 0, or the
 * status to answer (400, 405, 413, 417, 501, 505) with *reason set; the caller then closes. */
int sst_h1_check_request(const sst_h1_t *h, sst_h1_request_t *out, const char **reason);

typedef struct sst_h1_response_s {
    uint16_t status;
    uint8_t minor;
    bool keep_alive; /* the backend allows reuse */
    bool chunked;
    bool has_length;
    uint64_t content_length;
    bool no_body;     /* HEAD, 1xx, 204, 304 */
    bool until_close; /* body delimited by the backend closing */
    int connection_idx;
} sst_h1_response_t;

/* Checks a complete response head; returns 0 or 502 with *reason set. */
int sst_h1_check_response(const sst_h1_t *h, sst_h1_response_t *out, const char **reason);

/* True for fields a proxy must not forward (RFC 9110 §7.6.1): Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and any field named in the
 * message's Connection field(s). Content-Length is also dropped: framing is re-emitted. */
bool sst_h1_is_hop_by_hop(const sst_head_t *head, sst_str_t name);

/* Reason phrase of a status ("Temporary Redirect"); a status 100-599 without a phrase of its own
 * gets its class name ("Client Error"), anything else "Unknown". Never NULL. The only
 * reason-phrase table: responses sidestep writes and the test stub's both use it. */
const char *sst_h1_status_text(unsigned status);

#endif
