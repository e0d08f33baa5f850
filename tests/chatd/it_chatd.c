/*  it_chatd - integration test of bin/chatd: the real binary, a real
    redis-server, driven over the bus.

    The test plays a gateway: an XPUB bound as gateway.<our pid>.pub in the
    private BUS_DIR (chatd finds it and subscribes to its own address there:
    chat.open/close/in@cd-it;) and a SUB on chatd's XPUB subscribed to
    chat.out@gw-it;. Sessions are opened with chat.open, client frames sent
    as chat.in, and what a client would get is read from chat.out. Every
    wait has a deadline.
*/
#include <signal.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "it.h"
#include "it_actor.h"
#include "proto.h"
#include "proto_bus.h"
#include "t_redis.h"

#define T_WAIT_MS 5000 // no wait here may take longer
#define T_CHATD   "cd-it"
#define T_GW      "gw-it"
#define T_REGION  "eu-1"
#define T_ADDR    T_CHATD "/" T_REGION // chatd's address: instance/region

//  One chat.out as the client's gateway gets it.
typedef struct {
    char session[80];
    char text[4096];
    char cursor[64];
    char join[80];
    char leave[80];
    char status[32];
} t_out_t;

#define T_BACKLOG 64 // chat.out for other sessions, kept until asked for

typedef struct {
    it_env_t env;
    t_out_t backlog[T_BACKLOG]; // received, not yet asked for (in order)
    int nbacklog;               // how many
    int redis_port;
    pid_t redis;
    pid_t chatd;
    void *gw_pub; // the fake gateway's XPUB (chat.* to chatd)
    void *gw_req; // ... and its ROUTER (discovery needs both files)
    void *out;    // SUB on chatd's XPUB: chat.out@gw-it;
    void *dealer; // to chatd's ROUTER (ping)
} t_fix_t;

static void
s_publish(t_fix_t *f, proto_msg_t *msg)
{
    char topic[PROTO_BUS_ADDRESS_MAX];
    size_t tlen = proto_bus_address(topic, sizeof topic, msg->type, T_ADDR);
    proto_buf_t buf = {0};
    msg->src = "gateway/" T_GW;
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    assert_int_equal(proto_encode(msg, &buf), 0);
    assert_true(zmq_send(f->gw_pub, topic, tlen, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(f->gw_pub, buf.data, buf.size, 0) >= 0);
    proto_buf_free(&buf);
}

static void
s_open(t_fix_t *f, const char *session, const char *user, const char *tenant)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CHAT_OPEN);
    msg.chat_open.session = session;
    msg.chat_open.gateway = T_GW;
    msg.chat_open.user = user;
    msg.chat_open.tenant = tenant;
    s_publish(f, &msg);
}

static void
s_close(t_fix_t *f, const char *session)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CHAT_CLOSE);
    msg.chat_close.session = session;
    s_publish(f, &msg);
}

static void
s_in(t_fix_t *f, const char *session, const char *text)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CHAT_IN);
    msg.chat_in.session = session;
    msg.chat_in.text = (proto_bin_t){(const uint8_t *) text, strlen(text)};
    s_publish(f, &msg);
}

//  Take the oldest kept chat.out for session, if any, into got.
static bool
s_from_backlog(t_fix_t *f, const char *session, t_out_t *got)
{
    for (int i = 0; i < f->nbacklog; i++)
        if (strcmp(f->backlog[i].session, session) == 0) {
            *got = f->backlog[i];
            memmove(&f->backlog[i], &f->backlog[i + 1],
                    (size_t) (f->nbacklog - i - 1) * sizeof f->backlog[0]);
            f->nbacklog--;
            return true;
        }
    return false;
}

