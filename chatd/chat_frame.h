/*  chat_frame - the chat protocol's frame layer (SPEC §9): one client text frame
    in, server frames out.

    chat_frame_parse reads ONE client frame (JSON text, not NUL-terminated) into a
    chat_frame_t that holds no pointers: every string is copied into a bounded
    array of the struct, the message text included (so the struct is about 65 KiB:
    keep one per actor or allocate it, rather than one per call on a small stack).
    Nothing is left to free, whether it succeeds or not.

    Client frames (the "type" member picks one; unknown members are ignored):
    - message:send     exactly one of "to" (user id) or "room"; "text" 1..65536 bytes
                       of UTF-8 (no U+0000); "id" optional, 1..64 of [A-Za-z0-9._:-]
    - join:room        "room"
    - leave:room       "room"
    - typing:start     exactly one of "to" or "room"
    - typing:stop      exactly one of "to" or "room"
    - presence:update  "status": online | away | busy | offline
    A user id or room name is 1..64 bytes of [A-Za-z0-9._@-]. A member of the wrong
    JSON type is an error, null included ({"to":"bob","room":null} is refused).

    Errors (chat_frame_error_t.code; the message names the field and the rule):
    - bad_json   not JSON, not an object, a duplicate key, or a string with U+0000
    - bad_type   "type" missing, not a string, or not one of the six above
    - bad_frame  a member missing, of the wrong type, out of bounds, or in conflict
    - too_large  more than CHAT_FRAME_MAX bytes (SPEC §9: the session closes, 1009)
    Fields are checked in a fixed order: type, then id, then to/room, then text or
    status; the first bad one is reported.

    Encoders write one server frame into a caller buffer, NUL-terminated, and return
    its length without the NUL, or 0 if it does not fit (out is then unspecified).
    Strings are escaped by proto_log_json_string (a byte that is not valid UTF-8 is
    written as \u00XX of the byte), so the output is always valid JSON.
*/
#ifndef CHAT_FRAME_H
#define CHAT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT_FRAME_MAX         (1024 * 1024) // bytes of one client frame (SPEC §9)
#define CHAT_FRAME_NAME_MAX    64            // bytes of a user id or room name
#define CHAT_FRAME_ID_MAX      64            // bytes of a client message id
#define CHAT_FRAME_TEXT_MAX    65536         // bytes of a message text
#define CHAT_FRAME_CODE_MAX    16            // room for an error code and its NUL
#define CHAT_FRAME_MESSAGE_MAX 160           // room for an error message and its NUL

typedef enum {
    CHAT_FRAME_MESSAGE_SEND = 1, // message:send
    CHAT_FRAME_JOIN_ROOM,        // join:room
    CHAT_FRAME_LEAVE_ROOM,       // leave:room
    CHAT_FRAME_TYPING_START,     // typing:start
    CHAT_FRAME_TYPING_STOP,      // typing:stop
    CHAT_FRAME_PRESENCE_UPDATE,  // presence:update
} chat_frame_type_t;

typedef enum {
    CHAT_STATUS_ONLINE = 0, // online
    CHAT_STATUS_AWAY,       // away
    CHAT_STATUS_BUSY,       // busy
    CHAT_STATUS_OFFLINE,    // offline
} chat_status_t;

typedef struct {
    chat_frame_type_t type;             // which frame this is
    char to[CHAT_FRAME_NAME_MAX + 1];   // user addressed; "" if none
    char room[CHAT_FRAME_NAME_MAX + 1]; // room addressed (or joined, left); "" if none
    char id[CHAT_FRAME_ID_MAX + 1];     // message:send's client id; "" if none
    chat_status_t status;               // presence:update's status
    size_t text_len;                    // bytes of text, without the NUL
    char text[CHAT_FRAME_TEXT_MAX + 1]; // message:send's text, NUL-terminated; "" otherwise
} chat_frame_t;

typedef struct {
    char code[CHAT_FRAME_CODE_MAX];       // bad_json, bad_type, bad_frame or too_large
    char message[CHAT_FRAME_MESSAGE_MAX]; // printable ASCII, names the field ("field 'room': ...")
    char id[CHAT_FRAME_ID_MAX + 1];       // the frame's valid client id, to echo; "" if none
} chat_frame_error_t;

//  Parse one client frame of len bytes (need not end in NUL). Returns 0 with
//  *frame filled, or -2 for a bad frame with *err filled (*frame then holds
//  nothing useful). Both are owned by the caller and hold no pointers.
int chat_frame_parse(const char *data, size_t len, chat_frame_t *frame, chat_frame_error_t *err);

//  The wire name of a type ("message:send") or of a status ("away"); "" if unknown.
const char *chat_frame_type_name(chat_frame_type_t type);

//  True if name is a valid user id or room name (1..64 of A-Z a-z 0-9 . _ @ -).
bool chat_frame_name_ok(const char *name);
const char *chat_frame_status_name(chat_status_t status);

//  {"type":"message:received","from":..,"to"|"room":..,"text":..,"id":..,"ts":..}
//  Exactly one of to and room is non-NULL (else returns 0); id NULL or "" is left
//  out; text is text_len bytes; ts_ms is milliseconds since the epoch.
size_t chat_frame_encode_received(char *out,
                                  size_t cap,
                                  const char *from,
                                  const char *to,
                                  const char *room,
                                  const char *text,
                                  size_t text_len,
                                  const char *id,
                                  int64_t ts_ms);

//  {"type":"ack","id":..}
size_t chat_frame_encode_ack(char *out, size_t cap, const char *id);

//  {"type":"typing","from":..,"to"|"room":..,"state":"start"|"stop"}
//  At most one of to and room is non-NULL (both NULL: neither is written, as in
//  SPEC §9's example; both set: returns 0).
size_t chat_frame_encode_typing(
    char *out, size_t cap, const char *from, const char *to, const char *room, bool start);

//  {"type":"presence:updated","userId":..,"status":..}; returns 0 for an unknown status.
size_t chat_frame_encode_presence(char *out, size_t cap, const char *user_id, chat_status_t status);

//  {"type":"error","code":..,"message":..[,"id":..]}; id NULL or "" is left out.
size_t chat_frame_encode_error(
    char *out, size_t cap, const char *code, const char *message, const char *id);

#endif
