/* libFuzzer target: route.c with a fixed config (numeric addresses: no DNS) and fuzzed health,
 * clock, method, target, Host, Origin and the Access-Control-Request-* fields, checked against
 * what conn.c and respond.c rely on; above all, a Location or CORS value never carries a byte
 * that could end or split a header line. */
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
