/* Answers sidestep writes itself: the redirect and the CORS preflight answer as vectors of
 * prepared parts and request slices (no copy, no allocation), and the short plain-text error
 * responses. Status lines take their reason phrases from sst_h1_status_text, the one table. */
#include "core/respond.h"

#include <stdio.h>
#include <string.h>

#include "http/http1.h"

static const char https_mid[] =
    "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n";
static const char https_body[] = "Redirecting to HTTPS.\n";
static const char cors_pre[] = "Access-Control-Allow-Origin: ";
static const char cors_post[] = "\r\nVary: Origin\r\n";
static const char cors_post_cred[] =
    "\r\nVary: Origin\r\nAccess-Control-Allow-Credentials: true\r\n";

static inline uv_buf_t iov_s(sst_str_t s)
{
    return uv_buf_init((char *)s.base, (unsigned)s.len);
}

static inline uv_buf_t iov_c(const char *s, size_t len)
{
    return uv_buf_init((char *)s, (unsigned)len);
}

size_t sst__redirect_iov(const sst_prep_t *prep, const sst_decision_t *d, bool https,
                         sst_tail_t tail, bool head_only, uv_buf_t *iov, size_t max)
{
    size_t n = 0;
    bool cors = d->cors_origin.len > 0;
    if (max < d->n_location + 8 || (!https && d->region >= SST_MAX_REGIONS) || d->n_location == 0)
        return 0;
    if (https) {
        iov[n++] = iov_s(prep->https_head[sst__redirect_status_index(d->status)]);
        for (size_t i = 0; i < d->n_location; i++)
            iov[n++] = iov_s(d->location[i]);
        iov[n++] = iov_c(https_mid, sizeof(https_mid) - 1);
    } else {
        /* location[0] is the region's url: it is part of the prepared head */
        iov[n++] = iov_s(prep->redirect_head[d->region][sst__redirect_status_index(d->status)]);
        for (size_t i = 1; i < d->n_location; i++)
            if (d->location[i].len > 0)
                iov[n++] = iov_s(d->location[i]);
        if (!cors && !head_only) {
            iov[n++] = iov_s(prep->redirect_rest[d->region][tail]);
            return n;
        }
        iov[n++] = iov_s(prep->redirect_mid[d->region]);
    }
    if (cors) {
        iov[n++] = iov_c(cors_pre, sizeof(cors_pre) - 1);
        iov[n++] = iov_s(d->cors_origin);
        if (d->cors_credentials)
            iov[n++] = iov_c(cors_post_cred, sizeof(cors_post_cred) - 1);
        else
            iov[n++] = iov_c(cors_post, sizeof(cors_post) - 1);
    }
    iov[n++] = iov_s(sst_h1_tails[tail]);
    if (head_only)
        return n;
    if (https)
        iov[n++] = iov_c(https_body, sizeof(https_body) - 1);
    else
        iov[n++] = iov_s(prep->redirect_body[d->region]);
    return n;
}

/* The preflight answer (docs/routing.md §8). Max-Age is short on purpose: this answer stands
 * in for the application's own CORS policy only while the route redirects, and a browser
 * that cached it longer would skip the application's preflight after the failback. 5 s is
 * the Fetch standard's default when the field is absent, so sidestep never asks a browser to
 * trust it longer than the browser would anyway; sending it keeps that explicit. */
static const char pf_status[] = "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: ";
static const char pf_methods[] = "\r\nVary: Origin\r\nAccess-Control-Allow-Methods: ";
static const char pf_headers[] = "\r\nAccess-Control-Allow-Headers: ";
static const char pf_max_age[] = "\r\nAccess-Control-Max-Age: 5\r\n";
static const char pf_cred[] = "Access-Control-Allow-Credentials: true\r\n";
static const char pf_region[] = "X-Sidestep-Region: ";
static const char pf_eol[] = "\r\n";

size_t sst__preflight_iov(const sst_decision_t *d, sst_str_t region, sst_tail_t tail, uv_buf_t *iov,
                          size_t max)
{
    size_t n = 0;
    if (max < SST_PREFLIGHT_IOV || !d->preflight || d->cors_origin.len == 0 ||
        d->cors_method.len == 0 || (unsigned)tail >= SST_TAILS)
        return 0;
    /* RFC 9110 §8.6: a 204 carries no Content-Length and no body */
    iov[n++] = iov_c(pf_status, sizeof(pf_status) - 1);
    iov[n++] = iov_s(d->cors_origin);
    iov[n++] = iov_c(pf_methods, sizeof(pf_methods) - 1);
    iov[n++] = iov_s(d->cors_method);
    if (d->cors_headers.len > 0) {
        iov[n++] = iov_c(pf_headers, sizeof(pf_headers) - 1);
        iov[n++] = iov_s(d->cors_headers);
    }
    iov[n++] = iov_c(pf_max_age, sizeof(pf_max_age) - 1);
    if (d->cors_credentials)
        iov[n++] = iov_c(pf_cred, sizeof(pf_cred) - 1);
    if (region.len > 0) {
        iov[n++] = iov_c(pf_region, sizeof(pf_region) - 1);
        iov[n++] = iov_s(region);
        iov[n++] = iov_c(pf_eol, sizeof(pf_eol) - 1);
    }
    iov[n++] = iov_s(sst_h1_tails[tail]);
    return n;
}

size_t sst__error_response(char *buf, size_t size, unsigned status, const char *reason,
                           uint64_t retry_after_s, bool close, bool http10_keepalive,
                           bool head_only)
{
    char body[320];
    char extra[128] = "";
    const char *text = sst_h1_status_text(status);
    int bl = snprintf(body, sizeof(body), "%u %s: %.240s\n", status, text,
                      reason != NULL ? reason : text);
    if (bl < 0)
        bl = 0;
    if ((size_t)bl >= sizeof(body))
        bl = (int)sizeof(body) - 1;
    if (status == 503 && retry_after_s > 0)
        snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n", (unsigned long long)retry_after_s);
    else if (status == 405)
        snprintf(extra, sizeof(extra), "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n");
    int n = snprintf(buf, size,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Cache-Control: no-store\r\nContent-Length: %d\r\n%s%s\r\n%.*s",
                     status, text, bl, extra,
                     close              ? "Connection: close\r\n"
                     : http10_keepalive ? "Connection: keep-alive\r\n"
                                        : "",
                     head_only ? 0 : bl, body);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}
