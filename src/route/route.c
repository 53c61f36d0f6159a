/* The routing decision: route matching, proxy/redirect/reject, Location building with the hop
 * marker, HTTPS enforcement and the failure safety matrix. Pure: no libuv calls, no clock, no
 * malloc; every output slice points into the config, the input or static storage. */
#include "sidestep/route.h"

#include <string.h>

#include "sidestep/error.h"

/* --- small slice helpers ------------------------------------------------------------------ */

static unsigned char route_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool route_has_iprefix(sst_str_t s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (s.len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (route_lower((unsigned char)s.base[i]) != (unsigned char)prefix[i])
            return false;
    return true;
}

static bool route_ends_with_ci(sst_str_t s, sst_str_t suffix)
{
    if (s.len < suffix.len)
        return false;
    return sst_str_ieq(sst_str(s.base + s.len - suffix.len, suffix.len), suffix);
}

static const char *route_memchr(sst_str_t s, char c)
{
    return s.len ? memchr(s.base, c, s.len) : NULL;
}

/* --- request-target forms (RFC 9112 §3.2) ------------------------------------------------- */

/* Bytes a Location may not carry: SP, CTLs, DEL (header injection), and '#', which RFC 9112
 * §3.2 does not allow in a request-target: a fragment would hide the hop marker from the next
 * instance and could let a request bounce forever. */
static bool route_target_byte_ok(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != '#';
}

int sst_target_path_query(sst_str_t target, sst_str_t *out, sst_str_t *authority)
{
    sst_str_t pq, auth = SST_STR_NULL;

    if (target.len == 0 || target.base == NULL)
        return SST_EINVAL;
    for (size_t i = 0; i < target.len; i++)
        if (!route_target_byte_ok((unsigned char)target.base[i]))
            return SST_EINVAL;

    if (target.base[0] == '/') {
        pq = target; /* origin-form */
    } else {
        /* absolute-form; RFC 3986 §3.1: the scheme is case-insensitive. Anything else ("*",
         * "host:443", "ftp://...") is not a target we can route. */
        size_t skip;
        if (route_has_iprefix(target, "http://"))
            skip = 7;
        else if (route_has_iprefix(target, "https://"))
            skip = 8;
        else
            return SST_EINVAL;
        size_t end = skip;
        while (end < target.len && target.base[end] != '/' && target.base[end] != '?')
            end++;
        auth = sst_str(target.base + skip, end - skip);
        /* RFC 9110 §4.2.1: an http URI with an empty host is invalid; §4.2.4: userinfo is
         * deprecated and its presence is to be treated as an error. */
        if (auth.len == 0 || route_memchr(auth, '@') != NULL)
            return SST_EINVAL;
        if (end == target.len) {
            pq = SST_STR_LIT("/"); /* RFC 9112 §3.2.1: an empty path is sent as "/" */
        } else if (target.base[end] == '?') {
            /* "http://h?q": the origin-form would be "/?q", which is not a slice of the
             * target. Rare enough (only proxies see absolute-form) to refuse. */
            return SST_EINVAL;
        } else {
            pq = sst_str(target.base + end, target.len - end);
        }
    }
    if (out)
        *out = pq;
    if (authority)
        *authority = auth;
    return 0;
}

/* Host without its port: "[::1]:80" -> "[::1]", "a.example:8080" -> "a.example". */
static sst_str_t route_host_strip_port(sst_str_t host)
{
    if (host.len > 0 && host.base[0] == '[') {
        const char *rb = route_memchr(host, ']');
        return rb ? sst_str(host.base, (size_t)(rb - host.base) + 1) : host;
    }
    const char *colon = route_memchr(host, ':');
    return colon ? sst_str(host.base, (size_t)(colon - host.base)) : host;
}

static sst_str_t route_path_of(sst_str_t pq)
{
    const char *q = route_memchr(pq, '?');
    return q ? sst_str(pq.base, (size_t)(q - pq.base)) : pq;
}

/* --- route matching ----------------------------------------------------------------------- */

enum { HOST_NO_MATCH = 0, HOST_ANY, HOST_SUFFIX, HOST_EXACT };

static int route_host_rank(const char *pattern, sst_str_t host)
{
    sst_str_t p = sst_str_c(pattern);

    if (p.len == 0 || (p.len == 1 && p.base[0] == '*'))
        return HOST_ANY;
    if (p.len > 2 && p.base[0] == '*' && p.base[1] == '.') {
        sst_str_t suffix = sst_str(p.base + 1, p.len - 1); /* ".example.com" */
        /* "*.example.com" matches "a.example.com", never "example.com" itself */
        return host.len > suffix.len && route_ends_with_ci(host, suffix) ? HOST_SUFFIX
                                                                         : HOST_NO_MATCH;
    }
    return sst_str_ieq(p, host) ? HOST_EXACT : HOST_NO_MATCH;
}

static int route_match_path(const sst_config_t *cfg, sst_str_t host, sst_str_t path)
{
    int best = -1;
    int best_rank = HOST_NO_MATCH;
    size_t best_len = 0;

    host = route_host_strip_port(host);
    for (size_t i = 0; i < cfg->n_routes && i < SST_MAX_ROUTES; i++) {
        const sst_route_cfg_t *rt = &cfg->routes[i];
        int rank = route_host_rank(rt->host, host);
        if (rank == HOST_NO_MATCH)
            continue;
        sst_str_t prefix = rt->path_prefix ? sst_str_c(rt->path_prefix) : SST_STR_LIT("/");
        /* a plain byte prefix, as nginx prefix locations and Envoy `prefix` do: "/api" also
         * matches "/apix"; write "/api/" for segment semantics. No percent-decoding. */
        if (!sst_str_has_prefix(path, prefix))
            continue;
        /* strictly better only, so the first listed wins ties */
        if (rank > best_rank || (rank == best_rank && prefix.len > best_len)) {
            best = (int)i;
            best_rank = rank;
            best_len = prefix.len;
        }
    }
    return best;
}

int sst_route_match(const sst_config_t *cfg, sst_str_t host, sst_str_t target)
{
    sst_str_t pq, authority;

    if (cfg == NULL || sst_target_path_query(target, &pq, &authority) != 0)
        return -1;
    /* RFC 9112 §3.2.2: with absolute-form the target's authority is the host */
    if (authority.len > 0)
        host = authority;
    return route_match_path(cfg, host, route_path_of(pq));
}

/* --- hop marker --------------------------------------------------------------------------- */

static const char *const route_hop_digits[] = {"0", "1", "2", "3", "4", "5",
                                               "6", "7", "8", "9", "10"};
_Static_assert(sizeof(route_hop_digits) / sizeof(route_hop_digits[0]) > SST_MAX_HOPS + 1,
               "hop digit table too short");

typedef struct route_hop_s {
    bool found;
    bool valid;
    uint32_t value;
    size_t value_off; /* offset of the value in pq */
    size_t value_len;
} route_hop_t;

/* Finds the first `name=` pair in the query of pq. Keys are compared byte for byte, not
 * decoded: a client that encodes our own parameter name is not one we produced. */
static route_hop_t route_hop_parse(sst_str_t pq, const char *name)
{
    route_hop_t hop = {0};
    sst_str_t key = sst_str_c(name);
    const char *q = route_memchr(pq, '?');

    if (q == NULL || key.len == 0)
        return hop;
    size_t pos = (size_t)(q - pq.base) + 1;
    while (pos <= pq.len) {
        size_t end = pos;
        while (end < pq.len && pq.base[end] != '&')
            end++;
        sst_str_t pair = sst_str(pq.base + pos, end - pos);
        const char *eq = route_memchr(pair, '=');
        sst_str_t k = eq ? sst_str(pair.base, (size_t)(eq - pair.base)) : pair;
        if (sst_str_eq(k, key)) {
            uint64_t v;
            hop.found = true;
            if (eq != NULL) {
                hop.value_off = (size_t)(eq - pq.base) + 1;
                hop.value_len = end - hop.value_off;
                sst_str_t val = sst_str(pq.base + hop.value_off, hop.value_len);
                if (sst_str_to_u64(val, SST_MAX_HOPS, &v) == 0) {
                    hop.valid = true;
                    hop.value = (uint32_t)v;
                }
            }
            return hop;
        }
        pos = end + 1;
    }
    return hop;
}

static void route_loc_add(sst_decision_t *out, sst_str_t part)
{
    if (part.len == 0)
        return;
    out->location[out->n_location++] = part;
    out->location_len += part.len;
}

/* Location = region url + path-and-query as received, with the hop marker set to hops_in + 1
 * when the route has one: replaced in place, or appended. At most 6 parts. */
static void route_build_location(sst_decision_t *out, const char *url, sst_str_t pq,
                                 const sst_route_cfg_t *rt, const route_hop_t *hop)
{
    out->n_location = 0;
    out->location_len = 0;
    route_loc_add(out, sst_str_c(url));
    if (rt->hop_param == NULL || rt->hop_param[0] == '\0') {
        route_loc_add(out, pq);
        return;
    }
    sst_str_t next = sst_str_c(route_hop_digits[out->hops_in + 1]);
    if (hop->found && hop->valid) {
        route_loc_add(out, sst_str(pq.base, hop->value_off));
        route_loc_add(out, next);
        size_t tail = hop->value_off + hop->value_len;
        route_loc_add(out, sst_str(pq.base + tail, pq.len - tail));
        return;
    }
    const char *q = route_memchr(pq, '?');
    route_loc_add(out, pq);
    if (q == NULL)
        route_loc_add(out, SST_STR_LIT("?"));
    else if (pq.base[pq.len - 1] != '?' && pq.base[pq.len - 1] != '&')
        route_loc_add(out, SST_STR_LIT("&"));
    route_loc_add(out, sst_str_c(rt->hop_param));
    route_loc_add(out, SST_STR_LIT("="));
    route_loc_add(out, next);
}

/* --- CORS --------------------------------------------------------------------------------- */

/* The Origin is echoed even when the list holds "*": a literal "*" is refused by browsers for
 * credentialed requests (Fetch, CORS check), and echoing is what makes a cookie-carrying
 * cross-origin POST able to follow the 307. Only header-safe origins are echoed. */
static sst_str_t route_cors(const sst_route_cfg_t *rt, sst_str_t origin)
{
    if (origin.len == 0 || origin.base == NULL)
        return SST_STR_NULL;
    for (size_t i = 0; i < origin.len; i++) {
        unsigned char c = (unsigned char)origin.base[i];
        if (c <= 0x20 || c >= 0x7f)
            return SST_STR_NULL;
    }
    for (size_t i = 0; i < rt->n_cors_origins && i < SST_MAX_CORS_ORIGINS; i++) {
        sst_str_t allowed = sst_str_c(rt->cors_origins[i]);
        if ((allowed.len == 1 && allowed.base[0] == '*') || sst_str_eq(allowed, origin))
            return origin;
    }
    return SST_STR_NULL;
}

bool sst_cors_request_headers(sst_str_t value, sst_str_t *out)
{
    size_t names = 0;

    *out = SST_STR_NULL;
    if (value.base == NULL || value.len > SST_CORS_HEADERS_MAX)
        return false;
    sst_str_t v = sst_str_trim_ows(value);
    /* every element between commas is empty or one token with OWS around it: nothing that
     * could end the echoed field or smuggle another one in */
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i < v.len && v.base[i] != ',')
            continue;
        sst_str_t item = sst_str_trim_ows(sst_str(v.base + start, i - start));
        if (item.len > 0) {
            if (!sst_str_is_token(item))
                return false;
            names++;
        }
        start = i + 1;
    }
    if (names == 0)
        return false;
    *out = v;
    return true;
}

