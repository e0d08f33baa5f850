/*  gw_chunk - strict, incremental check of a chunked request body's framing.

    A byte-at-a-time state machine over the framing (size lines, the CRLF after each chunk's
    data, the trailer section), with one shortcut: chunk data is skipped by count. Every
    state decides from the current byte alone, so nothing is buffered and the verdict cannot
    depend on where the caller's reads split the body. Once the machine is in S_DONE or
    S_ERROR it stays there, which makes the answer sticky.
*/
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_chunk.h"

#define S_TCHAR  0x01 // RFC 9110 token character
#define S_HEX    0x02 // HEXDIG, either case
#define S_QDTEXT 0x04 // qdtext: HTAB SP 0x21 0x23-0x5B 0x5D-0x7E obs-text
#define S_FIELD  0x08 // field value byte, and what a quoted-pair may escape: HTAB SP VCHAR obs-text

//  Byte classes, so each check is one load.
static const uint8_t s_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  12, 0,  0,  0,  0,  0,  0,  // 0x00 HTAB
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  // 0x10
    12, 13, 8,  13, 13, 13, 13, 13, 12, 12, 13, 13, 12, 13, 13, 12, // 0x20  !"#$%&'()*+,-./
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 12, 12, 12, 12, 12, 12, // 0x30 0123456789:;<=>?
    12, 15, 15, 15, 15, 15, 15, 13, 13, 13, 13, 13, 13, 13, 13, 13, // 0x40 @ABCDEFGHIJKLMNO
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 12, 8,  12, 13, 13, // 0x50 PQRSTUVWXYZ[\]^_
    13, 15, 15, 15, 15, 15, 15, 13, 13, 13, 13, 13, 13, 13, 13, 13, // 0x60 `abcdefghijklmno
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 12, 13, 12, 13, 0,  // 0x70 pqrstuvwxyz{|}~ DEL
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0x80 obs-text
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0x90
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0xa0
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0xb0
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0xc0
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0xd0
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0xe0
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, // 0xf0
};

//  Where the next byte falls. The size-line states come first, so that one comparison
//  tells whether a byte counts against GW_CHUNK_LINE_MAX.
enum {
    S_SIZE_START,  // first hex digit of a chunk-size
    S_SIZE,        // more hex digits, or what ends the size
    S_EXT_WS,      // BWS after the size or an ext-val: only ';' or more BWS may follow
    S_EXT_SEMI,    // after ';': BWS, then the ext-name
    S_EXT_NAME,    // in an ext-name
    S_EXT_NAME_WS, // BWS after an ext-name: '=' or ';' must follow
    S_EXT_EQ,      // after '=': BWS, then the ext-val
    S_EXT_TOKEN,   // in a token ext-val
    S_EXT_QUOTED,  // in a quoted-string ext-val
    S_EXT_QPAIR,   // after a backslash in a quoted-string
    S_EXT_CLOSED,  // after the closing quote
    S_LINE_LF,     // after the CR of a size line: LF
    S_DATA,        // chunk data, size bytes to go
    S_DATA_CR,     // CR after chunk data
    S_DATA_LF,     // LF after chunk data
    S_TR_START,    // start of a trailer field line, or the CR of the final CRLF
    S_TR_NAME,     // in a trailer field name
    S_TR_VALUE,    // in a trailer field value
    S_TR_LF,       // LF of a trailer field line
    S_FINAL_LF,    // LF of the final CRLF
    S_DONE,        // the body is complete
    S_ERROR,       // the framing is bad (c->reason)
};

void
gw_chunk_init(gw_chunk_t *c)
{
    assert(c);
    *c = (gw_chunk_t){.state = S_SIZE_START};
}

//  The value of a hex digit.
static unsigned
s_hex(uint8_t ch)
{
    return ch <= '9' ? (unsigned) (ch - '0') : (unsigned) ((ch | 0x20) - 'a' + 10);
}

//  Where a size line goes after its CRLF: a chunk's data, or the trailer section.
static uint8_t
s_after_size_line(const gw_chunk_t *c)
{
    return c->size > 0 ? S_DATA : S_TR_START;
}

