/*  gw_prescan - strict checks on a raw HTTP/1.1 request head before http-parser sees it.

    http-parser 2.9.4 accepts bare LF, obs-fold and "Host :", so the gateway runs every
    request head through gw_prescan first and answers SPEC §3's 400/414/431 itself. The
    scan is one pass over the bytes, allocates nothing and keeps no state between calls:
    call it again on the whole buffer when more bytes arrive (a head is at most
    GW_PRESCAN_HEAD_MAX bytes, so the rescans stay cheap and bounded).

    What it enforces (status 400 unless said; reasons are the static strings in quotes):
    - at most 2 empty lines (CRLF) before the request line ("empty lines before request line");
    - request line `method SP request-target SP HTTP/1.0|HTTP/1.1 CRLF`: method a token;
      target visible ASCII only, origin-form ("/..."), "*" for OPTIONS, or absolute-form
      "http(s)://authority..." (authority-form, i.e. CONNECT, is refused); single spaces;
      content over GW_PRESCAN_LINE_MAX bytes: 414 "request line too long";
    - every LF preceded by CR ("bare LF"), every CR followed by LF ("bare CR",
      "CR in header value"); no NUL in a value ("NUL in header value");
    - no field line starting with SP/HTAB ("obs-fold"); field names are tokens directly
      followed by ':' ("space before colon", "invalid field name", "empty field name",
      "missing colon");
    - Content-Length: 1*DIGIT, OWS trimmed, at most 2^63-1 ("invalid Content-Length"); a
      second Content-Length field or a list ("5, 5") is "duplicate Content-Length";
    - Transfer-Encoding: one field, value "chunked" (any case), nothing else: other codings
      and lists are "unsupported Transfer-Encoding" (400, not 501: we never decode them),
      a second field "duplicate Transfer-Encoding", with Content-Length
      "Content-Length with Transfer-Encoding", in HTTP/1.0 "Transfer-Encoding in HTTP/1.0";
    - Host: required in HTTP/1.1 ("missing Host"), at most once ("duplicate Host"), not
      empty ("empty Host"), only [A-Za-z0-9] and ". - : [ ] _" ("invalid Host");
    - the header section (the field lines with their CRLFs, not the final empty line) at
      most GW_PRESCAN_HEADERS_MAX bytes (431 "header section too large") and
      GW_PRESCAN_FIELDS_MAX fields (431 "too many header fields").

    Errors are found in byte order, so a violation is reported as soon as the bytes that
    make it certain are in the buffer, whatever way the head was split into reads: once a
    prefix gives -1, every longer buffer gives -1 with the same status. Field values are
    judged as they arrive ("Content-Length: x" fails before its CRLF).
*/
#ifndef GW_PRESCAN_H
#define GW_PRESCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_PRESCAN_LINE_MAX    8192  // request line, without its CRLF
#define GW_PRESCAN_HEADERS_MAX 16384 // field lines with their CRLFs, without the empty line
#define GW_PRESCAN_FIELDS_MAX  100   // field lines
//  The longest head gw_prescan accepts: 2 leading CRLFs, request line, header section and
//  empty line. Given this many bytes it never returns 0, so it is the read buffer a client
//  connection needs.
#define GW_PRESCAN_HEAD_MAX (4 + GW_PRESCAN_LINE_MAX + 2 + GW_PRESCAN_HEADERS_MAX + 2)

typedef struct {
    size_t head_len;         // bytes through the blank line (incl. leading CRLFs skipped)
    int status;              // 0 when valid, else 400, 414 or 431
    const char *reason;      // static text for logs: "bare LF", "obs-fold", ...; NULL when valid
    size_t nfields;          // header fields counted
    bool has_body;           // Content-Length > 0 or chunked
    bool chunked;            // Transfer-Encoding: chunked
    uint64_t content_length; // when !chunked
} gw_prescan_t;

//  Scan buf[0..len), which may hold only the start of a head. Returns 1 when a
//  complete, valid head was found (out->head_len, framing filled), 0 when more
//  bytes are needed and nothing is wrong so far, -1 on a violation
//  (out->status, out->reason). Limits: request line at most GW_PRESCAN_LINE_MAX
//  (8192) bytes without its CRLF (else 414, detected as soon as the line is
//  that long without a CRLF); header section (after the request line) at most
//  GW_PRESCAN_HEADERS_MAX (16384) bytes and GW_PRESCAN_FIELDS_MAX (100) fields
//  (else 431, detected as early as possible). Never reads outside buf; O(len).
//  Bytes after the head (a pipelined request, a body) are never looked at.
//  out is always overwritten; buf may be NULL when len is 0.
int gw_prescan(const char *buf, size_t len, gw_prescan_t *out);

#endif
