/*  t_dns - a small DNS server for tests, on the test's own libev loop.

    A UDP socket on 127.0.0.1 at a port the kernel picks (bind port 0), read
    by an ev_io on the loop the code under test runs on, so a test drives
    both with one ev_run. It answers from a table the test sets and changes
    at will: a name's A and AAAA records (each with its TTL), NXDOMAIN, a
    server failure (SERVFAIL), or silence (the query is counted, never
    answered). A name not in the table gets NXDOMAIN; a known name asked for
    another type (or a type it has no record of) gets an empty answer
    (NODATA). Queries are counted, in all and per name.

    Names match without regard to case or a final dot ("a.test." is
    "a.test"). Point a resolver at it with t_dns_servers(). Every function
    aborts the test (cmocka) on misuse: a test helper, not product code.
*/
#ifndef T_DNS_H
#define T_DNS_H

#include <stdint.h>

#include <ev.h>

#define T_DNS_NAMES   32 // names in the table, at most
#define T_DNS_RECORDS 8  // records per name, at most

typedef struct t_dns t_dns_t;

//  Start a server on loop (its ev_io starts now). Never NULL.
t_dns_t *t_dns_new(struct ev_loop *loop);

//  Stop and free the server. Sets *self_p to NULL; safe to call twice.
void t_dns_destroy(t_dns_t **self_p);

//  Its port, and "127.0.0.1:PORT" for proto_resolve_opts_t.servers
//  (borrowed, lives as long as the server).
uint16_t t_dns_port(const t_dns_t *self);
const char *t_dns_servers(const t_dns_t *self);

//  Answer name with the records in addrs: IPv4 and IPv6 literals separated
//  by commas ("10.0.0.1,10.0.0.2,::1"), each with ttl. Replaces whatever
//  the table said about name.
void t_dns_set(t_dns_t *self, const char *name, const char *addrs, uint32_t ttl);

//  Add one record (ip, ttl) to name's answer (a name answering NXDOMAIN,
//  SERVFAIL or nothing starts answering, with this record only).
void t_dns_add(t_dns_t *self, const char *name, const char *ip, uint32_t ttl);

//  name answers NXDOMAIN, SERVFAIL, or never.
void t_dns_set_nxdomain(t_dns_t *self, const char *name);
void t_dns_set_servfail(t_dns_t *self, const char *name);
void t_dns_set_never(t_dns_t *self, const char *name);

//  Queries received for name (any type, answered or not), or for every
//  name when name is NULL.
unsigned t_dns_queries(const t_dns_t *self, const char *name);

#endif
