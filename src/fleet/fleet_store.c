/* The decoded copy of the fleet's keys (fleet_store.h): PUT and DELETE applied one key at a
 * time, bounded in size, every value decoded before it is kept. Pure; the runtime decides when
 * a fresh read replaces it. */
#include "fleet/fleet_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

int sst_fleet_store_init(sst_fleet_store_t *s, const char *fleet)
{
    if (s == NULL || fleet == NULL || !sst_fleet_valid_name(sst_str_c(fleet)))
        return SST_EINVAL;
    memset(s, 0, sizeof(*s));
    snprintf(s->fleet, sizeof(s->fleet), "%s", fleet);
    return 0;
}

void sst_fleet_store_clear(sst_fleet_store_t *s)
{
    if (s == NULL)
        return;
    free(s->ovr);
    free(s->members);
    s->ovr = NULL;
    s->members = NULL;
    s->n_ovr = s->cap_ovr = s->n_members = s->cap_members = 0;
}

void sst_fleet_store_swap(sst_fleet_store_t *a, sst_fleet_store_t *b)
{
    sst_fleet_store_t t = *a;
    *a = *b;
    *b = t;
}

static sst_fleet_ovr_key_t *store_find_ovr(const sst_fleet_store_t *s, sst_fleet_key_kind_t kind,
                                           sst_str_t name)
{
    for (size_t i = 0; i < s->n_ovr; i++)
        if (s->ovr[i].kind == kind && sst_str_eq(sst_str_c(s->ovr[i].name), name))
            return &s->ovr[i];
    return NULL;
}

static void store_drop_ovr(sst_fleet_store_t *s, sst_fleet_ovr_key_t *k, unsigned *changed)
{
    size_t i = (size_t)(k - s->ovr);
    s->ovr[i] = s->ovr[--s->n_ovr]; /* order does not matter */
    *changed |= SST_FLEET_CHG_OVERRIDES;
}

/* Binary search; *at gets the insertion point when absent. */
static sst_fleet_member_t *store_find_member(const sst_fleet_store_t *s, sst_str_t name, size_t *at)
{
    size_t lo = 0, hi = s->n_members;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        sst_str_t m = sst_str_c(s->members[mid].name);
        size_t n = m.len < name.len ? m.len : name.len;
        int c = memcmp(m.base, name.base, n);
        if (c == 0)
            c = m.len < name.len ? -1 : m.len > name.len ? 1 : 0;
        if (c == 0) {
            if (at != NULL)
                *at = mid;
            return &s->members[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at != NULL)
        *at = lo;
    return NULL;
}

const sst_fleet_member_t *sst_fleet_store_member(const sst_fleet_store_t *s, sst_str_t name)
{
    return s == NULL ? NULL : store_find_member(s, name, NULL);
}

static int store_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max)
        return SST_E2BIG;
    size_t n = *cap ? *cap * 2 : 8;
    if (n > max)
        n = max;
    void *p = realloc(*arr, n * elem);
    if (p == NULL)
        return SST_ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static sst_fleet_member_t *store_member_add(sst_fleet_store_t *s, sst_str_t name, int *rc)
{
    size_t at;
    sst_fleet_member_t *m = store_find_member(s, name, &at);
    if (m != NULL)
        return m;
    *rc = store_grow((void **)&s->members, &s->cap_members, s->n_members + 1, sizeof(*m),
                     SST_FLEET_MAX_MEMBERS);
    if (*rc != 0)
        return NULL;
    memmove(&s->members[at + 1], &s->members[at], (s->n_members - at) * sizeof(*m));
    s->n_members++;
    m = &s->members[at];
    memset(m, 0, sizeof(*m));
    memcpy(m->name, name.base, name.len); /* a valid name: at most SST_FLEET_NAME_MAX bytes */
    return m;
}

static void store_member_gc(sst_fleet_store_t *s, sst_fleet_member_t *m)
{
    if (m->has_heartbeat || m->has_view)
        return;
    size_t i = (size_t)(m - s->members);
    memmove(&s->members[i], &s->members[i + 1], (s->n_members - i - 1) * sizeof(*m));
    s->n_members--;
}

