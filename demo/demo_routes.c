/*  demo_routes - what the demo backend answers (see demo_routes.h).

    GET / is the hot path of every benchmark, so its response is built once:
    the whole HTTP/1.1 keep-alive response is one static buffer queued by
    reference, and the rarer variants (Connection: close, HTTP/1.0
    keep-alive) are a prebuilt head plus the same body. Everything else is
    formatted per request into one reused scratch buffer.
*/
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "demo_conn.h"
#include "demo_routes.h"
#include "proto_log.h"
#include "proto_util.h"

#define DEMO_ROUTES_TEXT          "text/plain; charset=utf-8"
#define DEMO_ROUTES_JSON          "application/json"
#define DEMO_ROUTES_GET_ONLY      "Allow: GET, HEAD\r\n"
#define DEMO_ROUTES_CHUNKS_MAX    100000    // /chunked?n= at most
#define DEMO_ROUTES_CHUNK_MAX     (1 << 20) // /chunked?size= at most
#define DEMO_ROUTES_CHUNKS_DEF    4         // /chunked without n
#define DEMO_ROUTES_CHUNK_DEF     1024      // /chunked without size
#define DEMO_ROUTES_SLOW_MAX      600000    // /slow?ms= at most (10 minutes)
#define DEMO_ROUTES_SLOW_DEF      1000      // /slow without ms
#define DEMO_ROUTES_FILE_NAME_MAX 255       // longest static file name

//  The chat page (client/index.html, SPEC section 9) is reached at /chat.html.
#define DEMO_ROUTES_CHAT_PAGE "/chat.html"
#define DEMO_ROUTES_CHAT_FILE "index.html"

//  A growable byte buffer, reused from request to request.
typedef struct {
    char *data; // bytes
    size_t len; // used
    size_t cap; // allocated
} demo_buf_t;

struct demo_routes {
    char *name;              // DEMO_NAME
    char *region;            // DEMO_REGION
    char *service;           // DEMO_SERVICE
    int static_fd;           // DEMO_STATIC_DIR opened, or -1
    struct timespec started; // monotonic start, for /health's uptime
    char *root;              // GET /: head (HTTP/1.1 keep-alive) then body
    size_t root_len;         // whole length
    size_t root_head_len;    // head length; the body follows
    size_t body_len;         // body length
    char *root_heads[3];     // heads by demo_conn_keep_alive_header (index 0 unused)
    demo_buf_t health_tail;  // ,"service":...,"region":...} of /health
    demo_buf_t json;         // scratch: a JSON body being built
    demo_buf_t join;         // scratch: a header's values joined
};

//  --------------------------------------------------------------------------
//  Buffers

static char *
s_buf_reserve(demo_buf_t *buf, size_t n)
{
    if (buf->len + n > buf->cap) {
        size_t cap = buf->cap ? buf->cap * 2 : 1024;
        while (cap < buf->len + n)
            cap *= 2;
        buf->data = proto_xrealloc(buf->data, cap);
        buf->cap = cap;
    }
    return buf->data + buf->len;
}

static void
s_buf_add(demo_buf_t *buf, const char *data, size_t len)
{
    memcpy(s_buf_reserve(buf, len), data, len);
    buf->len += len;
}

static void
s_buf_str(demo_buf_t *buf, const char *s)
{
    s_buf_add(buf, s, strlen(s));
}

//  Append s as a JSON string, quotes included.
static void
s_buf_json(demo_buf_t *buf, const char *s, size_t len)
{
    size_t cap = len * 6 + 3; // every byte may become \u00XX
    char *p = s_buf_reserve(buf, cap);
    p[0] = '\0';
    size_t n = proto_log_json_string(p, cap, s, len);
    assert(n >= 2);
    buf->len += n;
}

