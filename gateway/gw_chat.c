/*  gw_chat - chat sessions, the gateway's half (SPEC §9, docs/chat.md).

    Sessions are kept in a hash table by id (chat.out finds them) and in a
    list (a chatd that goes moves its sessions; a drain closes them all).
    The live chatd instances are counted from this gateway's own XPUB: each
    subscribes to chat.in@<itself>; (proto_bus_on_subscriber), and its
    unsubscription, which libzmq sends when the connection ends, is how its
    death is noticed.

    Over the HTTPS listener the session's WebSocket reads and writes through
    the connection's SSL (s_tls_io, a gw_ws_io_t): the SSL goes with the
    socket, so gw_ws owns both and ends both (close_notify, SSL_free,
    close) when it closes the socket; gw_chat_release with keep_fd gives
    both back to the connection, for its lingering close.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gw_actor.h"
#include "gw_chat.h"
#include "gw_http.h"
#include "gw_jwt.h"
#include "gw_tls.h"
#include "gw_ws.h"
#include "proto_list.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_CHATD_MAX   64   // chatd instances known at once
#define S_BUCKETS     1024 // session hash buckets
#define S_ROOMS_MAX   100  // rooms a session may be in (chat.open's bound)
#define S_NAME_MAX    64   // user, room, instance
#define S_ID_MAX      (PROTO_CHAT_OPEN_SESSION_MAX)
#define S_ADDR_MAX    PROTO_BUS_NAME_MAX    // a chatd's address (instance/region)
#define S_REGION_MAX  PROTO_PONG_REGION_MAX // a region's name
#define S_MAX_MESSAGE (1024 * 1024)         // a client message above this closes with 1009
#define S_MAX_QUEUED  (4096 * 1024) // bytes queued for a slow client before it is closed (1008)
#define S_START_GRACE 5000000       // µs after start in which a chatd is still expected

//  The frame a client gets for a frame no chatd can take.
#define S_UNAVAILABLE                                                                              \
    "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"no chat service is reachable; "    \
    "try again\"}"

typedef struct {
    char name[S_ADDR_MAX + 1]; // chatd's address: "<instance>/<region>"
    const char *region;        // its region (in name), "" if the address has none
    int subs;                  // subscribes minus unsubscribes (the XPUB is verbose)
} s_chatd_t;

struct gw_chat_session {
    gw_chat_t *chat;               // the owner
    gw_req_t *req;                 // the upgrade request, reported when the session ends
    gw_ws_t *ws;                   // the client's WebSocket (NULL: it could not be made)
    int fd;                        // its socket (gw_ws closes it; we do when ws is NULL)
    SSL *ssl;                      // its TLS session (HTTPS listener; goes with fd), else NULL
    gw_chat_session_t *next;       // in its hash bucket
    proto_link_t all;              // in gw_chat's list
    char id[S_ID_MAX + 1];         // "<gateway instance>/<16 hex digits>"
    char user[S_NAME_MAX + 1];     // user id
    char tenant[S_NAME_MAX];       // tenant of a wildcard route, "" if none
    char status[16];               // presence status chatd last reported
    char region[S_REGION_MAX + 1]; // the region whose chatd it prefers
    char cursor[PROTO_CHAT_OUT_CURSOR_MAX + 1]; // last inbox entry delivered
    char chatd[S_ADDR_MAX + 1];                 // the chatd handling it, "" if none
    char (*rooms)[S_NAME_MAX + 1];              // rooms joined (allocated on the first join)
    uint32_t nrooms;                            // how many
    uint64_t bytes_out;                         // frame bytes sent to the client
    bool closed;                                // gw_ws said the session is over
};

struct gw_chat {
    gw_actor_t *gw;                        // the actor
    s_chatd_t chatd[S_CHATD_MAX];          // live chatd instances
    size_t nchatd;                         // how many
    bool seen_chatd;                       // one has subscribed since we started
    gw_chat_session_t *buckets[S_BUCKETS]; // sessions by id
    proto_list_t all;                      // every session
    gw_chat_stats_t stats;                 // counters
};

// --------------------------------------------------------------------------
// Sessions: table and the choice of a chatd

static size_t
s_bucket(const char *id)
{
    return (size_t) (proto_fnv1a_str(id) % S_BUCKETS);
}

static gw_chat_session_t *
s_find(gw_chat_t *self, const char *id)
{
    for (gw_chat_session_t *s = self->buckets[s_bucket(id)]; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void
s_unlink(gw_chat_t *self, gw_chat_session_t *session)
{
    gw_chat_session_t **p = &self->buckets[s_bucket(session->id)];
    while (*p && *p != session)
        p = &(*p)->next;
    if (*p)
        *p = session->next;
    proto_list_unlink(&self->all, &session->all);
}

//  Rendezvous hashing: among the live chatd of the session's region (all of
//  them when that region has none), the one with the highest hash of
//  (session, address). Every gateway that knows the same instances picks the
//  same one, and when one goes only its sessions move.
static const char *
s_choose(const gw_chat_t *self, const gw_chat_session_t *session)
{
    bool local = false;
    for (size_t i = 0; i < self->nchatd && !local; i++)
        local = strcmp(self->chatd[i].region, session->region) == 0;
    const char *best = NULL;
    uint64_t best_score = 0;
    uint64_t base = proto_fnv1a_str(session->id);
    for (size_t i = 0; i < self->nchatd; i++) {
        if (local && strcmp(self->chatd[i].region, session->region) != 0)
            continue;
        const char *name = self->chatd[i].name;
        uint64_t score = proto_fnv1a_more(base, name, strlen(name));
        if (best == NULL || score > best_score) {
            best = name;
            best_score = score;
        }
    }
    return best;
}

//  Tell the session's chatd about it (chat.open), with its state when it
//  moved here from another chatd.
static void
s_open(gw_chat_t *self, gw_chat_session_t *session, bool moved)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CHAT_OPEN);
    proto_room_t rooms[S_ROOMS_MAX];
    msg.chat_open.session = session->id;
    msg.chat_open.gateway = self->gw->cfg->common.instance_id;
    msg.chat_open.user = session->user;
    msg.chat_open.tenant = session->tenant;
    msg.chat_open.status = session->status;
    msg.chat_open.cursor = session->cursor;
    msg.chat_open.moved = moved;
    for (uint32_t i = 0; i < session->nrooms; i++)
        rooms[i].name = session->rooms[i];
    msg.chat_open.rooms = rooms;
    msg.chat_open.rooms_count = session->nrooms;
    msg.rid = session->req ? session->req->rid : "";
    (void) proto_bus_publish_to(self->gw->bus, &msg, session->chatd);
}

//  Give the session a chatd (none may be reachable: it then waits, and its
//  client's frames are answered "unavailable").
static void
s_attach(gw_chat_t *self, gw_chat_session_t *session, bool moved)
{
    const char *chatd = s_choose(self, session);
    proto_strlcpy(session->chatd, chatd ? chatd : "", sizeof session->chatd);
    if (chatd == NULL)
        return;
    if (moved) {
        self->stats.moved++;
        log_info("chat session moved", LOG_S("session", session->id), LOG_S("chatd", chatd));
    }
    s_open(self, session, moved);
}

// --------------------------------------------------------------------------
// chatd instances come and go (subscriptions to chat.in@<instance>;)

static void
s_on_chatd(proto_bus_t *bus, const char *instance, bool subscribed, void *arg)
{
    (void) bus;
    gw_chat_t *self = arg;
    size_t i = 0;
    while (i < self->nchatd && strcmp(self->chatd[i].name, instance) != 0)
        i++;
    if (subscribed) {
        if (i == self->nchatd) {
            if (self->nchatd == S_CHATD_MAX)
                return;
            proto_strlcpy(self->chatd[i].name, instance, sizeof self->chatd[i].name);
            const char *slash = strchr(self->chatd[i].name, '/');
            self->chatd[i].region = slash ? slash + 1 : "";
            self->chatd[i].subs = 0;
            self->nchatd++;
            log_info("chatd reachable", LOG_S("chatd", instance));
        }
        self->chatd[i].subs++;
        self->stats.chatd = self->nchatd;
        self->seen_chatd = true;
        //  sessions that had none get this one (or another new one)
        for (proto_link_t *l = self->all.head; l; l = l->next) {
            gw_chat_session_t *s = PROTO_LIST_ENTRY(l, gw_chat_session_t, all);
            if (s->chatd[0] == '\0' && !s->closed)
                s_attach(self, s, true);
        }
        return;
    }
    if (i == self->nchatd || --self->chatd[i].subs > 0)
        return;
    char gone[S_ADDR_MAX + 1];
    proto_strlcpy(gone, instance, sizeof gone);
    self->chatd[i] = self->chatd[--self->nchatd];
    if (i < self->nchatd) { // moved: its region points into its own name
        const char *slash = strchr(self->chatd[i].name, '/');
        self->chatd[i].region = slash ? slash + 1 : "";
    }
    self->stats.chatd = self->nchatd;
    log_warn("chatd gone: its sessions move", LOG_S("chatd", gone));
    for (proto_link_t *l = self->all.head; l; l = l->next) {
        gw_chat_session_t *s = PROTO_LIST_ENTRY(l, gw_chat_session_t, all);
        if (strcmp(s->chatd, gone) == 0 && !s->closed)
            s_attach(self, s, true);
    }
}

// --------------------------------------------------------------------------
// chat.out: frames for a client, changes to a session's state

static void
s_add_room(gw_chat_session_t *s, const char *room)
{
    for (uint32_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i], room) == 0)
            return;
    if (s->nrooms >= S_ROOMS_MAX)
        return; // chatd enforces the bound; this copy only follows it
    if (s->rooms == NULL)
        s->rooms = proto_xcalloc(S_ROOMS_MAX, sizeof *s->rooms);
    proto_strlcpy(s->rooms[s->nrooms++], room, sizeof s->rooms[0]);
}

static void
s_drop_room(gw_chat_session_t *s, const char *room)
{
    for (uint32_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i], room) == 0) {
            memcpy(s->rooms[i], s->rooms[--s->nrooms], sizeof s->rooms[0]);
            return;
        }
}

static void
s_on_out(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_chat_t *self = arg;
    const proto_chat_out_t *out = &in->msg.chat_out;
    gw_chat_session_t *s = s_find(self, out->session);
    if (s == NULL || s->closed)
        return; // the session ended meanwhile: chatd learns it from chat.close
    if (out->join && *out->join)
        s_add_room(s, out->join);
    if (out->leave && *out->leave)
        s_drop_room(s, out->leave);
    if (out->status && *out->status)
        proto_strlcpy(s->status, out->status, sizeof s->status);
    if (out->cursor && *out->cursor)
        proto_strlcpy(s->cursor, out->cursor, sizeof s->cursor);
    if (out->text.size > 0) {
        if (gw_ws_send_text(s->ws, out->text.data, out->text.size) != 0) {
            log_warn("chat client too slow: closed", LOG_S("session", s->id),
                     LOG_S("user", s->user), LOG_U("queued", gw_ws_queued(s->ws)));
            gw_ws_close(s->ws, 1008, "too slow");
            return;
        }
        s->bytes_out += out->text.size;
        self->stats.frames_out++;
    }
    if (out->close >= 1000)
        gw_ws_close(s->ws, out->close, "closed by chat");
}

// --------------------------------------------------------------------------
// The client's side (gw_ws callbacks)

static void
s_on_text(gw_ws_t *ws, const uint8_t *data, size_t len, void *arg)
{
    gw_chat_session_t *s = arg;
    gw_chat_t *self = s->chat;
    if (s->chatd[0] == '\0') {
        self->stats.unavailable++;
        (void) gw_ws_send_text(ws, S_UNAVAILABLE, strlen(S_UNAVAILABLE));
        return;
    }
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CHAT_IN);
    msg.chat_in.session = s->id;
    msg.chat_in.text = (proto_bin_t){.data = data, .size = len};
    msg.rid = s->req->rid;
    if (proto_bus_publish_to(self->gw->bus, &msg, s->chatd) == 0)
        self->stats.frames_in++;
}

static void
s_on_closed(gw_ws_t *ws, uint16_t code, const char *why, void *arg)
{
    gw_chat_session_t *s = arg;
    log_debug("chat session closed", LOG_S("session", s->id), LOG_S("request_id", s->req->rid),
              LOG_U("code", code), LOG_S("why", why ? why : ""));
    s->closed = true;
    // the connection closes (gw_chat_release follows), lingering unless the
    // client has said it is done
    gw_req_chat_done(s->req, !gw_ws_client_done(ws));
}

// --------------------------------------------------------------------------
// A session over the HTTPS listener: the WebSocket's bytes go through the
// connection's SSL. Non-blocking, as the connection's own reads and writes
// (gw_conn.c): WANT_READ/WANT_WRITE become EAGAIN (with the direction the
// retry waits for), decrypted bytes OpenSSL still holds are reported by
// s_tls_pending so that gw_ws reads again without the socket's readiness.

static ssize_t
s_tls_recv(void *io_ctx, int fd, uint8_t *buf, size_t len, bool *want_write)
{
    (void) fd;
    return gw_tls_read(io_ctx, buf, len, want_write);
}

//  Each call makes its own records (there is no MSG_MORE to pass on). A
//  write that returned WANT_WRITE is repeated by wslay with the same bytes,
//  as OpenSSL requires (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set).
static ssize_t
s_tls_send(void *io_ctx, int fd, const uint8_t *buf, size_t len, bool more, bool *want_read)
{
    (void) fd;
    (void) more;
    return gw_tls_write(io_ctx, buf, len, want_read);
}

static bool
s_tls_pending(void *io_ctx)
{
    return SSL_has_pending(io_ctx) == 1;
}

//  close_notify (best effort: what the socket takes now; nothing after a
//  fatal error, which set quiet shutdown), then the SSL and the socket go.
static void
s_tls_close(void *io_ctx, int fd)
{
    SSL *ssl = io_ctx;
    if (!(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        (void) SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
}

static const gw_ws_io_t s_tls_io = {
    .recv = s_tls_recv,
    .send = s_tls_send,
    .pending = s_tls_pending,
    .close = s_tls_close,
};

// --------------------------------------------------------------------------
// The upgrade

//  The value of header name (case-insensitive) in the request, or NULL.
static const char *
s_header(const gw_req_t *req, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *head = req->head.data + req->head.start;
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        if (f->name_len == nlen && strncasecmp(head + f->name, name, nlen) == 0) {
            *len = f->value_len;
            return head + f->value;
        }
    }
    return NULL;
}

//  The percent-decoded value of query parameter name into out (cap bytes,
//  NUL-terminated). Returns its length, or -1 when absent, malformed or too
//  long.
static int
s_query(const gw_req_t *req, const char *name, char *out, size_t cap)
{
    const char *path = req->path_len ? req->path : "/";
    size_t plen = req->path_len ? req->path_len : 1;
    const char *q = memchr(path, '?', plen);
    if (q == NULL)
        return -1;
    const char *end = path + plen;
    size_t nlen = strlen(name);
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t) (end - p));
        const char *stop = amp ? amp : end;
        if ((size_t) (stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t o = 0;
            for (const char *v = p + nlen + 1; v < stop; v++) {
                int c = (unsigned char) *v;
                if (c == '%') {
                    int hi = v + 2 < stop ? proto_hex_digit(v[1]) : -1;
                    int lo = v + 2 < stop ? proto_hex_digit(v[2]) : -1;
                    if (hi < 0 || lo < 0)
                        return -1;
                    c = hi * 16 + lo;
                    v += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (o + 1 >= cap || c == 0)
                    return -1;
                out[o++] = (char) c;
            }
            out[o] = '\0';
            return (int) o;
        }
        p = stop + 1;
    }
    return -1;
}

//  The session's user: the JWT's sub (CHAT_JWT_SECRET set), else userId.
//  Returns 0, or -1 with why.
static int
s_identity(const gw_chat_t *self, const gw_req_t *req, char *user, const char **why)
{
    const char *secret = self->gw->cfg->chat_jwt_secret;
    if (secret && *secret) {
        char token[GW_JWT_MAX + 1];
        size_t len = 0;
        const char *auth = s_header(req, "authorization", &len);
        if (auth && len > 7 && strncasecmp(auth, "Bearer ", 7) == 0) {
            return gw_jwt_user(auth + 7, len - 7, secret, time(NULL), user, why);
        }
        int n = s_query(req, "token", token, sizeof token);
        if (n <= 0) {
            *why = "no token (Authorization: Bearer or ?token=)";
            return -1;
        }
        return gw_jwt_user(token, (size_t) n, secret, time(NULL), user, why);
    }
    int n = s_query(req, "userId", user, GW_USER_MAX + 1);
    if (n <= 0 || !proto_chat_name_ok(user, (size_t) n)) {
        *why = "userId missing or not 1-64 of A-Z a-z 0-9 . _ @ -";
        return -1;
    }
    return 0;
}

//  The region whose chatd a session prefers: ?region=, else x-region, else
//  the gateway's own REGION. Anything not a region name counts as absent.
static void
s_region(const gw_chat_t *self, const gw_req_t *req, char *out, size_t cap)
{
    size_t len = 0;
    int n = s_query(req, "region", out, cap);
    if (n > 0 && proto_chat_name_ok(out, (size_t) n))
        return;
    const char *h = s_header(req, "x-region", &len);
    if (h && len > 0 && len < cap && proto_chat_name_ok(h, len)) {
        memcpy(out, h, len);
        out[len] = '\0';
        return;
    }
    proto_strlcpy(out, self->gw->cfg->common.region, cap);
}

bool
gw_chat_wants(const gw_req_t *req)
{
    const gw_lease_t *lease = req->lease;
    if (lease == NULL || lease->chat_path == NULL || lease->chat_path[0] == '\0'
        || strcmp(req->method, "GET") != 0)
        return false;
    const char *path = req->path_len ? req->path : "/";
    size_t plen = req->path_len ? req->path_len : 1;
    const char *q = memchr(path, '?', plen);
    size_t len = q ? (size_t) (q - path) : plen;
    if (strlen(lease->chat_path) != len || memcmp(lease->chat_path, path, len) != 0)
        return false;
    size_t ulen = 0, clen = 0;
    const char *up = gw_req_header(req, GW_H_UPGRADE, &ulen);
    const char *conn = gw_req_header(req, GW_H_CONNECTION, &clen);
    return up && conn && gw_http_list_has(up, ulen, PROTO_LIT("websocket"))
           && gw_http_list_has(conn, clen, PROTO_LIT("upgrade"));
}

static void
s_refuse(gw_chat_t *self,
         gw_req_t *req,
         int status,
         const char *text,
         const char *extra,
         const char *why)
{
    self->stats.refused++;
    log_debug("chat upgrade refused", LOG_S("request_id", req->rid), LOG_I("status", status),
              LOG_S("reason", why));
    gw_req_respond(req, status, NULL, text, strlen(text), extra);
}

//  No chatd has subscribed yet, but one is about to: one is connected (its
//  subscription is on its way), or this gateway has only just started (the
//  first requests after /ready must not get 503 while discovery finds chatd).
//  The session is accepted and attached when the subscription comes.
static bool
s_chatd_expected(const gw_chat_t *self)
{
    gw_actor_t *gw = self->gw;
    return proto_bus_peers(gw->bus, PROTO_KIND_CHATD) > 0
           || (!self->seen_chatd && proto_mono_us() - gw->start_us < S_START_GRACE);
}

void
gw_chat_start(gw_chat_t *self, gw_req_t *req)
{
    gw_actor_t *gw = self->gw;
    size_t len = 0;
    const char *version = s_header(req, "sec-websocket-version", &len);
    if (version == NULL || len != 2 || memcmp(version, "13", 2) != 0) {
        s_refuse(self, req, 426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
                 "Sec-WebSocket-Version is not 13");
        return;
    }
    char accept[GW_WS_ACCEPT_LEN + 1];
    const char *key = s_header(req, "sec-websocket-key", &len);
    if (key == NULL || gw_ws_accept_key(key, len, accept) != 0) {
        s_refuse(self, req, 400, "Bad Request", NULL, "bad Sec-WebSocket-Key");
        return;
    }
    char user[GW_USER_MAX + 1];
    const char *why = NULL;
    if (s_identity(self, req, user, &why) != 0) {
        const char *secret = gw->cfg->chat_jwt_secret;
        s_refuse(self, req, 401, "Unauthorized",
                 secret && *secret ? "WWW-Authenticate: Bearer\r\n" : NULL, why);
        return;
    }
    if (self->nchatd == 0 && !s_chatd_expected(self)) {
        s_refuse(self, req, 503, "Service Unavailable - chat unavailable", "Retry-After: 1\r\n",
                 "no chatd reachable");
        return;
    }

    gw_chat_session_t *s = proto_xcalloc(1, sizeof *s);
    s->chat = self;
    s->req = req;
    proto_strlcpy(s->user, user, sizeof s->user);
    proto_strlcpy(s->status, "online", sizeof s->status);
    s_region(self, req, s->region, sizeof s->region);
    if (req->lease->wildcard) {
        const char *dot = strchr(req->host, '.');
        size_t tlen = dot ? (size_t) (dot - req->host) : 0;
        if (tlen > 0 && tlen < sizeof s->tenant) {
            memcpy(s->tenant, req->host, tlen);
            s->tenant[tlen] = '\0';
        }
    }
    snprintf(s->id, sizeof s->id, "%s/%016llx", gw->cfg->common.instance_id,
             (unsigned long long) gw_actor_random(gw));

    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Request-Id: %s\r\n\r\n",
                     accept, req->rid);
    const void *pending = NULL;
    size_t pending_len = 0;
    SSL *ssl = NULL;
    int fd = n > 0 && (size_t) n < sizeof head
                 ? gw_req_chat(req, head, (size_t) n, s, &pending, &pending_len, &ssl)
                 : -1;
    if (fd < 0) {
        free(s); // the request was answered or the connection is closing
        return;
    }
    gw_ws_config_t wc = {
        .ping_interval = (double) gw->cfg->chat_ping_interval_ms / 1000.0,
        .idle_timeout = (double) gw->cfg->chat_idle_timeout_ms / 1000.0,
        .max_message = S_MAX_MESSAGE,
        .max_queued = S_MAX_QUEUED,
    };
    gw_ws_callbacks_t cb = {.on_text = s_on_text, .on_closed = s_on_closed, .arg = s};
    s->fd = fd;
    s->ssl = ssl;
    s->ws = ssl ? gw_ws_new_io(gw->loop, fd, &s_tls_io, ssl, &wc, &cb, pending, pending_len)
                : gw_ws_new(gw->loop, fd, &wc, &cb, pending, pending_len);
    gw_req_chat_started(req);
    s->next = self->buckets[s_bucket(s->id)];
    self->buckets[s_bucket(s->id)] = s;
    proto_list_push_back(&self->all, &s->all);
    self->stats.open++;
    self->stats.total++;
    log_debug("chat session opened", LOG_S("session", s->id), LOG_S("request_id", req->rid),
              LOG_S("user", s->user), LOG_S("tenant", s->tenant));
    if (s->ws == NULL) {
        log_error("cannot set up a WebSocket (wslay)", LOG_S("request_id", req->rid));
        s->closed = true;
        gw_req_chat_done(req, true); // closes the connection: gw_chat_release
        return;
    }
    s_attach(self, s, false);
}

uint64_t
gw_chat_release(gw_chat_session_t *session, bool keep_fd)
{
    gw_chat_t *self = session->chat;
    if (session->chatd[0]) {
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_CHAT_CLOSE);
        msg.chat_close.session = session->id;
        msg.chat_close.reason = session->closed ? "closed" : "gateway";
        msg.rid = session->req ? session->req->rid : "";
        (void) proto_bus_publish_to(self->gw->bus, &msg, session->chatd);
    }
    s_unlink(self, session);
    self->stats.open--;
    if (session->ws && keep_fd)
        (void) gw_ws_detach(&session->ws); // the socket and its SSL go back to the connection
    else if (session->ws)
        gw_ws_destroy(&session->ws); // closes the socket (and ends its SSL: s_tls_close)
    else if (!keep_fd && session->ssl)
        s_tls_close(session->ssl, session->fd);
    else if (!keep_fd)
        close(session->fd);
    session->ssl = NULL;
    uint64_t bytes = session->bytes_out;
    free(session->rooms);
    free(session);
    return bytes;
}

void
gw_chat_drain(gw_chat_t *self)
{
    for (proto_link_t *l = self->all.head; l; l = l->next) {
        gw_chat_session_t *s = PROTO_LIST_ENTRY(l, gw_chat_session_t, all);
        if (!s->closed)
            gw_ws_close(s->ws, 1001, "going away");
    }
}

// --------------------------------------------------------------------------
// Life

gw_chat_t *
gw_chat_new(gw_actor_t *gw)
{
    gw_chat_t *self = proto_xcalloc(1, sizeof *self);
    self->gw = gw;
    proto_bus_on(gw->bus, PROTO_CHAT_OUT, s_on_out, self);
    if (proto_bus_on_subscriber(gw->bus, PROTO_CHAT_IN, s_on_chatd, self) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void
gw_chat_destroy(gw_chat_t **self_p)
{
    gw_chat_t *self = *self_p;
    if (self == NULL)
        return;
    //  sessions are released with their connections (gw_conn_close_all), first
    free(self);
    *self_p = NULL;
}

const gw_chat_stats_t *
gw_chat_stats(const gw_chat_t *self)
{
    return &self->stats;
}
