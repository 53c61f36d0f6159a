/* Fleet mode on the server's side: runs the fleet runtime (src/fleet) from the control loop,
 * merges its overrides under this instance's local ones into health, routes by its quorum,
 * holds accepting until its first read, and reports this instance's own view to it. Talks to
 * health only through sst_health_admin_*; never runs on a worker. */
#include "core/server_fleet.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "core/server_int.h"
#include "core/view.h"
#include "sidestep/error.h"
#include "sidestep/log.h"

/* the wall clock may be stepped: expiry is looked at again at least this often */
#define SFLEET_RECHECK_MS 10000
#define SFLEET_HASH_MAX   (16u << 20) /* bytes of config file hashed */

/* ---- pure parts ----------------------------------------------------------------------------- */

void sst__fleet_route_apply(const sst_config_t *cfg, sst_hsnap_t *snap, uint32_t down,
                            uint32_t decided)
{
    size_t n = cfg->n_regions < snap->n_regions ? cfg->n_regions : snap->n_regions;
    for (size_t r = 0; r < n && r < SST_MAX_REGIONS; r++) {
        sst_hsnap_region_t *reg = &snap->regions[r];
        uint32_t bit = 1u << r;
        if (!(decided & bit) || reg->force != SST_FORCE_NONE)
            continue;
        if (down & bit) {
            if (reg->state == SST_UP) {
                reg->state = SST_DOWN;
                reg->hold_until_ms = 0;
            }
            continue;
        }
        if (reg->state == SST_UP)
            continue;
        reg->state = SST_UP;
        if (reg->n_up > 0)
            continue;
        /* held UP by the fleet while every backend fails here: serve at configured weights */
        const sst_region_cfg_t *rc = &cfg->regions[r];
        for (size_t b = rc->first_backend;
             b < rc->first_backend + rc->n_backends && b < snap->n_backends; b++) {
            sst_hsnap_backend_t *hb = &snap->backends[b];
            if (hb->force == SST_FORCE_DOWN)
                continue;
            hb->state = SST_UP;
            hb->slow_start_begin_ms = hb->slow_start_end_ms = 0;
            reg->n_up++;
        }
    }
}

void sst__fleet_own_view(const sst_config_t *cfg, const sst_health_t *h, sst_fleet_view_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t r = 0; r < cfg->n_regions && r < SST_MAX_REGIONS; r++) {
        const sst_region_cfg_t *rc = &cfg->regions[r];
        sst_fleet_region_view_t *v = &out->regions[out->n_regions++];
        uint32_t up = 0;
        size_t failing = SIZE_MAX;
        snprintf(v->name, sizeof(v->name), "%s", rc->name);
        for (size_t b = rc->first_backend; b < rc->first_backend + rc->n_backends; b++) {
            sst_health_backend_info_t bi;
            sst_health_backend_info(h, b, &bi);
            if (bi.op == SST_UP)
                up++;
            else if (failing == SIZE_MAX)
                failing = b;
        }
        v->down = up < sst_health_region_need(rc);
        if (!v->down || failing == SIZE_MAX)
            continue;
        sst_health_backend_info_t bi;
        sst_health_backend_info(h, failing, &bi);
        snprintf(v->reason, sizeof(v->reason), "%s", sst_reason_code(bi.reason));
        /* printable only: the value is checked again when it is encoded */
        size_t k = 0;
        for (const char *p = bi.reason_text; *p != 0 && k + 1 < sizeof(v->text); p++)
            v->text[k++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
        v->text[k] = 0;
    }
}

uint32_t sst__fleet_remap_mask(const sst_config_t *from, uint32_t mask, const sst_config_t *to,
                               uint32_t *known)
{
    uint32_t out = 0;
    *known = 0;
    for (size_t r = 0; r < to->n_regions && r < SST_MAX_REGIONS; r++) {
        const char *name = to->regions[r].name;
        int i = from == to ? (int)r : sst_config_region_index(from, name, strlen(name));
        if (i < 0 || i >= SST_MAX_REGIONS)
            continue;
        *known |= 1u << r;
        if (mask & (1u << i))
            out |= 1u << r;
    }
    return out;
}

