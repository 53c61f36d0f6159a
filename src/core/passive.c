/* Passive health signals (passive.h): which outcomes of real traffic are signals, and the
 * single-producer ring that carries them to the control thread without a lock. */
#include "core/passive.h"

#include <string.h>

void sst__passive_init(sst_passive_ring_t *r, uv_async_t *notify)
{
    memset(r->msgs, 0, sizeof(r->msgs));
    memset(r->bad, 0, sizeof(r->bad));
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->dropped, 0);
    r->notify = notify;
}

sst_passive_t sst__passive_of_failure(sst_m_upfail_t kind)
{
    switch (kind) {
    case SST_M_UP_REFUSED:
        return SST_PASSIVE_REFUSED;
    case SST_M_UP_CONNECT_TIMEOUT:
        return SST_PASSIVE_CONNECT_TIMEOUT;
    case SST_M_UP_CONNECT_ERROR:
    case SST_M_UP_RESET:
    case SST_M_UP_BAD_RESPONSE:
        return SST_PASSIVE_RESET;
    case SST_M_UP_TIMEOUT:
    case SST_M_UP_TRY_TIMEOUT:
        /* issue 15: a backend that accepts and then says nothing refuses nothing either */
        return SST_PASSIVE_TIMEOUT;
    case SST_M_UP_ABORTED:
        return SST_PASSIVE_ABORTED;
    case SST_M_UP_FAILS:
        return SST_PASSIVE_OK; /* not a passive failure signal */
    }
    return SST_PASSIVE_OK;
}

bool sst__passive_of_response(unsigned status, bool passive_5xx, bool was_bad, bool complete,
                              sst_passive_t *sig)
{
    bool counted_5xx = status >= 500 && passive_5xx;
    if (!complete) {
        if (!counted_5xx)
            return false;
        *sig = SST_PASSIVE_5XX;
        return true;
    }
    if (!was_bad || counted_5xx)
        return false;
    *sig = SST_PASSIVE_OK;
    return true;
}

static void passive_push(sst_passive_ring_t *r, uint64_t config_version, size_t backend,
                         sst_passive_t sig)
{
    uint_fast32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint_fast32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= SST_PASSIVE_RING) {
        atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
        return;
    }
    r->msgs[head % SST_PASSIVE_RING] = (sst_passive_msg_t){
        .config_version = config_version,
        .backend = (uint16_t)backend,
        .signal = (uint8_t)sig,
    };
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    uv_async_send(r->notify);
}

void sst__passive_failure(sst_passive_ring_t *r, const sst_config_t *cfg, size_t backend,
                          sst_m_upfail_t kind)
{
    sst_passive_t sig = sst__passive_of_failure(kind);
    if (sig == SST_PASSIVE_OK || backend >= SST_MAX_BACKENDS)
        return;
    passive_push(r, cfg->version, backend, sig);
    r->bad[backend] = 1;
}

void sst__passive_response(sst_passive_ring_t *r, const sst_config_t *cfg, size_t backend,
                           unsigned status, bool complete)
{
    sst_passive_t sig;
    if (backend >= cfg->n_backends ||
        !sst__passive_of_response(status, cfg->backends[backend].health.passive_5xx,
                                  r->bad[backend] != 0, complete, &sig))
        return;
    passive_push(r, cfg->version, backend, sig);
    r->bad[backend] = sig != SST_PASSIVE_OK;
}

void sst__passive_forget(sst_passive_ring_t *r)
{
    memset(r->bad, 0, sizeof(r->bad));
}

bool sst__passive_pop(sst_passive_ring_t *r, sst_passive_msg_t *out)
{
    uint_fast32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint_fast32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail == head)
        return false;
    *out = r->msgs[tail % SST_PASSIVE_RING];
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}
