/*  t_dns - a small DNS server for tests (see t_dns.h).

    One datagram in, at most one out. Only the first question is read; the
    answer copies the header and question, sets QR, RA and the code, and
    appends the records of the asked type with a pointer to the question's
    name. Additional records of the query (EDNS) are not echoed.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "proto_util.h"
#include "t_dns.h"

#define S_TYPE_A    1
#define S_TYPE_AAAA 28

typedef enum {
    S_ANSWER,   // the records (none: NODATA)
    S_NXDOMAIN, // the name does not exist
    S_SERVFAIL, // the server failed
    S_NEVER,    // no reply at all
} s_mode_t;

//  One record of a name.
typedef struct {
    int family;       // AF_INET or AF_INET6
    uint8_t addr[16]; // 4 or 16 bytes
    uint32_t ttl;     // seconds
} s_record_t;

//  One name of the table.
typedef struct {
    char name[256];                    // lower case, no final dot
    s_mode_t mode;                     // how it is answered
    s_record_t records[T_DNS_RECORDS]; // S_ANSWER's records
    size_t nrecords;                   // how many
    unsigned queries;                  // queries received for it
} s_name_t;

struct t_dns {
    struct ev_loop *loop;        // where the server runs
    int fd;                      // its UDP socket
    uint16_t port;               // its port
    char servers[32];            // "127.0.0.1:PORT"
    ev_io io;                    // its readiness
    s_name_t names[T_DNS_NAMES]; // the table
    size_t nnames;               // names used
    unsigned queries;            // every query received
};

//  name in lower case without a final dot, into out (256 bytes).
static void
s_norm(const char *name, char *out)
{
    size_t len = strlen(name);
    assert_true(len < 256);
    if (len && name[len - 1] == '.')
        len--;
    for (size_t i = 0; i < len; i++)
        out[i] = (char) ((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
    out[len] = '\0';
}

static s_name_t *
s_find(t_dns_t *self, const char *name, bool create)
{
    char key[256];
    s_norm(name, key);
    for (size_t i = 0; i < self->nnames; i++)
        if (strcmp(self->names[i].name, key) == 0)
            return &self->names[i];
    if (!create || self->nnames == T_DNS_NAMES)
        return NULL;
    s_name_t *n = &self->names[self->nnames++];
    memset(n, 0, sizeof *n);
    memcpy(n->name, key, sizeof key);
    n->mode = S_NXDOMAIN;
    return n;
}

static void
s_put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;
}

static void
s_put32(uint8_t *p, uint32_t v)
{
    s_put16(p, v >> 16);
    s_put16(p + 2, v & 0xffff);
}

//  Append r (name: a pointer to the question) to out at *off.
static void
s_put_record(uint8_t *out, size_t *off, const s_record_t *r)
{
    size_t alen = r->family == AF_INET ? 4 : 16;
    uint8_t *p = out + *off;
    s_put16(p, 0xc00c); // the question's name
    s_put16(p + 2, r->family == AF_INET ? S_TYPE_A : S_TYPE_AAAA);
    s_put16(p + 4, 1); // IN
    s_put32(p + 6, r->ttl);
    s_put16(p + 10, (unsigned) alen);
    memcpy(p + 12, r->addr, alen);
    *off += 12 + alen;
}

static void
s_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    t_dns_t *self = w->data;
    uint8_t in[512], out[512 + T_DNS_RECORDS * 28];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(self->fd, in, sizeof in, 0, (struct sockaddr *) &from, &fromlen);
    if (n < 12)
        return;
    self->queries++;
    // the question: labels, then type and class
    char name[256];
    size_t nl = 0, off = 12;
    while (off < (size_t) n && in[off] != 0) {
        size_t len = in[off];
        if (len > 63 || off + 1 + len >= (size_t) n || nl + len + 1 >= sizeof name)
            return;
        if (nl)
            name[nl++] = '.';
        memcpy(name + nl, in + off + 1, len);
        nl += len;
        off += 1 + len;
    }
    name[nl] = '\0';
    if (off + 5 > (size_t) n)
        return;
    unsigned qtype = (unsigned) in[off + 1] << 8 | in[off + 2];
    size_t qend = off + 5;
    s_name_t *entry = s_find(self, name, true); // unknown names: NXDOMAIN, counted
    if (entry)
        entry->queries++;
    s_mode_t mode = entry ? entry->mode : S_NXDOMAIN;
    if (mode == S_NEVER)
        return;
    unsigned rcode = mode == S_NXDOMAIN ? 3 : mode == S_SERVFAIL ? 2 : 0;
    memcpy(out, in, qend);
    out[2] = (uint8_t) (0x80 | (in[2] & 0x01)); // QR, RD as asked
    out[3] = (uint8_t) (0x80 | rcode);          // RA and the code
    s_put16(out + 4, 1);
    memset(out + 6, 0, 6);
    size_t len = qend;
    unsigned count = 0;
    for (size_t i = 0; mode == S_ANSWER && i < entry->nrecords; i++) {
        const s_record_t *r = &entry->records[i];
        if ((qtype == S_TYPE_A && r->family == AF_INET)
            || (qtype == S_TYPE_AAAA && r->family == AF_INET6)) {
            s_put_record(out, &len, r);
            count++;
        }
    }
    s_put16(out + 6, count);
    (void) sendto(self->fd, out, len, 0, (struct sockaddr *) &from, fromlen);
}

t_dns_t *
t_dns_new(struct ev_loop *loop)
{
    t_dns_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(self->fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(self->fd, (struct sockaddr *) &sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(self->fd, (struct sockaddr *) &sin, &len), 0);
    self->port = ntohs(sin.sin_port);
    snprintf(self->servers, sizeof self->servers, "127.0.0.1:%u", (unsigned) self->port);
    ev_io_init(&self->io, s_on_readable, self->fd, EV_READ);
    self->io.data = self;
    ev_io_start(loop, &self->io);
    return self;
}

void
t_dns_destroy(t_dns_t **self_p)
{
    assert_non_null(self_p);
    t_dns_t *self = *self_p;
    if (self == NULL)
        return;
    ev_io_stop(self->loop, &self->io);
    close(self->fd);
    free(self);
    *self_p = NULL;
}

uint16_t
t_dns_port(const t_dns_t *self)
{
    return self->port;
}

const char *
t_dns_servers(const t_dns_t *self)
{
    return self->servers;
}

void
t_dns_add(t_dns_t *self, const char *name, const char *ip, uint32_t ttl)
{
    s_name_t *n = s_find(self, name, true);
    assert_non_null(n);
    if (n->mode != S_ANSWER) {
        n->mode = S_ANSWER;
        n->nrecords = 0;
    }
    assert_true(n->nrecords < T_DNS_RECORDS);
    s_record_t *r = &n->records[n->nrecords];
    if (inet_pton(AF_INET, ip, r->addr) == 1)
        r->family = AF_INET;
    else if (inet_pton(AF_INET6, ip, r->addr) == 1)
        r->family = AF_INET6;
    else
        fail_msg("t_dns: not an address: %s", ip);
    r->ttl = ttl;
    n->nrecords++;
}

void
t_dns_set(t_dns_t *self, const char *name, const char *addrs, uint32_t ttl)
{
    s_name_t *n = s_find(self, name, true);
    assert_non_null(n);
    n->mode = S_ANSWER;
    n->nrecords = 0;
    char ip[64];
    const char *p = addrs;
    while (*p) {
        size_t len = strcspn(p, ",");
        assert_true(len < sizeof ip);
        memcpy(ip, p, len);
        ip[len] = '\0';
        if (len)
            t_dns_add(self, name, ip, ttl);
        p += len;
        if (*p == ',')
            p++;
    }
}

static void
s_set_mode(t_dns_t *self, const char *name, s_mode_t mode)
{
    s_name_t *n = s_find(self, name, true);
    assert_non_null(n);
    n->mode = mode;
    n->nrecords = 0;
}

void
t_dns_set_nxdomain(t_dns_t *self, const char *name)
{
    s_set_mode(self, name, S_NXDOMAIN);
}

void
t_dns_set_servfail(t_dns_t *self, const char *name)
{
    s_set_mode(self, name, S_SERVFAIL);
}

void
t_dns_set_never(t_dns_t *self, const char *name)
{
    s_set_mode(self, name, S_NEVER);
}

unsigned
t_dns_queries(const t_dns_t *self, const char *name)
{
    if (name == NULL)
        return self->queries;
    char key[256];
    s_norm(name, key);
    for (size_t i = 0; i < self->nnames; i++)
        if (strcmp(self->names[i].name, key) == 0)
            return self->names[i].queries;
    return 0;
}
