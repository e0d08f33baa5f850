/*  proto_list - an intrusive doubly linked list: the one implementation of
    the LRU lists and FIFO queues the actors keep (the gateway's lease cache
    and name cache, its backpressure queues).

    A proto_link_t is embedded in the record; the list holds the first and
    last links. Nothing is allocated; every operation is O(1). A link that is
    in no list has both pointers NULL (zero it once, and unlink resets it).
    PROTO_LIST_ENTRY turns a link back into its record.

        typedef struct { ...; proto_link_t lru; } entry_t;
        proto_list_push_front(&cache->lru, &e->lru);
        entry_t *oldest = PROTO_LIST_ENTRY(cache->lru.tail, entry_t, lru);
*/
#ifndef PROTO_LIST_H
#define PROTO_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct proto_link {
    struct proto_link *prev; // towards the head
    struct proto_link *next; // towards the tail
} proto_link_t;

typedef struct {
    proto_link_t *head; // first (most recent, or oldest in a FIFO)
    proto_link_t *tail; // last
    size_t count;       // links in the list
} proto_list_t;

//  The record that holds link (NULL for NULL).
#define PROTO_LIST_ENTRY(link, type, member)                                                       \
    ((link) ? (type *) (void *) ((char *) (link) -offsetof(type, member)) : (type *) NULL)

//  True if link is in list.
static inline bool
proto_list_has(const proto_list_t *list, const proto_link_t *link)
{
    return link->prev != NULL || link->next != NULL || list->head == link;
}

//  Take link out of list (it must be in it); its pointers become NULL.
static inline void
proto_list_unlink(proto_list_t *list, proto_link_t *link)
{
    if (link->prev)
        link->prev->next = link->next;
    else
        list->head = link->next;
    if (link->next)
        link->next->prev = link->prev;
    else
        list->tail = link->prev;
    link->prev = link->next = NULL;
    list->count--;
}

//  Put link (in no list) first.
static inline void
proto_list_push_front(proto_list_t *list, proto_link_t *link)
{
    link->prev = NULL;
    link->next = list->head;
    if (list->head)
        list->head->prev = link;
    else
        list->tail = link;
    list->head = link;
    list->count++;
}

//  Put link (in no list) last.
static inline void
proto_list_push_back(proto_list_t *list, proto_link_t *link)
{
    link->next = NULL;
    link->prev = list->tail;
    if (list->tail)
        list->tail->next = link;
    else
        list->head = link;
    list->tail = link;
    list->count++;
}

//  Move link first, whether it is in list already or not (LRU use).
static inline void
proto_list_to_front(proto_list_t *list, proto_link_t *link)
{
    if (list->head == link)
        return;
    if (proto_list_has(list, link))
        proto_list_unlink(list, link);
    proto_list_push_front(list, link);
}

#endif
