/* The configuration: YAML text in, one validated, immutable sst_config_t out. Loading never
 * aborts on malformed input; every error names the file, the line and the key. Nothing here
 * opens sockets or reads clocks; see docs/configuration.md for every key and its default. */
#ifndef SST_CONFIG_H
#define SST_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Hard bounds that keep every table fixed-size; the loader rejects configs beyond them. */
#define SST_MAX_REGIONS      32
#define SST_MAX_BACKENDS     256 /* across all regions */
#define SST_MAX_ROUTES       64
#define SST_MAX_LISTENERS    16
#define SST_MAX_STATUS_RANGE 8
#define SST_MAX_CORS_ORIGINS 16
#define SST_MAX_TRUSTED      32
#define SST_MAX_WORKERS      64
/* The most hops a Location can carry (route.c); the loader rejects max_hops above it. */
#define SST_MAX_HOPS         9

/* Where a load failed: "file:line:column: key: message". line/column are 1-based, 0 when the
 * error is not tied to a position (file unreadable). key is the dotted path, e.g.
 * "regions[1].health.interval", empty when not tied to a key. */
typedef struct sst_diag_s {
    char file[256];
    unsigned line;
    unsigned column;
    char key[128];
    char msg[256];
} sst_diag_t;

/* Formats a diag as one line ("file:line:column: key: message") into buf; returns buf. */
const char *sst_diag_format(const sst_diag_t *diag, char *buf, size_t size);

/* Warnings: what loads but is probably not what was meant (`sidestep --check` prints them). The
 * list owns its items; a zeroed list is empty. */
typedef struct sst_diag_list_s {
    sst_diag_t *items;
    size_t n;
    size_t cap;
} sst_diag_list_t;

/* Appends a copy of *d. Returns 0 or SST_ENOMEM (the list is unchanged). */
int sst_diag_list_add(sst_diag_list_t *list, const sst_diag_t *d);
/* Frees the items and empties the list; NULL is ignored. */
void sst_diag_list_free(sst_diag_list_t *list);

/* A resolved socket address with its text form as written (canonical "host:port"). */
typedef struct sst_addr_s {
    char text[272]; /* "127.0.0.1:9001", "[::1]:9001", "backend.local:80" */
    char host[256]; /* host part without brackets */
    uint16_t port;  /* 0 is allowed for listeners only: pick an ephemeral port */
    struct sockaddr_storage sa;
    socklen_t salen;
} sst_addr_t;

/* Where a value sits in the file (1-based), for errors found only when it is applied: a
 * listener that cannot bind, an access log that cannot be opened. */
typedef struct sst_cfg_pos_s {
    unsigned line;
    unsigned column;
} sst_cfg_pos_t;

/* --- TLS (docs/tls.md). The config keeps file paths and where they were written; src/tls reads
 * the files and builds the OpenSSL contexts, so an error found then still names file:line:col and
 * the key. Nothing here links OpenSSL. */
#define SST_MAX_CERTS 32 /* per listener */

typedef struct sst_tls_cert_cfg_s {
    char *cert; /* PEM: the leaf first, then its intermediates in order */
    char *key;  /* PEM private key, unencrypted (may be the same file as cert) */
    sst_cfg_pos_t cert_pos, key_pos;
} sst_tls_cert_cfg_t;

typedef enum sst_tls_version_e {
    SST_TLS_1_2 = 0,
    SST_TLS_1_3,
} sst_tls_version_t;

typedef struct sst_tls_listen_cfg_s {
    bool enabled;                            /* the listener has a tls block: it serves HTTPS */
    sst_cfg_pos_t pos;                       /* of the tls block */
    sst_tls_cert_cfg_t certs[SST_MAX_CERTS]; /* certificates[0] is the default */
    size_t n_certs;
    sst_tls_version_t min_version; /* default 1.2; 1.3 when ciphers is "modern" */
    char *ciphers;                 /* "intermediate" (default), "modern", or an OpenSSL cipher
                                      string (TLS 1.2 suites; TLS 1.3 keeps the profile's) */
    sst_cfg_pos_t ciphers_pos;     /* 0:0 when not written */
    bool session_tickets;          /* default true */
    char *ticket_key_file;         /* NULL: keys made and rotated in memory */
    sst_cfg_pos_t ticket_key_file_pos;
} sst_tls_listen_cfg_t;

