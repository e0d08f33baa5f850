/*  t_redis - a real redis-server for tests (see t_redis.h). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "t_redis.h"

#define DEADLINE_S 5.0 // a server that does not answer by then fails the test

int
t_redis_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *) &sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

//  True once the server at port answers PING (any answer, NOAUTH included).
bool
t_redis_answers(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *reply = redisCommand(c, "PING");
        ok = reply != NULL;
        freeReplyObject(reply);
    }
    redisFree(c);
    return ok;
}

pid_t
t_redis_start(int port, const char *password)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the test
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        const char *argv[] = {"redis-server",
                              "--port",
                              port_text,
                              "--save",
                              "",
                              "--appendonly",
                              "no",
                              "--bind",
                              "127.0.0.1",
                              "--dir",
                              "/tmp",
                              "--enable-debug-command",
                              "local",
                              password ? "--requirepass" : NULL,
                              password,
                              NULL};
        execvp("redis-server", (char *const *) argv);
        _exit(127);
    }
    double until = ev_time() + DEADLINE_S;
    while (!t_redis_answers(port)) {
        assert_true(ev_time() < until);
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); // still running
        poll(NULL, 0, 10);                                // the next try, bounded above
    }
    return pid;
}

void
t_redis_stop(pid_t *pid_p, int sig)
{
    if (*pid_p > 0) {
        kill(*pid_p, sig);
        waitpid(*pid_p, NULL, 0);
        *pid_p = 0;
    }
}
