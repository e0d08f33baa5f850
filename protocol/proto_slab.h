/*  proto_slab - fixed-size records packed into 64 KiB chunks.

    For records that many live at once and long (a gateway's client
    connections): they sit densely in their chunks instead of between the
    short-lived buffers of the general heap, so thousands of idle ones cost
    their size and little more, and a chunk whose records are all freed goes
    back to the allocator (one empty chunk is kept, against churn).
*/
#ifndef PROTO_SLAB_H
#define PROTO_SLAB_H

#include <stddef.h>

#define PROTO_SLAB_CHUNK (64 * 1024) // bytes per chunk

typedef struct proto_slab proto_slab_t;

//  Records of size bytes (at most PROTO_SLAB_CHUNK / 4).
proto_slab_t *proto_slab_new(size_t size);

//  Frees every chunk (records still live are freed with them).
void proto_slab_destroy(proto_slab_t **self_p);

//  A zeroed record (aborts when memory runs out, as proto_xcalloc does).
void *proto_slab_alloc(proto_slab_t *self);

//  Gives a record back; NULL is ignored.
void proto_slab_free(proto_slab_t *self, void *record);

//  Records live, and chunks held.
size_t proto_slab_live(const proto_slab_t *self);
size_t proto_slab_chunks(const proto_slab_t *self);

#endif
