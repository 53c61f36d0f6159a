/* The `routes` section (or the default route when it is absent): names, matches, target regions
 * over the indices config_regions.c assigned, retry, CORS and gray options. Reads regions and
 * limits that other sections filled; never changes them. */
#include "config/config_internal.h"

#include <stdio.h>
#include <string.h>

#include "sidestep/error.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* --- routes ------------------------------------------------------------------------------ */

static void route_defaults(sst_route_cfg_t *r)
{
    r->redirect_status = 307;
    r->all_down = SST_ALL_DOWN_REJECT;
    r->fallback_region = SIZE_MAX;
    r->retry_after_s = 5;
    r->max_hops = 1;
    r->at_hop_limit = SST_HOP_LIMIT_SERVE;
    r->redirect_discard_bytes = 64 * 1024;
    r->retries = 2;
}

/* A region a route may redirect to needs a url, unless this instance runs in it (then the
 * route proxies to it instead). */
static int route_check_target(sst__cfg_ctx_t *c, const yaml_node_t *at, size_t region,
                              const char *role)
{
    const sst_config_t *cfg = c->cfg;
    const sst_region_cfg_t *r = &cfg->regions[region];

    if (r->url != NULL || region == cfg->local_region)
        return 0;
    return sst__cfg_fail(c, at,
                         "region \"%s\" has no url, so it cannot be a %s redirect target "
                         "(set regions[%zu].url, or make it local_region)",
                         r->name, role, region);
}

static int route_name(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    sst_config_t *cfg = c->cfg;
    sst_route_cfg_t *r = &cfg->routes[idx];
    const yaml_node_t *v = sst__cfg_get(c, n, "name");
    char buf[32], q[64];

    if (v == NULL) {
        int len = snprintf(buf, sizeof buf, "route%zu", idx);
        r->name = sst__cfg_strdup(c, sst_str(buf, (size_t)len));
        if (r->name == NULL)
            return sst__cfg_nomem(c);
        for (size_t j = 0; j < idx; j++)
            if (strcmp(cfg->routes[j].name, r->name) == 0)
                return sst__cfg_fail(c, n,
                                     "the default name \"%s\" of this route is taken by "
                                     "routes[%zu]: give this route a name",
                                     r->name, j);
        return 0;
    }
    sst__cfg_push_key(c, "name");
    if (sst__cfg_string(c, v, 64, false, &r->name) != 0)
        return SST_EINVAL;
    if (!sst__cfg_is_name(r->name))
        return sst__cfg_fail(c, v, "invalid route name %s: use letters, digits, '_', '.', '-'",
                             sst__quote(sst_str_c(r->name), q, sizeof q));
    for (size_t j = 0; j < idx; j++)
        if (strcmp(cfg->routes[j].name, r->name) == 0)
            return sst__cfg_fail(c, v, "duplicate route name \"%s\" (also routes[%zu])", r->name,
                                 j);
    return 0;
}

