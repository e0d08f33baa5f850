/*  fuzz_probe - libFuzzer target for healthd's probe parsing (hd_probe).

    A probed backend's answer is untrusted bytes. healthd reads at most
    HD_PROBE_LINE_MAX of them into its line buffer and, after every read, asks
    hd_probe_status_line about all it has so far, until the answer is not 0. Checks, for
    every input, what healthd/hd_probe.h promises:
    - the return is -1, 0 or 1; 0 only below HD_PROBE_LINE_MAX bytes; on 1 the status is
      the three digits after "HTTP/1.x " (100-999) and hd_probe_status_ok says 2xx/3xx;
    - the answer is the one of a reference written from the header's grammar ("HTTP/1.0"
      or "HTTP/1.1", SP, three digits not starting with 0, then SP and a reason without
      control characters but HTAB, or nothing, then CRLF). One laziness is let through:
      below 12 bytes a status starting with 0 may still get 0 (the digits are judged
      together once all three are in, and the 12th byte gives -1);
    - the answer does not depend on how reads split the bytes: every prefix, in order,
      gives 0 until it gives the whole buffer's answer, and stays there (same status);
      healthd's way (pieces cut where the input's hash says, stop at the first non-0)
      gives that answer too;
    - longer inputs (which healthd never passes) never get 0 and are read in bounds.
    Then hd_probe_request, with a path and a host taken from the input: it writes the
    request exactly when the path starts with '/', the host is not empty, neither has a
    control character or a space, and the whole fits (< HD_PROBE_REQ_MAX bytes); the
    request is then the expected text, so no header can be injected.
    Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  healthd/ is not on FUZZ_CFLAGS' include path (tests/fuzz/README.md).
#include "hd_probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  The status line as hd_probe.h describes it: 1 and *status when complete, 0 when a
//  longer input could still be valid (below HD_PROBE_LINE_MAX), -1 when it cannot.
//  *bad_at: where it became invalid.
static int
s_reference(const uint8_t *buf, size_t len, int *status, size_t *bad_at)
{
    static const char prefix[] = "HTTP/1.";
    enum { S_PREFIX, S_MINOR, S_SP, S_D1, S_D2, S_D3, S_AFTER, S_REASON, S_LF } state = S_PREFIX;
    int code = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        bool ok = false;
        switch (state) {
            case S_PREFIX:
                ok = c == (uint8_t) prefix[i];
                if (ok && i == 6)
                    state = S_MINOR;
                break;
            case S_MINOR:
                ok = c == '0' || c == '1';
                state = S_SP;
                break;
            case S_SP:
                ok = c == ' ';
                state = S_D1;
                break;
            case S_D1:
            case S_D2:
            case S_D3:
                ok = c >= (state == S_D1 ? '1' : '0') && c <= '9';
                code = code * 10 + (c - '0');
                state = state == S_D1 ? S_D2 : state == S_D2 ? S_D3 : S_AFTER;
                break;
            case S_AFTER:
            case S_REASON:
                if (c == '\r') {
                    ok = true;
                    state = S_LF;
                } else if (state == S_AFTER) {
                    ok = c == ' ';
                    state = S_REASON;
                } else {
                    ok = c == '\t' || (c >= 0x20 && c != 0x7f);
                }
                break;
            case S_LF:
                if (c != '\n') {
                    *bad_at = i;
                    return -1;
                }
                *status = code;
                return 1;
        }
        if (!ok) {
            *bad_at = i;
            return -1;
        }
    }
    *bad_at = len;
    return len >= HD_PROBE_LINE_MAX ? -1 : 0;
}

//  One answer on its own, against the reference.
static int
s_check_one(const char *buf, size_t len, int *status)
{
    int st = -12345;
    int rc = hd_probe_status_line(buf, len, &st);
    int ref_status = 0;
    size_t bad_at = 0;
    int ref = s_reference((const uint8_t *) buf, len, &ref_status, &bad_at);
    switch (rc) {
        case 1:
            if (st < 100 || st > 999
                || st != (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'))
                abort();
            if (hd_probe_status_ok(st) != (st >= 200 && st <= 399))
                abort();
            if (ref != 1 || ref_status != st)
                abort();
            break;
        case 0:
            if (len >= HD_PROBE_LINE_MAX || st != -12345)
                abort();
            //  the one laziness: a 0xx status is refused at the 12th byte
            if (ref != 0 && !(ref == -1 && len < 12 && bad_at == 9))
                abort();
            break;
        case -1:
            if (st != -12345 || ref != -1)
                abort();
            break;
        default:
            abort();
    }
    *status = st;
    return rc;
}

//  A small PRNG for the read sizes, seeded from the input.
static uint64_t
s_next(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void
s_check_status_line(const uint8_t *data, size_t size)
{
    size_t len = size < HD_PROBE_LINE_MAX ? size : HD_PROBE_LINE_MAX;
    //  A copy of exactly the bytes healthd would hold, so ASan catches a read past them.
    char *line = malloc(len ? len : 1);
    if (line == NULL)
        abort();
    if (len)
        memcpy(line, data, len);
    int status = 0;
    int whole = s_check_one(line, len, &status);

    //  Every prefix: 0 until the whole answer, then the whole answer.
    int first = 0, first_status = 0;
    for (size_t k = 0; k <= len; k++) {
        int st = 0;
        int rc = s_check_one(line, k, &st);
        if (first != 0) {
            if (rc != first || (rc == 1 && st != first_status))
                abort();
        } else if (rc != 0) {
            first = rc;
            first_status = st;
        }
    }
    if (first != whole || (whole == 1 && first_status != status))
        abort();

    //  As healthd reads: pieces of 1 to 64 bytes, stop at the first answer that is not 0.
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 0x100000001b3ull;
    seed |= 1;
    size_t have = 0;
    int rc = 0, st = 0;
    while (rc == 0 && have < len) {
        size_t n = 1 + (size_t) (s_next(&seed) % 64);
        have = have + n < len ? have + n : len;
        rc = s_check_one(line, have, &st);
    }
    if (rc != whole || (rc == 1 && st != status))
        abort();
    free(line);

    //  More than healthd ever passes: decided, and read in bounds.
    if (size > HD_PROBE_LINE_MAX) {
        char *all = malloc(size);
        if (all == NULL)
            abort();
        memcpy(all, data, size);
        if (s_check_one(all, size, &st) == 0)
            abort();
        free(all);
    }
}

//  Copy the input from *pos up to the next '\n' (or the end) as a C string.
static char *
s_take_line(const uint8_t *data, size_t size, size_t *pos)
{
    size_t start = *pos, end = start;
    while (end < size && data[end] != '\n')
        end++;
    *pos = end < size ? end + 1 : end;
    char *s = malloc(end - start + 1);
    if (s == NULL)
        abort();
    memcpy(s, data + start, end - start);
    s[end - start] = '\0';
    return s;
}

static bool
s_token(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s <= 0x20 || (unsigned char) *s == 0x7f)
            return false;
    return true;
}

static void
s_check_request(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    char *path = s_take_line(data, size, &pos);
    char *host = s_take_line(data, size, &pos);
    char *out = malloc(HD_PROBE_REQ_MAX);
    if (out == NULL)
        abort();
    memset(out, 0xa5, HD_PROBE_REQ_MAX);
    size_t n = hd_probe_request(out, HD_PROBE_REQ_MAX, path, host);

    bool valid = path[0] == '/' && host[0] != '\0' && s_token(path) && s_token(host);
    static const char head[] = "GET ", mid[] = " HTTP/1.1\r\nHost: ",
                      tail[] = "\r\nUser-Agent: switchyard-healthd\r\nConnection: close\r\n\r\n";
    size_t want = strlen(head) + strlen(path) + strlen(mid) + strlen(host) + strlen(tail);
    if (!valid || want >= HD_PROBE_REQ_MAX) {
        if (n != 0)
            abort();
    } else {
        if (n != want || out[n] != '\0')
            abort();
        size_t off = 0;
        const char *parts[] = {head, path, mid, host, tail};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            size_t pl = strlen(parts[i]);
            if (memcmp(out + off, parts[i], pl) != 0)
                abort();
            off += pl;
        }
    }
    free(out);
    free(host);
    free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_check_status_line(data, size);
    s_check_request(data, size);
    return 0;
}
