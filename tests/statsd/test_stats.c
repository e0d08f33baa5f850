/*  test_stats - unit tests of statsd's modules: the histogram (percentiles of
    known distributions within its stated error), the sliding windows with a
    fake clock, label escaping, the exposition (parsed strictly), bounded
    tables, the stats.reply, and a micro-benchmark of the per-request cost.
*/
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "st_agg.h"
#include "st_hist.h"
#include "st_render.h"
#include "st_reply.h"
#include "st_text.h"
#include "t_expo.h"

#define S_T0 1767225600000ull // 2026-01-01T00:00:00Z, a minute boundary

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

//  The nearest-rank quantile of sorted values.
static double
s_exact(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t) ceil(q * (double) n);
    if (rank < 1)
        rank = 1;
    return (double) sorted[rank - 1];
}

static void
s_check_quantiles(uint64_t *values, size_t n)
{
    st_hist_t *h = calloc(1, sizeof *h);
    for (size_t i = 0; i < n; i++)
        st_hist_add(h, values[i]);
    qsort(values, n, sizeof *values, s_cmp_u64);
    const st_hist_t *hs[] = {h};
    const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double want = s_exact(values, n, qs[i]), got = st_hist_quantile(hs, 1, qs[i]);
        if (fabs(got - want) > want * ST_HIST_MAX_ERROR + 1e-9)
            fail_msg("q%.3f: %.1f, want %.1f (±%.2f %%)", qs[i], got, want,
                     ST_HIST_MAX_ERROR * 100);
    }
    free(h);
}

//  Every value falls in its bucket, buckets tile the range, and the
//  midpoint is within the stated relative error of any value of the bucket.
static void
test_hist_buckets(void **state)
{
    (void) state;
    for (unsigned i = 0; i + 1 < ST_HIST_BUCKETS; i++)
        assert_int_equal(st_hist_lower(i) + st_hist_width(i), st_hist_lower(i + 1));
    uint64_t v = 0;
    for (int step = 0; step < 200000; step++) {
        unsigned i = st_hist_index(v);
        assert_true(v >= st_hist_lower(i) && v < st_hist_lower(i) + st_hist_width(i));
        double mid = (double) st_hist_lower(i) + (double) (st_hist_width(i) - 1) / 2.0;
        if (v > 0)
            assert_true(fabs(mid - (double) v) / (double) v <= ST_HIST_MAX_ERROR);
        v = v + 1 + v / 50;
        if (v >> ST_HIST_MAX_SHIFT)
            break;
    }
    assert_int_equal(st_hist_index(UINT64_MAX), ST_HIST_BUCKETS - 1);
    assert_int_equal(st_hist_index(63), 63);
    assert_int_equal(st_hist_index(64), 64);
}

static void
test_hist_distributions(void **state)
{
    (void) state;
    size_t n = 100000;
    uint64_t *values = malloc(n * sizeof *values);
    // uniform 1 µs .. 100 ms
    for (size_t i = 0; i < n; i++)
        values[i] = 1 + (uint64_t) (i * 1000003ull % 100000) * 1;
    s_check_quantiles(values, n);
    // exponential, mean 20 ms (a deterministic generator)
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double) (x >> 11) / 9007199254740992.0;
        values[i] = (uint64_t) (-log(1.0 - u) * 20000.0);
    }
    s_check_quantiles(values, n);
    // bimodal: 90 % at ~1 ms, 10 % at ~2 s
    for (size_t i = 0; i < n; i++)
        values[i] = i % 10 ? 900 + i % 200 : 2000000 + i % 50000;
    s_check_quantiles(values, n);
    // a single value, and an empty histogram
    st_hist_t *h = calloc(1, sizeof *h);
    const st_hist_t *hs[] = {h};
    assert_true(st_hist_quantile(hs, 1, 0.5) == 0.0);
    st_hist_add(h, 12345);
    assert_true(fabs(st_hist_quantile(hs, 1, 0.99) - 12345) <= 12345 * ST_HIST_MAX_ERROR);
    free(h);
    free(values);
}

