/*  gw_prescan - strict checks on a raw HTTP/1.1 request head before http-parser sees it.

    The head is cut into lines with memchr for LF, looking no further than the longest line
    the limits still allow, so a long line costs no more than the limit and the bytes after
    the head are never touched. Each line's content is then checked from its first byte on;
    a line whose CRLF has not arrived yet is checked as far as it goes ("partial"), which
    keeps errors in byte order and makes the answer independent of how reads split the head.
    Field values, where most bytes are, are checked with memchr for NUL and CR.
*/
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gw_prescan.h"
#include "proto_util.h"

#define S_TCHAR 0x01 // RFC 9110 token character
#define S_HOST  0x02 // allowed in a Host value: A-Z a-z 0-9 . - : [ ] _

//  Byte classes, so each check is one load.
static const uint8_t s_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x00
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x10
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 3, 3, 0, // 0x20  !"#$%&'()*+,-./
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 0, 0, 0, 0, 0, // 0x30 0123456789:;<=>?
    0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, // 0x40 @ABCDEFGHIJKLMNO
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 0, 2, 1, 3, // 0x50 PQRSTUVWXYZ[\]^_
    1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, // 0x60 `abcdefghijklmno
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 1, 0, 1, 0, // 0x70 pqrstuvwxyz{|}~
};

//  Where a line ends, as far as the buffer and the line's size limit let us know.
typedef struct {
    size_t clen;   // content bytes: before the CRLF, or all we have (less a trailing CR)
    size_t next;   // offset of the next line, when complete
    bool complete; // its LF is here
    bool crlf;     // complete, and the LF follows a CR
    bool over;     // the content is certainly longer than the limit
} s_line_t;

//  Find the end of the line at p (avail bytes) whose content may hold at most max bytes.
//  Looks at no more than max + 2 bytes: content, CR, LF.
static void
s_line(const char *p, size_t avail, size_t max, s_line_t *line)
{
    size_t n = avail < max + 2 ? avail : max + 2;
    const char *lf = memchr(p, '\n', n);
    if (lf) {
        size_t i = (size_t) (lf - p);
        line->complete = true;
        line->next = i + 1;
        line->crlf = i > 0 && p[i - 1] == '\r';
        line->clen = line->crlf ? i - 1 : i;
    } else {
        //  A CR at the very end may be the start of the CRLF.
        line->complete = false;
        line->crlf = false;
        line->next = 0;
        line->clen = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
    }
    line->over = line->clen > max;
}

static int
s_fail(gw_prescan_t *out, int status, const char *reason)
{
    out->status = status;
    out->reason = reason;
    return -1;
}

static bool
s_is_tchar(char c)
{
    return s_class[(uint8_t) c] & S_TCHAR;
}

static bool
s_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char
s_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c;
}

static size_t
s_skip_ows(const char *p, size_t i, size_t n)
{
    while (i < n && s_is_ows(p[i]))
        i++;
    return i;
}

//  Whether p[0..n) equals the lower-case name, ignoring case.
static bool
s_name_is(const char *p, size_t n, const char *name, size_t name_len)
{
    if (n != name_len)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s_lower(p[i]) != name[i])
            return false;
    return true;
}

//  Whether the visible-ASCII target t[0..n) is an accepted request-target (full) or may
//  still become one (!full): origin-form, "*" for OPTIONS, or http(s) absolute-form with a
//  non-empty authority.
static bool
s_target_ok(const char *t, size_t n, bool full, bool options)
{
    if (n == 0)
        return !full;
    if (t[0] == '/')
        return true;
    if (t[0] == '*')
        return options && n == 1;
    const char *scheme = n > 4 && s_lower(t[4]) == 's' ? "https://" : "http://";
    size_t slen = strlen(scheme);
    for (size_t i = 0; i < n && i < slen; i++)
        if (s_lower(t[i]) != scheme[i])
            return false;
    if (n <= slen)
        return !full;
    return t[slen] != '/' && t[slen] != '?' && t[slen] != '#';
}

