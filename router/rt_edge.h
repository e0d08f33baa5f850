/*  rt_edge - routes derived from seed 002's tables (SPEC §8, ROUTER_EDGE_SCHEMA=on).

    Seed 002's edge proxy routes a domain to the VM that runs its deployment,
    reading them from four tables it does not own: domains, deployments, vms
    and regions. With ROUTER_EDGE_SCHEMA=on the router reads the same rows,
    with exactly seed 002's joins, conditions and order (RT_EDGE_QUERY), and
    turns them into ordinary routes and regions, so a stack that already keeps
    its domains in those tables is served without copying them through the
    API. This module is the pure part: rows in, routes and regions out. Who
    runs the query (and when) is the PostgreSQL store's business.

    The rules, for rows as RT_EDGE_QUERY returns them (rt_edge_row_t):

      - One route per distinct domain: vHost = the domain, lower-cased
        ("*.example.com" is a wildcard vHost, as the route model allows).
        Domains that differ only in case are one route.
      - Each row adds one backend to its domain's route: hostname = the VM's
        private_ip, port = the VM's port, region = the VM's region_id (given
        explicitly, never the router's REGION), id = "ip:port" (the route
        model's default id; "[v6]:port" for IPv6). A second row with the same
        ip:port for the same domain adds nothing (not counted as skipped).
      - The route is built with rt_route_new from
        {"vHost": d, "backends": [{"hostname": ip, "port": p, "region": r}, ...]}
        so the route model's validation and defaults (strategy, retries,
        timeouts, weight 1, ...) apply exactly as for a route from the API.
      - An ip or public ip that comes with a host mask ("10.0.0.5/32",
        "fd00::1/128": the text form of an inet column) has it stripped.
      - A row whose domain, ip, port or region is NULL, empty or invalid
        (domain not a valid vHost; ip not a valid backend hostname; port not
        a decimal 1-65535; region not a valid region id, which a uuid is) is
        skipped, counted in *skipped, and logged at warn, once per row,
        naming the domain and the reason. A bad row never fails the build.
        So are rows beyond PROTO_ROUTE_BACKENDS_MAX for one domain.
      - Regions: one {"id": region_id, "publicAddress": "<public_ip>:80"}
        per distinct region id of the kept rows whose public ip is not
        NULL or empty, validated with proto_route_address_normalize
        ("[v6]:80" for IPv6), ordered by id (strcmp). A region without a
        public ip is left out; one with an invalid public ip is left out and
        logged at warn (its rows still give backends).

    Not here: health. A running VM that does not answer gets 503 "Service
    Unavailable - VM not responding" through healthd marking its backend
    dead and the balancer finding no live backend (SPEC §3, §6); this module
    only says which backends exist.
*/
#ifndef RT_EDGE_H
#define RT_EDGE_H

#include <stddef.h>

#include <jansson.h>

#include "rt_table.h"

//  Seed 002's query, every column selected as text so that uuid or text ids,
//  an int port and an inet or text private_ip all come out as strings.
//  Columns, in order (each may be NULL):
//    0 domain_name       domains.name
//    1 vm_private_ip     vms.private_ip  (an inet gives "10.0.0.5/32")
//    2 vm_port           vms.port
//    3 vm_region_id      vms.region_id
//    4 region_public_ip  regions.public_ipv4 (an inet gives "1.2.3.4/32")
#define RT_EDGE_QUERY                                                                              \
    "SELECT d.name::text AS domain_name, v.private_ip::text AS vm_private_ip, "                    \
    "v.port::text AS vm_port, v.region_id::text AS vm_region_id, "                                 \
    "r.public_ipv4::text AS region_public_ip "                                                     \
    "FROM domains d "                                                                              \
    "INNER JOIN deployments dep ON d.deployment_id = dep.id "                                      \
    "INNER JOIN vms v ON dep.vm_id = v.id "                                                        \
    "INNER JOIN regions r ON v.region_id = r.id "                                                  \
    "WHERE d.verified_at IS NOT NULL AND dep.status = 'ready' AND v.status = 'running' "           \
    "ORDER BY d.name"

//  One row of RT_EDGE_QUERY, in column order. All strings borrowed; a NULL
//  pointer is SQL NULL.
typedef struct {
    const char *domain;    // domain_name
    const char *ip;        // vm_private_ip
    const char *port;      // vm_port
    const char *region;    // vm_region_id
    const char *public_ip; // region_public_ip
} rt_edge_row_t;

//  Build routes and regions from n rows (rows may be NULL when n is 0) by
//  the rules above. Sets *table_out to a new table (caller owns:
//  rt_table_destroy) holding one route per distinct domain, in order of
//  first appearance; *regions_out to a new JSON array (caller owns:
//  json_decref), or leaves it alone if regions_out is NULL; *skipped to the
//  number of rows skipped, if skipped is not NULL. Returns 0: bad rows are
//  skipped, never a failure.
int rt_edge_build(const rt_edge_row_t *rows,
                  size_t n,
                  rt_table_t **table_out,
                  json_t **regions_out,
                  size_t *skipped);

#endif
