/*  bal_state - smooth weighted round-robin state per (route, serving region).

    The balancer rotates the first candidate of successive leases with
    nginx's smooth weighted round robin (proto_strategy_swrr_order), so that
    gateways do not all start on the same backend. The state is one current
    weight per candidate, kept per route and serving region, reset when the
    candidate set changes (a backend added, removed, dead or back), and
    bounded: beyond max_routes keys the least recently used is dropped.
*/
#ifndef BAL_STATE_H
#define BAL_STATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct bal_state bal_state_t;

//  Create an empty state table of at most max_routes keys. Returns NULL if
//  max_routes is 0.
bal_state_t *bal_state_new(size_t max_routes);

//  Destroy the table. Sets *self_p to NULL. Safe to call twice.
void bal_state_destroy(bal_state_t **self_p);

//  The current weights for key (route, serving) over n candidates whose
//  set is identified by fingerprint: the kept array, or a zeroed one when
//  the key is new or its fingerprint or n differ (counted as a reset).
//  serving is any string naming who serves (it is part of the key). Marks
//  the key most recently used. Returns a borrowed array of n values, valid
//  until the next call; NULL if n is 0 or the key is too long.
int64_t *bal_state_current(
    bal_state_t *self, const char *route, const char *serving, uint64_t fingerprint, size_t n);

//  Keys kept; keys dropped for room; resets because the set changed.
size_t bal_state_count(const bal_state_t *self);
uint64_t bal_state_evictions(const bal_state_t *self);
uint64_t bal_state_resets(const bal_state_t *self);

#endif
