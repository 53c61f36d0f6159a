/* The transport's PROXY protocol phase (transport_proxy.c, issue 16). The accumulator alone,
 * pure: every header fed whole, at every split point and byte by byte must give the same
 * outcome and the same start of the request. Then over loopback sockets in one uv_loop_t with
 * a fake owner: a client connection's header in pieces or sharing its segment with the
 * request, stripped before the first on_read, the declared addresses (sst__tp_peer,
 * sst__tp_local, sst__tp_pp_addrs), refusals, EOF, an owner closing from on_proxy; and a
 * backend connection opening with its header before the owner's bytes. Teardown asserts
 * uv_loop_close() == 0. */
#define _GNU_SOURCE 1 /* accept4 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/list.h"
#include "core/transport.h"
#include "sidestep/error.h"

/* ---- headers ------------------------------------------------------------------------------- */

#define SIG2 "\r\n\r\n\0\r\nQUIT\n"

typedef struct hdr_s {
    const char *name;
    const char *bytes;
    size_t len;
    sst_pp_status_t st; /* fed whole */
    sst_pp_command_t command;
    const char *src; /* declared client, NULL when the peer stands */
    uint16_t sport;
    const char *authority;
} hdr_t;

#define H(name, lit, st, cmd, src, sport, auth)                                                    \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, st, cmd, src, sport, auth                                      \
    }

static const hdr_t headers[] = {
    H("v1 tcp4", "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n", SST_PP_DONE, SST_PP_PROXY,
      "203.0.113.7", 5555, NULL),
    H("v1 tcp6", "PROXY TCP6 2001:db8::7 2001:db8::1 6666 443\r\n", SST_PP_DONE, SST_PP_PROXY,
      "2001:db8::7", 6666, NULL),
    H("v1 unknown", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", SST_PP_DONE, SST_PP_UNKNOWN, NULL, 0,
      NULL),
    H("v2 tcp4", SIG2 "\x21\x11\x00\x0c\xcb\x00\x71\x07\xc0\x00\x02\x01\x15\xb3\x00\x50",
      SST_PP_DONE, SST_PP_PROXY, "203.0.113.7", 5555, NULL),
    /* with AUTHORITY "a.example" and a NOOP */
    H("v2 tcp4 tlvs",
      SIG2 "\x21\x11\x00\x1b\xc6\x33\x64\x09\xc0\x00\x02\x01\x11\x5c\x01\xbb"
           "\x02\x00\x09"
           "a.example"
           "\x04\x00\x00",
      SST_PP_DONE, SST_PP_PROXY, "198.51.100.9", 4444, "a.example"),
    H("v2 local", SIG2 "\x20\x00\x00\x00", SST_PP_DONE, SST_PP_LOCAL, NULL, 0, NULL),
    H("v2 unix + authority",
      SIG2 "\x21\x31\x00\xdc" /* 216 bytes of addresses, then AUTHORITY "u" */
           "................................................................"
           "................................................................"
           "................................................................"
           "........................"
           "\x02\x00\x01u",
      SST_PP_DONE, SST_PP_UNKNOWN, NULL, 0, "u"),
    H("http", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", SST_PP_ERROR, 0, NULL, 0, NULL),
    H("v1 bad port", "PROXY TCP4 203.0.113.7 192.0.2.1 055 80\r\n", SST_PP_ERROR, 0, NULL, 0, NULL),
    H("v1 too long",
      "PROXY UNKNOWN ......................................................"
      "..........................................................",
      SST_PP_ERROR, 0, NULL, 0, NULL),
    H("v2 too long", SIG2 "\x21\x11\x13\x88", SST_PP_ERROR, 0, NULL, 0, NULL),
    H("v2 bad tlv",
      SIG2 "\x21\x11\x00\x0f\xcb\x00\x71\x07\xc0\x00\x02\x01\x15\xb3\x00\x50\x02\x00\x05",
      SST_PP_ERROR, 0, NULL, 0, NULL),
};

static const char request[] =
    "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";

/* ---- the accumulator, pure ------------------------------------------------------------------ */

typedef struct outcome_s {
    sst_pp_status_t st;
    sst_pp_error_t error;
    size_t at; /* DONE: where the request starts in the whole input */
    sst_pp_command_t command;
    int family;
    char authority[256];
} outcome_t;

/* Feeds data[0..len) in pieces of `piece` bytes (0: whole) until the outcome is decided. */
static outcome_t feed(const char *data, size_t len, size_t piece)
{
    sst_pp_acc_t acc = {0};
    outcome_t o;
    size_t off = 0;
    memset(&o, 0, sizeof(o));
    o.st = SST_PP_NEED_MORE;
    while (off < len && o.st == SST_PP_NEED_MORE) {
        size_t n = piece == 0 || piece > len - off ? len - off : piece;
        /* an exact-size copy: ASan flags a read past the piece */
        char *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, data + off, n);
        sst_pp_result_t res;
        size_t used = 0;
        assert_int_equal(sst__pp_acc_feed(&acc, copy, n, SST_PP_V2_MAX_DEFAULT, &o.st, &res, &used),
                         0);
        if (o.st == SST_PP_NEED_MORE) {
            assert_int_equal(used, n);
        } else {
            o.error = res.error;
            o.command = res.command;
            o.family = res.family;
            snprintf(o.authority, sizeof(o.authority), "%.*s", (int)res.authority.len,
                     res.authority.base != NULL ? res.authority.base : "");
            if (o.st == SST_PP_DONE) {
                assert_true(used >= 1 && used <= n);
                o.at = off + used;
            }
        }
        /* only header bytes are kept: never the request after it */
        assert_true(acc.len <= SST_PP_V2_MAX_DEFAULT);
        assert_true(o.st != SST_PP_DONE || acc.len <= o.at);
        free(copy);
        off += n;
    }
    sst__pp_acc_free(&acc);
    return o;
}

