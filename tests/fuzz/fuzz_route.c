/* libFuzzer target: route.c with a fixed config (numeric addresses: no DNS) and fuzzed health,
 * clock, method, target, Host, Origin and the Access-Control-Request-* fields, checked against
 * what conn.c and respond.c rely on; above all, a Location or CORS value never carries a byte
 * that could end or split a header line. Also the failure matrix, the idempotency-key validator
 * and the per-try deadlines (issue 15), against the safety rules of docs/routing.md §7. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/health.h"
#include "sidestep/route.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char route_yaml[] = "workers: 1\n"
                                 "local_region: us-east\n"
                                 "listen:\n"
                                 "  - 127.0.0.1:0\n"
                                 "  - address: 127.0.0.1:1\n"
                                 "    https_redirect: {get: 301, other: 308, port: 8443}\n"
                                 "regions:\n"
                                 "  - name: us-east\n"
                                 "    url: http://us-east.example\n"
                                 "    backends: [127.0.0.1:9001, 127.0.0.1:9002]\n"
                                 "  - name: eu-west\n"
                                 "    url: https://eu-west.example:8443/base\n"
                                 "    backends: [127.0.0.1:9101]\n"
                                 "  - name: ap-south\n"
                                 "    url: http://ap.example\n"
                                 "    backends: ['[::1]:9201']\n"
                                 "  - name: sa-east\n"
                                 "    backends: [127.0.0.1:9301]\n"
                                 "routes:\n"
                                 "  - name: api\n"
                                 "    match: {host: '*.example.com', path_prefix: /api}\n"
                                 "    primary: us-east\n"
                                 "    failover: [eu-west, ap-south]\n"
                                 "    hop_param: sst_hop\n"
                                 "    max_hops: 2\n"
                                 "    try_timeout: 300ms\n"
                                 "    idempotency_header: Idempotency-Key\n"
                                 "    cors_origins: ['https://app.example.com']\n"
                                 "    cors_credentials: true\n"
                                 "  - name: static\n"
                                 "    match: {host: static.example.com, path_prefix: /s}\n"
                                 "    primary: eu-west\n"
                                 "    failover: [us-east]\n"
                                 "    all_down: fail_open\n"
                                 "    redirect_status: 308\n"
                                 "    at_hop_limit: reject\n"
                                 "    hop_param: h\n"
                                 "    cors_origins: ['*']\n"
                                 "  - name: web\n"
                                 "    match: {host: '*', path_prefix: /}\n"
                                 "    primary: us-east\n"
                                 "    failover: [ap-south, eu-west]\n"
                                 "    all_down: {fallback: ap-south}\n";

static sst_config_t *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sst_diag_t diag;
    if (sst_config_load_string("fuzz_route", route_yaml, sizeof(route_yaml) - 1, &cfg, &diag) !=
        0) {
        char msg[512];
        sst_diag_format(&diag, msg, sizeof(msg));
        fprintf(stderr, "fuzz_route: built-in config does not load: %s\n", msg);
        abort();
    }
    return 0;
}

/* Consumes up to one NUL-terminated field of the input. */
static sst_str_t take(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *start = *p;
    const uint8_t *nul = memchr(start, 0, (size_t)(end - start));
    const uint8_t *stop = nul != NULL ? nul : end;
    *p = nul != NULL ? nul + 1 : end;
    return sst_str((const char *)start, (size_t)(stop - start));
}

static void check_location(const sst_decision_t *d)
{
    size_t total = 0;
    FUZZ_CHECK(d->n_location >= 1 && d->n_location <= SST_LOCATION_PARTS);
    for (size_t i = 0; i < d->n_location; i++) {
        for (size_t j = 0; j < d->location[i].len; j++) {
            unsigned char c = (unsigned char)d->location[i].base[j];
            /* No CTL, SP or DEL: any of them in a header built from the request would be a
             * response-splitting hole. (Raw non-ASCII is refused earlier, by http1.c; route.c
             * passes it through by contract, so it is not checked here.) */
            FUZZ_CHECK(c > 0x20 && c != 0x7f);
        }
        total += d->location[i].len;
    }
    FUZZ_CHECK(total == d->location_len);
    FUZZ_CHECK(total > 0);
}

