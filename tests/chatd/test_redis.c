/*  test_redis - unit tests for chat_redis, against a real redis-server.

    Each test that needs a server starts its own: `redis-server --port P
    --save "" --appendonly no --bind 127.0.0.1` on a port the kernel just
    gave out (fork/exec, then PING until it answers, bounded), and stops it
    by its pid at the end. The client runs on a real libev loop, run until a
    condition holds with a deadline (t_loop_until, 3 s); nothing waits by
    sleeping. Backoff runs at backoff_scale 0.05: 50, 100, 200, 400, 800 ms,
    then 1.5 s.

    How chatd uses chat_redis, in short: chat_redis_new() with REDIS_URL and
    on_state/on_message; chat_redis_command() with argv (fn hears exactly
    once: a reply, or "unavailable"/"connection lost"/"timeout"/"closed");
    chat_redis_subscribe()/unsubscribe() per session's channels; and
    chat_redis_destroy() at the end.
*/
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "chat_redis.h"
#include "proto_log.h"
#include "proto_util.h"
#include "t_loop.h"
#include "t_redis.h"

#define DEADLINE_S 3.0  // no wait in this file may take longer
#define SCALE      0.05 // backoff_scale: the schedule in 1/20 s
#define MAX_TRIES  16   // connect attempts recorded
#define PASSWORD   "s3cret-Pa55"

//  One command's callback, as seen.
typedef struct {
    int calls;        // how many times fn was called (must end at 1)
    char err[64];     // its err, "" for a reply
    int type;         // reply type
    long long number; // an integer reply
    char str[2048];   // a string/status/error reply
    size_t len;       // its length
    double at;        // ev_now when called
} call_t;

//  A server and a client with what they did.
typedef struct {
    struct ev_loop *loop;    // the test's loop
    pid_t pid;               // redis-server
    int port;                // its port
    chat_redis_t *redis;     // the client under test
    int ups, downs;          // on_state calls
    double up_at, down_at;   // when last
    int messages;            // on_message calls
    int subscribed;          // on_subscribed calls
    char sub_channel[128];   // the last one's channel
    char channel[128];       // the last message's channel
    char payload[256];       // its payload
    size_t payload_len;      // its length
    uint64_t reconnects;     // stats.reconnects as last seen
    double tries[MAX_TRIES]; // ev_now of each attempt seen (reconnects going up)
    size_t ntries;           // recorded
    call_t *wait_call;       // s_run: until this is called
} fx_t;

//  --------------------------------------------------------------------------
//  redis-server

//  --------------------------------------------------------------------------
//  Callbacks and waits

static void
s_on_state(void *arg, bool up)
{
    fx_t *fx = arg;
    if (up) {
        fx->ups++;
        fx->up_at = ev_now(fx->loop);
    } else {
        fx->downs++;
        fx->down_at = ev_now(fx->loop);
    }
}

static void
s_on_message(void *arg, const char *channel, const char *payload, size_t len)
{
    fx_t *fx = arg;
    fx->messages++;
    proto_strlcpy(fx->channel, channel, sizeof fx->channel);
    assert_true(len < sizeof fx->payload);
    memcpy(fx->payload, payload, len);
    fx->payload_len = len;
}

static void
s_on_subscribed(void *arg, const char *channel)
{
    fx_t *fx = arg;
    fx->subscribed++;
    proto_strlcpy(fx->sub_channel, channel, sizeof fx->sub_channel);
}

static bool
s_got_subscribed(void *arg)
{
    fx_t *fx = arg;
    return fx->subscribed > 0;
}

//  fn of every command: arg is a call_t with a fx_t before it (s_cmd).
typedef struct {
    fx_t *fx;
    call_t *call;
} ctx_t;

static void
s_on_reply(void *arg, const redisReply *reply, const char *err)
{
    ctx_t *ctx = arg;
    call_t *call = ctx->call;
    call->calls++;
    call->at = ev_now(ctx->fx->loop);
    assert_true((reply == NULL) != (err == NULL));
    if (err) {
        proto_strlcpy(call->err, err, sizeof call->err);
        free(ctx);
        return;
    }
    call->type = reply->type;
    call->number = reply->integer;
    if (reply->str) {
        assert_true(reply->len < sizeof call->str);
        memcpy(call->str, reply->str, reply->len);
        call->len = reply->len;
    }
    free(ctx);
}