/* Strict-Transport-Security (RFC 6797); sent only on answers over TLS. */
typedef struct sst_hsts_cfg_s {
    bool enabled;            /* the listener has an hsts block */
    uint64_t max_age_s;      /* default 63072000 (two years, as Mozilla recommends) */
    bool include_subdomains; /* default false */
    bool preload;            /* default false; needs include_subdomains and a year or more */
} sst_hsts_cfg_t;

/* TLS to a region's backends. */
typedef struct sst_tls_upstream_cfg_s {
    bool enabled; /* the region has a tls block */
    char *ca;     /* CA file (PEM); NULL: the system trust store */
    sst_cfg_pos_t ca_pos;
    char *server_name; /* SNI and the name checked; NULL: each backend's host */
    bool verify;       /* default true */
} sst_tls_upstream_cfg_t;

typedef struct sst_status_range_s {
    uint16_t lo, hi; /* inclusive */
} sst_status_range_t;

typedef enum sst_initial_state_e {
    SST_INITIAL_AUTO = 0, /* UP for a route's primary region, DOWN for the rest */
    SST_INITIAL_UP,
    SST_INITIAL_DOWN,
} sst_initial_state_t;

/* Active-probe and passive-signal settings. Set per region; a backend may override any key. */
typedef struct sst_health_cfg_s {
    bool enabled;    /* health.enabled, default true */
    char method[16]; /* default "GET" */
    char path[1024]; /* default "/healthz"; origin-form */
    char host[256];  /* Host header; empty means the backend's host:port */
    sst_status_range_t expect[SST_MAX_STATUS_RANGE]; /* default one range 200-399 */
    size_t n_expect;
    char *expect_body;         /* required body substring, NULL for none; owned by the config */
    uint64_t interval_ms;      /* default 2000 */
    uint64_t fast_interval_ms; /* while rising or falling; default 500, never above interval */
    uint64_t timeout_ms;       /* default 1000 */
    uint64_t jitter_ms;        /* each delay is drawn in [d - jitter, d + jitter]; default
                                * 10% of interval when not set */
    uint32_t rise;             /* default 2 */
    uint32_t fall;             /* default 2 */
    uint32_t passive_fall;     /* consecutive passive failures that mark DOWN; default 3; 0 off */
    uint32_t passive_fall_refused; /* same, counting only refused connects; default 1; 0 off */
    bool passive_5xx;              /* count 5xx responses as passive failures; default false */
    sst_initial_state_t initial;   /* default AUTO */
    uint64_t slow_ms; /* a successful probe slower than this fails with L7SLOW (issue 15); 0 off
                         (default), else below timeout_ms */
} sst_health_cfg_t;

typedef struct sst_backend_cfg_s {
    sst_addr_t addr;
    size_t region;           /* index into sst_config_t.regions */
    uint32_t weight;         /* default 1, 1..256 */
    sst_health_cfg_t health; /* region settings merged with this backend's overrides */
} sst_backend_cfg_t;

/* regions[].send_proxy_protocol: the PROXY header opening every new backend connection. The
 * values are the protocol versions (1, 2), as sst_pp_write() takes them. */
typedef enum sst_send_proxy_e {
    SST_SEND_PROXY_OFF = 0,
    SST_SEND_PROXY_V1 = 1,
    SST_SEND_PROXY_V2 = 2,
} sst_send_proxy_t;

typedef struct sst_region_cfg_s {
    char *name;           /* [A-Za-z0-9_.-]+, unique */
    char *url;            /* public base URL, scheme://authority[/path], no trailing '/';
                             NULL when the region is never a redirect target */
    size_t first_backend; /* backends of this region: cfg->backends[first, first + n) */
    size_t n_backends;
    sst_health_cfg_t health;    /* region-level settings (backends carry merged copies) */
    uint32_t min_healthy;       /* default 1 */
    bool min_healthy_pct;       /* min_healthy is a percentage of n_backends (rounded up) */
    uint32_t max_ejection_pct;  /* share of backends passive checks may take DOWN; default 100 */
    uint64_t slow_start_ms;     /* default 0 (off) */
    uint64_t failback_delay_ms; /* default 10000 */
    sst_send_proxy_t send_proxy_protocol; /* default off */
    sst_tls_upstream_cfg_t tls;
} sst_region_cfg_t;

