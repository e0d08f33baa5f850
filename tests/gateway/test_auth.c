/*  test_auth - unit tests for gw_auth, a route's basic users and bearer
    tokens.

    How the gateway uses it, in short: one gw_auth_new_basic() or
    gw_auth_new_bearer() per route `auth` (a change of the route makes a new
    one), gw_auth_check() with each request's Authorization value and
    ev_now(), a 401 with gw_auth_challenge() on MISSING or BAD.

    Hashes are made here with libcrypt itself (crypt_gensalt_rn, crypt_r):
    $6$ (SHA-512) and $y$ (yescrypt) with the default costs, and a cheap $5$
    (1000 rounds) where a test needs many crypts. The timings the tests
    print (and bound loosely) are of this sanitizer build.
*/
#include <crypt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "gw_auth.h"

#define T_NOW 1000.0 // the clock the checks are given (seconds)

//  A crypt(3) hash of password with a fresh salt of prefix ("$6$", "$y$"...)
//  at cost count (0: default). Caller frees.
static char *
s_hash(const char *prefix, unsigned long count, const char *password)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof salt));
    struct crypt_data *cd = calloc(1, sizeof *cd);
    assert_non_null(cd);
    const char *out = crypt_r(password, salt, cd);
    assert_non_null(out);
    assert_true(out[0] == '$');
    char *hash = strdup(out);
    free(cd);
    return hash;
}

//  "Basic " + base64(text). Caller frees.
static char *
s_basic(const char *text)
{
    size_t len = strlen(text);
    char *out = calloc(1, 6 + (len + 2) / 3 * 4 + 1);
    assert_non_null(out);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *) out + 6, (const unsigned char *) text, (int) len);
    return out;
}