//  Check the request line's content p[0..n); complete when its CRLF followed it.
static int
s_request_line(const char *p, size_t n, bool complete, gw_prescan_t *out, bool *http10)
{
    size_t i = 0;
    while (i < n && s_is_tchar(p[i]))
        i++;
    size_t method_len = i;
    if (i == n)
        return complete ? s_fail(out, 400, "malformed request line") : 0;
    if (p[i] != ' ' || method_len == 0)
        return s_fail(out, 400, p[i] == '\r' ? "bare CR" : "invalid method");
    i++;

    size_t target = i;
    while (i < n && (uint8_t) p[i] >= 0x21 && (uint8_t) p[i] <= 0x7e)
        i++;
    bool options = method_len == 7 && memcmp(p, PROTO_LIT("OPTIONS")) == 0;
    if (!s_target_ok(p + target, i - target, i < n || complete, options))
        return s_fail(out, 400, "invalid request-target");
    if (i == n)
        return complete ? s_fail(out, 400, "malformed request line") : 0;
    if (p[i] != ' ')
        return s_fail(out, 400, p[i] == '\r' ? "bare CR" : "invalid request-target");
    i++;

    //  "HTTP/1.0" or "HTTP/1.1", exactly (the protocol name is case-sensitive).
    size_t vlen = n - i;
    if (vlen > 8 || memcmp(p + i, "HTTP/1.", vlen < 7 ? vlen : 7) != 0
        || (vlen == 8 && p[i + 7] != '0' && p[i + 7] != '1') || (complete && vlen < 8))
        return s_fail(out, 400, "invalid HTTP version");
    *http10 = vlen == 8 && p[i + 7] == '0';
    return 0;
}

//  What the scan has learnt from the fields so far.
typedef struct {
    bool http10;    // the request line said HTTP/1.0
    bool seen_cl;   // a Content-Length field has been seen
    bool seen_te;   // a Transfer-Encoding field has been seen
    bool seen_host; // a Host field has been seen
} s_fields_t;

//  Content-Length: 1*DIGIT with OWS around, at most INT64_MAX.
static int
s_content_length(const char *v, size_t n, bool complete, gw_prescan_t *out)
{
    size_t i = s_skip_ows(v, 0, n);
    size_t digits = 0;
    uint64_t value = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
        unsigned d = (unsigned) (v[i] - '0');
        if (value > ((uint64_t) INT64_MAX - d) / 10)
            return s_fail(out, 400, "invalid Content-Length");
        value = value * 10 + d;
    }
    i = s_skip_ows(v, i, n);
    if (i < n)
        //  A list, even "5, 5", is a second Content-Length in one line (RFC 9110 §8.6
        //  lets a recipient accept it; nginx does not, nor do we).
        return s_fail(out, 400,
                      v[i] == ',' ? "duplicate Content-Length" : "invalid Content-Length");
    if (complete && digits == 0)
        return s_fail(out, 400, "invalid Content-Length");
    out->content_length = value;
    return 0;
}

//  Transfer-Encoding: "chunked" with OWS around, any case; nothing else.
static int
s_transfer_encoding(const char *v, size_t n, bool complete, gw_prescan_t *out)
{
    static const char chunked[] = "chunked";
    size_t i = s_skip_ows(v, 0, n);
    size_t k = 0;
    while (k < sizeof chunked - 1 && i < n && s_lower(v[i]) == chunked[k]) {
        i++;
        k++;
    }
    i = s_skip_ows(v, i, n);
    //  Only OWS may follow a whole "chunked", and nothing a part of it.
    if (i < n || (complete && k < sizeof chunked - 1))
        return s_fail(out, 400, "unsupported Transfer-Encoding");
    return 0;
}

//  Host: a non-empty run of host bytes with OWS around.
static int
s_host(const char *v, size_t n, bool complete, gw_prescan_t *out)
{
    size_t i = s_skip_ows(v, 0, n);
    size_t start = i;
    while (i < n && (s_class[(uint8_t) v[i]] & S_HOST))
        i++;
    size_t host_len = i - start;
    i = s_skip_ows(v, i, n);
    if (i < n)
        return s_fail(out, 400, "invalid Host");
    if (complete && host_len == 0)
        return s_fail(out, 400, "empty Host");
    return 0;
}