/* ---- events --------------------------------------------------------------------------------- */

/* TIME event fleet NAME "TEXT", in the configured log format. */
static void sfleet_log_event(const char *name, const char *text)
{
    char line[1024];
    sst_log_field_t f[] = {
        {.key = "type", .pre = " ", .kind = SST_LF_RAW, .str = "event", .len = 5},
        {.key = "kind", .pre = " ", .kind = SST_LF_RAW, .str = "fleet", .len = 5},
        {.key = "name", .pre = " ", .kind = SST_LF_RAW, .str = name, .len = strlen(name)},
        {.key = "text",
         .pre = " \"",
         .post = "\"",
         .kind = SST_LF_ESC,
         .str = text,
         .len = strlen(text)},
    };
    size_t len =
        sst_log_format(line, sizeof(line), sst_log_epoch_ms(), f, sizeof(f) / sizeof(f[0]));
    sst_log_event_write(line, len);
}

/* ---- the merge ------------------------------------------------------------------------------ */

static sst_sfleet_applied_t sfleet_key(const sst_fleet_effective_t *e)
{
    sst_sfleet_applied_t k;
    memset(&k, 0, sizeof(k));
    if (e->ovr == NULL)
        return k;
    k.source = (uint8_t)e->source;
    k.state = (uint8_t)e->ovr->state;
    k.created_at = e->ovr->created_at;
    k.expires_at = e->ovr->expires_at;
    return k;
}

static bool sfleet_same(const sst_sfleet_applied_t *a, const sst_sfleet_applied_t *b)
{
    return a->source == b->source && a->state == b->state && a->created_at == b->created_at &&
           a->expires_at == b->expires_at;
}

/* The reason health records: "fleet lb-1: drill", "local: drill", "fleet override ended". */
static void sfleet_reason(const sst_fleet_effective_t *e, const sst_sfleet_applied_t *prev,
                          uint64_t wall, char *buf, size_t size)
{
    if (e->ovr != NULL) {
        if (e->source == SST_FLEET_SRC_FLEET)
            snprintf(buf, size, "fleet %s: %s", e->ovr->by_instance, e->ovr->reason);
        else
            snprintf(buf, size, "local: %s", e->ovr->reason);
        return;
    }
    snprintf(buf, size, "%s override %s", prev->source == SST_FLEET_SRC_FLEET ? "fleet" : "local",
             prev->expires_at != 0 && wall >= prev->expires_at ? "expired" : "cleared");
}

typedef enum sfleet_slot_e {
    SLOT_REGION_FORCE = 0,
    SLOT_REGION_DRAIN,
    SLOT_BACKEND_FORCE,
} sfleet_slot_t;

/* Tells health about one slot when its effective override changed. */
static void sfleet_apply(sst_sfleet_t *sf, sfleet_slot_t slot, size_t i,
                         const sst_fleet_effective_t *e, uint64_t wall, bool *changed)
{
    sst_server_t *s = sf->s;
    sst_sfleet_applied_t *applied = slot == SLOT_REGION_FORCE   ? &sf->region_force[i]
                                    : slot == SLOT_REGION_DRAIN ? &sf->region_drain[i]
                                                                : &sf->backend_force[i];
    sst_sfleet_applied_t k = sfleet_key(e);
    char reason[200];
    bool ch = false;
    sst_admin_op_t op;

    if (sfleet_same(&k, applied))
        return;
    if (slot == SLOT_REGION_DRAIN)
        op = e->ovr != NULL ? SST_ADMIN_DRAIN : SST_ADMIN_UNDRAIN;
    else
        op = e->ovr == NULL                    ? SST_ADMIN_CLEAR
             : e->ovr->state == SST_FLEET_DOWN ? SST_ADMIN_FORCE_DOWN
                                               : SST_ADMIN_FORCE_UP;
    sfleet_reason(e, applied, wall, reason, sizeof(reason));
    /* no TTL for health: expiry is the merge's (wall-clock expires_at, shared by the fleet),
     * so a local override that ends reveals the fleet's beneath in the same step */
    if (slot == SLOT_BACKEND_FORCE)
        (void)sst_health_admin_backend(s->health, i, op, reason, 0, uv_now(s->loop), &ch);
    else
        (void)sst_health_admin_region(s->health, i, op, reason, 0, uv_now(s->loop), &ch);
    *applied = k;
    *changed = true;
}

