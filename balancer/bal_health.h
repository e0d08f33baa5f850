/*  bal_health - the balancer's view of backend health: the dead set.

    healthd publishes backend.state{route, backend, up} per (route,
    backend): health is per route, never per address (a backend shared by two
    routes can be up in one and down in the other). This module keeps the
    pairs currently down, at most max_entries of them (the least recently
    marked is forgotten beyond that, and counted). Maintenance (an operator's
    /dead) is not kept here: it comes with every pick as backend.maint.
*/
#ifndef BAL_HEALTH_H
#define BAL_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bal_health bal_health_t;

//  Create an empty dead set of at most max_entries pairs. Returns NULL if
//  max_entries is 0.
bal_health_t *bal_health_new(size_t max_entries);

//  Destroy the set. Sets *self_p to NULL. Safe to call twice.
void bal_health_destroy(bal_health_t **self_p);

//  Apply one backend.state: up marks the pair alive (removes it), !up marks
//  it dead (since_ms is kept for logs). Returns 1 if the state changed, 0 if
//  it was already so, -1 if route or backend is empty or too long.
int bal_health_set(
    bal_health_t *self, const char *route, const char *backend, bool up, uint64_t since_ms);

//  True if the pair is marked dead.
bool bal_health_is_dead(const bal_health_t *self, const char *route, const char *backend);

//  Pairs marked dead; pairs forgotten because the set was full.
size_t bal_health_count(const bal_health_t *self);
uint64_t bal_health_evictions(const bal_health_t *self);

#endif