//  Start a command whose answer goes to *call (cleared first).
static void
s_cmd(fx_t *fx, call_t *call, int argc, const char **argv, const size_t *argvlen)
{
    memset(call, 0, sizeof *call);
    ctx_t *ctx = proto_xcalloc(1, sizeof *ctx);
    ctx->fx = fx;
    ctx->call = call;
    assert_int_equal(chat_redis_command(fx->redis, s_on_reply, ctx, argc, argv, argvlen), 0);
}

static bool
s_called(void *arg)
{
    fx_t *fx = arg;
    return fx->wait_call->calls > 0;
}

//  Run until call is answered; fail at the deadline.
static void
s_wait_call(fx_t *fx, call_t *call)
{
    fx->wait_call = call;
    if (!t_loop_until(fx->loop, s_called, fx, DEADLINE_S)) {
        fail_msg("no answer within %.1f s", DEADLINE_S);
    }
}

//  Run a command and wait for its answer.
static void
s_run(fx_t *fx, call_t *call, int argc, const char **argv)
{
    s_cmd(fx, call, argc, argv, NULL);
    s_wait_call(fx, call);
    assert_int_equal(call->calls, 1);
}

//  Record each connect attempt's time (stats.reconnects going up).
static void
s_note_tries(fx_t *fx)
{
    chat_redis_stats_t stats;
    chat_redis_stats(fx->redis, &stats);
    while (fx->reconnects < stats.reconnects) {
        if (fx->ntries < MAX_TRIES) {
            fx->tries[fx->ntries++] = ev_now(fx->loop);
        }
        fx->reconnects++;
    }
}

static bool
s_is_up(void *arg)
{
    fx_t *fx = arg;
    s_note_tries(fx);
    return chat_redis_up(fx->redis);
}

static bool
s_is_down(void *arg)
{
    fx_t *fx = arg;
    return fx->downs > 0;
}

static void
s_wait_up(fx_t *fx)
{
    if (!t_loop_until(fx->loop, s_is_up, fx, DEADLINE_S)) {
        fail_msg("not up within %.1f s: %s", DEADLINE_S, chat_redis_last_error(fx->redis));
    }
}

static chat_redis_t *
s_client(fx_t *fx, const char *url, double command_timeout)
{
    chat_redis_config_t cfg = {.url = url,
                               .connect_timeout = 1.0,
                               .command_timeout = command_timeout,
                               .backoff_scale = SCALE,
                               .on_state = s_on_state,
                               .on_message = s_on_message,
                               .on_subscribed = s_on_subscribed,
                               .arg = fx};
    return chat_redis_new(fx->loop, &cfg);
}

static void
s_url(fx_t *fx, char *out, size_t cap, const char *auth, const char *db)
{
    snprintf(out, cap, "redis://%s127.0.0.1:%d%s", auth, fx->port, db);
}

//  PUBLISH channel payload until it reaches want receivers (a subscription
//  takes effect when the server has read it), bounded.
static void
s_publish_until(fx_t *fx, const char *channel, const char *payload, size_t len, long long want)
{
    const char *argv[3] = {"PUBLISH", channel, payload};
    size_t argvlen[3] = {7, strlen(channel), len};
    double until = ev_now(fx->loop) + DEADLINE_S;
    call_t call;
    do {
        assert_true(ev_now(fx->loop) < until);
        s_cmd(fx, &call, 3, argv, argvlen);
        s_wait_call(fx, &call);
        assert_string_equal(call.err, "");
        assert_int_equal(call.type, REDIS_REPLY_INTEGER);
    } while (call.number != want);
}

static bool
s_got_message(void *arg)
{
    fx_t *fx = arg;
    return fx->messages > 0;
}

//  --------------------------------------------------------------------------
//  Fixture