static void sfleet_on_merge_timer(uv_timer_t *t);

/* Local overrides past their expires_at are dropped (the merge already ignores them). */
static void sfleet_drop_expired(sst_fleet_slot_t *slots, size_t n, uint64_t wall)
{
    for (size_t i = 0; i < n; i++)
        if (slots[i].set && slots[i].ovr.expires_at != 0 && wall >= slots[i].ovr.expires_at)
            slots[i].set = false;
}

static void sfleet_merge(sst_sfleet_t *sf)
{
    sst_server_t *s = sf->s;
    const sst_config_t *cfg = s->cfg;
    uint64_t wall = sst_log_epoch_ms();
    sst_fleet_merged_t m;
    bool changed = false;

    if (s->stopping || s->health == NULL)
        return;
    sfleet_drop_expired(sf->local.region_force, cfg->n_regions, wall);
    sfleet_drop_expired(sf->local.region_drain, cfg->n_regions, wall);
    sfleet_drop_expired(sf->local.backend_force, cfg->n_backends, wall);
    sst_fleet_merge_all(cfg, &sf->local, sf->have_fleet ? &sf->fleet : NULL, wall, &m);
    for (size_t r = 0; r < cfg->n_regions; r++) {
        sfleet_apply(sf, SLOT_REGION_FORCE, r, &m.region_force[r], wall, &changed);
        sfleet_apply(sf, SLOT_REGION_DRAIN, r, &m.region_drain[r], wall, &changed);
    }
    for (size_t b = 0; b < cfg->n_backends; b++)
        sfleet_apply(sf, SLOT_BACKEND_FORCE, b, &m.backend_force[b], wall, &changed);
    if (m.next_expiry_ms == UINT64_MAX) {
        uv_timer_stop(&sf->merge_timer);
    } else {
        uint64_t delay = m.next_expiry_ms > wall ? m.next_expiry_ms - wall + 1 : 1;
        uv_timer_start(&sf->merge_timer, sfleet_on_merge_timer,
                       delay < SFLEET_RECHECK_MS ? delay : SFLEET_RECHECK_MS, 0);
    }
    if (changed)
        sst__server_publish(s);
}

static void sfleet_on_merge_timer(uv_timer_t *t)
{
    sfleet_merge(t->data);
}

void sst__sfleet_merged(const sst_server_t *s, sst_fleet_merged_t *out)
{
    const sst_sfleet_t *sf = s->fleet;
    memset(out, 0, sizeof(*out));
    out->next_expiry_ms = UINT64_MAX;
    if (sf != NULL)
        sst_fleet_merge_all(s->cfg, &sf->local, sf->have_fleet ? &sf->fleet : NULL,
                            sst_log_epoch_ms(), out);
}

/* ---- local actions -------------------------------------------------------------------------- */

static void sfleet_local_set(sst_sfleet_t *sf, sst_fleet_slot_t *slot, sst_fleet_state_t state,
                             const char *reason, uint64_t ttl_ms, const char *client)
{
    sst_fleet_override_t *o = &slot->ovr;
    memset(o, 0, sizeof(*o));
    o->state = state;
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
    snprintf(o->by_instance, sizeof(o->by_instance), "%s",
             sf->start_cfg->fleet.instance ? sf->start_cfg->fleet.instance : "");
    snprintf(o->by_client, sizeof(o->by_client), "%s", client ? client : "");
    o->created_at = sst_log_epoch_ms();
    o->ttl_ms = ttl_ms;
    o->expires_at = ttl_ms != 0 ? o->created_at + ttl_ms : 0;
    slot->set = true;
}

