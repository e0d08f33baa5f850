/*  rt_table - the route table: which route serves a Host (SPEC §3).

    Matching order: the exact vHost, then the longest wildcard ("*.example.com"
    matches a.example.com and a.b.example.com, not example.com), then the
    catch-all "*". Case-insensitive. Exact vHosts are in a hash map; wildcards
    in a second hash map keyed by their suffix, probed with each dot-suffix of
    the host from the longest down. The host's suffix hashes come from one
    right-to-left pass, so a lookup costs O(length of the host), whatever the
    number of routes.

    The table holds a reference on each route. Copying a table is cheap (it
    shares the routes), which is how a change is staged: copy, change the
    copy, save it, and swap it in only when the save succeeded.
*/
#ifndef RT_TABLE_H
#define RT_TABLE_H

#include <stddef.h>

#include "rt_route.h"

typedef struct rt_table rt_table_t;

//  Create an empty table.
rt_table_t *rt_table_new(void);

//  Destroy the table, dropping its reference on every route. Sets *self_p to
//  NULL. Safe to call twice.
void rt_table_destroy(rt_table_t **self_p);

//  A new table with the same routes (each gets another reference).
rt_table_t *rt_table_copy(const rt_table_t *self);

//  Add a route, or replace the route of the same vHost (keeping its place in
//  the order). The table takes its own reference; the caller keeps its own.
//  Returns 1 if it replaced a route, 0 if it added one.
int rt_table_put(rt_table_t *self, rt_route_t *route);

//  Remove the route of this vHost (case-insensitive). Returns 0, or -1 if
//  there is none.
int rt_table_remove(rt_table_t *self, const char *vhost);

//  The route whose vHost is exactly this pattern ("api.x.com", "*.x.com",
//  "*"; case-insensitive), or NULL. Borrowed.
rt_route_t *rt_table_get(const rt_table_t *self, const char *vhost);

//  The route serving a Host (port already stripped), or NULL. Borrowed.
rt_route_t *rt_table_match(const rt_table_t *self, const char *host);

//  Number of routes, and the route at an index (insertion order). Borrowed.
size_t rt_table_size(const rt_table_t *self);
rt_route_t *rt_table_at(const rt_table_t *self, size_t index);

#endif
