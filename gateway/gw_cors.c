/*  gw_cors - see gw_cors.h. Lists are small (apid bounds each to 32
    entries of at most 255 bytes), so lookups are linear.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "gw_cors.h"
#include "gw_http.h"
#include "proto_util.h"

#define S_ITEMS_MAX 32 // entries per list (apid's API_CORS_ITEMS_MAX)

typedef struct {
    char *items[S_ITEMS_MAX]; // owned
    size_t count;             // how many
    char *joined;             // "a, b, c" for a response field (owned)
} s_list_t;

struct gw_cors {
    s_list_t origins; // allowed origins; "*" alone: any
    s_list_t methods; // allowed methods
    s_list_t headers; // allowed request headers
    s_list_t expose;  // exposed response headers
    bool any_origin;  // origins is ["*"]
    bool credentials; // Access-Control-Allow-Credentials: true
    long max_age;     // Access-Control-Max-Age
};

static void
s_list_free(s_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->joined);
    memset(l, 0, sizeof *l);
}

static int
s_list_load(s_list_t *l, const json_t *array)
{
    if (array == NULL)
        return 0;
    if (!json_is_array(array) || json_array_size(array) > S_ITEMS_MAX)
        return -1;
    size_t i;
    const json_t *v;
    gw_buf_t joined = {0};
    json_array_foreach(array, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL || *s == '\0' || strlen(s) > 255 || strpbrk(s, "\r\n,") != NULL) {
            gw_buf_free(&joined);
            return -1;
        }
        l->items[l->count++] = proto_xstrdup(s);
        if (i > 0)
            gw_buf_puts(&joined, ", ");
        gw_buf_puts(&joined, s);
    }
    gw_buf_append(&joined, "", 1);
    l->joined = proto_xstrdup(gw_buf_head(&joined));
    gw_buf_free(&joined);
    return 0;
}

static bool
s_list_has(const s_list_t *l, const char *s, size_t len)
{
    for (size_t i = 0; i < l->count; i++)
        if (strlen(l->items[i]) == len && strncasecmp(l->items[i], s, len) == 0)
            return true;
    return false;
}

gw_cors_t *
gw_cors_new(const char *json)
{
    if (json == NULL || *json == '\0')
        return NULL;
    json_t *doc = json_loads(json, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    gw_cors_t *self = proto_xcalloc(1, sizeof *self);
    const json_t *age = json_object_get(doc, "maxAge");
    self->max_age = json_is_integer(age) ? (long) json_integer_value(age) : 600;
    self->credentials = json_is_true(json_object_get(doc, "credentials"));
    if (s_list_load(&self->origins, json_object_get(doc, "origins")) != 0
        || s_list_load(&self->methods, json_object_get(doc, "methods")) != 0
        || s_list_load(&self->headers, json_object_get(doc, "headers")) != 0
        || s_list_load(&self->expose, json_object_get(doc, "exposeHeaders")) != 0
        || self->origins.count == 0 || self->max_age < 0 || self->max_age > 86400) {
        json_decref(doc);
        gw_cors_destroy(&self);
        return NULL;
    }
    self->any_origin = self->origins.count == 1 && strcmp(self->origins.items[0], "*") == 0;
    json_decref(doc);
    return self;
}

void
gw_cors_destroy(gw_cors_t **self_p)
{
    gw_cors_t *self = *self_p;
    if (self == NULL)
        return;
    s_list_free(&self->origins);
    s_list_free(&self->methods);
    s_list_free(&self->headers);
    s_list_free(&self->expose);
    free(self);
    *self_p = NULL;
}

bool
gw_cors_allows(const gw_cors_t *self, const char *origin, size_t len)
{
    if (self == NULL || origin == NULL || len == 0)
        return false;
    return self->any_origin || s_list_has(&self->origins, origin, len);
}

//  Access-Control-Allow-Origin (and Vary, credentials): shared by both.
static void
s_allow_origin(const gw_cors_t *self, const char *origin, size_t len, gw_buf_t *out)
{
    if (self->any_origin && !self->credentials) {
        gw_buf_puts(out, "Access-Control-Allow-Origin: *\r\n");
    } else {
        gw_buf_puts(out, "Access-Control-Allow-Origin: ");
        gw_buf_append(out, origin, len);
        gw_buf_puts(out, "\r\nVary: Origin\r\n");
    }
    if (self->credentials)
        gw_buf_puts(out, "Access-Control-Allow-Credentials: true\r\n");
}

bool
gw_cors_preflight(const gw_cors_t *self,
                  const char *origin,
                  size_t origin_len,
                  const char *method,
                  size_t method_len,
                  const char *headers,
                  size_t headers_len,
                  gw_buf_t *out,
                  const char **reason)
{
    if (!gw_cors_allows(self, origin, origin_len)) {
        *reason = "origin not allowed";
        return false;
    }
    // a method is case-sensitive (RFC 9110 §9.1); the list is compared as given
    bool method_ok = false;
    for (size_t i = 0; i < self->methods.count; i++)
        if (strlen(self->methods.items[i]) == method_len
            && memcmp(self->methods.items[i], method, method_len) == 0)
            method_ok = true;
    if (!method_ok) {
        *reason = "method not allowed";
        return false;
    }
    size_t pos = 0;
    const char *tok;
    size_t toklen;
    while (gw_http_list_next(headers, headers_len, &pos, &tok, &toklen))
        if (!s_list_has(&self->headers, tok, toklen)) {
            *reason = "request header not allowed";
            return false;
        }
    s_allow_origin(self, origin, origin_len, out);
    gw_buf_put3(out, "Access-Control-Allow-Methods: ", self->methods.joined, "\r\n");
    if (self->headers.count)
        gw_buf_put3(out, "Access-Control-Allow-Headers: ", self->headers.joined, "\r\n");
    gw_buf_printf(out, "Access-Control-Max-Age: %ld\r\n", self->max_age);
    return true;
}

void
gw_cors_response(const gw_cors_t *self, const char *origin, size_t origin_len, gw_buf_t *out)
{
    if (!gw_cors_allows(self, origin, origin_len))
        return;
    s_allow_origin(self, origin, origin_len, out);
    if (self->expose.count)
        gw_buf_put3(out, "Access-Control-Expose-Headers: ", self->expose.joined, "\r\n");
}
