/* libFuzzer target: sst_config_load_string over arbitrary YAML. A loaded config must pass the
 * invariants the rest of sidestep relies on; a rejected one must come with a diagnostic. No
 * DNS and no file access: see the wrapped calls below. */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz_check.h"
#include "sidestep/config.h"
#include "sidestep/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
void __wrap_freeaddrinfo(struct addrinfo *ai);
FILE *__wrap_fopen(const char *path, const char *mode);

/* The loader resolves host names with a blocking getaddrinfo and reads admin.token_file. The
 * fuzz build must touch neither the network nor the file system, and src/ stays as it is: this
 * target links with -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo,--wrap=fopen (CMakeLists.txt),
 * so inside sst_core those calls land here. "localhost" resolves to 127.0.0.1, any other name
 * fails as unknown, and no file opens. */
typedef struct fake_ai_s {
    struct addrinfo ai;
    struct sockaddr_in sin;
} fake_ai_t;

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (node == NULL || strcmp(node, "localhost") != 0)
        return EAI_NONAME;
    fake_ai_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return EAI_MEMORY;
    f->sin.sin_family = AF_INET;
    f->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->sin.sin_port = htons((uint16_t)(service != NULL ? atoi(service) : 0));
    f->ai.ai_family = AF_INET;
    f->ai.ai_socktype = hints != NULL ? hints->ai_socktype : SOCK_STREAM;
    f->ai.ai_addr = (struct sockaddr *)&f->sin;
    f->ai.ai_addrlen = sizeof(f->sin);
    *res = &f->ai;
    return 0;
}

void __wrap_freeaddrinfo(struct addrinfo *ai)
{
    free(ai); /* the fake_ai_t starts with its addrinfo */
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    errno = ENOENT;
    return NULL;
}

static void check_config(const sst_config_t *cfg)
{
    FUZZ_CHECK(cfg->n_listeners >= 1 && cfg->n_listeners <= SST_MAX_LISTENERS);
    FUZZ_CHECK(cfg->n_regions >= 1 && cfg->n_regions <= SST_MAX_REGIONS);
    FUZZ_CHECK(cfg->n_backends >= cfg->n_regions && cfg->n_backends <= SST_MAX_BACKENDS);
    FUZZ_CHECK(cfg->n_routes >= 1 && cfg->n_routes <= SST_MAX_ROUTES);
    FUZZ_CHECK(cfg->local_region == SIZE_MAX || cfg->local_region < cfg->n_regions);
    size_t next = 0;
    for (size_t r = 0; r < cfg->n_regions; r++) {
        const sst_region_cfg_t *reg = &cfg->regions[r];
        FUZZ_CHECK(reg->name != NULL && reg->name[0] != 0);
        FUZZ_CHECK(reg->first_backend == next && reg->n_backends >= 1);
        FUZZ_CHECK(reg->min_healthy >= 1 &&
                   reg->min_healthy <= (reg->min_healthy_pct ? 100 : reg->n_backends));
        for (size_t b = reg->first_backend; b < reg->first_backend + reg->n_backends; b++) {
            FUZZ_CHECK(cfg->backends[b].region == r);
            FUZZ_CHECK(cfg->backends[b].weight >= 1);
            FUZZ_CHECK(cfg->backends[b].addr.port != 0);
            const sst_health_cfg_t *h = &cfg->backends[b].health;
            FUZZ_CHECK(h->timeout_ms <= h->interval_ms);
            FUZZ_CHECK(h->rise >= 1 && h->fall >= 1);
        }
        next += reg->n_backends;
        if (reg->url != NULL)
            FUZZ_CHECK(strncmp(reg->url, "http://", 7) == 0 ||
                       strncmp(reg->url, "https://", 8) == 0);
    }
    FUZZ_CHECK(next == cfg->n_backends);
    for (size_t r = 0; r < cfg->n_regions; r++)
        FUZZ_CHECK(cfg->regions[r].send_proxy_protocol <= SST_SEND_PROXY_V2);
    /* a PROXY listener always names who may send the header; another names nobody */
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sst_listener_cfg_t *l = &cfg->listeners[i];
        FUZZ_CHECK(l->proxy_protocol ? l->n_proxy_protocol_from >= 1 &&
                                           l->n_proxy_protocol_from <= SST_MAX_TRUSTED
                                     : l->n_proxy_protocol_from == 0);
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const sst_route_cfg_t *rt = &cfg->routes[i];
        FUZZ_CHECK(rt->primary < cfg->n_regions);
        FUZZ_CHECK(rt->path_prefix != NULL && rt->path_prefix[0] == '/');
        FUZZ_CHECK(rt->redirect_status == 307 || rt->redirect_status == 308);
        for (size_t f = 0; f < rt->n_failover; f++)
            FUZZ_CHECK(rt->failover[f] < cfg->n_regions && rt->failover[f] != rt->primary);
    }
    const sst_limits_cfg_t *l = &cfg->limits;
    FUZZ_CHECK(l->header_field <= l->header_bytes);
    FUZZ_CHECK(l->upstream_idle <= l->upstream_connections);
    FUZZ_CHECK(l->headers >= 1 && l->connections >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    memset(&diag, 0, sizeof(diag));
    int rc = sst_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &diag);
    if (rc == 0) {
        FUZZ_CHECK(cfg != NULL);
        check_config(cfg);
        sst_config_unref(cfg);
    } else {
        char msg[1024];
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(sst_diag_format(&diag, msg, sizeof(msg)) != NULL);
        FUZZ_CHECK(msg[0] != 0);
    }
    return 0;
}
