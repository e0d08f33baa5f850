/*  fuzz_chunk - libFuzzer target for gw_chunk.

    Treats the input as a chunked request body and checks gw_chunk's contract: every call
    consumes at most what it was given (all of it on MORE); ERROR comes with a reason; the
    verdict, its offset, its reason and data_len are the same whether the body is fed whole,
    byte by byte or in random pieces (seeded from the input); once decided, the answer sticks.

    Then it checks gw_chunk against the parser the gateway puts after it, Debian's
    http-parser (non-strict), fed a chunked request head and the same body: wherever
    http-parser ends the message, gw_chunk must have ended it at the same byte or refused a
    byte before it (else the bytes in between would be read as the next request); and where
    gw_chunk says DONE, http-parser must end the message at that byte too, with the chunk
    data gw_chunk counted. Finally the data http-parser decoded, re-encoded as canonical
    chunks, must be DONE for gw_chunk with the same data_len. Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "gw_chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  A verdict over all the calls that fed one body.
typedef struct {
    int rc;             // the deciding call's return, or MORE
    size_t at;          // DONE: body length; ERROR: offset of the bad byte; MORE: size
    const char *reason; // ERROR's reason
    uint64_t data_len;  // chunk data counted
} s_verdict_t;

//  xorshift64, seeded from the input, so a crash replays.
static uint64_t
s_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

//  Feed buf[0..len) in pieces of at most max_piece bytes (1: byte by byte; 0: whole; else
//  random sizes, zero included), then once more after the end, and check each call.
static s_verdict_t
s_feed(const char *buf, size_t len, size_t max_piece, uint64_t *rng)
{
    gw_chunk_t c;
    gw_chunk_init(&c);
    s_verdict_t v = {GW_CHUNK_MORE, len, NULL, 0};
    bool decided = false;
    size_t off = 0;
    for (;;) {
        size_t n = len - off;
        if (max_piece == 1 && n > 1)
            n = 1;
        else if (max_piece > 1)
            n = (size_t) (s_rand(rng) % ((n < max_piece ? n : max_piece) + 1));
        size_t used = SIZE_MAX;
        const char *reason = "unset";
        int rc = gw_chunk_feed(&c, n ? buf + off : NULL, n, &used, &reason);
        if (used > n)
            abort();
        if (decided) {
            if (rc != v.rc || used != 0 || reason != v.reason)
                abort();
        } else if (rc == GW_CHUNK_MORE) {
            if (used != n || reason != NULL)
                abort();
        } else if (rc == GW_CHUNK_DONE) {
            if (reason != NULL || used == 0)
                abort();
            decided = true;
            v = (s_verdict_t){rc, off + used, NULL, 0};
        } else if (rc == GW_CHUNK_ERROR) {
            if (reason == NULL || reason[0] == '\0')
                abort();
            decided = true;
            v = (s_verdict_t){rc, off + used, reason, 0};
        } else {
            abort();
        }
        off += n;
        if (off == len)
            break;
    }
    //  One more call after a verdict: the answer must not change.
    size_t used = SIZE_MAX;
    const char *reason = "unset";
    if (decided
        && (gw_chunk_feed(&c, "0\r\n\r\n", 5, &used, &reason) != v.rc || used != 0
            || reason != v.reason))
        abort();
    v.data_len = c.data_len;
    return v;
}

static bool
s_same(const s_verdict_t *a, const s_verdict_t *b)
{
    return a->rc == b->rc && a->at == b->at && a->reason == b->reason && a->data_len == b->data_len;
}

//  What http-parser makes of the same body after a chunked request head.
typedef struct {
    bool done;        // it ended the message
    size_t at;        // body bytes through the end of the message, when done
    char *data;       // the chunk data it delivered
    size_t data_len;  // its length
    size_t data_size; // room in data
} s_ref_t;

static int
s_on_body(http_parser *p, const char *at, size_t len)
{
    s_ref_t *ref = p->data;
    if (len > ref->data_size - ref->data_len)
        abort(); // more data than body bytes: cannot happen
    memcpy(ref->data + ref->data_len, at, len);
    ref->data_len += len;
    return 0;
}

static int
s_on_message_complete(http_parser *p)
{
    s_ref_t *ref = p->data;
    ref->done = true;
    http_parser_pause(p, 1); // what the gateway does: pipelined bytes wait
    return 0;
}

static const http_parser_settings s_settings = {
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

static const char s_head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

static void
s_reference(const char *buf, size_t len, s_ref_t *ref)
{
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = ref;
    size_t head = sizeof s_head - 1;
    if (http_parser_execute(&parser, &s_settings, s_head, head) != head
        || HTTP_PARSER_ERRNO(&parser) != HPE_OK)
        abort();
    if (len == 0)
        return;
    size_t n = http_parser_execute(&parser, &s_settings, buf, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser);
    if (ref->done) {
        if (err != HPE_PAUSED)
            abort();
        ref->at = n;
    }
}

//  buf's chunk data re-encoded: chunks of at most 7 bytes (so several), then 0 CRLF CRLF.
static char *
s_reencode(const char *data, size_t len, size_t *out_len)
{
    size_t chunks = (len + 6) / 7;
    char *out = malloc(chunks * 12 + len + 5);
    if (out == NULL)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < len; i += 7) {
        size_t n = len - i < 7 ? len - i : 7;
        o += (size_t) snprintf(out + o, 8, "%zx\r\n", n);
        memcpy(out + o, data + i, n);
        o += n;
        memcpy(out + o, "\r\n", 2);
        o += 2;
    }
    memcpy(out + o, "0\r\n\r\n", 5);
    *out_len = o + 5;
    return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, so ASan catches any read past the end.
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);

    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ size;
    for (size_t i = 0; i < size && i < 16; i++)
        rng = (rng ^ data[i]) * 0x100000001b3ULL;
    if (rng == 0)
        rng = 1;
    s_verdict_t whole = s_feed(buf, size, 0, &rng);
    if (whole.at > size || (whole.rc == GW_CHUNK_MORE && whole.at != size))
        abort();
    s_verdict_t bytes = s_feed(buf, size, 1, &rng);
    s_verdict_t pieces = s_feed(buf, size, 1 + (size_t) (s_rand(&rng) % 64), &rng);
    if (!s_same(&whole, &bytes) || !s_same(&whole, &pieces))
        abort();

    s_ref_t ref = {.data = malloc(size ? size : 1), .data_size = size};
    if (ref.data == NULL)
        abort();
    s_reference(buf, size, &ref);
    //  Where http-parser ends the message, gw_chunk ended it too, or refused a byte before.
    if (ref.done && !(whole.rc == GW_CHUNK_DONE && whole.at == ref.at)
        && !(whole.rc == GW_CHUNK_ERROR && whole.at < ref.at))
        abort();
    if (whole.rc == GW_CHUNK_DONE) {
        //  What gw_chunk accepts, http-parser reads the same way.
        if (!ref.done || ref.at != whole.at || ref.data_len != whole.data_len)
            abort();
        size_t len;
        char *again = s_reencode(ref.data, ref.data_len, &len);
        s_verdict_t v = s_feed(again, len, 0, &rng);
        if (v.rc != GW_CHUNK_DONE || v.at != len || v.data_len != whole.data_len)
            abort();
        free(again);
    }
    free(ref.data);
    free(buf);
    return 0;
}
