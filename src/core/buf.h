/* A worker's buffers: reference-counted read chunks, write requests that point into them, head
 * areas, each on a bounded free list so the request path does not allocate once warm. One
 * sst_bufs_t per worker, touched by that worker's thread only. Knows nothing of connections. */
#ifndef SST_CORE_BUF_H
#define SST_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http/http1.h"

/* A read buffer, reference counted within one worker: the reader holds one reference while
 * bytes are unparsed, every queued write that points into it holds one more. */
typedef struct sst_chunk_s {
    struct sst_chunk_s *next; /* free list */
    uint32_t refs;
    uint32_t size;
    char data[];
} sst_chunk_t;

#define SST_CHUNK_SIZE (16 * 1024 - 64)

#define SST_WREQ_BUFS    16
#define SST_WREQ_CHUNKS  8
#define SST_WREQ_SCRATCH 256

typedef struct sst_bufs_s sst_bufs_t;

/* One uv_write with what it points at: references to read chunks, a small scratch area (chunk
 * size lines), and optionally a heap block (built heads). Pooled per worker. Whoever holds it
 * puts it back with sst__wreq_put, which drops the references and frees the heap block; once
 * handed to a transport (core/transport.h) it is the transport's. */
typedef struct sst_wreq_s {
    uv_write_t req;
    struct sst_wreq_s *next;
    sst_bufs_t *pool; /* the free list it goes back to */
    uint32_t n_bufs;
    uint32_t n_chunks;
    size_t bytes;
    char *heap;
    uint32_t scratch_used;
    uv_buf_t bufs[SST_WREQ_BUFS];
    sst_chunk_t *chunks[SST_WREQ_CHUNKS];
    char scratch[SST_WREQ_SCRATCH];
} sst_wreq_t;

/* The free lists. Zero-initialised is empty and ready. */
struct sst_bufs_s {
    sst_chunk_t *free_chunks;
    size_t n_free_chunks;
    sst_wreq_t *free_wreqs;
    size_t n_free_wreqs;
    sst_head_t *free_heads;
    size_t n_free_heads;
    bool draining; /* the worker is stopping: what comes back goes to malloc, not the lists */
};

/* A chunk with one reference (the caller's), or NULL on ENOMEM. */
sst_chunk_t *sst__chunk_get(sst_bufs_t *b);
void sst__chunk_unref(sst_bufs_t *b, sst_chunk_t *c);

/* An empty write request, or NULL on ENOMEM. */
sst_wreq_t *sst__wreq_get(sst_bufs_t *b);
/* Drops r's chunk references and heap block and puts it back on its free list. */
void sst__wreq_put(sst_wreq_t *r);
/* Appends a buffer; takes a reference on `chunk` when it is not NULL (bytes in static or
 * scratch storage pass NULL). The caller checks room first (n_bufs, n_chunks). */
void sst__wreq_add(sst_wreq_t *r, sst_chunk_t *chunk, const char *at, size_t len);
/* True when one more buffer of `chunk` fits (`extra` buffers more besides). */
static inline bool sst__wreq_room(const sst_wreq_t *r, const sst_chunk_t *chunk, size_t extra)
{
    return r->n_bufs + 1 + extra <= SST_WREQ_BUFS &&
           (chunk == NULL || r->n_chunks < SST_WREQ_CHUNKS || r->chunks[r->n_chunks - 1] == chunk);
}

/* A cleared head area, or NULL on ENOMEM. */
sst_head_t *sst__head_get(sst_bufs_t *b);
void sst__head_put(sst_bufs_t *b, sst_head_t *h);

/* The worker stops: what comes back from now on goes to malloc, not to the free lists. */
void sst__bufs_drain(sst_bufs_t *b);
/* Frees everything on the free lists (the worker's end). */
void sst__bufs_free(sst_bufs_t *b);

#endif
