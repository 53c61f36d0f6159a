/* Internals shared by the stub's three files: the connection and stub structs, the limits, and
 * the functions one file calls in another. Test code: never linked into sidestep. */
#ifndef SST_STUB_INTERNAL_H
#define SST_STUB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "core/transport.h"
#include "sidestep/str.h"
#include "stub.h"

#define STUB_READ_SIZE    16384
#define STUB_HIGH_MARK    (256 * 1024) /* queued output that pauses parsing and reading */
#define STUB_LOW_MARK     (64 * 1024)  /* parsing resumes below this */
#define STUB_MAX_SEGS     32
#define STUB_COPY_MAX     4096 /* shared buffers up to this size are copied: fewer iovecs */
#define STUB_PATTERN      "0123456789abcdef"
#define STUB_PATTERN_LEN  16
#define STUB_SPAN         65536 /* pattern bytes per write segment */
#define STUB_MAX_HEAD     (256 * 1024)
#define STUB_MAX_HEADERS  4096
#define STUB_MAX_SIZE     ((uint64_t)1 << 40)
#define STUB_MAX_DELAY_MS 3600000
#define STUB_LINGER_MS    2000
#define STUB_RESET_MS     50 /* lets the half body reach the peer before the RST */
#define STUB_FLOOD        1000
#define STUB_BIG_HEADER   65536
#define STUB_MANY_HEADERS 500
#define STUB_PREPARED_MAX (1024 * 1024)
#define STUB_NAME_MAX     63
#define STUB_BACKLOG      1024

#define STUB_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"

typedef enum stub_kind_e {
    STUB_KIND_ECHO,       /* the listing of what was received */
    STUB_KIND_SIZED,      /* N pattern bytes */
    STUB_KIND_ECHO_BODY,  /* the request body, streamed back as it arrives */
    STUB_KIND_HEALTH,     /* /healthz */
    STUB_KIND_STATS,      /* /__stub/stats */
    STUB_KIND_SET_HEALTH, /* /__stub/health/N */
    STUB_KIND_REJECT,     /* a scripting error or an unsupported version: status + error */
} stub_kind_t;

typedef enum stub_state_e {
    STUB_CONN_READING,   /* parser live; may be paused by a delay, a body producer or output */
    STUB_CONN_FINISHING, /* last response queued; `after` runs once it is written */
    STUB_CONN_LINGERING, /* FIN sent; input discarded until EOF or the linger timer */
    STUB_CONN_RESETTING, /* waiting ORIGIN_RESET_MS before the RST */
    STUB_CONN_STALLED,   /* input discarded, never answers */
    STUB_CONN_CLOSING,
} stub_state_t;

typedef enum stub_after_e {
    STUB_AFTER_KEEP, /* keep-alive: parse the next request */
    STUB_AFTER_CLOSE,
    STUB_AFTER_RESET,
    STUB_AFTER_STALL,
} stub_after_t;

typedef enum stub_framing_e {
    STUB_FRAME_NONE, /* 204/304: no body, no length */
    STUB_FRAME_LENGTH,
    STUB_FRAME_CHUNKED,
    STUB_FRAME_CLOSE, /* close-delimited */
} stub_framing_t;

typedef enum stub_timer_e {
    STUB_TIMER_NONE,
    STUB_TIMER_DELAY,
    STUB_TIMER_RESET,
    STUB_TIMER_LINGER,
} stub_timer_t;

typedef enum stub_span_e { STUB_SPAN_NONE, STUB_SPAN_FIELD, STUB_SPAN_VALUE } stub_span_t;

/* One piece of queued output: bytes in the side's own buffer (ref == NULL, at off) or a
 * reference to an immutable buffer owned by the origin. */
typedef struct stub_seg_s {
    const char *ref;
    size_t off;
    size_t len;
} stub_seg_t;

/* Output is double-buffered: one side fills while the other is being written. The last segment
 * slot never holds a reference, so a copy can always be appended. */
typedef struct stub_side_s {
    char *buf;
    size_t len;
    size_t cap;
    stub_seg_t segs[STUB_MAX_SEGS];
    uv_buf_t bufs[STUB_MAX_SEGS];
    unsigned nsegs;
    size_t total;
} stub_side_t;

/* A header as offsets into the connection's head area (copied: llhttp spans die with the read
 * buffer). */
typedef struct stub_hdr_s {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
} stub_hdr_t;

/* What the current request asked for, settled when its head is complete. */
typedef struct stub_req_s {
    stub_kind_t kind;
    sst_stub_fail_t fail;
    stub_framing_t framing;
    unsigned status;
    uint64_t size;
    uint64_t delay_ms;
    uint64_t body_bytes;
    uint64_t body_limit;   /* body bytes actually sent (half for the mid-body failures) */
    const char *error;     /* REJECT: static text */
    unsigned health;       /* SET_HEALTH */
    size_t ntrailer_start; /* headers from this index on arrived as trailers */
    bool chunked;
    bool no_length;
    bool keep_alive;
    bool http10;
    bool is_head;
    bool expect_continue;
    bool scripted;  /* carried an X-Stub-* header */
    bool prepared;  /* answered from the origin's prepared buffer */
    bool delayed;   /* the delay has run */
    bool head_sent; /* ECHO_BODY: the answer started before the body was read */
    bool send_body;
    bool hash_started;
    bool hash_failed;
} stub_req_t;