//  rps over a sliding minute and latency over 5 minutes, on a fake clock.
static void
test_windows(void **state)
{
    (void) state;
    st_rate_t rate = {0};
    for (uint64_t s = 0; s < 60; s++)
        st_rate_add(&rate, S_T0 + s * 1000 + 500, 2);
    assert_true(fabs(st_rate_per_second(&rate, S_T0 + 59999) - 2.0) < 1e-9);
    // 30 s later: seconds 30..59 of the 60 are still in the window
    assert_true(fabs(st_rate_per_second(&rate, S_T0 + 89999) - 1.0) < 1e-9);
    assert_true(st_rate_per_second(&rate, S_T0 + 120000) == 0.0);
    // a late event older than what a slot holds is not counted over a newer one
    st_rate_add(&rate, S_T0 + 61000, 5);
    st_rate_add(&rate, S_T0 + 1000, 7);
    assert_true(fabs(st_rate_per_second(&rate, S_T0 + 61000) * 60 - (58 * 2 + 5))
                < 1e-9); // seconds 2..61

    st_latency_t *lat = calloc(1, sizeof *lat);
    st_latency_summary_t sum;
    for (int i = 1; i <= 100; i++)
        st_latency_add(lat, S_T0 + 1000, (uint64_t) i * 1000); // 1..100 ms, minute 0
    st_latency_summary(lat, S_T0 + 4 * 60000 + 59999, &sum);   // minute 4: still in
    assert_int_equal(sum.count, 100);
    assert_true(fabs(sum.p50_ms - 50) <= 50 * ST_HIST_MAX_ERROR);
    assert_true(fabs(sum.p95_ms - 95) <= 95 * ST_HIST_MAX_ERROR);
    assert_true(fabs(sum.p99_ms - 99) <= 99 * ST_HIST_MAX_ERROR);
    assert_true(fabs(sum.avg_ms - 50.5) < 1e-9);
    st_latency_summary(lat, S_T0 + 5 * 60000, &sum); // minute 5: gone
    assert_int_equal(sum.count, 0);
    // minute 5 reuses minute 0's slot: rotated, not added to
    st_latency_add(lat, S_T0 + 5 * 60000 + 1, 7000);
    st_latency_summary(lat, S_T0 + 5 * 60000 + 2, &sum);
    assert_int_equal(sum.count, 1);
    assert_true(fabs(sum.p50_ms - 7) <= 7 * ST_HIST_MAX_ERROR);
    free(lat);
}

static void
test_escaping(void **state)
{
    (void) state;
    st_text_t t = {0};
    st_text_label(&t, "a\\b\"c\nd");
    assert_string_equal(t.data, "a\\\\b\\\"c\\nd");
    st_text_free(&t);
    st_text_help(&t, "say \"hi\"\\\n");
    assert_string_equal(t.data, "say \"hi\"\\\\\\n");
    st_text_free(&t);
    st_text_json(&t, "q\"\\\x01");
    assert_string_equal(t.data, "\"q\\\"\\\\\\u0001\"");
    st_text_free(&t);
    st_text_value(&t, 3);
    st_text_puts(&t, " ");
    st_text_value(&t, 0.25);
    st_text_puts(&t, " ");
    st_text_value(&t, INFINITY);
    st_text_puts(&t, " ");
    st_text_value(&t, NAN);
    assert_string_equal(t.data, "3 0.25 +Inf NaN");
    st_text_free(&t);
}

static proto_reqinfo_t
s_info(const char *vhost, const char *backend, unsigned status, uint64_t us)
{
    proto_reqinfo_t r;
    memset(&r, 0, sizeof r);
    r.rid = "r";
    r.method = "GET";
    r.vhost = vhost;
    r.route = vhost[0] ? "route-1" : "";
    r.backend = backend;
    r.status = (uint16_t) status;
    r.duration_us = us;
    return r;
}

