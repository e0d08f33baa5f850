/*  demo_server - the demo backend's listener, signals and connections. */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "demo_conn.h"
#include "demo_routes.h"
#include "demo_server.h"
#include "proto_log.h"
#include "proto_util.h"

#define DEMO_SERVER_BACKLOG      4096 // listen queue (the kernel caps it at somaxconn)
#define DEMO_SERVER_ACCEPT_BATCH 64   // accepts per readable event
#define DEMO_SERVER_FD_PAUSE     0.1  // seconds without accepting when out of descriptors

struct demo_server {
    struct ev_loop *loop;   // the one loop
    demo_routes_t *routes;  // what we answer
    int listen_fd;          // listening socket, -1 when closed
    ev_io accept_watcher;   // listen_fd readable
    ev_timer accept_pause;  // resumes accepting after running out of descriptors
    ev_signal sigterm;      // SIGTERM watcher
    ev_signal sigint;       // SIGINT watcher
    demo_conn_list_t conns; // open connections
};

static struct addrinfo *
s_resolve(const char *addr, uint16_t port)
{
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned) port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *list = NULL;
    if (getaddrinfo(addr, service, &hints, &list) != 0)
        return NULL;
    return list;
}

int
demo_server_check_addr(const char *addr)
{
    struct addrinfo *list = s_resolve(addr, 1);
    if (list == NULL)
        return -1;
    freeaddrinfo(list);
    return 0;
}

static int
s_listen(const char *addr, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo *list = s_resolve(addr, port);
    if (list == NULL) {
        snprintf(err, errlen, "cannot resolve DEMO_ADDR '%s'", addr);
        return -1;
    }
    int fd = -1, error = 0;
    for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, DEMO_SERVER_BACKLOG) != 0) {
            error = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    if (fd < 0)
        snprintf(err, errlen, "cannot listen on %s:%u: %s", addr, (unsigned) port, strerror(error));
    return fd;
}

static void
s_on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    demo_server_t *self = w->data;
    ev_io_start(loop, &self->accept_watcher);
}

static void
s_on_acceptable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) revents;
    demo_server_t *self = w->data;
    for (int i = 0; i < DEMO_SERVER_ACCEPT_BATCH; i++) {
        int fd = accept4(self->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            // out of descriptors or memory: the listener would stay readable
            // and spin the loop, so stop accepting for a moment
            log_warn("accept failed, pausing", LOG_ERRNO(errno),
                     LOG_U("connections", self->conns.count));
            ev_io_stop(loop, &self->accept_watcher);
            ev_timer_set(&self->accept_pause, DEMO_SERVER_FD_PAUSE, 0.);
            ev_timer_start(loop, &self->accept_pause);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        demo_conn_new(loop, fd, self->routes, &self->conns);
    }
}

static void
s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) revents;
    demo_server_t *self = w->data;
    log_info("stopping", LOG_S("signal", w->signum == SIGTERM ? "SIGTERM" : "SIGINT"),
             LOG_U("connections", self->conns.count));
    ev_io_stop(loop, &self->accept_watcher);
    ev_timer_stop(loop, &self->accept_pause);
    ev_break(loop, EVBREAK_ALL);
}

demo_server_t *
demo_server_new(const demo_server_config_t *cfg, char *err, size_t errlen)
{
    signal(SIGPIPE, SIG_IGN);
    demo_server_t *self = proto_xcalloc(1, sizeof *self);
    self->listen_fd = -1;
    self->loop = ev_loop_new(EVFLAG_AUTO);
    if (self->loop == NULL) {
        snprintf(err, errlen, "cannot create the event loop");
        goto fail;
    }
    self->routes = demo_routes_new(&cfg->routes, err, errlen);
    if (self->routes == NULL)
        goto fail;
    self->listen_fd = s_listen(cfg->addr, cfg->port, err, errlen);
    if (self->listen_fd < 0)
        goto fail;
    ev_io_init(&self->accept_watcher, s_on_acceptable, self->listen_fd, EV_READ);
    ev_init(&self->accept_pause, s_on_accept_pause);
    ev_signal_init(&self->sigterm, s_on_signal, SIGTERM);
    ev_signal_init(&self->sigint, s_on_signal, SIGINT);
    self->accept_watcher.data = self->accept_pause.data = self;
    self->sigterm.data = self->sigint.data = self;
    ev_signal_start(self->loop, &self->sigterm);
    ev_signal_start(self->loop, &self->sigint);
    ev_io_start(self->loop, &self->accept_watcher);
    return self;
fail:
    demo_server_destroy(&self);
    return NULL;
}

int
demo_server_run(demo_server_t *self)
{
    ev_run(self->loop, 0);
    return 0;
}

void
demo_server_destroy(demo_server_t **self_p)
{
    assert(self_p);
    demo_server_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->loop) {
        ev_io_stop(self->loop, &self->accept_watcher);
        ev_timer_stop(self->loop, &self->accept_pause);
        ev_signal_stop(self->loop, &self->sigterm);
        ev_signal_stop(self->loop, &self->sigint);
    }
    while (self->conns.head) {
        demo_conn_t *conn = self->conns.head;
        demo_conn_destroy(&conn);
    }
    if (self->listen_fd >= 0) {
        close(self->listen_fd);
        self->listen_fd = -1;
    }
    demo_routes_destroy(&self->routes);
    if (self->loop) {
        ev_loop_destroy(self->loop);
        self->loop = NULL;
    }
    free(self);
    *self_p = NULL;
}
