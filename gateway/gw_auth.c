/*  gw_auth - the credentials of one route (see gw_auth.h).

    Users are kept sorted by name (bytes, then length) and found by binary
    search; bearer digests are kept raw and sorted. The basic caches are
    chained hash tables with an LRU list each, allocated on the first
    insert, their entries allocated as needed and reused once the bound is
    reached (an object that never sees a basic request costs no cache
    memory). A cache key is the SHA-256 of a per-object random salt and the
    header value: the salt keeps a client from choosing values that share a
    bucket, and the stored key tells nothing reusable about a password.
    crypt_r's 32 KiB of state is allocated for each call: its cost is noise
    next to the hash itself, and idle objects hold none.
*/
#include <assert.h>
#include <crypt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gw_auth.h"
#include "proto_list.h"
#include "proto_util.h"

#define S_DIGEST      32  // bytes of a SHA-256
#define S_SALT        16  // bytes of the cache keys' salt
#define S_BUCKETS     256 // per cache (a power of two): chains of 4 when full
#define S_DECODED_MAX (GW_AUTH_HEADER_MAX / 4 * 3)

typedef struct {
    char *name;      // user name (NUL-terminated, no ':')
    size_t name_len; // its length
    char *hash;      // crypt(3) hash
    size_t hash_len; // its length
} s_user_t;

typedef struct s_entry {
    uint8_t key[S_DIGEST]; // salted SHA-256 of the header value
    double expires;        // answer valid until (the caller's clock)
    size_t user;           // positive cache: index in users
    struct s_entry *hnext; // hash chain
    proto_link_t lru;      // in the LRU list, most recent first
} s_entry_t;

typedef struct {
    s_entry_t **buckets; // S_BUCKETS chains, NULL until the first insert
    proto_list_t lru;    // entries, most recently used first
} s_cache_t;

struct gw_auth {
    gw_auth_type_t type;          // basic or bearer
    s_user_t *users;              // basic: sorted by name
    uint8_t (*digests)[S_DIGEST]; // bearer: raw digests, sorted
    size_t count;                 // users or digests
    size_t dummy;                 // the user whose hash an unknown user is checked against
    EVP_MD *md;                   // SHA-256, fetched once
    EVP_MD_CTX *ctx;              // reused for every digest
    uint8_t salt[S_SALT];         // of the cache keys
    s_cache_t good;               // basic values that were right
    s_cache_t wrong;              // ... and wrong
    gw_auth_stats_t stats;        // counters
};

// --------------------------------------------------------------------------
// Helpers

static int
s_user_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int
s_user_sort(const void *x, const void *y)
{
    const s_user_t *a = x, *b = y;
    return s_user_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int
s_digest_sort(const void *x, const void *y)
{
    return memcmp(x, y, S_DIGEST);
}

static bool
s_no_controls(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

//  SHA-256 of salt (salt_len bytes, may be 0) then data. Returns 0 or -1.
static int
s_sha256(gw_auth_t *self,
         const void *salt,
         size_t salt_len,
         const void *data,
         size_t len,
         uint8_t out[S_DIGEST])
{
    unsigned int n = 0;
    if (EVP_DigestInit_ex2(self->ctx, self->md, NULL) != 1
        || (salt_len > 0 && EVP_DigestUpdate(self->ctx, salt, salt_len) != 1)
        || EVP_DigestUpdate(self->ctx, data, len) != 1
        || EVP_DigestFinal_ex(self->ctx, out, &n) != 1 || n != S_DIGEST)
        return -1;
    return 0;
}

static bool
s_space(char c)
{
    return c == ' ' || c == '\t';
}

// --------------------------------------------------------------------------
// Base64 (RFC 4648 §4), strict

static int
s_b64(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

//  Decode len bytes of base64 (padded or not; nothing but the alphabet, the
//  padding only at the end, the unused bits of the last character zero)
//  into out (at least len / 4 * 3 + 2 bytes). Returns the decoded length, or
//  -2 if malformed.
static long
s_b64_decode(const char *in, size_t len, uint8_t *out)
{
    size_t pad = 0;
    while (pad < 2 && len > pad && in[len - 1 - pad] == '=')
        pad++;
    if (pad > 0 && len % 4 != 0)
        return -2;
    len -= pad;
    if (len % 4 == 1)
        return -2;
    size_t n = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64((unsigned char) in[i]);
        if (v < 0)
            return -2;
        acc = acc << 6 | (uint32_t) v;
        if (i % 4 == 3) {
            out[n++] = (uint8_t) (acc >> 16);
            out[n++] = (uint8_t) (acc >> 8);
            out[n++] = (uint8_t) acc;
            acc = 0;
        }
    }
    switch (len % 4) {
        case 2: // 12 bits: one byte, four zero bits
            if (acc & 0xf)
                return -2;
            out[n++] = (uint8_t) (acc >> 4);
            break;
        case 3: // 18 bits: two bytes, two zero bits
            if (acc & 0x3)
                return -2;
            out[n++] = (uint8_t) (acc >> 10);
            out[n++] = (uint8_t) (acc >> 2);
            break;
        default:
            break;
    }
    return (long) n;
}

// --------------------------------------------------------------------------
// Caches

static size_t
s_bucket(const uint8_t key[S_DIGEST])
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t) (h & (S_BUCKETS - 1));
}

