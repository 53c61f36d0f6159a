/* Scriptable HTTP/1.1 origin on a libuv loop (see origin.h). Request bodies are streamed through
 * the optional hasher, never buffered whole; bad input becomes 400 + close, never a crash. */
#define _DEFAULT_SOURCE /* SO_REUSEPORT is not POSIX */
#include "sidestep/origin.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include "sidestep/error.h"

#define ORIGIN_READ_SIZE    16384
#define ORIGIN_HIGH_MARK    (256 * 1024) /* queued output that pauses parsing and reading */
#define ORIGIN_LOW_MARK     (64 * 1024)  /* parsing resumes below this */
#define ORIGIN_MAX_SEGS     32
#define ORIGIN_COPY_MAX     4096 /* shared buffers up to this size are copied: fewer iovecs */
#define ORIGIN_PATTERN      "0123456789abcdef"
#define ORIGIN_PATTERN_LEN  16
#define ORIGIN_SPAN         65536 /* pattern bytes per write segment */
#define ORIGIN_MAX_HEAD     (256 * 1024)
#define ORIGIN_MAX_HEADERS  4096
#define ORIGIN_MAX_SIZE     ((uint64_t)1 << 40)
#define ORIGIN_MAX_DELAY_MS 3600000
#define ORIGIN_LINGER_MS    2000
#define ORIGIN_RESET_MS     50 /* lets the half body reach the peer before the RST */
#define ORIGIN_FLOOD        1000
#define ORIGIN_BIG_HEADER   65536
#define ORIGIN_MANY_HEADERS 500
#define ORIGIN_PREPARED_MAX (1024 * 1024)
#define ORIGIN_NAME_MAX     63
#define ORIGIN_BACKLOG      1024

#define ORIGIN_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"

/* Canned broken responses; each is followed by a FIN. */
static const char origin_garbage[] = "HELLO\r\n\r\n";
static const char origin_bad_status[] = "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n";
static const char origin_dup_cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
                                    "\r\nhello!";
static const char origin_cl_te[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
static const char origin_bad_chunk[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       "zz\r\nhello\r\n0\r\n\r\n";

static const char *const origin_fail_names[] = {
#define ORIGIN_FAIL_NAME(id, text) [SST_ORIGIN_FAIL_##id] = text,
    SST_ORIGIN_FAIL_MAP(ORIGIN_FAIL_NAME)
#undef ORIGIN_FAIL_NAME
};

typedef enum origin_kind_e {
    ORIGIN_KIND_ECHO,       /* the listing of what was received */
    ORIGIN_KIND_SIZED,      /* N pattern bytes */
    ORIGIN_KIND_ECHO_BODY,  /* the request body, streamed back as it arrives */
    ORIGIN_KIND_HEALTH,     /* /healthz */
    ORIGIN_KIND_STATS,      /* /__stub/stats */
    ORIGIN_KIND_SET_HEALTH, /* /__stub/health/N */
    ORIGIN_KIND_REJECT,     /* a scripting error or an unsupported version: status + error */
} origin_kind_t;

typedef enum origin_state_e {
    ORIGIN_CONN_READING,   /* parser live; may be paused by a delay, a body producer or output */
    ORIGIN_CONN_FINISHING, /* last response queued; `after` runs once it is written */
    ORIGIN_CONN_LINGERING, /* FIN sent; input discarded until EOF or the linger timer */
    ORIGIN_CONN_RESETTING, /* waiting ORIGIN_RESET_MS before the RST */
    ORIGIN_CONN_STALLED,   /* input discarded, never answers */
    ORIGIN_CONN_CLOSING,
} origin_state_t;

#define ORIGIN_BIT(s) (1u << (s))
/* Legal transitions: each row lists the states a connection may move to. */
__attribute__((unused)) static const unsigned origin_next_states[] = {
    [ORIGIN_CONN_READING] = ORIGIN_BIT(ORIGIN_CONN_FINISHING) | ORIGIN_BIT(ORIGIN_CONN_STALLED) |
                            ORIGIN_BIT(ORIGIN_CONN_CLOSING),
    [ORIGIN_CONN_FINISHING] = ORIGIN_BIT(ORIGIN_CONN_LINGERING) |
                              ORIGIN_BIT(ORIGIN_CONN_RESETTING) | ORIGIN_BIT(ORIGIN_CONN_STALLED) |
                              ORIGIN_BIT(ORIGIN_CONN_CLOSING),
    [ORIGIN_CONN_LINGERING] = ORIGIN_BIT(ORIGIN_CONN_CLOSING),
    [ORIGIN_CONN_RESETTING] = ORIGIN_BIT(ORIGIN_CONN_CLOSING),
    [ORIGIN_CONN_STALLED] = ORIGIN_BIT(ORIGIN_CONN_CLOSING),
    [ORIGIN_CONN_CLOSING] = 0,
};

typedef enum origin_after_e {
    ORIGIN_AFTER_KEEP, /* keep-alive: parse the next request */
    ORIGIN_AFTER_CLOSE,
    ORIGIN_AFTER_RESET,
    ORIGIN_AFTER_STALL,
} origin_after_t;

typedef enum origin_framing_e {
    ORIGIN_FRAME_NONE, /* 204/304: no body, no length */
    ORIGIN_FRAME_LENGTH,
    ORIGIN_FRAME_CHUNKED,
    ORIGIN_FRAME_CLOSE, /* close-delimited */
} origin_framing_t;

typedef enum origin_timer_e {
    ORIGIN_TIMER_NONE,
    ORIGIN_TIMER_DELAY,
    ORIGIN_TIMER_RESET,
    ORIGIN_TIMER_LINGER,
} origin_timer_t;

typedef enum origin_span_e { ORIGIN_SPAN_NONE, ORIGIN_SPAN_FIELD, ORIGIN_SPAN_VALUE } origin_span_t;

/* One piece of queued output: bytes in the side's own buffer (ref == NULL, at off) or a
 * reference to an immutable buffer owned by the origin. */
typedef struct origin_seg_s {
    const char *ref;
    size_t off;
    size_t len;
} origin_seg_t;

/* Output is double-buffered: one side fills while the other is being written. The last segment
 * slot never holds a reference, so a copy can always be appended. */
typedef struct origin_side_s {
    char *buf;
    size_t len;
    size_t cap;
    origin_seg_t segs[ORIGIN_MAX_SEGS];
    uv_buf_t bufs[ORIGIN_MAX_SEGS];
    unsigned nsegs;
    size_t total;
} origin_side_t;

/* A header as offsets into the connection's head area (copied: llhttp spans die with the read
 * buffer). */
typedef struct origin_hdr_s {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
} origin_hdr_t;

/* What the current request asked for, settled when its head is complete. */
typedef struct origin_req_s {
    origin_kind_t kind;
    sst_origin_fail_t fail;
    origin_framing_t framing;
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
} origin_req_t;

typedef struct origin_conn_s origin_conn_t;

struct origin_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    llhttp_t parser;
    sst_origin_t *origin;
    origin_conn_t *prev;
    origin_conn_t *next;
    origin_state_t state;
    origin_after_t after;
    origin_timer_t timer_kind;
    origin_span_t last_span;
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
    origin_side_t side[2];
    unsigned fill; /* the side being filled */
    char *head;    /* request target and header bytes of the current request */
    size_t head_len;
    size_t head_cap;
    size_t url_off;
    size_t url_len;
    origin_hdr_t *hdrs;
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
    origin_req_t req;
    size_t rpos;
    size_t rlen;
    char rbuf[ORIGIN_READ_SIZE];
};

struct sst_origin_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t reject; /* accepts and drops a connection we could not allocate */
    bool reject_busy;
    bool accept_pending;
    bool stopping;
    bool listener_closed;
    char name[ORIGIN_NAME_MAX + 1];
    uint16_t port;
    unsigned status;
    unsigned health_status;
    bool fixed_size;
    uint64_t size;
    uint64_t delay_ms;
    bool chunked;
    bool no_length;
    sst_origin_fail_t fail;
    size_t max_head;
    const sst_origin_hasher_t *hasher;
    char empty_hex[SST_ORIGIN_HEX_MAX + 1]; /* digest of the empty body */
    llhttp_settings_t settings;
    origin_conn_t *conns;
    uint64_t nconns;
    sst_origin_stats_t stats;
    char *pattern; /* ORIGIN_SPAN + ORIGIN_PATTERN_LEN bytes of the pattern */
    char *flood;   /* ORIGIN_FLOOD interim responses */
    size_t flood_len;
    char *big; /* one 64 KiB header line */
    size_t big_len;
    char *prepared; /* the whole default response when it never varies */
    size_t prepared_len;
    size_t prepared_head_len;
    sst_origin_stop_cb done;
    void *done_arg;
};