//  The exposition parses strictly and says what was recorded.
static void
test_exposition(void **state)
{
    (void) state;
    st_agg_t *agg = st_agg_new(S_T0);
    uint64_t now = S_T0 + 30000;
    proto_reqinfo_t a = s_info("a.test", "node-1", 200, 1500);
    proto_reqinfo_t b = s_info("a.test", "node-2", 503, 30000);
    proto_reqinfo_t c = s_info("", "", 404, 200);
    proto_reqinfo_t d = s_info("we\"ird\\.test", "n\n1", 200, 20000000);
    for (int i = 0; i < 3; i++)
        st_agg_request(agg, &a, now);
    st_agg_request(agg, &b, now);
    st_agg_request(agg, &c, now);
    st_agg_request(agg, &d, now);
    st_agg_failure(agg, "node-2");
    st_agg_failure(agg, "node-2");
    st_agg_state(agg, "route-1", "node-2", false);
    st_agg_state(agg, "route-9", "lonely", false);
    proto_counter_t counters[] = {{"dropped.malformed", 4}, {"picks.refused", 1}};
    proto_proc_stats_t ps;
    memset(&ps, 0, sizeof ps);
    ps.kind = "router";
    ps.instance = "rt-1";
    ps.pid = 42;
    ps.cpu_seconds = 1.5;
    ps.rss_bytes = 1048576;
    ps.open_fds = 12;
    ps.start_time = 1767225000.25;
    ps.uptime_ms = 600000;
    ps.counters = counters;
    ps.counters_count = 2;
    assert_int_equal(st_agg_proc(agg, &ps, now), 0);
    //  chat: two chatd instances and a gateway, summed by kind
    proto_counter_t chatd1[] = {{"chat.sessions", 3}, {"chat.messages", 10}, {"chat.rooms", 2}};
    proto_counter_t chatd2[] = {{"chat.sessions", 1}, {"chat.messages", 5}, {"chat.rooms", 1}};
    proto_counter_t gw[] = {{"chat.sessions", 4}};
    struct {
        const char *kind, *instance;
        proto_counter_t *c;
        uint32_t n;
    } chat[] = {
        {"chatd", "cd-1", chatd1, 3}, {"chatd", "cd-2", chatd2, 3}, {"gateway", "gw-1", gw, 1}};
    for (size_t i = 0; i < sizeof chat / sizeof chat[0]; i++) {
        ps.kind = chat[i].kind;
        ps.instance = chat[i].instance;
        ps.counters = chat[i].c;
        ps.counters_count = chat[i].n;
        assert_int_equal(st_agg_proc(agg, &ps, now), 0);
    }

    st_text_t t = {0};
    st_render_metrics(agg, now, &t);
    t_expo_t doc;
    if (t_expo_parse(t.data, &doc) != 0)
        fail_msg("%s\n%s", doc.error, t.data);
    double v;
    assert_int_equal(
        t_expo_find(&doc, "switchyard_requests_total", &v, "vhost", "a.test", "code", "200", NULL),
        1);
    assert_true(v == 3);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_requests_total", &v, "vhost", "", "code", "404", NULL), 1);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_requests_total", &v, "vhost", "we\"ird\\.test", NULL), 1);
    assert_int_equal(t_expo_find(&doc, "switchyard_request_duration_seconds_bucket", &v, "vhost",
                                 "a.test", "le", "0.0025", NULL),
                     1);
    assert_true(v == 3);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_request_duration_seconds_count", &v, "vhost", "a.test", NULL),
        1);
    assert_true(v == 4);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_request_duration_seconds_sum", &v, "vhost", "a.test", NULL),
        1);
    assert_true(fabs(v - 0.0345) < 1e-9);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_upstream_failures_total", &v, "backend", "node-2", NULL), 1);
    assert_true(v == 2);
    assert_int_equal(t_expo_find(&doc, "switchyard_backend_up", &v, "vhost", "a.test", "backend",
                                 "node-2", NULL),
                     1);
    assert_true(v == 0);
    assert_int_equal(t_expo_find(&doc, "switchyard_backend_up", &v, "vhost", "a.test", "backend",
                                 "node-1", NULL),
                     1);
    assert_true(v == 1);
    assert_int_equal(t_expo_find(&doc, "switchyard_backend_up", &v, "backend", "lonely", NULL), 1);
    assert_true(v == 0);
    assert_int_equal(t_expo_find(&doc, "switchyard_backend_up", &v, "backend", "n\n1", NULL), 1);
    assert_int_equal(t_expo_find(&doc, "switchyard_process_resident_memory_bytes", &v, "actor",
                                 "router", "instance", "rt-1", NULL),
                     1);
    assert_true(v == 1048576);
    assert_int_equal(t_expo_find(&doc, "switchyard_actor_counter", &v, "actor", "router", "name",
                                 "picks.refused", NULL),
                     1);
    assert_true(v == 1);
    const char *families[][2] = {
        {"switchyard_requests_total", "counter"},
        {"switchyard_request_duration_seconds", "histogram"},
        {"switchyard_upstream_failures_total", "counter"},
        {"switchyard_backend_up", "gauge"},
        {"switchyard_ws_connections", "gauge"},
        {"switchyard_chat_sessions", "gauge"},
        {"switchyard_chat_messages_total", "counter"},
        {"switchyard_chat_rooms", "gauge"},
        {"switchyard_process_cpu_seconds_total", "counter"},
        {"switchyard_process_resident_memory_bytes", "gauge"},
        {"switchyard_process_open_fds", "gauge"},
        {"switchyard_process_start_time_seconds", "gauge"},
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const t_expo_family_t *f = t_expo_family(&doc, families[i][0]);
        assert_non_null(f);
        assert_string_equal(f->type, families[i][1]);
        assert_non_null(f->help);
    }
    static const struct {
        const char *name;
        double want;
    } chat_values[] = {{"switchyard_ws_connections", 4},
                       {"switchyard_chat_sessions", 4},
                       {"switchyard_chat_messages_total", 15},
                       {"switchyard_chat_rooms", 3}};
    for (size_t i = 0; i < sizeof chat_values / sizeof chat_values[0]; i++) {
        double cv = -1;
        assert_int_equal(t_expo_find(&doc, chat_values[i].name, &cv, NULL), 1);
        assert_true(cv == chat_values[i].want);
    }
    t_expo_free(&doc);

    // stats JSON
    st_text_t j = {0};
    assert_int_equal(st_render_stats(agg, "a.test", now, &j), 0);
    assert_non_null(
        strstr(j.data, "{\"requests\":4,\"rps\":0.067,\"errors\":{\"4xx\":0,\"5xx\":1}"));
    assert_non_null(strstr(j.data, "\"since\":\"2026-01-01T00:00:00.000Z\""));
    assert_non_null(strstr(j.data, "\"backends\":{\"node-1\":{\"requests\":3,"));
    st_text_free(&j);
    assert_int_equal(st_render_stats(agg, "nope.test", now, &j), -1);
    assert_int_equal(st_render_stats(agg, NULL, now, &j), 0);
    assert_non_null(strstr(j.data, "{\"requests\":6,"));
    st_text_free(&j);
    st_text_free(&t);

    // instances expire
    st_agg_expire(agg, now + 15000, 15000);
    const st_instance_t *in[ST_AGG_MAX_INSTANCES];
    assert_int_equal(st_agg_instances(agg, in), 4); // the router and the three chat instances
    st_agg_expire(agg, now + 15001, 15000);
    assert_int_equal(st_agg_instances(agg, in), 0);
    st_agg_destroy(&agg);
    assert_null(agg);

    // the parser is strict
    const char *bad[] = {
        "x 1\n",                                        // no TYPE
        "# TYPE x gauge\nx 1",                          // no final line feed
        "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n", // repeated series
        "# TYPE x gauge\nx{a=\"\\t\"} 1\n",             // bad escape
        "# TYPE x gauge\n\nx 1\n",                      // blank line
        "# TYPE x gauge\nx one\n",                      // bad value
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
        "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 1\n", // split family
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (t_expo_parse(bad[i], &doc) == 0)
            fail_msg("accepted: %s", bad[i]);
        t_expo_free(&doc);
    }
}

