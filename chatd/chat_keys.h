/*  chat_keys - the Redis keys and channels of chat (docs/chat.md, "Redis layout").

    Every name is `P` + "chat:" + ..., where P is "" or "<tenant>:" for a
    session of a wildcard route. User ids, room names and tenants never hold
    ':' (they are checked before they get here), so one tenant's names can
    never be another's. Each writer returns the length, or 0 when the name
    does not fit in cap (out is then "").
*/
#ifndef CHAT_KEYS_H
#define CHAT_KEYS_H

#include <stddef.h>

#define CHAT_KEY_MAX 256 // room for any name below

typedef enum {
    CHAT_KEY_USER,     // channel Pchat:{user}
    CHAT_KEY_ROOM,     // channel Pchat:room:{room}
    CHAT_KEY_INBOX,    // stream Pchat:inbox:{user}
    CHAT_KEY_CURSOR,   // string Pchat:cursor:{user}
    CHAT_KEY_PRESENCE, // string Pchat:presence:{user}
    CHAT_KEY_ROOMS,    // set Pchat:rooms:{user}
    CHAT_KEY_MEMBERS,  // set Pchat:members:{room}
} chat_key_t;

//  The name of kind for tenant ("" for none) and name (a user or a room).
size_t chat_key(char *out, size_t cap, chat_key_t kind, const char *tenant, const char *name);

//  Pchat:seen:{from}:{id}: a client message id already accepted.
size_t chat_key_seen(char *out, size_t cap, const char *tenant, const char *from, const char *id);

//  Order of two stream entry ids ("<ms>-<seq>", Redis keeps them increasing
//  per stream): <0, 0, >0. "" (no entry yet) is before every id; an id that
//  is not of that form counts as "".
int chat_keys_entry_cmp(const char *a, const char *b);

#endif