static void check_cors(const sst_decision_t *d, const sst_route_input_t *in)
{
    for (size_t j = 0; j < d->cors_origin.len; j++) {
        unsigned char c = (unsigned char)d->cors_origin.base[j];
        FUZZ_CHECK(c > 0x20 && c != 0x7f);
    }
    FUZZ_CHECK(!d->cors_credentials || d->cors_origin.len > 0);
    if (!d->preflight)
        return;
    /* a preflight answer: an allowed origin, OPTIONS, a token method, a header list of tokens,
     * commas and OWS only; nothing that respond.c could not put in a field as it is */
    FUZZ_CHECK(in != NULL && d->cors_origin.len > 0 && !in->acr_repeated);
    FUZZ_CHECK(sst_str_eq(in->method, SST_STR_LIT("OPTIONS")));
    FUZZ_CHECK(d->cors_method.len <= SST_CORS_METHOD_MAX && sst_str_is_token(d->cors_method));
    FUZZ_CHECK(d->cors_headers.len <= SST_CORS_HEADERS_MAX);
    for (size_t j = 0; j < d->cors_headers.len; j++) {
        unsigned char c = (unsigned char)d->cors_headers.base[j];
        FUZZ_CHECK(sst_is_tchar(c) || c == ',' || c == ' ' || c == '\t');
    }
    if (d->cors_headers.len > 0) {
        unsigned char first = (unsigned char)d->cors_headers.base[0];
        unsigned char last = (unsigned char)d->cors_headers.base[d->cors_headers.len - 1];
        FUZZ_CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
    }
}

/* The failure matrix from 4 input bytes: phase (some values outside the enum), flags, attempts,
 * retries. */
static void check_failure(sst_str_t f)
{
    uint8_t b[4] = {0};
    memcpy(b, f.base, f.len < 4 ? f.len : 4);
    sst_fail_input_t in = {
        .phase = (sst_fail_phase_t)(b[0] % 10),
        .idempotent = b[1] & 1,
        .body_consumed = (b[1] >> 1) & 1,
        .backend_left = (b[1] >> 2) & 1,
        .idempotency_key = (b[1] >> 3) & 1,
        .timed_out = (b[1] >> 4) & 1,
        .live_backend_left = (b[1] >> 5) & 1,
        .redirect_left = (b[1] >> 6) & 1,
        .attempts = b[2],
        .retries = b[3] % 17,
    };
    sst_fail_decision_t d;
    memset(&d, 0xa5, sizeof(d));
    sst_route_on_failure(&in, &d);
    FUZZ_CHECK(d.reason != NULL);
    FUZZ_CHECK(d.action == SST_ON_FAIL_RETRY || d.action == SST_ON_FAIL_REROUTE ||
               d.action == SST_ON_FAIL_RESPOND || d.action == SST_ON_FAIL_ABORT);
    FUZZ_CHECK(d.action == SST_ON_FAIL_RESPOND ? (d.status == 502 || d.status == 504)
                                               : d.status == 0);
    if (d.action == SST_ON_FAIL_RETRY)
        FUZZ_CHECK(in.backend_left && in.attempts <= in.retries);
    /* after a timeout with a redirect left, a retry goes only to a backend that showed life */
    bool silent = in.timed_out || in.phase == SST_FAIL_TRY_TIMEOUT;
    if (d.action == SST_ON_FAIL_RETRY && silent && in.redirect_left &&
        (in.phase == SST_FAIL_CONNECT || in.phase == SST_FAIL_TRY_TIMEOUT))
        FUZZ_CHECK(in.live_backend_left && d.live_only);
    if (d.live_only)
        FUZZ_CHECK(d.action == SST_ON_FAIL_RETRY && in.live_backend_left);
    bool seen = in.phase == SST_FAIL_SENT || in.phase == SST_FAIL_TRY_TIMEOUT;
    /* never a second copy of a request that may not be repeated */
    if (seen && !in.idempotent && !in.idempotency_key)
        FUZZ_CHECK(d.action != SST_ON_FAIL_RETRY && d.action != SST_ON_FAIL_REROUTE);
    /* sidestep keeps no body: it cannot send a consumed one again */
    if ((seen || in.phase == SST_FAIL_SEND_PARTIAL) && in.body_consumed)
        FUZZ_CHECK(d.action != SST_ON_FAIL_RETRY);
    if (in.phase == SST_FAIL_RESPONSE_STARTED)
        FUZZ_CHECK(d.action == SST_ON_FAIL_ABORT);
    if ((unsigned)in.phase > SST_FAIL_TRY_TIMEOUT)
        FUZZ_CHECK(d.action == SST_ON_FAIL_RESPOND && d.status == 502);
}