static void sfleet_local_slot(sst_sfleet_t *sf, sst_fleet_slot_t *slot, sst_admin_op_t op,
                              const char *reason, uint64_t ttl_ms, const char *client)
{
    switch (op) {
    case SST_ADMIN_FORCE_DOWN:
        sfleet_local_set(sf, slot, SST_FLEET_DOWN, reason, ttl_ms, client);
        break;
    case SST_ADMIN_FORCE_UP:
        sfleet_local_set(sf, slot, SST_FLEET_UP, reason, ttl_ms, client);
        break;
    case SST_ADMIN_DRAIN:
        sfleet_local_set(sf, slot, SST_FLEET_DRAIN, reason, ttl_ms, client);
        break;
    case SST_ADMIN_CLEAR:
    case SST_ADMIN_UNDRAIN:
        slot->set = false;
        break;
    }
}

int sst__sfleet_local_op(sst_server_t *s, bool region, const char *name, sst_admin_op_t op,
                         const char *reason, uint64_t ttl_ms, const char *client, char *err,
                         size_t err_size)
{
    sst_sfleet_t *sf = s->fleet;
    const sst_config_t *cfg = s->cfg;
    bool drain = op == SST_ADMIN_DRAIN || op == SST_ADMIN_UNDRAIN;

    if (sf == NULL || (unsigned)op > SST_ADMIN_CLEAR) {
        snprintf(err, err_size, "not in fleet mode");
        return SST_EINVAL;
    }
    if (region) {
        int r = sst_config_region_index(cfg, name, strlen(name));
        if (r < 0) {
            snprintf(err, err_size, "unknown region \"%s\"", name);
            return SST_ENOENT;
        }
        sfleet_local_slot(sf, drain ? &sf->local.region_drain[r] : &sf->local.region_force[r], op,
                          reason, ttl_ms, client);
    } else {
        if (drain) {
            snprintf(err, err_size, "%s applies to regions, not backends",
                     op == SST_ADMIN_DRAIN ? "drain" : "undrain");
            return SST_EINVAL;
        }
        bool any = false;
        for (size_t b = 0; b < cfg->n_backends; b++) {
            if (strcmp(cfg->backends[b].addr.text, name) != 0)
                continue;
            sfleet_local_slot(sf, &sf->local.backend_force[b], op, reason, ttl_ms, client);
            any = true;
        }
        if (!any) {
            snprintf(err, err_size, "unknown backend \"%s\"", name);
            return SST_ENOENT;
        }
    }
    sfleet_merge(sf);
    return 0;
}

void sst__sfleet_count(sst_server_t *s, sst_sfleet_scope_t scope, unsigned http_status)
{
    sst_sfleet_t *sf = s->fleet;
    sst_sfleet_result_t r = http_status == 200   ? SST_SFLEET_OK
                            : http_status == 404 ? SST_SFLEET_NOT_FOUND
                            : http_status == 409 ? SST_SFLEET_CONFLICT
                            : http_status >= 500 ? SST_SFLEET_UNAVAILABLE
                                                 : SST_SFLEET_INVALID;
    if (sf != NULL && (unsigned)scope < SST_SFLEET_SCOPES)
        sf->actions[scope][r]++;
}

/* ---- quorum and own view -------------------------------------------------------------------- */

void sst__sfleet_route(const sst_server_t *s, const sst_config_t *cfg, sst_hsnap_t *snap)
{
    const sst_sfleet_t *sf = s->fleet;
    uint32_t known;
    if (sf == NULL || !sf->q_valid || sf->q.basis != SST_FLEET_BASIS_FLEET || sf->q_cfg == NULL)
        return;
    uint32_t down = sst__fleet_remap_mask(sf->q_cfg, sf->q.down, cfg, &known);
    sst__fleet_route_apply(cfg, snap, down, known);
}

void sst__sfleet_published(sst_server_t *s)
{
    sst_sfleet_t *sf = s->fleet;
    sst_fleet_view_t v;
    if (sf == NULL || s->stopping || s->health == NULL)
        return;
    sst__fleet_own_view(s->cfg, s->health, &v);
    if (sf->view_sent && v.n_regions == sf->view.n_regions &&
        memcmp(v.regions, sf->view.regions, v.n_regions * sizeof(v.regions[0])) == 0)
        return;
    if (sst_fleet_set_view(sf->f, &v) == 0) {
        sf->view = v;
        sf->view_sent = true;
    }
}

