/*  bal_lru - a bounded map from byte-string keys to owned values, least
    recently used first out.

    Every table of per-route state in the balancer (strategy state, dead
    set, latency) is one of these, so that no input can grow the process
    without bound: inserting into a full map frees the entry used least
    recently. Keys are copied; values are owned and freed with the map's
    free function. Lookups and inserts are O(1) on average.
*/
#ifndef BAL_LRU_H
#define BAL_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BAL_LRU_KEY_MAX 1024 // bytes of a key

typedef struct bal_lru bal_lru_t;

//  Frees one value (NULL values are never passed).
typedef void(bal_lru_free_fn)(void *value);

//  Create a map holding at most max_entries. free_fn frees values (NULL:
//  values are not freed). Returns NULL if max_entries is 0.
bal_lru_t *bal_lru_new(size_t max_entries, bal_lru_free_fn *free_fn);

//  Destroy the map and every value it owns. Sets *self_p to NULL. Safe to
//  call twice.
void bal_lru_destroy(bal_lru_t **self_p);

//  The value stored under key (len bytes), or NULL. Marks it most recently
//  used. Returns a borrowed pointer, valid until the entry is replaced,
//  removed or evicted.
void *bal_lru_get(bal_lru_t *self, const void *key, size_t len);

//  The value stored under key without touching its recency, or NULL.
void *bal_lru_peek(const bal_lru_t *self, const void *key, size_t len);

//  Store value (not NULL) under key, as most recently used; takes ownership
//  of value. A value already under key is freed first; if the map is full,
//  the least recently used entry is evicted (and freed). Returns 1 if an
//  entry was evicted, 0 otherwise, -1 if the key is longer than
//  BAL_LRU_KEY_MAX (value is then freed).
int bal_lru_put(bal_lru_t *self, const void *key, size_t len, void *value);

//  Remove and free the entry under key. Returns true if there was one.
bool bal_lru_remove(bal_lru_t *self, const void *key, size_t len);

//  Number of entries; entries evicted since creation.
size_t bal_lru_count(const bal_lru_t *self);
uint64_t bal_lru_evictions(const bal_lru_t *self);

//  Build the key "<a>\0<b>" in out (capacity cap) from two strings without
//  NUL (NULL counts as ""). Returns its length, or 0 if it does not fit.
size_t bal_lru_key2(char *out, size_t cap, const char *a, const char *b);

#endif
