/*  test_url - unit tests for proto_url: the REDIS_URL parser, the
    DATABASE_URL check and password redaction.

    Decisions pinned here: `redis://host` means port 6379 and db 0; a user
    needs a password; the userinfo ends at the last '@' (an unencoded '@' or
    '/' in a password still parses); rediss://, unix sockets, query strings
    and an empty password are refused; no error text holds the password.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto_url.h"

//  Parse text, which must be good, into *url.
static void
s_parse_good(const char *text, proto_redis_url_t *url)
{
    char why[128] = "";
    int rc = proto_redis_url_parse(text, url, why, sizeof why);
    if (rc != 0) {
        fail_msg("%s: %s", text, why);
    }
}

//  text must be refused with a reason containing needle and never secret.
static void
s_parse_bad(const char *text, const char *needle, const char *secret)
{
    proto_redis_url_t url;
    memset(&url, 0x5a, sizeof url);
    char why[128] = "";
    if (proto_redis_url_parse(text, &url, why, sizeof why) != -1) {
        fail_msg("%s: accepted", text);
    }
    if (strstr(why, needle) == NULL) {
        fail_msg("%s: reason '%s' lacks '%s'", text, why, needle);
    }
    if (secret && strstr(why, secret)) {
        fail_msg("%s: reason '%s' shows the password", text, why);
    }
    //  untouched on failure
    assert_int_equal((unsigned char) url.host[0], 0x5a);
}

static void
test_redis_forms(void **state)
{
    (void) state;
    proto_redis_url_t url;
    s_parse_good("redis://cache", &url);
    assert_string_equal(url.host, "cache");
    assert_int_equal(url.port, 6379);
    assert_string_equal(url.user, "");
    assert_string_equal(url.password, "");
    assert_int_equal(url.db, 0);

    s_parse_good("redis://127.0.0.1:6380", &url);
    assert_string_equal(url.host, "127.0.0.1");
    assert_int_equal(url.port, 6380);

    s_parse_good("redis://:s3cret@cache:6379/2", &url);
    assert_string_equal(url.user, "");
    assert_string_equal(url.password, "s3cret");
    assert_int_equal(url.db, 2);

    s_parse_good("redis://alice:s3cret@cache:7000/15", &url);
    assert_string_equal(url.user, "alice");
    assert_string_equal(url.password, "s3cret");
    assert_int_equal(url.port, 7000);
    assert_int_equal(url.db, 15);

    s_parse_good("REDIS://[::1]:6379/", &url);
    assert_string_equal(url.host, "::1");
    assert_int_equal(url.port, 6379);
    assert_int_equal(url.db, 0);

    s_parse_good("redis://[fe80::1]", &url);
    assert_string_equal(url.host, "fe80::1");
    assert_int_equal(url.port, 6379);
}

static void
test_redis_password_characters(void **state)
{
    (void) state;
    proto_redis_url_t url;
    //  percent-encoded
    s_parse_good("redis://:p%40ss%2Fw%3Ard@cache", &url);
    assert_string_equal(url.password, "p@ss/w:rd");
    s_parse_good("redis://us%65r:x@cache", &url);
    assert_string_equal(url.user, "user");
    //  unencoded '@', '/', '?' and ':' in the password: the last '@' ends it
    s_parse_good("redis://:p@ss/w?r:d@cache:6379/1", &url);
    assert_string_equal(url.password, "p@ss/w?r:d");
    assert_string_equal(url.host, "cache");
    assert_int_equal(url.db, 1);
}

static void
test_redis_bad(void **state)
{
    (void) state;
    s_parse_bad("", "expected redis://", NULL);
    s_parse_bad("cache:6379", "expected redis://", NULL);
    s_parse_bad("http://cache", "expected redis://", NULL);
    s_parse_bad("rediss://cache", "TLS", NULL);
    s_parse_bad("unix:///tmp/redis.sock", "expected redis://", NULL);
    s_parse_bad("redis://", "no host", NULL);
    s_parse_bad("redis://:6379", "no host", NULL);
    s_parse_bad("redis://:hunter2@cache:notaport", "bad port", "hunter2");
    s_parse_bad("redis://cache:0", "bad port", NULL);
    s_parse_bad("redis://cache:65536", "bad port", NULL);
    s_parse_bad("redis://cache:", "bad port", NULL);
    s_parse_bad("redis://cache/x", "expected redis://", NULL);
    s_parse_bad("redis://cache/2147483648", "bad database number", NULL);
    s_parse_bad("redis://cache?timeout=1", "query", NULL);
    s_parse_bad("redis://cache/0#frag", "query", NULL);
    s_parse_bad("redis://hunter2@cache", "needs a password", "hunter2");
    s_parse_bad("redis://alice:@cache", "empty password", NULL);
    s_parse_bad("redis://:hunter%zz@cache", "bad password", "hunter");
    s_parse_bad("redis://:hunter%00x@cache", "bad password", "hunter");
    s_parse_bad("redis://[::1", "IPv6", NULL);
    s_parse_bad("redis://[nothex]:1", "IPv6", NULL);
    s_parse_bad("redis://ca che", "expected redis://", NULL);

    char long_url[1200];
    memset(long_url, 'p', sizeof long_url);
    memcpy(long_url, "redis://:", 9);
    snprintf(long_url + 1100, 100, "@cache");
    s_parse_bad(long_url, "bad password", "pppp");
}

static void
test_pg_check(void **state)
{
    (void) state;
    static const char *const good[] = {
        "postgres://sy:pw@db:5432/switchyard",
        "postgresql://localhost/switchyard?sslmode=require",
        "postgresql:///switchyard",
        "POSTGRES://db",
        "host=db port=5432 dbname=switchyard",
        "host = db  user=sy password='a b\\'c'",
        "dbname=''",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[128] = "";
        if (proto_pg_conninfo_check(good[i], why, sizeof why) != 0) {
            fail_msg("%s: %s", good[i], why);
        }
    }
    static const char *const bad[] = {
        "",           "   ",          "mysql://db/x", "db:5432",
        "switchyard", "host=db user", "host=",        "password='open",
        "=x",         "host=db\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[128] = "";
        if (proto_pg_conninfo_check(bad[i], why, sizeof why) != -1) {
            fail_msg("'%s': accepted", bad[i]);
        }
        assert_true(why[0] != '\0');
    }
}

static void
s_redacts(const char *text, const char *expected)
{
    char out[256];
    size_t len = proto_url_redact(text, out, sizeof out);
    assert_string_equal(out, expected);
    assert_int_equal(len, strlen(expected));
}

static void
test_redact(void **state)
{
    (void) state;
    s_redacts("redis://cache:6379", "redis://cache:6379");
    s_redacts("redis://:hunter2@cache:6379/1", "redis://:[REDACTED]@cache:6379/1");
    s_redacts("redis://alice:hunter2@cache", "redis://alice:[REDACTED]@cache");
    s_redacts("redis://:p@ss@cache", "redis://:[REDACTED]@cache");
    //  a userinfo without ':' may be a password: all of it
    s_redacts("redis://hunter2@cache", "redis://[REDACTED]@cache");
    s_redacts("postgres://sy:pw@db/x?sslmode=require&password=pw2",
              "postgres://sy:[REDACTED]@db/x?sslmode=require&password=[REDACTED]");
    s_redacts("host=db password=pw user=sy", "host=db password=[REDACTED] user=sy");
    s_redacts("host=db password = 'p w\\'x' user=sy", "host=db password = [REDACTED] user=sy");
    s_redacts("password='unterminated user=sy", "password=[REDACTED]");
    s_redacts("user=password=x", "user=password=x");
    s_redacts("plain", "plain");
    s_redacts("redis://:pw@ca\nche", "redis://:[REDACTED]@ca?che");

    //  cut to fit, never past the buffer
    char small[12];
    size_t len = proto_url_redact("redis://:hunter2@cache", small, sizeof small);
    assert_int_equal(len, strlen(small));
    assert_true(len < sizeof small);
    assert_null(strstr(small, "hunter"));
    assert_int_equal(proto_url_redact("x", small, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_forms), cmocka_unit_test(test_redis_password_characters),
        cmocka_unit_test(test_redis_bad),   cmocka_unit_test(test_pg_check),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests_name("test_url", tests, NULL, NULL);
}
