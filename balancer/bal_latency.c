/*  bal_latency - EWMA of upstream latency per (route, backend) in a bounded LRU map. */
#include <assert.h>
#include <stdlib.h>

#include "proto_util.h"
#include "bal_latency.h"
#include "bal_lru.h"

struct bal_latency {
    bal_lru_t *pairs; // "<route>\0<backend>" -> s_avg_t
};

//  The average of one pair.
typedef struct {
    uint64_t avg_us;  // moving average, microseconds
    uint64_t last_ms; // when the last sample came, ms since the epoch
} s_avg_t;

bal_latency_t *
bal_latency_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    bal_latency_t *self = proto_xcalloc(1, sizeof *self);
    self->pairs = bal_lru_new(max_entries, free);
    return self;
}

void
bal_latency_destroy(bal_latency_t **self_p)
{
    assert(self_p);
    bal_latency_t *self = *self_p;
    if (self == NULL)
        return;
    bal_lru_destroy(&self->pairs);
    free(self);
    *self_p = NULL;
}

int
bal_latency_add(bal_latency_t *self,
                const char *route,
                const char *backend,
                uint64_t upstream_us,
                uint64_t now_ms)
{
    char key[BAL_LRU_KEY_MAX];
    if (upstream_us == 0 || route == NULL || backend == NULL || *route == '\0' || *backend == '\0')
        return -1;
    size_t len = bal_lru_key2(key, sizeof key, route, backend);
    if (len == 0)
        return -1;
    s_avg_t *avg = bal_lru_get(self->pairs, key, len);
    if (avg == NULL || now_ms >= avg->last_ms + BAL_LATENCY_STALE_MS) {
        // first sample, or after a long silence: start again from it
        if (avg == NULL) {
            avg = proto_xcalloc(1, sizeof *avg);
            bal_lru_put(self->pairs, key, len, avg);
        }
        avg->avg_us = upstream_us;
    } else {
        int64_t delta = (int64_t) upstream_us - (int64_t) avg->avg_us;
        avg->avg_us = (uint64_t) ((int64_t) avg->avg_us + delta / BAL_LATENCY_EWMA_DIV);
        if (avg->avg_us == 0)
            avg->avg_us = 1;
    }
    avg->last_ms = now_ms;
    return 0;
}

uint64_t
bal_latency_get(const bal_latency_t *self, const char *route, const char *backend, uint64_t now_ms)
{
    char key[BAL_LRU_KEY_MAX];
    size_t len = bal_lru_key2(key, sizeof key, route, backend);
    if (len == 0)
        return 0;
    const s_avg_t *avg = bal_lru_peek(self->pairs, key, len);
    if (avg == NULL || now_ms >= avg->last_ms + BAL_LATENCY_STALE_MS)
        return 0;
    return avg->avg_us;
}

size_t
bal_latency_count(const bal_latency_t *self)
{
    return bal_lru_count(self->pairs);
}
