/*  fuzz_chat_frame - libFuzzer target for the chat frame layer (chatd/chat_frame).

    Feeds the input, as one client text frame, to chat_frame_parse and checks
    what chatd/chat_frame.h promises:
    - the result is 0 or -2, and the same input gives the same answer twice;
    - on -2: a code from the header's list, a non-empty printable ASCII message,
      an id that is "" or a valid client id; the error frame built from them
      (chat_frame_encode_error) parses back with jansson to the same strings;
    - on 0: the members the type requires and no others (exactly one of to and
      room where the header says so), every name and id within its rules, text
      of 1..65536 bytes with text_len its strlen; then every server frame built
      from the fields (message:received, ack, typing, presence:updated) parses
      back with jansson to the same strings, and with one byte less of buffer
      the encoder returns 0.
    Everything is freed (ASan's leak check). Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Room for the largest server frame: text escaped at worst 6 bytes a byte.
#define S_OUT_MAX (6 * CHAT_FRAME_TEXT_MAX + 4096)

static const char *const s_codes[] = {"bad_json", "bad_type", "bad_frame", "too_large", NULL};

static bool
s_valid(const char *s, size_t max, const char *extra)
{
    size_t len = strnlen(s, max + 1);
    if (len == 0 || len > max)
        return false;
    for (; *s; s++) {
        char c = *s;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && strchr(extra, c) == NULL)
            return false;
    }
    return true;
}

//  out (n bytes, NUL-terminated) must be a JSON object whose key holds want.
static json_t *
s_load(const char *out, size_t n)
{
    if (n == 0 || strlen(out) != n)
        abort();
    json_t *doc = json_loadb(out, n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc))
        abort();
    return doc;
}

static void
s_expect(json_t *doc, const char *key, const char *want)
{
    const char *got = json_string_value(json_object_get(doc, key));
    if (got == NULL || strcmp(got, want) != 0)
        abort();
}

static void
s_check_error(const chat_frame_error_t *err, char *out)
{
    size_t i = 0;
    while (s_codes[i] && strcmp(s_codes[i], err->code) != 0)
        i++;
    if (s_codes[i] == NULL || memchr(err->message, '\0', sizeof err->message) == NULL
        || err->message[0] == '\0')
        abort();
    for (const char *p = err->message; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            abort();
    if (err->id[0] != '\0' && !s_valid(err->id, CHAT_FRAME_ID_MAX, "._:-"))
        abort();
    size_t n = chat_frame_encode_error(out, S_OUT_MAX, err->code, err->message, err->id);
    json_t *doc = s_load(out, n);
    s_expect(doc, "type", "error");
    s_expect(doc, "code", err->code);
    s_expect(doc, "message", err->message);
    if (err->id[0] != '\0')
        s_expect(doc, "id", err->id);
    else if (json_object_get(doc, "id") != NULL)
        abort();
    json_decref(doc);
    if (chat_frame_encode_error(out, n, err->code, err->message, err->id) != 0)
        abort(); // no room for the NUL
}

//  The members each type has, and their rules.
static void
s_check_shape(const chat_frame_t *f)
{
    bool to = f->to[0] != '\0';
    bool room = f->room[0] != '\0';
    if (to && !s_valid(f->to, CHAT_FRAME_NAME_MAX, "._@-"))
        abort();
    if (room && !s_valid(f->room, CHAT_FRAME_NAME_MAX, "._@-"))
        abort();
    if (f->id[0] != '\0'
        && (f->type != CHAT_FRAME_MESSAGE_SEND || !s_valid(f->id, CHAT_FRAME_ID_MAX, "._:-")))
        abort();
    bool send = f->type == CHAT_FRAME_MESSAGE_SEND;
    if (send != (f->text_len > 0) || f->text_len > CHAT_FRAME_TEXT_MAX
        || strlen(f->text) != f->text_len)
        abort();
    switch (f->type) {
        case CHAT_FRAME_MESSAGE_SEND:
        case CHAT_FRAME_TYPING_START:
        case CHAT_FRAME_TYPING_STOP:
            if (to == room)
                abort();
            break;
        case CHAT_FRAME_JOIN_ROOM:
        case CHAT_FRAME_LEAVE_ROOM:
            if (to || !room)
                abort();
            break;
        case CHAT_FRAME_PRESENCE_UPDATE:
            if (to || room || chat_frame_status_name(f->status)[0] == '\0')
                abort();
            break;
        default:
            abort();
    }
}

//  Re-encode the fields as the server frames chatd would send, and parse them back.
static void
s_check_encoders(const chat_frame_t *f, char *out, int64_t ts)
{
    const char *to = f->to[0] ? f->to : NULL;
    const char *room = f->room[0] ? f->room : NULL;
    size_t n;
    json_t *doc;
    if (f->type == CHAT_FRAME_MESSAGE_SEND) {
        n = chat_frame_encode_received(out, S_OUT_MAX, "fuzz", to, room, f->text, f->text_len,
                                       f->id, ts);
        doc = s_load(out, n);
        s_expect(doc, "type", "message:received");
        s_expect(doc, to ? "to" : "room", to ? to : room);
        s_expect(doc, "text", f->text);
        if (json_integer_value(json_object_get(doc, "ts")) != ts)
            abort();
        json_decref(doc);
        if (chat_frame_encode_received(out, n, "fuzz", to, room, f->text, f->text_len, f->id, ts))
            abort();
        if (f->id[0]) {
            n = chat_frame_encode_ack(out, S_OUT_MAX, f->id);
            doc = s_load(out, n);
            s_expect(doc, "id", f->id);
            json_decref(doc);
        }
    } else if (f->type == CHAT_FRAME_TYPING_START || f->type == CHAT_FRAME_TYPING_STOP) {
        bool start = f->type == CHAT_FRAME_TYPING_START;
        n = chat_frame_encode_typing(out, S_OUT_MAX, "fuzz", to, room, start);
        doc = s_load(out, n);
        s_expect(doc, to ? "to" : "room", to ? to : room);
        s_expect(doc, "state", start ? "start" : "stop");
        json_decref(doc);
    } else if (f->type == CHAT_FRAME_PRESENCE_UPDATE) {
        n = chat_frame_encode_presence(out, S_OUT_MAX, "fuzz", f->status);
        doc = s_load(out, n);
        s_expect(doc, "status", chat_frame_status_name(f->status));
        json_decref(doc);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, not NUL-terminated, so ASan catches any read past the end.
    char *buf = malloc(size ? size : 1);
    chat_frame_t *frame = malloc(sizeof *frame);
    chat_frame_t *again = malloc(sizeof *again);
    char *out = malloc(S_OUT_MAX);
    if (buf == NULL || frame == NULL || again == NULL || out == NULL)
        abort();
    if (size)
        memcpy(buf, data, size);
    chat_frame_error_t err, err_b;
    memset(&err, 0xa5, sizeof err); // so an unfilled field shows
    int rc = chat_frame_parse(buf, size, frame, &err);
    int rc_b = chat_frame_parse(buf, size, again, &err_b);
    if ((rc != 0 && rc != -2) || rc != rc_b)
        abort();
    if (rc == -2) {
        if (strcmp(err.code, err_b.code) != 0 || strcmp(err.message, err_b.message) != 0
            || strcmp(err.id, err_b.id) != 0)
            abort();
        s_check_error(&err, out);
    } else {
        s_check_shape(frame);
        int64_t ts = 0;
        for (size_t i = 0; i < size && i < 8; i++)
            ts = (int64_t) ((uint64_t) ts << 8 | data[i]);
        s_check_encoders(frame, out, ts);
    }
    free(out);
    free(again);
    free(frame);
    free(buf);
    return 0;
}
