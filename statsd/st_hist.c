/*  st_hist - log-linear histogram and sliding windows. */
#include <math.h>
#include <string.h>

#include "st_hist.h"

_Static_assert(ST_HIST_BUCKETS
                   == ST_HIST_LINEAR + (ST_HIST_MAX_SHIFT - 6) * (1u << ST_HIST_SUB_BITS),
               "bucket count and layout disagree");

unsigned
st_hist_index(uint64_t us)
{
    if (us < ST_HIST_LINEAR)
        return (unsigned) us;
    if (us >> ST_HIST_MAX_SHIFT)
        return ST_HIST_BUCKETS - 1;
    unsigned k = 63u - (unsigned) __builtin_clzll(us); // 6 .. 35
    unsigned sub = (unsigned) (us >> (k - ST_HIST_SUB_BITS)) & ((1u << ST_HIST_SUB_BITS) - 1);
    return ST_HIST_LINEAR + (k - 6) * (1u << ST_HIST_SUB_BITS) + sub;
}

uint64_t
st_hist_lower(unsigned index)
{
    if (index < ST_HIST_LINEAR)
        return index;
    unsigned k = 6 + (index - ST_HIST_LINEAR) / (1u << ST_HIST_SUB_BITS);
    unsigned sub = (index - ST_HIST_LINEAR) % (1u << ST_HIST_SUB_BITS);
    return ((uint64_t) (1u << ST_HIST_SUB_BITS) + sub) << (k - ST_HIST_SUB_BITS);
}

uint64_t
st_hist_width(unsigned index)
{
    if (index < ST_HIST_LINEAR)
        return 1;
    unsigned k = 6 + (index - ST_HIST_LINEAR) / (1u << ST_HIST_SUB_BITS);
    return (uint64_t) 1 << (k - ST_HIST_SUB_BITS);
}

void
st_hist_reset(st_hist_t *self)
{
    memset(self, 0, sizeof *self);
}

void
st_hist_add(st_hist_t *self, uint64_t us)
{
    self->counts[st_hist_index(us)]++;
    self->count++;
    self->sum_us += us;
}

double
st_hist_quantile(const st_hist_t *const *hists, unsigned n, double q)
{
    uint64_t total = 0;
    for (unsigned h = 0; h < n; h++)
        total += hists[h]->count;
    if (total == 0)
        return 0.0;
    uint64_t rank = (uint64_t) ceil(q * (double) total);
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < ST_HIST_BUCKETS; i++) {
        for (unsigned h = 0; h < n; h++)
            seen += hists[h]->counts[i];
        if (seen >= rank)
            return (double) st_hist_lower(i) + (double) (st_hist_width(i) - 1) / 2.0;
    }
    return (double) st_hist_lower(ST_HIST_BUCKETS - 1);
}

void
st_rate_add(st_rate_t *self, uint64_t now_ms, uint32_t n)
{
    uint64_t sec = now_ms / 1000;
    unsigned slot = (unsigned) (sec % ST_RATE_SLOTS);
    if (self->second[slot] != sec + 1) {
        // an older second than the slot holds belongs to no window any more
        if (self->second[slot] > sec + 1)
            return;
        self->second[slot] = sec + 1;
        self->count[slot] = 0;
    }
    self->count[slot] += n;
}

double
st_rate_per_second(const st_rate_t *self, uint64_t now_ms)
{
    uint64_t sec = now_ms / 1000, sum = 0;
    for (unsigned i = 0; i < ST_RATE_SLOTS; i++) {
        uint64_t s = self->second[i];
        if (s != 0 && s - 1 <= sec && s - 1 + ST_RATE_SLOTS > sec)
            sum += self->count[i];
    }
    return (double) sum / ST_RATE_SLOTS;
}

void
st_latency_add(st_latency_t *self, uint64_t now_ms, uint64_t us)
{
    uint64_t minute = now_ms / 60000;
    unsigned slot = (unsigned) (minute % ST_LATENCY_MINUTES);
    if (self->minute[slot] != minute + 1) {
        if (self->minute[slot] > minute + 1)
            return;
        // rotation: once a minute per series, never per request
        st_hist_reset(&self->hist[slot]);
        self->minute[slot] = minute + 1;
    }
    st_hist_add(&self->hist[slot], us);
}

void
st_latency_summary(const st_latency_t *self, uint64_t now_ms, st_latency_summary_t *out)
{
    memset(out, 0, sizeof *out);
    uint64_t minute = now_ms / 60000, sum = 0;
    const st_hist_t *live[ST_LATENCY_MINUTES];
    unsigned n = 0;
    for (unsigned i = 0; i < ST_LATENCY_MINUTES; i++) {
        uint64_t m = self->minute[i];
        if (m != 0 && m - 1 <= minute && m - 1 + ST_LATENCY_MINUTES > minute) {
            live[n++] = &self->hist[i];
            out->count += self->hist[i].count;
            sum += self->hist[i].sum_us;
        }
    }
    if (out->count == 0)
        return;
    out->p50_ms = st_hist_quantile(live, n, 0.50) / 1000.0;
    out->p95_ms = st_hist_quantile(live, n, 0.95) / 1000.0;
    out->p99_ms = st_hist_quantile(live, n, 0.99) / 1000.0;
    out->avg_ms = (double) sum / (double) out->count / 1000.0;
}
