/*  demo_conn - one client connection of the demo backend (see demo_conn.h).

    A delayed response is queued at once but held in the output queue until
    its timer fires; a streamed body is produced in slices as the queue
    drains. While either is in progress the parser stays paused, which is
    what keeps pipelined answers in order without queueing requests.
*/
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <http_parser.h>
#include <openssl/evp.h>

#include "demo_conn.h"
#include "demo_out.h"
#include "demo_routes.h"
#include "proto_log.h"
#include "proto_util.h"

#define DEMO_CONN_READ_MAX     16384        // read buffer; pipelined requests wait here
#define DEMO_CONN_SEGS_SPARE   8            // stop parsing when fewer output segments are free
#define DEMO_CONN_PENDING_HIGH (1 << 20)    // stop parsing while this much output waits
#define DEMO_CONN_STREAM_LOW   (64 * 1024)  // refill a stream when less than this waits
#define DEMO_CONN_STREAM_FILL  (256 * 1024) // bytes a stream produces per refill
#define DEMO_CONN_WRITE_ROUNDS 8            // writevs per event before yielding to others
#define DEMO_CONN_LINGER       2.0          // seconds we read and drop after our last byte

typedef enum {
    DEMO_STREAM_NONE = 0,
    DEMO_STREAM_CHUNKS, // /chunked: count chunks of size bytes
    DEMO_STREAM_FILE,   // a static file
} demo_stream_kind_t;

struct demo_conn {
    struct ev_loop *loop;   // the server's loop
    demo_routes_t *routes;  // what we answer (borrowed)
    demo_conn_list_t *list; // the list we are linked into (borrowed)
    demo_conn_t *prev;      // neighbours in list
    demo_conn_t *next;
    int fd;              // the client socket
    ev_io read_watcher;  // readable
    ev_io write_watcher; // writable, only while output is blocked
    ev_timer timer;      // a held response, or the lingering close
    http_parser parser;  // request parser state

    char rbuf[DEMO_CONN_READ_MAX]; // bytes read, not yet parsed
    size_t rpos;                   // parsed up to here
    size_t rlen;                   // read up to here

    demo_request_buf_t *request; // the request being parsed
    int reject;                  // status for a request refused in a callback (414, 431), else 0
    bool keep_alive;             // the current request allows another after it
    bool http10;                 // the current request is HTTP/1.0
    bool head;                   // the current request is HEAD: no body in the response
    bool no_body;                // the current response has no body (204, 304)
    bool hash;                   // the current body is hashed
    EVP_MD_CTX *md;              // SHA-256 of /echo bodies, created on first use
    uint8_t sha[32];             // the finished hash
    uint64_t body_bytes;         // body bytes of the current request
    int status;                  // status queued for the current request (access log)

    demo_out_t *out; // queued output

    demo_stream_kind_t stream; // body being produced, or NONE
    uint32_t chunk_index;      // CHUNKS: next chunk
    uint32_t chunk_count;      // CHUNKS: how many
    size_t chunk_size;         // CHUNKS: bytes each
    int file_fd;               // FILE: open file, -1 when none
    uint64_t file_left;        // FILE: bytes still to send

    bool busy;      // a held or streamed response is in progress: parsing waits
    bool closing;   // no request after the current one: close once written
    bool eof;       // the client closed its side
    bool lingering; // our side is shut: read and drop until EOF or timeout
};

static int s_on_message_begin(http_parser *parser);
static int s_on_url(http_parser *parser, const char *at, size_t len);
static int s_on_header_field(http_parser *parser, const char *at, size_t len);
static int s_on_header_value(http_parser *parser, const char *at, size_t len);
static int s_on_headers_complete(http_parser *parser);
static int s_on_body(http_parser *parser, const char *at, size_t len);
static int s_on_message_complete(http_parser *parser);