/* --- small helpers ------------------------------------------------------------------------- */

int sst_origin_fail_parse(sst_str_t name, sst_origin_fail_t *out)
{
    for (size_t i = 0; i < SST_ORIGIN_FAIL_COUNT_; i++) {
        if (sst_str_eq(name, sst_str_c(origin_fail_names[i]))) {
            *out = (sst_origin_fail_t)i;
            return 0;
        }
    }
    return SST_EINVAL;
}

const char *sst_origin_fail_name(sst_origin_fail_t fail)
{
    if ((unsigned)fail >= SST_ORIGIN_FAIL_COUNT_)
        return "?";
    return origin_fail_names[fail];
}

static const char *const origin_reasons[600] = {
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
    [429] = "Too Many Requests",
    [431] = "Request Header Fields Too Large",
    [500] = "Internal Server Error",
    [501] = "Not Implemented",
    [502] = "Bad Gateway",
    [503] = "Service Unavailable",
    [504] = "Gateway Timeout",
    [505] = "HTTP Version Not Supported",
    [2] = "Success",
    [3] = "Redirection",
    [4] = "Client Error",
};

static const char *origin_reason(unsigned status)
{
    static const char *const classes[] = {"Status",      "Informational", "Success",
                                          "Redirection", "Client Error",  "Server Error"};

    if (status < 600 && origin_reasons[status] != NULL)
        return origin_reasons[status];
    return classes[status < 600 ? status / 100 : 0];
}

static bool origin_status_ok(uint64_t status)
{
    return status >= 200 && status <= 599;
}

/* Grows *buf to hold `need` bytes, doubling; returns 0 or SST_ENOMEM (buffer untouched). */
static int origin_grow(char **buf, size_t *cap, size_t need)
{
    size_t ncap = *cap ? *cap : 1024;
    char *nbuf;

    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return SST_ENOMEM;
        ncap *= 2;
    }
    nbuf = realloc(*buf, ncap);
    if (nbuf == NULL)
        return SST_ENOMEM;
    *buf = nbuf;
    *cap = ncap;
    return 0;
}

/* Appends printf output at buf[*len]; false on truncation (buf then holds garbage). */
__attribute__((format(printf, 4, 5))) static bool origin_fmt(char *buf, size_t cap, size_t *len,
                                                             const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= cap)
        return false;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* Boolean scripting values: 1/0, true/false, yes/no, on/off. */
static int origin_parse_bool(sst_str_t v, bool *out)
{
    if (sst_str_ieq_c(v, "1") || sst_str_ieq_c(v, "true") || sst_str_ieq_c(v, "yes") ||
        sst_str_ieq_c(v, "on")) {
        *out = true;
        return 0;
    }
    if (sst_str_ieq_c(v, "0") || sst_str_ieq_c(v, "false") || sst_str_ieq_c(v, "no") ||
        sst_str_ieq_c(v, "off")) {
        *out = false;
        return 0;
    }
    return SST_EINVAL;
}

/* "Name: value" of X-Stub-Header; the value may be empty. */
static bool origin_split_header(sst_str_t v, sst_str_t *name, sst_str_t *value)
{
    const char *colon = v.len ? memchr(v.base, ':', v.len) : NULL;

    if (colon == NULL)
        return false;
    *name = sst_str(v.base, (size_t)(colon - v.base));
    *value = sst_str_trim_ows(sst_str(colon + 1, v.len - (size_t)(colon - v.base) - 1));
    if (!sst_str_is_token(*name))
        return false;
    for (size_t i = 0; i < value->len; i++) {
        unsigned char c = (unsigned char)value->base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* --- output --------------------------------------------------------------------------------- */

static origin_side_t *conn_fill_side(origin_conn_t *conn)
{
    return &conn->side[conn->fill];
}

static size_t conn_queued(const origin_conn_t *conn)
{
    return conn->side[0].total + conn->side[1].total;
}

static void out_copy(origin_conn_t *conn, const void *data, size_t len)
{
    origin_side_t *s = conn_fill_side(conn);
    origin_seg_t *last = s->nsegs ? &s->segs[s->nsegs - 1] : NULL;

    if (len == 0 || conn->oom)
        return;
    if (s->len > SIZE_MAX - len || origin_grow(&s->buf, &s->cap, s->len + len) != 0) {
        conn->oom = true;
        return;
    }
    if (last != NULL && last->ref == NULL) {
        assert(last->off + last->len == s->len);
        last->len += len;
    } else {
        assert(s->nsegs < ORIGIN_MAX_SEGS);
        s->segs[s->nsegs++] = (origin_seg_t){NULL, s->len, len};
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->total += len;
}

static void out_str(origin_conn_t *conn, sst_str_t s)
{
    out_copy(conn, s.base, s.len);
}

/* Queues bytes of a buffer the origin owns and never changes while connections live. */
static void out_ref(origin_conn_t *conn, const char *data, size_t len)
{
    origin_side_t *s = conn_fill_side(conn);

    if (len <= ORIGIN_COPY_MAX || s->nsegs > ORIGIN_MAX_SEGS - 2) {
        out_copy(conn, data, len);
        return;
    }
    if (conn->oom)
        return;
    s->segs[s->nsegs++] = (origin_seg_t){data, 0, len};
    s->total += len;
}

__attribute__((format(printf, 2, 3))) static void out_fmt(origin_conn_t *conn, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof(buf)); /* callers format short, bounded text */
    if (n > 0)
        out_copy(conn, buf, (size_t)n);
}

static void side_reset(origin_side_t *s)
{
    s->len = 0;
    s->nsegs = 0;
    s->total = 0;
}

/* --- connection lifecycle ------------------------------------------------------------------- */

static void conn_parse(origin_conn_t *conn);
static void conn_after_io(origin_conn_t *conn);
static void origin_maybe_done(sst_origin_t *o);

static void conn_set_state(origin_conn_t *conn, origin_state_t next)
{
    assert(origin_next_states[conn->state] & ORIGIN_BIT(next));
    conn->state = next;
}

static void conn_on_closed(uv_handle_t *handle)
{
    origin_conn_t *conn = handle->data;
    sst_origin_t *o = conn->origin;

    assert(conn->pending_closes > 0);
    if (--conn->pending_closes > 0)
        return;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        o->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    o->nconns--;
    if (conn->hash != NULL)
        o->hasher->destroy(conn->hash);
    free(conn->side[0].buf);
    free(conn->side[1].buf);
    free(conn->head);
    free(conn->hdrs);
    free(conn->scratch);
    free(conn);
    origin_maybe_done(o);
}

static void conn_close(origin_conn_t *conn)
{
    if (conn->state == ORIGIN_CONN_CLOSING)
        return; /* idempotent: error paths may race to close */
    conn_set_state(conn, ORIGIN_CONN_CLOSING);
    conn->pending_closes = 2;
    uv_close((uv_handle_t *)&conn->tcp, conn_on_closed);
    uv_close((uv_handle_t *)&conn->timer, conn_on_closed);
}

/* Closes with RST: SO_LINGER {1, 0} makes close() drop the connection instead of sending FIN. */
static void conn_reset(origin_conn_t *conn)
{
    uv_os_fd_t fd;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (conn->state == ORIGIN_CONN_CLOSING)
        return;
    if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    conn_close(conn);
}

static void conn_on_timer(uv_timer_t *timer);

static void conn_timer(origin_conn_t *conn, origin_timer_t kind, uint64_t ms)
{
    assert(conn->timer_kind == ORIGIN_TIMER_NONE);
    conn->timer_kind = kind;
    uv_timer_start(&conn->timer, conn_on_timer, ms, 0);
}

static void conn_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    origin_conn_t *conn = handle->data;

    /* Reading runs only once the previous input is consumed, so rbuf is free. */
    assert(conn->state != ORIGIN_CONN_READING || conn->rpos == conn->rlen);
    *buf = uv_buf_init(conn->rbuf, sizeof(conn->rbuf));
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    origin_conn_t *conn = stream->data;

    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || conn->state != ORIGIN_CONN_READING) {
            conn_close(conn);
            return;
        }
        conn->peer_eof = true;
        conn_after_io(conn);
        return;
    }
    if (conn->state != ORIGIN_CONN_READING)
        return; /* lingering or stalled: input is discarded */
    conn->rpos = 0;
    conn->rlen = (size_t)nread;
    conn_parse(conn);
}