//  The next chat.out for session whose frame contains want (NULL: any);
//  the session's others before it are passed over, other sessions' are
//  kept for later. Fails at the deadline.
static void
s_expect(t_fix_t *f, const char *session, const char *want, t_out_t *got)
{
    uint64_t until = it_now_ms() + T_WAIT_MS;
    while (it_now_ms() < until) {
        if (s_from_backlog(f, session, got)) {
            if (want == NULL || strstr(got->text, want))
                return;
            continue;
        }
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_NONE);
        if (it_recv(f->out, &msg, NULL, 0, 100) != 0 || msg.type != PROTO_CHAT_OUT) {
            proto_msg_clear(&msg);
            continue;
        }
        const proto_chat_out_t *o = &msg.chat_out;
        t_out_t *t = f->nbacklog < T_BACKLOG ? &f->backlog[f->nbacklog++] : got;
        memset(t, 0, sizeof *t);
        snprintf(t->session, sizeof t->session, "%s", o->session);
        snprintf(t->text, sizeof t->text, "%.*s", (int) o->text.size, (const char *) o->text.data);
        snprintf(t->cursor, sizeof t->cursor, "%s", o->cursor ? o->cursor : "");
        snprintf(t->join, sizeof t->join, "%s", o->join ? o->join : "");
        snprintf(t->leave, sizeof t->leave, "%s", o->leave ? o->leave : "");
        snprintf(t->status, sizeof t->status, "%s", o->status ? o->status : "");
        proto_msg_clear(&msg);
    }
    it_dump(&f->env, "chatd");
    fail_msg("no chat.out for %s with %s within %d ms", session, want ? want : "anything",
             T_WAIT_MS);
}

static uint64_t
s_counter(t_fix_t *f, const char *name)
{
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(f->dealer, &pong, T_WAIT_MS), 0);
    uint64_t v = it_counter(&pong, name);
    proto_msg_clear(&pong);
    return v;
}

static void
s_wait_counter(t_fix_t *f, const char *name, uint64_t want)
{
    uint64_t until = it_now_ms() + T_WAIT_MS;
    while (s_counter(f, name) != want) {
        if (it_now_ms() > until)
            fail_msg("%s is not %llu within %d ms", name, (unsigned long long) want, T_WAIT_MS);
        it_pause(20);
    }
}

static void *
s_bind(t_fix_t *f, int type, const char *kind, const char *ext)
{
    void *sock = zmq_socket(f->env.ctx, type);
    int zero = 0, one = 1;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (type == ZMQ_XPUB)
        zmq_setsockopt(sock, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    char ep[256];
    snprintf(ep, sizeof ep, "ipc://%s/%s.%d.%s", f->env.bus_dir, kind, (int) getpid(), ext);
    assert_int_equal(zmq_bind(sock, ep), 0);
    return sock;
}

//  Until chatd has subscribed to its chat.in address on our XPUB.
static void
s_wait_reachable(t_fix_t *f)
{
    char want[PROTO_BUS_ADDRESS_MAX + 1];
    want[0] = 1;
    size_t n = proto_bus_address(want + 1, sizeof want - 1, PROTO_CHAT_IN, T_ADDR);
    uint64_t until = it_now_ms() + T_WAIT_MS;
    while (it_now_ms() < until) {
        zmq_pollitem_t item = {.socket = f->gw_pub, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        char sub[256];
        int len = zmq_recv(f->gw_pub, sub, sizeof sub, 0);
        if (len == (int) n + 1 && memcmp(sub, want, n + 1) == 0)
            return;
    }
    fail_msg("chatd did not subscribe to %s", want + 1);
}

static pid_t
s_start_chatd(t_fix_t *f)
{
    char url[64];
    snprintf(url, sizeof url, "REDIS_URL=redis://127.0.0.1:%d", f->redis_port);
    const char *env[] = {url, "INSTANCE_ID=" T_CHATD, "REGION=" T_REGION, NULL};
    pid_t pid = it_spawn(&f->env, "chatd", "chatd", env, NULL);
    assert_true(pid > 0);
    assert_int_equal(it_wait_bound(&f->env, "chatd", pid, T_WAIT_MS), 0);
    return pid;
}

static int
s_setup(void **state)
{
    t_fix_t *f = calloc(1, sizeof *f);
    assert_int_equal(it_env_init(&f->env), 0);
    mkdir(f->env.bus_dir, 0755);
    f->redis_port = t_redis_free_port();
    f->redis = t_redis_start(f->redis_port, NULL);
    f->gw_req = s_bind(f, ZMQ_ROUTER, "gateway", "req");
    f->gw_pub = s_bind(f, ZMQ_XPUB, "gateway", "pub");
    f->chatd = s_start_chatd(f);
    char ep[256], topic[PROTO_BUS_ADDRESS_MAX];
    it_pub_endpoint(&f->env, "chatd", f->chatd, ep, sizeof ep);
    proto_bus_address(topic, sizeof topic, PROTO_CHAT_OUT, T_GW);
    f->out = it_sub(&f->env, ep, topic);
    it_req_endpoint(&f->env, "chatd", f->chatd, ep, sizeof ep);
    f->dealer = it_dealer(&f->env, ep);
    s_wait_reachable(f);
    s_wait_counter(f, "redis.up", 1);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    t_fix_t *f = *state;
    if (f->chatd > 0) {
        assert_int_equal(it_stop(&f->env, f->chatd, T_WAIT_MS), 0);
        assert_true(it_clean_stderr(&f->env, "chatd"));
    }
    zmq_close(f->out);
    zmq_close(f->dealer);
    zmq_close(f->gw_pub);
    zmq_close(f->gw_req);
    t_redis_stop(&f->redis, SIGTERM);
    it_env_fini(&f->env);
    free(f);
    return 0;
}

//  alice -> bob: bob gets the message, alice the ack; a resend of the same
//  id is acked but not delivered twice.
static void
test_direct_message(void **state)
{
    t_fix_t *f = *state;
    t_out_t o;
    s_open(f, "gw-it/a", "alice", "");
    s_open(f, "gw-it/b", "bob", "");
    s_wait_counter(f, "chat.sessions", 2);
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"hi bob\",\"id\":\"c1\"}");
    s_expect(f, "gw-it/a", "\"type\":\"ack\"", &o);
    assert_non_null(strstr(o.text, "\"id\":\"c1\""));
    s_expect(f, "gw-it/b", "message:received", &o);
    assert_non_null(strstr(o.text, "\"from\":\"alice\""));
    assert_non_null(strstr(o.text, "\"text\":\"hi bob\""));
    assert_non_null(strstr(o.text, "\"ts\":"));
    assert_true(o.cursor[0] != '\0'); // the inbox entry it delivers
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"hi bob\",\"id\":\"c1\"}");
    s_expect(f, "gw-it/a", "\"type\":\"ack\"", &o);
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"second\",\"id\":\"c2\"}");
    s_expect(f, "gw-it/b", "message:received", &o);
    assert_non_null(strstr(o.text, "\"text\":\"second\"")); // not the resent c1
}