//  Check a field line's content p[0..n), which starts with neither whitespace, CR nor LF.
//  complete when its CRLF followed it.
static int
s_field(const char *p, size_t n, bool complete, s_fields_t *fields, gw_prescan_t *out)
{
    size_t i = 0;
    while (i < n && s_is_tchar(p[i]))
        i++;
    if (i == n)
        return complete ? s_fail(out, 400, "missing colon") : 0;
    if (p[i] != ':') {
        if (s_is_ows(p[i])) {
            //  "Host : a" is the classic; "Ho st: a" is just a bad name.
            size_t j = s_skip_ows(p, i, n);
            bool colon = j < n ? p[j] == ':' : !complete;
            return s_fail(out, 400, colon ? "space before colon" : "invalid field name");
        }
        return s_fail(out, 400, p[i] == '\r' ? "bare CR" : "invalid field name");
    }
    if (i == 0)
        return s_fail(out, 400, "empty field name");

    //  Any byte but NUL, CR and LF may be in a value (obs-text and HTAB included).
    const char *v = p + i + 1;
    size_t vn = n - i - 1;
    const char *nul = memchr(v, '\0', vn);
    if (memchr(v, '\r', nul ? (size_t) (nul - v) : vn))
        return s_fail(out, 400, "CR in header value");
    if (nul)
        return s_fail(out, 400, "NUL in header value");

    //  The three fields that decide framing and routing; lengths first, as most names are
    //  none of them.
    if (s_name_is(p, i, PROTO_LIT("content-length"))) {
        if (fields->seen_cl)
            return s_fail(out, 400, "duplicate Content-Length");
        if (fields->seen_te)
            return s_fail(out, 400, "Content-Length with Transfer-Encoding");
        if (s_content_length(v, vn, complete, out) < 0)
            return -1;
        fields->seen_cl = complete;
    } else if (s_name_is(p, i, PROTO_LIT("transfer-encoding"))) {
        if (fields->http10)
            return s_fail(out, 400, "Transfer-Encoding in HTTP/1.0");
        if (fields->seen_te)
            return s_fail(out, 400, "duplicate Transfer-Encoding");
        if (fields->seen_cl)
            return s_fail(out, 400, "Content-Length with Transfer-Encoding");
        if (s_transfer_encoding(v, vn, complete, out) < 0)
            return -1;
        fields->seen_te = complete;
    } else if (s_name_is(p, i, PROTO_LIT("host"))) {
        if (fields->seen_host)
            return s_fail(out, 400, "duplicate Host");
        if (s_host(v, vn, complete, out) < 0)
            return -1;
        fields->seen_host = complete;
    }
    return 0;
}

int
gw_prescan(const char *buf, size_t len, gw_prescan_t *out)
{
    assert(out);
    assert(buf || len == 0);
    memset(out, 0, sizeof *out);

    //  RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request
    //  line; we ignore two, as a client may send a stray CRLF after a POST body.
    size_t pos = 0;
    for (int skipped = 0;; skipped++) {
        if (pos == len)
            return 0;
        if (buf[pos] == '\n')
            return s_fail(out, 400, "bare LF");
        if (buf[pos] != '\r')
            break;
        if (pos + 1 == len)
            return 0;
        if (buf[pos + 1] != '\n')
            return s_fail(out, 400, "bare CR");
        if (skipped == 2)
            return s_fail(out, 400, "empty lines before request line");
        pos += 2;
    }

    s_fields_t fields = {0};
    s_line_t line;
    s_line(buf + pos, len - pos, GW_PRESCAN_LINE_MAX, &line);
    if (line.over) {
        if (s_request_line(buf + pos, GW_PRESCAN_LINE_MAX, false, out, &fields.http10) < 0)
            return -1;
        return s_fail(out, 414, "request line too long");
    }
    if (s_request_line(buf + pos, line.clen, line.crlf, out, &fields.http10) < 0)
        return -1;
    if (!line.complete)
        return 0;
    if (!line.crlf)
        return s_fail(out, 400, "bare LF");
    pos += line.next;

    size_t section = pos;
    for (;;) {
        const char *p = buf + pos;
        size_t avail = len - pos;
        if (avail == 0)
            return 0;
        if (p[0] == '\r') {
            if (avail == 1)
                return 0;
            if (p[1] == '\n')
                break;
            //  Not the empty line; a field name cannot start with CR either.
            return s_fail(out, 400, "bare CR");
        }
        if (p[0] == '\n')
            return s_fail(out, 400, "bare LF");
        if (p[0] == ' ' || p[0] == '\t')
            //  RFC 9112 §5.2; the same goes for whitespace before the first field (§2.2).
            return s_fail(out, 400, "obs-fold");
        if (out->nfields == GW_PRESCAN_FIELDS_MAX)
            return s_fail(out, 431, "too many header fields");
        size_t budget = GW_PRESCAN_HEADERS_MAX - (pos - section);
        if (budget < 2)
            return s_fail(out, 431, "header section too large");
        s_line(p, avail, budget - 2, &line);
        if (line.over) {
            if (s_field(p, budget - 2, false, &fields, out) < 0)
                return -1;
            return s_fail(out, 431, "header section too large");
        }
        if (s_field(p, line.clen, line.crlf, &fields, out) < 0)
            return -1;
        if (!line.complete)
            return 0;
        if (!line.crlf)
            return s_fail(out, 400, "bare LF");
        out->nfields++;
        pos += line.next;
    }

    if (!fields.http10 && !fields.seen_host)
        return s_fail(out, 400, "missing Host");
    out->head_len = pos + 2;
    out->chunked = fields.seen_te;
    if (out->chunked)
        out->content_length = 0;
    out->has_body = out->chunked || out->content_length > 0;
    return 1;
}
