/*  test_splice - unit tests for gw_splice, the pipes of spliced bodies.

    Real sockets (TCP over loopback: splice needs a socket or a pipe on one
    side) carry bytes in through a pipe and out again; the pool keeps empty
    pipes up to its bound and closes a pipe that still holds bytes.
*/
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../gateway/gw_splice.h"

//  A connected pair of TCP sockets on loopback, both non-blocking.
static void
s_tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *) &a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(l, (struct sockaddr *) &a, &len), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[0], (struct sockaddr *) &a, sizeof a), 0);
    fds[1] = accept(l, NULL, NULL);
    assert_true(fds[1] >= 0);
    close(l);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
}

static int
s_open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static void
test_bytes_through_a_pipe(void **state)
{
    (void) state;
    gw_pipes_t *pipes = gw_pipes_new();
    int in[2], out[2];
    s_tcp_pair(in);
    s_tcp_pair(out);
    char data[100000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char) (i * 7 + i / 251);
    gw_pipe_t pipe;
    assert_int_equal(gw_pipes_take(pipes, &pipe), 0);
    assert_int_equal(pipe.held, 0);

    size_t sent = 0, moved = 0, got = 0;
    char back[sizeof data];
    for (int round = 0; round < 10000 && got < sizeof data; round++) {
        if (sent < sizeof data) {
            ssize_t n = write(in[0], data + sent, sizeof data - sent);
            if (n > 0)
                sent += (size_t) n;
        }
        ssize_t n = gw_pipe_fill(&pipe, in[1], sizeof data - moved);
        assert_true(n > 0 || errno == EAGAIN);
        if (n > 0)
            moved += (size_t) n;
        if (pipe.held > 0) {
            size_t before = pipe.held;
            n = gw_pipe_drain(&pipe, out[0], moved < sizeof data);
            assert_true(n > 0 || errno == EAGAIN);
            if (n > 0)
                assert_int_equal(pipe.held, before - (size_t) n);
        }
        n = read(out[1], back + got, sizeof back - got);
        if (n > 0)
            got += (size_t) n;
    }
    assert_int_equal(got, sizeof data);
    assert_memory_equal(back, data, sizeof data);
    assert_int_equal(pipe.held, 0);

    //  The socket's end: 0 from fill.
    shutdown(in[0], SHUT_WR);
    assert_int_equal(gw_pipe_fill(&pipe, in[1], 4096), 0);

    gw_pipes_give(pipes, &pipe);
    assert_int_equal(pipe.rfd, -1);
    assert_int_equal(gw_pipes_stats(pipes)->pipes, 1); // kept, empty
    for (int i = 0; i < 2; i++) {
        close(in[i]);
        close(out[i]);
    }
    gw_pipes_destroy(&pipes);
    assert_null(pipes);
}

static void
test_pool_bounds(void **state)
{
    (void) state;
    int fds_before = s_open_fds();
    gw_pipes_t *pipes = gw_pipes_new();
    gw_pipe_t many[GW_SPLICE_IDLE_MAX + 8];
    for (size_t i = 0; i < GW_SPLICE_IDLE_MAX + 8; i++)
        assert_int_equal(gw_pipes_take(pipes, &many[i]), 0);
    assert_int_equal(gw_pipes_stats(pipes)->pipes, GW_SPLICE_IDLE_MAX + 8);
    for (size_t i = 0; i < GW_SPLICE_IDLE_MAX + 8; i++)
        gw_pipes_give(pipes, &many[i]);
    //  Only the bound is kept; the rest are closed.
    assert_int_equal(gw_pipes_stats(pipes)->pipes, GW_SPLICE_IDLE_MAX);
    assert_int_equal(s_open_fds(), fds_before + 2 * GW_SPLICE_IDLE_MAX);

    //  A pipe that still holds bytes (a body abandoned mid-way) is closed,
    //  never handed to the next transfer.
    gw_pipe_t p;
    assert_int_equal(gw_pipes_take(pipes, &p), 0);
    assert_int_equal(write(p.wfd, "left", 4), 4);
    p.held = 4;
    gw_pipes_give(pipes, &p);
    assert_int_equal(p.rfd, -1);
    assert_int_equal(gw_pipes_stats(pipes)->pipes, GW_SPLICE_IDLE_MAX - 1);
    gw_pipe_t q;
    assert_int_equal(gw_pipes_take(pipes, &q), 0);
    char c;
    assert_int_equal(read(q.rfd, &c, 1), -1); // empty
    assert_int_equal(errno, EAGAIN);
    gw_pipes_give(pipes, &q);

    //  Giving a pipe that was never taken does nothing.
    gw_pipe_t none = {.rfd = -1, .wfd = -1};
    gw_pipes_give(pipes, &none);

    gw_pipes_count(pipes, true, 100, false);
    gw_pipes_count(pipes, false, 50, true);
    assert_int_equal(gw_pipes_stats(pipes)->transfers, 1);
    assert_int_equal(gw_pipes_stats(pipes)->bytes, 150);
    assert_int_equal(gw_pipes_stats(pipes)->fallbacks, 1);
    gw_pipes_destroy(&pipes);
    assert_int_equal(s_open_fds(), fds_before);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_through_a_pipe),
        cmocka_unit_test(test_pool_bounds),
    };
    return cmocka_run_group_tests_name("gw_splice", tests, NULL, NULL);
}
