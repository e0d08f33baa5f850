/*  chat_frame - the chat protocol's frame layer (see chat_frame.h).

    Parsing goes through jansson (duplicate keys refused, U+0000 refused, the
    input read by length) and copies what it keeps into the caller's struct,
    so the JSON tree is freed before returning on every path. Encoding writes
    by hand into the caller's buffer: literals for the fixed parts,
    proto_log_json_string for every string, a small decimal formatter for ts.
*/
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_util.h"
#include "chat_frame.h"

//  The rules as the error messages state them.
#define S_NAME_RULE   "1..64 characters of A-Z a-z 0-9 . _ @ -"
#define S_ID_RULE     "1..64 characters of A-Z a-z 0-9 . _ : -"
#define S_TEXT_RULE   "1..65536 bytes of UTF-8"
#define S_STATUS_RULE "one of online, away, busy, offline"
#define S_TYPE_RULE                                                                                \
    "one of message:send, join:room, leave:room, typing:start, typing:stop, presence:update"

static const char *const s_type_names[] = {
    [CHAT_FRAME_MESSAGE_SEND] = "message:send", [CHAT_FRAME_JOIN_ROOM] = "join:room",
    [CHAT_FRAME_LEAVE_ROOM] = "leave:room",     [CHAT_FRAME_TYPING_START] = "typing:start",
    [CHAT_FRAME_TYPING_STOP] = "typing:stop",   [CHAT_FRAME_PRESENCE_UPDATE] = "presence:update",
};

static const char *const s_status_names[] = {
    [CHAT_STATUS_ONLINE] = "online",
    [CHAT_STATUS_AWAY] = "away",
    [CHAT_STATUS_BUSY] = "busy",
    [CHAT_STATUS_OFFLINE] = "offline",
};

//  --------------------------------------------------------------------------
//  Errors

//  Append s to the error message, each byte outside printable ASCII as '?'
//  (jansson's error text quotes the input), cut at the array's bound.
static void
s_message_add(chat_frame_error_t *err, const char *s)
{
    size_t used = strnlen(err->message, sizeof err->message);
    while (*s && used + 1 < sizeof err->message) {
        unsigned char c = (unsigned char) *s++;
        err->message[used++] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
    }
    err->message[used] = '\0';
}

//  Decimal digits of v, written to the end of buf[0..20]; returns where they start.
static char *
s_digits(char buf[20], uint64_t v)
{
    char *p = buf + 20;
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

//  Fill err with code and "<what>: <rule>". Returns -2, the parse result.
static int
s_fail(chat_frame_error_t *err, const char *code, const char *what, const char *rule)
{
    proto_strlcpy(err->code, code, sizeof err->code);
    err->message[0] = '\0';
    s_message_add(err, what);
    s_message_add(err, ": ");
    s_message_add(err, rule);
    return -2;
}

//  The same, for one named member: "field '<key>': <rule>".
static int
s_fail_field(chat_frame_error_t *err, const char *code, const char *key, const char *rule)
{
    char what[32] = "field '";
    size_t n = strlen(what);
    size_t k = strnlen(key, sizeof what - n - 2);
    memcpy(what + n, key, k);
    memcpy(what + n + k, "'", 2);
    return s_fail(err, code, what, rule);
}

//  bad_json, with jansson's reason and where it stopped.
static int
s_fail_json(chat_frame_error_t *err, const json_error_t *jerr)
{
    char digits[20];
    s_fail(err, "bad_json", "frame", "not valid JSON (");
    s_message_add(err, jerr->text);
    s_message_add(err, " at byte ");
    char *p = s_digits(digits, (uint64_t) (jerr->position < 0 ? 0 : jerr->position));
    size_t used = strnlen(err->message, sizeof err->message);
    size_t n = (size_t) (digits + sizeof digits - p);
    if (used + n + 2 < sizeof err->message) {
        memcpy(err->message + used, p, n);
        memcpy(err->message + used + n, ")", 2);
    }
    return -2;
}

//  --------------------------------------------------------------------------
//  Members

//  True if s (len bytes) is 1..max bytes, each a letter, a digit or one of extra.
static bool
s_valid_chars(const char *s, size_t len, size_t max, const char *extra)
{
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == '\0' || strchr(extra, c) == NULL)) {
            return false;
        }
    }
    return true;
}

