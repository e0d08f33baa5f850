/*  st_render - stats JSON and Prometheus text exposition. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "st_render.h"

// --------------------------------------------------------------------------
// Stats JSON

static void
s_ms3(st_text_t *out, double value)
{
    st_text_printf(out, "%.3f", value);
}

static void
s_series_json(const st_series_t *s, uint64_t since_ms, uint64_t now_ms, st_text_t *out)
{
    st_latency_summary_t lat;
    st_latency_summary(&s->latency, now_ms, &lat);
    st_text_printf(out, "{\"requests\":%llu,\"rps\":", (unsigned long long) s->requests);
    s_ms3(out, st_rate_per_second(&s->rate, now_ms));
    st_text_printf(out, ",\"errors\":{\"4xx\":%llu,\"5xx\":%llu},\"latencyMs\":{\"p50\":",
                   (unsigned long long) s->errors_4xx, (unsigned long long) s->errors_5xx);
    s_ms3(out, lat.p50_ms);
    st_text_puts(out, ",\"p95\":");
    s_ms3(out, lat.p95_ms);
    st_text_puts(out, ",\"p99\":");
    s_ms3(out, lat.p99_ms);
    st_text_puts(out, ",\"avg\":");
    s_ms3(out, lat.avg_ms);
    time_t secs = (time_t) (since_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    st_text_printf(out, "},\"since\":\"%s.%03uZ\"", when, (unsigned) (since_ms % 1000));
}

int
st_render_stats(const st_agg_t *agg, const char *vhost, uint64_t now_ms, st_text_t *out)
{
    uint64_t since = st_agg_since(agg);
    if (vhost == NULL) {
        s_series_json(st_agg_total(agg), since, now_ms, out);
        st_text_puts(out, "}");
        return 0;
    }
    const st_vhost_t *v = st_agg_vhost(agg, vhost);
    if (v == NULL)
        return -1;
    s_series_json(&v->s, since, now_ms, out);
    st_text_puts(out, ",\"backends\":{");
    const st_backend_t *list[ST_AGG_MAX_BACKENDS + 1];
    unsigned n = st_agg_backends(agg, list), written = 0;
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(list[i]->vhost, v->name) != 0)
            continue;
        if (written++)
            st_text_puts(out, ",");
        st_text_json(out, list[i]->id);
        st_text_puts(out, ":");
        s_series_json(&list[i]->s, since, now_ms, out);
        st_text_puts(out, "}");
    }
    st_text_puts(out, "}}");
    return 0;
}

// --------------------------------------------------------------------------
// Exposition

static void
s_family(st_text_t *out, const char *name, const char *type, const char *help)
{
    st_text_printf(out, "# HELP %s ", name);
    st_text_help(out, help);
    st_text_printf(out, "\n# TYPE %s %s\n", name, type);
}

//  name{k1="v1",k2="v2"...} value\n; labels is NULL-terminated pairs.
static void
s_sample(st_text_t *out, const char *name, const char *const *labels, double value)
{
    st_text_puts(out, name);
    if (labels && labels[0]) {
        st_text_puts(out, "{");
        for (unsigned i = 0; labels[i]; i += 2) {
            st_text_printf(out, "%s%s=\"", i ? "," : "", labels[i]);
            st_text_label(out, labels[i + 1]);
            st_text_puts(out, "\"");
        }
        st_text_puts(out, "}");
    }
    st_text_puts(out, " ");
    st_text_value(out, value);
    st_text_puts(out, "\n");
}

static void
s_requests(const st_vhost_t *const *vh, unsigned nv, st_text_t *out)
{
    s_family(out, "switchyard_requests_total", "counter",
             "Requests answered, by the matched route's vHost (\"\" when none matched) and status "
             "code, since statsd started.");
    for (unsigned i = 0; i < nv; i++)
        for (unsigned c = 0; c < ST_AGG_CODES; c++) {
            if (vh[i]->codes[c] == 0)
                continue;
            char code[8];
            if (c == ST_AGG_CODES - 1)
                snprintf(code, sizeof code, "other");
            else
                snprintf(code, sizeof code, "%u", c + 100);
            const char *l[] = {"vhost", vh[i]->name, "code", code, NULL};
            s_sample(out, "switchyard_requests_total", l, (double) vh[i]->codes[c]);
        }
    s_family(out, "switchyard_request_duration_seconds", "histogram",
             "Time from accepting a request to its last byte sent, by vHost.");
    for (unsigned i = 0; i < nv; i++) {
        uint64_t cumulative = 0;
        char le[32];
        for (unsigned b = 0; b <= ST_AGG_LE_COUNT; b++) {
            cumulative += vh[i]->le[b];
            if (b < ST_AGG_LE_COUNT)
                snprintf(le, sizeof le, "%g", st_agg_le_seconds[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            const char *l[] = {"vhost", vh[i]->name, "le", le, NULL};
            s_sample(out, "switchyard_request_duration_seconds_bucket", l, (double) cumulative);
        }
        const char *l[] = {"vhost", vh[i]->name, NULL};
        s_sample(out, "switchyard_request_duration_seconds_sum", l, (double) vh[i]->sum_us / 1e6);
        s_sample(out, "switchyard_request_duration_seconds_count", l, (double) cumulative);
    }
}

static void
s_backends(const st_agg_t *agg, uint64_t now_ms, st_text_t *out)
{
    const st_backend_t *be[ST_AGG_MAX_BACKENDS + 1];
    unsigned nb = st_agg_backends(agg, be);
    s_family(out, "switchyard_backend_requests_total", "counter",
             "Requests a backend answered, by vHost and backend id, since statsd started.");
    for (unsigned i = 0; i < nb; i++) {
        const char *l[] = {"vhost", be[i]->vhost, "backend", be[i]->id, NULL};
        s_sample(out, "switchyard_backend_requests_total", l, (double) be[i]->s.requests);
    }
    s_family(out, "switchyard_backend_errors_total", "counter",
             "Requests a backend answered with a 4xx or 5xx status, by class.");
    for (unsigned i = 0; i < nb; i++) {
        const char *l4[] = {"vhost", be[i]->vhost, "backend", be[i]->id, "class", "4xx", NULL};
        const char *l5[] = {"vhost", be[i]->vhost, "backend", be[i]->id, "class", "5xx", NULL};
        s_sample(out, "switchyard_backend_errors_total", l4, (double) be[i]->s.errors_4xx);
        s_sample(out, "switchyard_backend_errors_total", l5, (double) be[i]->s.errors_5xx);
    }
    s_family(out, "switchyard_backend_latency_seconds", "gauge",
             "Latency quantiles of a backend's requests over the last 5 minutes (histogram "
             "error under 1.6 %).");
    for (unsigned i = 0; i < nb; i++) {
        st_latency_summary_t lat;
        st_latency_summary(&be[i]->s.latency, now_ms, &lat);
        const char *q[3] = {"0.5", "0.95", "0.99"};
        double v[3] = {lat.p50_ms / 1000.0, lat.p95_ms / 1000.0, lat.p99_ms / 1000.0};
        for (unsigned k = 0; k < 3; k++) {
            const char *l[] = {"vhost", be[i]->vhost, "backend", be[i]->id, "quantile", q[k], NULL};
            s_sample(out, "switchyard_backend_latency_seconds", l, v[k]);
        }
    }
    const st_failure_t *fa[ST_AGG_MAX_FAILURES + 1];
    unsigned nf = st_agg_failures(agg, fa);
    s_family(out, "switchyard_upstream_failures_total", "counter",
             "Upstream attempts that failed (refused, reset or timeout), by backend id.");
    for (unsigned i = 0; i < nf; i++) {
        const char *l[] = {"backend", fa[i]->id, NULL};
        s_sample(out, "switchyard_upstream_failures_total", l, (double) fa[i]->failures);
    }
    s_family(out, "switchyard_backend_up", "gauge",
             "1 unless healthd reported the backend down; backends seen in requests or in "
             "healthd's state changes.");
    for (unsigned i = 0; i < nb; i++) {
        if (strcmp(be[i]->id, ST_AGG_OTHER) == 0)
            continue;
        const char *l[] = {"vhost", be[i]->vhost, "backend", be[i]->id,
                           "route", be[i]->route, NULL};
        s_sample(out, "switchyard_backend_up", l, st_agg_backend_up(agg, be[i]) ? 1 : 0);
    }
    // states of backends no request has reached yet
    const st_state_t *st[ST_AGG_MAX_STATES];
    unsigned ns = st_agg_states(agg, st);
    for (unsigned i = 0; i < ns; i++) {
        bool served = false;
        for (unsigned j = 0; j < nb && !served; j++)
            served =
                strcmp(be[j]->id, st[i]->backend) == 0 && strcmp(be[j]->route, st[i]->route) == 0;
        if (served)
            continue;
        const char *vhost = st_agg_route_vhost(agg, st[i]->route);
        const char *l[] = {"vhost", vhost ? vhost : "", "backend", st[i]->backend,
                           "route", st[i]->route,       NULL};
        s_sample(out, "switchyard_backend_up", l, st[i]->up ? 1 : 0);
    }
}

//  Chat (st_agg_chat): WebSockets the gateways hold, sessions chatd holds,
//  messages chatd accepted, rooms with a member.
static void
s_chat(const st_agg_t *agg, st_text_t *out)
{
    st_chat_t chat;
    st_agg_chat(agg, &chat);
    s_family(out, "switchyard_ws_connections", "gauge",
             "Chat WebSocket connections the gateways hold.");
    s_sample(out, "switchyard_ws_connections", NULL, (double) chat.ws_connections);
    s_family(out, "switchyard_chat_sessions", "gauge", "Chat sessions chatd instances hold.");
    s_sample(out, "switchyard_chat_sessions", NULL, (double) chat.sessions);
    s_family(out, "switchyard_chat_messages_total", "counter",
             "Chat messages accepted (stored, or published to a room) by chatd.");
    s_sample(out, "switchyard_chat_messages_total", NULL, (double) chat.messages);
    s_family(out, "switchyard_chat_rooms", "gauge",
             "Rooms with a member, per chatd instance, summed over the instances.");
    s_sample(out, "switchyard_chat_rooms", NULL, (double) chat.rooms);
}

static void
s_processes(const st_agg_t *agg, st_text_t *out)
{
    const st_instance_t *in[ST_AGG_MAX_INSTANCES];
    unsigned n = st_agg_instances(agg, in);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"switchyard_process_cpu_seconds_total", "counter",
         "User and system CPU time of an actor instance, seconds."},
        {"switchyard_process_resident_memory_bytes", "gauge",
         "Resident memory of an actor instance, bytes."},
        {"switchyard_process_open_fds", "gauge", "Open file descriptors of an actor instance."},
        {"switchyard_process_start_time_seconds", "gauge",
         "Start time of an actor instance, seconds since the epoch."},
    };
    for (unsigned f = 0; f < 4; f++) {
        s_family(out, fam[f].name, fam[f].type, fam[f].help);
        for (unsigned i = 0; i < n; i++) {
            const char *l[] = {"actor", in[i]->kind, "instance", in[i]->instance, NULL};
            double v = f == 0   ? in[i]->cpu_seconds
                       : f == 1 ? (double) in[i]->rss_bytes
                       : f == 2 ? (double) in[i]->open_fds
                                : in[i]->start_time;
            s_sample(out, fam[f].name, l, v);
        }
    }
    s_family(out, "switchyard_actor_counter", "gauge",
             "An actor instance's own counters, as its pong reports them (dropped.<reason>, "
             "peers.<kind>, ...); most only grow.");
    for (unsigned i = 0; i < n; i++)
        for (unsigned c = 0; c < in[i]->ncounters; c++) {
            const char *l[] = {
                "actor", in[i]->kind, "instance", in[i]->instance, "name", in[i]->counters[c].name,
                NULL};
            s_sample(out, "switchyard_actor_counter", l, (double) in[i]->counters[c].value);
        }
}

void
st_render_metrics(const st_agg_t *agg, uint64_t now_ms, st_text_t *out)
{
    const st_vhost_t *vh[ST_AGG_MAX_VHOSTS + 1];
    unsigned nv = st_agg_vhosts(agg, vh);
    s_requests(vh, nv, out);
    s_backends(agg, now_ms, out);
    s_chat(agg, out);
    s_processes(agg, out);
    s_family(out, "switchyard_stats_folded_total", "counter",
             "Requests statsd counted in an \"(other)\" series because its vHost or backend "
             "tables were full.");
    s_sample(out, "switchyard_stats_folded_total", NULL, (double) *st_agg_folded(agg));
}
