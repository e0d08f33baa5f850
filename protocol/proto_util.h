/*  proto_util - small helpers every actor uses: allocation that aborts on
    out-of-memory (as czmq's safe_malloc and redis's zmalloc do) and bounded
    string copies.
*/
#ifndef PROTO_UTIL_H
#define PROTO_UTIL_H

#include <stdbool.h>
#include <stddef.h>

//  Allocate or abort with a message on stderr. Never return NULL.
void *proto_xmalloc(size_t size);
void *proto_xcalloc(size_t count, size_t size);
void *proto_xrealloc(void *ptr, size_t size);
char *proto_xstrdup(const char *s);

//  Copy src into dst of capacity cap, always NUL-terminated. Returns true if
//  the whole of src fitted.
bool proto_strlcpy(char *dst, const char *src, size_t cap);

//  True if s starts with prefix.
bool proto_starts_with(const char *s, const char *prefix);

#define PROTO_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
