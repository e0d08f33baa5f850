/*  gw_buf - growable byte buffer with a read offset. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_buf.h"
#include "proto_util.h"

char *
gw_buf_reserve(gw_buf_t *b, size_t n)
{
    if (b->cap - b->end >= n)
        return b->data + b->end;
    size_t used = b->end - b->start;
    if (b->start > 0 && b->cap - used >= n && b->start >= used) {
        // reclaim the consumed prefix when that frees enough and copies little
        memmove(b->data, b->data + b->start, used);
        b->start = 0;
        b->end = used;
        return b->data + b->end;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - used < n)
        cap *= 2;
    char *data = proto_xmalloc(cap);
    if (used)
        memcpy(data, b->data + b->start, used);
    free(b->data);
    b->data = data;
    b->cap = cap;
    b->start = 0;
    b->end = used;
    return b->data + b->end;
}

void
gw_buf_commit(gw_buf_t *b, size_t n)
{
    b->end += n;
}

void
gw_buf_append(gw_buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    memcpy(gw_buf_reserve(b, len), data, len);
    b->end += len;
}

void
gw_buf_puts(gw_buf_t *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

void
gw_buf_printf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = gw_buf_reserve(b, 256);
    int n = vsnprintf(dst, b->cap - b->end, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t) n >= b->cap - b->end) {
        dst = gw_buf_reserve(b, (size_t) n + 1);
        va_start(ap, fmt);
        vsnprintf(dst, (size_t) n + 1, fmt, ap);
        va_end(ap);
    }
    b->end += (size_t) n;
}

void
gw_buf_consume(gw_buf_t *b, size_t n)
{
    b->start += n;
    if (b->start >= b->end)
        b->start = b->end = 0;
}

void
gw_buf_reset(gw_buf_t *b)
{
    b->start = b->end = 0;
}

void
gw_buf_free(gw_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
}

void
gw_buf_exact(gw_buf_t *b, size_t n)
{
    if (b->data != NULL || n == 0)
        return;
    b->data = proto_xmalloc(n);
    b->cap = n;
    b->start = b->end = 0;
}

ssize_t
gw_buf_read(gw_buf_t *b, int fd, size_t max)
{
    char *dst = gw_buf_reserve(b, max);
    ssize_t n;
    do
        n = read(fd, dst, max);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        b->end += (size_t) n;
    return n;
}

ssize_t
gw_buf_write(gw_buf_t *b, int fd)
{
    size_t len = gw_buf_len(b);
    if (len == 0)
        return 0;
    ssize_t n;
    do
        n = send(fd, gw_buf_head(b), len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        gw_buf_consume(b, (size_t) n);
    return n;
}

void
gw_buf_put_u64(gw_buf_t *b, unsigned long long v)
{
    char digits[24];
    char *p = digits + sizeof digits;
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    gw_buf_append(b, p, (size_t) (digits + sizeof digits - p));
}

void
gw_buf_put3(gw_buf_t *b, const char *a, const char *m, const char *c)
{
    if (a)
        gw_buf_puts(b, a);
    if (m)
        gw_buf_puts(b, m);
    if (c)
        gw_buf_puts(b, c);
}
