/*  test_log - unit tests for proto_log.

    Each test points the logger at a pipe (or a temp file, or a datagram
    socket), emits events and reads the lines back. A small JSON checker
    below makes sure every line, however it was truncated, is one valid JSON
    object. The drop test fills a pipe nobody reads: that the test finishes
    at all shows the logger never blocks. The held tests check one write per
    flush, warn lines at once and in order, pipe pieces that end at line ends
    and lines kept (not dropped) while the reader is behind.
*/
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

#include "proto_log.h"

//  Big enough for everything a test reads back at once (a pipe holds 64 KiB).
#define CAPTURE_MAX (1024 * 1024)

//  A pipe the logger writes to and the test reads from.
typedef struct {
    int read_fd;  // test's end, non-blocking
    int write_fd; // handed to proto_log_setup
    char *text;   // what was read back, NUL-terminated
    size_t len;   // bytes in text
} capture_t;

//  A cursor over JSON text, for the checker.
typedef struct {
    const char *p;   // next byte
    const char *end; // one past the last byte
} json_cursor_t;

//  --------------------------------------------------------------------------
//  Helpers

static void
s_capture_start(capture_t *capture, proto_log_format_t format, proto_log_level_t level)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    capture->read_fd = fds[0];
    capture->write_fd = fds[1];
    capture->text = calloc(1, CAPTURE_MAX + 1);
    assert_non_null(capture->text);
    capture->len = 0;
    proto_log_setup("router", "h-1", level, format, capture->write_fd);
}

//  Reads what is in the pipe now (never waits) and returns it as a string.
static const char *
s_capture_take(capture_t *capture)
{
    capture->len = 0;
    while (capture->len < CAPTURE_MAX) {
        ssize_t n =
            read(capture->read_fd, capture->text + capture->len, CAPTURE_MAX - capture->len);
        if (n <= 0) {
            assert_true(n == 0 || errno == EAGAIN);
            break;
        }
        capture->len += (size_t) n;
    }
    capture->text[capture->len] = '\0';
    return capture->text;
}

static void
s_capture_stop(capture_t *capture)
{
    proto_log_shutdown();
    close(capture->read_fd);
    close(capture->write_fd);
    free(capture->text);
    capture->text = NULL;
}

static void
s_json_space(json_cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static bool
s_json_literal(json_cursor_t *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t) (c->end - c->p) < n || memcmp(c->p, word, n) != 0) {
        return false;
    }
    c->p += n;
    return true;
}

static bool
s_json_digits(json_cursor_t *c)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        c->p++;
    }
    return c->p > start;
}

static bool
s_json_number(json_cursor_t *c)
{
    if (c->p < c->end && *c->p == '-') {
        c->p++;
    }
    if (c->p < c->end && *c->p == '0') {
        c->p++;
    } else if (!s_json_digits(c)) {
        return false;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!s_json_digits(c)) {
            return false;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }
        if (!s_json_digits(c)) {
            return false;
        }
    }
    return true;
}

static bool
s_json_string(json_cursor_t *c)
{
    if (c->p >= c->end || *c->p != '"') {
        return false;
    }
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char) *c->p++;
        if (ch == '"') {
            return true;
        }
        if (ch < 0x20) {
            return false;
        }
        if (ch != '\\') {
            continue;
        }
        if (c->p >= c->end) {
            return false;
        }
        char e = *c->p++;
        if (e == 'u') {
            for (int i = 0; i < 4; i++) {
                if (c->p >= c->end || !strchr("0123456789abcdefABCDEF", *c->p)) {
                    return false;
                }
                c->p++;
            }
        } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
            return false;
        }
    }
    return false;
}

static bool s_json_value(json_cursor_t *c, int depth);

static bool
s_json_object(json_cursor_t *c, int depth)
{
    c->p++; // '{'
    s_json_space(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return true;
    }
    for (;;) {
        s_json_space(c);
        if (!s_json_string(c)) {
            return false;
        }
        s_json_space(c);
        if (c->p >= c->end || *c->p != ':') {
            return false;
        }
        c->p++;
        if (!s_json_value(c, depth + 1)) {
            return false;
        }
        s_json_space(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return true;
        }
        return false;
    }
}

static bool
s_json_value(json_cursor_t *c, int depth)
{
    s_json_space(c);
    if (depth > 16 || c->p >= c->end) {
        return false;
    }
    switch (*c->p) {
        case '{':
            return s_json_object(c, depth);
        case '"':
            return s_json_string(c);
        case 't':
            return s_json_literal(c, "true");
        case 'f':
            return s_json_literal(c, "false");
        case 'n':
            return s_json_literal(c, "null");
        default:
            return s_json_number(c);
    }
}

