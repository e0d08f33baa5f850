/*  rt_table - the route table (see rt_table.h).

    Keys are hashed right to left (FNV-1a over the bytes from the last one
    back), so that walking a host once from its end yields the hash of every
    dot-suffix on the way: the wildcard probe needs no second pass.
*/
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "proto_util.h"
#include "rt_table.h"

#define S_MIN_BUCKETS 16

typedef struct s_entry {
    const char *key;      // lower-case key (points into the route's vhost)
    size_t len;           // its length
    uint64_t hash;        // s_hash of key
    rt_route_t *route;    // borrowed from the table's route list
    struct s_entry *next; // bucket chain
} s_entry_t;

//  A string-keyed hash map with chained buckets.
typedef struct {
    s_entry_t **buckets; // power-of-two count
    size_t nbuckets;     // how many buckets
    size_t count;        // entries
} s_map_t;

//  A dot-suffix of a host being matched: where it starts, and its hash.
typedef struct {
    size_t at;     // offset in the host
    uint64_t hash; // s_hash of host + at
} s_suffix_t;

struct rt_table {
    rt_route_t **routes; // every route, insertion order, one reference each
    size_t count;        // how many
    size_t cap;          // allocated
    s_map_t exact;       // vHost -> route
    s_map_t wild;        // suffix of "*.suffix" -> route
    rt_route_t *any;     // the "*" route, or NULL (borrowed from routes)
};

static uint64_t
s_hash(const char *key, size_t len)
{
    uint64_t h = PROTO_FNV1A_OFFSET;
    while (len > 0)
        h = proto_fnv1a_byte(h, (uint8_t) key[--len]);
    return h;
}

static void
s_map_init(s_map_t *map)
{
    map->nbuckets = S_MIN_BUCKETS;
    map->buckets = proto_xcalloc(map->nbuckets, sizeof *map->buckets);
    map->count = 0;
}

static void
s_map_fini(s_map_t *map)
{
    for (size_t i = 0; i < map->nbuckets; i++) {
        s_entry_t *e = map->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(map->buckets);
    map->buckets = NULL;
    map->nbuckets = map->count = 0;
}

static s_entry_t *
s_map_find(const s_map_t *map, const char *key, size_t len, uint64_t hash)
{
    for (s_entry_t *e = map->buckets[hash & (map->nbuckets - 1)]; e; e = e->next)
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void
s_map_grow(s_map_t *map)
{
    size_t n = map->nbuckets * 2;
    s_entry_t **buckets = proto_xcalloc(n, sizeof *buckets);
    for (size_t i = 0; i < map->nbuckets; i++) {
        s_entry_t *e = map->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(map->buckets);
    map->buckets = buckets;
    map->nbuckets = n;
}

//  Set key -> route (key points into route->vhost, so it lives as long).
static void
s_map_set(s_map_t *map, const char *key, rt_route_t *route)
{
    size_t len = strlen(key);
    uint64_t hash = s_hash(key, len);
    s_entry_t *e = s_map_find(map, key, len, hash);
    if (e) {
        e->key = key;
        e->route = route;
        return;
    }
    if (map->count + 1 > map->nbuckets - map->nbuckets / 4)
        s_map_grow(map);
    e = proto_xcalloc(1, sizeof *e);
    e->key = key;
    e->len = len;
    e->hash = hash;
    e->route = route;
    size_t b = hash & (map->nbuckets - 1);
    e->next = map->buckets[b];
    map->buckets[b] = e;
    map->count++;
}

static void
s_map_del(s_map_t *map, const char *key)
{
    size_t len = strlen(key);
    uint64_t hash = s_hash(key, len);
    s_entry_t **pp = &map->buckets[hash & (map->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        s_entry_t *e = *pp;
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
            *pp = e->next;
            free(e);
            map->count--;
            return;
        }
    }
}

rt_table_t *
rt_table_new(void)
{
    rt_table_t *self = proto_xcalloc(1, sizeof *self);
    s_map_init(&self->exact);
    s_map_init(&self->wild);
    return self;
}

void
rt_table_destroy(rt_table_t **self_p)
{
    assert(self_p);
    rt_table_t *self = *self_p;
    if (self == NULL)
        return;
    s_map_fini(&self->wild);
    s_map_fini(&self->exact);
    for (size_t i = 0; i < self->count; i++)
        rt_route_unref(&self->routes[i]);
    free(self->routes);
    self->routes = NULL;
    free(self);
    *self_p = NULL;
}

//  Index the route under its vHost (which is lower-case and valid).
static void
s_index(rt_table_t *self, rt_route_t *route)
{
    const char *v = route->vhost;
    if (strcmp(v, "*") == 0)
        self->any = route;
    else if (v[0] == '*')
        s_map_set(&self->wild, v + 2, route);
    else
        s_map_set(&self->exact, v, route);
}

static void
s_unindex(rt_table_t *self, const rt_route_t *route)
{
    const char *v = route->vhost;
    if (strcmp(v, "*") == 0)
        self->any = NULL;
    else if (v[0] == '*')
        s_map_del(&self->wild, v + 2);
    else
        s_map_del(&self->exact, v);
}

//  Position of the route with this lower-case vHost, or -1.
static ssize_t
s_position(const rt_table_t *self, const char *vhost)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->routes[i]->vhost, vhost) == 0)
            return (ssize_t) i;
    return -1;
}

