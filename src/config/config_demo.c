/* The embedded demo default that `sidestep` runs without a config file. It goes through the
 * same loader as any file, and its text doubles as a short example config. */
#include "sidestep/config.h"

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

int sst_config_demo(sst_config_t **out, sst_diag_t *diag)
{
    sst_config_t *cfg = NULL;
    int rc;

    if (out == NULL)
        return SST_EINVAL;
    rc = sst_config_load_string("<embedded demo>", sst_config_demo_yaml,
                                strlen(sst_config_demo_yaml), &cfg, diag);
    if (rc != 0)
        return rc;
    cfg->demo = true;
    *out = cfg;
    return 0;
}