//  True if text (len bytes) is exactly one JSON object followed by "\n".
static bool
s_is_json_line(const char *text, size_t len)
{
    if (len < 3 || len > PROTO_LOG_LINE_MAX || text[0] != '{' || text[len - 1] != '\n'
        || memchr(text, '\n', len - 1)) {
        return false;
    }
    json_cursor_t c = {.p = text, .end = text + len - 1};
    return s_json_value(&c, 0) && c.p == c.end;
}

//  Asserts that text holds exactly n lines, each one valid JSON.
static void
s_assert_json_lines(const char *text, size_t len, size_t n)
{
    size_t lines = 0;
    const char *p = text;
    while (p < text + len) {
        const char *nl = memchr(p, '\n', (size_t) (text + len - p));
        assert_non_null(nl);
        size_t line_len = (size_t) (nl - p) + 1;
        if (!s_is_json_line(p, line_len)) {
            fail_msg("not a JSON line: %.*s", (int) line_len, p);
        }
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, n);
}

//  Returns its argument's target, incremented: shows whether a log macro
//  evaluated its arguments.
static int
s_count_call(int *calls)
{
    return ++*calls;
}

//  Deterministic pseudo-random numbers (no shared state: the seed is the caller's).
static uint32_t
s_next_random(uint32_t *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

//  --------------------------------------------------------------------------
//  Tests

static void
test_json_shape(void **state)
{
    (void) state;
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    log_info("route added", LOG_S("vhost", "example.com"), LOG_I("weight", -3), LOG_U("port", 8080),
             LOG_B("tls", true), LOG_S("backend", NULL), LOG_F("ratio", 0.5));
    const char *line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);

    //  {"ts":"2026-11-21T22:10:46.123Z","level":"info",...
    assert_memory_equal(line, "{\"ts\":\"", 7);
    const char *ts = line + 7;
    const char *pattern = "dddd-dd-ddTdd:dd:dd.dddZ\"";
    for (size_t i = 0; i < strlen(pattern); i++) {
        if (pattern[i] == 'd') {
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        } else {
            assert_int_equal(ts[i], pattern[i]);
        }
    }
    const char *order[] = {"\"ts\":",
                           "\"level\":\"info\"",
                           "\"actor\":\"router\"",
                           "\"instance\":\"h-1\"",
                           "\"msg\":\"route added\"",
                           "\"vhost\":\"example.com\"",
                           "\"weight\":-3",
                           "\"port\":8080",
                           "\"tls\":true",
                           "\"backend\":null",
                           "\"ratio\":0.5}\n"};
    const char *previous = line;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *found = strstr(line, order[i]);
        if (!found || found < previous) {
            fail_msg("%s missing or out of order in %s", order[i], line);
        }
        previous = found;
    }
    s_capture_stop(&capture);
}

static void
test_json_numbers(void **state)
{
    (void) state;
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    log_warn("numbers", LOG_I("min", INT64_MIN), LOG_U("max", UINT64_MAX), LOG_F("tenth", 0.1),
             LOG_F("big", 1e300), LOG_F("nan", NAN), LOG_F("inf", INFINITY),
             LOG_F("ninf", -INFINITY), LOG_B("no", false));
    const char *line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(strstr(line, "\"level\":\"warn\""));
    assert_non_null(strstr(line, "\"min\":-9223372036854775808,"));
    assert_non_null(strstr(line, "\"max\":18446744073709551615,"));
    assert_non_null(strstr(line, "\"tenth\":0.1,"));
    assert_non_null(strstr(line, "\"big\":1e+300,"));
    assert_non_null(strstr(line, "\"nan\":null,\"inf\":null,\"ninf\":null,\"no\":false}\n"));
    s_capture_stop(&capture);
}

//  Numbers are written by hand on the common paths (integers, values with
//  at most three decimals): the text must be exactly what printf gives
//  (%lld, %llu, shortest %.15g/%.17g), for edge values and many random ones.
static void
test_numbers_like_printf(void **state)
{
    (void) state;
    uint32_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        uint64_t r = ((uint64_t) s_next_random(&seed) << 32) | s_next_random(&seed);
        int64_t i = round < 4 ? (int64_t[]){INT64_MIN, INT64_MAX, 0, -1}[round] : (int64_t) r;
        uint64_t u = round < 2 ? (uint64_t[]){0, UINT64_MAX}[round] : r * 2654435761u;
        double ds[] = {
            (double) (int64_t) (r % 2000000000) / 1000.0 - 1e6, // three decimals, +-
            (double) (r % 100000) / 1000.0,                     // small durations
            (double) (int64_t) (r % 1000000000000ull),          // large integers
            (double) r / 7.0,                                   // anything
            round == 0   ? -0.0
            : round == 1 ? 999999999.999
            : round == 2 ? 1e-4
                         : 0.001,
        };
        capture_t capture;
        s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
        log_info("n", LOG_I("i", i), LOG_U("u", u), LOG_F("d0", ds[0]), LOG_F("d1", ds[1]),
                 LOG_F("d2", ds[2]), LOG_F("d3", ds[3]), LOG_F("d4", ds[4]));
        const char *line = s_capture_take(&capture);
        char want[128];
        snprintf(want, sizeof want, "\"i\":%lld,", (long long) i);
        if (!strstr(line, want))
            fail_msg("want %s in %s", want, line);
        snprintf(want, sizeof want, "\"u\":%llu,", (unsigned long long) u);
        if (!strstr(line, want))
            fail_msg("want %s in %s", want, line);
        for (int k = 0; k < 5; k++) {
            char num[40];
            snprintf(num, sizeof num, "%.15g", ds[k]);
            if (strtod(num, NULL) != ds[k])
                snprintf(num, sizeof num, "%.17g", ds[k]);
            snprintf(want, sizeof want, "\"d%d\":%s%s", k, num, k == 4 ? "}" : ",");
            if (!strstr(line, want))
                fail_msg("want %s in %s", want, line);
        }
        s_capture_stop(&capture);
    }
}