static int
s_setup(void **state)
{
    fx_t *fx = proto_xcalloc(1, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
    fx->port = t_redis_free_port();
    fx->pid = t_redis_start(fx->port, NULL);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    chat_redis_destroy(&fx->redis);
    t_redis_stop(&fx->pid, SIGTERM);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

//  --------------------------------------------------------------------------
//  URL

static void
s_url_good(const char *text, const char *host, int port, const char *password, int db)
{
    chat_redis_url_t url;
    char err[160] = "";
    if (chat_redis_url_parse(text, &url, err, sizeof err) != 0) {
        fail_msg("'%s' refused: %s", text, err);
    }
    assert_string_equal(url.host, host);
    assert_int_equal(url.port, port);
    assert_string_equal(url.password, password);
    assert_int_equal(url.db, db);
}

//  Refused with an error holding what, and never the password.
static void
s_url_bad(const char *text, const char *what, const char *secret)
{
    chat_redis_url_t url;
    char err[160] = "";
    if (chat_redis_url_parse(text, &url, err, sizeof err) != -1) {
        fail_msg("'%s' accepted", text);
    }
    if (!strstr(err, what)) {
        fail_msg("'%s': error '%s' does not say '%s'", text, err, what);
    }
    if (secret && strstr(err, secret)) {
        fail_msg("'%s': error '%s' shows the password", text, err);
    }
}

static void
test_url_good(void **state)
{
    (void) state;
    s_url_good("redis://cache", "cache", 6379, "", 0);
    s_url_good("redis://127.0.0.1:6380", "127.0.0.1", 6380, "", 0);
    s_url_good("redis://:hunter2@cache:7000/15", "cache", 7000, "hunter2", 15);
    s_url_good("redis://[::1]:6379", "::1", 6379, "", 0);
    s_url_good("redis://[::1]/3", "::1", 6379, "", 3);
    s_url_good("redis://:p%40ss@cache:1/0", "cache", 1, "p@ss", 0);
    char long_url[400] = "redis://:";
    memset(long_url + 9, 'x', 256);
    memcpy(long_url + 9 + 256, "@cache", 7);
    chat_redis_url_t url;
    char err[160];
    assert_int_equal(chat_redis_url_parse(long_url, &url, err, sizeof err), 0);
    assert_int_equal(strlen(url.password), 256);
}

static void
test_url_bad(void **state)
{
    (void) state;
    s_url_bad("", "expected redis://", NULL);
    s_url_bad("http://cache", "expected redis://", NULL);
    s_url_bad("rediss://cache", "TLS", NULL);
    s_url_bad("redis://", "no host", NULL);
    s_url_bad("redis://:hunter2@cache:notaport", "bad port", "hunter2");
    s_url_bad("redis://cache:0", "bad port", NULL);
    s_url_bad("redis://cache:65536", "bad port", NULL);
    s_url_bad("redis://cache/16", "database number 16 out of range 0-15", NULL);
    s_url_bad("redis://:hunter2@cache/99", "out of range", "hunter2");
    s_url_bad("redis://cache/x", "expected redis://", NULL);
    s_url_bad("redis://cache?db=1", "query", NULL);
    s_url_bad("redis://[::1", "IPv6", NULL);
    s_url_bad("redis://:@cache", "password", NULL);
    char long_url[400] = "redis://:";
    memset(long_url + 9, 'x', 257);
    memcpy(long_url + 9 + 257, "@cache", 7);
    s_url_bad(long_url, "password longer than 256 bytes", "xxxxxxxx");
    char long_host[400] = "redis://";
    memset(long_host + 8, 'h', 300);
    s_url_bad(long_host, "host", NULL);
    // and a client is not made from a bad one
    fx_t fx = {.loop = ev_default_loop(0)};
    assert_null(s_client(&fx, "redis://cache/16", 1.0));
}

//  --------------------------------------------------------------------------
//  Commands

static void
test_round_trip(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 1.0);
    assert_non_null(fx->redis);
    s_wait_up(fx);
    assert_int_equal(fx->ups, 1);
    call_t call;
    s_run(fx, &call, 3, (const char *[]){"SET", "chat:k", "v1"});
    assert_int_equal(call.type, REDIS_REPLY_STATUS);
    assert_string_equal(call.str, "OK");
    s_run(fx, &call, 2, (const char *[]){"GET", "chat:k"});
    assert_int_equal(call.type, REDIS_REPLY_STRING);
    assert_string_equal(call.str, "v1");
    // an error reply is Redis's answer, not a transport error
    s_run(fx, &call, 2, (const char *[]){"INCR", "chat:k"});
    assert_int_equal(call.type, REDIS_REPLY_ERROR);
    assert_string_equal(call.err, "");
    chat_redis_stats_t stats;
    chat_redis_stats(fx->redis, &stats);
    assert_int_equal(stats.commands, 3);
    assert_int_equal(stats.errors, 1);
    assert_int_equal(stats.reconnects, 0);
}

static void
test_binary_safe(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 1.0);
    s_wait_up(fx);
    char key[] = {'k', 0, '\r', '\n', 'y'};
    char value[1024];
    for (size_t i = 0; i < sizeof value; i++) {
        value[i] = (char) (i * 7);
    }
    call_t call;
    s_cmd(fx, &call, 3, (const char *[]){"SET", key, value},
          (const size_t[]){3, sizeof key, sizeof value});
    s_wait_call(fx, &call);
    assert_string_equal(call.str, "OK");
    s_cmd(fx, &call, 2, (const char *[]){"GET", key}, (const size_t[]){3, sizeof key});
    s_wait_call(fx, &call);
    assert_int_equal(call.len, sizeof value);
    assert_memory_equal(call.str, value, sizeof value);
}

