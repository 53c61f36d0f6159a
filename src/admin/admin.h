/* Admin API internals shared by admin*.c (the listener on the control loop) and the tools that
 * speak to it (ctl.c, drill.c): request-target routing, the bearer check, action bodies, the
 * status JSON. Not API. */
#ifndef SST_ADMIN_H
#define SST_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/str.h"

struct json_object;
struct sst_server_s;

/* Hard bounds of one admin request; past them the answer is 414, 431 or 413. */
#define SST_ADMIN_MAX_LINE   4096
#define SST_ADMIN_MAX_HEAD   (16 * 1024)
#define SST_ADMIN_MAX_BODY   (64 * 1024)
#define SST_ADMIN_MAX_REASON 100 /* bytes; health keeps 127 and the event text 160 */
#define SST_ADMIN_NAME_MAX   280 /* a decoded region name or backend address */
#define SST_ADMIN_MAX_TTL_MS (30ull * 24 * 3600 * 1000) /* 30 days: leave ttl out for longer */

typedef enum sst_admin_res_e {
    SST_ARES_STATUS = 0,
    SST_ARES_METRICS,
    SST_ARES_RELOAD,
    SST_ARES_REGION,
    SST_ARES_BACKEND,
} sst_admin_res_t;

/* A parsed admin request-target. */
typedef struct sst_admin_target_s {
    sst_admin_res_t res;
    sst_admin_op_t op;             /* REGION and BACKEND */
    char name[SST_ADMIN_NAME_MAX]; /* REGION and BACKEND: percent-decoded, NUL-free */
    const char *allow;             /* value of Allow for this resource */
} sst_admin_target_t;

/* Parses the path of a request-target (origin-form or absolute-form; the query is ignored).
 * Returns 0 and fills *out, or 404 (no such resource) or 400 (bad percent-encoding) with *why
 * set to static text. Pure. */
int sst__admin_parse_target(sst_str_t target, sst_admin_target_t *out, const char **why);

/* True when `method` is one the resource accepts (GET and HEAD for reads, POST for actions). */
bool sst__admin_method_ok(const sst_admin_target_t *t, sst_str_t method);

/* True when `authorization` (the field value, may be empty) is "Bearer <token>" (scheme
 * case-insensitive). The comparison takes the same time whatever the candidate holds. */
bool sst__admin_auth_ok(sst_str_t authorization, const char *token);

/* An action body: {"reason": "...", "ttl": "10m"}. */
typedef struct sst_admin_action_s {
    char reason[SST_ADMIN_MAX_REASON + 1];
    uint64_t ttl_ms; /* 0: none */
} sst_admin_action_t;

/* Parses and validates an action body for `op`: a JSON object with a required, non-empty
 * "reason" string (at most SST_ADMIN_MAX_REASON bytes, no control characters) and an optional
 * "ttl" duration string above zero, which undrain and clear refuse. Unknown keys are errors.
 * Returns 0, or SST_EINVAL with a message in err (the caller answers 400). */
int sst__admin_parse_action(const char *body, size_t len, sst_admin_op_t op,
                            sst_admin_action_t *out, char *err, size_t err_size);

/* Path words of the operator actions ("force-down"); NULL for an out-of-range op. */
const char *sst__admin_op_word(sst_admin_op_t op);

/* ---- status JSON (admin_status.c, control thread only) ---------------------------------- */

/* Builds the whole GET /status document. Returns 0 and a new object, or SST_ENOMEM. */
int sst__admin_status_json(struct sst_server_s *s, struct json_object **out);
/* The state of region r / backend b of the current config, as they appear in /status. */
int sst__admin_region_json(struct sst_server_s *s, size_t r, struct json_object **out);
int sst__admin_backend_json(struct sst_server_s *s, size_t b, struct json_object **out);

/* metrics.c: Prometheus text exposition of every worker's counters plus health. Returns 0 and
 * a malloc'd buffer, or SST_ENOMEM. */
int sst__metrics_render(struct sst_server_s *s, char **out, size_t *len);

#endif