#define S_ENTRY(link) PROTO_LIST_ENTRY(link, s_entry_t, lru)

static void
s_cache_unlink(s_cache_t *c, s_entry_t *e)
{
    s_entry_t **pp = &c->buckets[s_bucket(e->key)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    e->hnext = NULL;
    proto_list_unlink(&c->lru, &e->lru);
}

//  The live entry for key, moved first in the LRU list, or NULL (an expired
//  one is dropped on the way).
static s_entry_t *
s_cache_get(s_cache_t *c, const uint8_t key[S_DIGEST], double now)
{
    if (c->buckets == NULL)
        return NULL;
    for (s_entry_t *e = c->buckets[s_bucket(key)]; e; e = e->hnext) {
        if (CRYPTO_memcmp(e->key, key, S_DIGEST) != 0)
            continue;
        if (now >= e->expires) {
            s_cache_unlink(c, e);
            free(e);
            return NULL;
        }
        proto_list_to_front(&c->lru, &e->lru);
        return e;
    }
    return NULL;
}

//  Insert key (not in the cache): the least recently used entry is reused
//  when the cache is full.
static void
s_cache_put(s_cache_t *c, const uint8_t key[S_DIGEST], double expires, size_t user)
{
    if (c->buckets == NULL)
        c->buckets = proto_xcalloc(S_BUCKETS, sizeof *c->buckets);
    s_entry_t *e;
    if (c->lru.count >= GW_AUTH_CACHE_MAX) {
        e = S_ENTRY(c->lru.tail);
        s_cache_unlink(c, e);
    } else {
        e = proto_xcalloc(1, sizeof *e);
    }
    memcpy(e->key, key, S_DIGEST);
    e->expires = expires;
    e->user = user;
    size_t b = s_bucket(key);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    proto_list_push_front(&c->lru, &e->lru);
}

static void
s_cache_free(s_cache_t *c)
{
    while (c->lru.head) {
        s_entry_t *e = S_ENTRY(c->lru.head);
        proto_list_unlink(&c->lru, &e->lru);
        free(e);
    }
    free(c->buckets);
    c->buckets = NULL;
}

// --------------------------------------------------------------------------
// Construction

static gw_auth_t *
s_new(gw_auth_type_t type)
{
    gw_auth_t *self = proto_xcalloc(1, sizeof *self);
    self->type = type;
    self->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    self->ctx = EVP_MD_CTX_new();
    if (self->md == NULL || self->ctx == NULL || RAND_bytes(self->salt, S_SALT) != 1)
        gw_auth_destroy(&self);
    return self;
}

gw_auth_t *
gw_auth_new_basic(const char *const *users, const char *const *hashes, size_t count)
{
    if (count == 0 || count > GW_AUTH_ENTRIES_MAX || users == NULL || hashes == NULL)
        return NULL;
    gw_auth_t *self = s_new(GW_AUTH_BASIC);
    if (self == NULL)
        return NULL;
    self->users = proto_xcalloc(count, sizeof *self->users);
    for (size_t i = 0; i < count; i++) {
        const char *name = users[i], *hash = hashes[i];
        if (name == NULL || hash == NULL)
            goto fail;
        size_t nlen = strlen(name), hlen = strlen(hash);
        if (nlen == 0 || nlen > GW_AUTH_USER_MAX || memchr(name, ':', nlen)
            || !s_no_controls(name, nlen) || hlen == 0 || hlen > GW_AUTH_HASH_MAX
            || !s_no_controls(hash, hlen))
            goto fail;
        self->users[i] = (s_user_t){proto_xstrdup(name), nlen, proto_xstrdup(hash), hlen};
        self->count++;
    }
    // an unknown user is checked against the first user given (which the
    // sort below may move)
    const char *first = users[0];
    qsort(self->users, count, sizeof *self->users, s_user_sort);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && s_user_sort(&self->users[i - 1], &self->users[i]) == 0)
            goto fail;
        if (strcmp(self->users[i].name, first) == 0)
            self->dummy = i;
    }
    return self;
fail:
    gw_auth_destroy(&self);
    return NULL;
}