static void
s_buf_free(demo_buf_t *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

//  --------------------------------------------------------------------------
//  Helpers

static bool
s_path_is(const demo_request_t *req, const char *path)
{
    size_t len = strlen(path);
    return req->path_len == len && memcmp(req->path, path, len) == 0;
}

static bool
s_is_get(const demo_request_t *req)
{
    return strcmp(req->method, "GET") == 0 || req->head;
}

static void
s_respond(demo_conn_t *conn, int status, const char *ctype, const char *extra, const char *body)
{
    size_t len = strlen(body);
    demo_conn_head(conn, status, ctype, (int64_t) len, extra);
    demo_conn_body_static(conn, body, len);
}

//  As s_respond, with a body that is copied.
static void
s_respond_copy(demo_conn_t *conn, int status, const char *ctype, const char *body, size_t len)
{
    demo_conn_head(conn, status, ctype, (int64_t) len, NULL);
    demo_conn_body(conn, body, len);
}

//  Find query parameter key and parse it as a decimal in [min, max]; value
//  keeps def when the key is absent. Returns 0, or -1 for a bad value.
static int
s_query_uint(const demo_request_t *req,
             const char *key,
             uint64_t min,
             uint64_t max,
             uint64_t def,
             uint64_t *value)
{
    *value = def;
    size_t key_len = strlen(key);
    const char *p = req->query;
    const char *end = req->query + req->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t) (end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t) (stop - p));
        if (eq && (size_t) (eq - p) == key_len && memcmp(p, key, key_len) == 0) {
            const char *digit = eq + 1;
            if (digit == stop || stop - digit > 12)
                return -1;
            uint64_t v = 0;
            for (; digit < stop; digit++) {
                if (*digit < '0' || *digit > '9')
                    return -1;
                v = v * 10 + (uint64_t) (*digit - '0');
            }
            if (v < min || v > max)
                return -1;
            *value = v;
        }
        p = stop + 1;
    }
    return 0;
}