/* --- the decision ------------------------------------------------------------------------- */

static const char REASON_PRIMARY[] = "primary up";
static const char REASON_FAILOVER[] = "primary down, failover";
static const char REASON_ALL_DOWN[] = "all regions down";
static const char REASON_FAIL_OPEN[] = "fail_open";
static const char REASON_FALLBACK[] = "fallback";
static const char REASON_HOP_LIMIT[] = "hop limit";
static const char REASON_NO_ROUTE[] = "no route";
static const char REASON_LOCAL[] = "local region";
static const char REASON_HTTPS[] = "https redirect";
static const char REASON_PREFLIGHT[] = "cors preflight for a redirect";

static bool route_region_valid(const sst_config_t *cfg, const sst_hsnap_t *snap, size_t r)
{
    return r < cfg->n_regions && r < SST_MAX_REGIONS && r < snap->n_regions;
}

static bool route_usable(const sst_route_input_t *in, const sst_config_t *cfg,
                         const sst_hsnap_t *snap, size_t r)
{
    if (!route_region_valid(cfg, snap, r))
        return false;
    if (r < 32 && ((in->exclude_regions >> r) & 1))
        return false;
    return sst_hsnap_region_usable(snap, r, in->now_ms);
}

static bool route_in_list(const sst_route_cfg_t *rt, size_t r)
{
    if (rt->primary == r)
        return true;
    for (size_t i = 0; i < rt->n_failover && i < SST_MAX_REGIONS; i++)
        if (rt->failover[i] == r)
            return true;
    return false;
}

