/* transport_tls.c: the TLS kind of the transport over real loopback sockets in one loop, with
 * fake owners on both sides (a client connection's server-side transport, a backend's client
 * transport). Handshake before data and on_connect after it, data both ways (a write request's
 * chunks, a large send that must queue), the owner pausing mid-input and resuming, close_notify
 * then FIN, a failed handshake as a connect failure, plain HTTP turning the transport plain for
 * the 400, garbage answered by an alert, a close mid-handshake, the handshake deadline, the
 * counters. Teardown checks uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <uv.h>

#include "base/list.h"
#include "core/buf.h"
#include "core/metrics.h"
#include "core/transport.h"
#include "sidestep/error.h"
#include "tls_fixture.h"

#define WATCHDOG_MS 10000

typedef struct fx_s fx_t;

/* A fake owner: records what its transport reports. */
typedef struct owner_s {
    sst_transport_t tp; /* first, as in the real owners */
    fx_t *fx;
    unsigned char *rx;
    size_t rx_len, rx_cap;
    int reads; /* on_read calls */
    int connects, connect_status;
    int handshakes; /* on_handshake calls */
    int read_ends, read_end_status;
    int writes, write_status, send_rc;
    int shutdowns;
    bool closed;
    bool pause;              /* stop reading after every chunk; the resumer restarts it */
    bool close_in_handshake; /* close from inside on_handshake */
} owner_t;

struct fx_s {
    uv_loop_t loop;
    sst_bufs_t bufs;
    uv_tcp_t listener;
    uv_timer_t watchdog, resumer, poke;
    struct sockaddr_in addr;
    sst_config_t *cfg;
    sst_tls_set_t *set;
    sst_wmetrics_t *m;
    owner_t *server;              /* the accepted side */
    const sst_tp_cb_t *server_cb; /* its callbacks */
    owner_t *to_resume;           /* the owner the resumer restarts */
    const char *plain_answer;     /* what the server answers once it turned plain */
    void (*poke_cb)(fx_t *fx);    /* run once the server accepted, a moment later */
    int resumes;
    bool timed_out;
};

static const char fx_yaml[] = "listen:\n"
                              "  - address: 127.0.0.1:0\n"
                              "    tls:\n"
                              "      certificates: [{cert: $D/api-ecdsa.pem, key: "
                              "$D/api-ecdsa.key}]\n"
                              "regions:\n"
                              "  - name: good\n"
                              "    backends: [127.0.0.1:9443]\n"
                              "    tls: {ca: $D/ca.pem, server_name: api.example.test}\n"
                              "  - name: wrong-name\n"
                              "    url: https://w.example\n"
                              "    backends: [127.0.0.1:9444]\n"
                              "    tls: {ca: $D/ca.pem, server_name: www.example.test}\n";

static owner_t *owner_of(sst_transport_t *t)
{
    return (owner_t *)t;
}

static void fx_on_resume(uv_timer_t *t)
{
    fx_t *fx = t->data;
    owner_t *o = fx->to_resume;
    if (o != NULL && !o->closed && !uv_is_closing((uv_handle_t *)&o->tp.tcp)) {
        fx->resumes++;
        assert_int_equal(sst__tp_read_start(&o->tp), 0);
    }
}

static void ow_on_read(sst_transport_t *t, sst_chunk_t *ch, size_t len)
{
    owner_t *o = owner_of(t);
    if (o->rx_len + len > o->rx_cap) {
        o->rx_cap = (o->rx_len + len) * 2;
        o->rx = realloc(o->rx, o->rx_cap);
        assert_non_null(o->rx);
    }
    memcpy(o->rx + o->rx_len, ch->data, len);
    o->rx_len += len;
    o->reads++;
    sst__chunk_unref(&o->fx->bufs, ch);
    if (o->pause) {
        /* back-pressure: the rest waits in the engine until the resumer starts reading */
        sst__tp_read_stop(t);
        o->fx->to_resume = o;
        uv_timer_start(&o->fx->resumer, fx_on_resume, 1, 0);
    }
}