static void conn_update_reading(origin_conn_t *conn)
{
    bool want = false;
    int err;

    switch (conn->state) {
    case ORIGIN_CONN_READING:
        want = !conn->parser_paused && !conn->peer_eof && conn->rpos == conn->rlen &&
               conn_queued(conn) <= ORIGIN_HIGH_MARK;
        break;
    case ORIGIN_CONN_LINGERING:
    case ORIGIN_CONN_STALLED:
        want = !conn->peer_eof;
        break;
    case ORIGIN_CONN_FINISHING:
    case ORIGIN_CONN_RESETTING:
    case ORIGIN_CONN_CLOSING:
        want = false;
        break;
    }
    if (want == conn->reading)
        return;
    if (want) {
        err = uv_read_start((uv_stream_t *)&conn->tcp, conn_on_alloc, conn_on_read);
        if (err != 0) {
            conn_close(conn);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&conn->tcp);
    }
    conn->reading = want;
}

static void conn_on_write(uv_write_t *req, int status);

static void conn_flush(origin_conn_t *conn)
{
    origin_side_t *s = conn_fill_side(conn);
    int err;

    if (conn->state == ORIGIN_CONN_CLOSING)
        return;
    if (conn->oom) {
        conn_close(conn);
        return;
    }
    if (conn->writing || s->total == 0)
        return;
    for (unsigned i = 0; i < s->nsegs; i++) {
        const origin_seg_t *seg = &s->segs[i];
        s->bufs[i] =
            uv_buf_init((char *)(seg->ref ? seg->ref : s->buf + seg->off), (unsigned)seg->len);
    }
    err = uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, s->bufs, s->nsegs, conn_on_write);
    if (err != 0) {
        conn_close(conn);
        return;
    }
    conn->writing = true;
    conn->fill ^= 1u;
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    origin_conn_t *conn = req->data;

    if (conn->state == ORIGIN_CONN_CLOSING)
        return;
    if (status < 0 || conn->peer_eof) {
        conn_close(conn);
        return;
    }
    /* Read until the peer closes too: closing with unread input would send RST and could destroy
     * the response in the peer's receive queue. */
    conn_timer(conn, ORIGIN_TIMER_LINGER, ORIGIN_LINGER_MS);
    conn_update_reading(conn);
}

/* Runs the `after` action once the last response is written. */
static void conn_finish(origin_conn_t *conn)
{
    switch (conn->after) {
    case ORIGIN_AFTER_CLOSE:
        conn_set_state(conn, ORIGIN_CONN_LINGERING);
        conn->sreq.data = conn;
        if (uv_shutdown(&conn->sreq, (uv_stream_t *)&conn->tcp, conn_on_shutdown) != 0)
            conn_close(conn);
        break;
    case ORIGIN_AFTER_RESET:
        conn_set_state(conn, ORIGIN_CONN_RESETTING);
        conn_timer(conn, ORIGIN_TIMER_RESET, ORIGIN_RESET_MS);
        break;
    case ORIGIN_AFTER_STALL:
        conn_set_state(conn, ORIGIN_CONN_STALLED);
        break;
    case ORIGIN_AFTER_KEEP:
        assert(!"FINISHING with keep-alive");
        conn_close(conn);
        break;
    }
}

/* After any event: write what is queued, notice a finished peer or a drained last response,
 * and read only when there is room. */
static void conn_after_io(origin_conn_t *conn)
{
    conn_flush(conn);
    if (conn->state == ORIGIN_CONN_READING && conn->peer_eof && !conn->parser_paused &&
        conn->rpos == conn->rlen) {
        if (conn->in_message) {
            conn_close(conn); /* the request will never be complete */
            return;
        }
        conn->after = ORIGIN_AFTER_CLOSE;
        conn_set_state(conn, ORIGIN_CONN_FINISHING);
    }
    if (conn->state == ORIGIN_CONN_FINISHING && !conn->writing && conn_queued(conn) == 0)
        conn_finish(conn);
    if (conn->state != ORIGIN_CONN_CLOSING)
        conn_update_reading(conn);
}

static void conn_response_done(origin_conn_t *conn)
{
    if (conn->after != ORIGIN_AFTER_KEEP)
        conn_set_state(conn, ORIGIN_CONN_FINISHING);
}

/* Queues pattern bytes up to the high mark; finishes the response when none are left. */
static void conn_pump(origin_conn_t *conn)
{
    const char *pattern = conn->origin->pattern;

    while (conn->prod_left > 0 && conn_queued(conn) < ORIGIN_HIGH_MARK && !conn->oom) {
        size_t n = conn->prod_left < ORIGIN_SPAN ? (size_t)conn->prod_left : ORIGIN_SPAN;
        const char *p = pattern + conn->prod_pos % ORIGIN_PATTERN_LEN;
        if (conn->prod_chunked)
            out_fmt(conn, "%zx\r\n", n);
        out_ref(conn, p, n);
        if (conn->prod_chunked)
            out_copy(conn, "\r\n", 2);
        conn->prod_left -= n;
        conn->prod_pos += n;
    }
    if (conn->prod_left > 0 || !conn->producing)
        return;
    if (conn->prod_terminate)
        out_copy(conn, "0\r\n\r\n", 5);
    conn->producing = false;
    conn_response_done(conn);
}

/* Resumes the parser once nothing holds it (delay, body producer, queued output). */
static void conn_continue(origin_conn_t *conn)
{
    if (conn->state == ORIGIN_CONN_CLOSING)
        return;
    if (conn->producing)
        conn_pump(conn);
    if (conn->state == ORIGIN_CONN_READING && conn->parser_paused && !conn->delaying &&
        !conn->producing && conn_queued(conn) <= ORIGIN_LOW_MARK) {
        conn->parser_paused = false;
        llhttp_resume(&conn->parser);
        conn_parse(conn);
        return;
    }
    conn_after_io(conn);
}

static void conn_on_write(uv_write_t *req, int status)
{
    origin_conn_t *conn = req->data;

    conn->writing = false;
    side_reset(&conn->side[conn->fill ^ 1u]);
    if (status < 0) {
        conn_close(conn); /* also UV_ECANCELED: the handle is closing */
        return;
    }
    conn_continue(conn);
}

/* --- responses ------------------------------------------------------------------------------ */

static bool origin_starts_at_head(const origin_req_t *req)
{
    return req->kind == ORIGIN_KIND_ECHO_BODY || req->fail == SST_ORIGIN_FAIL_RESET ||
           req->fail == SST_ORIGIN_FAIL_CLOSE || req->fail == SST_ORIGIN_FAIL_STALL;
}

/* Formats the fixed part of a response head (no extra headers, no final CRLF) into buf. Returns
 * the length, or 0 when buf is too small. */
static size_t origin_head(const sst_origin_t *o, char *buf, size_t cap, unsigned status,
                          const char *ctype, origin_framing_t framing, uint64_t length,
                          const char *connection)
{
    size_t len = 0;
    bool ok = origin_fmt(buf, cap, &len, "HTTP/1.1 %u %s\r\n", status, origin_reason(status));

    if (ok && framing != ORIGIN_FRAME_NONE && ctype != NULL)
        ok = origin_fmt(buf, cap, &len, "Content-Type: %s\r\n", ctype);
    if (ok && framing == ORIGIN_FRAME_LENGTH)
        ok = origin_fmt(buf, cap, &len, "Content-Length: %" PRIu64 "\r\n", length);
    if (ok && framing == ORIGIN_FRAME_CHUNKED)
        ok = origin_fmt(buf, cap, &len, "Transfer-Encoding: chunked\r\n");
    if (ok)
        ok = origin_fmt(buf, cap, &len, "X-Stub-Origin: %s\r\n", o->name);
    if (ok && connection != NULL)
        ok = origin_fmt(buf, cap, &len, "Connection: %s\r\n", connection);
    return ok ? len : 0;
}