static int store_put_override(sst_fleet_store_t *s, const sst_fleet_key_info_t *ki, sst_str_t key,
                              sst_str_t value, int64_t rev, int64_t lease, unsigned *changed,
                              char *err, size_t err_size)
{
    sst_fleet_override_t v;
    char why[160];
    sst_fleet_ovr_key_t *k = store_find_ovr(s, ki->kind, ki->name);
    if (sst_fleet_override_decode(ki->kind, value.base, value.len, &v, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "key %.*s: %s", (int)key.len, key.base, why);
        if (k != NULL)
            store_drop_ovr(s, k, changed);
        return SST_EINVAL;
    }
    if (k == NULL) {
        int rc = store_grow((void **)&s->ovr, &s->cap_ovr, s->n_ovr + 1, sizeof(*k),
                            SST_FLEET_MAX_OVERRIDE_KEYS);
        if (rc != 0) {
            snprintf(err, err_size, "key %.*s: %s", (int)key.len, key.base,
                     rc == SST_E2BIG ? "too many override keys" : "out of memory");
            return rc;
        }
        k = &s->ovr[s->n_ovr++];
        memset(k, 0, sizeof(*k));
        k->kind = ki->kind;
        memcpy(k->name, ki->name.base, ki->name.len); /* validated: fits */
    }
    k->ovr = v;
    k->mod_revision = rev;
    k->lease = lease;
    *changed |= SST_FLEET_CHG_OVERRIDES;
    return 0;
}

static int store_put_member(sst_fleet_store_t *s, const sst_fleet_key_info_t *ki, sst_str_t key,
                            sst_str_t value, int64_t rev, unsigned *changed, char *err,
                            size_t err_size)
{
    bool hb = ki->kind == SST_FLEET_KEY_INSTANCE;
    char why[160];
    int rc = 0;
    sst_fleet_member_t *m = store_member_add(s, ki->name, &rc);
    if (m == NULL) {
        snprintf(err, err_size, "key %.*s: %s", (int)key.len, key.base,
                 rc == SST_E2BIG ? "too many instances" : "out of memory");
        return rc;
    }
    *changed |= SST_FLEET_CHG_MEMBERS;
    rc = hb ? sst_fleet_instance_decode(ki->name, value.base, value.len, &m->heartbeat, why,
                                        sizeof(why))
            : sst_fleet_view_decode(value.base, value.len, &m->view, why, sizeof(why));
    if (hb) {
        m->has_heartbeat = rc == 0;
        m->heartbeat_revision = rev;
    } else {
        m->has_view = rc == 0;
        m->view_revision = rev;
    }
    if (rc != 0) {
        snprintf(err, err_size, "key %.*s: %s", (int)key.len, key.base, why);
        store_member_gc(s, m);
        return SST_EINVAL;
    }
    return 0;
}

int sst_fleet_store_put(sst_fleet_store_t *s, sst_str_t key, sst_str_t value, int64_t mod_revision,
                        int64_t lease, unsigned *changed, char *err, size_t err_size)
{
    sst_fleet_key_info_t ki;
    if (s == NULL || changed == NULL || err == NULL || err_size == 0)
        return SST_EINVAL;
    err[0] = 0;
    if (sst_fleet_key_parse(s->fleet, key, &ki) != 0) {
        snprintf(err, err_size, "key %.*s: not a key of the fleet layout",
                 (int)(key.len > 200 ? 200 : key.len), key.base);
        return SST_EINVAL;
    }
    switch (ki.kind) {
    case SST_FLEET_KEY_REGION_FORCE:
    case SST_FLEET_KEY_REGION_DRAIN:
    case SST_FLEET_KEY_BACKEND_FORCE:
        return store_put_override(s, &ki, key, value, mod_revision, lease, changed, err, err_size);
    case SST_FLEET_KEY_INSTANCE:
    case SST_FLEET_KEY_VIEW:
        return store_put_member(s, &ki, key, value, mod_revision, changed, err, err_size);
    }
    return SST_EINVAL;
}

