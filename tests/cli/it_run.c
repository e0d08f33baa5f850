/*  it_run - integration test of `switchyard run`, the supervisor behind make run.

    Starts the whole stack the way a user does (`switchyard run`, from
    $SWITCHYARD_BIN_DIR, in a private directory), with the public, HTTPS,
    admin and demo ports moved to free ones, and checks what a user sees: the
    demo answers by region through the gateway, over HTTP and over HTTPS
    with the self-signed certificate run installed (an OpenSSL client: the
    handshake with SNI localhost, the certificate's CN and subjectAltName,
    a handshake that verifies it as the one trusted certificate, then a
    request), a child that dies is reported and not restarted while the rest
    keeps serving, and SIGTERM stops everything with exit 0, leaving no child
    alive and no sanitizer report (the children's stderr comes through the
    supervisor's). A second run in the same directory keeps the stored
    certificate (RUN_NO_DEMO: HTTPS gets one all the same).
*/
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "it.h"
#include "proto_util.h"

#define IT_UP_MS     30000 // the stack answers by region within this
#define IT_STOP_MS   20000 // and stops within this after SIGTERM
#define IT_MAX_KIDS  32
#define IT_CERT_MS   10000 // HTTPS serves the certificate within this after run installed it
#define IT_INSTALLED "self-signed certificate for localhost installed as the default (domain *)"

//  A child of the supervisor, seen in /proc while it ran.
typedef struct {
    pid_t pid;                // its pid
    unsigned long long start; // its start time (field 22), against pid reuse
    char comm[32];            // its name
} kid_t;

//  --------------------------------------------------------------------------
//  Helpers

//  Parent pid, start time and name of pid from /proc. Returns 0 or -1.
static int
s_proc_stat(pid_t pid, pid_t *ppid, unsigned long long *start, char *comm, size_t comm_cap)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *open = strchr(text, '(');
    char *close = strrchr(text, ')');
    if (open == NULL || close == NULL || close < open)
        return -1;
    if (comm) {
        size_t len = (size_t) (close - open - 1);
        if (len >= comm_cap)
            len = comm_cap - 1;
        memcpy(comm, open + 1, len);
        comm[len] = '\0';
    }
    // after ") ": state(3) ppid(4) ... starttime(22)
    char *save = NULL;
    char *field = strtok_r(close + 1, " ", &save);
    for (int i = 3; field && i <= 22; i++, field = strtok_r(NULL, " ", &save)) {
        if (i == 4 && ppid)
            *ppid = (pid_t) strtol(field, NULL, 10);
        if (i == 22 && start)
            *start = strtoull(field, NULL, 10);
    }
    return 0;
}

//  Every live process whose parent is parent.
static size_t
s_children(pid_t parent, kid_t *kids, size_t cap)
{
    size_t n = 0;
    DIR *dir = opendir("/proc");
    if (dir == NULL)
        return 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < cap) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        pid_t ppid = 0;
        kid_t kid = {.pid = (pid_t) pid};
        if (s_proc_stat(kid.pid, &ppid, &kid.start, kid.comm, sizeof kid.comm) == 0
            && ppid == parent)
            kids[n++] = kid;
    }
    closedir(dir);
    return n;
}

//  True while the process recorded in kid still exists (same pid, same start).
static bool
s_alive(const kid_t *kid)
{
    unsigned long long start = 0;
    return s_proc_stat(kid->pid, NULL, &start, NULL, 0) == 0 && start == kid->start;
}

//  GET path from 127.0.0.1:port with Host: localhost and an optional extra
//  header line; the whole answer (Connection: close) into out. Returns 0 or -1.
static int
s_get(int port, const char *path, const char *header, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: localhost\r\n%s%sConnection: close\r\n\r\n", path,
                     header ? header : "", header ? "\r\n" : "");
    if (send(fd, request, (size_t) n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t got;
    while (len < cap - 1 && (got = recv(fd, out + len, cap - 1 - len, 0)) > 0)
        len += (size_t) got;
    out[len] = '\0';
    close(fd);
    return len > 0 ? 0 : -1;
}

//  GET path over HTTPS from 127.0.0.1:port with SNI and Host localhost; the
//  whole answer (Connection: close) into out. With trusted, the handshake
//  verifies the server's certificate against it alone and for the name
//  localhost; without, it takes any. *peer (when not NULL) gets the served
//  certificate (caller frees). Blocking, every step bounded by 2 s socket
//  timeouts. Returns 0 or -1.
static int
s_tls_get(int port, X509 *trusted, const char *path, X509 **peer, char *out, size_t cap)
{
    out[0] = '\0';
    int rc = -1;
    SSL *ssl = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ctx == NULL || fd < 0)
        goto done;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) != 0)
        goto done;
    if (trusted) {
        if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), trusted) != 1)
            goto done;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, "localhost") != 1
        || (trusted && SSL_set1_host(ssl, "localhost") != 1) || SSL_connect(ssl) != 1)
        goto done;
    if (peer)
        *peer = SSL_get1_peer_certificate(ssl);
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (SSL_write(ssl, request, n) != n)
        goto done;
    size_t len = 0;
    int got;
    while (len < cap - 1 && (got = SSL_read(ssl, out + len, (int) (cap - 1 - len))) > 0)
        len += (size_t) got;
    out[len] = '\0';
    rc = len > 0 ? 0 : -1;