/* Chooses framing, the `after` action and how much body is sent, for a body of `length`. */
static void conn_decide(origin_conn_t *conn, uint64_t length)
{
    origin_req_t *req = &conn->req;
    bool allowed = req->status != 204 && req->status != 304;
    bool mid = req->fail == SST_ORIGIN_FAIL_CLOSE_MID_BODY ||
               req->fail == SST_ORIGIN_FAIL_RESET_MID_BODY ||
               req->fail == SST_ORIGIN_FAIL_STALL_BODY;

    conn->after = req->keep_alive ? ORIGIN_AFTER_KEEP : ORIGIN_AFTER_CLOSE;
    if (!allowed) {
        req->framing = ORIGIN_FRAME_NONE;
    } else if (mid) {
        req->framing = ORIGIN_FRAME_LENGTH; /* the peer must be able to see the truncation */
    } else if (req->no_length || (req->chunked && req->http10)) {
        req->framing = ORIGIN_FRAME_CLOSE; /* HTTP/1.0 has no chunked coding */
        conn->after = ORIGIN_AFTER_CLOSE;
    } else if (req->chunked) {
        req->framing = ORIGIN_FRAME_CHUNKED;
    } else {
        req->framing = ORIGIN_FRAME_LENGTH;
    }
    req->send_body = allowed && !req->is_head;
    req->body_limit = req->send_body ? length : 0;
    switch (req->fail) {
    case SST_ORIGIN_FAIL_CLOSE_MID_BODY:
        conn->after = ORIGIN_AFTER_CLOSE;
        req->body_limit /= 2;
        break;
    case SST_ORIGIN_FAIL_RESET_MID_BODY:
        conn->after = ORIGIN_AFTER_RESET;
        req->body_limit /= 2;
        break;
    case SST_ORIGIN_FAIL_STALL_BODY:
        conn->after = ORIGIN_AFTER_STALL;
        req->body_limit = 0;
        break;
    default:
        break;
    }
}

/* Queues the response head decided by conn_decide(), extra headers included. */
static void conn_out_head(origin_conn_t *conn, const char *ctype, uint64_t length)
{
    sst_origin_t *o = conn->origin;
    origin_req_t *req = &conn->req;
    const char *connection = NULL;
    char buf[512];
    size_t len;

    if (conn->after != ORIGIN_AFTER_KEEP)
        connection = "close";
    else if (req->http10)
        connection = "keep-alive";
    len = origin_head(o, buf, sizeof(buf), req->status, ctype, req->framing, length, connection);
    assert(len > 0); /* every field is bounded: name <= 63, status 3 digits */
    out_copy(conn, buf, len);
    if (req->scripted) {
        for (size_t i = 0; i < req->ntrailer_start; i++) {
            const origin_hdr_t *h = &conn->hdrs[i];
            sst_str_t name, value;
            if (!sst_str_ieq_c(sst_str(conn->head + h->name_off, h->name_len), "x-stub-header"))
                continue;
            if (!origin_split_header(sst_str(conn->head + h->value_off, h->value_len), &name,
                                     &value))
                continue; /* validated when the head was read */
            out_str(conn, name);
            out_copy(conn, ": ", 2);
            out_str(conn, value);
            out_copy(conn, "\r\n", 2);
        }
    }
    if (req->fail == SST_ORIGIN_FAIL_BIG_HEADER)
        out_ref(conn, o->big, o->big_len);
    if (req->fail == SST_ORIGIN_FAIL_MANY_HEADERS)
        for (unsigned i = 0; i < ORIGIN_MANY_HEADERS; i++)
            out_fmt(conn, "X-Stub-Many-%u: %u\r\n", i, i);
    out_copy(conn, "\r\n", 2);
}

/* A response whose body is already in memory. */
static void conn_answer(origin_conn_t *conn, const char *ctype, const char *body, size_t len)
{
    conn_decide(conn, len);
    conn_out_head(conn, ctype, len);
    if (conn->req.body_limit > 0) {
        size_t n = (size_t)conn->req.body_limit;
        if (conn->req.framing == ORIGIN_FRAME_CHUNKED) {
            out_fmt(conn, "%zx\r\n", n);
            out_copy(conn, body, n);
            out_copy(conn, "\r\n", 2);
        } else {
            out_copy(conn, body, n);
        }
    }
    if (conn->req.send_body && conn->req.framing == ORIGIN_FRAME_CHUNKED)
        out_copy(conn, "0\r\n\r\n", 5);
    conn_response_done(conn);
}

static void scratch_put(origin_conn_t *conn, const char *data, size_t len)
{
    if (conn->oom)
        return;
    if (conn->scratch_len > SIZE_MAX - len ||
        origin_grow(&conn->scratch, &conn->scratch_cap, conn->scratch_len + len) != 0) {
        conn->oom = true;
        return;
    }
    memcpy(conn->scratch + conn->scratch_len, data, len);
    conn->scratch_len += len;
}

__attribute__((format(printf, 2, 3))) static void scratch_fmt(origin_conn_t *conn, const char *fmt,
                                                              ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof(buf));
    if (n > 0)
        scratch_put(conn, buf, (size_t)n);
}

/* The digest of the body, or false when hashing failed. */
static bool conn_digest(origin_conn_t *conn, char *hex, size_t cap)
{
    const sst_origin_hasher_t *h = conn->origin->hasher;

    if (conn->req.hash_failed)
        return false;
    if (!conn->req.hash_started) {
        memcpy(hex, conn->origin->empty_hex, sizeof(conn->origin->empty_hex));
        return true;
    }
    return h->final(conn->hash, hex, cap) > 0;
}

/* Builds the echo listing in scratch; false when the body hash failed. */
static bool conn_build_echo(origin_conn_t *conn)
{
    const sst_origin_t *o = conn->origin;
    const llhttp_t *p = &conn->parser;
    char hex[SST_ORIGIN_HEX_MAX + 1];

    conn->scratch_len = 0;
    scratch_fmt(conn, "origin %s %u\n", o->name, o->port);
    scratch_fmt(conn, "method %s\n", llhttp_method_name((llhttp_method_t)p->method));
    scratch_put(conn, "target ", 7);
    scratch_put(conn, conn->head + conn->url_off, conn->url_len);
    scratch_fmt(conn, "\nhttp %u.%u\n", p->http_major, p->http_minor);
    for (size_t i = 0; i < conn->nhdrs; i++) {
        const origin_hdr_t *h = &conn->hdrs[i];
        if (i < conn->req.ntrailer_start)
            scratch_put(conn, "header ", 7);
        else
            scratch_put(conn, "trailer ", 8);
        scratch_put(conn, conn->head + h->name_off, h->name_len);
        scratch_put(conn, ": ", 2);
        scratch_put(conn, conn->head + h->value_off, h->value_len);
        scratch_put(conn, "\n", 1);
    }
    scratch_fmt(conn, "body-bytes %" PRIu64 "\n", conn->req.body_bytes);
    if (o->hasher != NULL) {
        if (!conn_digest(conn, hex, sizeof(hex)))
            return false;
        scratch_fmt(conn, "body-%s ", o->hasher->label);
        scratch_put(conn, hex, strlen(hex));
        scratch_put(conn, "\n", 1);
    }
    return true;
}

static void conn_answer_text(origin_conn_t *conn, unsigned status, const char *text)
{
    conn->req.status = status;
    conn_answer(conn, "text/plain", text, strlen(text));
}

/* The canned broken answer of a failure mode, or NULL. */
static const char *origin_canned(sst_origin_fail_t fail, size_t *len)
{
    const char *text = NULL;

    switch (fail) {
    case SST_ORIGIN_FAIL_GARBAGE:
        text = origin_garbage;
        break;
    case SST_ORIGIN_FAIL_BAD_STATUS:
        text = origin_bad_status;
        break;
    case SST_ORIGIN_FAIL_DUP_CL:
        text = origin_dup_cl;
        break;
    case SST_ORIGIN_FAIL_CL_TE:
        text = origin_cl_te;
        break;
    case SST_ORIGIN_FAIL_BAD_CHUNK:
        text = origin_bad_chunk;
        break;
    default:
        return NULL;
    }
    *len = strlen(text);
    return text;
}

