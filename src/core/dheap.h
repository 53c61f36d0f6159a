/* Deadlines: a binary min-heap of nodes ordered by their `due` time, each node knowing its
 * position so a deadline moves in O(log n). The nodes live in the objects that have deadlines
 * (client connections); one worker timer over the heap replaces a timer per object. Pure: no
 * libuv, no clock. */
#ifndef SST_CORE_DHEAP_H
#define SST_CORE_DHEAP_H

#include <stdint.h>

/* Embedded in an object with a deadline. Initialise with SST_DNODE_INIT (not in a heap). */
typedef struct sst_dnode_s {
    uint64_t due; /* UINT64_MAX: none */
    uint32_t idx; /* position in the heap, UINT32_MAX: not in it */
} sst_dnode_t;

#define SST_DNODE_INIT                                                                             \
    {                                                                                              \
        .due = UINT64_MAX, .idx = UINT32_MAX                                                       \
    }

typedef struct sst_dheap_s {
    sst_dnode_t **a;
    uint32_t n, cap;
} sst_dheap_t;

/* Sets n->due and n's place in the heap; UINT64_MAX takes it out. Returns 0 or SST_ENOMEM (n is
 * then unchanged). */
int sst__dheap_set(sst_dheap_t *h, sst_dnode_t *n, uint64_t due);
/* The node with the earliest deadline, or NULL. */
sst_dnode_t *sst__dheap_min(const sst_dheap_t *h);
void sst__dheap_free(sst_dheap_t *h);

#endif