//  More vHosts or backends than the bounds: the rest fold into "(other)", counted.
static void
test_bounds(void **state)
{
    (void) state;
    st_agg_t *agg = st_agg_new(S_T0);
    char name[64];
    for (int i = 0; i < ST_AGG_MAX_VHOSTS + 10; i++) {
        snprintf(name, sizeof name, "v%03d.test", i);
        proto_reqinfo_t r = s_info(name, "", 200, 1000);
        st_agg_request(agg, &r, S_T0);
    }
    const st_vhost_t *vh[ST_AGG_MAX_VHOSTS + 1];
    assert_int_equal(st_agg_vhosts(agg, vh), ST_AGG_MAX_VHOSTS + 1);
    assert_int_equal(*st_agg_folded(agg), 10);
    assert_non_null(st_agg_vhost(agg, ST_AGG_OTHER));
    assert_int_equal(st_agg_vhost(agg, ST_AGG_OTHER)->s.requests, 10);
    assert_int_equal(st_agg_total(agg)->requests, ST_AGG_MAX_VHOSTS + 10);
    st_text_t t = {0};
    st_render_metrics(agg, S_T0, &t);
    t_expo_t doc;
    if (t_expo_parse(t.data, &doc) != 0)
        fail_msg("%s", doc.error);
    assert_int_equal(t_expo_find(&doc, "switchyard_requests_total", NULL, "vhost", "(other)", NULL),
                     1);
    t_expo_free(&doc);
    st_text_free(&t);
    st_agg_destroy(&agg);
}

