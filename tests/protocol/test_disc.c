/*  test_disc - unit tests for proto_disc.

    The pure helpers (bus file names, pid liveness, the XPUB endpoint of a
    ROUTER endpoint, spec checking) are table tests. The ipc source runs on
    real files in a mkdtemp directory, named after real processes: an alive
    pid is a forked child blocked reading a pipe, a dead pid is a child that
    has exited and been reaped. The list and dns sources use the same
    fixture; dns resolves "localhost" through c-ares (/etc/hosts).

    How an actor uses proto_disc, in short: proto_disc_new() with its bus
    directory and own pid, proto_disc_watch() per peer kind (spec from
    BUS_PEERS_<KIND>, NULL for ipc), and connect/disconnect in the callback.
    The first answer for ipc and list sources comes inside proto_disc_watch();
    later changes come from the loop.

    Every ev_run has a deadline timer that fails the test (5 s, or 250 ms
    where the directory watch must answer before the 1 s rescan could);
    nothing waits by sleeping. The fixture kills and reaps every child, removes every file
    and the directory, and destroys the loop, also when a test fails.
*/
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "proto_disc.h"
#include "proto_log.h"
#include "proto_util.h"

#define DEADLINE_S   5.0 // no ev_run in this file may take longer
#define MAX_CHILDREN 4
#define MAX_EVENTS   16

//  One callback invocation.
typedef struct {
    char kind[32];
    char req[PROTO_DISC_ENDPOINT_MAX];
    char pub[PROTO_DISC_ENDPOINT_MAX];
    bool added;
} event_t;

//  A child process that stays alive until killed: it blocks reading a pipe.
typedef struct {
    pid_t pid;    // 0: slot free
    int write_fd; // our end of its pipe
} child_t;

//  Per-test state: the fixture creates and destroys all of it.
typedef struct {
    struct ev_loop *loop;           // this test's loop
    ev_timer deadline;              // fails the run when it fires
    bool timed_out;                 // the deadline fired
    char dir[32];                   // mkdtemp bus directory
    child_t children[MAX_CHILDREN]; // killed and reaped in teardown
    proto_disc_t *disc;             // destroyed in teardown
    event_t events[MAX_EVENTS];     // what the callback reported
    size_t nevents;                 // entries in events
    size_t break_at;                // break the loop when nevents reaches this (0: never)
} fixture_t;

//  --------------------------------------------------------------------------
//  Fixture and helpers

static void
s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    fixture_t *fx = w->data;
    fx->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

//  The discovery callback: record, and break the loop when enough came.
static void
s_on_change(void *arg, const char *kind, const char *req, const char *pub, bool added)
{
    fixture_t *fx = arg;
    assert_true(fx->nevents < MAX_EVENTS);
    event_t *ev = &fx->events[fx->nevents++];
    assert_true(proto_strlcpy(ev->kind, kind, sizeof ev->kind));
    assert_true(proto_strlcpy(ev->req, req, sizeof ev->req));
    assert_true(proto_strlcpy(ev->pub, pub, sizeof ev->pub));
    ev->added = added;
    if (fx->break_at > 0 && fx->nevents >= fx->break_at)
        ev_break(fx->loop, EVBREAK_ALL);
}

//  Remove every file and directory in dir, then dir.
static void
s_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[PROTO_DISC_ENDPOINT_MAX];
        int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (n > 0 && (size_t) n < sizeof path && unlink(path) != 0 && errno == EISDIR)
            s_remove_dir(path);
    }
    closedir(d);
    rmdir(dir);
}

