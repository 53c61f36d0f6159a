/* The routing core: which route a request matches, whether it is proxied, redirected (307/308)
 * or rejected, how the Location is built, which backend serves it, and what to do when an
 * attempt fails. Pure: values in, values out; no libuv, no clock, no malloc. */
#ifndef SST_ROUTE_H
#define SST_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/str.h"

typedef enum sst_decision_kind_e {
    SST_DECIDE_PROXY = 0, /* proxy to `region`'s backends */
    SST_DECIDE_REDIRECT,  /* answer `status` with a Location in `region` */
    SST_DECIDE_REJECT,    /* answer `status` (503 with Retry-After, 400, ...) */
} sst_decision_kind_t;

typedef struct sst_route_input_s {
    uint64_t now_ms;
    sst_str_t method;         /* as received, e.g. "POST" */
    sst_str_t target;         /* request-target exactly as received: origin-form or absolute-form */
    sst_str_t host;           /* Host header value, empty when absent */
    sst_str_t origin;         /* Origin header value, empty when absent */
    sst_str_t acr_method;     /* Access-Control-Request-Method value, empty when absent */
    sst_str_t acr_headers;    /* Access-Control-Request-Headers value, empty when absent */
    bool acr_repeated;        /* either of those two fields appeared more than once */
    uint32_t exclude_regions; /* bit r set: region r already failed for this request (in-flight
                                 failover); such a region is treated as not usable */
} sst_route_input_t;

/* Longest Access-Control-Request-Method / -Headers value a preflight answer echoes. */
#define SST_CORS_METHOD_MAX  64
#define SST_CORS_HEADERS_MAX 1024

/* Location = parts[0] + parts[1] + ... + parts[n_parts-1]. Slices point into the config, the
 * input target and static storage, so they stay valid while both do. */
#define SST_LOCATION_PARTS 6

typedef struct sst_decision_s {
    sst_decision_kind_t kind;
    size_t route;           /* matched route index; SIZE_MAX when no route matched */
    size_t region;          /* PROXY: region to proxy to; REDIRECT: target region */
    uint16_t status;        /* REDIRECT: 307 or 308 (or 301 for https); REJECT: status */
    bool ignore_health;     /* PROXY under fail_open or a forced-up region: pick any backend */
    const char *reason;     /* static text: "primary up", "failover", "all regions down", ... */
    uint64_t retry_after_s; /* REJECT 503: Retry-After value, 0 for none */
    sst_str_t location[SST_LOCATION_PARTS];
    size_t n_location;
    size_t location_len;   /* sum of the parts */
    sst_str_t cors_origin; /* REDIRECT: value for Access-Control-Allow-Origin, empty for none */
    bool cors_credentials; /* REDIRECT with cors_origin: Access-Control-Allow-Credentials: true */
    /* REDIRECT: the request is a CORS preflight for it, answered 204 by sidestep instead of
     * the redirect (a preflight must not be redirected: Fetch fails the whole call). Then
     * cors_method is the Access-Control-Allow-Methods value and cors_headers the
     * Access-Control-Allow-Headers value (empty: the field is omitted). */
    bool preflight;
    sst_str_t cors_method;
    sst_str_t cors_headers;
    uint32_t hops_in; /* hop count found in the request's query */
} sst_decision_t;

/* Index of the route matching host (port ignored, case-insensitive) and the target's path, or
 * -1 when none matches. Host patterns: "*", exact, "*.suffix" (matches any name ending in
 * ".suffix", not "suffix" itself). Among matching routes, an exact host beats a wildcard suffix,
 * which beats "*"; then the longest path prefix wins; then the first listed. The config loader
 * adds a catch-all default route when the file has no `routes`. */
int sst_route_match(const sst_config_t *cfg, sst_str_t host, sst_str_t target);