static void test_accumulator_splits(void **state)
{
    char data[1024];
    for (size_t h = 0; h < sizeof(headers) / sizeof(headers[0]); h++) {
        const hdr_t *hd = &headers[h];
        size_t len = hd->len + sizeof(request) - 1;
        assert_true(len <= sizeof(data));
        memcpy(data, hd->bytes, hd->len);
        memcpy(data + hd->len, request, sizeof(request) - 1);
        outcome_t whole = feed(data, len, 0);
        if (whole.st != hd->st)
            fail_msg("%s: status %d, want %d", hd->name, whole.st, hd->st);
        if (whole.st == SST_PP_DONE) {
            assert_int_equal(whole.at, hd->len); /* the request starts right after */
            assert_int_equal(whole.command, hd->command);
            assert_string_equal(whole.authority, hd->authority ? hd->authority : "");
        } else {
            assert_int_not_equal(whole.error, SST_PP_OK);
        }
        /* every piece size, down to byte by byte, decides the same at the same byte */
        for (size_t piece = 1; piece <= len; piece++) {
            outcome_t o = feed(data, len, piece);
            if (o.st != whole.st || o.error != whole.error || o.at != whole.at ||
                o.command != whole.command || strcmp(o.authority, whole.authority) != 0)
                fail_msg("%s in pieces of %zu: status %d error %d at %zu, want %d %d %zu", hd->name,
                         piece, o.st, o.error, o.at, whole.st, whole.error, whole.at);
        }
    }
}

/* A header longer than any piece so far: every one of those bytes is kept, none after it. */
static void test_accumulator_keeps_only_the_header(void **state)
{
    static const char v1[] = "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nGET / HTTP/1.1\r\n";
    sst_pp_acc_t acc = {0};
    sst_pp_status_t st;
    sst_pp_result_t res;
    size_t used;
    assert_int_equal(sst__pp_acc_feed(&acc, v1, 3, 0, &st, &res, &used), 0);
    assert_int_equal(st, SST_PP_NEED_MORE);
    assert_int_equal(acc.len, 3);
    /* the rest in one read, with the request after it */
    assert_int_equal(sst__pp_acc_feed(&acc, v1 + 3, sizeof(v1) - 4, 0, &st, &res, &used), 0);
    assert_int_equal(st, SST_PP_DONE);
    assert_int_equal(res.len, 42);
    assert_int_equal(used, 42 - 3);
    assert_int_equal(acc.len, 42); /* the line, not the request after it */
    sst__pp_acc_free(&acc);
    assert_null(acc.buf);
}

