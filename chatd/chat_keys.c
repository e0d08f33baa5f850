/*  chat_keys - the Redis keys and channels of chat. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chat_keys.h"

static const char *const s_infix[] = {
    [CHAT_KEY_USER] = "chat:",
    [CHAT_KEY_ROOM] = "chat:room:",
    [CHAT_KEY_INBOX] = "chat:inbox:",
    [CHAT_KEY_CURSOR] = "chat:cursor:",
    [CHAT_KEY_PRESENCE] = "chat:presence:",
    [CHAT_KEY_ROOMS] = "chat:rooms:",
    [CHAT_KEY_MEMBERS] = "chat:members:",
};

//  Appends s to out at *o; false when it does not fit (with its NUL).
static int
s_put(char *out, size_t cap, size_t *o, const char *s)
{
    size_t n = strlen(s);
    if (*o + n + 1 > cap)
        return 0;
    memcpy(out + *o, s, n + 1);
    *o += n;
    return 1;
}

static size_t
s_done(char *out, size_t cap, size_t o, int ok)
{
    if (!ok) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    return o;
}

size_t
chat_key(char *out, size_t cap, chat_key_t kind, const char *tenant, const char *name)
{
    size_t o = 0;
    int ok = (unsigned) kind <= CHAT_KEY_MEMBERS && cap > 0 && name && *name;
    if (ok && tenant && *tenant)
        ok = s_put(out, cap, &o, tenant) && s_put(out, cap, &o, ":");
    ok = ok && s_put(out, cap, &o, s_infix[kind]) && s_put(out, cap, &o, name);
    return s_done(out, cap, o, ok);
}

size_t
chat_key_seen(char *out, size_t cap, const char *tenant, const char *from, const char *id)
{
    size_t o = 0;
    int ok = cap > 0 && from && *from && id && *id;
    if (ok && tenant && *tenant)
        ok = s_put(out, cap, &o, tenant) && s_put(out, cap, &o, ":");
    ok = ok && s_put(out, cap, &o, "chat:seen:") && s_put(out, cap, &o, from)
         && s_put(out, cap, &o, ":") && s_put(out, cap, &o, id);
    return s_done(out, cap, o, ok);
}

//  "<ms>-<seq>" into its two numbers; false if it is not of that form.
static bool
s_entry(const char *id, unsigned long long *ms, unsigned long long *seq)
{
    char *end = NULL;
    if (id == NULL || *id < '0' || *id > '9')
        return false;
    errno = 0;
    *ms = strtoull(id, &end, 10);
    if (errno != 0 || *end != '-' || end[1] < '0' || end[1] > '9')
        return false;
    *seq = strtoull(end + 1, &end, 10);
    return errno == 0 && *end == '\0';
}

int
chat_keys_entry_cmp(const char *a, const char *b)
{
    unsigned long long ams = 0, aseq = 0, bms = 0, bseq = 0;
    bool av = s_entry(a, &ams, &aseq), bv = s_entry(b, &bms, &bseq);
    if (!av || !bv)
        return (int) av - (int) bv;
    if (ams != bms)
        return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq ? 1 : 0;
}