/* Decides for one request. Returns 0 and fills *out, or SST_EINVAL when the target cannot be
 * routed (not origin-form or absolute-form with an http/https scheme): the caller answers 400.
 * A REDIRECT (failover or fallback) of a CORS preflight is marked `preflight`: method OPTIONS,
 * an Origin the route's cors_origins allow, a token Access-Control-Request-Method of at most
 * SST_CORS_METHOD_MAX bytes, neither Access-Control-Request-* field repeated; the headers are
 * echoed only as sst_cors_request_headers accepts them. A preflight while the route proxies is
 * proxied like any request: the backends answer CORS themselves.
 * Rules, in order:
 *  - no route matches: REJECT 404.
 *  - hop marker at or past max_hops: never redirect; serve from local_region when usable (or
 *    when it is the route's primary under fail_open), else REJECT 503.
 *  - walk [primary, failover...]: the first usable region (sst_hsnap_region_usable, not in
 *    exclude_regions) wins: PROXY when it is the primary or local_region, else REDIRECT.
 *  - none usable: all_down policy (reject 503 + Retry-After, fail_open PROXY primary,
 *    fallback REDIRECT to fallback_region, or PROXY it when it is local_region).
 * A route never redirects to local_region. */
int sst_route_decide(const sst_route_input_t *in, const sst_config_t *cfg, const sst_hsnap_t *snap,
                     sst_decision_t *out);

/* Room for the host of an https Location: a host name (http1.c admits at most 255 bytes) and
 * ":65535". */
#define SST_HTTPS_HOST_MAX 262

/* HTTPS enforcement for a listener with https_redirect: Location https://HOST[:port]TARGET,
 * status https_status_get for GET/HEAD else https_status_other. Returns 0, or SST_EINVAL when
 * host is empty, malformed or longer than host_buf_size (the caller answers 400). `host_buf`
 * (SST_HTTPS_HOST_MAX bytes suffice) receives the lower-cased host and the listener's port; the
 * decision's slices point into it, so it must live as long as the decision does: storage of
 * the request, never a buffer that another request can write while this answer waits. */
int sst_route_https(const sst_route_input_t *in, const sst_listener_cfg_t *lc, char *host_buf,
                    size_t host_buf_size, sst_decision_t *out);

/* Access-Control-Request-Headers as a preflight answer may echo it in
 * Access-Control-Allow-Headers: a list of field names (RFC 9110 §5.6.1 list, §5.1 field-name =
 * token) with optional whitespace, empty elements allowed, at most SST_CORS_HEADERS_MAX bytes.
 * Returns true and sets *out to the value without surrounding whitespace, or false (and an
 * empty *out) when the value is to be left out: malformed, too long, or no name at all. */
bool sst_cors_request_headers(sst_str_t value, sst_str_t *out);

/* Splits a request-target into its path-and-query (origin-form part). For "/a?b" that is the
 * whole target; for "http://h:1/a?b" it is "/a?b"; for "http://h" it is "/" (static). Returns
 * 0, or SST_EINVAL for asterisk-form, authority-form and other schemes. */
int sst_target_path_query(sst_str_t target, sst_str_t *out, sst_str_t *authority);

/* --- backend selection ------------------------------------------------------------------- */

/* Per worker and region round-robin state; zero-initialise. */
typedef struct sst_lb_state_s {
    int32_t current[SST_MAX_BACKENDS]; /* smooth weighted round-robin accumulators */
} sst_lb_state_t;

/* Bitmap of backends already tried by this request. */
typedef struct sst_tried_s {
    uint64_t bits[(SST_MAX_BACKENDS + 63) / 64];
} sst_tried_t;

static inline void sst_tried_set(sst_tried_t *t, size_t b)
{
    t->bits[b / 64] |= (uint64_t)1 << (b % 64);
}
static inline bool sst_tried_has(const sst_tried_t *t, size_t b)
{
    return (t->bits[b / 64] >> (b % 64)) & 1;
}

