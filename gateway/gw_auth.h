/*  gw_auth - the credentials of one route (SPEC §4 `auth`): HTTP Basic users
    with crypt(3) hashes, or bearer tokens known by their SHA-256.

    A credentials object is built from a route's `auth` as apid validated it
    and answers, for a request's Authorization value: OK (with the user),
    MISSING (no credentials of the route's scheme: 401 with a challenge) or
    BAD (credentials of the scheme that are malformed or wrong: 401 too).
    Scheme names compare without regard to case; the value is at most
    GW_AUTH_HEADER_MAX bytes (longer: BAD, before any decoding).

    Basic: `Basic <base64(user:password)>`, decoded strictly (the base64
    alphabet only, padding only at the end and optional, no stray bits), the
    user found among the route's, the password checked with crypt_r against
    its hash. crypt is expensive by design (about 2 ms for $6$ and $2b$, 20 ms
    for $y$ at libxcrypt's default costs) and runs on the caller's thread,
    blocking it; so each object keeps two caches keyed by the salted SHA-256
    of the whole header value:
    - a positive one: a value that was right answers OK without crypt for
      GW_AUTH_CACHE_TTL_S, GW_AUTH_CACHE_MAX entries, least recently used
      dropped first;
    - a negative one, of the same size and life, for values that were
      wrong: a client repeating a wrong password costs one crypt, not one
      per request. It is separate so that a flood of distinct wrong values
      cannot push right ones out of the positive cache.
    Both are memos of a pure function of (value, users): the result for one
    value never changes while the object lives, so neither can turn a wrong
    value right or a right one wrong; a change of the route's users makes a
    new object, and the old caches go with the old object. An unknown user
    costs a crypt too (against the first user's hash, result ignored), so
    timing does not tell which users exist. Secrets are compared with
    CRYPTO_memcmp. What is left: a client sending new wrong passwords costs
    one crypt per request (the route's rateLimit, e.g. the `auth` tier, is
    the bound on that).

    Bearer: `Bearer <token>` (1..GW_AUTH_HEADER_MAX visible ASCII bytes),
    its SHA-256 looked up by binary search among the route's digests (raw
    32 bytes, sorted); the last comparison is constant-time. No cache: one
    digest costs less than the cache would. The search's timing can tell
    only where the token's digest falls among the stored digests, which the
    client computes itself from its own token: it learns nothing about
    another token.

    Not thread-safe (one object, one thread: the gateway's loop).
*/
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define GW_AUTH_ENTRIES_MAX   1000 // users or tokens of a route (apid's bound)
#define GW_AUTH_USER_MAX      64   // bytes of a user name
#define GW_AUTH_HASH_MAX      512  // bytes of a crypt(3) hash
#define GW_AUTH_HEADER_MAX    8192 // bytes of an Authorization value
#define GW_AUTH_CACHE_MAX     1024 // entries of each basic cache
#define GW_AUTH_CACHE_TTL_S   60.0 // life of a cached basic answer
#define GW_AUTH_REALM_MAX     256  // bytes of a realm written in a challenge
#define GW_AUTH_CHALLENGE_MAX 600  // bytes a challenge may need (realm escaped)

typedef enum {
    GW_AUTH_BASIC,  // users and crypt(3) hashes
    GW_AUTH_BEARER, // SHA-256 digests of tokens
} gw_auth_type_t;

typedef enum {
    GW_AUTH_OK,      // the credentials are right
    GW_AUTH_MISSING, // no value, an empty one, or another scheme: 401
    GW_AUTH_BAD,     // the route's scheme, but malformed or wrong: 401
} gw_auth_result_t;

//  Counters (for pong: register each with proto_bus_counter).
typedef struct {
    uint64_t checks;   // gw_auth_check calls
    uint64_t ok;       // ... answered OK
    uint64_t missing;  // ... answered MISSING
    uint64_t bad;      // ... answered BAD
    uint64_t hits;     // basic answers taken from a cache (either)
    uint64_t crypts;   // crypt_r calls (basic answers not cached)
    uint64_t entries;  // entries in the positive cache now
    uint64_t negative; // entries in the negative cache now
} gw_auth_stats_t;

typedef struct gw_auth gw_auth_t;

//  Basic credentials: count users (1..GW_AUTH_ENTRIES_MAX), users[i] with
//  hashes[i] (copied). Returns NULL if count is out of range, a name is not
//  1..GW_AUTH_USER_MAX bytes without ':' or control characters, two names
//  are equal, or a hash is empty, over GW_AUTH_HASH_MAX bytes or holds a
//  control character (a hash crypt cannot use answers BAD at check time).
gw_auth_t *gw_auth_new_basic(const char *const *users, const char *const *hashes, size_t count);

//  Bearer credentials: count (1..GW_AUTH_ENTRIES_MAX) SHA-256 digests of
//  tokens, 64 hex digits each, either case (copied). Duplicates are fine.
//  Returns NULL if count is out of range or a digest is not 64 hex digits.
gw_auth_t *gw_auth_new_bearer(const char *const *digests, size_t count);

//  Free the object and its caches. Sets *self_p to NULL; safe to call twice.
void gw_auth_destroy(gw_auth_t **self_p);

//  The scheme of the object.
gw_auth_type_t gw_auth_type(const gw_auth_t *self);

//  Check an Authorization value of len bytes (NULL or len 0: none) at time
//  now (seconds on any monotonic clock, e.g. ev_now: cached basic answers
//  expire by it). Leading and trailing spaces and tabs are ignored. On OK,
//  *user is the user name for basic (borrowed: lives as long as self) and
//  NULL for bearer; otherwise NULL. user may be NULL.
gw_auth_result_t gw_auth_check(
    gw_auth_t *self, const char *authorization, size_t len, double now, const char **user);

//  Write the WWW-Authenticate value of a 401 into out (cap bytes, NUL-
//  terminated): `Basic realm="<realm>", charset="UTF-8"` or, for bearer,
//  `Bearer realm="<realm>"` (`Bearer` when realm is NULL or empty). The
//  realm (basic: "restricted" when NULL or empty) is cut at
//  GW_AUTH_REALM_MAX bytes, its '"' and '\' escaped and its control bytes
//  dropped. Returns the length, or 0 if it does not fit in cap
//  (GW_AUTH_CHALLENGE_MAX always does).
size_t gw_auth_challenge(const gw_auth_t *self, const char *realm, char *out, size_t cap);

//  The counters above (borrowed, live as long as the object).
const gw_auth_stats_t *gw_auth_stats(const gw_auth_t *self);

#endif