static void ow_on_read_end(sst_transport_t *t, int status)
{
    owner_t *o = owner_of(t);
    o->read_ends++;
    o->read_end_status = status;
    if (status == SST_EPROTO && sst__tp_clear_text(t) && o->fx->plain_answer != NULL) {
        const char *a = o->fx->plain_answer;
        uv_buf_t b = uv_buf_init((char *)a, (unsigned)strlen(a));
        assert_int_equal(sst__tp_send(t, &b, 1, b.len), SST_TP_SENT);
        assert_int_equal(sst__tp_shutdown(t), 0);
        return; /* closed by on_shutdown */
    }
    sst__tp_close(t, false);
}

static void ow_on_write(sst_transport_t *t, int status, size_t bytes)
{
    owner_t *o = owner_of(t);
    o->writes++;
    o->write_status = status;
}

static void ow_on_connect(sst_transport_t *t, int status)
{
    owner_t *o = owner_of(t);
    assert_false(o->closed); /* on_connect comes before the last callback */
    o->connects++;
    o->connect_status = status;
    if (status != 0) {
        if (status != UV_ECANCELED)
            sst__tp_close(t, false);
        return;
    }
    assert_false(sst__tp_handshaking(t));
    assert_int_equal(sst__tp_read_start(t), 0);
    uv_buf_t parts[2] = {uv_buf_init("pi", 2), uv_buf_init("ng", 2)};
    o->send_rc = sst__tp_send(t, parts, 2, 4);
    assert_int_equal(o->send_rc, SST_TP_SENT);
}

static void ow_on_handshake(sst_transport_t *t)
{
    owner_t *o = owner_of(t);
    o->handshakes++;
    assert_true(sst__tp_handshaking(t));
    if (o->close_in_handshake)
        sst__tp_close(t, false);
}

static void ow_on_shutdown(sst_transport_t *t, int status)
{
    owner_of(t)->shutdowns++;
    if (!uv_is_closing((uv_handle_t *)&t->tcp))
        sst__tp_close(t, false);
}

static void ow_on_closed(sst_transport_t *t)
{
    owner_of(t)->closed = true;
}

static const sst_tp_cb_t ow_cb = {
    .on_read = ow_on_read,
    .on_read_end = ow_on_read_end,
    .on_write = ow_on_write,
    .on_connect = ow_on_connect,
    .on_handshake = ow_on_handshake,
    .on_shutdown = ow_on_shutdown,
    .on_closed = ow_on_closed,
};

/* ---- the fixture -------------------------------------------------------------------------- */

static void fx_on_poke(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->poke_cb(fx);
}

static void fx_on_connection(uv_stream_t *l, int status)
{
    fx_t *fx = l->data;
    owner_t *o = calloc(1, sizeof(*o));
    assert_int_equal(status, 0);
    assert_non_null(o);
    assert_null(fx->server); /* one connection per test */
    o->fx = fx;
    sst_tp_tls_opts_t opts = {.server = sst_tls_set_server(fx->set, 0), .metrics = &fx->m->tls};
    assert_int_equal(sst__tp_init_tls(&o->tp, &fx->loop, fx->server_cb, &opts), 0);
    assert_int_equal(sst__tp_accept(&o->tp, l), 0);
    assert_true(sst__tp_handshaking(&o->tp));
    assert_int_equal(sst__tp_read_start(&o->tp), 0);
    fx->server = o;
    if (fx->poke_cb != NULL)
        uv_timer_start(&fx->poke, fx_on_poke, 50, 0);
}

static void fx_on_watchdog(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->timed_out = true;
    uv_stop(&fx->loop);
}

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    sst_diag_t d;
    char msg[700];
    int len = sizeof(fx->addr);

    assert_non_null(fx);
    fx->cfg = tfx_config(fx_yaml);
    if (sst_tls_set_build(fx->cfg, NULL, NULL, &fx->set, &d, NULL) != 0)
        fail_msg("set: %s", sst_diag_format(&d, msg, sizeof msg));
    fx->m = calloc(1, sizeof(*fx->m));
    assert_non_null(fx->m);
    fx->server_cb = &ow_cb;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->loop.data = &fx->bufs;
    assert_int_equal(uv_tcp_init(&fx->loop, &fx->listener), 0);
    fx->listener.data = fx;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &fx->addr), 0);
    assert_int_equal(uv_tcp_bind(&fx->listener, (const struct sockaddr *)&fx->addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fx->listener, 16, fx_on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&fx->listener, (struct sockaddr *)&fx->addr, &len), 0);
    uv_unref((uv_handle_t *)&fx->listener); /* the loop ends when the connections do */
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    uv_timer_start(&fx->watchdog, fx_on_watchdog, WATCHDOG_MS, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    uv_timer_init(&fx->loop, &fx->resumer);
    fx->resumer.data = fx;
    uv_timer_init(&fx->loop, &fx->poke);
    fx->poke.data = fx;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    uv_close((uv_handle_t *)&fx->listener, NULL);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_close((uv_handle_t *)&fx->resumer, NULL);
    uv_close((uv_handle_t *)&fx->poke, NULL);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* every handle closed */
    if (fx->server != NULL) {
        assert_true(fx->server->closed);
        free(fx->server->rx);
        free(fx->server);
    }
    sst__bufs_free(&fx->bufs);
    sst_tls_set_free(fx->set);
    sst_config_unref(fx->cfg);
    free(fx->m);
    free(fx);
    return 0;
}