static void
test_json_string_escaping(void **state)
{
    (void) state;
    char out[256];
    const char input[] = "q\"b\\n\nr\rt\tc\x01\x1f"
                         "d\x7f";
    out[0] = '\0';
    size_t n = proto_log_json_string(out, sizeof(out), input, strlen(input));
    assert_string_equal(out, "\"q\\\"b\\\\n\\nr\\rt\\tc\\u0001\\u001fd\\u007f\"");
    assert_int_equal(n, strlen(out));

    //  Valid UTF-8 is copied: é (2 bytes), € (3), U+1F600 (4).
    const char utf8[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    out[0] = '\0';
    proto_log_json_string(out, sizeof(out), utf8, strlen(utf8));
    assert_string_equal(out, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");

    //  Invalid UTF-8: a lone byte, an overlong form, a surrogate, a cut sequence.
    const char bad[] = "a\xff"
                       "b\xc0\x80"
                       "c\xed\xa0\x80"
                       "d\xe2\x82";
    out[0] = '\0';
    proto_log_json_string(out, sizeof(out), bad, strlen(bad));
    assert_string_equal(out, "\"a\\u00ffb\\u00c0\\u0080c\\u00ed\\u00a0\\u0080d\\u00e2\\u0082\"");

    //  Embedded NUL bytes count, because the length is given.
    out[0] = '\0';
    proto_log_json_string(out, sizeof(out), "a\0b", 3);
    assert_string_equal(out, "\"a\\u0000b\"");

    //  Keys are escaped in lines too.
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    log_info("say \"hi\"\n", LOG_S("we\"ird\\name", "v\xff"));
    const char *line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(
        strstr(line, "\"msg\":\"say \\\"hi\\\"\\n\",\"we\\\"ird\\\\name\":\"v\\u00ff\"}"));
    s_capture_stop(&capture);
}

static void
test_json_string_appends(void **state)
{
    (void) state;
    //  Appends after what out already holds.
    char out[16] = "[";
    assert_int_equal(proto_log_json_string(out, sizeof(out), "ab", 2), 4);
    assert_string_equal(out, "[\"ab\"");

    //  Too small: returns 0 and leaves out as it was.
    char small[8] = "x";
    assert_int_equal(proto_log_json_string(small, sizeof(small), "abcdef", 6), 0);
    assert_string_equal(small, "x");
    //  An escape is never split: 3 quotes need 6 bytes escaped, 8 with quotes.
    assert_int_equal(proto_log_json_string(small, sizeof(small), "\"\"\"", 3), 0);
    assert_string_equal(small, "x");
    //  Exactly enough: "x" + 2 quotes + 4 bytes + NUL = 8.
    assert_int_equal(proto_log_json_string(small, sizeof(small), "abcd", 4), 6);
    assert_string_equal(small, "x\"abcd\"");

    //  Empty and NULL strings, no space at all.
    char empty[4] = "";
    assert_int_equal(proto_log_json_string(empty, sizeof(empty), NULL, 0), 2);
    assert_string_equal(empty, "\"\"");
    assert_int_equal(proto_log_json_string(empty, 0, "a", 1), 0);
}

static void
test_level_filtering(void **state)
{
    (void) state;
    capture_t capture;
    int calls = 0;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);

    //  Below the level: nothing written, and the arguments are not evaluated.
    log_debug("hidden", LOG_I("n", s_count_call(&calls)));
    assert_int_equal(calls, 0);
    s_capture_take(&capture);
    assert_int_equal(capture.len, 0);

    //  A direct proto_log_emit call is filtered too.
    proto_log_field_t field = LOG_I("n", 1);
    proto_log_emit(PROTO_LOG_DEBUG, "hidden", &field, 1);
    s_capture_take(&capture);
    assert_int_equal(capture.len, 0);

    //  At or above the level: written, arguments evaluated once.
    log_info("shown", LOG_I("n", s_count_call(&calls)));
    log_error("bad", LOG_ERRNO(ENOENT));
    assert_int_equal(calls, 1);
    const char *text = s_capture_take(&capture);
    s_assert_json_lines(text, capture.len, 2);
    assert_non_null(strstr(text, "\"msg\":\"shown\",\"n\":1}\n"));
    assert_non_null(strstr(text, "\"level\":\"error\""));
    assert_non_null(strstr(text, "\"error\":\"No such file or directory\""));

    //  Raising the level lets debug through.
    proto_log_level_current = PROTO_LOG_DEBUG;
    log_debug("now shown", LOG_I("n", s_count_call(&calls)));
    assert_int_equal(calls, 2);
    text = s_capture_take(&capture);
    s_assert_json_lines(text, capture.len, 1);
    assert_non_null(strstr(text, "\"level\":\"debug\""));

    //  ERROR silences warnings.
    proto_log_level_current = PROTO_LOG_ERROR;
    log_warn("quiet");
    s_capture_take(&capture);
    assert_int_equal(capture.len, 0);
    s_capture_stop(&capture);
}

static void
test_level_parse(void **state)
{
    (void) state;
    proto_log_level_t level = PROTO_LOG_INFO;
    assert_int_equal(proto_log_level_parse("error", &level), 0);
    assert_int_equal(level, PROTO_LOG_ERROR);
    assert_int_equal(proto_log_level_parse("warn", &level), 0);
    assert_int_equal(level, PROTO_LOG_WARN);
    assert_int_equal(proto_log_level_parse("info", &level), 0);
    assert_int_equal(level, PROTO_LOG_INFO);
    assert_int_equal(proto_log_level_parse("debug", &level), 0);
    assert_int_equal(level, PROTO_LOG_DEBUG);
    assert_int_equal(proto_log_level_parse("DEBUG", &level), 0);
    assert_int_equal(level, PROTO_LOG_DEBUG);
    assert_int_equal(proto_log_level_parse("WARN", &level), 0);
    assert_int_equal(level, PROTO_LOG_WARN);

    //  Unknown text fails and leaves the level alone.
    assert_int_equal(proto_log_level_parse("warning", &level), -1);
    assert_int_equal(proto_log_level_parse("", &level), -1);
    assert_int_equal(proto_log_level_parse(" info", &level), -1);
    assert_int_equal(proto_log_level_parse("trace", &level), -1);
    assert_int_equal(proto_log_level_parse(NULL, &level), -1);
    assert_int_equal(level, PROTO_LOG_WARN);
}

static void
test_secret_keys(void **state)
{
    (void) state;
    assert_true(proto_log_is_secret_key("authorization"));
    assert_true(proto_log_is_secret_key("Authorization"));
    assert_true(proto_log_is_secret_key("Cookie"));
    assert_true(proto_log_is_secret_key("Set-Cookie"));
    assert_true(proto_log_is_secret_key("api_key"));
    assert_true(proto_log_is_secret_key("X-Api-Key"));
    assert_true(proto_log_is_secret_key("password"));
    assert_true(proto_log_is_secret_key("DB_PASSWORD"));
    assert_true(proto_log_is_secret_key("X-Auth-Token"));
    assert_true(proto_log_is_secret_key("client_secret"));

    assert_false(proto_log_is_secret_key("cookies_enabled")); // cookie: exact name only
    assert_false(proto_log_is_secret_key("x-authorization-hint"));
    assert_false(proto_log_is_secret_key("vhost"));
    assert_false(proto_log_is_secret_key("path"));
    assert_false(proto_log_is_secret_key(""));
    assert_false(proto_log_is_secret_key(NULL));
}

static void
test_redacted_fields(void **state)
{
    (void) state;
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    log_info("request", LOG_S("authorization", "Bearer abc"), LOG_S("Cookie", "sid=1"),
             LOG_S("api_key", "k-123"), LOG_S("password", "hunter2"), LOG_S("X-Auth-Token", "t0k"),
             LOG_I("token_id", 42), LOG_S("vhost", "ok"));
    const char *line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(strstr(line, "\"authorization\":\"[REDACTED]\",\"Cookie\":\"[REDACTED]\","
                                 "\"api_key\":\"[REDACTED]\",\"password\":\"[REDACTED]\","
                                 "\"X-Auth-Token\":\"[REDACTED]\",\"token_id\":\"[REDACTED]\","
                                 "\"vhost\":\"ok\"}\n"));
    const char *secrets[] = {"abc", "sid=1", "k-123", "hunter2", "t0k", "42"};
    const char *fields = strstr(line, "\"msg\""); // after ts, which may hold "42"
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        assert_null(strstr(fields, secrets[i]));
    }

    //  path, url and uri have their query redacted.
    log_info("request", LOG_S("path", "/a?token=abc&x=1&password=p"),
             LOG_S("URL", "http://h/b?api_key=zz"), LOG_S("uri", "/c?q=1"));
    line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(strstr(line, "\"path\":\"/a?token=[REDACTED]&x=1&password=[REDACTED]\","
                                 "\"URL\":\"http://h/b?api_key=[REDACTED]\","
                                 "\"uri\":\"/c?q=1\"}\n"));
    s_capture_stop(&capture);
}

