/*  cli_ping - `switchyard ping [-v]`: every live actor instance, its round
    trip time and, with -v, its counters.

    Finds the instances (BUS_DIR, or BUS_PEERS_<KIND>), opens one DEALER per
    instance, sends each a ping and waits for the pongs with zmq_poll up to
    --timeout. Exits 0 when at least one instance was found and all answered.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "cli.h"
#include "proto.h"
#include "proto_util.h"

typedef struct {
    cli_bus_config_t bus;     // where the bus is
    cli_curve_config_t curve; // CURVE keys for tcp instances
    bool verbose;             // print counters
    int64_t timeout_ms;       // how long to wait for pongs
} s_config_t;

static const proto_cfg_opt_t s_opts[] = {
    {"SWITCHYARD_VERBOSE", "verbose", PROTO_CFG_BOOL, "false", "also print every counter (-v)",
     offsetof(s_config_t, verbose), 0, 0, NULL, 0},
    {"SWITCHYARD_TIMEOUT", "timeout", PROTO_CFG_DURATION, "2s", "how long to wait for answers",
     offsetof(s_config_t, timeout_ms), 0, 0, NULL, 0},
};

typedef struct {
    void *sock;       // DEALER to the instance
    uint64_t sent_us; // when the ping left
    bool answered;    // a pong came back
    double rtt_ms;    // round trip
    proto_msg_t pong; // the answer
} s_probe_t;

static void
s_print(const cli_instance_t *inst, s_probe_t *p, bool verbose)
{
    const char *kind = proto_kind_name(inst->kind);
    if (!p->answered) {
        printf("%-9s %-28s %-8s %-10s %s\n", kind, "?", "?", "no answer", inst->req);
        return;
    }
    const proto_pong_t *pong = &p->pong.pong;
    printf("%-9s %-28s %-8u %7.2f ms %9.1f s  %-8s region=%s\n", kind, pong->instance, pong->pid,
           p->rtt_ms, (double) pong->uptime_ms / 1000.0, pong->version, pong->region);
    if (!verbose)
        return;
    printf("          msgs_in=%llu msgs_out=%llu", (unsigned long long) pong->msgs_in,
           (unsigned long long) pong->msgs_out);
    // zero counters are noise, except peer counts: a 0 there is the news
    for (uint32_t i = 0; i < pong->counters_count; i++)
        if (pong->counters[i].value != 0 || proto_starts_with(pong->counters[i].name, "peers."))
            printf(" %s=%llu", pong->counters[i].name,
                   (unsigned long long) pong->counters[i].value);
    printf("\n");
}

int
cli_ping(int argc, char **argv)
{
    s_config_t cfg = {0};
    proto_cfg_table_t tables[] = {
        {cli_bus_opts, cli_bus_opts_count, &cfg.bus},
        {cli_curve_opts, cli_curve_opts_count, &cfg.curve},
        {s_opts, PROTO_ARRAY_SIZE(s_opts), &cfg},
    };
    int rc = cli_config("ping", tables, PROTO_ARRAY_SIZE(tables), argc, argv);
    if (rc == 0)
        rc = cli_curve_load("ping", &cfg.curve);
    if (rc != 0) {
        proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
        return rc == 1 ? 0 : 2;
    }
    cli_instance_t *inst = NULL;
    size_t n = cli_discover(&cfg.bus, -1, cfg.timeout_ms, &inst);
    if (n == 0) {
        fprintf(stderr, "switchyard ping: no actor found (BUS_DIR %s)\n", cfg.bus.bus_dir);
        free(inst);
        proto_curve_destroy(&cfg.curve.curve);
        proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
        return 1;
    }

    char host[64] = "host", src[PROTO_SRC_MAX + 1];
    gethostname(host, sizeof host - 1);
    snprintf(src, sizeof src, "cli/%.40s-%d", host, (int) getpid());
    void *ctx = zmq_ctx_new();
    s_probe_t *probes = proto_xcalloc(n, sizeof *probes);
    zmq_pollitem_t *items = proto_xcalloc(n, sizeof *items);
    proto_buf_t buf = {0};
    for (size_t i = 0; i < n; i++) {
        int zero = 0;
        probes[i].sock = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(probes[i].sock, ZMQ_LINGER, &zero, sizeof zero);
        if (proto_curve_connect_opts(cfg.curve.curve, probes[i].sock, inst[i].req) != 0)
            fprintf(stderr, "switchyard ping: %s: cannot set CURVE options: %s\n", inst[i].req,
                    zmq_strerror(zmq_errno()));
        zmq_connect(probes[i].sock, inst[i].req);
        proto_msg_t ping;
        proto_msg_init(&ping, PROTO_PING);
        ping.id = i + 1;
        ping.src = src;
        ping.ts = proto_now_ms();
        probes[i].sent_us = ping.ping.sent_us = proto_mono_us();
        if (proto_encode(&ping, &buf) == 0)
            zmq_send(probes[i].sock, buf.data, buf.size, ZMQ_DONTWAIT);
        items[i].socket = probes[i].sock;
        items[i].events = ZMQ_POLLIN;
    }

    size_t answered = 0;
    uint64_t deadline = proto_mono_us() + (uint64_t) cfg.timeout_ms * 1000u;
    while (answered < n) {
        uint64_t now = proto_mono_us();
        if (now >= deadline)
            break;
        if (zmq_poll(items, (int) n, (long) ((deadline - now) / 1000 + 1)) < 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, probes[i].sock, ZMQ_DONTWAIT) >= 0 && !probes[i].answered
                && proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), &probes[i].pong) == 0
                && probes[i].pong.type == PROTO_PONG && probes[i].pong.id == i + 1) {
                probes[i].answered = true;
                probes[i].rtt_ms = (double) (proto_mono_us() - probes[i].sent_us) / 1000.0;
                answered++;
            }
            zmq_msg_close(&part);
        }
    }

    printf("%-9s %-28s %-8s %-10s %-11s %-8s\n", "KIND", "INSTANCE", "PID", "RTT", "UPTIME",
           "VERSION");
    for (size_t i = 0; i < n; i++)
        s_print(&inst[i], &probes[i], cfg.verbose);
    printf("%zu of %zu instances answered\n", answered, n);

    for (size_t i = 0; i < n; i++) {
        proto_msg_clear(&probes[i].pong);
        zmq_close(probes[i].sock);
    }
    zmq_ctx_term(ctx);
    proto_buf_free(&buf);
    free(items);
    free(probes);
    free(inst);
    proto_curve_destroy(&cfg.curve.curve);
    proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
    return answered == n ? 0 : 1;
}