//  Messages to a user who is offline wait in the inbox and come, in order,
//  when the user connects; then live ones follow.
static void
test_offline_inbox(void **state)
{
    t_fix_t *f = *state;
    t_out_t o;
    s_open(f, "gw-it/a", "alice", "");
    s_wait_counter(f, "chat.sessions", 1);
    for (int i = 1; i <= 3; i++) {
        char frame[128];
        snprintf(frame, sizeof frame,
                 "{\"type\":\"message:send\",\"to\":\"carol\",\"text\":\"m%d\",\"id\":\"o%d\"}", i,
                 i);
        s_in(f, "gw-it/a", frame);
        s_expect(f, "gw-it/a", "\"type\":\"ack\"", &o);
    }
    s_open(f, "gw-it/c", "carol", "");
    for (int i = 1; i <= 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"text\":\"m%d\"", i);
        s_expect(f, "gw-it/c", "message:received", &o);
        assert_non_null(strstr(o.text, want));
    }
    s_in(f, "gw-it/a", "{\"type\":\"message:send\",\"to\":\"carol\",\"text\":\"live\"}");
    s_expect(f, "gw-it/c", "message:received", &o);
    assert_non_null(strstr(o.text, "\"text\":\"live\""));
    //  carol leaves and comes back: nothing is delivered twice
    s_close(f, "gw-it/c");
    s_wait_counter(f, "chat.sessions", 1);
    s_open(f, "gw-it/c2", "carol", "");
    s_in(f, "gw-it/a", "{\"type\":\"message:send\",\"to\":\"carol\",\"text\":\"after\"}");
    s_expect(f, "gw-it/c2", "message:received", &o);
    assert_non_null(strstr(o.text, "\"text\":\"after\""));
}

