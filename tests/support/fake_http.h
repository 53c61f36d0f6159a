/* A scripted HTTP/1.1 server on 127.0.0.1:0 for client tests (the etcd client): it reads each
 * request (head + Content-Length body), records it, and answers with the next step of its
 * script: bytes written at once or in small pieces, then keep the connection, close it, or stay
 * silent. Test-only; header-only so each test binary gets its own copy. */
#ifndef SST_TESTS_FAKE_HTTP_H
#define SST_TESTS_FAKE_HTTP_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* Test scaffolding failing loudly, also in NDEBUG builds (FK_CHECK() would drop the calls). */
#define FK_CHECK(x)                                                                                \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: fake_http: %s failed\n", __FILE__, __LINE__, #x);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef enum fk_act_e {
    FK_ANSWER = 0,   /* write the answer, keep the connection */
    FK_ANSWER_CLOSE, /* write the answer, then close */
    FK_CLOSE,        /* close without answering */
    FK_SILENT,       /* never answer */
} fk_act_t;

typedef struct fk_step_s {
    fk_act_t act;
    unsigned status;  /* with body: the status line (200 when 0) */
    const char *body; /* JSON body sent with Content-Length */
    const char *raw;  /* or exact bytes (then status/body are unused) */
    size_t raw_len;   /* 0: strlen(raw) */
    size_t piece;     /* > 0: written `piece` bytes per millisecond */
} fk_step_t;

#define FK_MAX_REQ 32

typedef struct fk_server_s fk_server_t;

typedef struct fk_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    fk_server_t *srv;
    char in[16384];
    size_t in_len;
    char *out; /* the answer being written in pieces */
    size_t out_len, out_off, piece;
    bool close_after;
    bool closing;
    int pending_closes;
    struct fk_conn_s *next;
} fk_conn_t;

struct fk_server_s {
    uv_tcp_t tcp;
    uint16_t port;
    const fk_step_t *steps;
    size_t n_steps, next_step;
    int accepted;
    int n_req;
    char paths[FK_MAX_REQ][64];
    char hosts[FK_MAX_REQ][64];
    char bodies[FK_MAX_REQ][2048];
    fk_conn_t *conns;
    bool closing;
};

typedef struct fk_write_s {
    uv_write_t req;
    fk_conn_t *c;
    char *heap;
} fk_write_t;

static void fk_conn_on_closed(uv_handle_t *h)
{
    fk_conn_t *c = h->data;
    if (--c->pending_closes > 0)
        return;
    for (fk_conn_t **p = &c->srv->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    free(c->out);
    free(c);
}

static void fk_conn_close(fk_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, fk_conn_on_closed);
    uv_close((uv_handle_t *)&c->timer, fk_conn_on_closed);
}

static void fk_on_written(uv_write_t *req, int status)
{
    fk_write_t *w = req->data;
    free(w->heap);
    free(w);
}

static void fk_write(fk_conn_t *c, const char *p, size_t n)
{
    fk_write_t *w = calloc(1, sizeof(*w));
    FK_CHECK(w != NULL);
    w->heap = malloc(n ? n : 1);
    FK_CHECK(w->heap != NULL);
    memcpy(w->heap, p, n);
    w->c = c;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->heap, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, fk_on_written) != 0) {
        free(w->heap);
        free(w);
    }
}

static void fk_on_piece(uv_timer_t *t)
{
    fk_conn_t *c = t->data;
    size_t n = c->out_len - c->out_off < c->piece ? c->out_len - c->out_off : c->piece;
    fk_write(c, c->out + c->out_off, n);
    c->out_off += n;
    if (c->out_off < c->out_len) {
        uv_timer_start(&c->timer, fk_on_piece, 1, 0);
        return;
    }
    if (c->close_after)
        fk_conn_close(c); /* queued writes go out before the FIN */
}

static const char *fk_reason(unsigned status)
{
    return status == 200 ? "OK" : status == 404 ? "Not Found" : "Error";
}

static void fk_answer(fk_conn_t *c, const fk_step_t *s)
{
    char *msg;
    size_t len;
    if (s->act == FK_CLOSE) {
        fk_conn_close(c);
        return;
    }
    if (s->act == FK_SILENT)
        return;
    if (s->raw != NULL) {
        len = s->raw_len ? s->raw_len : strlen(s->raw);
        msg = malloc(len + 1);
        FK_CHECK(msg != NULL);
        memcpy(msg, s->raw, len);
    } else {
        unsigned st = s->status ? s->status : 200;
        size_t blen = strlen(s->body);
        len = blen + 128;
        msg = malloc(len);
        FK_CHECK(msg != NULL);
        int n = snprintf(msg, len,
                         "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         st, fk_reason(st), blen);
        FK_CHECK(n > 0 && (size_t)n + blen <= len);
        memcpy(msg + n, s->body, blen);
        len = (size_t)n + blen;
    }
    if (s->piece == 0) {
        fk_write(c, msg, len);
        free(msg);
        if (s->act == FK_ANSWER_CLOSE)
            fk_conn_close(c);
        return;
    }
    free(c->out);
    c->out = msg;
    c->out_len = len;
    c->out_off = 0;
    c->piece = s->piece;
    c->close_after = s->act == FK_ANSWER_CLOSE;
    uv_timer_start(&c->timer, fk_on_piece, 1, 0);
}

/* Length of the first complete request in c->in, or 0. */
static size_t fk_request_len(const fk_conn_t *c, size_t *head_len)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= c->in_len; i++) {
        if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
            end = c->in + i + 4;
            break;
        }
    }
    if (end == NULL)
        return 0;
    *head_len = (size_t)(end - c->in);
    size_t clen = 0;
    const char *cl = strstr(c->in, "Content-Length: ");
    if (cl != NULL && cl < end)
        clen = strtoul(cl + 16, NULL, 10);
    return *head_len + clen <= c->in_len ? *head_len + clen : 0;
}

