/* Shared by etcd.c and etcd_call.c only: the client's, its connections' and its calls' state,
 * and the few functions each half calls in the other. Nothing outside the etcd client includes
 * this; the codec (etcd_codec.h) stays free of libuv. */
#ifndef SST_FLEET_ETCD_INTERNAL_H
#define SST_FLEET_ETCD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <uv.h>

#include "base/list.h"
#include "fleet/etcd.h"
#include "fleet/etcd_codec.h"
#include "http/http1.h"

#define ETCD_READ_BUF (16 * 1024)

typedef struct etcd_call_s etcd_call_t;

typedef enum conn_state_e {
    CONN_CONNECTING = 0,
    CONN_BUSY, /* carries a call */
    CONN_IDLE, /* in the keep-alive pool */
    CONN_CLOSING,
} conn_state_t;

typedef struct etcd_conn_s {
    sst_link_t link; /* e->conns */
    sst_link_t idle; /* e->idle while CONN_IDLE */
    sst_etcd_t *e;
    uv_tcp_t tcp;
    uv_timer_t timer; /* dial timeout, then the call's deadline */
    uv_connect_t connect;
    int pending_closes;
    conn_state_t state;
    size_t endpoint;
    etcd_call_t *call;
    bool reused;     /* the call took it from the pool */
    bool got_bytes;  /* response bytes arrived for the current call */
    bool keep_alive; /* the response allows another request */
    sst_h1_t h1;
    sst_head_t *head;
    char rbuf[ETCD_READ_BUF];
} etcd_conn_t;

struct etcd_call_s {
    sst_link_t link; /* e->calls while running, e->done once finished */
    sst_etcd_t *e;
    sst__etcd_call_t kind;
    char *body; /* JSON request body */
    size_t body_len;
    uint64_t deadline_ms; /* unary: the whole call; watch: until etcd confirms it */
    size_t first_endpoint, attempts;
    bool retried;
    bool finished;
    etcd_conn_t *conn;
    int status;
    sst__etcd_diag_t diag;
    /* response */
    unsigned http_status;
    bool streaming; /* a watch answered 200: messages go to the tokener */
    bool too_big;
    char *resp;
    size_t resp_len, resp_cap;
    /* unary */
    sst_etcd_cb cb;
    void *arg;
    /* watch */
    sst_etcd_watch_cb wcb;
    json_tokener *tok;
    size_t msg_bytes;
    bool created;
    int64_t last_revision;
    sst_etcd_watch_msg_t end;
};

struct sst_etcd_watch_s {
    etcd_call_t call;
};

struct sst_etcd_s {
    uv_loop_t *loop;
    sst_addr_t endpoints[SST_ETCD_MAX_ENDPOINTS];
    size_t n_endpoints;
    size_t preferred;
    uint64_t dial_timeout_ms, request_timeout_ms;
    size_t max_message;
    unsigned max_idle, keepalive_s;
    sst_link_t conns, idle, calls, done;
    size_t n_idle;
    uv_timer_t done_timer; /* delivers finished calls from the loop */
    bool closing, freeing;
    sst_etcd_close_cb close_cb;
    void *close_arg;
};

/* --- etcd.c: connections and finishing calls ----------------------------------------------- */

void sst__etcd_diag_printf(sst__etcd_diag_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sst__etcd_call_free(etcd_call_t *c);
/* Fails a running call: status, message, and its connection closed. */
void sst__etcd_call_fail(etcd_call_t *c, int status, bool close_conn);
/* Puts `c` on a connection: a pooled one to the preferred endpoint when allowed, else a new one
 * to the next endpoint not tried yet. With none left, the call fails with the last error. */
void sst__etcd_call_dispatch(etcd_call_t *c, bool allow_reuse);

/* --- etcd_call.c: the request kinds and the watch stream ------------------------------------ */

/* Splits the watch body into JSON messages: chunk boundaries need not match them. Each message
 * is bounded by max_message before json-c buffers more of it. */
int sst__etcd_watch_feed(etcd_call_t *c, const char *at, size_t len);

#endif
