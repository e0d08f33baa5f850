/*  bal_health - the dead set, a bounded map keyed by "<route>\0<backend>". */
#include <assert.h>
#include <stdlib.h>

#include "proto_util.h"
#include "bal_health.h"
#include "bal_lru.h"

struct bal_health {
    bal_lru_t *dead; // "<route>\0<backend>" -> s_dead_t
};

//  One dead pair.
typedef struct {
    uint64_t since_ms; // when it went down, ms since the epoch (0: unknown)
} s_dead_t;

bal_health_t *
bal_health_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    bal_health_t *self = proto_xcalloc(1, sizeof *self);
    self->dead = bal_lru_new(max_entries, free);
    return self;
}

void
bal_health_destroy(bal_health_t **self_p)
{
    assert(self_p);
    bal_health_t *self = *self_p;
    if (self == NULL)
        return;
    bal_lru_destroy(&self->dead);
    free(self);
    *self_p = NULL;
}

int
bal_health_set(
    bal_health_t *self, const char *route, const char *backend, bool up, uint64_t since_ms)
{
    char key[BAL_LRU_KEY_MAX];
    if (route == NULL || backend == NULL || *route == '\0' || *backend == '\0')
        return -1;
    size_t len = bal_lru_key2(key, sizeof key, route, backend);
    if (len == 0)
        return -1;
    if (up)
        return bal_lru_remove(self->dead, key, len) ? 1 : 0;
    s_dead_t *dead = bal_lru_get(self->dead, key, len);
    if (dead) {
        dead->since_ms = since_ms;
        return 0;
    }
    dead = proto_xcalloc(1, sizeof *dead);
    dead->since_ms = since_ms;
    bal_lru_put(self->dead, key, len, dead);
    return 1;
}

bool
bal_health_is_dead(const bal_health_t *self, const char *route, const char *backend)
{
    char key[BAL_LRU_KEY_MAX];
    size_t len = bal_lru_key2(key, sizeof key, route, backend);
    return len > 0 && bal_lru_peek(self->dead, key, len) != NULL;
}

size_t
bal_health_count(const bal_health_t *self)
{
    return bal_lru_count(self->dead);
}

uint64_t
bal_health_evictions(const bal_health_t *self)
{
    return bal_lru_evictions(self->dead);
}
