/*  gw_splice - response bodies moved backend -> client by the kernel.

    A large response body with a known length does not need to pass through
    the gateway's memory: splice(2) moves it from the backend's socket into
    a pipe and from the pipe into the client's socket, saving the two copies
    (and the memmove) of the read/write path. A pipe holds what the client
    cannot take yet, so it is also the body's buffer; it goes back to a small
    pool when it is empty again, and is closed when a transfer ends early.
*/
#ifndef GW_SPLICE_H
#define GW_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GW_SPLICE_MIN      (64 * 1024)  // bodies with at least this much left are spliced
#define GW_SPLICE_PIPE     (256 * 1024) // pipe size asked for (the default 64 KiB if refused)
#define GW_SPLICE_IDLE_MAX 64           // empty pipes kept for the next transfer

typedef struct gw_pipes gw_pipes_t;

//  One pipe and what is in it.
typedef struct {
    int rfd;     // read end (-1: none)
    int wfd;     // write end
    size_t held; // bytes in the pipe
} gw_pipe_t;

//  Counters, for pong (splice.*).
typedef struct {
    uint64_t transfers; // bodies spliced
    uint64_t bytes;     // bytes moved to clients by splice
    uint64_t fallbacks; // bodies copied because no pipe could be made
    uint64_t pipes;     // pipes open now (in use and idle)
} gw_splice_stats_t;

gw_pipes_t *gw_pipes_new(void);
void gw_pipes_destroy(gw_pipes_t **self_p);

//  An empty pipe, from the pool or new. Returns 0, or -1 (out of
//  descriptors or pipe memory): the caller copies instead.
int gw_pipes_take(gw_pipes_t *self, gw_pipe_t *pipe);

//  Returns a pipe: kept when it is empty and the pool has room, else closed.
//  Safe on a pipe that was never taken (rfd -1).
void gw_pipes_give(gw_pipes_t *self, gw_pipe_t *pipe);

//  Moves up to max bytes from the socket fd into the pipe. Returns what it
//  moved, 0 at the socket's end, or -1 with errno (EAGAIN: nothing to read,
//  or the pipe is full).
ssize_t gw_pipe_fill(gw_pipe_t *pipe, int fd, size_t max);

//  Moves what the pipe holds into the socket fd; more: further bytes follow.
//  Returns what it moved, or -1 with errno (EAGAIN: the socket is full).
ssize_t gw_pipe_drain(gw_pipe_t *pipe, int fd, bool more);

const gw_splice_stats_t *gw_pipes_stats(const gw_pipes_t *self);
void gw_pipes_count(gw_pipes_t *self, bool transfer, uint64_t bytes, bool fallback);

#endif
