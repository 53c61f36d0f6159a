/* The pure half of the etcd client: base64, JSON request bodies for the v3 gateway, and strict
 * decoding of its responses and watch messages into sst_etcd_* structs. No sockets, no loop, no
 * clock; bad input gives an error code and a message, never a crash. */
#ifndef SST_FLEET_ETCD_CODEC_H
#define SST_FLEET_ETCD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "fleet/etcd.h"

/* Bump allocator for decoded results: everything a response points to, freed at once after the
 * callback. */
typedef struct sst__etcd_block_s sst__etcd_block_t;
typedef struct sst__etcd_arena_s {
    sst__etcd_block_t *head;
} sst__etcd_arena_t;

/* Zeroed memory for n bytes (suitably aligned), or NULL on ENOMEM or overflow. */
void *sst__etcd_arena_alloc(sst__etcd_arena_t *a, size_t n);
void sst__etcd_arena_free(sst__etcd_arena_t *a);

/* Standard base64 with padding (what Go's encoding/json writes for []byte). */
size_t sst__etcd_b64_len(size_t n);
/* Writes sst__etcd_b64_len(n) bytes, no NUL. */
void sst__etcd_b64_encode(const void *in, size_t n, char *out);
/* Strict: length a multiple of 4, only the standard alphabet, '=' only as 1 or 2 final pad
 * characters, pad bits zero. Writes at most n / 4 * 3 bytes. Returns 0 or SST_EINVAL. */
int sst__etcd_b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len);

/* The gateway's calls. */
typedef enum sst__etcd_call_e {
    SST__ETCD_RANGE = 0,
    SST__ETCD_PUT,
    SST__ETCD_DELETE,
    SST__ETCD_TXN,
    SST__ETCD_COMPACT,
    SST__ETCD_LEASE_GRANT,
    SST__ETCD_LEASE_KEEPALIVE,
    SST__ETCD_LEASE_REVOKE,
    SST__ETCD_WATCH,
} sst__etcd_call_t;

/* "/v3/kv/range", ... */
const char *sst__etcd_path(sst__etcd_call_t call);
/* True for calls that can be sent twice without changing the outcome. */
bool sst__etcd_idempotent(sst__etcd_call_t call);

/* Request bodies: each returns 0 and sets *out (a new JSON object the caller puts), or
 * SST_EINVAL (NULL, empty key, bad enum or value) / SST_E2BIG (too many txn ops) / SST_ENOMEM. */
int sst__etcd_json_range(const sst_etcd_range_t *r, json_object **out);
int sst__etcd_json_put(const sst_etcd_put_t *p, json_object **out);
int sst__etcd_json_delete(const sst_etcd_delete_t *d, json_object **out);
int sst__etcd_json_txn(const sst_etcd_txn_t *t, json_object **out);
int sst__etcd_json_compact(int64_t revision, bool physical, json_object **out);
/* Lease grant ({TTL, ID}), keepalive and revoke ({ID}). */
int sst__etcd_json_lease(sst__etcd_call_t call, int64_t ttl_s, int64_t id, json_object **out);
int sst__etcd_json_watch(const sst_etcd_watch_opts_t *w, json_object **out);

/* Serialises `obj` into a new heap buffer, refusing more than `max` bytes (SST_E2BIG). */
int sst__etcd_json_text(json_object *obj, size_t max, char **out, size_t *len);

/* Maps an etcd gRPC status code to SST_E* (see sst_etcd_cb). */
int sst__etcd_grpc_error(int grpc_code);

/* Where a decode failed and why, for sst_etcd_resp_t / sst_etcd_watch_msg_t. */
typedef struct sst__etcd_diag_s {
    int grpc_code;
    char message[SST_ETCD_MESSAGE_MAX];
} sst__etcd_diag_t;

/* Parses exactly one JSON object from body[0..len) (whitespace around it allowed). Returns 0 and
 * sets *out (caller puts), or SST_EPROTO with d->message set. */
int sst__etcd_parse_json(const char *body, size_t len, json_object **out, sst__etcd_diag_t *d);

/* Decodes a unary response: `http_status` and its body. A non-200 status with an etcd error
 * body gives the mapped etcd error; keepalive's streamed {"result": ...} form is unwrapped.
 * Returns 0 and fills *out (pointing into `a`), or a negative SST_E* with *d filled. */
int sst__etcd_decode(sst__etcd_call_t call, unsigned http_status, const char *body, size_t len,
                     sst__etcd_arena_t *a, sst_etcd_resp_t *out, sst__etcd_diag_t *d);

/* Decodes one watch stream message into *out (kind, revision, events, and for an etcd
 * cancellation or error: kind END with err, compact_revision, grpc_code). last_revision is left
 * to the caller. Returns 0, or SST_EPROTO / SST_ENOMEM with *d filled. */
int sst__etcd_decode_watch(json_object *msg, sst__etcd_arena_t *a, sst_etcd_watch_msg_t *out,
                           sst__etcd_diag_t *d);

#endif