int sst_fleet_store_delete(sst_fleet_store_t *s, sst_str_t key, unsigned *changed)
{
    sst_fleet_key_info_t ki;
    if (s == NULL || changed == NULL || sst_fleet_key_parse(s->fleet, key, &ki) != 0)
        return SST_EINVAL;
    switch (ki.kind) {
    case SST_FLEET_KEY_REGION_FORCE:
    case SST_FLEET_KEY_REGION_DRAIN:
    case SST_FLEET_KEY_BACKEND_FORCE: {
        sst_fleet_ovr_key_t *k = store_find_ovr(s, ki.kind, ki.name);
        if (k != NULL)
            store_drop_ovr(s, k, changed);
        return 0;
    }
    case SST_FLEET_KEY_INSTANCE:
    case SST_FLEET_KEY_VIEW: {
        sst_fleet_member_t *m = store_find_member(s, ki.name, NULL);
        if (m == NULL)
            return 0;
        if (ki.kind == SST_FLEET_KEY_INSTANCE)
            m->has_heartbeat = false;
        else
            m->has_view = false;
        *changed |= SST_FLEET_CHG_MEMBERS;
        store_member_gc(s, m);
        return 0;
    }
    }
    return SST_EINVAL;
}

void sst_fleet_store_overrides(const sst_fleet_store_t *s, const sst_config_t *cfg, uint64_t now_ms,
                               sst_fleet_overrides_t *out, uint64_t *next_expiry_ms)
{
    uint64_t next = UINT64_MAX;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; s != NULL && cfg != NULL && i < s->n_ovr; i++) {
        const sst_fleet_ovr_key_t *k = &s->ovr[i];
        if (k->ovr.expires_at != 0 && now_ms >= k->ovr.expires_at)
            continue; /* enforced here, whatever etcd's lease does */
        sst_fleet_key_info_t ki = {.kind = k->kind, .name = sst_str_c(k->name)};
        /* SST_ENOENT: a region or backend of another config version */
        if (sst_fleet_overrides_apply(out, cfg, &ki, &k->ovr) == 0 && k->ovr.expires_at != 0 &&
            k->ovr.expires_at < next)
            next = k->ovr.expires_at;
    }
    if (next_expiry_ms != NULL)
        *next_expiry_ms = next;
}

static bool slot_equal(const sst_fleet_slot_t *a, const sst_fleet_slot_t *b)
{
    if (a->set != b->set)
        return false;
    if (!a->set)
        return true;
    const sst_fleet_override_t *x = &a->ovr, *y = &b->ovr;
    return x->state == y->state && x->created_at == y->created_at &&
           x->expires_at == y->expires_at && x->ttl_ms == y->ttl_ms &&
           strcmp(x->reason, y->reason) == 0 && strcmp(x->by_instance, y->by_instance) == 0 &&
           strcmp(x->by_client, y->by_client) == 0;
}

bool sst_fleet_overrides_equal(const sst_config_t *cfg, const sst_fleet_overrides_t *a,
                               const sst_fleet_overrides_t *b)
{
    for (size_t r = 0; r < cfg->n_regions && r < SST_MAX_REGIONS; r++)
        if (!slot_equal(&a->region_force[r], &b->region_force[r]) ||
            !slot_equal(&a->region_drain[r], &b->region_drain[r]))
            return false;
    for (size_t i = 0; i < cfg->n_backends && i < SST_MAX_BACKENDS; i++)
        if (!slot_equal(&a->backend_force[i], &b->backend_force[i]))
            return false;
    return true;
}

size_t sst_fleet_store_peers(const sst_fleet_store_t *s, const sst_config_t *cfg,
                             sst_fleet_peer_t *peers, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; s != NULL && i < s->n_members && n < max; i++) {
        const sst_fleet_member_t *m = &s->members[i];
        sst_fleet_peer_t *p = &peers[n++];
        memset(p, 0, sizeof(*p));
        p->instance = sst_str_c(m->name);
        p->live = m->has_heartbeat;
        p->has_view = m->has_view;
        if (m->has_view)
            sst_fleet_view_masks(cfg, &m->view, &p->down, &p->known);
    }
    return n;
}
