/* Views: what workers route with (config + health snapshot + prepared parts), reference
 * counted so a reload or a health change swaps them in while in-flight requests keep theirs;
 * the per-config preparation (generated-response pieces, metric ids) and the server's table
 * of listening sockets. Built on the control thread; immutable once published. */
#ifndef SST_CORE_VIEW_H
#define SST_CORE_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "http/h1_write.h"
#include "sidestep/config.h"
#include "sidestep/health.h"
#include "sidestep/str.h"

struct sst_server_s;

/* Redirect statuses with prepared status lines. */
#define SST_REDIRECT_STATUSES 5 /* 301 302 303 307 308 */

/* The listening sockets of one listener address, one per worker (SO_REUSEPORT), opened by the
 * control thread when the address first appears in a config. A worker takes its own slot with
 * an atomic exchange; the control thread closes the slots nobody took when the address leaves
 * the config. Entries live until the server is freed, so a view that still points at one is
 * never left dangling. Keeping them here, and not per config, means a worker that skips a view
 * (two reloads before it woke) still finds the sockets of a listener added by the skipped one. */
typedef struct sst_lsock_s {
    struct sst_lsock_s *next;
    char key[272]; /* the configured address text */
    struct sockaddr_storage bound;
    bool live; /* in the config in force */
    atomic_int fds[SST_MAX_WORKERS];
} sst_lsock_t;

/* Per config: the constant parts of generated responses and the metric ids of names. A 307
 * is written as [status line + "Location: " + region url] [path-and-query parts]
 * [headers + tail + body]: three buffers of one write in the common case. */
typedef struct sst_prep_s {
    sst_str_t redirect_head[SST_MAX_REGIONS][SST_REDIRECT_STATUSES];
    sst_str_t redirect_rest[SST_MAX_REGIONS][SST_TAILS]; /* mid + tail + body */
    sst_str_t redirect_mid[SST_MAX_REGIONS];  /* "\r\nCache-Control...Content-Length: N\r\n" */
    sst_str_t redirect_body[SST_MAX_REGIONS]; /* the short body */
    sst_str_t
        https_head[SST_REDIRECT_STATUSES]; /* "HTTP/1.1 301 Moved Permanently\r\nLocation: " */
    uint16_t route_mid[SST_MAX_ROUTES];    /* metric ids */
    uint16_t region_mid[SST_MAX_REGIONS];
    uint16_t backend_mid[SST_MAX_BACKENDS];
    char *storage;
    /* the listening sockets of each configured listener (owned by the server's table) */
    struct sst_lsock_s *lsock[SST_MAX_LISTENERS];
    struct sockaddr_storage bound[SST_MAX_LISTENERS];
    struct sst_lsock_s *created; /* entries this config added to the table (see view.c) */
    unsigned n_workers;
} sst_prep_t;

/* The index of a redirect status in the prepared lines (301 302 303 307 308; 307 for others). */
static inline size_t sst__redirect_status_index(uint16_t status)
{
    switch (status) {
    case 301:
        return 0;
    case 302:
        return 1;
    case 303:
        return 2;
    case 308:
        return 4;
    default:
        return 3; /* 307 */
    }
}

typedef struct sst_view_s {
    atomic_uint_fast32_t refs;
    uint64_t generation;
    sst_config_t *cfg; /* one reference */
    sst_hsnap_t *snap; /* one reference */
    sst_prep_t *prep;  /* shared by views of the same config: freed with the config's last view */
    atomic_uint_fast32_t *prep_refs;
} sst_view_t;

sst_view_t *sst__view_ref(sst_view_t *v);
/* Drops one reference (any thread); the last one frees the view, and the prep with the last
 * view of its config. NULL is ignored. */
void sst__view_unref(sst_view_t *v);
/* A view of cfg and snap (a reference is taken on each) sharing `prep`, whose count is
 * prep_refs. Returns 0 and *out (one reference), or SST_ENOMEM. */
int sst__view_new(sst_config_t *cfg, sst_hsnap_t *snap, sst_prep_t *prep,
                  atomic_uint_fast32_t *prep_refs, uint64_t generation, sst_view_t **out);

/* Builds the per-config parts: generated-response pieces, metric ids (registering new names
 * in the server), and the listening sockets of addresses not open yet (new entries of the
 * server's table, made live by sst__prep_commit). Returns 0, or a negative error with *err
 * set to a message naming the listener. */
int sst__prep_build(const sst_config_t *cfg, struct sst_server_s *s, sst_prep_t **out, char *err,
                    size_t err_size);
void sst__prep_free(sst_prep_t *p);
/* The config of `p` is now in force: its listener entries become live, the entries of
 * addresses no longer configured give up their untaken sockets. */
void sst__prep_commit(struct sst_server_s *s, sst_prep_t *p);
/* The reload that built `p` failed: the entries it created are closed and dropped. */
void sst__prep_abandon(struct sst_server_s *s, sst_prep_t *p);
void sst__lsocks_free(struct sst_server_s *s);
/* The route, region and backend names that sst__prep_build registered for metric series. */
void sst__prep_names_free(struct sst_server_s *s);

#endif
