/*  proto_slab - fixed-size records packed into 64 KiB chunks.

    Each record is preceded by a pointer to its chunk (in the slot's first
    max_align_t, so that the record stays aligned as malloc's are), so that
    freeing needs no lookup. A chunk hands out fresh records from its end first (so its
    pages are touched only as it fills) and reuses freed ones through its own
    free list. Chunks with room are on a list; a chunk whose last record is
    freed is released unless it is the only one with room. Under
    AddressSanitizer a freed record is poisoned until it is handed out again.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_list.h"
#include "proto_slab.h"
#include "proto_util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define S_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define S_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define S_POISON(p, n)   ((void) (p), (void) (n))
#define S_UNPOISON(p, n) ((void) (p), (void) (n))
#endif

typedef struct s_chunk s_chunk_t;

//  A freed record's first bytes: the next free one of its chunk.
typedef struct s_free {
    struct s_free *next;
} s_free_t;

struct s_chunk {
    proto_link_t all;  // every chunk
    proto_link_t room; // chunks with room
    s_free_t *free;    // freed records
    size_t fresh;      // records never handed out start at this index
    size_t live;       // records handed out
    max_align_t align; // records follow, aligned
};

struct proto_slab {
    size_t slot;       // bytes per record, with its chunk pointer (S_LEAD)
    size_t per_chunk;  // records per chunk
    proto_list_t all;  // every chunk
    proto_list_t room; // chunks with room (the first is used first)
    size_t live;       // records handed out
};

#define S_HEADER offsetof(s_chunk_t, align)
#define S_LEAD   _Alignof(max_align_t) // a record starts this far into its slot

proto_slab_t *
proto_slab_new(size_t size)
{
    if (size == 0 || size > PROTO_SLAB_CHUNK / 4)
        return NULL;
    proto_slab_t *self = proto_xcalloc(1, sizeof *self);
    self->slot = (S_LEAD + size + S_LEAD - 1) / S_LEAD * S_LEAD;
    self->per_chunk = (PROTO_SLAB_CHUNK - S_HEADER) / self->slot;
    return self;
}

static s_chunk_t *
s_chunk_new(proto_slab_t *self)
{
    s_chunk_t *c = proto_xmalloc(PROTO_SLAB_CHUNK);
    memset(c, 0, S_HEADER);
    S_POISON((char *) c + S_HEADER, PROTO_SLAB_CHUNK - S_HEADER);
    proto_list_push_front(&self->all, &c->all);
    proto_list_push_front(&self->room, &c->room);
    return c;
}

static void
s_chunk_free(proto_slab_t *self, s_chunk_t *c)
{
    if (proto_list_has(&self->room, &c->room))
        proto_list_unlink(&self->room, &c->room);
    proto_list_unlink(&self->all, &c->all);
    S_UNPOISON((char *) c + S_HEADER, PROTO_SLAB_CHUNK - S_HEADER);
    free(c);
}

void *
proto_slab_alloc(proto_slab_t *self)
{
    s_chunk_t *c = PROTO_LIST_ENTRY(self->room.head, s_chunk_t, room);
    if (c == NULL)
        c = s_chunk_new(self);
    char *slot;
    if (c->free) {
        slot = (char *) c->free - S_LEAD;
        S_UNPOISON(slot, self->slot);
        c->free = c->free->next;
    } else {
        slot = (char *) c + S_HEADER + c->fresh++ * self->slot;
        S_UNPOISON(slot, self->slot);
    }
    c->live++;
    self->live++;
    if (c->free == NULL && c->fresh == self->per_chunk)
        proto_list_unlink(&self->room, &c->room); // full
    void *record = slot + S_LEAD;
    memcpy((char *) record - sizeof c, &c, sizeof c);
    memset(record, 0, self->slot - S_LEAD);
    return record;
}

void
proto_slab_free(proto_slab_t *self, void *record)
{
    if (record == NULL)
        return;
    char *slot = (char *) record - S_LEAD;
    s_chunk_t *c;
    memcpy(&c, (char *) record - sizeof c, sizeof c);
    s_free_t *f = record;
    f->next = c->free;
    c->free = f;
    S_POISON(slot, self->slot);
    c->live--;
    self->live--;
    if (!proto_list_has(&self->room, &c->room))
        proto_list_push_back(&self->room, &c->room); // fuller chunks stay first
    if (c->live == 0 && self->room.count > 1)
        s_chunk_free(self, c);
}

void
proto_slab_destroy(proto_slab_t **self_p)
{
    proto_slab_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->all.head)
        s_chunk_free(self, PROTO_LIST_ENTRY(self->all.head, s_chunk_t, all));
    free(self);
    *self_p = NULL;
}

size_t
proto_slab_live(const proto_slab_t *self)
{
    return self->live;
}

size_t
proto_slab_chunks(const proto_slab_t *self)
{
    return self->all.count;
}
