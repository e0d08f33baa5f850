/*  gw_authp - the authProvider client (see gw_authp.h).

    A check that the cache cannot answer joins the call in flight for its
    key, or starts one. A call owns its socket, a timer (the whole call's
    timeout, or a zero delay that delivers a failure known while starting,
    so that no callback runs inside gw_authp_check) and a gw_dns waiter. It
    goes: name (gw_dns: literals at once) -> non-blocking connect -> write
    the request -> read the answer through gw_authp_resp until it is
    complete -> answer every waiter, oldest first, after it left the table
    of calls in flight (a callback that checks the same key again finds the
    cache, or starts a new call).

    The cache is a chained hash table with an LRU list; its keys, like the
    calls' keys, are SHA-256 digests salted with random bytes of the
    object's, so a client cannot choose values that share a chain. Times
    are the loop's (ev_now).
*/
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gw_authp.h"
#include "gw_dns.h"
#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"

#define S_DIGEST       32   // bytes of a SHA-256
#define S_SALT         16   // bytes of the keys' salt
#define S_CALL_BUCKETS 256  // chains of the table of calls in flight
#define S_HOST_MAX     255  // bytes of a URL's host
#define S_ADDRS        4    // addresses of a name tried, at most
#define S_READ_CHUNK   4096 // bytes per recv
#define S_DNS_ENTRIES  256  // names the resolver cache keeps (URLs are few)
#define S_WARN_EVERY_S 1.0  // at most one warning a second
#define S_TLS_RETRY_S  10.0 // a TLS context that could not be made: the next try

typedef struct s_entry {
    uint8_t key[S_DIGEST];            // cache key
    double stored;                    // when answered (ev_now)
    double expires;                   // stored + the caching route's authCacheMs
    gw_authp_verdict_t verdict;       // ALLOW, DENY_401 or DENY_403
    int status;                       // the provider's status
    char user[GW_AUTHP_USER_MAX + 1]; // ALLOW: X-User-Id or ""
    struct s_entry *hnext;            // hash chain
    proto_link_t lru;                 // in the LRU list, most recent first
} s_entry_t;

typedef struct s_call {
    gw_authp_t *owner;                      // the client
    uint8_t key[S_DIGEST];                  // coalescing key
    uint8_t cache_key[S_DIGEST];            // where the answer is cached
    int64_t cache_ms;                       // for how long (0: not cached)
    proto_list_t waiters;                   // gw_authp_waiter_t, oldest first
    struct s_call *hnext;                   // chain of the table of calls in flight
    proto_link_t link;                      // in the client's list of calls
    char host[S_HOST_MAX + 1];              // the URL's host (no brackets)
    uint16_t port;                          // its port
    struct sockaddr_storage addrs[S_ADDRS]; // its addresses (port set)
    size_t naddrs;                          // how many
    size_t addr_i;                          // the next one to try
    char *url;                              // the URL, for the log
    char *req;                              // the request (head and body)
    size_t req_len;                         // its length
    size_t req_off;                         // bytes sent
    gw_dns_waiter_t dns;                    // waiting for the host's addresses
    int fd;                                 // the socket, -1 when none
    ev_io io;                               // its readiness
    ev_timer timer;                         // the timeout, or a deferred failure
    bool connected;                         // connect completed
    SSL *ssl;                               // https: the TLS client, else NULL
    bool handshaken;                        // ... its handshake completed
    bool deferred;                          // the timer delivers why
    char why[GW_AUTHP_WHY_MAX];             // ...
    gw_authp_resp_t resp;                   // the answer being read
} s_call_t;

struct gw_authp {
    struct ev_loop *loop;               // the gateway's loop
    gw_authp_config_t cfg;              // settings, defaults applied (no strings)
    gw_dns_t *dns;                      // names of URLs
    EVP_MD *md;                         // SHA-256, fetched once
    EVP_MD_CTX *ctx;                    // reused for every key
    uint8_t salt[S_SALT];               // of every key
    s_entry_t **buckets;                // the cache's chains
    size_t nbuckets;                    // a power of two
    proto_list_t lru;                   // cache entries, most recently used first
    s_call_t *inflight[S_CALL_BUCKETS]; // calls by key
    proto_list_t calls;                 // every call
    SSL_CTX *tls;                       // https calls' context, made by the first one
    char *ca_file;                      // cfg.ca_file, copied, or NULL
    double tls_retry;                   // no TLS context: no new try before (ev_now)
    double warned;                      // when the last warning was written
    uint64_t unwarned;                  // failures since, not written
    gw_authp_stats_t stats;             // counters
};

typedef struct {
    bool https;                     // https://
    char host[S_HOST_MAX + 1];      // name or address, without brackets
    char authority[S_HOST_MAX + 9]; // host[:port] as in the URL: the Host field
    uint16_t port;                  // given, or the scheme's
    const char *path;               // path and query, up to a '#'
    size_t path_len;                // bytes (0: "/")
} s_url_t;

// --------------------------------------------------------------------------
// The response parser (pure: fuzzed)