static void
test_timeout(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 0.3);
    s_wait_up(fx);
    call_t slow, ping;
    double sent = ev_now(fx->loop);
    s_cmd(fx, &slow, 3, (const char *[]){"DEBUG", "SLEEP", "0.5"}, NULL);
    s_wait_call(fx, &slow);
    assert_string_equal(slow.err, CHAT_REDIS_ERR_TIMEOUT);
    print_message("timeout after %.0f ms (command_timeout 300 ms)\n", (slow.at - sent) * 1e3);
    assert_true(slow.at - sent >= 0.29 && slow.at - sent < 0.45);
    // no reply in time: the connection counts as gone (a cut network keeps
    // it "up" for minutes, and what is queued would run when the path came
    // back, after the caller was told it failed), so it is dropped and made
    // again with the backoff
    assert_true(t_loop_until(fx->loop, s_is_down, fx, DEADLINE_S));
    assert_false(chat_redis_up(fx->redis));
    assert_int_equal(fx->downs, 1);
    s_wait_up(fx);
    assert_int_equal(fx->ups, 2);
    s_run(fx, &ping, 1, (const char *[]){"PING"});
    assert_string_equal(ping.err, "");
    assert_string_equal(ping.str, "PONG");
    assert_int_equal(slow.calls, 1); // told once, the late reply never reaches it
    chat_redis_stats_t stats;
    chat_redis_stats(fx->redis, &stats);
    assert_int_equal(stats.timeouts, 1);
    assert_int_equal(stats.errors, 1);
    assert_true(chat_redis_up(fx->redis));
}

static void
test_destroy_answers(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 2.0);
    s_wait_up(fx);
    call_t blocked, refused;
    s_cmd(fx, &blocked, 3, (const char *[]){"BLPOP", "chat:nothing", "0"}, NULL);
    t_loop_pass(fx->loop, 0.05); // it is sent
    chat_redis_destroy(&fx->redis);
    assert_null(fx->redis);
    assert_int_equal(blocked.calls, 1);
    assert_string_equal(blocked.err, CHAT_REDIS_ERR_CLOSED);
    // a refusal still due is answered by destroy too
    fx->redis = s_client(fx, "redis://127.0.0.1:1", 1.0);
    s_cmd(fx, &refused, 1, (const char *[]){"PING"}, NULL);
    chat_redis_destroy(&fx->redis);
    assert_int_equal(refused.calls, 1);
    assert_string_equal(refused.err, CHAT_REDIS_ERR_UNAVAILABLE);
    t_loop_pass(fx->loop, 0.05); // and nothing after
    assert_int_equal(blocked.calls + refused.calls, 2);
}

//  --------------------------------------------------------------------------
//  Pub/sub

static void
test_pubsub(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 1.0);
    // held before the connect: up means subscribed
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:room:lobby"), 0);
    s_wait_up(fx);
    const char payload[] = {'h', 'i', 0, 't', 'h', 'e', 'r', 'e'};
    call_t call;
    s_cmd(fx, &call, 3, (const char *[]){"PUBLISH", "chat:room:lobby", payload},
          (const size_t[]){7, 15, sizeof payload});
    s_wait_call(fx, &call);
    assert_int_equal(call.number, 1);
    assert_true(t_loop_until(fx->loop, s_got_message, fx, DEADLINE_S));
    assert_string_equal(fx->channel, "chat:room:lobby");
    assert_int_equal(fx->payload_len, sizeof payload);
    assert_memory_equal(fx->payload, payload, sizeof payload);
    chat_redis_stats_t stats;
    chat_redis_stats(fx->redis, &stats);
    assert_int_equal(stats.messages, 1);
    assert_int_equal(chat_redis_subscribe(fx->redis, ""), -1);
}