/* The response at the message point: the request, body included, has been read. */
static void conn_respond(origin_conn_t *conn)
{
    sst_origin_t *o = conn->origin;
    origin_req_t *req = &conn->req;
    size_t canned_len = 0;
    const char *canned = origin_canned(req->fail, &canned_len);
    char text[512];
    size_t len = 0;

    if (canned != NULL) {
        out_copy(conn, canned, canned_len);
        conn->after = ORIGIN_AFTER_CLOSE;
        conn_response_done(conn);
        return;
    }
    if (req->fail == SST_ORIGIN_FAIL_FLOOD_1XX)
        out_ref(conn, o->flood, o->flood_len);
    if (req->prepared) {
        out_ref(conn, o->prepared, req->is_head ? o->prepared_head_len : o->prepared_len);
        return; /* keep-alive: nothing else to do */
    }

    switch (req->kind) {
    case ORIGIN_KIND_ECHO:
        if (!conn_build_echo(conn)) {
            conn_answer_text(conn, 500, "stub: hashing the body failed\n");
            return;
        }
        if (conn->oom)
            return;
        conn_answer(conn, "text/plain", conn->scratch, conn->scratch_len);
        break;
    case ORIGIN_KIND_SIZED:
        conn_decide(conn, req->size);
        conn_out_head(conn, "text/plain", req->size);
        conn->prod_left = req->body_limit;
        conn->prod_pos = 0;
        conn->prod_chunked = req->framing == ORIGIN_FRAME_CHUNKED;
        conn->prod_terminate = req->send_body && conn->prod_chunked;
        conn->producing = true;
        conn_pump(conn);
        break;
    case ORIGIN_KIND_HEALTH:
        conn_answer_text(conn, req->status, req->status < 400 ? "ok\n" : "unhealthy\n");
        break;
    case ORIGIN_KIND_STATS:
        (void)origin_fmt(text, sizeof(text), &len,
                         "{\"name\": \"%s\", \"requests\": %" PRIu64 ", \"health\": %" PRIu64
                         ", \"connections\": %" PRIu64 ", \"active\": %" PRIu64 "}\n",
                         o->name, o->stats.requests, o->stats.health, o->stats.connections,
                         o->nconns);
        req->status = 200;
        conn_answer(conn, "application/json", text, len);
        break;
    case ORIGIN_KIND_SET_HEALTH:
        o->health_status = req->health;
        (void)origin_fmt(text, sizeof(text), &len, "health %u\n", req->health);
        req->status = 200;
        conn_answer(conn, "text/plain", text, len);
        break;
    case ORIGIN_KIND_REJECT:
        (void)origin_fmt(text, sizeof(text), &len, "stub: %s\n", req->error);
        conn_answer(conn, "text/plain", text, len);
        break;
    case ORIGIN_KIND_ECHO_BODY:
        assert(!"ECHO_BODY answers at the head");
        break;
    }
}

/* The response at the head point: failures that do not wait for the body, and the body echo. */
static void conn_respond_head(origin_conn_t *conn)
{
    origin_req_t *req = &conn->req;
    uint64_t length = 0;

    switch (req->fail) {
    case SST_ORIGIN_FAIL_RESET:
        conn_reset(conn);
        return;
    case SST_ORIGIN_FAIL_CLOSE:
        conn->after = ORIGIN_AFTER_CLOSE;
        conn_set_state(conn, ORIGIN_CONN_FINISHING);
        return;
    case SST_ORIGIN_FAIL_STALL:
        conn_set_state(conn, ORIGIN_CONN_STALLED);
        return;
    default:
        break;
    }
    assert(req->kind == ORIGIN_KIND_ECHO_BODY);
    if (conn->parser.flags & F_CHUNKED)
        req->chunked = true;
    else
        length = conn->parser.content_length;
    if (req->fail == SST_ORIGIN_FAIL_FLOOD_1XX)
        out_ref(conn, conn->origin->flood, conn->origin->flood_len);
    conn_decide(conn, length);
    conn_out_head(conn, "application/octet-stream", length);
    req->head_sent = true;
}

static int conn_pause(origin_conn_t *conn)
{
    conn->parser_paused = true;
    return HPE_PAUSED;
}

/* Starts the response (after its delay) at the head or message point; returns what the llhttp
 * callback returns. */
static int conn_start(origin_conn_t *conn, bool at_head)
{
    origin_req_t *req = &conn->req;

    if (req->delay_ms > 0 && !req->delayed) {
        conn->delaying = true;
        conn_timer(conn, ORIGIN_TIMER_DELAY, req->delay_ms);
        return conn_pause(conn);
    }
    if (at_head)
        conn_respond_head(conn);
    else
        conn_respond(conn);
    if (conn->state != ORIGIN_CONN_READING || conn->producing ||
        conn_queued(conn) > ORIGIN_HIGH_MARK)
        return conn_pause(conn);
    return 0;
}

static void conn_on_timer(uv_timer_t *timer)
{
    origin_conn_t *conn = timer->data;
    origin_timer_t kind = conn->timer_kind;

    conn->timer_kind = ORIGIN_TIMER_NONE;
    switch (kind) {
    case ORIGIN_TIMER_DELAY:
        conn->delaying = false;
        conn->req.delayed = true;
        if (origin_starts_at_head(&conn->req))
            conn_respond_head(conn);
        else
            conn_respond(conn);
        conn_continue(conn);
        break;
    case ORIGIN_TIMER_RESET:
        conn_reset(conn);
        break;
    case ORIGIN_TIMER_LINGER:
        conn_close(conn);
        break;
    case ORIGIN_TIMER_NONE:
        break;
    }
}

/* --- request parsing ------------------------------------------------------------------------ */

static sst_str_t conn_hdr_name(const origin_conn_t *conn, size_t i)
{
    return sst_str(conn->head + conn->hdrs[i].name_off, conn->hdrs[i].name_len);
}

static sst_str_t conn_hdr_value(const origin_conn_t *conn, size_t i)
{
    return sst_str(conn->head + conn->hdrs[i].value_off, conn->hdrs[i].value_len);
}

/* Applies one X-Stub-* header; returns NULL or the error text. */
static const char *conn_script(origin_conn_t *conn, sst_str_t name, sst_str_t value)
{
    origin_req_t *req = &conn->req;
    sst_str_t key = sst_str(name.base + 7, name.len - 7); /* after "x-stub-" */
    sst_str_t hname, hvalue;
    uint64_t n;
    bool b;

    if (sst_str_ieq_c(key, "status")) {
        if (sst_str_to_u64(value, 999, &n) != 0 || !origin_status_ok(n))
            return "bad X-Stub-Status (200-599)";
        req->status = (unsigned)n;
    } else if (sst_str_ieq_c(key, "size")) {
        if (sst_str_to_u64(value, ORIGIN_MAX_SIZE, &n) != 0)
            return "bad X-Stub-Size";
        req->size = n;
        if (req->kind != ORIGIN_KIND_ECHO_BODY)
            req->kind = ORIGIN_KIND_SIZED;
    } else if (sst_str_ieq_c(key, "delay")) {
        if (sst_str_to_u64(value, ORIGIN_MAX_DELAY_MS, &n) != 0)
            return "bad X-Stub-Delay (milliseconds)";
        req->delay_ms = n;
    } else if (sst_str_ieq_c(key, "chunked")) {
        if (origin_parse_bool(value, &b) != 0)
            return "bad X-Stub-Chunked (1 or 0)";
        req->chunked = b;
    } else if (sst_str_ieq_c(key, "no-length")) {
        if (origin_parse_bool(value, &b) != 0)
            return "bad X-Stub-No-Length (1 or 0)";
        req->no_length = b;
    } else if (sst_str_ieq_c(key, "echo-body")) {
        if (origin_parse_bool(value, &b) != 0)
            return "bad X-Stub-Echo-Body (1 or 0)";
        if (b)
            req->kind = ORIGIN_KIND_ECHO_BODY;
    } else if (sst_str_ieq_c(key, "fail")) {
        if (sst_origin_fail_parse(value, &req->fail) != 0)
            return "unknown X-Stub-Fail mode";
    } else if (sst_str_ieq_c(key, "header")) {
        if (!origin_split_header(value, &hname, &hvalue))
            return "bad X-Stub-Header (Name: value)";
    } else {
        return "unknown X-Stub-* header";
    }
    return NULL;
}