//  End of an X-User-Id value: keep it if it is 1..GW_AUTHP_USER_MAX visible
//  ASCII bytes (trailing spaces dropped).
static void
s_user_end(gw_authp_resp_t *r)
{
    if (!r->in_user)
        return;
    r->in_user = false;
    while (r->user_len > 0 && !r->user_bad
           && (r->user[r->user_len - 1] == ' ' || r->user[r->user_len - 1] == '\t'))
        r->user_len--;
    if (r->user_len == 0)
        r->user_bad = true;
    for (size_t i = 0; i < r->user_len && !r->user_bad; i++)
        if ((unsigned char) r->user[i] <= 0x20 || (unsigned char) r->user[i] >= 0x7f)
            r->user_bad = true;
    r->user[r->user_bad ? 0 : r->user_len] = '\0';
}

static bool
s_head_bound(gw_authp_resp_t *r, size_t len)
{
    r->head_bytes += len;
    return r->head_bytes <= GW_AUTHP_HEAD_MAX;
}

static int
s_on_message_begin(http_parser *p)
{
    gw_authp_resp_t *r = p->data;
    // a new head (the final one after an interim 1xx): nothing of the last
    r->user[0] = '\0';
    r->user_len = 0;
    r->users = 0;
    r->user_bad = false;
    r->field_len = 0;
    r->in_value = false;
    r->in_user = false;
    r->head_bytes = 0;
    return 0;
}

static int
s_on_status(http_parser *p, const char *at, size_t len)
{
    (void) at;
    return s_head_bound(p->data, len) ? 0 : -1;
}

static int
s_on_field(http_parser *p, const char *at, size_t len)
{
    gw_authp_resp_t *r = p->data;
    if (!s_head_bound(r, len))
        return -1;
    if (r->in_value) {
        s_user_end(r);
        r->in_value = false;
        r->field_len = 0;
    }
    for (size_t i = 0; i < len; i++, r->field_len++)
        if (r->field_len < sizeof r->field)
            r->field[r->field_len] = at[i];
    return 0;
}

static int
s_on_value(http_parser *p, const char *at, size_t len)
{
    gw_authp_resp_t *r = p->data;
    if (!s_head_bound(r, len))
        return -1;
    if (!r->in_value) {
        r->in_value = true;
        static const char name[] = "x-user-id";
        if (r->field_len == sizeof name - 1 && strncasecmp(r->field, name, sizeof name - 1) == 0) {
            // a second X-User-Id makes the answer's user ambiguous: none
            r->users++;
            r->in_user = true;
            r->user_bad = r->users > 1;
            r->user_len = 0;
        }
    }
    if (!r->in_user || r->user_bad)
        return 0;
    if (len > GW_AUTHP_USER_MAX - r->user_len) {
        r->user_bad = true;
        return 0;
    }
    memcpy(r->user + r->user_len, at, len);
    r->user_len += len;
    return 0;
}

static int
s_on_headers(http_parser *p)
{
    gw_authp_resp_t *r = p->data;
    if (p->status_code < 100 || p->status_code > 999)
        return -1; // http-parser 2.9.4 takes "HTTP/1.0 4" for a status
    s_user_end(r);
    if (r->users != 1 || r->user_bad)
        r->user[0] = '\0';
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101)
        return 0; // interim: the final head follows
    r->status = p->status_code;
    r->head_done = true;
    return 0;
}

static int
s_on_body(http_parser *p, const char *at, size_t len)
{
    (void) at;
    gw_authp_resp_t *r = p->data;
    r->body_bytes += len;
    if (r->body_bytes >= GW_AUTHP_BODY_MAX) {
        r->done = true; // enough: the head decided already
        return -1;
    }
    return 0;
}

static int
s_on_message_complete(http_parser *p)
{
    gw_authp_resp_t *r = p->data;
    if (!r->head_done)
        return 0; // an interim answer
    r->done = true;
    return -1; // stop: whatever follows is not ours
}

