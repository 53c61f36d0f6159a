/* An intrusive doubly linked list (a ring with a sentinel) and container_of: the links live in
 * the objects listed, so listing allocates nothing. Owns no objects. */
#ifndef SST_BASE_LIST_H
#define SST_BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sst_link_s {
    struct sst_link_s *prev, *next;
} sst_link_t;

static inline void sst_list_init(sst_link_t *l)
{
    l->prev = l->next = l;
}
static inline bool sst_list_empty(const sst_link_t *l)
{
    return l->next == l;
}
static inline void sst_list_push(sst_link_t *head, sst_link_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
/* Inserts n at the tail of the ring: before head, so a walk from head->next meets it last. */
static inline void sst_list_append(sst_link_t *head, sst_link_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void sst_list_remove(sst_link_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define sst_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
