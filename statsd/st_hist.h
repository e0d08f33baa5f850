/*  st_hist - a log-linear latency histogram with bounded relative error, and
    the sliding windows statsd keeps per series: requests per second over the
    last minute (60 one-second slots) and latency over the last 5 minutes
    (5 one-minute histograms, rotated).

    Values are microseconds. Below 64 µs every value has its own bucket; above,
    each power of two is split into 32 equal buckets (HDR-style), so a bucket
    is at most 1/32 of its lower bound wide and the value reported for it (its
    midpoint) is within 1/64 (1.6 %) of any value it holds. 1024 buckets cover
    0 to 2^36 µs (19 hours; larger values count in the last bucket): 4 KiB per
    histogram, fixed. Adding a value is a few shifts and one increment; no
    allocation anywhere.

    Windows take the time as an argument (a fake clock in the tests).
*/
#ifndef ST_HIST_H
#define ST_HIST_H

#include <stdbool.h>
#include <stdint.h>

#define ST_HIST_SUB_BITS   5            // 32 buckets per power of two
#define ST_HIST_LINEAR     64           // values below are exact
#define ST_HIST_MAX_SHIFT  36           // values from 2^36 µs on share the last bucket
#define ST_HIST_BUCKETS    1024         // 64 + (36 - 6) * 32
#define ST_HIST_MAX_ERROR  (1.0 / 64.0) // relative error of a reported value
#define ST_RATE_SLOTS      60           // one-second slots of the rate window
#define ST_LATENCY_MINUTES 5            // one-minute histograms of the latency window

typedef struct {
    uint32_t counts[ST_HIST_BUCKETS]; // values per bucket
    uint64_t count;                   // values added
    uint64_t sum_us;                  // their sum
} st_hist_t;

//  The bucket of a value. Its value range: [st_hist_lower(i), + st_hist_width(i)).
unsigned st_hist_index(uint64_t us);
uint64_t st_hist_lower(unsigned index);
uint64_t st_hist_width(unsigned index);

//  Empty a histogram; add one value.
void st_hist_reset(st_hist_t *self);
void st_hist_add(st_hist_t *self, uint64_t us);

//  The q-quantile (0 < q <= 1, nearest rank: the value of rank ceil(q * n))
//  of the union of n histograms, as its bucket's midpoint, in µs; 0 when
//  they are empty.
double st_hist_quantile(const st_hist_t *const *hists, unsigned n, double q);

//  Requests per second over a sliding minute.
typedef struct {
    uint64_t second[ST_RATE_SLOTS]; // which second (since the epoch) + 1 a slot counts, 0 = none
    uint32_t count[ST_RATE_SLOTS];  // requests in that second
} st_rate_t;

//  Count n events at now_ms (ms since the epoch).
void st_rate_add(st_rate_t *self, uint64_t now_ms, uint32_t n);

//  Events per second over the 60 seconds ending with the current one.
double st_rate_per_second(const st_rate_t *self, uint64_t now_ms);

//  Latency over the last 5 minutes.
typedef struct {
    uint64_t
        minute[ST_LATENCY_MINUTES];     // which minute (since the epoch) + 1 a slot holds, 0 = none
    st_hist_t hist[ST_LATENCY_MINUTES]; // its histogram
} st_latency_t;

typedef struct {
    uint64_t count; // values in the window
    double p50_ms;  // quantiles, milliseconds
    double p95_ms;
    double p99_ms;
    double avg_ms; // exact mean
} st_latency_summary_t;

//  Add one latency at now_ms. A value older than the window is ignored.
void st_latency_add(st_latency_t *self, uint64_t now_ms, uint64_t us);

//  Summary of the minutes from now_ms - 4 min to now_ms's minute.
void st_latency_summary(const st_latency_t *self, uint64_t now_ms, st_latency_summary_t *out);

#endif
