/* The embedded demo's stand-in regions: one small HTTP/1.1 origin per backend of the demo config,
 * answering every request with a plain-text echo tagged with its region. Used by main.c only;
 * knows nothing of the proxy. */
#ifndef SST_DEMO_DEMO_H
#define SST_DEMO_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sidestep/config.h"

typedef struct sst_demo_s sst_demo_t;

/* What an answer says (tests/unit/test_demo.c checks it byte by byte):
 * - GET/HEAD /healthz (any query): 200, body "ok\n".
 * - Anything else: 200 text/plain with X-Demo-Region: REGION and the body
 *     REGION answered (backend ADDR)
 *     METHOD TARGET HTTP/1.x
 *     Name: value                    (each request header, in received order)
 *
 *     body: N bytes
 *   The request body is counted, never kept.
 * - A request the sst_h1 parser or its checks reject: that status with a one-line reason, then
 *   the connection is closed. Keep-alive and pipelining (answers in order), Expect:
 *   100-continue, HTTP/1.0. An idle or stalled connection is closed after 10 s. */

/* Listens on the address of every backend of `cfg` (numeric addresses, as the demo config has)
 * and answers as above, tagged with the backend's region. `cfg` is read during the call only.
 * Returns 0 and sets *out, or a negative SST_E* code with err filled ("127.0.0.1:9001: address
 * already in use"); on failure the listeners already opened are closing: run the loop before
 * uv_loop_close(). */
int sst_demo_start(uv_loop_t *loop, const sst_config_t *cfg, sst_demo_t **out, char *err,
                   size_t err_size);

/* The port backend index `backend`'s listener is bound to (the config may give port 0), or 0
 * when there is no such listener. */
uint16_t sst_demo_port(const sst_demo_t *demo, size_t backend);

/* Closes the listeners and every connection; the demo is freed from the last close callback.
 * NULL is ignored; call once. */
void sst_demo_stop(sst_demo_t *demo);

/* The demo's HTTPS listener certificate, made in-process with OpenSSL (the build's libssl; no
 * openssl command): a self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, valid
 * for 30 days, written as DIR/demo.pem and DIR/demo.key (new files, mode 0600; `dir` must
 * exist). Returns 0 with both paths filled, or a negative SST_E* code with err filled and no
 * file left behind. */
int sst_demo_tls_cert(const char *dir, char *cert, size_t cert_size, char *key, size_t key_size,
                      char *err, size_t err_size);

#endif