static void
s_kill_child(child_t *child)
{
    if (child->pid <= 0)
        return;
    kill(child->pid, SIGKILL);
    while (waitpid(child->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    close(child->write_fd);
    child->pid = 0;
    child->write_fd = -1;
}

static int
s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    proto_strlcpy(fx->dir, "/tmp/tdisc-XXXXXX", sizeof fx->dir);
    if (fx->loop == NULL || mkdtemp(fx->dir) == NULL) {
        if (fx->loop)
            ev_loop_destroy(fx->loop);
        free(fx);
        return -1;
    }
    ev_timer_init(&fx->deadline, s_on_deadline, DEADLINE_S, 0.);
    fx->deadline.data = fx;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    proto_disc_destroy(&fx->disc);
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        s_kill_child(&fx->children[i]);
    s_remove_dir(fx->dir);
    ev_timer_stop(fx->loop, &fx->deadline);
    ev_loop_destroy(fx->loop);
    free(fx);
    *state = NULL;
    return 0;
}

//  Fork a child that blocks reading a pipe until it is killed. Returns its slot.
static child_t *
s_spawn_alive(fixture_t *fx)
{
    child_t *child = NULL;
    for (size_t i = 0; i < MAX_CHILDREN && child == NULL; i++)
        if (fx->children[i].pid == 0)
            child = &fx->children[i];
    assert_non_null(child);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[1]);
        char byte;
        while (read(fds[0], &byte, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    close(fds[0]);
    child->pid = pid;
    child->write_fd = fds[1];
    return child;
}

//  The pid of a child that has exited and been reaped.
static pid_t
s_dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    assert_true(WIFEXITED(status));
    return pid;
}

static void
s_path_in(const char *dir, const char *kind, pid_t pid, const char *ext, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s.%d.%s", dir, kind, (int) pid, ext);
    assert_true(n > 0 && (size_t) n < cap);
}

static void
s_path(const fixture_t *fx, const char *kind, pid_t pid, const char *ext, char *out, size_t cap)
{
    s_path_in(fx->dir, kind, pid, ext, out, cap);
}

//  Create an empty bus file in dir: the scanner only reads names.
static void
s_touch_in(const char *dir, const char *kind, pid_t pid, const char *ext)
{
    char path[PROTO_DISC_ENDPOINT_MAX];
    s_path_in(dir, kind, pid, ext, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
}

static void
s_touch(const fixture_t *fx, const char *kind, pid_t pid, const char *ext)
{
    s_touch_in(fx->dir, kind, pid, ext);
}

static void
s_remove_in(const char *dir, const char *kind, pid_t pid, const char *ext)
{
    char path[PROTO_DISC_ENDPOINT_MAX];
    s_path_in(dir, kind, pid, ext, path, sizeof path);
    assert_int_equal(unlink(path), 0);
}

static bool
s_exists(const fixture_t *fx, const char *kind, pid_t pid, const char *ext)
{
    char path[PROTO_DISC_ENDPOINT_MAX];
    s_path(fx, kind, pid, ext, path, sizeof path);
    return access(path, F_OK) == 0;
}

//  Check that event i reports kind's instance pid in the bus directory.
static void
s_assert_ipc_event(const fixture_t *fx, size_t i, const char *kind, pid_t pid, bool added)
{
    char req[PROTO_DISC_ENDPOINT_MAX], pub[PROTO_DISC_ENDPOINT_MAX];
    int a = snprintf(req, sizeof req, "ipc://%s/%s.%d.req", fx->dir, kind, (int) pid);
    int b = snprintf(pub, sizeof pub, "ipc://%s/%s.%d.pub", fx->dir, kind, (int) pid);
    assert_true(a > 0 && (size_t) a < sizeof req && b > 0 && (size_t) b < sizeof pub);
    assert_true(i < fx->nevents);
    assert_string_equal(fx->events[i].kind, kind);
    assert_string_equal(fx->events[i].req, req);
    assert_string_equal(fx->events[i].pub, pub);
    assert_true(fx->events[i].added == added);
}

//  Run the loop until the callback has seen nevents in all; fail if
//  deadline_s passes first.
static void
s_run_within(fixture_t *fx, size_t nevents, double deadline_s)
{
    fx->break_at = nevents;
    fx->timed_out = false;
    ev_now_update(fx->loop);
    ev_timer_set(&fx->deadline, deadline_s, 0.);
    ev_timer_start(fx->loop, &fx->deadline);
    ev_run(fx->loop, 0);
    ev_timer_stop(fx->loop, &fx->deadline);
    fx->break_at = 0;
    assert_false(fx->timed_out);
    assert_true(fx->nevents >= nevents);
}

static void
s_run_until(fixture_t *fx, size_t nevents)
{
    s_run_within(fx, nevents, DEADLINE_S);
}

//  Run the loop for ms milliseconds: to show that nothing is reported.
static void
s_run_for(fixture_t *fx, int ms)
{
    fx->break_at = 0;
    ev_now_update(fx->loop);
    ev_timer_set(&fx->deadline, ms / 1000., 0.);
    ev_timer_start(fx->loop, &fx->deadline);
    ev_run(fx->loop, 0);
    ev_timer_stop(fx->loop, &fx->deadline);
    fx->timed_out = false;
}

//  What s_on_dir_poll looks for.
typedef struct {
    ev_timer timer;   // every 10 ms
    const char *path; // the directory
} dir_poll_t;

static void
s_on_dir_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    dir_poll_t *poll = w->data;
    struct stat st;
    if (stat(poll->path, &st) == 0 && S_ISDIR(st.st_mode))
        ev_break(loop, EVBREAK_ALL);
}

//  Run the loop until path is a directory (the loop's timers create it).
static void
s_run_until_dir(fixture_t *fx, const char *path)
{
    dir_poll_t poll = {.path = path};
    ev_timer_init(&poll.timer, s_on_dir_poll, 0.01, 0.01);
    poll.timer.data = &poll;
    ev_timer_start(fx->loop, &poll.timer);
    s_run_for(fx, (int) (DEADLINE_S * 1000));
    ev_timer_stop(fx->loop, &poll.timer);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

//  --------------------------------------------------------------------------
//  Names and endpoints

static void
test_parse_name(void **state)
{
    (void) state;
    char kind[32];
    pid_t pid = 0;
    bool is_req = false;
    assert_int_equal(proto_disc_parse_name("router.123.req", kind, sizeof kind, &pid, &is_req), 0);
    assert_string_equal(kind, "router");
    assert_int_equal(pid, 123);
    assert_true(is_req);
    assert_int_equal(proto_disc_parse_name("gateway.4.pub", kind, sizeof kind, &pid, &is_req), 0);
    assert_string_equal(kind, "gateway");
    assert_int_equal(pid, 4);
    assert_false(is_req);
    assert_int_equal(proto_disc_parse_name("rate_li-mit.9.req", kind, sizeof kind, &pid, &is_req),
                     0);
    assert_string_equal(kind, "rate_li-mit");

    //  The kind must fit with its NUL: 7 letters fit in 8 bytes, 8 do not.
    char small[8];
    assert_int_equal(proto_disc_parse_name("abcdefg.1.req", small, sizeof small, &pid, &is_req), 0);
    assert_string_equal(small, "abcdefg");

    static const char *const bad[] = {
        "router.req",       ".1.req",
        "router.-1.req",    "router.+1.req",
        "router.0.req",     "router.12.sock",
        "Router.12.req",    "router.12x.req",
        "router.1.req.bak", "router..req",
        "router.12.",       "router.12",
        "router",           "",
        "route r.12.req",   "router.99999999999999999999.req",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++) {
        memset(kind, 'x', sizeof kind);
        if (proto_disc_parse_name(bad[i], kind, sizeof kind, &pid, &is_req) != -1)
            fail_msg("parse_name accepted \"%s\"", bad[i]);
    }
    assert_int_equal(proto_disc_parse_name("abcdefgh.1.req", small, sizeof small, &pid, &is_req),
                     -1);
}

static void
test_pid_alive(void **state)
{
    (void) state;
    assert_true(proto_disc_pid_alive(getpid()));
    assert_false(proto_disc_pid_alive(s_dead_pid()));
    assert_false(proto_disc_pid_alive(0));
    assert_false(proto_disc_pid_alive(-1));
}

static void
test_pub_of(void **state)
{
    (void) state;
    char out[PROTO_DISC_ENDPOINT_MAX];
    assert_int_equal(proto_disc_pub_of("tcp://127.0.0.1:7100", out, sizeof out), 0);
    assert_string_equal(out, "tcp://127.0.0.1:7101");
    assert_int_equal(proto_disc_pub_of("tcp://[::1]:7100", out, sizeof out), 0);
    assert_string_equal(out, "tcp://[::1]:7101");
    assert_int_equal(proto_disc_pub_of("tcp://router:65534", out, sizeof out), 0);
    assert_string_equal(out, "tcp://router:65535");

    static const char *const bad[] = {
        "ipc:///tmp/bus/router.1.req",
        "tcp://127.0.0.1",
        "tcp://[::1]",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:65535",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:7100x",
        "tcp:7100",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++)
        if (proto_disc_pub_of(bad[i], out, sizeof out) != -1)
            fail_msg("pub_of accepted \"%s\"", bad[i]);

    //  Too small for the answer.
    char tiny[8];
    assert_int_equal(proto_disc_pub_of("tcp://127.0.0.1:7100", tiny, sizeof tiny), -1);
}

static void
test_check_spec(void **state)
{
    (void) state;
    char err[128];
    static const char *const good[] = {
        "", "dns:router:7100", "tcp://10.0.0.1:7100", "tcp://a:1,tcp://b:2", "tcp://[::1]:7100",
    };
    assert_int_equal(proto_disc_check_spec(NULL, err, sizeof err), 0);
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(good); i++)
        if (proto_disc_check_spec(good[i], err, sizeof err) != 0)
            fail_msg("check_spec rejected \"%s\": %s", good[i], err);

    static const char *const bad[] = {
        "dns:router",           "dns::7100",  "dns:r:0",  "dns:r:70000",
        "dns:r:65535",          "dns:r:",     "tcp://a",  "udp://a:1",
        "tcp://a:1,,tcp://b:2", ",tcp://a:1", "tcp://:1", "router",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        if (proto_disc_check_spec(bad[i], err, sizeof err) != -1)
            fail_msg("check_spec accepted \"%s\"", bad[i]);
        if (err[0] == '\0')
            fail_msg("check_spec gave no reason for \"%s\"", bad[i]);
    }
}

//  A list ending in a comma is as malformed as one with an empty entry in the
//  middle; so are signs, spaces and leading zeros in numbers.
static void
test_check_spec_trailing_comma(void **state)
{
    (void) state;
    char err[128] = "";
    assert_int_equal(proto_disc_check_spec("tcp://a:1,", err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(proto_disc_check_spec("tcp://a:+1", err, sizeof err), -1);
    assert_int_equal(proto_disc_check_spec("tcp://a: 1", err, sizeof err), -1);
    assert_int_equal(proto_disc_check_spec("dns:r:+7100", err, sizeof err), -1);
    char kind[16];
    pid_t pid;
    bool is_req;
    assert_int_equal(proto_disc_parse_name("router. 1.req", kind, sizeof kind, &pid, &is_req), -1);
    assert_int_equal(proto_disc_parse_name("router.0123.req", kind, sizeof kind, &pid, &is_req),
                     -1);
    assert_int_equal(proto_disc_parse_name("router.+1.req", kind, sizeof kind, &pid, &is_req), -1);
}

//  --------------------------------------------------------------------------
//  Sources

static void
test_ipc_scan(void **state)
{
    fixture_t *fx = *state;
    child_t *alive = s_spawn_alive(fx);
    pid_t dead = s_dead_pid();
    s_touch(fx, "router", alive->pid, "req");
    s_touch(fx, "router", alive->pid, "pub");
    s_touch(fx, "router", dead, "req");
    s_touch(fx, "router", dead, "pub");
    s_touch(fx, "balancer", alive->pid, "req");
    s_touch(fx, "router", getpid(), "req");

    fx->disc = proto_disc_new(fx->loop, fx->dir, getpid(), s_on_change, fx);
    assert_non_null(fx->disc);
    char err[128] = "";
    assert_int_equal(proto_disc_watch(fx->disc, "router", NULL, err, sizeof err), 0);

    //  The first scan happened inside proto_disc_watch.
    assert_int_equal(fx->nevents, 1);
    s_assert_ipc_event(fx, 0, "router", alive->pid, true);
    assert_false(s_exists(fx, "router", dead, "req")); // stale: removed
    assert_false(s_exists(fx, "router", dead, "pub"));
    assert_true(s_exists(fx, "router", getpid(), "req")); // ours: kept, not reported
    assert_true(s_exists(fx, "balancer", alive->pid, "req"));
    assert_int_equal(proto_disc_count(fx->disc, "router"), 1);
    assert_int_equal(proto_disc_count(fx->disc, "balancer"), 0); // not watched

    //  The instance dies: an explicit rescan reports it gone and removes its files.
    pid_t gone = alive->pid;
    s_kill_child(alive);
    proto_disc_rescan(fx->disc);
    assert_int_equal(fx->nevents, 2);
    s_assert_ipc_event(fx, 1, "router", gone, false);
    assert_int_equal(proto_disc_count(fx->disc, "router"), 0);
    assert_false(s_exists(fx, "router", gone, "req"));
    assert_false(s_exists(fx, "router", gone, "pub"));

    //  A new instance appears: the loop (directory watch or periodic rescan) finds it.
    child_t *fresh = s_spawn_alive(fx);
    s_touch(fx, "router", fresh->pid, "req");
    s_touch(fx, "router", fresh->pid, "pub");
    s_run_until(fx, 3);
    assert_int_equal(fx->nevents, 3);
    s_assert_ipc_event(fx, 2, "router", fresh->pid, true);
    assert_int_equal(proto_disc_count(fx->disc, "router"), 1);
}

//  The directory watch: BUS_DIR is created (with its parents) when missing,
//  so the watch exists before any actor binds; an instance counts once both
//  of its files exist; its files appearing or going away are reported
//  within S_WATCH_S, which the 1 s rescan could not do (it ticks 1 s after
//  the watch started); other names change nothing. A removed BUS_DIR is
//  created and watched again by the rescan.
#define S_WATCH_S 0.25

static void
test_ipc_watch(void **state)
{
    fixture_t *fx = *state;
    char bus[64];
    snprintf(bus, sizeof bus, "%s/run/bus", fx->dir);
    fx->disc = proto_disc_new(fx->loop, bus, getpid(), s_on_change, fx);
    assert_non_null(fx->disc);
    char err[128] = "";
    assert_int_equal(proto_disc_watch(fx->disc, "router", NULL, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(bus, &st), 0); // created by the watch
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fx->nevents, 0);

    //  Half bound (.req only), or files that are not bus files: nothing yet.
    child_t *alive = s_spawn_alive(fx);
    s_touch_in(bus, "router", alive->pid, "req");
    s_touch_in(bus, "router", alive->pid, "tmp");
    s_run_for(fx, 30);
    assert_int_equal(fx->nevents, 0);

    //  Bound: found at once.
    s_touch_in(bus, "router", alive->pid, "pub");
    s_run_within(fx, 1, S_WATCH_S);
    assert_int_equal(fx->nevents, 1);
    assert_string_equal(fx->events[0].kind, "router");
    assert_true(fx->events[0].added);
    char req[PROTO_DISC_ENDPOINT_MAX];
    snprintf(req, sizeof req, "ipc://%s/router.%d.req", bus, (int) alive->pid);
    assert_string_equal(fx->events[0].req, req);

    //  Its files removed (an actor's clean exit): gone at once.
    s_remove_in(bus, "router", alive->pid, "pub");
    s_remove_in(bus, "router", alive->pid, "req");
    s_run_within(fx, 2, S_WATCH_S);
    assert_int_equal(fx->nevents, 2);
    assert_false(fx->events[1].added);
    assert_int_equal(proto_disc_count(fx->disc, "router"), 0);

    //  The directory removed: the rescan creates and watches it again.
    s_remove_in(bus, "router", alive->pid, "tmp");
    assert_int_equal(rmdir(bus), 0);
    s_run_until_dir(fx, bus);
    s_touch_in(bus, "router", alive->pid, "req");
    s_touch_in(bus, "router", alive->pid, "pub");
    s_run_until(fx, 3);
    assert_int_equal(fx->nevents, 3);
    assert_string_equal(fx->events[2].req, req);
    assert_true(fx->events[2].added);
}

static void
test_list_spec(void **state)
{
    fixture_t *fx = *state;
    fx->disc = proto_disc_new(fx->loop, fx->dir, getpid(), s_on_change, fx);
    assert_non_null(fx->disc);
    char err[128] = "";
    assert_int_equal(proto_disc_watch(fx->disc, "apid", "tcp://127.0.0.1:7100,tcp://127.0.0.1:7200",
                                      err, sizeof err),
                     0);
    assert_int_equal(fx->nevents, 2);
    assert_string_equal(fx->events[0].kind, "apid");
    assert_string_equal(fx->events[0].req, "tcp://127.0.0.1:7100");
    assert_string_equal(fx->events[0].pub, "tcp://127.0.0.1:7101");
    assert_true(fx->events[0].added);
    assert_string_equal(fx->events[1].kind, "apid");
    assert_string_equal(fx->events[1].req, "tcp://127.0.0.1:7200");
    assert_string_equal(fx->events[1].pub, "tcp://127.0.0.1:7201");
    assert_true(fx->events[1].added);
    assert_int_equal(proto_disc_count(fx->disc, "apid"), 2);

    //  A bad spec is refused with a reason, and nothing is watched.
    err[0] = '\0';
    assert_int_equal(proto_disc_watch(fx->disc, "chatd", "dns:chatd", err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(proto_disc_count(fx->disc, "chatd"), 0);
    assert_int_equal(fx->nevents, 2);
}

static void
test_dns_spec(void **state)
{
    fixture_t *fx = *state;
    fx->disc = proto_disc_new(fx->loop, fx->dir, getpid(), s_on_change, fx);
    assert_non_null(fx->disc);
    char err[128] = "";
    if (proto_disc_watch(fx->disc, "statsd", "dns:localhost:7300", err, sizeof err) != 0)
        fail_msg("watch dns:localhost:7300: %s", err);
    if (fx->nevents == 0) // c-ares may answer from /etc/hosts at once
        s_run_until(fx, 1);

    assert_true(fx->nevents >= 1);
    for (size_t i = 0; i < fx->nevents; i++) {
        const event_t *ev = &fx->events[i];
        assert_string_equal(ev->kind, "statsd");
        assert_true(ev->added);
        if (strcmp(ev->req, "tcp://127.0.0.1:7300") == 0)
            assert_string_equal(ev->pub, "tcp://127.0.0.1:7301");
        else if (strcmp(ev->req, "tcp://[::1]:7300") == 0)
            assert_string_equal(ev->pub, "tcp://[::1]:7301");
        else
            fail_msg("unexpected endpoint %s", ev->req);
    }
    assert_int_equal(proto_disc_count(fx->disc, "statsd"), fx->nevents);
}

//  Destroy with every kind of source (and a dns query possibly in flight),
//  then again on the NULL pointer.
static void
test_destroy_twice(void **state)
{
    fixture_t *fx = *state;
    proto_disc_t *disc = proto_disc_new(fx->loop, fx->dir, getpid(), s_on_change, fx);
    assert_non_null(disc);
    char err[128] = "";
    assert_int_equal(proto_disc_watch(disc, "router", NULL, err, sizeof err), 0);
    assert_int_equal(proto_disc_watch(disc, "apid", "tcp://127.0.0.1:7100", err, sizeof err), 0);
    assert_int_equal(proto_disc_watch(disc, "statsd", "dns:localhost:7300", err, sizeof err), 0);
    size_t nevents = fx->nevents;
    proto_disc_destroy(&disc);
    assert_null(disc);
    proto_disc_destroy(&disc);
    assert_null(disc);
    assert_int_equal(fx->nevents, nevents); // destroy reports nothing
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_pid_alive),
        cmocka_unit_test(test_pub_of),
        cmocka_unit_test(test_check_spec),
        cmocka_unit_test(test_check_spec_trailing_comma),
        cmocka_unit_test_setup_teardown(test_ipc_scan, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ipc_watch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_list_spec, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dns_spec, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_twice, s_setup, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("proto_disc", tests, NULL, NULL);
    proto_log_shutdown();
    return failed;
}