/* ---- over sockets: a fake owner ------------------------------------------------------------- */

typedef struct owner_s {
    sst_transport_t tp;
    uv_loop_t *loop;
    int proxies;
    sst_pp_status_t st;
    sst_pp_error_t error;
    sst_pp_command_t command;
    bool read_before_proxy;
    bool close_in_proxy;
    char got[4096];
    size_t got_len;
    bool ended;
    int end_status;
    int connects;
    int connect_status;
    bool closed;
} owner_t;

static owner_t *owner_of(sst_transport_t *t)
{
    return sst_container_of(t, owner_t, tp);
}

static void on_read(sst_transport_t *t, sst_chunk_t *ch, size_t len)
{
    owner_t *o = owner_of(t);
    if (o->proxies == 0)
        o->read_before_proxy = true;
    assert_true(o->got_len + len <= sizeof(o->got));
    memcpy(o->got + o->got_len, ch->data, len);
    o->got_len += len;
    sst__chunk_unref(o->loop->data, ch);
}

static void on_read_end(sst_transport_t *t, int status)
{
    owner_t *o = owner_of(t);
    o->ended = true;
    o->end_status = status;
}

static void on_write(sst_transport_t *t, int status, size_t bytes)
{
}

static void on_connect(sst_transport_t *t, int status)
{
    owner_t *o = owner_of(t);
    o->connects++;
    o->connect_status = status;
}

static void on_shutdown(sst_transport_t *t, int status)
{
}

static void on_closed(sst_transport_t *t)
{
    owner_of(t)->closed = true;
}

static void on_proxy(sst_transport_t *t, sst_pp_status_t st, const sst_pp_result_t *res)
{
    owner_t *o = owner_of(t);
    o->proxies++;
    o->st = st;
    o->error = res->error;
    o->command = res->command;
    if (o->close_in_proxy)
        sst__tp_close(t, false);
}

static const sst_tp_cb_t owner_cb = {
    .on_read = on_read,
    .on_read_end = on_read_end,
    .on_write = on_write,
    .on_connect = on_connect,
    .on_shutdown = on_shutdown,
    .on_closed = on_closed,
    .on_proxy = on_proxy,
};

typedef struct fixture_s {
    uv_loop_t loop;
    sst_bufs_t bufs;
    uv_tcp_t listener;
    uint16_t port;
    owner_t server; /* the accepted connection's owner */
    bool expect;    /* the accepted connection expects a PROXY header */
    bool accepted;
    int client;
} fixture_t;

static void on_connection(uv_stream_t *l, int status)
{
    fixture_t *f = l->data;
    assert_int_equal(status, 0);
    assert_int_equal(sst__tp_init(&f->server.tp, &f->loop, SST_TP_TCP, &owner_cb), 0);
    assert_int_equal(sst__tp_accept(&f->server.tp, l), 0);
    if (f->expect)
        sst__tp_pp_expect(&f->server.tp);
    assert_int_equal(sst__tp_read_start(&f->server.tp), 0);
    f->accepted = true;
}

