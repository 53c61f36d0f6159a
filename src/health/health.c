/* Health bookkeeping: rise/fall, passive ejection and its cap, operator forces and drains with
 * TTLs, region state from min_healthy, failback holds, slow start (health_view.c reads it out).
 * Pure: no libuv calls, no clock, no rand(), no I/O; the caller passes time and the RNG state. */
#include "sidestep/health.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

#include "health/health_internal.h"

/* What caused a change, passed down to the functions that record and announce it. */
typedef struct health_cause_s {
    sst_reason_t reason;
    const char *text; /* NULL for regions: the "n/m backends up" text is built */
    uint32_t successes;
    uint32_t failures;
    bool announce;   /* emit an event even when the effective state does not change */
    bool startup;    /* backends: the boot-time first UP, which skips slow start */
    bool allow_hold; /* regions: a DOWN -> UP may start a failback hold */
} health_cause_t;

/* --- small helpers ------------------------------------------------------------------------ */

uint64_t sst_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    if (x == 0)
        x = 0x9e3779b97f4a7c15u; /* xorshift never leaves 0: recover instead of sticking */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t sat_inc(uint32_t v)
{
    return v == UINT32_MAX ? v : v + 1;
}

void sst__health_text_copy(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    if (src != NULL)
        for (; i + 1 < size && src[i] != '\0'; i++)
            dst[i] = src[i];
    dst[i] = '\0';
}

/* Appends to a NUL-terminated text. Event and reason texts are for humans: a text that does not
 * fit is cut short rather than refused. */
__attribute__((format(printf, 3, 4))) static void text_append(char *buf, size_t size,
                                                              const char *fmt, ...)
{
    size_t len = strnlen(buf, size);
    va_list ap;

    if (len + 1 >= size)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* "10m", "90s", "1h", "1500ms": the largest unit that divides the value. */
static void text_append_duration(char *buf, size_t size, uint64_t ms)
{
    if (ms != 0 && ms % 3600000 == 0)
        text_append(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        text_append(buf, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0)
        text_append(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else
        text_append(buf, size, "%llums", (unsigned long long)ms);
}

static const char *state_name(sst_state_t s)
{
    return s == SST_UP ? "up" : "down";
}

static const char *force_verb(sst_force_t f)
{
    switch (f) {
    case SST_FORCE_NONE:
        return "clear";
    case SST_FORCE_UP:
        return "force-up";
    case SST_FORCE_DOWN:
        return "force-down";
    }
    return "force";
}

/* "operator drain: maintenance (ttl 10m)" */
static void admin_text(char *buf, size_t size, const char *verb, const char *reason,
                       uint64_t ttl_ms)
{
    buf[0] = '\0';
    text_append(buf, size, "operator %s", verb);
    if (reason != NULL && reason[0] != '\0')
        text_append(buf, size, ": %s", reason);
    if (ttl_ms != 0) {
        text_append(buf, size, " (ttl ");
        text_append_duration(buf, size, ttl_ms);
        text_append(buf, size, ")");
    }
}

/* --- configuration-derived values --------------------------------------------------------- */

static uint32_t cfg_rise(const sst_health_cfg_t *hc)
{
    return hc->rise == 0 ? 1 : hc->rise;
}

static uint32_t cfg_fall(const sst_health_cfg_t *hc)
{
    return hc->fall == 0 ? 1 : hc->fall;
}

static bool region_is_primary(const sst_config_t *cfg, size_t r)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].primary == r)
            return true;
    return false;
}

/* UP backends a region needs: a count, or a percentage of its backends rounded up. */
uint32_t sst_health_region_need(const sst_region_cfg_t *rc)
{
    if (!rc->min_healthy_pct)
        return rc->min_healthy;
    uint64_t v = (uint64_t)rc->min_healthy * rc->n_backends;
    return (uint32_t)((v + 99) / 100);
}

static uint32_t region_need(const sst_region_cfg_t *rc)
{
    return sst_health_region_need(rc);
}

/* --- events ------------------------------------------------------------------------------- */