typedef enum sst_all_down_e {
    SST_ALL_DOWN_REJECT = 0, /* 503 with Retry-After */
    SST_ALL_DOWN_FAIL_OPEN,  /* proxy to the primary whatever its health */
    SST_ALL_DOWN_FALLBACK,   /* redirect to fallback_region whatever its health */
} sst_all_down_t;

typedef enum sst_hop_limit_e {
    SST_HOP_LIMIT_SERVE = 0, /* serve from local_region when it is in the route, else reject */
    SST_HOP_LIMIT_REJECT,
} sst_hop_limit_t;

typedef struct sst_route_cfg_s {
    char *name;                       /* default "route<N>"; the last route is the default route */
    char *host;                       /* "*", "example.com", "*.example.com"; lower case */
    char *path_prefix;                /* default "/" */
    size_t primary;                   /* region index */
    size_t failover[SST_MAX_REGIONS]; /* region indices, in order */
    size_t n_failover;
    uint16_t redirect_status;     /* 307 (default) or 308 */
    sst_all_down_t all_down;      /* default REJECT */
    size_t fallback_region;       /* for SST_ALL_DOWN_FALLBACK */
    uint64_t retry_after_s;       /* default 5 */
    char *hop_param;              /* query parameter carrying the hop count; NULL: no marker */
    uint32_t max_hops;            /* default 1 */
    sst_hop_limit_t at_hop_limit; /* default SERVE */
    char *cors_origins[SST_MAX_CORS_ORIGINS]; /* exact origins, or "*" */
    size_t n_cors_origins;
    bool cors_credentials;           /* Access-Control-Allow-Credentials: true; never with "*" */
    uint64_t redirect_discard_bytes; /* body bytes read and dropped before a redirect keeps the
                                        connection; default 64k */
    uint32_t retries;                /* extra attempts on other backends of the region, default 2 */
    uint64_t try_timeout_ms;  /* per-try timeout (issue 15; sst_route_try_timeout): 0 off (default),
                                 else below timeouts.upstream_response_ms */
    char *idempotency_header; /* a field name (token): a request with one valid value of it counts
                                 as idempotent for failover decisions; NULL for none (default) */
} sst_route_cfg_t;

typedef struct sst_cidr_s {
    struct sockaddr_storage net;
    uint8_t prefix;
} sst_cidr_t;

typedef struct sst_listener_cfg_s {
    sst_addr_t addr;
    sst_cfg_pos_t pos;           /* of the address */
    char *proto;                 /* X-Forwarded-Proto value, default "http" */
    bool https_redirect;         /* send every request to https://same-host/same-target */
    uint16_t https_status_get;   /* for GET and HEAD, default 301 */
    uint16_t https_status_other; /* for other methods, default 307 */
    uint16_t https_port;         /* 0: default port 443, omitted from Location */
    bool proxy_protocol;         /* every connection must open with a PROXY v1/v2 header */
    sst_cidr_t proxy_protocol_from[SST_MAX_TRUSTED]; /* peers allowed to send it: at least one
                                                        when proxy_protocol, none otherwise */
    size_t n_proxy_protocol_from;
    sst_tls_listen_cfg_t tls; /* proto defaults to "https" when tls is enabled */
    sst_hsts_cfg_t hsts;
} sst_listener_cfg_t;

typedef struct sst_limits_cfg_s {
    uint64_t request_line;          /* default 8k  -> 414 */
    uint64_t header_field;          /* default 8k  -> 431, one name+value */
    uint64_t header_bytes;          /* default 32k -> 431, whole head */
    uint64_t headers;               /* default 100 -> 431, field count */
    uint64_t body;                  /* default 100m -> 413; 0 means unlimited */
    uint64_t connections;           /* default 10000, all workers together */
    uint64_t upstream_connections;  /* per backend per worker, default 1024 */
    uint64_t upstream_idle;         /* idle keep-alive connections kept per backend per worker,
                                       default 64 */
    uint64_t response_header_bytes; /* default 32k -> 502 */
    uint64_t response_headers;      /* default 100 -> 502 */
    uint64_t buffer;                /* bytes in flight per direction before reading pauses; 64k */
} sst_limits_cfg_t;