static void
test_redact_query(void **state)
{
    (void) state;
    char out[128];
    const char *expected = "/a?token=[REDACTED]&x=1&password=[REDACTED]";
    assert_int_equal(proto_log_redact_query("/a?token=abc&x=1&password=p", out, sizeof(out)),
                     strlen(expected));
    assert_string_equal(out, expected);

    const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"/plain/path", "/plain/path"},
        {"", ""},
        {"/a?", "/a?"},
        {"/a?token", "/a?token"},                      // a name without '='
        {"/a?token&key=1", "/a?token&key=[REDACTED]"}, // ... followed by one with
        {"/a?&&Secret=s&", "/a?&&Secret=[REDACTED]&"}, // empty parameters
        {"/a?x=1&api%5Fkey=z", "/a?x=1&api%5Fkey=[REDACTED]"},
        {"/a?pass%77ord=z&q=%74oken", "/a?pass%77ord=[REDACTED]&q=%74oken"}, // decoded name
        {"/a?q=a=b&token=x=y", "/a?q=a=b&token=[REDACTED]"},
        {"/a?t=1?token=2", "/a?t=1?token=2"}, // after the first '?', a '?' is data
        {"/a?=v&TOKEN=", "/a?=v&TOKEN=[REDACTED]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = proto_log_redact_query(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }

    //  A short out is cut, always NUL-terminated, and never shows a secret.
    const char *path = "/a?token=supersecretvalue&x=1";
    for (size_t cap = 1; cap < 40; cap++) {
        char small[40];
        memset(small, 'Z', sizeof(small));
        size_t n = proto_log_redact_query(path, small, cap);
        assert_int_equal(n, strlen(small));
        assert_true(n < cap);
        assert_int_equal(small[cap], 'Z');
        assert_null(strstr(small, "su"));
    }
    assert_int_equal(proto_log_redact_query(path, out, 0), 0);
    assert_int_equal(proto_log_redact_query(NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void
test_truncated_field(void **state)
{
    (void) state;
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, 'x', 10000);
    big[10000] = '\0';

    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    log_info("big", LOG_S("before", "b"), LOG_S("body", big), LOG_I("after", 7));
    const char *line = s_capture_take(&capture);
    assert_true(capture.len <= PROTO_LOG_LINE_MAX);
    assert_true(capture.len > PROTO_LOG_LINE_MAX - 64); // the value was cut, not dropped
    assert_memory_equal(line + capture.len - 2, "}\n", 2);
    assert_non_null(strstr(line, ",\"truncated\":true}\n"));
    assert_non_null(strstr(line, "\"before\":\"b\",\"body\":\"xxx"));
    assert_null(strstr(line, "\"after\""));
    s_assert_json_lines(line, capture.len, 1);

    //  A value made of escapes is cut between escapes, never inside one.
    const char *fills = "\"\\\n\x01\xff";
    for (size_t f = 0; f < strlen(fills); f++) {
        memset(big, fills[f], 10000);
        log_info("escapes", LOG_S("body", big));
        line = s_capture_take(&capture);
        s_assert_json_lines(line, capture.len, 1);
        assert_non_null(strstr(line, ",\"truncated\":true}\n"));
    }

    //  An over-long msg is cut too, and the fields after it are left out.
    memset(big, 'm', 10000);
    log_info(big, LOG_S("after", "a"));
    line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(strstr(line, "\"msg\":\"mmm"));
    assert_null(strstr(line, "\"after\""));
    assert_non_null(strstr(line, ",\"truncated\":true}\n"));

    //  A long path is still redacted before it is cut.
    memcpy(big, "/p?token=SECRET&", 16);
    log_info("path", LOG_S("path", big));
    line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(strstr(line, "\"path\":\"/p?token=[REDACTED]&mmm"));
    assert_null(strstr(line, "SECRET"));
    s_capture_stop(&capture);
    free(big);
}

static void
test_truncated_many_fields(void **state)
{
    (void) state;
    //  Numbers are never cut: a line full of them ends at a field boundary.
    proto_log_field_t fields[600];
    for (size_t i = 0; i < 600; i++) {
        fields[i] = LOG_I("counter", 1000000 + (int64_t) i);
    }
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    proto_log_emit(PROTO_LOG_INFO, "many", fields, 600);
    const char *line = s_capture_take(&capture);
    s_assert_json_lines(line, capture.len, 1);
    assert_non_null(strstr(line, "\"counter\":1000000,"));
    assert_non_null(strstr(line, ",\"truncated\":true}\n"));

    //  Lines that land exactly at the limit: grow a value byte by byte.
    char value[PROTO_LOG_LINE_MAX];
    memset(value, 'v', sizeof(value));
    for (size_t len = PROTO_LOG_LINE_MAX - 200; len < PROTO_LOG_LINE_MAX - 60; len++) {
        value[len] = '\0';
        log_info("edge", LOG_S("value", value), LOG_B("flag", true));
        value[len] = 'v';
        line = s_capture_take(&capture);
        s_assert_json_lines(line, capture.len, 1);
        bool truncated = strstr(line, "\"truncated\":true") != NULL;
        assert_non_null(strstr(line, "\"value\":\"vvv")); // cut, never left out
        bool flag = strstr(line, "\"flag\":true}\n") != NULL;
        assert_true(truncated != flag);
    }
    s_capture_stop(&capture);
}

static void
test_random_lines_stay_valid(void **state)
{
    (void) state;
    uint32_t seed = 12345;
    char pool[8][3000];
    const char *keys[] = {"k", "path", "token", "a\"b", "url", "x\xff", "long_key_name", "n"};
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_DEBUG);
    for (int iteration = 0; iteration < 300; iteration++) {
        proto_log_field_t fields[8];
        size_t nfields = s_next_random(&seed) % 9;
        for (size_t i = 0; i < nfields; i++) {
            size_t len = s_next_random(&seed) % (s_next_random(&seed) % 2 ? 40 : sizeof(pool[i]));
            for (size_t j = 0; j < len; j++) {
                pool[i][j] = (char) (s_next_random(&seed) % 255 + 1); // any byte but NUL
            }
            pool[i][len] = '\0';
            const char *key = keys[s_next_random(&seed) % 8];
            switch (s_next_random(&seed) % 4) {
                case 0:
                    fields[i] = LOG_I(key, (int64_t) s_next_random(&seed) - 100000);
                    break;
                case 1:
                    fields[i] = LOG_F(key, (double) s_next_random(&seed) / 7.0);
                    break;
                default:
                    fields[i] = LOG_S(key, pool[i]);
                    break;
            }
        }
        proto_log_emit(PROTO_LOG_DEBUG, nfields ? pool[0] : "m", fields, nfields);
        const char *line = s_capture_take(&capture);
        s_assert_json_lines(line, capture.len, 1);
    }
    s_capture_stop(&capture);
}

static void
test_pretty_format(void **state)
{
    (void) state;
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_PRETTY, PROTO_LOG_DEBUG);
    log_info("route added", LOG_S("vhost", "example.com"), LOG_S("note", "two words"),
             LOG_S("q", "say \"x\""), LOG_S("empty", ""), LOG_I("n", -5), LOG_B("up", true),
             LOG_S("none", NULL), LOG_S("password", "p"), LOG_S("path", "/a?token=t&b=2"));
    const char *line = s_capture_take(&capture);
    //  "22:10:46.123 INFO  router route added ..."
    const char *pattern = "dd:dd:dd.ddd ";
    for (size_t i = 0; i < strlen(pattern); i++) {
        if (pattern[i] == 'd') {
            assert_true(line[i] >= '0' && line[i] <= '9');
        } else {
            assert_int_equal(line[i], pattern[i]);
        }
    }
    assert_string_equal(
        line + strlen(pattern),
        "INFO  router route added vhost=example.com note=\"two words\" q=\"say \\\"x\\\"\" "
        "empty=\"\" n=-5 up=true none=null password=[REDACTED] path=\"/a?token=[REDACTED]&b=2\"\n");

    log_error("multi\nline");
    log_warn("w");
    log_debug("d", LOG_F("ratio", 0.25), LOG_F("bad", NAN));
    line = s_capture_take(&capture);
    assert_non_null(strstr(line, " ERROR router multi\\nline\n"));
    assert_non_null(strstr(line, " WARN  router w\n"));
    assert_non_null(strstr(line, " DEBUG router d ratio=0.25 bad=nan\n"));

    //  Pretty lines are bounded too.
    char big[6000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info("big", LOG_S("body", big), LOG_I("after", 1));
    line = s_capture_take(&capture);
    assert_true(capture.len <= PROTO_LOG_LINE_MAX);
    assert_non_null(strstr(line, " body=yyy"));
    assert_memory_equal(line + capture.len - 16, " truncated=true\n", 16);
    assert_null(strstr(line, "after"));
    s_capture_stop(&capture);
}

static void
test_nonblocking_drop(void **state)
{
    (void) state;
    //  If a write ever blocked, SIGALRM would end the run instead of a hang.
    alarm(30);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    proto_log_setup("router", "h-1", PROTO_LOG_INFO, PROTO_LOG_JSON, fds[1]);
    //  The caller's file description stays blocking: only our reopened one is not.
    assert_int_equal(fcntl(fds[1], F_GETFL) & O_NONBLOCK, 0);

    char pad[300];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    uint64_t before = proto_log_dropped();
    int emitted = 0;
    while (emitted < 100000 && proto_log_dropped() == before) {
        log_info("fill", LOG_I("n", emitted), LOG_S("pad", pad));
        emitted++;
    }
    assert_int_equal(proto_log_dropped(), before + 1);
    assert_true(emitted > 1 && emitted < 100000);

    //  A few more: all dropped, none blocks.
    for (int i = 0; i < 10; i++) {
        log_info("fill", LOG_I("n", 100000 + i), LOG_S("pad", pad)); // longer than any before
    }
    assert_int_equal(proto_log_dropped(), before + 11);

    //  Everything in the pipe is whole lines, in order, none missing before the drop.
    proto_log_shutdown();
    close(fds[1]);
    size_t cap = 1024 * 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], text + len, cap - len)) > 0) {
        len += (size_t) n;
    }
    assert_int_equal(n, 0);
    close(fds[0]);
    s_assert_json_lines(text, len, (size_t) emitted - 1);
    char expect[64];
    snprintf(expect, sizeof(expect), "\"n\":%d,", emitted - 2);
    assert_non_null(strstr(text, expect));
    free(text);
    alarm(0);
}