static int route_match(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    static const char *const keys[] = {"host", "path_prefix"};
    sst_config_t *cfg = c->cfg;
    sst_route_cfg_t *r = &cfg->routes[idx];
    const yaml_node_t *m = sst__cfg_get(c, n, "match"), *v;
    const size_t base = c->path_len;
    char q[64], why[SST__WHY_SIZE];
    sst_str_t s;

    r->host = sst__cfg_strdup(c, SST_STR_LIT("*"));
    r->path_prefix = sst__cfg_strdup(c, SST_STR_LIT("/"));
    if (r->host == NULL || r->path_prefix == NULL)
        return sst__cfg_nomem(c);
    sst__cfg_push_key(c, "match");
    const size_t mbase = c->path_len;
    if (m != NULL) {
        if (sst__cfg_check_map(c, m, keys, COUNT_OF(keys)) != 0)
            return SST_EINVAL;
        if ((v = sst__cfg_get(c, m, "host")) != NULL) {
            sst__cfg_push_key(c, "host");
            if (sst__cfg_scalar(c, v, "a host pattern", &s) != 0 ||
                sst__cfg_string(c, v, 255, false, &r->host) != 0)
                return SST_EINVAL;
            if (sst__normalize_host_pattern(r->host, why) != 0)
                return sst__cfg_fail(c, v, "invalid host %s: %s", sst__quote(s, q, sizeof q), why);
            sst__cfg_pop(c, mbase);
        }
        if ((v = sst__cfg_get(c, m, "path_prefix")) != NULL) {
            sst__cfg_push_key(c, "path_prefix");
            if (sst__cfg_string(c, v, 1024, false, &r->path_prefix) != 0)
                return SST_EINVAL;
            s = sst_str_c(r->path_prefix);
            if (sst__check_path(s, why) != 0)
                return sst__cfg_fail(c, v, "invalid path_prefix %s: %s", sst__quote(s, q, sizeof q),
                                     why);
            if (strchr(r->path_prefix, '?') != NULL)
                return sst__cfg_fail(c, v, "invalid path_prefix %s: a query (?) never matches",
                                     sst__quote(s, q, sizeof q));
            sst__cfg_pop(c, mbase);
        }
    }
    for (size_t j = 0; j < idx; j++) {
        const sst_route_cfg_t *o = &cfg->routes[j];
        if (strcmp(o->host, r->host) == 0 && strcmp(o->path_prefix, r->path_prefix) == 0)
            return sst__cfg_fail(c, m ? m : n,
                                 "routes[%zu] already matches host \"%s\" and path_prefix \"%s\": "
                                 "this route would never be chosen",
                                 j, r->host, r->path_prefix);
    }
    sst__cfg_pop(c, base);
    return 0;
}

static int route_regions(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    sst_route_cfg_t *r = &c->cfg->routes[idx];
    const yaml_node_t *v;
    const size_t base = c->path_len;
    size_t count;

    v = sst__cfg_get(c, n, "primary");
    sst__cfg_push_key(c, "primary");
    if (v == NULL)
        return sst__cfg_fail(c, n, "required: the region that serves this route when healthy");
    if (sst__cfg_region_ref(c, v, &r->primary) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);
    if ((v = sst__cfg_get(c, n, "failover")) == NULL)
        return 0;
    sst__cfg_push_key(c, "failover");
    if (sst__cfg_seq(c, v, 0, SST_MAX_REGIONS - 1, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, v, i);
        size_t region, mark = sst__cfg_push_index(c, i);
        if (sst__cfg_region_ref(c, item, &region) != 0)
            return SST_EINVAL;
        if (region == r->primary)
            return sst__cfg_fail(c, item, "\"%s\" is the primary: list only other regions",
                                 c->cfg->regions[region].name);
        for (size_t j = 0; j < r->n_failover; j++)
            if (r->failover[j] == region)
                return sst__cfg_fail(c, item, "\"%s\" is listed twice (also failover[%zu])",
                                     c->cfg->regions[region].name, j);
        if (route_check_target(c, item, region, "failover") != 0)
            return SST_EINVAL;
        r->failover[r->n_failover++] = region;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, base);
    return 0;
}

