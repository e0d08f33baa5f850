/*  chat_redis - chatd's Redis client: hiredis async on the actor's libev loop.

    One client owns two connections to the server of REDIS_URL: one for
    commands and one in subscribe mode (a subscribed connection can run no
    other command). The client is up when both are connected, authenticated
    (AUTH, when the URL has a password), on their database (SELECT, when the
    URL names one other than 0; the subscription does not need it) and every
    channel held is subscribed again (the server confirmed each).

    hiredis 0.14 has no connect or command timeouts and no URL parser, so
    this module has its own: an ev_timer bounds each attempt (TCP connect and
    the handshake, connect_timeout) and each command (command_timeout), and
    chat_redis_url_parse reads REDIS_URL. When either connection is lost, or
    an attempt fails, both are closed and the client tries again after the
    backoff schedule (default 1, 2, 4, 8, 16, then every 30 s, times
    backoff_scale), which restarts from its first step once the client is up.

    Errors never leave a caller waiting: each command's callback is called
    exactly once, with a reply, or with NULL and one of the CHAT_REDIS_ERR_*
    texts below. Callbacks are called from the loop only, never from inside
    the call that started the command. Channels are reference counted (the
    sessions of one user share its channel) and kept across reconnects.

    hiredis resolves a host name with a blocking getaddrinfo() at each
    attempt: give REDIS_URL an address where that matters.
*/
#ifndef CHAT_REDIS_H
#define CHAT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#define CHAT_REDIS_HOST_MAX     255  // bytes of a host, without the NUL
#define CHAT_REDIS_PASSWORD_MAX 256  // bytes of a password, without the NUL
#define CHAT_REDIS_DB_MAX       15   // highest database number (Redis's default 16 databases)
#define CHAT_REDIS_CHANNEL_MAX  1024 // bytes of a channel name, without the NUL

//  The error texts a command's callback can get (compare with strcmp).
#define CHAT_REDIS_ERR_UNAVAILABLE "unavailable"     // not up when the command was given
#define CHAT_REDIS_ERR_LOST        "connection lost" // lost after it was sent: it may have run
#define CHAT_REDIS_ERR_TIMEOUT     "timeout"         // no reply within command_timeout
#define CHAT_REDIS_ERR_CLOSED      "closed"          // chat_redis_destroy while it waited

//  REDIS_URL, parsed.
typedef struct {
    char host[CHAT_REDIS_HOST_MAX + 1];         // name or address (IPv6 without brackets)
    uint16_t port;                              // 1..65535, 6379 when not given
    char user[128];                             // Redis 6 ACL user, "" for none
    char password[CHAT_REDIS_PASSWORD_MAX + 1]; // "" for none: a secret, never log it
    int db;                                     // 0..CHAT_REDIS_DB_MAX, 0 when not given
} chat_redis_url_t;

//  Parse url: redis://[[user]:password@]host[:port][/db], host a name, an
//  IPv4 address or [IPv6]; the grammar is proto_redis_url_parse's (the one
//  chatd checks REDIS_URL with at start), with this module's bounds: db
//  0..15, password up to 256 bytes. Returns 0 with *out filled, or -1 with
//  err set to one phrase naming what is wrong (never the password).
int chat_redis_url_parse(const char *url, chat_redis_url_t *out, char *err, size_t errlen);

//  A reply: exactly one of reply and err is NULL. reply is borrowed for the
//  call (hiredis frees it after); it may be an error reply (REDIS_REPLY_ERROR,
//  e.g. a script's error), which is Redis's answer, not a transport error.
typedef void(chat_redis_reply_fn)(void *arg, const redisReply *reply, const char *err);

//  The client went up (both connections ready) or down (either lost).
typedef void(chat_redis_state_fn)(void *arg, bool up);

//  A message on a channel held. channel is NUL-terminated, payload is len
//  bytes (binary-safe; also NUL-terminated by hiredis); both are borrowed.
typedef void(chat_redis_message_fn)(void *arg,
                                    const char *channel,
                                    const char *payload,
                                    size_t len);

//  A SUBSCRIBE of a channel held was confirmed by the server: from then on
//  every message published to it is delivered. channel is borrowed.
typedef void(chat_redis_channel_fn)(void *arg, const char *channel);

