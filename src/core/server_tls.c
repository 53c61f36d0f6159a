/* TLS housekeeping on the control loop: a one-minute timer that rotates the in-memory session
 * ticket keys when their interval has passed, so a quiet listener's keys rotate on time too
 * (handshakes also catch up by themselves). The key store is shared by every worker; the timer
 * only takes its mutex. Never on the request path. */
#include "core/server_int.h"

#include <stdlib.h>

#include "sidestep/error.h"
#include "sidestep/log.h"
#include "sidestep/tls.h"

#define TLS_TICK_MS (60 * 1000)

static void server_tls_on_tick(uv_timer_t *t)
{
    sst_server_t *s = t->data;
    if (s == NULL || s->view == NULL)
        return;
    unsigned made = sst_tls_tickets_tick(sst_tls_set_tickets(s->view->prep->tls));
    if (made > 0)
        sst_info("session ticket keys rotated (%u new)", made);
}

int sst__server_tls_start(sst_server_t *s)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return SST_ENOMEM;
    uv_timer_init(s->loop, t); /* cannot fail: it allocates nothing */
    t->data = s;
    uv_timer_start(t, server_tls_on_tick, TLS_TICK_MS, TLS_TICK_MS);
    uv_unref((uv_handle_t *)t); /* housekeeping never keeps the loop alive */
    s->tls_timer = t;
    return 0;
}

static void server_tls_on_closed(uv_handle_t *h)
{
    free(h); /* the timer owns itself once closing: the server may be gone by now */
}

void sst__server_tls_stop(sst_server_t *s)
{
    uv_timer_t *t = s->tls_timer;
    if (t == NULL)
        return;
    s->tls_timer = NULL;
    t->data = NULL;
    uv_close((uv_handle_t *)t, server_tls_on_closed);
}
