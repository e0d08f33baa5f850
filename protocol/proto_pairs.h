/*  proto_pairs - a map from a pair of strings (route and backend ids, as a
    rule) to a fixed-size value, bounded. The one copy of what the router
    (healthd's verdict per pair, for GET /routes) and apid (the last state
    told per pair, to drop repeats from the event stream) both keep.

    Open addressing on FNV-1a of "a\x1fb", doubled at half full; the key is
    copied, the value is value_size bytes stored in the slot. At most max
    pairs: a new pair beyond is not kept (counted). Nothing is ever removed.
*/
#ifndef PROTO_PAIRS_H
#define PROTO_PAIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct proto_pairs proto_pairs_t;

//  An empty map of values of value_size bytes, at most max pairs.
proto_pairs_t *proto_pairs_new(size_t value_size, size_t max);

//  The value of (a, b), or NULL. Valid until the next set.
void *proto_pairs_get(const proto_pairs_t *self, const char *a, const char *b);

//  The value of (a, b), made (zeroed) if new; NULL when new and the map is
//  full. *created tells which (may be NULL). Valid until the next call.
void *proto_pairs_put(proto_pairs_t *self, const char *a, const char *b, bool *created);

//  Pairs kept, and puts refused because of the bound.
size_t proto_pairs_size(const proto_pairs_t *self);
uint64_t proto_pairs_refused(const proto_pairs_t *self);

void proto_pairs_destroy(proto_pairs_t **self_p);

#endif