static void
test_regular_file_output(void **state)
{
    (void) state;
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    proto_log_setup("statsd", "s-2", PROTO_LOG_INFO, PROTO_LOG_JSON, fd);
    uint64_t before = proto_log_dropped();
    log_info("one", LOG_U("n", 1));
    log_info("two", LOG_U("n", 2));
    proto_log_shutdown();
    proto_log_shutdown(); // safe twice
    assert_int_equal(proto_log_dropped(), before);

    char text[1024];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    assert_true(n > 0);
    text[n] = '\0';
    s_assert_json_lines(text, (size_t) n, 2);
    assert_non_null(strstr(text, "\"actor\":\"statsd\",\"instance\":\"s-2\",\"msg\":\"one\""));
    assert_non_null(strstr(text, "\"msg\":\"two\",\"n\":2}\n"));
    //  The caller's fd is not closed by shutdown.
    assert_true(fcntl(fd, F_GETFD) >= 0);
    close(fd);
}

static void
test_socket_output(void **state)
{
    (void) state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    proto_log_setup("chatd", "c-1", PROTO_LOG_INFO, PROTO_LOG_JSON, sv[0]);
    //  The socket itself stays blocking; send uses MSG_DONTWAIT.
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    uint64_t before = proto_log_dropped();
    int emitted = 0;
    while (emitted < 100000 && proto_log_dropped() == before) {
        log_info("datagram", LOG_I("n", emitted));
        emitted++;
    }
    assert_true(proto_log_dropped() > before);
    proto_log_shutdown();

    char line[PROTO_LOG_LINE_MAX + 1];
    int received = 0;
    ssize_t n;
    while ((n = recv(sv[1], line, sizeof(line), MSG_DONTWAIT)) > 0) {
        if (!s_is_json_line(line, (size_t) n)) {
            fail_msg("not a JSON line: %.*s", (int) n, line);
        }
        received++;
    }
    assert_int_equal(received, emitted - 1);
    close(sv[0]);
    close(sv[1]);
}