static const http_parser_settings s_settings = {
    .on_message_begin = s_on_message_begin,
    .on_url = s_on_url,
    .on_header_field = s_on_header_field,
    .on_header_value = s_on_header_value,
    .on_headers_complete = s_on_headers_complete,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

static const char s_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

//  --------------------------------------------------------------------------
//  Output

static void
s_stream_end(demo_conn_t *self)
{
    if (self->file_fd >= 0) {
        close(self->file_fd);
        self->file_fd = -1;
    }
    self->stream = DEMO_STREAM_NONE;
    self->busy = false;
}

//  Produce the next slice of a streamed body. Returns -1 if the file could
//  not be read to its announced length (the framing is lost: close).
static int
s_stream_fill(demo_conn_t *self)
{
    if (self->stream == DEMO_STREAM_CHUNKS) {
        size_t budget = DEMO_CONN_STREAM_FILL;
        while (self->chunk_index < self->chunk_count && budget > 0) {
            char *p = demo_out_reserve(self->out, self->chunk_size + 32);
            int n = snprintf(p, 32, "%zx\r\n", self->chunk_size);
            memset(p + n, 'a' + (int) (self->chunk_index % 26), self->chunk_size);
            memcpy(p + (size_t) n + self->chunk_size, "\r\n", 2);
            demo_out_commit(self->out, (size_t) n + self->chunk_size + 2);
            self->chunk_index++;
            budget = budget > self->chunk_size ? budget - self->chunk_size : 0;
        }
        if (self->chunk_index == self->chunk_count) {
            demo_out_copy(self->out, "0\r\n\r\n", 5);
            s_stream_end(self);
        }
        return 0;
    }
    size_t want =
        self->file_left < DEMO_CONN_STREAM_FILL ? (size_t) self->file_left : DEMO_CONN_STREAM_FILL;
    char *p = demo_out_reserve(self->out, want);
    ssize_t n;
    do {
        n = read(self->file_fd, p, want);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        log_warn("static file shorter than announced", LOG_ERRNO(n < 0 ? errno : 0));
        return -1;
    }
    demo_out_commit(self->out, (size_t) n);
    self->file_left -= (uint64_t) n;
    if (self->file_left == 0)
        s_stream_end(self);
    return 0;
}

//  Write what may be written. Returns 0, or -1 if the connection is dead.
static int
s_flush(demo_conn_t *self)
{
    for (int round = 0; round < DEMO_CONN_WRITE_ROUNDS; round++) {
        if (self->stream != DEMO_STREAM_NONE && demo_out_pending(self->out) < DEMO_CONN_STREAM_LOW
            && s_stream_fill(self) != 0)
            return -1;
        if (!demo_out_flushable(self->out))
            break;
        int rc = demo_out_write(self->out, self->fd);
        if (rc < 0) {
            log_debug("write failed", LOG_ERRNO(errno));
            return -1;
        }
        if (rc == 0) {
            // the socket buffer is full: wait until it drains
            ev_io_start(self->loop, &self->write_watcher);
            return 0;
        }
    }
    if (self->stream != DEMO_STREAM_NONE || demo_out_flushable(self->out))
        ev_io_start(self->loop, &self->write_watcher);
    else
        ev_io_stop(self->loop, &self->write_watcher);
    return 0;
}

//  --------------------------------------------------------------------------
//  Parsing

//  True if another request may be parsed now: nothing in progress, and room
//  in the output queue for its answer.
static bool
s_can_parse(const demo_conn_t *self)
{
    return !self->busy && !self->closing && demo_out_pending(self->out) < DEMO_CONN_PENDING_HIGH
           && demo_out_free_segments(self->out) >= DEMO_CONN_SEGS_SPARE;
}

static void
s_request(demo_conn_t *self, demo_request_t *req)
{
    *req = (demo_request_t){
        .method = http_method_str((enum http_method) self->parser.method),
        .head = self->head,
        .body_bytes = self->body_bytes,
    };
    demo_request_buf_view(self->request, req);
}

static int
s_on_message_begin(http_parser *parser)
{
    demo_conn_t *self = parser->data;
    demo_request_buf_reset(self->request);
    self->hash = false;
    self->head = false;
    self->no_body = false;
    self->body_bytes = 0;
    self->status = 0;
    return 0;
}

static int
s_on_url(http_parser *parser, const char *at, size_t len)
{
    demo_conn_t *self = parser->data;
    if (demo_request_buf_target(self->request, at, len) != 0) {
        self->reject = 414;
        return -1;
    }
    return 0;
}

static int
s_on_header_field(http_parser *parser, const char *at, size_t len)
{
    demo_conn_t *self = parser->data;
    if (demo_request_buf_field(self->request, at, len) != 0) {
        self->reject = 431;
        return -1;
    }
    return 0;
}

static int
s_on_header_value(http_parser *parser, const char *at, size_t len)
{
    demo_conn_t *self = parser->data;
    demo_request_buf_value(self->request, at, len);
    return 0;
}

static int
s_on_headers_complete(http_parser *parser)
{
    demo_conn_t *self = parser->data;
    self->keep_alive = http_should_keep_alive(parser) != 0;
    self->http10 = parser->http_major == 0 || (parser->http_major == 1 && parser->http_minor == 0);
    self->head = parser->method == HTTP_HEAD;
    demo_request_t req;
    s_request(self, &req);
    self->hash = demo_routes_wants_body_hash(&req);
    if (self->hash) {
        if (self->md == NULL)
            self->md = EVP_MD_CTX_new();
        if (self->md == NULL || EVP_DigestInit_ex(self->md, EVP_sha256(), NULL) != 1) {
            log_error("cannot start a SHA-256");
            self->reject = 500;
            return -1;
        }
    }
    // curl and others wait (up to a second) for this before sending a body
    bool has_body = (parser->flags & F_CHUNKED)
                    || (parser->content_length > 0 && parser->content_length != ULLONG_MAX);
    size_t len;
    const char *expect = demo_request_header(&req, "expect", &len);
    if (has_body && !self->http10 && expect && len == 12
        && strncasecmp(expect, "100-continue", 12) == 0)
        demo_out_static(self->out, s_continue, sizeof s_continue - 1);
    return 0;
}

static int
s_on_body(http_parser *parser, const char *at, size_t len)
{
    demo_conn_t *self = parser->data;
    self->body_bytes += len;
    if (self->hash)
        EVP_DigestUpdate(self->md, at, len);
    return 0;
}

static int
s_on_message_complete(http_parser *parser)
{
    demo_conn_t *self = parser->data;
    demo_request_t req;
    s_request(self, &req);
    if (self->hash) {
        EVP_DigestFinal_ex(self->md, self->sha, NULL);
        req.body_sha256 = self->sha;
    }
    if (parser->upgrade)
        self->closing = true; // we do not speak what it upgrades to
    demo_routes_handle(self->routes, self, &req);
    log_debug("request", LOG_S("method", req.method), LOG_S("path", req.target),
              LOG_I("status", self->status), LOG_U("body_bytes", self->body_bytes));
    if (!self->keep_alive)
        self->closing = true;
    if (!s_can_parse(self))
        http_parser_pause(parser, 1);
    return 0;
}

//  Answer a request the parser refused, and close after it.
static void
s_reject(demo_conn_t *self, int status, const char *why)
{
    log_warn("bad request", LOG_I("status", status), LOG_S("error", why));
    const char *reason = demo_conn_reason(status);
    self->keep_alive = false;
    self->closing = true;
    self->head = false;
    demo_conn_head(self, status, "text/plain; charset=utf-8", (int64_t) strlen(reason), NULL);
    demo_conn_body_static(self, reason, strlen(reason));
}

//  Parse what was read, as far as the output queue allows.
static void
s_parse(demo_conn_t *self)
{
    while (self->rpos < self->rlen && s_can_parse(self)) {
        size_t n = http_parser_execute(&self->parser, &s_settings, self->rbuf + self->rpos,
                                       self->rlen - self->rpos);
        self->rpos += n;
        enum http_errno err = HTTP_PARSER_ERRNO(&self->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&self->parser, 0);
        } else if (err != HPE_OK) {
            s_reject(self, self->reject ? self->reject : 400, http_errno_name(err));
            break;
        }
    }
    if (self->rpos == self->rlen) {
        self->rpos = self->rlen = 0;
    } else if (self->rpos > 0) {
        memmove(self->rbuf, self->rbuf + self->rpos, self->rlen - self->rpos);
        self->rlen -= self->rpos;
        self->rpos = 0;
    }
}