/* ---- hooks ---------------------------------------------------------------------------------- */

static void sfleet_on_overrides(void *arg, const sst_fleet_overrides_t *fleet, int64_t revision)
{
    sst_sfleet_t *sf = arg;
    sf->fleet = *fleet;
    sf->fleet_revision = revision;
    sf->have_fleet = true;
    sfleet_merge(sf);
}

static void sfleet_on_quorum(void *arg, const sst_fleet_quorum_out_t *q)
{
    sst_sfleet_t *sf = arg;
    sst_server_t *s = sf->s;
    uint32_t before = sf->q_valid && sf->q.basis == SST_FLEET_BASIS_FLEET ? sf->q.disagree : 0;
    uint32_t after = q->basis == SST_FLEET_BASIS_FLEET ? q->disagree : 0;
    for (size_t r = 0; r < s->cfg->n_regions && r < SST_MAX_REGIONS; r++)
        if ((after & ~before) & (1u << r))
            sf->disagreements[s->view->prep->region_mid[r]]++;
    sf->q = *q;
    sf->q_valid = true;
    if (sf->q_cfg != s->cfg) {
        sst_config_unref(sf->q_cfg);
        sf->q_cfg = sst_config_ref(s->cfg);
    }
    sst__server_publish(s);
}

static void sfleet_on_event(void *arg, sst_fleet_event_t ev, const char *text)
{
    (void)arg;
    sfleet_log_event(sst_fleet_event_name(ev), text);
}

static void sfleet_on_startup(void *arg, sst_fleet_startup_t state)
{
    sst_sfleet_t *sf = arg;
    sst_server_t *s = sf->s;
    int64_t rev = 0;
    if (state == SST_FLEET_STARTUP_READY) {
        (void)sst_fleet_overrides(sf->f, &rev);
        sst_info("fleet: the fleet's overrides are read (revision %" PRId64
                 "); accepting client connections",
                 rev);
    }
    /* TIMED_OUT: the runtime's fleet_startup event is the warning */
    if (s->accept_held) {
        s->accept_held = false;
        sst__server_publish(s);
    }
}

/* ---- lifetime ------------------------------------------------------------------------------- */

/* FNV-1a 64 of the config file, for the heartbeat: instances running different files show it. */
static void sfleet_hash(const char *path, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t total = 0;
    int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        unsigned char buf[8192];
        ssize_t n;
        while (total < SFLEET_HASH_MAX && (n = read(fd, buf, sizeof(buf))) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                h ^= buf[i];
                h *= 0x100000001b3ull;
            }
            total += (size_t)n;
        }
        close(fd);
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

static void sfleet_free(sst_sfleet_t *sf)
{
    sst_config_unref(sf->q_cfg);
    sst_config_unref(sf->start_cfg);
    free(sf);
}

static void sfleet_on_closed(uv_handle_t *h)
{
    sst_sfleet_t *sf = h->data;
    if (--sf->closing == 0)
        sfleet_free(sf);
}

static void sfleet_on_stopped(void *arg)
{
    sst_sfleet_t *sf = arg;
    if (--sf->closing == 0)
        sfleet_free(sf);
}

static void sfleet_advertised(const sst_server_t *s, char *buf, size_t size)
{
    const struct sockaddr_storage *sa = &s->admin_bound;
    char ip[64] = "";
    buf[0] = 0;
    if (!s->cfg->fleet.advertise_admin_default || s->cfg->admin.addr.port != 0)
        return; /* the runtime advertises fleet.advertise_admin as written */
    if (sa->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    }
}

