/*  chat_hub - chatd's sessions and what they do in Redis.

    Sessions are found by id (chat.in, chat.close, replies from Redis) and by
    channel (a pub/sub message goes to every session listening to it). A
    Redis reply carries a session id, not a pointer: the session may have
    ended before Redis answered.

    Inbox replay (docs/chat.md): on open, on a move and after Redis comes
    back, a session reads its inbox after its cursor, a batch at a time,
    before any live message of its user channel is delivered; a live message
    that arrives meanwhile is skipped and marks the replay to read once more
    (it is in the inbox), so the client gets every entry once and in order.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "chat_frame.h"
#include "chat_hub.h"
#include "chat_keys.h"
#include "proto_list.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_BUCKETS     4096 // sessions and channels hash buckets
#define S_NAME_MAX    CHAT_FRAME_NAME_MAX
#define S_ENTRY_MAX   48 // a stream entry id ("1700000000000-0")
#define S_ID_MAX      PROTO_CHAT_OPEN_SESSION_MAX
#define S_OUT_MAX     (6 * CHAT_FRAME_TEXT_MAX + 4096) // a server frame, text escaped at worst
#define S_PAYLOAD_MAX (S_OUT_MAX + 256)                // "<entry>\n<origin>\n" and a frame
#define S_PRESENCE_S  120 // presence key TTL (refreshed by the session's traffic)

typedef struct s_chan s_chan_t;
typedef struct s_session s_session_t;

//  A channel and the sessions listening to it.
struct s_chan {
    s_chan_t *next;          // in its bucket
    s_session_t **subs;      // listening sessions
    uint32_t nsubs;          // how many
    uint32_t cap;            // room in subs
    bool room;               // a room's channel (counted in stats.rooms)
    char name[CHAT_KEY_MAX]; // the channel
};

struct s_session {
    s_session_t *next;             // in its bucket
    proto_link_t all;              // in the hub's list
    char id[S_ID_MAX + 1];         // session id (the gateway's)
    char gateway[S_NAME_MAX + 1];  // instance holding the socket
    char user[S_NAME_MAX + 1];     // user id
    char tenant[S_NAME_MAX];       // "" or the tenant
    char status[16];               // presence status
    char cursor[S_ENTRY_MAX];      // last inbox entry delivered
    char (*rooms)[S_NAME_MAX + 1]; // rooms joined
    uint32_t nrooms;               // how many
    bool replaying;                // the inbox is being read
    bool missed;                   // a live entry came during the replay
    bool wait_sub;                 // the replay waits for its user channel's SUBSCRIBE
    uint64_t room_wait[2];         // rooms[i] joined, its SUBSCRIBE not confirmed yet (bit i)
};

struct chat_hub {
    proto_bus_t *bus;                 // the bus
    chat_redis_t *redis;              // Redis (the caller's)
    char instance[S_NAME_MAX + 1];    // our INSTANCE_ID
    s_session_t *sessions[S_BUCKETS]; // by id
    s_chan_t *chans[S_BUCKETS];       // by name
    proto_list_t all;                 // every session
    chat_frame_t *frame;              // one parsed client frame (65 KiB: not on the stack)
    char *out;                        // one server frame being built
    char *payload;                    // one channel payload being built (S_PAYLOAD_MAX)
    uint64_t serial;                  // message ids we make
    chat_hub_stats_t stats;           // counters
};

//  What a Redis reply needs to find again.
typedef struct {
    chat_hub_t *hub;
    char session[S_ID_MAX + 1];
    char id[CHAT_FRAME_ID_MAX + 1]; // the client's message id, for ack and error
} s_ctx_t;

// --------------------------------------------------------------------------
// Tables

static size_t
s_bucket(const char *name)
{
    return (size_t) (proto_fnv1a_str(name) % S_BUCKETS);
}

static s_session_t *
s_session(chat_hub_t *self, const char *id)
{
    for (s_session_t *s = self->sessions[s_bucket(id)]; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static bool
s_up(const chat_hub_t *self)
{
    return self->redis != NULL && chat_redis_up(self->redis);
}

static s_chan_t *
s_chan(chat_hub_t *self, const char *name)
{
    for (s_chan_t *c = self->chans[s_bucket(name)]; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

//  The session listens to channel name (subscribed in Redis on the first).
static void
s_listen(chat_hub_t *self, s_session_t *session, const char *name)
{
    s_chan_t *c = s_chan(self, name);
    if (c == NULL) {
        c = proto_xcalloc(1, sizeof *c);
        proto_strlcpy(c->name, name, sizeof c->name);
        c->room = strstr(name, "chat:room:") != NULL;
        self->stats.rooms += c->room;
        c->next = self->chans[s_bucket(name)];
        self->chans[s_bucket(name)] = c;
    }
    for (uint32_t i = 0; i < c->nsubs; i++)
        if (c->subs[i] == session)
            return;
    if (c->nsubs == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 2;
        c->subs = proto_xrealloc(c->subs, c->cap * sizeof *c->subs);
    }
    c->subs[c->nsubs++] = session;
    if (self->redis)
        chat_redis_subscribe(self->redis, name);
}

static void
s_unlisten(chat_hub_t *self, s_session_t *session, const char *name)
{
    s_chan_t **p = &self->chans[s_bucket(name)];
    while (*p && strcmp((*p)->name, name) != 0)
        p = &(*p)->next;
    s_chan_t *c = *p;
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < c->nsubs; i++)
        if (c->subs[i] == session) {
            c->subs[i] = c->subs[--c->nsubs];
            if (self->redis)
                chat_redis_unsubscribe(self->redis, name);
            break;
        }
    if (c->nsubs == 0) {
        self->stats.rooms -= c->room;
        *p = c->next;
        free(c->subs);
        free(c);
    }
}

static void
s_key(const s_session_t *s, chat_key_t kind, const char *name, char *out)
{
    chat_key(out, CHAT_KEY_MAX, kind, s->tenant, name);
}

// --------------------------------------------------------------------------
// Frames to a session's client (chat.out)

static void
s_send(chat_hub_t *self,
       const s_session_t *s,
       const char *text,
       size_t len,
       const char *cursor,
       const char *join,
       const char *leave,
       const char *status)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CHAT_OUT);
    msg.chat_out.session = s->id;
    msg.chat_out.text = (proto_bin_t){.data = (const uint8_t *) text, .size = text ? len : 0};
    msg.chat_out.cursor = cursor;
    msg.chat_out.join = join;
    msg.chat_out.leave = leave;
    msg.chat_out.status = status;
    if (proto_bus_publish_to(self->bus, &msg, s->gateway) == 0 && text)
        self->stats.delivered++;
}

static void
s_error(
    chat_hub_t *self, const s_session_t *s, const char *code, const char *message, const char *id)
{
    size_t n = chat_frame_encode_error(self->out, S_OUT_MAX, code, message, id);
    if (n > 0) {
        self->stats.errors++;
        s_send(self, s, self->out, n, NULL, NULL, NULL, NULL);
    }
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  "<entry>\n<origin>\n<frame>" into out (cap bytes); 0 if it does not fit.
static size_t
s_payload(
    char *out, size_t cap, const char *entry, const char *origin, const char *frame, size_t len)
{
    size_t e = strlen(entry), o = strlen(origin);
    if (e + o + 2 + len > cap)
        return 0;
    memcpy(out, entry, e);
    out[e] = '\n';
    memcpy(out + e + 1, origin, o);
    out[e + 1 + o] = '\n';
    memcpy(out + e + o + 2, frame, len);
    return e + o + 2 + len;
}

// --------------------------------------------------------------------------
// Redis replies

static s_ctx_t *
s_ctx(chat_hub_t *self, const s_session_t *s, const char *id)
{
    s_ctx_t *ctx = proto_xcalloc(1, sizeof *ctx);
    ctx->hub = self;
    proto_strlcpy(ctx->session, s->id, sizeof ctx->session);
    proto_strlcpy(ctx->id, id ? id : "", sizeof ctx->id);
    return ctx;
}

//  A message stored (the send script answered its entry id, or "dup"):
//  the sender gets its ack; a failure gets an error frame.
static void
s_on_stored(void *arg, const redisReply *reply, const char *error)
{
    s_ctx_t *ctx = arg;
    chat_hub_t *self = ctx->hub;
    s_session_t *s = s_session(self, ctx->session);
    if (s) {
        if (reply && reply->type != REDIS_REPLY_ERROR) {
            self->stats.messages++;
            size_t n = chat_frame_encode_ack(self->out, S_OUT_MAX, ctx->id);
            if (n > 0)
                s_send(self, s, self->out, n, NULL, NULL, NULL, NULL);
        } else {
            log_warn("chat message not stored", LOG_S("session", s->id),
                     LOG_S("error", error   ? error
                                    : reply ? reply->str
                                            : "?"));
            s_error(self, s, "unavailable", "the message could not be stored; send it again",
                    ctx->id);
        }
    }
    free(ctx);
}

//  Replies nobody waits for (presence, membership, cursor): only logged.
static void
s_on_done(void *arg, const redisReply *reply, const char *error)
{
    (void) arg;
    if (error || (reply && reply->type == REDIS_REPLY_ERROR))
        log_debug("chat redis command failed", LOG_S("error", error ? error : reply->str));
}

static void
s_command(chat_hub_t *self,
          chat_redis_reply_fn *fn,
          void *arg,
          int argc,
          const char **argv,
          const size_t *lens)
{
    if (self->redis == NULL || chat_redis_command(self->redis, fn, arg, argc, argv, lens) != 0)
        fn(arg, NULL, "unavailable"); // never left waiting
}

// --------------------------------------------------------------------------
// Inbox replay

static void s_replay(chat_hub_t *self, s_session_t *s);

static void
s_on_replay(void *arg, const redisReply *reply, const char *error)
{
    s_ctx_t *ctx = arg;
    chat_hub_t *self = ctx->hub;
    s_session_t *s = s_session(self, ctx->session);
    free(ctx);
    if (s == NULL)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        s->replaying = false; // Redis is away: the replay runs again when it is back
        (void) error;
        return;
    }
    //  [[id, [field, value, ...]], ...]: our entries have one field, "f"
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY
            || e->element[1]->elements < 2)
            continue;
        const redisReply *frame = e->element[1]->element[1];
        proto_strlcpy(s->cursor, e->element[0]->str, sizeof s->cursor);
        self->stats.replayed++;
        s_send(self, s, frame->str, frame->len, s->cursor, NULL, NULL, NULL);
    }
    if (reply->elements == CHAT_REPLAY_BATCH || s->missed) {
        s->missed = false;
        s_replay(self, s); // more, or what came meanwhile
        return;
    }
    s->replaying = false;
    if (reply->elements > 0) {
        char key[CHAT_KEY_MAX];
        s_key(s, CHAT_KEY_CURSOR, s->user, key);
        const char *argv[] = {"SET", key, s->cursor};
        s_command(self, s_on_done, NULL, 3, argv, NULL);
    }
}

//  Read the next batch of the inbox after the session's cursor.
static void
s_replay(chat_hub_t *self, s_session_t *s)
{
    char key[CHAT_KEY_MAX], from[S_ENTRY_MAX + 1], count[16];
    s_key(s, CHAT_KEY_INBOX, s->user, key);
    snprintf(from, sizeof from, "(%s", s->cursor[0] ? s->cursor : "0-0");
    snprintf(count, sizeof count, "%d", CHAT_REPLAY_BATCH);
    s->replaying = true;
    const char *argv[] = {"XRANGE", key, from, "+", "COUNT", count};
    s_command(self, s_on_replay, s_ctx(self, s, NULL), 6, argv, NULL);
}

//  The cursor kept in Redis for a session that did not bring one.
static void
s_on_cursor(void *arg, const redisReply *reply, const char *error)
{
    (void) error;
    s_ctx_t *ctx = arg;
    chat_hub_t *self = ctx->hub;
    s_session_t *s = s_session(self, ctx->session);
    free(ctx);
    if (s == NULL)
        return;
    if (reply && reply->type == REDIS_REPLY_STRING)
        proto_strlcpy(s->cursor, reply->str, sizeof s->cursor);
    s_replay(self, s);
}

static void
s_start_replay(chat_hub_t *self, s_session_t *s)
{
    if (s->cursor[0]) {
        s_replay(self, s);
        return;
    }
    char key[CHAT_KEY_MAX];
    s_key(s, CHAT_KEY_CURSOR, s->user, key);
    const char *argv[] = {"GET", key};
    s->replaying = true;
    s_command(self, s_on_cursor, s_ctx(self, s, NULL), 2, argv, NULL);
}

// --------------------------------------------------------------------------
// Publishing

static void
s_publish(
    chat_hub_t *self, const s_session_t *from, const char *channel, const char *frame, size_t len)
{
    size_t n = s_payload(self->payload, S_PAYLOAD_MAX, "-", from->id, frame, len);
    if (n == 0)
        return;
    const char *argv[] = {"PUBLISH", channel, self->payload};
    size_t lens[] = {7, strlen(channel), n};
    s_command(self, s_on_done, NULL, 3, argv, lens);
}

static void
s_presence(chat_hub_t *self, s_session_t *s)
{
    char key[CHAT_KEY_MAX], ttl[16];
    s_key(s, CHAT_KEY_PRESENCE, s->user, key);
    snprintf(ttl, sizeof ttl, "%d", S_PRESENCE_S);
    const char *argv[] = {"SET", key, s->status, "EX", ttl};
    s_command(self, s_on_done, NULL, 5, argv, NULL);
    chat_status_t st = CHAT_STATUS_ONLINE;
    for (int i = 0; i <= CHAT_STATUS_OFFLINE; i++)
        if (strcmp(chat_frame_status_name((chat_status_t) i), s->status) == 0)
            st = (chat_status_t) i;
    size_t n = chat_frame_encode_presence(self->out, S_OUT_MAX, s->user, st);
    char room[CHAT_KEY_MAX];
    for (uint32_t i = 0; n > 0 && i < s->nrooms; i++) {
        s_key(s, CHAT_KEY_ROOM, s->rooms[i], room);
        s_publish(self, s, room, self->out, n);
    }
}

//  The send script: remember the client id (a resend is only acked), add
//  the frame to the recipient's inbox (capped, TTL) and publish it with its
//  entry id. KEYS: seen, inbox, channel. ARGV: frame, origin, cap, ttl, seen ttl.
static const char s_send_script[] =
    "if KEYS[1] ~= '' then "
    "  if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) == false then return 'dup' end "
    "end "
    "local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'f', ARGV[1]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[4]) "
    "redis.call('PUBLISH', KEYS[3], id .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[1]) "
    "return id";

static void
s_message(chat_hub_t *self, s_session_t *s, const chat_frame_t *f)
{
    char id[CHAT_FRAME_ID_MAX + 1];
    if (f->id[0])
        proto_strlcpy(id, f->id, sizeof id);
    else
        snprintf(id, sizeof id, "s%08x-%llu", (unsigned) proto_fnv1a_str(self->instance),
                 (unsigned long long) ++self->serial); // unique per chatd, valid as a client id
    const char *to = f->to[0] ? f->to : NULL;
    const char *room = f->room[0] ? f->room : NULL;
    if (room) {
        bool member = false;
        for (uint32_t i = 0; i < s->nrooms; i++)
            member = member || strcmp(s->rooms[i], room) == 0;
        if (!member) {
            s_error(self, s, "bad_frame", "field 'room': join the room before sending to it",
                    f->id);
            return;
        }
    }
    size_t n = chat_frame_encode_received(self->out, S_OUT_MAX, s->user, to, room, f->text,
                                          f->text_len, id, s_now_ms());
    if (n == 0) {
        s_error(self, s, "too_large", "the message does not fit in a frame", f->id);
        return;
    }
    char channel[CHAT_KEY_MAX];
    if (room) {
        s_key(s, CHAT_KEY_ROOM, room, channel);
        size_t pn = s_payload(self->payload, S_PAYLOAD_MAX, "-", s->id, self->out, n);
        const char *argv[] = {"PUBLISH", channel, self->payload};
        size_t lens[] = {7, strlen(channel), pn};
        s_command(self, s_on_stored, s_ctx(self, s, f->id), 3, argv, lens);
        return;
    }
    char seen[CHAT_KEY_MAX] = "", inbox[CHAT_KEY_MAX], cap[16], ttl[16], seen_ttl[16];
    if (f->id[0])
        chat_key_seen(seen, sizeof seen, s->tenant, s->user, f->id);
    chat_key(inbox, sizeof inbox, CHAT_KEY_INBOX, s->tenant, to);
    chat_key(channel, sizeof channel, CHAT_KEY_USER, s->tenant, to);
    snprintf(cap, sizeof cap, "%d", CHAT_INBOX_MAX);
    snprintf(ttl, sizeof ttl, "%d", CHAT_INBOX_TTL_S);
    snprintf(seen_ttl, sizeof seen_ttl, "%d", CHAT_SEEN_TTL_S);
    const char *argv[] = {"EVAL",    s_send_script, "3", seen, inbox,   channel,
                          self->out, s->id,         cap, ttl,  seen_ttl};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    lens[6] = n;
    s_command(self, s_on_stored, s_ctx(self, s, f->id), 11, argv, lens);
}

// --------------------------------------------------------------------------
// Client frames (chat.in)

static bool
s_room_waits(const s_session_t *s, uint32_t i)
{
    return (s->room_wait[i / 64] >> (i % 64)) & 1;
}

static void
s_room_wait(s_session_t *s, uint32_t i, bool wait)
{
    if (wait)
        s->room_wait[i / 64] |= 1ull << (i % 64);
    else
        s->room_wait[i / 64] &= ~(1ull << (i % 64));
}

//  The session is in the room from now on: what is said there reaches it.
//  Confirmed to the client (the chat.out join) and announced to the room.
static void
s_joined(chat_hub_t *self, s_session_t *s, uint32_t i)
{
    s_room_wait(s, i, false);
    s_send(self, s, NULL, 0, NULL, s->rooms[i], NULL, NULL);
    s_presence(self, s); // the room hears who came
}

static void
s_join(chat_hub_t *self, s_session_t *s, const char *room)
{
    for (uint32_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i], room) == 0)
            return; // already in it
    if (s->nrooms >= CHAT_ROOMS_MAX) {
        s_error(self, s, "bad_frame", "field 'room': at most 100 rooms per session", NULL);
        return;
    }
    if (s->rooms == NULL)
        s->rooms = proto_xcalloc(CHAT_ROOMS_MAX, sizeof *s->rooms);
    uint32_t at = s->nrooms++;
    proto_strlcpy(s->rooms[at], room, sizeof s->rooms[0]);
    char key[CHAT_KEY_MAX];
    s_key(s, CHAT_KEY_ROOM, room, key);
    s_listen(self, s, key);
    char members[CHAT_KEY_MAX];
    s_key(s, CHAT_KEY_MEMBERS, room, members);
    const char *argv[] = {"SADD", members, s->user};
    s_command(self, s_on_done, NULL, 3, argv, NULL);
    // joined once Redis confirms the room's SUBSCRIBE: confirmed earlier, a
    // message (or the presence of someone joining after) published before
    // the SUBSCRIBE reaches Redis on the other connection would be missed.
    // Redis away: at once (its frames get "unavailable" meanwhile, and the
    // subscription is made with the others when it is back)
    if (s_up(self) && !chat_redis_subscribed(self->redis, key))
        s_room_wait(s, at, true);
    else
        s_joined(self, s, at);
}

static void
s_leave(chat_hub_t *self, s_session_t *s, const char *room)
{
    for (uint32_t i = 0; i < s->nrooms; i++) {
        if (strcmp(s->rooms[i], room) != 0)
            continue;
        char key[CHAT_KEY_MAX], members[CHAT_KEY_MAX];
        s_key(s, CHAT_KEY_ROOM, room, key);
        s_unlisten(self, s, key);
        s_key(s, CHAT_KEY_MEMBERS, room, members);
        const char *argv[] = {"SREM", members, s->user};
        s_command(self, s_on_done, NULL, 3, argv, NULL);
        uint32_t last = --s->nrooms;
        memcpy(s->rooms[i], s->rooms[last], sizeof s->rooms[0]);
        s_room_wait(s, i, s_room_waits(s, last));
        s_room_wait(s, last, false);
        s_send(self, s, NULL, 0, NULL, NULL, room, NULL);
        return;
    }
}

static void
s_typing(chat_hub_t *self, s_session_t *s, const chat_frame_t *f, bool start)
{
    const char *to = f->to[0] ? f->to : NULL;
    const char *room = f->room[0] ? f->room : NULL;
    size_t n = chat_frame_encode_typing(self->out, S_OUT_MAX, s->user, to, room, start);
    char channel[CHAT_KEY_MAX];
    if (room)
        s_key(s, CHAT_KEY_ROOM, room, channel);
    else
        s_key(s, CHAT_KEY_USER, to, channel);
    if (n > 0)
        s_publish(self, s, channel, self->out, n);
}

static void
s_on_in(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    chat_hub_t *self = arg;
    const proto_chat_in_t *m = &in->msg.chat_in;
    s_session_t *s = s_session(self, m->session);
    if (s == NULL) {
        self->stats.dropped++;
        return;
    }
    chat_frame_error_t err;
    chat_frame_t *f = self->frame;
    if (chat_frame_parse((const char *) m->text.data, m->text.size, f, &err) != 0) {
        s_error(self, s, err.code, err.message, err.id[0] ? err.id : NULL);
        return;
    }
    if (!s_up(self)) {
        s_error(self, s, "unavailable", "chat storage is unreachable; try again",
                f->id[0] ? f->id : NULL);
        return;
    }
    switch (f->type) {
        case CHAT_FRAME_MESSAGE_SEND:
            s_message(self, s, f);
            break;
        case CHAT_FRAME_JOIN_ROOM:
            s_join(self, s, f->room);
            break;
        case CHAT_FRAME_LEAVE_ROOM:
            s_leave(self, s, f->room);
            break;
        case CHAT_FRAME_TYPING_START:
        case CHAT_FRAME_TYPING_STOP:
            s_typing(self, s, f, f->type == CHAT_FRAME_TYPING_START);
            break;
        case CHAT_FRAME_PRESENCE_UPDATE:
            proto_strlcpy(s->status, chat_frame_status_name(f->status), sizeof s->status);
            s_send(self, s, NULL, 0, NULL, NULL, NULL, s->status);
            s_presence(self, s);
            break;
    }
}

// --------------------------------------------------------------------------
// Sessions come and go (chat.open, chat.close)

static void
s_on_open(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    chat_hub_t *self = arg;
    const proto_chat_open_t *m = &in->msg.chat_open;
    s_session_t *s = s_session(self, m->session);
    if (s) {
        proto_strlcpy(s->gateway, m->gateway, sizeof s->gateway); // a repeat
        return;
    }
    if (!chat_frame_name_ok(m->user) || (m->tenant && strchr(m->tenant, ':'))) {
        log_warn("chat.open with a bad user or tenant: ignored", LOG_S("session", m->session));
        return;
    }
    s = proto_xcalloc(1, sizeof *s);
    proto_strlcpy(s->id, m->session, sizeof s->id);
    proto_strlcpy(s->gateway, m->gateway, sizeof s->gateway);
    proto_strlcpy(s->user, m->user, sizeof s->user);
    proto_strlcpy(s->tenant, m->tenant ? m->tenant : "", sizeof s->tenant);
    proto_strlcpy(s->status, m->status && *m->status ? m->status : "online", sizeof s->status);
    proto_strlcpy(s->cursor, m->cursor ? m->cursor : "", sizeof s->cursor);
    s->next = self->sessions[s_bucket(s->id)];
    self->sessions[s_bucket(s->id)] = s;
    proto_list_push_back(&self->all, &s->all);
    self->stats.sessions++;
    self->stats.opened++;
    char key[CHAT_KEY_MAX];
    s_key(s, CHAT_KEY_USER, s->user, key);
    s_listen(self, s, key);
    for (uint32_t i = 0; i < m->rooms_count && i < CHAT_ROOMS_MAX; i++)
        if (chat_frame_name_ok(m->rooms[i].name)) {
            if (s->rooms == NULL)
                s->rooms = proto_xcalloc(CHAT_ROOMS_MAX, sizeof *s->rooms);
            proto_strlcpy(s->rooms[s->nrooms++], m->rooms[i].name, sizeof s->rooms[0]);
            s_key(s, CHAT_KEY_ROOM, m->rooms[i].name, key);
            s_listen(self, s, key);
        }
    log_debug("chat session", LOG_S("session", s->id), LOG_S("user", s->user),
              LOG_S("gateway", s->gateway), LOG_B("moved", m->moved));
    if (s_up(self)) {
        if (!m->moved)
            s_presence(self, s);
        // the inbox is read once the user channel is subscribed: a message
        // published between a read before it and the subscription is lost
        s_key(s, CHAT_KEY_USER, s->user, key);
        if (chat_redis_subscribed(self->redis, key))
            s_start_replay(self, s);
        else
            s->wait_sub = true;
    }
}

static void
s_end(chat_hub_t *self, s_session_t *s)
{
    char key[CHAT_KEY_MAX];
    snprintf(s->status, sizeof s->status, "offline");
    if (s_up(self))
        s_presence(self, s);
    for (uint32_t i = 0; i < s->nrooms; i++) {
        s_key(s, CHAT_KEY_ROOM, s->rooms[i], key);
        s_unlisten(self, s, key);
    }
    s_key(s, CHAT_KEY_USER, s->user, key);
    s_unlisten(self, s, key);
    s_session_t **p = &self->sessions[s_bucket(s->id)];
    while (*p && *p != s)
        p = &(*p)->next;
    if (*p)
        *p = s->next;
    proto_list_unlink(&self->all, &s->all);
    self->stats.sessions--;
    free(s->rooms);
    free(s);
}

static void
s_on_close(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    chat_hub_t *self = arg;
    s_session_t *s = s_session(self, in->msg.chat_close.session);
    if (s)
        s_end(self, s);
}

//  A gateway's subscription to chat.out@<it>; went away: so did its
//  sessions' sockets.
static void
s_on_gateway(proto_bus_t *bus, const char *instance, bool subscribed, void *arg)
{
    (void) bus;
    chat_hub_t *self = arg;
    if (subscribed)
        return;
    proto_link_t *l = self->all.head;
    while (l) {
        proto_link_t *next = l->next;
        s_session_t *s = PROTO_LIST_ENTRY(l, s_session_t, all);
        if (strcmp(s->gateway, instance) == 0)
            s_end(self, s);
        l = next;
    }
}

// --------------------------------------------------------------------------
// Redis: messages and state

void
chat_hub_on_message(chat_hub_t *self, const char *channel, const char *payload, size_t len)
{
    s_chan_t *c = s_chan(self, channel);
    const char *nl1 = memchr(payload, '\n', len);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', len - (size_t) (nl1 + 1 - payload)) : NULL;
    if (c == NULL || nl2 == NULL)
        return;
    char entry[S_ENTRY_MAX], origin[S_ID_MAX + 1];
    size_t elen = (size_t) (nl1 - payload), olen = (size_t) (nl2 - nl1 - 1);
    if (elen == 0 || elen >= sizeof entry || olen >= sizeof origin)
        return;
    memcpy(entry, payload, elen);
    entry[elen] = '\0';
    memcpy(origin, nl1 + 1, olen);
    origin[olen] = '\0';
    const char *frame = nl2 + 1;
    size_t flen = len - (size_t) (frame - payload);
    bool inbox = strcmp(entry, "-") != 0;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        s_session_t *s = c->subs[i];
        if (strcmp(s->id, origin) == 0)
            continue; // its own typing, presence, room message
        if (!inbox) {
            s_send(self, s, frame, flen, NULL, NULL, NULL, NULL);
            continue;
        }
        if (s->replaying) {
            s->missed = true; // it is in the inbox: the replay reads it
            continue;
        }
        if (chat_keys_entry_cmp(entry, s->cursor) <= 0) {
            self->stats.duplicates++; // a replay that ran after its XADD delivered it already
            continue;
        }
        proto_strlcpy(s->cursor, entry, sizeof s->cursor);
        s_send(self, s, frame, flen, s->cursor, NULL, NULL, NULL);
        char key[CHAT_KEY_MAX];
        s_key(s, CHAT_KEY_CURSOR, s->user, key);
        const char *argv[] = {"SET", key, s->cursor};
        s_command(self, s_on_done, NULL, 3, argv, NULL);
    }
}

void
chat_hub_on_state(chat_hub_t *self, int up)
{
    if (!up)
        return; // sessions stay; their frames get "unavailable" meanwhile
    for (proto_link_t *l = self->all.head; l; l = l->next) {
        s_session_t *s = PROTO_LIST_ENTRY(l, s_session_t, all);
        s_presence(self, s);
        s->wait_sub = false; // up: every channel held is subscribed again
        for (uint32_t i = 0; i < s->nrooms; i++)
            if (s_room_waits(s, i))
                s_joined(self, s, i);
        s_start_replay(self, s); // what came while Redis was away
    }
}

void
chat_hub_on_subscribed(chat_hub_t *self, const char *channel)
{
    s_chan_t *c = s_chan(self, channel);
    if (c == NULL || !s_up(self))
        return; // on_state(up) replays every session
    for (uint32_t i = 0; i < c->nsubs; i++) {
        s_session_t *s = c->subs[i];
        if (c->room) {
            for (uint32_t r = 0; r < s->nrooms; r++) {
                char key[CHAT_KEY_MAX];
                if (!s_room_waits(s, r))
                    continue;
                s_key(s, CHAT_KEY_ROOM, s->rooms[r], key);
                if (strcmp(key, channel) == 0)
                    s_joined(self, s, r);
            }
            continue;
        }
        if (!s->wait_sub)
            continue;
        char key[CHAT_KEY_MAX];
        s_key(s, CHAT_KEY_USER, s->user, key);
        if (strcmp(key, channel) != 0)
            continue; // a room's subscription: the inbox waits for the user's
        s->wait_sub = false;
        s_start_replay(self, s);
    }
}

// --------------------------------------------------------------------------
// Life

chat_hub_t *
chat_hub_new(proto_bus_t *bus, const char *instance, chat_redis_t *redis)
{
    chat_hub_t *self = proto_xcalloc(1, sizeof *self);
    self->bus = bus;
    self->redis = redis;
    proto_strlcpy(self->instance, instance, sizeof self->instance);
    self->frame = proto_xmalloc(sizeof *self->frame);
    self->out = proto_xmalloc(S_OUT_MAX);
    self->payload = proto_xmalloc(S_PAYLOAD_MAX);
    proto_bus_on(bus, PROTO_CHAT_OPEN, s_on_open, self);
    proto_bus_on(bus, PROTO_CHAT_IN, s_on_in, self);
    proto_bus_on(bus, PROTO_CHAT_CLOSE, s_on_close, self);
    if (proto_bus_on_subscriber(bus, PROTO_CHAT_OUT, s_on_gateway, self) != 0) {
        chat_hub_destroy(&self);
        return NULL;
    }
    return self;
}

void
chat_hub_destroy(chat_hub_t **self_p)
{
    chat_hub_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->all.head)
        s_end(self, PROTO_LIST_ENTRY(self->all.head, s_session_t, all));
    free(self->frame);
    free(self->out);
    free(self->payload);
    free(self);
    *self_p = NULL;
}

void
chat_hub_set_redis(chat_hub_t *self, chat_redis_t *redis)
{
    self->redis = redis;
}

const chat_hub_stats_t *
chat_hub_stats(const chat_hub_t *self)
{
    return &self->stats;
}
