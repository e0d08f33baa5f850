/*  proto_pairs - see proto_pairs.h. A slot is the hash (0: empty), the key
    and the value, allocated as one block per pair.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_pairs.h"
#include "proto_util.h"

typedef struct {
    uint64_t hash; // 0: empty
    char *key;     // a 0x1f b, followed (aligned) by the value
    void *value;   // inside the key's block
} s_slot_t;

struct proto_pairs {
    s_slot_t *slots;
    size_t cap;        // power of two, 0 before the first pair
    size_t n;          // pairs kept
    size_t value_size; // bytes per value
    size_t max;        // bound on n
    uint64_t refused;  // puts beyond the bound
};

proto_pairs_t *
proto_pairs_new(size_t value_size, size_t max)
{
    proto_pairs_t *self = proto_xcalloc(1, sizeof *self);
    self->value_size = value_size;
    self->max = max;
    return self;
}

static uint64_t
s_hash(const char *a, const char *b)
{
    uint64_t h = proto_fnv1a_str(a);
    h = proto_fnv1a_byte(h, 0x1f);
    h = proto_fnv1a_more(h, b, strlen(b));
    return h | 1; // never the empty mark
}

static bool
s_is(const s_slot_t *s, uint64_t h, const char *a, const char *b)
{
    if (s->hash != h)
        return false;
    size_t al = strlen(a);
    return strncmp(s->key, a, al) == 0 && s->key[al] == 0x1f && strcmp(s->key + al + 1, b) == 0;
}

static s_slot_t *
s_find(const proto_pairs_t *self, uint64_t h, const char *a, const char *b)
{
    if (self->n == 0)
        return NULL;
    for (size_t j = h & (self->cap - 1); self->slots[j].hash; j = (j + 1) & (self->cap - 1))
        if (s_is(&self->slots[j], h, a, b))
            return &self->slots[j];
    return NULL;
}

static void
s_grow(proto_pairs_t *self)
{
    size_t cap = self->cap ? self->cap * 2 : 256;
    s_slot_t *slots = proto_xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < self->cap; i++) {
        if (self->slots[i].hash == 0)
            continue;
        size_t j = self->slots[i].hash & (cap - 1);
        while (slots[j].hash)
            j = (j + 1) & (cap - 1);
        slots[j] = self->slots[i];
    }
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
}

void *
proto_pairs_get(const proto_pairs_t *self, const char *a, const char *b)
{
    s_slot_t *s = s_find(self, s_hash(a, b), a, b);
    return s ? s->value : NULL;
}

void *
proto_pairs_put(proto_pairs_t *self, const char *a, const char *b, bool *created)
{
    uint64_t h = s_hash(a, b);
    s_slot_t *s = s_find(self, h, a, b);
    if (created)
        *created = s == NULL;
    if (s)
        return s->value;
    if (self->n >= self->max) {
        self->refused++;
        return NULL;
    }
    if ((self->n + 1) * 2 > self->cap)
        s_grow(self);
    size_t j = h & (self->cap - 1);
    while (self->slots[j].hash)
        j = (j + 1) & (self->cap - 1);
    size_t klen = strlen(a) + strlen(b) + 2;
    size_t voff = (klen + 15) & ~(size_t) 15; // the value aligned for any type
    char *block = proto_xcalloc(1, voff + self->value_size);
    snprintf(block, klen, "%s\x1f%s", a, b);
    self->slots[j] = (s_slot_t){h, block, block + voff};
    self->n++;
    return self->slots[j].value;
}

size_t
proto_pairs_size(const proto_pairs_t *self)
{
    return self->n;
}

uint64_t
proto_pairs_refused(const proto_pairs_t *self)
{
    return self->refused;
}

void
proto_pairs_destroy(proto_pairs_t **self_p)
{
    proto_pairs_t *self = *self_p;
    if (self == NULL)
        return;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i].key);
    free(self->slots);
    free(self);
    *self_p = NULL;
}
