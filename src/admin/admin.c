/* The admin listener on the control loop: one request per connection (answered with
 * Connection: close), parsed by http1.c with tight limits, checked for the bearer token, then
 * GET /status, GET /metrics, POST /reload or an operator action. Never on the request path;
 * the state it changes goes through server.c (sst__server_admin_op, sst_server_reload). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin/admin.h"
#include "core/server_int.h"
#include "sidestep/error.h"
#include "sidestep/log.h"
#include "sidestep/server.h"

/* Past ADMIN_MAX_CONNS open admin connections, the oldest one that has not sent a complete
 * head after ADMIN_EVICT_MS is closed for a new one; with none such, accepting pauses. The
 * grace keeps connections just taken from the backlog (not yet read) from evicting each other. */
#define ADMIN_MAX_CONNS   128
#define ADMIN_EVICT_MS    250
#define ADMIN_HEAD_MS     3000  /* the request head, from accept */
#define ADMIN_READ_MS     10000 /* the body, from the end of the head */
#define ADMIN_WRITE_MS    10000 /* whole answer */
#define ADMIN_LINGER_MS   2000  /* reading and dropping input after the answer, before close */
#define ADMIN_READ_BUF    8192
#define ADMIN_MAX_HEADERS 64

typedef struct sst_admin_s {
    sst_server_t *s;
    uv_tcp_t tcp;
    sst_link_t conns;
    size_t n_conns;
    bool closing;
    bool paused;           /* a connection waits in libuv's backlog for a free slot */
    uv_timer_t retry;      /* accepting again after running out of memory */
    unsigned open_handles; /* tcp and retry, until their close callbacks ran */
    char *start_token;
} admin_t;

typedef enum admin_conn_state_e {
    ADMIN_READING = 0, /* parsing the request */
    ADMIN_WRITING,     /* the answer is queued; input is dropped */
    ADMIN_LINGER,      /* answer written and FIN sent: reading until the peer closes */
    ADMIN_CLOSING,
} admin_conn_state_t;

typedef struct admin_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    admin_t *a;
    sst_link_t link;
    admin_conn_state_t state;
    uint64_t accepted_ms;
    uint8_t pending_closes;
    bool head_done;
    bool read_eof;
    bool head_only; /* HEAD: the answer carries no body */
    bool continue_sent;
    sst_h1_t h1;
    sst_head_t *head;
    sst_h1_request_t info;
    sst_admin_target_t target;
    char *body;
    size_t body_len, body_cap;
    char *out;
    char peer[80];
    char buf[ADMIN_READ_BUF];
} admin_conn_t;

static void admin_conn_close(admin_conn_t *c);
static void admin_accept(admin_t *a);

/* ---- lifetime ---------------------------------------------------------------------------- */

static void admin_maybe_free(admin_t *a)
{
    if (a->closing && a->open_handles == 0 && a->n_conns == 0) {
        free(a->start_token);
        free(a);
    }
}

static void admin_conn_on_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    admin_t *a = c->a;

    if (--c->pending_closes > 0)
        return;
    sst_list_remove(&c->link);
    a->n_conns--;
    if (c->head != NULL)
        sst_head_free(c->head);
    free(c->body);
    free(c->out);
    free(c);
    if (a->paused && !a->closing) {
        a->paused = false;
        admin_accept(a); /* the connection waiting in libuv's backlog gets the slot */
    }
    admin_maybe_free(a);
}

static void admin_conn_close(admin_conn_t *c)
{
    if (c->state == ADMIN_CLOSING)
        return;
    c->state = ADMIN_CLOSING;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, admin_conn_on_closed);
    uv_close((uv_handle_t *)&c->timer, admin_conn_on_closed);
}

static void admin_error(admin_conn_t *c, unsigned status, const char *extra, const char *fmt, ...)
    SST_PRINTF(4, 5);

