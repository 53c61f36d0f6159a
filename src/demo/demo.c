/* The embedded demo's stand-in regions (demo.h): listeners, connections parsed by the project's
 * own sst_h1 layer, region-tagged echo answers. Runs on main's loop; shares nothing with the
 * proxy and must stay out of its path (tests and bench/ use tests/support/stub instead). */
#include "demo/demo.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "http/http1.h"
#include "sidestep/error.h"
#include "sidestep/str.h"

#define DEMO_MAX_CONNS  256 /* per demo; more wait in the listen backlog until one closes */
#define DEMO_BACKLOG    128
#define DEMO_IDLE_MS    10000 /* no input for this long closes a connection */
#define DEMO_LINGER_MS  2000  /* after our FIN, input is read and dropped this long at most */
#define DEMO_RETRY_MS   100   /* a connection left in the backlog for want of memory */
#define DEMO_HIGH_MARK  65536 /* queued answer bytes above which reading stops */
#define DEMO_READ_SIZE  4096
#define DEMO_HEAD_MAX   512 /* an answer's head: status line, four short fields */
#define DEMO_CONTINUE   "HTTP/1.1 100 Continue\r\n\r\n"
#define DEMO_HEALTH     "/healthz"
#define DEMO_HEALTH_LEN (sizeof(DEMO_HEALTH) - 1)

/* The limits of a small origin; the proxy in front enforces its own configured ones. */
static const sst_h1_limits_t demo_limits = {
    .request_line = 8192, .field = 8192, .head = 16384, .headers = 100, .body = 0};

typedef enum demo_state_e {
    DEMO_READING,   /* parsing requests, answering each at its end */
    DEMO_FINISHING, /* the last answer is queued; the FIN follows it */
    DEMO_LINGERING, /* FIN sent; input is dropped until EOF or the linger timer */
    DEMO_CLOSING,
} demo_state_t;

typedef struct demo_listener_s {
    sst_demo_t *demo;
    uv_tcp_t tcp;
    bool open;    /* tcp initialised: it must be closed */
    bool pending; /* a connection waits in the backlog (connection cap or memory) */
    char *region; /* owned */
    char addr[sizeof(((sst_addr_t *)0)->text)];
} demo_listener_t;

typedef struct demo_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle, then linger */
    uv_shutdown_t shutdown;
    demo_listener_t *l;
    struct demo_conn_s *prev, *next;
    demo_state_t state;
    int pending_closes;
    bool reading;
    bool peer_eof;
    bool resume; /* a head was just accepted: feed again, even without new input */
    uint64_t body_bytes;
    sst_h1_t h1;
    sst_h1_request_t req; /* the current request; slices into head */
    sst_head_t *head;
    size_t rpos, rlen;
    char rbuf[DEMO_READ_SIZE];
} demo_conn_t;

typedef struct demo_write_s {
    uv_write_t req;
    demo_conn_t *conn;
    char data[];
} demo_write_t;

struct sst_demo_s {
    uv_loop_t *loop;
    uv_timer_t retry; /* takes backlogged connections once memory may be back */
    bool stopping;
    size_t pending_closes; /* after stop: listener and timer close callbacks still to run */
    demo_conn_t *conns;
    size_t n_conns;
    size_t n_listeners;
    demo_listener_t listeners[];
};

/* A bounded text buffer: appends past the end are dropped and remembered. */
typedef struct demo_buf_s {
    char *p;
    size_t len, cap;
    bool overflow;
} demo_buf_t;

