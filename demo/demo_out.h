/*  demo_out - the output queue of one demo backend connection.

    Queued output is a list of segments: bytes copied into the queue's own
    buffer (kept by offset, so that the buffer may grow) or static bytes
    that outlive every connection (prebuilt responses), sent with one
    writev. A hold mark keeps segments queued after it from being written
    until released: a delayed response is queued at once and held, so that
    whatever comes after it stays behind it.

    The buffer is reused: once everything is written it starts over at its
    beginning, and a long stream moves its unwritten tail to the front
    instead of growing the buffer.
*/
#ifndef DEMO_OUT_H
#define DEMO_OUT_H

#include <stdbool.h>
#include <stddef.h>

#define DEMO_OUT_SEGMENTS 64 // segments one queue holds (one writev)

typedef struct demo_out demo_out_t;

//  An empty queue.
demo_out_t *demo_out_new(void);

//  Free the queue and its buffer. Sets *self_p to NULL. Safe to call twice.
void demo_out_destroy(demo_out_t **self_p);

//  Room for n more bytes; returns where to write them (valid until the next
//  call). demo_out_commit then queues what was written there.
char *demo_out_reserve(demo_out_t *self, size_t n);
void demo_out_commit(demo_out_t *self, size_t n);

//  Queue a copy of data.
void demo_out_copy(demo_out_t *self, const void *data, size_t len);

//  Queue static data by reference: it must outlive the queue.
void demo_out_static(demo_out_t *self, const char *data, size_t len);

//  Hold what is queued from now on until demo_out_release.
void demo_out_hold(demo_out_t *self);
void demo_out_release(demo_out_t *self);

//  Bytes queued and not yet written, held ones included.
size_t demo_out_pending(const demo_out_t *self);

//  Free segments. Each queueing call uses at most one; the caller stops
//  adding before they run out (a programmer error, asserted).
size_t demo_out_free_segments(const demo_out_t *self);

//  True if something may be written now (queued and not held).
bool demo_out_flushable(const demo_out_t *self);

//  Write what is not held with one writev (retried on EINTR). Returns 1 if
//  all of it was written, 0 if the socket took less or would block, -1 on
//  an error (errno set).
int demo_out_write(demo_out_t *self, int fd);

#endif
