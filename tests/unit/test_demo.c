/* demo.c: the embedded demo's stand-in regions on 127.0.0.1:0, driven byte by byte from blocking
 * sockets while the demo's loop runs on a thread: echo answers tagged per region, /healthz,
 * keep-alive and pipelining, HEAD, Expect: 100-continue, bodies counted, malformed requests
 * refused. Teardown checks uv_loop_close() == 0. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "cfg_fixture.h"
#include "demo/demo.h"
#include "sidestep/error.h"
#include "sidestep/tls.h"

#define RECV_TIMEOUT_S 5 /* the watchdog of every read */

typedef struct demo_fx_s {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    sst_config_t *cfg;
    sst_demo_t *demo;
    uint16_t port[2]; /* backend 0 in region east, backend 1 in region west */
} demo_fx_t;

static void fx_on_stop(uv_async_t *async)
{
    demo_fx_t *fx = async->data;
    sst_demo_stop(fx->demo);
    uv_close((uv_handle_t *)&fx->stop, NULL);
}

static void *fx_thread(void *arg)
{
    demo_fx_t *fx = arg;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int fx_setup(void **state)
{
    demo_fx_t *fx = calloc(1, sizeof(*fx));
    char err[256] = "";

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->cfg = cfx_new();
    cfx_backend(fx->cfg, cfx_region(fx->cfg, "east"), "127.0.0.1", 0);
    cfx_backend(fx->cfg, cfx_region(fx->cfg, "west"), "127.0.0.1", 0);
    assert_int_equal(sst_demo_start(&fx->loop, fx->cfg, &fx->demo, err, sizeof(err)), 0);
    fx->port[0] = sst_demo_port(fx->demo, 0);
    fx->port[1] = sst_demo_port(fx->demo, 1);
    assert_true(fx->port[0] != 0 && fx->port[1] != 0 && fx->port[0] != fx->port[1]);
    assert_int_equal(sst_demo_port(fx->demo, 2), 0);
    assert_int_equal(uv_async_init(&fx->loop, &fx->stop, fx_on_stop), 0);
    fx->stop.data = fx;
    assert_int_equal(pthread_create(&fx->thread, NULL, fx_thread, fx), 0);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    demo_fx_t *fx = *state;

    assert_int_equal(uv_async_send(&fx->stop), 0);
    assert_int_equal(pthread_join(fx->thread, NULL), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* every handle closed, the demo freed */
    cfx_free(fx->cfg);
    free(fx);
    return 0;
}

/* --- a blocking client -------------------------------------------------------------------- */

static int client_connect(uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void client_send(int fd, const char *data)
{
    size_t len = strlen(data);
    assert_int_equal(send(fd, data, len, 0), (ssize_t)len);
}

/* Reads exactly strlen(want) bytes (a timeout fails) and compares them. */
static void client_expect(int fd, const char *want)
{
    size_t len = strlen(want), got = 0;
    char *buf = malloc(len + 1);

    assert_non_null(buf);
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            fail_msg("connection %s after %zu of %zu bytes; wanted:\n%s",
                     n == 0 ? "closed" : "timed out", got, len, want);
        got += (size_t)n;
    }
    buf[len] = '\0';
    assert_string_equal(buf, want);
    free(buf);
}

/* The peer closes next: nothing more arrives before the EOF. */
static void client_expect_eof(int fd)
{
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
}

/* The peer closed: EOF, or a reset when the close found request bytes it had not read yet. */
static void client_expect_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);

    if (n != 0 && !(n < 0 && errno == ECONNRESET))
        fail_msg("connection still open (recv %zd, %s)", n, n < 0 ? strerror(errno) : "data");
}

/* --- expected answers ----------------------------------------------------------------------- */

static const char *const conn_close = "Connection: close\r\n";

/* An answer with a text body; `connection` is a field line or "". */
static char *answer(unsigned status, const char *reason, const char *region, const char *connection,
                    const char *body, bool head_only)
{
    static char buf[8][4096];
    static unsigned next;
    char *out = buf[next++ % 8];
    int n = snprintf(out, sizeof(buf[0]),
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nX-Demo-Region: %s\r\n%s\r\n%s",
                     status, reason, strlen(body), region, connection, head_only ? "" : body);
    assert_true(n > 0 && (size_t)n < sizeof(buf[0]));
    return out;
}

/* The echo of a request: `fields` holds its header lines, each ending in "\n". */
static char *echo(const demo_fx_t *fx, size_t b, const char *line, const char *fields,
                  unsigned body_bytes, const char *connection)
{
    static char body[8][2048];
    static unsigned next;
    const char *region = b == 0 ? "east" : "west";
    char *text = body[next++ % 8];
    int n = snprintf(text, sizeof(body[0]),
                     "%s answered (backend 127.0.0.1:%u)\n%s\n%s\nbody: %u bytes\n", region,
                     fx->port[b], line, fields, body_bytes);
    assert_true(n > 0 && (size_t)n < sizeof(body[0]));
    return answer(200, "OK", region, connection, text, false);
}

