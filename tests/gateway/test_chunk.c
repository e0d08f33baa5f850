/*  test_chunk - unit tests for gw_chunk, the strict chunked-body framing check.

    A table of bodies, each with the verdict expected (done, more, or error with its reason).
    Every body is fed whole, byte by byte, and in random splits (a fixed seed, so a failure
    repeats), and must get the same verdict, at the same offset, every time: the answer must
    not depend on how reads split the body. Then the limits (size line, trailer section),
    each just at and just past the edge, and the calling conventions (sticky answers,
    pipelined bytes, data_len).
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

#include "../../gateway/gw_chunk.h"

//  One body and the verdict it must get.
typedef struct {
    const char *name;   // what the case shows
    const char *body;   // the bytes (may hold NUL)
    size_t len;         // their count
    int rc;             // GW_CHUNK_DONE, GW_CHUNK_MORE or GW_CHUNK_ERROR
    size_t tail;        // when DONE: bytes after the body (pipelined), not to be consumed
    const char *reason; // when ERROR
} t_case_t;

#define DONE(name, body)                                                                           \
    {                                                                                              \
        name, body, sizeof(body) - 1, GW_CHUNK_DONE, 0, NULL                                       \
    }
#define DONE_TAIL(name, body, tail)                                                                \
    {                                                                                              \
        name, body, sizeof(body) - 1, GW_CHUNK_DONE, tail, NULL                                    \
    }
#define MORE(name, body)                                                                           \
    {                                                                                              \
        name, body, sizeof(body) - 1, GW_CHUNK_MORE, 0, NULL                                       \
    }
#define BAD(name, body, reason)                                                                    \
    {                                                                                              \
        name, body, sizeof(body) - 1, GW_CHUNK_ERROR, 0, reason                                    \
    }

#define END "0\r\n\r\n"

static const t_case_t t_cases[] = {
    // valid bodies
    DONE("empty body", END),
    DONE("one chunk", "5\r\nhello\r\n" END),
    DONE("several chunks", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n" END),
    DONE("uppercase hex", "A\r\n0123456789\r\n" END),
    DONE("lowercase hex", "a\r\n0123456789\r\n" END),
    DONE("hex of either case", "B\r\nhello world\r\nc\r\nhello world!\r\n" END),
    DONE("leading zeros", "0005\r\nhello\r\n000\r\n\r\n"),
    DONE("16 digits with leading zeros", "0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n"),
    DONE("data holding CRLF and a last-chunk", "7\r\n0\r\n\r\nab\r\n" END),
    DONE("data holding NUL, bare CR and LF", "4\r\n\0\r\n\n\r\n" END),
    DONE("extension name only", "5;name\r\nhello\r\n" END),
    DONE("extension token values", "5;a=b;c=1.0\r\nhello\r\n" END),
    DONE("extension quoted value", "5;a=\"x y;z=\\\"q\\\\\"\r\nhello\r\n" END),
    DONE("extension empty quoted value", "5;a=\"\"\r\nhello\r\n" END),
    DONE("extension quoted obs-text and HTAB", "5;a=\"\xc3\xa9\t\\\xff\"\r\nhello\r\n" END),
    DONE("BWS around ; and =", "5 ; a = b ;c\t=\t\"d\"\t;e\r\nhello\r\n" END),
    DONE("SP then HTAB before ;", "5 \t;a\r\nhello\r\n" END),
    DONE("extension on the last chunk", "0;done=1\r\n\r\n"),
    DONE("trailer fields", "0\r\nX-Sum: abc\r\nY:\r\nZ:\tv w \r\n\r\n"),
    DONE("trailer value with obs-text", "0\r\nX: \xc3\xa9\x80\r\n\r\n"),
    DONE("trailer name is any token", "0\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"),
    DONE_TAIL("pipelined request after the body", END "GET / HTTP/1.1\r\n", 16),
    DONE_TAIL("junk after the body is not judged", "1\r\nx\r\n" END "\n\r\0 ", 4),
    DONE_TAIL("a second body after the first", END END, 5),

    // not complete yet
    MORE("nothing yet", ""),
    MORE("size only", "5"),
    MORE("size and CR", "5\r"),
    MORE("part of the data", "5\r\nhel"),
    MORE("data without its CRLF", "5\r\nhello"),
    MORE("data and CR", "5\r\nhello\r"),
    MORE("next size line", "5\r\nhello\r\n1"),
    MORE("0 CRLF without the final CRLF", "0\r\n"),
    MORE("0 CRLF CR", "0\r\n\r"),
    MORE("inside a trailer field", "0\r\nX: y"),
    MORE("after a trailer field", "0\r\nX: y\r\n"),
    MORE("inside a quoted extension", "5;a=\"x"),
    MORE("BWS after the size", "5 "),
    MORE("the largest size", "7fffffffffffffff\r\nabc"),

    // the three cases of issue 6, item 7
    BAD("junk after chunk data", "5\r\nhelloXX0\r\n\r\n", "missing CRLF after chunk data"),
    BAD("bare CR in a size line", "5\rX\nhello\r\n" END, "bare CR"),
    BAD("LF in a chunk extension", "5;a\nb\r\nhello\r\n" END, "bare LF"),

    // chunk-size
    BAD("leading +", "+5\r\nhello\r\n" END, "invalid chunk size"),
    BAD("leading -", "-5\r\nhello\r\n" END, "invalid chunk size"),
    BAD("0x prefix", "0x5\r\nhello\r\n" END, "invalid chunk size"),
    BAD("space before the size", " 5\r\nhello\r\n" END, "invalid chunk size"),
    BAD("HTAB before the size", "\t5\r\nhello\r\n" END, "invalid chunk size"),
    BAD("space inside the size", "1 0\r\n0123456789abcdef\r\n" END, "invalid chunk extension"),
    BAD("space after the size", "5 \r\nhello\r\n" END, "invalid chunk extension"),
    BAD("HTAB after the size", "5\t\r\nhello\r\n" END, "invalid chunk size"),
    BAD("HTAB right after the size, before ;", "5\t;a\r\nhello\r\n" END, "invalid chunk size"),
    BAD("empty size", "\r\nhello\r\n" END, "invalid chunk size"),
    BAD("no size before ;", ";a\r\nhello\r\n" END, "invalid chunk size"),
    BAD("not hex", "g\r\n" END, "invalid chunk size"),
    BAD("hex then junk", "5g\r\nhello\r\n" END, "invalid chunk size"),
    BAD("NUL in the size", "5\0\r\nhello\r\n" END, "invalid chunk size"),
    BAD("comma after the size", "5,\r\nhello\r\n" END, "invalid chunk size"),
    BAD("2^63", "8000000000000000\r\n", "chunk size too large"),
    BAD("2^64-1", "ffffffffffffffff\r\n", "chunk size too large"),
    BAD("2^64 (wraps to 0 in 64 bits)",
        "10000000000000000\r\n" END,
        "chunk size has too many digits"),
    BAD("17 digits with leading zeros",
        "00000000000000005\r\nhello\r\n" END,
        "chunk size has too many digits"),
    BAD("a huge size", "123456789abcdef0123456789\r\n", "chunk size has too many digits"),

    // line endings
    BAD("LF-only size line", "5\nhello\r\n" END, "bare LF"),
    BAD("LF-only after data", "5\r\nhello\n" END, "missing CRLF after chunk data"),
    BAD("LF-only last chunk", "5\r\nhello\r\n0\n\r\n", "bare LF"),
    BAD("LF-only final line", "0\r\n\n", "bare LF"),
    BAD("LF-only trailer line", "0\r\nX: y\n\r\n", "bare LF"),
    BAD("LF-only everywhere", "5\nhello\n0\n\n", "bare LF"),
    BAD("CR-only size line", "5\rhello\r\n" END, "bare CR"),
    BAD("CR CR LF", "5\r\r\nhello\r\n" END, "bare CR"),
    BAD("CR-only after data", "5\r\nhello\r0\r\n\r\n", "missing CRLF after chunk data"),
    BAD("CR-only final line", "0\r\n\r\r", "bare CR"),
    BAD("CR-only trailer line", "0\r\nX: y\rZ: w\r\n\r\n", "bare CR"),
    BAD("CR inside an extension", "5;a\rb\r\nhello\r\n" END, "bare CR"),
    BAD("LF inside a quoted extension", "5;a=\"b\nc\"\r\nhello\r\n" END, "bare LF"),
    BAD("CR inside a quoted extension",
        "5;a=\"b\r\nc\"\r\nhello\r\n" END,
        "invalid chunk extension"),

    // chunk data
    BAD("data shorter than the size", "5\r\nhell\r\n" END, "missing CRLF after chunk data"),
    BAD("data longer than the size", "5\r\nhello!\r\n" END, "missing CRLF after chunk data"),
    BAD("no CRLF after data, next size", "1\r\nx1\r\nx\r\n" END, "missing CRLF after chunk data"),

    // chunk-ext
    BAD("NUL in an extension name", "5;a\0b\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("NUL in a quoted extension", "5;a=\"\0\"\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("NUL in a token extension", "5;a=b\0\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("NUL escaped in a quoted extension",
        "5;a=\"\\\0\"\r\nhello\r\n" END,
        "invalid chunk extension"),
    BAD("DEL in a quoted extension", "5;a=\"\x7f\"\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("CTL in a quoted extension", "5;a=\"\x01\"\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("empty extension name", "5;\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("empty name before =", "5;=b\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("empty value", "5;a=\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("trailing ;", "5;a=b;\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("space inside a token value", "5;a=b c\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("space inside a name", "5;a b\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("space at the end of the line", "5;a=b \r\nhello\r\n" END, "invalid chunk extension"),
    BAD("space after a name at the end", "5;a \r\nhello\r\n" END, "invalid chunk extension"),
    BAD("junk after a quoted value", "5;a=\"b\"c\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("unterminated quoted value", "5;a=\"b\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("separator as a name", "5;a@b\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("two =", "5;a==b\r\nhello\r\n" END, "invalid chunk extension"),
    BAD("obs-text in a token value", "5;a=\xc3\xa9\r\nhello\r\n" END, "invalid chunk extension"),

    // trailer section
    BAD("obs-fold in a trailer", "0\r\nX: a\r\n b\r\n\r\n", "obs-fold in trailer"),
    BAD("HTAB fold in a trailer", "0\r\nX: a\r\n\tb\r\n\r\n", "obs-fold in trailer"),
    BAD("trailer line starting with space", "0\r\n X: a\r\n\r\n", "obs-fold in trailer"),
    BAD("space before colon in a trailer", "0\r\nX : a\r\n\r\n", "space before colon in trailer"),
    BAD("empty trailer name", "0\r\n: a\r\n\r\n", "invalid trailer field"),
    BAD("trailer without colon", "0\r\nX\r\n\r\n", "invalid trailer field"),
    BAD("separator in a trailer name", "0\r\nX(y): a\r\n\r\n", "invalid trailer field"),
    BAD("NUL in a trailer name", "0\r\nX\0: a\r\n\r\n", "invalid trailer field"),
    BAD("NUL in a trailer value", "0\r\nX: a\0b\r\n\r\n", "invalid trailer value"),
    BAD("DEL in a trailer value", "0\r\nX: a\x7f\r\n\r\n", "invalid trailer value"),
    BAD("CTL in a trailer value", "0\r\nX: \x1b[0m\r\n\r\n", "invalid trailer value"),
    BAD("bare CR in a trailer value", "0\r\nX: a\rb\r\n\r\n", "bare CR"),
};

//  A verdict, as the caller would see it over all its calls.
typedef struct {
    int rc;             // the last call's return
    size_t at;          // DONE: bytes of the body; ERROR: offset of the bad byte; MORE: all
    const char *reason; // the last call's *reason
    uint64_t data_len;  // chunk data bytes counted
} t_verdict_t;

//  xorshift64, for splits that are random but the same on every run.
static uint64_t
t_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

//  Feed buf[0..len) in pieces: max_piece 0 means all at once, 1 byte by byte, otherwise
//  random sizes from 0 to max_piece (seed *rng). Keeps feeding after the verdict, as a
//  caller whose buffer holds more would, and checks that the answer stays.
static t_verdict_t
t_feed(const char *buf, size_t len, size_t max_piece, uint64_t *rng)
{
    gw_chunk_t c;
    gw_chunk_init(&c);
    t_verdict_t v = {GW_CHUNK_MORE, 0, NULL, 0};
    size_t off = 0;
    bool decided = false;
    while (off < len || !decided) {
        size_t n = len - off;
        if (max_piece == 1 && n > 1)
            n = 1;
        else if (max_piece > 1)
            n = n < max_piece ? (size_t) (t_rand(rng) % (n + 1))
                              : (size_t) (t_rand(rng) % (max_piece + 1));
        size_t used = 12345;
        const char *reason = "unset";
        int rc = gw_chunk_feed(&c, n ? buf + off : NULL, n, &used, &reason);
        assert_true(used <= n);
        if (decided) {
            // after DONE or ERROR: the same answer, nothing consumed
            assert_int_equal(rc, v.rc);
            assert_int_equal(used, 0);
            assert_ptr_equal(reason, v.reason);
        } else if (rc == GW_CHUNK_MORE) {
            assert_int_equal(used, n);
            assert_null(reason);
            v.at = off + n;
        } else {
            decided = true;
            v.rc = rc;
            v.at = off + used;
            v.reason = reason;
            if (rc == GW_CHUNK_DONE)
                assert_null(reason);
            else
                assert_non_null(reason);
        }
        off += n;
        if (off == len && !decided)
            break;
    }
    v.data_len = c.data_len;
    return v;
}

//  Every way of splitting buf gives the same verdict as feeding it whole.
static t_verdict_t
t_all_splits(const char *name, const char *buf, size_t len)
{
    uint64_t rng = 0x5eed5eed12345678ULL;
    t_verdict_t whole = t_feed(buf, len, 0, &rng);
    size_t pieces[] = {1, 2, 3, 7, 64};
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        for (int round = 0; round < (pieces[p] == 1 ? 1 : 20); round++) {
            t_verdict_t v = t_feed(buf, len, pieces[p], &rng);
            if (v.rc != whole.rc || v.at != whole.at || v.reason != whole.reason
                || v.data_len != whole.data_len)
                fail_msg("%s: split by up to %zu gives %d at %zu (%s), whole gives %d at %zu (%s)",
                         name, pieces[p], v.rc, v.at, v.reason ? v.reason : "-", whole.rc, whole.at,
                         whole.reason ? whole.reason : "-");
        }
    }
    return whole;
}

static void
test_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof t_cases / sizeof t_cases[0]; i++) {
        const t_case_t *tc = &t_cases[i];
        t_verdict_t v = t_all_splits(tc->name, tc->body, tc->len);
        if (v.rc != tc->rc)
            fail_msg("%s: got %d (%s) at %zu, want %d", tc->name, v.rc, v.reason ? v.reason : "-",
                     v.at, tc->rc);
        if (tc->rc == GW_CHUNK_DONE && v.at != tc->len - tc->tail)
            fail_msg("%s: done after %zu bytes, want %zu", tc->name, v.at, tc->len - tc->tail);
        if (tc->rc == GW_CHUNK_MORE && v.at != tc->len)
            fail_msg("%s: more after %zu bytes, want %zu", tc->name, v.at, tc->len);
        if (tc->rc == GW_CHUNK_ERROR && strcmp(v.reason, tc->reason) != 0)
            fail_msg("%s: reason \"%s\", want \"%s\"", tc->name, v.reason, tc->reason);
    }
}

//  The offending byte is the one *used points at.
static void
test_error_offsets(void **state)
{
    (void) state;
    static const struct {
        const char *body;
        size_t at;
    } cases[] = {
        {"5\r\nhelloXX0\r\n\r\n", 8}, // the first X
        {"5\rX\nhello\r\n", 2},       // the X after the CR
        {"5;a\nb\r\n", 3},            // the LF
        {"+5\r\n", 0},
        {"0x5\r\n", 1},
        {"8000000000000000\r\n", 15},  // the digit that makes it too large
        {"10000000000000000\r\n", 16}, // the 17th digit
        {"0\r\nX: a\r\n b\r\n\r\n", 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_verdict_t v = t_all_splits(cases[i].body, cases[i].body, strlen(cases[i].body));
        assert_int_equal(v.rc, GW_CHUNK_ERROR);
        assert_int_equal(v.at, cases[i].at);
    }
}

static void
test_data_len(void **state)
{
    (void) state;
    static const char body[] = "5\r\nhello\r\n1;x\r\n \r\n005\r\nworld\r\n0\r\nT: 1\r\n\r\n";
    t_verdict_t v = t_all_splits("data_len", body, sizeof body - 1);
    assert_int_equal(v.rc, GW_CHUNK_DONE);
    assert_int_equal(v.data_len, 11);

    // a large chunk is skipped by count: one call, any size
    size_t big = 1 << 20;
    char *buf = malloc(big + 32);
    assert_non_null(buf);
    int head = snprintf(buf, 32, "%zx\r\n", big);
    memset(buf + head, 'x', big);
    memcpy(buf + head + big, "\r\n" END, 7);
    size_t len = (size_t) head + big + 7;
    gw_chunk_t c;
    gw_chunk_init(&c);
    size_t used;
    const char *reason;
    assert_int_equal(gw_chunk_feed(&c, buf, len, &used, &reason), GW_CHUNK_DONE);
    assert_int_equal(used, len);
    assert_int_equal(c.data_len, big);
    free(buf);
}

//  The caller's loop: the same bytes go to the checker and then, cut at *used, on to the
//  parser; what follows the body is the next request's.
static void
test_caller_loop(void **state)
{
    (void) state;
    static const char in[] = "3\r\nabc\r\n0\r\nX: y\r\n\r\nPOST /next HTTP/1.1\r\n";
    gw_chunk_t c;
    gw_chunk_init(&c);
    size_t off = 0;
    int rc = GW_CHUNK_MORE;
    while (rc == GW_CHUNK_MORE) {
        size_t n = sizeof in - 1 - off < 4 ? sizeof in - 1 - off : 4; // reads of 4 bytes
        size_t used;
        rc = gw_chunk_feed(&c, in + off, n, &used, NULL);
        off += used; // the parser would get in[off - used .. off)
    }
    assert_int_equal(rc, GW_CHUNK_DONE);
    assert_string_equal(in + off, "POST /next HTTP/1.1\r\n");

    // reused for the next body after gw_chunk_init
    gw_chunk_init(&c);
    size_t used;
    const char *reason = "unset";
    assert_int_equal(gw_chunk_feed(&c, NULL, 0, &used, &reason), GW_CHUNK_MORE);
    assert_int_equal(used, 0);
    assert_null(reason);
    assert_int_equal(gw_chunk_feed(&c, "0\r\n\r\n", 5, NULL, NULL), GW_CHUNK_DONE);
    assert_int_equal(gw_chunk_feed(&c, "0\r\n\r\n", 5, &used, &reason), GW_CHUNK_DONE);
    assert_int_equal(used, 0);
    assert_null(reason);

    // an error sticks, with its reason, until init
    gw_chunk_init(&c);
    assert_int_equal(gw_chunk_feed(&c, "5\n", 2, &used, &reason), GW_CHUNK_ERROR);
    assert_int_equal(used, 1);
    assert_string_equal(reason, "bare LF");
    assert_int_equal(gw_chunk_feed(&c, "0\r\n\r\n", 5, &used, &reason), GW_CHUNK_ERROR);
    assert_int_equal(used, 0);
    assert_string_equal(reason, "bare LF");
    gw_chunk_init(&c);
    assert_int_equal(gw_chunk_feed(&c, "0\r\n\r\n", 5, &used, &reason), GW_CHUNK_DONE);
}

//  "5;x=aaa...a" with the size line's content exactly content_len bytes, then tail.
static char *
t_long_line(size_t content_len, const char *tail, size_t *len)
{
    size_t tail_len = strlen(tail);
    *len = content_len + tail_len;
    char *buf = malloc(*len);
    assert_non_null(buf);
    memcpy(buf, "5;x=", 4);
    memset(buf + 4, 'a', content_len - 4);
    memcpy(buf + content_len, tail, tail_len);
    return buf;
}

static void
test_line_limit(void **state)
{
    (void) state;
    size_t len;
    char *buf = t_long_line(GW_CHUNK_LINE_MAX, "\r\nhello\r\n" END, &len);
    t_verdict_t v = t_all_splits("line at limit", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_DONE);
    free(buf);

    // one byte more is refused at that byte, before any CRLF
    buf = t_long_line(GW_CHUNK_LINE_MAX + 1, "\r\nhello\r\n" END, &len);
    v = t_all_splits("line past limit", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_ERROR);
    assert_string_equal(v.reason, "chunk line too long");
    assert_int_equal(v.at, GW_CHUNK_LINE_MAX);
    free(buf);

    // the limit is per line: a long line after another long line is fine
    size_t one;
    char *line = t_long_line(GW_CHUNK_LINE_MAX, "\r\nhello\r\n", &one);
    buf = malloc(2 * one + 5);
    assert_non_null(buf);
    memcpy(buf, line, one);
    memcpy(buf + one, line, one);
    memcpy(buf + 2 * one, END, 5);
    v = t_all_splits("two lines at limit", buf, 2 * one + 5);
    assert_int_equal(v.rc, GW_CHUNK_DONE);
    assert_int_equal(v.data_len, 10);
    free(buf);
    free(line);
}

//  "0\r\n" and trailer fields "X: vvv...v\r\n" making a section of exactly section bytes,
//  then tail.
static char *
t_trailers(size_t section, const char *tail, size_t *len)
{
    size_t tail_len = strlen(tail);
    *len = 3 + section + tail_len;
    char *buf = malloc(*len);
    assert_non_null(buf);
    memcpy(buf, "0\r\n", 3);
    char *p = buf + 3;
    size_t left = section;
    while (left > 0) {
        // lines of at most 1000 bytes; never leave less than a minimal line ("X:\r\n")
        size_t n = left <= 1000 ? left : left - 1000 >= 4 ? 1000 : left - 4;
        memcpy(p, "X:", 2);
        memset(p + 2, 'v', n - 4);
        memcpy(p + n - 2, "\r\n", 2);
        p += n;
        left -= n;
    }
    memcpy(p, tail, tail_len);
    return buf;
}

static void
test_trailer_limit(void **state)
{
    (void) state;
    size_t len;
    char *buf = t_trailers(GW_CHUNK_TRAILER_MAX, "\r\n", &len);
    t_verdict_t v = t_all_splits("trailers at limit", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_DONE);
    assert_int_equal(v.at, len);
    free(buf);

    buf = t_trailers(GW_CHUNK_TRAILER_MAX + 1, "\r\n", &len);
    v = t_all_splits("trailers past limit", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_ERROR);
    assert_string_equal(v.reason, "trailer section too large");
    free(buf);

    // a full section: one more field byte is too many, the final CRLF is fine
    buf = t_trailers(GW_CHUNK_TRAILER_MAX, "Y", &len);
    v = t_all_splits("trailers full, one more", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_ERROR);
    assert_int_equal(v.at, len - 1);
    free(buf);

    // three bytes short: "Y" could still be a line ("Y:\r\n" is four), so it fails at once
    buf = t_trailers(GW_CHUNK_TRAILER_MAX - 3, "Y", &len);
    v = t_all_splits("trailers 3 short", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_ERROR);
    assert_int_equal(v.at, len - 1);
    free(buf);
    // four bytes short: "Y:\r\n" just fits
    buf = t_trailers(GW_CHUNK_TRAILER_MAX - 4, "Y:\r\n\r\n", &len);
    v = t_all_splits("trailers 4 short", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_DONE);
    free(buf);

    // a field that never ends is refused as soon as it cannot fit
    len = 3 + 2 * GW_CHUNK_TRAILER_MAX;
    buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, "0\r\nX: ", 6);
    memset(buf + 6, 'v', len - 6);
    v = t_all_splits("endless trailer", buf, len);
    assert_int_equal(v.rc, GW_CHUNK_ERROR);
    assert_string_equal(v.reason, "trailer section too large");
    assert_int_equal(v.at, 3 + GW_CHUNK_TRAILER_MAX - 2);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),      cmocka_unit_test(test_error_offsets),
        cmocka_unit_test(test_data_len),   cmocka_unit_test(test_caller_loop),
        cmocka_unit_test(test_line_limit), cmocka_unit_test(test_trailer_limit),
    };
    return cmocka_run_group_tests_name("gw_chunk", tests, NULL, NULL);
}
