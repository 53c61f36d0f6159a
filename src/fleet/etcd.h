/* An asynchronous client of etcd's v3 JSON gateway (grpc-gateway, etcd 3.4) on a libuv loop:
 * KV range/put/delete/txn/compaction, leases and watches over HTTP/1.1, parsed by sidestep's one
 * HTTP/1 layer. Never blocks and never resolves names: endpoints arrive as resolved addresses. */
#ifndef SST_FLEET_ETCD_H
#define SST_FLEET_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sidestep/config.h"
#include "sidestep/str.h"

#define SST_ETCD_MAX_ENDPOINTS 16
/* etcd's default --max-txn-ops */
#define SST_ETCD_MAX_TXN_OPS   128
/* Default bound on one response body or one watch message. etcd sends a catching-up watcher
 * at most 1000 revisions per message (watchBatchMaxRevs), so this holds ~1000 fleet events with
 * their previous values; a larger message ends the call with SST_E2BIG. */
#define SST_ETCD_MAX_MESSAGE   (4u << 20)
/* Bytes kept of an error message (etcd's or ours), NUL included. */
#define SST_ETCD_MESSAGE_MAX   256

typedef struct sst_etcd_s sst_etcd_t;
typedef struct sst_etcd_watch_s sst_etcd_watch_t;

typedef struct sst_etcd_opts_s {
    const sst_addr_t *endpoints; /* resolved (salen > 0); copied by sst_etcd_new */
    size_t n_endpoints;          /* 1..SST_ETCD_MAX_ENDPOINTS */
    uint64_t dial_timeout_ms;    /* one connect attempt; 0: 2000 */
    uint64_t request_timeout_ms; /* a whole unary call (connects included), and a watch until
                                    etcd confirmed it; 0: 5000 */
    size_t max_message;          /* 0: SST_ETCD_MAX_MESSAGE; at most 1 GiB */
    unsigned max_idle;           /* keep-alive connections kept idle for reuse; 0: 4 */
    unsigned watch_keepalive_s;  /* TCP keep-alive idle time on watch connections; 0: 10 */
} sst_etcd_opts_t;

/* Parses "http://host:port" (an optional trailing '/' allowed; "host:port" alone too) into
 * *out through sst_parse_addr. `resolve` resolves host names (blocking getaddrinfo: config time
 * only). https:// is refused (no TLS to etcd yet). Returns 0 or SST_EINVAL. */
int sst_etcd_parse_endpoint(const char *url, size_t len, bool resolve, sst_addr_t *out);

/* Creates a client on `loop` (borrowed; must outlive the client). Nothing is connected yet.
 * Returns 0 and sets *out, SST_EINVAL (no or too many endpoints, an unresolved endpoint) or
 * SST_ENOMEM. */
int sst_etcd_new(uv_loop_t *loop, const sst_etcd_opts_t *opts, sst_etcd_t **out);

typedef void (*sst_etcd_close_cb)(void *arg);

/* Cancels every call not yet answered and every watch (their callbacks run with SST_ECANCELED,
 * later, from the loop; answers already received are still delivered as they are),
 * closes every handle and frees the client after the last close callback; then `cb` (may be
 * NULL) runs once. Safe from inside any callback of this client. Further calls on `e` after
 * sst_etcd_close return SST_ECANCELED (and a second sst_etcd_close is ignored) until `cb` runs;
 * after that `e` is gone. */
void sst_etcd_close(sst_etcd_t *e, sst_etcd_close_cb cb, void *arg);

/* ---- values ----------------------------------------------------------------------------- */

/* One key-value. key/value are decoded bytes, each followed by a NUL not counted in len (so a
 * text value can be handed to a parser directly); the bytes may themselves contain NULs. */
typedef struct sst_etcd_kv_s {
    sst_str_t key;
    sst_str_t value;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease; /* 0: none */
} sst_etcd_kv_t;

typedef enum sst_etcd_op_type_e {
    SST_ETCD_OP_RANGE = 0,
    SST_ETCD_OP_PUT,
    SST_ETCD_OP_DELETE,
} sst_etcd_op_type_t;

