/*  bal_lru - bounded LRU map: chained hash buckets plus a doubly linked
    recency list (most recent at the head, eviction from the tail).
*/
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "proto_util.h"
#include "bal_lru.h"

typedef struct s_entry {
    struct s_entry *hnext; // next in the same bucket
    struct s_entry *prev;  // more recently used
    struct s_entry *next;  // less recently used
    uint64_t hash;         // hash of the key
    void *value;           // owned
    size_t len;            // key bytes
    char key[];            // the key (not NUL-terminated)
} s_entry_t;

struct bal_lru {
    s_entry_t **buckets;      // hash chains
    size_t nbuckets;          // a power of two
    size_t count;             // entries
    size_t max_entries;       // bound
    uint64_t evictions;       // entries evicted for room
    s_entry_t *newest;        // head of the recency list
    s_entry_t *oldest;        // tail
    bal_lru_free_fn *free_fn; // frees values, or NULL
};

static uint64_t
s_hash(const void *key, size_t len)
{
    uint64_t h = proto_fnv1a(key, len);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

bal_lru_t *
bal_lru_new(size_t max_entries, bal_lru_free_fn *free_fn)
{
    if (max_entries == 0)
        return NULL;
    bal_lru_t *self = proto_xcalloc(1, sizeof *self);
    self->max_entries = max_entries;
    self->free_fn = free_fn;
    self->nbuckets = 16;
    while (self->nbuckets < max_entries && self->nbuckets < ((size_t) 1 << 24))
        self->nbuckets *= 2;
    self->buckets = proto_xcalloc(self->nbuckets, sizeof *self->buckets);
    return self;
}

static void
s_free_entry(bal_lru_t *self, s_entry_t *e)
{
    if (self->free_fn)
        self->free_fn(e->value);
    e->value = NULL;
    free(e);
}

void
bal_lru_destroy(bal_lru_t **self_p)
{
    assert(self_p);
    bal_lru_t *self = *self_p;
    if (self == NULL)
        return;
    s_entry_t *e = self->newest;
    while (e) {
        s_entry_t *next = e->next;
        s_free_entry(self, e);
        e = next;
    }
    free(self->buckets);
    self->buckets = NULL;
    free(self);
    *self_p = NULL;
}

static s_entry_t *
s_find(const bal_lru_t *self, const void *key, size_t len, uint64_t hash)
{
    for (s_entry_t *e = self->buckets[hash & (self->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void
s_list_unlink(bal_lru_t *self, s_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        self->newest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        self->oldest = e->prev;
    e->prev = e->next = NULL;
}

static void
s_list_push(bal_lru_t *self, s_entry_t *e)
{
    e->prev = NULL;
    e->next = self->newest;
    if (self->newest)
        self->newest->prev = e;
    else
        self->oldest = e;
    self->newest = e;
}

//  Take e out of its bucket and the list, and free it.
static void
s_remove(bal_lru_t *self, s_entry_t *e)
{
    s_entry_t **pp = &self->buckets[e->hash & (self->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    s_list_unlink(self, e);
    self->count--;
    s_free_entry(self, e);
}

void *
bal_lru_get(bal_lru_t *self, const void *key, size_t len)
{
    s_entry_t *e = s_find(self, key, len, s_hash(key, len));
    if (e == NULL)
        return NULL;
    if (e != self->newest) {
        s_list_unlink(self, e);
        s_list_push(self, e);
    }
    return e->value;
}

void *
bal_lru_peek(const bal_lru_t *self, const void *key, size_t len)
{
    s_entry_t *e = s_find(self, key, len, s_hash(key, len));
    return e ? e->value : NULL;
}

int
bal_lru_put(bal_lru_t *self, const void *key, size_t len, void *value)
{
    assert(value);
    if (len > BAL_LRU_KEY_MAX) {
        if (self->free_fn)
            self->free_fn(value);
        return -1;
    }
    uint64_t hash = s_hash(key, len);
    s_entry_t *e = s_find(self, key, len, hash);
    if (e) {
        if (self->free_fn)
            self->free_fn(e->value);
        e->value = value;
        s_list_unlink(self, e);
        s_list_push(self, e);
        return 0;
    }
    int evicted = 0;
    if (self->count >= self->max_entries) {
        s_remove(self, self->oldest);
        self->evictions++;
        evicted = 1;
    }
    e = proto_xcalloc(1, sizeof *e + len);
    memcpy(e->key, key, len);
    e->len = len;
    e->hash = hash;
    e->value = value;
    size_t b = hash & (self->nbuckets - 1);
    e->hnext = self->buckets[b];
    self->buckets[b] = e;
    s_list_push(self, e);
    self->count++;
    return evicted;
}

bool
bal_lru_remove(bal_lru_t *self, const void *key, size_t len)
{
    s_entry_t *e = s_find(self, key, len, s_hash(key, len));
    if (e == NULL)
        return false;
    s_remove(self, e);
    return true;
}

size_t
bal_lru_count(const bal_lru_t *self)
{
    return self->count;
}

uint64_t
bal_lru_evictions(const bal_lru_t *self)
{
    return self->evictions;
}

size_t
bal_lru_key2(char *out, size_t cap, const char *a, const char *b)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    if (la + 1 + lb > cap)
        return 0;
    if (la)
        memcpy(out, a, la);
    out[la] = '\0';
    if (lb)
        memcpy(out + la + 1, b, lb);
    return la + 1 + lb;
}
