/*  rt_edge - routes derived from seed 002's tables (see rt_edge.h).

    Rows are grouped by their lower-cased domain in a JSON object rather than
    by comparing neighbours: the query orders by d.name, which keeps rows of
    "A.com" and "a.com" apart, and those are one vHost. Every row is checked
    here before it joins a group, with the same proto_route rules
    rt_route_new applies, so that one bad row costs only that row, not the
    whole route of its domain.
*/
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_route.h"
#include "proto_util.h"
#include "rt_edge.h"

//  Room for a value plus a host mask ("/128") before it is stripped.
#define RT_EDGE_IP_MAX (PROTO_ROUTE_HOSTNAME_MAX + 8)

//  Copy text to out (cap bytes) without a host mask: "/32" after an IPv4
//  address, "/128" after an IPv6 one (what inet::text adds). Any other
//  mask is kept, and fails validation later: a network is not a host.
//  Returns 0, or -1 if text does not fit.
static int
s_strip_mask(const char *text, char *out, size_t cap)
{
    size_t len = strlen(text);
    if (len >= cap)
        return -1;
    memcpy(out, text, len + 1);
    const char *mask = strchr(out, ':') ? "/128" : "/32";
    size_t mlen = strlen(mask);
    if (len > mlen && strcmp(out + len - mlen, mask) == 0)
        out[len - mlen] = '\0';
    return 0;
}

//  Parse a port: decimal digits only, 1-65535. Returns 0, or -1.
static int
s_parse_port(const char *text, unsigned *port)
{
    unsigned value = 0;
    if (*text == '\0')
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (unsigned) (*p - '0');
        if (value > PROTO_ROUTE_PORT_MAX)
            return -1;
    }
    if (value < PROTO_ROUTE_PORT_MIN)
        return -1;
    *port = value;
    return 0;
}

static bool
s_empty(const char *text)
{
    return text == NULL || *text == '\0';
}

//  One checked row: the vHost, the backend's hostname (stored form), port
//  and id, or the reason it is refused.
typedef struct {
    char vhost[PROTO_ROUTE_VHOST_MAX + 1];   // lower-case domain
    char host[PROTO_ROUTE_HOSTNAME_MAX + 1]; // private ip, no mask
    unsigned port;                           // 1-65535
    char id[PROTO_ROUTE_BACKEND_ID_MAX + 1]; // "ip:port"
} s_checked_t;

//  Check a row. Returns NULL if it is usable, else why not.
static const char *
s_check(const rt_edge_row_t *row, s_checked_t *out)
{
    if (s_empty(row->domain))
        return "domain is NULL or empty";
    if (proto_route_vhost_normalize(row->domain, out->vhost, sizeof out->vhost) != 0)
        return "domain is not a valid vHost";
    if (s_empty(row->ip))
        return "private_ip is NULL or empty";
    char ip[RT_EDGE_IP_MAX + 1];
    if (s_strip_mask(row->ip, ip, sizeof ip) != 0
        || proto_route_hostname_normalize(ip, out->host, sizeof out->host) != 0)
        return "private_ip is not a valid backend hostname";
    if (s_empty(row->port))
        return "port is NULL or empty";
    if (s_parse_port(row->port, &out->port) != 0)
        return "port is not 1-65535";
    if (s_empty(row->region))
        return "region_id is NULL or empty";
    if (!proto_route_valid_region(row->region))
        return "region_id is not a valid region id";
    if (proto_route_default_backend_id(out->host, out->port, out->id, sizeof out->id) != 0)
        return "private_ip is too long for a backend id";
    return NULL;
}

//  Record the region of a kept row (the first row of a region decides: all
//  of them join the same regions row). regions maps id to the stored public
//  address, or to null when it has none or an invalid one.
static void
s_add_region(json_t *regions, const rt_edge_row_t *row)
{
    if (json_object_get(regions, row->region) != NULL)
        return;
    if (s_empty(row->public_ip)) {
        json_object_set_new(regions, row->region, json_null());
        return;
    }
    char ip[RT_EDGE_IP_MAX + 1];
    char text[RT_EDGE_IP_MAX + 16];
    char address[PROTO_ROUTE_ADDRESS_MAX + 1];
    int rc = s_strip_mask(row->public_ip, ip, sizeof ip);
    if (rc == 0) {
        // Seed 002 sends cross-region traffic to the load balancer on port 80.
        // An IPv6 address needs brackets before a port can follow it.
        bool v6 = strchr(ip, ':') != NULL;
        snprintf(text, sizeof text, "%s%s%s:80", v6 ? "[" : "", ip, v6 ? "]" : "");
        rc = proto_route_address_normalize(text, address, sizeof address);
    }
    if (rc != 0) {
        log_warn("edge region without a usable public address", LOG_S("region", row->region),
                 LOG_S("public_ip", row->public_ip));
        json_object_set_new(regions, row->region, json_null());
        return;
    }
    json_object_set_new(regions, row->region, json_string(address));
}

