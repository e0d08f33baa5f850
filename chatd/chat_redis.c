/*  chat_redis - chatd's Redis client: two hiredis async connections on libev.

    States: DOWN (waiting for the backoff timer), CONNECTING (an attempt:
    both connections opening, AUTH/SELECT/PING queued behind the connect,
    bounded by the attempt timer) and UP. Any failure closes both and goes
    DOWN; the attempt that gets both ready goes UP.

    hiredis 0.14 frees a context by itself after a failed connect (the
    connect callback gets REDIS_ERR, the disconnect callback is not called)
    and after a lost connection (the disconnect callback), and calls every
    callback still queued on it with a NULL reply first. So a link forgets
    its context (ac = NULL) before anything can free it, and every callback
    checks that the context it is called for is still its link's: the queued
    callbacks of a context being freed are stale.

    A command is a s_cmd_t, linked in the client's list until hiredis lets
    go of it. Its timer bounds the wait; when it fires the caller gets
    "timeout" and the command stays with hiredis (which still owns its
    callback) until the late reply or the context's end frees it. A command
    refused while down runs its timer at 0 s, so the caller hears "unavailable"
    from the loop, never from inside chat_redis_command.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <sys/socket.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "chat_redis.h"
#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"

#define S_CONNECT_TIMEOUT 2.0 // s, default per attempt
#define S_COMMAND_TIMEOUT 2.0 // s, default per command
#define S_BUCKETS         512 // channel table buckets (chained)
#define S_ERROR_MAX       256 // bytes of last_error

static const double s_backoff_default[] = {1, 2, 4, 8, 16, 30};

typedef enum { S_DOWN, S_CONNECTING, S_UP } s_state_t;

typedef enum {
    S_CMD_WAITING,  // with hiredis, the caller waits
    S_CMD_REFUSED,  // not sent: its timer (0 s) tells the caller
    S_CMD_ANSWERED, // the caller heard a timeout; hiredis still holds it
} s_cmd_state_t;

typedef struct s_cmd s_cmd_t;
struct s_cmd {
    chat_redis_t *owner;     // the client
    chat_redis_reply_fn *fn; // the caller's callback
    void *arg;               // for it
    ev_timer timer;          // command timeout, or 0 s for a refusal
    s_cmd_state_t state;     // see above
    s_cmd_t *prev, *next;    // in owner->cmds
};

typedef struct s_channel s_channel_t;
struct s_channel {
    s_channel_t *next; // in its bucket
    unsigned holds;    // chat_redis_subscribe calls not yet released
    bool pending;      // SUBSCRIBE sent, not confirmed yet
    size_t len;        // bytes of name
    char name[];       // NUL-terminated
};

typedef struct {
    chat_redis_t *owner;   // the client
    redisAsyncContext *ac; // NULL while closed
    bool subscriber;       // the subscribe-mode connection
    bool ready;            // handshake done (PING answered)
} s_link_t;

struct chat_redis {
    struct ev_loop *loop;                 // the actor's loop
    chat_redis_url_t url;                 // where to (holds the password: never log it)
    double connect_timeout;               // s
    double command_timeout;               // s
    double *backoff;                      // s, each step (owned)
    size_t backoff_count;                 // steps
    double backoff_scale;                 // factor
    size_t backoff_step;                  // next step after a failure
    chat_redis_state_fn *on_state;        // or NULL
    chat_redis_message_fn *on_message;    // or NULL
    chat_redis_channel_fn *on_subscribed; // or NULL
    void *arg;                            // for both
    s_state_t state;                      // DOWN, CONNECTING, UP
    s_link_t cmd;                         // the command connection
    s_link_t sub;                         // the subscribe-mode connection
    ev_timer attempt_timer;               // bounds an attempt
    ev_timer retry_timer;                 // backoff before the next attempt
    bool attempted;                       // an attempt was made before
    s_cmd_t *cmds;                        // commands not yet let go of
    s_channel_t *channels[S_BUCKETS];     // channels held
    size_t sub_pending;                   // SUBSCRIBEs not yet confirmed
    int depth;                            // user callbacks running (destroy asserts 0)
    bool destroying;                      // inside chat_redis_destroy
    chat_redis_stats_t stats;             // counters
    char last_error[S_ERROR_MAX];         // why the last failure
};

//  --------------------------------------------------------------------------
//  URL

int
chat_redis_url_parse(const char *url, chat_redis_url_t *out, char *err, size_t errlen)
{
    assert(url && out && err && errlen > 0);
    proto_redis_url_t parsed;
    if (proto_redis_url_parse(url, &parsed, err, errlen) != 0) {
        return -1;
    }
    if (parsed.db < 0 || parsed.db > CHAT_REDIS_DB_MAX) {
        snprintf(err, errlen, "database number %lld out of range 0-%d", (long long) parsed.db,
                 CHAT_REDIS_DB_MAX);
        return -1;
    }
    if (strlen(parsed.password) > CHAT_REDIS_PASSWORD_MAX) {
        snprintf(err, errlen, "password longer than %d bytes", CHAT_REDIS_PASSWORD_MAX);
        return -1;
    }
    if (strlen(parsed.host) > CHAT_REDIS_HOST_MAX || strlen(parsed.user) >= sizeof out->user) {
        snprintf(err, errlen, "host or user too long");
        return -1;
    }
    memset(out, 0, sizeof *out);
    proto_strlcpy(out->host, parsed.host, sizeof out->host);
    proto_strlcpy(out->user, parsed.user, sizeof out->user);
    proto_strlcpy(out->password, parsed.password, sizeof out->password);
    out->port = parsed.port;
    out->db = (int) parsed.db;
    explicit_bzero(parsed.password, sizeof parsed.password);
    return 0;
}

//  --------------------------------------------------------------------------
//  Helpers

static void
s_set_error(chat_redis_t *self, const char *what, const char *detail)
{
    snprintf(self->last_error, sizeof self->last_error, "%s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
}

static double
s_backoff_delay(const chat_redis_t *self)
{
    size_t step =
        self->backoff_step < self->backoff_count ? self->backoff_step : self->backoff_count - 1;
    return self->backoff[step] * self->backoff_scale;
}

static void
s_call_state(chat_redis_t *self, bool up)
{
    if (self->on_state) {
        self->depth++;
        self->on_state(self->arg, up);
        self->depth--;
    }
}

//  --------------------------------------------------------------------------
//  Commands

static void
s_cmd_unlink(s_cmd_t *cmd)
{
    chat_redis_t *self = cmd->owner;
    if (cmd->prev) {
        cmd->prev->next = cmd->next;
    } else {
        self->cmds = cmd->next;
    }
    if (cmd->next) {
        cmd->next->prev = cmd->prev;
    }
    ev_timer_stop(self->loop, &cmd->timer);
    free(cmd);
}

//  Tell the caller (once) and count.
static void
s_cmd_answer(s_cmd_t *cmd, const redisReply *reply, const char *err)
{
    chat_redis_t *self = cmd->owner;
    if (err || (reply && reply->type == REDIS_REPLY_ERROR)) {
        self->stats.errors++;
    }
    cmd->state = S_CMD_ANSWERED;
    ev_timer_stop(self->loop, &cmd->timer);
    self->depth++;
    cmd->fn(cmd->arg, err ? NULL : reply, err);
    self->depth--;
}

//  hiredis lets go of a command: its reply, or NULL when the context ends.
static void
s_on_cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void) ac;
    s_cmd_t *cmd = privdata;
    if (cmd->state == S_CMD_WAITING) {
        const char *err = NULL;
        if (!reply) {
            err = cmd->owner->destroying ? CHAT_REDIS_ERR_CLOSED : CHAT_REDIS_ERR_LOST;
        }
        s_cmd_answer(cmd, reply, err);
    }
    s_cmd_unlink(cmd);
}

static void s_abort_links(chat_redis_t *self);
static void s_fail(chat_redis_t *self, const char *what, const char *detail);

static void
s_on_cmd_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_cmd_t *cmd = w->data;
    if (cmd->state == S_CMD_REFUSED) {
        s_cmd_answer(cmd, NULL, CHAT_REDIS_ERR_UNAVAILABLE);
        s_cmd_unlink(cmd);
        return;
    }
    // hiredis keeps the callback: the context's end frees cmd
    chat_redis_t *self = cmd->owner;
    self->stats.timeouts++;
    s_cmd_answer(cmd, NULL, CHAT_REDIS_ERR_TIMEOUT);
    // no reply in time on a connection that looks up: treat it as gone. A cut
    // network keeps a TCP connection "up" for many minutes (nothing is said
    // when a path dies), and what is queued on it would run whenever the path
    // came back, after its caller was told it failed (a chat message answered
    // "unavailable", then delivered). So: abort (RST, nothing unsent leaves
    // later), tell everyone waiting, and reconnect with the backoff, as
    // redis-py does on a socket timeout.
    if (self->state == S_UP && !self->destroying) {
        s_abort_links(self);
        s_fail(self, "command timeout", "no reply within the command timeout");
    }
}

int
chat_redis_command(chat_redis_t *self,
                   chat_redis_reply_fn *fn,
                   void *arg,
                   int argc,
                   const char **argv,
                   const size_t *argvlen)
{
    assert(self && fn && argv);
    if (argc <= 0 || self->destroying) {
        return -1;
    }
    s_cmd_t *cmd = proto_xcalloc(1, sizeof *cmd);
    cmd->owner = self;
    cmd->fn = fn;
    cmd->arg = arg;
    cmd->next = self->cmds;
    if (self->cmds) {
        self->cmds->prev = cmd;
    }
    self->cmds = cmd;
    self->stats.commands++;
    ev_timer_init(&cmd->timer, s_on_cmd_timer, self->command_timeout, 0.);
    cmd->timer.data = cmd;
    // hiredis refuses a command on a context that is going (REDIS_ERR)
    if (self->state != S_UP || !self->cmd.ac
        || redisAsyncCommandArgv(self->cmd.ac, s_on_cmd_reply, cmd, argc, argv, argvlen)
               != REDIS_OK) {
        cmd->state = S_CMD_REFUSED;
        ev_timer_set(&cmd->timer, 0., 0.);
    }
    ev_timer_start(self->loop, &cmd->timer);
    return 0;
}

//  --------------------------------------------------------------------------
//  Channels

static s_channel_t **
s_channel_slot(chat_redis_t *self, const char *name, size_t len)
{
    s_channel_t **slot = &self->channels[proto_fnv1a(name, len) % S_BUCKETS];
    while (*slot && ((*slot)->len != len || memcmp((*slot)->name, name, len) != 0)) {
        slot = &(*slot)->next;
    }
    return slot;
}

static void s_on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

//  SUBSCRIBE (counted until confirmed) or UNSUBSCRIBE channel on the
//  subscription. hiredis keeps s_on_sub_reply per channel for its messages.
static void
s_channel_send(chat_redis_t *self, s_channel_t *channel, bool subscribe)
{
    const char *verb = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
    const char *argv[2] = {verb, channel->name};
    size_t argvlen[2] = {strlen(verb), channel->len};
    int rc = redisAsyncCommandArgv(self->sub.ac, subscribe ? s_on_sub_reply : NULL, &self->sub, 2,
                                   argv, argvlen);
    if (rc == REDIS_OK && subscribe && !channel->pending) {
        channel->pending = true;
        self->sub_pending++;
    }
}

static void
s_channel_confirmed(chat_redis_t *self, const char *name, size_t len)
{
    s_channel_t *channel = *s_channel_slot(self, name, len);
    if (channel && channel->pending) {
        channel->pending = false;
        self->sub_pending--;
    }
}

int
chat_redis_unsubscribe(chat_redis_t *self, const char *name)
{
    assert(self && name);
    s_channel_t **slot = s_channel_slot(self, name, strlen(name));
    s_channel_t *channel = *slot;
    if (!channel) {
        return -1;
    }
    if (--channel->holds > 0) {
        return 0;
    }
    if (self->sub.ready && self->sub.ac) {
        s_channel_send(self, channel, false);
    }
    if (channel->pending) {
        self->sub_pending--;
    }
    *slot = channel->next;
    free(channel);
    return 0;
}

bool
chat_redis_subscribed(const chat_redis_t *self, const char *name)
{
    assert(self && name);
    s_channel_t *const *slot = s_channel_slot((chat_redis_t *) self, name, strlen(name));
    return *slot && (*slot)->holds > 0 && !(*slot)->pending && chat_redis_up(self);
}

unsigned
chat_redis_holds(const chat_redis_t *self, const char *name)
{
    assert(self && name);
    s_channel_t *const *slot = s_channel_slot((chat_redis_t *) self, name, strlen(name));
    return *slot ? (*slot)->holds : 0;
}

//  --------------------------------------------------------------------------
//  Connections

//  Close both connections (hiredis calls what was queued on them with NULL,
//  now, or after the callback we are in when it is one of theirs).
static void
s_close_links(chat_redis_t *self)
{
    s_link_t *links[2] = {&self->cmd, &self->sub};
    for (size_t i = 0; i < 2; i++) {
        redisAsyncContext *ac = links[i]->ac;
        links[i]->ac = NULL;
        links[i]->ready = false;
        if (ac) {
            redisAsyncFree(ac);
        }
    }
    for (size_t b = 0; b < S_BUCKETS; b++) {
        for (s_channel_t *c = self->channels[b]; c; c = c->next) {
            c->pending = false;
        }
    }
    self->sub_pending = 0;
    ev_timer_stop(self->loop, &self->attempt_timer);
}

//  Make the links' closes resets: what the kernel still holds to send is
//  dropped rather than delivered when the path comes back.
static void
s_abort_links(chat_redis_t *self)
{
    s_link_t *links[2] = {&self->cmd, &self->sub};
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    for (size_t i = 0; i < 2; i++)
        if (links[i]->ac && links[i]->ac->c.fd >= 0)
            (void) setsockopt(links[i]->ac->c.fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
}

//  An attempt failed or a connection was lost: close, wait, try again.
static void
s_fail(chat_redis_t *self, const char *what, const char *detail)
{
    if (self->destroying) {
        return;
    }
    bool was_up = self->state == S_UP;
    s_set_error(self, what, detail);
    log_warn(was_up ? "redis lost" : "redis connect failed", LOG_S("error", self->last_error),
             LOG_S("host", self->url.host), LOG_I("port", self->url.port));
    s_close_links(self);
    self->state = S_DOWN;
    ev_timer_stop(self->loop, &self->retry_timer);
    ev_timer_set(&self->retry_timer, s_backoff_delay(self), 0.);
    ev_timer_start(self->loop, &self->retry_timer);
    if (self->backoff_step < self->backoff_count) {
        self->backoff_step++;
    }
    if (was_up) {
        s_call_state(self, false);
    }
}

static void
s_check_up(chat_redis_t *self)
{
    if (self->state != S_CONNECTING || !self->cmd.ready || !self->sub.ready
        || self->sub_pending > 0) {
        return;
    }
    ev_timer_stop(self->loop, &self->attempt_timer);
    self->state = S_UP;
    self->backoff_step = 0;
    log_info("redis up", LOG_S("host", self->url.host), LOG_I("port", self->url.port));
    s_call_state(self, true);
}

static void
s_resubscribe(chat_redis_t *self)
{
    for (size_t b = 0; b < S_BUCKETS; b++) {
        for (s_channel_t *c = self->channels[b]; c; c = c->next) {
            s_channel_send(self, c, true);
        }
    }
}

//  Every reply of the subscription: (p)subscribe confirmations, messages,
//  unsubscribe confirmations. NULL when the context ends.
static void
s_on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    s_link_t *link = privdata;
    chat_redis_t *self = link->owner;
    redisReply *reply = r;
    if (!reply || ac != link->ac || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING) {
        return;
    }
    const char *kind = reply->element[0]->str;
    const redisReply *name = reply->element[1];
    if (strcmp(kind, "subscribe") == 0) {
        s_channel_t *channel = *s_channel_slot(self, name->str, name->len);
        bool was_pending = channel && channel->pending;
        s_channel_confirmed(self, name->str, name->len);
        s_check_up(self); // a reconnect's last confirmation: on_state(up) first
        // still held (on_state may have run): name->str is the reply's, NUL-terminated
        if (was_pending && self->on_subscribed && *s_channel_slot(self, name->str, name->len)) {
            self->depth++;
            self->on_subscribed(self->arg, name->str);
            self->depth--;
        }
    } else if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        // a message for a channel released meanwhile is not ours any more
        if (*s_channel_slot(self, name->str, name->len) && self->on_message) {
            self->stats.messages++;
            self->depth++;
            self->on_message(self->arg, name->str, reply->element[2]->str, reply->element[2]->len);
            self->depth--;
        }
    }
}

int
chat_redis_subscribe(chat_redis_t *self, const char *name)
{
    assert(self && name);
    size_t len = strlen(name);
    if (len == 0 || len > CHAT_REDIS_CHANNEL_MAX) {
        return -1;
    }
    s_channel_t **slot = s_channel_slot(self, name, len);
    if (*slot) {
        (*slot)->holds++;
        return 0;
    }
    s_channel_t *channel = proto_xcalloc(1, sizeof *channel + len + 1);
    memcpy(channel->name, name, len);
    channel->len = len;
    channel->holds = 1;
    *slot = channel;
    if (self->sub.ready && self->sub.ac) {
        s_channel_send(self, channel, true);
    }
    return 0;
}

//  AUTH or SELECT answered: an error ends the attempt.
static void
s_on_handshake_step(redisAsyncContext *ac, void *r, void *privdata)
{
    s_link_t *link = privdata;
    redisReply *reply = r;
    if (!reply || ac != link->ac) {
        return; // the context is going: its own callbacks say why
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s_fail(link->owner, link->subscriber ? "handshake (subscription)" : "handshake",
               reply->str);
    }
}

//  PING answered: the link is ready (the subscription then subscribes again).
static void
s_on_handshake_done(redisAsyncContext *ac, void *r, void *privdata)
{
    s_link_t *link = privdata;
    chat_redis_t *self = link->owner;
    redisReply *reply = r;
    if (!reply || ac != link->ac) {
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s_fail(self, "PING", reply->str);
        return;
    }
    link->ready = true;
    if (link->subscriber) {
        s_resubscribe(self);
    }
    s_check_up(self);
}

static void
s_on_connect(const redisAsyncContext *ac, int status)
{
    s_link_t *link = ac->data;
    if (ac != link->ac || status == REDIS_OK) {
        return;
    }
    link->ac = NULL; // hiredis frees it after this callback
    s_fail(link->owner, "connect", ac->errstr[0] ? ac->errstr : "failed");
}

static void
s_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void) status;
    s_link_t *link = ac->data;
    if (ac != link->ac) {
        return; // we closed it
    }
    link->ac = NULL; // hiredis frees it after this callback
    s_fail(link->owner, "connection lost", ac->errstr[0] ? ac->errstr : "closed by the server");
}

static void
s_queue_handshake(chat_redis_t *self, s_link_t *link)
{
    const chat_redis_url_t *url = &self->url;
    if (url->password[0]) {
        // AUTH password, or AUTH user password (Redis 6 ACL)
        const char *argv[3] = {"AUTH", url->user, url->password};
        size_t argvlen[3] = {4, strlen(url->user), strlen(url->password)};
        int argc = 3;
        if (!url->user[0]) {
            argv[1] = url->password;
            argvlen[1] = argvlen[2];
            argc = 2;
        }
        redisAsyncCommandArgv(link->ac, s_on_handshake_step, link, argc, argv, argvlen);
    }
    if (url->db != 0 && !link->subscriber) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", url->db);
        const char *argv[2] = {"SELECT", db};
        size_t argvlen[2] = {6, (size_t) n};
        redisAsyncCommandArgv(link->ac, s_on_handshake_step, link, 2, argv, argvlen);
    }
    const char *ping = "PING";
    redisAsyncCommandArgv(link->ac, s_on_handshake_done, link, 1, &ping, NULL);
}

//  Open one link; 0, or -1 with the attempt failed.
static int
s_open(chat_redis_t *self, s_link_t *link)
{
    redisAsyncContext *ac = redisAsyncConnect(self->url.host, self->url.port);
    if (!ac) {
        s_fail(self, "connect", "out of memory");
        return -1;
    }
    if (ac->err) {
        char why[128];
        proto_strlcpy(why, ac->errstr, sizeof why);
        redisAsyncFree(ac);
        s_fail(self, "connect", why);
        return -1;
    }
    ac->data = link;
    link->ac = ac;
    redisEnableKeepAlive(&ac->c); // a peer that vanishes without a FIN is noticed
    redisLibevAttach(self->loop, ac);
    redisAsyncSetConnectCallback(ac, s_on_connect);
    redisAsyncSetDisconnectCallback(ac, s_on_disconnect);
    s_queue_handshake(self, link);
    return 0;
}

static void
s_attempt(chat_redis_t *self)
{
    if (self->attempted) {
        self->stats.reconnects++;
    }
    self->attempted = true;
    self->state = S_CONNECTING;
    ev_timer_set(&self->attempt_timer, self->connect_timeout, 0.);
    ev_timer_start(self->loop, &self->attempt_timer);
    if (s_open(self, &self->cmd) == 0) {
        s_open(self, &self->sub);
    }
}

static void
s_on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_attempt(w->data);
}

static void
s_on_attempt_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_fail(w->data, "connect timeout", NULL);
}

//  --------------------------------------------------------------------------
//  Lifecycle

static int
s_configure(chat_redis_t *self, const chat_redis_config_t *cfg)
{
    char why[160];
    if (!cfg->url || chat_redis_url_parse(cfg->url, &self->url, why, sizeof why) != 0) {
        log_warn("bad REDIS_URL", LOG_S("error", cfg->url ? why : "missing"));
        return -1;
    }
    double numbers[3] = {cfg->connect_timeout, cfg->command_timeout, cfg->backoff_scale};
    for (size_t i = 0; i < 3; i++) {
        if (!isfinite(numbers[i]) || numbers[i] < 0) {
            log_warn("bad chat_redis setting: a timeout or the backoff scale");
            return -1;
        }
    }
    self->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout : S_CONNECT_TIMEOUT;
    self->command_timeout = cfg->command_timeout > 0 ? cfg->command_timeout : S_COMMAND_TIMEOUT;
    self->backoff_scale = cfg->backoff_scale > 0 ? cfg->backoff_scale : 1.0;
    const double *steps = cfg->backoff && cfg->backoff_count ? cfg->backoff : s_backoff_default;
    size_t count = cfg->backoff && cfg->backoff_count
                       ? cfg->backoff_count
                       : sizeof s_backoff_default / sizeof s_backoff_default[0];
    self->backoff = proto_xcalloc(count, sizeof *self->backoff);
    self->backoff_count = count;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(steps[i]) || steps[i] < 0) {
            log_warn("bad chat_redis setting: a backoff step");
            return -1;
        }
        self->backoff[i] = steps[i];
    }
    return 0;
}

chat_redis_t *
chat_redis_new(struct ev_loop *loop, const chat_redis_config_t *cfg)
{
    assert(loop && cfg);
    chat_redis_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->cmd.owner = self;
    self->sub.owner = self;
    self->sub.subscriber = true;
    self->on_state = cfg->on_state;
    self->on_message = cfg->on_message;
    self->on_subscribed = cfg->on_subscribed;
    self->arg = cfg->arg;
    ev_timer_init(&self->attempt_timer, s_on_attempt_timer, 0., 0.);
    self->attempt_timer.data = self;
    ev_timer_init(&self->retry_timer, s_on_retry_timer, 0., 0.);
    self->retry_timer.data = self;
    if (s_configure(self, cfg) != 0) {
        goto fail;
    }
    s_attempt(self);
    return self;
fail:
    chat_redis_destroy(&self);
    return NULL;
}

void
chat_redis_destroy(chat_redis_t **self_p)
{
    assert(self_p);
    chat_redis_t *self = *self_p;
    if (!self) {
        return;
    }
    assert(self->depth == 0); // not from inside one of our callbacks
    self->destroying = true;
    ev_timer_stop(self->loop, &self->retry_timer);
    s_close_links(self); // answers what hiredis held: "closed"
    while (self->cmds) {
        s_cmd_t *cmd = self->cmds;
        if (cmd->state == S_CMD_REFUSED) {
            s_cmd_answer(cmd, NULL, CHAT_REDIS_ERR_UNAVAILABLE);
        }
        s_cmd_unlink(cmd);
    }
    for (size_t b = 0; b < S_BUCKETS; b++) {
        while (self->channels[b]) {
            s_channel_t *c = self->channels[b];
            self->channels[b] = c->next;
            free(c);
        }
    }
    free(self->backoff);
    self->backoff = NULL;
    explicit_bzero(self->url.password, sizeof self->url.password);
    free(self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  State

bool
chat_redis_up(const chat_redis_t *self)
{
    assert(self);
    return self->state == S_UP;
}

const char *
chat_redis_last_error(const chat_redis_t *self)
{
    assert(self);
    return self->last_error;
}

void
chat_redis_stats(const chat_redis_t *self, chat_redis_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
}