static void admin_on_timer(uv_timer_t *t)
{
    admin_conn_t *c = t->data;
    if (c->state == ADMIN_READING) {
        /* as on the proxy side: 408 with a reason, then the usual half-close and linger (the
         * write timer bounds a client that reads nothing) */
        sst_debug("admin: %s sent no complete request in time", c->peer);
        if (c->head_done)
            admin_error(c, 408, NULL, "request body not received within %d s",
                        ADMIN_READ_MS / 1000);
        else
            admin_error(c, 408, NULL, "request head not received within %d s",
                        ADMIN_HEAD_MS / 1000);
        return;
    }
    admin_conn_close(c);
}

/* ---- answers ----------------------------------------------------------------------------- */

static void admin_on_shutdown(uv_shutdown_t *req, int status)
{
    admin_conn_t *c = req->data;
    (void)status; /* a failed shutdown ends like a closed peer: at the linger timer or EOF */
    (void)c;
}

static void admin_on_written(uv_write_t *req, int status)
{
    admin_conn_t *c = req->data;
    if (c->state == ADMIN_CLOSING)
        return; /* UV_ECANCELED from the close; the close callback frees */
    if (status != 0 || c->read_eof) {
        /* the peer sent everything and half-closed: nothing unread, so a plain close ends
         * the answer with FIN */
        admin_conn_close(c);
        return;
    }
    /* Half-close, then keep reading until the peer closes: closing with unread input makes
     * the kernel send RST, which can destroy the answer before the client reads it. */
    c->state = ADMIN_LINGER;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, admin_on_shutdown) != 0) {
        admin_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, admin_on_timer, ADMIN_LINGER_MS, 0);
}

/* Queues the whole answer (head + body) and moves to WRITING. `extra` holds complete header
 * lines ("Allow: POST\r\n") or is NULL. */
static void admin_send(admin_conn_t *c, unsigned status, const char *ctype, const char *extra,
                       const char *body, size_t len)
{
    char head[512];
    if (c->state != ADMIN_READING)
        return;
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                      status, sst_h1_status_text(status), ctype, len, extra ? extra : "");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        admin_conn_close(c);
        return;
    }
    size_t blen = c->head_only ? 0 : len;
    c->out = malloc((size_t)hl + blen);
    if (c->out == NULL) {
        admin_conn_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)hl);
    if (blen > 0)
        memcpy(c->out + hl, body, blen);
    uv_buf_t buf = uv_buf_init(c->out, (unsigned)((size_t)hl + blen));
    c->state = ADMIN_WRITING;
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, admin_on_written) != 0) {
        admin_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, admin_on_timer, ADMIN_WRITE_MS, 0);
}

/* Answers a JSON object (consumed). */
static void admin_send_json(admin_conn_t *c, unsigned status, const char *extra, json_object *o)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE,
        &len);
    if (text == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\", \"status\": 500}\n";
        admin_send(c, 500, "application/json", NULL, oom, sizeof(oom) - 1);
    } else {
        /* a final newline keeps shells tidy after curl */
        char *nl = malloc(len + 1);
        if (nl == NULL) {
            admin_conn_close(c);
        } else {
            memcpy(nl, text, len);
            nl[len] = '\n';
            admin_send(c, status, "application/json", extra, nl, len + 1);
            free(nl);
        }
    }
    json_object_put(o);
}

static void admin_error(admin_conn_t *c, unsigned status, const char *extra, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    if (o != NULL && json_object_object_add(o, "error", json_object_new_string(msg)) == 0 &&
        json_object_object_add(o, "status", json_object_new_int((int)status)) == 0) {
        admin_send_json(c, status, extra, o);
        return;
    }
    json_object_put(o);
    static const char oom[] = "{\"error\": \"out of memory\", \"status\": 500}\n";
    admin_send(c, 500, "application/json", NULL, oom, sizeof(oom) - 1);
}

/* ---- the resources ----------------------------------------------------------------------- */

static void admin_do_status(admin_conn_t *c)
{
    json_object *o = NULL;
    if (sst__admin_status_json(c->a->s, &o) != 0) {
        admin_error(c, 500, NULL, "out of memory");
        return;
    }
    admin_send_json(c, 200, NULL, o);
}