typedef struct stub_conn_s stub_conn_t;

struct stub_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    llhttp_t parser;
    sst_stub_t *stub;
    stub_conn_t *prev;
    stub_conn_t *next;
    stub_state_t state;
    stub_after_t after;
    stub_timer_t timer_kind;
    stub_span_t last_span;
    unsigned pending_closes;
    unsigned err_status; /* 414/431 from our own caps; 0 means 400 */
    bool reading;
    bool writing;
    bool parser_paused; /* llhttp returned HPE_PAUSED; input waits at rbuf[rpos] */
    bool delaying;
    bool producing;
    bool peer_eof;
    bool in_message;
    bool oom; /* an allocation failed: close */
    stub_side_t side[2];
    unsigned fill; /* the side being filled */
    char *head;    /* request target and header bytes of the current request */
    size_t head_len;
    size_t head_cap;
    size_t url_off;
    size_t url_len;
    stub_hdr_t *hdrs;
    size_t nhdrs;
    size_t hdrs_cap;
    char *scratch; /* the echo listing under construction */
    size_t scratch_len;
    size_t scratch_cap;
    void *hash;
    uint64_t prod_left; /* pattern bytes still to queue */
    uint64_t prod_pos;
    bool prod_chunked;
    bool prod_terminate; /* end with the last chunk */
    stub_req_t req;
    size_t rpos;
    size_t rlen;
    bool pp_wait;    /* the PROXY header is still to come (proxy_protocol) */
    sst_pp_acc_t pp; /* its bytes when it arrives in pieces */
    char rbuf[STUB_READ_SIZE];
};

struct sst_stub_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t reject; /* accepts and drops a connection we could not allocate */
    bool reject_busy;
    bool accept_pending;
    bool stopping;
    bool listener_closed;
    char name[STUB_NAME_MAX + 1];
    uint16_t port;
    unsigned status;
    unsigned health_status;
    bool fixed_size;
    uint64_t size;
    uint64_t delay_ms;
    bool chunked;
    bool no_length;
    sst_stub_fail_t fail;
    size_t max_head;
    bool proxy_protocol;
    const sst_stub_hasher_t *hasher;
    char empty_hex[SST_STUB_HEX_MAX + 1]; /* digest of the empty body */
    llhttp_settings_t settings;
    stub_conn_t *conns;
    uint64_t nconns;
    sst_stub_stats_t stats;
    char *pattern; /* ORIGIN_SPAN + ORIGIN_PATTERN_LEN bytes of the pattern */
    char *flood;   /* ORIGIN_FLOOD interim responses */
    size_t flood_len;
    char *big; /* one 64 KiB header line */
    size_t big_len;
    char *prepared; /* the whole default response when it never varies */
    size_t prepared_len;
    size_t prepared_head_len;
    sst_stub_stop_cb done;
    void *done_arg;
};

/* stub.c: small helpers */
bool stub_status_ok(uint64_t status);
int stub_grow(char **buf, size_t *cap, size_t need);
__attribute__((format(printf, 4, 5))) bool stub_fmt(char *buf, size_t cap, size_t *len,
                                                    const char *fmt, ...);
int stub_parse_bool(sst_str_t v, bool *out);
bool stub_split_header(sst_str_t v, sst_str_t *name, sst_str_t *value);
void stub_maybe_done(sst_stub_t *o);
void stub_conn_gone(sst_stub_t *o);

/* stub_conn.c: a connection's I/O, its states and its parser */
/* Sets up a zeroed connection's handles and parser. Returns 0, or a libuv error with no
 * handle initialised (the caller frees conn). */
int stub_conn_init(stub_conn_t *conn, sst_stub_t *o);
void stub_settings_init(llhttp_settings_t *settings);
void stub_conn_update_reading(stub_conn_t *conn);
void stub_conn_set_state(stub_conn_t *conn, stub_state_t next);
void stub_conn_close(stub_conn_t *conn);
void stub_conn_reset(stub_conn_t *conn);
void stub_conn_response_done(stub_conn_t *conn);
void stub_conn_pump(stub_conn_t *conn);
void stub_out_copy(stub_conn_t *conn, const void *data, size_t len);
void stub_out_str(stub_conn_t *conn, sst_str_t s);
void stub_out_ref(stub_conn_t *conn, const char *data, size_t len);
__attribute__((format(printf, 2, 3))) void stub_out_fmt(stub_conn_t *conn, const char *fmt, ...);

/* stub_answer.c: what a request asks for, and the answer */
bool stub_starts_at_head(const stub_req_t *req);
size_t stub_head(const sst_stub_t *o, char *buf, size_t cap, unsigned status, const char *ctype,
                 stub_framing_t framing, uint64_t length, const char *connection);
void stub_conn_plan(stub_conn_t *conn);
void stub_conn_respond(stub_conn_t *conn);
void stub_conn_respond_head(stub_conn_t *conn);

#endif
