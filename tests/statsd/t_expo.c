/*  t_expo - strict Prometheus text format parser for tests. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_expo.h"

static char *
s_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static size_t
s_name_len(const char *p, bool metric)
{
    size_t n = 0;
    if (!(isalpha((unsigned char) p[0]) || p[0] == '_' || (metric && p[0] == ':')))
        return 0;
    while (isalnum((unsigned char) p[n]) || p[n] == '_' || (metric && p[n] == ':'))
        n++;
    return n;
}

static bool
s_number(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strcmp(buf, "NaN") == 0) {
        *out = NAN;
        return true;
    }
    if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "-Inf") == 0) {
        *out = buf[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!(isdigit((unsigned char) buf[i]) || strchr("+-.eE", buf[i])))
            return false;
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0';
}

static t_expo_family_t *
s_family_get(t_expo_t *doc, const char *name, size_t len)
{
    for (size_t i = 0; i < doc->nfamilies; i++)
        if (strlen(doc->families[i].name) == len && memcmp(doc->families[i].name, name, len) == 0)
            return &doc->families[i];
    return NULL;
}

static t_expo_family_t *
s_family_add(t_expo_t *doc, const char *name, size_t len)
{
    doc->families = realloc(doc->families, (doc->nfamilies + 1) * sizeof *doc->families);
    t_expo_family_t *f = &doc->families[doc->nfamilies++];
    memset(f, 0, sizeof *f);
    f->name = s_dup(name, len);
    return f;
}

//  The family a sample name belongs to, given declared types.
static t_expo_family_t *
s_family_of(t_expo_t *doc, const char *name, size_t len, const char **suffix)
{
    *suffix = "";
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t sl = strlen(sfx[i]);
        if (len > sl && memcmp(name + len - sl, sfx[i], sl) == 0) {
            t_expo_family_t *f = s_family_get(doc, name, len - sl);
            if (f && f->type
                && (strcmp(f->type, "histogram") == 0
                    || (strcmp(f->type, "summary") == 0 && i > 0))) {
                *suffix = sfx[i];
                return f;
            }
        }
    }
    return s_family_get(doc, name, len);
}

#define S_FAIL(...)                                                                                \
    do {                                                                                           \
        int off_ = snprintf(doc->error, sizeof doc->error, "line %d: ", lineno);                   \
        snprintf(doc->error + off_, sizeof doc->error - (size_t) off_, __VA_ARGS__);               \
        goto fail;                                                                                 \
    } while (0)

static bool
s_same_series(const t_expo_sample_t *a, const t_expo_sample_t *b)
{
    if (strcmp(a->name, b->name) != 0 || a->nlabels != b->nlabels)
        return false;
    for (int i = 0; i < a->nlabels; i++)
        if (strcmp(t_expo_label(b, a->keys[i]) ? t_expo_label(b, a->keys[i]) : "\x01", a->values[i])
            != 0)
            return false;
    return true;
}

//  Histogram checks on the finished document.
static int
s_check_histograms(t_expo_t *doc)
{
    int lineno = 0;
    for (size_t i = 0; i < doc->nsamples; i++) {
        t_expo_sample_t *s = &doc->samples[i];
        const t_expo_family_t *f = t_expo_family(doc, s->family);
        if (strcmp(f->type, "histogram") != 0 || strstr(s->name, "_count") == NULL
            || strcmp(s->name + strlen(s->name) - 6, "_count") != 0)
            continue;
        // buckets of the same labels, in order
        double last_le = -INFINITY, last_count = 0;
        bool inf = false;
        for (size_t j = 0; j < doc->nsamples; j++) {
            t_expo_sample_t *b = &doc->samples[j];
            if (strcmp(b->family, s->family) != 0 || strlen(b->name) < 7
                || strcmp(b->name + strlen(b->name) - 7, "_bucket") != 0)
                continue;
            bool match = b->nlabels == s->nlabels + 1;
            for (int k = 0; k < s->nlabels && match; k++) {
                const char *v = t_expo_label(b, s->keys[k]);
                match = v && strcmp(v, s->values[k]) == 0;
            }
            if (!match)
                continue;
            const char *le = t_expo_label(b, "le");
            double lev;
            if (le == NULL || !s_number(le, strlen(le), &lev))
                S_FAIL("bucket of %s without a valid le", s->family);
            if (lev <= last_le)
                S_FAIL("buckets of %s out of order", s->family);
            if (b->value < last_count)
                S_FAIL("buckets of %s not cumulative", s->family);
            last_le = lev;
            last_count = b->value;
            inf = isinf(lev) && lev > 0;
        }
        if (!inf)
            S_FAIL("histogram %s without a +Inf bucket", s->family);
        if (last_count != s->value)
            S_FAIL("+Inf bucket of %s is not _count", s->family);
    }
    return 0;
fail:
    return -1;
}

int
t_expo_parse(const char *text, t_expo_t *doc)
{
    memset(doc, 0, sizeof *doc);
    int lineno = 0;
    const char *current = NULL; // family of the previous sample
    const char *p = text;
    if (*p == '\0')
        return 0;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            S_FAIL("no line feed at the end");
        size_t len = (size_t) (nl - p);
        if (len == 0)
            S_FAIL("blank line");
        if (memchr(p, '\r', len))
            S_FAIL("carriage return");
        if (p[0] == '#') {
            bool help = len > 7 && memcmp(p, "# HELP ", 7) == 0;
            bool type = len > 7 && memcmp(p, "# TYPE ", 7) == 0;
            if (!help && !type) {
                p = nl + 1;
                continue; // a comment
            }
            const char *n = p + 7;
            size_t nlen = s_name_len(n, true);
            if (nlen == 0 || (n + nlen < nl && n[nlen] != ' '))
                S_FAIL("bad metric name");
            t_expo_family_t *f = s_family_get(doc, n, nlen);
            if (f == NULL)
                f = s_family_add(doc, n, nlen);
            const char *rest = n + nlen < nl ? n + nlen + 1 : nl;
            if (help) {
                if (f->help)
                    S_FAIL("second HELP for %s", f->name);
                f->help = malloc((size_t) (nl - rest) + 1);
                size_t o = 0;
                for (const char *q = rest; q < nl; q++) {
                    if (*q == '\\') {
                        q++;
                        if (q >= nl || (*q != '\\' && *q != 'n'))
                            S_FAIL("bad escape in HELP");
                        f->help[o++] = *q == 'n' ? '\n' : '\\';
                    } else {
                        f->help[o++] = *q;
                    }
                }
                f->help[o] = '\0';
            } else {
                if (f->type)
                    S_FAIL("second TYPE for %s", f->name);
                for (size_t i = 0; i < doc->nsamples; i++)
                    if (strcmp(doc->samples[i].family, f->name) == 0)
                        S_FAIL("TYPE of %s after its samples", f->name);
                f->type = s_dup(rest, (size_t) (nl - rest));
                const char *ok[] = {"counter", "gauge", "histogram", "summary", "untyped"};
                bool good = false;
                for (int i = 0; i < 5; i++)
                    good |= strcmp(f->type, ok[i]) == 0;
                if (!good)
                    S_FAIL("bad type '%s'", f->type);
            }
            p = nl + 1;
            continue;
        }
        size_t nlen = s_name_len(p, true);
        if (nlen == 0)
            S_FAIL("bad sample name");
        const char *suffix;
        t_expo_family_t *f = s_family_of(doc, p, nlen, &suffix);
        if (f == NULL || f->type == NULL)
            S_FAIL("sample %.*s before its TYPE", (int) nlen, p);
        if (current != f->name) {
            for (size_t i = 0; i < doc->nsamples; i++)
                if (strcmp(doc->samples[i].family, f->name) == 0)
                    S_FAIL("family %s split in two", f->name);
            current = f->name;
        }
        doc->samples = realloc(doc->samples, (doc->nsamples + 1) * sizeof *doc->samples);
        t_expo_sample_t *s = &doc->samples[doc->nsamples++];
        memset(s, 0, sizeof *s);
        s->name = s_dup(p, nlen);
        s->family = f->name;
        const char *q = p + nlen;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                size_t kl = s_name_len(q, false);
                if (kl == 0 || q[kl] != '=' || q[kl + 1] != '"')
                    S_FAIL("bad label");
                if (s->nlabels == T_EXPO_MAX_LABELS)
                    S_FAIL("too many labels");
                char *key = s_dup(q, kl);
                if (t_expo_label(s, key)) {
                    free(key);
                    S_FAIL("repeated label");
                }
                q += kl + 2;
                char *val = malloc((size_t) (nl - q) + 1);
                size_t o = 0;
                while (q < nl && *q != '"') {
                    if (*q == '\\') {
                        q++;
                        if (*q == 'n')
                            val[o++] = '\n';
                        else if (*q == '\\' || *q == '"')
                            val[o++] = *q;
                        else {
                            free(key);
                            free(val);
                            S_FAIL("bad escape in a label value");
                        }
                        q++;
                    } else {
                        val[o++] = *q++;
                    }
                }
                val[o] = '\0';
                s->keys[s->nlabels] = key;
                s->values[s->nlabels++] = val;
                if (q >= nl)
                    S_FAIL("unterminated label value");
                q++;
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    S_FAIL("expected , or }");
            }
            q++;
        }
        if (*q != ' ')
            S_FAIL("expected a space before the value");
        q++;
        const char *sp = memchr(q, ' ', (size_t) (nl - q));
        if (!s_number(q, (size_t) ((sp ? sp : nl) - q), &s->value))
            S_FAIL("bad value '%.*s'", (int) (nl - q), q);
        if (sp) {
            for (const char *t = sp + 1; t < nl; t++)
                if (!isdigit((unsigned char) *t) && !(t == sp + 1 && *t == '-'))
                    S_FAIL("bad timestamp");
        }
        if (strcmp(suffix, "_bucket") == 0 && t_expo_label(s, "le") == NULL)
            S_FAIL("bucket without le");
        for (size_t i = 0; i + 1 < doc->nsamples; i++)
            if (s_same_series(&doc->samples[i], s))
                S_FAIL("repeated series %s", s->name);
        p = nl + 1;
    }
    return s_check_histograms(doc);
fail:
    return -1;
}

const t_expo_family_t *
t_expo_family(const t_expo_t *doc, const char *name)
{
    for (size_t i = 0; i < doc->nfamilies; i++)
        if (strcmp(doc->families[i].name, name) == 0)
            return &doc->families[i];
    return NULL;
}

const char *
t_expo_label(const t_expo_sample_t *s, const char *key)
{
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->keys[i], key) == 0)
            return s->values[i];
    return NULL;
}

int
t_expo_find(const t_expo_t *doc, const char *name, double *value, ...)
{
    int found = 0;
    for (size_t i = 0; i < doc->nsamples; i++) {
        const t_expo_sample_t *s = &doc->samples[i];
        if (strcmp(s->name, name) != 0)
            continue;
        va_list ap;
        va_start(ap, value);
        bool match = true;
        const char *k;
        while (match && (k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            const char *have = t_expo_label(s, k);
            match = have && strcmp(have, v) == 0;
        }
        va_end(ap);
        if (match) {
            if (found == 0 && value)
                *value = s->value;
            found++;
        }
    }
    return found;
}

void
t_expo_free(t_expo_t *doc)
{
    for (size_t i = 0; i < doc->nsamples; i++) {
        free(doc->samples[i].name);
        for (int k = 0; k < doc->samples[i].nlabels; k++) {
            free(doc->samples[i].keys[k]);
            free(doc->samples[i].values[k]);
        }
    }
    free(doc->samples);
    for (size_t i = 0; i < doc->nfamilies; i++) {
        free(doc->families[i].name);
        free(doc->families[i].type);
        free(doc->families[i].help);
    }
    free(doc->families);
    memset(doc, 0, sizeof *doc);
}