typedef struct {
    const char *url;               // REDIS_URL (copied); required
    double connect_timeout;        // s, per attempt: connect and handshake; 0: 2 s
    double command_timeout;        // s, per command; 0: 2 s
    const double *backoff;         // s, wait before each attempt after a loss; NULL: 1,2,4,8,16,30
    size_t backoff_count;          // entries of backoff (the last one repeats)
    double backoff_scale;          // every wait is multiplied by it; 0: 1 (tests: 0.05)
    chat_redis_state_fn *on_state; // or NULL
    chat_redis_message_fn *on_message;    // or NULL
    chat_redis_channel_fn *on_subscribed; // or NULL
    void *arg;                            // for on_state, on_message and on_subscribed
} chat_redis_config_t;

//  Counters for pong / proc.stats (never reset).
typedef struct {
    uint64_t commands;   // commands given
    uint64_t errors;     // commands that ended in an error (any err, or an error reply)
    uint64_t timeouts;   // of which: no reply within command_timeout
    uint64_t reconnects; // connect attempts after the first one
    uint64_t messages;   // pub/sub messages delivered to on_message
} chat_redis_stats_t;

typedef struct chat_redis chat_redis_t;

//  Create a client on loop and start its first attempt at once. Returns
//  NULL (with a warning naming the problem, never the password) if the URL
//  does not parse or a number of cfg is negative or not finite.
chat_redis_t *chat_redis_new(struct ev_loop *loop, const chat_redis_config_t *cfg);

//  Close both connections and free everything. Before it returns, it calls
//  the callback of every command still waiting for its answer with err
//  CHAT_REDIS_ERR_CLOSED (CHAT_REDIS_ERR_UNAVAILABLE for one refused while
//  down whose answer was still due); on_state is not called. No callback
//  after it returns. Must not be called from inside one of the client's
//  callbacks (asserted). Sets *self_p to NULL; safe to call twice.
void chat_redis_destroy(chat_redis_t **self_p);

//  Send a command of argc arguments, argv[i] of argvlen[i] bytes (binary-
//  safe; argvlen NULL: strlen of each). fn(arg, ...) is called exactly once,
//  from the loop: with the reply; or with CHAT_REDIS_ERR_UNAVAILABLE (next
//  loop turn) when the client is not up; CHAT_REDIS_ERR_LOST when the
//  connection goes before the reply; CHAT_REDIS_ERR_TIMEOUT after
//  command_timeout (a reply that comes later is dropped). Returns 0, or -1
//  (fn never called) if argc is 0 or it is called during chat_redis_destroy.
//  SUBSCRIBE and friends belong to chat_redis_subscribe, not here.
int chat_redis_command(chat_redis_t *self,
                       chat_redis_reply_fn *fn,
                       void *arg,
                       int argc,
                       const char **argv,
                       const size_t *argvlen);

//  Hold channel (NUL-terminated, 1..CHAT_REDIS_CHANNEL_MAX bytes): the first
//  hold subscribes (now when up, else after the next connect), later ones
//  only count. Messages published before the server confirms the
//  subscription are not seen. Returns 0, or -1 for a bad name.
int chat_redis_subscribe(chat_redis_t *self, const char *channel);

//  Release one hold of channel; the last one unsubscribes. Returns 0, or -1
//  if the channel is not held.
int chat_redis_unsubscribe(chat_redis_t *self, const char *channel);

//  How many holds channel has (0: not subscribed).
unsigned chat_redis_holds(const chat_redis_t *self, const char *channel);

//  True while both connections are ready.
bool chat_redis_up(const chat_redis_t *self);

//  True when channel is held and its SUBSCRIBE is confirmed on the current
//  connection (messages published from now on reach on_message).
bool chat_redis_subscribed(const chat_redis_t *self, const char *channel);

//  Why the last attempt failed or the client went down (a borrowed text,
//  "" when none yet): e.g. "connection refused", "connect timeout",
//  "AUTH: WRONGPASS ...". Never holds the password.
const char *chat_redis_last_error(const chat_redis_t *self);

//  Copy the counters into *out.
void chat_redis_stats(const chat_redis_t *self, chat_redis_stats_t *out);

#endif