static void
s_proc(st_agg_t *agg,
       const char *kind,
       const char *instance,
       proto_counter_t *counters,
       uint32_t n,
       uint64_t now)
{
    proto_proc_stats_t ps;
    memset(&ps, 0, sizeof ps);
    ps.kind = kind;
    ps.instance = instance;
    ps.pid = 4242;
    ps.cpu_seconds = 1.25;
    ps.rss_bytes = 2097152;
    ps.open_fds = 9;
    ps.start_time = 1767225000.5;
    ps.counters = counters;
    ps.counters_count = n;
    assert_int_equal(st_agg_proc(agg, &ps, now), 0);
}

//  A number after "key": in a JSON text.
static double
s_json_num(const char *json, const char *key)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *p = strstr(json, needle);
    if (p == NULL)
        fail_msg("no %s in %s", key, json);
    return strtod(p + strlen(needle), NULL);
}

//  The stats.reply: busiest vHosts first (rps, then requests, then name),
//  routes_max, errors and latencies as /api/v1/stats/:vHost, totals, chat
//  as /metrics, every instance; it encodes within the message's bounds.
static void
test_reply(void **state)
{
    (void) state;
    st_agg_t *agg = st_agg_new(S_T0);
    uint64_t now = S_T0 + 150000; // old requests: in the 5-minute window, not in the last minute
    struct {
        const char *vhost;
        unsigned status;
        uint64_t us;
        bool old;
    } reqs[] = {
        {"old.test", 200, 5000, true}, {"old.test", 200, 5000, true}, {"old.test", 200, 5000, true},
        {"old.test", 200, 5000, true}, {"old.test", 500, 5000, true}, {"old.test", 200, 5000, true},
        {"c.test", 200, 1000, true},   {"c.test", 200, 1000, true},   {"c.test", 200, 1000, false},
        {"c.test", 200, 1000, false},  {"c.test", 200, 1000, false},  {"b.test", 200, 1000, false},
        {"b.test", 200, 1000, false},  {"b.test", 200, 1000, false},  {"a.test", 200, 1000, false},
        {"a.test", 404, 2000, false},  {"a.test", 503, 30000, false}, {"", 404, 50, false},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        proto_reqinfo_t q = s_info(reqs[i].vhost, "", reqs[i].status, reqs[i].us);
        st_agg_request(agg, &q, reqs[i].old ? S_T0 : now);
    }
    proto_counter_t chatd[] = {{"chat.sessions", 3}, {"chat.messages", 10}, {"chat.rooms", 2}};
    proto_counter_t gw[] = {{"chat.sessions", 4}, {"requests.served", 18}};
    s_proc(agg, "gateway", "gw-1", gw, 2, now - 500);
    s_proc(agg, "chatd", "cd-1", chatd, 3, now - 700);

    st_reply_t *reply = calloc(1, sizeof *reply);
    st_reply_stats(agg, 0, now, reply);
    const proto_stats_reply_t *r = &reply->msg.stats_reply;
    assert_int_equal(reply->msg.type, PROTO_STATS_REPLY);
    assert_int_equal(r->now_ms, now);
    assert_int_equal(r->since_ms, S_T0);
    assert_int_equal(r->requests, 18);
    assert_true(fabs(r->rps - 10.0 / 60) < 1e-9);
    assert_int_equal(r->chat_sessions, 3);
    assert_int_equal(r->chat_messages, 10);
    assert_int_equal(r->ws_connections, 4);
    const char *order[] = {"c.test", "a.test", "b.test", "", "old.test"};
    assert_int_equal(r->routes_count, 5);
    for (unsigned i = 0; i < 5; i++)
        assert_string_equal(r->routes[i].vhost, order[i]);
    assert_int_equal(r->routes[0].requests, 5);
    assert_true(fabs(r->routes[0].rps - 3.0 / 60) < 1e-9);
    assert_true(r->routes[4].rps == 0);
    assert_int_equal(r->routes[4].requests, 6);
    assert_int_equal(r->routes[4].errors_5xx, 1);
    assert_true(fabs(r->routes[4].p50_ms - 5) <= 5 * ST_HIST_MAX_ERROR);
    // a.test: 1, 2, 30 ms; nearest rank of 3 values: p50 2 ms, p99 30 ms
    const proto_routestat_t *a = &r->routes[1];
    assert_int_equal(a->requests, 3);
    assert_int_equal(a->errors_4xx, 1);
    assert_int_equal(a->errors_5xx, 1);
    assert_true(fabs(a->p50_ms - 2) <= 2 * ST_HIST_MAX_ERROR);
    assert_true(fabs(a->p99_ms - 30) <= 30 * ST_HIST_MAX_ERROR);
    // the same figures as /api/v1/stats/a.test and /api/v1/stats (3 decimals)
    st_text_t t = {0};
    assert_int_equal(st_render_stats(agg, "a.test", now, &t), 0);
    assert_true(s_json_num(t.data, "requests") == (double) a->requests);
    assert_true(fabs(s_json_num(t.data, "rps") - a->rps) < 0.0005);
    assert_true(s_json_num(t.data, "4xx") == (double) a->errors_4xx);
    assert_true(s_json_num(t.data, "5xx") == (double) a->errors_5xx);
    assert_true(fabs(s_json_num(t.data, "p50") - a->p50_ms) < 0.0005);
    assert_true(fabs(s_json_num(t.data, "p99") - a->p99_ms) < 0.0005);
    st_text_free(&t);
    assert_int_equal(st_render_stats(agg, NULL, now, &t), 0);
    assert_true(s_json_num(t.data, "requests") == (double) r->requests);
    assert_true(fabs(s_json_num(t.data, "rps") - r->rps) < 0.0005);
    st_text_free(&t);
    // procs: by kind then instance
    assert_int_equal(r->procs_count, 2);
    assert_string_equal(r->procs[0].kind, "chatd");
    assert_string_equal(r->procs[0].instance, "cd-1");
    assert_int_equal(r->procs[0].seen_ms, now - 700);
    assert_string_equal(r->procs[1].kind, "gateway");
    assert_int_equal(r->procs[1].pid, 4242);
    assert_true(r->procs[1].cpu_seconds == 1.25);
    assert_int_equal(r->procs[1].rss_bytes, 2097152);
    assert_int_equal(r->procs[1].open_fds, 9);
    assert_int_equal(r->procs[1].seen_ms, now - 500);
    // it encodes, and decodes to the same figures
    proto_buf_t buf = {0};
    reply->msg.rid = "";
    reply->msg.src = "statsd/st-1";
    assert_int_equal(proto_encode(&reply->msg, &buf), 0);
    proto_msg_t back;
    assert_int_equal(proto_decode(buf.data, buf.size, &back), 0);
    assert_int_equal(back.stats_reply.routes_count, 5);
    assert_string_equal(back.stats_reply.routes[3].vhost, "");
    assert_true(back.stats_reply.routes[1].p99_ms == a->p99_ms);
    assert_int_equal(back.stats_reply.procs_count, 2);
    assert_int_equal(back.stats_reply.ws_connections, 4);
    proto_msg_clear(&back);
    proto_buf_free(&buf);

    // routes_max: the busiest only
    st_reply_stats(agg, 2, now, reply);
    assert_int_equal(r->routes_count, 2);
    assert_string_equal(r->routes[0].vhost, "c.test");
    assert_string_equal(r->routes[1].vhost, "a.test");
    st_reply_stats(agg, 1000, now, reply);
    assert_int_equal(r->routes_count, 5);
    st_agg_destroy(&agg);

    // every series a full table holds, "(other)" included, fits the list's bound
    agg = st_agg_new(S_T0);
    char name[64];
    for (int i = 0; i < ST_AGG_MAX_VHOSTS + 10; i++) {
        snprintf(name, sizeof name, "v%03d.test", i);
        proto_reqinfo_t q = s_info(name, "", 200, 1000);
        st_agg_request(agg, &q, S_T0);
    }
    st_reply_stats(agg, 0, S_T0, reply);
    assert_int_equal(r->routes_count, ST_AGG_MAX_VHOSTS + 1);
    assert_true(r->routes_count <= PROTO_STATS_REPLY_ROUTES_MAX);
    assert_string_equal(r->routes[0].vhost, ST_AGG_OTHER); // 10 requests
    assert_string_equal(r->routes[1].vhost, "v000.test");
    reply->msg.rid = "";
    reply->msg.src = "statsd/st-1";
    assert_int_equal(proto_encode(&reply->msg, &buf), 0);
    proto_buf_free(&buf);
    st_agg_destroy(&agg);
    free(reply);
}

