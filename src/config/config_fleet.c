/* The `fleet` section (issue 13): names checked against the etcd key layout's rules, etcd
 * endpoints parsed and resolved, durations bounded by what etcd leases allow. Only reads the
 * YAML and fills cfg->fleet; the runtime that uses it lives in src/fleet/. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sidestep/config.h"
#include "sidestep/error.h"
#include "sidestep/str.h"

#include "config/config_internal.h"

#define FLEET_MAX_NAME       63
#define FLEET_MAX_QUORUM     256
#define FLEET_MAX_LEASE_TTL  (10ull * 60 * 1000)
#define FLEET_MAX_DIAL       (60ull * 1000)
#define FLEET_MIN_DIAL       10
#define FLEET_MAX_STARTUP    (10ull * 60 * 1000)
#define FLEET_DEFAULT_DIAL   2000
#define FLEET_DEFAULT_TTL    10000
#define FLEET_DEFAULT_WAIT   5000
#define FLEET_ENDPOINT_LIMIT 4096

static bool fleet_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *sst_config_quorum_text(const sst_fleet_cfg_t *f, char *buf, size_t size)
{
    switch (f->health_quorum) {
    case SST_QUORUM_CFG_OFF:
        return "off";
    case SST_QUORUM_CFG_MAJORITY:
        return "majority";
    case SST_QUORUM_CFG_COUNT:
        snprintf(buf, size, "%u", f->health_quorum_count);
        return buf;
    }
    return "off";
}

bool sst_config_fleet_name_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > FLEET_MAX_NAME || !fleet_alnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!fleet_alnum(c) && c != '_' && c != '.' && c != '-')
            return false;
    }
    return true;
}

/* Explains an endpoint that does not parse in `why`; 0 or SST_EINVAL. */
static int fleet_parse_endpoint(sst_str_t s, bool resolve, sst_addr_t *out, char *why)
{
    if (sst_str_has_prefix(s, SST_STR_LIT("https://"))) {
        snprintf(why, SST__WHY_SIZE,
                 "https:// is not supported yet (no TLS to etcd): use http:// on a trusted "
                 "network");
        return SST_EINVAL;
    }
    if (sst_str_has_prefix(s, SST_STR_LIT("http://"))) {
        s.base += 7;
        s.len -= 7;
    }
    if (s.len > 0 && s.base[s.len - 1] == '/')
        s.len--;
    if (s.len == 0 || memchr(s.base, '/', s.len) != NULL) {
        snprintf(why, SST__WHY_SIZE, "expected http://host:port (no path, no other scheme)");
        return SST_EINVAL;
    }
    return sst__parse_addr(s, false, resolve, out, why);
}

int sst_parse_endpoint(const char *url, size_t len, bool resolve, sst_addr_t *out)
{
    char why[SST__WHY_SIZE];
    if (url == NULL || out == NULL)
        return SST_EINVAL;
    return fleet_parse_endpoint(sst_str(url, len), resolve, out, why);
}

static int fleet_name(sst__cfg_ctx_t *c, const yaml_node_t *n, const char *what, char **out)
{
    char q[80];
    if (sst__cfg_string(c, n, 255, false, out) != 0)
        return SST_EINVAL;
    if (!sst_config_fleet_name_ok(*out, strlen(*out)))
        return sst__cfg_fail(c, n,
                             "invalid %s %s: 1 to 63 of A-Z a-z 0-9 _ . -, starting with a letter "
                             "or a digit (it is part of etcd keys)",
                             what, sst__quote(sst_str_c(*out), q, sizeof q));
    return 0;
}

/* The host name, when fleet.instance is not set. */
static int fleet_default_instance(sst__cfg_ctx_t *c, const yaml_node_t *at, char **out)
{
    char host[256], q[80];
    if (gethostname(host, sizeof host) != 0)
        return sst__cfg_fail(c, at, "cannot read the host name: set fleet.instance");
    host[sizeof host - 1] = '\0';
    if (!sst_config_fleet_name_ok(host, strlen(host)))
        return sst__cfg_fail(c, at,
                             "the host name %s is not a valid instance name (1 to 63 of "
                             "A-Z a-z 0-9 _ . -): set fleet.instance",
                             sst__quote(sst_str_c(host), q, sizeof q));
    *out = sst__cfg_strdup(c, sst_str_c(host));
    return *out ? 0 : sst__cfg_nomem(c);
}

static bool fleet_is_wildcard(const sst_addr_t *a)
{
    if (a->salen == 0)
        return false;
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return false;
}