static void demo_put(demo_buf_t *b, const char *data, size_t len)
{
    if (len > b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

__attribute__((format(printf, 2, 3))) static void demo_fmt(demo_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    b->len += (size_t)n;
}

/* --- lifetime ----------------------------------------------------------------------------- */

static void demo_on_connection(uv_stream_t *server, int status);

static void demo_free(sst_demo_t *d)
{
    for (size_t i = 0; i < d->n_listeners; i++)
        free(d->listeners[i].region);
    free(d);
}

static void demo_maybe_free(sst_demo_t *d)
{
    if (d->stopping && d->pending_closes == 0 && d->n_conns == 0)
        demo_free(d);
}

/* Takes the connections left in the backlog (a slot or memory may be free now). */
static void demo_take_pending(sst_demo_t *d)
{
    for (size_t i = 0; i < d->n_listeners && !d->stopping; i++) {
        demo_listener_t *l = &d->listeners[i];
        if (l->pending) {
            l->pending = false;
            demo_on_connection((uv_stream_t *)&l->tcp, 0);
        }
    }
}

static void demo_on_conn_closed(uv_handle_t *handle)
{
    demo_conn_t *c = handle->data;
    sst_demo_t *d = c->l->demo;

    if (--c->pending_closes > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    d->n_conns--;
    sst_head_free(c->head);
    free(c); /* the only place a connection is freed */
    demo_take_pending(d);
    demo_maybe_free(d);
}

static void demo_close(demo_conn_t *c)
{
    if (c->state == DEMO_CLOSING)
        return; /* idempotent: error paths may race to close */
    c->state = DEMO_CLOSING;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, demo_on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, demo_on_conn_closed);
}

/* --- output ------------------------------------------------------------------------------- */

static void demo_update_reading(demo_conn_t *c);

static void demo_on_written(uv_write_t *req, int status)
{
    demo_write_t *w = req->data;
    demo_conn_t *c = w->conn;

    free(w);
    if (c->state == DEMO_CLOSING)
        return; /* UV_ECANCELED: the close callback frees c after this */
    if (status < 0) {
        demo_close(c);
        return;
    }
    demo_update_reading(c); /* the queue may have dropped below the mark */
}

/* Queues a and b (b may be empty) as one write. */
static void demo_send(demo_conn_t *c, const char *a, size_t alen, const char *b, size_t blen)
{
    demo_write_t *w = malloc(sizeof(*w) + alen + blen);
    uv_buf_t buf;

    if (w == NULL) {
        demo_close(c);
        return;
    }
    memcpy(w->data, a, alen);
    if (blen > 0)
        memcpy(w->data + alen, b, blen);
    w->conn = c;
    w->req.data = w;
    buf = uv_buf_init(w->data, (unsigned)(alen + blen));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, demo_on_written) != 0) {
        free(w);
        demo_close(c);
    }
}

static void demo_on_timer(uv_timer_t *timer)
{
    demo_close(timer->data); /* idle, or done lingering */
}

static void demo_on_shutdown(uv_shutdown_t *req, int status)
{
    demo_conn_t *c = req->data;

    if (c->state == DEMO_CLOSING)
        return;
    if (status < 0 || c->peer_eof) {
        demo_close(c);
        return;
    }
    /* Read until the peer closes too: closing with unread input would send RST, which can
     * destroy the answer before the peer reads it. */
    c->state = DEMO_LINGERING;
    uv_timer_start(&c->timer, demo_on_timer, DEMO_LINGER_MS, 0);
    demo_update_reading(c);
}

/* The last answer is queued: the FIN follows it (uv_shutdown waits for queued writes). */
static void demo_finish(demo_conn_t *c)
{
    c->state = DEMO_FINISHING;
    demo_update_reading(c);
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, demo_on_shutdown) != 0)
        demo_close(c);
}

/* Queues a head for `status` and a body of blen bytes (only the head with head_only, for HEAD:
 * the length is still the body's). */
static void demo_respond(demo_conn_t *c, unsigned status, const char *body, size_t blen,
                         bool keep_alive, bool head_only)
{
    char head[DEMO_HEAD_MAX];
    const char *connection = "Connection: close\r\n";
    int n;

    if (keep_alive)
        connection = c->req.minor == 0 ? "Connection: keep-alive\r\n" : "";
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nX-Demo-Region: %.64s\r\n%s\r\n",
                 status, sst_h1_status_text(status), blen, c->l->region, connection);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        demo_close(c);
        return;
    }
    demo_send(c, head, (size_t)n, body, head_only ? 0 : blen);
}