static void admin_do_metrics(admin_conn_t *c)
{
    char *text = NULL;
    size_t len = 0;
    if (sst__metrics_render(c->a->s, &text, &len) != 0) {
        admin_error(c, 500, NULL, "out of memory");
        return;
    }
    admin_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len);
    free(text);
}

/* 400: the config was rejected; 500: it could not be applied; 503: shutting down. */
static unsigned admin_reload_status(int rc)
{
    switch (rc) {
    case SST_ENOMEM:
    case SST_EIO:
    case UV_EADDRINUSE:
    case UV_EADDRNOTAVAIL:
    case UV_EMFILE:
    case UV_ENFILE:
        return 500;
    case SST_ECANCELED:
        return 503;
    default:
        return 400;
    }
}

static void admin_do_reload(admin_conn_t *c)
{
    sst_server_t *s = c->a->s;
    char err[1024];
    int rc = sst_server_reload(s, err, sizeof(err));
    if (rc != 0) {
        admin_error(c, admin_reload_status(rc), NULL, "%s", err);
        return;
    }
    json_object *o = json_object_new_object();
    if (o == NULL || json_object_object_add(o, "reloaded", json_object_new_boolean(1)) != 0 ||
        json_object_object_add(o, "config_version", json_object_new_uint64(s->config_version)) ||
        json_object_object_add(o, "source", json_object_new_string(s->cfg->source))) {
        json_object_put(o);
        admin_error(c, 500, NULL, "reloaded, but out of memory building the answer");
        return;
    }
    admin_send_json(c, 200, NULL, o);
}

/* The answer to a backend action: the backend as in /status. The loader rejects an address
 * listed twice, so it names one backend. */
static int admin_backend_answer(sst_server_t *s, const char *addr, json_object **out)
{
    for (size_t b = 0; b < s->cfg->n_backends; b++)
        if (strcmp(s->cfg->backends[b].addr.text, addr) == 0)
            return sst__admin_backend_json(s, b, out) != 0 ? SST_ENOMEM : 0;
    return SST_ENOENT;
}

static void admin_do_action(admin_conn_t *c)
{
    sst_server_t *s = c->a->s;
    const sst_admin_target_t *t = &c->target;
    bool region = t->res == SST_ARES_REGION;
    sst_admin_action_t act;
    char err[512];
    json_object *o = NULL;

    if (sst__admin_parse_action(c->body, c->body_len, t->op, &act, err, sizeof(err)) != 0) {
        admin_error(c, 400, NULL, "%s", err);
        return;
    }
    int rc =
        sst__server_admin_op(s, region, t->name, t->op, act.reason, act.ttl_ms, err, sizeof(err));
    if (rc == SST_ENOENT) {
        admin_error(c, 404, NULL, "%s", err);
        return;
    }
    if (rc != 0) {
        admin_error(c, 400, NULL, "%s", err);
        return;
    }
    sst_info("admin: %s %s %s from %s", sst__admin_op_word(t->op), region ? "region" : "backend",
             t->name, c->peer);
    if (region) {
        int r = sst_config_region_index(s->cfg, t->name, strlen(t->name));
        rc = r < 0 ? SST_ENOENT : sst__admin_region_json(s, (size_t)r, &o);
    } else {
        rc = admin_backend_answer(s, t->name, &o);
    }
    if (rc != 0) {
        admin_error(c, 500, NULL, "applied, but out of memory building the answer");
        return;
    }
    admin_send_json(c, 200, NULL, o);
}

static void admin_dispatch(admin_conn_t *c)
{
    switch (c->target.res) {
    case SST_ARES_STATUS:
        admin_do_status(c);
        return;
    case SST_ARES_METRICS:
        admin_do_metrics(c);
        return;
    case SST_ARES_RELOAD:
        admin_do_reload(c);
        return;
    case SST_ARES_REGION:
    case SST_ARES_BACKEND:
        admin_do_action(c);
        return;
    }
}

