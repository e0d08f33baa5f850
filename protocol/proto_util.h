/*  proto_util - small helpers every actor uses: allocation that aborts on
    out-of-memory (as czmq's safe_malloc and redis's zmalloc do), bounded
    string copies and the FNV-1a hash.
*/
#ifndef PROTO_UTIL_H
#define PROTO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Allocate or abort with a message on stderr. Never return NULL.
void *proto_xmalloc(size_t size);
void *proto_xcalloc(size_t count, size_t size);
void *proto_xrealloc(void *ptr, size_t size);
char *proto_xstrdup(const char *s);

//  Copy src into dst of capacity cap, always NUL-terminated. Returns true if
//  the whole of src fitted.
bool proto_strlcpy(char *dst, const char *src, size_t cap);

//  A socket error as a short reason for logs and failure reports:
//  "refused", "reset", "timeout", "unreachable", else "connect error".
const char *proto_errno_reason(int err);

//  ms since the epoch as ISO-8601 UTC with milliseconds
//  ("2026-12-06T22:40:01.123Z") into out (at least 25 bytes).
void proto_iso8601_ms(uint64_t ms, char *out, size_t cap);

//  The value of a hexadecimal digit (either case), or -1.
int proto_hex_digit(char c);

//  The value of a base64 digit (RFC 4648 standard alphabet), or -1.
int proto_b64_digit(char c);

//  True if s starts with prefix.
bool proto_starts_with(const char *s, const char *prefix);

//  A chat user id or room name (SPEC §9, docs/chat.md): 1..64 bytes of
//  A-Z a-z 0-9 . _ @ - (never ':', which separates Redis key parts). The one
//  check the gateway (a token's sub, userId) and chatd (frames) share.
#define PROTO_CHAT_NAME_MAX 64
bool proto_chat_name_ok(const char *s, size_t len);

#define PROTO_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

//  64-bit FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/), the one copy
//  of it: fast and well spread for short keys, not for anything an attacker
//  must not steer. proto_fnv1a hashes len bytes, proto_fnv1a_str a
//  NUL-terminated string (NULL hashes as ""). To hash pieces in a row, start
//  from PROTO_FNV1A_OFFSET and feed each to proto_fnv1a_more (or one byte to
//  proto_fnv1a_byte); proto_fnv1a(d, n) is proto_fnv1a_more(OFFSET, d, n).
#define PROTO_FNV1A_OFFSET 0xcbf29ce484222325ull // offset basis
#define PROTO_FNV1A_PRIME  0x100000001b3ull      // prime

uint64_t proto_fnv1a(const void *data, size_t len);
uint64_t proto_fnv1a_str(const char *s);
uint64_t proto_fnv1a_more(uint64_t hash, const void *data, size_t len);

static inline uint64_t
proto_fnv1a_byte(uint64_t hash, uint8_t byte)
{
    return (hash ^ byte) * PROTO_FNV1A_PRIME;
}

//  A string literal and its length, for (pointer, length) arguments:
//  f(buf, PROTO_LIT("Bad Gateway")) is f(buf, "Bad Gateway", 11), counted by
//  the compiler. s must be a string literal (sizeof of a pointer is wrong).
#define PROTO_LIT(s) ("" s ""), (sizeof(s) - 1)

#endif
