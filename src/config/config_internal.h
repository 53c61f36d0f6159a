/* Shared by src/config*.c only: the loader context, the YAML node helpers every section uses and
 * the text parsers behind them. Nothing outside the config loader includes this. */
#ifndef SST_CONFIG_INTERNAL_H
#define SST_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "sidestep/config.h"
#include "sidestep/str.h"

/* Room for one explanation ("unknown unit "x" (examples: 250ms, 1s, 2m)"). */
#define SST__WHY_SIZE        192
/* The longest duration any key accepts: 24 hours. */
#define SST__MAX_DURATION_MS (24ull * 3600 * 1000)

typedef struct sst__cfg_str_s sst__cfg_str_t;

/* One load in progress. Sections fill `cfg`; every string they keep is copied with
 * sst__cfg_strdup so it lives in the config's string list. `path` is the dotted key path of the
 * node being parsed, kept as a stack (push before descending, pop after). */
typedef struct sst__cfg_ctx_s {
    yaml_document_t *doc;
    sst_config_t *cfg;
    sst__cfg_str_t **strings;
    sst_diag_t *diag;
    char path[256];
    size_t path_len;
} sst__cfg_ctx_t;

/* --- diagnostics and key paths ----------------------------------------------------------- */

/* Fills the diag at `at` (NULL: no position) with the current key path and the message; returns
 * SST_EINVAL so callers can `return sst__cfg_fail(...)`. */