/* Classifies the target's path and counts the request; returns NULL or an error text. */
static const char *conn_plan_path(origin_conn_t *conn, bool *control)
{
    sst_origin_t *o = conn->origin;
    origin_req_t *req = &conn->req;
    sst_str_t path = sst_str(conn->head + conn->url_off, conn->url_len);
    const char *q = path.len ? memchr(path.base, '?', path.len) : NULL;
    uint64_t n;

    if (q != NULL)
        path.len = (size_t)(q - path.base);
    *control = false;
    if (sst_str_eq(path, SST_STR_LIT("/__stub/stats"))) {
        *control = true;
        req->kind = ORIGIN_KIND_STATS;
    } else if (sst_str_has_prefix(path, SST_STR_LIT("/__stub/health/"))) {
        *control = true;
        req->kind = ORIGIN_KIND_SET_HEALTH;
        if (sst_str_to_u64(sst_str(path.base + 15, path.len - 15), 999, &n) != 0 ||
            !origin_status_ok(n))
            return "bad health status (200-599)";
        req->health = (unsigned)n;
    } else if (sst_str_eq(path, SST_STR_LIT("/healthz"))) {
        req->kind = ORIGIN_KIND_HEALTH;
        req->status = o->health_status;
        req->chunked = false;
        req->no_length = false;
        o->stats.health++;
    } else {
        o->stats.requests++;
    }
    if (*control) {
        /* Control paths ignore the defaults so a misbehaving stub can still be inspected. */
        req->status = 200;
        req->delay_ms = 0;
        req->chunked = false;
        req->no_length = false;
        req->fail = SST_ORIGIN_FAIL_NONE;
    }
    return NULL;
}

/* Settles what the request asks for, from the defaults, the path and X-Stub-* headers. */
static void conn_plan(origin_conn_t *conn)
{
    sst_origin_t *o = conn->origin;
    origin_req_t *req = &conn->req;
    const llhttp_t *p = &conn->parser;
    const char *error;
    bool control;

    req->ntrailer_start = conn->nhdrs;
    req->is_head = p->method == HTTP_HEAD;
    req->http10 = p->http_major == 1 && p->http_minor == 0;
    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    req->status = o->status;
    req->size = o->size;
    req->delay_ms = o->delay_ms;
    req->chunked = o->chunked;
    req->no_length = o->no_length;
    req->fail = o->fail;
    req->kind = o->fixed_size ? ORIGIN_KIND_SIZED : ORIGIN_KIND_ECHO;
    error = conn_plan_path(conn, &control);

    for (size_t i = 0; i < conn->nhdrs; i++) {
        sst_str_t name = conn_hdr_name(conn, i);
        sst_str_t value = conn_hdr_value(conn, i);
        if (sst_str_ieq_c(name, "expect")) {
            req->expect_continue = sst_str_ieq_c(value, "100-continue");
        } else if (!control && name.len > 7 && sst_str_ieq_c(sst_str(name.base, 7), "x-stub-")) {
            req->scripted = true;
            if (error == NULL)
                error = conn_script(conn, name, value);
        }
    }
    if (req->kind == ORIGIN_KIND_ECHO_BODY && req->fail != SST_ORIGIN_FAIL_NONE &&
        req->fail != SST_ORIGIN_FAIL_NO_CONTINUE && req->fail != SST_ORIGIN_FAIL_BIG_HEADER &&
        req->fail != SST_ORIGIN_FAIL_MANY_HEADERS && req->fail != SST_ORIGIN_FAIL_FLOOD_1XX &&
        !origin_starts_at_head(req))
        req->kind = ORIGIN_KIND_ECHO; /* a failure that shapes the body wins over the echo */
    if (p->http_major != 1) {
        error = "unsupported HTTP version";
        req->status = 505;
        req->keep_alive = false;
    } else if (error != NULL) {
        req->status = 400;
    }
    if (error != NULL) {
        req->kind = ORIGIN_KIND_REJECT;
        req->error = error;
        req->fail = SST_ORIGIN_FAIL_NONE;
        req->delay_ms = 0;
        req->chunked = false;
        req->no_length = false;
    }
    req->prepared = o->prepared != NULL && req->kind == ORIGIN_KIND_SIZED && !req->scripted &&
                    !req->http10 && req->keep_alive;
}

static int conn_cap_error(origin_conn_t *conn, int err, unsigned status)
{
    if (err == SST_ENOMEM) {
        conn->oom = true;
        llhttp_set_error_reason(&conn->parser, "out of memory");
    } else {
        conn->err_status = status;
        llhttp_set_error_reason(&conn->parser, status == 414 ? "request target too long"
                                                             : "request head too large");
    }
    return HPE_USER;
}

/* Copies a span of the request head; SST_E2BIG past the cap. */
static int conn_head_append(origin_conn_t *conn, const char *at, size_t len)
{
    size_t max = conn->origin->max_head;

    if (len > max - conn->head_len)
        return SST_E2BIG;
    if (origin_grow(&conn->head, &conn->head_cap, conn->head_len + len) != 0)
        return SST_ENOMEM;
    memcpy(conn->head + conn->head_len, at, len);
    conn->head_len += len;
    return 0;
}

static int conn_on_message_begin(llhttp_t *p)
{
    origin_conn_t *conn = p->data;

    memset(&conn->req, 0, sizeof(conn->req));
    conn->head_len = 0;
    conn->nhdrs = 0;
    conn->url_off = 0;
    conn->url_len = 0;
    conn->last_span = ORIGIN_SPAN_NONE;
    conn->after = ORIGIN_AFTER_KEEP;
    conn->in_message = true;
    return 0;
}

static int conn_on_url(llhttp_t *p, const char *at, size_t len)
{
    origin_conn_t *conn = p->data;
    int err;

    if (conn->url_len == 0)
        conn->url_off = conn->head_len;
    err = conn_head_append(conn, at, len);
    if (err != 0)
        return conn_cap_error(conn, err, 414);
    conn->url_len += len;
    return 0;
}

static int conn_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    origin_conn_t *conn = p->data;
    int err;

    if (conn->last_span != ORIGIN_SPAN_FIELD) {
        if (conn->nhdrs == ORIGIN_MAX_HEADERS)
            return conn_cap_error(conn, SST_E2BIG, 431);
        if (conn->nhdrs == conn->hdrs_cap) {
            size_t ncap = conn->hdrs_cap ? conn->hdrs_cap * 2 : 32;
            origin_hdr_t *nh = realloc(conn->hdrs, ncap * sizeof(*nh));
            if (nh == NULL)
                return conn_cap_error(conn, SST_ENOMEM, 431);
            conn->hdrs = nh;
            conn->hdrs_cap = ncap;
        }
        conn->hdrs[conn->nhdrs++] = (origin_hdr_t){conn->head_len, 0, conn->head_len, 0};
        conn->last_span = ORIGIN_SPAN_FIELD;
    }
    err = conn_head_append(conn, at, len);
    if (err != 0)
        return conn_cap_error(conn, err, 431);
    conn->hdrs[conn->nhdrs - 1].name_len += len;
    return 0;
}

static int conn_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    origin_conn_t *conn = p->data;
    origin_hdr_t *h;
    int err;

    if (conn->nhdrs == 0)
        return HPE_USER; /* llhttp always reports a field first */
    h = &conn->hdrs[conn->nhdrs - 1];
    if (conn->last_span != ORIGIN_SPAN_VALUE) {
        h->value_off = conn->head_len;
        conn->last_span = ORIGIN_SPAN_VALUE;
    }
    err = conn_head_append(conn, at, len);
    if (err != 0)
        return conn_cap_error(conn, err, 431);
    h->value_len += len;
    return 0;
}

