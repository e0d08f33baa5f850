/*  cli_routes - `switchyard routes list|get|apply|delete`: the routes of the
    control API (SPEC §5) from a terminal, over HTTP (libcurl) to the admin
    listener, JSON with jansson.
*/
#ifndef CLI_ROUTES_H
#define CLI_ROUTES_H

//  The longest answer read from the API, in bytes; a longer one is an error.
#define CLI_ROUTES_REPLY_MAX (64u * 1024u * 1024u)

//  `switchyard routes ...`: argv[0] is "routes". Returns the process exit
//  code: 0 done, 1 the API refused or could not be reached, 2 bad usage.
int cli_routes(int argc, char **argv);

#endif