int sst__cfg_fail(sst__cfg_ctx_t *c, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same at a libyaml mark (a position with no node: an empty file, a YAML syntax error). */
int sst__cfg_fail_mark(sst__cfg_ctx_t *c, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an allocation failure; returns SST_ENOMEM. */
int sst__cfg_nomem(sst__cfg_ctx_t *c);
/* Appends ".key" (or "key" at the top) / "[i]" to the path; returns the length to pop back to. */
size_t sst__cfg_push_key(sst__cfg_ctx_t *c, const char *key);
size_t sst__cfg_push_index(sst__cfg_ctx_t *c, size_t i);
void sst__cfg_pop(sst__cfg_ctx_t *c, size_t mark);

/* Writes `s` double-quoted for a message, escaping non-printable bytes and shortening long
 * values; returns buf. */
const char *sst__quote(sst_str_t s, char *buf, size_t size);
/* Formats a millisecond count the way users write it ("1s", "1500ms", "2m"); returns buf. */
const char *sst__fmt_ms(uint64_t ms, char *buf, size_t size);
/* Writes ` (did you mean "x"?)` for the closest of names within edit distance 2 of `got`,
 * or an empty string. */
void sst__suggest(sst_str_t got, const char *const *names, size_t n, char *buf, size_t size);
/* Optimal string alignment distance (a transposition counts as one edit), ASCII
 * case-sensitive; strings longer than 64 bytes count as far from everything. */
size_t sst__edit_distance(sst_str_t a, sst_str_t b);

/* --- YAML nodes -------------------------------------------------------------------------- */

yaml_node_t *sst__cfg_node(const sst__cfg_ctx_t *c, int id);
/* A plain empty, "~" or "null" scalar: a key written with no value. */
bool sst__cfg_is_null(const yaml_node_t *n);
/* Checks that `map` is a mapping (a null value counts as an empty one) whose keys are plain
 * strings, unique, and all in `keys`; an unknown key gets a did-you-mean suggestion. */
int sst__cfg_check_map(sst__cfg_ctx_t *c, const yaml_node_t *map, const char *const *keys,
                       size_t n_keys);
/* Value of `key` in a checked mapping, NULL when absent or when `map` is null. */
yaml_node_t *sst__cfg_get(const sst__cfg_ctx_t *c, const yaml_node_t *map, const char *key);
/* Checks that `seq` is a list of min..max items and sets *n. */
int sst__cfg_seq(sst__cfg_ctx_t *c, const yaml_node_t *seq, size_t min, size_t max, size_t *n);
yaml_node_t *sst__cfg_seq_item(const sst__cfg_ctx_t *c, const yaml_node_t *seq, size_t i);

/* Scalar readers. Each reports its own error at the node under the current path. `what` names
 * the expected value in the type error ("a duration", "a region name"). */
int sst__cfg_scalar(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *what, sst_str_t *out);
/* A string of 1..max_len bytes (0..max_len with allow_empty) without NUL bytes, copied. */
int sst__cfg_string(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t max_len, bool allow_empty,
                    char **out);
int sst__cfg_bool(sst__cfg_ctx_t *c, const yaml_node_t *n, bool *out);
int sst__cfg_uint(sst__cfg_ctx_t *c, const yaml_node_t *n, uint64_t lo, uint64_t hi, uint64_t *out);
/* sst__cfg_uint into a uint32_t (config_regions.c). */
int sst__cfg_u32(sst__cfg_ctx_t *c, const yaml_node_t *v, uint32_t lo, uint32_t hi, uint32_t *out);
int sst__cfg_duration(sst__cfg_ctx_t *c, const yaml_node_t *n, uint64_t lo, uint64_t hi,
                      uint64_t *out);
int sst__cfg_size(sst__cfg_ctx_t *c, const yaml_node_t *n, uint64_t lo, uint64_t hi, uint64_t *out);
/* Formats a byte count the way users write it ("8k", "1m", "1g", else bytes); returns buf. */
const char *sst__cfg_fmt_size(uint64_t v, char *buf, size_t size);
/* "50%", or a bare integer when bare_ok; lo..hi percent. */
int sst__cfg_percent(sst__cfg_ctx_t *c, const yaml_node_t *n, uint32_t lo, uint32_t hi,
                     bool bare_ok, uint32_t *out);
/* One of names[0..n); sets *out to its index. */
int sst__cfg_enum(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *const *names, size_t n_names,
                  int *out);
/* "host:port" or "[v6]:port", names resolved (blocking getaddrinfo). */
int sst__cfg_addr(sst__cfg_ctx_t *c, const yaml_node_t *n, bool allow_port0, sst_addr_t *out);
/* A region name already defined in cfg->regions; sets *out to its index. */
int sst__cfg_region_ref(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t *out);
/* Copies `s` into the config's strings (NUL-terminated); NULL on allocation failure. */
char *sst__cfg_strdup(sst__cfg_ctx_t *c, sst_str_t s);

/* --- the top-level sections (config_top.c) ----------------------------------------------- */

/* Reads every section of the document's root into c->cfg, in dependency order, after setting
 * the defaults; returns 0 or the first section's error (the diag is filled). */
int sst__cfg_build(sst__cfg_ctx_t *c, const yaml_node_t *root);

/* --- regions and routes (config_regions.c, config_routes.c) ------------------------------ */

/* Top-level `health` defaults and `regions` with their backends. */
int sst__cfg_parse_regions(sst__cfg_ctx_t *c, const yaml_node_t *root);
/* Region and route names: [A-Za-z0-9_.-]+, so they read well in logs, metrics and URLs. */
bool sst__cfg_is_name(const char *s);
/* `routes`, or the default route when the key is absent; needs regions and local_region. */
int sst__cfg_parse_routes(sst__cfg_ctx_t *c, const yaml_node_t *root);
/* Route keys checked against other sections once those are read: try_timeout below
 * timeouts.upstream_response. */
int sst__cfg_check_routes(sst__cfg_ctx_t *c, const yaml_node_t *root);

/* --- TLS keys (config_tls.c): paths and settings only, no OpenSSL ------------------------- */

/* Records a warning at `at` (NULL: no position) under the current key path. Returns 0, or
 * SST_ENOMEM after recording the failure in the diag. */
int sst__cfg_warn(sst__cfg_ctx_t *c, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A listener's `tls` and `hsts` blocks (listener mapping `n`, current path listen[i]). */
int sst__cfg_parse_listener_tls(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_listener_cfg_t *l);
/* Checks across listeners once all are parsed (`listen` is the list node). */
int sst__cfg_check_listeners_tls(sst__cfg_ctx_t *c, const yaml_node_t *listen);
/* regions[idx].tls (region mapping `n`, current path regions[idx]). */
int sst__cfg_parse_region_tls(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx);

/* `fleet` (config_fleet.c); needs admin, parsed after it. */
int sst__cfg_parse_fleet(sst__cfg_ctx_t *c, const yaml_node_t *root);

/* --- text parsers (config_values.c): no YAML, no allocation ------------------------------ */

/* Each returns 0, SST_EINVAL or SST_ERANGE and on failure explains why in `why` (SST__WHY_SIZE
 * bytes), without repeating the value. */
int sst__parse_duration(sst_str_t s, uint64_t *out, char *why);
int sst__parse_size(sst_str_t s, uint64_t *out, char *why);
int sst__parse_addr(sst_str_t s, bool allow_port0, bool resolve, sst_addr_t *out, char *why);
int sst__parse_cidr(sst_str_t s, sst_cidr_t *out, char *why);
/* Appends the ranges of "200-399", "200" or "200,204,300-302" to r[*n..SST_MAX_STATUS_RANGE). */
int sst__parse_status_ranges(sst_str_t s, sst_status_range_t *r, size_t *n, char *why);
/* In place, on a NUL-terminated copy: validate and normalise (lower-case scheme and host, drop
 * trailing '/'). */
int sst__normalize_url(char *s, char *why);
int sst__normalize_origin(char *s, char *why);
int sst__normalize_host_pattern(char *s, char *why);
/* Origin-form path for probes and route prefixes: starts with '/', no CTL, space or '#'. */
int sst__check_path(sst_str_t s, char *why);

#endif