static void route_proxy(sst_decision_t *out, const sst_hsnap_t *snap, size_t r, bool ignore,
                        const char *reason)
{
    out->kind = SST_DECIDE_PROXY;
    out->region = r;
    out->ignore_health = ignore || snap->regions[r].force == SST_FORCE_UP;
    out->reason = reason;
}

static void route_reject(sst_decision_t *out, uint16_t status, uint64_t retry_after_s,
                         const char *reason)
{
    out->kind = SST_DECIDE_REJECT;
    out->status = status;
    out->retry_after_s = retry_after_s;
    out->reason = reason;
}

/* Marks a redirect of a CORS preflight (see sst_route_decide). Without a valid
 * Access-Control-Request-Method this is no preflight, and an ambiguous one (a field repeated)
 * is not guessed at: both get the redirect like any other request. */
static void route_preflight(const sst_route_input_t *in, sst_decision_t *out)
{
    if (out->cors_origin.len == 0 || !sst_str_eq(in->method, SST_STR_LIT("OPTIONS")) ||
        in->acr_repeated || in->acr_method.base == NULL)
        return;
    sst_str_t m = sst_str_trim_ows(in->acr_method);
    if (m.len > SST_CORS_METHOD_MAX || !sst_str_is_token(m))
        return;
    out->preflight = true;
    out->reason = REASON_PREFLIGHT;
    out->cors_method = m;
    sst_cors_request_headers(in->acr_headers, &out->cors_headers);
}