typedef struct sst_timeouts_cfg_s {
    uint64_t request_head_ms;      /* total time to receive a head, default 10s -> 408 */
    uint64_t idle_ms;              /* keep-alive idle, default 60s */
    uint64_t connect_ms;           /* upstream connect, default 2s */
    uint64_t upstream_response_ms; /* request sent to response head, default 30s -> 504 */
    uint64_t upstream_idle_ms;     /* idle pooled upstream connection kept, default 4s (below the
                                      5 s keep-alive of common backends such as Node.js) */
    uint64_t body_ms;              /* body inactivity, both directions, default 30s */
    uint64_t body_total_ms;        /* whole request body, default 0 (off) -> 408 */
    uint64_t body_min_rate;        /* bytes/s a request body must average after 5s; 0 off */
    uint64_t send_ms;              /* a client that reads nothing for this long is closed; 30s */
    uint64_t linger_ms;            /* drain after an early answer before closing, default 2s */
    uint64_t shutdown_ms;          /* graceful shutdown deadline, default 30s */
    uint64_t tls_handshake_ms;     /* a TLS handshake must finish within this; default 10s */
} sst_timeouts_cfg_t;

typedef enum sst_log_format_e {
    SST_LOG_TEXT = 0,
    SST_LOG_JSON,
} sst_log_format_t;

typedef struct sst_log_cfg_s {
    char *access;             /* "stderr" (default), "stdout", "off", or a file path */
    sst_cfg_pos_t access_pos; /* 0:0 when not in the file */
    sst_log_format_t format;  /* default text */
    int level;                /* SST_LOG_* from log.h, default info */
} sst_log_cfg_t;

typedef struct sst_admin_cfg_s {
    bool enabled;    /* true when the admin key is present; the demo enables it */
    sst_addr_t addr; /* default 127.0.0.1:9901 */
    char *token;     /* bearer token; required when addr is not loopback */
} sst_admin_cfg_t;

/* fleet: many instances share overrides and health views through etcd (docs/fleet.md). The
 * names and bounds are the key layout's (src/fleet/fleet_state.h). */
#define SST_FLEET_MAX_ENDPOINTS 16
#define SST_FLEET_MIN_TTL_MS    5000 /* etcd's minimum lease TTL is about 5 s */

typedef enum sst_quorum_cfg_e {
    SST_QUORUM_CFG_OFF = 0, /* every instance routes by its own health view (the default) */
    SST_QUORUM_CFG_MAJORITY,
    SST_QUORUM_CFG_COUNT, /* health_quorum_count instances must see a region DOWN */
} sst_quorum_cfg_t;

typedef struct sst_fleet_cfg_s {
    bool enabled;                 /* the fleet key is present */
    char *name;                   /* keys live under /sidestep/<name>/ */
    char *instance;               /* unique in the fleet; default: the host name */
    sst_addr_t advertise_admin;   /* not resolved; default: admin.address */
    bool advertise_admin_default; /* taken from admin.address: when its port is 0, the server
                                     advertises the port it bound */
    sst_addr_t endpoints[SST_FLEET_MAX_ENDPOINTS]; /* etcd, tried in turn; resolved at load */
    size_t n_endpoints;
    uint64_t dial_timeout_ms; /* default 2s */
    uint64_t lease_ttl_ms;    /* whole seconds, 5s..10m; default 10s */
    sst_quorum_cfg_t health_quorum;
    uint32_t health_quorum_count; /* SST_QUORUM_CFG_COUNT: 1..256 */
    uint64_t startup_wait_ms;     /* default 5s; 0: serve at once */
} sst_fleet_cfg_t;

typedef struct sst_config_s {
    atomic_uint_fast32_t refcount;
    char *source;        /* file path, or "<embedded demo>" */
    uint64_t version;    /* assigned by the loader's caller; 0 on load */
    uint32_t workers;    /* 0 = number of cores */
    size_t local_region; /* region index, or SIZE_MAX when not set */
    sst_listener_cfg_t listeners[SST_MAX_LISTENERS];
    size_t n_listeners;
    sst_region_cfg_t regions[SST_MAX_REGIONS];
    size_t n_regions;
    sst_backend_cfg_t backends[SST_MAX_BACKENDS];
    size_t n_backends;
    sst_route_cfg_t routes[SST_MAX_ROUTES];
    size_t n_routes;
    sst_limits_cfg_t limits;
    sst_timeouts_cfg_t timeouts;
    sst_log_cfg_t log;
    sst_admin_cfg_t admin;
    sst_cidr_t trusted_proxies[SST_MAX_TRUSTED]; /* whose X-Forwarded-For/Forwarded is kept */
    size_t n_trusted_proxies;
    sst_fleet_cfg_t fleet;
    bool demo;                /* the embedded demo: main.c also starts the stub regions */
    sst_diag_list_t warnings; /* found while loading; owned by the config */
} sst_config_t;