//  The per-request cost: what statsd does for each item of a request.done
//  batch, 10 vHosts x 4 backends, measured in CPU time.
static void
test_benchmark(void **state)
{
    (void) state;
    st_agg_t *agg = st_agg_new(S_T0);
    proto_reqinfo_t infos[40];
    char names[40][2][32];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i][0], sizeof names[i][0], "service-%d.example.com", i / 4);
        snprintf(names[i][1], sizeof names[i][1], "node-%d", i % 4);
        infos[i] = s_info(names[i][0], names[i][1], i % 13 ? 200 : 503, 1000 + (uint64_t) i * 977);
    }
    const int n = 2000000;
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (int i = 0; i < n; i++)
        st_agg_request(agg, &infos[i % 40], S_T0 + (uint64_t) i / 20); // 20 000 requests/s
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double ns = ((double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec)) / n;
    printf("# st_agg_request: %.0f ns CPU per request (%d requests, 10 vHosts x 4 backends)\n", ns,
           n);
    assert_int_equal(st_agg_total(agg)->requests, (uint64_t) n);

    // and with the decode of the request.done batches (64 requests each) it comes in
    proto_reqinfo_t items[64];
    for (int i = 0; i < 64; i++) {
        items[i] = infos[i % 40];
        items[i].rid = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
        items[i].path = "/api/v1/items?page=2";
        items[i].route = "service-a";
        items[i].region = "1";
        items[i].client = "203.0.113.7";
        items[i].bytes = 1234;
        items[i].upstream_us = 900;
        items[i].attempts = 1;
    }
    proto_msg_t batch;
    proto_msg_init(&batch, PROTO_REQUEST_DONE);
    batch.rid = "";
    batch.src = "gateway/gw-1";
    batch.ts = S_T0;
    batch.request_done.items = items;
    batch.request_done.items_count = 64;
    proto_buf_t buf = {0};
    assert_int_equal(proto_encode(&batch, &buf), 0);
    const int batches = 20000;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (int i = 0; i < batches; i++) {
        proto_msg_t in;
        assert_int_equal(proto_decode(buf.data, buf.size, &in), 0);
        for (uint32_t k = 0; k < in.request_done.items_count; k++)
            st_agg_request(agg, &in.request_done.items[k], S_T0 + (uint64_t) i / 3);
        proto_msg_clear(&in);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    ns = ((double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec))
         / (batches * 64.0);
    printf("# request.done decode + st_agg_request: %.0f ns CPU per request (batches of 64)\n", ns);
    proto_buf_free(&buf);
    st_agg_destroy(&agg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets), cmocka_unit_test(test_hist_distributions),
        cmocka_unit_test(test_windows),      cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_exposition),   cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_reply),        cmocka_unit_test(test_benchmark),
    };
    return cmocka_run_group_tests_name("test_stats", tests, NULL, NULL);
}