static void
test_setup_again_and_errno(void **state)
{
    (void) state;
    capture_t first;
    capture_t second;
    s_capture_start(&first, PROTO_LOG_JSON, PROTO_LOG_INFO);
    s_capture_start(&second, PROTO_LOG_JSON, PROTO_LOG_INFO); // closes first's reopened fd

    //  Logging keeps errno for the caller.
    errno = EADDRINUSE;
    log_error("bind failed", LOG_ERRNO(errno));
    assert_int_equal(errno, EADDRINUSE);

    s_capture_take(&first);
    assert_int_equal(first.len, 0);
    const char *text = s_capture_take(&second);
    s_assert_json_lines(text, second.len, 1);
    assert_non_null(strstr(text, "\"error\":\"Address already in use\""));

    //  Long actor and instance names are cut, not overflowed.
    char name[400];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    proto_log_setup(name, name, PROTO_LOG_INFO, PROTO_LOG_JSON, second.write_fd);
    log_info("x");
    text = s_capture_take(&second);
    s_assert_json_lines(text, second.len, 1);
    proto_log_setup(NULL, NULL, PROTO_LOG_INFO, PROTO_LOG_JSON, second.write_fd);
    log_info(NULL);
    text = s_capture_take(&second);
    s_assert_json_lines(text, second.len, 1);
    assert_non_null(strstr(text, "\"actor\":\"\",\"instance\":\"\",\"msg\":\"\"}\n"));

    s_capture_stop(&second);
    close(first.read_fd);
    close(first.write_fd);
    free(first.text);
}

