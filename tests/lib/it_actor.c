/*  it_actor - the integration checks every actor binary must pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "it.h"
#include "it_actor.h"

void
it_actor_test_help(void **state)
{
    const char *kind = *state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    const char *args[] = {"--help", NULL};
    assert_int_equal(it_run(&env, kind, "help", NULL, args, 20000), 0);
    char *out = it_read_file(&env, "help", "out");
    assert_non_null(out);
    // every common setting is listed with its default
    assert_non_null(strstr(out, "REGION"));
    assert_non_null(strstr(out, "BUS_DIR"));
    assert_non_null(strstr(out, "run/bus"));
    assert_non_null(strstr(out, "LOG_LEVEL"));
    assert_non_null(strstr(out, "--instance-id"));
    free(out);
    assert_true(it_clean_stderr(&env, "help"));
    it_env_fini(&env);
}

//  Start with one bad setting: exit 2 and one line naming it.
static void
s_expect_bad(
    it_env_t *env, const char *kind, const char *setting, const char *flag, const char *needle)
{
    const char *envs[] = {setting, NULL};
    const char *args[] = {flag, NULL};
    int rc = it_run(env, kind, "bad", setting ? envs : NULL, flag ? args : NULL, 20000);
    char *err = it_read_file(env, "bad", "err");
    assert_non_null(err);
    if (rc != 2 || strstr(err, needle) == NULL) {
        fprintf(stderr, "%s with %s %s: exit %d, stderr: %s\n", kind, setting ? setting : "",
                flag ? flag : "", rc, err);
        fail();
    }
    // exactly one line
    char *nl = strchr(err, '\n');
    assert_non_null(nl);
    assert_true(nl[1] == '\0');
    free(err);
}

void
it_actor_test_bad_settings(void **state)
{
    const char *kind = *state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    s_expect_bad(&env, kind, "LOG_LEVEL=loud", NULL, "LOG_LEVEL: 'loud'");
    s_expect_bad(&env, kind, "PROC_STATS_INTERVAL=-1s", NULL, "PROC_STATS_INTERVAL: '-1s'");
    s_expect_bad(&env, kind, "PROC_STATS_INTERVAL=5", NULL, "PROC_STATS_INTERVAL: '5'");
    s_expect_bad(&env, kind, "BUS_PEERS_ROUTER=udp://x", NULL, "BUS_PEERS_ROUTER: 'udp://x'");
    s_expect_bad(&env, kind, "INSTANCE_ID=has space", NULL, "INSTANCE_ID: 'has space'");
    s_expect_bad(&env, kind, "BUS_BIND=tcp://0.0.0.0:7100", NULL, "BUS_INSECURE=1");
    s_expect_bad(&env, kind, NULL, "--no-such-flag", "unknown option --no-such-flag");
    it_env_fini(&env);
}

uint64_t
it_wait_counter(void *dealer, const char *name, uint64_t want, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms, value = 0;
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    while (it_now_ms() < deadline) {
        if (it_ping(dealer, &pong, 2000) == 0) {
            uint64_t v = it_counter(&pong, name);
            value = v == UINT64_MAX ? 0 : v; // a counter not reported is 0
            if (value >= want)
                break;
        }
        it_pause(20);
    }
    proto_msg_clear(&pong);
    return value;
}

//  The exact-equality form, for a counter that must come back down.
static bool
s_wait_counter_eq(void *dealer, const char *name, uint64_t want, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    bool ok = false;
    while (!ok && it_now_ms() < deadline) {
        if (it_ping(dealer, &pong, 2000) == 0)
            ok = it_counter(&pong, name) == want;
        if (!ok)
            it_pause(20);
    }
    proto_msg_clear(&pong);
    return ok;
}

void
it_actor_test_lifecycle(void **state)
{
    const char *kind = *state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    // listeners (the gateway's) on free ports: the defaults may be taken
    char http[64], admin[64];
    it_gateway_ports(http, admin);
    const char *envs[] = {"INSTANCE_ID=it-one", "REGION=eu-1", http, admin, NULL};
    pid_t pid = it_spawn(&env, kind, kind, envs, NULL);
    assert_true(pid > 0);
    if (it_wait_bound(&env, kind, pid, 20000) != 0) {
        it_dump(&env, kind);
        fail_msg("%s did not bind its bus sockets", kind);
    }
    char req[256], pub[256];
    it_req_endpoint(&env, kind, pid, req, sizeof req);
    it_pub_endpoint(&env, kind, pid, pub, sizeof pub);
    void *dealer = it_dealer(&env, req);

    // ping -> a real pong
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(dealer, &pong, 10000), 0);
    assert_string_equal(pong.pong.kind, kind);
    assert_string_equal(pong.pong.instance, "it-one");
    assert_string_equal(pong.pong.region, "eu-1");
    assert_int_equal(pong.pong.pid, (uint32_t) pid);
    assert_string_equal(pong.pong.version, SWITCHYARD_VERSION);
    assert_true(pong.pong.msgs_in >= 1);
    assert_true(strncmp(pong.src, kind, strlen(kind)) == 0);
    proto_msg_clear(&pong);

    // proc.stats arrives at once for a new subscriber
    void *sub = it_sub(&env, pub, "proc.stats");
    proto_msg_t stats;
    proto_msg_init(&stats, PROTO_NONE);
    char topic[64];
    assert_int_equal(it_recv(sub, &stats, topic, sizeof topic, 10000), 0);
    assert_string_equal(topic, "proc.stats");
    assert_int_equal(stats.type, PROTO_PROC_STATS);
    assert_string_equal(stats.proc_stats.kind, kind);
    assert_int_equal(stats.proc_stats.pid, (uint32_t) pid);
    assert_true(stats.proc_stats.rss_bytes > 0);
    assert_true(stats.proc_stats.open_fds > 3);
    assert_true(stats.proc_stats.start_time > 1.6e9);
    proto_msg_clear(&stats);
    zmq_close(sub);

    // malformed input: truncated, oversized, unknown type, wrong frame count
    proto_buf_t buf = {0};
    proto_msg_t ping;
    proto_msg_init(&ping, PROTO_PING);
    ping.id = 1;
    ping.src = "test/it";
    assert_int_equal(proto_encode(&ping, &buf), 0);
    assert_int_equal(it_send_raw(dealer, buf.data, buf.size - 1), 0); // truncated
    size_t big_len = PROTO_MSG_MAX + 1;
    char *big = calloc(1, big_len);
    assert_non_null(big);
    big[0] = (char) 0x81; // a map... followed by far too much
    assert_int_equal(it_send_raw(dealer, big, big_len), 0);
    free(big);
    // unknown type: a valid envelope with "t":"no.such.type"
    static const char unknown[] = "\x86\xa1v\x01\xa1t\xacno.such.type\xa2id\x05\xa3rid\xa0"
                                  "\xa3src\xa7test/it\xa2ts\x01";
    assert_int_equal(it_send_raw(dealer, unknown, sizeof unknown - 1), 0);
    assert_true(zmq_send(dealer, "extra", 5, ZMQ_SNDMORE) == 5);
    assert_true(zmq_send(dealer, buf.data, buf.size, 0) == (int) buf.size);
    proto_buf_free(&buf);
    // a valid message this actor never takes on its ROUTER
    proto_msg_t odd;
    proto_msg_init(&odd, PROTO_BACKEND_STATE);
    odd.backend_state.route = "r";
    odd.backend_state.backend = "b";
    assert_int_equal(it_send(dealer, &odd), 0);

    assert_true(it_wait_counter(dealer, "dropped.malformed", 1, 10000) >= 1);
    assert_true(it_wait_counter(dealer, "dropped.oversize", 1, 10000) >= 1);
    assert_true(it_wait_counter(dealer, "dropped.unknown", 1, 10000) >= 1);
    assert_true(it_wait_counter(dealer, "dropped.frames", 1, 10000) >= 1);
    assert_true(it_wait_counter(dealer, "dropped.unexpected", 1, 10000) >= 1);
    assert_true(it_wait_counter(dealer, "taps", 0, 10000) == 0);

    // a tap sees traffic only while subscribed
    void *tap = it_sub(&env, pub, "tap.");
    assert_true(it_wait_counter(dealer, "taps", 1, 10000) == 1);
    proto_msg_t seen;
    proto_msg_init(&seen, PROTO_NONE);
    bool saw_ping = false;
    uint64_t deadline = it_now_ms() + 10000;
    while (!saw_ping && it_now_ms() < deadline) {
        proto_msg_init(&ping, PROTO_PING);
        it_send(dealer, &ping);
        int rc = it_recv(tap, &seen, topic, sizeof topic, 500);
        char want[64];
        snprintf(want, sizeof want, "tap.%s.in.ping", kind);
        saw_ping = rc == 0 && strcmp(topic, want) == 0 && seen.type == PROTO_PING;
    }
    assert_true(saw_ping);
    proto_msg_clear(&seen);
    zmq_close(tap);
    assert_true(s_wait_counter_eq(dealer, "taps", 0, 10000));

    // still answering after all that
    assert_int_equal(it_ping(dealer, &pong, 10000), 0);
    proto_msg_clear(&pong);
    zmq_close(dealer);

    // SIGTERM: exit 0, ipc files gone, no sanitizer report (leaks included)
    int status = it_stop(&env, pid, 20000);
    if (status != 0)
        it_dump(&env, kind);
    assert_int_equal(status, 0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%d.req", env.bus_dir, kind, (int) pid);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/%s.%d.pub", env.bus_dir, kind, (int) pid);
    assert_int_equal(access(path, F_OK), -1);
    assert_true(it_clean_stderr(&env, kind));
    it_env_fini(&env);
}
