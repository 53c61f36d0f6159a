/* What `sidestep ctl` and `sidestep drill` share: usage errors, --name VALUE / --name=VALUE
 * options, the admin address and token defaults, durations, path encoding, action bodies, one
 * admin API call, reading the JSON answers, and durations printed for people. Not API. */
#ifndef SST_TOOLS_CLI_H
#define SST_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"
#include "tools/admin_client.h"

struct json_object;

#define SST_CLI_MAX_MS        (24ull * 3600 * 1000) /* durations on a command line: 24 hours */
#define SST_CLI_DEFAULT_ADMIN "127.0.0.1:9901"

/* Prints "sidestep TOOL: MESSAGE (see sidestep TOOL --help)" on stderr; returns 2, the usage
 * exit status. */
int sst__cli_usage_error(const char *tool, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Matches argv[*i] against option `name` as "--name VALUE" (moving *i past the value) or
 * "--name=VALUE". Returns false when it is another argument; true when it is this option, with
 * *value set, or with *missing set when the value is absent. */
bool sst__cli_opt(int argc, char **argv, int *i, const char *name, const char **value,
                  bool *missing);

/* `admin` unless NULL or empty, else $SIDESTEP_ADMIN unless empty, else 127.0.0.1:9901. */
const char *sst__cli_admin(const char *admin);
/* $SIDESTEP_TOKEN, or NULL when unset or empty. */
const char *sst__cli_env_token(void);

/* "HOST:PORT", also with an http:// prefix and a trailing slash. Returns 0 or SST_EINVAL. */
int sst__cli_admin_addr(const char *text, sst_addr_t *addr);

/* A duration ("500ms", "3s", "1m"): above zero unless zero_ok, at most SST_CLI_MAX_MS.
 * Returns 0 and sets *out, or SST_EINVAL. */
int sst__cli_duration(const char *text, bool zero_ok, uint64_t *out);

/* Percent-encodes a path segment into out (size bytes, NUL-terminated; truncated at a whole
 * escape): RFC 3986 unreserved characters and ':' stay as they are. */
void sst__cli_encode(const char *in, char *out, size_t size);

/* An action body {"reason": R[, "ttl": TTL]} (ttl NULL for none), malloc'd; NULL on ENOMEM. */
char *sst__cli_action_body(const char *reason, const char *ttl);
/* The same with "scope" (NULL: left out, the server's default) and "override_safety" (left out
 * when false). */
char *sst__cli_action_body_ex(const char *reason, const char *ttl, const char *scope,
                              bool override_safety);

/* One admin API request (body NULL for none) with the bearer token (NULL for none). Returns 0
 * and fills *out (free with sst__hc_reply_free), or a negative error with err filled. */
int sst__cli_admin_call(const sst_addr_t *admin, const char *token, const char *method,
                        const char *target, const char *body, uint64_t timeout_ms,
                        sst_hc_reply_t *out, char *err, size_t err_size);

/* What a failed admin answer says: the "error" member of its JSON (j may be NULL), else its
 * body. */
const char *sst__cli_error_text(struct json_object *j, const sst_hc_reply_t *r);

/* Members of a JSON object; each accepts a NULL object. */
struct json_object *sst__json_get(struct json_object *o, const char *key);
/* A string member, or dflt when absent or not a string. */
const char *sst__json_str(struct json_object *o, const char *key, const char *dflt);
/* An integer member, 0 when absent. */
uint64_t sst__json_u64(struct json_object *o, const char *key);
/* True when the member is present and not null. */
bool sst__json_has(struct json_object *o, const char *key);

/* Formats a duration in ms the way a person reads it: "850ms", "12.4s", "3m20s", "2h5m". */
const char *sst__human_ms(uint64_t ms, char *buf, size_t size);

#endif