static int
s_compare(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

//  The regions array of the rules: ids with an address, ordered by id.
static json_t *
s_regions_array(json_t *regions)
{
    json_t *array = json_array();
    size_t count = json_object_size(regions);
    if (count == 0)
        return array;
    const char **ids = proto_xcalloc(count, sizeof *ids);
    size_t used = 0;
    const char *id;
    json_t *address;
    json_object_foreach(regions, id, address)
    {
        if (json_is_string(address))
            ids[used++] = id;
    }
    qsort(ids, used, sizeof *ids, s_compare);
    for (size_t i = 0; i < used; i++) {
        json_array_append_new(array, json_pack("{s:s, s:O}", "id", ids[i], "publicAddress",
                                               json_object_get(regions, ids[i])));
    }
    free(ids);
    return array;
}

int
rt_edge_build(const rt_edge_row_t *rows,
              size_t n,
              rt_table_t **table_out,
              json_t **regions_out,
              size_t *skipped)
{
    assert(table_out);
    assert(rows != NULL || n == 0);
    size_t bad = 0;
    json_t *groups = json_object();  // vHost -> {"backends", "ids", "rows", "region"}
    json_t *order = json_array();    // vHosts in order of first appearance
    json_t *regions = json_object(); // region id -> address or null

    for (size_t i = 0; i < n; i++) {
        const rt_edge_row_t *row = &rows[i];
        s_checked_t row_ok;
        const char *why = s_check(row, &row_ok);
        json_t *group = why ? NULL : json_object_get(groups, row_ok.vhost);
        if (why == NULL && group == NULL) {
            group = json_pack("{s:[], s:{}, s:i, s:s}", "backends", "ids", "rows", 0, "region",
                              row->region);
            json_object_set_new(groups, row_ok.vhost, group);
            json_array_append_new(order, json_string(row_ok.vhost));
        }
        json_t *backends = group ? json_object_get(group, "backends") : NULL;
        if (why == NULL && json_array_size(backends) >= PROTO_ROUTE_BACKENDS_MAX
            && json_object_get(json_object_get(group, "ids"), row_ok.id) == NULL)
            why = "more backends than a route may hold";
        if (why != NULL) {
            log_warn("edge row skipped", LOG_S("domain", row->domain), LOG_S("reason", why),
                     LOG_U("row", i));
            bad++;
            continue;
        }
        json_t *ids = json_object_get(group, "ids");
        if (json_object_get(ids, row_ok.id) != NULL) {
            // Same VM twice for one domain (two domains rows of one name):
            // not bad data, and one backend already serves it.
            log_debug("edge duplicate backend ignored", LOG_S("domain", row->domain),
                      LOG_S("backend", row_ok.id));
            continue;
        }
        json_object_set_new(ids, row_ok.id, json_true());
        json_array_append_new(backends,
                              json_pack("{s:s, s:i, s:s}", "hostname", row_ok.host, "port",
                                        (json_int_t) row_ok.port, "region", row->region));
        json_t *count = json_object_get(group, "rows");
        json_integer_set(count, json_integer_value(count) + 1);
        s_add_region(regions, row);
    }

    rt_table_t *table = rt_table_new();
    size_t index;
    json_t *name;
    json_array_foreach(order, index, name)
    {
        const char *vhost = json_string_value(name);
        json_t *group = json_object_get(groups, vhost);
        json_t *doc =
            json_pack("{s:s, s:O}", "vHost", vhost, "backends", json_object_get(group, "backends"));
        rt_error_t err = {.message = ""};
        rt_route_t *route =
            rt_route_new(doc, json_string_value(json_object_get(group, "region")), &err);
        json_decref(doc);
        if (route == NULL) {
            // Cannot happen for rows s_check passed; if the route model grows a
            // rule this module does not know, lose the domain, not the build.
            log_warn("edge route refused", LOG_S("domain", vhost), LOG_S("reason", err.message),
                     LOG_S("field", err.field));
            bad += (size_t) json_integer_value(json_object_get(group, "rows"));
            continue;
        }
        rt_table_put(table, route);
        rt_route_unref(&route);
    }

    *table_out = table;
    if (regions_out != NULL)
        *regions_out = s_regions_array(regions);
    if (skipped != NULL)
        *skipped = bad;
    json_decref(regions);
    json_decref(order);
    json_decref(groups);
    return 0;
}
