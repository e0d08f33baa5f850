/*  demo_out - the output queue of one demo backend connection (see demo_out.h). */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "demo_out.h"
#include "proto_util.h"

#define DEMO_OUT_KEEP    (1 << 20) // an emptied buffer larger than this is freed
#define DEMO_OUT_NO_HOLD SIZE_MAX  // hold: nothing is held

//  One piece of queued output.
typedef struct {
    const char *ext; // static bytes, or NULL when the bytes are in buf at off
    size_t off;      // offset into buf (ext == NULL)
    size_t len;      // bytes still to write
} demo_seg_t;

struct demo_out {
    char *buf;                          // owned bytes
    size_t len;                         // used
    size_t cap;                         // allocated
    demo_seg_t segs[DEMO_OUT_SEGMENTS]; // queued, in order
    size_t nseg;                        // used
    size_t pending;                     // bytes in segs
    size_t hold;                        // segments from this index are held
};

demo_out_t *
demo_out_new(void)
{
    demo_out_t *self = proto_xcalloc(1, sizeof *self);
    self->hold = DEMO_OUT_NO_HOLD;
    return self;
}

void
demo_out_destroy(demo_out_t **self_p)
{
    assert(self_p);
    demo_out_t *self = *self_p;
    if (self == NULL)
        return;
    free(self->buf);
    self->buf = NULL;
    free(self);
    *self_p = NULL;
}

char *
demo_out_reserve(demo_out_t *self, size_t n)
{
    if (self->len + n <= self->cap)
        return self->buf + self->len;
    // move the unwritten owned bytes to the front first
    size_t first = self->len;
    for (size_t i = 0; i < self->nseg; i++) {
        if (self->segs[i].ext == NULL) {
            first = self->segs[i].off;
            break;
        }
    }
    if (first > 0) {
        memmove(self->buf, self->buf + first, self->len - first);
        self->len -= first;
        for (size_t i = 0; i < self->nseg; i++)
            if (self->segs[i].ext == NULL)
                self->segs[i].off -= first;
    }
    if (self->len + n > self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 4096;
        while (cap < self->len + n)
            cap *= 2;
        self->buf = proto_xrealloc(self->buf, cap);
        self->cap = cap;
    }
    return self->buf + self->len;
}

//  The last segment, if new bytes may be merged into it: it exists and is
//  on the same side of the hold mark as they are.
static demo_seg_t *
s_mergeable(demo_out_t *self)
{
    if (self->nseg == 0 || (self->hold != DEMO_OUT_NO_HOLD && self->nseg <= self->hold))
        return NULL;
    return &self->segs[self->nseg - 1];
}

static void
s_add(demo_out_t *self, demo_seg_t seg)
{
    assert(self->nseg < DEMO_OUT_SEGMENTS);
    self->segs[self->nseg++] = seg;
}

void
demo_out_commit(demo_out_t *self, size_t n)
{
    if (n == 0)
        return;
    demo_seg_t *last = s_mergeable(self);
    if (last && last->ext == NULL && last->off + last->len == self->len)
        last->len += n;
    else
        s_add(self, (demo_seg_t){.ext = NULL, .off = self->len, .len = n});
    self->len += n;
    self->pending += n;
}

void
demo_out_copy(demo_out_t *self, const void *data, size_t len)
{
    if (len == 0)
        return;
    memcpy(demo_out_reserve(self, len), data, len);
    demo_out_commit(self, len);
}

void
demo_out_static(demo_out_t *self, const char *data, size_t len)
{
    if (len == 0)
        return;
    demo_seg_t *last = s_mergeable(self);
    if (last && last->ext && last->ext + last->len == data)
        last->len += len;
    else
        s_add(self, (demo_seg_t){.ext = data, .len = len});
    self->pending += len;
}

void
demo_out_hold(demo_out_t *self)
{
    self->hold = self->nseg;
}

void
demo_out_release(demo_out_t *self)
{
    self->hold = DEMO_OUT_NO_HOLD;
}

size_t
demo_out_pending(const demo_out_t *self)
{
    return self->pending;
}

size_t
demo_out_free_segments(const demo_out_t *self)
{
    return DEMO_OUT_SEGMENTS - self->nseg;
}

static size_t
s_flushable(const demo_out_t *self)
{
    return self->hold < self->nseg ? self->hold : self->nseg;
}

bool
demo_out_flushable(const demo_out_t *self)
{
    return s_flushable(self) > 0;
}

//  Drop n written bytes from the front.
static void
s_consume(demo_out_t *self, size_t n)
{
    size_t done = 0;
    self->pending -= n;
    while (n > 0) {
        demo_seg_t *seg = &self->segs[done];
        if (n >= seg->len) {
            n -= seg->len;
            done++;
        } else {
            if (seg->ext)
                seg->ext += n;
            else
                seg->off += n;
            seg->len -= n;
            n = 0;
        }
    }
    memmove(self->segs, self->segs + done, (self->nseg - done) * sizeof self->segs[0]);
    self->nseg -= done;
    if (self->hold != DEMO_OUT_NO_HOLD)
        self->hold -= done;
    if (self->nseg == 0) {
        self->len = 0;
        if (self->cap > DEMO_OUT_KEEP) {
            free(self->buf);
            self->buf = NULL;
            self->cap = 0;
        }
    }
}

int
demo_out_write(demo_out_t *self, int fd)
{
    size_t count = s_flushable(self);
    if (count == 0)
        return 1;
    struct iovec iov[DEMO_OUT_SEGMENTS];
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        const demo_seg_t *seg = &self->segs[i];
        iov[i].iov_base = (void *) (seg->ext ? seg->ext : self->buf + seg->off);
        iov[i].iov_len = seg->len;
        total += seg->len;
    }
    ssize_t n;
    do {
        n = writev(fd, iov, (int) count);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    s_consume(self, (size_t) n);
    return (size_t) n == total ? 1 : 0;
}