//  Shut our side and read until the client closes (or the linger time
//  passes), so that a close with unread input does not reset the
//  connection before the client has read our last response.
static void
s_linger(demo_conn_t *self)
{
    shutdown(self->fd, SHUT_WR);
    self->lingering = true;
    ev_io_stop(self->loop, &self->write_watcher);
    ev_io_start(self->loop, &self->read_watcher);
    ev_timer_stop(self->loop, &self->timer);
    ev_timer_set(&self->timer, DEMO_CONN_LINGER, 0.);
    ev_timer_start(self->loop, &self->timer);
}

//  Parse, write, and decide what to wait for next. Returns -1 if the
//  connection was destroyed.
static int
s_step(demo_conn_t *self)
{
    for (;;) {
        s_parse(self);
        if (s_flush(self) != 0) {
            demo_conn_destroy(&self);
            return -1;
        }
        if (self->rpos == self->rlen || !s_can_parse(self))
            break;
    }
    if (demo_out_pending(self->out) == 0 && !self->busy) {
        if (self->closing && !self->eof) {
            s_linger(self);
            return 0;
        }
        if (self->closing || self->eof) {
            demo_conn_destroy(&self);
            return -1;
        }
    }
    if (!self->eof && !self->closing && self->rlen < DEMO_CONN_READ_MAX)
        ev_io_start(self->loop, &self->read_watcher);
    else
        ev_io_stop(self->loop, &self->read_watcher);
    return 0;
}