/* A backend-kind transport to the fixture's listener, as a backend of region `region`. */
typedef struct client_s {
    owner_t o;
    uv_connect_t req;
} client_t;

static owner_t *fx_client(fx_t *fx, size_t region)
{
    client_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->o.fx = fx;
    sst_tp_tls_opts_t opts = {.client = sst_tls_set_client(fx->set, region),
                              .backend = fx->cfg->regions[region].first_backend,
                              .metrics = &fx->m->tls,
                              .backend_mid = (uint16_t)region};
    assert_non_null(opts.client);
    assert_int_equal(sst__tp_init_tls(&c->o.tp, &fx->loop, &ow_cb, &opts), 0);
    assert_int_equal(sst__tp_connect(&c->o.tp, &c->req, (const struct sockaddr *)&fx->addr), 0);
    return &c->o;
}

/* A plain-TCP transport to the listener that sends `data` once connected. */
typedef struct plain_s {
    owner_t o;
    uv_connect_t req;
    const char *data;
    size_t len;
} plain_t;

static void plain_on_connect(sst_transport_t *t, int status)
{
    plain_t *p = (plain_t *)t;
    uv_buf_t b = uv_buf_init((char *)p->data, (unsigned)p->len);
    assert_int_equal(status, 0);
    assert_int_equal(sst__tp_read_start(t), 0);
    if (p->len > 0)
        assert_int_equal(sst__tp_send(t, &b, 1, p->len), SST_TP_SENT);
}

static const sst_tp_cb_t plain_cb = {
    .on_read = ow_on_read,
    .on_read_end = ow_on_read_end,
    .on_write = ow_on_write,
    .on_connect = plain_on_connect,
    .on_shutdown = ow_on_shutdown,
    .on_closed = ow_on_closed,
};

static owner_t *fx_plain(fx_t *fx, const char *data, size_t len)
{
    plain_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->o.fx = fx;
    p->data = data;
    p->len = len;
    assert_int_equal(sst__tp_init(&p->o.tp, &fx->loop, SST_TP_TCP, &plain_cb), 0);
    assert_int_equal(sst__tp_connect(&p->o.tp, &p->req, (const struct sockaddr *)&fx->addr), 0);
    return &p->o;
}

static void fx_run(fx_t *fx)
{
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(fx->timed_out);
}

static void owner_free(owner_t *o)
{
    assert_true(o->closed);
    free(o->rx);
    free(o);
}

/* ---- the tests ---------------------------------------------------------------------------- */

/* The server echoes what it read with a write request that references the read chunk (the
 * zero-copy relay path), then shuts down: close_notify, then FIN. */
static void echo_on_read(sst_transport_t *t, sst_chunk_t *ch, size_t len)
{
    owner_t *o = owner_of(t);
    sst_wreq_t *r = sst__wreq_get(&o->fx->bufs);
    assert_non_null(r);
    sst__wreq_add(r, NULL, "echo:", 5);
    sst__wreq_add(r, ch, ch->data, len);  /* a reference of its own */
    assert_false(sst__tp_handshaking(t)); /* nothing reaches the owner before the handshake */
    o->send_rc = sst__tp_write(t, r);
    assert_int_equal(o->send_rc, SST_TP_SENT);
    ow_on_read(t, ch, len);
    assert_int_equal(sst__tp_shutdown(t), 0);
}

static const sst_tp_cb_t echo_cb = {
    .on_read = echo_on_read,
    .on_read_end = ow_on_read_end,
    .on_write = ow_on_write,
    .on_shutdown = ow_on_shutdown,
    .on_closed = ow_on_closed,
};