static void check_idempotency_key(sst_str_t key)
{
    if (!sst_idempotency_key_valid(key))
        return;
    /* what the backend gets is a quoted string of visible ASCII and spaces: nothing that could
     * end the field or be read as another one */
    sst_str_t v = sst_str_trim_ows(key);
    FUZZ_CHECK(v.len >= 3 && v.len <= SST_IDEMPOTENCY_KEY_MAX);
    FUZZ_CHECK(v.base[0] == '"' && v.base[v.len - 1] == '"');
    for (size_t i = 0; i < v.len; i++)
        FUZZ_CHECK(v.base[i] >= 0x20 && v.base[i] <= 0x7e);
    for (size_t i = 0; i < key.len; i++)
        FUZZ_CHECK(key.base[i] != '\r' && key.base[i] != '\n' && key.base[i] != '\0');
}

/* The try-timer deadlines from the clock byte and the fail field's last bytes. */
static void check_deadlines(uint8_t clock, sst_str_t f)
{
    uint8_t b[6] = {0};
    memcpy(b, f.base, f.len < 6 ? f.len : 6);
    const sst_route_cfg_t *rt = &cfg->routes[b[4] % cfg->n_routes];
    uint64_t try_ms = sst_route_try_timeout(rt, b[5] & 1, (b[5] >> 1) & 1);
    FUZZ_CHECK(try_ms == 0 || try_ms == rt->try_timeout_ms);
    if (!(b[5] & 3))
        FUZZ_CHECK(try_ms == 0); /* never armed for a request that may not be repeated */
    uint64_t from = (b[5] & 4) ? UINT64_MAX - clock : (uint64_t)clock * 1000;
    uint64_t at = 0;
    bool by_try = sst_route_connect_deadline(&cfg->timeouts, rt->try_timeout_ms, from, &at);
    FUZZ_CHECK(at >= from);
    FUZZ_CHECK(!by_try ||
               (rt->try_timeout_ms > 0 && rt->try_timeout_ms <= cfg->timeouts.connect_ms));
    sst_fail_phase_t ph = sst_route_response_deadline(&cfg->timeouts, try_ms, from, &at);
    FUZZ_CHECK(at >= from);
    FUZZ_CHECK(ph == SST_FAIL_RESPONSE_TIMEOUT || (ph == SST_FAIL_TRY_TIMEOUT && try_ms > 0));
}