/* advertise_admin: how peers and `sidestep drill --fleet` dial this instance's admin API. */
static int fleet_advertise(sst__cfg_ctx_t *c, const yaml_node_t *fleet, const yaml_node_t *n)
{
    sst_fleet_cfg_t *f = &c->cfg->fleet;
    const sst_admin_cfg_t *a = &c->cfg->admin;
    char q[80], why[SST__WHY_SIZE];
    sst_str_t s;

    if (!a->enabled)
        return sst__cfg_fail(c, fleet,
                             "fleet mode needs the admin API (peers and sidestep drill --fleet "
                             "reach every instance through it): add an admin: section");
    if (n == NULL) {
        if (fleet_is_wildcard(&a->addr)) {
            sst__cfg_push_key(c, "advertise_admin");
            return sst__cfg_fail(c, fleet,
                                 "admin.address %s listens on every address, which is not one "
                                 "others can dial: set fleet.advertise_admin",
                                 a->addr.text);
        }
        f->advertise_admin = a->addr;
        f->advertise_admin_default = true;
        return 0;
    }
    size_t mark = sst__cfg_push_key(c, "advertise_admin");
    if (sst__cfg_scalar(c, n, "an address (host:port)", &s) != 0)
        return SST_EINVAL;
    /* not resolved: the name is for the others to resolve */
    if (sst__parse_addr(s, false, false, &f->advertise_admin, why) != 0)
        return sst__cfg_fail(c, n, "invalid address %s: %s", sst__quote(s, q, sizeof q), why);
    if (fleet_is_wildcard(&f->advertise_admin))
        return sst__cfg_fail(c, n, "%s is a wildcard address: advertise one others can dial",
                             f->advertise_admin.text);
    sst__cfg_pop(c, mark);
    return 0;
}

static int fleet_endpoints(sst__cfg_ctx_t *c, const yaml_node_t *n)
{
    sst_fleet_cfg_t *f = &c->cfg->fleet;
    char q[80], why[SST__WHY_SIZE];
    size_t count;

    if (sst__cfg_seq(c, n, 1, SST_FLEET_MAX_ENDPOINTS, &count) != 0)
        return SST_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = sst__cfg_seq_item(c, n, i);
        size_t mark = sst__cfg_push_index(c, i);
        sst_str_t s;
        if (sst__cfg_scalar(c, item, "an etcd URL (http://host:port)", &s) != 0)
            return SST_EINVAL;
        if (s.len > FLEET_ENDPOINT_LIMIT || fleet_parse_endpoint(s, true, &f->endpoints[i], why))
            return sst__cfg_fail(c, item, "invalid etcd endpoint %s: %s",
                                 sst__quote(s, q, sizeof q),
                                 s.len > FLEET_ENDPOINT_LIMIT ? "too long" : why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->endpoints[j].text, f->endpoints[i].text) == 0)
                return sst__cfg_fail(c, item, "%s is already listed as endpoints[%zu]",
                                     f->endpoints[i].text, j);
        f->n_endpoints++;
        sst__cfg_pop(c, mark);
    }
    return 0;
}

static int fleet_etcd(sst__cfg_ctx_t *c, const yaml_node_t *fleet, const yaml_node_t *n)
{
    static const char *const keys[] = {"endpoints", "dial_timeout", "lease_ttl"};
    sst_fleet_cfg_t *f = &c->cfg->fleet;
    const yaml_node_t *v;
    char a[32];
    size_t mark;

    if (n == NULL) {
        sst__cfg_push_key(c, "etcd");
        return sst__cfg_fail(c, fleet,
                             "required: where etcd is, e.g. etcd: {endpoints: "
                             "[\"http://127.0.0.1:2379\"]}");
    }
    size_t top = sst__cfg_push_key(c, "etcd");
    if (sst__cfg_check_map(c, n, keys, 3) != 0)
        return SST_EINVAL;
    if ((v = sst__cfg_get(c, n, "endpoints")) == NULL) {
        sst__cfg_push_key(c, "endpoints");
        return sst__cfg_fail(c, n, "required, e.g. endpoints: [\"http://127.0.0.1:2379\"]");
    }
    mark = sst__cfg_push_key(c, "endpoints");
    if (fleet_endpoints(c, v) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, mark);
    if ((v = sst__cfg_get(c, n, "dial_timeout")) != NULL) {
        mark = sst__cfg_push_key(c, "dial_timeout");
        if (sst__cfg_duration(c, v, FLEET_MIN_DIAL, FLEET_MAX_DIAL, &f->dial_timeout_ms) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "lease_ttl")) != NULL) {
        mark = sst__cfg_push_key(c, "lease_ttl");
        sst_str_t s;
        uint64_t ms;
        char why[SST__WHY_SIZE], q[64];
        if (sst__cfg_scalar(c, v, "a duration (10s)", &s) != 0)
            return SST_EINVAL;
        if (sst__parse_duration(s, &ms, why) != 0)
            return sst__cfg_fail(c, v, "invalid duration %s: %s", sst__quote(s, q, sizeof q), why);
        if (ms < SST_FLEET_MIN_TTL_MS)
            return sst__cfg_fail(c, v,
                                 "%s is below etcd's minimum lease TTL of about 5s (etcd would "
                                 "extend it): use 5s or more",
                                 sst__quote(s, q, sizeof q));
        if (ms > FLEET_MAX_LEASE_TTL)
            return sst__cfg_fail(c, v, "%s is out of range (5s..%s)", sst__quote(s, q, sizeof q),
                                 sst__fmt_ms(FLEET_MAX_LEASE_TTL, a, sizeof a));
        if (ms % 1000 != 0)
            return sst__cfg_fail(c, v,
                                 "%s is not a whole number of seconds (etcd leases count seconds)",
                                 sst__quote(s, q, sizeof q));
        f->lease_ttl_ms = ms;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, top);
    return 0;
}

