/* A worker's buffer free lists: read chunks, write requests, head areas. Bounded, so a burst
 * may allocate more and the excess goes back to malloc. Never shared between threads. */
#include "core/buf.h"

#include <assert.h>
#include <stdlib.h>

#define MAX_FREE_CHUNKS 64
#define MAX_FREE_WREQS  256
#define MAX_FREE_HEADS  256

sst_chunk_t *sst__chunk_get(sst_bufs_t *b)
{
    sst_chunk_t *c = b->free_chunks;
    if (c != NULL) {
        b->free_chunks = c->next;
        b->n_free_chunks--;
    } else {
        c = malloc(sizeof(*c) + SST_CHUNK_SIZE);
        if (c == NULL)
            return NULL;
        c->size = SST_CHUNK_SIZE;
    }
    c->next = NULL;
    c->refs = 1;
    return c;
}

void sst__chunk_unref(sst_bufs_t *b, sst_chunk_t *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0)
        return;
    if (b->n_free_chunks < MAX_FREE_CHUNKS && !b->draining) {
        c->next = b->free_chunks;
        b->free_chunks = c;
        b->n_free_chunks++;
    } else {
        free(c);
    }
}

sst_wreq_t *sst__wreq_get(sst_bufs_t *b)
{
    sst_wreq_t *r = b->free_wreqs;
    if (r != NULL) {
        b->free_wreqs = r->next;
        b->n_free_wreqs--;
    } else {
        r = malloc(sizeof(*r));
        if (r == NULL)
            return NULL;
    }
    r->next = NULL;
    r->pool = b;
    r->n_bufs = r->n_chunks = 0;
    r->bytes = 0;
    r->heap = NULL;
    r->scratch_used = 0;
    return r;
}

void sst__wreq_put(sst_wreq_t *r)
{
    sst_bufs_t *b = r->pool;
    for (uint32_t i = 0; i < r->n_chunks; i++)
        sst__chunk_unref(b, r->chunks[i]);
    r->n_chunks = 0;
    free(r->heap);
    r->heap = NULL;
    if (b->n_free_wreqs < MAX_FREE_WREQS) {
        r->next = b->free_wreqs;
        b->free_wreqs = r;
        b->n_free_wreqs++;
    } else {
        free(r);
    }
}

void sst__wreq_add(sst_wreq_t *r, sst_chunk_t *chunk, const char *at, size_t len)
{
    assert(r->n_bufs < SST_WREQ_BUFS);
    r->bufs[r->n_bufs++] = uv_buf_init((char *)at, (unsigned)len);
    r->bytes += len;
    if (chunk != NULL && (r->n_chunks == 0 || r->chunks[r->n_chunks - 1] != chunk)) {
        assert(r->n_chunks < SST_WREQ_CHUNKS);
        chunk->refs++;
        r->chunks[r->n_chunks++] = chunk;
    }
}

sst_head_t *sst__head_get(sst_bufs_t *b)
{
    sst_head_t *h = b->free_heads;
    if (h != NULL) {
        b->free_heads = h->next;
        b->n_free_heads--;
        h->next = NULL;
        return h;
    }
    return sst_head_new();
}

void sst__head_put(sst_bufs_t *b, sst_head_t *h)
{
    if (b->n_free_heads < MAX_FREE_HEADS && !b->draining) {
        sst_head_clear(h, 16 * 1024);
        h->next = b->free_heads;
        b->free_heads = h;
        b->n_free_heads++;
    } else {
        sst_head_free(h);
    }
}

void sst__bufs_drain(sst_bufs_t *b)
{
    b->draining = true;
}

void sst__bufs_free(sst_bufs_t *b)
{
    while (b->free_chunks != NULL) {
        sst_chunk_t *c = b->free_chunks;
        b->free_chunks = c->next;
        free(c);
    }
    while (b->free_wreqs != NULL) {
        sst_wreq_t *r = b->free_wreqs;
        b->free_wreqs = r->next;
        free(r);
    }
    while (b->free_heads != NULL) {
        sst_head_t *h = b->free_heads;
        b->free_heads = h->next;
        sst_head_free(h);
    }
    b->n_free_chunks = b->n_free_wreqs = b->n_free_heads = 0;
}