gw_auth_t *
gw_auth_new_bearer(const char *const *digests, size_t count)
{
    if (count == 0 || count > GW_AUTH_ENTRIES_MAX || digests == NULL)
        return NULL;
    gw_auth_t *self = s_new(GW_AUTH_BEARER);
    if (self == NULL)
        return NULL;
    self->digests = proto_xcalloc(count, sizeof *self->digests);
    self->count = count;
    for (size_t i = 0; i < count; i++) {
        const char *hex = digests[i];
        if (hex == NULL || strlen(hex) != 2 * S_DIGEST)
            goto fail;
        for (size_t k = 0; k < S_DIGEST; k++) {
            int hi = proto_hex_digit(hex[2 * k]), lo = proto_hex_digit(hex[2 * k + 1]);
            if (hi < 0 || lo < 0)
                goto fail;
            self->digests[i][k] = (uint8_t) (hi << 4 | lo);
        }
    }
    qsort(self->digests, count, sizeof *self->digests, s_digest_sort);
    return self;
fail:
    gw_auth_destroy(&self);
    return NULL;
}

void
gw_auth_destroy(gw_auth_t **self_p)
{
    assert(self_p);
    gw_auth_t *self = *self_p;
    if (self == NULL)
        return;
    s_cache_free(&self->wrong);
    s_cache_free(&self->good);
    if (self->users) {
        for (size_t i = 0; i < self->count; i++) {
            free(self->users[i].name);
            self->users[i].name = NULL;
            // hashes are not secrets, but no reason to leave them around
            if (self->users[i].hash)
                OPENSSL_cleanse(self->users[i].hash, self->users[i].hash_len);
            free(self->users[i].hash);
            self->users[i].hash = NULL;
        }
    }
    free(self->users);
    self->users = NULL;
    free(self->digests);
    self->digests = NULL;
    EVP_MD_CTX_free(self->ctx);
    self->ctx = NULL;
    EVP_MD_free(self->md);
    self->md = NULL;
    OPENSSL_cleanse(self->salt, sizeof self->salt);
    free(self);
    *self_p = NULL;
}

gw_auth_type_t
gw_auth_type(const gw_auth_t *self)
{
    assert(self);
    return self->type;
}

const gw_auth_stats_t *
gw_auth_stats(const gw_auth_t *self)
{
    assert(self);
    return &self->stats;
}

// --------------------------------------------------------------------------
// Checks

//  The index of the user named (name, len), or -1.
static long
s_find_user(const gw_auth_t *self, const char *name, size_t len)
{
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = s_user_cmp(name, len, self->users[mid].name, self->users[mid].name_len);
        if (c == 0)
            return (long) mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

//  True if password (NUL-terminated) hashes to hash under crypt_r.
static bool
s_crypt_ok(gw_auth_t *self, const char *password, const s_user_t *u)
{
    self->stats.crypts++;
    struct crypt_data *cd = proto_xcalloc(1, sizeof *cd);
    const char *out = crypt_r(password, u->hash, cd);
    // a hash crypt cannot use gives NULL or a failure token starting with '*'
    bool ok = out != NULL && out[0] != '*' && strlen(out) == u->hash_len
              && CRYPTO_memcmp(out, u->hash, u->hash_len) == 0;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return ok;
}

static gw_auth_result_t
s_check_basic(gw_auth_t *self,
              const char *value,
              size_t value_len,
              const char *creds,
              size_t len,
              double now,
              const char **user)
{
    uint8_t key[S_DIGEST];
    if (s_sha256(self, self->salt, S_SALT, value, value_len, key) != 0)
        return GW_AUTH_BAD;
    s_entry_t *e = s_cache_get(&self->good, key, now);
    if (e) {
        self->stats.hits++;
        *user = self->users[e->user].name;
        return GW_AUTH_OK;
    }
    if (s_cache_get(&self->wrong, key, now)) {
        self->stats.hits++;
        return GW_AUTH_BAD;
    }
    // "user:password", then a NUL for crypt
    uint8_t decoded[S_DECODED_MAX + 3];
    long n = s_b64_decode(creds, len, decoded);
    if (n <= 0)
        return GW_AUTH_BAD;
    const uint8_t *colon = memchr(decoded, ':', (size_t) n);
    if (colon == NULL)
        return GW_AUTH_BAD;
    size_t name_len = (size_t) (colon - decoded);
    const char *password = (const char *) colon + 1;
    size_t password_len = (size_t) n - name_len - 1;
    gw_auth_result_t result = GW_AUTH_BAD;
    if (memchr(password, '\0', password_len) != NULL)
        goto done; // crypt stops at a NUL: such a password is never right
    decoded[n] = '\0';
    long u = s_find_user(self, (const char *) decoded, name_len);
    if (u < 0) {
        // as long as a known user's check, so that timing does not tell
        (void) s_crypt_ok(self, password, &self->users[self->dummy]);
    } else if (s_crypt_ok(self, password, &self->users[u])) {
        s_cache_put(&self->good, key, now + GW_AUTH_CACHE_TTL_S, (size_t) u);
        *user = self->users[u].name;
        result = GW_AUTH_OK;
    }
    if (result != GW_AUTH_OK)
        s_cache_put(&self->wrong, key, now + GW_AUTH_CACHE_TTL_S, 0);
done:
    OPENSSL_cleanse(decoded, sizeof decoded);
    return result;
}

static gw_auth_result_t
s_check_bearer(gw_auth_t *self, const char *token, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) token[i] <= 0x20 || (unsigned char) token[i] >= 0x7f)
            return GW_AUTH_BAD;
    uint8_t d[S_DIGEST];
    if (s_sha256(self, NULL, 0, token, len, d) != 0)
        return GW_AUTH_BAD;
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(d, self->digests[mid], S_DIGEST) <= 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    // lo is the first digest >= d: equal or not, decided in constant time
    if (lo < self->count && CRYPTO_memcmp(d, self->digests[lo], S_DIGEST) == 0)
        return GW_AUTH_OK;
    return GW_AUTH_BAD;
}

