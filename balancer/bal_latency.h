/*  bal_latency - recent upstream latency per (route, backend), for LEAST_LATENCY.

    Fed from the gateways' request.done batches (upstream_us: time to the
    backend's response headers): an exponentially weighted moving average
    per pair, weight 1/BAL_LATENCY_EWMA_DIV for each new sample. A pair not
    measured for BAL_LATENCY_STALE_MS counts as unknown again, which
    proto_strategy_latency_weights treats as the fastest: a backend that was
    slow, or away, is explored again and re-measured. Bounded: at most
    max_entries pairs, least recently measured out first.
*/
#ifndef BAL_LATENCY_H
#define BAL_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define BAL_LATENCY_EWMA_DIV 4     // new sample weight 1/4
#define BAL_LATENCY_STALE_MS 60000 // older averages count as unknown

typedef struct bal_latency bal_latency_t;

//  Create an empty table of at most max_entries pairs. Returns NULL if
//  max_entries is 0.
bal_latency_t *bal_latency_new(size_t max_entries);

//  Destroy the table. Sets *self_p to NULL. Safe to call twice.
void bal_latency_destroy(bal_latency_t **self_p);

//  Add one sample of upstream_us (> 0) for the pair, measured at now_ms.
//  Returns 0, or -1 if the sample was ignored (0 latency, empty names).
int bal_latency_add(bal_latency_t *self,
                    const char *route,
                    const char *backend,
                    uint64_t upstream_us,
                    uint64_t now_ms);

//  The pair's recent latency in microseconds, or 0 when unknown or stale.
uint64_t
bal_latency_get(const bal_latency_t *self, const char *route, const char *backend, uint64_t now_ms);

//  Pairs kept.
size_t bal_latency_count(const bal_latency_t *self);

#endif