static const char *
s_content_type(const char *name, size_t len)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
        {".xml", "application/xml"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".woff", "font/woff"},
        {".woff2", "font/woff2"},
        {".wasm", "application/wasm"},
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(types); i++) {
        size_t ext_len = strlen(types[i].ext);
        if (len > ext_len && strncasecmp(name + len - ext_len, types[i].ext, ext_len) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

//  True for a file name we may serve: [A-Za-z0-9._-], not starting with a
//  dot, so neither "..", nor a hidden file, nor a subdirectory path.
static bool
s_safe_name(const char *name, size_t len)
{
    if (len == 0 || len > DEMO_ROUTES_FILE_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_' || c == '-'))
            return false;
    }
    return true;
}

//  --------------------------------------------------------------------------
//  Endpoints

static void
s_root(demo_routes_t *self, demo_conn_t *conn)
{
    int variant = demo_conn_keep_alive_header(conn);
    if (variant == 0) {
        demo_conn_send_static(conn, 200, self->root, self->root_len, self->root_head_len);
        return;
    }
    size_t head_len = strlen(self->root_heads[variant]);
    demo_conn_send_static(conn, 200, self->root_heads[variant], head_len, head_len);
    demo_conn_body_static(conn, self->root + self->root_head_len, self->body_len);
}

static void
s_health(demo_routes_t *self, demo_conn_t *conn)
{
    struct timespec now, mono;
    clock_gettime(CLOCK_REALTIME, &now);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    double uptime = (double) (mono.tv_sec - self->started.tv_sec)
                    + (double) (mono.tv_nsec - self->started.tv_nsec) / 1e9;
    char head[128];
    int n = snprintf(head, sizeof head,
                     "{\"status\":\"healthy\",\"timestamp\":\"%s.%03dZ\",\"uptime\":%.3f", stamp,
                     (int) (now.tv_nsec / 1000000), uptime);
    demo_buf_t *json = &self->json;
    json->len = 0;
    s_buf_add(json, head, (size_t) n);
    s_buf_add(json, self->health_tail.data, self->health_tail.len);
    s_respond_copy(conn, 200, DEMO_ROUTES_JSON, json->data, json->len);
}

static void
s_echo(demo_routes_t *self, demo_conn_t *conn, const demo_request_t *req)
{
    demo_buf_t *json = &self->json;
    json->len = 0;
    s_buf_str(json, "{\"method\":");
    s_buf_json(json, req->method, strlen(req->method));
    s_buf_str(json, ",\"path\":");
    s_buf_json(json, req->path, req->path_len);
    s_buf_str(json, ",\"query\":");
    s_buf_json(json, req->query, req->query_len);
    s_buf_str(json, ",\"headers\":{");
    bool first = true;
    for (size_t i = 0; i < req->header_count; i++) {
        const demo_header_t *h = &req->headers[i];
        const char *name = req->base + h->name_off;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = req->headers[j].name_len == h->name_len
                   && memcmp(req->base + req->headers[j].name_off, name, h->name_len) == 0;
        if (seen)
            continue; // joined into the first one of its name
        demo_buf_t *join = &self->join;
        join->len = 0;
        s_buf_add(join, req->base + h->value_off, h->value_len);
        for (size_t j = i + 1; j < req->header_count; j++) {
            const demo_header_t *o = &req->headers[j];
            if (o->name_len == h->name_len
                && memcmp(req->base + o->name_off, name, h->name_len) == 0) {
                s_buf_add(join, ", ", 2);
                s_buf_add(join, req->base + o->value_off, o->value_len);
            }
        }
        if (!first)
            s_buf_add(json, ",", 1);
        first = false;
        s_buf_json(json, name, h->name_len);
        s_buf_add(json, ":", 1);
        s_buf_json(json, join->data, join->len);
    }
    char tail[160];
    int n = snprintf(tail, sizeof tail, "},\"bodyBytes\":%llu,\"bodySha256\":\"",
                     (unsigned long long) req->body_bytes);
    s_buf_add(json, tail, (size_t) n);
    static const char hex[] = "0123456789abcdef";
    char *p = s_buf_reserve(json, 64);
    for (size_t i = 0; i < 32; i++) {
        uint8_t byte = req->body_sha256 ? req->body_sha256[i] : 0;
        p[2 * i] = hex[byte >> 4];
        p[2 * i + 1] = hex[byte & 0xf];
    }
    json->len += 64;
    s_buf_str(json, "\"}");
    s_respond_copy(conn, 200, DEMO_ROUTES_JSON, json->data, json->len);
}

static void
s_chunked(demo_conn_t *conn, const demo_request_t *req)
{
    uint64_t count, size;
    if (s_query_uint(req, "n", 0, DEMO_ROUTES_CHUNKS_MAX, DEMO_ROUTES_CHUNKS_DEF, &count) != 0
        || s_query_uint(req, "size", 1, DEMO_ROUTES_CHUNK_MAX, DEMO_ROUTES_CHUNK_DEF, &size) != 0) {
        s_respond(conn, 400, DEMO_ROUTES_TEXT, NULL, "Bad Request: n=0..100000&size=1..1048576");
        return;
    }
    demo_conn_head(conn, 200, DEMO_ROUTES_TEXT, -1, NULL);
    demo_conn_stream_chunks(conn, (uint32_t) count, (size_t) size);
}

static void
s_slow(demo_conn_t *conn, const demo_request_t *req)
{
    uint64_t ms;
    if (s_query_uint(req, "ms", 0, DEMO_ROUTES_SLOW_MAX, DEMO_ROUTES_SLOW_DEF, &ms) != 0) {
        s_respond(conn, 400, DEMO_ROUTES_TEXT, NULL, "Bad Request: ms=0..600000");
        return;
    }
    if (ms > 0)
        demo_conn_delay(conn, ms);
    char body[64];
    int n = snprintf(body, sizeof body, "Slept %llu ms", (unsigned long long) ms);
    s_respond_copy(conn, 200, DEMO_ROUTES_TEXT, body, (size_t) n);
}

static void
s_status(demo_conn_t *conn, const demo_request_t *req)
{
    const char *digits = req->path + strlen("/status/");
    size_t len = req->path_len - strlen("/status/");
    int status = 0;
    for (size_t i = 0; i < len && status >= 0; i++)
        status = digits[i] >= '0' && digits[i] <= '9' ? status * 10 + (digits[i] - '0') : -1;
    if (len != 3 || status < 200 || status > 599) {
        s_respond(conn, 400, DEMO_ROUTES_TEXT, NULL, "Bad Request: /status/200..599");
        return;
    }
    char body[96];
    int n = snprintf(body, sizeof body, "%d %s", status, demo_conn_reason(status));
    s_respond_copy(conn, status, DEMO_ROUTES_TEXT, body, (size_t) n);
}

//  Serve a file directly inside the static directory; /chat.html is its
//  index.html (the chat page, client/index.html, SPEC section 9). Returns
//  false if there is no such file (the caller answers 404).
static bool
s_static(demo_routes_t *self, demo_conn_t *conn, const demo_request_t *req)
{
    const char *name = req->path + 1;
    size_t len = req->path_len - 1;
    if (s_path_is(req, DEMO_ROUTES_CHAT_PAGE)) {
        name = DEMO_ROUTES_CHAT_FILE;
        len = strlen(DEMO_ROUTES_CHAT_FILE);
    }
    if (self->static_fd < 0 || !s_safe_name(name, len))
        return false;
    char file[DEMO_ROUTES_FILE_NAME_MAX + 1];
    memcpy(file, name, len);
    file[len] = '\0';
    int fd = openat(self->static_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return false;
    }
    demo_conn_head(conn, 200, s_content_type(name, len), (int64_t) st.st_size, NULL);
    demo_conn_stream_file(conn, &fd, (uint64_t) st.st_size);
    return true;
}

//  --------------------------------------------------------------------------
//  Public

bool
demo_routes_wants_body_hash(const demo_request_t *req)
{
    return s_path_is(req, "/echo");
}

void
demo_routes_handle(demo_routes_t *self, demo_conn_t *conn, const demo_request_t *req)
{
    if (s_path_is(req, "/echo")) {
        s_echo(self, conn, req);
        return;
    }
    if (s_path_is(req, "/slow")) {
        s_slow(conn, req);
        return;
    }
    if (req->path_len > strlen("/status/") && memcmp(req->path, "/status/", 8) == 0) {
        s_status(conn, req);
        return;
    }
    bool known = s_path_is(req, "/") || s_path_is(req, "/health") || s_path_is(req, "/chunked");
    if (known && !s_is_get(req)) {
        s_respond(conn, 405, DEMO_ROUTES_TEXT, DEMO_ROUTES_GET_ONLY, "Method Not Allowed");
        return;
    }
    if (s_path_is(req, "/"))
        s_root(self, conn);
    else if (s_path_is(req, "/health"))
        s_health(self, conn);
    else if (s_path_is(req, "/chunked"))
        s_chunked(conn, req);
    else if (!s_is_get(req) || !s_static(self, conn, req))
        s_respond(conn, 404, DEMO_ROUTES_TEXT, NULL, "Not Found");
}

//  The head of GET / for one Connection header variant.
static char *
s_root_head(size_t body_len, const char *connection)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: " DEMO_ROUTES_TEXT
                     "\r\nContent-Length: %zu\r\n%s\r\n",
                     body_len, connection);
    assert(n > 0 && (size_t) n < sizeof head);
    return proto_xstrdup(head);
}