/* ---- request head ------------------------------------------------------------------------ */

/* The token in force: the current config's, except that a reload which drops the token (or the
 * whole admin section) never opens a listener bound off loopback to anonymous callers. */
static const char *admin_token(const admin_t *a)
{
    const sst_config_t *cfg = a->s->cfg;
    if (cfg->admin.enabled && cfg->admin.token != NULL)
        return cfg->admin.token;
    return a->start_token; /* dropping a token takes a restart */
}

static bool admin_name_known(const sst_server_t *s, const sst_admin_target_t *t)
{
    if (t->res == SST_ARES_REGION)
        return sst_config_region_index(s->cfg, t->name, strlen(t->name)) >= 0;
    if (t->res == SST_ARES_BACKEND)
        return sst_config_backend_index(s->cfg, t->name, strlen(t->name)) >= 0;
    return true;
}

/* Checks a complete head. Returns true to read the body, false when an answer was sent. */
static bool admin_on_head(admin_conn_t *c)
{
    const char *why = NULL;
    int status = sst_h1_check_request(&c->h1, &c->info, &why);
    if (status != 0) {
        admin_error(c, (unsigned)status, NULL, "%s", why);
        return false;
    }
    c->head_only = sst_str_eq(c->info.method_name, SST_STR_LIT("HEAD"));

    const char *token = admin_token(c->a);
    if (token != NULL) {
        int i = sst_head_find(c->head, "authorization", 0);
        sst_str_t v = i >= 0 ? sst_hdr_value(c->head, &c->head->hdrs[i]) : SST_STR_NULL;
        bool twice = i >= 0 && sst_head_find(c->head, "authorization", (uint32_t)i + 1) >= 0;
        if (twice || !sst__admin_auth_ok(v, token)) {
            sst_warn("admin: %s: %s bearer token", c->peer, i < 0 ? "missing" : "wrong");
            admin_error(c, 401, "WWW-Authenticate: Bearer realm=\"sidestep\"\r\n",
                        "a valid Authorization: Bearer token is required");
            return false;
        }
    }
    status = sst__admin_parse_target(c->info.target, &c->target, &why);
    if (status != 0) {
        admin_error(c, (unsigned)status, NULL, "%s: %.*s", why, (int)c->info.target.len,
                    c->info.target.base);
        return false;
    }
    if (!admin_name_known(c->a->s, &c->target)) {
        admin_error(c, 404, NULL, "unknown %s \"%s\"",
                    c->target.res == SST_ARES_REGION ? "region" : "backend", c->target.name);
        return false;
    }
    if (!sst__admin_method_ok(&c->target, c->info.method_name)) {
        char allow[64];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", c->target.allow);
        admin_error(c, 405, allow, "use %s", c->target.allow);
        return false;
    }
    if (c->info.expect_continue) {
        /* RFC 9110 §10.1.1: the client waits for this before sending the body */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != (int)b.len) {
            admin_conn_close(c);
            return false;
        }
        c->continue_sent = true;
    }
    return true;
}

static int admin_on_body(void *opaque, const char *at, size_t len)
{
    admin_conn_t *c = opaque;
    /* the parser stops at limits.body (413) before this can grow past it */
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + len + 1)
            cap *= 2;
        char *p = realloc(c->body, cap);
        if (p == NULL)
            return -1;
        c->body = p;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = 0;
    return 0;
}

/* Feeds input to the parser; answers once the request is complete or broken. */
static void admin_feed(admin_conn_t *c, const char *data, size_t len)
{
    size_t off = 0;
    do {
        size_t used = 0;
        sst_h1_rc_t rc = sst_h1_feed(&c->h1, data + off, len - off, &used);
        off += used;
        switch (rc) {
        case SST_H1_MORE:
            return;
        case SST_H1_HEAD:
            c->head_done = true;
            uv_timer_start(&c->timer, admin_on_timer, ADMIN_READ_MS, 0);
            if (!admin_on_head(c))
                return;
            sst_h1_resume(&c->h1);
            /* feed again even with no bytes left: a body-less request completes now */
            continue;
        case SST_H1_DONE:
            admin_dispatch(c);
            return;
        case SST_H1_ERROR:
            if (c->h1.err_status == 502) /* our body callback failed: out of memory */
                admin_error(c, 500, NULL, "out of memory");
            else
                admin_error(c, c->h1.err_status, NULL, "%s",
                            c->h1.err_reason ? c->h1.err_reason : "bad request");
            return;
        }
    } while (c->state == ADMIN_READING);
}