static int fleet_quorum(sst__cfg_ctx_t *c, const yaml_node_t *n)
{
    sst_fleet_cfg_t *f = &c->cfg->fleet;
    sst_str_t s;
    uint64_t v;
    char q[64];

    if (sst__cfg_scalar(c, n, "off, majority or a number of instances", &s) != 0)
        return SST_EINVAL;
    if (sst_str_eq(s, SST_STR_LIT("off"))) {
        f->health_quorum = SST_QUORUM_CFG_OFF;
        return 0;
    }
    if (sst_str_eq(s, SST_STR_LIT("majority"))) {
        f->health_quorum = SST_QUORUM_CFG_MAJORITY;
        return 0;
    }
    if (sst_str_to_u64(s, UINT64_MAX, &v) != 0)
        return sst__cfg_fail(c, n,
                             "invalid value %s: expected off, majority or a number of "
                             "instances (1..256)",
                             sst__quote(s, q, sizeof q));
    if (v < 1 || v > FLEET_MAX_QUORUM)
        return sst__cfg_fail(c, n, "%s is out of range (1..%d instances)",
                             sst__quote(s, q, sizeof q), FLEET_MAX_QUORUM);
    f->health_quorum = SST_QUORUM_CFG_COUNT;
    f->health_quorum_count = (uint32_t)v;
    return 0;
}

int sst__cfg_parse_fleet(sst__cfg_ctx_t *c, const yaml_node_t *root)
{
    static const char *const keys[] = {"name", "instance",      "advertise_admin",
                                       "etcd", "health_quorum", "startup_wait"};
    sst_fleet_cfg_t *f = &c->cfg->fleet;
    const yaml_node_t *n = sst__cfg_get(c, root, "fleet"), *v;
    size_t mark;

    if (n == NULL)
        return 0; /* single-instance mode: no etcd */
    sst__cfg_push_key(c, "fleet");
    if (sst__cfg_check_map(c, n, keys, 6) != 0)
        return SST_EINVAL;
    f->enabled = true;
    f->dial_timeout_ms = FLEET_DEFAULT_DIAL;
    f->lease_ttl_ms = FLEET_DEFAULT_TTL;
    f->startup_wait_ms = FLEET_DEFAULT_WAIT;
    f->health_quorum = SST_QUORUM_CFG_OFF;
    if ((v = sst__cfg_get(c, n, "name")) == NULL) {
        sst__cfg_push_key(c, "name");
        return sst__cfg_fail(c, n,
                             "required: the fleet's name (keys live under /sidestep/<name>/)");
    }
    mark = sst__cfg_push_key(c, "name");
    if (fleet_name(c, v, "fleet name", &f->name) != 0)
        return SST_EINVAL;
    sst__cfg_pop(c, mark);
    mark = sst__cfg_push_key(c, "instance");
    if ((v = sst__cfg_get(c, n, "instance")) != NULL) {
        if (fleet_name(c, v, "instance name", &f->instance) != 0)
            return SST_EINVAL;
    } else if (fleet_default_instance(c, n, &f->instance) != 0) {
        return SST_EINVAL;
    }
    sst__cfg_pop(c, mark);
    if (fleet_advertise(c, n, sst__cfg_get(c, n, "advertise_admin")) != 0)
        return SST_EINVAL;
    if (fleet_etcd(c, n, sst__cfg_get(c, n, "etcd")) != 0)
        return SST_EINVAL;
    if ((v = sst__cfg_get(c, n, "health_quorum")) != NULL) {
        mark = sst__cfg_push_key(c, "health_quorum");
        if (fleet_quorum(c, v) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    if ((v = sst__cfg_get(c, n, "startup_wait")) != NULL) {
        mark = sst__cfg_push_key(c, "startup_wait");
        if (sst__cfg_duration(c, v, 0, FLEET_MAX_STARTUP, &f->startup_wait_ms) != 0)
            return SST_EINVAL;
        sst__cfg_pop(c, mark);
    }
    sst__cfg_pop(c, 0);
    return 0;
}
