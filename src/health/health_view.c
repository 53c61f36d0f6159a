/* What the rest of the proxy reads of health: reason and signal names, refcounted snapshots for
 * the workers, per-backend and per-region info for the admin API and metrics. Reads the
 * bookkeeping in health.c, never changes it. Pure like health.c: no libuv, no clock, no I/O. */
#include "sidestep/health.h"

#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

#include "health/health_internal.h"

/* --- reasons ------------------------------------------------------------------------------ */

static const char *const reason_codes[SST_REASON__COUNT] = {
#define HEALTH_REASON_CODE(name, text) [SST_REASON_##name] = #name,
    SST_REASON_MAP(HEALTH_REASON_CODE)
#undef HEALTH_REASON_CODE
};

static const char *const reason_texts[SST_REASON__COUNT] = {
#define HEALTH_REASON_TEXT(name, text) [SST_REASON_##name] = text,
    SST_REASON_MAP(HEALTH_REASON_TEXT)
#undef HEALTH_REASON_TEXT
};

const char *sst_reason_code(sst_reason_t r)
{
    return (unsigned)r < SST_REASON__COUNT ? reason_codes[r] : "UNKNOWN";
}

const char *sst_reason_text(sst_reason_t r)
{
    return (unsigned)r < SST_REASON__COUNT ? reason_texts[r] : "unknown reason";
}

static const char *const passive_names[SST_PASSIVE__COUNT] = {
    [SST_PASSIVE_OK] = "ok",
    [SST_PASSIVE_REFUSED] = "refused",
    [SST_PASSIVE_CONNECT_TIMEOUT] = "connect_timeout",
    [SST_PASSIVE_RESET] = "reset",
    [SST_PASSIVE_5XX] = "5xx",
    [SST_PASSIVE_TIMEOUT] = "timeout",
    [SST_PASSIVE_ABORTED] = "aborted",
};

const char *sst_passive_name(sst_passive_t sig)
{
    return (unsigned)sig < SST_PASSIVE__COUNT ? passive_names[sig] : "unknown";
}

/* --- snapshots and views ------------------------------------------------------------------ */

sst_hsnap_t *sst_hsnap_ref(sst_hsnap_t *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refcount, 1, memory_order_relaxed);
    return s;
}

void sst_hsnap_unref(sst_hsnap_t *s)
{
    if (s == NULL)
        return;
    /* acq_rel: the thread that frees sees every other thread's reads as finished. */
    if (atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel) == 1)
        free(s);
}

int sst_health_snapshot(const sst_health_t *h, uint64_t generation, sst_hsnap_t **out)
{
    if (h == NULL || out == NULL)
        return SST_EINVAL;
    const sst_config_t *cfg = h->cfg;
    sst_hsnap_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SST_ENOMEM;
    atomic_init(&s->refcount, 1);
    s->generation = generation;
    s->config_version = cfg->version;
    s->n_regions = cfg->n_regions;
    s->n_backends = cfg->n_backends;
    for (size_t r = 0; r < cfg->n_regions; r++) {
        const health_region_t *hr = &h->regions[r];
        sst_hsnap_region_t *sr = &s->regions[r];
        sr->state = (uint8_t)hr->eff;
        sr->force = (uint8_t)hr->force;
        sr->reason = (uint8_t)hr->reason;
        sr->drained = hr->drained;
        sr->since_ms = hr->since_ms;
        sr->hold_until_ms = hr->hold_until_ms;
        sr->n_up = hr->n_up;
    }
    for (size_t b = 0; b < cfg->n_backends; b++) {
        const health_backend_t *hb = &h->backends[b];
        sst_hsnap_backend_t *sb = &s->backends[b];
        sb->state = (uint8_t)hb->eff;
        sb->op = (uint8_t)hb->op;
        sb->force = (uint8_t)hb->force;
        sb->reason = (uint8_t)hb->reason;
        sb->since_ms = hb->since_ms;
        sb->slow_start_begin_ms = hb->slow_start_begin_ms;
        sb->slow_start_end_ms = hb->slow_start_end_ms;
    }
    *out = s;
    return 0;
}

uint32_t sst_hsnap_backend_weight(const sst_hsnap_t *s, const sst_config_t *cfg, size_t b,
                                  uint64_t now_ms)
{
    if (s == NULL || cfg == NULL || b >= s->n_backends || b >= cfg->n_backends)
        return 0;
    const sst_hsnap_backend_t *sb = &s->backends[b];
    uint64_t full = (uint64_t)cfg->backends[b].weight * 16;

    if (sb->state != SST_UP || full == 0)
        return 0;
    if (sb->slow_start_end_ms <= sb->slow_start_begin_ms || now_ms >= sb->slow_start_end_ms)
        return (uint32_t)full;
    uint64_t span = sb->slow_start_end_ms - sb->slow_start_begin_ms;
    uint64_t elapsed = now_ms > sb->slow_start_begin_ms ? now_ms - sb->slow_start_begin_ms : 0;
    /* 10% at the start, 100% at the end, linear in between. */
    double frac = 0.1 + 0.9 * ((double)elapsed / (double)span);
    uint64_t w = (uint64_t)((double)full * frac);
    return w < 1 ? 1 : (uint32_t)w;
}

void sst_health_backend_info(const sst_health_t *h, size_t b, sst_health_backend_info_t *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (!sst__health_backend_valid(h, b))
        return;
    const health_backend_t *hb = &h->backends[b];
    out->state = hb->eff;
    out->op = hb->op;
    out->force = hb->force;
    out->since_ms = hb->since_ms;
    out->reason = hb->reason;
    sst__health_text_copy(out->reason_text, sizeof(out->reason_text), hb->reason_text);
    out->successes = hb->successes;
    out->failures = hb->failures;
    out->passive_failures = hb->passive_failures;
    out->passive_down = hb->passive_down;
    out->passive_ejections = hb->passive_ejections;
    out->passive_ejections_refused = hb->passive_ejections_refused;
    out->probes_ok = hb->probes_ok;
    out->probes_failed = hb->probes_failed;
    out->last_probe_ms = hb->last_probe_ms;
    out->last_probe_duration_ms = hb->last_probe_duration_ms;
    out->last_status = hb->last_status;
    out->last_probe_reason = hb->last_probe_reason;
    out->force_expires_ms = hb->force_expires_ms;
    sst__health_text_copy(out->force_reason, sizeof(out->force_reason), hb->force_reason);
}

void sst_health_region_info(const sst_health_t *h, size_t r, sst_health_region_info_t *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (h == NULL || r >= h->cfg->n_regions)
        return;
    const health_region_t *hr = &h->regions[r];
    out->state = hr->eff;
    out->force = hr->force;
    out->drained = hr->drained;
    out->since_ms = hr->since_ms;
    out->hold_until_ms = hr->hold_until_ms;
    out->n_up = hr->n_up;
    out->reason = hr->reason;
    sst__health_text_copy(out->reason_text, sizeof(out->reason_text), hr->reason_text);
    out->force_expires_ms = hr->force_expires_ms;
    out->drain_expires_ms = hr->drain_expires_ms;
    sst__health_text_copy(out->force_reason, sizeof(out->force_reason), hr->force_reason);
    sst__health_text_copy(out->drain_reason, sizeof(out->drain_reason), hr->drain_reason);
}