//  --------------------------------------------------------------------------
//  Watchers

static void
s_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    demo_conn_t *self = w->data;
    if (self->lingering) {
        char drop[4096];
        ssize_t n;
        while ((n = read(self->fd, drop, sizeof drop)) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            demo_conn_destroy(&self);
        return;
    }
    ssize_t n = read(self->fd, self->rbuf + self->rlen, DEMO_CONN_READ_MAX - self->rlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        log_debug("read failed", LOG_ERRNO(errno));
        demo_conn_destroy(&self);
        return;
    }
    if (n == 0)
        self->eof = true;
    self->rlen += (size_t) n;
    s_step(self);
}

static void
s_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    s_step(w->data);
}

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    demo_conn_t *self = w->data;
    if (self->lingering) {
        demo_conn_destroy(&self);
        return;
    }
    demo_out_release(self->out);
    if (self->stream == DEMO_STREAM_NONE)
        self->busy = false;
    s_step(self);
}

//  --------------------------------------------------------------------------
//  Public

demo_conn_t *
demo_conn_new(struct ev_loop *loop, int fd, demo_routes_t *routes, demo_conn_list_t *list)
{
    demo_conn_t *self = proto_xmalloc(sizeof *self);
    // the read buffer needs no zeroing; everything else starts at zero
    memset(self, 0, offsetof(demo_conn_t, rbuf));
    memset(&self->rpos, 0, sizeof *self - offsetof(demo_conn_t, rpos));
    self->loop = loop;
    self->routes = routes;
    self->list = list;
    self->fd = fd;
    self->file_fd = -1;
    self->out = demo_out_new();
    self->request = demo_request_buf_new();
    http_parser_init(&self->parser, HTTP_REQUEST);
    self->parser.data = self;
    ev_io_init(&self->read_watcher, s_on_readable, fd, EV_READ);
    ev_io_init(&self->write_watcher, s_on_writable, fd, EV_WRITE);
    ev_init(&self->timer, s_on_timer);
    self->read_watcher.data = self->write_watcher.data = self->timer.data = self;
    self->next = list->head;
    if (list->head)
        list->head->prev = self;
    list->head = self;
    list->count++;
    ev_io_start(loop, &self->read_watcher);
    return self;
}

