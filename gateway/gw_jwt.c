/*  gw_jwt - the identity of a chat client from its token (SPEC §9).

    libjwt does the signature; the claims are ours (ARCHITECTURE.md: libjwt
    1.10 does not validate them).
*/
#include <errno.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>

#include "gw_jwt.h"
#include "proto_util.h"

int
gw_jwt_user(const char *token,
            size_t len,
            const char *secret,
            time_t now,
            char user[GW_USER_MAX + 1],
            const char **why)
{
    *why = NULL;
    if (len == 0 || len > GW_JWT_MAX || memchr(token, '\0', len) != NULL) {
        *why = len == 0 ? "no token" : "token too long or malformed";
        return -1;
    }
    char text[GW_JWT_MAX + 1];
    memcpy(text, token, len);
    text[len] = '\0';
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, text, (const unsigned char *) secret, (int) strlen(secret)) != 0
        || jwt == NULL) {
        *why = "bad token or signature";
        return -1;
    }
    int rc = -1;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        *why = "alg is not HS256";
        goto done;
    }
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (errno != 0) {
        *why = "no exp claim";
        goto done;
    }
    if ((time_t) exp <= now) {
        *why = "expired";
        goto done;
    }
    const char *sub = jwt_get_grant(jwt, "sub");
    if (sub == NULL || !proto_chat_name_ok(sub, strlen(sub))) {
        *why = "sub is not a valid user id";
        goto done;
    }
    memcpy(user, sub, strlen(sub) + 1);
    rc = 0;
done:
    jwt_free(jwt);
    return rc;
}
