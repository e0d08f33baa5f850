/*  test_health - healthd's modules: the state machine table (every
    transition), the strict status line, the probe request and Host header,
    the jitter bounds, and the config.get what=health parser.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hd_fsm.h"
#include "hd_probe.h"
#include "hd_sched.h"
#include "hd_specs.h"

#define U   HD_FSM_UNKNOWN
#define US1 HD_FSM_UNKNOWN_S1
#define UF1 HD_FSM_UNKNOWN_F1
#define UF2 HD_FSM_UNKNOWN_F2
#define R   HD_FSM_RESUMED
#define A   HD_FSM_ALIVE
#define AF1 HD_FSM_ALIVE_F1
#define AF2 HD_FSM_ALIVE_F2
#define D   HD_FSM_DEAD
#define DS1 HD_FSM_DEAD_S1
#define M   HD_FSM_MAINT
#define N   HD_FSM_NONE
#define UP  HD_FSM_UP
#define DN  HD_FSM_DOWN

//  Every (state, event): written out again here, independently of the table.
static void
test_fsm_every_transition(void **state)
{
    (void) state;
    static const struct {
        hd_fsm_state_t from;
        hd_fsm_step_t on[HD_FSM_EVENTS]; // SUCCESS FAILURE REFUSED MAINT_ON MAINT_OFF
    } want[] = {
        {U, {{US1, N}, {UF1, N}, {D, DN}, {M, DN}, {U, N}}},
        {US1, {{A, UP}, {UF1, N}, {D, DN}, {M, DN}, {US1, N}}},
        {UF1, {{US1, N}, {UF2, N}, {D, DN}, {M, DN}, {UF1, N}}},
        {UF2, {{US1, N}, {D, DN}, {D, DN}, {M, DN}, {UF2, N}}},
        {R, {{A, UP}, {UF1, N}, {D, DN}, {M, DN}, {R, N}}},
        {A, {{A, N}, {AF1, N}, {D, DN}, {M, DN}, {A, N}}},
        {AF1, {{A, N}, {AF2, N}, {D, DN}, {M, DN}, {AF1, N}}},
        {AF2, {{A, N}, {D, DN}, {D, DN}, {M, DN}, {AF2, N}}},
        {D, {{DS1, N}, {D, N}, {D, N}, {M, DN}, {D, N}}},
        {DS1, {{A, UP}, {D, N}, {D, N}, {M, DN}, {DS1, N}}},
        {M, {{M, N}, {M, N}, {M, N}, {M, N}, {R, N}}},
    };
    assert_int_equal(sizeof want / sizeof want[0], HD_FSM_STATES);
    for (size_t i = 0; i < HD_FSM_STATES; i++)
        for (int e = 0; e < HD_FSM_EVENTS; e++) {
            hd_fsm_step_t got = hd_fsm_step(want[i].from, (hd_fsm_event_t) e);
            if (got.next != want[i].on[e].next || got.action != want[i].on[e].action)
                fail_msg("%s on event %d: got %s/%d, want %s/%d", hd_fsm_state_name(want[i].from),
                         e, hd_fsm_state_name(got.next), got.action,
                         hd_fsm_state_name(want[i].on[e].next), want[i].on[e].action);
        }
    // out of range: unchanged, nothing published
    hd_fsm_step_t odd = hd_fsm_step(HD_FSM_STATES, HD_FSM_SUCCESS);
    assert_int_equal(odd.action, N);
    odd = hd_fsm_step(A, HD_FSM_EVENTS);
    assert_int_equal(odd.next, A);
    assert_int_equal(odd.action, N);
}

//  The SPEC's sentences, as sequences.
static hd_fsm_state_t
s_run(hd_fsm_state_t s, const hd_fsm_event_t *events, size_t n, int *ups, int *downs)
{
    for (size_t i = 0; i < n; i++) {
        hd_fsm_step_t st = hd_fsm_step(s, events[i]);
        *ups += st.action == UP;
        *downs += st.action == DN;
        s = st.next;
    }
    return s;
}

static void
test_fsm_sequences(void **state)
{
    (void) state;
    int ups = 0, downs = 0;
    const hd_fsm_event_t ok2[] = {HD_FSM_SUCCESS, HD_FSM_SUCCESS};
    const hd_fsm_event_t f3[] = {HD_FSM_FAILURE, HD_FSM_FAILURE, HD_FSM_FAILURE};
    const hd_fsm_event_t flaky[] = {HD_FSM_FAILURE, HD_FSM_FAILURE, HD_FSM_SUCCESS,
                                    HD_FSM_FAILURE, HD_FSM_FAILURE, HD_FSM_SUCCESS};
    const hd_fsm_event_t refused[] = {HD_FSM_REFUSED};
    const hd_fsm_event_t half[] = {HD_FSM_SUCCESS, HD_FSM_FAILURE, HD_FSM_SUCCESS};
    // a start: up after 2 successes, exactly one publication
    assert_int_equal(s_run(U, ok2, 2, &ups, &downs), A);
    assert_int_equal(ups, 1);
    // dead after 3 failures, never before
    assert_int_equal(s_run(A, f3, 2, &ups, &downs), AF2);
    assert_int_equal(downs, 0);
    assert_int_equal(s_run(A, f3, 3, &ups, &downs), D);
    assert_int_equal(downs, 1);
    // failures not consecutive: never dead
    assert_int_equal(s_run(A, flaky, 6, &ups, &downs), A);
    assert_int_equal(downs, 1);
    // refused: dead after 1, from any live or unknown state
    assert_int_equal(s_run(A, refused, 1, &ups, &downs), D);
    assert_int_equal(s_run(U, refused, 1, &ups, &downs), D);
    assert_int_equal(downs, 3);
    // recovery: 2 consecutive successes; a failure between starts over
    assert_int_equal(s_run(D, half, 3, &ups, &downs), DS1);
    assert_int_equal(ups, 1);
    assert_int_equal(s_run(D, ok2, 2, &ups, &downs), A);
    assert_int_equal(ups, 2);
    // a restart never publishes before a verdict
    assert_int_equal(s_run(U, half, 3, &ups, &downs), US1);
    assert_int_equal(ups + downs, 5); // unchanged
    assert_true(hd_fsm_is_dead(D) && hd_fsm_is_dead(DS1) && !hd_fsm_is_dead(AF2));
    assert_false(hd_fsm_is_probed(M));
    assert_false(hd_fsm_has_verdict(UF2) || hd_fsm_has_verdict(R));
    assert_true(hd_fsm_has_verdict(A) && hd_fsm_has_verdict(M));
}

static int
s_line(const char *text, int *status)
{
    return hd_probe_status_line(text, strlen(text), status);
}

static void
test_status_line(void **state)
{
    (void) state;
    int st = 0;
    assert_int_equal(s_line("HTTP/1.1 200 OK\r\n", &st), 1);
    assert_int_equal(st, 200);
    assert_int_equal(s_line("HTTP/1.0 302 Found\r\nLocation: /x\r\n", &st), 1);
    assert_int_equal(st, 302);
    assert_int_equal(s_line("HTTP/1.1 503 \r\n", &st), 1);
    assert_int_equal(st, 503);
    assert_int_equal(s_line("HTTP/1.1 204\r\n", &st), 1);
    assert_int_equal(st, 204);
    assert_int_equal(s_line("HTTP/1.1 200 Very\tFine\r\n", &st), 1);
    // incomplete: need more
    const char *partial[] = {
        "", "H", "HTTP/1.", "HTTP/1.1 2", "HTTP/1.1 200", "HTTP/1.1 200 O", "HTTP/1.1 200 OK\r"};
    for (size_t i = 0; i < sizeof partial / sizeof *partial; i++)
        assert_int_equal(s_line(partial[i], &st), 0);
    // malformed
    const char *bad[] = {"HTTP/2 200 OK\r\n",    "HTTP/1.2 200 OK\r\n",     "http/1.1 200 OK\r\n",
                         "HTTP/1.1  200 OK\r\n", "HTTP/1.1 20 OK\r\n",      "HTTP/1.1 2000 OK\r\n",
                         "HTTP/1.1 abc OK\r\n",  "HTTP/1.1 200 OK\n",       "HTTP/1.1 200OK\r\n",
                         "HTTP/1.1 099 X\r\n",   "HTTP/1.1 200 O\x01K\r\n", "HTTP/1.1 200 OK\rX",
                         "SSH-2.0-OpenSSH\r\n",  "HTTP/1.1 200 \x7f\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (s_line(bad[i], &st) != -1)
            fail_msg("accepted: %s", bad[i]);
    // bounded: a status line longer than HD_PROBE_LINE_MAX without CRLF
    char long_line[HD_PROBE_LINE_MAX + 1];
    memset(long_line, 'x', sizeof long_line);
    memcpy(long_line, "HTTP/1.1 200 ", 13);
    assert_int_equal(hd_probe_status_line(long_line, HD_PROBE_LINE_MAX, &st), -1);
    assert_int_equal(hd_probe_status_line(long_line, HD_PROBE_LINE_MAX - 1, &st), 0);
    assert_true(hd_probe_status_ok(200) && hd_probe_status_ok(399) && hd_probe_status_ok(301));
    assert_false(hd_probe_status_ok(199) || hd_probe_status_ok(400) || hd_probe_status_ok(500));
}

static void
test_request_and_host(void **state)
{
    (void) state;
    char buf[HD_PROBE_REQ_MAX];
    size_t n = hd_probe_request(buf, sizeof buf, "/healthz", "api.test");
    assert_true(n > 0);
    assert_string_equal(buf, "GET /healthz HTTP/1.1\r\nHost: api.test\r\nUser-Agent: "
                             "switchyard-healthd\r\nConnection: close\r\n\r\n");
    assert_int_equal(hd_probe_request(buf, sizeof buf, "healthz", "a"), 0);
    assert_int_equal(hd_probe_request(buf, sizeof buf, "/a b", "a"), 0);
    assert_int_equal(hd_probe_request(buf, sizeof buf, "/a\r\nX: y", "a"), 0);
    assert_int_equal(hd_probe_request(buf, sizeof buf, "/", ""), 0);
    assert_int_equal(hd_probe_request(buf, 16, "/", "a"), 0);

    hd_spec_t s = {.vhost = "api.test", .host = "10.0.0.5", .port = 8080};
    char host[256];
    assert_true(hd_specs_host_header(&s, host, sizeof host));
    assert_string_equal(host, "api.test");
    const char *catch_all[] = {"*.tenant.test", "*", "", "_"};
    for (size_t i = 0; i < 4; i++) {
        s.vhost = (char *) catch_all[i];
        assert_true(hd_specs_host_header(&s, host, sizeof host));
        assert_string_equal(host, "10.0.0.5:8080");
    }
    s.port = 80;
    assert_true(hd_specs_host_header(&s, host, sizeof host));
    assert_string_equal(host, "10.0.0.5");
    s.host = "::1";
    s.port = 81;
    assert_true(hd_specs_host_header(&s, host, sizeof host));
    assert_string_equal(host, "[::1]:81");
}

static void
test_jitter_bounds(void **state)
{
    (void) state;
    uint64_t rng = 42;
    int64_t min_first = INT64_MAX, max_first = -1, min_next = INT64_MAX, max_next = -1;
    int buckets[10] = {0};
    for (int i = 0; i < 100000; i++) {
        int64_t f = hd_sched_first_ms(1000, hd_sched_random(&rng));
        int64_t x = hd_sched_next_ms(1000, hd_sched_random(&rng));
        min_first = f < min_first ? f : min_first;
        max_first = f > max_first ? f : max_first;
        min_next = x < min_next ? x : min_next;
        max_next = x > max_next ? x : max_next;
        buckets[f / 100]++;
    }
    assert_true(min_first >= 0 && max_first <= 999);
    assert_true(min_first < 10 && max_first > 990); // spread over the whole interval
    assert_true(min_next >= 900 && max_next <= 1100);
    assert_true(min_next < 905 && max_next > 1095);
    for (int b = 0; b < 10; b++) // no burst: every tenth of the interval gets its share
        assert_true(buckets[b] > 9000 && buckets[b] < 11000);
    assert_int_equal(hd_sched_first_ms(0, 7), 0);
    assert_int_equal(hd_sched_next_ms(0, 7), 0);
    assert_int_equal(hd_sched_next_ms(5, 12345), 5); // too short to spread
}

static void
test_specs_parse(void **state)
{
    (void) state;
    const char *body =
        "[{\"route\":\"r1\",\"vHost\":\"api.test\",\"healthPath\":\"/healthz\",\"backends\":["
        "{\"id\":\"a\",\"hostname\":\"127.0.0.1\",\"port\":4001,\"region\":\"1\",\"probe\":"
        "\"http\",\"maintenance\":false},"
        "{\"id\":\"b\",\"hostname\":\"127.0.0.1\",\"port\":4002,\"region\":\"2\",\"probe\":\"tcp\","
        "\"maintenance\":true},"
        "{\"id\":\"c\",\"hostname\":\"127.0.0.1\",\"port\":0},"
        "{\"hostname\":\"127.0.0.1\",\"port\":1}]},"
        "{\"route\":\"r2\",\"vHost\":\"*.w.test\",\"backends\":[{\"id\":\"a\",\"hostname\":"
        "\"h\",\"port\":80,\"extra\":1}]},{\"backends\":[]}]";
    hd_spec_t *specs = NULL;
    size_t count = 0, skipped = 0;
    char err[128];
    assert_int_equal(hd_specs_parse(body, &specs, &count, &skipped, err, sizeof err), 0);
    assert_int_equal(count, 3);
    assert_int_equal(skipped, 3);
    assert_string_equal(specs[0].route, "r1");
    assert_string_equal(specs[0].path, "/healthz");
    assert_string_equal(specs[0].backend, "a");
    assert_int_equal(specs[0].port, 4001);
    assert_false(specs[0].tcp);
    assert_false(specs[0].maint);
    assert_true(specs[1].tcp);
    assert_true(specs[1].maint);
    assert_string_equal(specs[1].region, "2");
    assert_string_equal(specs[2].route, "r2");
    assert_string_equal(specs[2].path, "/");
    hd_specs_free(&specs, count);
    assert_null(specs);
    assert_int_equal(hd_specs_parse("{}", &specs, &count, &skipped, err, sizeof err), -1);
    assert_int_equal(hd_specs_parse("[", &specs, &count, &skipped, err, sizeof err), -1);
    assert_int_equal(hd_specs_parse(NULL, &specs, &count, &skipped, err, sizeof err), -1);
    assert_int_equal(hd_specs_parse("[]", &specs, &count, &skipped, err, sizeof err), 0);
    // pages of a long list: {"routes": [...], "next": N | null}, moved into one list
    int64_t next = 0;
    const char *p1 = "{\"routes\":[{\"route\":\"r1\",\"vHost\":\"a\",\"backends\":["
                     "{\"id\":\"x\",\"hostname\":\"h\",\"port\":80}]}],\"next\":1}";
    const char *p2 = "{\"routes\":[{\"route\":\"r2\",\"vHost\":\"b\",\"backends\":["
                     "{\"id\":\"y\",\"hostname\":\"h\",\"port\":81}]}],\"next\":null}";
    hd_spec_t *all = NULL, *page = NULL;
    size_t all_count = 0, n = 0;
    assert_int_equal(hd_specs_parse_page(p1, &page, &n, &skipped, &next, err, sizeof err), 0);
    assert_int_equal(next, 1);
    hd_specs_move(&all, &all_count, &page, n);
    assert_null(page);
    assert_int_equal(hd_specs_parse_page(p2, &page, &n, &skipped, &next, err, sizeof err), 0);
    assert_int_equal(next, -1);
    hd_specs_move(&all, &all_count, &page, n);
    assert_int_equal(all_count, 2);
    assert_string_equal(all[0].route, "r1");
    assert_string_equal(all[1].backend, "y");
    hd_specs_free(&all, all_count);
    // a page is not the whole list for hd_specs_parse; a bad "next" is refused
    assert_int_equal(hd_specs_parse(p1, &specs, &count, &skipped, err, sizeof err), -1);
    assert_int_equal(hd_specs_parse_page("{\"routes\":[],\"next\":\"x\"}", &page, &n, &skipped,
                                         &next, err, sizeof err),
                     -1);
    assert_int_equal(count, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsm_every_transition), cmocka_unit_test(test_fsm_sequences),
        cmocka_unit_test(test_status_line),          cmocka_unit_test(test_request_and_host),
        cmocka_unit_test(test_jitter_bounds),        cmocka_unit_test(test_specs_parse),
    };
    return cmocka_run_group_tests_name("test_health", tests, NULL, NULL);
}