bool
chat_frame_name_ok(const char *name)
{
    return name != NULL && proto_chat_name_ok(name, strlen(name));
}

//  Look up key as a string. Returns 1 with *value and *len set, 0 if it is
//  absent and not required, -2 (err filled) if it is missing or not a string.
static int
s_get_string(json_t *root,
             const char *key,
             bool required,
             const char **value,
             size_t *len,
             chat_frame_error_t *err)
{
    json_t *member = json_object_get(root, key);
    if (member == NULL) {
        return required ? s_fail_field(err, "bad_frame", key, "missing") : 0;
    }
    if (!json_is_string(member)) {
        return s_fail_field(err, "bad_frame", key, "must be a string");
    }
    *value = json_string_value(member);
    *len = json_string_length(member);
    return 1;
}

//  Copy a member that must be a name (user id or room) into out, when present.
//  Returns 1, 0 (absent, not required) or -2.
static int
s_get_name(json_t *root,
           const char *key,
           bool required,
           char out[CHAT_FRAME_NAME_MAX + 1],
           chat_frame_error_t *err)
{
    const char *value = NULL;
    size_t len = 0;
    int rc = s_get_string(root, key, required, &value, &len, err);
    if (rc != 1) {
        return rc;
    }
    if (!proto_chat_name_ok(value, len)) {
        return s_fail_field(err, "bad_frame", key, S_NAME_RULE);
    }
    memcpy(out, value, len);
    out[len] = '\0';
    return 1;
}

//  The optional client id of message:send.
static int
s_get_id(json_t *root, chat_frame_t *frame, chat_frame_error_t *err)
{
    const char *value = NULL;
    size_t len = 0;
    int rc = s_get_string(root, "id", false, &value, &len, err);
    if (rc != 1) {
        return rc;
    }
    if (!s_valid_chars(value, len, CHAT_FRAME_ID_MAX, "._:-")) {
        return s_fail_field(err, "bad_frame", "id", S_ID_RULE);
    }
    memcpy(frame->id, value, len);
    frame->id[len] = '\0';
    return 1;
}

//  Exactly one of "to" and "room", each checked for its type before the count.
static int
s_get_target(json_t *root, chat_frame_t *frame, chat_frame_error_t *err)
{
    const char *to = NULL;
    const char *room = NULL;
    size_t to_len = 0;
    size_t room_len = 0;
    int has_to = s_get_string(root, "to", false, &to, &to_len, err);
    if (has_to < 0) {
        return has_to;
    }
    int has_room = s_get_string(root, "room", false, &room, &room_len, err);
    if (has_room < 0) {
        return has_room;
    }
    if (has_to && has_room) {
        return s_fail(err, "bad_frame", "fields 'to' and 'room'", "give exactly one of them");
    }
    if (!has_to && !has_room) {
        return s_fail(err, "bad_frame", "field 'to' or 'room'", "missing (give exactly one)");
    }
    return s_get_name(root, has_to ? "to" : "room", true, has_to ? frame->to : frame->room, err);
}

static int
s_get_text(json_t *root, chat_frame_t *frame, chat_frame_error_t *err)
{
    const char *value = NULL;
    size_t len = 0;
    int rc = s_get_string(root, "text", true, &value, &len, err);
    if (rc != 1) {
        return rc;
    }
    if (len == 0 || len > CHAT_FRAME_TEXT_MAX) {
        return s_fail_field(err, "bad_frame", "text", S_TEXT_RULE);
    }
    memcpy(frame->text, value, len);
    frame->text[len] = '\0';
    frame->text_len = len;
    return 1;
}

static int
s_get_status(json_t *root, chat_frame_t *frame, chat_frame_error_t *err)
{
    const char *value = NULL;
    size_t len = 0;
    int rc = s_get_string(root, "status", true, &value, &len, err);
    if (rc != 1) {
        return rc;
    }
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_status_names); i++) {
        if (strlen(s_status_names[i]) == len && memcmp(s_status_names[i], value, len) == 0) {
            frame->status = (chat_status_t) i;
            return 1;
        }
    }
    return s_fail_field(err, "bad_frame", "status", S_STATUS_RULE);
}

