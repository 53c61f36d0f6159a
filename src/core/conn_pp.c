/* A client connection and the PROXY protocol (issue 16): who may send a header, what a header
 * changes (the client address everywhere: access log, X-Forwarded-For, trusted_proxies), the
 * refusals and their counts, and the header that opens a backend connection. Reading and
 * writing the header is the transport's (transport_proxy.c); part of the connection module. */
#include "core/conn_int.h"

#include <string.h>

#include <netinet/in.h>

#include "core/transport.h"
#include "sidestep/log.h"

void sst__conn_addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int rc = UV_EINVAL;

    if (sa->sa_family == AF_INET) {
        rc = uv_ip4_name((const struct sockaddr_in *)(const void *)sa, buf, size);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (memcmp(in6->sin6_addr.s6_addr, v4mapped, sizeof(v4mapped)) == 0) {
            /* a dual-stack view of an IPv4 client (a PROXY TCP6 header may carry one): logs,
             * X-Forwarded-For and trusted_proxies all read it as the IPv4 address it is */
            struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = in6->sin6_port};
            memcpy(&in.sin_addr, in6->sin6_addr.s6_addr + 12, 4);
            rc = uv_ip4_name(&in, buf, size);
        } else {
            rc = uv_ip6_name(in6, buf, size);
        }
    }
    if (rc != 0 && size >= sizeof("unknown"))
        memcpy(buf, "unknown", sizeof("unknown"));
}

void sst__conn_pp_refuse(sst_conn_t *c, unsigned reason)
{
    if (reason < SST_M_PP_REASONS)
        sst_counter_add(&c->w->metrics->pp_rejected[reason], 1);
    sst_debug("conn %p: PROXY header refused from %s: %s", (void *)c, c->peer_ip,
              sst_m_pp_reason_name(reason));
    sst__conn_close(c); /* no HTTP answer: the peer is not speaking HTTP to us yet */
}

bool sst__conn_pp_accept(sst_conn_t *c, const sst_listener_cfg_t *lc,
                         const struct sockaddr_storage *peer)
{
    /* checked before a byte is read: a header from anyone else is never parsed */
    if (!sst_config_proxy_allowed(lc, (const struct sockaddr *)peer)) {
        sst__conn_pp_refuse(c, SST_M_PP_NOT_ALLOWED);
        return false;
    }
    sst__tp_pp_expect(&c->tp);
    return true;
}

void sst__conn_on_proxy(sst_transport_t *t, sst_pp_status_t st, const sst_pp_result_t *res)
{
    sst_conn_t *c = sst_container_of(t, sst_conn_t, tp);

    if (st != SST_PP_DONE) {
        sst__conn_pp_refuse(c, res->error);
        return;
    }
    if (res->version >= 1 && res->version <= 2 && (unsigned)res->command < 3)
        sst_counter_add(&c->w->metrics->pp_accepted[res->version - 1][res->command], 1);
    if (res->command != SST_PP_PROXY)
        return; /* LOCAL (the balancer's own check) and UNKNOWN keep the peer, as the spec says */
    /* The declared client is the client from here on, for everything the TCP peer was used
     * for: the access log, X-Forwarded-For, and whether its forwarding fields are kept. */
    sst__conn_addr_text((const struct sockaddr *)&res->src, c->peer_ip, sizeof(c->peer_ip));
    c->peer_trusted =
        sst_config_is_trusted(sst__worker_config(c->w), (const struct sockaddr *)&res->src);
}

const sst_tp_pp_out_t *sst__conn_pp_header(sst_conn_t *c, sst_send_proxy_t mode,
                                           sst_tp_pp_out_t *out)
{
    const struct sockaddr *src, *dst;
    int n;

    if (mode == SST_SEND_PROXY_OFF)
        return NULL;
    /* the client and the address it reached (declared by a PROXY header, or the socket's) */
    if (sst__tp_pp_addrs(&c->tp, &src, &dst) != 0)
        n = sst_pp_write_local((int)mode, out->bytes, sizeof(out->bytes));
    else
        n = sst_pp_write((int)mode, src, dst, out->bytes, sizeof(out->bytes));
    out->len = n > 0 ? (uint8_t)n : 0; /* SST_PP_WRITE_MAX fits: the writer never fails here */
    return out;
}
