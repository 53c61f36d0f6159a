/* Client connection deadlines: a binary min-heap of nodes ordered by their `due` field, each
 * node knowing its position (so a deadline moves in O(log n)). One worker timer over it
 * replaces a 152-byte uv_timer_t per connection. Pure: no libuv, no clock. */
#include "core/dheap.h"

#include <assert.h>
#include <stdlib.h>

#include "sidestep/error.h"

static inline void heap_place(sst_dheap_t *h, uint32_t i, sst_dnode_t *c)
{
    h->a[i] = c;
    c->idx = i;
}

static void heap_up(sst_dheap_t *h, uint32_t i)
{
    sst_dnode_t *c = h->a[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->a[parent]->due <= c->due)
            break;
        heap_place(h, i, h->a[parent]);
        i = parent;
    }
    heap_place(h, i, c);
}

static void heap_down(sst_dheap_t *h, uint32_t i)
{
    sst_dnode_t *c = h->a[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        uint64_t best = c->due;
        if (l < h->n && h->a[l]->due < best) {
            m = l;
            best = h->a[l]->due;
        }
        if (l + 1 < h->n && h->a[l + 1]->due < best)
            m = l + 1;
        if (m == i)
            break;
        heap_place(h, i, h->a[m]);
        i = m;
    }
    heap_place(h, i, c);
}

static void heap_remove(sst_dheap_t *h, sst_dnode_t *c)
{
    uint32_t i = c->idx;
    assert(i < h->n && h->a[i] == c);
    c->idx = UINT32_MAX;
    sst_dnode_t *last = h->a[--h->n];
    if (i == h->n)
        return;
    heap_place(h, i, last);
    heap_down(h, i);
    heap_up(h, last->idx);
}

int sst__dheap_set(sst_dheap_t *h, sst_dnode_t *c, uint64_t due)
{
    if (due == UINT64_MAX) {
        if (c->idx != UINT32_MAX)
            heap_remove(h, c);
        c->due = UINT64_MAX;
        return 0;
    }
    if (c->idx == UINT32_MAX) {
        if (h->n == h->cap) {
            uint32_t cap = h->cap ? h->cap * 2 : 256;
            sst_dnode_t **a = realloc(h->a, (size_t)cap * sizeof(*a));
            if (a == NULL)
                return SST_ENOMEM;
            h->a = a;
            h->cap = cap;
        }
        c->due = due;
        heap_place(h, h->n++, c);
        heap_up(h, c->idx);
        return 0;
    }
    uint64_t old = c->due;
    c->due = due;
    if (due < old)
        heap_up(h, c->idx);
    else
        heap_down(h, c->idx);
    return 0;
}

sst_dnode_t *sst__dheap_min(const sst_dheap_t *h)
{
    return h->n > 0 ? h->a[0] : NULL;
}

void sst__dheap_free(sst_dheap_t *h)
{
    free(h->a);
    h->a = NULL;
    h->n = h->cap = 0;
}