//  Build GET /'s responses: the body, the whole keep-alive response, and the
//  heads of the other variants.
static void
s_build_root(demo_routes_t *self, const demo_routes_config_t *cfg)
{
    demo_buf_t body = {0};
    if (cfg->body_bytes > 0) {
        memset(s_buf_reserve(&body, cfg->body_bytes), 'x', cfg->body_bytes);
        body.len = cfg->body_bytes;
    } else {
        s_buf_str(&body, "Hello from ");
        s_buf_str(&body, cfg->name);
        s_buf_str(&body, " (Region ");
        s_buf_str(&body, cfg->region);
        s_buf_str(&body, ")");
    }
    self->body_len = body.len;
    char *head = s_root_head(body.len, "");
    self->root_head_len = strlen(head);
    self->root_len = self->root_head_len + body.len;
    self->root = proto_xmalloc(self->root_len);
    memcpy(self->root, head, self->root_head_len);
    memcpy(self->root + self->root_head_len, body.data, body.len);
    free(head);
    s_buf_free(&body);
    self->root_heads[1] = s_root_head(self->body_len, "Connection: close\r\n");
    self->root_heads[2] = s_root_head(self->body_len, "Connection: keep-alive\r\n");
}

demo_routes_t *
demo_routes_new(const demo_routes_config_t *cfg, char *err, size_t errlen)
{
    demo_routes_t *self = proto_xcalloc(1, sizeof *self);
    self->static_fd = -1;
    self->name = proto_xstrdup(cfg->name);
    self->region = proto_xstrdup(cfg->region);
    self->service = proto_xstrdup(cfg->service);
    clock_gettime(CLOCK_MONOTONIC, &self->started);
    if (cfg->static_dir) {
        self->static_fd = open(cfg->static_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (self->static_fd < 0) {
            snprintf(err, errlen, "bad value for DEMO_STATIC_DIR: '%s' (%s)", cfg->static_dir,
                     strerror(errno));
            goto fail;
        }
    }

    s_build_root(self, cfg);
    s_buf_str(&self->health_tail, ",\"service\":");
    s_buf_json(&self->health_tail, self->service, strlen(self->service));
    s_buf_str(&self->health_tail, ",\"region\":");
    s_buf_json(&self->health_tail, self->region, strlen(self->region));
    s_buf_str(&self->health_tail, "}");
    return self;
fail:
    demo_routes_destroy(&self);
    return NULL;
}

void
demo_routes_destroy(demo_routes_t **self_p)
{
    assert(self_p);
    demo_routes_t *self = *self_p;
    if (self == NULL)
        return;
    s_buf_free(&self->join);
    s_buf_free(&self->json);
    s_buf_free(&self->health_tail);
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(self->root_heads); i++) {
        free(self->root_heads[i]);
        self->root_heads[i] = NULL;
    }
    free(self->root);
    self->root = NULL;
    if (self->static_fd >= 0)
        close(self->static_fd);
    free(self->service);
    self->service = NULL;
    free(self->region);
    self->region = NULL;
    free(self->name);
    self->name = NULL;
    free(self);
    *self_p = NULL;
}
