/*  bal_state - round-robin state per (route, serving region) in a bounded LRU map. */
#include <assert.h>
#include <stdlib.h>

#include "proto_util.h"
#include "bal_lru.h"
#include "bal_state.h"

struct bal_state {
    bal_lru_t *routes; // "<route>\0<serving>" -> s_rr_t
    uint64_t resets;   // arrays zeroed because the candidate set changed
};

//  The state of one key.
typedef struct {
    uint64_t fingerprint; // identifies the candidate set
    size_t n;             // candidates
    int64_t current[];    // their current weights
} s_rr_t;

bal_state_t *
bal_state_new(size_t max_routes)
{
    if (max_routes == 0)
        return NULL;
    bal_state_t *self = proto_xcalloc(1, sizeof *self);
    self->routes = bal_lru_new(max_routes, free);
    return self;
}

void
bal_state_destroy(bal_state_t **self_p)
{
    assert(self_p);
    bal_state_t *self = *self_p;
    if (self == NULL)
        return;
    bal_lru_destroy(&self->routes);
    free(self);
    *self_p = NULL;
}

int64_t *
bal_state_current(
    bal_state_t *self, const char *route, const char *serving, uint64_t fingerprint, size_t n)
{
    char key[BAL_LRU_KEY_MAX];
    size_t len = bal_lru_key2(key, sizeof key, route, serving);
    if (n == 0 || len == 0)
        return NULL;
    s_rr_t *rr = bal_lru_get(self->routes, key, len);
    if (rr && rr->fingerprint == fingerprint && rr->n == n)
        return rr->current;
    if (rr)
        self->resets++;
    rr = proto_xcalloc(1, sizeof *rr + n * sizeof rr->current[0]);
    rr->fingerprint = fingerprint;
    rr->n = n;
    bal_lru_put(self->routes, key, len, rr);
    return rr->current;
}

size_t
bal_state_count(const bal_state_t *self)
{
    return bal_lru_count(self->routes);
}

uint64_t
bal_state_evictions(const bal_state_t *self)
{
    return bal_lru_evictions(self->routes);
}

uint64_t
bal_state_resets(const bal_state_t *self)
{
    return self->resets;
}