static const http_parser_settings s_resp_settings = {
    .on_message_begin = s_on_message_begin,
    .on_status = s_on_status,
    .on_header_field = s_on_field,
    .on_header_value = s_on_value,
    .on_headers_complete = s_on_headers,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

void
gw_authp_resp_init(gw_authp_resp_t *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
}

int
gw_authp_resp_feed(gw_authp_resp_t *r, const char *data, size_t len)
{
    static const char version[] = "HTTP/1.";
    if (r->done)
        return 1;
    if (r->bad)
        return -1;
    // only the stream's first GW_AUTHP_STREAM_MAX bytes are parsed (endless
    // interim answers or chunk framing): an answer not complete by then is
    // malformed, however reads split the stream
    size_t n = len < GW_AUTHP_STREAM_MAX - r->fed ? len : GW_AUTHP_STREAM_MAX - r->fed;
    for (size_t i = 0; i < n && r->fed + i < sizeof version - 1; i++)
        if (data[i] != version[r->fed + i])
            r->bad = true;
    r->fed += n;
    if (r->bad || (len > 0 && n == 0)) {
        r->bad = true;
        return -1;
    }
    size_t used = http_parser_execute(&r->parser, &s_resp_settings, data, n);
    if (r->done)
        return 1;
    if (len == 0 && r->head_done) {
        // the end of the stream after the final head: enough (a body cut
        // short does not change what the head said)
        r->done = true;
        return 1;
    }
    if (len == 0 || n < len || HTTP_PARSER_ERRNO(&r->parser) != HPE_OK || used != n) {
        r->bad = true; // for good: later calls say the same
        return -1;
    }
    return 0;
}

// --------------------------------------------------------------------------
// Queries, keys and URLs

//  True if s (len bytes) is valid UTF-8 (RFC 3629: no overlong forms, no
//  surrogates, nothing over U+10FFFF).
static bool
s_utf8_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            min = 0x80;
            c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            min = 0x800;
            c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            c = c << 6 | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static bool
s_field_ok(const char *s, size_t len)
{
    if (s == NULL)
        return len == 0;
    return len <= GW_AUTHP_FIELD_MAX && s_utf8_ok(s, len);
}

static bool
s_query_ok(const gw_authp_query_t *q)
{
    return q->url != NULL && q->route != NULL && q->cache_ms >= 0
           && strnlen(q->route, GW_AUTHP_FIELD_MAX + 1) <= GW_AUTHP_FIELD_MAX
           && s_field_ok(q->method, q->method_len) && s_field_ok(q->host, q->host_len)
           && s_field_ok(q->path, q->path_len) && s_field_ok(q->client_ip, q->client_ip_len)
           && s_field_ok(q->authorization, q->authorization_len)
           && s_field_ok(q->cookie, q->cookie_len);
}

//  Feed a piece to the digest: its presence and length first, so that the
//  pieces' boundaries are part of what is hashed.
static void
s_digest_piece(EVP_MD_CTX *ctx, const char *s, size_t len)
{
    uint8_t head[9];
    head[0] = s != NULL;
    for (int i = 0; i < 8; i++)
        head[1 + i] = (uint8_t) ((uint64_t) len >> (8 * i));
    (void) EVP_DigestUpdate(ctx, head, sizeof head);
    if (s && len > 0)
        (void) EVP_DigestUpdate(ctx, s, len);
}

//  The cache key of q: (URL, route, Authorization, Cookie). With body (the
//  JSON to post), the key of the call when the answer is not cached: the
//  whole request.
static int
s_key(gw_authp_t *self, const gw_authp_query_t *q, const char *body, uint8_t out[S_DIGEST])
{
    unsigned int n = 0;
    if (EVP_DigestInit_ex2(self->ctx, self->md, NULL) != 1)
        return -1;
    (void) EVP_DigestUpdate(self->ctx, self->salt, S_SALT);
    s_digest_piece(self->ctx, q->url, strlen(q->url));
    s_digest_piece(self->ctx, q->route, strlen(q->route));
    s_digest_piece(self->ctx, q->authorization, q->authorization_len);
    s_digest_piece(self->ctx, q->cookie, q->cookie_len);
    if (body)
        s_digest_piece(self->ctx, body, strlen(body));
    if (EVP_DigestFinal_ex(self->ctx, out, &n) != 1 || n != S_DIGEST)
        return -1;
    return 0;
}

static json_t *
s_json_str(const char *s, size_t len)
{
    return s ? json_stringn(s, len) : json_null();
}

//  The JSON to post (caller frees), or NULL.
static char *
s_body(const gw_authp_query_t *q)
{
    json_t *o = json_object();
    json_t *h = json_object();
    if (o == NULL || h == NULL) {
        json_decref(o);
        json_decref(h);
        return NULL;
    }
    json_object_set_new(o, "method", s_json_str(q->method, q->method_len));
    json_object_set_new(o, "host", s_json_str(q->host, q->host_len));
    json_object_set_new(o, "path", s_json_str(q->path, q->path_len));
    json_object_set_new(o, "clientIp", s_json_str(q->client_ip, q->client_ip_len));
    json_object_set_new(h, "authorization", s_json_str(q->authorization, q->authorization_len));
    json_object_set_new(h, "cookie", s_json_str(q->cookie, q->cookie_len));
    json_object_set_new(o, "headers", h);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static bool
s_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
           || c == '.' || c == '_';
}

//  Split an http:// or https:// URL. Returns NULL, or why it cannot be used.
static const char *
s_url_parse(const char *text, s_url_t *u)
{
    memset(u, 0, sizeof *u);
    size_t len = strnlen(text, GW_AUTHP_URL_MAX + 1);
    if (len > GW_AUTHP_URL_MAX)
        return "authProvider URL too long";
    const char *p;
    if (strncasecmp(text, "http://", 7) == 0) {
        p = text + 7;
        u->port = 80;
    } else if (strncasecmp(text, "https://", 8) == 0) {
        p = text + 8;
        u->port = 443;
        u->https = true;
    } else {
        return "authProvider URL is not http:// or https://";
    }
    const char *end = text + len;
    const char *auth_end = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t) (auth_end - p)))
        return "authProvider URL with userinfo not supported";
    const char *h = p, *h_end;
    const char *q = p;
    if (*q == '[') {
        h = ++q;
        while (q < auth_end && *q != ']')
            q++;
        if (q == auth_end || q == h)
            return "authProvider URL has a bad host";
        for (const char *c = h; c < q; c++)
            if (!isxdigit((unsigned char) *c) && *c != ':' && *c != '.')
                return "authProvider URL has a bad host";
        h_end = q++;
    } else {
        while (q < auth_end && s_host_char(*q))
            q++;
        h_end = q;
        if (h_end == h)
            return "authProvider URL has a bad host";
    }
    if ((size_t) (h_end - h) > S_HOST_MAX)
        return "authProvider URL has a bad host";
    if (q < auth_end) {
        if (*q != ':' || q + 1 == auth_end)
            return "authProvider URL has a bad port";
        unsigned long port = 0;
        for (q++; q < auth_end; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return "authProvider URL has a bad port";
            port = port * 10 + (unsigned long) (*q - '0');
        }
        if (port == 0 || port > 65535)
            return "authProvider URL has a bad port";
        u->port = (uint16_t) port;
    }
    memcpy(u->host, h, (size_t) (h_end - h));
    size_t alen = (size_t) (auth_end - p);
    if (alen >= sizeof u->authority)
        return "authProvider URL has a bad host";
    memcpy(u->authority, p, alen);
    u->path = auth_end;
    const char *frag = memchr(auth_end, '#', (size_t) (end - auth_end));
    u->path_len = (size_t) ((frag ? frag : end) - auth_end);
    for (size_t i = 0; i < u->path_len; i++)
        if ((unsigned char) u->path[i] <= 0x20 || (unsigned char) u->path[i] >= 0x7f)
            return "authProvider URL has a bad path";
    return NULL;
}