static void
test_subscribe_counted(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 1.0);
    s_wait_up(fx);
    // two sessions of bob, while up
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:bob"), 0);
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:bob"), 0);
    assert_int_equal(chat_redis_holds(fx->redis, "chat:bob"), 2);
    s_publish_until(fx, "chat:bob", "one", 3, 1);
    assert_true(t_loop_until(fx->loop, s_got_message, fx, DEADLINE_S));
    // one session goes: still subscribed
    assert_int_equal(chat_redis_unsubscribe(fx->redis, "chat:bob"), 0);
    assert_int_equal(chat_redis_holds(fx->redis, "chat:bob"), 1);
    fx->messages = 0;
    s_publish_until(fx, "chat:bob", "two", 3, 1);
    assert_true(t_loop_until(fx->loop, s_got_message, fx, DEADLINE_S));
    assert_memory_equal(fx->payload, "two", 3);
    // the last one goes: unsubscribed, nothing delivered after
    assert_int_equal(chat_redis_unsubscribe(fx->redis, "chat:bob"), 0);
    assert_int_equal(chat_redis_holds(fx->redis, "chat:bob"), 0);
    s_publish_until(fx, "chat:bob", "three", 5, 0);
    fx->messages = 0;
    call_t ping;
    s_run(fx, &ping, 1, (const char *[]){"PING"});
    assert_int_equal(fx->messages, 0);
    assert_int_equal(chat_redis_unsubscribe(fx->redis, "chat:bob"), -1);
    // and again: a new first hold subscribes again
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:bob"), 0);
    s_publish_until(fx, "chat:bob", "four", 4, 1);
    assert_true(t_loop_until(fx->loop, s_got_message, fx, DEADLINE_S));
    assert_memory_equal(fx->payload, "four", 4);
}

//  on_subscribed: once the server confirmed a SUBSCRIBE, a message published
//  is delivered (chat_hub reads a moved session's inbox only then: a read
//  before the subscription could miss a message published in between).
static void
test_subscribed_callback(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 1.0);
    s_wait_up(fx);
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:carol"), 0);
    assert_false(chat_redis_subscribed(fx->redis, "chat:carol")); // sent, not confirmed
    assert_true(t_loop_until(fx->loop, s_got_subscribed, fx, DEADLINE_S));
    assert_int_equal(fx->subscribed, 1);
    assert_string_equal(fx->sub_channel, "chat:carol");
    assert_true(chat_redis_subscribed(fx->redis, "chat:carol"));
    call_t call; // one PUBLISH, no retry: the subscription is in effect
    s_run(fx, &call, 3, (const char *[]){"PUBLISH", "chat:carol", "hi"});
    assert_int_equal(call.number, 1);
    assert_true(t_loop_until(fx->loop, s_got_message, fx, DEADLINE_S));
    // a second hold needs no SUBSCRIBE: no second callback, still subscribed
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:carol"), 0);
    assert_true(chat_redis_subscribed(fx->redis, "chat:carol"));
    s_run(fx, &call, 1, (const char *[]){"PING"});
    assert_int_equal(fx->subscribed, 1);
    assert_false(chat_redis_subscribed(fx->redis, "chat:nobody"));
    assert_int_equal(chat_redis_unsubscribe(fx->redis, "chat:carol"), 0);
    assert_int_equal(chat_redis_unsubscribe(fx->redis, "chat:carol"), 0);
    assert_false(chat_redis_subscribed(fx->redis, "chat:carol"));
}

//  --------------------------------------------------------------------------
//  AUTH

static void
test_auth(void **state)
{
    fx_t *fx = *state;
    int port = t_redis_free_port();
    pid_t pid = t_redis_start(port, PASSWORD);
    char url[128];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/3", PASSWORD, port);
    fx->redis = s_client(fx, url, 1.0);
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:dave"), 0);
    s_wait_up(fx);
    call_t call;
    s_run(fx, &call, 2, (const char *[]){"CLIENT", "INFO"});
    assert_non_null(strstr(call.str, " db=3 ")); // SELECT 3 ran
    s_run(fx, &call, 3, (const char *[]){"PUBLISH", "chat:dave", "x"});
    assert_int_equal(call.number, 1); // the subscription authenticated too
    chat_redis_destroy(&fx->redis);
    t_redis_stop(&pid, SIGTERM);
}

static bool
s_tried_twice(void *arg)
{
    fx_t *fx = arg;
    chat_redis_stats_t stats;
    chat_redis_stats(fx->redis, &stats);
    return stats.reconnects >= 2;
}

