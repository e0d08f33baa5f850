/*  it_curve - CURVE on the tcp bus (docs/bus-security.md), with real actors.

    A router and a healthd bind tcp on loopback with the fleet's keys (the
    router's from files, healthd's inline) and an operator's public key in
    the router's BUS_CURVE_CLIENTS:
    - healthd learns its backends from the router over CURVE (config.get),
      apid's health census reaches the router, and `switchyard ping` with
      the operator's key reaches both router and healthd;
      `switchyard monitor` with it subscribes over CURVE;
    - a peer without CURVE (the test's own DEALER, `switchyard ping`
      without keys) gets no answer: bus.handshake_failed rises, a warn line;
    - a client key not allowed gets no answer: bus.refused counts each try,
      one warn line names the address and the key's first 8 characters;
    - BUS_BIND on 0.0.0.0 without CURVE or BUS_INSECURE exits 2; with the
      keys it starts;
    - bad keys (a half pair, a bad secret, a missing file) exit 2 with one
      line naming the variable and never the secret;
    - through a byte-recording tcp relay, a pong's instance name is seen in
      clear from a plain router and not from a CURVE one.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "it.h"
#include "it_actor.h"

#define S_CANARY "canary-router-7f3a" // the router's INSTANCE_ID, in every pong

typedef struct {
    char public[41]; // Z85
    char secret[41]; // Z85
} s_pair_t;

//  A test's environment, keys and sockets, released by the teardown even
//  when an assertion fails (every process still running is killed by pid).
typedef struct {
    it_env_t env;      // processes and temp directory
    s_pair_t server;   // the fleet's server pair
    s_pair_t client;   // the fleet's client pair
    s_pair_t op;       // an operator's pair, allowed by BUS_CURVE_CLIENTS
    s_pair_t stranger; // a pair nobody allows
    void *socks[16];   // the test's sockets
    size_t nsocks;     // how many
} s_fixture_t;

static int
s_setup(void **state)
{
    s_fixture_t *fx = calloc(1, sizeof *fx);
    if (fx == NULL || it_env_init(&fx->env) != 0) {
        free(fx);
        return -1;
    }
    s_pair_t *pairs[] = {&fx->server, &fx->client, &fx->op, &fx->stranger};
    for (size_t i = 0; i < 4; i++)
        if (zmq_curve_keypair(pairs[i]->public, pairs[i]->secret) != 0)
            return -1;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nsocks; i++)
        zmq_close(fx->socks[i]);
    it_env_fini(&fx->env);
    free(fx);
    *state = NULL;
    return 0;
}

//  A DEALER of the test connected to endpoint: a CURVE client with pair
//  (and the fleet's server key) or, pair NULL, plain.
static void *
s_dealer(s_fixture_t *fx, const char *endpoint, const s_pair_t *pair)
{
    assert_true(fx->nsocks < sizeof fx->socks / sizeof fx->socks[0]);
    void *sock = zmq_socket(fx->env.ctx, ZMQ_DEALER);
    assert_non_null(sock);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (pair) {
        assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, fx->server.public, 41), 0);
        assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pair->public, 41), 0);
        assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, pair->secret, 41), 0);
    }
    assert_int_equal(zmq_connect(sock, endpoint), 0);
    fx->socks[fx->nsocks++] = sock;
    return sock;
}

//  Ping until a pong comes (bounded). Returns true if one did.
static bool
s_pong(void *dealer, proto_msg_t *pong, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    while (it_now_ms() < deadline)
        if (it_ping(dealer, pong, 500) == 0)
            return true;
    return false;
}

//  Wait until <name>.out holds needle (bounded).
static bool
s_wait_line(it_env_t *env, const char *name, const char *needle, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        char *text = it_read_file(env, name, "out");
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        if (it_now_ms() >= deadline) {
            fprintf(stderr, "no '%s' in %s.out\n", needle, name);
            it_dump(env, name);
            return false;
        }
        it_pause(20);
    }
}

//  How many times needle occurs in <name>.out.
static int
s_count_lines(it_env_t *env, const char *name, const char *needle)
{
    char *text = it_read_file(env, name, "out");
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(text);
    return n;
}

//  Write a key file in the test's directory; path gets "file:<path>".
static void
s_key_file(it_env_t *env, const char *name, const char *key, char *value, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", env->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", key);
    fclose(f);
    snprintf(value, cap, "file:%s", path);
}

//  `switchyard ping` with env_extra; returns its exit status and output (caller frees).
static int
s_cli_ping(it_env_t *env, const char *name, const char *const *env_extra, char **out)
{
    const char *args[] = {"ping", "--timeout", "1s", NULL};
    int rc = it_run(env, "switchyard", name, env_extra, args, 30000);
    *out = it_read_file(env, name, "out");
    assert_non_null(*out);
    return rc;
}

//  Ask apid (as the gateway does) for /api/health until its body names
//  instance (bounded): its census reached that instance.
static bool
s_census_saw(void *apid, const char *instance, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    bool saw = false;
    while (!saw && it_now_ms() < deadline) {
        proto_msg_t ask;
        proto_msg_init(&ask, PROTO_ADMIN_REQUEST);
        ask.rid = "it-curve-health";
        ask.admin_request.method = "GET";
        ask.admin_request.path = "/api/health";
        ask.admin_request.client = "127.0.0.1";
        assert_int_equal(it_send(apid, &ask), 0);
        if (it_recv(apid, &msg, NULL, 0, 5000) == 0 && msg.type == PROTO_ADMIN_RESPONSE)
            saw = memmem(msg.admin_response.body.data, msg.admin_response.body.size, instance,
                         strlen(instance))
                  != NULL;
        proto_msg_clear(&msg);
        if (!saw)
            it_pause(200);
    }
    return saw;
}

//  Start binary with BUS_BIND=tcp://HOST:P (P and P+1 free when chosen) and
//  extra (NULL-terminated), and wait for its bus: when another process took
//  the port meanwhile (an outgoing connection's ephemeral port, under load),
//  it is started again on another pair. Returns the pid; P goes to *port.
static pid_t
s_spawn_tcp(it_env_t *env,
            const char *binary,
            const char *name,
            const char *host,
            const char *const *extra,
            int *port)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int p = it_free_port_pair();
        assert_true(p > 0);
        char bind[96];
        snprintf(bind, sizeof bind, "BUS_BIND=tcp://%s:%d", host, p);
        const char *envs[16] = {bind};
        size_t n = 1;
        for (size_t i = 0; extra && extra[i] && n < 15; i++)
            envs[n++] = extra[i];
        envs[n] = NULL;
        pid_t pid = it_spawn(env, binary, name, envs, NULL);
        assert_true(pid > 0);
        uint64_t deadline = it_now_ms() + 20000;
        int state = 0; // 1 bound, -1 could not bind
        while (state == 0 && it_now_ms() < deadline) {
            char *text = it_read_file(env, name, "out");
            if (text && strstr(text, "\"msg\":\"bus bound\""))
                state = 1;
            else if (text && strstr(text, "cannot start the bus"))
                state = -1;
            free(text);
            if (state == 0)
                it_pause(20);
        }
        if (state == 1) {
            *port = p;
            return pid;
        }
        fprintf(stderr, "%s on port %d: %s\n", name, p, state < 0 ? "bind failed" : "no bus");
        it_dump(env, name);
        it_kill(env, pid);
        if (state == 0)
            break;
    }
    fail_msg("%s did not bind the bus", name);
    return -1;
}

static void
test_fleet_talks_and_refuses(void **state)
{
    s_fixture_t *fx = *state;
    it_env_t *env = &fx->env;
    // the router reads its keys from files (a mounted secret), healthd inline
    char file_server[300], file_client[300], v[4][400];
    s_key_file(env, "server.secret", fx->server.secret, file_server, sizeof file_server);
    s_key_file(env, "client.secret", fx->client.secret, file_client, sizeof file_client);
    snprintf(v[0], sizeof v[0], "BUS_CURVE_SERVER_SECRET=%s", file_server);
    snprintf(v[1], sizeof v[1], "BUS_CURVE_CLIENT_SECRET=%s", file_client);
    snprintf(v[2], sizeof v[2], "BUS_CURVE_CLIENTS=%s", fx->op.public);
    const char *router_env[] = {v[0], v[1], v[2], "INSTANCE_ID=" S_CANARY, NULL};
    int rport = 0, hport = 0;
    pid_t rt = s_spawn_tcp(env, "router", "router", "127.0.0.1", router_env, &rport);
    char rpeer[96], hpeer[96], rendpoint[96];
    snprintf(rpeer, sizeof rpeer, "BUS_PEERS_ROUTER=tcp://127.0.0.1:%d", rport);
    snprintf(rendpoint, sizeof rendpoint, "tcp://127.0.0.1:%d", rport);
    char hs[96], hc[96];
    snprintf(hs, sizeof hs, "BUS_CURVE_SERVER_SECRET=%s", fx->server.secret);
    snprintf(hc, sizeof hc, "BUS_CURVE_CLIENT_SECRET=%s", fx->client.secret);
    // healthd lets the operator in through a file of keys (a ConfigMap)
    char ops[300], hl[400];
    s_key_file(env, "operators.keys", fx->op.public, ops, sizeof ops);
    snprintf(hl, sizeof hl, "BUS_CURVE_CLIENTS=%s", ops);
    const char *healthd_env[] = {rpeer, hs, hc, hl, NULL};
    pid_t hd = s_spawn_tcp(env, "healthd", "healthd", "127.0.0.1", healthd_env, &hport);
    snprintf(hpeer, sizeof hpeer, "BUS_PEERS_HEALTHD=tcp://127.0.0.1:%d", hport);
    assert_true(s_wait_line(env, "router", "\"curve\":true", 20000));
    assert_true(s_wait_line(env, "healthd", "\"curve\":true", 20000));

    // actor to actor: healthd's config.get answered by the router over CURVE
    assert_true(s_wait_line(env, "healthd", "backends to probe", 20000));

    // the operator's key (BUS_CURVE_CLIENTS) gets in
    void *op = s_dealer(fx, rendpoint, &fx->op);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_true(s_pong(op, &pong, 10000));
    assert_string_equal(pong.pong.instance, S_CANARY);
    assert_int_equal(it_counter(&pong, "bus.refused"), 0);
    assert_int_equal(it_counter(&pong, "bus.handshake_failed"), 0);
    proto_msg_clear(&pong);

    // and `switchyard ping` with it reaches both, over tcp
    char cs[96], cc[96];
    snprintf(cs, sizeof cs, "BUS_CURVE_SERVER_PUBLIC=%s", fx->server.public);
    snprintf(cc, sizeof cc, "BUS_CURVE_CLIENT_SECRET=%s", fx->op.secret);
    const char *cli_op[] = {rpeer, hpeer, cs, cc, NULL};
    char *out = NULL;
    int rc = s_cli_ping(env, "ping-op", cli_op, &out);
    if (rc != 0 || strstr(out, "2 of 2 instances answered") == NULL) {
        fprintf(stderr, "switchyard ping with the operator's key: exit %d\n%s\n", rc, out);
        free(out);
        fail();
    }
    free(out);

    // apid's health census pings every instance on its own sockets: over CURVE too
    const char *apid_env[] = {rpeer, hs, hc, NULL};
    pid_t api = it_spawn(env, "apid", "apid", apid_env, NULL);
    assert_int_equal(it_wait_bound(env, "apid", api, 20000), 0);
    char areq[256];
    it_req_endpoint(env, "apid", api, areq, sizeof areq);
    void *gw = it_dealer(env, areq); // plain: ipc stays plain
    fx->socks[fx->nsocks++] = gw;
    assert_true(s_census_saw(gw, S_CANARY, 15000));
    assert_int_equal(it_stop(env, api, 20000), 0);
    assert_true(it_clean_stderr(env, "apid"));

    // a peer without CURVE: nothing, and a failed handshake counted and logged
    void *plain = s_dealer(fx, rendpoint, NULL);
    assert_int_not_equal(it_ping(plain, &pong, 1500), 0);
    proto_msg_clear(&pong);
    const char *cli_plain[] = {rpeer, NULL};
    rc = s_cli_ping(env, "ping-plain", cli_plain, &out);
    if (rc != 1 || strstr(out, "0 of 1 instances answered") == NULL) {
        fprintf(stderr, "switchyard ping without keys: exit %d\n%s\n", rc, out);
        free(out);
        fail();
    }
    free(out);
    assert_true(it_wait_counter(op, "bus.handshake_failed", 2, 10000) >= 2);
    assert_true(s_wait_line(env, "router", "bus peer failed its handshake", 5000));
    assert_true(s_wait_line(env, "router", "\"level\":\"warn\"", 5000));

    // a key nobody allows: each try refused by ZAP, one line for the address
    for (int i = 0; i < 3; i++) {
        void *stranger = s_dealer(fx, rendpoint, &fx->stranger);
        assert_int_not_equal(it_ping(stranger, &pong, 500), 0);
        proto_msg_clear(&pong);
    }
    char sc[96];
    snprintf(sc, sizeof sc, "BUS_CURVE_CLIENT_SECRET=%s", fx->stranger.secret);
    const char *cli_stranger[] = {rpeer, cs, sc, NULL};
    rc = s_cli_ping(env, "ping-stranger", cli_stranger, &out);
    if (rc != 1 || strstr(out, "0 of 1 instances answered") == NULL) {
        fprintf(stderr, "switchyard ping with a stranger's key: exit %d\n%s\n", rc, out);
        free(out);
        fail();
    }
    free(out);
    uint64_t refused = it_wait_counter(op, "bus.refused", 4, 10000);
    assert_true(refused >= 4 && refused != UINT64_MAX);
    char client[96];
    snprintf(client, sizeof client, "\"client\":\"%.8s\"", fx->stranger.public);
    assert_true(s_wait_line(env, "router", client, 5000));
    assert_true(s_wait_line(env, "router", "\"address\":\"127.0.0.1\"", 5000));
    // rate-limited: one line per address per 10 s (two if this machine is that slow)
    int lines = s_count_lines(env, "router", "bus peer refused");
    fprintf(stderr, "%llu refusals, %d warn line(s)\n", (unsigned long long) refused, lines);
    assert_true(lines >= 1 && (uint64_t) lines < refused);
    assert_int_equal(s_count_lines(env, "router", fx->stranger.public), 0);
    assert_int_equal(s_count_lines(env, "router", fx->server.secret), 0);
    assert_int_equal(s_count_lines(env, "router", fx->client.secret), 0);

    // `switchyard monitor` subscribes over CURVE, and sees a refused peer's event
    const char *mon_args[] = {"monitor", "--actor", "router", "--count", "1", NULL};
    const char *cli_mon[] = {rpeer, cs, cc, NULL};
    pid_t mon = it_spawn(env, "switchyard", "monitor", cli_mon, mon_args);
    assert_true(mon > 0);
    assert_int_equal(it_wait_counter(op, "monitors", 1, 10000), 1);
    (void) s_dealer(fx, rendpoint, NULL);
    assert_int_equal(it_wait_exit(env, mon, 15000), 0);
    out = it_read_file(env, "monitor", "out");
    if (out == NULL || strstr(out, "\"kind\":\"router\"") == NULL)
        fail_msg("monitor printed: %s", out ? out : "(nothing)");
    free(out);

    assert_int_equal(it_stop(env, hd, 20000), 0);
    assert_int_equal(it_stop(env, rt, 20000), 0);
    assert_true(it_clean_stderr(env, "router"));
    assert_true(it_clean_stderr(env, "healthd"));
    assert_true(it_clean_stderr(env, "ping-op"));
    assert_true(it_clean_stderr(env, "monitor"));
}

//  A non-loopback BUS_BIND needs CURVE (or the explicit BUS_INSECURE=1).
static void
test_any_address_needs_curve(void **state)
{
    s_fixture_t *fx = *state;
    it_env_t *env = &fx->env;
    int port = it_free_port_pair();
    assert_true(port > 0);
    char bind[96], endpoint[96], ss[96], cs[96];
    snprintf(bind, sizeof bind, "BUS_BIND=tcp://0.0.0.0:%d", port);
    snprintf(ss, sizeof ss, "BUS_CURVE_SERVER_SECRET=%s", fx->server.secret);
    snprintf(cs, sizeof cs, "BUS_CURVE_CLIENT_SECRET=%s", fx->client.secret);

    const char *plain[] = {bind, NULL};
    assert_int_equal(it_run(env, "balancer", "plain", plain, NULL, 20000), 2);
    char *err = it_read_file(env, "plain", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "BUS_BIND"));
    assert_non_null(strstr(err, "BUS_INSECURE=1"));
    assert_non_null(strstr(err, "BUS_CURVE_"));
    free(err);

    const char *curve[] = {ss, cs, NULL};
    pid_t bal = s_spawn_tcp(env, "balancer", "balancer", "0.0.0.0", curve, &port);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    void *dealer = s_dealer(fx, endpoint, &fx->client); // the fleet's own client key
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_true(s_pong(dealer, &pong, 15000));
    assert_string_equal(pong.pong.kind, "balancer");
    proto_msg_clear(&pong);
    assert_int_equal(it_stop(env, bal, 20000), 0);
    assert_true(it_clean_stderr(env, "balancer"));
}

//  name=value stops binary with exit 2 and one line naming want, and
//  without secret (may be NULL).
static void
s_expect_bad(it_env_t *env,
             const char *binary,
             const char *const *envs,
             const char *const *args,
             const char *want,
             const char *secret)
{
    int rc = it_run(env, binary, "bad", envs, args, 20000);
    char *err = it_read_file(env, "bad", "err");
    assert_non_null(err);
    const char *nl = strchr(err, '\n');
    if (rc != 2 || strstr(err, want) == NULL || nl == NULL || nl[1] != '\0'
        || (secret && strstr(err, secret)))
        fail_msg("%s %s: exit %d, stderr: %s", binary, envs[0], rc, err);
    free(err);
}

static void
test_bad_keys_stop_at_start(void **state)
{
    s_fixture_t *fx = *state;
    it_env_t *env = &fx->env;
    char ss[96], sp[96], cs[96], cp[96], bad[96], missing[300];
    snprintf(ss, sizeof ss, "BUS_CURVE_SERVER_SECRET=%s", fx->server.secret);
    snprintf(sp, sizeof sp, "BUS_CURVE_SERVER_PUBLIC=%s", fx->server.public);
    snprintf(cs, sizeof cs, "BUS_CURVE_CLIENT_SECRET=%s", fx->client.secret);
    snprintf(cp, sizeof cp, "BUS_CURVE_CLIENT_PUBLIC=%s", fx->server.public); // not its pair
    snprintf(bad, sizeof bad, "BUS_CURVE_SERVER_SECRET=%.39s~", fx->server.secret);
    snprintf(missing, sizeof missing, "BUS_CURVE_CLIENT_SECRET=file:%s/none.secret", env->dir);

    const char *only_client[] = {cs, NULL};
    s_expect_bad(env, "router", only_client, NULL, "BUS_CURVE_SERVER_SECRET", fx->client.secret);
    const char *only_server[] = {ss, NULL};
    s_expect_bad(env, "router", only_server, NULL, "BUS_CURVE_CLIENT_SECRET", fx->server.secret);
    const char *bad_secret[] = {bad, cs, NULL};
    s_expect_bad(env, "router", bad_secret, NULL, "BUS_CURVE_SERVER_SECRET: (secret)",
                 bad + strlen("BUS_CURVE_SERVER_SECRET="));
    const char *no_file[] = {missing, ss, NULL};
    s_expect_bad(env, "router", no_file, NULL, "none.secret", fx->server.secret);
    const char *mismatch[] = {cp, ss, cs, NULL};
    s_expect_bad(env, "router", mismatch, NULL, "BUS_CURVE_CLIENT_PUBLIC", fx->client.secret);
    const char *list[] = {"BUS_CURVE_CLIENTS=notakey", ss, cs, NULL};
    s_expect_bad(env, "router", list, NULL, "BUS_CURVE_CLIENTS: 'notakey'", NULL);

    // the CLI: a client secret alone is not enough
    const char *args[] = {"ping", NULL};
    const char *cli_half[] = {cs, NULL};
    s_expect_bad(env, "switchyard", cli_half, args, "BUS_CURVE_SERVER_PUBLIC", fx->client.secret);
    const char *cli_ok[] = {sp, cs, NULL};
    assert_int_equal(it_run(env, "switchyard", "cli-none", cli_ok, args, 20000), 1); // no actor
}

//  --------------------------------------------------------------------------
//  A tcp relay that records every byte it forwards, both ways.

typedef struct {
    int listen_fd;        // where the test connects
    int upstream_port;    // where bytes go
    int stop[2];          // a byte here ends the thread
    pthread_t thread;     // the relay
    pthread_mutex_t lock; // guards data
    char data[1 << 20];   // recorded bytes
    size_t len;           // how many
} s_relay_t;

static void
s_record(s_relay_t *r, const char *buf, size_t n)
{
    pthread_mutex_lock(&r->lock);
    if (r->len + n <= sizeof r->data) {
        memcpy(r->data + r->len, buf, n);
        r->len += n;
    }
    pthread_mutex_unlock(&r->lock);
}

static void *
s_relay_main(void *arg)
{
    s_relay_t *r = arg;
    int down = -1, up = -1;
    char buf[65536];
    for (;;) {
        struct pollfd fds[4] = {{r->stop[0], POLLIN, 0}, {r->listen_fd, POLLIN, 0}};
        nfds_t n = 2;
        if (down >= 0) {
            fds[n++] = (struct pollfd){down, POLLIN, 0};
            fds[n++] = (struct pollfd){up, POLLIN, 0};
        }
        if (poll(fds, n, -1) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if (fds[1].revents & POLLIN) {
            int c = accept(r->listen_fd, NULL, NULL);
            if (c >= 0 && down >= 0) {
                close(c); // one connection at a time
            } else if (c >= 0) {
                struct sockaddr_in to = {.sin_family = AF_INET,
                                         .sin_port = htons((uint16_t) r->upstream_port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                up = socket(AF_INET, SOCK_STREAM, 0);
                if (up < 0 || connect(up, (struct sockaddr *) &to, sizeof to) != 0) {
                    close(c);
                    if (up >= 0)
                        close(up);
                    up = -1;
                } else {
                    down = c;
                }
            }
        }
        for (nfds_t i = 2; i < n; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = fds[i].fd, to = from == down ? up : down;
            ssize_t got = read(from, buf, sizeof buf);
            if (got <= 0 || write(to, buf, (size_t) got) != got) {
                close(down);
                close(up);
                down = up = -1;
                break;
            }
            s_record(r, buf, (size_t) got);
        }
    }
    if (down >= 0) {
        close(down);
        close(up);
    }
    return NULL;
}

//  Start a relay to 127.0.0.1:upstream_port; its port goes to *port.
static s_relay_t *
s_relay_start(int upstream_port, int *port)
{
    s_relay_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->upstream_port = upstream_port;
    pthread_mutex_init(&r->lock, NULL);
    assert_int_equal(pipe(r->stop), 0);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof at;
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *) &at, sizeof at), 0);
    assert_int_equal(listen(r->listen_fd, 8), 0);
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *) &at, &len), 0);
    *port = ntohs(at.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, s_relay_main, r), 0);
    return r;
}

//  Stop the relay; true if the bytes it recorded hold needle.
static bool
s_relay_stop(s_relay_t *r, const char *needle, size_t *recorded)
{
    assert_int_equal(write(r->stop[1], "x", 1), 1);
    pthread_join(r->thread, NULL);
    bool found = memmem(r->data, r->len, needle, strlen(needle)) != NULL;
    *recorded = r->len;
    close(r->listen_fd);
    close(r->stop[0]);
    close(r->stop[1]);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return found;
}

//  A ping through the relay to a router with INSTANCE_ID S_CANARY, with or
//  without CURVE; true if the canary crossed the wire in clear.
static bool
s_canary_in_clear(s_fixture_t *fx, bool curve)
{
    it_env_t *env = &fx->env;
    int port = 0, relay_port = 0;
    char endpoint[96], ss[96], cs[96], name[32];
    snprintf(ss, sizeof ss, "BUS_CURVE_SERVER_SECRET=%s", fx->server.secret);
    snprintf(cs, sizeof cs, "BUS_CURVE_CLIENT_SECRET=%s", fx->client.secret);
    snprintf(name, sizeof name, "router-%s", curve ? "curve" : "plain");
    const char *with[] = {ss, cs, "INSTANCE_ID=" S_CANARY, NULL};
    const char *without[] = {"INSTANCE_ID=" S_CANARY, NULL};
    pid_t rt = s_spawn_tcp(env, "router", name, "127.0.0.1", curve ? with : without, &port);
    s_relay_t *relay = s_relay_start(port, &relay_port);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", relay_port);
    void *dealer = s_dealer(fx, endpoint, curve ? &fx->client : NULL);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    bool answered = s_pong(dealer, &pong, 10000);
    bool named = answered && strcmp(pong.pong.instance, S_CANARY) == 0;
    proto_msg_clear(&pong);
    size_t recorded = 0;
    bool clear = s_relay_stop(relay, S_CANARY, &recorded);
    fprintf(stderr, "%s: pong %s, %zu bytes relayed, instance name %s on the wire\n", name,
            answered ? "received" : "missing", recorded, clear ? "in clear" : "not in clear");
    assert_true(named);
    assert_int_equal(it_stop(env, rt, 20000), 0);
    assert_true(it_clean_stderr(env, name));
    return clear;
}

static void
test_traffic_not_in_clear(void **state)
{
    s_fixture_t *fx = *state;
    assert_true(s_canary_in_clear(fx, false)); // the check sees plain bytes
    assert_false(s_canary_in_clear(fx, true));
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fleet_talks_and_refuses, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_any_address_needs_curve, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys_stop_at_start, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_traffic_not_in_clear, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("it_curve", tests, NULL, NULL);
}