//  "type", always first: bad_type when it is missing, not a string or unknown.
static int
s_get_type(json_t *root, chat_frame_t *frame, chat_frame_error_t *err)
{
    json_t *member = json_object_get(root, "type");
    if (member == NULL) {
        return s_fail_field(err, "bad_type", "type", "missing");
    }
    if (!json_is_string(member)) {
        return s_fail_field(err, "bad_type", "type", "must be a string");
    }
    const char *value = json_string_value(member);
    size_t len = json_string_length(member);
    for (size_t i = 1; i < PROTO_ARRAY_SIZE(s_type_names); i++) {
        if (strlen(s_type_names[i]) == len && memcmp(s_type_names[i], value, len) == 0) {
            frame->type = (chat_frame_type_t) i;
            return 1;
        }
    }
    return s_fail_field(err, "bad_type", "type", S_TYPE_RULE);
}

//  The members of each type, in the order the header states.
static int
s_get_members(json_t *root, chat_frame_t *frame, chat_frame_error_t *err)
{
    int rc = s_get_type(root, frame, err);
    if (rc < 0) {
        return rc;
    }
    switch (frame->type) {
        case CHAT_FRAME_MESSAGE_SEND:
            if ((rc = s_get_id(root, frame, err)) < 0
                || (rc = s_get_target(root, frame, err)) < 0) {
                return rc;
            }
            return s_get_text(root, frame, err);
        case CHAT_FRAME_JOIN_ROOM:
        case CHAT_FRAME_LEAVE_ROOM:
            return s_get_name(root, "room", true, frame->room, err);
        case CHAT_FRAME_TYPING_START:
        case CHAT_FRAME_TYPING_STOP:
            return s_get_target(root, frame, err);
        case CHAT_FRAME_PRESENCE_UPDATE:
            return s_get_status(root, frame, err);
    }
    return s_fail_field(err, "bad_type", "type", S_TYPE_RULE);
}

int
chat_frame_parse(const char *data, size_t len, chat_frame_t *frame, chat_frame_error_t *err)
{
    assert(frame);
    assert(err);
    //  Only the small members: clearing 64 KiB of text per frame buys nothing.
    frame->type = 0;
    frame->to[0] = frame->room[0] = frame->id[0] = frame->text[0] = '\0';
    frame->status = CHAT_STATUS_ONLINE;
    frame->text_len = 0;
    memset(err, 0, sizeof *err);
    if (len > CHAT_FRAME_MAX) {
        return s_fail(err, "too_large", "frame", "more than 1048576 bytes");
    }
    json_error_t jerr;
    json_t *root = json_loadb(len ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return s_fail_json(err, &jerr);
    }
    int rc = json_is_object(root) ? s_get_members(root, frame, err)
                                  : s_fail(err, "bad_json", "frame", "must be a JSON object");
    json_decref(root);
    if (rc < 0) {
        //  A valid client id lets the client match the error to its message.
        proto_strlcpy(err->id, frame->id, sizeof err->id);
        return -2;
    }
    return 0;
}

const char *
chat_frame_type_name(chat_frame_type_t type)
{
    if ((size_t) type == 0 || (size_t) type >= PROTO_ARRAY_SIZE(s_type_names)) {
        return "";
    }
    return s_type_names[type];
}

const char *
chat_frame_status_name(chat_status_t status)
{
    if ((size_t) status >= PROTO_ARRAY_SIZE(s_status_names)) {
        return "";
    }
    return s_status_names[status];
}

//  --------------------------------------------------------------------------
//  Encoding

typedef struct {
    char *data; // the caller's buffer, NUL-terminated at len while ok
    size_t cap; // its size
    size_t len; // bytes written, without the NUL
    bool ok;    // false once something did not fit
} s_out_t;

static void
s_out_start(s_out_t *out, char *data, size_t cap)
{
    out->data = data;
    out->cap = cap;
    out->len = 0;
    out->ok = data != NULL && cap > 0;
    if (out->ok) {
        data[0] = '\0';
    }
}

//  Append a literal (JSON punctuation and keys, never escaped).
static void
s_out_raw(s_out_t *out, const char *s)
{
    size_t n = strlen(s);
    if (!out->ok || n >= out->cap - out->len) {
        out->ok = false;
        return;
    }
    memcpy(out->data + out->len, s, n + 1);
    out->len += n;
}