// --------------------------------------------------------------------------
// The cache

#define S_ENTRY(link) PROTO_LIST_ENTRY(link, s_entry_t, lru)

static size_t
s_bucket(const uint8_t key[S_DIGEST], size_t nbuckets)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t) (h & (nbuckets - 1));
}

static s_entry_t *
s_cache_find(gw_authp_t *self, const uint8_t key[S_DIGEST])
{
    for (s_entry_t *e = self->buckets[s_bucket(key, self->nbuckets)]; e; e = e->hnext)
        if (CRYPTO_memcmp(e->key, key, S_DIGEST) == 0)
            return e;
    return NULL;
}

static void
s_cache_drop(gw_authp_t *self, s_entry_t *e)
{
    s_entry_t **pp = &self->buckets[s_bucket(e->key, self->nbuckets)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    proto_list_unlink(&self->lru, &e->lru);
    free(e);
    self->stats.entries--;
}

//  The answer cached for key that is still good for a route caching for
//  cache_ms, or NULL.
static s_entry_t *
s_cache_get(gw_authp_t *self, const uint8_t key[S_DIGEST], int64_t cache_ms)
{
    s_entry_t *e = s_cache_find(self, key);
    if (e == NULL)
        return NULL;
    double now = ev_now(self->loop);
    if (now >= e->expires) {
        s_cache_drop(self, e);
        return NULL;
    }
    if (now >= e->stored + (double) cache_ms / 1000.0)
        return NULL; // older than this route wants: a call refreshes it
    proto_list_to_front(&self->lru, &e->lru);
    return e;
}

static void
s_cache_put(gw_authp_t *self,
            const uint8_t key[S_DIGEST],
            int64_t cache_ms,
            const gw_authp_answer_t *answer)
{
    s_entry_t *e = s_cache_find(self, key);
    if (e == NULL) {
        while (self->lru.count >= self->cfg.max_entries)
            s_cache_drop(self, S_ENTRY(self->lru.tail));
        e = proto_xcalloc(1, sizeof *e);
        memcpy(e->key, key, S_DIGEST);
        size_t b = s_bucket(key, self->nbuckets);
        e->hnext = self->buckets[b];
        self->buckets[b] = e;
        self->stats.entries++;
    }
    proto_list_to_front(&self->lru, &e->lru);
    e->stored = ev_now(self->loop);
    e->expires = e->stored + (double) cache_ms / 1000.0;
    e->verdict = answer->verdict;
    e->status = answer->status;
    memcpy(e->user, answer->user, sizeof e->user);
}

// --------------------------------------------------------------------------
// Answers

static void
s_answer_fail(gw_authp_answer_t *a, const char *why)
{
    memset(a, 0, sizeof *a);
    a->verdict = GW_AUTHP_UNAVAILABLE;
    proto_strlcpy(a->why, why, sizeof a->why);
}

//  Count a 503 and warn, at most once a second (a provider that is down
//  would otherwise write a line per request).
static void
s_failed(gw_authp_t *self, const char *url, const char *why)
{
    self->stats.failures++;
    double now = ev_now(self->loop);
    if (self->warned > 0 && now - self->warned < S_WARN_EVERY_S) {
        self->unwarned++;
        return;
    }
    log_warn("authProvider check failed: 503", LOG_S("url", url), LOG_S("reason", why),
             LOG_U("more_failures", self->unwarned));
    self->warned = now;
    self->unwarned = 0;
}

// --------------------------------------------------------------------------
// Calls

static size_t
s_call_bucket(const uint8_t key[S_DIGEST])
{
    return s_bucket(key, S_CALL_BUCKETS);
}

static s_call_t *
s_call_find(gw_authp_t *self, const uint8_t key[S_DIGEST])
{
    for (s_call_t *c = self->inflight[s_call_bucket(key)]; c; c = c->hnext)
        if (memcmp(c->key, key, S_DIGEST) == 0)
            return c;
    return NULL;
}

//  Stop the call's I/O: watchers, socket, name query.
static void
s_call_close(s_call_t *c)
{
    gw_authp_t *self = c->owner;
    ev_io_stop(self->loop, &c->io);
    ev_timer_stop(self->loop, &c->timer);
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    gw_dns_cancel(self->dns, &c->dns);
}

//  Take the call out of the client's tables (if it is still in them).
static void
s_call_detach(s_call_t *c)
{
    gw_authp_t *self = c->owner;
    s_call_t **pp = &self->inflight[s_call_bucket(c->key)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    c->hnext = NULL;
    if (proto_list_has(&self->calls, &c->link)) {
        proto_list_unlink(&self->calls, &c->link);
        self->stats.inflight--;
    }
}

//  Stop the call and free it (its waiters must be gone).
static void
s_call_free(s_call_t *c)
{
    s_call_close(c);
    s_call_detach(c);
    free(c->req);
    c->req = NULL;
    free(c->url);
    c->url = NULL;
    free(c);
}

//  The answer is known: cache it (not a 503), then hand it to every waiter.
static void
s_finish(s_call_t *c, const gw_authp_answer_t *answer)
{
    gw_authp_t *self = c->owner;
    s_call_close(c);
    // out of the tables first: a callback checking the same key again must
    // not join this call
    s_call_detach(c);
    if (answer->verdict == GW_AUTHP_UNAVAILABLE)
        s_failed(self, c->url, answer->why);
    else if (c->cache_ms > 0)
        s_cache_put(self, c->cache_key, c->cache_ms, answer);
    while (c->waiters.head) {
        gw_authp_waiter_t *w = PROTO_LIST_ENTRY(c->waiters.head, gw_authp_waiter_t, link);
        proto_list_unlink(&c->waiters, &w->link);
        w->call = NULL;
        w->fn(w, answer, w->arg);
    }
    s_call_free(c);
}

static void
s_finish_fail(s_call_t *c, const char *why)
{
    gw_authp_answer_t a;
    s_answer_fail(&a, why);
    s_finish(c, &a);
}

//  A failure found while starting: delivered from the loop.
static void
s_defer(s_call_t *c, const char *why)
{
    gw_authp_t *self = c->owner;
    s_call_close(c);
    proto_strlcpy(c->why, why, sizeof c->why);
    c->deferred = true;
    ev_timer_set(&c->timer, 0., 0.);
    ev_timer_start(self->loop, &c->timer);
}

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_call_t *c = w->data;
    if (c->deferred) {
        s_finish_fail(c, c->why);
        return;
    }
    c->owner->stats.timeouts++;
    s_finish_fail(c, "timeout");
}

static void
s_answered(s_call_t *c)
{
    gw_authp_answer_t a;
    memset(&a, 0, sizeof a);
    a.status = c->resp.status;
    if (a.status >= 200 && a.status <= 299) {
        a.verdict = GW_AUTHP_ALLOW;
        memcpy(a.user, c->resp.user, sizeof a.user);
    } else if (a.status == 401) {
        a.verdict = GW_AUTHP_DENY_401;
    } else if (a.status == 403) {
        a.verdict = GW_AUTHP_DENY_403;
    } else {
        a.verdict = GW_AUTHP_UNAVAILABLE;
        snprintf(a.why, sizeof a.why, "status %d", a.status);
    }
    s_finish(c, &a);
}

//  Watch the socket for events (EV_READ or EV_WRITE) from now on.
static void
s_want(s_call_t *c, int events)
{
    struct ev_loop *loop = c->owner->loop;
    if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop, &c->io);
}

