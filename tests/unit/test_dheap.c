/* dheap.c: the deadline heap under random insertions, moves and removals, checked against a
 * brute-force minimum after every operation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/dheap.h"
#include "sidestep/health.h"

#define N 500

static sst_dnode_t conns[N]; /* nodes as client connections embed them */

static uint64_t rnd(uint64_t *s)
{
    return sst_rand_next(s);
}

static void check(const sst_dheap_t *h)
{
    const sst_dnode_t *want = NULL;
    uint32_t in = 0;
    for (size_t i = 0; i < N; i++) {
        if (conns[i].idx == UINT32_MAX) {
            assert_int_equal(conns[i].due, UINT64_MAX);
            continue;
        }
        in++;
        assert_ptr_equal(h->a[conns[i].idx], &conns[i]);
        if (want == NULL || conns[i].due < want->due)
            want = &conns[i];
    }
    assert_int_equal(in, h->n);
    const sst_dnode_t *got = sst__dheap_min(h);
    if (want == NULL)
        assert_null(got);
    else
        assert_int_equal(got->due, want->due);
    /* the heap property itself */
    for (uint32_t i = 1; i < h->n; i++)
        assert_true(h->a[(i - 1) / 2]->due <= h->a[i]->due);
}

static void test_random_operations(void **state)
{
    sst_dheap_t h = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < N; i++) {
        conns[i].idx = UINT32_MAX;
        conns[i].due = UINT64_MAX;
    }
    for (int step = 0; step < 20000; step++) {
        sst_dnode_t *c = &conns[rnd(&seed) % N];
        uint64_t r = rnd(&seed) % 10;
        uint64_t due = r < 2 ? UINT64_MAX : rnd(&seed) % 1000; /* duplicates on purpose */
        assert_int_equal(sst__dheap_set(&h, c, due), 0);
        check(&h);
    }
    /* drain in order, as the worker's timer does */
    uint64_t last = 0;
    sst_dnode_t *c;
    while ((c = sst__dheap_min(&h)) != NULL) {
        assert_true(c->due >= last);
        last = c->due;
        sst__dheap_set(&h, c, UINT64_MAX);
    }
    check(&h);
    sst__dheap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
