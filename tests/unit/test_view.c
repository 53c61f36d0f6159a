/* view.c: the server's table of listening sockets across configs. A worker that skips a view
 * (two reloads before it wakes) must still find the sockets of an address the skipped config
 * added; an address that leaves the config gives its untaken sockets back; a failed reload
 * leaves nothing open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/server_int.h"
#include "core/view.h"

#define REGIONS                                                                                    \
    "regions: [{name: a, url: http://a.example, backends: [127.0.0.1:1],"                          \
    " health: {enabled: false}}]\n"

static sst_config_t *load(const char *yaml);

/* A port on 127.0.0.1 that was free a moment ago. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static sst_config_t *load_listeners(int p1, int p2)
{
    char yaml[512];
    if (p2 == 0)
        snprintf(yaml, sizeof(yaml), "listen: [127.0.0.1:%d]\n" REGIONS, p1);
    else
        snprintf(yaml, sizeof(yaml), "listen: [127.0.0.1:%d, 127.0.0.1:%d]\n" REGIONS, p1, p2);
    return load(yaml);
}

static sst_config_t *load(const char *yaml)
{
    sst_config_t *cfg = NULL;
    sst_diag_t diag;
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(sst_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &diag), 0);
    return cfg;
}

static sst_prep_t *build(sst_server_t *s, sst_config_t *cfg)
{
    sst_prep_t *p = NULL;
    char err[256] = "";
    assert_int_equal(sst__prep_build(cfg, s, &p, err, sizeof(err)), 0);
    return p;
}

static int untaken(const sst_lsock_t *e, unsigned n_workers)
{
    int n = 0;
    for (unsigned w = 0; w < n_workers; w++)
        n += atomic_load(&((sst_lsock_t *)e)->fds[w]) >= 0;
    return n;
}

static void test_listener_sockets_across_configs(void **state)
{
    sst_server_t *s = calloc(1, sizeof(*s));
    s->n_workers = 2;
    int pa = free_port(), pb = free_port(), pc = free_port();
    sst_config_t *c1 = load_listeners(pa, 0);
    sst_config_t *c2 = load_listeners(pa, pb);
    sst_config_t *c3 = load_listeners(pb, pa);
    sst_config_t *c4 = load_listeners(pa, 0);
    sst_config_t *c5 = load_listeners(pa, pc);
    char key_c[32];
    snprintf(key_c, sizeof(key_c), "127.0.0.1:%d", pc);

    sst_prep_t *p1 = build(s, c1);
    sst__prep_commit(s, p1);
    sst_lsock_t *a = p1->lsock[0];
    assert_int_equal(untaken(a, 2), 2);
    /* worker 0 takes its socket of A */
    int fd = atomic_exchange(&a->fds[0], -1);
    assert_true(fd >= 0);
    close(fd);

    /* c2 adds B; no worker wakes before c3 replaces it */
    sst_prep_t *p2 = build(s, c2);
    assert_ptr_equal(p2->lsock[0], a); /* A is not opened twice */
    sst_lsock_t *b = p2->lsock[1];
    assert_int_equal(untaken(b, 2), 2);
    sst__prep_commit(s, p2);
    sst_prep_t *p3 = build(s, c3);
    sst__prep_commit(s, p3);
    /* c3 lists B first: the same entry, its sockets still there for both workers */
    assert_ptr_equal(p3->lsock[0], b);
    assert_ptr_equal(p3->lsock[1], a);
    assert_int_equal(untaken(b, 2), 2);
    assert_int_equal(untaken(a, 2), 1);
    assert_true(p3->bound[0].ss_family == AF_INET);

    /* c4 drops B: its untaken sockets close now */
    sst_prep_t *p4 = build(s, c4);
    sst__prep_commit(s, p4);
    assert_false(b->live);
    assert_int_equal(untaken(b, 2), 0);
    assert_true(a->live);

    /* a reload that fails after opening C leaves nothing behind */
    sst_prep_t *p5 = build(s, c5);
    assert_non_null(p5->created);
    sst__prep_abandon(s, p5);
    assert_null(p5->created);
    for (sst_lsock_t *e = s->lsocks; e != NULL; e = e->next)
        assert_string_not_equal(e->key, key_c);

    sst__prep_free(p1);
    sst__prep_free(p2);
    sst__prep_free(p3);
    sst__prep_free(p4);
    sst__prep_free(p5);
    sst__lsocks_free(s);
    sst__prep_names_free(s);
    free(s);
    sst_config_unref(c1);
    sst_config_unref(c2);
    sst_config_unref(c3);
    sst_config_unref(c4);
    sst_config_unref(c5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_sockets_across_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
