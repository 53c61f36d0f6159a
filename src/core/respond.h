/* Answers sidestep writes itself: redirects and CORS preflight answers as vectors of prepared
 * parts and request slices (no copy, no allocation), and short plain-text error answers. Pure:
 * no socket, no clock. */
#ifndef SST_CORE_RESPOND_H
#define SST_CORE_RESPOND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/view.h"
#include "http/h1_write.h"
#include "sidestep/route.h"
#include "sidestep/str.h"

/* The redirect of decision `d` (a region's, or with `https` the listener's https enforcement)
 * into iov[0..max): status line, Location parts, the prepared fields, `tail`, the short body
 * (none when `head_only`: the answer to a HEAD request, RFC 9110 §9.3.2). Buffers point into
 * prep and the decision. Returns the number of buffers, or 0 when max is too small or d names
 * no region. */
size_t sst__redirect_iov(const sst_prep_t *prep, const sst_decision_t *d, bool https,
                         sst_tail_t tail, bool head_only, uv_buf_t *iov, size_t max);
/* The 204 answer to a CORS preflight of a redirected route (d->preflight): the CORS fields of
 * the decision, X-Sidestep-Region when `region` is not empty, then `tail`. The buffers point
 * into static storage and the decision's slices (the request's head). Returns the number of
 * buffers, or 0 when `max` is below SST_PREFLIGHT_IOV or d is no preflight. */
#define SST_PREFLIGHT_IOV 12
size_t sst__preflight_iov(const sst_decision_t *d, sst_str_t region, sst_tail_t tail, uv_buf_t *iov,
                          size_t max);
/* A short plain-text answer with `status` into buf: the reason phrase, `reason` in the body,
 * Retry-After for a 503 with retry_after_s, Allow for a 405, the connection field (close,
 * HTTP/1.0 keep-alive or none). Returns the length (truncated to size - 1 at worst). */
size_t sst__error_response(char *buf, size_t size, unsigned status, const char *reason,
                           uint64_t retry_after_s, bool close, bool http10_keepalive,
                           bool head_only);

#endif
