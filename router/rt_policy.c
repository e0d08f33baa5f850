/*  rt_policy - a route's edge policy for leases (see rt_policy.h).

    The checks repeat apid's bounds where a lease depends on them (a value
    the lease cannot carry would make every decide for the route fail); the
    finer rules (crypt(3) syntax, origin syntax) are apid's, at the API.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "proto_route.h"
#include "proto_util.h"
#include "rt_policy.h"
#include "rt_route.h"

//  Seed 004's tiers.
static const struct {
    const char *name;  // tier
    uint32_t requests; // per window
} s_tiers[] = {{"general", 100}, {"strict", 20}, {"auth", 5}};
#define S_TIER_WINDOW_S 900 // 15 minutes
#define S_TIER_BURST    10  // per second

static int
s_fail(rt_error_t *err, const char *field, const char *message)
{
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", message);
    return -1;
}

static bool
s_flag(const json_t *doc, const char *key)
{
    return json_is_true(json_object_get(doc, key));
}

//  An optional integer member of obj within [min, max]; absent: def.
static int
s_uint(const json_t *obj, const char *key, uint32_t min, uint32_t max, uint32_t def, uint32_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return 0;
    }
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    if (n < (json_int_t) min || n > (json_int_t) max)
        return -1;
    *out = (uint32_t) n;
    return 0;
}

static int
s_auth(rt_policy_t *self, const json_t *auth, rt_error_t *err)
{
    const char *type = json_string_value(json_object_get(auth, "type"));
    if (type && strcmp(type, "basic") == 0) {
        const json_t *users = json_object_get(auth, "users");
        size_t n = json_object_size(users);
        if (!json_is_object(users) || n == 0 || n > PROTO_LEASE_AUTH_USERS_MAX)
            return s_fail(err, "auth.users", "auth.users must hold 1 to 1000 users");
        self->users = proto_xcalloc(n, sizeof *self->users);
        const char *name;
        const json_t *hash;
        json_object_foreach((json_t *) users, name, hash)
        {
            const char *h = json_string_value(hash);
            if (strlen(name) > PROTO_LEASE_AUTH_USERS_ITEM_MAX || h == NULL || *h == '\0'
                || strlen(h) > PROTO_LEASE_AUTH_USERS_ITEM_MAX)
                return s_fail(err, "auth.users", "a user must map to a crypt(3) hash");
            self->users[self->users_count].key = name;
            self->users[self->users_count].value = h;
            self->users_count++;
        }
        self->auth = "basic";
    } else if (type && strcmp(type, "bearer") == 0) {
        const json_t *tokens = json_object_get(auth, "tokens");
        size_t n = json_array_size(tokens);
        if (!json_is_array(tokens) || n == 0 || n > PROTO_LEASE_AUTH_TOKENS_MAX)
            return s_fail(err, "auth.tokens", "auth.tokens must hold 1 to 1000 digests");
        self->tokens = proto_xcalloc(n, sizeof *self->tokens);
        for (size_t i = 0; i < n; i++) {
            const char *d = json_string_value(json_array_get(tokens, i));
            if (d == NULL || strlen(d) != 64)
                return s_fail(err, "auth.tokens", "a token must be given as its SHA-256 hex");
            self->tokens[self->tokens_count++].sha256 = d;
        }
        self->auth = "bearer";
    } else {
        return s_fail(err, "auth.type", "auth.type must be basic or bearer");
    }
    char *canon = json_dumps(auth, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *) canon, strlen(canon), md);
    free(canon);
    for (size_t i = 0; i < sizeof md; i++)
        snprintf(self->auth_id + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static int
s_rate_limit(rt_policy_t *self, const json_t *rl, rt_error_t *err)
{
    const char *tier = json_string_value(json_object_get(rl, "tier"));
    self->rl_key = "ip";
    if (tier) {
        for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_tiers); i++)
            if (strcmp(tier, s_tiers[i].name) == 0) {
                self->rl_requests = s_tiers[i].requests;
                self->rl_window_s = S_TIER_WINDOW_S;
                self->rl_burst = S_TIER_BURST;
                return 0;
            }
        return s_fail(err, "rateLimit.tier", "rateLimit.tier must be general, strict or auth");
    }
    if (s_uint(rl, "requests", 1, 1000000000, 0, &self->rl_requests) != 0 || self->rl_requests == 0)
        return s_fail(err, "rateLimit.requests", "rateLimit.requests must be 1 to 1000000000");
    if (s_uint(rl, "windowSeconds", 1, 86400, 0, &self->rl_window_s) != 0 || self->rl_window_s == 0)
        return s_fail(err, "rateLimit.windowSeconds", "rateLimit.windowSeconds must be 1 to 86400");
    if (s_uint(rl, "burstPerSecond", 0, 1000000, 0, &self->rl_burst) != 0)
        return s_fail(err, "rateLimit.burstPerSecond",
                      "rateLimit.burstPerSecond must be 0 to 1000000");
    const char *key = json_string_value(json_object_get(rl, "key"));
    if (key && strcmp(key, "user") == 0)
        self->rl_key = "user";
    else if (key && strcmp(key, "ip") != 0)
        return s_fail(err, "rateLimit.key", "rateLimit.key must be ip or user");
    return 0;
}

int
rt_policy_parse(rt_policy_t *self, const json_t *doc, rt_error_t *err)
{
    memset(self, 0, sizeof *self);
    self->auto_https = s_flag(doc, "autoHttps");
    self->sec_headers = s_flag(doc, "securityHeaders");
    const json_t *cors = json_object_get(doc, "cors");
    if (json_is_object(cors)) {
        self->cors = json_dumps(cors, JSON_COMPACT);
        if (self->cors == NULL || strlen(self->cors) > PROTO_LEASE_CORS_MAX)
            return s_fail(err, "cors", "cors is too long for a lease (8 KiB)");
    } else if (cors && !json_is_null(cors)) {
        return s_fail(err, "cors", "cors must be null or an object");
    }
    const json_t *auth = json_object_get(doc, "auth");
    if (json_is_object(auth) && s_auth(self, auth, err) != 0)
        return -1;
    const json_t *provider = json_object_get(doc, "authProvider");
    if (json_is_string(provider)) {
        self->auth_provider = json_string_value(provider);
        if (strlen(self->auth_provider) > PROTO_LEASE_AUTH_PROVIDER_MAX)
            return s_fail(err, "authProvider", "authProvider is longer than 2048 bytes");
    }
    if (s_uint(doc, "authCacheMs", PROTO_ROUTE_AUTH_CACHE_MS_MIN, PROTO_ROUTE_AUTH_CACHE_MS_MAX,
               PROTO_ROUTE_AUTH_CACHE_MS_DEFAULT, &self->auth_cache_ms)
        != 0)
        return s_fail(err, "authCacheMs", "authCacheMs must be 0 to 3600000");
    const json_t *rl = json_object_get(doc, "rateLimit");
    if (json_is_object(rl) && s_rate_limit(self, rl, err) != 0)
        return -1;
    return 0;
}

void
rt_policy_free(rt_policy_t *self)
{
    free(self->cors);
    free(self->users);
    free(self->tokens);
    self->cors = NULL;
    self->users = NULL;
    self->tokens = NULL;
    self->users_count = self->tokens_count = 0;
}

void
rt_policy_to_lease(const rt_policy_t *self, proto_lease_t *lease, const char *auth_have)
{
    lease->auto_https = self->auto_https;
    lease->sec_headers = self->sec_headers;
    lease->cors = self->cors;
    lease->auth = self->auth;
    lease->auth_id = self->auth ? self->auth_id : NULL;
    bool held = self->auth && auth_have && strcmp(auth_have, self->auth_id) == 0;
    if (!held) {
        lease->auth_users = self->users;
        lease->auth_users_count = self->users_count;
        lease->auth_tokens = self->tokens;
        lease->auth_tokens_count = self->tokens_count;
    }
    lease->auth_provider = self->auth_provider;
    lease->auth_cache_ms = self->auth_cache_ms;
    lease->rl_requests = self->rl_requests;
    lease->rl_window_s = self->rl_window_s;
    lease->rl_burst = self->rl_burst;
    lease->rl_key = self->rl_requests ? self->rl_key : NULL;
}