/* A key range: `key` alone; or [key, range_end); or, with `prefix`, every key that starts with
 * `key` (range_end is then computed and the field ignored). An empty key with prefix means
 * every key. */
typedef struct sst_etcd_range_s {
    sst_str_t key;
    sst_str_t range_end;
    bool prefix;
    int64_t revision; /* read at this revision; 0: the latest */
    int64_t limit;    /* 0: no limit */
    bool keys_only;
    bool count_only;
    bool serializable; /* answered by the member alone: no quorum round, may be stale */
} sst_etcd_range_t;

typedef struct sst_etcd_put_s {
    sst_str_t key;
    sst_str_t value;
    int64_t lease; /* 0: none */
    bool prev_kv;  /* return the previous kv in the response's kvs */
} sst_etcd_put_t;

typedef struct sst_etcd_delete_s {
    sst_str_t key;
    sst_str_t range_end;
    bool prefix;
    bool prev_kv; /* return the deleted kvs */
} sst_etcd_delete_t;

typedef struct sst_etcd_op_s {
    sst_etcd_op_type_t type;
    union {
        sst_etcd_range_t range;
        sst_etcd_put_t put;
        sst_etcd_delete_t del;
    };
} sst_etcd_op_t;

typedef enum sst_etcd_cmp_target_e {
    SST_ETCD_CMP_VERSION = 0,
    SST_ETCD_CMP_CREATE, /* create_revision */
    SST_ETCD_CMP_MOD,    /* mod_revision */
    SST_ETCD_CMP_VALUE,
    SST_ETCD_CMP_LEASE,
} sst_etcd_cmp_target_t;

typedef enum sst_etcd_cmp_result_e {
    SST_ETCD_CMP_EQUAL = 0,
    SST_ETCD_CMP_GREATER,
    SST_ETCD_CMP_LESS,
    SST_ETCD_CMP_NOT_EQUAL,
} sst_etcd_cmp_result_t;

/* `target <result> number` (or `value`) must hold for every key of the range. etcd compares an
 * empty range as one absent key (revisions, version and lease 0; VALUE never holds). The fleet
 * safety rule uses MOD LESS read_revision+1 over the overrides prefix: no override was written
 * since the read (a deletion does not trip it, and only makes more regions usable). */
typedef struct sst_etcd_compare_s {
    sst_str_t key;
    sst_str_t range_end;
    bool prefix;
    sst_etcd_cmp_target_t target;
    sst_etcd_cmp_result_t result;
    int64_t number;  /* VERSION, CREATE, MOD, LEASE */
    sst_str_t value; /* VALUE */
} sst_etcd_compare_t;

typedef struct sst_etcd_txn_s {
    const sst_etcd_compare_t *compare;
    size_t n_compare;
    const sst_etcd_op_t *success; /* run when every compare holds */
    size_t n_success;
    const sst_etcd_op_t *failure; /* run otherwise */
    size_t n_failure;
} sst_etcd_txn_t;

/* The result of a call, or of one txn op (then `type` says which). Everything it points to is
 * owned by the client and valid only during the callback. Fields a call does not produce are
 * zero. */
typedef struct sst_etcd_resp_s {
    sst_etcd_op_type_t type; /* txn ops */
    int64_t revision;        /* header.revision: the store revision when etcd answered */
    const sst_etcd_kv_t *kvs;
    size_t n_kvs;   /* range: matches; put: the previous kv (prev_kv); delete: deleted (prev_kv) */
    int64_t count;  /* range: keys in the range (even with limit); delete: keys deleted */
    bool more;      /* range: more keys than limit */
    bool succeeded; /* txn: the compares held */
    const struct sst_etcd_resp_s *ops; /* txn: one per op of the branch that ran */
    size_t n_ops;
    int64_t lease_id; /* lease grant, keepalive */
    int64_t ttl;      /* lease grant: granted TTL; keepalive: remaining TTL (seconds) */
    /* On failure: etcd's gRPC status code (0 when the error is not etcd's own: a connection,
     * timeout or parse failure) and a printable message (etcd's, or ours; "" on success). */
    int grpc_code;
    const char *message;
} sst_etcd_resp_t;