static void
test_held_lines(void **state)
{
    (void) state;
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_DEBUG);
    proto_log_hold(true);
    log_info("one", LOG_U("n", 1));
    log_debug("two", LOG_U("n", 2));
    assert_string_equal(s_capture_take(&capture), ""); // held
    proto_log_flush();
    const char *text = s_capture_take(&capture);
    s_assert_json_lines(text, capture.len, 2);
    assert_true(strstr(text, "\"msg\":\"one\"") < strstr(text, "\"msg\":\"two\""));

    //  A warn goes out at once, after what was held before it.
    log_info("three");
    log_warn("four");
    text = s_capture_take(&capture);
    s_assert_json_lines(text, capture.len, 2);
    assert_non_null(strstr(text, "\"msg\":\"three\""));
    assert_true(strstr(text, "\"msg\":\"three\"") < strstr(text, "\"msg\":\"four\""));

    //  Turning holding off writes what is held.
    log_info("five");
    proto_log_hold(false);
    text = s_capture_take(&capture);
    s_assert_json_lines(text, capture.len, 1);
    log_info("six"); // and lines are written one by one again
    text = s_capture_take(&capture);
    assert_non_null(strstr(text, "\"msg\":\"six\""));
    s_capture_stop(&capture);
}

//  A pipe of one page: a flush writes whole lines as far as they fit and keeps
//  the rest for the next flush; nothing is dropped while the buffer has room.
static void
test_held_pipe_pieces(void **state)
{
    (void) state;
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    int size = fcntl(capture.write_fd, F_SETPIPE_SZ, 4096);
    assert_true(size >= 4096);
    char pad[900];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    uint64_t before = proto_log_dropped();
    proto_log_hold(true);
    int lines = 3 * size / 900 + 5; // more than the pipe takes at once
    for (int i = 0; i < lines; i++) {
        log_info("piece", LOG_I("n", i), LOG_S("pad", pad));
    }
    size_t got = 0;
    int flushes = 0;
    char expect[32];
    while ((int) got < lines && flushes < 100) {
        proto_log_flush();
        flushes++;
        const char *text = s_capture_take(&capture);
        size_t n = 0;
        for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++) {
            n++;
        }
        s_assert_json_lines(text, capture.len, n); // whole lines only
        if (n > 0) {
            snprintf(expect, sizeof(expect), "\"n\":%zu,", got); // in order
            assert_non_null(strstr(text, expect));
        }
        got += n;
    }
    assert_int_equal(got, (size_t) lines);
    assert_true(flushes > 1); // the pipe could not take them all at once
    assert_int_equal(proto_log_dropped(), before);
    proto_log_hold(false);
    s_capture_stop(&capture);
}