static int conn_on_headers_complete(llhttp_t *p)
{
    origin_conn_t *conn = p->data;
    origin_req_t *req = &conn->req;
    bool has_body = (p->flags & F_CHUNKED) || p->content_length > 0;

    /* This origin speaks no other protocol: CONNECT and Upgrade get an ordinary answer. */
    p->upgrade = 0;
    conn->last_span = ORIGIN_SPAN_NONE;
    conn_plan(conn);
    /* RFC 9110 §10.1.1: only HTTP/1.1 clients wait, and only for a body. */
    if (req->expect_continue && has_body && !req->http10 &&
        req->fail != SST_ORIGIN_FAIL_NO_CONTINUE && req->fail != SST_ORIGIN_FAIL_RESET &&
        req->fail != SST_ORIGIN_FAIL_CLOSE && req->fail != SST_ORIGIN_FAIL_STALL)
        out_copy(conn, ORIGIN_CONTINUE, sizeof(ORIGIN_CONTINUE) - 1);
    if (!origin_starts_at_head(req))
        return 0;
    return conn_start(conn, true);
}

static int conn_on_body(llhttp_t *p, const char *at, size_t len)
{
    origin_conn_t *conn = p->data;
    origin_req_t *req = &conn->req;
    const sst_origin_hasher_t *h = conn->origin->hasher;

    req->body_bytes += len;
    if (req->kind == ORIGIN_KIND_ECHO_BODY) {
        if (!req->send_body)
            return 0;
        if (req->framing == ORIGIN_FRAME_CHUNKED)
            out_fmt(conn, "%zx\r\n", len);
        out_copy(conn, at, len);
        if (req->framing == ORIGIN_FRAME_CHUNKED)
            out_copy(conn, "\r\n", 2);
        return 0;
    }
    if (req->kind != ORIGIN_KIND_ECHO || h == NULL || req->hash_failed)
        return 0;
    if (conn->hash == NULL) {
        conn->hash = h->create(h->arg);
        if (conn->hash == NULL) {
            req->hash_failed = true;
            return 0;
        }
    }
    if (!req->hash_started) {
        req->hash_started = true;
        if (h->reset(conn->hash) != 0) {
            req->hash_failed = true;
            return 0;
        }
    }
    if (h->update(conn->hash, at, len) != 0)
        req->hash_failed = true;
    return 0;
}

static int conn_on_message_complete(llhttp_t *p)
{
    origin_conn_t *conn = p->data;
    origin_req_t *req = &conn->req;

    conn->in_message = false;
    if (req->kind != ORIGIN_KIND_ECHO_BODY)
        return conn_start(conn, false);
    if (req->send_body && req->framing == ORIGIN_FRAME_CHUNKED)
        out_copy(conn, "0\r\n\r\n", 5);
    conn_response_done(conn);
    if (conn->state != ORIGIN_CONN_READING || conn_queued(conn) > ORIGIN_HIGH_MARK)
        return conn_pause(conn);
    return 0;
}

/* A request llhttp rejected: answer 400 (or 414/431) and close, unless an answer to this very
 * request already started, in which case only closing is left. */
static void conn_parse_error(origin_conn_t *conn, llhttp_errno_t err)
{
    const char *reason = llhttp_get_error_reason(&conn->parser);
    unsigned status = conn->err_status ? conn->err_status : 400;
    char head[512], body[256];
    size_t hlen, blen = 0;

    conn->after = ORIGIN_AFTER_CLOSE;
    if (conn->oom) {
        conn_close(conn);
        return;
    }
    if (conn->in_message && conn->req.head_sent) {
        /* The echo of this body is under way: what is queued goes out, then the FIN tells the
         * peer the answer is truncated. */
        conn_set_state(conn, ORIGIN_CONN_FINISHING);
        return;
    }
    if (!origin_fmt(body, sizeof(body), &blen, "bad request: %.160s (%s)\n",
                    reason ? reason : "malformed", llhttp_errno_name(err)))
        blen = 0;
    hlen = origin_head(conn->origin, head, sizeof(head), status, "text/plain", ORIGIN_FRAME_LENGTH,
                       blen, "close");
    assert(hlen > 0);
    out_copy(conn, head, hlen);
    out_copy(conn, "\r\n", 2);
    out_copy(conn, body, blen);
    conn->in_message = false;
    conn_set_state(conn, ORIGIN_CONN_FINISHING);
}

static void conn_parse(origin_conn_t *conn)
{
    while (conn->state == ORIGIN_CONN_READING && !conn->parser_paused && conn->rpos < conn->rlen) {
        const char *data = conn->rbuf + conn->rpos;
        llhttp_errno_t err = llhttp_execute(&conn->parser, data, conn->rlen - conn->rpos);

        if (err == HPE_OK) {
            conn->rpos = conn->rlen;
        } else if (err == HPE_PAUSED) {
            /* error_pos is where parsing stopped: what follows waits for llhttp_resume(). */
            conn->rpos = (size_t)(llhttp_get_error_pos(&conn->parser) - conn->rbuf);
            assert(conn->parser_paused || conn->state != ORIGIN_CONN_READING);
            conn->parser_paused = true;
        } else if (conn->state == ORIGIN_CONN_READING) {
            conn->rpos = conn->rlen;
            conn_parse_error(conn, err);
        }
    }
    conn_after_io(conn);
}

/* --- listener ------------------------------------------------------------------------------- */

static void origin_on_connection(uv_stream_t *server, int status);

static void origin_on_reject_closed(uv_handle_t *handle)
{
    sst_origin_t *o = handle->data;

    o->reject_busy = false;
    if (o->accept_pending && !o->stopping) {
        o->accept_pending = false;
        origin_on_connection((uv_stream_t *)&o->listener, 0);
    }
    origin_maybe_done(o);
}

/* Out of memory for a connection: accept and drop it, so the listener keeps serving. libuv
 * stops polling the listener until a pending connection is accepted, so one that arrives while
 * the reject handle is busy is taken once it is free. */
static void origin_reject(sst_origin_t *o)
{
    if (o->reject_busy) {
        o->accept_pending = true;
        return;
    }
    uv_tcp_init(o->loop, &o->reject);
    o->reject.data = o;
    o->reject_busy = true;
    (void)uv_accept((uv_stream_t *)&o->listener, (uv_stream_t *)&o->reject);
    uv_close((uv_handle_t *)&o->reject, origin_on_reject_closed);
}

static void origin_on_connection(uv_stream_t *server, int status)
{
    sst_origin_t *o = server->data;
    origin_conn_t *conn;

    if (status < 0 || o->stopping)
        return; /* libuv retries accept errors such as EMFILE itself */
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        origin_reject(o);
        return;
    }
    conn->origin = o;
    uv_tcp_init(o->loop, &conn->tcp);
    conn->tcp.data = conn;
    uv_timer_init(o->loop, &conn->timer);
    conn->timer.data = conn;
    conn->wreq.data = conn;
    conn->sreq.data = conn;
    llhttp_init(&conn->parser, HTTP_REQUEST, &o->settings);
    conn->parser.data = conn;
    conn->state = ORIGIN_CONN_READING;
    conn->next = o->conns;
    if (o->conns != NULL)
        o->conns->prev = conn;
    o->conns = conn;
    o->nconns++;
    o->stats.connections++;
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        conn_close(conn);
        return;
    }
    (void)uv_tcp_nodelay(&conn->tcp, 1);
    conn_update_reading(conn);
}

/* --- start / stop --------------------------------------------------------------------------- */

static void origin_free(sst_origin_t *o)
{
    free(o->pattern);
    free(o->flood);
    free(o->big);
    free(o->prepared);
    free(o);
}

static void origin_maybe_done(sst_origin_t *o)
{
    sst_origin_stop_cb done = o->done;
    void *arg = o->done_arg;

    if (!o->stopping || !o->listener_closed || o->nconns > 0 || o->reject_busy)
        return;
    origin_free(o);
    if (done != NULL)
        done(arg);
}

static void origin_on_listener_closed(uv_handle_t *handle)
{
    sst_origin_t *o = handle->data;

    o->listener_closed = true;
    origin_maybe_done(o);
}

static void origin_on_failed_close(uv_handle_t *handle)
{
    origin_free(handle->data);
}

/* "127.0.0.1:0" or "[::1]:9001", numeric only. */
static int origin_parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    sst_str_t s = sst_str_c(addr);
    const char *colon;
    char host[64];
    size_t hlen;
    uint64_t port;

    if (s.len == 0)
        return SST_EINVAL;
    colon = s.base + s.len;
    while (colon > s.base && colon[-1] != ':')
        colon--;
    if (colon == s.base)
        return SST_EINVAL;
    if (sst_str_to_u64(sst_str(colon, s.len - (size_t)(colon - s.base)), 65535, &port) != 0)
        return SST_EINVAL;
    hlen = (size_t)(colon - s.base) - 1;
    if (hlen >= 2 && s.base[0] == '[' && s.base[hlen - 1] == ']') {
        if (hlen - 2 >= sizeof(host))
            return SST_EINVAL;
        memcpy(host, s.base + 1, hlen - 2);
        host[hlen - 2] = '\0';
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : SST_EINVAL;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return SST_EINVAL;
    memcpy(host, s.base, hlen);
    host[hlen] = '\0';
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : SST_EINVAL;
}

