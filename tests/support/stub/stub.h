/* The stub origin: a scriptable HTTP/1.1 server on a libuv loop for the sidestep-stub program,
 * loopback tests and bench/. Test code, never linked into sidestep. Answers every request with
 * an echo of what it received unless told otherwise by X-Stub-* headers or its start options. */
#ifndef SST_STUB_H
#define SST_STUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sidestep/str.h"

/* What it speaks (tests/support/sst.py parses the same format):
 * - Default answer: 200, Content-Type: text/plain, X-Stub-Origin: NAME, and a body listing one
 *   item per line: "origin NAME PORT", "method M", "target T", "http 1.1", "header Name: value"
 *   per request header in received order, "trailer Name: value" per chunked trailer,
 *   "body-bytes N" and, with a hasher, "body-LABEL HEX". Request bodies are streamed.
 * - Per-request scripting headers, overriding the start options: X-Stub-Status: 200-599,
 *   X-Stub-Size: N (N bytes of "0123456789abcdef" repeated instead of the listing),
 *   X-Stub-Chunked: 1, X-Stub-Delay: MS (before the head), X-Stub-No-Length: 1 (close-delimited),
 *   X-Stub-Header: Name: value (repeatable), X-Stub-Fail: MODE (below, "none" clears a default),
 *   X-Stub-Echo-Body: 1 (the body streamed back as it arrives). A bad value or an unknown
 *   X-Stub-* header gets 400 with the reason, on a connection kept alive.
 * - Paths: /healthz answers "ok" (status per health_status); /__stub/stats answers JSON
 *   {"name", "requests", "health", "connections", "active"}; /__stub/health/N sets the /healthz
 *   status. /__stub/ paths ignore every default and X-Stub-* header.
 * - Keep-alive and pipelining (answers in order), Expect: 100-continue, HEAD, HTTP/1.0. A request
 *   llhttp rejects gets 400 (414/431 past the head cap) and the connection is closed. */

typedef struct sst_stub_s sst_stub_t;

/* Scripted misbehaviour (X-Stub-Fail: NAME, or a default for every request). */
#define SST_STUB_FAIL_MAP(XX)                                                                      \
    XX(NONE, "none")                     /* behave */                                              \
    XX(RESET, "reset")                   /* RST once the request head is read */                   \
    XX(CLOSE, "close")                   /* FIN once the head is read, no answer */                \
    XX(CLOSE_MID_BODY, "close-mid-body") /* head with Content-Length N, N/2 bytes, FIN */          \
    XX(RESET_MID_BODY, "reset-mid-body") /* same, then RST */                                      \
    XX(STALL, "stall")                   /* never answer, keep the socket open */                  \
    XX(STALL_BODY, "stall-body")         /* send the head, never the body */                       \
    XX(GARBAGE, "garbage")               /* "HELLO\r\n\r\n", then FIN */                           \
    XX(BAD_STATUS, "bad-status")         /* "HTTP/1.1 2000 OK", then FIN */                        \
    XX(DUP_CL, "dup-cl")                 /* two different Content-Length, then FIN */              \
    XX(CL_TE, "cl-te")                   /* Content-Length and Transfer-Encoding, then FIN */      \
    XX(BIG_HEADER, "big-header")         /* normal answer carrying one 64 KiB header */            \
    XX(MANY_HEADERS, "many-headers")     /* normal answer carrying 500 extra headers */            \
    XX(BAD_CHUNK, "bad-chunk")           /* chunked body with a non-hex chunk size, then FIN */    \
    XX(FLOOD_1XX, "1xx-flood")           /* 1000 "100 Continue" before the answer */               \
    XX(NO_CONTINUE, "no-continue")       /* ignore Expect: 100-continue */

typedef enum sst_stub_fail_e {
#define SST_STUB_FAIL_ENUM(id, text) SST_STUB_FAIL_##id,
    SST_STUB_FAIL_MAP(SST_STUB_FAIL_ENUM)
#undef SST_STUB_FAIL_ENUM
        SST_STUB_FAIL_COUNT_
} sst_stub_fail_t;

/* Parses a mode name ("reset", "1xx-flood", ...; exact, lower case). Returns 0 and sets *out, or
 * SST_EINVAL. */
int sst_stub_fail_parse(sst_str_t name, sst_stub_fail_t *out);
/* The name of a mode; never NULL ("?" for an out-of-range value). */
const char *sst_stub_fail_name(sst_stub_fail_t fail);

