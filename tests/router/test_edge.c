/*  test_edge - unit tests for rt_edge, routes from seed 002's tables.

    Pins: one route per distinct (lower-cased) domain with one backend per
    VM, in the row's own region; host masks of inet text stripped; rows with
    a NULL, empty or invalid domain, ip, port or region skipped, counted and
    logged once at warn; duplicate ip:port ignored; regions distinct, with
    "<public_ip>:80", ordered by id, left out without a public ip; uuid
    region ids and wildcard domains accepted; the query keeps seed 002's
    conditions.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../protocol/proto_log.h"
#include "../../router/rt_edge.h"

#define S_UUID_A "0a1b2c3d-0000-4000-8000-00000000000a"
#define S_UUID_B "0a1b2c3d-0000-4000-8000-00000000000b"

//  What a build gave.
typedef struct {
    rt_table_t *table; // routes
    json_t *regions;   // [{"id","publicAddress"}]
    size_t skipped;    // rows skipped
} s_result_t;

static void
s_build(const rt_edge_row_t *rows, size_t n, s_result_t *out)
{
    out->table = NULL;
    out->regions = NULL;
    out->skipped = 99;
    assert_int_equal(rt_edge_build(rows, n, &out->table, &out->regions, &out->skipped), 0);
    assert_non_null(out->table);
    assert_true(json_is_array(out->regions));
}

static void
s_free(s_result_t *result)
{
    rt_table_destroy(&result->table);
    json_decref(result->regions);
    result->regions = NULL;
}

//  Build with warn-level logging captured; the number of "edge row skipped"
//  lines goes to *lines.
static void
s_build_logged(const rt_edge_row_t *rows, size_t n, s_result_t *out, int *lines)
{
    char path[] = "/tmp/rt-edge-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    proto_log_setup("test", "t", PROTO_LOG_WARN, PROTO_LOG_JSON, fd);
    s_build(rows, n, out);
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 2);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    *lines = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "\"msg\":\"edge row skipped\"") != NULL)
            (*lines)++;
    }
    fclose(f);
    unlink(path);
    close(fd);
}

//  The only route a build gave, checked to be the only one.
static rt_route_t *
s_only_route(const s_result_t *result)
{
    assert_int_equal(rt_table_size(result->table), 1);
    return rt_table_at(result->table, 0);
}

static void
test_one_row(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {{"app.example.com", "10.0.0.5", "3000", "eu", "1.2.3.4"}};
    s_result_t r;
    s_build(rows, 1, &r);
    assert_int_equal(r.skipped, 0);
    rt_route_t *route = s_only_route(&r);
    assert_string_equal(route->vhost, "app.example.com");
    assert_string_equal(route->id, "app.example.com");
    assert_string_equal(route->strategy, "ROUND_ROBIN"); // the route model's default
    assert_int_equal(route->backends_count, 1);
    assert_string_equal(route->backends[0].host, "10.0.0.5");
    assert_int_equal(route->backends[0].port, 3000);
    assert_string_equal(route->backends[0].region, "eu");
    assert_string_equal(route->backends[0].id, "10.0.0.5:3000");
    assert_int_equal(route->backends[0].weight, 1);
    assert_ptr_equal(rt_table_match(r.table, "app.example.com"), route);
    s_free(&r);
}

static void
test_same_domain_two_backends(void **state)
{
    (void) state;
    //  Two VMs in two regions: each backend keeps its own row's region.
    rt_edge_row_t rows[] = {
        {"app.example.com", "10.0.0.5", "3000", "eu", "1.2.3.4"},
        {"app.example.com", "10.0.1.7", "8080", "us", "5.6.7.8"},
        {"other.example.com", "10.0.0.9", "3000", "eu", "1.2.3.4"},
    };
    s_result_t r;
    s_build(rows, 3, &r);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(rt_table_size(r.table), 2);
    rt_route_t *route = rt_table_get(r.table, "app.example.com");
    assert_non_null(route);
    assert_int_equal(route->backends_count, 2);
    assert_string_equal(route->backends[0].id, "10.0.0.5:3000");
    assert_string_equal(route->backends[0].region, "eu");
    assert_string_equal(route->backends[1].id, "10.0.1.7:8080");
    assert_string_equal(route->backends[1].region, "us");
    route = rt_table_get(r.table, "other.example.com");
    assert_non_null(route);
    assert_int_equal(route->backends_count, 1);
    s_free(&r);
}

static void
test_domain_lower_cased(void **state)
{
    (void) state;
    //  ORDER BY d.name puts "APP..." and "app..." apart; they are one vHost.
    rt_edge_row_t rows[] = {
        {"APP.Example.COM", "10.0.0.5", "3000", "eu", NULL},
        {"between.example.com", "10.0.0.6", "3000", "eu", NULL},
        {"app.example.com", "10.0.0.7", "3000", "eu", NULL},
    };
    s_result_t r;
    s_build(rows, 3, &r);
    assert_int_equal(rt_table_size(r.table), 2);
    rt_route_t *route = rt_table_at(r.table, 0);
    assert_string_equal(route->vhost, "app.example.com");
    assert_int_equal(route->backends_count, 2);
    assert_string_equal(rt_table_at(r.table, 1)->vhost, "between.example.com");
    assert_ptr_equal(rt_table_match(r.table, "App.example.com"), route);
    s_free(&r);
}

static void
test_inet_mask_stripped(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", "10.0.0.5/32", "3000", "eu", NULL},
        {"b.example.com", "fd00::5/128", "3000", "eu", NULL},
        {"c.example.com", "10.0.0.0/24", "3000", "eu", NULL}, // a network, not a host
    };
    s_result_t r;
    s_build(rows, 3, &r);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(rt_table_size(r.table), 2);
    rt_route_t *route = rt_table_get(r.table, "a.example.com");
    assert_string_equal(route->backends[0].host, "10.0.0.5");
    assert_string_equal(route->backends[0].id, "10.0.0.5:3000");
    route = rt_table_get(r.table, "b.example.com");
    assert_string_equal(route->backends[0].host, "fd00::5");
    assert_string_equal(route->backends[0].id, "[fd00::5]:3000");
    assert_null(rt_table_get(r.table, "c.example.com"));
    s_free(&r);
}

static void
test_bad_port_skipped(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", "10.0.0.1", "0", "eu", NULL},
        {"a.example.com", "10.0.0.2", "70000", "eu", NULL},
        {"a.example.com", "10.0.0.3", "x", "eu", NULL},
        {"a.example.com", "10.0.0.4", "-1", "eu", NULL},
        {"a.example.com", "10.0.0.5", "", "eu", NULL},
        {"a.example.com", "10.0.0.6", NULL, "eu", NULL},
        {"a.example.com", "10.0.0.7", "65535", "eu", NULL},
        {"a.example.com", "10.0.0.8", "1", "eu", NULL},
    };
    s_result_t r;
    s_build(rows, 8, &r);
    assert_int_equal(r.skipped, 6);
    rt_route_t *route = s_only_route(&r);
    assert_int_equal(route->backends_count, 2);
    assert_string_equal(route->backends[0].id, "10.0.0.7:65535");
    assert_string_equal(route->backends[1].id, "10.0.0.8:1");
    s_free(&r);
}

static void
test_bad_ip_skipped(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", NULL, "3000", "eu", NULL},
        {"a.example.com", "", "3000", "eu", NULL},
        {"a.example.com", "10.0.0.1:3000", "3000", "eu", NULL},
        {"a.example.com", "10.0.0.2", "3000", "eu", NULL},
    };
    s_result_t r;
    s_build(rows, 4, &r);
    assert_int_equal(r.skipped, 3);
    rt_route_t *route = s_only_route(&r);
    assert_int_equal(route->backends_count, 1);
    assert_string_equal(route->backends[0].host, "10.0.0.2");
    s_free(&r);
}

static void
test_bad_domain_skipped(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a..b", "10.0.0.1", "3000", "eu", NULL},
        {"", "10.0.0.2", "3000", "eu", NULL},
        {NULL, "10.0.0.3", "3000", "eu", NULL},
        {"with space.com", "10.0.0.4", "3000", "eu", NULL},
        {"ok.example.com", "10.0.0.5", "3000", "eu", NULL},
    };
    s_result_t r;
    int lines = 0;
    s_build_logged(rows, 5, &r, &lines);
    assert_int_equal(r.skipped, 4);
    assert_int_equal(lines, 4); // each row refused on its own, none reaching rt_route_new
    assert_string_equal(s_only_route(&r)->vhost, "ok.example.com");
    s_free(&r);
}

static void
test_bad_region_skipped(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", "10.0.0.1", "3000", NULL, "1.2.3.4"},
        {"a.example.com", "10.0.0.2", "3000", "", "1.2.3.4"},
        {"a.example.com", "10.0.0.3", "3000", "has space", "1.2.3.4"},
        {"a.example.com", "10.0.0.4", "3000", "eu", NULL},
    };
    s_result_t r;
    s_build(rows, 4, &r);
    assert_int_equal(r.skipped, 3);
    rt_route_t *route = s_only_route(&r);
    assert_int_equal(route->backends_count, 1);
    assert_string_equal(route->backends[0].region, "eu");
    assert_int_equal(json_array_size(r.regions), 0); // rows skipped give no region
    s_free(&r);
}

static void
test_regions(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", "10.0.0.1", "3000", "zz", "9.9.9.9"},
        {"b.example.com", "10.0.0.2", "3000", "eu", "1.2.3.4"},
        {"c.example.com", "10.0.0.3", "3000", "eu", "1.2.3.4"},
        {"d.example.com", "10.0.0.4", "3000", "nopub", NULL},
        {"e.example.com", "10.0.0.5", "3000", "empty", ""},
        {"f.example.com", "10.0.0.6", "3000", "masked", "5.6.7.8/32"},
        {"g.example.com", "10.0.0.7", "3000", "v6", "2001:db8::1/128"},
        {"h.example.com", "10.0.0.8", "3000", "bad", "not an address"},
    };
    s_result_t r;
    s_build(rows, 8, &r);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(rt_table_size(r.table), 8); // a region's address never costs a route
    char *text = json_dumps(r.regions, JSON_COMPACT);
    assert_string_equal(text, "[{\"id\":\"eu\",\"publicAddress\":\"1.2.3.4:80\"},"
                              "{\"id\":\"masked\",\"publicAddress\":\"5.6.7.8:80\"},"
                              "{\"id\":\"v6\",\"publicAddress\":\"[2001:db8::1]:80\"},"
                              "{\"id\":\"zz\",\"publicAddress\":\"9.9.9.9:80\"}]");
    free(text);
    s_free(&r);
}

static void
test_uuid_regions(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", "10.0.0.1", "3000", S_UUID_B, "5.6.7.8"},
        {"a.example.com", "10.0.0.2", "3000", S_UUID_A, "1.2.3.4"},
    };
    s_result_t r;
    s_build(rows, 2, &r);
    assert_int_equal(r.skipped, 0);
    rt_route_t *route = s_only_route(&r);
    assert_string_equal(route->backends[0].region, S_UUID_B);
    assert_string_equal(route->backends[1].region, S_UUID_A);
    assert_int_equal(json_array_size(r.regions), 2);
    json_t *first = json_array_get(r.regions, 0);
    assert_string_equal(json_string_value(json_object_get(first, "id")), S_UUID_A);
    assert_string_equal(json_string_value(json_object_get(first, "publicAddress")), "1.2.3.4:80");
    s_free(&r);
}

static void
test_duplicate_backend_ignored(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {
        {"a.example.com", "10.0.0.1", "3000", "eu", NULL},
        {"a.example.com", "10.0.0.1", "3000", "eu", NULL},
        {"A.example.com", "10.0.0.1/32", "3000", "eu", NULL},
        {"a.example.com", "10.0.0.1", "3001", "eu", NULL},
        {"b.example.com", "10.0.0.1", "3000", "eu", NULL}, // another domain may share a VM
    };
    s_result_t r;
    s_build(rows, 5, &r);
    assert_int_equal(r.skipped, 0); // a duplicate is not bad data
    rt_route_t *route = rt_table_get(r.table, "a.example.com");
    assert_int_equal(route->backends_count, 2);
    assert_string_equal(route->backends[0].id, "10.0.0.1:3000");
    assert_string_equal(route->backends[1].id, "10.0.0.1:3001");
    assert_int_equal(rt_table_get(r.table, "b.example.com")->backends_count, 1);
    s_free(&r);
}

static void
test_wildcard_domain(void **state)
{
    (void) state;
    rt_edge_row_t rows[] = {{"*.Example.com", "10.0.0.1", "3000", "eu", NULL}};
    s_result_t r;
    s_build(rows, 1, &r);
    assert_int_equal(r.skipped, 0);
    rt_route_t *route = s_only_route(&r);
    assert_string_equal(route->vhost, "*.example.com");
    assert_ptr_equal(rt_table_match(r.table, "tenant.example.com"), route);
    assert_null(rt_table_match(r.table, "example.com"));
    s_free(&r);
}

static void
test_empty(void **state)
{
    (void) state;
    s_result_t r;
    s_build(NULL, 0, &r);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(rt_table_size(r.table), 0);
    assert_int_equal(json_array_size(r.regions), 0);
    s_free(&r);
    //  regions_out and skipped are optional.
    rt_edge_row_t rows[] = {{"a.example.com", "10.0.0.1", "3000", "eu", "1.2.3.4"}};
    rt_table_t *table = NULL;
    assert_int_equal(rt_edge_build(rows, 1, &table, NULL, NULL), 0);
    assert_int_equal(rt_table_size(table), 1);
    rt_table_destroy(&table);
}

//  Lines of a file, counted, with the last one kept.
static int
s_count_lines(const char *path, char *last, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int lines = 0;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL) {
        lines++;
        snprintf(last, cap, "%s", line);
    }
    fclose(f);
    return lines;
}

static void
test_skip_logged_once_at_warn(void **state)
{
    (void) state;
    char path[] = "/tmp/rt-edge-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    proto_log_setup("test", "t", PROTO_LOG_WARN, PROTO_LOG_JSON, fd);
    rt_edge_row_t rows[] = {
        {"bad-port.example.com", "10.0.0.1", "70000", "eu", NULL},
        {"good.example.com", "10.0.0.2", "3000", "eu", NULL},
    };
    s_result_t r;
    s_build(rows, 2, &r);
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 2);
    char last[4096] = "";
    int lines = s_count_lines(path, last, sizeof last);
    unlink(path);
    close(fd);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(lines, 1);
    assert_non_null(strstr(last, "\"level\":\"warn\""));
    assert_non_null(strstr(last, "\"domain\":\"bad-port.example.com\""));
    assert_non_null(strstr(last, "port is not 1-65535"));
    s_free(&r);
}

static void
test_query_is_seed_002s(void **state)
{
    (void) state;
    const char *parts[] = {
        "FROM domains d ",
        "INNER JOIN deployments dep ON d.deployment_id = dep.id ",
        "INNER JOIN vms v ON dep.vm_id = v.id ",
        "INNER JOIN regions r ON v.region_id = r.id ",
        "WHERE d.verified_at IS NOT NULL AND dep.status = 'ready' AND v.status = 'running' ",
        "ORDER BY d.name",
        "v.private_ip::text",
        "r.public_ipv4::text",
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (strstr(RT_EDGE_QUERY, parts[i]) == NULL)
            fail_msg("query lacks: %s", parts[i]);
    }
    assert_null(strstr(RT_EDGE_QUERY, "host("));
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row),
        cmocka_unit_test(test_same_domain_two_backends),
        cmocka_unit_test(test_domain_lower_cased),
        cmocka_unit_test(test_inet_mask_stripped),
        cmocka_unit_test(test_bad_port_skipped),
        cmocka_unit_test(test_bad_ip_skipped),
        cmocka_unit_test(test_bad_domain_skipped),
        cmocka_unit_test(test_bad_region_skipped),
        cmocka_unit_test(test_regions),
        cmocka_unit_test(test_uuid_regions),
        cmocka_unit_test(test_duplicate_backend_ignored),
        cmocka_unit_test(test_wildcard_domain),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_skip_logged_once_at_warn),
        cmocka_unit_test(test_query_is_seed_002s),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    proto_log_shutdown();
    return failed;
}
