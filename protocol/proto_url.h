/*  proto_url - the connection strings of SPEC §2: REDIS_URL and DATABASE_URL.

    hiredis has no URL parser (ARCHITECTURE.md), so REDIS_URL is parsed here:

        redis://[[user]:password@]host[:port][/db]

    host is a name, an IPv4 address or a bracketed IPv6 address; port
    defaults to 6379 and db to 0. user (Redis 6 ACL) needs a password; a
    password without a user is the classic `AUTH password`. user and
    password may be percent-encoded. Not accepted: other schemes (rediss://
    needs TLS, which hiredis 0.14 lacks; unix sockets), a query string or a
    fragment, an empty host, an empty password.

    DATABASE_URL gets a light check only (libpq parses it when the router
    connects): `postgres://...` or `postgresql://...`, or a libpq key=value
    string (`host=db user=sy`).

    The password is a secret: no error text names it, and proto_url_redact
    gives the value with it replaced, for logs and error lines.
*/
#ifndef PROTO_URL_H
#define PROTO_URL_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_REDIS_DEFAULT_PORT 6379

typedef struct {
    char host[256];     // name or address (an IPv6 address without brackets)
    uint16_t port;      // 1..65535, PROTO_REDIS_DEFAULT_PORT when not given
    char user[128];     // ACL user name, "" for none
    char password[512]; // "" for none (a secret: never log it)
    int64_t db;         // database number, 0 when not given
} proto_redis_url_t;

//  Parse a REDIS_URL. Returns 0 with *url filled, or -1 with why (one
//  phrase, never the password) set and *url untouched.
int proto_redis_url_parse(const char *text, proto_redis_url_t *url, char *why, size_t whylen);

//  Check a DATABASE_URL. Returns 0, or -1 with why set.
int proto_pg_conninfo_check(const char *text, char *why, size_t whylen);

//  Copy text into out (cap bytes, always terminated) with the password of a
//  URL's userinfo, of a `password=` query parameter and of a libpq
//  `password=` keyword replaced by [REDACTED], and control bytes by '?' (so
//  the text stays one line). Returns the length written.
size_t proto_url_redact(const char *text, char *out, size_t cap);

#endif