/* Runs exactly once per accepted call, later from the loop (never inside the call that started
 * it). `status` is 0 or a negative SST_E* code:
 *   etcd errors (by gRPC code): SST_EINVAL (InvalidArgument, e.g. duplicate key in txn),
 *   SST_ENOENT (NotFound: lease not found), SST_ERANGE (OutOfRange: revision compacted),
 *   SST_EAGAIN (Unavailable: no leader), SST_ETIMEDOUT (DeadlineExceeded), SST_EACCES, SST_EEXIST,
 *   SST_E2BIG (ResourceExhausted), SST_EBUSY (FailedPrecondition, Aborted), SST_EIO (others);
 *   transport: SST_ECONNREFUSED / SST_ETIMEDOUT (no endpoint answered within dial_timeout and
 *   the request timeout), SST_ECONNRESET (the connection closed before the full response:
 *   whether a put/txn was applied is then unknown), SST_EPROTO (malformed HTTP or JSON, wrong
 *   types, invalid base64), SST_E2BIG (response over max_message), SST_ECANCELED (sst_etcd_close),
 *   SST_ENOMEM.
 * `resp` is never NULL; on failure only grpc_code and message are meaningful. */
typedef void (*sst_etcd_cb)(void *arg, int status, const sst_etcd_resp_t *resp);

/* Unary calls. Each returns 0 (the callback will run once) or a negative code and never calls
 * back: SST_EINVAL (NULL, empty key, bad enum, negative TTL), SST_E2BIG (request larger than
 * max_message, more than SST_ETCD_MAX_TXN_OPS ops), SST_ENOMEM, SST_ECANCELED (client closing).
 * The request structs and the bytes they point to are copied before the call returns. Calls are
 * sent on idle keep-alive connections to the preferred endpoint, or on new ones that try each
 * endpoint in turn; after a connect failure, timeout or reset on an endpoint, later calls start
 * with the next one. Only idempotent calls (range, delete, keepalive, revoke, compact) are
 * retried, once, when a reused connection turns out to be closed before any response byte. */
int sst_etcd_range(sst_etcd_t *e, const sst_etcd_range_t *req, sst_etcd_cb cb, void *arg);
int sst_etcd_put(sst_etcd_t *e, const sst_etcd_put_t *req, sst_etcd_cb cb, void *arg);
int sst_etcd_delete(sst_etcd_t *e, const sst_etcd_delete_t *req, sst_etcd_cb cb, void *arg);
int sst_etcd_txn(sst_etcd_t *e, const sst_etcd_txn_t *req, sst_etcd_cb cb, void *arg);
/* Compacts the history up to `revision` (etcd keeps the latest value of every key). */
int sst_etcd_compact(sst_etcd_t *e, int64_t revision, bool physical, sst_etcd_cb cb, void *arg);
/* Grants a lease of `ttl_s` seconds (etcd raises very short TTLs to its minimum, about 5 s with
 * default timings, and says so in resp->ttl); `id` 0 lets etcd choose. resp: lease_id, ttl. */
int sst_etcd_lease_grant(sst_etcd_t *e, int64_t ttl_s, int64_t id, sst_etcd_cb cb, void *arg);
/* Renews a lease once. resp->ttl is the TTL it was renewed to; status SST_ENOENT when the lease
 * has expired or was revoked. */
int sst_etcd_lease_keepalive(sst_etcd_t *e, int64_t id, sst_etcd_cb cb, void *arg);
/* Revokes a lease and deletes its keys; SST_ENOENT when it no longer exists. */
int sst_etcd_lease_revoke(sst_etcd_t *e, int64_t id, sst_etcd_cb cb, void *arg);

/* Computes the range end that selects every key starting with key[0..len): the key with its
 * last byte below 0xff incremented and what follows dropped; all 0xff (or empty) gives "\0",
 * meaning "to the end of the keyspace". Writes at most len bytes (at least 1) into out; returns
 * the length. */
