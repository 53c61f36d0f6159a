/* The Strict-Transport-Security header line (RFC 6797 section 6.1) from a listener's hsts
 * block. Pure: no OpenSSL, no allocation; the caller adds it to answers sent over TLS only. */
#include <stdio.h>

#include "sidestep/tls.h"

size_t sst_tls_hsts_header(const sst_hsts_cfg_t *h, char *buf, size_t size)
{
    int n;

    if (h == NULL || !h->enabled || buf == NULL || size == 0)
        return 0;
    /* the directive names as browsers and the preload list spell them */
    n = snprintf(buf, size, "Strict-Transport-Security: max-age=%llu%s%s\r\n",
                 (unsigned long long)h->max_age_s,
                 h->include_subdomains ? "; includeSubDomains" : "", h->preload ? "; preload" : "");
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