static int route_all_down(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_route_cfg_t *r)
{
    static const char *const words[] = {
        [SST_ALL_DOWN_REJECT] = "reject", [SST_ALL_DOWN_FAIL_OPEN] = "fail_open"};
    static const char *const keys[] = {"fallback"};
    const yaml_node_t *f;
    sst_str_t s;
    int idx;

    if (v->type == YAML_SCALAR_NODE) {
        if (sst__cfg_scalar(c, v, "reject, fail_open or {fallback: REGION}", &s) != 0)
            return SST_EINVAL;
        if (sst_str_eq(s, SST_STR_LIT("fallback")))
            return sst__cfg_fail(c, v, "fallback needs a region: all_down: {fallback: REGION}");
        if (sst__cfg_enum(c, v, words, COUNT_OF(words), &idx) != 0)
            return SST_EINVAL;
        r->all_down = (sst_all_down_t)idx;
        return 0;
    }
    if (sst__cfg_check_map(c, v, keys, COUNT_OF(keys)) != 0)
        return SST_EINVAL;
    f = sst__cfg_get(c, v, "fallback");
    sst__cfg_push_key(c, "fallback");
    if (f == NULL)
        return sst__cfg_fail(c, v, "required: all_down: {fallback: REGION}");
    if (sst__cfg_region_ref(c, f, &r->fallback_region) != 0 ||
        route_check_target(c, f, r->fallback_region, "fallback") != 0)
        return SST_EINVAL;
    r->all_down = SST_ALL_DOWN_FALLBACK;
    return 0;
}

/* Query parameter names: RFC 3986 unreserved characters, so the name needs no escaping. */
static bool route_is_param_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '~'))
            return false;
    }
    return true;
}

static int route_cors(sst__cfg_ctx_t *c, const yaml_node_t *v, sst_route_cfg_t *r)
{
    char q[64], why[SST__WHY_SIZE];
    size_t count;
    sst_str_t s;

    if (sst__cfg_seq(c, v, 0, SST_MAX_CORS_ORIGINS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, v, i);
        size_t mark = sst__cfg_push_index(c, i);
        char *o;
        if (sst__cfg_scalar(c, item, "an origin", &s) != 0 ||
            sst__cfg_string(c, item, 512, false, &o) != 0)
            return SST_EINVAL;
        if (sst__normalize_origin(o, why) != 0)
            return sst__cfg_fail(c, item, "invalid origin %s: %s", sst__quote(s, q, sizeof q), why);
        r->cors_origins[r->n_cors_origins++] = o;
        sst__cfg_pop(c, mark);
    }
    return 0;
}

/* Fields sidestep drops, rewrites or gives a meaning of its own on the way to a backend: a key
 * in one of them would not reach the backend as the client sent it, so the backend could not
 * deduplicate by it while sidestep repeated the request. */
static bool route_is_reserved_field(sst_str_t name)
{
    static const char *const reserved[] = {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "expect",
        "via",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    };
    for (size_t i = 0; i < COUNT_OF(reserved); i++)
        if (sst_str_ieq_c(name, reserved[i]))
            return true;
    return false;
}

/* Issue 15: try_timeout (checked against timeouts.upstream_response once that is read, in
 * sst__cfg_check_routes) and idempotency_header. */
static int route_gray_options(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_route_cfg_t *r)
{
    const size_t base = c->path_len;
    const yaml_node_t *v;
    char q[64];

    if ((v = sst__cfg_get(c, n, "try_timeout")) != NULL) {
        sst__cfg_push_key(c, "try_timeout");
        if (sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &r->try_timeout_ms) != 0)
            return SST_EINVAL;
        if (r->try_timeout_ms == 0)
            return sst__cfg_fail(c, v,
                                 "must be above 0 (leave the key out for no per-try timeout)");
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "idempotency_header")) != NULL) {
        sst__cfg_push_key(c, "idempotency_header");
        if (sst__cfg_string(c, v, 64, false, &r->idempotency_header) != 0)
            return SST_EINVAL;
        sst_str_t name = sst_str_c(r->idempotency_header);
        if (!sst_str_is_token(name))
            return sst__cfg_fail(c, v,
                                 "invalid idempotency_header %s: expected a header field name "
                                 "(a token, e.g. Idempotency-Key)",
                                 sst__quote(name, q, sizeof q));
        if (route_is_reserved_field(name))
            return sst__cfg_fail(c, v,
                                 "%s cannot carry an idempotency key: sidestep does not forward "
                                 "it as sent",
                                 sst__quote(name, q, sizeof q));
        sst__cfg_pop(c, base);
    }
    return 0;
}