//  Nobody reads: the buffer fills, then lines are dropped and counted; what
//  is read afterwards is whole lines in order.
static void
test_held_overflow(void **state)
{
    (void) state;
    alarm(30);
    capture_t capture;
    s_capture_start(&capture, PROTO_LOG_JSON, PROTO_LOG_INFO);
    char pad[500];
    memset(pad, 'q', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    uint64_t before = proto_log_dropped();
    proto_log_hold(true);
    int emitted = 0;
    while (emitted < 100000 && proto_log_dropped() == before) {
        log_info("fill", LOG_I("n", emitted), LOG_S("pad", pad));
        emitted++;
    }
    assert_int_equal(proto_log_dropped(), before + 1);
    assert_true(emitted > 64 * 1024 / 600); // the pipe and the buffer were full
    size_t kept = 0;
    for (int round = 0; round < 100; round++) {
        proto_log_flush();
        const char *text = s_capture_take(&capture);
        if (capture.len == 0) {
            break;
        }
        size_t n = 0;
        for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++) {
            n++;
        }
        s_assert_json_lines(text, capture.len, n);
        kept += n;
    }
    assert_int_equal(kept, (size_t) emitted - 1);
    proto_log_hold(false);
    s_capture_stop(&capture);
    alarm(0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_numbers_like_printf),
        cmocka_unit_test(test_json_string_escaping),
        cmocka_unit_test(test_json_string_appends),
        cmocka_unit_test(test_level_filtering),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_secret_keys),
        cmocka_unit_test(test_redacted_fields),
        cmocka_unit_test(test_redact_query),
        cmocka_unit_test(test_truncated_field),
        cmocka_unit_test(test_truncated_many_fields),
        cmocka_unit_test(test_random_lines_stay_valid),
        cmocka_unit_test(test_pretty_format),
        cmocka_unit_test(test_nonblocking_drop),
        cmocka_unit_test(test_regular_file_output),
        cmocka_unit_test(test_socket_output),
        cmocka_unit_test(test_setup_again_and_errno),
        cmocka_unit_test(test_held_lines),
        cmocka_unit_test(test_held_pipe_pieces),
        cmocka_unit_test(test_held_overflow),
    };
    return cmocka_run_group_tests_name("proto_log", tests, NULL, NULL);
}
