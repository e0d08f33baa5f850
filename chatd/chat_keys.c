/*  chat_keys - the Redis keys and channels of chat. */
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