//  The lower-case hex SHA-256 of token into hex (65 bytes).
static void
s_sha_hex(const char *token, char hex[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(token, strlen(token), d, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static double
s_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static gw_auth_result_t
s_check(gw_auth_t *a, const char *value, double now, const char **user)
{
    return gw_auth_check(a, value, value ? strlen(value) : 0, now, user);
}

// --------------------------------------------------------------------------
// Basic

typedef struct {
    char *hashes[3]; // alice $6$, bob $y$, carol $5$ (cheap)
    gw_auth_t *auth; // the three users
} basic_t;

static int
s_basic_setup(void **state)
{
    basic_t *b = calloc(1, sizeof *b);
    b->hashes[0] = s_hash("$6$", 0, "wonderland");
    b->hashes[1] = s_hash("$y$", 0, "builder:with colons");
    b->hashes[2] = s_hash("$5$", 1000, "");
    const char *users[] = {"alice", "bob", "carol"};
    b->auth = gw_auth_new_basic(users, (const char *const *) b->hashes, 3);
    assert_non_null(b->auth);
    assert_int_equal(gw_auth_type(b->auth), GW_AUTH_BASIC);
    *state = b;
    return 0;
}

static int
s_basic_teardown(void **state)
{
    basic_t *b = *state;
    gw_auth_destroy(&b->auth);
    gw_auth_destroy(&b->auth); // twice is fine
    for (int i = 0; i < 3; i++)
        free(b->hashes[i]);
    free(b);
    return 0;
}

static void
test_basic_right_password(void **state)
{
    basic_t *b = *state;
    const char *user = "unset";
    char *v = s_basic("alice:wonderland");
    assert_int_equal(s_check(b->auth, v, T_NOW, &user), GW_AUTH_OK);
    assert_string_equal(user, "alice");
    free(v);
    // yescrypt; the password holds colons (the user ends at the first)
    v = s_basic("bob:builder:with colons");
    assert_int_equal(s_check(b->auth, v, T_NOW, &user), GW_AUTH_OK);
    assert_string_equal(user, "bob");
    free(v);
    // an empty password, and the scheme in another case, spaces around
    assert_int_equal(s_check(b->auth, "  bAsIc   Y2Fyb2w6 \t", T_NOW, &user), GW_AUTH_OK);
    assert_string_equal(user, "carol");
    // unpadded base64 is the same credentials
    assert_int_equal(s_check(b->auth, "Basic Y2Fyb2w6", T_NOW, NULL), GW_AUTH_OK);
    const gw_auth_stats_t *st = gw_auth_stats(b->auth);
    assert_int_equal(st->ok, 4);
    assert_int_equal(st->checks, 4);
}

static void
test_basic_wrong(void **state)
{
    basic_t *b = *state;
    const char *user = "unset";
    const char *values[] = {
        "alice:Wonderland",   // wrong password
        "alice:wonderland ",  // ... one byte more
        "alice:",             // ... empty
        "mallory:wonderland", // unknown user
        "Alice:wonderland",   // names are case-sensitive
        ":wonderland",        // empty user
        "bob:builder",        // the password cut at its colon
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *v = s_basic(values[i]);
        assert_int_equal(s_check(b->auth, v, T_NOW, &user), GW_AUTH_BAD);
        assert_null(user);
        free(v);
    }
    // a NUL in the password: never right (crypt would stop at it)
    assert_int_equal(s_check(b->auth, "Basic YWxpY2U6d29uZGVybGFuZAB4", T_NOW, NULL), GW_AUTH_BAD);
}

static void
test_basic_malformed(void **state)
{
    basic_t *b = *state;
    const char *values[] = {
        "Basic YWxpY2U6d29uZGVybGFuZA=",   // bad padding
        "Basic YWxpY2U6d29uZGVybGFuZA===", // ...
        "Basic YWxp=Y2U6d29uZGVybGFuZA==", // padding inside
        "Basic YWxpY2U6d29uZGVybGFuZB==",  // stray bits in the last character
        "Basic YWxpY2U6d29uZGVybGFuZ",     // a length of 4n+1
        "Basic YWxpY2U6 d29uZGVybGFuZA==", // a space inside
        "Basic YWxpY2U6d29uZGVybGFuZA==!", // not the alphabet
        "Basic YWxpY2U6d29u-GVybGFuZA==",  // the URL alphabet is not base64's
        "Basic YWxpY2Ugd29uZGVybGFuZA==",  // "alice wonderland": no colon
        "Basic ",                          // the scheme alone
        "Basic",                           // ...
        "Basic =",                         // padding only
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        assert_int_equal(s_check(b->auth, values[i], T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(gw_auth_stats(b->auth)->crypts, 0); // none got that far
}

static void
test_basic_missing(void **state)
{
    basic_t *b = *state;
    const char *user = "unset";
    assert_int_equal(gw_auth_check(b->auth, NULL, 0, T_NOW, &user), GW_AUTH_MISSING);
    assert_null(user);
    assert_int_equal(s_check(b->auth, "", T_NOW, NULL), GW_AUTH_MISSING);
    assert_int_equal(s_check(b->auth, "   \t ", T_NOW, NULL), GW_AUTH_MISSING);
    // another scheme
    assert_int_equal(s_check(b->auth, "Bearer abc", T_NOW, NULL), GW_AUTH_MISSING);
    assert_int_equal(s_check(b->auth, "Digest username=\"alice\"", T_NOW, NULL), GW_AUTH_MISSING);
    assert_int_equal(s_check(b->auth, "Basically YWxpY2U6d29uZGVybGFuZA==", T_NOW, NULL),
                     GW_AUTH_MISSING);
    assert_int_equal(s_check(b->auth, "YWxpY2U6d29uZGVybGFuZA==", T_NOW, NULL), GW_AUTH_MISSING);
    assert_int_equal(gw_auth_stats(b->auth)->missing, 7);
}

static void
test_basic_oversized(void **state)
{
    basic_t *b = *state;
    // a right value padded with spaces to the bound is fine; one byte more is not
    char *right = s_basic("alice:wonderland");
    char *v = malloc(GW_AUTH_HEADER_MAX + 2);
    memset(v, ' ', GW_AUTH_HEADER_MAX + 1);
    memcpy(v, right, strlen(right));
    assert_int_equal(gw_auth_check(b->auth, v, GW_AUTH_HEADER_MAX, T_NOW, NULL), GW_AUTH_OK);
    assert_int_equal(gw_auth_check(b->auth, v, GW_AUTH_HEADER_MAX + 1, T_NOW, NULL), GW_AUTH_BAD);
    // base64 of the largest size: decoded, found wrong
    memcpy(v, "Basic ", 6);
    memset(v + 6, 'Q', GW_AUTH_HEADER_MAX - 6);
    assert_int_equal(gw_auth_check(b->auth, v, GW_AUTH_HEADER_MAX, T_NOW, NULL), GW_AUTH_BAD);
    free(v);
    free(right);
}

static void
test_basic_cache(void **state)
{
    basic_t *b = *state;
    const gw_auth_stats_t *st = gw_auth_stats(b->auth);
    const char *user = NULL;
    char *right = s_basic("alice:wonderland");
    char *wrong = s_basic("alice:wonderlanD");
    double t0 = s_clock();
    assert_int_equal(s_check(b->auth, right, T_NOW, &user), GW_AUTH_OK);
    double crypt_s = s_clock() - t0;
    assert_int_equal(st->crypts, 1);
    assert_int_equal(st->entries, 1);
    // hits: no crypt, much faster
    enum { N = 2000 };
    t0 = s_clock();
    for (int i = 0; i < N; i++) {
        user = NULL;
        assert_int_equal(s_check(b->auth, right, T_NOW + 30, &user), GW_AUTH_OK);
        assert_string_equal(user, "alice");
    }
    double hit_s = (s_clock() - t0) / N;
    assert_int_equal(st->crypts, 1);
    assert_int_equal(st->hits, N);
    print_message("  basic $6$: first check %.0f us (crypt), cached check %.2f us (ASan build)\n",
                  crypt_s * 1e6, hit_s * 1e6);
    assert_true(hit_s < crypt_s / 10);
    // a wrong password after a right one: still wrong, and the right stays right
    assert_int_equal(s_check(b->auth, wrong, T_NOW + 30, &user), GW_AUTH_BAD);
    assert_null(user);
    assert_int_equal(st->crypts, 2);
    assert_int_equal(s_check(b->auth, right, T_NOW + 30, &user), GW_AUTH_OK);
    // the wrong one repeated is answered by the negative cache
    assert_int_equal(s_check(b->auth, wrong, T_NOW + 31, &user), GW_AUTH_BAD);
    assert_int_equal(st->crypts, 2);
    assert_int_equal(st->negative, 1);
    // an unknown user costs a crypt, then is cached as wrong as well
    char *unknown = s_basic("mallory:x");
    assert_int_equal(s_check(b->auth, unknown, T_NOW + 31, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(b->auth, unknown, T_NOW + 31, NULL), GW_AUTH_BAD);
    assert_int_equal(st->crypts, 3);
    // past GW_AUTH_CACHE_TTL_S the hash is checked again
    assert_int_equal(s_check(b->auth, right, T_NOW + GW_AUTH_CACHE_TTL_S, &user), GW_AUTH_OK);
    assert_int_equal(st->crypts, 4);
    assert_int_equal(s_check(b->auth, wrong, T_NOW + 31 + GW_AUTH_CACHE_TTL_S, &user), GW_AUTH_BAD);
    assert_int_equal(st->crypts, 5);
    free(unknown);
    free(wrong);
    free(right);
}

static void
test_basic_cache_bound(void **state)
{
    basic_t *b = *state;
    const gw_auth_stats_t *st = gw_auth_stats(b->auth);
    // distinct values with carol's right credentials: spaces after the scheme
    // make each a key of its own ($5$ at 1000 rounds keeps this quick)
    enum { N = GW_AUTH_CACHE_MAX + 1 };
    char v[N + 32];
    for (int i = 0; i < N; i++) {
        memcpy(v, "Basic", 5);
        memset(v + 5, ' ', (size_t) i + 1);
        memcpy(v + 5 + i + 1, "Y2Fyb2w6", 9);
        assert_int_equal(s_check(b->auth, v, T_NOW, NULL), GW_AUTH_OK);
    }
    assert_int_equal(st->crypts, N);
    assert_int_equal(st->entries, GW_AUTH_CACHE_MAX);
    // the newest is cached; the oldest was dropped
    assert_int_equal(s_check(b->auth, v, T_NOW, NULL), GW_AUTH_OK);
    assert_int_equal(st->crypts, N);
    assert_int_equal(s_check(b->auth, "Basic Y2Fyb2w6", T_NOW, NULL), GW_AUTH_OK);
    assert_int_equal(st->crypts, N + 1);
    assert_int_equal(st->entries, GW_AUTH_CACHE_MAX);
}

static void
test_basic_config(void **state)
{
    (void) state;
    const char *hash = "$5$rounds=1000$abcdefgh$ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq";
    const char *hashes[] = {hash, hash, hash};
    const char *ok[] = {"a", "b", "c"};
    gw_auth_t *a = gw_auth_new_basic(ok, hashes, 3);
    assert_non_null(a);
    gw_auth_destroy(&a);
    assert_null(a);
    assert_null(gw_auth_new_basic(ok, hashes, 0));
    const char *dup[] = {"a", "b", "a"};
    assert_null(gw_auth_new_basic(dup, hashes, 3));
    const char *colon[] = {"a:b"};
    assert_null(gw_auth_new_basic(colon, hashes, 1));
    const char *empty[] = {""};
    assert_null(gw_auth_new_basic(empty, hashes, 1));
    const char *ctl[] = {"a\tb"};
    assert_null(gw_auth_new_basic(ctl, hashes, 1));
    char name[GW_AUTH_USER_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    const char *longname[] = {name};
    assert_null(gw_auth_new_basic(longname, hashes, 1));
    name[GW_AUTH_USER_MAX] = '\0';
    a = gw_auth_new_basic(longname, hashes, 1);
    assert_non_null(a);
    gw_auth_destroy(&a);
    const char *nohash[] = {""};
    assert_null(gw_auth_new_basic(ok, nohash, 1));
    // a hash libcrypt cannot use: every password is wrong, nothing breaks
    const char *junk[] = {"$zz$nonsense"};
    a = gw_auth_new_basic(ok, junk, 1);
    assert_non_null(a);
    char *v = s_basic("a:anything");
    assert_int_equal(s_check(a, v, T_NOW, NULL), GW_AUTH_BAD);
    free(v);
    gw_auth_destroy(&a);
}

static void
test_challenge(void **state)
{
    basic_t *b = *state;
    char out[GW_AUTH_CHALLENGE_MAX];
    assert_int_equal(gw_auth_challenge(b->auth, "api.example.com", out, sizeof out), 46);
    assert_string_equal(out, "Basic realm=\"api.example.com\", charset=\"UTF-8\"");
    gw_auth_challenge(b->auth, NULL, out, sizeof out);
    assert_string_equal(out, "Basic realm=\"restricted\", charset=\"UTF-8\"");
    gw_auth_challenge(b->auth, "a \"b\" \\c\r\n", out, sizeof out);
    assert_string_equal(out, "Basic realm=\"a \\\"b\\\" \\\\c\", charset=\"UTF-8\"");
    // too small: nothing
    assert_int_equal(gw_auth_challenge(b->auth, "api.example.com", out, 46), 0);
    // a long realm of two-byte characters is cut at a character
    char realm[2 * GW_AUTH_REALM_MAX + 1];
    realm[0] = 'x'; // one byte off: the bound falls inside a character
    for (int i = 0; i < GW_AUTH_REALM_MAX - 1; i++)
        memcpy(realm + 1 + 2 * i, "\xc3\xa9", 2);
    realm[2 * GW_AUTH_REALM_MAX - 1] = '\0';
    size_t n = gw_auth_challenge(b->auth, realm, out, sizeof out);
    assert_int_equal(n, 13 + GW_AUTH_REALM_MAX - 1 + 18);
    const char *q = strstr(out, "\", charset");
    assert_non_null(q);
    assert_int_equal((unsigned char) q[-1], 0xa9);
    // worst case: every byte escaped
    memset(realm, '"', sizeof realm - 1);
    realm[sizeof realm - 1] = '\0';
    assert_int_equal(gw_auth_challenge(b->auth, realm, out, sizeof out),
                     13 + 2 * GW_AUTH_REALM_MAX + 18);
    char hex[65];
    s_sha_hex("t", hex);
    const char *digests[] = {hex};
    gw_auth_t *bearer = gw_auth_new_bearer(digests, 1);
    gw_auth_challenge(bearer, NULL, out, sizeof out);
    assert_string_equal(out, "Bearer");
    gw_auth_challenge(bearer, "api", out, sizeof out);
    assert_string_equal(out, "Bearer realm=\"api\"");
    gw_auth_destroy(&bearer);
}

// --------------------------------------------------------------------------
// Bearer

static void
test_bearer(void **state)
{
    (void) state;
    char hex[3][65];
    s_sha_hex("s3cr3t-token", hex[0]);
    s_sha_hex("another.token_with~chars/+=", hex[1]);
    s_sha_hex("third", hex[2]);
    // the config may give upper-case digits
    for (char *p = hex[2]; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char) (*p - 'a' + 'A');
    const char *digests[] = {hex[0], hex[1], hex[2], hex[0]};
    gw_auth_t *a = gw_auth_new_bearer(digests, 4);
    assert_non_null(a);
    assert_int_equal(gw_auth_type(a), GW_AUTH_BEARER);
    const char *user = "unset";
    assert_int_equal(s_check(a, "Bearer s3cr3t-token", T_NOW, &user), GW_AUTH_OK);
    assert_null(user);
    assert_int_equal(s_check(a, "bearer  another.token_with~chars/+= ", T_NOW, NULL), GW_AUTH_OK);
    assert_int_equal(s_check(a, "BEARER third", T_NOW, NULL), GW_AUTH_OK);
    assert_int_equal(s_check(a, "Bearer THIRD", T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(a, "Bearer s3cr3t-token2", T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(a, "Bearer s3cr3t token", T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(a, "Bearer s3cr3t\x01token", T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(a, "Bearer \xc3\xa9", T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(a, "Bearer", T_NOW, NULL), GW_AUTH_BAD);
    // the digest itself is not the token
    char v[80];
    snprintf(v, sizeof v, "Bearer %s", hex[0]);
    assert_int_equal(s_check(a, v, T_NOW, NULL), GW_AUTH_BAD);
    assert_int_equal(s_check(a, "Basic czNjcjN0LXRva2Vu", T_NOW, NULL), GW_AUTH_MISSING);
    assert_int_equal(s_check(a, "", T_NOW, NULL), GW_AUTH_MISSING);
    // timing: SHA-256 and a binary search among 1000 digests
    gw_auth_destroy(&a);
    static char many[GW_AUTH_ENTRIES_MAX][65];
    const char *list[GW_AUTH_ENTRIES_MAX];
    for (int i = 0; i < GW_AUTH_ENTRIES_MAX; i++) {
        char token[32];
        snprintf(token, sizeof token, "token-%d", i);
        s_sha_hex(token, many[i]);
        list[i] = many[i];
    }
    a = gw_auth_new_bearer(list, GW_AUTH_ENTRIES_MAX);
    assert_non_null(a);
    enum { N = 20000 };
    double t0 = s_clock();
    for (int i = 0; i < N; i++) {
        char tv[48];
        int n = snprintf(tv, sizeof tv, "Bearer token-%d", i % 1200);
        gw_auth_result_t r = gw_auth_check(a, tv, (size_t) n, T_NOW, NULL);
        assert_int_equal(r, i % 1200 < GW_AUTH_ENTRIES_MAX ? GW_AUTH_OK : GW_AUTH_BAD);
    }
    double per = (s_clock() - t0) / N;
    print_message("  bearer: %.2f us per check among %d digests (ASan build)\n", per * 1e6,
                  GW_AUTH_ENTRIES_MAX);
    assert_true(per < 50e-6);
    gw_auth_destroy(&a);
}

static void
test_bearer_config(void **state)
{
    (void) state;
    char hex[65];
    s_sha_hex("t", hex);
    const char *one[] = {hex};
    gw_auth_t *a = gw_auth_new_bearer(one, 1);
    assert_non_null(a);
    gw_auth_destroy(&a);
    assert_null(gw_auth_new_bearer(one, 0));
    assert_null(gw_auth_new_bearer(one, GW_AUTH_ENTRIES_MAX + 1));
    hex[63] = 'g';
    assert_null(gw_auth_new_bearer(one, 1));
    hex[63] = '\0';
    assert_null(gw_auth_new_bearer(one, 1));
    const char *null[] = {NULL};
    assert_null(gw_auth_new_bearer(null, 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic_right_password, s_basic_setup, s_basic_teardown),
        cmocka_unit_test_setup_teardown(test_basic_wrong, s_basic_setup, s_basic_teardown),
        cmocka_unit_test_setup_teardown(test_basic_malformed, s_basic_setup, s_basic_teardown),
        cmocka_unit_test_setup_teardown(test_basic_missing, s_basic_setup, s_basic_teardown),
        cmocka_unit_test_setup_teardown(test_basic_oversized, s_basic_setup, s_basic_teardown),
        cmocka_unit_test_setup_teardown(test_basic_cache, s_basic_setup, s_basic_teardown),
        cmocka_unit_test_setup_teardown(test_basic_cache_bound, s_basic_setup, s_basic_teardown),
        cmocka_unit_test(test_basic_config),
        cmocka_unit_test_setup_teardown(test_challenge, s_basic_setup, s_basic_teardown),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_bearer_config),
    };
    return cmocka_run_group_tests_name("gw_auth", tests, NULL, NULL);
}