//  Rooms: join (the gateway is told), a room message and typing reach the
//  other member, not the sender; a room not joined is refused.
static void
test_rooms_and_typing(void **state)
{
    t_fix_t *f = *state;
    t_out_t o;
    s_open(f, "gw-it/a", "alice", "acme");
    s_open(f, "gw-it/b", "bob", "acme");
    s_wait_counter(f, "chat.sessions", 2);
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"room\":\"lobby\",\"text\":\"x\",\"id\":\"r0\"}");
    s_expect(f, "gw-it/a", "\"type\":\"error\"", &o);
    assert_non_null(strstr(o.text, "'room'"));
    assert_non_null(strstr(o.text, "\"id\":\"r0\""));
    s_in(f, "gw-it/a", "{\"type\":\"join:room\",\"room\":\"lobby\"}");
    s_expect(f, "gw-it/a", NULL, &o);
    assert_string_equal(o.join, "lobby");
    s_in(f, "gw-it/b", "{\"type\":\"join:room\",\"room\":\"lobby\"}");
    s_expect(f, "gw-it/b", NULL, &o);
    assert_string_equal(o.join, "lobby");
    s_expect(f, "gw-it/a", "presence:updated", &o); // bob came into the room
    assert_non_null(strstr(o.text, "\"userId\":\"bob\""));
    s_in(f, "gw-it/a", "{\"type\":\"typing:start\",\"room\":\"lobby\"}");
    s_expect(f, "gw-it/b", "\"type\":\"typing\"", &o);
    assert_non_null(strstr(o.text, "\"from\":\"alice\""));
    assert_non_null(strstr(o.text, "\"state\":\"start\""));
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"room\":\"lobby\",\"text\":\"hello room\",\"id\":\"r1\"}");
    s_expect(f, "gw-it/a", "\"type\":\"ack\"", &o);
    s_expect(f, "gw-it/b", "message:received", &o);
    assert_non_null(strstr(o.text, "\"room\":\"lobby\""));
    assert_non_null(strstr(o.text, "\"text\":\"hello room\""));
    s_in(f, "gw-it/b", "{\"type\":\"presence:update\",\"status\":\"away\"}");
    s_expect(f, "gw-it/b", NULL, &o);
    assert_string_equal(o.status, "away");
    s_expect(f, "gw-it/a", "\"status\":\"away\"", &o);
    s_in(f, "gw-it/b", "{\"type\":\"leave:room\",\"room\":\"lobby\"}");
    s_expect(f, "gw-it/b", NULL, &o);
    assert_string_equal(o.leave, "lobby");
}

//  Bad frames get error frames that name the problem; the session stays.
static void
test_bad_frames(void **state)
{
    t_fix_t *f = *state;
    t_out_t o;
    s_open(f, "gw-it/a", "alice", "");
    s_wait_counter(f, "chat.sessions", 1);
    s_in(f, "gw-it/a", "not json");
    s_expect(f, "gw-it/a", "\"code\":\"bad_json\"", &o);
    s_in(f, "gw-it/a", "{\"type\":\"shout\"}");
    s_expect(f, "gw-it/a", "\"code\":\"bad_type\"", &o);
    s_in(f, "gw-it/a", "{\"type\":\"message:send\",\"to\":\"b b\",\"text\":\"x\"}");
    s_expect(f, "gw-it/a", "\"code\":\"bad_frame\"", &o);
    assert_non_null(strstr(o.text, "'to'"));
    s_in(f, "gw-it/a", "{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"still here\"}");
    s_expect(f, "gw-it/a", "\"type\":\"ack\"", &o);
}

//  Redis goes away: sends get "unavailable" (with the client's id), the
//  session stays; Redis comes back: sending works again and what was
//  stored before is still delivered.
static void
test_redis_outage(void **state)
{
    t_fix_t *f = *state;
    t_out_t o;
    s_open(f, "gw-it/a", "alice", "");
    s_open(f, "gw-it/b", "bob", "");
    s_wait_counter(f, "chat.sessions", 2);
    t_redis_stop(&f->redis, SIGKILL);
    s_wait_counter(f, "redis.up", 0);
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"lost?\",\"id\":\"u1\"}");
    s_expect(f, "gw-it/a", "\"code\":\"unavailable\"", &o);
    assert_non_null(strstr(o.text, "\"id\":\"u1\""));
    f->redis = t_redis_start(f->redis_port, NULL);
    uint64_t until = it_now_ms() + 8000; // the first backoff steps are 1 and 2 s
    while (s_counter(f, "redis.up") != 1) {
        assert_true(it_now_ms() < until);
        it_pause(50);
    }
    s_in(f, "gw-it/a",
         "{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"back\",\"id\":\"u2\"}");
    s_expect(f, "gw-it/a", "\"type\":\"ack\"", &o);
    s_expect(f, "gw-it/b", "\"text\":\"back\"", &o); // its subscription came back with Redis
    assert_int_equal(s_counter(f, "chat.sessions"), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("chatd"),
        cmocka_unit_test_setup_teardown(test_direct_message, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_offline_inbox, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rooms_and_typing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_frames, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_redis_outage, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("it_chatd", tests, NULL, NULL);
}
