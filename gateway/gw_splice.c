/*  gw_splice - response bodies moved backend -> client by the kernel.

    The pool is a stack of empty pipes (at most GW_SPLICE_IDLE_MAX); a pipe
    is asked for GW_SPLICE_PIPE bytes once, when it is made.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "gw_splice.h"
#include "proto_util.h"

struct gw_pipes {
    gw_pipe_t idle[GW_SPLICE_IDLE_MAX]; // empty pipes
    size_t nidle;                       // how many
    gw_splice_stats_t stats;            // counters
};

gw_pipes_t *
gw_pipes_new(void)
{
    return proto_xcalloc(1, sizeof(gw_pipes_t));
}

static void
s_close(gw_pipes_t *self, gw_pipe_t *pipe)
{
    if (pipe->rfd < 0)
        return;
    close(pipe->rfd);
    close(pipe->wfd);
    pipe->rfd = pipe->wfd = -1;
    pipe->held = 0;
    self->stats.pipes--;
}

void
gw_pipes_destroy(gw_pipes_t **self_p)
{
    gw_pipes_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->nidle > 0)
        s_close(self, &self->idle[--self->nidle]);
    free(self);
    *self_p = NULL;
}

int
gw_pipes_take(gw_pipes_t *self, gw_pipe_t *pipe)
{
    if (self->nidle > 0) {
        *pipe = self->idle[--self->nidle];
        return 0;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        pipe->rfd = pipe->wfd = -1;
        return -1;
    }
    (void) fcntl(fds[1], F_SETPIPE_SZ, GW_SPLICE_PIPE); // a smaller pipe works too
    pipe->rfd = fds[0];
    pipe->wfd = fds[1];
    pipe->held = 0;
    self->stats.pipes++;
    return 0;
}

void
gw_pipes_give(gw_pipes_t *self, gw_pipe_t *pipe)
{
    if (pipe->rfd < 0)
        return;
    if (pipe->held == 0 && self->nidle < GW_SPLICE_IDLE_MAX) {
        self->idle[self->nidle++] = *pipe;
        pipe->rfd = pipe->wfd = -1;
        return;
    }
    s_close(self, pipe); // bytes of an abandoned body: the pipe goes with them
}

ssize_t
gw_pipe_fill(gw_pipe_t *pipe, int fd, size_t max)
{
    ssize_t n = splice(fd, NULL, pipe->wfd, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0)
        pipe->held += (size_t) n;
    return n;
}

ssize_t
gw_pipe_drain(gw_pipe_t *pipe, int fd, bool more)
{
    unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0);
    ssize_t n = splice(pipe->rfd, NULL, fd, NULL, pipe->held, flags);
    if (n > 0)
        pipe->held -= (size_t) n;
    return n;
}

const gw_splice_stats_t *
gw_pipes_stats(const gw_pipes_t *self)
{
    return &self->stats;
}

void
gw_pipes_count(gw_pipes_t *self, bool transfer, uint64_t bytes, bool fallback)
{
    self->stats.transfers += transfer;
    self->stats.bytes += bytes;
    self->stats.fallbacks += fallback;
}
