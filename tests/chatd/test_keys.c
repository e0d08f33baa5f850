/*  test_keys - unit tests for chat_keys: every name, with and without a
    tenant, and names that do not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chat_keys.h"

static void
test_names(void **state)
{
    (void) state;
    char k[CHAT_KEY_MAX];
    struct {
        chat_key_t kind;
        const char *tenant, *name, *want;
    } cases[] = {
        {CHAT_KEY_USER, "", "bob", "chat:bob"},
        {CHAT_KEY_USER, "acme", "bob", "acme:chat:bob"},
        {CHAT_KEY_ROOM, "", "lobby", "chat:room:lobby"},
        {CHAT_KEY_ROOM, "acme", "lobby", "acme:chat:room:lobby"},
        {CHAT_KEY_INBOX, NULL, "bob", "chat:inbox:bob"},
        {CHAT_KEY_CURSOR, "t", "bob", "t:chat:cursor:bob"},
        {CHAT_KEY_PRESENCE, "", "a@b.c", "chat:presence:a@b.c"},
        {CHAT_KEY_ROOMS, "", "bob", "chat:rooms:bob"},
        {CHAT_KEY_MEMBERS, "x", "lobby", "x:chat:members:lobby"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = chat_key(k, sizeof k, cases[i].kind, cases[i].tenant, cases[i].name);
        assert_string_equal(k, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    assert_int_equal(chat_key_seen(k, sizeof k, "", "alice", "c1"), strlen("chat:seen:alice:c1"));
    assert_string_equal(k, "chat:seen:alice:c1");
    chat_key_seen(k, sizeof k, "acme", "alice", "c1");
    assert_string_equal(k, "acme:chat:seen:alice:c1");
}

static void
test_refusals(void **state)
{
    (void) state;
    char k[16];
    assert_int_equal(chat_key(k, sizeof k, CHAT_KEY_USER, "", "0123456789"), 15);
    assert_int_equal(chat_key(k, sizeof k, CHAT_KEY_USER, "", "01234567890"), 0); // no room for NUL
    assert_string_equal(k, "");
    assert_int_equal(chat_key(k, sizeof k, CHAT_KEY_USER, "", ""), 0);
    assert_int_equal(chat_key(k, sizeof k, CHAT_KEY_USER, "", NULL), 0);
    assert_int_equal(chat_key(k, sizeof k, (chat_key_t) 99, "", "a"), 0);
    assert_int_equal(chat_key(k, 0, CHAT_KEY_USER, "", "a"), 0);
    assert_int_equal(chat_key_seen(k, sizeof k, "", "alice", ""), 0);
    assert_int_equal(chat_key_seen(k, sizeof k, "", "alice", "0123456789"), 0);
}

//  Stream entry ids compare as (ms, seq) numbers, not as strings.
static void
test_entry_order(void **state)
{
    (void) state;
    assert_true(chat_keys_entry_cmp("1700000000000-0", "1700000000000-1") < 0);
    assert_true(chat_keys_entry_cmp("1700000000000-10", "1700000000000-9") > 0);
    assert_true(chat_keys_entry_cmp("999-0", "1000-0") < 0);
    assert_int_equal(chat_keys_entry_cmp("5-5", "5-5"), 0);
    assert_true(chat_keys_entry_cmp("1-0", "") > 0);
    assert_int_equal(chat_keys_entry_cmp("", ""), 0);
    assert_true(chat_keys_entry_cmp("1-0", "junk") > 0);
    assert_true(chat_keys_entry_cmp("-1-0", "0-0") < 0);
    assert_true(chat_keys_entry_cmp("1-", "0-0") < 0);
    assert_true(chat_keys_entry_cmp("99999999999999999999999-0", "1-0") < 0); // overflow: not an id
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_entry_order),
    };
    return cmocka_run_group_tests_name("chat_keys", tests, NULL, NULL);
}