static void route_redirect(sst_decision_t *out, const sst_config_t *cfg, size_t r,
                           const sst_route_cfg_t *rt, sst_str_t pq, const route_hop_t *hop,
                           const sst_route_input_t *in, const char *reason)
{
    out->kind = SST_DECIDE_REDIRECT;
    out->region = r;
    out->status = rt->redirect_status == 308 ? 308 : 307;
    out->reason = reason;
    out->cors_origin = route_cors(rt, in->origin);
    out->cors_credentials = out->cors_origin.len > 0 && rt->cors_credentials;
    route_build_location(out, cfg->regions[r].url, pq, rt, hop);
    route_preflight(in, out);
}

/* At or past max_hops another instance already sent this request here: never redirect again.
 * Serve from our own region when the route lists it, else 503. */
static void route_at_hop_limit(const sst_route_input_t *in, const sst_config_t *cfg,
                               const sst_hsnap_t *snap, const sst_route_cfg_t *rt,
                               sst_decision_t *out)
{
    size_t local = cfg->local_region;

    if (rt->at_hop_limit == SST_HOP_LIMIT_SERVE && route_region_valid(cfg, snap, local) &&
        route_in_list(rt, local)) {
        if (route_usable(in, cfg, snap, local)) {
            route_proxy(out, snap, local, false, REASON_HOP_LIMIT);
            return;
        }
        bool excluded = local < 32 && ((in->exclude_regions >> local) & 1);
        if (local == rt->primary && rt->all_down == SST_ALL_DOWN_FAIL_OPEN && !excluded) {
            route_proxy(out, snap, local, true, REASON_HOP_LIMIT);
            return;
        }
    }
    route_reject(out, 503, rt->retry_after_s, REASON_HOP_LIMIT);
}

