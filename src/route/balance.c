/* Backend selection inside a region: smooth weighted round-robin over the health snapshot's
 * effective weights. Pure and deterministic: no clock (now_ms is passed in), no rand(), no
 * malloc; the only state is the caller's sst_lb_state_t. */
#include "sidestep/route.h"

#include <stdint.h>

/* Accumulators are renormalised past this bound. Smooth WRR keeps them within a few totals,
 * but backends leaving and rejoining the eligible set freeze values, and int32 must never
 * overflow whatever the sequence of sets. */
#define LB_CURRENT_LIMIT (INT32_C(1) << 30)

/* Effective weight of backend b at now_ms, as documented for sst_hsnap_backend_weight (which
 * health_view.c owns): 0 when DOWN, else the configured weight * 16, ramped linearly from 10% to
 * 100% between slow_start_begin_ms and slow_start_end_ms. Never 0 for an UP backend with a
 * non-zero configured weight, so slow start cannot starve it. */
static uint32_t lb_cfg_weight(const sst_config_t *cfg, size_t b)
{
    uint32_t w = cfg->backends[b].weight;
    return (w > 256 ? 256 : w) * 16; /* the loader caps weights at 256; stay safe without it */
}

static uint32_t lb_weight(const sst_config_t *cfg, const sst_hsnap_t *snap, size_t b,
                          uint64_t now_ms)
{
    const sst_hsnap_backend_t *s = &snap->backends[b];
    uint64_t w = lb_cfg_weight(cfg, b);

    if (s->state != SST_UP || w == 0)
        return 0;
    uint64_t begin = s->slow_start_begin_ms, end = s->slow_start_end_ms;
    if (end > begin && now_ms < end) {
        uint64_t span = end - begin;
        uint64_t elapsed = now_ms > begin ? now_ms - begin : 0;
        /* keep w * (span + 9 * elapsed) inside 64 bits: w <= 4096 needs span < 2^40 */
        while (span >= (UINT64_C(1) << 32)) {
            span >>= 1;
            elapsed >>= 1;
        }
        w = w * (span + 9 * elapsed) / (10 * span);
        if (w == 0)
            w = 1;
    }
    return (uint32_t)w;
}

/* Weight used in the ignore_health pass: any backend not forced down, at its configured
 * weight (no slow start: it is not UP, so there is no ramp to follow). */
static uint32_t lb_weight_ignoring_health(const sst_config_t *cfg, const sst_hsnap_t *snap,
                                          size_t b)
{
    if (snap->backends[b].force == SST_FORCE_DOWN)
        return 0;
    return lb_cfg_weight(cfg, b);
}

static int lb_round(const sst_config_t *cfg, const sst_hsnap_t *snap, size_t first, size_t end,
                    uint64_t now_ms, bool ignoring_health, const sst_tried_t *tried,
                    sst_lb_state_t *st)
{
    int64_t total = 0;
    int best = -1;
    bool renormalise = false;

    for (size_t b = first; b < end; b++) {
        if (tried != NULL && sst_tried_has(tried, b))
            continue;
        uint32_t w = ignoring_health ? lb_weight_ignoring_health(cfg, snap, b)
                                     : lb_weight(cfg, snap, b, now_ms);
        if (w == 0)
            continue;
        int64_t cur = (int64_t)st->current[b] + w;
        if (cur > LB_CURRENT_LIMIT)
            renormalise = true;
        st->current[b] = (int32_t)(cur > LB_CURRENT_LIMIT ? LB_CURRENT_LIMIT : cur);
        total += w;
        /* strictly greater: ties go to the lowest index, so the order is reproducible */
        if (best < 0 || st->current[b] > st->current[best])
            best = (int)b;
    }
    if (best < 0)
        return -1;
    int64_t after = (int64_t)st->current[best] - total;
    if (after < -LB_CURRENT_LIMIT)
        renormalise = true;
    st->current[best] = (int32_t)(after < -LB_CURRENT_LIMIT ? -LB_CURRENT_LIMIT : after);
    if (renormalise)
        for (size_t b = first; b < end; b++)
            st->current[b] = 0;
    return best;
}

int sst_lb_pick(const sst_config_t *cfg, const sst_hsnap_t *snap, size_t region, uint64_t now_ms,
                bool ignore_health, const sst_tried_t *tried, sst_lb_state_t *st)
{
    if (cfg == NULL || snap == NULL || st == NULL || region >= cfg->n_regions ||
        region >= SST_MAX_REGIONS)
        return -1;
    const sst_region_cfg_t *reg = &cfg->regions[region];
    size_t first = reg->first_backend;
    size_t end = first + reg->n_backends;
    /* the snapshot may describe fewer backends than the config (a reload in between) */
    size_t limit = cfg->n_backends < snap->n_backends ? cfg->n_backends : snap->n_backends;
    if (limit > SST_MAX_BACKENDS)
        limit = SST_MAX_BACKENDS;
    if (first >= limit)
        return -1;
    if (end > limit || end < first)
        end = limit;

    int b = lb_round(cfg, snap, first, end, now_ms, false, tried, st);
    if (b < 0 && ignore_health)
        b = lb_round(cfg, snap, first, end, now_ms, true, tried, st);
    return b;
}