#define S_AGAIN  (-1) // s_send, s_recv: wait for *wait, then again
#define S_FAILED (-2) // ...: failed, *why says why

//  What a TLS call that returned rc waits for: EV_READ, EV_WRITE, or 0 (failed).
static int
s_tls_wait(s_call_t *c, int rc)
{
    switch (SSL_get_error(c->ssl, rc)) {
        case SSL_ERROR_WANT_READ:
            return EV_READ;
        case SSL_ERROR_WANT_WRITE:
            return EV_WRITE;
        default:
            return 0;
    }
}

//  Send what is left of the request. Returns the bytes sent, S_AGAIN or S_FAILED.
static ssize_t
s_send(s_call_t *c, int *wait, const char **why)
{
    const char *buf = c->req + c->req_off;
    size_t len = c->req_len - c->req_off;
    if (c->ssl == NULL) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0)
            return n;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            *wait = EV_WRITE;
            return S_AGAIN;
        }
        *why = n < 0 ? proto_errno_reason(errno) : "reset";
        return S_FAILED;
    }
    ERR_clear_error();
    int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int) len);
    if (n > 0)
        return n;
    *wait = s_tls_wait(c, n);
    *why = "TLS write error";
    return *wait ? S_AGAIN : S_FAILED;
}

//  Read into buf. Returns the bytes read (0: the end of the stream), S_AGAIN
//  or S_FAILED.
static ssize_t
s_recv(s_call_t *c, char *buf, size_t cap, int *wait, const char **why)
{
    if (c->ssl == NULL) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            *wait = EV_READ;
            return S_AGAIN;
        }
        *why = errno == ECONNRESET ? "reset" : "read error";
        return S_FAILED;
    }
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, (int) cap);
    if (n > 0)
        return n;
    // a close without close_notify is an end too (SSL_OP_IGNORE_UNEXPECTED_EOF)
    if (SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN)
        return 0;
    *wait = s_tls_wait(c, n);
    *why = "TLS read error";
    return *wait ? S_AGAIN : S_FAILED;
}