size_t sst_etcd_prefix_end(const char *key, size_t len, char *out);

/* ---- watch ------------------------------------------------------------------------------ */

typedef struct sst_etcd_watch_opts_s {
    sst_str_t key;
    sst_str_t range_end;
    bool prefix;
    int64_t start_revision; /* deliver events from this revision; 0: from the next change */
    bool progress_notify;   /* ask for periodic progress messages (etcd's
                               --experimental-watch-progress-notify-interval, 10 min default) */
    bool prev_kv;           /* events carry the previous kv */
} sst_etcd_watch_opts_t;

typedef enum sst_etcd_event_type_e {
    SST_ETCD_EVENT_PUT = 0,
    SST_ETCD_EVENT_DELETE,
} sst_etcd_event_type_t;

typedef struct sst_etcd_event_s {
    sst_etcd_event_type_t type;
    sst_etcd_kv_t kv; /* DELETE: key and mod_revision (the deletion's revision) only */
    bool has_prev;
    sst_etcd_kv_t prev_kv; /* with prev_kv, when the key existed before */
} sst_etcd_event_t;

typedef enum sst_etcd_watch_kind_e {
    SST_ETCD_WATCH_CREATED = 0, /* etcd confirmed the watch */
    SST_ETCD_WATCH_EVENTS,      /* events, in revision order */
    SST_ETCD_WATCH_PROGRESS,    /* no events up to `revision` are pending */
    SST_ETCD_WATCH_END,         /* the last message: the watch is over and freed after it */
} sst_etcd_watch_kind_t;

typedef struct sst_etcd_watch_msg_s {
    sst_etcd_watch_kind_t kind;
    int64_t revision; /* header.revision (CREATED, EVENTS, PROGRESS) */
    const sst_etcd_event_t *events;
    size_t n_events;
    /* Every event up to last_revision has been delivered: resume with start_revision =
     * last_revision + 1. Before any event it is start_revision - 1 when one was given; a watch
     * from now leaves it 0 (unknown) until an event or a progress message, so a watcher that
     * must lose nothing reads first and watches from the read's revision + 1. Set in every
     * message. */
    int64_t last_revision;
    /* END: why. SST_ECANCELED (sst_etcd_watch_cancel, sst_etcd_close); SST_ERANGE with
     * compact_revision set (start_revision was compacted: read again, watch from the read's
     * revision + 1); SST_ECONNRESET (the connection was lost: etcd stopped or the network broke);
     * SST_ECONNREFUSED / SST_ETIMEDOUT (no endpoint, or no confirmation within the request
     * timeout); SST_EPROTO / SST_E2BIG (malformed or oversized message); an etcd error mapped
     * as for unary calls; SST_EIO when etcd cancelled the watch for another reason. */
    int err;
    int64_t compact_revision;
    int grpc_code;
    const char *message; /* printable, "" when none */
} sst_etcd_watch_msg_t;

/* `msg` and what it points to are valid during the call only. */
typedef void (*sst_etcd_watch_cb)(void *arg, const sst_etcd_watch_msg_t *msg);

/* Starts a watch on its own long-lived connection (endpoints tried in turn, TCP keep-alive on).
 * Returns 0 and sets *out; the callback then runs for each message, later from the loop, and
 * exactly one END message is the last (after which *out is freed). Returns SST_EINVAL,
 * SST_E2BIG, SST_ENOMEM or SST_ECANCELED with no callback ever. The caller reconnects: after an
 * END it decides whether and from which revision to watch again. */
int sst_etcd_watch(sst_etcd_t *e, const sst_etcd_watch_opts_t *opts, sst_etcd_watch_cb cb,
                   void *arg, sst_etcd_watch_t **out);

/* Ends the watch: no message but END (err SST_ECANCELED) is delivered after this returns, and
 * END runs later from the loop. Safe from inside the watch's own callback. Does nothing when an
 * END is already pending; `w` must not be used after its END callback returned. */
void sst_etcd_watch_cancel(sst_etcd_watch_t *w);

#endif