static void admin_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    admin_conn_t *c = h->data;
    *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void admin_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    admin_conn_t *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->state == ADMIN_WRITING) {
            /* a client that half-closes after its request still reads the answer */
            c->read_eof = true;
            uv_read_stop(st);
            return;
        }
        admin_conn_close(c);
        return;
    }
    if (c->state == ADMIN_READING)
        admin_feed(c, buf->base, (size_t)nread);
    /* in WRITING and LINGER input is read and dropped */
}

/* ---- accepting --------------------------------------------------------------------------- */

static void admin_sa_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    char ip[64] = "?";
    if (ss->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(((const struct sockaddr_in *)ss)->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
}

static void admin_peer_text(admin_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        admin_sa_text(&ss, c->peer, sizeof(c->peer));
}

static bool admin_evict_one(admin_t *a);

static void admin_on_retry(uv_timer_t *t)
{
    admin_t *a = t->data;
    if (!a->paused || a->closing)
        return;
    if (a->n_conns < ADMIN_MAX_CONNS) {
        a->paused = false;
        admin_accept(a);
        return;
    }
    (void)admin_evict_one(a); /* its close callback accepts */
}

static void admin_accept(admin_t *a)
{
    admin_conn_t *c = calloc(1, sizeof(*c));
    sst_h1_limits_t lim = {
        .request_line = SST_ADMIN_MAX_LINE,
        .field = SST_ADMIN_MAX_HEAD,
        .head = SST_ADMIN_MAX_HEAD,
        .headers = ADMIN_MAX_HEADERS,
        .body = SST_ADMIN_MAX_BODY,
    };

    int rc = SST_ENOMEM;
    if (c == NULL || (c->head = sst_head_new()) == NULL ||
        (rc = uv_tcp_init(a->s->loop, &c->tcp)) != 0) {
        /* the connection stays in the backlog; try again shortly */
        if (c != NULL && c->head != NULL)
            sst_head_free(c->head);
        free(c);
        a->paused = true;
        uv_timer_start(&a->retry, admin_on_retry, 100, 0);
        sst_error("admin: accepting a connection: %s", sst_strerror(rc));
        return;
    }
    c->a = a;
    c->accepted_ms = uv_now(a->s->loop);
    sst_list_init(&c->link);
    uv_timer_init(a->s->loop, &c->timer); /* cannot fail: it allocates nothing */
    c->tcp.data = c->timer.data = c;
    sst_list_push(&a->conns, &c->link);
    a->n_conns++;
    sst_h1_init(&c->h1, false, &lim, admin_on_body, c);
    c->h1.head = c->head;
    if (uv_accept((uv_stream_t *)&a->tcp, (uv_stream_t *)&c->tcp) != 0) {
        admin_conn_close(c);
        return;
    }
    admin_peer_text(c);
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, admin_on_alloc, admin_on_read) != 0) {
        admin_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, admin_on_timer, ADMIN_HEAD_MS, 0);
}

/* Closes the oldest connection still sending its head, so that clients that connect and send
 * nothing (no token checked yet) cannot keep an operator out. Returns false when every slot
 * holds a request past its head. */