int sst__sfleet_start(sst_server_t *s, char *err, size_t err_size)
{
    sst_sfleet_t *sf = calloc(1, sizeof(*sf));
    char admin[80];
    if (sf == NULL)
        return SST_ENOMEM;
    sf->s = s;
    sfleet_hash(s->config_path, sf->hash);
    sfleet_advertised(s, admin, sizeof(admin));
    sst_fleet_opts_t o = {
        .cfg = s->cfg,
        .admin = admin[0] ? admin : NULL,
        .config_hash = sf->hash,
    };
    sst_fleet_hooks_t hooks = {
        .arg = sf,
        .overrides = sfleet_on_overrides,
        .quorum = sfleet_on_quorum,
        .event = sfleet_on_event,
        .startup = sfleet_on_startup,
    };
    int rc = sst_fleet_start(s->loop, &o, &hooks, &sf->f);
    if (rc != 0) {
        snprintf(err, err_size, "fleet %s: starting the fleet runtime: %s", s->cfg->fleet.name,
                 sst_strerror(rc));
        free(sf);
        return rc;
    }
    uv_timer_init(s->loop, &sf->merge_timer); /* cannot fail: it allocates nothing */
    sf->merge_timer.data = sf;
    sf->start_cfg = sst_config_ref(s->cfg);
    s->fleet = sf;
    sst_info("fleet %s: instance %s, etcd %s%s, health_quorum %s", s->cfg->fleet.name,
             s->cfg->fleet.instance, s->cfg->fleet.endpoints[0].text,
             s->cfg->fleet.n_endpoints > 1 ? " (and more)" : "",
             s->cfg->fleet.health_quorum == SST_QUORUM_CFG_OFF        ? "off"
             : s->cfg->fleet.health_quorum == SST_QUORUM_CFG_MAJORITY ? "majority"
                                                                      : "a count");
    if (s->accept_held)
        sst_info("fleet: holding client connections until the fleet's overrides are read (at "
                 "most %" PRIu64 " ms)",
                 s->cfg->fleet.startup_wait_ms);
    /* the view at start, before the first health change */
    sst__sfleet_published(s);
    return 0;
}

void sst__sfleet_stop(sst_server_t *s)
{
    sst_sfleet_t *sf = s->fleet;
    if (sf == NULL)
        return;
    s->fleet = NULL;
    sf->closing = 2;
    uv_timer_stop(&sf->merge_timer);
    uv_close((uv_handle_t *)&sf->merge_timer, sfleet_on_closed);
    sst_fleet_stop(sf->f, sfleet_on_stopped, sf);
}

/* The identity the runtime keeps until a restart (sst_fleet_set_config). */
static void sfleet_identity_change(const sst_fleet_cfg_t *a, const sst_fleet_cfg_t *b, char *buf,
                                   size_t size)
{
    buf[0] = 0;
    if (!b->enabled) {
        snprintf(buf, size, "the fleet section was removed");
        return;
    }
    if (strcmp(a->name, b->name) != 0)
        snprintf(buf, size, "fleet.name changed (%s -> %s)", a->name, b->name);
    else if (strcmp(a->instance, b->instance) != 0)
        snprintf(buf, size, "fleet.instance changed (%s -> %s)", a->instance, b->instance);
    else if (strcmp(a->advertise_admin.text, b->advertise_admin.text) != 0)
        snprintf(buf, size, "fleet.advertise_admin changed (%.80s -> %.80s)",
                 a->advertise_admin.text, b->advertise_admin.text);
    else
        snprintf(buf, size, "fleet.etcd changed");
}

/* The index in old_cfg of region or backend i of cfg, or -1: by name, and for a backend by
 * address within the same region name, the rule health carries state over by. */
static int sfleet_old_index(const sst_config_t *old_cfg, const sst_config_t *cfg, bool backend,
                            size_t i)
{
    if (!backend)
        return sst_config_region_index(old_cfg, cfg->regions[i].name, strlen(cfg->regions[i].name));
    const char *addr = cfg->backends[i].addr.text;
    int j = sst_config_backend_index(old_cfg, addr, strlen(addr));
    if (j >= 0 && strcmp(old_cfg->regions[old_cfg->backends[j].region].name,
                         cfg->regions[cfg->backends[i].region].name) != 0)
        j = -1;
    return j;
}

