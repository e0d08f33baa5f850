/*  demo_request - a request of the demo backend (see demo_request.h). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "demo_request.h"
#include "proto_util.h"

//  Which kind of header callback came last (names and values arrive in pieces).
typedef enum {
    DEMO_LAST_NONE = 0,
    DEMO_LAST_FIELD,
    DEMO_LAST_VALUE,
} demo_last_cb_t;

struct demo_request_buf {
    char *arena;            // the target, NUL, then header names and values
    size_t len;             // used
    size_t cap;             // allocated
    size_t target_len;      // request target length
    bool target_ended;      // its NUL has been appended
    demo_header_t *headers; // the headers
    size_t header_count;    // used
    size_t header_cap;      // allocated
    demo_last_cb_t last_cb; // last header callback
};

const char *
demo_request_header(const demo_request_t *req, const char *name, size_t *len_p)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->header_count; i++) {
        const demo_header_t *h = &req->headers[i];
        if (h->name_len == len && memcmp(req->base + h->name_off, name, len) == 0) {
            *len_p = h->value_len;
            return req->base + h->value_off;
        }
    }
    return NULL;
}

demo_request_buf_t *
demo_request_buf_new(void)
{
    return proto_xcalloc(1, sizeof(demo_request_buf_t));
}

void
demo_request_buf_destroy(demo_request_buf_t **self_p)
{
    assert(self_p);
    demo_request_buf_t *self = *self_p;
    if (self == NULL)
        return;
    free(self->headers);
    self->headers = NULL;
    free(self->arena);
    self->arena = NULL;
    free(self);
    *self_p = NULL;
}

void
demo_request_buf_reset(demo_request_buf_t *self)
{
    self->len = 0;
    self->target_len = 0;
    self->target_ended = false;
    self->header_count = 0;
    self->last_cb = DEMO_LAST_NONE;
}

static void
s_append(demo_request_buf_t *self, const char *data, size_t len, bool lower)
{
    if (self->len + len > self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        while (cap < self->len + len)
            cap *= 2;
        self->arena = proto_xrealloc(self->arena, cap);
        self->cap = cap;
    }
    char *dst = self->arena + self->len;
    if (lower) {
        for (size_t i = 0; i < len; i++) {
            char c = data[i];
            dst[i] = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
        }
    } else {
        memcpy(dst, data, len);
    }
    self->len += len;
}

static void
s_end_target(demo_request_buf_t *self)
{
    if (!self->target_ended) {
        s_append(self, "", 1, false);
        self->target_ended = true;
    }
}

int
demo_request_buf_target(demo_request_buf_t *self, const char *at, size_t len)
{
    assert(!self->target_ended);
    if (self->target_len + len > DEMO_REQUEST_TARGET_MAX)
        return -1;
    s_append(self, at, len, false);
    self->target_len += len;
    return 0;
}

int
demo_request_buf_field(demo_request_buf_t *self, const char *at, size_t len)
{
    s_end_target(self);
    if (self->last_cb != DEMO_LAST_FIELD) {
        if (self->header_count == DEMO_REQUEST_HEADERS_MAX)
            return -1;
        if (self->header_count == self->header_cap) {
            self->header_cap = self->header_cap ? self->header_cap * 2 : 16;
            self->headers =
                proto_xrealloc(self->headers, self->header_cap * sizeof self->headers[0]);
        }
        self->headers[self->header_count++] = (demo_header_t){.name_off = (uint32_t) self->len};
        self->last_cb = DEMO_LAST_FIELD;
    }
    s_append(self, at, len, true);
    self->headers[self->header_count - 1].name_len += (uint32_t) len;
    return 0;
}

void
demo_request_buf_value(demo_request_buf_t *self, const char *at, size_t len)
{
    assert(self->header_count > 0);
    demo_header_t *h = &self->headers[self->header_count - 1];
    if (self->last_cb != DEMO_LAST_VALUE) {
        h->value_off = (uint32_t) self->len;
        self->last_cb = DEMO_LAST_VALUE;
    }
    s_append(self, at, len, false);
    h->value_len += (uint32_t) len;
}

void
demo_request_buf_view(demo_request_buf_t *self, demo_request_t *req)
{
    s_end_target(self);
    const char *target = self->arena;
    const char *mark = memchr(target, '?', self->target_len);
    size_t path_len = mark ? (size_t) (mark - target) : self->target_len;
    req->target = target;
    req->path = target;
    req->path_len = path_len;
    req->query = mark ? mark + 1 : "";
    req->query_len = mark ? self->target_len - path_len - 1 : 0;
    req->base = self->arena;
    req->headers = self->headers;
    req->header_count = self->header_count;
}
