/*  it - integration-test harness (see it.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "it.h"
#include "proto_util.h"

void
it_gateway_ports(char *http, char *admin)
{
    snprintf(http, 64, "GATEWAY_HTTP_ADDR=127.0.0.1:%d", it_free_port_pair());
    snprintf(admin, 64, "GATEWAY_ADMIN_ADDR=127.0.0.1:%d", it_free_port_pair());
}

uint64_t
it_now_ms(void)
{
    return proto_mono_us() / 1000;
}

void
it_pause(int ms)
{
    poll(NULL, 0, ms);
}

int
it_env_init(it_env_t *env)
{
    memset(env, 0, sizeof *env);
    proto_strlcpy(env->dir, "/tmp/sy-it-XXXXXX", sizeof env->dir);
    if (mkdtemp(env->dir) == NULL)
        return -1;
    snprintf(env->bus_dir, sizeof env->bus_dir, "%s/bus", env->dir);
    env->ctx = zmq_ctx_new();
    return env->ctx ? 0 : -1;
}

static void
s_rmtree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char child[512];
        snprintf(child, sizeof child, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
            s_rmtree(child);
        else
            unlink(child);
    }
    closedir(dir);
    rmdir(path);
}

void
it_env_fini(it_env_t *env)
{
    for (int i = 0; i < IT_MAX_PROCS; i++)
        if (env->procs[i].pid > 0)
            it_kill(env, env->procs[i].pid);
    if (env->ctx) {
        zmq_ctx_term(env->ctx);
        env->ctx = NULL;
    }
    if (env->dir[0] && getenv("IT_KEEP") == NULL)
        s_rmtree(env->dir);
}

static const char *
s_bin_dir(void)
{
    const char *dir = getenv("SWITCHYARD_BIN_DIR");
    return dir ? dir : "build/asan/bin";
}

static pid_t
s_fork_exec(it_env_t *env,
            const char *binary,
            const char *name,
            const char *const *env_extra,
            const char *const *argv_extra)
{
    char path[512], abspath[PATH_MAX], out[256], err[256];
    snprintf(path, sizeof path, "%s/%s", s_bin_dir(), binary);
    if (realpath(path, abspath) == NULL) {
        fprintf(stderr, "it: no binary %s\n", path);
        return -1;
    }
    snprintf(out, sizeof out, "%s/%s.out", env->dir, name);
    snprintf(err, sizeof err, "%s/%s.err", env->dir, name);

    // a minimal, explicit environment: nothing from the test runner leaks in
    const char *envp[64];
    char bus[160];
    size_t n = 0;
    static const char *pass[] = {"PATH", "HOME", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    char *copies[PROTO_ARRAY_SIZE(pass)] = {0};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(pass); i++) {
        const char *v = getenv(pass[i]);
        if (v == NULL)
            continue;
        size_t len = strlen(pass[i]) + strlen(v) + 2;
        copies[i] = proto_xmalloc(len);
        snprintf(copies[i], len, "%s=%s", pass[i], v);
        envp[n++] = copies[i];
    }
    bool has_bus = false;
    for (size_t i = 0; env_extra && env_extra[i] && n < 60; i++) {
        if (strncmp(env_extra[i], "BUS_DIR=", 8) == 0)
            has_bus = true;
        envp[n++] = env_extra[i];
    }
    snprintf(bus, sizeof bus, "BUS_DIR=%s", env->bus_dir);
    if (!has_bus)
        envp[n++] = bus;
    envp[n++] = "LOG_FORMAT=json";
    envp[n] = NULL;
    const char *argv[32];
    size_t a = 0;
    argv[a++] = abspath;
    for (size_t i = 0; argv_extra && argv_extra[i] && a < 31; i++)
        argv[a++] = argv_extra[i];
    argv[a] = NULL;

    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || chdir(env->dir) != 0)
            _exit(127);
        dup2(fo, STDOUT_FILENO);
        dup2(fe, STDERR_FILENO);
        close(fo);
        close(fe);
        execve(abspath, (char *const *) argv, (char *const *) envp);
        _exit(127);
    }
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(pass); i++)
        free(copies[i]);
    return pid;
}

pid_t
it_spawn(it_env_t *env,
         const char *binary,
         const char *name,
         const char *const *env_extra,
         const char *const *argv_extra)
{
    int slot = -1;
    for (int i = 0; i < IT_MAX_PROCS && slot < 0; i++)
        if (env->procs[i].pid == 0)
            slot = i;
    if (slot < 0)
        return -1;
    pid_t pid = s_fork_exec(env, binary, name, env_extra, argv_extra);
    if (pid > 0) {
        env->procs[slot].pid = pid;
        proto_strlcpy(env->procs[slot].name, name, sizeof env->procs[slot].name);
        proto_strlcpy(env->procs[slot].kind, binary, sizeof env->procs[slot].kind);
    }
    return pid;
}

static void
s_forget(it_env_t *env, pid_t pid)
{
    for (int i = 0; i < IT_MAX_PROCS; i++)
        if (env->procs[i].pid == pid)
            env->procs[i].pid = 0;
}

//  Wait for pid up to timeout_ms. Returns the raw status, or -1 on timeout.
static int
s_wait(pid_t pid, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (it_now_ms() >= deadline)
            return -1;
        it_pause(5);
    }
}

int
it_run(it_env_t *env,
       const char *binary,
       const char *name,
       const char *const *env_extra,
       const char *const *argv_extra,
       int timeout_ms)
{
    pid_t pid = s_fork_exec(env, binary, name, env_extra, argv_extra);
    if (pid < 0)
        return -1;
    int status = s_wait(pid, timeout_ms);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
it_req_endpoint(it_env_t *env, const char *kind, pid_t pid, char *out, size_t cap)
{
    snprintf(out, cap, "ipc://%s/%s.%d.req", env->bus_dir, kind, (int) pid);
}

void
it_pub_endpoint(it_env_t *env, const char *kind, pid_t pid, char *out, size_t cap)
{
    snprintf(out, cap, "ipc://%s/%s.%d.pub", env->bus_dir, kind, (int) pid);
}

int
it_wait_bound(it_env_t *env, const char *kind, pid_t pid, int timeout_ms)
{
    char req[256], pub[256];
    snprintf(req, sizeof req, "%s/%s.%d.req", env->bus_dir, kind, (int) pid);
    snprintf(pub, sizeof pub, "%s/%s.%d.pub", env->bus_dir, kind, (int) pid);
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    while (it_now_ms() < deadline) {
        if (access(req, F_OK) == 0 && access(pub, F_OK) == 0)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            s_forget(env, pid);
            return -1; // it died
        }
        it_pause(5);
    }
    return -1;
}

static void *
s_socket(it_env_t *env, int type, const char *endpoint)
{
    void *sock = zmq_socket(env->ctx, type);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(sock, endpoint);
    return sock;
}

void *
it_dealer(it_env_t *env, const char *endpoint)
{
    return s_socket(env, ZMQ_DEALER, endpoint);
}

void *
it_sub(it_env_t *env, const char *endpoint, const char *topic)
{
    void *sock = s_socket(env, ZMQ_SUB, endpoint);
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, topic, strlen(topic));
    return sock;
}

int
it_send(void *sock, proto_msg_t *msg)
{
    static uint64_t next_id = 1000; // test process only
    proto_buf_t buf = {0};
    msg->id = ++next_id;
    msg->src = "test/it";
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    int rc = proto_encode(msg, &buf);
    if (rc == 0)
        rc = it_send_raw(sock, buf.data, buf.size);
    proto_buf_free(&buf);
    return rc;
}

int
it_send_raw(void *sock, const void *body, size_t len)
{
    return zmq_send(sock, body, len, 0) < 0 ? -1 : 0;
}

int
it_recv(void *sock, proto_msg_t *msg, char *topic, size_t topic_cap, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return -1;
    zmq_msg_t part;
    int rc = -2;
    bool first = true;
    int more;
    do {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            return -1;
        }
        more = zmq_msg_more(&part);
        if (first && more && topic) {
            size_t n = zmq_msg_size(&part) < topic_cap - 1 ? zmq_msg_size(&part) : topic_cap - 1;
            memcpy(topic, zmq_msg_data(&part), n);
            topic[n] = '\0';
        }
        if (!more)
            rc = proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), msg);
        first = false;
        zmq_msg_close(&part);
    } while (more);
    return rc == 0 ? 0 : -2;
}

int
it_ping(void *sock, proto_msg_t *pong, int timeout_ms)
{
    proto_msg_t ping;
    proto_msg_init(&ping, PROTO_PING);
    ping.ping.sent_us = proto_mono_us();
    if (it_send(sock, &ping) != 0)
        return -1;
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    while (it_now_ms() < deadline) {
        int left = (int) (deadline - it_now_ms());
        int rc = it_recv(sock, pong, NULL, 0, left > 0 ? left : 1);
        if (rc == 0 && pong->type == PROTO_PONG && pong->id == ping.id)
            return 0;
        if (rc == -1)
            return -1;
    }
    return -1;
}

uint64_t
it_counter(const proto_msg_t *pong, const char *name)
{
    for (uint32_t i = 0; i < pong->pong.counters_count; i++)
        if (strcmp(pong->pong.counters[i].name, name) == 0)
            return pong->pong.counters[i].value;
    return UINT64_MAX;
}

int
it_stop(it_env_t *env, pid_t pid, int timeout_ms)
{
    kill(pid, SIGTERM);
    int status = s_wait(pid, timeout_ms);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s_forget(env, pid);
        return -1;
    }
    s_forget(env, pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
it_wait_exit(it_env_t *env, pid_t pid, int timeout_ms)
{
    int status = s_wait(pid, timeout_ms);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    s_forget(env, pid);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
it_kill(it_env_t *env, pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s_forget(env, pid);
}

char *
it_read_file(it_env_t *env, const char *name, const char *ext)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%s", env->dir, name, ext);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *text = proto_xmalloc(cap);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            text = proto_xrealloc(text, cap);
        }
    }
    text[len] = '\0';
    fclose(f);
    return text;
}

bool
it_clean_stderr(it_env_t *env, const char *name)
{
    char *text = it_read_file(env, name, "err");
    if (text == NULL)
        return false;
    bool clean = strstr(text, "AddressSanitizer") == NULL && strstr(text, "LeakSanitizer") == NULL
                 && strstr(text, "runtime error:") == NULL
                 && strstr(text, "UndefinedBehaviorSanitizer") == NULL;
    if (!clean)
        fprintf(stderr, "--- %s.err ---\n%s\n", name, text);
    free(text);
    return clean;
}

void
it_dump(it_env_t *env, const char *name)
{
    static const char *exts[] = {"out", "err"};
    for (size_t i = 0; i < 2; i++) {
        char *text = it_read_file(env, name, exts[i]);
        if (text == NULL)
            continue;
        size_t len = strlen(text);
        fprintf(stderr, "--- %s.%s (last 3000 bytes) ---\n%s\n", name, exts[i],
                len > 3000 ? text + len - 3000 : text);
        free(text);
    }
}

static int
s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = bind(fd, (struct sockaddr *) &sa, sizeof sa);
    close(fd);
    return rc == 0;
}

int
it_free_port_pair(void)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) != 0
            || getsockname(fd, (struct sockaddr *) &sa, &len) != 0) {
            close(fd);
            continue;
        }
        int port = ntohs(sa.sin_port);
        close(fd);
        if (port < 65534 && s_port_free(port) && s_port_free(port + 1))
            return port;
    }
    return -1;
}