static void route_all_down(const sst_route_input_t *in, const sst_config_t *cfg,
                           const sst_hsnap_t *snap, const sst_route_cfg_t *rt, sst_str_t pq,
                           const route_hop_t *hop, sst_decision_t *out)
{
    size_t r;

    switch (rt->all_down) {
    case SST_ALL_DOWN_REJECT:
        break;
    case SST_ALL_DOWN_FAIL_OPEN:
        r = rt->primary;
        /* a primary that already failed this request is not retried: that would loop */
        if (route_region_valid(cfg, snap, r) && !(r < 32 && ((in->exclude_regions >> r) & 1))) {
            route_proxy(out, snap, r, true, REASON_FAIL_OPEN);
            return;
        }
        break;
    case SST_ALL_DOWN_FALLBACK:
        r = rt->fallback_region;
        if (!route_region_valid(cfg, snap, r) || (r < 32 && ((in->exclude_regions >> r) & 1)))
            break;
        /* never redirect to ourselves (or to the primary we proxy to) */
        if (r == cfg->local_region || r == rt->primary) {
            route_proxy(out, snap, r, true, REASON_FALLBACK);
            return;
        }
        if (cfg->regions[r].url != NULL) {
            route_redirect(out, cfg, r, rt, pq, hop, in, REASON_FALLBACK);
            return;
        }
        break;
    }
    route_reject(out, 503, rt->retry_after_s, REASON_ALL_DOWN);
}

int sst_route_decide(const sst_route_input_t *in, const sst_config_t *cfg, const sst_hsnap_t *snap,
                     sst_decision_t *out)
{
    sst_str_t pq, authority, host;
    route_hop_t hop = {0};

    if (in == NULL || cfg == NULL || snap == NULL || out == NULL)
        return SST_EINVAL;
    memset(out, 0, sizeof(*out));
    out->route = SIZE_MAX;
    out->region = SIZE_MAX;

    if (sst_target_path_query(in->target, &pq, &authority) != 0)
        return SST_EINVAL;
    host = authority.len > 0 ? authority : in->host; /* RFC 9112 §3.2.2 */

    int ri = route_match_path(cfg, host, route_path_of(pq));
    if (ri < 0) {
        route_reject(out, 404, 0, REASON_NO_ROUTE);
        return 0;
    }
    const sst_route_cfg_t *rt = &cfg->routes[ri];
    out->route = (size_t)ri;

    if (rt->hop_param != NULL && rt->hop_param[0] != '\0') {
        hop = route_hop_parse(pq, rt->hop_param);
        if (hop.found) /* a marker we cannot read counts as past any limit */
            out->hops_in = hop.valid ? hop.value : SST_MAX_HOPS + 1;
        uint32_t max_hops = rt->max_hops > SST_MAX_HOPS ? SST_MAX_HOPS : rt->max_hops;
        if (out->hops_in >= max_hops) {
            route_at_hop_limit(in, cfg, snap, rt, out);
            return 0;
        }
    }

    for (size_t i = 0; i <= rt->n_failover && i <= SST_MAX_REGIONS; i++) {
        size_t r = i == 0 ? rt->primary : rt->failover[i - 1];
        if (!route_usable(in, cfg, snap, r))
            continue;
        if (r == rt->primary) {
            route_proxy(out, snap, r, false, REASON_PRIMARY);
            return 0;
        }
        if (r == cfg->local_region) {
            route_proxy(out, snap, r, false, REASON_LOCAL);
            return 0;
        }
        if (cfg->regions[r].url == NULL)
            continue; /* a region without a public URL cannot take a redirect */
        route_redirect(out, cfg, r, rt, pq, &hop, in, REASON_FAILOVER);
        return 0;
    }
    route_all_down(in, cfg, snap, rt, pq, &hop, out);
    return 0;
}