static void s_connect(s_call_t *c);

static void
s_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    s_call_t *c = w->data;
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == EINPROGRESS)
            return;
        if (err != 0 && c->addr_i < c->naddrs) {
            s_connect(c); // the host's next address
            return;
        }
        if (err != 0) {
            s_finish_fail(c, proto_errno_reason(err));
            return;
        }
        c->connected = true;
    }
    int wait = 0;
    const char *why = NULL;
    if (c->ssl && !c->handshaken) {
        ERR_clear_error();
        int rc = SSL_connect(c->ssl);
        if (rc != 1) {
            wait = s_tls_wait(c, rc);
            if (wait) {
                s_want(c, wait);
                return;
            }
            s_finish_fail(c, SSL_get_verify_result(c->ssl) != X509_V_OK
                                 ? "TLS certificate not accepted"
                                 : "TLS handshake failed");
            return;
        }
        c->handshaken = true;
    }
    while (c->req_off < c->req_len) {
        ssize_t n = s_send(c, &wait, &why);
        if (n == S_AGAIN) {
            s_want(c, wait);
            return;
        }
        if (n < 0) {
            s_finish_fail(c, why);
            return;
        }
        c->req_off += (size_t) n;
    }
    // read until the socket has no more (bounded: the parser refuses a
    // stream over GW_AUTHP_STREAM_MAX); with TLS, stopping earlier could
    // leave decrypted bytes no readiness would bring back
    for (;;) {
        char buf[S_READ_CHUNK];
        ssize_t n = s_recv(c, buf, sizeof buf, &wait, &why);
        if (n == S_AGAIN) {
            s_want(c, wait);
            return;
        }
        if (n < 0) {
            s_finish_fail(c, why);
            return;
        }
        int rc = gw_authp_resp_feed(&c->resp, buf, (size_t) n);
        if (rc > 0) {
            s_answered(c);
            return;
        }
        if (rc < 0) {
            s_finish_fail(c, n == 0 ? "closed before answering" : "bad response");
            return;
        }
    }
}

//  Connect to the next address of the host (a socket or connect error
//  moves on to the one after it); when none is left, fail with the last
//  error, from the loop.
static void
s_connect(s_call_t *c)
{
    gw_authp_t *self = c->owner;
    const char *why = "name does not resolve";
    while (c->addr_i < c->naddrs) {
        const struct sockaddr_storage *addr = &c->addrs[c->addr_i++];
        ev_io_stop(self->loop, &c->io);
        if (c->fd >= 0)
            close(c->fd);
        c->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            why = "no socket";
            continue;
        }
        int one = 1;
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (const struct sockaddr *) addr, proto_resolve_addrlen(addr)) != 0
            && errno != EINPROGRESS) {
            why = proto_errno_reason(errno);
            continue;
        }
        if (c->ssl && SSL_set_fd(c->ssl, c->fd) != 1) {
            why = "TLS setup failed";
            break;
        }
        ev_io_set(&c->io, c->fd, EV_WRITE);
        ev_io_start(self->loop, &c->io);
        return;
    }
    s_defer(c, why);
}

//  The host's addresses (gw_dns rotates them, so calls spread over them).
static void
s_addresses(s_call_t *c, const struct sockaddr_storage *addrs, size_t count)
{
    c->naddrs = count < S_ADDRS ? count : S_ADDRS;
    memcpy(c->addrs, addrs, c->naddrs * sizeof *addrs);
    c->addr_i = 0;
}

static void
s_on_dns(gw_dns_waiter_t *w,
         gw_dns_status_t status,
         const struct sockaddr_storage *addrs,
         size_t count,
         void *arg)
{
    (void) arg;
    s_call_t *c = (s_call_t *) (void *) ((char *) w - offsetof(s_call_t, dns));
    if (status == GW_DNS_READY && count > 0) {
        s_addresses(c, addrs, count);
        s_connect(c);
    } else {
        s_finish_fail(c, "name does not resolve");
    }
}

//  The request's head (arguments: "/" or "", path length and path, Host,
//  Content-Length).
#define S_REQUEST_HEAD                                                                             \
    "POST %s%.*s HTTP/1.1\r\nHost: %s\r\nUser-Agent: switchyard-gateway\r\n"                       \
    "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n"