/* A request the parser or its checks refused: the status, one line why, then the FIN. What was
 * parsed may be partial, so the answer does not depend on it. */
static void demo_refuse(demo_conn_t *c, unsigned status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%u %s: %.160s\n", status, sst_h1_status_text(status),
                     why != NULL ? why : "malformed request");

    demo_respond(c, status, body, n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0, false, false);
    if (c->state == DEMO_READING)
        demo_finish(c);
}

/* --- answers ------------------------------------------------------------------------------ */

static bool demo_is_health(sst_str_t target)
{
    return target.len >= DEMO_HEALTH_LEN &&
           memcmp(target.base, DEMO_HEALTH, DEMO_HEALTH_LEN) == 0 &&
           (target.len == DEMO_HEALTH_LEN || target.base[DEMO_HEALTH_LEN] == '?');
}

/* The echo of the current request, whose body has been read. */
static void demo_answer(demo_conn_t *c)
{
    const sst_head_t *h = c->head;
    const sst_h1_request_t *r = &c->req;
    demo_buf_t b = {0};

    if (demo_is_health(r->target) && (r->method == HTTP_GET || r->method == HTTP_HEAD)) {
        demo_respond(c, 200, "ok\n", 3, r->keep_alive, r->method == HTTP_HEAD);
    } else {
        /* every line is bounded by the head it echoes */
        b.cap = 128 + strlen(c->l->region) + strlen(c->l->addr) + r->method_name.len + h->len +
                4 * (size_t)h->n_hdrs;
        b.p = malloc(b.cap);
        if (b.p == NULL) {
            demo_close(c);
            return;
        }
        demo_fmt(&b, "%s answered (backend %s)\n", c->l->region, c->l->addr);
        demo_put(&b, r->method_name.base, r->method_name.len);
        demo_put(&b, " ", 1);
        demo_put(&b, r->target.base, r->target.len);
        demo_fmt(&b, " HTTP/1.%u\n", (unsigned)r->minor);
        for (uint32_t i = 0; i < h->n_hdrs; i++) {
            sst_str_t name = sst_hdr_name(h, &h->hdrs[i]);
            sst_str_t value = sst_hdr_value(h, &h->hdrs[i]);
            demo_put(&b, name.base, name.len);
            demo_put(&b, ": ", 2);
            demo_put(&b, value.base, value.len);
            demo_put(&b, "\n", 1);
        }
        demo_fmt(&b, "\nbody: %llu bytes\n", (unsigned long long)c->body_bytes);
        if (b.overflow) {
            free(b.p);
            demo_close(c); /* a bug in the bound above, not the client's doing */
            return;
        }
        demo_respond(c, 200, b.p, b.len, r->keep_alive, r->method == HTTP_HEAD);
        free(b.p);
    }
    if (c->state != DEMO_READING)
        return;
    if (!r->keep_alive) {
        demo_finish(c);
        return;
    }
    sst_h1_next(&c->h1);
    sst_head_clear(c->head, (uint32_t)demo_limits.head);
}

/* --- input -------------------------------------------------------------------------------- */

static int demo_on_body(void *opaque, const char *at, size_t len)
{
    demo_conn_t *c = opaque;

    c->body_bytes += len; /* counted, never kept */
    return 0;
}

/* A complete head: checked, and a 100 Continue sent when the client waits for one. */
static bool demo_on_head(demo_conn_t *c)
{
    const char *why = NULL;
    int status = sst_h1_check_request(&c->h1, &c->req, &why);

    if (status != 0) {
        demo_refuse(c, (unsigned)status, why);
        return false;
    }
    c->body_bytes = 0;
    if (c->req.expect_continue)
        demo_send(c, DEMO_CONTINUE, sizeof(DEMO_CONTINUE) - 1, NULL, 0);
    return c->state == DEMO_READING;
}