static void on_closed_noop(uv_handle_t *h)
{
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void spin(fixture_t *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
    struct timespec ts = {0, 300000};
    nanosleep(&ts, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

#define SPIN_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        uint64_t end_ = ms_now() + 5000;                                                           \
        while (!(cond)) {                                                                          \
            if (ms_now() > end_)                                                                   \
                fail_msg("timed out waiting for %s", #cond);                                       \
            spin(f);                                                                               \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->loop.data = &f->bufs;
    f->server.loop = &f->loop;
    f->client = -1;
    assert_int_equal(uv_tcp_init(&f->loop, &f->listener), 0);
    f->listener.data = f;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int len = sizeof(a);
    assert_int_equal(uv_tcp_bind(&f->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 8, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->client >= 0)
        close(f->client);
    if (f->accepted && !f->server.closed && !uv_is_closing((uv_handle_t *)&f->server.tp.tcp))
        sst__tp_close(&f->server.tp, false);
    uv_close((uv_handle_t *)&f->listener, on_closed_noop);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_true(!f->accepted || f->server.closed);
    sst__bufs_free(&f->bufs);
    free(f);
    return 0;
}

static void client_connect(fixture_t *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(f->port)};
    int one = 1;
    f->client = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->client >= 0);
    assert_int_equal(connect(f->client, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(f->client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SPIN_UNTIL(f, f->accepted);
}

static void client_send(fixture_t *f, const char *p, size_t n)
{
    assert_int_equal(send(f->client, p, n, MSG_NOSIGNAL), (ssize_t)n);
    spin(f); /* read now: each send arrives on its own (most of the time) */
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    assert_non_null(inet_ntop(ss->ss_family, a, buf, (socklen_t)size));
}

/* How the client sends the header and the two pipelined requests. */
typedef enum split_e {
    ONE_SEGMENT = 0, /* all of it in one send */
    HEADER_ALONE,    /* the header, then the requests */
    BYTE_BY_BYTE,    /* the header one byte per send, then the requests */
    HALVES,          /* half of the header, then the rest with the requests */
    SPLITS
} split_t;

static void run_valid(fixture_t *f, const hdr_t *hd, split_t how)
{
    size_t rlen = sizeof(request) - 1;
    char all[1024];
    memcpy(all, hd->bytes, hd->len);
    memcpy(all + hd->len, request, rlen);
    f->expect = true;
    client_connect(f);
    switch (how) {
    case ONE_SEGMENT:
        client_send(f, all, hd->len + rlen);
        break;
    case HEADER_ALONE:
        client_send(f, hd->bytes, hd->len);
        client_send(f, request, rlen);
        break;
    case BYTE_BY_BYTE:
        for (size_t i = 0; i < hd->len; i++)
            client_send(f, hd->bytes + i, 1);
        client_send(f, request, rlen);
        break;
    case HALVES:
        client_send(f, all, hd->len / 2);
        client_send(f, all + hd->len / 2, hd->len - hd->len / 2 + rlen);
        break;
    case SPLITS:
        fail();
    }
    owner_t *o = &f->server;
    SPIN_UNTIL(f, o->got_len >= rlen);
    assert_int_equal(o->proxies, 1);
    assert_int_equal(o->st, SST_PP_DONE);
    assert_int_equal(o->command, hd->command);
    assert_false(o->read_before_proxy);
    assert_int_equal(o->got_len, rlen); /* exactly the requests, header stripped */
    assert_memory_equal(o->got, request, rlen);
    assert_false(sst__tp_pp_waiting(&o->tp));

    struct sockaddr_storage peer, local;
    char text[64];
    assert_int_equal(sst__tp_peer(&o->tp, &peer), 0);
    assert_int_equal(sst__tp_local(&o->tp, &local), 0);
    addr_text(&peer, text, sizeof(text));
    if (hd->src != NULL) {
        assert_string_equal(text, hd->src);
        assert_int_equal(port_of(&peer), hd->sport);
        assert_int_not_equal(port_of(&local), f->port); /* the declared destination */
    } else {
        assert_string_equal(text, "127.0.0.1"); /* LOCAL, UNKNOWN: the peer stands */
        assert_int_equal(port_of(&local), f->port);
    }
    sst_str_t auth = sst__tp_pp_authority(&o->tp);
    assert_int_equal(auth.len, hd->authority ? strlen(hd->authority) : 0);
    if (auth.len > 0)
        assert_memory_equal(auth.base, hd->authority, auth.len);
    /* nothing kept for a header that declared nothing */
    if (hd->src == NULL && hd->authority == NULL)
        assert_null(o->tp.pp);
}

static void test_valid_headers_every_split(void **state)
{
    for (size_t h = 0; h < sizeof(headers) / sizeof(headers[0]); h++) {
        if (headers[h].st != SST_PP_DONE)
            continue;
        for (split_t how = ONE_SEGMENT; how < SPLITS; how++) {
            /* a fresh connection per case */
            teardown(state);
            setup(state);
            print_message("%s, split %d\n", headers[h].name, (int)how);
            run_valid(*state, &headers[h], how);
        }
    }
}

static void test_refused_header(void **state)
{
    fixture_t *f = *state;
    static const char get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    f->expect = true;
    client_connect(f);
    client_send(f, get, sizeof(get) - 1);
    owner_t *o = &f->server;
    SPIN_UNTIL(f, o->proxies == 1);
    assert_int_equal(o->st, SST_PP_ERROR);
    assert_int_equal(o->error, SST_PP_ERR_BAD_SIGNATURE);
    assert_false(o->tp.reading); /* nothing after a refused header is read */
    for (int i = 0; i < 20; i++)
        spin(f);
    assert_int_equal(o->got_len, 0);
    assert_false(o->ended);
}

static void test_refused_after_pieces(void **state)
{
    fixture_t *f = *state;
    static const char bad[] = "PROXY TCP4 203.0.113.7 192.0.2.1 1 0x50\r\n";
    f->expect = true;
    client_connect(f);
    for (size_t i = 0; i < sizeof(bad) - 1; i++)
        client_send(f, bad + i, 1);
    owner_t *o = &f->server;
    SPIN_UNTIL(f, o->proxies == 1);
    assert_int_equal(o->st, SST_PP_ERROR);
    assert_int_equal(o->error, SST_PP_ERR_V1_BAD_PORT);
    assert_int_equal(o->got_len, 0);
}

static void test_eof_inside_the_header(void **state)
{
    fixture_t *f = *state;
    f->expect = true;
    client_connect(f);
    client_send(f, "PROXY TCP4 203.", 15);
    shutdown(f->client, SHUT_WR);
    owner_t *o = &f->server;
    SPIN_UNTIL(f, o->ended);
    assert_int_equal(o->end_status, UV_EOF);
    assert_int_equal(o->proxies, 0);
    assert_true(sst__tp_pp_waiting(&o->tp)); /* the owner counts it as a refusal */
    assert_non_null(o->tp.pp);               /* the 15 bytes, freed with the transport */
}

static void test_owner_closes_in_on_proxy(void **state)
{
    fixture_t *f = *state;
    char all[256];
    const hdr_t *hd = &headers[0];
    memcpy(all, hd->bytes, hd->len);
    memcpy(all + hd->len, request, sizeof(request) - 1);
    f->expect = true;
    f->server.close_in_proxy = true;
    client_connect(f);
    client_send(f, all, hd->len + sizeof(request) - 1);
    SPIN_UNTIL(f, f->server.closed);
    assert_int_equal(f->server.proxies, 1);
    assert_int_equal(f->server.got_len, 0); /* the request bytes never reach a closed owner */
}

static void test_no_header_expected(void **state)
{
    fixture_t *f = *state;
    const hdr_t *hd = &headers[0];
    client_connect(f); /* f->expect false: a plain listener */
    client_send(f, hd->bytes, hd->len);
    SPIN_UNTIL(f, f->server.got_len == hd->len);
    assert_int_equal(f->server.proxies, 0);
    assert_memory_equal(f->server.got, hd->bytes, hd->len); /* bytes, not a header */

    /* the socket's addresses, looked up once and kept */
    const struct sockaddr *src, *dst, *src2, *dst2;
    assert_null(f->server.tp.pp);
    assert_int_equal(sst__tp_pp_addrs(&f->server.tp, &src, &dst), 0);
    assert_non_null(f->server.tp.pp);
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    assert_int_equal(getsockname(f->client, (struct sockaddr *)&me, &len), 0);
    assert_int_equal(src->sa_family, AF_INET);
    assert_int_equal(((const struct sockaddr_in *)(const void *)src)->sin_port, me.sin_port);
    assert_int_equal(ntohs(((const struct sockaddr_in *)(const void *)dst)->sin_port), f->port);
    assert_int_equal(sst__tp_pp_addrs(&f->server.tp, &src2, &dst2), 0);
    assert_ptr_equal(src2, src);
    assert_ptr_equal(dst2, dst);
}

static void test_declared_addrs_for_backends(void **state)
{
    fixture_t *f = *state;
    const hdr_t *hd = &headers[4]; /* v2 tcp4 with TLVs */
    f->expect = true;
    client_connect(f);
    client_send(f, hd->bytes, hd->len);
    SPIN_UNTIL(f, f->server.proxies == 1);
    const struct sockaddr *src, *dst;
    assert_int_equal(sst__tp_pp_addrs(&f->server.tp, &src, &dst), 0);
    char buf[SST_PP_WRITE_MAX];
    int n = sst_pp_write(1, src, dst, buf, sizeof(buf));
    assert_true(n > 0);
    static const char want[] = "PROXY TCP4 198.51.100.9 192.0.2.1 4444 443\r\n";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(buf, want, sizeof(want) - 1);
}

/* ---- a backend connection opening with its header ---------------------------------------- */

static void run_backend(fixture_t *f, const sst_tp_pp_out_t *pp)
{
    static const char mine[] = "GET / HTTP/1.1\r\n\r\n";
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);

    owner_t *o = &f->server;
    uv_connect_t req;
    assert_int_equal(sst__tp_init(&o->tp, &f->loop, SST_TP_TCP, &owner_cb), 0);
    f->accepted = true; /* for the teardown: this owner's transport is open */
    assert_int_equal(sst__tp_connect_pp(&o->tp, &req, (struct sockaddr *)&a, pp), 0);
    SPIN_UNTIL(f, o->connects == 1);
    assert_int_equal(o->connect_status, 0);
    uv_buf_t b = uv_buf_init((char *)mine, sizeof(mine) - 1);
    assert_int_equal(sst__tp_send(&o->tp, &b, 1, b.len), SST_TP_SENT);

    int fd = accept4(lfd, NULL, NULL, 0);
    assert_true(fd >= 0);
    char got[512];
    size_t want = (pp != NULL ? pp->len : 0) + sizeof(mine) - 1, have = 0;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (have < want) {
        ssize_t n = recv(fd, got + have, sizeof(got) - have, 0);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_int_equal(have, want);
    size_t hl = pp != NULL ? pp->len : 0;
    if (hl > 0)
        assert_memory_equal(got, pp->bytes, hl); /* the header first */
    assert_memory_equal(got + hl, mine, sizeof(mine) - 1);
    close(fd);
    close(lfd);
}

static void test_backend_header_first(void **state)
{
    sst_tp_pp_out_t pp = {.len = 0};
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(5555)};
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "203.0.113.7", &s.sin_addr);
    inet_pton(AF_INET, "192.0.2.1", &d.sin_addr);
    int n =
        sst_pp_write(2, (struct sockaddr *)&s, (struct sockaddr *)&d, pp.bytes, sizeof(pp.bytes));
    assert_int_equal(n, 28);
    pp.len = (uint8_t)n;
    run_backend(*state, &pp);
}

static void test_backend_without_header(void **state)
{
    sst_tp_pp_out_t none = {.len = 0};
    run_backend(*state, &none); /* len 0 is no header */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accumulator_splits),
        cmocka_unit_test(test_accumulator_keeps_only_the_header),
        cmocka_unit_test_setup_teardown(test_valid_headers_every_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_after_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_inside_the_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_closes_in_on_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_header_expected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_addrs_for_backends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_header_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_without_header, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
