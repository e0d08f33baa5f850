/*  it_demo_backend - integration test of bin/demo-backend over plain sockets.

    One backend (Server B, region 2, a static directory) serves most cases;
    a second one checks --body-bytes and the defaults. Responses are read
    with http-parser in response mode, so framing (Content-Length, chunked,
    pipelined answers back to back) is checked by a real parser, and /echo's
    bodySha256 is compared with a hash computed here.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <http_parser.h>
#include <openssl/evp.h>

#include "it.h"
#include "proto_util.h"

#define IT_WAIT_MS 10000 // longest wait for anything (sanitizer builds are slow)
#define INDEX_HTML "<!doctype html><title>chat page</title>\n" // static/index.html

//  The shared backend.
typedef struct {
    it_env_t env; // temp directory, processes
    pid_t pid;    // the backend
    int port;     // its port
} fixture_t;

//  One client connection; the parser keeps its state from response to response.
typedef struct {
    int fd;             // blocking socket
    http_parser parser; // response parser
    char buf[1 << 16];  // read, not yet parsed
    size_t len;         // bytes in buf
    bool eof;           // the server closed
} client_t;

//  One parsed response.
typedef struct {
    int status;          // status code
    char ctype[128];     // Content-Type
    char connection[64]; // Connection
    char length[32];     // Content-Length ("" when absent)
    bool chunked;        // Transfer-Encoding: chunked
    size_t chunks;       // data chunks seen
    char *body;          // body, NUL-terminated (caller frees with s_response_free)
    size_t body_len;     // its length
    char field[64];      // header being parsed (lower-case)
    char *value_dst;     // where that header's value goes, or NULL
    size_t value_cap;    // its capacity
    bool in_value;       // the last header callback was a value
    bool head;           // the request was HEAD: no body follows
    bool complete;       // the whole response has been parsed
} response_t;

//  --------------------------------------------------------------------------
//  Process and socket helpers

//  Wait until a TCP connect to port succeeds, or pid dies, or the deadline.
static int
s_wait_port(int port, pid_t pid, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    while (it_now_ms() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(fd, (struct sockaddr *) &sa, sizeof sa);
        close(fd);
        if (rc == 0)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        it_pause(5);
    }
    return -1;
}

//  Start bin/demo-backend on a free port with extra arguments and
//  environment. Returns the pid, or -1.
static pid_t
s_start(it_env_t *env,
        const char *name,
        const char *const *env_extra,
        const char *const *args,
        int *port_p)
{
    int port = it_free_port_pair();
    if (port < 0)
        return -1;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    const char *argv[24] = {"--port", port_text};
    size_t n = 2;
    for (size_t i = 0; args && args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = it_spawn(env, "demo-backend", name, env_extra, argv);
    if (pid < 0 || s_wait_port(port, pid, IT_WAIT_MS) != 0) {
        it_dump(env, name);
        return -1;
    }
    *port_p = port;
    return pid;
}

static client_t *
s_connect(int port)
{
    client_t *c = proto_xcalloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *) &sa, sizeof sa), 0);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    return c;
}

static void
s_close(client_t **c_p)
{
    close((*c_p)->fd);
    free(*c_p);
    *c_p = NULL;
}

static void
s_send(client_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t) n;
    }
}

static void
s_send_str(client_t *c, const char *text)
{
    s_send(c, text, strlen(text));
}

//  Read what the server sends within timeout_ms into c->buf. Returns the
//  number of bytes read, 0 at EOF, -1 on timeout.
static ssize_t
s_fill(client_t *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n == 0)
        c->eof = true;
    if (n > 0)
        c->len += (size_t) n;
    return n < 0 ? 0 : n;
}

//  --------------------------------------------------------------------------
//  Response parsing

static void
s_append(char *dst, size_t cap, const char *at, size_t len)
{
    size_t used = strlen(dst);
    if (used + len >= cap)
        len = cap - used - 1;
    memcpy(dst + used, at, len);
    dst[used + len] = '\0';
}

static int
s_on_header_field(http_parser *p, const char *at, size_t len)
{
    response_t *r = p->data;
    if (r->in_value) { // a new header begins
        r->field[0] = '\0';
        r->value_dst = NULL;
        r->in_value = false;
    }
    s_append(r->field, sizeof r->field, at, len);
    return 0;
}

static int
s_on_header_value(http_parser *p, const char *at, size_t len)
{
    response_t *r = p->data;
    if (!r->in_value) {
        r->in_value = true;
        if (strcasecmp(r->field, "content-type") == 0) {
            r->value_dst = r->ctype;
            r->value_cap = sizeof r->ctype;
        } else if (strcasecmp(r->field, "connection") == 0) {
            r->value_dst = r->connection;
            r->value_cap = sizeof r->connection;
        } else if (strcasecmp(r->field, "content-length") == 0) {
            r->value_dst = r->length;
            r->value_cap = sizeof r->length;
        }
    }
    if (r->value_dst)
        s_append(r->value_dst, r->value_cap, at, len);
    return 0;
}

static int
s_on_headers_complete(http_parser *p)
{
    response_t *r = p->data;
    r->status = (int) p->status_code;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    return r->head ? 1 : 0; // a response to HEAD has no body whatever its headers say
}

static int
s_on_body(http_parser *p, const char *at, size_t len)
{
    response_t *r = p->data;
    r->body = proto_xrealloc(r->body, r->body_len + len + 1);
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int
s_on_chunk_header(http_parser *p)
{
    response_t *r = p->data;
    if (p->content_length > 0)
        r->chunks++;
    return 0;
}

static int
s_on_message_complete(http_parser *p)
{
    response_t *r = p->data;
    r->complete = true;
    http_parser_pause(p, 1); // leave the next pipelined response in the buffer
    return 0;
}

static const http_parser_settings s_settings = {
    .on_header_field = s_on_header_field,
    .on_header_value = s_on_header_value,
    .on_headers_complete = s_on_headers_complete,
    .on_body = s_on_body,
    .on_chunk_header = s_on_chunk_header,
    .on_message_complete = s_on_message_complete,
};

static void
s_response_free(response_t *r)
{
    free(r->body);
    r->body = NULL;
}

//  Read and parse the next response. Returns 0, or -1 on timeout, EOF
//  before the end, or bad framing.
static int
s_read_response(client_t *c, response_t *r, bool head)
{
    memset(r, 0, sizeof *r);
    r->head = head;
    r->body = proto_xcalloc(1, 1);
    c->parser.data = r;
    uint64_t deadline = it_now_ms() + IT_WAIT_MS;
    for (;;) {
        if (c->len > 0) {
            size_t n = http_parser_execute(&c->parser, &s_settings, c->buf, c->len);
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
            if (err == HPE_PAUSED)
                http_parser_pause(&c->parser, 0);
            else if (err != HPE_OK) {
                fprintf(stderr, "bad response: %s\n", http_errno_name(err));
                return -1;
            }
        }
        if (r->complete)
            return 0;
        int left = (int) (deadline - it_now_ms());
        if (c->eof || left <= 0 || s_fill(c, left) <= 0)
            return -1;
    }
}

//  Send one request and read its response.
static void
s_request(int port, const char *request, response_t *r)
{
    client_t *c = s_connect(port);
    s_send_str(c, request);
    assert_int_equal(s_read_response(c, r, strncmp(request, "HEAD ", 5) == 0), 0);
    s_close(&c);
}

//  True if the server closes the connection within the wait (no more bytes).
static bool
s_closed_by_server(client_t *c)
{
    uint64_t deadline = it_now_ms() + IT_WAIT_MS;
    while (!c->eof && it_now_ms() < deadline) {
        ssize_t n = s_fill(c, (int) (deadline - it_now_ms()));
        if (n > 0)
            return false; // bytes after the last response
        if (n < 0)
            break;
    }
    return c->eof;
}

static bool
s_matches(const char *text, const char *pattern)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    if (!ok)
        fprintf(stderr, "'%s' does not match '%s'\n", text, pattern);
    return ok;
}

static void
s_sha256_hex(const void *data, size_t len, char hex[65])
{
    uint8_t md[32];
    unsigned int md_len = 0;
    assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
    for (unsigned int i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void
s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

//  --------------------------------------------------------------------------
//  Tests on the shared backend

static void
test_hello(void **state)
{
    fixture_t *fx = *state;
    response_t r;
    s_request(fx->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.ctype, "text/plain", 10) == 0);
    assert_string_equal(r.body, "Hello from Server B (Region 2)");
    assert_string_equal(r.length, "30");
    assert_string_equal(r.connection, "");
    s_response_free(&r);

    s_request(fx->port, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.length, "30");
    assert_int_equal(r.body_len, 0);
    s_response_free(&r);
}

static void
test_health(void **state)
{
    fixture_t *fx = *state;
    response_t r;
    s_request(fx->port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    assert_true(s_matches(
        r.body,
        "^\\{\"status\":\"healthy\",\"timestamp\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
        "[0-9]{2}\\.[0-9]{3}Z\",\"uptime\":[0-9]+\\.[0-9]+,\"service\":\"server-b\","
        "\"region\":\"2\"\\}$"));
    s_response_free(&r);
}

static void
test_keep_alive(void **state)
{
    fixture_t *fx = *state;
    client_t *c = s_connect(fx->port);
    response_t r;
    for (int i = 0; i < 2; i++) {
        s_send_str(c, "GET /status/202 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(s_read_response(c, &r, false), 0);
        assert_int_equal(r.status, 202);
        assert_string_equal(r.body, "202 Accepted");
        assert_string_equal(r.connection, "");
        s_response_free(&r);
    }
    // the client asks to close: the answer says so and the server closes
    s_send_str(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_string_equal(r.connection, "close");
    s_response_free(&r);
    assert_true(s_closed_by_server(c));
    s_close(&c);

    // HTTP/1.0 closes unless it asks for keep-alive
    c = s_connect(fx->port);
    s_send_str(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_string_equal(r.connection, "keep-alive");
    s_response_free(&r);
    s_send_str(c, "GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_string_equal(r.connection, "close");
    assert_string_equal(r.body, "Hello from Server B (Region 2)");
    s_response_free(&r);
    assert_true(s_closed_by_server(c));
    s_close(&c);
}

static void
test_pipelining(void **state)
{
    fixture_t *fx = *state;
    client_t *c = s_connect(fx->port);
    // the first answer is delayed: the others must still come after it
    uint64_t start = it_now_ms();
    s_send_str(c, "GET /slow?ms=150 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    response_t r;
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Slept 150 ms");
    assert_true(it_now_ms() - start >= 145);
    s_response_free(&r);
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 201);
    s_response_free(&r);
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Hello from Server B (Region 2)");
    s_response_free(&r);

    // many more than fit one batch, in one write
    char batch[64 * 48] = "";
    for (int i = 0; i < 64; i++) {
        char line[48];
        snprintf(line, sizeof line, "GET /status/%d HTTP/1.1\r\nHost: t\r\n\r\n", 200 + i);
        s_append(batch, sizeof batch, line, strlen(line));
    }
    s_send_str(c, batch);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(s_read_response(c, &r, false), 0);
        assert_int_equal(r.status, 200 + i);
        s_response_free(&r);
    }
    s_close(&c);
}

static void
test_slow_does_not_block(void **state)
{
    fixture_t *fx = *state;
    client_t *slow = s_connect(fx->port);
    s_send_str(slow, "GET /slow?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    uint64_t start = it_now_ms();
    response_t r;
    s_request(fx->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    s_response_free(&r);
    struct pollfd pfd = {.fd = slow->fd, .events = POLLIN};
    if (it_now_ms() - start < 900)
        assert_int_equal(poll(&pfd, 1, 0), 0); // not answered yet
    assert_int_equal(s_read_response(slow, &r, false), 0);
    assert_string_equal(r.body, "Slept 1000 ms");
    assert_true(it_now_ms() - start >= 990);
    s_response_free(&r);
    s_close(&slow);
}

static void
test_echo_chunked_body(void **state)
{
    fixture_t *fx = *state;
    size_t len = 100000;
    char *body = proto_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = (char) (i * 7 + i / 251);
    char hex[65];
    s_sha256_hex(body, len, hex);

    client_t *c = s_connect(fx->port);
    s_send_str(c, "POST /echo?a=1&b=%22x%22 HTTP/1.1\r\nHost: t\r\nX-Dup: one\r\n"
                  "Transfer-Encoding: chunked\r\nX-Dup: two\r\nX-Quote: say \"hi\"\r\n\r\n");
    // chunks of uneven sizes, each in its own write
    size_t sizes[] = {1, 4095, 30000, 65904};
    size_t off = 0;
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(sizes); i++) {
        char size_line[32];
        snprintf(size_line, sizeof size_line, "%zx\r\n", sizes[i]);
        s_send_str(c, size_line);
        s_send(c, body + off, sizes[i]);
        s_send_str(c, "\r\n");
        off += sizes[i];
    }
    assert_int_equal(off, len);
    s_send_str(c, "0\r\n\r\n");
    response_t r;
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    char expect[512];
    snprintf(expect, sizeof expect,
             "{\"method\":\"POST\",\"path\":\"/echo\",\"query\":\"a=1&b=%%22x%%22\",\"headers\":{"
             "\"host\":\"t\",\"x-dup\":\"one, two\",\"transfer-encoding\":\"chunked\","
             "\"x-quote\":\"say \\\"hi\\\"\"},\"bodyBytes\":100000,\"bodySha256\":\"%s\"}",
             hex);
    assert_string_equal(r.body, expect);
    s_response_free(&r);

    // a Content-Length body on the same connection, and an empty one
    s_send_str(c, "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                  "DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(s_read_response(c, &r, false), 0);
    s_sha256_hex("abc", 3, hex);
    assert_non_null(strstr(r.body, "\"method\":\"PUT\""));
    assert_non_null(strstr(r.body, "\"bodyBytes\":3,"));
    assert_non_null(strstr(r.body, hex));
    s_response_free(&r);
    assert_int_equal(s_read_response(c, &r, false), 0);
    s_sha256_hex("", 0, hex);
    assert_non_null(strstr(r.body, "\"method\":\"DELETE\""));
    assert_non_null(strstr(r.body, "\"bodyBytes\":0,"));
    assert_non_null(strstr(r.body, hex));
    s_response_free(&r);
    s_close(&c);
    free(body);
}

static void
test_chunked_response(void **state)
{
    fixture_t *fx = *state;
    client_t *c = s_connect(fx->port);
    s_send_str(c, "GET /chunked?n=5&size=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    response_t r;
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.chunked);
    assert_string_equal(r.length, "");
    assert_int_equal(r.chunks, 5);
    assert_int_equal(r.body_len, 500);
    for (size_t i = 0; i < 500; i++)
        assert_int_equal(r.body[i], 'a' + (int) (i / 100));
    s_response_free(&r);

    // a large one (several refills), then the connection is still usable
    s_send_str(c, "GET /chunked?n=40&size=65536 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.chunks, 40);
    assert_int_equal(r.body_len, 40 * 65536);
    assert_int_equal(r.body[39 * 65536], 'a' + 13);
    s_response_free(&r);
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_string_equal(r.body, "Hello from Server B (Region 2)");
    s_response_free(&r);
    s_close(&c);

    s_request(fx->port, "GET /chunked?n=x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    s_response_free(&r);
}

static void
test_status_and_not_found(void **state)
{
    fixture_t *fx = *state;
    response_t r;
    s_request(fx->port, "GET /status/503 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "503 Service Unavailable");
    assert_string_equal(r.length, "23");
    s_response_free(&r);

    s_request(fx->port, "POST /status/204 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    s_response_free(&r);

    s_request(fx->port, "GET /status/99 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    s_response_free(&r);

    s_request(fx->port, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "Not Found");
    assert_string_equal(r.length, "9");
    s_response_free(&r);

    s_request(fx->port, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    s_response_free(&r);
}

static void
test_malformed(void **state)
{
    fixture_t *fx = *state;
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++) {
        client_t *c = s_connect(fx->port);
        s_send_str(c, bad[i]);
        response_t r;
        assert_int_equal(s_read_response(c, &r, false), 0);
        assert_int_equal(r.status, 400);
        assert_string_equal(r.connection, "close");
        s_response_free(&r);
        assert_true(s_closed_by_server(c));
        s_close(&c);
    }
    // a good request first is answered before the bad one ends the connection
    client_t *c = s_connect(fx->port);
    s_send_str(c, "GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\nBAD LINE\r\n\r\n");
    response_t r;
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 200);
    s_response_free(&r);
    assert_int_equal(s_read_response(c, &r, false), 0);
    assert_int_equal(r.status, 400);
    s_response_free(&r);
    assert_true(s_closed_by_server(c));
    s_close(&c);
}

static void
test_static_files(void **state)
{
    fixture_t *fx = *state;
    response_t r;
    s_request(fx->port, "GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/html; charset=utf-8");
    assert_string_equal(r.body, "<!doctype html><title>page</title>\n");
    s_response_free(&r);

    // the chat page: /chat.html is the directory's index.html (and so is
    // /index.html); a file named chat.html there is not what it serves
    static const char *const index_paths[] = {"/chat.html", "/chat.html?server=x", "/index.html"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(index_paths); i++) {
        char request[128];
        snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", index_paths[i]);
        s_request(fx->port, request, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.ctype, "text/html; charset=utf-8");
        assert_string_equal(r.body, INDEX_HTML);
        s_response_free(&r);
    }
    s_request(fx->port, "HEAD /chat.html HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(strtol(r.length, NULL, 10), (long) strlen(INDEX_HTML));
    s_response_free(&r);

    s_request(fx->port, "GET /app.js?v=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/javascript; charset=utf-8");
    s_response_free(&r);

    s_request(fx->port, "GET /chat.css HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/css; charset=utf-8");
    s_response_free(&r);

    static const char *const refused[] = {
        "/../secret.txt",     // outside the directory
        "/%2e%2e/secret.txt", // the same, encoded
        "/..%2fsecret.txt",   //
        "/.hidden",           // hidden file
        "/sub/inner.txt",     // not directly inside
        "/link.txt",          // a symlink out of the directory
        "/sub",               // a directory
        "/missing.html",      // no such file
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(refused); i++) {
        char request[128];
        snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", refused[i]);
        s_request(fx->port, request, &r);
        if (r.status != 404)
            fprintf(stderr, "%s: %d\n", refused[i], r.status);
        assert_int_equal(r.status, 404);
        assert_null(strstr(r.body, "secret"));
        s_response_free(&r);
    }
}

//  Last: stop the shared backend.
static void
test_sigterm_exits_clean(void **state)
{
    fixture_t *fx = *state;
    client_t *idle = s_connect(fx->port); // an open connection must not delay the exit
    assert_int_equal(it_stop(&fx->env, fx->pid, IT_WAIT_MS), 0);
    fx->pid = 0;
    assert_true(it_clean_stderr(&fx->env, "backend"));
    // quiet at info: no access log lines
    char *out = it_read_file(&fx->env, "backend", "out");
    assert_non_null(out);
    assert_null(strstr(out, "\"msg\":\"request\""));
    assert_non_null(strstr(out, "\"msg\":\"stopped\""));
    free(out);
    s_close(&idle);
}

//  --------------------------------------------------------------------------
//  Tests with their own backend

static void
test_body_bytes_and_defaults(void **state)
{
    fixture_t *fx = *state;
    int port;
    const char *const env_extra[] = {"DEMO_BODY_BYTES=1024", "LOG_LEVEL=debug", NULL};
    pid_t pid = s_start(&fx->env, "bench", env_extra, NULL, &port);
    assert_true(pid > 0);
    response_t r;
    s_request(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.length, "1024");
    assert_int_equal(r.body_len, 1024);
    for (size_t i = 0; i < 1024; i++)
        assert_int_equal(r.body[i], 'x');
    s_response_free(&r);
    s_request(port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_non_null(strstr(r.body, "\"service\":\"server-a\",\"region\":\"1\"}"));
    s_response_free(&r);
    assert_int_equal(it_stop(&fx->env, pid, IT_WAIT_MS), 0);
    assert_true(it_clean_stderr(&fx->env, "bench"));
    char *out = it_read_file(&fx->env, "bench", "out");
    assert_non_null(strstr(out, "\"msg\":\"request\",\"method\":\"GET\",\"path\":\"/health\""));
    free(out);

    // the default hello text
    const char *const args[] = {"--log-level", "warn", NULL};
    pid = s_start(&fx->env, "default", NULL, args, &port);
    assert_true(pid > 0);
    s_request(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_string_equal(r.body, "Hello from Server A (Region 1)");
    s_response_free(&r);
    assert_int_equal(it_stop(&fx->env, pid, IT_WAIT_MS), 0);
    assert_true(it_clean_stderr(&fx->env, "default"));
}

static void
test_bad_settings(void **state)
{
    fixture_t *fx = *state;
    static const char *const cases[][3] = {
        {NULL},                                // no port
        {"--port", "70000", NULL},             //
        {"--port", "80x", NULL},               //
        {"--port=1", "--body-bytes=-1", NULL}, //
        {"--port=1", "--static-dir=/nonexistent", NULL},
        {"--port=1", "--addr=no such host", NULL},
        {"--port=1", "--bogus", NULL},
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(cases); i++) {
        int rc = it_run(&fx->env, "demo-backend", "bad", NULL, cases[i], IT_WAIT_MS);
        if (rc != 2)
            it_dump(&fx->env, "bad");
        assert_int_equal(rc, 2);
        char *err = it_read_file(&fx->env, "bad", "err");
        assert_non_null(err);
        assert_non_null(strstr(err, "demo-backend: "));
        assert_true(it_clean_stderr(&fx->env, "bad"));
        free(err);
    }
    static const char *const help[] = {"--help", NULL};
    assert_int_equal(it_run(&fx->env, "demo-backend", "help", NULL, help, IT_WAIT_MS), 0);
    char *out = it_read_file(&fx->env, "help", "out");
    assert_non_null(strstr(out, "DEMO_BODY_BYTES"));
    free(out);
}

//  --------------------------------------------------------------------------

static int
s_setup(void **state)
{
    static fixture_t fx;
    memset(&fx, 0, sizeof fx);
    if (it_env_init(&fx.env) != 0)
        return -1;
    char path[256];
    snprintf(path, sizeof path, "%s/static", fx.env.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/static/sub", fx.env.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/static/page.html", fx.env.dir);
    s_write_file(path, "<!doctype html><title>page</title>\n");
    snprintf(path, sizeof path, "%s/static/index.html", fx.env.dir);
    s_write_file(path, INDEX_HTML);
    snprintf(path, sizeof path, "%s/static/chat.html", fx.env.dir);
    s_write_file(path, "not the chat page\n");
    snprintf(path, sizeof path, "%s/static/chat.css", fx.env.dir);
    s_write_file(path, "body { margin: 0; }\n");
    snprintf(path, sizeof path, "%s/static/app.js", fx.env.dir);
    s_write_file(path, "console.log('hi');\n");
    snprintf(path, sizeof path, "%s/static/.hidden", fx.env.dir);
    s_write_file(path, "secret\n");
    snprintf(path, sizeof path, "%s/static/sub/inner.txt", fx.env.dir);
    s_write_file(path, "secret\n");
    snprintf(path, sizeof path, "%s/secret.txt", fx.env.dir);
    s_write_file(path, "secret\n");
    snprintf(path, sizeof path, "%s/static/link.txt", fx.env.dir);
    if (symlink("../secret.txt", path) != 0)
        return -1;
    const char *const env_extra[] = {"DEMO_NAME=Server B", "DEMO_REGION=2", NULL};
    const char *const args[] = {"--service", "server-b", "--static-dir", "static", NULL};
    fx.pid = s_start(&fx.env, "backend", env_extra, args, &fx.port);
    if (fx.pid < 0)
        return -1;
    *state = &fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    if (fx->pid > 0)
        it_dump(&fx->env, "backend");
    it_env_fini(&fx->env);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_slow_does_not_block),
        cmocka_unit_test(test_echo_chunked_body),
        cmocka_unit_test(test_chunked_response),
        cmocka_unit_test(test_status_and_not_found),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_static_files),
        cmocka_unit_test(test_body_bytes_and_defaults),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_sigterm_exits_clean),
    };
    return cmocka_run_group_tests_name("it_demo_backend", tests, s_setup, s_teardown);
}
