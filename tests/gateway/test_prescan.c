/*  test_prescan - unit tests for gw_prescan.

    A table of request heads, each with the exact answer expected (return, status and, where
    it is part of the contract, the reason). Every case is also fed in every prefix: a valid
    head gives 0 until its last byte, and an invalid one gives 0 or the same -1 and status
    (the answer must not depend on how reads split the head). Then the limits, each just at
    and just past the edge, with the early answers for heads that are still arriving.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../gateway/gw_prescan.h"

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"

//  One head and the answer it must get.
typedef struct {
    const char *name;   // what the case shows
    const char *head;   // the bytes (may hold NUL)
    size_t len;         // their count
    int ret;            // 1, 0 or -1
    int status;         // when ret is -1
    const char *reason; // when ret is -1; NULL: not checked
} t_case_t;

#define OK(name, head)                                                                             \
    {                                                                                              \
        name, head, sizeof(head) - 1, 1, 0, NULL                                                   \
    }
#define MORE(name, head)                                                                           \
    {                                                                                              \
        name, head, sizeof(head) - 1, 0, 0, NULL                                                   \
    }
#define BAD(name, head, status, reason)                                                            \
    {                                                                                              \
        name, head, sizeof(head) - 1, -1, status, reason                                           \
    }

static const t_case_t t_cases[] = {
    // request line and leading empty lines
    OK("minimal HTTP/1.1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    OK("HTTP/1.0 needs no Host", "GET / HTTP/1.0\r\n\r\n"),
    OK("one leading CRLF", "\r\n" H11 "\r\n"),
    OK("two leading CRLFs", "\r\n\r\n" H11 "\r\n"),
    BAD("three leading CRLFs", "\r\n\r\n\r\n" H11 "\r\n", 400, "empty lines before request line"),
    BAD("leading bare LF", "\n" H11 "\r\n", 400, "bare LF"),
    BAD("leading bare CR", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR"),
    OK("extension method", "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"),
    OK("method is any token", "M-1.x! /x HTTP/1.1\r\nHost: a\r\n\r\n"),
    OK("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    BAD("* only for OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"),
    BAD("*x", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"),
    OK("absolute-form", "GET http://a.example/p?q HTTP/1.1\r\nHost: a\r\n\r\n"),
    OK("absolute-form https, any case", "GET HTTPS://a:8443 HTTP/1.1\r\nHost: a\r\n\r\n"),
    BAD("absolute-form without authority",
        "GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request-target"),
    BAD("absolute-form cut short",
        "GET http:/ HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request-target"),
    BAD("other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"),
    BAD("authority-form (CONNECT)",
        "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request-target"),
    BAD("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"),
    BAD("DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"),
    BAD("obs-text in target",
        "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request-target"),
    BAD("NUL in target", "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request-target"),
    BAD("two spaces before target",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid request-target"),
    BAD("two spaces before version",
        "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "invalid HTTP version"),
    BAD("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "invalid HTTP version"),
    BAD("HTAB as separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"),
    BAD("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"),
    BAD("bad method byte", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"),
    BAD("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400, "invalid HTTP version"),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, "invalid HTTP version"),
    BAD("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "invalid HTTP version"),
    BAD("HTTP/0.9 style line", "GET /\r\n\r\n", 400, "malformed request line"),
    BAD("method only", "GET\r\n\r\n", 400, "malformed request line"),
    BAD("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF"),
    BAD("bare CR in request line", "GET /\rx HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR"),
    BAD("CR CR LF after request line",
        "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
        400,
        "invalid HTTP version"),
    // line endings and folding in the header section
    BAD("bare LF ends a field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "bare LF"),
    BAD("bare LF as the empty line", H11 "\n", 400, "bare LF"),
    BAD("bare CR as the empty line", H11 "\rX", 400, "bare CR"),
    BAD("bare CR in a value", H11 "X: a\rb\r\n\r\n", 400, "CR in header value"),
    BAD("CR CR LF ends a field", H11 "X: a\r\r\n\r\n", 400, "CR in header value"),
    BAD("bare CR in a name", H11 "X\r: a\r\n\r\n", 400, "bare CR"),
    BAD("obs-fold with SP", H11 "X: a\r\n b\r\n\r\n", 400, "obs-fold"),
    BAD("obs-fold with HTAB", H11 "X: a\r\n\tb\r\n\r\n", 400, "obs-fold"),
    BAD("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs-fold"),
    // field names and values
    BAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "space before colon"),
    BAD("HTAB before colon", H11 "X\t: a\r\n\r\n", 400, "space before colon"),
    BAD("space inside a name", H11 "X Y: a\r\n\r\n", 400, "invalid field name"),
    BAD("empty name", H11 ": a\r\n\r\n", 400, "empty field name"),
    BAD("no colon", H11 "X\r\n\r\n", 400, "missing colon"),
    BAD("separator in a name", H11 "X@Y: a\r\n\r\n", 400, "invalid field name"),
    BAD("NUL in a name", H11 "X\0: a\r\n\r\n", 400, "invalid field name"),
    BAD("obs-text in a name", H11 "X\xe9: a\r\n\r\n", 400, "invalid field name"),
    BAD("NUL in a value", H11 "X: a\0b\r\n\r\n", 400, "NUL in header value"),
    OK("every tchar in a name", H11 "!#$%&'*+-.^_`|~09AZaz: a\r\n\r\n"),
    OK("obs-text in a value", H11 "X: caf\xc3\xa9\r\n\r\n"),
    OK("HTAB and controls in a value", H11 "X: a\tb\x01\x7f\r\n\r\n"),
    OK("empty value", H11 "X:\r\n\r\n"),
    OK("colons in a value", H11 "X: a:b:c\r\n\r\n"),
    // Content-Length
    OK("Content-Length", H11 "Content-Length: 5\r\n\r\n"),
    OK("Content-Length with OWS", H11 "content-length: \t 5 \t\r\n\r\n"),
    OK("Content-Length 0", H11 "Content-Length: 0\r\n\r\n"),
    OK("Content-Length 2^63-1", H11 "Content-Length: 9223372036854775807\r\n\r\n"),
    OK("Content-Length leading zeros", H11 "Content-Length: 000000000000000000000000042\r\n\r\n"),
    BAD("Content-Length 2^63",
        H11 "Content-Length: 9223372036854775808\r\n\r\n",
        400,
        "invalid Content-Length"),
    BAD("Content-Length 2^64+1",
        H11 "Content-Length: 18446744073709551617\r\n\r\n",
        400,
        "invalid Content-Length"),
    BAD("Content-Length negative", H11 "Content-Length: -1\r\n\r\n", 400, "invalid Content-Length"),
    BAD("Content-Length plus sign",
        H11 "Content-Length: +5\r\n\r\n",
        400,
        "invalid Content-Length"),
    BAD("Content-Length hex", H11 "Content-Length: 0x5\r\n\r\n", 400, "invalid Content-Length"),
    BAD("Content-Length space inside",
        H11 "Content-Length: 1 2\r\n\r\n",
        400,
        "invalid Content-Length"),
    BAD("Content-Length empty", H11 "Content-Length: \r\n\r\n", 400, "invalid Content-Length"),
    BAD("Content-Length list", H11 "Content-Length: 5, 5\r\n\r\n", 400, "duplicate Content-Length"),
    BAD("Content-Length twice, equal",
        H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
        400,
        "duplicate Content-Length"),
    BAD("Content-Length twice, other case",
        H11 "content-length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n",
        400,
        "duplicate Content-Length"),
    OK("a name that only starts like Content-Length", H11 "Content-Lengths: x\r\n\r\n"),
    // Transfer-Encoding
    OK("chunked", H11 "Transfer-Encoding: chunked\r\n\r\n"),
    OK("chunked, any case, OWS", H11 "transfer-encoding:  \tChunKed \r\n\r\n"),
    BAD("gzip", H11 "Transfer-Encoding: gzip\r\n\r\n", 400, "unsupported Transfer-Encoding"),
    BAD("gzip, chunked",
        H11 "Transfer-Encoding: gzip, chunked\r\n\r\n",
        400,
        "unsupported Transfer-Encoding"),
    BAD("chunked, chunked",
        H11 "Transfer-Encoding: chunked, chunked\r\n\r\n",
        400,
        "unsupported Transfer-Encoding"),
    BAD("identity",
        H11 "Transfer-Encoding: identity\r\n\r\n",
        400,
        "unsupported Transfer-Encoding"),
    BAD("chunk", H11 "Transfer-Encoding: chunk\r\n\r\n", 400, "unsupported Transfer-Encoding"),
    BAD("empty Transfer-Encoding",
        H11 "Transfer-Encoding:\r\n\r\n",
        400,
        "unsupported Transfer-Encoding"),
    BAD("Transfer-Encoding twice",
        H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "duplicate Transfer-Encoding"),
    BAD("Content-Length then Transfer-Encoding",
        H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "Content-Length with Transfer-Encoding"),
    BAD("Transfer-Encoding then Content-Length",
        H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
        "Content-Length with Transfer-Encoding"),
    BAD("Transfer-Encoding in HTTP/1.0",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "Transfer-Encoding in HTTP/1.0"),
    // Host
    BAD("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, "missing Host"),
    BAD("Host twice", H11 "Host: a\r\n\r\n", 400, "duplicate Host"),
    BAD("Host twice, other case",
        "GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n",
        400,
        "duplicate Host"),
    BAD("empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400, "empty Host"),
    BAD("empty Host in HTTP/1.0", "GET / HTTP/1.0\r\nHost:\r\n\r\n", 400, "empty Host"),
    BAD("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
    BAD("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"),
    BAD("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"),
    BAD("Host with obs-text", "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400, "invalid Host"),
    OK("Host with port and OWS", "GET / HTTP/1.1\r\nhost:  a-b_c.example.com:8080 \r\n\r\n"),
    OK("Host IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
    // not finished yet
    MORE("empty", ""),
    MORE("only CRLFs", "\r\n\r\n"),
    MORE("request line", "GET / HTTP/1.1\r\n"),
    MORE("no empty line yet", H11),
    MORE("half the empty line", H11 "\r"),
};

//  gw_prescan on a heap copy of exactly len bytes, so ASan sees any read past the end.
static int
t_scan(const char *head, size_t len, gw_prescan_t *out)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, head, len);
    int rc = gw_prescan(len ? copy : NULL, len, out);
    free(copy);
    return rc;
}

//  Check one answer, naming the case when it is wrong.
static void
t_expect(const char *name,
         size_t len,
         int rc,
         const gw_prescan_t *out,
         int ret,
         int status,
         const char *reason)
{
    if (rc != ret || (ret == -1 && out->status != status)
        || (ret == -1 && reason && (out->reason == NULL || strcmp(out->reason, reason) != 0))
        || (ret != -1 && (out->status != 0 || out->reason != NULL))) {
        print_error("case \"%s\" (%zu bytes): got %d status %d reason \"%s\", want %d %d \"%s\"\n",
                    name, len, rc, out->status, out->reason ? out->reason : "(null)", ret, status,
                    reason ? reason : "(any)");
        fail();
    }
}

//  Every prefix of a head that gets 1 gets 0 until head_len; one that gets -1 gets 0 or -1
//  with the same status.
static void
t_check_prefixes(const char *name, const char *head, size_t len, int ret, int status)
{
    gw_prescan_t out;
    for (size_t k = 0; k < len; k++) {
        int rc = t_scan(head, k, &out);
        if (ret == 1 || ret == 0)
            t_expect(name, k, rc, &out, 0, 0, NULL);
        else if (rc != 0)
            t_expect(name, k, rc, &out, -1, status, NULL);
    }
}

static void
test_table(void **state)
{
    (void) state;
    size_t n = sizeof t_cases / sizeof t_cases[0];
    assert_true(n >= 60);
    for (size_t i = 0; i < n; i++) {
        const t_case_t *c = &t_cases[i];
        gw_prescan_t out;
        int rc = t_scan(c->head, c->len, &out);
        t_expect(c->name, c->len, rc, &out, c->ret, c->status, c->reason);
        if (rc == 1 && out.head_len != c->len) {
            print_error("case \"%s\": head_len %zu, want %zu\n", c->name, out.head_len, c->len);
            fail();
        }
        t_check_prefixes(c->name, c->head, c->len, c->ret, c->status);
    }
}

//  A browser-like head, and every prefix of it.
static void
test_prefixes_of_a_real_head(void **state)
{
    (void) state;
    static const char head[] =
        "\r\nPOST /api/v1/items?sort=desc&page=2 HTTP/1.1\r\n"
        "Host: api.example.com:8080\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-US,en;q=0.5\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        "Content-Length: 17\r\n"
        "Cookie: a=1; b=\"x y\"; c=\xe2\x9c\x93\r\n"
        "X-Empty:\r\n"
        "X-Tab:\tvalue\t\r\n"
        "\r\n";
    size_t len = sizeof head - 1;
    gw_prescan_t out;
    for (size_t k = 0; k < len; k++)
        t_expect("real head prefix", k, t_scan(head, k, &out), &out, 0, 0, NULL);
    assert_int_equal(t_scan(head, len, &out), 1);
    assert_int_equal(out.head_len, len);
    assert_int_equal(out.nfields, 9);
    assert_true(out.has_body);
    assert_false(out.chunked);
    assert_int_equal(out.content_length, 17);
}

static void
test_framing(void **state)
{
    (void) state;
    gw_prescan_t out;
    static const char none[] = H11 "\r\n";
    assert_int_equal(t_scan(none, sizeof none - 1, &out), 1);
    assert_false(out.has_body);
    assert_false(out.chunked);
    assert_int_equal(out.content_length, 0);
    assert_int_equal(out.nfields, 1);

    static const char zero[] = H11 "Content-Length: 0\r\n\r\n";
    assert_int_equal(t_scan(zero, sizeof zero - 1, &out), 1);
    assert_false(out.has_body);
    assert_int_equal(out.content_length, 0);
    assert_int_equal(out.nfields, 2);

    static const char cl[] = H11 "Content-Length: 9223372036854775807\r\n\r\n";
    assert_int_equal(t_scan(cl, sizeof cl - 1, &out), 1);
    assert_true(out.has_body);
    assert_false(out.chunked);
    assert_true(out.content_length == INT64_MAX);

    static const char te[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n";
    assert_int_equal(t_scan(te, sizeof te - 1, &out), 1);
    assert_true(out.has_body);
    assert_true(out.chunked);
    assert_int_equal(out.content_length, 0);
    assert_int_equal(out.status, 0);
    assert_null(out.reason);
}

//  What follows the head (a body, the next pipelined request, garbage) is not looked at.
static void
test_pipelined_bytes_are_not_read(void **state)
{
    (void) state;
    static const char first[] = "GET /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    static const char rest[] = "abcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n\n\0 \r";
    char buf[sizeof first + sizeof rest];
    memcpy(buf, first, sizeof first - 1);
    memcpy(buf + sizeof first - 1, rest, sizeof rest - 1);
    size_t len = sizeof first - 1 + sizeof rest - 1;
    gw_prescan_t out;
    assert_int_equal(t_scan(buf, len, &out), 1);
    assert_int_equal(out.head_len, sizeof first - 1);
    assert_int_equal(out.content_length, 3);
    // the caller moves on by head_len + body and scans again
    size_t next = out.head_len + out.content_length;
    assert_int_equal(t_scan(buf + next, len - next, &out), 1);
    assert_int_equal(out.head_len, strlen("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_false(out.has_body);
}

//  "GET /aaaa...a" + tail, with the request line's content exactly content_len bytes.
static char *
t_long_line(size_t content_len, const char *tail, size_t *len)
{
    static const char prefix[] = "GET /";
    static const char suffix[] = " HTTP/1.1";
    size_t tail_len = strlen(tail);
    *len = content_len + tail_len;
    char *buf = malloc(*len);
    assert_non_null(buf);
    memcpy(buf, prefix, sizeof prefix - 1);
    memset(buf + sizeof prefix - 1, 'a', content_len - (sizeof prefix - 1) - (sizeof suffix - 1));
    memcpy(buf + content_len - (sizeof suffix - 1), suffix, sizeof suffix - 1);
    memcpy(buf + content_len, tail, tail_len);
    return buf;
}

static void
test_request_line_at_limit(void **state)
{
    (void) state;
    size_t len;
    char *buf = t_long_line(GW_PRESCAN_LINE_MAX, "\r\nHost: a\r\n\r\n", &len);
    gw_prescan_t out;
    assert_int_equal(t_scan(buf, len, &out), 1);
    assert_int_equal(out.head_len, len);
    // and with two leading CRLFs, which do not count
    char *lead = malloc(len + 4);
    assert_non_null(lead);
    memcpy(lead, "\r\n\r\n", 4);
    memcpy(lead + 4, buf, len);
    assert_int_equal(t_scan(lead, len + 4, &out), 1);
    assert_int_equal(out.head_len, len + 4);
    free(lead);
    free(buf);

    buf = t_long_line(GW_PRESCAN_LINE_MAX + 1, "\r\nHost: a\r\n\r\n", &len);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 414);
    assert_string_equal(out.reason, "request line too long");
    free(buf);
}

//  414 comes as soon as the line has more than 8192 bytes, long before any CRLF.
static void
test_request_line_414_early(void **state)
{
    (void) state;
    size_t len = 3 * GW_PRESCAN_LINE_MAX;
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', len - 5);
    gw_prescan_t out;
    assert_int_equal(t_scan(buf, GW_PRESCAN_LINE_MAX, &out), 0);
    assert_int_equal(t_scan(buf, GW_PRESCAN_LINE_MAX + 1, &out), -1);
    assert_int_equal(out.status, 414);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 414);
    // 8192 bytes and a CR may still end well; anything but LF after it may not
    buf[GW_PRESCAN_LINE_MAX] = '\r';
    assert_int_equal(t_scan(buf, GW_PRESCAN_LINE_MAX + 1, &out), 0);
    assert_int_equal(t_scan(buf, GW_PRESCAN_LINE_MAX + 2, &out), -1);
    assert_int_equal(out.status, 414);
    // a bad byte before the limit is found first, however long the line
    buf[100] = '\x01';
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 400);
    assert_string_equal(out.reason, "invalid request-target");
    free(buf);
}

//  A head with nfields fields: Host and then "X-NNN: v".
static size_t
t_fields_head(char *buf, size_t size, size_t nfields)
{
    size_t len = (size_t) snprintf(buf, size, "%s", H11);
    for (size_t i = 1; i < nfields; i++)
        len += (size_t) snprintf(buf + len, size - len, "X-%03zu: v\r\n", i);
    assert_true(len < size);
    return len;
}

static void
test_fields_limit(void **state)
{
    (void) state;
    char buf[4096];
    gw_prescan_t out;
    size_t len = t_fields_head(buf, sizeof buf - 3, GW_PRESCAN_FIELDS_MAX);
    memcpy(buf + len, "\r\n", 2);
    assert_int_equal(t_scan(buf, len + 2, &out), 1);
    assert_int_equal(out.nfields, GW_PRESCAN_FIELDS_MAX);

    // the 101st field is refused at its first byte
    memcpy(buf + len, "Y", 1);
    assert_int_equal(t_scan(buf, len, &out), 0);
    assert_int_equal(t_scan(buf, len + 1, &out), -1);
    assert_int_equal(out.status, 431);
    assert_string_equal(out.reason, "too many header fields");
    len = t_fields_head(buf, sizeof buf - 3, GW_PRESCAN_FIELDS_MAX + 1);
    memcpy(buf + len, "\r\n", 2);
    assert_int_equal(t_scan(buf, len + 2, &out), -1);
    assert_int_equal(out.status, 431);
}

//  H11 and then one field "X: vvv...v\r\n" so that the header section is section bytes.
static char *
t_big_head(size_t section, const char *tail, size_t *len)
{
    static const char rl[] = "GET / HTTP/1.1\r\n";
    static const char host[] = "Host: a\r\n";
    size_t tail_len = strlen(tail);
    size_t x = section - (sizeof host - 1); // the X field line with its CRLF
    *len = sizeof rl - 1 + section + tail_len;
    char *buf = malloc(*len);
    assert_non_null(buf);
    char *p = buf;
    memcpy(p, rl, sizeof rl - 1);
    p += sizeof rl - 1;
    memcpy(p, host, sizeof host - 1);
    p += sizeof host - 1;
    memcpy(p, "X: ", 3);
    memset(p + 3, 'v', x - 5);
    memcpy(p + x - 2, "\r\n", 2);
    memcpy(p + x, tail, tail_len);
    return buf;
}

static void
test_header_section_at_limit(void **state)
{
    (void) state;
    size_t len;
    gw_prescan_t out;
    char *buf = t_big_head(GW_PRESCAN_HEADERS_MAX, "\r\n", &len);
    assert_int_equal(t_scan(buf, len, &out), 1);
    assert_int_equal(out.head_len, len);
    assert_int_equal(out.nfields, 2);
    // pipelined bytes after it change nothing
    free(buf);
    buf = t_big_head(GW_PRESCAN_HEADERS_MAX, "\r\nGET / HTTP/1.1\r\n", &len);
    assert_int_equal(t_scan(buf, len, &out), 1);
    free(buf);

    // one byte more in the last field
    buf = t_big_head(GW_PRESCAN_HEADERS_MAX + 1, "\r\n", &len);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 431);
    assert_string_equal(out.reason, "header section too large");
    free(buf);

    // a section that is full: even one more field byte is too many
    buf = t_big_head(GW_PRESCAN_HEADERS_MAX, "Y", &len);
    assert_int_equal(t_scan(buf, len - 1, &out), 0);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 431);
    free(buf);

    // one byte short of full: no field line (at least 3 bytes) fits any more
    buf = t_big_head(GW_PRESCAN_HEADERS_MAX - 1, "Y", &len);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 431);
    free(buf);
    buf = t_big_head(GW_PRESCAN_HEADERS_MAX - 1, "\r\n", &len);
    assert_int_equal(t_scan(buf, len, &out), 1);
    free(buf);
}

//  431 comes as soon as the field being read cannot fit, long before its CRLF.
static void
test_header_section_431_early(void **state)
{
    (void) state;
    static const char rl[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t rl_len = sizeof rl - 1;
    size_t len = rl_len + 2 * GW_PRESCAN_HEADERS_MAX;
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, rl, rl_len);
    memset(buf + rl_len, 'v', len - rl_len);
    // the section starts after the request line; with the CRLF still to come, its last
    // possible content byte is at section + HEADERS_MAX - 3
    size_t section = strlen("GET / HTTP/1.1\r\n");
    size_t edge = section + GW_PRESCAN_HEADERS_MAX - 2;
    gw_prescan_t out;
    assert_int_equal(t_scan(buf, edge, &out), 0);
    assert_int_equal(t_scan(buf, edge + 1, &out), -1);
    assert_int_equal(out.status, 431);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 431);
    // a bad byte before the edge is found first
    buf[edge - 10] = '\0';
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 400);
    assert_string_equal(out.reason, "NUL in header value");
    free(buf);
}

//  Given GW_PRESCAN_HEAD_MAX bytes, there is always an answer.
static void
test_head_max_always_decides(void **state)
{
    (void) state;
    size_t len = GW_PRESCAN_HEAD_MAX;
    char *buf = malloc(len);
    assert_non_null(buf);
    gw_prescan_t out;

    // the longest valid head
    size_t line_len;
    char *line = t_long_line(GW_PRESCAN_LINE_MAX, "\r\n", &line_len);
    size_t section_len;
    char *section = t_big_head(GW_PRESCAN_HEADERS_MAX, "\r\n", &section_len);
    size_t rl = strlen("GET / HTTP/1.1\r\n");
    memcpy(buf, "\r\n\r\n", 4);
    memcpy(buf + 4, line, line_len);
    memcpy(buf + 4 + line_len, section + rl, section_len - rl);
    assert_int_equal(4 + line_len + section_len - rl, len);
    assert_int_equal(t_scan(buf, len, &out), 1);
    assert_int_equal(out.head_len, len);
    assert_int_equal(t_scan(buf, len - 1, &out), 0);
    free(section);
    free(line);

    // a line that never ends, then a flood of tiny fields
    memset(buf, 'a', len);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 414);
    memcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\n", strlen(H11));
    for (size_t i = strlen(H11); i + 4 <= len; i += 4)
        memcpy(buf + i, "x:\r\n", 4);
    assert_int_equal(t_scan(buf, len, &out), -1);
    assert_int_equal(out.status, 431);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_prefixes_of_a_real_head),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_pipelined_bytes_are_not_read),
        cmocka_unit_test(test_request_line_at_limit),
        cmocka_unit_test(test_request_line_414_early),
        cmocka_unit_test(test_fields_limit),
        cmocka_unit_test(test_header_section_at_limit),
        cmocka_unit_test(test_header_section_431_early),
        cmocka_unit_test(test_head_max_always_decides),
    };
    return cmocka_run_group_tests_name("gw_prescan", tests, NULL, NULL);
}