static void emit(sst_health_t *h, sst_event_kind_t kind, size_t index, sst_state_t from,
                 sst_state_t to, const health_cause_t *cause, const char *text, uint64_t now_ms)
{
    sst_health_event_t ev;
    const sst_config_t *cfg = h->cfg;

    h->dirty = true; /* every event records a new reason in the snapshot */
    if (h->cb == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.at_ms = now_ms;
    ev.kind = kind;
    ev.index = index;
    ev.from = from;
    ev.to = to;
    ev.reason = cause->reason;
    sst__health_text_copy(ev.text, sizeof(ev.text), text);
    ev.successes = cause->successes;
    ev.failures = cause->failures;
    if (kind == SST_EVENT_REGION) {
        ev.name = cfg->regions[index].name;
        ev.n_up = h->regions[index].n_up;
        ev.n_backends = (uint32_t)cfg->regions[index].n_backends;
    } else {
        ev.name = cfg->backends[index].addr.text;
    }
    h->cb(&ev, h->opaque);
}

/* --- regions ------------------------------------------------------------------------------ */

static uint32_t region_count_up(const sst_health_t *h, size_t r)
{
    const sst_region_cfg_t *rc = &h->cfg->regions[r];
    uint32_t n = 0;
    for (size_t b = rc->first_backend; b < rc->first_backend + rc->n_backends; b++)
        if (h->backends[b].eff == SST_UP)
            n++;
    return n;
}

static sst_state_t region_effective(const sst_health_t *h, size_t r)
{
    const health_region_t *hr = &h->regions[r];
    switch (hr->force) {
    case SST_FORCE_NONE:
        break;
    case SST_FORCE_UP:
        return SST_UP;
    case SST_FORCE_DOWN:
        return SST_DOWN;
    }
    return hr->n_up >= region_need(&h->cfg->regions[r]) ? SST_UP : SST_DOWN;
}

/* "2/3 backends up, min_healthy 2" or "1/4 backends up, min_healthy 50% (2)" */
static void region_count_text(const sst_health_t *h, size_t r, char *buf, size_t size)
{
    const sst_region_cfg_t *rc = &h->cfg->regions[r];
    text_append(buf, size, "%u/%zu backends up, min_healthy ", h->regions[r].n_up, rc->n_backends);
    if (rc->min_healthy_pct)
        text_append(buf, size, "%u%% (%u)", rc->min_healthy, region_need(rc));
    else
        text_append(buf, size, "%u", rc->min_healthy);
}

/* Recounts region r and applies a change of its effective state: since, failback hold (set on
 * DOWN -> UP after having been UP, cancelled on UP -> DOWN), reason, event. */
static void region_settle(sst_health_t *h, size_t r, uint64_t now_ms, const health_cause_t *cause)
{
    const sst_region_cfg_t *rc = &h->cfg->regions[r];
    health_region_t *hr = &h->regions[r];
    char text[160] = "";
    bool held = false;

    uint32_t n_up = region_count_up(h, r);
    if (n_up != hr->n_up) {
        hr->n_up = n_up;
        h->dirty = true;
    }
    sst_state_t from = hr->eff;
    sst_state_t to = region_effective(h, r);
    if (from == to && !cause->announce)
        return;
    if (from != to) {
        hr->eff = to;
        hr->since_ms = now_ms;
        if (to == SST_UP) {
            if (hr->ever_up && cause->allow_hold && rc->failback_delay_ms > 0) {
                hr->hold_until_ms = sat_add(now_ms, rc->failback_delay_ms);
                held = true;
            }
            hr->ever_up = true;
        } else {
            hr->hold_until_ms = 0;
        }
    }
    if (cause->text != NULL)
        sst__health_text_copy(text, sizeof(text), cause->text);
    else
        region_count_text(h, r, text, sizeof(text));
    if (held) {
        text_append(text, sizeof(text), "; failback hold ");
        text_append_duration(text, sizeof(text), rc->failback_delay_ms);
    }
    hr->reason = cause->reason;
    sst__health_text_copy(hr->reason_text, sizeof(hr->reason_text), text);
    emit(h, SST_EVENT_REGION, r, from, to, cause, text, now_ms);
}

/* --- backends ----------------------------------------------------------------------------- */

static sst_state_t backend_effective(const health_backend_t *hb)
{
    switch (hb->force) {
    case SST_FORCE_NONE:
        break;
    case SST_FORCE_UP:
        return SST_UP;
    case SST_FORCE_DOWN:
        return SST_DOWN;
    }
    return hb->op;
}

/* Applies a change of backend b's op or force: effective state, slow start, reason, event,
 * then the region event the change may cause (region events follow their backend event). */
static void backend_settle(sst_health_t *h, size_t b, uint64_t now_ms, const health_cause_t *cause)
{
    const sst_backend_cfg_t *bc = &h->cfg->backends[b];
    health_backend_t *hb = &h->backends[b];
    sst_state_t from = hb->eff;
    sst_state_t to = backend_effective(hb);

    if (from != to) {
        uint64_t ss = h->cfg->regions[bc->region].slow_start_ms;
        hb->eff = to;
        hb->since_ms = now_ms;
        if (to == SST_UP && !cause->startup && ss > 0) {
            hb->slow_start_begin_ms = now_ms;
            hb->slow_start_end_ms = sat_add(now_ms, ss);
        } else {
            hb->slow_start_begin_ms = 0;
            hb->slow_start_end_ms = 0;
        }
    }
    if (from != to || cause->announce) {
        hb->reason = cause->reason;
        sst__health_text_copy(hb->reason_text, sizeof(hb->reason_text), cause->text);
        emit(h, SST_EVENT_BACKEND, b, from, to, cause, cause->text, now_ms);
    }
    health_cause_t rcause = {.reason = SST_REASON_MIN_HEALTHY, .allow_hold = true};
    region_settle(h, bc->region, now_ms, &rcause);
}

static void backend_reset(sst_health_t *h, size_t b, uint64_t now_ms)
{
    const sst_config_t *cfg = h->cfg;
    const sst_backend_cfg_t *bc = &cfg->backends[b];
    health_backend_t *hb = &h->backends[b];
    sst_state_t s = SST_DOWN;
    const char *why = "initial state down";

    switch (bc->health.initial) {
    case SST_INITIAL_UP:
        s = SST_UP;
        why = "initial state up";
        break;
    case SST_INITIAL_DOWN:
        break;
    case SST_INITIAL_AUTO:
        if (region_is_primary(cfg, bc->region)) {
            s = SST_UP;
            why = "initial state up (auto: region is a route primary)";
        } else {
            why = "initial state down (auto: region is no route's primary)";
        }
        break;
    }
    memset(hb, 0, sizeof(*hb));
    hb->op = s;
    hb->eff = s;
    hb->boot_down = s == SST_DOWN;
    hb->awaiting_probe = true;
    hb->since_ms = now_ms;
    hb->reason = SST_REASON_INIT;
    sst__health_text_copy(hb->reason_text, sizeof(hb->reason_text), why);
}

bool sst__health_backend_valid(const sst_health_t *h, size_t b)
{
    return h != NULL && b < h->cfg->n_backends;
}

/* "status 503", "probe timeout after 500ms", "connect error: network unreachable" */
static void probe_text(const sst_probe_result_t *res, char *buf, size_t size)
{
    buf[0] = '\0';
    switch (res->reason) {
    case SST_REASON_L7OK:
    case SST_REASON_L7STS:
        text_append(buf, size, "status %u", res->status);
        break;
    case SST_REASON_L7BODY:
        text_append(buf, size, "status %u, body mismatch", res->status);
        break;
    case SST_REASON_L4TOUT:
        text_append(buf, size, "connect timeout after %llums",
                    (unsigned long long)res->duration_ms);
        break;
    case SST_REASON_L7TOUT:
        text_append(buf, size, "probe timeout after %llums", (unsigned long long)res->duration_ms);
        break;
    case SST_REASON_L6TOUT:
        text_append(buf, size, "TLS handshake timeout after %llums",
                    (unsigned long long)res->duration_ms);
        break;
    case SST_REASON_L7SLOW:
        /* the detail says how slow: "status 200: probe took 2013ms > slow 500ms" */
        text_append(buf, size, "status %u", res->status);
        break;
    case SST_REASON_NONE:
    case SST_REASON_INIT:
    case SST_REASON_L4OK:
    case SST_REASON_L4CON:
    case SST_REASON_L4ERR:
    case SST_REASON_L6TLS:
    case SST_REASON_L7RSP:
    case SST_REASON_PASSIVE_REFUSED:
    case SST_REASON_PASSIVE_CTOUT:
    case SST_REASON_PASSIVE_RESET:
    case SST_REASON_PASSIVE_5XX:
    case SST_REASON_PASSIVE_TIMEOUT:
    case SST_REASON_PASSIVE_ABORTED:
    case SST_REASON_OPERATOR:
    case SST_REASON_TTL:
    case SST_REASON_MIN_HEALTHY:
    case SST_REASON_FAILBACK:
    case SST_REASON_RELOAD:
    case SST_REASON__COUNT:
        text_append(buf, size, "%s", sst_reason_text(res->reason));
        break;
    }
    if (res->detail[0] != '\0' && strnlen(res->detail, sizeof(res->detail)) < sizeof(res->detail))
        text_append(buf, size, ": %s", res->detail);
}

bool sst_health_classify_slow(sst_probe_result_t *res, const sst_health_cfg_t *hc)
{
    if (res == NULL || hc == NULL || !res->ok || hc->slow_ms == 0 ||
        res->duration_ms <= hc->slow_ms)
        return false;
    /* Issue 15: a brownout answers, only too late. Failing it here lets `fall` slow probes
     * take the backend down before the probes start timing out. */
    res->ok = false;
    res->reason = SST_REASON_L7SLOW;
    res->detail[0] = '\0';
    text_append(res->detail, sizeof(res->detail), "probe took %llums > slow ",
                (unsigned long long)res->duration_ms);
    text_append_duration(res->detail, sizeof(res->detail), hc->slow_ms);
    return true;
}

bool sst_health_probe_result(sst_health_t *h, size_t b, const sst_probe_result_t *in,
                             uint64_t now_ms)
{
    if (!sst__health_backend_valid(h, b) || in == NULL)
        return false;
    const sst_health_cfg_t *hc = &h->cfg->backends[b].health;
    health_backend_t *hb = &h->backends[b];
    sst_state_t before = hb->op;
    bool startup = false;
    sst_probe_result_t judged = *in;
    const sst_probe_result_t *res = &judged;

    /* With checks disabled nothing probes; a stray result must not move the state either. */
    if (!hc->enabled)
        return false;
    sst_health_classify_slow(&judged, hc);
    h->dirty = false;
    hb->awaiting_probe = false;
    hb->last_probe_ms = now_ms;
    hb->last_probe_duration_ms = res->duration_ms;
    hb->last_status = res->status;
    hb->last_probe_reason = res->reason;
    if (res->ok) {
        hb->probes_ok++;
        hb->successes = sat_inc(hb->successes);
        hb->failures = 0;
    } else {
        hb->probes_failed++;
        hb->failures = sat_inc(hb->failures);
        hb->successes = 0;
    }

    if (hb->op == SST_DOWN && res->ok) {
        /* A boot-time DOWN is a guess, not an observation: one success is enough. A passive
         * ejection clears boot_down, so it always needs `rise`. */
        if (hb->boot_down || hb->successes >= cfg_rise(hc)) {
            startup = hb->boot_down;
            hb->op = SST_UP;
            hb->boot_down = false;
            hb->passive_down = false;
            hb->passive_failures = 0;
            hb->passive_refused = 0;
        }
    } else if (hb->op == SST_UP && !res->ok) {
        if (hb->failures >= cfg_fall(hc)) {
            hb->op = SST_DOWN;
            hb->boot_down = false;
        }
    } else if (hb->op == SST_DOWN && hb->passive_down && hb->failures >= cfg_fall(hc)) {
        /* Active checks now agree: the backend is DOWN on their account, so it stops using the
         * region's passive-ejection budget. Recovery is the same `rise` either way. */
        hb->passive_down = false;
    }
    if (hb->op == before)
        return h->dirty;

    char text[160];
    probe_text(res, text, sizeof(text));
    if (hb->force != SST_FORCE_NONE)
        text_append(text, sizeof(text), "; operational %s, %s by operator", state_name(hb->op),
                    hb->force == SST_FORCE_UP ? "forced up" : "forced down");
    health_cause_t cause = {
        .reason = res->reason,
        .text = text,
        .successes = hb->successes,
        .failures = hb->failures,
        .announce = true, /* an op change masked by a force is still worth a log line */
        .startup = startup,
    };
    h->dirty = true;
    backend_settle(h, b, now_ms, &cause);
    return h->dirty;
}

/* Passive ejections may take at most floor(pct * n / 100) of a region's backends; 100 means
 * all of them. Backends DOWN because of passive checks use the budget. */
static bool ejection_allowed(const sst_health_t *h, size_t r)
{
    const sst_region_cfg_t *rc = &h->cfg->regions[r];
    size_t n = rc->n_backends;
    size_t allowed = rc->max_ejection_pct >= 100 ? n : (size_t)rc->max_ejection_pct * n / 100;
    size_t down = 0;

    for (size_t b = rc->first_backend; b < rc->first_backend + n; b++)
        if (h->backends[b].passive_down && h->backends[b].op == SST_DOWN)
            down++;
    return down + 1 <= allowed;
}

bool sst_health_passive(sst_health_t *h, size_t b, sst_passive_t sig, uint64_t now_ms)
{
    if (!sst__health_backend_valid(h, b) || (unsigned)sig >= SST_PASSIVE__COUNT)
        return false;
    const sst_backend_cfg_t *bc = &h->cfg->backends[b];
    const sst_health_cfg_t *hc = &bc->health;
    health_backend_t *hb = &h->backends[b];
    sst_reason_t reason = SST_REASON_NONE;

    /* Without active checks nothing could bring an ejected backend back. */
    if (!hc->enabled)
        return false;
    h->dirty = false;
    switch (sig) {
    case SST_PASSIVE_OK:
        break;
    case SST_PASSIVE_REFUSED:
        reason = SST_REASON_PASSIVE_REFUSED;
        break;
    case SST_PASSIVE_CONNECT_TIMEOUT:
        reason = SST_REASON_PASSIVE_CTOUT;
        break;
    case SST_PASSIVE_RESET:
        reason = SST_REASON_PASSIVE_RESET;
        break;
    case SST_PASSIVE_5XX:
        /* Not counted: a response head still arrived, which is what OK means. */
        if (hc->passive_5xx)
            reason = SST_REASON_PASSIVE_5XX;
        break;
    case SST_PASSIVE_TIMEOUT:
        /* Issue 15: a backend that accepts and then goes silent refuses nothing, so without
         * this only the probes would ever notice it. */
        reason = SST_REASON_PASSIVE_TIMEOUT;
        break;
    case SST_PASSIVE_ABORTED:
        /* A response cut short failed its client as surely as a reset before the head did;
         * probes that stop at the status line never see it (the bench's "reset" fault). */
        reason = SST_REASON_PASSIVE_ABORTED;
        break;
    case SST_PASSIVE__COUNT:
        return false;
    }
    if (reason == SST_REASON_NONE) {
        hb->passive_failures = 0;
        hb->passive_refused = 0;
        return false;
    }
    hb->passive_failures = sat_inc(hb->passive_failures);
    hb->passive_refused = sig == SST_PASSIVE_REFUSED ? sat_inc(hb->passive_refused) : 0;
    if (hb->op != SST_UP)
        return false;
    bool by_refused =
        hc->passive_fall_refused != 0 && hb->passive_refused >= hc->passive_fall_refused;
    bool by_any = hc->passive_fall != 0 && hb->passive_failures >= hc->passive_fall;
    if (!by_refused && !by_any)
        return false;
    if (!ejection_allowed(h, bc->region)) {
        /* Counters stay at the threshold: each further failure asks again. */
        hb->passive_ejections_refused++;
        return false;
    }

    char text[160] = "";
    text_append(text, sizeof(text), "%s (%u consecutive%s)", sst_reason_text(reason),
                by_refused ? hb->passive_refused : hb->passive_failures,
                by_refused ? " refused" : " failures");
    if (hb->force != SST_FORCE_NONE)
        text_append(text, sizeof(text), "; operational down, %s by operator",
                    hb->force == SST_FORCE_UP ? "forced up" : "forced down");
    health_cause_t cause = {
        .reason = reason,
        .text = text,
        .failures = hb->passive_failures,
        .announce = true,
    };
    hb->op = SST_DOWN;
    hb->passive_down = true;
    hb->boot_down = false;
    hb->passive_ejections++;
    /* Coming back takes `rise` fresh active successes. */
    hb->successes = 0;
    hb->failures = 0;
    hb->passive_failures = 0;
    hb->passive_refused = 0;
    h->dirty = true;
    backend_settle(h, b, now_ms, &cause);
    return h->dirty;
}

/* --- operator actions --------------------------------------------------------------------- */

static void set_force(sst_force_t *force, uint64_t *expires, char *reason_buf, size_t size,
                      sst_force_t value, const char *reason, uint64_t ttl_ms, uint64_t now_ms)
{
    *force = value;
    *expires = value != SST_FORCE_NONE && ttl_ms != 0 ? sat_add(now_ms, ttl_ms) : 0;
    sst__health_text_copy(reason_buf, size, value != SST_FORCE_NONE ? reason : NULL);
}

int sst_health_admin_region(sst_health_t *h, size_t r, sst_admin_op_t op, const char *reason,
                            uint64_t ttl_ms, uint64_t now_ms, bool *changed)
{
    char text[160];
    health_cause_t cause = {.reason = SST_REASON_OPERATOR, .text = text, .announce = true};

    if (changed != NULL)
        *changed = false;
    if (h == NULL || r >= h->cfg->n_regions || (unsigned)op > SST_ADMIN_CLEAR)
        return SST_EINVAL;
    health_region_t *hr = &h->regions[r];
    h->dirty = false;
    switch (op) {
    case SST_ADMIN_DRAIN:
        hr->drained = true;
        hr->drain_expires_ms = ttl_ms != 0 ? sat_add(now_ms, ttl_ms) : 0;
        sst__health_text_copy(hr->drain_reason, sizeof(hr->drain_reason), reason);
        admin_text(text, sizeof(text), "drain", reason, ttl_ms);
        region_settle(h, r, now_ms, &cause);
        break;
    case SST_ADMIN_UNDRAIN:
        if (!hr->drained)
            break;
        /* No failback hold: a drain never made the region DOWN, so nothing failed over
         * because of its health, and the operator asked for traffic now. */
        hr->drained = false;
        hr->drain_expires_ms = 0;
        hr->drain_reason[0] = '\0';
        admin_text(text, sizeof(text), "undrain", reason, 0);
        region_settle(h, r, now_ms, &cause);
        break;
    case SST_ADMIN_FORCE_UP:
    case SST_ADMIN_FORCE_DOWN: {
        sst_force_t f = op == SST_ADMIN_FORCE_UP ? SST_FORCE_UP : SST_FORCE_DOWN;
        set_force(&hr->force, &hr->force_expires_ms, hr->force_reason, sizeof(hr->force_reason), f,
                  reason, ttl_ms, now_ms);
        if (f == SST_FORCE_UP && hr->hold_until_ms != 0) {
            /* Forcing up means "route here now": it also ends a failback hold. */
            hr->hold_until_ms = 0;
            h->dirty = true;
        }
        admin_text(text, sizeof(text), force_verb(f), reason, ttl_ms);
        cause.allow_hold = f == SST_FORCE_DOWN;
        region_settle(h, r, now_ms, &cause);
        break;
    }
    case SST_ADMIN_CLEAR: {
        if (hr->force == SST_FORCE_NONE)
            break;
        char verb[32];
        snprintf(verb, sizeof(verb), "clear %s", force_verb(hr->force));
        set_force(&hr->force, &hr->force_expires_ms, hr->force_reason, sizeof(hr->force_reason),
                  SST_FORCE_NONE, NULL, 0, now_ms);
        admin_text(text, sizeof(text), verb, reason, 0);
        /* The failover drill's "restore": the region had been DOWN, so it gets a hold. */
        cause.allow_hold = true;
        region_settle(h, r, now_ms, &cause);
        break;
    }
    }
    if (changed != NULL)
        *changed = h->dirty;
    return 0;
}

int sst_health_admin_backend(sst_health_t *h, size_t b, sst_admin_op_t op, const char *reason,
                             uint64_t ttl_ms, uint64_t now_ms, bool *changed)
{
    char text[160];
    health_cause_t cause = {.reason = SST_REASON_OPERATOR, .text = text, .announce = true};
    sst_force_t f = SST_FORCE_NONE;

    if (changed != NULL)
        *changed = false;
    if (!sst__health_backend_valid(h, b) || (unsigned)op > SST_ADMIN_CLEAR)
        return SST_EINVAL;
    health_backend_t *hb = &h->backends[b];
    switch (op) {
    case SST_ADMIN_DRAIN:
    case SST_ADMIN_UNDRAIN:
        return SST_EINVAL; /* drain is a region action */
    case SST_ADMIN_FORCE_UP:
        f = SST_FORCE_UP;
        break;
    case SST_ADMIN_FORCE_DOWN:
        f = SST_FORCE_DOWN;
        break;
    case SST_ADMIN_CLEAR:
        if (hb->force == SST_FORCE_NONE)
            return 0;
        break;
    }
    h->dirty = false;
    if (f == SST_FORCE_NONE) {
        char verb[32];
        snprintf(verb, sizeof(verb), "clear %s", force_verb(hb->force));
        admin_text(text, sizeof(text), verb, reason, 0);
    } else {
        admin_text(text, sizeof(text), force_verb(f), reason, ttl_ms);
    }
    set_force(&hb->force, &hb->force_expires_ms, hb->force_reason, sizeof(hb->force_reason), f,
              reason, ttl_ms, now_ms);
    cause.successes = hb->successes;
    cause.failures = hb->failures;
    h->dirty = true;
    backend_settle(h, b, now_ms, &cause);
    if (changed != NULL)
        *changed = h->dirty;
    return 0;
}

/* --- time --------------------------------------------------------------------------------- */

static void next_deadline(uint64_t *next, uint64_t at)
{
    if (at != 0 && at < *next)
        *next = at;
}

bool sst_health_tick(sst_health_t *h, uint64_t now_ms, uint64_t *next_ms)
{
    uint64_t next = UINT64_MAX;
    char text[160];

    if (h == NULL) {
        if (next_ms != NULL)
            *next_ms = next;
        return false;
    }
    const sst_config_t *cfg = h->cfg;
    h->dirty = false;
    for (size_t b = 0; b < cfg->n_backends; b++) {
        health_backend_t *hb = &h->backends[b];
        if (hb->force == SST_FORCE_NONE || hb->force_expires_ms == 0 ||
            now_ms < hb->force_expires_ms)
            continue;
        text[0] = '\0';
        text_append(text, sizeof(text), "operator %s expired", force_verb(hb->force));
        if (hb->force_reason[0] != '\0')
            text_append(text, sizeof(text), ": %s", hb->force_reason);
        set_force(&hb->force, &hb->force_expires_ms, hb->force_reason, sizeof(hb->force_reason),
                  SST_FORCE_NONE, NULL, 0, now_ms);
        health_cause_t cause = {.reason = SST_REASON_TTL,
                                .text = text,
                                .successes = hb->successes,
                                .failures = hb->failures,
                                .announce = true};
        backend_settle(h, b, now_ms, &cause);
    }
    for (size_t r = 0; r < cfg->n_regions; r++) {
        health_region_t *hr = &h->regions[r];
        if (hr->force != SST_FORCE_NONE && hr->force_expires_ms != 0 &&
            now_ms >= hr->force_expires_ms) {
            text[0] = '\0';
            text_append(text, sizeof(text), "operator %s expired", force_verb(hr->force));
            if (hr->force_reason[0] != '\0')
                text_append(text, sizeof(text), ": %s", hr->force_reason);
            set_force(&hr->force, &hr->force_expires_ms, hr->force_reason, sizeof(hr->force_reason),
                      SST_FORCE_NONE, NULL, 0, now_ms);
            health_cause_t cause = {
                .reason = SST_REASON_TTL, .text = text, .announce = true, .allow_hold = true};
            region_settle(h, r, now_ms, &cause);
        }
        if (hr->drained && hr->drain_expires_ms != 0 && now_ms >= hr->drain_expires_ms) {
            text[0] = '\0';
            text_append(text, sizeof(text), "operator drain expired");
            if (hr->drain_reason[0] != '\0')
                text_append(text, sizeof(text), ": %s", hr->drain_reason);
            hr->drained = false;
            hr->drain_expires_ms = 0;
            hr->drain_reason[0] = '\0';
            health_cause_t cause = {.reason = SST_REASON_TTL, .text = text, .announce = true};
            region_settle(h, r, now_ms, &cause);
        }
        if (hr->hold_until_ms != 0 && now_ms >= hr->hold_until_ms) {
            text[0] = '\0';
            text_append(text, sizeof(text), "failback delay ");
            text_append_duration(text, sizeof(text), cfg->regions[r].failback_delay_ms);
            text_append(text, sizeof(text), " elapsed");
            hr->hold_until_ms = 0;
            health_cause_t cause = {.reason = SST_REASON_FAILBACK, .text = text, .announce = true};
            region_settle(h, r, now_ms, &cause);
        }
    }
    for (size_t b = 0; b < cfg->n_backends; b++)
        if (h->backends[b].force != SST_FORCE_NONE)
            next_deadline(&next, h->backends[b].force_expires_ms);
    for (size_t r = 0; r < cfg->n_regions; r++) {
        const health_region_t *hr = &h->regions[r];
        if (hr->force != SST_FORCE_NONE)
            next_deadline(&next, hr->force_expires_ms);
        if (hr->drained)
            next_deadline(&next, hr->drain_expires_ms);
        next_deadline(&next, hr->hold_until_ms);
    }
    if (next_ms != NULL)
        *next_ms = next;
    return h->dirty;
}

uint64_t sst_health_probe_delay(const sst_health_t *h, size_t b, bool first, uint64_t *rng)
{
    if (!sst__health_backend_valid(h, b) || rng == NULL)
        return 1;
    const sst_health_cfg_t *hc = &h->cfg->backends[b].health;
    const health_backend_t *hb = &h->backends[b];
    uint64_t interval = hc->interval_ms != 0 ? hc->interval_ms : 1;

    if (first) {
        /* A guessed state is probed at once (spread over a short window so that a start does
         * not connect to every backend in the same millisecond): until then a failover region
         * that starts DOWN cannot take traffic, and a dead primary that starts UP keeps it. A
         * known state keeps the wide spread. */
        uint64_t spread = interval;
        if (hb->awaiting_probe && spread > SST_HEALTH_FIRST_WINDOW_MS)
            spread = SST_HEALTH_FIRST_WINDOW_MS;
        return sst_rand_next(rng) % spread;
    }
    bool changing = hb->awaiting_probe || (hb->op == SST_UP ? hb->failures > 0 : hb->successes > 0);
    uint64_t d = interval;
    if (changing && hc->fast_interval_ms != 0 && hc->fast_interval_ms < interval)
        d = hc->fast_interval_ms;
    uint64_t j = hc->jitter_ms;
    if (j > 0) {
        if (j > UINT64_MAX / 4)
            j = UINT64_MAX / 4;
        uint64_t off = sst_rand_next(rng) % (2 * j + 1); /* [0, 2j] -> [-j, +j] */
        d = sat_add(d, off);
        d = d > j ? d - j : 0;
    }
    return d < 1 ? 1 : d;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

/* Backend index in prev's config with the same address in a region of the same name. */
static int prev_backend(const sst_health_t *prev, const sst_config_t *cfg, size_t b)
{
    const sst_config_t *pc = prev->cfg;
    const sst_backend_cfg_t *bc = &cfg->backends[b];
    const char *rname = cfg->regions[bc->region].name;

    for (size_t i = 0; i < pc->n_backends; i++) {
        const sst_backend_cfg_t *pb = &pc->backends[i];
        if (strcmp(pb->addr.text, bc->addr.text) == 0 && pc->regions[pb->region].name != NULL &&
            rname != NULL && strcmp(pc->regions[pb->region].name, rname) == 0)
            return (int)i;
    }
    return -1;
}

static int prev_region(const sst_health_t *prev, const char *name)
{
    const sst_config_t *pc = prev->cfg;
    for (size_t i = 0; i < pc->n_regions; i++)
        if (name != NULL && pc->regions[i].name != NULL && strcmp(pc->regions[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool config_shape_ok(const sst_config_t *cfg)
{
    if (cfg->n_regions > SST_MAX_REGIONS || cfg->n_backends > SST_MAX_BACKENDS ||
        cfg->n_routes > SST_MAX_ROUTES)
        return false;
    for (size_t r = 0; r < cfg->n_regions; r++) {
        const sst_region_cfg_t *rc = &cfg->regions[r];
        if (rc->first_backend > cfg->n_backends ||
            rc->n_backends > cfg->n_backends - rc->first_backend)
            return false;
    }
    for (size_t b = 0; b < cfg->n_backends; b++)
        if (cfg->backends[b].region >= cfg->n_regions)
            return false;
    return true;
}

int sst_health_create(const sst_config_t *cfg, const sst_health_t *prev, uint64_t now_ms,
                      sst_health_event_cb cb, void *opaque, sst_health_t **out)
{
    if (cfg == NULL || out == NULL || !config_shape_ok(cfg))
        return SST_EINVAL;
    sst_health_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return SST_ENOMEM;
    h->cfg = cfg;
    h->cb = cb;
    h->opaque = opaque;

    for (size_t b = 0; b < cfg->n_backends; b++) {
        int j = prev != NULL ? prev_backend(prev, cfg, b) : -1;
        if (j >= 0)
            h->backends[b] = prev->backends[j]; /* state, counters, force and its expiry */
        else
            backend_reset(h, b, now_ms);
    }
    for (size_t r = 0; r < cfg->n_regions; r++) {
        health_region_t *hr = &h->regions[r];
        int j = prev != NULL ? prev_region(prev, cfg->regions[r].name) : -1;
        if (j >= 0) {
            char text[160] = "config reload: ";
            *hr = prev->regions[j]; /* state, forces, drain, hold, with their expiry times */
            hr->n_up = region_count_up(h, r);
            region_count_text(h, r, text, sizeof(text));
            health_cause_t cause = {.reason = SST_REASON_RELOAD, .text = text, .allow_hold = true};
            region_settle(h, r, now_ms, &cause);
            continue;
        }
        /* A new region starts from its backends without an event; see docs/health-checks.md. */
        hr->n_up = region_count_up(h, r);
        hr->eff = region_effective(h, r);
        hr->ever_up = hr->eff == SST_UP;
        hr->since_ms = now_ms;
        hr->reason = SST_REASON_INIT;
        sst__health_text_copy(hr->reason_text, sizeof(hr->reason_text), "initial state: ");
        region_count_text(h, r, hr->reason_text, sizeof(hr->reason_text));
    }
    *out = h;
    return 0;
}

void sst_health_destroy(sst_health_t *h)
{
    free(h);
}