static int route_options(sst__cfg_ctx_t *c, const yaml_node_t *n, sst_route_cfg_t *r)
{
    static const char *const hop_words[] = {
        [SST_HOP_LIMIT_SERVE] = "serve", [SST_HOP_LIMIT_REJECT] = "reject"};
    const size_t base = c->path_len;
    const yaml_node_t *v;
    uint64_t u;
    int idx;
    char q[64];

    if ((v = sst__cfg_get(c, n, "redirect_status")) != NULL) {
        sst__cfg_push_key(c, "redirect_status");
        /* 301/302 let clients turn POST into GET; only the method-keeping codes fit failover */
        if (sst__cfg_uint(c, v, 307, 308, &u) != 0)
            return SST_EINVAL;
        r->redirect_status = (uint16_t)u;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "all_down")) != NULL) {
        sst__cfg_push_key(c, "all_down");
        if (route_all_down(c, v, r) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "retry_after")) != NULL) {
        sst__cfg_push_key(c, "retry_after");
        if (sst__cfg_duration(c, v, 0, SST__MAX_DURATION_MS, &u) != 0)
            return SST_EINVAL;
        r->retry_after_s = (u + 999) / 1000; /* Retry-After counts whole seconds */
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "hop_param")) != NULL) {
        sst__cfg_push_key(c, "hop_param");
        if (sst__cfg_string(c, v, 64, false, &r->hop_param) != 0)
            return SST_EINVAL;
        if (!route_is_param_name(r->hop_param))
            return sst__cfg_fail(c, v,
                                 "invalid hop_param %s: use letters, digits, '-', '.', '_', '~'",
                                 sst__quote(sst_str_c(r->hop_param), q, sizeof q));
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "max_hops")) != NULL) {
        sst__cfg_push_key(c, "max_hops");
        if (sst__cfg_u32(c, v, 1, SST_MAX_HOPS, &r->max_hops) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "at_hop_limit")) != NULL) {
        sst__cfg_push_key(c, "at_hop_limit");
        if (sst__cfg_enum(c, v, hop_words, COUNT_OF(hop_words), &idx) != 0)
            return SST_EINVAL;
        r->at_hop_limit = (sst_hop_limit_t)idx;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "cors_origins")) != NULL) {
        sst__cfg_push_key(c, "cors_origins");
        if (route_cors(c, v, r) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "cors_credentials")) != NULL) {
        sst__cfg_push_key(c, "cors_credentials");
        if (sst__cfg_bool(c, v, &r->cors_credentials) != 0)
            return SST_EINVAL;
        /* Fetch's CORS check refuses credentials with a wildcard: an operator asking for both
         * means something neither can deliver, so say so instead of picking one */
        for (size_t i = 0; r->cors_credentials && i < r->n_cors_origins; i++)
            if (strcmp(r->cors_origins[i], "*") == 0)
                return sst__cfg_fail(c, v,
                                     "cannot be true with \"*\" in cors_origins: list the origins "
                                     "that may send credentials");
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "redirect_discard")) != NULL) {
        sst__cfg_push_key(c, "redirect_discard");
        if (sst__cfg_size(c, v, 0, 1024ull * 1024 * 1024, &r->redirect_discard_bytes) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    if ((v = sst__cfg_get(c, n, "retries")) != NULL) {
        sst__cfg_push_key(c, "retries");
        if (sst__cfg_u32(c, v, 0, 16, &r->retries) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, base);
    }
    return route_gray_options(c, n, r);
}

static int route_parse(sst__cfg_ctx_t *c, const yaml_node_t *n, size_t idx)
{
    static const char *const keys[] = {
        "name",
        "match",
        "primary",
        "failover",
        "redirect_status",
        "all_down",
        "retry_after",
        "hop_param",
        "max_hops",
        "at_hop_limit",
        "cors_origins",
        "cors_credentials",
        "redirect_discard",
        "retries",
        "try_timeout",
        "idempotency_header",
    };
    sst_route_cfg_t *r = &c->cfg->routes[idx];
    const size_t base = c->path_len;

    route_defaults(r);
    if (n->type != YAML_MAPPING_NODE)
        return sst__cfg_fail(c, n, "expected a mapping with at least primary:");
    if (sst__cfg_check_map(c, n, keys, COUNT_OF(keys)) != 0 || route_name(c, n, idx) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, base);
    if (route_match(c, n, idx) != 0 || route_regions(c, n, idx) != 0 || route_options(c, n, r) != 0)
        return SST_EINVAL;
    return 0;
}

/* No `routes`: one catch-all route, first region primary, the others failover in file order. */
static int route_default(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    sst_config_t *cfg = c->cfg;
    sst_route_cfg_t *r = &cfg->routes[0];
    const yaml_node_t *regions = sst__cfg_get(c, root, "regions");

    route_defaults(r);
    r->name = sst__cfg_strdup(c, SST_STR_LIT("default"));
    r->host = sst__cfg_strdup(c, SST_STR_LIT("*"));
    r->path_prefix = sst__cfg_strdup(c, SST_STR_LIT("/"));
    if (r->name == NULL || r->host == NULL || r->path_prefix == NULL)
        return sst__cfg_nomem(c);
    r->primary = 0;
    for (size_t i = 1; i < cfg->n_regions; i++) {
        const sst_region_cfg_t *reg = &cfg->regions[i];
        if (reg->url == NULL && i != cfg->local_region) {
            sst__cfg_push_key(c, "regions");
            sst__cfg_push_index(c, i);
            return sst__cfg_fail(c, sst__cfg_seq_item(c, regions, i),
                                 "region \"%s\" has no url, but without routes: the default route "
                                 "fails over to it (set url, make it local_region, or add routes:)",
                                 reg->name);
        }
        r->failover[r->n_failover++] = i;
    }
    cfg->n_routes = 1;
    return 0;
}

int sst__cfg_parse_routes(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const yaml_node_t *n = sst__cfg_get(c, root, "routes");
    size_t count;

    if (n == NULL)
        return route_default(c, root);
    sst__cfg_push_key(c, "routes");
    if (sst__cfg_seq(c, n, 1, SST_MAX_ROUTES, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        size_t mark = sst__cfg_push_index(c, i);
        if (route_parse(c, sst__cfg_seq_item(c, n, i), i) != 0)
            return SST_EINVAL;
        c->cfg->n_routes++;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}

int sst__cfg_check_routes(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    const sst_config_t *cfg = c->cfg;
    const yaml_node_t *routes = sst__cfg_get(c, root, "routes");
    uint64_t limit = cfg->timeouts.upstream_response_ms;
    char a[32], b[32];

    if (routes == NULL || routes->type != YAML_SEQUENCE_NODE)
        return 0; /* the default route has no try_timeout */
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const sst_route_cfg_t *r = &cfg->routes[i];
        if (r->try_timeout_ms == 0 || r->try_timeout_ms < limit)
            continue;
        /* The response timeout would end every attempt first (both count from the written
         * request), so the per-try timer could never fire: a mistake, not a setting. */
        const yaml_node_t *v = sst__cfg_get(c, sst__cfg_seq_item(c, routes, i), "try_timeout");
        sst__cfg_push_key(c, "routes");
        sst__cfg_push_index(c, i);
        sst__cfg_push_key(c, "try_timeout");
        return sst__cfg_fail(c, v,
                             "try_timeout %s must be below timeouts.upstream_response %s: the "
                             "response timeout would end the attempt first",
                             sst__fmt_ms(r->try_timeout_ms, a, sizeof a),
                             sst__fmt_ms(limit, b, sizeof b));
    }
    return 0;
}
