/*  test_jwt - unit tests for gw_jwt, the chat token check.

    Tokens are made with libjwt's own encoder (an independent writer of the
    format), plus a few written by hand for what libjwt would not make.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jwt.h>

#include "../../gateway/gw_jwt.h"

#define T_SECRET "0123456789abcdef0123456789abcdef"
#define T_NOW    1800000000

//  A token with these claims (sub NULL: none; exp 0: none), signed with alg.
static char *
s_token(const char *sub, long exp, jwt_alg_t alg, const char *secret)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    if (sub)
        assert_int_equal(jwt_add_grant(j, "sub", sub), 0);
    if (exp)
        assert_int_equal(jwt_add_grant_int(j, "exp", exp), 0);
    if (alg != JWT_ALG_NONE)
        assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *) secret, (int) strlen(secret)),
                         0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static int
s_check(const char *token, char *user, const char **why)
{
    return gw_jwt_user(token, strlen(token), T_SECRET, T_NOW, user, why);
}

static void
test_valid_token(void **state)
{
    (void) state;
    char user[GW_USER_MAX + 1];
    const char *why;
    char *t = s_token("alice@example.com", T_NOW + 60, JWT_ALG_HS256, T_SECRET);
    assert_int_equal(s_check(t, user, &why), 0);
    assert_string_equal(user, "alice@example.com");
    free(t);
}

static void
test_refused_tokens(void **state)
{
    (void) state;
    char user[GW_USER_MAX + 1];
    const char *why;
    struct {
        char *token;
        const char *why;
    } cases[] = {
        {s_token("bob", T_NOW + 60, JWT_ALG_HS256, "another secret, 32 bytes long!!!"),
         "bad token or signature"},
        {s_token("bob", T_NOW + 60, JWT_ALG_HS512, T_SECRET), "alg is not HS256"},
        {s_token("bob", T_NOW + 60, JWT_ALG_NONE, T_SECRET), "bad token or signature"},
        {s_token("bob", T_NOW, JWT_ALG_HS256, T_SECRET), "expired"},
        {s_token("bob", 0, JWT_ALG_HS256, T_SECRET), "no exp claim"},
        {s_token(NULL, T_NOW + 60, JWT_ALG_HS256, T_SECRET), "sub is not a valid user id"},
        {s_token("bob smith", T_NOW + 60, JWT_ALG_HS256, T_SECRET), "sub is not a valid user id"},
        {s_token("a:b", T_NOW + 60, JWT_ALG_HS256, T_SECRET), "sub is not a valid user id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(s_check(cases[i].token, user, &why), -1);
        assert_string_equal(why, cases[i].why);
        free(cases[i].token);
    }
    assert_int_equal(s_check("", user, &why), -1);
    assert_string_equal(why, "no token");
    assert_int_equal(s_check("not.a.token", user, &why), -1);
    assert_int_equal(s_check("garbage", user, &why), -1);
    char big[GW_JWT_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(s_check(big, user, &why), -1);
    assert_string_equal(why, "token too long or malformed");
    //  A token with a NUL inside is refused before libjwt sees it.
    assert_int_equal(gw_jwt_user("ab\0cd", 5, T_SECRET, T_NOW, user, &why), -1);
}

static void
test_names(void **state)
{
    (void) state;
    assert_true(proto_chat_name_ok("alice", 5));
    assert_true(proto_chat_name_ok("a.b_c@d-e", 9));
    char max[65];
    memset(max, 'x', 64);
    assert_true(proto_chat_name_ok(max, 64));
    assert_false(proto_chat_name_ok(max, 65));
    assert_false(proto_chat_name_ok("", 0));
    assert_false(proto_chat_name_ok("a b", 3));
    assert_false(proto_chat_name_ok("a:b", 3));
    assert_false(proto_chat_name_ok("a/b", 3));
    assert_false(proto_chat_name_ok("\xc3\xa9", 2));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_token),
        cmocka_unit_test(test_refused_tokens),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("gw_jwt", tests, NULL, NULL);
}