static void test_handshake_exchange_and_close_notify(void **state)
{
    fx_t *fx = *state;
    fx->server_cb = &echo_cb;
    owner_t *c = fx_client(fx, 0);
    assert_true(sst__tp_handshaking(&c->tp));
    fx_run(fx);
    /* the backend side: on_handshake once TCP was up, on_connect once, after the handshake */
    assert_int_equal(c->handshakes, 1);
    assert_int_equal(c->connects, 1);
    assert_int_equal(c->connect_status, 0);
    assert_int_equal(c->rx_len, 9);
    assert_memory_equal(c->rx, "echo:ping", 9);
    /* close_notify, then FIN: the client reads the end of the stream */
    assert_int_equal(c->read_ends, 1);
    assert_int_equal(c->read_end_status, UV_EOF);
    assert_int_equal(fx->server->rx_len, 4);
    assert_memory_equal(fx->server->rx, "ping", 4);
    assert_int_equal(fx->server->shutdowns, 1);
    assert_int_equal(fx->server->writes, 0); /* sent at once: no write callback */
    /* counted once on each side, no failure */
    assert_int_equal(sst_counter_get(&fx->m->tls.handshakes[1][0]), 1);
    assert_int_equal(sst_counter_get(&fx->m->tls.up_handshakes[0][0]), 1);
    for (int k = 0; k < SST_TLS_FAIL__COUNT; k++) {
        assert_int_equal(sst_counter_get(&fx->m->tls.failures[k]), 0);
        assert_int_equal(sst_counter_get(&fx->m->tls.up_failures[0][k]), 0);
    }
    assert_string_equal(sst__tp_tls_failure(&fx->server->tp, NULL), "none");
    owner_free(c);
}

/* 1 MB from the server to a client that stops reading after every chunk: the send queues (one
 * on_write), the client's engine keeps what it has not delivered, and resuming delivers it
 * before the socket is read again. Every byte arrives, in order. */
#define BULK (1000 * 1000)
static unsigned char bulk[BULK];

static void bulk_on_read(sst_transport_t *t, sst_chunk_t *ch, size_t len)
{
    owner_t *o = owner_of(t);
    ow_on_read(t, ch, len);
    uv_buf_t b = uv_buf_init((char *)bulk, BULK);
    o->send_rc = sst__tp_send(t, &b, 1, BULK);
    assert_true(o->send_rc == 0 || o->send_rc == SST_TP_SENT);
    assert_int_equal(sst__tp_shutdown(t), 0);
}

static const sst_tp_cb_t bulk_cb = {
    .on_read = bulk_on_read,
    .on_read_end = ow_on_read_end,
    .on_write = ow_on_write,
    .on_shutdown = ow_on_shutdown,
    .on_closed = ow_on_closed,
};

static void test_large_send_and_paused_reader(void **state)
{
    fx_t *fx = *state;
    for (size_t i = 0; i < BULK; i++)
        bulk[i] = (unsigned char)(i * 7 + i / 251);
    fx->server_cb = &bulk_cb;
    owner_t *c = fx_client(fx, 0);
    c->pause = true;
    fx_run(fx);
    assert_int_equal(c->rx_len, BULK);
    assert_memory_equal(c->rx, bulk, BULK);
    assert_true(c->reads >= BULK / SST_CHUNK_SIZE);
    assert_true(fx->resumes >= c->reads - 1); /* each pause was resumed from the timer */
    assert_int_equal(c->read_end_status, UV_EOF);
    /* a send that had to queue reports exactly once */
    assert_int_equal(fx->server->writes, fx->server->send_rc == 0 ? 1 : 0);
    assert_int_equal(fx->server->write_status, 0);
    owner_free(c);
}

/* A certificate for another name: the backend's handshake fails, which is a connect failure
 * (SST_EPROTO, never a read), counted by reason on both sides. */