/* Picks a backend of `region` by smooth weighted round-robin over backends with a non-zero
 * sst_hsnap_backend_weight, skipping `tried`. With ignore_health (fail_open, forced-up region),
 * when no untried backend is UP, the DOWN ones that are not forced down count with their
 * configured weight. Returns the backend index, or -1 when none is eligible. */
int sst_lb_pick(const sst_config_t *cfg, const sst_hsnap_t *snap, size_t region, uint64_t now_ms,
                bool ignore_health, const sst_tried_t *tried, sst_lb_state_t *st);

/* --- what to do when an attempt fails ----------------------------------------------------- */

/* How far an attempt got when it failed. docs/routing.md has the safety matrix. */
typedef enum sst_fail_phase_e {
    SST_FAIL_NO_BACKEND = 0,   /* no eligible backend in the region: nothing was tried */
    SST_FAIL_CONNECT,          /* refused, timed out or errored while connecting: nothing sent */
    SST_FAIL_SEND_PARTIAL,     /* reset or closed before the request was fully written */
    SST_FAIL_SENT,             /* reset or closed after the full request, before a response */
    SST_FAIL_RESPONSE_TIMEOUT, /* no response head within upstream_response */
    SST_FAIL_BAD_RESPONSE,     /* unparseable or over-limit response head */
    SST_FAIL_RESPONSE_STARTED, /* failed after response bytes reached the client */
    SST_FAIL_TRY_TIMEOUT,      /* routes[].try_timeout passed after the request was written, with
                                  no response byte (issue 15): the attempt of a repeatable request
                                  is abandoned (sst_route_try_timeout). A connect still pending at
                                  try_timeout is a SST_FAIL_CONNECT (nothing was sent) */
} sst_fail_phase_t;

typedef enum sst_fail_action_e {
    SST_ON_FAIL_RETRY = 0, /* same region, another backend (caller marks the failed one tried) */
    SST_ON_FAIL_REROUTE,   /* sst_route_decide again with the region in exclude_regions */
    SST_ON_FAIL_RESPOND,   /* answer `status` (502 or 504) */
    SST_ON_FAIL_ABORT,     /* close the client connection: the response was already started */
} sst_fail_action_t;

typedef struct sst_fail_input_s {
    sst_fail_phase_t phase;
    bool idempotent;      /* RFC 9110 §9.2.2 method */
    bool body_consumed;   /* request body bytes were already read from the client: sidestep keeps
                             no copy, so the request can no longer be sent again (a redirect still
                             can: the client re-sends the body) */
    uint32_t attempts;    /* attempts made so far, including the failed one */
    uint32_t retries;     /* the route's retries setting */
    bool backend_left;    /* another untried eligible backend exists in the region */
    bool idempotency_key; /* the route has an idempotency_header and the request carries it once,
                             forwarded to the backend, with a value sst_idempotency_key_valid
                             accepts: it counts as idempotent (the backend deduplicates by it) */
    /* Issue 15: the backend said nothing in time. Set for a connect timeout (CONNECT, whether
     * timeouts.connect or try_timeout ended it); implied by TRY_TIMEOUT. Another backend of the
     * region may be as silent (a whole region gone gray): the two fields below decide whether
     * a retry is worth another wait. */
    bool timed_out;
    bool live_backend_left; /* an untried eligible backend of the region showed life (a response
                               head, on this worker) since the failed attempt began */
    bool redirect_left;     /* a reroute would answer with a redirect to another region */
} sst_fail_input_t;

typedef struct sst_fail_decision_s {
    sst_fail_action_t action;
    uint16_t status;    /* for RESPOND */
    const char *reason; /* static text for the log */
    bool live_only;     /* RETRY after a timeout: only a backend that showed life (as in
                           live_backend_left) may take it; the caller skips the others */
} sst_fail_decision_t;