//  One framing byte: the next state, or S_ERROR with *reason set.
static uint8_t
s_step(gw_chunk_t *c, uint8_t ch, const char **reason)
{
    uint8_t cls = s_class[ch];
    bool ws = ch == ' ' || ch == '\t';
    if (ch == '\n' && c->state != S_LINE_LF && c->state != S_DATA_LF && c->state != S_TR_LF
        && c->state != S_FINAL_LF) {
        *reason = c->state == S_DATA_CR ? "missing CRLF after chunk data" : "bare LF";
        return S_ERROR;
    }
    switch (c->state) {
        case S_SIZE_START:
        case S_SIZE:
            if (cls & S_HEX) {
                if (c->digits == GW_CHUNK_SIZE_DIGITS_MAX) {
                    *reason = "chunk size has too many digits";
                    return S_ERROR;
                }
                //  Past this, one more digit would make the size exceed INT64_MAX.
                if (c->size > (uint64_t) INT64_MAX >> 4) {
                    *reason = "chunk size too large";
                    return S_ERROR;
                }
                c->size = c->size << 4 | s_hex(ch);
                c->digits++;
                return S_SIZE;
            }
            if (c->state == S_SIZE_START) {
                *reason = "invalid chunk size";
                return S_ERROR;
            }
            if (ch == '\r')
                return S_LINE_LF;
            if (ch == ';')
                return S_EXT_SEMI;
            //  BWS may be HTAB too, but not right after the size: http-parser refuses that,
            //  and the gateway should have one verdict, with this module's reason.
            if (ch == ' ')
                return S_EXT_WS;
            *reason = "invalid chunk size";
            return S_ERROR;
        case S_EXT_WS:
            if (ch == ';')
                return S_EXT_SEMI;
            if (ws)
                return S_EXT_WS;
            break;
        case S_EXT_SEMI:
            if (cls & S_TCHAR)
                return S_EXT_NAME;
            if (ws)
                return S_EXT_SEMI;
            break;
        case S_EXT_NAME:
            if (cls & S_TCHAR)
                return S_EXT_NAME;
            if (ch == '=')
                return S_EXT_EQ;
            if (ch == ';')
                return S_EXT_SEMI;
            if (ch == '\r')
                return S_LINE_LF;
            if (ws)
                return S_EXT_NAME_WS;
            break;
        case S_EXT_NAME_WS:
            if (ch == '=')
                return S_EXT_EQ;
            if (ch == ';')
                return S_EXT_SEMI;
            if (ws)
                return S_EXT_NAME_WS;
            break;
        case S_EXT_EQ:
            if (cls & S_TCHAR)
                return S_EXT_TOKEN;
            if (ch == '"')
                return S_EXT_QUOTED;
            if (ws)
                return S_EXT_EQ;
            break;
        case S_EXT_TOKEN:
            if (cls & S_TCHAR)
                return S_EXT_TOKEN;
            if (ch == ';')
                return S_EXT_SEMI;
            if (ch == '\r')
                return S_LINE_LF;
            if (ws)
                return S_EXT_WS;
            break;
        case S_EXT_QUOTED:
            if (ch == '"')
                return S_EXT_CLOSED;
            if (ch == '\\')
                return S_EXT_QPAIR;
            if (cls & S_QDTEXT)
                return S_EXT_QUOTED;
            break;
        case S_EXT_QPAIR:
            if (cls & S_FIELD)
                return S_EXT_QUOTED;
            break;
        case S_EXT_CLOSED:
            if (ch == ';')
                return S_EXT_SEMI;
            if (ch == '\r')
                return S_LINE_LF;
            if (ws)
                return S_EXT_WS;
            break;
        case S_LINE_LF:
            if (ch == '\n')
                return s_after_size_line(c);
            *reason = "bare CR";
            return S_ERROR;
        case S_DATA_CR:
            if (ch == '\r')
                return S_DATA_LF;
            *reason = "missing CRLF after chunk data";
            return S_ERROR;
        case S_DATA_LF:
            if (ch == '\n') {
                c->size = 0;
                c->digits = 0;
                c->count = 0;
                return S_SIZE_START;
            }
            *reason = "missing CRLF after chunk data";
            return S_ERROR;
        case S_TR_START:
            if (ch == '\r')
                return S_FINAL_LF;
            if (ws) {
                *reason = "obs-fold in trailer";
                return S_ERROR;
            }
            if (cls & S_TCHAR)
                return S_TR_NAME;
            *reason = "invalid trailer field";
            return S_ERROR;
        case S_TR_NAME:
            if (cls & S_TCHAR)
                return S_TR_NAME;
            if (ch == ':')
                return S_TR_VALUE;
            *reason = ws ? "space before colon in trailer" : "invalid trailer field";
            return S_ERROR;
        case S_TR_VALUE:
            if (cls & S_FIELD)
                return S_TR_VALUE;
            if (ch == '\r')
                return S_TR_LF;
            *reason = "invalid trailer value";
            return S_ERROR;
        case S_TR_LF:
        case S_FINAL_LF:
            if (ch == '\n')
                return c->state == S_TR_LF ? S_TR_START : S_DONE;
            *reason = "bare CR";
            return S_ERROR;
        default:
            assert(false); // S_DATA, S_DONE and S_ERROR never reach s_step
            break;
    }
    //  Only the extension states get here, on a byte their grammar has no place for.
    *reason = "invalid chunk extension";
    return S_ERROR;
}