static void test_failed_handshake_is_a_connect_failure(void **state)
{
    fx_t *fx = *state;
    owner_t *c = fx_client(fx, 1);
    const char *detail = NULL;
    c->close_in_handshake = false;
    fx_run(fx);
    assert_int_equal(c->connects, 1);
    assert_int_equal(c->connect_status, SST_EPROTO);
    assert_int_equal(c->reads, 0);
    assert_int_equal(c->read_ends, 0);
    assert_int_equal(sst_counter_get(&fx->m->tls.up_failures[1][SST_TLS_FAIL_BAD_CERTIFICATE]), 1);
    assert_int_equal(sst_counter_get(&fx->m->tls.up_handshakes[1][0]), 0);
    /* the server heard the client's alert */
    assert_int_equal(fx->server->read_end_status, SST_EPROTO);
    assert_int_equal(fx->server->reads, 0);
    assert_int_equal(sst_counter_get(&fx->m->tls.failures[SST_TLS_FAIL_BAD_CERTIFICATE]), 1);
    owner_free(c);
    (void)detail;
}

/* Plain HTTP on the TLS port: the transport turns plain, the owner's 400 goes in clear text. */
static void test_plain_http_gets_a_clear_text_answer(void **state)
{
    fx_t *fx = *state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    fx->plain_answer = answer;
    owner_t *c = fx_plain(fx, req, sizeof(req) - 1);
    fx_run(fx);
    assert_int_equal(c->rx_len, sizeof(answer) - 1);
    assert_memory_equal(c->rx, answer, sizeof(answer) - 1);
    assert_int_equal(c->read_end_status, UV_EOF); /* then the FIN */
    assert_int_equal(fx->server->read_end_status, SST_EPROTO);
    assert_true(sst__tp_clear_text(&fx->server->tp));
    assert_int_equal(fx->server->reads, 0);
    assert_int_equal(sst_counter_get(&fx->m->tls.failures[SST_TLS_FAIL_HTTP_ON_TLS]), 1);
    owner_free(c);
}

/* Bytes that are not TLS: a decode_error alert in the clear, then the close. */
static void test_garbage_gets_an_alert(void **state)
{
    fx_t *fx = *state;
    static const char junk[] = "\x01\x02 not a TLS record at all";
    static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32};
    owner_t *c = fx_plain(fx, junk, sizeof(junk) - 1);
    fx_run(fx);
    assert_int_equal(c->rx_len, sizeof(alert));
    assert_memory_equal(c->rx, alert, sizeof(alert));
    assert_int_equal(fx->server->read_end_status, SST_EPROTO);
    assert_false(sst__tp_clear_text(&fx->server->tp));
    assert_int_equal(sst_counter_get(&fx->m->tls.failures[SST_TLS_FAIL_MALFORMED]), 1);
    owner_free(c);
}

/* The owner closes in the middle of the handshake: on_connect still comes (UV_ECANCELED),
 * exactly once, before on_closed. */
static void test_close_mid_handshake(void **state)
{
    fx_t *fx = *state;
    owner_t *c = fx_client(fx, 0);
    c->close_in_handshake = true;
    fx_run(fx);
    assert_int_equal(c->handshakes, 1);
    assert_int_equal(c->connects, 1);
    assert_int_equal(c->connect_status, UV_ECANCELED);
    assert_true(c->closed);
    owner_free(c);
}

/* The owner's handshake deadline: a client that connects and says nothing. */
static owner_t *silent;

static void expire_poke(fx_t *fx)
{
    owner_t *s = fx->server;
    assert_true(sst__tp_handshaking(&s->tp));
    sst__tp_handshake_expired(&s->tp);
    assert_false(sst__tp_handshaking(&s->tp));
    const char *detail = NULL;
    assert_string_equal(sst__tp_tls_failure(&s->tp, &detail), "timeout");
    assert_non_null(strstr(detail, "in time"));
    sst__tp_handshake_expired(&s->tp); /* once only */
    sst__tp_close(&s->tp, false);
}

static void test_handshake_deadline(void **state)
{
    fx_t *fx = *state;
    fx->poke_cb = expire_poke;
    silent = fx_plain(fx, "", 0);
    fx_run(fx);
    assert_int_equal(sst_counter_get(&fx->m->tls.failures[SST_TLS_FAIL_TIMEOUT]), 1);
    assert_int_equal(silent->read_end_status, UV_EOF); /* closed without a byte */
    assert_int_equal(silent->rx_len, 0);
    owner_free(silent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_exchange_and_close_notify, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_large_send_and_paused_reader, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_handshake_is_a_connect_failure, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_plain_http_gets_a_clear_text_answer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_gets_an_alert, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_mid_handshake, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_deadline, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
