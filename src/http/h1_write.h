/* The HTTP/1.1 writer: the heads sidestep sends on, rebuilt from parsed heads (never copied from
 * the raw bytes, so nothing the parser tolerated reaches a peer in another shape), into a
 * caller's buffer. Pure: no libuv, no allocation, no clock; tested byte by byte. */
#ifndef SST_HTTP_H1_WRITE_H
#define SST_HTTP_H1_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http1.h"
#include "sidestep/str.h"

/* How a generated head ends: the connection field, then the blank line. */
typedef enum sst_tail_e {
    SST_TAIL_PLAIN = 0,   /* "\r\n": HTTP/1.1 keep-alive */
    SST_TAIL_CLOSE,       /* "Connection: close\r\n\r\n" */
    SST_TAIL_KEEPALIVE10, /* "Connection: keep-alive\r\n\r\n": HTTP/1.0 keep-alive */
    SST_TAILS
} sst_tail_t;

extern const sst_str_t sst_h1_tails[SST_TAILS];

/* ---- the request head sent to a backend -------------------------------------------------- */

typedef struct sst_h1w_request_s {
    const sst_h1_request_t *info; /* the validated request head (sst_h1_check_request) */
    const sst_head_t *head;       /* its fields */
    sst_str_t target;  /* what the request line carries: the path and query of the target (an
                          absolute-form target reduced to origin-form), or "*" */
    sst_str_t peer;    /* the client's address: appended to X-Forwarded-For */
    bool peer_trusted; /* a trusted proxy: its forwarding fields are kept, else dropped */
    sst_str_t proto;   /* X-Forwarded-Proto unless a trusted peer sent one ("http") */
    /* Host when the request has none (an HTTP/1.0 client may send none, but the request goes
     * out as HTTP/1.1, which must carry one, RFC 9112 §3.2): the backend's address, as nginx's
     * proxy_pass does */
    sst_str_t default_host;
} sst_h1w_request_t;

/* Writes the request line (origin-form, HTTP/1.1), Host, the client's end-to-end fields (no
 * hop-by-hop field, none named in Connection, no Host or Expect, forwarding fields only from
 * a trusted peer), X-Forwarded-For/-Proto/-Host, Via (after the client's, RFC 9110 §7.6.3)
 * and the body framing (Transfer-Encoding: chunked for a chunked body, else Content-Length
 * when the request had one), then the blank line. Returns the length, or 0 when it does not
 * fit in `size` (buf's content is then unspecified). */
size_t sst_h1_write_request(const sst_h1w_request_t *in, char *buf, size_t size);
/* A size that sst_h1_write_request never exceeds for `in`. */
size_t sst_h1_request_bound(const sst_h1w_request_t *in);

/* ---- the response head sent to the client ------------------------------------------------ */

/* How a response body reaches the client. */
typedef enum sst_h1_frame_e {
    SST_FRAME_AS_IS = 0, /* no body, or Content-Length: the bytes go on unchanged */
    SST_FRAME_CHUNKED,   /* re-chunked for an HTTP/1.1 client (chunked or close-delimited) */
    SST_FRAME_CLOSE,     /* close-delimited for an HTTP/1.0 client: the connection closes */
} sst_h1_frame_t;

/* The framing of `resp` for a client speaking HTTP/1.`client_minor`. */
sst_h1_frame_t sst_h1_response_framing(const sst_h1_response_t *resp, unsigned client_minor);

typedef struct sst_h1w_response_s {
    const sst_h1_response_t *resp; /* the validated response head (sst_h1_check_response) */
    const sst_head_t *head;        /* its reason phrase and fields */
    unsigned client_minor;         /* the client's HTTP/1.minor */
    sst_tail_t tail;               /* how the head ends */
} sst_h1w_response_t;

/* Writes "HTTP/1.1 STATUS REASON", the backend's end-to-end fields (no hop-by-hop field),
 * Via (after the backend's), the framing for the client (Content-Length, except on a 204;
 * Transfer-Encoding: chunked when re-chunked, or on a body-less answer to a chunked HEAD or
 * 304 for a 1.1 client), then `tail`. Returns the length, or 0 when it does not fit. */
size_t sst_h1_write_response(const sst_h1w_response_t *in, char *buf, size_t size);
/* A size that sst_h1_write_response never exceeds for `in`. */
size_t sst_h1_response_bound(const sst_h1w_response_t *in);

#endif