static bool admin_evict_one(admin_t *a)
{
    uint64_t now = uv_now(a->s->loop), soonest = UINT64_MAX;
    /* sst_list_push inserts at the front: the oldest connection is at the back */
    for (sst_link_t *l = a->conns.prev; l != &a->conns; l = l->prev) {
        admin_conn_t *c = sst_container_of(l, admin_conn_t, link);
        if (c->state != ADMIN_READING || c->head_done)
            continue;
        if (now >= c->accepted_ms + ADMIN_EVICT_MS) {
            sst_debug("admin: all %d slots taken; closing %s, which sent no complete head",
                      ADMIN_MAX_CONNS, c->peer);
            admin_conn_close(c);
            return true;
        }
        if (c->accepted_ms + ADMIN_EVICT_MS < soonest)
            soonest = c->accepted_ms + ADMIN_EVICT_MS;
    }
    if (soonest != UINT64_MAX) /* look again once the first of them may be evicted */
        uv_timer_start(&a->retry, admin_on_retry, soonest - now, 0);
    return false;
}

static void admin_on_connection(uv_stream_t *server, int status)
{
    admin_t *a = server->data;
    if (status != 0) {
        sst_warn("admin: accept failed: %s", sst_strerror(status));
        return;
    }
    if (a->closing)
        return;
    if (a->n_conns >= ADMIN_MAX_CONNS) {
        /* not accepting stops libuv polling the listener until uv_accept runs again: when a
         * slot frees up (at once if one is evicted: its close callback accepts) */
        a->paused = true;
        (void)admin_evict_one(a);
        return;
    }
    admin_accept(a);
}

static void admin_on_handle_closed(uv_handle_t *h)
{
    admin_t *a = h->data;
    a->open_handles--;
    admin_maybe_free(a);
}

int sst__admin_start(sst_server_t *s, char *err, size_t err_size)
{
    const sst_admin_cfg_t *ac = &s->cfg->admin;
    admin_t *a = calloc(1, sizeof(*a));
    int rc, len = sizeof(s->admin_bound);

    if (a == NULL)
        return SST_ENOMEM;
    a->s = s;
    sst_list_init(&a->conns);
    if (ac->token != NULL && (a->start_token = strdup(ac->token)) == NULL) {
        free(a);
        return SST_ENOMEM;
    }
    if ((rc = uv_tcp_init(s->loop, &a->tcp)) != 0) {
        snprintf(err, err_size, "admin listener %s: %s", ac->addr.text, sst_strerror(rc));
        free(a->start_token);
        free(a);
        return rc;
    }
    uv_timer_init(s->loop, &a->retry); /* cannot fail: it allocates nothing */
    a->tcp.data = a->retry.data = a;
    a->open_handles = 2;
    rc = uv_tcp_bind(&a->tcp, (const struct sockaddr *)&ac->addr.sa,
                     ac->addr.sa.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0); /* as listeners */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->tcp, 128, admin_on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&a->tcp, (struct sockaddr *)&s->admin_bound, &len);
    if (rc != 0) {
        snprintf(err, err_size, "admin listener %s: %s", ac->addr.text, sst_strerror(rc));
        memset(&s->admin_bound, 0, sizeof(s->admin_bound));
        a->closing = true;
        uv_close((uv_handle_t *)&a->tcp, admin_on_handle_closed);
        uv_close((uv_handle_t *)&a->retry, admin_on_handle_closed);
        return rc;
    }
    s->admin = a;
    char bound[80];
    admin_sa_text(&s->admin_bound, bound, sizeof(bound));
    sst_info("admin API on %s%s", bound, ac->token ? " (bearer token required)" : "");
    return 0;
}

void sst__admin_stop(sst_server_t *s)
{
    admin_t *a = s->admin;
    if (a == NULL)
        return;
    s->admin = NULL;
    a->closing = true;
    uv_close((uv_handle_t *)&a->tcp, admin_on_handle_closed);
    uv_close((uv_handle_t *)&a->retry, admin_on_handle_closed);
    for (sst_link_t *l = a->conns.next; l != &a->conns;) {
        admin_conn_t *c = sst_container_of(l, admin_conn_t, link);
        l = l->next; /* the close callback unlinks later, never now */
        admin_conn_close(c);
    }
    admin_maybe_free(a);
}