done:
    SSL_free(ssl); // does not close fd (SSL_set_fd)
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

//  Poll until an HTTPS GET / answers with want in the text, or the deadline,
//  or the supervisor died. *peer gets the certificate served. Returns 0 or -1.
static int
s_wait_tls(int port, const char *want, pid_t sup, uint64_t deadline, X509 **peer)
{
    char answer[4096] = "";
    while (it_now_ms() < deadline) {
        X509 *x = NULL;
        if (s_tls_get(port, NULL, "/", &x, answer, sizeof answer) == 0 && strstr(answer, want)) {
            *peer = x;
            return 0;
        }
        X509_free(x);
        if (waitpid(sup, NULL, WNOHANG) == sup)
            return -1;
        it_pause(100);
    }
    fprintf(stderr, "no '%s' from GET / over HTTPS; last answer:\n%s\n", want, answer);
    return -1;
}

//  The certificate run installs: CN=localhost, localhost, 127.0.0.1 and ::1
//  in its subjectAltName, no CA.
static void
s_check_served_cert(X509 *x)
{
    char cn[64] = "";
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn)
                > 0);
    assert_string_equal(cn, "localhost");
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ca(x), 0);
}

//  Poll until GET path answers with want in the text, or the deadline, or
//  the supervisor died. Returns 0 or -1.
static int
s_wait_answer(
    int port, const char *path, const char *header, const char *want, pid_t sup, uint64_t deadline)
{
    char answer[4096] = "";
    while (it_now_ms() < deadline) {
        if (s_get(port, path, header, answer, sizeof answer) == 0 && strstr(answer, want))
            return 0;
        if (waitpid(sup, NULL, WNOHANG) == sup)
            return -1;
        it_pause(100);
    }
    fprintf(stderr, "no '%s' from GET %s (%s); last answer:\n%s\n", want, path,
            header ? header : "-", answer);
    return -1;
}

//  Wait until the supervisor's stdout holds text. Returns 0 or -1.
static int
s_wait_output(it_env_t *env, const char *text, uint64_t deadline)
{
    while (it_now_ms() < deadline) {
        char *out = it_read_file(env, "switchyard", "out");
        bool found = out && strstr(out, text);
        free(out);
        if (found)
            return 0;
        it_pause(50);
    }
    fprintf(stderr, "no '%s' in the supervisor's output\n", text);
    return -1;
}