/* Longest hex digest a hasher may produce (SHA-512 size), without the NUL. */
#define SST_STUB_HEX_MAX 128

/* A streaming body hasher plugged in by the program (the origin links no crypto library). All
 * functions run on the origin's loop thread; each connection creates at most one state and
 * reuses it for every request it carries. */
typedef struct sst_stub_hasher_s {
    const char *label; /* the echo line is "body-LABEL HEX", e.g. "sha256" */
    /* New state, NULL on allocation failure. */
    void *(*create)(void *arg);
    /* Starts a digest over an empty input; returns 0 or a negative SST_E* code. */
    int (*reset)(void *state);
    /* Adds bytes; returns 0 or a negative SST_E* code. */
    int (*update)(void *state, const void *data, size_t len);
    /* Writes the lowercase hex digest and a NUL into hex (cap bytes, at least
     * SST_ORIGIN_HEX_MAX + 1); returns its length or a negative SST_E* code. */
    int (*final)(void *state, char *hex, size_t cap);
    void (*destroy)(void *state);
    void *arg;
} sst_stub_hasher_t;

/* Start options. Zero-initialised options give the echo origin. The fields from `status` to `fail`
 * are defaults that X-Stub-* request headers override per request; /healthz takes only delay_ms
 * and fail from them (a slow or broken origin is slow or broken for probes too). */
typedef struct sst_stub_opts_s {
    const char *name; /* echoed as "origin NAME PORT" and X-Stub-Origin; 1-63 token
                       * characters; copied; NULL means "origin" */
    uint16_t status;  /* 200-599; 0 means 200 */
    bool fixed_size;  /* answer `size` pattern bytes instead of the echo listing */
    uint64_t size;
    uint64_t delay_ms;      /* before the response head */
    bool chunked;           /* answer with Transfer-Encoding: chunked */
    bool no_length;         /* answer close-delimited */
    sst_stub_fail_t fail;   /* default misbehaviour; never applied to /__stub/ paths */
    uint16_t health_status; /* status of /healthz; 0 means 200 */
    size_t max_head;        /* request line + headers cap (431 past it); 0 means 256 KiB */
    bool reuseport;         /* SO_REUSEPORT, so several loops can share one port */
    bool proxy_protocol;    /* every connection opens with a PROXY v1/v2 header, read and
                               dropped (a backend behind send_proxy_protocol); a connection
                               without a valid one is closed */
    /* Borrowed, may be NULL (the echo then reports only the body length); must outlive the
     * origin. */
    const sst_stub_hasher_t *hasher;
} sst_stub_opts_t;

typedef struct sst_stub_stats_s {
    uint64_t requests;    /* request heads read, minus /healthz and /__stub/ paths */
    uint64_t health;      /* /healthz request heads read */
    uint64_t connections; /* accepted since start */
    uint64_t active;      /* open now */
} sst_stub_stats_t;

/* Binds `addr` (numeric "127.0.0.1:0", "[::1]:9001"; port 0 picks one) and listens on `loop`.
 * Returns 0 and sets *out, or a negative SST_E* code (SST_EINVAL for bad options or address,
 * SST_ENOMEM, or the libuv bind/listen error such as UV_EADDRINUSE). On failure no callback ever
 * runs, but a listener handle may still be closing: run the loop before uv_loop_close(). The
 * process must ignore SIGPIPE. */
int sst_stub_start(uv_loop_t *loop, const char *addr, const sst_stub_opts_t *opts,
                   sst_stub_t **out);

/* The port actually bound. Like every function here, call it from the loop's thread. */
uint16_t sst_stub_port(const sst_stub_t *stub);

/* Copies the counters into *out. */
void sst_stub_stats(const sst_stub_t *stub, sst_stub_stats_t *out);

/* Changes the status /healthz answers from now on (200-599), as a request to /__stub/health/N
 * does. Returns 0 or SST_EINVAL. */
int sst_stub_set_health(sst_stub_t *stub, uint16_t status);

typedef void (*sst_stub_stop_cb)(void *arg);

/* Closes the listener and every connection, then frees the origin. Returns 0, and `done` (may be
 * NULL) runs exactly once, later, from the loop, after the last handle closed. A second call
 * before then returns SST_EBUSY (no callback); once `done` ran the pointer is gone. */
int sst_stub_stop(sst_stub_t *stub, sst_stub_stop_cb done, void *arg);

#endif
