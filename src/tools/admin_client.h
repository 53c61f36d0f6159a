/* A small blocking HTTP/1.1 client for the command-line tools (ctl, drill): one request per
 * connection against one deadline, the response parsed by http1.c. Never used inside the
 * proxy's loops. Not API. */
#ifndef SST_TOOLS_ADMIN_CLIENT_H
#define SST_TOOLS_ADMIN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "sidestep/config.h"

typedef struct sst_hc_reply_s {
    uint16_t status;
    char *body; /* NUL-terminated, malloc'd; body_len excludes the NUL */
    size_t body_len;
    char region[64];        /* X-Sidestep-Region, "" when absent */
    char content_type[128]; /* "" when absent */
} sst_hc_reply_t;

typedef struct sst_hc_req_s {
    const sst_addr_t *addr;
    const char *host; /* Host header value */
    const char *method;
    const char *target;
    const char *token; /* Authorization: Bearer, NULL for none */
    const char *body;  /* NULL for none */
    size_t body_len;
    const char *content_type; /* for a body; NULL: application/json */
    uint64_t timeout_ms;      /* the whole exchange */
    size_t max_body;          /* bigger responses fail with SST_E2BIG */
} sst_hc_req_t;

/* One request on a fresh connection with Connection: close; blocks up to timeout_ms. Retries
 * interrupted system calls (a signal does not cut a call short). Returns 0 and fills *out (free
 * with sst__hc_reply_free), or a negative error with a message in err. */
int sst__hc_request(const sst_hc_req_t *req, sst_hc_reply_t *out, char *err, size_t err_size);
void sst__hc_reply_free(sst_hc_reply_t *r);

#endif