//  A free port pair overlapping none of the n pairs at taken.
static int
s_other_pair(const int *taken, size_t n)
{
    for (int i = 0; i < 50; i++) {
        int port = it_free_port_pair();
        bool apart = port > 0;
        for (size_t t = 0; t < n; t++)
            apart = apart && (port > taken[t] + 1 || port + 1 < taken[t]);
        if (apart)
            return port;
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  Tests. Each gets a fresh environment; the teardown runs even after a
//  failed assertion, so a failing test never leaves a stack running (its
//  SIGKILL of the supervisor takes the children along: PR_SET_PDEATHSIG).

static int
s_setup(void **state)
{
    it_env_t *env = proto_xcalloc(1, sizeof *env);
    if (it_env_init(env) != 0) {
        free(env);
        return -1;
    }
    *state = env;
    return 0;
}

static int
s_teardown(void **state)
{
    it_env_t *env = *state;
    it_env_fini(env);
    free(env);
    return 0;
}

static void
test_help_and_bad_value(void **state)
{
    it_env_t *env = *state;
    const char *help[] = {"run", "--help", NULL};
    assert_int_equal(it_run(env, "switchyard", "help", NULL, help, 10000), 0);
    char *out = it_read_file(env, "help", "out");
    assert_non_null(out);
    assert_non_null(strstr(out, "RUN_DEMO_PORT_A"));
    assert_non_null(strstr(out, "--no-demo"));
    assert_non_null(strstr(out, "GATEWAY_HTTPS_ADDR"));
    assert_non_null(strstr(out, "--no-https"));
    free(out);

    const char *bad_env[] = {"RUN_DEMO_PORT_A=0", NULL};
    const char *run[] = {"run", NULL};
    assert_int_equal(it_run(env, "switchyard", "bad", bad_env, run, 10000), 2);
    char *err = it_read_file(env, "bad", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "RUN_DEMO_PORT_A"));
    free(err);
    assert_true(it_clean_stderr(env, "help"));
}

static void
test_stack(void **state)
{
    it_env_t *env = *state;
    int taken[3];
    int http = taken[0] = it_free_port_pair(); // admin on http + 1
    assert_true(http > 0);
    int demo = taken[1] = s_other_pair(taken, 1); // Server B on demo + 1
    assert_true(demo > 0);
    int https = taken[2] = s_other_pair(taken, 2);
    assert_true(https > 0);
    char http_env[64], https_env[64], admin_env[64], a_env[64], b_env[64];
    snprintf(http_env, sizeof http_env, "GATEWAY_HTTP_ADDR=127.0.0.1:%d", http);
    snprintf(https_env, sizeof https_env, "GATEWAY_HTTPS_ADDR=127.0.0.1:%d", https);
    snprintf(admin_env, sizeof admin_env, "GATEWAY_ADMIN_ADDR=127.0.0.1:%d", http + 1);
    snprintf(a_env, sizeof a_env, "RUN_DEMO_PORT_A=%d", demo);
    snprintf(b_env, sizeof b_env, "RUN_DEMO_PORT_B=%d", demo + 1);
    const char *extra[] = {http_env, https_env, admin_env, a_env, b_env, "GATEWAY_DRAIN_TIMEOUT=5s",
                           NULL};
    const char *args[] = {"run", NULL};
    pid_t sup = it_spawn(env, "switchyard", "switchyard", extra, args);
    assert_true(sup > 0);

    uint64_t deadline = it_now_ms() + IT_UP_MS;
    bool up =
        s_wait_answer(http, "/", "x-region: 1", "Hello from Server A (Region 1)", sup, deadline)
            == 0
        && s_wait_answer(http, "/", "x-region: 2", "Hello from Server B (Region 2)", sup, deadline)
               == 0
        && s_wait_answer(http, "/?region=2", NULL, "Hello from Server B (Region 2)", sup, deadline)
               == 0;
    if (!up)
        it_dump(env, "switchyard");
    assert_true(up);

    // what the user reads: prefixed lines, the routes, the curl lines
    char curl[128];
    snprintf(curl, sizeof curl, "curl -H 'x-region: 1' localhost:%d/", http);
    assert_int_equal(s_wait_output(env, curl, it_now_ms() + 5000), 0);
    char *out = it_read_file(env, "switchyard", "out");
    assert_non_null(out);
    assert_non_null(strstr(out, "router   | "));
    assert_non_null(strstr(out, "gateway  | "));
    assert_non_null(strstr(out, "server-a | "));
    assert_non_null(strstr(out, "demo route localhost installed"));
    assert_non_null(strstr(out, "demo route 127.0.0.1 installed"));
    assert_non_null(strstr(out, IT_INSTALLED));
    snprintf(curl, sizeof curl, "curl -k https://localhost:%d/", https);
    assert_non_null(strstr(out, curl));
    free(out);

    // HTTPS: the self-signed default certificate, the demo behind it
    X509 *peer = NULL;
    if (s_wait_tls(https, "Hello from Server", sup, it_now_ms() + IT_CERT_MS, &peer) != 0)
        it_dump(env, "switchyard");
    assert_non_null(peer);
    s_check_served_cert(peer);
    char answer[4096];
    assert_int_equal(s_tls_get(https, peer, "/?region=2", NULL, answer, sizeof answer), 0);
    assert_true(strncmp(answer, "HTTP/1.1 200", strlen("HTTP/1.1 200")) == 0);
    assert_non_null(strstr(answer, "Hello from Server B (Region 2)"));
    X509_free(peer);
    peer = NULL;

    // every child, recorded while the supervisor runs: seven actors, the
    // demo's region-2 chatd, two backends, and redis-server when it is installed
    kid_t kids[IT_MAX_KIDS];
    size_t nkids = s_children(sup, kids, IT_MAX_KIDS);
    assert_true(nkids >= 10);
    int nchatd = 0;
    for (size_t i = 0; i < nkids; i++)
        nchatd += strcmp(kids[i].comm, "chatd") == 0;
    assert_int_equal(nchatd, 2);
    const kid_t *statsd = NULL;
    for (size_t i = 0; i < nkids; i++)
        if (strcmp(kids[i].comm, "statsd") == 0)
            statsd = &kids[i];
    assert_non_null(statsd);

    // a child that dies is reported, not restarted, and the rest serves on
    assert_int_equal(kill(statsd->pid, SIGKILL), 0);
    assert_int_equal(s_wait_output(env, "statsd was killed by signal 9", it_now_ms() + 10000), 0);
    assert_int_equal(waitpid(sup, NULL, WNOHANG), 0);
    assert_int_equal(s_wait_answer(http, "/", "x-region: 1", "Hello from Server A (Region 1)", sup,
                                   it_now_ms() + 5000),
                     0);
    size_t after = s_children(sup, kids + nkids, IT_MAX_KIDS - nkids);
    for (size_t i = nkids; i < nkids + after; i++)
        assert_string_not_equal(kids[i].comm, "statsd");
    assert_int_equal(after, nkids - 1);

    // SIGTERM: exit 0, nothing left
    assert_int_equal(it_stop(env, sup, IT_STOP_MS), 0);
    for (size_t i = 0; i < nkids; i++) {
        if (s_alive(&kids[i]))
            fprintf(stderr, "child %d (%s) is still alive\n", (int) kids[i].pid, kids[i].comm);
        assert_false(s_alive(&kids[i]));
    }
    assert_int_equal(s_wait_output(env, "gateway exited with status 0", it_now_ms() + 1000), 0);
    assert_true(it_clean_stderr(env, "switchyard"));
}

//  Start run with RUN_NO_DEMO in env's directory, wait for the banner and
//  the HTTPS listener's certificate (into *peer), stop it. want is the
//  line run must have said about the certificate.
static void
s_run_no_demo(it_env_t *env,
              const char *name,
              const char *const *extra,
              int https,
              const char *want,
              X509 **peer)
{
    const char *args[] = {"run", NULL};
    pid_t sup = it_spawn(env, "switchyard", name, extra, args);
    assert_true(sup > 0);
    uint64_t deadline = it_now_ms() + IT_UP_MS;
    bool up = false;
    while (!up && it_now_ms() < deadline && waitpid(sup, NULL, WNOHANG) == 0) {
        char *out = it_read_file(env, name, "out");
        up = out && strstr(out, "Switchyard is running");
        free(out);
        if (!up)
            it_pause(50);
    }
    char *out = it_read_file(env, name, "out");
    bool said = out && strstr(out, want) && strstr(out, "https      https://127.0.0.1:");
    free(out);
    if (!up || !said)
        it_dump(env, name);
    assert_true(up);
    assert_true(said);
    // no route: the handshake and an HTTP answer (404) are all there is
    if (s_wait_tls(https, "HTTP/1.1 ", sup, it_now_ms() + IT_CERT_MS, peer) != 0)
        it_dump(env, name);
    assert_non_null(*peer);
    assert_int_equal(it_stop(env, sup, IT_STOP_MS), 0);
    assert_true(it_clean_stderr(env, name));
}

static void
test_cert_kept(void **state)
{
    it_env_t *env = *state;
    int taken[2];
    int http = taken[0] = it_free_port_pair(); // admin on http + 1
    assert_true(http > 0);
    int https = taken[1] = s_other_pair(taken, 1);
    assert_true(https > 0);
    char http_env[64], https_env[64], admin_env[64];
    snprintf(http_env, sizeof http_env, "GATEWAY_HTTP_ADDR=127.0.0.1:%d", http);
    snprintf(https_env, sizeof https_env, "GATEWAY_HTTPS_ADDR=127.0.0.1:%d", https);
    snprintf(admin_env, sizeof admin_env, "GATEWAY_ADMIN_ADDR=127.0.0.1:%d", http + 1);
    const char *extra[] = {http_env,
                           https_env,
                           admin_env,
                           "RUN_NO_DEMO=1",
                           "RUN_NO_REDIS=1",
                           "GATEWAY_DRAIN_TIMEOUT=1s",
                           NULL};

    // the first run installs one; the second (same store) keeps it
    X509 *first = NULL, *second = NULL;
    s_run_no_demo(env, "first", extra, https, IT_INSTALLED, &first);
    s_check_served_cert(first);
    s_run_no_demo(env, "second", extra, https,
                  "the stored default certificate (domain *) is kept (self-signed for localhost)",
                  &second);
    char *out = it_read_file(env, "second", "out");
    assert_non_null(out);
    assert_null(strstr(out, IT_INSTALLED));
    free(out);
    assert_int_equal(X509_cmp(first, second), 0);
    X509_free(first);
    X509_free(second);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_and_bad_value, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cert_kept, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("it_run", tests, NULL, NULL);
}
