/*  test_head - gw_head: splitting a checked head, connection options from
    every Connection field, target forms, request ids, requested region. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_head.h"

//  A request record over a copy of raw (as gw_conn makes it).
static gw_req_t *
s_req(const char *raw)
{
    gw_req_t *req = calloc(1, sizeof *req);
    gw_buf_append(&req->head, raw, strlen(raw));
    gw_buf_append(&req->head, "", 1);
    req->head.end--;
    return req;
}

static void
s_free(gw_req_t *req)
{
    gw_buf_free(&req->head);
    free(req);
}

static void
test_split(void **state)
{
    (void) state;
    gw_req_t *req = s_req("\r\nPUT /a?b=1 HTTP/1.1\r\nHost: Site.Test:8080\r\nX-A:  v 1 \r\n"
                          "Expect: 100-continue\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_string_equal(req->method, "PUT");
    assert_string_equal(req->target, "/a?b=1");
    assert_int_equal(req->minor, 1);
    assert_true(req->idempotent);
    assert_false(req->head_request);
    assert_true(req->keep_alive);
    assert_true(req->expect_continue);
    assert_int_equal(req->nfields, 3);
    assert_int_equal(req->fields[0].id, GW_H_HOST);
    size_t len;
    const char *v = gw_req_header(req, GW_H_OTHER, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "v 1", 3); // OWS trimmed, inner space kept
    assert_string_equal(req->host, "site.test");
    assert_int_equal(req->authority_len, strlen("Site.Test:8080"));
    assert_memory_equal(req->path, "/a?b=1", req->path_len);
    s_free(req);
}

static void
test_connection_options(void **state)
{
    (void) state;
    static const struct {
        const char *raw;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x,\tclose\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: Close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_req_t *req = s_req(cases[i].raw);
        assert_int_equal(gw_head_parse(req), 0);
        if (req->keep_alive != cases[i].keep_alive)
            print_error("case %zu\n", i);
        assert_int_equal(req->keep_alive, cases[i].keep_alive);
        s_free(req);
    }
}

static void
test_target_forms(void **state)
{
    (void) state;
    gw_req_t *req = s_req("GET http://Other.Test:81/x?y HTTP/1.1\r\nHost: site.test\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_string_equal(req->host, "other.test"); // the URI's authority wins
    assert_int_equal(req->authority_len, strlen("Other.Test:81"));
    assert_memory_equal(req->authority, "Other.Test:81", req->authority_len);
    assert_int_equal(req->path_len, 4);
    assert_memory_equal(req->path, "/x?y", 4);
    s_free(req);
    req = s_req("GET http://u@other.test/ HTTP/1.1\r\nHost: site.test\r\n\r\n");
    assert_int_equal(gw_head_parse(req), -1);
    s_free(req);
    req = s_req("GET /x HTTP/1.0\r\n\r\n"); // no Host at all
    assert_int_equal(gw_head_parse(req), 0);
    assert_int_equal(req->authority_len, 0);
    assert_string_equal(req->host, "");
    s_free(req);
    req = s_req("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_string_equal(req->host, "[::1]");
    s_free(req);
}

static void
test_request_id(void **state)
{
    (void) state;
    gw_req_t *req = s_req("GET / HTTP/1.1\r\nHost: a\r\nX-Correlation-Id: c-1\r\n"
                          "X-Request-Id: r.1:x_y-z\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    gw_head_request_id(req, 1, 2);
    assert_string_equal(req->rid, "r.1:x_y-z"); // X-Request-Id wins
    assert_true(req->client_sent_corr);
    s_free(req);
    req =
        s_req("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: bad id\r\nX-Correlation-Id: c-1\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    gw_head_request_id(req, 1, 2);
    assert_string_equal(req->rid, "c-1");
    s_free(req);
    req = s_req("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    gw_head_request_id(req, 0x0123456789abcdefull, 0xfedcba9876543210ull);
    assert_int_equal(strlen(req->rid), 36);
    assert_int_equal(req->rid[14], '4');               // version 4
    assert_true(strchr("89ab", req->rid[19]) != NULL); // variant 10
    assert_false(req->client_sent_corr);
    s_free(req);
}

static void
test_region(void **state)
{
    (void) state;
    char region[65];
    gw_req_t *req = s_req("GET /?a=1&region=2 HTTP/1.1\r\nHost: a\r\nx-region: eu-1\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_int_equal(gw_head_region(req, "1", region, sizeof region), 0);
    assert_string_equal(region, "eu-1"); // the header wins
    s_free(req);
    req = s_req("GET /?a=1&region=2 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_int_equal(gw_head_region(req, "1", region, sizeof region), 0);
    assert_string_equal(region, "2");
    s_free(req);
    req = s_req("GET /?regionx=2 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_int_equal(gw_head_region(req, "1", region, sizeof region), 0);
    assert_string_equal(region, "1"); // the gateway's own
    s_free(req);
    req = s_req("GET / HTTP/1.1\r\nHost: a\r\nx-region: a b\r\n\r\n");
    assert_int_equal(gw_head_parse(req), 0);
    assert_int_equal(gw_head_region(req, "1", region, sizeof region), -1);
    s_free(req);
}
//  Request ids (UUID v4) are written by hand: the same text as printf gives.
static void
test_uuid_text(void **state)
{
    (void) state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t a = x;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t b = i == 0 ? 0 : i == 1 ? UINT64_MAX : x;
        char got[37], want[37];
        gw_head_uuid(a, b, got);
        uint64_t va = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;
        uint64_t vb = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
        snprintf(want, sizeof want, "%08x-%04x-%04x-%04x-%012llx", (unsigned) (va >> 32),
                 (unsigned) ((va >> 16) & 0xffff), (unsigned) (va & 0xffff), (unsigned) (vb >> 48),
                 (unsigned long long) (vb & 0xffffffffffffull));
        assert_string_equal(got, want);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),        cmocka_unit_test(test_connection_options),
        cmocka_unit_test(test_target_forms), cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_region),       cmocka_unit_test(test_uuid_text),
    };
    return cmocka_run_group_tests_name("test_head", tests, NULL, NULL);
}