//  Count a framing byte against its limit; false when it breaks the limit (*reason set).
static bool
s_count(gw_chunk_t *c, uint8_t next, const char **reason)
{
    if (c->state <= S_EXT_CLOSED) {
        //  The CR that ends a size line is not part of it.
        if (next == S_LINE_LF)
            return true;
        if (++c->count > GW_CHUNK_LINE_MAX) {
            *reason = "chunk line too long";
            return false;
        }
        return true;
    }
    if (c->state >= S_TR_START && c->state <= S_TR_LF && next != S_FINAL_LF) {
        //  A field line still needs its ':' after a name byte and its CR LF after any byte
        //  before them; counting those ahead refuses a line as soon as it cannot fit.
        c->count++;
        uint32_t ahead = next == S_TR_NAME ? 3 : next == S_TR_VALUE ? 2 : next == S_TR_LF ? 1 : 0;
        if (c->count + ahead > GW_CHUNK_TRAILER_MAX) {
            *reason = "trailer section too large";
            return false;
        }
    }
    return true;
}

int
gw_chunk_feed(gw_chunk_t *c, const char *data, size_t len, size_t *used, const char **reason)
{
    assert(c);
    assert(data || len == 0);
    const char *why = NULL;
    size_t i = 0;
    while (i < len && c->state != S_DONE && c->state != S_ERROR) {
        if (c->state == S_DATA) {
            size_t n = len - i;
            if ((uint64_t) n > c->size)
                n = (size_t) c->size;
            c->size -= n;
            c->data_len = c->data_len > UINT64_MAX - n ? UINT64_MAX : c->data_len + n;
            i += n;
            if (c->size == 0)
                c->state = S_DATA_CR;
            continue;
        }
        uint8_t next = s_step(c, (uint8_t) data[i], &why);
        if (next != S_ERROR && !s_count(c, next, &why))
            next = S_ERROR;
        if (next == S_ERROR) {
            c->reason = why;
            c->state = S_ERROR;
            break;
        }
        if (next == S_TR_START && c->state == S_LINE_LF)
            c->count = 0; // the trailer section starts after the last chunk's line
        c->state = next;
        i++;
    }
    int rc;
    if (c->state == S_ERROR) {
        rc = GW_CHUNK_ERROR;
        why = c->reason;
    } else {
        rc = c->state == S_DONE ? GW_CHUNK_DONE : GW_CHUNK_MORE;
        why = NULL;
    }
    if (used)
        *used = i;
    if (reason)
        *reason = why;
    return rc;
}