/* libuv 1.44 cannot set SO_REUSEPORT, so that socket is made here and handed over. */
static int origin_bind(sst_origin_t *o, const struct sockaddr *sa, bool reuseport)
{
    socklen_t salen =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int one = 1;
    int fd, err;

    if (!reuseport)
        return uv_tcp_bind(&o->listener, sa, 0); /* libuv sets SO_REUSEADDR */
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, sa, salen) != 0) {
        err = uv_translate_sys_error(errno);
        close(fd);
        return err;
    }
    err = uv_tcp_open(&o->listener, fd);
    if (err != 0)
        close(fd);
    return err;
}

static int origin_validate(const sst_origin_opts_t *opts)
{
    sst_str_t name = sst_str_c(opts->name);

    if (opts->name != NULL && (name.len > ORIGIN_NAME_MAX || !sst_str_is_token(name)))
        return SST_EINVAL;
    if ((opts->status != 0 && !origin_status_ok(opts->status)) ||
        (opts->health_status != 0 && !origin_status_ok(opts->health_status)))
        return SST_EINVAL;
    if ((unsigned)opts->fail >= SST_ORIGIN_FAIL_COUNT_ || opts->size > ORIGIN_MAX_SIZE ||
        opts->delay_ms > ORIGIN_MAX_DELAY_MS)
        return SST_EINVAL;
    if (opts->hasher != NULL && (opts->hasher->label == NULL || opts->hasher->create == NULL ||
                                 opts->hasher->reset == NULL || opts->hasher->update == NULL ||
                                 opts->hasher->final == NULL || opts->hasher->destroy == NULL ||
                                 strlen(opts->hasher->label) > 32))
        return SST_EINVAL;
    return 0;
}

/* The pattern, the 1xx flood, the big header and, when the default never varies, the whole
 * default response: built once, shared by every connection. */
static int origin_prepare(sst_origin_t *o)
{
    const sst_origin_hasher_t *h = o->hasher;
    char head[512];
    size_t hlen;

    o->pattern = malloc(ORIGIN_SPAN + ORIGIN_PATTERN_LEN);
    o->flood_len = ORIGIN_FLOOD * (sizeof(ORIGIN_CONTINUE) - 1);
    o->flood = malloc(o->flood_len);
    o->big_len = sizeof("X-Stub-Big: \r\n") - 1 + ORIGIN_BIG_HEADER;
    o->big = malloc(o->big_len);
    if (o->pattern == NULL || o->flood == NULL || o->big == NULL)
        return SST_ENOMEM;
    for (size_t i = 0; i < ORIGIN_SPAN + ORIGIN_PATTERN_LEN; i++)
        o->pattern[i] = ORIGIN_PATTERN[i % ORIGIN_PATTERN_LEN];
    for (size_t i = 0; i < ORIGIN_FLOOD; i++)
        memcpy(o->flood + i * (sizeof(ORIGIN_CONTINUE) - 1), ORIGIN_CONTINUE,
               sizeof(ORIGIN_CONTINUE) - 1);
    memcpy(o->big, "X-Stub-Big: ", 12);
    memset(o->big + 12, 'b', ORIGIN_BIG_HEADER);
    memcpy(o->big + 12 + ORIGIN_BIG_HEADER, "\r\n", 2);

    if (h != NULL) {
        void *state = h->create(h->arg);
        int n = state ? h->reset(state) : SST_ENOMEM;
        if (n == 0)
            n = h->final(state, o->empty_hex, sizeof(o->empty_hex));
        if (state != NULL)
            h->destroy(state);
        if (n <= 0)
            return n < 0 ? n : SST_EIO;
    }

    if (!o->fixed_size || o->size > ORIGIN_PREPARED_MAX || o->chunked || o->no_length ||
        o->delay_ms > 0 || o->fail != SST_ORIGIN_FAIL_NONE || o->status == 204 || o->status == 304)
        return 0;
    hlen = origin_head(o, head, sizeof(head) - 2, o->status, "text/plain", ORIGIN_FRAME_LENGTH,
                       o->size, NULL);
    assert(hlen > 0);
    memcpy(head + hlen, "\r\n", 2);
    hlen += 2;
    o->prepared = malloc(hlen + (size_t)o->size);
    if (o->prepared == NULL)
        return SST_ENOMEM;
    memcpy(o->prepared, head, hlen);
    for (size_t i = 0; i < (size_t)o->size; i++)
        o->prepared[hlen + i] = ORIGIN_PATTERN[i % ORIGIN_PATTERN_LEN];
    o->prepared_head_len = hlen;
    o->prepared_len = hlen + (size_t)o->size;
    return 0;
}

int sst_origin_start(uv_loop_t *loop, const char *addr, const sst_origin_opts_t *opts,
                     sst_origin_t **out)
{
    static const sst_origin_opts_t defaults;
    struct sockaddr_storage ss;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    sst_origin_t *o = NULL;
    int err;

    if (loop == NULL || addr == NULL || out == NULL)
        return SST_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    memset(&ss, 0, sizeof(ss));
    err = origin_validate(opts);
    if (err == 0)
        err = origin_parse_addr(addr, &ss);
    if (err != 0)
        return err;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return SST_ENOMEM;
    o->loop = loop;
    snprintf(o->name, sizeof(o->name), "%s", opts->name ? opts->name : "origin");
    o->status = opts->status ? opts->status : 200;
    o->health_status = opts->health_status ? opts->health_status : 200;
    o->fixed_size = opts->fixed_size;
    o->size = opts->size;
    o->delay_ms = opts->delay_ms;
    o->chunked = opts->chunked;
    o->no_length = opts->no_length;
    o->fail = opts->fail;
    o->max_head = opts->max_head ? opts->max_head : ORIGIN_MAX_HEAD;
    o->hasher = opts->hasher;
    err = origin_prepare(o);
    if (err != 0) {
        origin_free(o);
        return err;
    }
    llhttp_settings_init(&o->settings);
    o->settings.on_message_begin = conn_on_message_begin;
    o->settings.on_url = conn_on_url;
    o->settings.on_header_field = conn_on_header_field;
    o->settings.on_header_value = conn_on_header_value;
    o->settings.on_headers_complete = conn_on_headers_complete;
    o->settings.on_body = conn_on_body;
    o->settings.on_message_complete = conn_on_message_complete;

    err = uv_tcp_init(loop, &o->listener);
    if (err != 0) {
        origin_free(o);
        return err;
    }
    o->listener.data = o;
    err = origin_bind(o, (const struct sockaddr *)&ss, opts->reuseport);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&o->listener, ORIGIN_BACKLOG, origin_on_connection);
    if (err == 0)
        err = uv_tcp_getsockname(&o->listener, (struct sockaddr *)&bound, &namelen);
    if (err != 0) {
        uv_close((uv_handle_t *)&o->listener, origin_on_failed_close);
        return err;
    }
    o->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = o;
    return 0;
}

uint16_t sst_origin_port(const sst_origin_t *origin)
{
    return origin->port;
}

void sst_origin_stats(const sst_origin_t *origin, sst_origin_stats_t *out)
{
    *out = origin->stats;
    out->active = origin->nconns;
}

int sst_origin_set_health(sst_origin_t *origin, uint16_t status)
{
    if (!origin_status_ok(status))
        return SST_EINVAL;
    origin->health_status = status;
    return 0;
}

int sst_origin_stop(sst_origin_t *origin, sst_origin_stop_cb done, void *arg)
{
    if (origin->stopping)
        return SST_EBUSY;
    origin->stopping = true;
    origin->done = done;
    origin->done_arg = arg;
    uv_close((uv_handle_t *)&origin->listener, origin_on_listener_closed);
    for (origin_conn_t *c = origin->conns; c != NULL; c = c->next)
        conn_close(c);
    return 0;
}