//  The request: head and body.
static void
s_request(s_call_t *c, const s_url_t *u, const char *body)
{
    size_t blen = strlen(body);
    // a URL with a query and no path ("http://h?x") asks for "/?x"
    const char *slash = u->path_len > 0 && u->path[0] == '/' ? "" : "/";
    int head =
        snprintf(NULL, 0, S_REQUEST_HEAD, slash, (int) u->path_len, u->path, u->authority, blen);
    assert(head > 0);
    c->req = proto_xmalloc((size_t) head + blen + 1);
    snprintf(c->req, (size_t) head + 1, S_REQUEST_HEAD, slash, (int) u->path_len, u->path,
             u->authority, blen);
    memcpy(c->req + head, body, blen);
    c->req_len = (size_t) head + blen;
}

//  The https context, made on first use: TLS 1.2 or later, the provider's
//  certificate verified against ca_file or the system's store. NULL if it
//  cannot be made (warned).
static SSL_CTX *
s_tls(gw_authp_t *self)
{
    if (self->tls)
        return self->tls;
    if (ev_now(self->loop) < self->tls_retry)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    static const unsigned char alpn[] = "\x08http/1.1";
    bool ok = ctx != NULL && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1
              && (self->ca_file ? SSL_CTX_load_verify_locations(ctx, self->ca_file, NULL) == 1
                                : SSL_CTX_set_default_verify_paths(ctx) == 1)
              && SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) == 0;
    if (!ok) {
        const char *err = ERR_reason_error_string(ERR_peek_last_error());
        log_warn("authProvider: no TLS client context", LOG_S("ca_file", self->ca_file),
                 LOG_S("error", err ? err : "unknown"));
        ERR_clear_error();
        SSL_CTX_free(ctx);
        self->tls_retry = ev_now(self->loop) + S_TLS_RETRY_S;
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    self->tls = ctx;
    return ctx;
}

//  The call's TLS client: SNI and the name checked, or the address checked.
static int
s_tls_client(s_call_t *c)
{
    c->ssl = SSL_new(c->owner->tls);
    if (c->ssl == NULL)
        return -1;
    char name[S_HOST_MAX + 1];
    proto_strlcpy(name, c->host, sizeof name);
    size_t len = strlen(name);
    if (len > 1 && name[len - 1] == '.')
        name[len - 1] = '\0'; // "auth.example.com." is "auth.example.com"
    unsigned char raw[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, name, raw) == 1 || inet_pton(AF_INET6, name, raw) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
            return -1;
    } else if (SSL_set_tlsext_host_name(c->ssl, name) != 1 || SSL_set1_host(c->ssl, name) != 1) {
        return -1;
    }
    SSL_set_connect_state(c->ssl);
    return 0;
}

static s_call_t *
s_call_start(gw_authp_t *self,
             const gw_authp_query_t *q,
             const s_url_t *u,
             const char *body,
             const uint8_t key[S_DIGEST],
             const uint8_t cache_key[S_DIGEST])
{
    s_call_t *c = proto_xcalloc(1, sizeof *c);
    c->owner = self;
    c->fd = -1;
    memcpy(c->key, key, S_DIGEST);
    memcpy(c->cache_key, cache_key, S_DIGEST);
    c->cache_ms = q->cache_ms;
    memcpy(c->host, u->host, sizeof c->host);
    c->port = u->port;
    c->url = proto_xstrdup(q->url);
    s_request(c, u, body);
    gw_authp_resp_init(&c->resp);
    ev_init(&c->io, s_on_io);
    c->io.data = c;
    ev_init(&c->timer, s_on_timer);
    c->timer.data = c;
    size_t b = s_call_bucket(key);
    c->hnext = self->inflight[b];
    self->inflight[b] = c;
    proto_list_push_back(&self->calls, &c->link);
    self->stats.inflight++;
    self->stats.calls++;
    ev_timer_set(&c->timer, (double) self->cfg.timeout_ms / 1000.0, 0.);
    ev_timer_start(self->loop, &c->timer);
    if (u->https && s_tls_client(c) != 0) {
        s_defer(c, "TLS setup failed");
        return c;
    }
    const struct sockaddr_storage *addrs = NULL;
    size_t count = 0;
    switch (gw_dns_get(self->dns, c->host, c->port, &c->dns, &addrs, &count)) {
        case GW_DNS_READY:
            s_addresses(c, addrs, count);
            s_connect(c);
            break;
        case GW_DNS_PENDING:
            break;
        case GW_DNS_FAILED:
            s_defer(c, "name does not resolve");
            break;
    }
    return c;
}

// --------------------------------------------------------------------------
// The client