static void demo_process(demo_conn_t *c)
{
    while (c->state == DEMO_READING && (c->rpos < c->rlen || c->resume)) {
        size_t used = 0;
        sst_h1_rc_t rc;

        c->resume = false;
        rc = sst_h1_feed(&c->h1, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
        c->rpos += used;
        switch (rc) {
        case SST_H1_MORE:
            break;
        case SST_H1_HEAD:
            if (demo_on_head(c)) {
                sst_h1_resume(&c->h1);
                c->resume = true; /* a body-less request completes with no more input */
            }
            break;
        case SST_H1_DONE:
            demo_answer(c);
            break;
        case SST_H1_ERROR:
            demo_refuse(c, c->h1.err_status != 0 ? c->h1.err_status : 400, c->h1.err_reason);
            break;
        }
    }
    demo_update_reading(c);
}

static void demo_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    demo_conn_t *c = handle->data;

    /* reading runs only once the previous input is parsed, so rbuf is free */
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void demo_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    demo_conn_t *c = stream->data;

    if (nread == 0 || c->state == DEMO_CLOSING)
        return; /* 0 is EAGAIN, not EOF */
    if (nread < 0) {
        c->peer_eof = true;
        if (nread == UV_EOF && c->state == DEMO_READING && sst_h1_eof(&c->h1) == SST_H1_MORE)
            demo_finish(c); /* between requests: what is queued goes out, then the FIN */
        else
            demo_close(c); /* cut mid-request, an error, or the end of lingering */
        return;
    }
    if (c->state != DEMO_READING)
        return; /* lingering: input is dropped */
    uv_timer_start(&c->timer, demo_on_timer, DEMO_IDLE_MS, 0);
    c->rpos = 0;
    c->rlen = (size_t)nread;
    demo_process(c);
}

static void demo_update_reading(demo_conn_t *c)
{
    bool want = false;

    switch (c->state) {
    case DEMO_READING:
        want = c->rpos == c->rlen &&
               uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= DEMO_HIGH_MARK;
        break;
    case DEMO_LINGERING:
        want = !c->peer_eof;
        break;
    case DEMO_FINISHING:
    case DEMO_CLOSING:
        want = false;
        break;
    }
    if (want == c->reading || c->state == DEMO_CLOSING)
        return;
    if (want && uv_read_start((uv_stream_t *)&c->tcp, demo_on_alloc, demo_on_read) != 0) {
        demo_close(c);
        return;
    }
    if (!want)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = want;
}

/* --- listeners ---------------------------------------------------------------------------- */

static void demo_on_retry(uv_timer_t *timer)
{
    demo_take_pending(timer->data);
}

/* Accepts one connection. Returns 0 (accepted, or refused by the kernel and closing), or a
 * negative error when nothing was accepted: the connection stays in the backlog. */
static int demo_accept(demo_listener_t *l)
{
    sst_demo_t *d = l->demo;
    demo_conn_t *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL)
        return SST_ENOMEM;
    c->head = sst_head_new();
    rc = c->head != NULL ? uv_tcp_init(d->loop, &c->tcp) : SST_ENOMEM;
    if (rc != 0) {
        sst_head_free(c->head);
        free(c);
        return rc;
    }
    c->tcp.data = c;
    (void)uv_timer_init(d->loop, &c->timer); /* libuv's uv_timer_init always returns 0 */
    c->timer.data = c;
    c->l = l;
    c->state = DEMO_READING;
    sst_h1_init(&c->h1, false, &demo_limits, demo_on_body, c);
    c->h1.head = c->head;
    c->next = d->conns;
    if (d->conns != NULL)
        d->conns->prev = c;
    d->conns = c;
    d->n_conns++;
    if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) != 0) {
        demo_close(c);
        return 0;
    }
    uv_timer_start(&c->timer, demo_on_timer, DEMO_IDLE_MS, 0);
    demo_update_reading(c);
    return 0;
}

static void demo_on_connection(uv_stream_t *server, int status)
{
    demo_listener_t *l = server->data;
    sst_demo_t *d = l->demo;

    if (status < 0 || d->stopping)
        return; /* libuv retries accept errors such as EMFILE itself */
    if (d->n_conns >= DEMO_MAX_CONNS) {
        l->pending = true; /* taken when a connection closes */
        return;
    }
    if (demo_accept(l) != 0) {
        l->pending = true;
        uv_timer_start(&d->retry, demo_on_retry, DEMO_RETRY_MS, 0);
    }
}