static void check_decision(const sst_decision_t *d, const sst_route_input_t *in, bool https)
{
    switch (d->kind) {
    case SST_DECIDE_PROXY:
        FUZZ_CHECK(!https);
        FUZZ_CHECK(d->region < cfg->n_regions);
        break;
    case SST_DECIDE_REDIRECT:
        FUZZ_CHECK(d->status == 301 || d->status == 302 || d->status == 303 || d->status == 307 ||
                   d->status == 308);
        if (!https) {
            FUZZ_CHECK(d->region < cfg->n_regions);
            FUZZ_CHECK(d->region != cfg->local_region); /* a route never redirects to itself */
            FUZZ_CHECK(cfg->regions[d->region].url != NULL);
        }
        check_location(d);
        check_cors(d, https ? NULL : in);
        break;
    case SST_DECIDE_REJECT:
        FUZZ_CHECK(!https);
        FUZZ_CHECK(d->status >= 400 && d->status <= 599);
        break;
    default:
        FUZZ_CHECK(!"unknown decision kind");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    const uint8_t *p = data + 8, *end = data + size;
    sst_hsnap_t *snap = calloc(1, sizeof(*snap));
    if (snap == NULL)
        return 0;

    /* bytes 0-3: region and backend states, 4: clock and hold, 5: exclusions, 6: backend
     * forces, 7: bit 0 Access-Control-Request-* repeated */
    snap->n_regions = cfg->n_regions;
    snap->n_backends = cfg->n_backends;
    uint64_t now = (uint64_t)data[4] * 1000;
    for (size_t r = 0; r < cfg->n_regions; r++) {
        sst_hsnap_region_t *reg = &snap->regions[r];
        uint8_t bits = data[r % 4] >> (r / 4 * 4);
        reg->state = (bits & 1) ? SST_UP : SST_DOWN;
        reg->drained = (bits & 2) != 0;
        reg->force = (bits >> 2) % 3;
        reg->hold_until_ms = (bits & 8) ? now + 500 : 0;
        reg->n_up = reg->state == SST_UP;
    }
    for (size_t b = 0; b < cfg->n_backends; b++) {
        uint8_t bits = data[(b + 1) % 4] >> (b % 8);
        snap->backends[b].state = (bits & 1) ? SST_UP : SST_DOWN;
        snap->backends[b].op = snap->backends[b].state;
        snap->backends[b].force = (data[6] >> (b % 4)) % 3;
    }

    sst_route_input_t in = {
        .now_ms = now,
        .exclude_regions = data[5],
    };
    in.method = take(&p, end);
    in.target = take(&p, end);
    in.host = take(&p, end);
    in.origin = take(&p, end);
    in.acr_method = take(&p, end);
    in.acr_headers = take(&p, end);
    in.acr_repeated = (data[7] & 1) != 0;
    sst_str_t fail = take(&p, end);
    sst_str_t key = take(&p, end);

    check_failure(fail);
    check_idempotency_key(key);
    check_deadlines(data[4], fail);

    int m = sst_route_match(cfg, in.host, in.target);
    FUZZ_CHECK(m >= -1 && m < (int)cfg->n_routes);

    sst_str_t pq, authority;
    if (sst_target_path_query(in.target, &pq, &authority) == 0) {
        FUZZ_CHECK(pq.len > 0 && pq.base[0] == '/');
        if (in.target.base[0] == '/')
            FUZZ_CHECK(pq.base == in.target.base && pq.len == in.target.len);
        else
            FUZZ_CHECK(authority.len > 0 && memchr(authority.base, '@', authority.len) == NULL);
    }

    sst_decision_t d;
    memset(&d, 0xa5, sizeof(d)); /* nothing stale may pass for an answer */
    int rc = sst_route_decide(&in, cfg, snap, &d);
    FUZZ_CHECK(rc == 0 || rc == SST_EINVAL);
    if (rc == 0) {
        check_decision(&d, &in, false);
        FUZZ_CHECK(d.route == SIZE_MAX || d.route < cfg->n_routes);
        FUZZ_CHECK(d.reason != NULL);
    }

    char host_buf[300];
    memset(&d, 0xa5, sizeof(d));
    rc = sst_route_https(&in, &cfg->listeners[1], host_buf, sizeof(host_buf), &d);
    FUZZ_CHECK(rc == 0 || rc == SST_EINVAL);
    if (rc == 0)
        check_decision(&d, &in, true);

    free(snap);
    return 0;
}
