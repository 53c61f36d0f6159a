/* The embedded demo default that `sidestep` runs without a config file. It goes through the
 * same loader as any file, and its text doubles as a short example config. */
#include "sidestep/config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidestep/error.h"

const char sst_config_demo_yaml[] =
    "# sidestep demo: two regions on loopback. us-east (this instance) proxies to two local\n"
    "# backends; when both fail their health checks, requests are answered with a 307 to\n"
    "# eu-west, so clients re-send POST/PUT bodies there unchanged.\n"
    "listen:\n"
    "  - 127.0.0.1:8080\n"
    "admin:\n"
    "  address: 127.0.0.1:9901      # loopback only, so no token is needed\n"
    "local_region: us-east\n"
    "\n"
    "health:                        # defaults for every region's backends\n"
    "  path: /healthz\n"
    "  interval: 1s\n"
    "  timeout: 500ms\n"
    "  rise: 2                      # consecutive successes to come back up\n"
    "  fall: 2                      # consecutive failures to go down\n"
    "\n"
    "regions:\n"
    "  - name: us-east\n"
    "    url: http://127.0.0.1:8080\n"
    "    backends: [127.0.0.1:9001, 127.0.0.1:9002]\n"
    "    failback_delay: 5s         # stay on eu-west this long after us-east recovers\n"
    "  - name: eu-west\n"
    "    url: http://127.0.0.1:9101  # where redirected clients go\n"
    "    backends: [127.0.0.1:9101]\n"
    "    failback_delay: 5s\n"
    "\n"
    "routes:\n"
    "  - name: default\n"
    "    match: {host: \"*\", path_prefix: /}\n"
    "    primary: us-east\n"
    "    failover: [eu-west]\n"
    "    redirect_status: 307\n"
    "\n"
    "log:\n"
    "  access: stderr\n"
    "  format: text\n";

static int config_demo_load(const char *yaml, size_t len, sst_config_t **out, sst_diag_t *diag)
{
    sst_config_t *cfg = NULL;
    int rc = sst_config_load_string("<embedded demo>", yaml, len, &cfg, diag);

    if (rc != 0)
        return rc;
    cfg->demo = true;
    *out = cfg;
    return 0;
}

int sst_config_demo(sst_config_t **out, sst_diag_t *diag)
{
    if (out == NULL)
        return SST_EINVAL;
    return config_demo_load(sst_config_demo_yaml, strlen(sst_config_demo_yaml), out, diag);
}

/* A YAML double-quoted scalar of s into out; false when it does not fit or s has a control
 * character. */
static bool config_demo_quote(const char *s, char *out, size_t size)
{
    size_t o = 0;
    if (size < 3)
        return false;
    out[o++] = '"';
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || o + 4 > size)
            return false;
        if (*s == '"' || *s == '\\')
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o++] = '"';
    out[o] = '\0';
    return true;
}

int sst_config_demo_tls(const char *cert, const char *key, sst_config_t **out, sst_diag_t *diag)
{
    static const char plain[] = "  - 127.0.0.1:8080\n";
    const char *at = strstr(sst_config_demo_yaml, plain);
    char qcert[1100], qkey[1100];

    if (out == NULL || cert == NULL || key == NULL || at == NULL ||
        !config_demo_quote(cert, qcert, sizeof(qcert)) ||
        !config_demo_quote(key, qkey, sizeof(qkey)))
        return SST_EINVAL;
    size_t head = (size_t)(at - sst_config_demo_yaml) + sizeof(plain) - 1;
    size_t cap = strlen(sst_config_demo_yaml) + strlen(qcert) + strlen(qkey) + 256;
    char *yaml = malloc(cap);
    if (yaml == NULL)
        return SST_ENOMEM;
    int n = snprintf(yaml, cap,
                     "%.*s  - address: 127.0.0.1:8443      # HTTPS, self-signed (the demo's)\n"
                     "    tls:\n      certificates:\n        - {cert: %s, key: %s}\n%s",
                     (int)head, sst_config_demo_yaml, qcert, qkey, sst_config_demo_yaml + head);
    int rc = n > 0 && (size_t)n < cap ? config_demo_load(yaml, (size_t)n, out, diag) : SST_E2BIG;
    free(yaml);
    return rc;
}
