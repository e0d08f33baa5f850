/*  t_expo - a strict parser of the Prometheus text exposition format 0.0.4,
    for statsd's tests: it rejects what a scraper would reject and more
    (blank lines, a sample before its TYPE, a family split in two, a repeated
    series, bad names, bad escapes, bad numbers, histogram buckets out of
    order or not cumulative, a +Inf bucket that differs from _count).
*/
#ifndef T_EXPO_H
#define T_EXPO_H

#include <stddef.h>

#define T_EXPO_MAX_LABELS 8

typedef struct {
    char *name;                      // sample name
    char *family;                    // family it belongs to
    char *keys[T_EXPO_MAX_LABELS];   // label names
    char *values[T_EXPO_MAX_LABELS]; // unescaped label values
    int nlabels;                     // how many
    double value;                    // sample value
} t_expo_sample_t;

typedef struct {
    char *name; // family name
    char *type; // counter, gauge, histogram, summary, untyped
    char *help; // HELP text (unescaped) or NULL
} t_expo_family_t;

typedef struct {
    t_expo_sample_t *samples;
    size_t nsamples;
    t_expo_family_t *families;
    size_t nfamilies;
    char error[256]; // why parsing failed
} t_expo_t;

//  Parse text. Returns 0, or -1 with doc->error naming the line and reason.
int t_expo_parse(const char *text, t_expo_t *doc);

//  The family by name, or NULL.
const t_expo_family_t *t_expo_family(const t_expo_t *doc, const char *name);

//  Number of samples of name whose labels include the pairs given
//  (key, value, ..., NULL); *value gets the first one's value.
int t_expo_find(const t_expo_t *doc, const char *name, double *value, ...);

//  The value of the label key of a sample, or NULL.
const char *t_expo_label(const t_expo_sample_t *s, const char *key);

void t_expo_free(t_expo_t *doc);

#endif