/* Re-indexes one table of `n` elements of `size` bytes from old_cfg onto cfg, into `to`. */
static void sfleet_remap(const void *from, void *to, size_t size, bool backend,
                         const sst_config_t *old_cfg, const sst_config_t *cfg)
{
    size_t n = backend ? cfg->n_backends : cfg->n_regions;
    for (size_t i = 0; i < n; i++) {
        int j = sfleet_old_index(old_cfg, cfg, backend, i);
        if (j >= 0)
            memcpy((char *)to + i * size, (const char *)from + (size_t)j * size, size);
        else
            memset((char *)to + i * size, 0, size);
    }
}

void sst__sfleet_reloaded(sst_server_t *s, const sst_config_t *old_cfg)
{
    sst_sfleet_t *sf = s->fleet;
    if (sf == NULL) {
        if (s->cfg->fleet.enabled)
            sst_warn("reload: the config has a fleet section, but fleet mode starts only with "
                     "the process: restart to join fleet %s",
                     s->cfg->fleet.name);
        return;
    }
    /* the local layer and what health holds follow the new indices, by name (health carried
     * its operator state over the same way) */
    struct {
        sst_fleet_overrides_t local;
        sst_sfleet_applied_t rf[SST_MAX_REGIONS], rd[SST_MAX_REGIONS], bf[SST_MAX_BACKENDS];
    } *next = calloc(1, sizeof(*next));
    if (next != NULL) {
        sfleet_remap(sf->local.region_force, next->local.region_force, sizeof(sst_fleet_slot_t),
                     false, old_cfg, s->cfg);
        sfleet_remap(sf->local.region_drain, next->local.region_drain, sizeof(sst_fleet_slot_t),
                     false, old_cfg, s->cfg);
        sfleet_remap(sf->local.backend_force, next->local.backend_force, sizeof(sst_fleet_slot_t),
                     true, old_cfg, s->cfg);
        sfleet_remap(sf->region_force, next->rf, sizeof(next->rf[0]), false, old_cfg, s->cfg);
        sfleet_remap(sf->region_drain, next->rd, sizeof(next->rd[0]), false, old_cfg, s->cfg);
        sfleet_remap(sf->backend_force, next->bf, sizeof(next->bf[0]), true, old_cfg, s->cfg);
        sf->local = next->local;
        memcpy(sf->region_force, next->rf, sizeof(sf->region_force));
        memcpy(sf->region_drain, next->rd, sizeof(sf->region_drain));
        memcpy(sf->backend_force, next->bf, sizeof(sf->backend_force));
        free(next);
    } else {
        /* cannot re-index: drop the local layer and re-apply every slot to health */
        sst_error("reload: out of memory re-indexing the fleet's local overrides; they are "
                  "dropped");
        memset(&sf->local, 0, sizeof(sf->local));
        memset(sf->region_force, 0xff, sizeof(sf->region_force));
        memset(sf->region_drain, 0xff, sizeof(sf->region_drain));
        memset(sf->backend_force, 0xff, sizeof(sf->backend_force));
    }
    sfleet_hash(s->config_path, sf->hash);
    int rc = sst_fleet_set_config(sf->f, s->cfg, sf->hash);
    const sst_fleet_cfg_t *running = &sf->start_cfg->fleet;
    if (rc == SST_ENOTSUP) {
        char why[200];
        sfleet_identity_change(running, &s->cfg->fleet, why, sizeof(why));
        snprintf(sf->restart_why, sizeof(sf->restart_why),
                 "%.170s: the fleet identity (name, instance, etcd, advertise_admin) changes only "
                 "with a restart",
                 why);
        sst_warn("reload: %s; fleet mode keeps running as instance %s of fleet %s until a "
                 "restart, the rest of the config is applied",
                 why, running->instance, running->name);
    } else {
        sf->restart_why[0] = 0;
        if (rc != 0)
            sst_error("reload: the fleet runtime refused the new config: %s", sst_strerror(rc));
    }
    int64_t rev = 0;
    const sst_fleet_overrides_t *t = sst_fleet_overrides(sf->f, &rev);
    if (sf->have_fleet) {
        sf->fleet = *t; /* rebuilt on the new indices by sst_fleet_set_config */
        sf->fleet_revision = rev;
    }
    sf->view_sent = false; /* region indices may have moved */
    sfleet_merge(sf);
    sst__sfleet_published(s);
}