gw_auth_result_t
gw_auth_check(gw_auth_t *self, const char *authorization, size_t len, double now, const char **user)
{
    assert(self);
    const char *ignored;
    if (user == NULL)
        user = &ignored;
    *user = NULL;
    self->stats.checks++;
    gw_auth_result_t result = GW_AUTH_MISSING;
    if (authorization == NULL || len == 0)
        goto done;
    if (len > GW_AUTH_HEADER_MAX) {
        result = GW_AUTH_BAD;
        goto done;
    }
    const char *p = authorization, *end = authorization + len;
    while (p < end && s_space(*p))
        p++;
    while (end > p && s_space(end[-1]))
        end--;
    const char *scheme = p;
    while (p < end && !s_space(*p))
        p++;
    size_t scheme_len = (size_t) (p - scheme);
    const char *want = self->type == GW_AUTH_BASIC ? "Basic" : "Bearer";
    if (scheme_len == 0 || scheme_len != strlen(want) || strncasecmp(scheme, want, scheme_len) != 0)
        goto done; // another scheme: not credentials for this route
    while (p < end && s_space(*p))
        p++;
    result = GW_AUTH_BAD;
    if (p == end)
        goto done; // the scheme without credentials
    if (self->type == GW_AUTH_BASIC)
        result = s_check_basic(self, authorization, len, p, (size_t) (end - p), now, user);
    else
        result = s_check_bearer(self, p, (size_t) (end - p));
done:
    switch (result) {
        case GW_AUTH_OK:
            self->stats.ok++;
            break;
        case GW_AUTH_MISSING:
            self->stats.missing++;
            break;
        case GW_AUTH_BAD:
            self->stats.bad++;
            break;
    }
    self->stats.entries = self->good.lru.count;
    self->stats.negative = self->wrong.lru.count;
    return result;
}

// --------------------------------------------------------------------------
// Challenge

size_t
gw_auth_challenge(const gw_auth_t *self, const char *realm, char *out, size_t cap)
{
    assert(self);
    bool basic = self->type == GW_AUTH_BASIC;
    if (realm == NULL || realm[0] == '\0')
        realm = basic ? "restricted" : NULL;
    char text[GW_AUTH_CHALLENGE_MAX];
    size_t n = 0;
    const char *head = basic ? "Basic realm=\"" : realm ? "Bearer realm=\"" : "Bearer";
    size_t head_len = strlen(head);
    memcpy(text, head, head_len);
    n = head_len;
    if (realm) {
        // cut at the bound, and then at the start of the character cut through
        size_t len = strnlen(realm, GW_AUTH_REALM_MAX + 1);
        if (len > GW_AUTH_REALM_MAX) {
            len = GW_AUTH_REALM_MAX;
            while (len > 0 && ((unsigned char) realm[len] & 0xc0) == 0x80)
                len--;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char) realm[i];
            if (c < 0x20 || c == 0x7f)
                continue;
            if (c == '"' || c == '\\')
                text[n++] = '\\';
            text[n++] = (char) c;
        }
        static const char basic_tail[] = "\", charset=\"UTF-8\"";
        const char *tail = basic ? basic_tail : "\"";
        size_t tail_len = strlen(tail);
        memcpy(text + n, tail, tail_len);
        n += tail_len;
    }
    if (n + 1 > cap)
        return 0;
    memcpy(out, text, n);
    out[n] = '\0';
    return n;
}
