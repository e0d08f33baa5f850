/*  gw_jwt - the identity of a chat client from its token (SPEC §9).

    With CHAT_JWT_SECRET set, a chat session needs an HS256 JWT signed with
    it (libjwt checks the signature); libjwt 1.10 does not check claims, so
    this does: the header's alg must be HS256 (not none, not another HMAC),
    `exp` must be present and in the future, and `sub` must be a valid user
    id, which becomes the session's user. Tokens longer than GW_JWT_MAX are
    refused before any parsing.
*/
#ifndef GW_JWT_H
#define GW_JWT_H

#include <stddef.h>
#include <time.h>

#include "proto_util.h"

#define GW_JWT_MAX  4096                // bytes of a token
#define GW_USER_MAX PROTO_CHAT_NAME_MAX // bytes of a user id (proto_chat_name_ok)

//  Check token (len bytes) against secret at time now. Returns 0 with the
//  user id in user (GW_USER_MAX + 1 bytes), or -1 with why (a static text
//  for the log: "bad signature", "expired", ...).
int gw_jwt_user(const char *token,
                size_t len,
                const char *secret,
                time_t now,
                char user[GW_USER_MAX + 1],
                const char **why);

#endif
