/*  it - integration-test harness: start real actor binaries in a private
    temp directory and drive them over the bus.

    Every process started is stopped by PID; every wait polls a condition with
    a deadline; ports are chosen free at run time. Binaries come from
    $SWITCHYARD_BIN_DIR (tests/run.sh sets it to the sanitizer build).
*/
#ifndef IT_H
#define IT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define IT_MAX_PROCS 16

typedef struct {
    pid_t pid;     // 0 when not running
    char name[64]; // log file stem
    char kind[32]; // binary name
} it_proc_t;

typedef struct {
    char dir[64];                  // private temp directory (cwd of every child)
    char bus_dir[128];             // <dir>/bus
    void *ctx;                     // ZeroMQ context for the test's own sockets
    it_proc_t procs[IT_MAX_PROCS]; // started processes
} it_env_t;

//  Make the temp directory and the ZeroMQ context. Returns 0 or -1.
int it_env_init(it_env_t *env);

//  Stop (SIGKILL) anything still running, remove the directory, end the context.
void it_env_fini(it_env_t *env);

//  Start bin/<binary> in env->dir with BUS_DIR=<bus_dir> (unless env_extra
//  sets it), LOG_FORMAT=json, the sanitizer options, and env_extra
//  ("NAME=value", NULL-terminated, may be NULL). stdout and stderr go to
//  <dir>/<name>.out / .err. argv_extra (NULL-terminated, may be NULL) are
//  arguments. Returns the pid, or -1.
pid_t it_spawn(it_env_t *env,
               const char *binary,
               const char *name,
               const char *const *env_extra,
               const char *const *argv_extra);

//  Run a binary to completion (bounded by timeout_ms) with output to
//  <dir>/<name>.out/.err; returns its exit status (WEXITSTATUS), or -1 if
//  it did not exit normally or timed out (then it is killed).
int it_run(it_env_t *env,
           const char *binary,
           const char *name,
           const char *const *env_extra,
           const char *const *argv_extra,
           int timeout_ms);

//  Wait until the actor's two ipc files exist. Returns 0 or -1 on timeout.
int it_wait_bound(it_env_t *env, const char *kind, pid_t pid, int timeout_ms);

//  Endpoints of an actor started in env (ipc).
void it_req_endpoint(it_env_t *env, const char *kind, pid_t pid, char *out, size_t cap);
void it_pub_endpoint(it_env_t *env, const char *kind, pid_t pid, char *out, size_t cap);

//  A DEALER connected to endpoint; a SUB connected and subscribed to topic.
void *it_dealer(it_env_t *env, const char *endpoint);
void *it_sub(it_env_t *env, const char *endpoint, const char *topic);

//  Send msg (envelope filled: id, src "test/it", ts) on a DEALER.
int it_send(void *sock, proto_msg_t *msg);
//  Send raw frames on a socket.
int it_send_raw(void *sock, const void *body, size_t len);

//  Receive one message (last frame decoded) within timeout_ms. For a SUB the
//  topic is copied into topic (may be NULL). Returns 0, -1 on timeout, -2 if
//  it did not decode.
int it_recv(void *sock, proto_msg_t *msg, char *topic, size_t topic_cap, int timeout_ms);

//  Ping and wait for the pong (messages that are not the pong are skipped).
int it_ping(void *sock, proto_msg_t *pong, int timeout_ms);

//  A counter of a pong, or UINT64_MAX if absent.
uint64_t it_counter(const proto_msg_t *pong, const char *name);

//  SIGTERM pid and wait up to timeout_ms; returns the exit status, or -1 if
//  it had to be killed or did not exit normally.
int it_stop(it_env_t *env, pid_t pid, int timeout_ms);

//  Wait up to timeout_ms for pid to exit by itself; returns its exit status,
//  or -1 if it did not exit normally in time (then it is killed).
int it_wait_exit(it_env_t *env, pid_t pid, int timeout_ms);

//  SIGKILL pid and reap it.
void it_kill(it_env_t *env, pid_t pid);

//  True if <dir>/<name>.err holds no sanitizer report. Prints it otherwise.
bool it_clean_stderr(it_env_t *env, const char *name);

//  Print the tail of a process's logs (on failure).
void it_dump(it_env_t *env, const char *name);

//  Read <dir>/<name>.<ext> into a malloc'd string (caller frees), or NULL.
char *it_read_file(it_env_t *env, const char *name, const char *ext);

//  A free TCP port p on 127.0.0.1 such that p+1 is free too.
int it_free_port_pair(void);

//  The gateway's two listeners on free loopback ports (the defaults 8080 and
//  9000 may be taken): "GATEWAY_HTTP_ADDR=127.0.0.1:P" and
//  "GATEWAY_ADMIN_ADDR=127.0.0.1:Q" into http and admin (64 bytes each).
void it_gateway_ports(char *http, char *admin);

//  Milliseconds of the monotonic clock.
uint64_t it_now_ms(void);

//  Wait up to ms without spinning (poll with no fds): the pause between two
//  checks of a condition, never a synchronisation by itself.
void it_pause(int ms);

#endif