rt_table_t *
rt_table_copy(const rt_table_t *self)
{
    rt_table_t *copy = rt_table_new();
    for (size_t i = 0; i < self->count; i++)
        rt_table_put(copy, self->routes[i]);
    return copy;
}

int
rt_table_put(rt_table_t *self, rt_route_t *route)
{
    assert(route && route->vhost);
    rt_route_t *old = rt_table_get(self, route->vhost);
    if (old) {
        ssize_t at = s_position(self, old->vhost);
        assert(at >= 0);
        s_unindex(self, old);
        self->routes[at] = rt_route_ref(route);
        s_index(self, route);
        rt_route_unref(&old);
        return 1;
    }
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->routes = proto_xrealloc(self->routes, self->cap * sizeof *self->routes);
    }
    self->routes[self->count++] = rt_route_ref(route);
    s_index(self, route);
    return 0;
}

int
rt_table_remove(rt_table_t *self, const char *vhost)
{
    rt_route_t *old = rt_table_get(self, vhost);
    if (old == NULL)
        return -1;
    ssize_t at = s_position(self, old->vhost);
    assert(at >= 0);
    s_unindex(self, old);
    memmove(&self->routes[at], &self->routes[at + 1],
            (self->count - (size_t) at - 1) * sizeof *self->routes);
    self->count--;
    rt_route_unref(&old);
    return 0;
}

//  Lower-case text into buf (capacity PROTO_ROUTE_VHOST_MAX + 1). Returns the
//  length, or -1 if it is too long.
static ssize_t
s_lower(const char *text, char *buf)
{
    size_t len = 0;
    for (; text[len]; len++) {
        if (len >= PROTO_ROUTE_VHOST_MAX)
            return -1;
        buf[len] = (char) tolower((unsigned char) text[len]);
    }
    buf[len] = '\0';
    return (ssize_t) len;
}

rt_route_t *
rt_table_get(const rt_table_t *self, const char *vhost)
{
    char key[PROTO_ROUTE_VHOST_MAX + 1];
    ssize_t len = s_lower(vhost, key);
    if (len <= 0)
        return NULL;
    if (strcmp(key, "*") == 0)
        return self->any;
    const s_map_t *map = &self->exact;
    const char *k = key;
    if (key[0] == '*') {
        if (len < 3 || key[1] != '.')
            return NULL;
        map = &self->wild;
        k = key + 2;
        len -= 2;
    }
    s_entry_t *e = s_map_find(map, k, (size_t) len, s_hash(k, (size_t) len));
    return e ? e->route : NULL;
}

rt_route_t *
rt_table_match(const rt_table_t *self, const char *host)
{
    char key[PROTO_ROUTE_VHOST_MAX + 1];
    ssize_t len = s_lower(host, key);
    if (len <= 0)
        return self->any;
    // one pass from the end: the hash of every suffix that follows a dot
    // (and has a non-empty label before that dot: ".x.com" is no tenant)
    s_suffix_t suffixes[PROTO_ROUTE_VHOST_MAX / 2 + 1];
    size_t nsuffixes = 0;
    uint64_t h = PROTO_FNV1A_OFFSET, whole = 0;
    for (ssize_t i = len - 1; i >= 0; i--) {
        h = proto_fnv1a_byte(h, (uint8_t) key[i]);
        if (i >= 2 && key[i - 1] == '.' && nsuffixes < PROTO_ARRAY_SIZE(suffixes))
            suffixes[nsuffixes++] = (s_suffix_t){(size_t) i, h};
        if (i == 0)
            whole = h;
    }
    s_entry_t *e = s_map_find(&self->exact, key, (size_t) len, whole);
    if (e)
        return e->route;
    if (self->wild.count > 0) {
        // the longest suffix was found last
        for (size_t n = nsuffixes; n-- > 0;) {
            size_t at = suffixes[n].at;
            e = s_map_find(&self->wild, key + at, (size_t) len - at, suffixes[n].hash);
            if (e)
                return e->route;
        }
    }
    return self->any;
}

size_t
rt_table_size(const rt_table_t *self)
{
    return self->count;
}

rt_route_t *
rt_table_at(const rt_table_t *self, size_t index)
{
    return index < self->count ? self->routes[index] : NULL;
}