/* The failure safety matrix (docs/routing.md §7). Pure. A request is *repeatable* when it is
 * idempotent by method or carries an idempotency key; RETRY is never the answer for a request
 * that is not repeatable once the backend may have seen it whole (SENT, TRY_TIMEOUT), nor for
 * one whose body was consumed once any of it may have been sent (SEND_PARTIAL, SENT,
 * TRY_TIMEOUT). A TRY_TIMEOUT of a request that is not repeatable (the caller never abandons
 * one) is answered like a response timeout: 504, never repeated.
 * After a timeout (timed_out, TRY_TIMEOUT) a retry goes only to a backend that showed life
 * (live_only), and when none did, the request is rerouted if a redirect is left: a 307 now
 * beats another try_timeout on a backend as silent as the first (issue 15). With no redirect
 * left, any untried backend may still take the retry, since waiting beats a 504. */
void sst_route_on_failure(const sst_fail_input_t *in, sst_fail_decision_t *out);

/* RFC 9110 §9.2.2: GET HEAD OPTIONS TRACE PUT DELETE are idempotent. */
bool sst_method_is_idempotent(sst_str_t method);

/* --- per-try timeout and idempotency keys (issue 15) --------------------------------------- */

/* Longest Idempotency-Key field value accepted, quotes and escapes included. */
#define SST_IDEMPOTENCY_KEY_MAX 256

/* An idempotency key as the IETF httpapi draft (draft-ietf-httpapi-idempotency-key-header)
 * defines it: an RFC 8941 sf-string, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324", with optional
 * SP/HTAB around it. Accepted: DQUOTE, then printable ASCII (%x20-7E) where '"' and '\' appear
 * only escaped as \" and \\, then DQUOTE; at least one character between the quotes; at most
 * SST_IDEMPOTENCY_KEY_MAX bytes in all. Refused: an empty or unquoted value (a bare token, as
 * some APIs send: a backend that follows the draft would not see a key in it, so it would not
 * deduplicate while sidestep repeated the request), control characters, non-ASCII bytes, a bad
 * escape, anything after the closing quote (parameters included). The caller counts a field
 * that appears more than once as invalid (RFC 8941 §4.2: an Item cannot be a list). */
bool sst_idempotency_key_valid(sst_str_t value);

/* Whether an attempt of one request of route rt that got no response byte within try_timeout
 * is abandoned: rt->try_timeout_ms when the request is repeatable (idempotent by method, or
 * idempotency_key as in sst_fail_input_t), else 0: a request that may not be repeated keeps
 * waiting for timeouts.upstream_response (the expiry is still a passive health signal). */
uint64_t sst_route_try_timeout(const sst_route_cfg_t *rt, bool idempotent, bool idempotency_key);

/* The per-try timer runs while sidestep waits on the backend alone: during the connect, and
 * from the moment the whole request is written until the first response byte. It does not run
 * while the request (its body) is still being written, since the client may be the slow side
 * there; timeouts.body covers that. try_ms is the route's try_timeout (0: none).
 *
 * Connect of an attempt started at start_ms: sets *deadline_ms (saturating), the moment a
 * connect still pending is given up, and returns true when that is try_ms (set and not above
 * timeouts.connect), false for timeouts.connect. Either way it is a connect timeout
 * (SST_FAIL_CONNECT): nothing was sent, so any request may go elsewhere. */
bool sst_route_connect_deadline(const sst_timeouts_cfg_t *to, uint64_t try_ms, uint64_t start_ms,
                                uint64_t *deadline_ms);

/* Wait for the response once the request is fully written at written_ms: sets *deadline_ms and
 * returns SST_FAIL_TRY_TIMEOUT (try_ms set and below upstream_response, which the config
 * guarantees: the request is then abandoned or, when it may not be repeated, only reported)
 * or SST_FAIL_RESPONSE_TIMEOUT. Once a response byte has arrived, or the try timeout has been
 * reported, the caller passes try_ms 0: only the response timeout is left. */
sst_fail_phase_t sst_route_response_deadline(const sst_timeouts_cfg_t *to, uint64_t try_ms,
                                             uint64_t written_ms, uint64_t *deadline_ms);

#endif