/* --- tests ---------------------------------------------------------------------------------- */

typedef struct exchange_s {
    const char *name;
    size_t backend;
    const char *request;
    const char *line;   /* the echoed request-line, or NULL for a health or refusal answer */
    const char *fields; /* the echoed header lines */
    unsigned body_bytes;
    unsigned status; /* a refusal (line NULL): its status, reason phrase and body */
    const char *reason;
    const char *refusal;
    bool close; /* the answer ends the connection */
} exchange_t;

static const exchange_t exchanges[] = {
    {"GET", 0, "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
     "GET /hello?x=1 HTTP/1.1", "Host: a\nAccept: */*\n", 0, 0, NULL, NULL, false},
    {"the other region", 1, "GET / HTTP/1.1\r\nHost: b\r\n\r\n", "GET / HTTP/1.1", "Host: b\n", 0,
     0, NULL, NULL, false},
    {"POST with Content-Length", 0,
     "POST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", "POST /orders HTTP/1.1",
     "Host: a\nContent-Length: 5\n", 5, 0, NULL, NULL, false},
    {"chunked POST", 1,
     "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     "PUT /c HTTP/1.1", "Host: a\nTransfer-Encoding: chunked\n", 11, 0, NULL, NULL, false},
    {"POST /healthz is an ordinary request", 0,
     "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "POST /healthz HTTP/1.1",
     "Host: a\nContent-Length: 0\n", 0, 0, NULL, NULL, false},
    {"HTTP/1.0 closes", 0, "GET /old HTTP/1.0\r\n\r\n", "GET /old HTTP/1.0", "", 0, 0, NULL, NULL,
     true},
    {"Connection: close", 1, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
     "GET /x HTTP/1.1", "Host: a\nConnection: close\n", 0, 0, NULL, NULL, true},
    {"malformed request-line", 0, "GET  /a HTTP/1.1\r\nHost: a\r\n\r\n", NULL, NULL, 0, 400,
     "Bad Request", "400 Bad Request: malformed request-line\n", true},
    {"missing Host", 0, "GET /a HTTP/1.1\r\n\r\n", NULL, NULL, 0, 400, "Bad Request",
     "400 Bad Request: missing Host header\n", true},
    {"bare LF", 1, "GET /a HTTP/1.1\nHost: a\r\n\r\n", NULL, NULL, 0, 400, "Bad Request",
     "400 Bad Request: bare LF\n", true},
    {"HTTP/2 preface", 0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", NULL, NULL, 0, 505,
     "HTTP Version Not Supported",
     "505 HTTP Version Not Supported: HTTP/2 connection preface on an HTTP/1.1 port\n", true},
};

/* Each exchange on a new connection; a kept-alive one must then answer /healthz too. */
static void test_exchanges(void **state)
{
    demo_fx_t *fx = *state;

    for (size_t i = 0; i < sizeof(exchanges) / sizeof(exchanges[0]); i++) {
        const exchange_t *x = &exchanges[i];
        const char *region = x->backend == 0 ? "east" : "west";
        int fd = client_connect(fx->port[x->backend]);
        print_message("%s\n", x->name);
        client_send(fd, x->request);
        if (x->line != NULL)
            client_expect(fd, echo(fx, x->backend, x->line, x->fields, x->body_bytes,
                                   x->close ? conn_close : ""));
        else
            client_expect(fd, answer(x->status, x->reason, region, conn_close, x->refusal, false));
        if (!x->close) {
            client_send(fd, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
            client_expect(fd, answer(200, "OK", region, "", "ok\n", false));
        }
        if (x->close)
            client_expect_eof(fd);
        close(fd);
    }
}

/* Three requests in one write: three answers, in order; the HTTP/1.0 one ends the connection. */
static void test_pipelining(void **state)
{
    demo_fx_t *fx = *state;
    int fd = client_connect(fx->port[0]);
    char want[8192];

    client_send(fd, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz?deep=1 HTTP/1.1\r\nHost: a\r\n"
                    "\r\nGET /c HTTP/1.0\r\n\r\n");
    snprintf(want, sizeof(want), "%s%s%s", echo(fx, 0, "GET /a HTTP/1.1", "Host: a\n", 0, ""),
             answer(200, "OK", "east", "", "ok\n", false),
             echo(fx, 0, "GET /c HTTP/1.0", "", 0, conn_close));
    client_expect(fd, want);
    client_expect_eof(fd);
    close(fd);
}

/* HEAD gets the head of the answer GET would get; HTTP/1.0 keep-alive is honoured. */
static void test_head_and_keep_alive_10(void **state)
{
    demo_fx_t *fx = *state;
    int fd = client_connect(fx->port[1]);

    client_send(fd, "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    client_expect(fd, answer(200, "OK", "west", "", "ok\n", true));
    client_send(fd, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n");
    client_expect(
        fd,
        answer(200, "OK", "west", "",
               strstr(echo(fx, 1, "HEAD /h HTTP/1.1", "Host: a\n", 0, ""), "\r\n\r\n") + 4, true));
    client_send(fd, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    client_expect(fd, echo(fx, 1, "GET /k HTTP/1.0", "Connection: keep-alive\n", 0,
                           "Connection: keep-alive\r\n"));
    client_send(fd, "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    client_expect(fd, answer(200, "OK", "west", conn_close, "ok\n", false));
    client_expect_eof(fd);
    close(fd);
}

/* Expect: 100-continue gets its interim answer before the body is sent. */
static void test_expect_continue(void **state)
{
    demo_fx_t *fx = *state;
    int fd = client_connect(fx->port[0]);

    client_send(fd, "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3"
                    "\r\n\r\n");
    client_expect(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    client_send(fd, "abc");
    client_expect(fd, echo(fx, 0, "POST /up HTTP/1.1",
                           "Host: a\nExpect: 100-continue\nContent-Length: 3\n", 3, ""));
    close(fd);
}

/* A head past the demo's 16 KiB: 431, then the connection ends. */
static void test_head_too_large(void **state)
{
    demo_fx_t *fx = *state;
    int fd = client_connect(fx->port[0]);
    char req[24000];
    size_t len = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n");

    for (int i = 0; i < 5; i++) /* 5 fields of 4000 bytes: past the 16 KiB head */
        len += (size_t)snprintf(req + len, sizeof(req) - len, "X-%d: %04000d\r\n", i, 0);
    assert_true(len + 3 < sizeof(req));
    memcpy(req + len, "\r\n", 3);
    client_send(fd, req);
    client_expect(fd,
                  answer(431, "Request Header Fields Too Large", "east", conn_close,
                         "431 Request Header Fields Too Large: request head too large\n", false));
    client_expect_eof(fd);
    close(fd);
}

/* Stopping closes connections still open, idle or in the middle of a request. */
static void test_stop_with_open_connections(void **state)
{
    demo_fx_t *fx = *state;
    int idle = client_connect(fx->port[0]);
    int mid = client_connect(fx->port[1]);

    client_send(mid, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc");
    client_send(idle, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    client_expect(idle, answer(200, "OK", "east", "", "ok\n", false));
    fx_teardown(state); /* loop closed cleanly: both connections were closed and freed */
    *state = NULL;
    client_expect_eof(idle);
    client_expect_closed(mid);
    close(idle);
    close(mid);
}

static int fx_teardown_if_up(void **state)
{
    return *state != NULL ? fx_teardown(state) : 0;
}

/* The demo's HTTPS certificate, made in-process: it passes every check sidestep makes of a
 * certificate (the TLS contexts of the demo config build), serves localhost, is readable by
 * its owner only, and is never written over an existing file. */
static void test_tls_certificate(void **state)
{
    char dir[] = "/tmp/sst-demo-test-XXXXXX", cert[256], key[256], err[256] = "";
    sst_config_t *cfg = NULL;
    sst_tls_set_t *set = NULL;
    sst_diag_t diag;
    struct stat st;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(sst_demo_tls_cert(dir, cert, sizeof(cert), key, sizeof(key), err, sizeof(err)),
                     0);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(sst_config_demo_tls(cert, key, &cfg, &diag), 0);
    assert_true(cfg->demo);
    assert_int_equal(cfg->n_listeners, 2);
    assert_string_equal(cfg->listeners[1].addr.text, "127.0.0.1:8443");
    assert_string_equal(cfg->listeners[1].proto, "https");
    if (sst_tls_set_build(cfg, NULL, NULL, &set, &diag, NULL) != 0)
        fail_msg("the demo certificate fails a check: %s: %s", diag.key, diag.msg);
    const sst_tls_cert_info_t *ci = sst_tls_server_cert(sst_tls_set_server(set, 1), 0);
    assert_non_null(ci);
    assert_int_equal(ci->n_names, 1);
    assert_string_equal(ci->names[0], "localhost");
    assert_string_equal(ci->key_type, "ECDSA P-256");
    assert_true(ci->not_after - ci->not_before > 29 * 86400);
    sst_tls_set_free(set);
    sst_config_unref(cfg);
    /* never over an existing file: the second run fails and leaves the first one's files */
    assert_int_equal(sst_demo_tls_cert(dir, cert, sizeof(cert), key, sizeof(key), err, sizeof(err)),
                     SST_EEXIST);
    assert_non_null(strstr(err, "demo.key"));
    assert_int_equal(stat(cert, &st), 0);
    unlink(cert);
    unlink(key);
    assert_int_equal(rmdir(dir), 0);
    /* a path that cannot be quoted into the config is refused, never spliced in */
    assert_int_equal(sst_config_demo_tls("/tmp/a\nb.pem", key, &cfg, &diag), SST_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_certificate),
        cmocka_unit_test_setup_teardown(test_exchanges, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_head_and_keep_alive_10, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_head_too_large, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_open_connections, fx_setup,
                                        fx_teardown_if_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