void
demo_conn_destroy(demo_conn_t **self_p)
{
    assert(self_p);
    demo_conn_t *self = *self_p;
    if (self == NULL)
        return;
    ev_io_stop(self->loop, &self->read_watcher);
    ev_io_stop(self->loop, &self->write_watcher);
    ev_timer_stop(self->loop, &self->timer);
    if (self->prev)
        self->prev->next = self->next;
    else
        self->list->head = self->next;
    if (self->next)
        self->next->prev = self->prev;
    self->list->count--;
    close(self->fd);
    if (self->file_fd >= 0)
        close(self->file_fd);
    EVP_MD_CTX_free(self->md);
    self->md = NULL;
    demo_out_destroy(&self->out);
    demo_request_buf_destroy(&self->request);
    free(self);
    *self_p = NULL;
}

int
demo_conn_keep_alive_header(const demo_conn_t *self)
{
    if (!self->keep_alive || self->closing)
        return 1;
    return self->http10 ? 2 : 0;
}

void
demo_conn_head(
    demo_conn_t *self, int status, const char *ctype, int64_t content_length, const char *extra)
{
    static const char *const connection[] = {"", "Connection: close\r\n",
                                             "Connection: keep-alive\r\n"};
    self->status = status;
    self->no_body = status == 204 || status == 304;
    char length[48] = "";
    if (self->no_body)
        length[0] = '\0';
    else if (content_length < 0)
        proto_strlcpy(length, "Transfer-Encoding: chunked\r\n", sizeof length);
    else
        snprintf(length, sizeof length, "Content-Length: %lld\r\n", (long long) content_length);
    const char *reason = demo_conn_reason(status);
    size_t cap = 128 + strlen(reason) + (ctype ? strlen(ctype) : 0) + (extra ? strlen(extra) : 0);
    char *p = demo_out_reserve(self->out, cap);
    int n = snprintf(p, cap, "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s\r\n", status, reason,
                     ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", length,
                     connection[demo_conn_keep_alive_header(self)], extra ? extra : "");
    assert(n > 0 && (size_t) n < cap);
    demo_out_commit(self->out, (size_t) n);
}

void
demo_conn_body(demo_conn_t *self, const void *data, size_t len)
{
    if (!self->head && !self->no_body && len > 0)
        demo_out_copy(self->out, data, len);
}

void
demo_conn_body_static(demo_conn_t *self, const void *data, size_t len)
{
    if (!self->head && !self->no_body)
        demo_out_static(self->out, data, len);
}

void
demo_conn_send_static(
    demo_conn_t *self, int status, const char *full, size_t full_len, size_t head_len)
{
    self->status = status;
    demo_out_static(self->out, full, self->head ? head_len : full_len);
}

void
demo_conn_stream_chunks(demo_conn_t *self, uint32_t count, size_t size)
{
    if (self->head)
        return;
    self->stream = DEMO_STREAM_CHUNKS;
    self->chunk_index = 0;
    self->chunk_count = count;
    self->chunk_size = size;
    self->busy = true;
}

void
demo_conn_stream_file(demo_conn_t *self, int *fd_p, uint64_t size)
{
    int fd = *fd_p;
    *fd_p = -1;
    if (self->head || size == 0) {
        close(fd);
        return;
    }
    self->stream = DEMO_STREAM_FILE;
    self->file_fd = fd;
    self->file_left = size;
    self->busy = true;
}

void
demo_conn_delay(demo_conn_t *self, uint64_t ms)
{
    demo_out_hold(self->out);
    self->busy = true;
    ev_timer_set(&self->timer, (double) ms / 1000., 0.);
    ev_timer_start(self->loop, &self->timer);
}

const char *
demo_conn_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {418, "I'm a teapot"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}