/* --- HTTPS enforcement -------------------------------------------------------------------- */

static bool route_regname_char(unsigned char c)
{
    /* RFC 3986 unreserved; sub-delims and pct-encoding are legal but never seen in a real
     * Host, and refusing them keeps the Location free of surprises */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool route_ipv6_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

/* Splits and validates a Host value (RFC 9110 §7.2: uri-host [ ":" port ]). */
static int route_parse_host(sst_str_t host, sst_str_t *name)
{
    size_t i = 0;

    if (host.len == 0 || host.base == NULL)
        return SST_EINVAL;
    if (host.base[0] == '[') {
        for (i = 1; i < host.len && host.base[i] != ']'; i++)
            if (!route_ipv6_char((unsigned char)host.base[i]))
                return SST_EINVAL;
        if (i == host.len || i < 3) /* no ']' or "[]" / "[x]" */
            return SST_EINVAL;
        i++;
    } else {
        while (i < host.len && route_regname_char((unsigned char)host.base[i]))
            i++;
        if (i == 0)
            return SST_EINVAL;
    }
    *name = sst_str(host.base, i);
    if (i == host.len)
        return 0;
    if (host.base[i] != ':')
        return SST_EINVAL;
    sst_str_t port = sst_str(host.base + i + 1, host.len - i - 1);
    uint64_t v;
    /* RFC 3986 §3.2.3: port = *DIGIT, so "host:" is legal */
    if (port.len > 0 && sst_str_to_u64(port, 65535, &v) != 0)
        return SST_EINVAL;
    return 0;
}

int sst_route_https(const sst_route_input_t *in, const sst_listener_cfg_t *lc, char *host_buf,
                    size_t host_buf_size, sst_decision_t *out)
{
    sst_str_t pq, authority, name;

    if (in == NULL || lc == NULL || host_buf == NULL || out == NULL)
        return SST_EINVAL;
    memset(out, 0, sizeof(*out));
    out->route = SIZE_MAX;
    out->region = SIZE_MAX;
    if (sst_target_path_query(in->target, &pq, &authority) != 0)
        return SST_EINVAL;
    if (route_parse_host(authority.len > 0 ? authority : in->host, &name) != 0)
        return SST_EINVAL;

    char port[8];
    size_t port_len = 0;
    if (lc->https_port != 0 && lc->https_port != 443) {
        port[0] = ':';
        port_len = 1 + sst_u64_to_dec(lc->https_port, port + 1);
    }
    if (name.len + port_len > host_buf_size)
        return SST_EINVAL;
    /* host names are case-insensitive (RFC 3986 §3.2.2); the canonical form is lower case */
    for (size_t i = 0; i < name.len; i++)
        host_buf[i] = (char)route_lower((unsigned char)name.base[i]);
    memcpy(host_buf + name.len, port, port_len);

    bool safe =
        sst_str_eq(in->method, SST_STR_LIT("GET")) || sst_str_eq(in->method, SST_STR_LIT("HEAD"));
    uint16_t status = safe ? lc->https_status_get : lc->https_status_other;
    out->kind = SST_DECIDE_REDIRECT;
    out->status = status != 0 ? status : (safe ? 301 : 307);
    out->reason = REASON_HTTPS;
    route_loc_add(out, SST_STR_LIT("https://"));
    route_loc_add(out, sst_str(host_buf, name.len + port_len));
    route_loc_add(out, pq);
    return 0;
}

/* --- failures ----------------------------------------------------------------------------- */

/* Issue 15: after a timeout the backend said nothing, and another backend of the region may be
 * as silent (a whole region gone gray): a retry there makes the client wait another timeout
 * before its 307. A retry therefore goes only to a backend that showed life since the failed
 * attempt began; with none, the request is rerouted when a redirect is left; with no redirect
 * left, any backend may take it (waiting beats a 504). Returns whether a retry may follow. */
static bool route_retry_after_silence(const sst_fail_input_t *in, sst_fail_decision_t *out)
{
    if (in->live_backend_left) {
        out->live_only = true;
        return true;
    }
    return !in->redirect_left;
}

void sst_route_on_failure(const sst_fail_input_t *in, sst_fail_decision_t *out)
{
    bool can_retry = in->backend_left && in->attempts <= in->retries;
    /* Issue 15: a request with a valid idempotency key may be repeated like an idempotent
     * method, because the backend deduplicates by the key. */
    bool repeatable = in->idempotent || in->idempotency_key;

    out->status = 0;
    out->live_only = false;
    switch (in->phase) {
    case SST_FAIL_NO_BACKEND:
        out->action = SST_ON_FAIL_REROUTE;
        out->reason = "no backend left in region";
        return;
    case SST_FAIL_CONNECT:
        /* nothing reached the backend: any method may go elsewhere */
        if (can_retry && in->timed_out && !route_retry_after_silence(in, out)) {
            out->action = SST_ON_FAIL_REROUTE;
            out->reason = "connect timeout, no backend showed life, reroute";
            return;
        }
        out->action = can_retry ? SST_ON_FAIL_RETRY : SST_ON_FAIL_REROUTE;
        out->reason = can_retry ? "connect failed, retry" : "connect failed, reroute";
        return;
    case SST_FAIL_SEND_PARTIAL:
        /* the backend never had a complete request, so it cannot have acted on it; a retry
         * needs the body bytes again, a redirect does not (the client still holds them) */
        can_retry = can_retry && !in->body_consumed;
        out->action = can_retry ? SST_ON_FAIL_RETRY : SST_ON_FAIL_REROUTE;
        out->reason = can_retry ? "request cut short, retry" : "request cut short, reroute";
        return;
    case SST_FAIL_SENT:
        /* The backend may have acted on it: only an idempotent request may be repeated (RFC
         * 9110 §9.2.2). A retry here needs the body again; a redirect does not (the client
         * re-sends it, and repeating an idempotent request is harmless by definition). */
        if (!repeatable) {
            out->action = SST_ON_FAIL_RESPOND;
            out->status = 502;
            out->reason = "no response to a non-idempotent request";
            return;
        }
        can_retry = can_retry && !in->body_consumed;
        out->action = can_retry ? SST_ON_FAIL_RETRY : SST_ON_FAIL_REROUTE;
        out->reason =
            can_retry ? "no response, retry idempotent" : "no response, reroute idempotent";
        return;
    case SST_FAIL_TRY_TIMEOUT:
        /* The backend may be working on it, or may never answer: only a repeatable request
         * may be given to another backend or region (issue 15). The caller arms the timer for
         * no other request; if it fired for one anyway, the request is not repeated. */
        if (!repeatable) {
            out->action = SST_ON_FAIL_RESPOND;
            out->status = 504;
            out->reason = "try timeout of a non-idempotent request";
            return;
        }
        /* a retry sends the request again from sidestep, which keeps no body copy; a
         * redirect has the client send it again */
        can_retry = can_retry && !in->body_consumed;
        if (can_retry && !route_retry_after_silence(in, out)) {
            out->action = SST_ON_FAIL_REROUTE;
            out->reason = "try timeout, no backend showed life, reroute";
            return;
        }
        out->action = can_retry ? SST_ON_FAIL_RETRY : SST_ON_FAIL_REROUTE;
        out->reason = can_retry ? "try timeout, retry" : "try timeout, reroute";
        return;
    case SST_FAIL_RESPONSE_TIMEOUT:
        /* the backend may still be working on it; never repeat */
        out->action = SST_ON_FAIL_RESPOND;
        out->status = 504;
        out->reason = "response timeout";
        return;
    case SST_FAIL_BAD_RESPONSE:
        out->action = SST_ON_FAIL_RESPOND;
        out->status = 502;
        out->reason = "bad response";
        return;
    case SST_FAIL_RESPONSE_STARTED:
        out->action = SST_ON_FAIL_ABORT;
        out->reason = "failed after response started";
        return;
    }
    /* a value outside the enum: the safest answer */
    out->action = SST_ON_FAIL_RESPOND;
    out->status = 502;
    out->reason = "unknown failure";
}

bool sst_method_is_idempotent(sst_str_t method)
{
    /* RFC 9110 §9.2.2; method names are case-sensitive (§9.1) */
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
        if (sst_str_eq(method, sst_str_c(idempotent[i])))
            return true;
    return false;
}

/* --- per-try timeout and idempotency keys ------------------------------------------------- */

bool sst_idempotency_key_valid(sst_str_t value)
{
    sst_str_t v = sst_str_trim_ows(value);
    size_t i = 1;

    /* at least 3 bytes: the quotes and one character, since an empty key is no key */
    if (v.base == NULL || v.len < 3 || v.len > SST_IDEMPOTENCY_KEY_MAX || v.base[0] != '"')
        return false;
    /* RFC 8941 §4.2.5: the closing quote ends the string; nothing may follow it here (the
     * draft defines no parameters, and a value we do not fully understand is no key) */
    for (; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (c == '"')
            break;
        if (c == '\\') {
            if (++i == v.len || (v.base[i] != '"' && v.base[i] != '\\'))
                return false;
        } else if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return i == v.len - 1;
}

uint64_t sst_route_try_timeout(const sst_route_cfg_t *rt, bool idempotent, bool idempotency_key)
{
    if (rt == NULL || !(idempotent || idempotency_key))
        return 0;
    return rt->try_timeout_ms;
}

static uint64_t route_deadline(uint64_t from_ms, uint64_t after_ms)
{
    return from_ms > UINT64_MAX - after_ms ? UINT64_MAX : from_ms + after_ms;
}

bool sst_route_connect_deadline(const sst_timeouts_cfg_t *to, uint64_t try_ms, uint64_t start_ms,
                                uint64_t *deadline_ms)
{
    /* a tie goes to the per-try timeout: both end the connect the same way */
    if (try_ms > 0 && try_ms <= to->connect_ms) {
        *deadline_ms = route_deadline(start_ms, try_ms);
        return true;
    }
    *deadline_ms = route_deadline(start_ms, to->connect_ms);
    return false;
}

sst_fail_phase_t sst_route_response_deadline(const sst_timeouts_cfg_t *to, uint64_t try_ms,
                                             uint64_t written_ms, uint64_t *deadline_ms)
{
    if (try_ms > 0 && try_ms < to->upstream_response_ms) {
        *deadline_ms = route_deadline(written_ms, try_ms);
        return SST_FAIL_TRY_TIMEOUT;
    }
    *deadline_ms = route_deadline(written_ms, to->upstream_response_ms);
    return SST_FAIL_RESPONSE_TIMEOUT;
}