//  Append s (len bytes; NULL as "") as a quoted, escaped JSON string.
static void
s_out_string(s_out_t *out, const char *s, size_t len)
{
    if (!out->ok) {
        return;
    }
    //  proto_log_json_string appends at the NUL, which s_out keeps at len.
    size_t n = proto_log_json_string(out->data, out->cap, s ? s : "", s ? len : 0);
    if (n == 0) {
        out->ok = false;
        return;
    }
    out->len += n;
}

//  Append ,"key":"value" (key a literal; value NUL-terminated, NULL as "").
static void
s_out_member(s_out_t *out, const char *key, const char *value)
{
    s_out_raw(out, ",\"");
    s_out_raw(out, key);
    s_out_raw(out, "\":");
    s_out_string(out, value, value ? strlen(value) : 0);
}

static void
s_out_int(s_out_t *out, int64_t v)
{
    char digits[20];
    //  -(v + 1) + 1 keeps INT64_MIN defined.
    uint64_t magnitude = v < 0 ? (uint64_t) (-(v + 1)) + 1 : (uint64_t) v;
    char *p = s_digits(digits, magnitude);
    char text[22];
    size_t n = 0;
    if (v < 0) {
        text[n++] = '-';
    }
    size_t k = (size_t) (digits + sizeof digits - p);
    memcpy(text + n, p, k);
    text[n + k] = '\0';
    s_out_raw(out, text);
}

static size_t
s_out_end(s_out_t *out)
{
    if (!out->ok) {
        return 0;
    }
    s_out_raw(out, "}");
    return out->ok ? out->len : 0;
}

static bool
s_given(const char *s)
{
    return s != NULL && s[0] != '\0';
}

size_t
chat_frame_encode_received(char *out,
                           size_t cap,
                           const char *from,
                           const char *to,
                           const char *room,
                           const char *text,
                           size_t text_len,
                           const char *id,
                           int64_t ts_ms)
{
    if ((to == NULL) == (room == NULL)) {
        return 0;
    }
    s_out_t o;
    s_out_start(&o, out, cap);
    s_out_raw(&o, "{\"type\":\"message:received\"");
    s_out_member(&o, "from", from);
    s_out_member(&o, to ? "to" : "room", to ? to : room);
    s_out_raw(&o, ",\"text\":");
    s_out_string(&o, text, text_len);
    if (s_given(id)) {
        s_out_member(&o, "id", id);
    }
    s_out_raw(&o, ",\"ts\":");
    s_out_int(&o, ts_ms);
    return s_out_end(&o);
}

size_t
chat_frame_encode_ack(char *out, size_t cap, const char *id)
{
    s_out_t o;
    s_out_start(&o, out, cap);
    s_out_raw(&o, "{\"type\":\"ack\"");
    s_out_member(&o, "id", id);
    return s_out_end(&o);
}

size_t
chat_frame_encode_typing(
    char *out, size_t cap, const char *from, const char *to, const char *room, bool start)
{
    if (to != NULL && room != NULL) {
        return 0;
    }
    s_out_t o;
    s_out_start(&o, out, cap);
    s_out_raw(&o, "{\"type\":\"typing\"");
    s_out_member(&o, "from", from);
    if (to != NULL || room != NULL) {
        s_out_member(&o, to ? "to" : "room", to ? to : room);
    }
    s_out_member(&o, "state", start ? "start" : "stop");
    return s_out_end(&o);
}

size_t
chat_frame_encode_presence(char *out, size_t cap, const char *user_id, chat_status_t status)
{
    const char *name = chat_frame_status_name(status);
    if (name[0] == '\0') {
        return 0;
    }
    s_out_t o;
    s_out_start(&o, out, cap);
    s_out_raw(&o, "{\"type\":\"presence:updated\"");
    s_out_member(&o, "userId", user_id);
    s_out_member(&o, "status", name);
    return s_out_end(&o);
}

size_t
chat_frame_encode_error(
    char *out, size_t cap, const char *code, const char *message, const char *id)
{
    s_out_t o;
    s_out_start(&o, out, cap);
    s_out_raw(&o, "{\"type\":\"error\"");
    s_out_member(&o, "code", code);
    s_out_member(&o, "message", message);
    if (s_given(id)) {
        s_out_member(&o, "id", id);
    }
    return s_out_end(&o);
}