static void fk_copy_line(char *dst, size_t size, const char *p, const char *stop)
{
    size_t n = 0;
    while (p + n < stop && p[n] != '\r' && p[n] != ' ' && n + 1 < size)
        n++;
    memcpy(dst, p, n);
    dst[n] = 0;
}

static void fk_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    fk_conn_t *c = h->data;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof(c->in) - 1 - c->in_len));
}

static void fk_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    fk_conn_t *c = st->data;
    fk_server_t *srv = c->srv;
    size_t head_len = 0, req_len;
    if (nread < 0) {
        fk_conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    c->in[c->in_len] = 0;
    while (!c->closing && (req_len = fk_request_len(c, &head_len)) > 0) {
        if (srv->n_req < FK_MAX_REQ) {
            int i = srv->n_req++;
            const char *sp = memchr(c->in, ' ', head_len);
            const char *host = strstr(c->in, "\r\nHost: ");
            fk_copy_line(srv->paths[i], sizeof(srv->paths[i]), sp ? sp + 1 : c->in,
                         c->in + head_len);
            if (host != NULL && host < c->in + head_len)
                fk_copy_line(srv->hosts[i], sizeof(srv->hosts[i]), host + 8, c->in + head_len);
            size_t blen = req_len - head_len;
            if (blen >= sizeof(srv->bodies[i]))
                blen = sizeof(srv->bodies[i]) - 1;
            memcpy(srv->bodies[i], c->in + head_len, blen);
            srv->bodies[i][blen] = 0;
        }
        memmove(c->in, c->in + req_len, c->in_len - req_len);
        c->in_len -= req_len;
        c->in[c->in_len] = 0;
        if (srv->next_step < srv->n_steps)
            fk_answer(c, &srv->steps[srv->next_step++]);
    }
}

static void fk_on_connection(uv_stream_t *l, int status)
{
    fk_server_t *srv = l->data;
    if (status < 0)
        return;
    fk_conn_t *c = calloc(1, sizeof(*c));
    FK_CHECK(c != NULL);
    c->srv = srv;
    uv_tcp_init(l->loop, &c->tcp);
    uv_timer_init(l->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = srv->conns;
    srv->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        fk_conn_close(c);
        return;
    }
    srv->accepted++;
    uv_read_start((uv_stream_t *)&c->tcp, fk_on_alloc, fk_on_read);
}

/* Starts listening on 127.0.0.1 with an ephemeral port (srv->port). */
static void fk_start(fk_server_t *srv, uv_loop_t *loop, const fk_step_t *steps, size_t n)
{
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    memset(srv, 0, sizeof(*srv));
    srv->steps = steps;
    srv->n_steps = n;
    uv_ip4_addr("127.0.0.1", 0, &a);
    FK_CHECK(uv_tcp_init(loop, &srv->tcp) == 0);
    srv->tcp.data = srv;
    FK_CHECK(uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&a, 0) == 0);
    FK_CHECK(uv_listen((uv_stream_t *)&srv->tcp, 16, fk_on_connection) == 0);
    FK_CHECK(uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&ss, &len) == 0);
    srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Replaces the script (the next request gets steps[0]). */
static void fk_script(fk_server_t *srv, const fk_step_t *steps, size_t n)
{
    srv->steps = steps;
    srv->n_steps = n;
    srv->next_step = 0;
}

/* Closes the listener and every connection; the loop must run for the closes to finish. */
static void fk_stop(fk_server_t *srv)
{
    if (srv->closing)
        return;
    srv->closing = true;
    for (fk_conn_t *c = srv->conns; c != NULL; c = c->next)
        fk_conn_close(c);
    uv_close((uv_handle_t *)&srv->tcp, NULL);
}

/* Builds a chunked HTTP/1.1 200 response from chunks into out (NUL-terminated); with `last`,
 * the terminating chunk ends the body. Returns the length. */
static size_t fk_chunked(char *out, size_t cap, const char *const *chunks, size_t n, bool last)
{
    int off = snprintf(out, cap,
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i < n; i++)
        off +=
            snprintf(out + off, cap - (size_t)off, "%zx\r\n%s\r\n", strlen(chunks[i]), chunks[i]);
    if (last)
        off += snprintf(out + off, cap - (size_t)off, "0\r\n\r\n");
    FK_CHECK((size_t)off < cap);
    return (size_t)off;
}

#endif
