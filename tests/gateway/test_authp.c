/*  test_authp - tests of gw_authp, the authProvider client, against a real
    HTTP    server on the test's own loop (plain, and with TLS for https URLs).

    How the gateway uses it, in short: one gw_authp_new() per gateway (timeout
    2000 ms); per request on a route with an authProvider, gw_authp_check()
    with the waiter embedded in the request: 1 (answered now: cached, or a
    503 known at once), 0 (the callback brings the answer; gw_authp_cancel()
    if the request goes first) or -1 (a bad query). ALLOW forwards the
    answer's user as X-User-Id, DENY_401 and DENY_403 are returned, and
    UNAVAILABLE is a 503.

    The server (t_server below) listens on 127.0.0.1 at a port the kernel
    picks, reads each request whole (head and Content-Length body), keeps
    the last one, counts them, and answers with the bytes the test set (then
    closes), closes at once, or never answers. The client's timeout is
    200 ms here. Every ev_run has a deadline that fails the test.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "gw_authp.h"
#include "proto_log.h"
#include "t_dns.h"
#include "t_loop.h"
#include "t_pki.h"

#define DEADLINE_S  3.0 // no ev_run in this file may take longer
#define TIMEOUT_MS  200 // the client's timeout per call
#define MAX_ANSWERS 16  // callback invocations recorded per test
#define T_REQ_MAX   65536

// --------------------------------------------------------------------------
// A small HTTP server on the loop

typedef struct t_server t_server_t;

typedef struct t_conn {
    t_server_t *srv;     // its server
    int fd;              // the accepted socket, -1 when closed
    SSL *ssl;            // TLS servers: the connection's
    bool handshaken;     // ... its handshake completed
    ev_io io;            // readable
    char buf[T_REQ_MAX]; // what came
    size_t len;          // ...
    struct t_conn *next; // the server's list
} t_conn_t;

struct t_server {
    struct ev_loop *loop; // the test's
    int fd;               // listening
    uint16_t port;        // its port
    ev_io io;             // acceptable
    SSL_CTX *tls;         // NULL: plain HTTP; else HTTPS with this context
    bool hangup;          // close connections as soon as they send
    const char *response; // answer these bytes then close; "": close; NULL: never answer
    unsigned requests;    // complete requests read
    char head[T_REQ_MAX]; // the last one's head
    char body[T_REQ_MAX]; // ... and body (NUL-terminated)
    t_conn_t *conns;      // every connection
};

static void
s_conn_close(t_conn_t *c)
{
    if (c->fd < 0)
        return;
    ev_io_stop(c->srv->loop, &c->io);
    if (c->ssl) {
        (void) SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
}

//  Read what is there into c->buf. Returns 0, or -1 when the connection is over.
static int
s_conn_read(t_conn_t *c)
{
    for (;;) {
        size_t room = sizeof c->buf - 1 - c->len;
        assert_true(room > 0);
        if (c->ssl == NULL) {
            ssize_t n = recv(c->fd, c->buf + c->len, room, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
            if (n <= 0)
                return -1;
            c->len += (size_t) n;
            continue;
        }
        if (!c->handshaken) {
            int rc = SSL_accept(c->ssl);
            if (rc != 1)
                return SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_READ ? 0 : -1;
            c->handshaken = true;
        }
        int n = SSL_read(c->ssl, c->buf + c->len, (int) room);
        if (n <= 0)
            return SSL_get_error(c->ssl, n) == SSL_ERROR_WANT_READ ? 0 : -1;
        c->len += (size_t) n;
    }
}

static void
s_on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    t_conn_t *c = w->data;
    t_server_t *srv = c->srv;
    if (srv->hangup || s_conn_read(c) != 0) {
        s_conn_close(c);
        return;
    }
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL)
        return;
    size_t head = (size_t) (end - c->buf) + 4;
    size_t clen = 0;
    for (const char *p = c->buf; p < end; p = strstr(p, "\r\n") + 2)
        if (strncasecmp(p, "content-length:", 15) == 0)
            clen = strtoul(p + 15, NULL, 10);
    assert_true(head + clen < sizeof c->buf);
    if (c->len < head + clen)
        return;
    srv->requests++;
    memcpy(srv->head, c->buf, head);
    srv->head[head] = '\0';
    memcpy(srv->body, c->buf + head, clen);
    srv->body[clen] = '\0';
    if (srv->response == NULL) {
        ev_io_stop(srv->loop, &c->io); // silent: keep the connection open
        return;
    }
    size_t len = strlen(srv->response);
    if (c->ssl && len > 0)
        assert_int_equal(SSL_write(c->ssl, srv->response, (int) len), (int) len);
    else if (len > 0)
        assert_int_equal(send(c->fd, srv->response, len, MSG_NOSIGNAL), (ssize_t) len);
    s_conn_close(c);
}

static void
s_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) revents;
    t_server_t *srv = w->data;
    int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    t_conn_t *c = calloc(1, sizeof *c);
    c->srv = srv;
    c->fd = fd;
    if (srv->tls) {
        c->ssl = SSL_new(srv->tls);
        assert_non_null(c->ssl);
        assert_int_equal(SSL_set_fd(c->ssl, fd), 1);
        SSL_set_accept_state(c->ssl);
    }
    c->next = srv->conns;
    srv->conns = c;
    ev_io_init(&c->io, s_on_conn, fd, EV_READ);
    c->io.data = c;
    ev_io_start(loop, &c->io);
}

//  A server on the loopback address of family (AF_INET, AF_INET6); NULL if
//  that family cannot be bound here. listening false: bound, never
//  listening (connections are refused).
static t_server_t *
s_server_new(struct ev_loop *loop, int family, bool listening)
{
    t_server_t *srv = calloc(1, sizeof *srv);
    srv->loop = loop;
    srv->response = "";
    srv->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(srv->fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *) &ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (bind(srv->fd, (struct sockaddr *) &ss, len) != 0) {
        close(srv->fd);
        free(srv);
        return NULL;
    }
    assert_int_equal(getsockname(srv->fd, (struct sockaddr *) &ss, &len), 0);
    srv->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                         : ((struct sockaddr_in *) &ss)->sin_port);
    if (listening) {
        assert_int_equal(listen(srv->fd, 64), 0);
        ev_io_init(&srv->io, s_on_accept, srv->fd, EV_READ);
        srv->io.data = srv;
        ev_io_start(loop, &srv->io);
    }
    return srv;
}

static void
s_server_destroy(t_server_t **srv_p)
{
    t_server_t *srv = *srv_p;
    if (srv == NULL)
        return;
    while (srv->conns) {
        t_conn_t *c = srv->conns;
        srv->conns = c->next;
        s_conn_close(c);
        free(c);
    }
    ev_io_stop(srv->loop, &srv->io);
    close(srv->fd);
    free(srv);
    *srv_p = NULL;
}

// --------------------------------------------------------------------------
// Fixture

typedef struct {
    int tag;             // which request
    gw_authp_waiter_t w; // embedded, as in the gateway's requests
} req_t;

typedef struct {
    int tag;                  // which request
    gw_authp_answer_t answer; // what it got
} got_t;

typedef struct {
    struct ev_loop *loop;          // the test's own loop
    t_server_t *srv;               // the provider
    gw_authp_t *authp;             // under test
    const gw_authp_stats_t *stats; // its counters
    req_t reqs[MAX_ANSWERS];       // requests, by tag
    got_t got[MAX_ANSWERS];        // callbacks, in order
    size_t ngot;                   // how many
    size_t want;                   // t_loop_until stops at this many
    bool in_check;                 // inside gw_authp_check
    char url[128];                 // http://127.0.0.1:PORT/check?x=1
    EVP_PKEY *key;                 // test_https: the server's key
    X509 *cert;                    // ... its certificate
    char *pem;                     // ... as PEM
    SSL_CTX *tls;                  // ... its context
    char ca_file[64];              // ... a file with the PEM, or ""
} fixture_t;

static void
s_on_answer(gw_authp_waiter_t *w, const gw_authp_answer_t *answer, void *arg)
{
    fixture_t *fx = arg;
    assert_false(fx->in_check); // never from inside a check
    assert_null(w->call);
    req_t *r = (req_t *) (void *) ((char *) w - offsetof(req_t, w));
    assert_true(fx->ngot < MAX_ANSWERS);
    fx->got[fx->ngot].tag = r->tag;
    fx->got[fx->ngot].answer = *answer;
    fx->ngot++;
}

static bool
s_enough(void *arg)
{
    fixture_t *fx = arg;
    return fx->ngot >= fx->want;
}

//  Run the loop until n answers in all came.
static void
s_wait(fixture_t *fx, size_t n)
{
    fx->want = n;
    assert_true(t_loop_until(fx->loop, s_enough, fx, DEADLINE_S));
}

static gw_authp_query_t
s_query(const fixture_t *fx, const char *authorization, int64_t cache_ms)
{
    gw_authp_query_t q = {
        .url = fx->url,
        .route = "service-a",
        .cache_ms = cache_ms,
        .method = "GET",
        .method_len = 3,
        .host = "api.example.com",
        .host_len = 15,
        .path = "/orders?id=7",
        .path_len = 12,
        .client_ip = "192.0.2.10",
        .client_ip_len = 10,
        .authorization = authorization,
        .authorization_len = authorization ? strlen(authorization) : 0,
        .cookie = "session=abc; theme=dark",
        .cookie_len = 23,
    };
    return q;
}

//  Check q for request tag; returns what gw_authp_check returned.
static int
s_check(fixture_t *fx, int tag, const gw_authp_query_t *q, gw_authp_answer_t *now)
{
    req_t *r = &fx->reqs[tag];
    r->tag = tag;
    fx->in_check = true;
    int rc = gw_authp_check(fx->authp, q, now, &r->w, s_on_answer, fx);
    fx->in_check = false;
    return rc;
}

static int
s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->srv = s_server_new(fx->loop, AF_INET, true);
    gw_authp_config_t cfg = {.timeout_ms = TIMEOUT_MS};
    fx->authp = gw_authp_new(fx->loop, &cfg);
    assert_non_null(fx->authp);
    fx->stats = gw_authp_stats(fx->authp);
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%u/check?x=1", fx->srv->port);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    gw_authp_destroy(&fx->authp);
    gw_authp_destroy(&fx->authp);
    s_server_destroy(&fx->srv);
    SSL_CTX_free(fx->tls);
    X509_free(fx->cert);
    EVP_PKEY_free(fx->key);
    free(fx->pem);
    if (fx->ca_file[0])
        unlink(fx->ca_file);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

//  One check that must go to the provider; returns its answer.
static gw_authp_answer_t
s_call(fixture_t *fx, const gw_authp_query_t *q)
{
    gw_authp_answer_t now;
    size_t before = fx->ngot;
    assert_int_equal(s_check(fx, 0, q, &now), 0);
    assert_int_equal(fx->ngot, before);
    s_wait(fx, before + 1);
    return fx->got[before].answer;
}

// --------------------------------------------------------------------------
// Tests

static void
test_allow_with_user(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-User-Id: user-42\r\n"
                        "Content-Length: 2\r\n\r\nok";
    gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.user, "user-42");
    assert_string_equal(a.why, "");
    // what the provider received
    assert_int_equal(fx->srv->requests, 1);
    assert_true(strncmp(fx->srv->head, "POST /check?x=1 HTTP/1.1\r\n", 26) == 0);
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%u\r\n", fx->srv->port);
    assert_non_null(strstr(fx->srv->head, host));
    assert_non_null(strstr(fx->srv->head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(fx->srv->head, "\r\nConnection: close\r\n"));
    json_error_t err;
    json_t *j = json_loads(fx->srv->body, 0, &err);
    assert_non_null(j);
    const char *method, *host_, *path, *ip, *authz, *cookie;
    assert_int_equal(json_unpack(j, "{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "method", &method, "host",
                                 &host_, "path", &path, "clientIp", &ip, "headers", "authorization",
                                 &authz, "cookie", &cookie),
                     0);
    assert_string_equal(method, "GET");
    assert_string_equal(host_, "api.example.com");
    assert_string_equal(path, "/orders?id=7");
    assert_string_equal(ip, "192.0.2.10");
    assert_string_equal(authz, "Bearer abc");
    assert_string_equal(cookie, "session=abc; theme=dark");
    assert_int_equal(json_object_size(j), 5);
    json_decref(j);
    assert_int_equal(fx->stats->checks, 1);
    assert_int_equal(fx->stats->calls, 1);
    assert_int_equal(fx->stats->inflight, 0);
    assert_int_equal(fx->stats->entries, 1);
}

static void
test_absent_headers_are_null(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 204 No Content\r\n\r\n";
    gw_authp_query_t q = s_query(fx, NULL, 0);
    q.cookie = NULL;
    q.cookie_len = 0;
    q.client_ip = NULL;
    q.client_ip_len = 0;
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
    assert_string_equal(a.user, "");
    json_t *j = json_loads(fx->srv->body, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "clientIp")));
    json_t *h = json_object_get(j, "headers");
    assert_true(json_is_null(json_object_get(h, "authorization")));
    assert_true(json_is_null(json_object_get(h, "cookie")));
    json_decref(j);
}

static void
test_denials_and_errors(void **state)
{
    fixture_t *fx = *state;
    struct {
        const char *response;
        gw_authp_verdict_t verdict;
        int status;
        const char *why;
    } cases[] = {
        {"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", GW_AUTHP_DENY_401, 401, ""},
        {"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope", GW_AUTHP_DENY_403, 403, ""},
        {"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", GW_AUTHP_UNAVAILABLE, 500, "status 500"},
        {"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", GW_AUTHP_UNAVAILABLE, 302, "status 302"},
        {"HTTP/1.0 404 Not Found\r\n\r\nbody until the end", GW_AUTHP_UNAVAILABLE, 404,
         "status 404"},
        {"", GW_AUTHP_UNAVAILABLE, 0, "closed before answering"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", GW_AUTHP_UNAVAILABLE, 0,
         "closed before answering"},
        {"HTTX/1.1 200 OK\r\n\r\n", GW_AUTHP_UNAVAILABLE, 0, "bad response"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx->srv->response = cases[i].response;
        char authz[32];
        snprintf(authz, sizeof authz, "Basic eDp5%zu", i); // a key of its own
        gw_authp_query_t q = s_query(fx, authz, 5000);
        gw_authp_answer_t a = s_call(fx, &q);
        assert_int_equal(a.verdict, cases[i].verdict);
        assert_int_equal(a.status, cases[i].status);
        assert_string_equal(a.why, cases[i].why);
        assert_string_equal(a.user, "");
    }
    // 401 and 403 were cached, the 503s were not
    assert_int_equal(fx->stats->failures, 6);
    assert_int_equal(fx->stats->entries, 2);
}

static void
test_errors_not_cached(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
    gw_authp_query_t q = s_query(fx, "Bearer x", 5000);
    assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_UNAVAILABLE);
    fx->srv->response = "HTTP/1.1 200 OK\r\nX-User-Id: u1\r\nContent-Length: 0\r\n\r\n";
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
    assert_string_equal(a.user, "u1");
    assert_int_equal(fx->srv->requests, 2);
}

static void
test_refused(void **state)
{
    fixture_t *fx = *state;
    t_server_t *closed = s_server_new(fx->loop, AF_INET, false);
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%u/", closed->port);
    gw_authp_query_t q = s_query(fx, "Bearer x", 5000);
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(a.why, "refused");
    assert_int_equal(fx->stats->failures, 1);
    assert_int_equal(fx->stats->entries, 0);
    s_server_destroy(&closed);
}

static void
test_timeout(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = NULL; // reads the request, never answers
    gw_authp_query_t q = s_query(fx, "Bearer x", 5000);
    ev_now_update(fx->loop);
    double t0 = ev_now(fx->loop);
    gw_authp_answer_t a = s_call(fx, &q);
    ev_now_update(fx->loop);
    double took = ev_now(fx->loop) - t0;
    assert_int_equal(a.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(a.why, "timeout");
    assert_true(took >= TIMEOUT_MS / 1000.0 - 0.01 && took < 1.0);
    assert_int_equal(fx->srv->requests, 1);
    assert_int_equal(fx->stats->timeouts, 1);
    assert_int_equal(fx->stats->failures, 1);
    assert_int_equal(fx->stats->inflight, 0);
}

static void
test_cache_hit(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nContent-Length: 0\r\n\r\n";
    gw_authp_query_t q = s_query(fx, "Bearer abc", 150);
    assert_string_equal(s_call(fx, &q).user, "alice");
    // the same credentials on the same route, another path: from the cache
    q.path = "/other";
    q.path_len = 6;
    gw_authp_answer_t now;
    assert_int_equal(s_check(fx, 1, &q, &now), 1);
    assert_int_equal(now.verdict, GW_AUTHP_ALLOW);
    assert_string_equal(now.user, "alice");
    assert_null(fx->reqs[1].w.call); // the waiter was not used
    assert_int_equal(fx->srv->requests, 1);
    assert_int_equal(fx->stats->hits, 1);
    // a route that now caches for less sees the answer as too old
    t_loop_pass(fx->loop, 0.06);
    q.cache_ms = 50;
    assert_int_equal(s_check(fx, 1, &q, &now), 0);
    s_wait(fx, 2);
    assert_int_equal(fx->srv->requests, 2);
    // other credentials, another cookie, another route: not the same answer
    q.cache_ms = 150;
    gw_authp_query_t q2 = q;
    q2.authorization = "Bearer abd";
    assert_int_equal(s_check(fx, 2, &q2, &now), 0);
    q2 = q;
    q2.cookie_len = 7; // "session"
    assert_int_equal(s_check(fx, 3, &q2, &now), 0);
    q2 = q;
    q2.route = "service-b";
    assert_int_equal(s_check(fx, 4, &q2, &now), 0);
    s_wait(fx, 5);
    assert_int_equal(fx->srv->requests, 5);
    // past authCacheMs: asked again
    t_loop_pass(fx->loop, 0.2);
    assert_int_equal(s_check(fx, 5, &q, &now), 0);
    s_wait(fx, 6);
    assert_int_equal(fx->srv->requests, 6);
}

static void
test_no_cache(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
    assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_ALLOW);
    assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_ALLOW);
    assert_int_equal(fx->srv->requests, 2);
    assert_int_equal(fx->stats->entries, 0);
    assert_int_equal(fx->stats->hits, 0);
}

static void
test_coalescing(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
    gw_authp_answer_t now;
    assert_int_equal(s_check(fx, 0, &q, &now), 0);
    q.path = "/elsewhere"; // same credentials and route: same answer
    q.path_len = 10;
    assert_int_equal(s_check(fx, 1, &q, &now), 0);
    assert_int_equal(s_check(fx, 2, &q, &now), 0);
    s_wait(fx, 3);
    assert_int_equal(fx->srv->requests, 1);
    assert_int_equal(fx->stats->coalesced, 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->got[i].tag, i); // oldest first
        assert_int_equal(fx->got[i].answer.verdict, GW_AUTHP_DENY_403);
    }
    // without a cache, only identical requests share a call
    q = s_query(fx, "Bearer abc", 0);
    assert_int_equal(s_check(fx, 3, &q, &now), 0);
    assert_int_equal(s_check(fx, 4, &q, &now), 0);
    q.path = "/elsewhere";
    q.path_len = 10;
    assert_int_equal(s_check(fx, 5, &q, &now), 0);
    s_wait(fx, 6);
    assert_int_equal(fx->srv->requests, 3);
    assert_int_equal(fx->stats->coalesced, 3);
}

static void
test_cancel(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 200 OK\r\nX-User-Id: bob\r\nContent-Length: 0\r\n\r\n";
    gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
    gw_authp_answer_t now;
    assert_int_equal(s_check(fx, 0, &q, &now), 0);
    assert_int_equal(s_check(fx, 1, &q, &now), 0);
    gw_authp_cancel(fx->authp, &fx->reqs[0].w);
    assert_null(fx->reqs[0].w.call);
    gw_authp_cancel(fx->authp, &fx->reqs[0].w); // twice is fine
    s_wait(fx, 1);
    t_loop_pass(fx->loop, 0.02);
    assert_int_equal(fx->ngot, 1);
    assert_int_equal(fx->got[0].tag, 1);
    gw_authp_cancel(fx->authp, &fx->reqs[1].w); // answered: nothing to do
    // a call whose only waiter went away still fills the cache
    q.authorization = "Bearer other";
    q.authorization_len = 12;
    assert_int_equal(s_check(fx, 2, &q, &now), 0);
    gw_authp_cancel(fx->authp, &fx->reqs[2].w);
    t_loop_pass(fx->loop, 0.1);
    assert_int_equal(fx->ngot, 1);
    assert_int_equal(fx->srv->requests, 2);
    assert_int_equal(s_check(fx, 3, &q, &now), 1);
    assert_string_equal(now.user, "bob");
}

//  A callback that starts another check of the same key from inside the
//  callback: the cache answers it.
static void
s_on_answer_again(gw_authp_waiter_t *w, const gw_authp_answer_t *answer, void *arg)
{
    fixture_t *fx = arg;
    s_on_answer(w, answer, arg);
    gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
    gw_authp_answer_t now;
    assert_int_equal(gw_authp_check(fx->authp, &q, &now, w, s_on_answer, fx), 1);
    assert_int_equal(now.verdict, GW_AUTHP_ALLOW);
    // and cancels the other waiter of its call
    gw_authp_cancel(fx->authp, &fx->reqs[1].w);
}

static void
test_reentry(void **state)
{
    fixture_t *fx = *state;
    fx->srv->response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
    gw_authp_answer_t now;
    fx->reqs[0].tag = 0;
    assert_int_equal(gw_authp_check(fx->authp, &q, &now, &fx->reqs[0].w, s_on_answer_again, fx), 0);
    assert_int_equal(s_check(fx, 1, &q, &now), 0);
    s_wait(fx, 1);
    t_loop_pass(fx->loop, 0.02);
    assert_int_equal(fx->ngot, 1);
}

static void
test_user_id_checked(void **state)
{
    fixture_t *fx = *state;
    char at_bound[GW_AUTHP_USER_MAX + 1], over[GW_AUTHP_USER_MAX + 2];
    memset(at_bound, 'u', sizeof at_bound - 1);
    at_bound[sizeof at_bound - 1] = '\0';
    memset(over, 'u', sizeof over - 1);
    over[sizeof over - 1] = '\0';
    char field_at_bound[200], field_over[200];
    snprintf(field_at_bound, sizeof field_at_bound, "X-User-Id: %s\r\n", at_bound);
    snprintf(field_over, sizeof field_over, "X-User-Id: %s\r\n", over);
    struct {
        const char *field; // the X-User-Id field(s)
        const char *user;  // the answer's user
    } cases[] = {
        {"X-User-Id: a@b.c\r\n", "a@b.c"},
        {"x-user-id:   spaced   \r\n", "spaced"},
        {field_at_bound, at_bound},
        {field_over, ""},
        {"X-User-Id: two words\r\n", ""},
        {"X-User-Id:\r\n", ""},
        {"X-User-Id: a\r\nX-User-Id: b\r\n", ""},
        {"X-User-Id: caf\xc3\xa9\r\n", ""},
        {"X-User-Ids: x\r\n", ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char resp[512];
        snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\n%sContent-Length: 0\r\n\r\n",
                 cases[i].field);
        fx->srv->response = resp;
        gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
        gw_authp_answer_t a = s_call(fx, &q);
        assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
        assert_string_equal(a.user, cases[i].user);
    }
}

static void
test_bad_queries(void **state)
{
    fixture_t *fx = *state;
    gw_authp_answer_t now;
    gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
    q.cookie = "caf\xc3";
    q.cookie_len = 4;
    assert_int_equal(s_check(fx, 0, &q, &now), -1);
    q = s_query(fx, "Bearer \xff", 5000);
    assert_int_equal(s_check(fx, 0, &q, &now), -1);
    q = s_query(fx, "Bearer abc", -1);
    assert_int_equal(s_check(fx, 0, &q, &now), -1);
    q = s_query(fx, "Bearer abc", 5000);
    q.url = NULL;
    assert_int_equal(s_check(fx, 0, &q, &now), -1);
    q = s_query(fx, "Bearer abc", 5000);
    q.path = NULL; // with a length
    assert_int_equal(s_check(fx, 0, &q, &now), -1);
    static char big[GW_AUTHP_FIELD_MAX + 1];
    memset(big, 'a', sizeof big);
    q = s_query(fx, "Bearer abc", 5000);
    q.cookie = big;
    q.cookie_len = sizeof big;
    assert_int_equal(s_check(fx, 0, &q, &now), -1);
    assert_null(fx->reqs[0].w.call);
    assert_int_equal(fx->stats->checks, 0);
    // valid UTF-8 (and a control character) is fine: JSON escapes it
    fx->srv->response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    q = s_query(fx, "Bearer \xc3\xa9\x01\"", 5000);
    assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_ALLOW);
    json_t *j = json_loads(fx->srv->body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "headers"), "authorization")),
        "Bearer \xc3\xa9\x01\"");
    json_decref(j);
}

static void
test_urls(void **state)
{
    fixture_t *fx = *state;
    gw_authp_answer_t now;
    struct {
        const char *url;
        const char *why;
    } bad[] = {
        {"ftp://auth.example.com/", "authProvider URL is not http:// or https://"},
        {"http://user:pw@127.0.0.1/", "authProvider URL with userinfo not supported"},
        {"http:///x", "authProvider URL has a bad host"},
        {"http://a b/", "authProvider URL has a bad port"},
        {"http://[::1/", "authProvider URL has a bad host"},
        {"http://127.0.0.1:0/", "authProvider URL has a bad port"},
        {"http://127.0.0.1:65536/", "authProvider URL has a bad port"},
        {"http://127.0.0.1:/", "authProvider URL has a bad port"},
        {"http://127.0.0.1/a b", "authProvider URL has a bad path"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_authp_query_t q = s_query(fx, "Bearer abc", 5000);
        q.url = bad[i].url;
        assert_int_equal(s_check(fx, 0, &q, &now), 1);
        assert_int_equal(now.verdict, GW_AUTHP_UNAVAILABLE);
        assert_string_equal(now.why, bad[i].why);
    }
    assert_int_equal(fx->stats->failures, sizeof bad / sizeof bad[0]);
    assert_int_equal(fx->stats->calls, 0);
    // no path: "/"; a query without a path: "/?q"; the fragment is not sent
    fx->srv->response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    struct {
        const char *base; // before ":PORT"
        const char *rest; // after it
        const char *path; // the request's target
        const char *host; // its Host, without ":PORT"
    } forms[] = {
        {"http://127.0.0.1", "", "/", "127.0.0.1"},
        {"HTTP://127.0.0.1", "?q=1#frag", "/?q=1", "127.0.0.1"},
        {"http://localhost", "/a/b#frag", "/a/b", "localhost"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char want[128];
        snprintf(fx->url, sizeof fx->url, "%s:%u%s", forms[i].base, fx->srv->port, forms[i].rest);
        snprintf(want, sizeof want, "POST %s HTTP/1.1\r\nHost: %s:%u\r\n", forms[i].path,
                 forms[i].host, fx->srv->port);
        gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
        assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_ALLOW);
        assert_true(strncmp(fx->srv->head, want, strlen(want)) == 0);
    }
}

static void
test_ipv6(void **state)
{
    fixture_t *fx = *state;
    t_server_t *srv6 = s_server_new(fx->loop, AF_INET6, true);
    if (srv6 == NULL) {
        print_message("  no IPv6 loopback here: only the URL is checked\n");
        snprintf(fx->url, sizeof fx->url, "http://[::1]:1/");
        gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
        assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_UNAVAILABLE);
        return;
    }
    srv6->response = "HTTP/1.1 200 OK\r\nX-User-Id: six\r\nContent-Length: 0\r\n\r\n";
    snprintf(fx->url, sizeof fx->url, "http://[::1]:%u/v6", srv6->port);
    gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
    assert_string_equal(a.user, "six");
    char want[64];
    snprintf(want, sizeof want, "\r\nHost: [::1]:%u\r\n", srv6->port);
    assert_non_null(strstr(srv6->head, want));
    s_server_destroy(&srv6);
}

static void
test_names(void **state)
{
    fixture_t *fx = *state;
    // a client of its own, whose names a test DNS server answers
    t_dns_t *dns = t_dns_new(fx->loop);
    t_dns_set(dns, "auth.test", "127.0.0.1", 60);
    t_dns_set_nxdomain(dns, "nowhere.test");
    gw_authp_config_t cfg = {.timeout_ms = 1000, .dns_servers = t_dns_servers(dns)};
    gw_authp_destroy(&fx->authp);
    fx->authp = gw_authp_new(fx->loop, &cfg);
    assert_non_null(fx->authp);
    fx->srv->response = "HTTP/1.1 200 OK\r\nX-User-Id: named\r\nContent-Length: 0\r\n\r\n";
    snprintf(fx->url, sizeof fx->url, "http://auth.test.:%u/check", fx->srv->port);
    gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
    assert_string_equal(a.user, "named");
    unsigned queries = t_dns_queries(dns, "auth.test");
    assert_true(queries >= 1);
    // the name is cached: no other query
    assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_ALLOW);
    assert_int_equal(t_dns_queries(dns, "auth.test"), queries);
    // a name with an address where nothing listens: the next one is tried
    // (gw_dns rotates the addresses: each is first once in two calls)
    t_dns_set(dns, "two.test", "127.0.0.1,127.0.0.2", 60);
    snprintf(fx->url, sizeof fx->url, "http://two.test.:%u/check", fx->srv->port);
    for (int i = 0; i < 2; i++)
        assert_string_equal(s_call(fx, &q).user, "named");
    assert_int_equal(fx->srv->requests, 4);
    snprintf(fx->url, sizeof fx->url, "http://nowhere.test.:%u/check", fx->srv->port);
    a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(a.why, "name does not resolve");
    gw_authp_destroy(&fx->authp);
    t_dns_destroy(&dns);
}

static void
test_too_many_calls(void **state)
{
    fixture_t *fx = *state;
    gw_authp_config_t cfg = {.timeout_ms = TIMEOUT_MS, .max_calls = 2, .max_entries = 1};
    gw_authp_destroy(&fx->authp);
    fx->authp = gw_authp_new(fx->loop, &cfg);
    fx->stats = gw_authp_stats(fx->authp);
    fx->srv->response = NULL;
    gw_authp_answer_t now;
    const char *creds[] = {"Bearer 1", "Bearer 2", "Bearer 3"};
    for (int i = 0; i < 3; i++) {
        gw_authp_query_t q = s_query(fx, creds[i], 5000);
        assert_int_equal(s_check(fx, i, &q, &now), i < 2 ? 0 : 1);
    }
    assert_int_equal(now.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(now.why, "too many authProvider calls in flight");
    // destroy with calls in flight: no callback, the waiters are free
    gw_authp_destroy(&fx->authp);
    assert_null(fx->reqs[0].w.call);
    assert_null(fx->reqs[1].w.call);
    t_loop_pass(fx->loop, 0.01);
    assert_int_equal(fx->ngot, 0);
    // a cache of one entry keeps the last answer
    fx->authp = gw_authp_new(fx->loop, &cfg);
    fx->stats = gw_authp_stats(fx->authp);
    fx->srv->response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        gw_authp_query_t q = s_query(fx, creds[i], 5000);
        assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_ALLOW);
    }
    assert_int_equal(fx->stats->entries, 1);
    gw_authp_query_t q = s_query(fx, creds[1], 5000);
    assert_int_equal(s_check(fx, 0, &q, &now), 1);
    q = s_query(fx, creds[0], 5000);
    assert_int_equal(s_check(fx, 0, &q, &now), 0);
    s_wait(fx, 3);
}

static void
test_https(void **state)
{
    fixture_t *fx = *state;
    // a certificate for "localhost" (CN only: no IP address in it), and a
    // CA file that trusts it (the fixture frees them, whatever happens)
    fx->key = EVP_EC_gen("P-256");
    assert_non_null(fx->key);
    fx->pem = t_pki_cert(fx->key, "localhost", "20200101000000Z", "20991231000000Z", NULL, NULL,
                         &fx->cert);
    snprintf(fx->ca_file, sizeof fx->ca_file, "/tmp/test_authp_ca_XXXXXX");
    int fd = mkstemp(fx->ca_file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, fx->pem, strlen(fx->pem)), (ssize_t) strlen(fx->pem));
    close(fd);
    fx->tls = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(fx->tls, fx->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(fx->tls, fx->key), 1);
    fx->srv->tls = fx->tls;
    fx->srv->response = "HTTP/1.1 200 OK\r\nX-User-Id: tls-user\r\nContent-Length: 0\r\n\r\n";
    // handshakes under sanitizers on a busy machine: the gateway's 2 s
    gw_authp_config_t cfg = {.timeout_ms = 2000, .ca_file = fx->ca_file};
    gw_authp_destroy(&fx->authp);
    fx->authp = gw_authp_new(fx->loop, &cfg);
    fx->stats = gw_authp_stats(fx->authp);
    snprintf(fx->url, sizeof fx->url, "https://localhost:%u/check", fx->srv->port);
    gw_authp_query_t q = s_query(fx, "Bearer abc", 0);
    gw_authp_answer_t a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_ALLOW);
    assert_string_equal(a.user, "tls-user");
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: localhost:%u\r\n", fx->srv->port);
    assert_non_null(strstr(fx->srv->head, host));
    json_t *j = json_loads(fx->srv->body, 0, NULL);
    assert_non_null(j);
    json_decref(j);
    fx->srv->response = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(s_call(fx, &q).verdict, GW_AUTHP_DENY_403);
    // the address is not in the certificate
    snprintf(fx->url, sizeof fx->url, "https://127.0.0.1:%u/check", fx->srv->port);
    a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(a.why, "TLS certificate not accepted");
    // a server that hangs up during the handshake
    fx->srv->hangup = true;
    snprintf(fx->url, sizeof fx->url, "https://localhost:%u/check", fx->srv->port);
    a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(a.why, "TLS handshake failed");
    fx->srv->hangup = false;
    // the system's store does not trust the test's certificate
    gw_authp_destroy(&fx->authp);
    fx->authp = gw_authp_new(fx->loop, &(gw_authp_config_t){.timeout_ms = 2000});
    a = s_call(fx, &q);
    assert_int_equal(a.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(a.why, "TLS certificate not accepted");
    // a CA file that cannot be read: 503 at once
    gw_authp_destroy(&fx->authp);
    cfg.ca_file = "/nonexistent/ca.pem";
    fx->authp = gw_authp_new(fx->loop, &cfg);
    gw_authp_answer_t now;
    assert_int_equal(s_check(fx, 0, &q, &now), 1);
    assert_int_equal(now.verdict, GW_AUTHP_UNAVAILABLE);
    assert_string_equal(now.why, "no TLS client context");
}

// --------------------------------------------------------------------------
// The response parser alone

static int
s_feed_all(const char *text, size_t step, gw_authp_resp_t *r)
{
    gw_authp_resp_init(r);
    size_t len = strlen(text);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        int rc = gw_authp_resp_feed(r, text + off, n);
        if (rc != 0)
            return rc;
    }
    return gw_authp_resp_feed(r, NULL, 0);
}

static void
test_resp_parser(void **state)
{
    (void) state;
    gw_authp_resp_t r;
    const char *ok = "HTTP/1.1 100 Continue\r\nX-User-Id: early\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nX-USER-ID: late\r\nContent-Length: 5\r\n\r\nhello"
                     "HTTP/1.1 500 after\r\n\r\n";
    for (size_t step = 1; step <= strlen(ok); step++) {
        assert_int_equal(s_feed_all(ok, step, &r), 1);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.user, "late");
    }
    // the end of the stream ends a body without a length
    assert_int_equal(s_feed_all("HTTP/1.1 200 OK\r\nX-User-Id: eof\r\n\r\nuntil the end", 7, &r),
                     1);
    assert_string_equal(r.user, "eof");
    // nothing, half a head, junk
    assert_int_equal(s_feed_all("", 1, &r), -1);
    assert_int_equal(s_feed_all("HTTP/1.1 200 OK\r\nX-Us", 3, &r), -1);
    assert_int_equal(s_feed_all("hello\r\n\r\n", 3, &r), -1);
    assert_int_equal(s_feed_all("HTTX/1.1 200 OK\r\n\r\n", 3, &r), -1);
    assert_int_equal(s_feed_all("HTTP/1.0 4\n\n", 3, &r), -1); // http-parser would take it
    // interim answers without end: malformed after GW_AUTHP_STREAM_MAX bytes
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    gw_authp_resp_init(&r);
    size_t fed = 0;
    int rc = 0;
    while (rc == 0 && fed <= GW_AUTHP_STREAM_MAX) {
        rc = gw_authp_resp_feed(&r, interim, sizeof interim - 1);
        fed += sizeof interim - 1;
    }
    assert_int_equal(rc, -1);
    assert_true(fed > GW_AUTHP_STREAM_MAX);
    assert_int_equal(gw_authp_resp_feed(&r, NULL, 0), -1); // settled
    // a head over GW_AUTHP_HEAD_MAX
    size_t big = GW_AUTHP_HEAD_MAX + 100;
    char *head = malloc(big + 64);
    int n = snprintf(head, 64, "HTTP/1.1 200 OK\r\nX-Pad: ");
    memset(head + n, 'p', big);
    memcpy(head + n + big, "\r\n\r\n", 5);
    assert_int_equal(s_feed_all(head, 4096, &r), -1);
    free(head);
    // a long body: complete after GW_AUTHP_BODY_MAX bytes, whatever follows
    char *body = malloc(GW_AUTHP_BODY_MAX + 128);
    n = snprintf(body, 128, "HTTP/1.1 403 No\r\nContent-Length: 999999\r\n\r\n");
    memset(body + n, 'b', GW_AUTHP_BODY_MAX);
    body[n + GW_AUTHP_BODY_MAX] = '\0';
    gw_authp_resp_init(&r);
    assert_int_equal(gw_authp_resp_feed(&r, body, (size_t) n + GW_AUTHP_BODY_MAX - 1), 0);
    assert_int_equal(gw_authp_resp_feed(&r, body + n, 1), 1);
    assert_int_equal(r.status, 403);
    free(body);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allow_with_user, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_absent_headers_are_null, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_denials_and_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_errors_not_cached, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cache_hit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_cache, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reentry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_user_id_checked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_queries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_urls, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_names, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_too_many_calls, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_https, s_setup, s_teardown),
        cmocka_unit_test(test_resp_parser),
    };
    int rc = cmocka_run_group_tests_name("gw_authp", tests, NULL, NULL);
    proto_log_shutdown();
    return rc;
}
