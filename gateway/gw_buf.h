/*  gw_buf - a growable byte buffer with a read offset, for socket I/O.

    Bytes are appended at the end and consumed from the front; the consumed
    prefix is reclaimed lazily (memmove when it pays), so reads and writes are
    amortised O(1). A buffer never grows beyond the limit its owner checks.
*/
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char *data;   // storage
    size_t start; // first unread byte
    size_t end;   // one past the last byte
    size_t cap;   // allocated
} gw_buf_t;

//  Unread bytes and their count.
static inline char *
gw_buf_head(gw_buf_t *b)
{
    return b->data + b->start;
}
static inline size_t
gw_buf_len(const gw_buf_t *b)
{
    return b->end - b->start;
}

//  Make room for at least n more bytes at the end; returns where to write.
char *gw_buf_reserve(gw_buf_t *b, size_t n);
//  Count n bytes written at the end (after gw_buf_reserve).
void gw_buf_commit(gw_buf_t *b, size_t n);
//  Append bytes.
void gw_buf_append(gw_buf_t *b, const void *data, size_t len);
//  Append a NUL-terminated string.
void gw_buf_puts(gw_buf_t *b, const char *s);
//  Append an unsigned number in decimal (no printf: the hot path uses it).
void gw_buf_put_u64(gw_buf_t *b, unsigned long long v);

//  Append a, b and c (NUL-terminated; any may be NULL): "Name: " value "\r\n".
void gw_buf_put3(gw_buf_t *b, const char *a, const char *m, const char *c);

//  Append formatted text (printf-style, literal format strings only).
void gw_buf_printf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
//  Drop n bytes from the front.
void gw_buf_consume(gw_buf_t *b, size_t n);
//  Empty it (keeps the memory).
void gw_buf_reset(gw_buf_t *b);
//  Free the memory. Safe to call twice.
void gw_buf_free(gw_buf_t *b);
//  An empty buffer without memory gets exactly n bytes (instead of the
//  4 KiB a first reserve takes): for a copy whose size is known.
void gw_buf_exact(gw_buf_t *b, size_t n);

//  Read from fd into the buffer (at most max bytes). Returns bytes read,
//  0 at EOF, -1 with errno (EAGAIN when nothing is there).
ssize_t gw_buf_read(gw_buf_t *b, int fd, size_t max);
//  Write the buffer's bytes to fd and consume what was written. Returns the
//  bytes written or -1 with errno.
ssize_t gw_buf_write(gw_buf_t *b, int fd);

#endif