static void
s_auth_refused(fx_t *fx, const char *url, const char *want)
{
    fx->redis = s_client(fx, url, 1.0);
    assert_non_null(fx->redis);
    assert_true(t_loop_until(fx->loop, s_tried_twice, fx, DEADLINE_S));
    assert_false(chat_redis_up(fx->redis));
    assert_int_equal(fx->ups + fx->downs, 0);
    const char *why = chat_redis_last_error(fx->redis);
    print_message("refused: %s\n", why);
    assert_non_null(strstr(why, want));
    assert_null(strstr(why, "wrong-one"));
    call_t call;
    s_cmd(fx, &call, 1, (const char *[]){"PING"}, NULL);
    s_wait_call(fx, &call);
    assert_string_equal(call.err, CHAT_REDIS_ERR_UNAVAILABLE);
    chat_redis_destroy(&fx->redis);
}

static void
test_auth_wrong(void **state)
{
    fx_t *fx = *state;
    int port = t_redis_free_port();
    pid_t pid = t_redis_start(port, PASSWORD);
    char url[128];
    snprintf(url, sizeof url, "redis://:wrong-one@127.0.0.1:%d", port);
    s_auth_refused(fx, url, "WRONGPASS");
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    s_auth_refused(fx, url, "NOAUTH");
    t_redis_stop(&pid, SIGTERM);
}

//  --------------------------------------------------------------------------
//  Loss and reconnect

static bool
s_enough_tries(void *arg)
{
    fx_t *fx = arg;
    s_note_tries(fx);
    return fx->ntries >= 4;
}

static void
test_reconnect(void **state)
{
    fx_t *fx = *state;
    char url[128];
    s_url(fx, url, sizeof url, "", "");
    fx->redis = s_client(fx, url, 2.0);
    assert_int_equal(chat_redis_subscribe(fx->redis, "chat:carol"), 0);
    s_wait_up(fx);
    call_t blocked, refused, call;
    s_cmd(fx, &blocked, 3, (const char *[]){"BLPOP", "chat:nothing", "0"}, NULL);
    t_loop_pass(fx->loop, 0.05); // it is sent, and waits in the server
    double killed = ev_time();
    t_redis_stop(&fx->pid, SIGKILL);
    // the loss is seen, the pending command fails at once
    assert_true(t_loop_until(fx->loop, s_is_down, fx, DEADLINE_S));
    s_wait_call(fx, &blocked);
    assert_string_equal(blocked.err, CHAT_REDIS_ERR_LOST);
    print_message("loss seen %.1f ms after SIGKILL, pending command failed %.1f ms after\n",
                  (fx->down_at - killed) * 1e3, (blocked.at - killed) * 1e3);
    assert_true(blocked.at - killed < 0.2);
    assert_false(chat_redis_up(fx->redis));
    // a command while down: "unavailable", at once
    double asked = ev_time();
    s_cmd(fx, &refused, 1, (const char *[]){"PING"}, NULL);
    assert_int_equal(refused.calls, 0); // never from inside chat_redis_command
    s_wait_call(fx, &refused);
    assert_string_equal(refused.err, CHAT_REDIS_ERR_UNAVAILABLE);
    assert_true(refused.at - asked < 0.05);
    // attempts at 50, 100, 200, 400 ms intervals, then the server is back
    assert_true(t_loop_until(fx->loop, s_enough_tries, fx, DEADLINE_S));
    fx->pid = t_redis_start(fx->port, NULL);
    double restarted = ev_time();
    s_wait_up(fx);
    assert_int_equal(fx->ups, 2);
    assert_int_equal(fx->downs, 1);
    print_message("reconnected %.0f ms after the restart (next step: 800 ms)\n",
                  (fx->up_at - restarted) * 1e3);
    assert_true(fx->up_at - restarted < 0.8 * 1.25 + 0.1);
    double prev = fx->down_at, step = 1;
    for (size_t i = 0; i < fx->ntries; i++) {
        double gap = fx->tries[i] - prev, want = step * SCALE;
        print_message("attempt %zu: %.0f ms after the previous (schedule %.0f ms)\n", i + 1,
                      gap * 1e3, want * 1e3);
        assert_true(gap >= want - 0.005 && gap < want + 0.1);
        prev = fx->tries[i];
        step *= 2;
    }
    // the subscription is back: the first PUBLISH after up reaches it
    fx->messages = 0;
    s_run(fx, &call, 3, (const char *[]){"PUBLISH", "chat:carol", "back"});
    assert_int_equal(call.number, 1);
    assert_true(t_loop_until(fx->loop, s_got_message, fx, DEADLINE_S));
    assert_string_equal(fx->channel, "chat:carol");
    assert_int_equal(blocked.calls + refused.calls, 2);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_binary_safe, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_answers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pubsub, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_counted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscribed_callback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_auth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("chat_redis", tests, NULL, NULL);
}
