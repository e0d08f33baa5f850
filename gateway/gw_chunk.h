/*  gw_chunk - strict, incremental check of a chunked request body's framing (RFC 9112 §7.1).

    http-parser 2.9.4 as Debian builds it (non-strict) accepts junk after chunk data
    ("5\r\nhelloXX0\r\n\r\n"), a bare CR in a chunk-size line and an LF in a chunk
    extension. A proxy in front of us that forwards framing verbatim would read such a body
    differently, so the gateway runs the body bytes through gw_chunk before http-parser sees
    them and answers 400 when the framing is not exactly RFC 9112's. gw_chunk only judges the
    framing: it never copies or decodes the data, allocates nothing, and its whole state is a
    gw_chunk_t the caller embeds. Chunk data is skipped by count, so the cost is in the
    framing bytes only.

    What it accepts, and nothing else (reasons are the static strings in quotes):
    - chunk-size: 1 to GW_CHUNK_SIZE_DIGITS_MAX (16) hex digits, either case, leading zeros
      allowed, value at most INT64_MAX (so no peer, signed or not, can read it as another
      number). No sign, no "0x", no whitespace before or between the digits ("invalid
      chunk size", "chunk size has too many digits", "chunk size too large").
    - chunk-ext: *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), BWS = *( SP / HTAB ),
      ext-name a token, ext-val a token or a quoted-string (qdtext and quoted-pair: HTAB,
      SP, VCHAR, obs-text; no NUL, CR, LF, DEL or other CTL). Whitespace only where that
      grammar puts BWS: after the size only when a ";" follows ("5 ;a" yes, "5 " no), and
      never at the end of the line ("invalid chunk extension"). One exception, stricter
      than the RFC: the byte right after the size may be SP but not HTAB ("invalid chunk
      size"), because http-parser 2.9.4 refuses HTAB there; so every body gw_chunk accepts,
      http-parser reads the same way (tests/fuzz/fuzz_chunk.c checks it). The size line
      (size and extensions, without CRLF) is at most GW_CHUNK_LINE_MAX bytes ("chunk line
      too long").
    - every framing line ends in exactly CRLF: an LF without CR before it is "bare LF", a
      CR not followed by LF is "bare CR" (in chunk data both are just data).
    - chunk-data: exactly chunk-size bytes, then CRLF ("missing CRLF after chunk data").
    - last-chunk: a size of 0 (any number of zeros, within the digit limit) [chunk-ext] CRLF,
      then the trailer section: field lines `field-name ":" field-value CRLF`, name a token
      directly followed by ':' ("invalid trailer field", "space before colon in trailer"),
      value HTAB / SP / VCHAR / obs-text ("invalid trailer value"), no line starting with SP
      or HTAB ("obs-fold in trailer"); the field lines with their CRLFs at most
      GW_CHUNK_TRAILER_MAX bytes ("trailer section too large"); then the final CRLF.

    Errors are found in byte order and each byte is judged once, when it arrives, so the
    verdict (and the reason, and the offset of the offending byte) does not depend on how
    the body is split across calls.
*/
#ifndef GW_CHUNK_H
#define GW_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#define GW_CHUNK_SIZE_DIGITS_MAX 16   // hex digits of a chunk-size, leading zeros included
#define GW_CHUNK_LINE_MAX        4096 // chunk-size line (size and extensions), without CRLF
#define GW_CHUNK_TRAILER_MAX     16384 // trailer field lines with their CRLFs, without the final CRLF

//  What gw_chunk_feed says.
enum {
    GW_CHUNK_ERROR = -1, // the framing is bad; *reason says why
    GW_CHUNK_MORE = 0,   // all bytes given belong to the body, and it is not complete yet
    GW_CHUNK_DONE = 1,   // the last chunk and the trailer section are complete
};

//  The checker's state. The caller embeds it and sets it up with gw_chunk_init; the fields
//  are gw_chunk's own, except data_len, which the caller may read.
typedef struct {
    uint64_t size;      // chunk-size being read, then chunk-data bytes still to come
    uint64_t data_len;  // chunk-data bytes seen so far, all chunks (saturates at UINT64_MAX)
    const char *reason; // static text, set once the framing is bad
    uint32_t count;     // bytes of the current size line, or of the trailer section so far
    uint8_t state;      // where in the grammar the next byte falls
    uint8_t digits;     // hex digits of the chunk-size read so far
} gw_chunk_t;

//  Start checking a new body (also to reuse c for the next request).
void gw_chunk_init(gw_chunk_t *c);

//  Check the next len bytes of the body, data[0..len), which follow the bytes of the earlier
//  calls. The body starts right after the head's empty line (gw_prescan's head_len). Feed
//  every body byte exactly once and in order, split as you like; check bytes before handing
//  them to http-parser, so that bad framing never reaches its callbacks. Bytes gw_chunk
//  accepted, http-parser consumes in full (it ends the message exactly at DONE's *used):
//  if it stops short without an error of its own, treat that as an error too.
//  Returns:
//  - GW_CHUNK_MORE: every byte is fine and the body goes on; *used is len.
//  - GW_CHUNK_DONE: the body ends with data[*used - 1] (the LF of the final CRLF). The bytes
//    from data[*used] on are not looked at: they are the next pipelined request, so give
//    http-parser only *used bytes of this call.
//  - GW_CHUNK_ERROR: data[*used] is the first byte that breaks the framing; *reason is a
//    static string for logs ("bare LF", "invalid chunk size", ...). Answer 400.
//  Once it has returned DONE or ERROR, every later call returns the same, with *used 0 and
//  (for ERROR) the same reason, until gw_chunk_init. *reason is set to NULL unless ERROR.
//  used and reason may be NULL; data may be NULL when len is 0. O(framing bytes).
int gw_chunk_feed(gw_chunk_t *c, const char *data, size_t len, size_t *used, const char **reason);

#endif