/* Loads and validates the YAML file at `path`. Returns 0 and sets *out (refcount 1, caller
 * owns), or a negative SST_E* code and fills *diag; *out is untouched on failure. Host names in
 * addresses are resolved here (blocking getaddrinfo: call it off the request path). */
int sst_config_load(const char *path, sst_config_t **out, sst_diag_t *diag);

/* Same, from memory. `name` is used as the file name in diagnostics. */
int sst_config_load_string(const char *name, const char *yaml, size_t len, sst_config_t **out,
                           sst_diag_t *diag);

/* The embedded demo default: proxy on 127.0.0.1:8080, admin on 127.0.0.1:9901, region us-east
 * (127.0.0.1:9001, 127.0.0.1:9002) and eu-west (127.0.0.1:9101). Returns 0 or SST_ENOMEM. */
int sst_config_demo(sst_config_t **out, sst_diag_t *diag);
extern const char sst_config_demo_yaml[];
/* The same demo with an HTTPS listener on 127.0.0.1:8443 serving the certificate `cert` with
 * its key `key` (paths, used as given). Returns 0 or a negative SST_E* code with *diag. */
int sst_config_demo_tls(const char *cert, const char *key, sst_config_t **out, sst_diag_t *diag);

sst_config_t *sst_config_ref(sst_config_t *cfg);
/* Drops one reference; frees the config with the last one. Thread-safe. NULL is ignored. */
void sst_config_unref(sst_config_t *cfg);

/* Lookups by name; return the index or -1. */
int sst_config_region_index(const sst_config_t *cfg, const char *name, size_t len);
/* Finds a backend by its address text ("127.0.0.1:9001") in any region; -1 if none. */
int sst_config_backend_index(const sst_config_t *cfg, const char *addr, size_t len);

/* "1s", "250ms", "2m", "1h", "1500" (ms). Returns 0 or SST_EINVAL / SST_ERANGE. */
int sst_parse_duration_ms(const char *s, size_t len, uint64_t *out);
/* "16k", "10m", "1g", "512" (bytes), binary multiples. Returns 0 or SST_EINVAL / SST_ERANGE. */
int sst_parse_size(const char *s, size_t len, uint64_t *out);
/* "host:port" or "[v6]:port"; resolves names when `resolve` is true. Returns 0 or SST_EINVAL. */
int sst_parse_addr(const char *s, size_t len, bool allow_port0, bool resolve, sst_addr_t *out);
/* An etcd endpoint: "http://host:port" (a trailing '/' allowed) or "host:port"; https:// is
 * refused (no TLS to etcd yet). Resolves names when `resolve` is true. Returns 0 or SST_EINVAL. */
int sst_parse_endpoint(const char *url, size_t len, bool resolve, sst_addr_t *out);
/* A fleet or instance name: 1..63 bytes of [A-Za-z0-9_.-] starting with a letter or a digit. */
bool sst_config_fleet_name_ok(const char *s, size_t len);
/* health_quorum as written: "off", "majority" or the count (formatted into buf). */
const char *sst_config_quorum_text(const sst_fleet_cfg_t *f, char *buf, size_t size);
/* True for 127.0.0.0/8 and ::1. */
bool sst_addr_is_loopback(const sst_addr_t *addr);
/* True when `sa` is inside one of cfg->trusted_proxies. */
bool sst_config_is_trusted(const sst_config_t *cfg, const struct sockaddr *sa);
/* True when `sa` is inside one of nets[0..n_nets). IPv4 and IPv6 (an IPv4 peer on a dual-stack
 * socket, ::ffff:a.b.c.d, matches IPv4 networks); other families and NULL never match. */
bool sst_cidr_match(const sst_cidr_t *nets, size_t n_nets, const struct sockaddr *sa);
/* True when listener `l` expects PROXY headers and the peer `sa` is in its proxy_protocol_from:
 * the only peers whose header may be believed. False for a listener without proxy_protocol. */
bool sst_config_proxy_allowed(const sst_listener_cfg_t *l, const struct sockaddr *sa);

#endif
