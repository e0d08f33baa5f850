/*  it_discovery - actors find each other: all seven kinds in one directory
    with default settings answer `switchyard ping`; two instances of a kind
    are both found, and one killed with SIGKILL is forgotten (by its peers and
    by the CLI, its stale files removed); DNS and list peers over tcp.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "it.h"
#include "it_actor.h"

static const char *s_kinds[] = {"gateway", "router", "balancer", "healthd",
                                "statsd",  "chatd",  "apid"};

//  Count the lines of the CLI's output naming a kind.
static int
s_lines_of(const char *text, const char *kind)
{
    int n = 0;
    size_t klen = strlen(kind);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, kind, klen) == 0 && line[klen] == ' ')
            n++;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return n;
}

//  Ping an actor until its pong's counter equals want (bounded).
static bool
s_wait_peers(void *dealer, const char *counter, uint64_t want, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    uint64_t seen = UINT64_MAX;
    while (it_now_ms() < deadline) {
        if (it_ping(dealer, &pong, 2000) == 0 && (seen = it_counter(&pong, counter)) == want)
            break;
        it_pause(20);
    }
    proto_msg_clear(&pong);
    if (seen != want)
        fprintf(stderr, "%s is %llu, want %llu\n", counter, (unsigned long long) seen,
                (unsigned long long) want);
    return seen == want;
}

static void
test_all_seven_default_settings(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    // no BUS_DIR given: each uses the default run/bus of the shared directory
    const char *defaults[] = {"BUS_DIR=run/bus", NULL};
    // the gateway's listeners on free ports (the defaults may be taken here)
    char http[64], admin[64];
    it_gateway_ports(http, admin);
    const char *gw_env[] = {"BUS_DIR=run/bus", http, admin, NULL};
    pid_t pids[7];
    for (int i = 0; i < 7; i++) {
        pids[i] = it_spawn(&env, s_kinds[i], s_kinds[i], i == 0 ? gw_env : defaults, NULL);
        assert_true(pids[i] > 0);
    }
    char bus[128];
    snprintf(bus, sizeof bus, "%s/run/bus", env.dir);
    char saved[128];
    memcpy(saved, env.bus_dir, sizeof saved);
    snprintf(env.bus_dir, sizeof env.bus_dir, "%s", bus);
    for (int i = 0; i < 7; i++)
        assert_int_equal(it_wait_bound(&env, s_kinds[i], pids[i], 20000), 0);
    memcpy(env.bus_dir, saved, sizeof saved);

    const char *args[] = {"ping", "-v", NULL};
    int rc = it_run(&env, "switchyard", "ping", defaults, args, 30000);
    char *out = it_read_file(&env, "ping", "out");
    assert_non_null(out);
    if (rc != 0)
        fprintf(stderr, "%s", out);
    assert_int_equal(rc, 0);
    for (int i = 0; i < 7; i++)
        assert_int_equal(s_lines_of(out, s_kinds[i]), 1);
    assert_non_null(strstr(out, "7 of 7 instances answered"));
    assert_non_null(strstr(out, "peers.router=1")); // -v: counters, gateway sees router
    free(out);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(it_stop(&env, pids[i], 20000), 0);
        assert_true(it_clean_stderr(&env, s_kinds[i]));
    }
    it_env_fini(&env);
}

static void
test_two_instances_one_killed(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    char http[64], admin[64];
    it_gateway_ports(http, admin);
    const char *gw_ports[] = {http, admin, NULL};
    pid_t gw = it_spawn(&env, "gateway", "gateway", gw_ports, NULL);
    pid_t r1 = it_spawn(&env, "router", "router1", NULL, NULL);
    pid_t r2 = it_spawn(&env, "router", "router2", NULL, NULL);
    assert_int_equal(it_wait_bound(&env, "gateway", gw, 20000), 0);
    assert_int_equal(it_wait_bound(&env, "router", r1, 20000), 0);
    assert_int_equal(it_wait_bound(&env, "router", r2, 20000), 0);
    char req[256];
    it_req_endpoint(&env, "gateway", gw, req, sizeof req);
    void *dealer = it_dealer(&env, req);
    assert_true(s_wait_peers(dealer, "peers.router", 2, 10000));

    const char *args[] = {"ping", NULL};
    assert_int_equal(it_run(&env, "switchyard", "ping2", NULL, args, 30000), 0);
    char *out = it_read_file(&env, "ping2", "out");
    assert_int_equal(s_lines_of(out, "router"), 2);
    free(out);

    // SIGKILL leaves its files behind; the next scan forgets it and removes them
    it_kill(&env, r1);
    uint64_t t0 = it_now_ms();
    assert_true(s_wait_peers(dealer, "peers.router", 1, 10000));
    fprintf(stderr, "killed router forgotten by the gateway in %llu ms\n",
            (unsigned long long) (it_now_ms() - t0));
    char stale[256];
    snprintf(stale, sizeof stale, "%s/router.%d.req", env.bus_dir, (int) r1);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(it_run(&env, "switchyard", "ping1", NULL, args, 30000), 0);
    out = it_read_file(&env, "ping1", "out");
    assert_int_equal(s_lines_of(out, "router"), 1);
    assert_non_null(strstr(out, "2 of 2 instances answered"));
    free(out);

    // a restarted instance is found again
    pid_t r3 = it_spawn(&env, "router", "router3", NULL, NULL);
    assert_int_equal(it_wait_bound(&env, "router", r3, 20000), 0);
    assert_true(s_wait_peers(dealer, "peers.router", 2, 10000));
    zmq_close(dealer);
    assert_int_equal(it_stop(&env, gw, 20000), 0);
    assert_int_equal(it_stop(&env, r2, 20000), 0);
    assert_int_equal(it_stop(&env, r3, 20000), 0);
    assert_true(it_clean_stderr(&env, "gateway"));
    assert_true(it_clean_stderr(&env, "router2"));
    assert_true(it_clean_stderr(&env, "router3"));
    it_env_fini(&env);
}

static void
test_tcp_dns_and_list_peers(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    int port = it_free_port_pair();
    assert_true(port > 0);
    char bind[64], dns[64], list[64];
    snprintf(bind, sizeof bind, "BUS_BIND=tcp://127.0.0.1:%d", port);
    snprintf(dns, sizeof dns, "BUS_PEERS_ROUTER=dns:localhost:%d", port);
    snprintf(list, sizeof list, "BUS_PEERS_ROUTER=tcp://127.0.0.1:%d", port);
    const char *router_env[] = {bind, NULL};
    pid_t rt = it_spawn(&env, "router", "router", router_env, NULL);
    assert_true(rt > 0);

    // a gateway that finds the router through DNS (c-ares; localhost from /etc/hosts)
    char http[64], admin[64];
    it_gateway_ports(http, admin);
    const char *gw_env[] = {dns, http, admin, NULL};
    pid_t gw = it_spawn(&env, "gateway", "gateway", gw_env, NULL);
    assert_int_equal(it_wait_bound(&env, "gateway", gw, 20000), 0);
    char req[256];
    it_req_endpoint(&env, "gateway", gw, req, sizeof req);
    void *dealer = it_dealer(&env, req);
    assert_true(s_wait_peers(dealer, "peers.router", 1, 10000));

    // and the CLI pings the router over tcp, through a list and through DNS
    const char *args[] = {"ping", NULL};
    const char *cli_list[] = {list, NULL};
    assert_int_equal(it_run(&env, "switchyard", "ping-list", cli_list, args, 30000), 0);
    char *out = it_read_file(&env, "ping-list", "out");
    assert_int_equal(s_lines_of(out, "router"), 1);
    free(out);
    const char *cli_dns[] = {dns, NULL};
    assert_int_equal(it_run(&env, "switchyard", "ping-dns", cli_dns, args, 30000), 0);
    out = it_read_file(&env, "ping-dns", "out");
    assert_int_equal(s_lines_of(out, "router"), 1);
    free(out);

    zmq_close(dealer);
    assert_int_equal(it_stop(&env, gw, 20000), 0);
    assert_int_equal(it_stop(&env, rt, 20000), 0);
    assert_true(it_clean_stderr(&env, "gateway"));
    assert_true(it_clean_stderr(&env, "router"));
    it_env_fini(&env);
}

//  `switchyard monitor` sees a connection made after it subscribed, and the
//  actors publish socket events only while it is attached.
static void
test_monitor(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    pid_t rt = it_spawn(&env, "router", "router", NULL, NULL);
    assert_int_equal(it_wait_bound(&env, "router", rt, 20000), 0);
    char req[256];
    it_req_endpoint(&env, "router", rt, req, sizeof req);
    void *dealer = it_dealer(&env, req);
    assert_true(s_wait_peers(dealer, "monitors", 0, 10000));
    const char *args[] = {"monitor", "--actor", "router", "--count", "1", NULL};
    pid_t mon = it_spawn(&env, "switchyard", "monitor", NULL, args);
    assert_true(mon > 0);
    assert_true(s_wait_peers(dealer, "monitors", 1, 10000));
    // a balancer appears: the router's DEALER connects to it
    pid_t bal = it_spawn(&env, "balancer", "balancer", NULL, NULL);
    assert_int_equal(it_wait_bound(&env, "balancer", bal, 20000), 0);
    int status = it_wait_exit(&env, mon, 15000); // exits by itself after one event
    assert_int_equal(status, 0);
    char *out = it_read_file(&env, "monitor", "out");
    assert_non_null(out);
    if (strstr(out, "\"t\":\"socket.event\"") == NULL) {
        fprintf(stderr, "monitor printed: %s\n", out);
        free(out);
        fail();
    }
    assert_non_null(strstr(out, "\"kind\":\"router\""));
    free(out);
    assert_true(s_wait_peers(dealer, "monitors", 0, 10000)); // detached again
    zmq_close(dealer);
    assert_int_equal(it_stop(&env, bal, 20000), 0);
    assert_int_equal(it_stop(&env, rt, 20000), 0);
    assert_true(it_clean_stderr(&env, "router"));
    assert_true(it_clean_stderr(&env, "monitor"));
    it_env_fini(&env);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_seven_default_settings),
        cmocka_unit_test(test_two_instances_one_killed),
        cmocka_unit_test(test_tcp_dns_and_list_peers),
        cmocka_unit_test(test_monitor),
    };
    return cmocka_run_group_tests_name("it_discovery", tests, NULL, NULL);
}