gw_authp_t *
gw_authp_new(struct ev_loop *loop, const gw_authp_config_t *cfg)
{
    assert(loop);
    gw_authp_config_t dflt = {0};
    if (cfg == NULL)
        cfg = &dflt;
    if (cfg->timeout_ms < 0)
        return NULL;
    gw_authp_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->cfg = *cfg;
    self->cfg.dns_servers = NULL;
    self->cfg.ca_file = NULL;
    if (cfg->ca_file && cfg->ca_file[0])
        self->ca_file = proto_xstrdup(cfg->ca_file);
    if (self->cfg.timeout_ms == 0)
        self->cfg.timeout_ms = GW_AUTHP_TIMEOUT_MS;
    if (self->cfg.max_entries == 0)
        self->cfg.max_entries = GW_AUTHP_MAX_ENTRIES;
    if (self->cfg.max_calls == 0)
        self->cfg.max_calls = GW_AUTHP_MAX_CALLS;
    self->nbuckets = 64;
    while (self->nbuckets < self->cfg.max_entries && self->nbuckets < ((size_t) 1 << 24))
        self->nbuckets <<= 1;
    self->buckets = proto_xcalloc(self->nbuckets, sizeof *self->buckets);
    gw_dns_config_t dc = {
        .servers = cfg->dns_servers,
        .max_entries = S_DNS_ENTRIES,
        .fn = s_on_dns,
        .arg = self,
    };
    self->dns = gw_dns_new(loop, &dc);
    self->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    self->ctx = EVP_MD_CTX_new();
    if (self->dns == NULL || self->md == NULL || self->ctx == NULL
        || RAND_bytes(self->salt, S_SALT) != 1)
        gw_authp_destroy(&self);
    return self;
}

void
gw_authp_destroy(gw_authp_t **self_p)
{
    assert(self_p);
    gw_authp_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->calls.head) {
        s_call_t *c = PROTO_LIST_ENTRY(self->calls.head, s_call_t, link);
        while (c->waiters.head) {
            gw_authp_waiter_t *w = PROTO_LIST_ENTRY(c->waiters.head, gw_authp_waiter_t, link);
            proto_list_unlink(&c->waiters, &w->link);
            w->call = NULL;
        }
        s_call_free(c);
    }
    gw_dns_destroy(&self->dns);
    SSL_CTX_free(self->tls);
    self->tls = NULL;
    free(self->ca_file);
    self->ca_file = NULL;
    while (self->lru.head)
        s_cache_drop(self, S_ENTRY(self->lru.head));
    free(self->buckets);
    self->buckets = NULL;
    EVP_MD_CTX_free(self->ctx);
    self->ctx = NULL;
    EVP_MD_free(self->md);
    self->md = NULL;
    OPENSSL_cleanse(self->salt, sizeof self->salt);
    free(self);
    *self_p = NULL;
}

int
gw_authp_check(gw_authp_t *self,
               const gw_authp_query_t *q,
               gw_authp_answer_t *now,
               gw_authp_waiter_t *waiter,
               gw_authp_fn *fn,
               void *arg)
{
    assert(self && q && now && waiter && fn);
    assert(waiter->call == NULL);
    if (!s_query_ok(q))
        return -1;
    self->stats.checks++;
    s_url_t url;
    const char *bad = s_url_parse(q->url, &url);
    if (bad == NULL && url.https && s_tls(self) == NULL)
        bad = "no TLS client context";
    if (bad) {
        s_answer_fail(now, bad);
        s_failed(self, q->url, bad);
        return 1;
    }
    uint8_t cache_key[S_DIGEST], key[S_DIGEST];
    if (s_key(self, q, NULL, cache_key) != 0) {
        s_answer_fail(now, "no digest");
        s_failed(self, q->url, now->why);
        return 1;
    }
    if (q->cache_ms > 0) {
        s_entry_t *e = s_cache_get(self, cache_key, q->cache_ms);
        if (e) {
            memset(now, 0, sizeof *now);
            now->verdict = e->verdict;
            now->status = e->status;
            memcpy(now->user, e->user, sizeof now->user);
            self->stats.hits++;
            return 1;
        }
    }
    char *body = s_body(q);
    if (body == NULL) {
        s_answer_fail(now, "no memory for the JSON");
        s_failed(self, q->url, now->why);
        return 1;
    }
    if (q->cache_ms > 0)
        memcpy(key, cache_key, S_DIGEST);
    else if (s_key(self, q, body, key) != 0) {
        free(body);
        s_answer_fail(now, "no digest");
        s_failed(self, q->url, now->why);
        return 1;
    }
    s_call_t *c = s_call_find(self, key);
    if (c) {
        self->stats.coalesced++;
    } else if (self->calls.count >= self->cfg.max_calls) {
        free(body);
        s_answer_fail(now, "too many authProvider calls in flight");
        s_failed(self, q->url, now->why);
        return 1;
    } else {
        c = s_call_start(self, q, &url, body, key, cache_key);
    }
    free(body);
    waiter->fn = fn;
    waiter->arg = arg;
    waiter->call = c;
    proto_list_push_back(&c->waiters, &waiter->link);
    return 0;
}

void
gw_authp_cancel(gw_authp_t *self, gw_authp_waiter_t *waiter)
{
    assert(self && waiter);
    s_call_t *c = waiter->call;
    if (c == NULL)
        return;
    proto_list_unlink(&c->waiters, &waiter->link);
    waiter->call = NULL;
}

const gw_authp_stats_t *
gw_authp_stats(const gw_authp_t *self)
{
    assert(self);
    return &self->stats;
}
