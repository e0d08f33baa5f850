/*  test_static - unit tests for api_static: the dashboard's static files
    (SPEC §14, docs/dashboard.md).

    Each test makes its own folder under /tmp (mkdtemp) with the files it
    needs, loads it, asks for paths and removes it. What is pinned here:
    content types by extension, the ETag (quoted, 32 hex digits, the same
    for the same bytes, another for other bytes), 304 for a matching
    If-None-Match (weak comparison, lists, "*"), HEAD without a body, 301
    from /dashboard to /dashboard/, 405 with Allow, 404 for anything not
    loaded and for every traversal attempt, the bounds (64 files, 1 MiB,
    names, one level of subfolders, no links), and an empty set for a NULL
    or missing folder.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../apid/api_static.h"

//  A temporary web folder: <dir>/dashboard holds the files.
typedef struct {
    char dir[64];   // the folder given to api_static_new
    char root[128]; // <dir>/dashboard
} t_web_t;

static void
t_web_make(t_web_t *web)
{
    snprintf(web->dir, sizeof web->dir, "/tmp/test_static.XXXXXX");
    assert_non_null(mkdtemp(web->dir));
    snprintf(web->root, sizeof web->root, "%s/dashboard", web->dir);
    assert_int_equal(mkdir(web->root, 0755), 0);
}

//  Write len bytes of data at <root>/rel (its folder made if needed).
static void
t_write(const t_web_t *web, const char *rel, const void *data, size_t len)
{
    char path[512];
    const char *slash = strrchr(rel, '/');
    if (slash) {
        snprintf(path, sizeof path, "%s/%.*s", web->root, (int) (slash - rel), rel);
        char *p = path + strlen(web->root) + 1;
        for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
            *s = '\0';
            mkdir(path, 0755);
            *s = '/';
        }
        mkdir(path, 0755);
    }
    snprintf(path, sizeof path, "%s/%s", web->root, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void
t_write_text(const t_web_t *web, const char *rel, const char *text)
{
    t_write(web, rel, text, strlen(text));
}

static void
t_web_remove(t_web_t *web)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", web->dir);
    assert_int_equal(system(cmd), 0);
}

//  The value of header name in the answer, or NULL.
static const char *
t_header(const api_static_answer_t *a, const char *name)
{
    for (uint32_t i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i].key, name) == 0)
            return a->headers[i].value;
    return NULL;
}

//  GET (or method) path: the answer, which must be the dashboard's.
static api_static_answer_t
t_ask(const api_static_t *set, const char *method, const char *path, const char *inm)
{
    api_static_answer_t a;
    if (!api_static_get(set, method, path, inm, &a))
        fail_msg("%s %s: not taken as the dashboard's", method, path);
    return a;
}

//  GET path answers 200 with this content type and these bytes.
static void
t_expect_file(const api_static_t *set, const char *path, const char *type, const char *body)
{
    api_static_answer_t a = t_ask(set, "GET", path, NULL);
    if (a.status != 200)
        fail_msg("GET %s: %u, want 200", path, a.status);
    assert_string_equal(t_header(&a, "content-type"), type);
    assert_string_equal(t_header(&a, "cache-control"), "no-cache");
    assert_string_equal(t_header(&a, "x-content-type-options"), "nosniff");
    assert_non_null(t_header(&a, "etag"));
    assert_int_equal(a.len, strlen(body));
    assert_memory_equal(a.body, body, a.len);
}

static void
t_expect_status(const api_static_t *set, const char *method, const char *path, uint16_t status)
{
    api_static_answer_t a = t_ask(set, method, path, NULL);
    if (a.status != status)
        fail_msg("%s %s: %u, want %u", method, path, a.status, status);
}

static const char *const s_index = "<!doctype html><title>dashboard</title>";

static void
test_types(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    t_write_text(&web, "index.html", s_index);
    t_write_text(&web, "dashboard.css", "body{margin:0}");
    t_write_text(&web, "app.js", "import './api.js';");
    t_write_text(&web, "lib.mjs", "export const x = 1;");
    t_write_text(&web, "icon.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    t_write(&web, "logo.png", "\x89PNG\r\n\x1a\n\0\0", 10);
    t_write(&web, "favicon.ico", "\0\0\1\0", 4);
    t_write_text(&web, "data.json", "{\"a\":1}");
    t_write_text(&web, "notes.txt", "hello");
    t_write_text(&web, "blob.bin", "raw");
    t_write_text(&web, "UPPER.JS", "upper");
    t_write_text(&web, "views/routes.js", "export function routes() {}");
    t_write_text(&web, "empty.txt", "");
    api_static_t *set = api_static_new(web.dir);
    assert_int_equal(api_static_size(set), 13);

    t_expect_file(set, "/dashboard/", "text/html; charset=utf-8", s_index);
    t_expect_file(set, "/dashboard/index.html", "text/html; charset=utf-8", s_index);
    t_expect_file(set, "/dashboard/dashboard.css", "text/css; charset=utf-8", "body{margin:0}");
    t_expect_file(set, "/dashboard/app.js", "text/javascript; charset=utf-8", "import './api.js';");
    t_expect_file(set, "/dashboard/lib.mjs", "text/javascript; charset=utf-8",
                  "export const x = 1;");
    t_expect_file(set, "/dashboard/icon.svg", "image/svg+xml",
                  "<svg xmlns='http://www.w3.org/2000/svg'/>");
    t_expect_file(set, "/dashboard/data.json", "application/json", "{\"a\":1}");
    t_expect_file(set, "/dashboard/notes.txt", "text/plain; charset=utf-8", "hello");
    t_expect_file(set, "/dashboard/blob.bin", "application/octet-stream", "raw");
    t_expect_file(set, "/dashboard/UPPER.JS", "text/javascript; charset=utf-8", "upper");
    t_expect_file(set, "/dashboard/views/routes.js", "text/javascript; charset=utf-8",
                  "export function routes() {}");
    t_expect_file(set, "/dashboard/empty.txt", "text/plain; charset=utf-8", "");

    // binary bytes come back whole (a NUL inside)
    api_static_answer_t a = t_ask(set, "GET", "/dashboard/logo.png", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(t_header(&a, "content-type"), "image/png");
    assert_int_equal(a.len, 10);
    assert_memory_equal(a.body, "\x89PNG\r\n\x1a\n\0\0", 10);
    a = t_ask(set, "GET", "/dashboard/favicon.ico", NULL);
    assert_string_equal(t_header(&a, "content-type"), "image/x-icon");
    assert_int_equal(a.len, 4);

    // only HTML gets the content-security-policy: same origin, no framing
    a = t_ask(set, "GET", "/dashboard/", NULL);
    const char *csp = t_header(&a, "content-security-policy");
    assert_non_null(csp);
    assert_non_null(strstr(csp, "script-src 'self'"));
    assert_non_null(strstr(csp, "connect-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_null(strstr(csp, "unsafe"));
    a = t_ask(set, "GET", "/dashboard/app.js", NULL);
    assert_null(t_header(&a, "content-security-policy"));
    assert_true(a.nheaders <= API_STATIC_HEADERS);

    // a query string is not part of the name
    t_expect_file(set, "/dashboard/app.js?v=2", "text/javascript; charset=utf-8",
                  "import './api.js';");
    t_expect_file(set, "/dashboard/?token=x", "text/html; charset=utf-8", s_index);

    api_static_destroy(&set);
    assert_null(set);
    api_static_destroy(&set); // twice is fine
    t_web_remove(&web);
}

static void
test_etag(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    t_write_text(&web, "app.js", "one");
    t_write_text(&web, "same.js", "one");
    t_write_text(&web, "other.js", "two");
    api_static_t *set = api_static_new(web.dir);
    api_static_answer_t a = t_ask(set, "GET", "/dashboard/app.js", NULL);
    char etag[64];
    snprintf(etag, sizeof etag, "%s", t_header(&a, "etag"));
    // a strong ETag: quoted, 32 lower-case hex digits
    assert_int_equal(strlen(etag), 34);
    assert_int_equal(etag[0], '"');
    assert_int_equal(etag[33], '"');
    assert_int_equal(strspn(etag + 1, "0123456789abcdef"), 32);
    // a hash of the bytes: the same bytes under another name, the same ETag
    a = t_ask(set, "GET", "/dashboard/same.js", NULL);
    assert_string_equal(t_header(&a, "etag"), etag);
    a = t_ask(set, "GET", "/dashboard/other.js", NULL);
    assert_string_not_equal(t_header(&a, "etag"), etag);
    api_static_destroy(&set);

    // stable: loaded again, the same ETag
    set = api_static_new(web.dir);
    a = t_ask(set, "GET", "/dashboard/app.js", NULL);
    assert_string_equal(t_header(&a, "etag"), etag);
    api_static_destroy(&set);

    // changed content, another ETag (and the old one no longer gives 304)
    t_write_text(&web, "app.js", "one!");
    set = api_static_new(web.dir);
    a = t_ask(set, "GET", "/dashboard/app.js", NULL);
    assert_string_not_equal(t_header(&a, "etag"), etag);
    a = t_ask(set, "GET", "/dashboard/app.js", etag);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.len, 4);
    api_static_destroy(&set);
    t_web_remove(&web);
}

static void
test_not_modified(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    t_write_text(&web, "index.html", s_index);
    t_write_text(&web, "app.js", "code");
    api_static_t *set = api_static_new(web.dir);
    api_static_answer_t a = t_ask(set, "GET", "/dashboard/app.js", NULL);
    char etag[64], weak[80], list[200];
    snprintf(etag, sizeof etag, "%s", t_header(&a, "etag"));
    snprintf(weak, sizeof weak, "W/%s", etag);
    snprintf(list, sizeof list, "\"nope\", W/\"x\" ,\t%s , \"more\"", etag);
    const char *matching[] = {etag, weak, list, "*", " * "};
    for (size_t i = 0; i < sizeof matching / sizeof matching[0]; i++) {
        a = t_ask(set, "GET", "/dashboard/app.js", matching[i]);
        if (a.status != 304)
            fail_msg("If-None-Match %s: %u, want 304", matching[i], a.status);
        assert_null(a.body);
        assert_int_equal(a.len, 0);
        assert_string_equal(t_header(&a, "etag"), etag);
        assert_string_equal(t_header(&a, "cache-control"), "no-cache");
    }
    // HEAD revalidates the same way
    a = t_ask(set, "HEAD", "/dashboard/app.js", etag);
    assert_int_equal(a.status, 304);
    // anything else is a 200 with the body
    char unquoted[64];
    snprintf(unquoted, sizeof unquoted, "%.32s", etag + 1);
    const char *other[] = {"", "\"nope\"", unquoted, "W/", ",", "**", "\"nope\", W/\"x\""};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        a = t_ask(set, "GET", "/dashboard/app.js", other[i]);
        if (a.status != 200)
            fail_msg("If-None-Match '%s': %u, want 200", other[i], a.status);
        assert_int_equal(a.len, 4);
    }
    // the index's ETag does not match another file
    a = t_ask(set, "GET", "/dashboard/", NULL);
    snprintf(etag, sizeof etag, "%s", t_header(&a, "etag"));
    a = t_ask(set, "GET", "/dashboard/index.html", etag);
    assert_int_equal(a.status, 304);
    a = t_ask(set, "GET", "/dashboard/app.js", etag);
    assert_int_equal(a.status, 200);
    api_static_destroy(&set);
    t_web_remove(&web);
}

static void
test_head_redirect_methods(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    t_write_text(&web, "index.html", s_index);
    api_static_t *set = api_static_new(web.dir);

    // HEAD: GET's status and headers, no body
    api_static_answer_t get = t_ask(set, "GET", "/dashboard/", NULL);
    api_static_answer_t head = t_ask(set, "HEAD", "/dashboard/", NULL);
    assert_int_equal(head.status, 200);
    assert_null(head.body);
    assert_int_equal(head.len, 0);
    assert_int_equal(head.nheaders, get.nheaders);
    for (uint32_t i = 0; i < get.nheaders; i++) {
        assert_string_equal(head.headers[i].key, get.headers[i].key);
        assert_string_equal(head.headers[i].value, get.headers[i].value);
    }
    head = t_ask(set, "HEAD", "/dashboard/missing.js", NULL);
    assert_int_equal(head.status, 404);
    assert_null(head.body);

    // /dashboard: one URL per file, so the page's relative URLs work
    const char *bare[] = {"/dashboard", "/dashboard?x=1"};
    for (size_t i = 0; i < 2; i++) {
        api_static_answer_t a = t_ask(set, "GET", bare[i], NULL);
        assert_int_equal(a.status, 301);
        assert_string_equal(t_header(&a, "location"), "/dashboard/");
        assert_true(a.len > 0);
        a = t_ask(set, "HEAD", bare[i], NULL);
        assert_int_equal(a.status, 301);
        assert_null(a.body);
    }

    // other methods: 405 with Allow, whatever the path under /dashboard
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", ""};
    const char *paths[] = {"/dashboard", "/dashboard/", "/dashboard/index.html", "/dashboard/x"};
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            api_static_answer_t a = t_ask(set, methods[m], paths[p], NULL);
            if (a.status != 405)
                fail_msg("%s %s: %u, want 405", methods[m], paths[p], a.status);
            assert_string_equal(t_header(&a, "allow"), "GET, HEAD");
        }
    }
    api_static_destroy(&set);
    t_web_remove(&web);
}

static void
test_not_ours(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    t_write_text(&web, "index.html", s_index);
    api_static_t *set = api_static_new(web.dir);
    const char *paths[] = {"/",
                           "",
                           "/api/v1/routes",
                           "/dashboards",
                           "/dashboard.html",
                           "dashboard",
                           "/Dashboard/",
                           "/dashboard%2f",
                           "//dashboard/",
                           "/x/dashboard/"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        api_static_answer_t a;
        memset(&a, 0xab, sizeof a);
        if (api_static_get(set, "GET", paths[i], NULL, &a))
            fail_msg("GET %s taken as the dashboard's (%u)", paths[i], a.status);
        assert_int_equal(a.status, 0xabab); // untouched
        if (api_static_get(set, "POST", paths[i], NULL, &a))
            fail_msg("POST %s taken as the dashboard's", paths[i]);
    }
    api_static_destroy(&set);
    t_web_remove(&web);
}

static void
test_traversal(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    t_write_text(&web, "index.html", s_index);
    t_write_text(&web, "app.js", "code");
    t_write_text(&web, "views/routes.js", "routes");
    t_write_text(&web, ".secret", "hidden");
    t_write_text(&web, "views/.env", "hidden");
    t_write_text(&web, ".git/config", "hidden");
    t_write_text(&web, "views/deeper/x.js", "too deep");
    // a file beside the folder, and links to it and to /etc
    char path[512], target[512];
    snprintf(path, sizeof path, "%s/outside.txt", web.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("outside", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/link.txt", web.root);
    snprintf(target, sizeof target, "%s/outside.txt", web.dir);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/etc", web.root);
    assert_int_equal(symlink("/etc", path), 0);
    snprintf(path, sizeof path, "%s/views/up", web.root);
    assert_int_equal(symlink("..", path), 0);
    api_static_t *set = api_static_new(web.dir);
    assert_int_equal(api_static_size(set), 3); // index.html, app.js, views/routes.js

    t_expect_status(set, "GET", "/dashboard/app.js", 200);
    t_expect_status(set, "GET", "/dashboard/views/routes.js", 200);
    const char *refused[] = {
        "/dashboard/../outside.txt",
        "/dashboard/..",
        "/dashboard/../",
        "/dashboard/./app.js",
        "/dashboard/views/../app.js",
        "/dashboard/views/./routes.js",
        "/dashboard/%2e%2e/outside.txt",
        "/dashboard/%2E%2E%2Foutside.txt",
        "/dashboard/app%2ejs",
        "/dashboard/app.js%00",
        "/dashboard/views%2froutes.js",
        "/dashboard//app.js",
        "/dashboard/views//routes.js",
        "/dashboard/views/",
        "/dashboard/views",
        "/dashboard/app.js/",
        "/dashboard/app.js/x",
        "/dashboard/views\\routes.js",
        "/dashboard/.secret",
        "/dashboard/views/.env",
        "/dashboard/.git/config",
        "/dashboard/views/deeper/x.js",
        "/dashboard/link.txt",
        "/dashboard/etc/passwd",
        "/dashboard/views/up/app.js",
        "/dashboard/outside.txt",
        "/dashboard/APP.JS",
        "/dashboard/App.js",
        "/dashboard/app.js ",
        "/dashboard/app.js#x",
        "/dashboard/nope.js",
        "/dashboard/index.htm",
        "/dashboard/\xc3\xa9.js",
        "/dashboard/~",
        "/dashboard/a/b/c",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        api_static_answer_t a = t_ask(set, "GET", refused[i], NULL);
        if (a.status != 404)
            fail_msg("GET %s: %u, want 404", refused[i], a.status);
        assert_string_equal(t_header(&a, "content-type"), "text/plain; charset=utf-8");
        assert_int_equal(a.len, strlen("Not Found"));
        assert_memory_equal(a.body, "Not Found", a.len);
    }
    api_static_destroy(&set);
    t_web_remove(&web);
}

static void
test_bounds(void **state)
{
    (void) state;
    t_web_t web;
    t_web_make(&web);
    // 70 files: the first 64 by name are kept
    for (int i = 0; i < 70; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%02d.txt", i);
        t_write_text(&web, name, name);
    }
    api_static_t *set = api_static_new(web.dir);
    assert_int_equal(api_static_size(set), API_STATIC_FILES_MAX);
    t_expect_file(set, "/dashboard/f00.txt", "text/plain; charset=utf-8", "f00.txt");
    t_expect_file(set, "/dashboard/f63.txt", "text/plain; charset=utf-8", "f63.txt");
    t_expect_status(set, "GET", "/dashboard/f64.txt", 404);
    t_expect_status(set, "GET", "/dashboard/f69.txt", 404);
    api_static_destroy(&set);
    t_web_remove(&web);

    // 1 MiB is loaded whole, one byte more is skipped
    t_web_make(&web);
    size_t big = API_STATIC_FILE_MAX;
    char *bytes = malloc(big + 1);
    assert_non_null(bytes);
    for (size_t i = 0; i <= big; i++)
        bytes[i] = (char) ('a' + i % 26);
    t_write(&web, "big.js", bytes, big);
    t_write(&web, "huge.js", bytes, big + 1);
    // names outside [A-Za-z0-9._-] are skipped; a long good one is kept
    t_write_text(&web, "a b.js", "space");
    t_write_text(&web, "x~.js", "tilde");
    t_write_text(&web, "\xc3\xa9.js", "utf-8");
    t_write_text(&web, "ok_name-1.2.js", "ok");
    char longname[130];
    memset(longname, 'n', 125);
    memcpy(longname + 125, ".js", 4);
    t_write_text(&web, longname, "long");
    set = api_static_new(web.dir);
    assert_int_equal(api_static_size(set), 3);
    api_static_answer_t a = t_ask(set, "GET", "/dashboard/big.js", NULL);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.len, big);
    assert_memory_equal(a.body, bytes, big);
    t_expect_status(set, "GET", "/dashboard/huge.js", 404);
    t_expect_status(set, "GET", "/dashboard/a b.js", 404);
    t_expect_status(set, "GET", "/dashboard/a%20b.js", 404);
    t_expect_status(set, "GET", "/dashboard/ok_name-1.2.js", 200);
    char url[200];
    snprintf(url, sizeof url, "/dashboard/%s", longname);
    t_expect_status(set, "GET", url, 200);
    free(bytes);
    bytes = NULL;
    api_static_destroy(&set);
    t_web_remove(&web);
}

static void
test_empty_sets(void **state)
{
    (void) state;
    // NULL, empty, a missing folder, a folder without dashboard/: 404 for every GET
    t_web_t web;
    t_web_make(&web);
    char missing[200], no_dashboard[200];
    snprintf(missing, sizeof missing, "%s/nowhere", web.dir);
    snprintf(no_dashboard, sizeof no_dashboard, "%s/dashboard", web.dir); // has no dashboard/
    const char *dirs[] = {NULL, "", missing, no_dashboard};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        api_static_t *set = api_static_new(dirs[i]);
        assert_non_null(set);
        assert_int_equal(api_static_size(set), 0);
        t_expect_status(set, "GET", "/dashboard/", 404);
        t_expect_status(set, "GET", "/dashboard/index.html", 404);
        t_expect_status(set, "HEAD", "/dashboard/", 404);
        t_expect_status(set, "GET", "/dashboard", 301);
        t_expect_status(set, "POST", "/dashboard/", 405);
        api_static_destroy(&set);
    }
    // an empty dashboard folder too
    api_static_t *set = api_static_new(web.dir);
    assert_int_equal(api_static_size(set), 0);
    t_expect_status(set, "GET", "/dashboard/", 404);
    api_static_destroy(&set);
    t_web_remove(&web);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_not_modified), cmocka_unit_test(test_head_redirect_methods),
        cmocka_unit_test(test_not_ours),     cmocka_unit_test(test_traversal),
        cmocka_unit_test(test_bounds),       cmocka_unit_test(test_empty_sets),
    };
    return cmocka_run_group_tests_name("test_static", tests, NULL, NULL);
}
