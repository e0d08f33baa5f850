/*  fuzz_resp - gw_resp, a backend's response head as http-parser hands it
    over (the gateway's response head glue).

    The input is a response from a backend. It goes through http-parser
    (HTTP_RESPONSE) with gw_resp's callbacks until the head is complete, once
    whole and once in pieces of random sizes (seeded from the input) cut
    from the same buffer, as reads split it. Checks, for every input: the
    two runs agree (same verdict, same reason, same fields at the same
    offsets and lengths: the answer never depends on how reads split a
    head); at most GW_RESP_FIELDS_MAX fields; every name, value and reason
    lies inside the input; and gw_resp_head_listed runs on every field.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "gw_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    gw_resp_head_t head;
    bool done; // on_headers_complete came
} t_run_t;

static int
s_status(http_parser *p, const char *at, size_t len)
{
    t_run_t *r = p->data;
    if (!r->done)
        gw_resp_head_status(&r->head, at, len);
    return 0;
}

static int
s_field(http_parser *p, const char *at, size_t len)
{
    t_run_t *r = p->data;
    if (!r->done)
        gw_resp_head_field(&r->head, at, len);
    return 0;
}

static int
s_value(http_parser *p, const char *at, size_t len)
{
    t_run_t *r = p->data;
    if (!r->done)
        gw_resp_head_value(&r->head, at, len);
    return 0;
}

static int
s_headers(http_parser *p)
{
    t_run_t *r = p->data;
    r->done = true;
    gw_resp_head_done(&r->head);
    return 1; // no body: the head is what this target is about
}

static const http_parser_settings s_settings = {
    .on_status = s_status,
    .on_header_field = s_field,
    .on_header_value = s_value,
    .on_headers_complete = s_headers,
};

//  Parse data in pieces (cuts: piece sizes from seed; 0: whole).
static void
s_run(const char *data, size_t len, uint64_t seed, t_run_t *r)
{
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = r;
    memset(r, 0, sizeof *r);
    gw_resp_head_reset(&r->head);
    size_t off = 0;
    while (off < len && !r->done) {
        size_t n = len - off;
        if (seed) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            n = 1 + (size_t) (seed >> 33) % 64;
            if (n > len - off)
                n = len - off;
        }
        size_t used = http_parser_execute(&parser, &s_settings, data + off, n);
        if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || used != n)
            break;
        off += n;
    }
}

static void
s_inside(const char *p, size_t n, const char *data, size_t len)
{
    if (p == NULL && n == 0)
        return;
    if (p < data || p + n > data + len)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t len)
{
    const char *data = (const char *) bytes;
    static t_run_t whole, cut;
    s_run(data, len, 0, &whole);
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ len;
    for (size_t i = 0; i < len && i < 16; i++)
        seed = seed * 31 + bytes[i];
    s_run(data, len, seed | 1, &cut);
    const gw_resp_head_t *a = &whole.head, *b = &cut.head;
    if (a->nfields > GW_RESP_FIELDS_MAX)
        abort();
    s_inside(a->reason, a->reason_len, data, len);
    for (uint32_t i = 0; i < a->nfields; i++) {
        s_inside(a->fields[i].name, a->fields[i].name_len, data, len);
        s_inside(a->fields[i].value, a->fields[i].value_len, data, len);
        (void) gw_resp_head_listed(a, &a->fields[i]);
    }
    // the same answer however the head was split (when both runs finished it)
    if (whole.done && cut.done) {
        if (a->bad != b->bad || a->nfields != b->nfields || a->reason_len != b->reason_len
            || (a->reason != b->reason))
            abort();
        for (uint32_t i = 0; i < a->nfields; i++) {
            const gw_rfield_t *x = &a->fields[i], *y = &b->fields[i];
            if (x->name != y->name || x->name_len != y->name_len || x->id != y->id
                || (!a->bad && (x->value != y->value || x->value_len != y->value_len)))
                abort();
        }
    }
    if (whole.done != cut.done)
        abort();
    return 0;
}
