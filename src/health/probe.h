/* Active HTTP/1.1 health probes on a libuv loop: one timer per backend schedules probes and
 * bounds each one, one TCP handle per attempt (with the TLS engine for a region with tls).
 * Results go to a callback; the prober never changes health state and never blocks the loop. */
#ifndef SST_PROBE_H
#define SST_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/tls.h"

/* Body bytes searched for expect_body; a substring not found within them is a mismatch. */
#define SST_PROBE_BODY_SCAN_MAX (64 * 1024)
/* Bytes a response head may take before the probe fails with L7RSP. */
#define SST_PROBE_HEAD_MAX      (64 * 1024)

typedef struct sst_prober_s sst_prober_t;

/* One finished probe of backend index `backend`. `res` is valid during the call only. Runs on
 * the loop thread, never from inside sst_prober_start/stop. The callback may call
 * sst_prober_stop (then no further callback runs). */
typedef void (*sst_probe_cb)(void *opaque, size_t backend, const sst_probe_result_t *res);
typedef void (*sst_prober_done_cb)(void *arg);

/* Starts probing every backend of `cfg` whose health.enabled is set. Each probe connects to the
 * backend's resolved address, sends
 *   METHOD PATH HTTP/1.1 / Host: HOST / User-Agent: sidestep-health / Connection: close
 * and judges the response head (status within health.expect) and, with expect_body, the first
 * SST_PROBE_BODY_SCAN_MAX body bytes; connect and the whole exchange are bounded by
 * health.timeout_ms. A backend of a region with tls is probed over TLS with the region's
 * client context from `tls` (the contexts built for cfg; a reference is taken): a failed
 * handshake is L6TLS (the detail names the reason: "unknown_ca: ..."), one that does not
 * finish in time L6TOUT. After each result the callback runs and the next probe is scheduled with
 * sst_health_probe_delay(h, ...), so `h` should have been fed the result by then; the first
 * probe of each backend is spread with first=true. `seed` seeds the xorshift64 RNG (0 picks a
 * fixed non-zero seed).
 * `loop`, `cfg` and `h` are borrowed: `cfg` and `h` must describe the same config and stay
 * valid until sst_prober_stop returns (the prober reads neither afterwards).
 * Returns 0 and sets *out, or SST_EINVAL (NULL argument, malformed method/path/host, backend
 * without an address, a TLS region without its context in `tls`) or SST_ENOMEM; on failure nothing
 * was started and no callback runs. */
int sst_prober_start(uv_loop_t *loop, const sst_config_t *cfg, const sst_health_t *h,
                     const sst_tls_set_t *tls, uint64_t seed, sst_probe_cb cb, void *opaque,
                     sst_prober_t **out);

/* Carries the probe schedule over a reload. For every backend `p` probes that `prev` probed
 * too (the same address in a region of the same name, which is how sst_health_create carries
 * state), the first probe is moved to when `prev` would have probed it next, at most the
 * backend's new interval from now; a probe `prev` has in flight is lost when `prev` stops, so
 * that backend is probed again at once. Backends new to `p` keep the first-probe spread of
 * sst_prober_start. Call right after sst_prober_start and before stopping `prev` (NULL is
 * ignored); `prev` is only read. */
void sst_prober_carry(sst_prober_t *p, const sst_prober_t *prev);

/* Sets *ms to the time until the next probe of backend index `backend` starts, 0 when one is
 * in flight. Returns 0, or SST_ENOENT when `p` does not probe that backend. */
int sst_prober_due_in(const sst_prober_t *p, size_t backend, uint64_t *ms);

/* Stops all probing: in-flight probes are abandoned without a result and every handle is
 * closed. From its return on, no probe callback runs and neither cfg nor h is read. `done`
 * (may be NULL) runs exactly once, later from the loop, after the last close callback, when
 * the prober has been freed. Idempotent: later calls do nothing (their `done` never runs).
 * Safe from inside the probe callback. */
void sst_prober_stop(sst_prober_t *p, sst_prober_done_cb done, void *arg);

#endif