static void demo_handle_closed(sst_demo_t *d)
{
    d->pending_closes--;
    demo_maybe_free(d);
}

static void demo_on_retry_closed(uv_handle_t *handle)
{
    demo_handle_closed(handle->data);
}

static void demo_on_listener_closed(uv_handle_t *handle)
{
    demo_listener_t *l = handle->data;

    demo_handle_closed(l->demo);
}

void sst_demo_stop(sst_demo_t *d)
{
    if (d == NULL || d->stopping)
        return;
    d->stopping = true;
    d->pending_closes = 1;
    uv_close((uv_handle_t *)&d->retry, demo_on_retry_closed);
    for (size_t i = 0; i < d->n_listeners; i++) {
        if (d->listeners[i].open) {
            d->pending_closes++;
            uv_close((uv_handle_t *)&d->listeners[i].tcp, demo_on_listener_closed);
        }
    }
    for (demo_conn_t *c = d->conns; c != NULL; c = c->next)
        demo_close(c);
}

/* The address the listener got ("127.0.0.1:9001", "[::1]:9001"), the configured one as a
 * fallback: a port 0 in the config is shown as the port the kernel chose. */
static void demo_bound_text(demo_listener_t *l)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64];

    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6 && uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip)) == 0)
        snprintf(l->addr, sizeof(l->addr), "[%s]:%u", ip,
                 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    else if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip)) == 0)
        snprintf(l->addr, sizeof(l->addr), "%s:%u", ip,
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
}

uint16_t sst_demo_port(const sst_demo_t *d, size_t backend)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (d == NULL || backend >= d->n_listeners || !d->listeners[backend].open ||
        uv_tcp_getsockname(&d->listeners[backend].tcp, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int demo_listen(sst_demo_t *d, demo_listener_t *l, const sst_addr_t *addr)
{
    int rc = uv_tcp_init(d->loop, &l->tcp);

    if (rc != 0)
        return rc;
    l->open = true;
    l->tcp.data = l;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&addr->sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, DEMO_BACKLOG, demo_on_connection);
    if (rc == 0)
        demo_bound_text(l);
    return rc;
}

int sst_demo_start(uv_loop_t *loop, const sst_config_t *cfg, sst_demo_t **out, char *err,
                   size_t err_size)
{
    sst_demo_t *d;
    int rc = 0;

    if (loop == NULL || cfg == NULL || out == NULL || cfg->n_backends > SST_MAX_BACKENDS) {
        snprintf(err, err_size, "invalid arguments");
        return SST_EINVAL;
    }
    /* n_backends <= SST_MAX_BACKENDS: the size cannot overflow */
    d = calloc(1, sizeof(*d) + cfg->n_backends * sizeof(demo_listener_t));
    if (d == NULL) {
        snprintf(err, err_size, "out of memory");
        return SST_ENOMEM;
    }
    d->loop = loop;
    d->n_listeners = cfg->n_backends;
    (void)uv_timer_init(loop, &d->retry); /* libuv's uv_timer_init always returns 0 */
    d->retry.data = d;
    for (size_t b = 0; b < cfg->n_backends && rc == 0; b++) {
        const sst_backend_cfg_t *be = &cfg->backends[b];
        demo_listener_t *l = &d->listeners[b];
        l->demo = d;
        snprintf(l->addr, sizeof(l->addr), "%s", be->addr.text);
        l->region = strdup(cfg->regions[be->region].name);
        rc = l->region != NULL ? demo_listen(d, l, &be->addr) : SST_ENOMEM;
        if (rc != 0)
            snprintf(err, err_size, "%s: %s", be->addr.text, sst_strerror(rc));
    }
    if (rc != 0) {
        sst_demo_stop(d); /* freed once its handles closed */
        return rc;
    }
    *out = d;
    return 0;
}
