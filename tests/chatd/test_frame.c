/*  test_frame - unit tests for chat_frame: the chat protocol's client frames
    and server frames (SPEC §9).

    Every client type accepted, then a table of bad frames with the exact
    code each must get and the field its message must name; bounds at their
    edges (64/65 bytes of a name or id, 65536/65537 bytes of text, 1 MiB of
    frame). Then each encoder, parsed back with jansson, with strings that
    need escaping, and every buffer one byte too small.

    Decisions pinned here: null is a wrong type, not an absent member; a
    U+0000 anywhere is bad_json (jansson's default); an error carries the
    frame's client id when that id was valid.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat_frame.h"

//  Parse text from an exact-size heap copy (no NUL after it, so ASan sees any
//  read past the end). Returns the result; frame and err filled.
static int
t_parse(const char *text, size_t len, chat_frame_t *frame, chat_frame_error_t *err)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    int rc = chat_frame_parse(copy, len, frame, err);
    free(copy);
    return rc;
}

//  The frame must be refused with code, and its message must contain named
//  (e.g. "'room'") and be printable ASCII.
static void
t_expect(const char *text, const char *code, const char *named)
{
    chat_frame_t *frame = malloc(sizeof *frame);
    chat_frame_error_t err;
    assert_non_null(frame);
    int rc = t_parse(text, strlen(text), frame, &err);
    if (rc != -2)
        fail_msg("accepted: %s\n  expected %s naming %s", text, code, named);
    if (strcmp(err.code, code) != 0 || strstr(err.message, named) == NULL)
        fail_msg("%s\n  got      %s: %s\n  expected %s naming %s", text, err.code, err.message,
                 code, named);
    for (const char *p = err.message; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    free(frame);
}

//  The frame must be accepted; returns it (caller frees).
static chat_frame_t *
t_accept(const char *text)
{
    chat_frame_t *frame = malloc(sizeof *frame);
    chat_frame_error_t err;
    assert_non_null(frame);
    if (t_parse(text, strlen(text), frame, &err) != 0)
        fail_msg("refused: %s\n  %s: %s", text, err.code, err.message);
    return frame;
}

//  A string of n copies of c (caller frees).
static char *
t_repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

//  A frame built from a template with value in place of its one "%s" (caller frees).
static char *
t_frame(const char *template, const char *value)
{
    const char *at = strstr(template, "%s");
    assert_non_null(at);
    size_t head = (size_t) (at - template);
    size_t len = strlen(value);
    char *s = malloc(strlen(template) + len + 1);
    assert_non_null(s);
    memcpy(s, template, head);
    memcpy(s + head, value, len);
    memcpy(s + head + len, at + 2, strlen(at + 2) + 1);
    return s;
}

static void
test_accept_each_type(void **state)
{
    (void) state;
    chat_frame_t *f =
        t_accept("{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"hi\",\"id\":\"c1\"}");
    assert_int_equal(f->type, CHAT_FRAME_MESSAGE_SEND);
    assert_string_equal(f->to, "bob");
    assert_string_equal(f->room, "");
    assert_string_equal(f->text, "hi");
    assert_int_equal(f->text_len, 2);
    assert_string_equal(f->id, "c1");
    free(f);

    f = t_accept("{\"type\":\"message:send\",\"room\":\"lobby\",\"text\":\"hi\"}");
    assert_int_equal(f->type, CHAT_FRAME_MESSAGE_SEND);
    assert_string_equal(f->room, "lobby");
    assert_string_equal(f->to, "");
    assert_string_equal(f->id, "");
    free(f);

    f = t_accept("{\"type\":\"join:room\",\"room\":\"lobby\"}");
    assert_int_equal(f->type, CHAT_FRAME_JOIN_ROOM);
    assert_string_equal(f->room, "lobby");
    free(f);

    f = t_accept("{\"room\":\"a.b_c@d-e\",\"type\":\"leave:room\"}");
    assert_int_equal(f->type, CHAT_FRAME_LEAVE_ROOM);
    assert_string_equal(f->room, "a.b_c@d-e");
    free(f);

    f = t_accept("{\"type\":\"typing:start\",\"to\":\"bob\"}");
    assert_int_equal(f->type, CHAT_FRAME_TYPING_START);
    assert_string_equal(f->to, "bob");
    free(f);

    f = t_accept("{\"type\":\"typing:stop\",\"room\":\"lobby\"}");
    assert_int_equal(f->type, CHAT_FRAME_TYPING_STOP);
    assert_string_equal(f->room, "lobby");
    free(f);

    const char *statuses[] = {"online", "away", "busy", "offline"};
    for (size_t i = 0; i < 4; i++) {
        char *text = t_frame("{\"type\":\"presence:update\",\"status\":\"%s\"}", statuses[i]);
        f = t_accept(text);
        assert_int_equal(f->type, CHAT_FRAME_PRESENCE_UPDATE);
        assert_int_equal(f->status, (chat_status_t) i);
        assert_string_equal(chat_frame_status_name(f->status), statuses[i]);
        free(f);
        free(text);
    }
    assert_string_equal(chat_frame_type_name(CHAT_FRAME_TYPING_STOP), "typing:stop");
    assert_string_equal(chat_frame_type_name((chat_frame_type_t) 0), "");
    assert_string_equal(chat_frame_status_name((chat_status_t) 9), "");
}

//  Unknown members are ignored, whatever their type; members of other types too.
static void
test_unknown_members_ignored(void **state)
{
    (void) state;
    chat_frame_t *f = t_accept("{\"type\":\"join:room\",\"room\":\"r\",\"x\":[1,{\"y\":null}],"
                               "\"text\":5,\"to\":true,\"id\":\"!!\"}");
    assert_int_equal(f->type, CHAT_FRAME_JOIN_ROOM);
    assert_string_equal(f->to, "");
    assert_string_equal(f->id, "");
    free(f);
    f = t_accept(" \n{\"type\":\"presence:update\",\"status\":\"busy\",\"room\":1} \t");
    assert_int_equal(f->status, CHAT_STATUS_BUSY);
    free(f);
}

//  Text is kept byte for byte: escapes decoded, UTF-8 as it came.
static void
test_text_content(void **state)
{
    (void) state;
    chat_frame_t *f = t_accept("{\"type\":\"message:send\",\"to\":\"bob\","
                               "\"text\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\xe2\x82\xac\"}");
    assert_string_equal(f->text, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac");
    assert_int_equal(f->text_len, strlen(f->text));
    free(f);
}

static void
test_bad_json(void **state)
{
    (void) state;
    t_expect("", "bad_json", "frame");
    t_expect("{", "bad_json", "frame");
    t_expect("{\"type\":\"join:room\",\"room\":\"r\"} x", "bad_json", "frame");
    t_expect("[]", "bad_json", "frame");
    t_expect("[{\"type\":\"join:room\",\"room\":\"r\"}]", "bad_json", "JSON object");
    t_expect("\"join:room\"", "bad_json", "frame");
    t_expect("1", "bad_json", "frame");
    t_expect("null", "bad_json", "frame");
    t_expect("{'type':'join:room'}", "bad_json", "frame");
    t_expect("\xff\xfe{}", "bad_json", "frame");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"a\xc3\"}", "bad_json", "frame");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"a\\u0000b\"}", "bad_json",
             "frame");
    t_expect("{\"type\":\"join:room\",\"room\":\"r\",\"n\":99999999999999999999}", "bad_json",
             "frame");
}

static void
test_duplicate_keys(void **state)
{
    (void) state;
    t_expect("{\"type\":\"join:room\",\"room\":\"a\",\"room\":\"b\"}", "bad_json", "duplicate");
    t_expect("{\"type\":\"join:room\",\"type\":\"join:room\",\"room\":\"a\"}", "bad_json",
             "duplicate");
    //  Also inside a member that is otherwise ignored.
    t_expect("{\"type\":\"join:room\",\"room\":\"a\",\"x\":{\"k\":1,\"k\":2}}", "bad_json",
             "duplicate");
}

static void
test_bad_type(void **state)
{
    (void) state;
    t_expect("{}", "bad_type", "'type'");
    t_expect("{\"room\":\"r\"}", "bad_type", "'type'");
    t_expect("{\"type\":null}", "bad_type", "'type'");
    t_expect("{\"type\":1}", "bad_type", "'type'");
    t_expect("{\"type\":[\"join:room\"]}", "bad_type", "'type'");
    t_expect("{\"type\":\"\"}", "bad_type", "'type'");
    t_expect("{\"type\":\"message\"}", "bad_type", "'type'");
    t_expect("{\"type\":\"Message:Send\",\"to\":\"b\",\"text\":\"x\"}", "bad_type", "'type'");
    t_expect("{\"type\":\"join:room \",\"room\":\"r\"}", "bad_type", "'type'");
    t_expect("{\"type\":\"message:received\"}", "bad_type", "message:send");
}

static void
test_bad_frame(void **state)
{
    (void) state;
    // message:send
    t_expect("{\"type\":\"message:send\",\"text\":\"hi\"}", "bad_frame", "'to' or 'room'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"room\":\"r\",\"text\":\"hi\"}", "bad_frame",
             "'to' and 'room'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\"}", "bad_frame", "'text'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"\"}", "bad_frame", "'text'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":null}", "bad_frame", "'text'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":7}", "bad_frame", "'text'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":[\"x\"]}", "bad_frame", "'text'");
    t_expect("{\"type\":\"message:send\",\"to\":1,\"text\":\"x\"}", "bad_frame", "'to'");
    t_expect("{\"type\":\"message:send\",\"to\":null,\"room\":\"r\",\"text\":\"x\"}", "bad_frame",
             "'to'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"room\":null,\"text\":\"x\"}", "bad_frame",
             "'room'");
    t_expect("{\"type\":\"message:send\",\"to\":\"\",\"text\":\"x\"}", "bad_frame", "'to'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b o\",\"text\":\"x\"}", "bad_frame", "'to'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b:o\",\"text\":\"x\"}", "bad_frame", "'to'");
    t_expect("{\"type\":\"message:send\",\"room\":\"caf\\u00e9\",\"text\":\"x\"}", "bad_frame",
             "'room'");
    t_expect("{\"type\":\"message:send\",\"room\":\"a/b\",\"text\":\"x\"}", "bad_frame", "'room'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"x\",\"id\":\"\"}", "bad_frame",
             "'id'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"x\",\"id\":3}", "bad_frame",
             "'id'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"x\",\"id\":\"a@b\"}", "bad_frame",
             "'id'");
    t_expect("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"x\",\"id\":null}", "bad_frame",
             "'id'");
    // join:room, leave:room
    t_expect("{\"type\":\"join:room\"}", "bad_frame", "'room'");
    t_expect("{\"type\":\"join:room\",\"to\":\"bob\"}", "bad_frame", "'room'");
    t_expect("{\"type\":\"join:room\",\"room\":\"\"}", "bad_frame", "'room'");
    t_expect("{\"type\":\"leave:room\",\"room\":{}}", "bad_frame", "'room'");
    t_expect("{\"type\":\"leave:room\",\"room\":\"a b\"}", "bad_frame", "'room'");
    // typing
    t_expect("{\"type\":\"typing:start\"}", "bad_frame", "'to' or 'room'");
    t_expect("{\"type\":\"typing:stop\",\"to\":\"b\",\"room\":\"r\"}", "bad_frame",
             "'to' and 'room'");
    t_expect("{\"type\":\"typing:stop\",\"to\":false}", "bad_frame", "'to'");
    // presence
    t_expect("{\"type\":\"presence:update\"}", "bad_frame", "'status'");
    t_expect("{\"type\":\"presence:update\",\"status\":\"idle\"}", "bad_frame", "'status'");
    t_expect("{\"type\":\"presence:update\",\"status\":\"Online\"}", "bad_frame", "'status'");
    t_expect("{\"type\":\"presence:update\",\"status\":\"\"}", "bad_frame", "'status'");
    t_expect("{\"type\":\"presence:update\",\"status\":1}", "bad_frame", "'status'");
}

//  The first bad member in the header's order is the one reported.
static void
test_check_order(void **state)
{
    (void) state;
    t_expect("{\"type\":\"message:send\",\"id\":\"!\",\"to\":\"\",\"text\":\"\"}", "bad_frame",
             "'id'");
    t_expect("{\"type\":\"message:send\",\"to\":\"\",\"text\":\"\"}", "bad_frame", "'to'");
    t_expect("{\"type\":\"nope\",\"to\":\"\"}", "bad_type", "'type'");
}

//  An error carries the client id when it was valid, so the client can match it.
static void
test_error_keeps_id(void **state)
{
    (void) state;
    chat_frame_t *f = malloc(sizeof *f);
    chat_frame_error_t err;
    assert_non_null(f);
    const char *text =
        "{\"type\":\"message:send\",\"id\":\"c.7:x-y_z\",\"to\":\"b\",\"text\":\"\"}";
    assert_int_equal(t_parse(text, strlen(text), f, &err), -2);
    assert_string_equal(err.code, "bad_frame");
    assert_string_equal(err.id, "c.7:x-y_z");
    text = "{\"type\":\"message:send\",\"id\":\"bad id\",\"to\":\"b\",\"text\":\"x\"}";
    assert_int_equal(t_parse(text, strlen(text), f, &err), -2);
    assert_string_equal(err.id, "");
    free(f);
}

static void
test_name_bounds(void **state)
{
    (void) state;
    char *n64 = t_repeat('a', 64);
    char *n65 = t_repeat('a', 65);
    const char *ok[] = {"{\"type\":\"join:room\",\"room\":\"%s\"}",
                        "{\"type\":\"typing:start\",\"to\":\"%s\"}",
                        "{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"x\",\"id\":\"%s\"}"};
    const char *named[] = {"'room'", "'to'", "'id'"};
    for (size_t i = 0; i < 3; i++) {
        char *text = t_frame(ok[i], n64);
        chat_frame_t *f = t_accept(text);
        assert_int_equal(strlen(i == 0 ? f->room : i == 1 ? f->to : f->id), 64);
        free(f);
        free(text);
        text = t_frame(ok[i], n65);
        t_expect(text, "bad_frame", named[i]);
        free(text);
    }
    //  One byte each: the shortest accepted.
    chat_frame_t *f =
        t_accept("{\"type\":\"message:send\",\"room\":\"r\",\"text\":\"x\",\"id\":\"1\"}");
    assert_string_equal(f->id, "1");
    free(f);
    free(n64);
    free(n65);
}

static void
test_text_bounds(void **state)
{
    (void) state;
    char *t = t_repeat('x', 65536);
    char *text = t_frame("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"%s\"}", t);
    chat_frame_t *f = t_accept(text);
    assert_int_equal(f->text_len, 65536);
    assert_int_equal(strlen(f->text), 65536);
    free(f);
    free(text);
    free(t);

    t = t_repeat('x', 65537);
    text = t_frame("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"%s\"}", t);
    t_expect(text, "bad_frame", "'text'");
    free(text);
    free(t);

    //  Bytes, not characters: 21845 three-byte characters are 65535 bytes, one more is over.
    size_t chars = 21846;
    char *utf8 = malloc(chars * 3 + 1);
    assert_non_null(utf8);
    for (size_t i = 0; i < chars; i++)
        memcpy(utf8 + 3 * i, "\xe2\x82\xac", 3);
    utf8[chars * 3] = '\0';
    text = t_frame("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"%s\"}", utf8);
    t_expect(text, "bad_frame", "'text'");
    free(text);
    utf8[(chars - 1) * 3] = '\0';
    text = t_frame("{\"type\":\"message:send\",\"to\":\"b\",\"text\":\"%s\"}", utf8);
    f = t_accept(text);
    assert_int_equal(f->text_len, 65535);
    free(f);
    free(text);
    free(utf8);
}

//  Up to 1 MiB is parsed (whitespace counts); one byte more is too_large.
static void
test_frame_size(void **state)
{
    (void) state;
    const char *body = "{\"type\":\"join:room\",\"room\":\"r\"}";
    size_t n = CHAT_FRAME_MAX;
    char *big = t_repeat(' ', n + 1);
    memcpy(big, body, strlen(body));
    chat_frame_t *f = malloc(sizeof *f);
    chat_frame_error_t err;
    assert_non_null(f);
    assert_int_equal(t_parse(big, n, f, &err), 0);
    assert_int_equal(f->type, CHAT_FRAME_JOIN_ROOM);
    assert_int_equal(t_parse(big, n + 1, f, &err), -2);
    assert_string_equal(err.code, "too_large");
    assert_non_null(strstr(err.message, "frame"));
    free(f);
    free(big);
}

//  Parse out (len bytes) with jansson; it must be a JSON object (caller decrefs).
static json_t *
t_json(const char *out, size_t len)
{
    assert_true(len > 0);
    assert_int_equal(strlen(out), len);
    json_error_t jerr;
    json_t *doc = json_loadb(out, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        fail_msg("not JSON: %s (%s)", out, jerr.text);
    assert_true(json_is_object(doc));
    return doc;
}

static const char *
t_get(json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));
    if (s == NULL)
        fail_msg("no string '%s'", key);
    return s;
}

//  Every cap below len + 1 must give 0; len + 1 must give len.
typedef size_t (*t_encode_fn)(char *out, size_t cap, const void *arg);

static void
t_check_caps(t_encode_fn encode, const void *arg, size_t len)
{
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    for (size_t cap = 0; cap <= len; cap++) {
        char *exact = cap ? malloc(cap) : NULL; // exact size, so ASan sees an overrun
        if (encode(exact, cap, arg) != 0)
            fail_msg("cap %zu of %zu fitted", cap, len + 1);
        free(exact);
    }
    assert_int_equal(encode(buf, len + 1, arg), len);
    free(buf);
}

static const char s_tricky[] = "q\"b\\s/\n\r\t\x01\x1f\x7f \xc3\xa9\xf0\x9f\x98\x80 \xff end";

static size_t
t_enc_received(char *out, size_t cap, const void *arg)
{
    (void) arg;
    return chat_frame_encode_received(out, cap, "al\"ice", NULL, "lob\nby", s_tricky,
                                      sizeof s_tricky - 1, "c1", 1700000000000);
}

static size_t
t_enc_error(char *out, size_t cap, const void *arg)
{
    (void) arg;
    return chat_frame_encode_error(out, cap, "bad_frame", s_tricky, "c\\2");
}

static size_t
t_enc_ack(char *out, size_t cap, const void *arg)
{
    return chat_frame_encode_ack(out, cap, arg);
}

static size_t
t_enc_typing(char *out, size_t cap, const void *arg)
{
    (void) arg;
    return chat_frame_encode_typing(out, cap, "alice", "bob", NULL, true);
}

static size_t
t_enc_presence(char *out, size_t cap, const void *arg)
{
    (void) arg;
    return chat_frame_encode_presence(out, cap, "alice", CHAT_STATUS_AWAY);
}

static void
test_encode_received(void **state)
{
    (void) state;
    char out[1024];
    size_t n = t_enc_received(out, sizeof out, NULL);
    json_t *doc = t_json(out, n);
    assert_string_equal(t_get(doc, "type"), "message:received");
    assert_string_equal(t_get(doc, "from"), "al\"ice");
    assert_string_equal(t_get(doc, "room"), "lob\nby");
    assert_null(json_object_get(doc, "to"));
    assert_string_equal(t_get(doc, "id"), "c1");
    assert_true(json_is_integer(json_object_get(doc, "ts")));
    assert_true(json_integer_value(json_object_get(doc, "ts")) == 1700000000000LL);
    //  Everything comes back but the byte that is not UTF-8, written as U+00FF.
    const char *text = t_get(doc, "text");
    assert_string_equal(text, "q\"b\\s/\n\r\t\x01\x1f\x7f \xc3\xa9\xf0\x9f\x98\x80 \xc3\xbf end");
    json_decref(doc);
    t_check_caps(t_enc_received, NULL, n);

    //  To a user, no id, a negative and the extreme timestamps, text from a parsed frame.
    chat_frame_t *f =
        t_accept("{\"type\":\"message:send\",\"to\":\"bob\",\"text\":\"\\u0001\\\"\"}");
    const int64_t ts[] = {0, -1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < 4; i++) {
        n = chat_frame_encode_received(out, sizeof out, "alice", f->to, NULL, f->text, f->text_len,
                                       NULL, ts[i]);
        doc = t_json(out, n);
        assert_string_equal(t_get(doc, "to"), "bob");
        assert_null(json_object_get(doc, "id"));
        assert_string_equal(t_get(doc, "text"), "\x01\"");
        assert_true(json_integer_value(json_object_get(doc, "ts")) == ts[i]);
        json_decref(doc);
    }
    free(f);
    //  Exactly one of to and room.
    assert_int_equal(chat_frame_encode_received(out, sizeof out, "a", NULL, NULL, "x", 1, NULL, 0),
                     0);
    assert_int_equal(chat_frame_encode_received(out, sizeof out, "a", "b", "r", "x", 1, NULL, 0),
                     0);
}

static void
test_encode_others(void **state)
{
    (void) state;
    char out[512];
    size_t n = chat_frame_encode_ack(out, sizeof out, "c1");
    assert_string_equal(out, "{\"type\":\"ack\",\"id\":\"c1\"}");
    json_decref(t_json(out, n));
    t_check_caps(t_enc_ack, "c1", n);

    n = t_enc_typing(out, sizeof out, NULL);
    assert_string_equal(
        out, "{\"type\":\"typing\",\"from\":\"alice\",\"to\":\"bob\",\"state\":\"start\"}");
    t_check_caps(t_enc_typing, NULL, n);
    n = chat_frame_encode_typing(out, sizeof out, "alice", NULL, "lobby", false);
    json_t *doc = t_json(out, n);
    assert_string_equal(t_get(doc, "room"), "lobby");
    assert_string_equal(t_get(doc, "state"), "stop");
    json_decref(doc);
    n = chat_frame_encode_typing(out, sizeof out, "alice", NULL, NULL, true);
    assert_string_equal(out, "{\"type\":\"typing\",\"from\":\"alice\",\"state\":\"start\"}");
    assert_int_equal(chat_frame_encode_typing(out, sizeof out, "a", "b", "r", true), 0);

    n = t_enc_presence(out, sizeof out, NULL);
    assert_string_equal(out,
                        "{\"type\":\"presence:updated\",\"userId\":\"alice\",\"status\":\"away\"}");
    t_check_caps(t_enc_presence, NULL, n);
    assert_int_equal(chat_frame_encode_presence(out, sizeof out, "a", (chat_status_t) 4), 0);

    n = t_enc_error(out, sizeof out, NULL);
    doc = t_json(out, n);
    assert_string_equal(t_get(doc, "type"), "error");
    assert_string_equal(t_get(doc, "code"), "bad_frame");
    assert_string_equal(t_get(doc, "id"), "c\\2");
    assert_non_null(strstr(t_get(doc, "message"), "\xf0\x9f\x98\x80"));
    json_decref(doc);
    t_check_caps(t_enc_error, NULL, n);
    n = chat_frame_encode_error(out, sizeof out, "unavailable", "redis is down", "");
    assert_string_equal(
        out, "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"redis is down\"}");
    assert_int_equal(n, strlen(out));
}

//  A parse error, encoded, is the error frame the client gets.
static void
test_error_round_trip(void **state)
{
    (void) state;
    chat_frame_t *f = malloc(sizeof *f);
    chat_frame_error_t err;
    assert_non_null(f);
    const char *text = "{\"type\":\"message:send\",\"id\":\"c9\",\"room\":\"a b\",\"text\":\"x\"}";
    assert_int_equal(t_parse(text, strlen(text), f, &err), -2);
    char out[512];
    size_t n = chat_frame_encode_error(out, sizeof out, err.code, err.message, err.id);
    json_t *doc = t_json(out, n);
    assert_string_equal(t_get(doc, "code"), "bad_frame");
    assert_string_equal(t_get(doc, "message"), "field 'room': "
                                               "1..64 characters of A-Z a-z 0-9 . _ @ -");
    assert_string_equal(t_get(doc, "id"), "c9");
    json_decref(doc);
    free(f);
}

static void
test_name_ok(void **state)
{
    (void) state;
    assert_true(chat_frame_name_ok("alice"));
    assert_true(chat_frame_name_ok("a.b_c@d-e"));
    assert_false(chat_frame_name_ok(""));
    assert_false(chat_frame_name_ok(NULL));
    assert_false(chat_frame_name_ok("a:b"));
    assert_false(chat_frame_name_ok("a b"));
    char max[66];
    memset(max, 'x', 65);
    max[65] = '\0';
    assert_false(chat_frame_name_ok(max));
    max[64] = '\0';
    assert_true(chat_frame_name_ok(max));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_accept_each_type),
        cmocka_unit_test(test_unknown_members_ignored),
        cmocka_unit_test(test_text_content),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_bad_frame),
        cmocka_unit_test(test_check_order),
        cmocka_unit_test(test_error_keeps_id),
        cmocka_unit_test(test_name_bounds),
        cmocka_unit_test(test_text_bounds),
        cmocka_unit_test(test_frame_size),
        cmocka_unit_test(test_encode_received),
        cmocka_unit_test(test_encode_others),
        cmocka_unit_test(test_error_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
