/*  rt_history - the configuration as of a version, and what changed between two.

    Pure functions on jansson values: no I/O, no globals. The router records,
    with every new configuration version, the changes that turned the previous
    configuration into the new one; from those this module rebuilds any older
    version (GET /config/versions/:v, POST /config/rollback/:v) and says what
    changed between two versions (GET /config/diff), SPEC §5.

    A configuration ("cfg") is a JSON object
      {"routes":       {<vHost>:  <route object>},
       "regions":      {<id>:     <region object>},
       "certificates": {<domain>: <certificate object>}}
    three objects keyed by the identity of what they hold. All three members
    are always present, and every value in them is an object; apart from that
    (and from what rt_history_diff and rt_history_redact look into, see
    there) the values are opaque to this module. Version 0 is the empty
    configuration (three empty objects).

    A change is
      {"what": "route" | "region" | "certificate", "key": <string>,
       "before": <object or null>, "after": <object or null>}
    before null: the key was created; after null: it was removed. A key is a
    non-empty string; before and after are not both null.

    A history entry is
      {"version": <uint>, "at": <string>, "by": <string>, "summary": <string>,
       "changes": [<change>, ...]}
    and a history is an array of entries, oldest first, versions strictly
    increasing by 1, the newest being the current version. Older entries may
    have been trimmed off the front; entries written by older code may lack
    "changes" (no version before them can be rebuilt).

    Everything returned is a new value owned by the caller, sharing nothing
    with the arguments. Arguments are never modified, except cfg in
    rt_history_apply. Arguments of the wrong shape are refused (NULL, or -1
    with a reason), never a crash.
*/
#ifndef RT_HISTORY_H
#define RT_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RT_HISTORY_REDACTED "[redacted]" // what rt_history_redact puts in place of a secret

//  The empty configuration (version 0). Caller owns it.
json_t *rt_history_empty(void);

//  True when cfg has the shape of a configuration (see above).
bool rt_history_is_cfg(const json_t *cfg);

//  The changes that turn configuration from into configuration to: for each
//  map, a key only in from is removed, only in to is created, in both but
//  not json_equal is changed. Ordered routes, then regions, then
//  certificates; within each, by key (strcmp). before and after are deep
//  copies. Returns a new array (empty when from and to are equal), or NULL
//  when either is not a configuration.
json_t *rt_history_changes(const json_t *from, const json_t *to);

//  Apply changes (an array of changes) to cfg in place. Forward (reverse
//  false): in array order, set the key to "after", or delete it when "after"
//  is null. Reverse: from the last change to the first, set the key to
//  "before", or delete it when null; so applying an array forward and then
//  in reverse gives back the original cfg.
//  Each change must also fit the cfg it is applied to: forward, the key's
//  value must be json_equal to "before" (absent when before is null);
//  reverse, to "after". A history that does not match the configuration is
//  thus refused rather than rebuilt into something that never existed.
//  Values set are deep copies: cfg shares nothing with changes.
//  Returns 0, or -1 with a one-line reason in err when cfg is not a
//  configuration, changes is not an array, a change is malformed (naming its
//  index) or does not fit; cfg is then untouched: everything is checked
//  before anything is changed. The three member objects of cfg stay the
//  same objects (borrowed pointers to them stay valid).
int rt_history_apply(json_t *cfg, const json_t *changes, bool reverse, char *err, size_t errlen);

//  The configuration as of version v, given the current configuration at
//  current_version and the history (see above). v == current_version: a
//  deep copy of current. v < current_version: a deep copy of current with
//  the changes of the entries current_version, current_version - 1, ...,
//  v + 1 applied in reverse (rt_history_apply). Version 0 is reachable when
//  the history holds every entry from 1.
//  Returns NULL with a one-line reason in err when current is not a
//  configuration, v > current_version ("no version v"), history is not an
//  array, an entry needed was trimmed ("version v is older than the history
//  kept (oldest: N)", N the oldest version that can be rebuilt), an entry
//  needed lacks "changes" ("version v predates recorded changes (entry N has
//  none)"), the entries are not consecutive or do not end at current_version,
//  or an entry's changes are malformed or do not fit.
json_t *rt_history_at(const json_t *current,
                      uint64_t current_version,
                      const json_t *history,
                      uint64_t v,
                      char *err,
                      size_t errlen);

//  What changed from configuration from to configuration to, the body of
//  GET /api/v1/config/diff:
//    {"routes": {"added": [vHost, ...], "removed": [vHost, ...],
//                "changed": [{"vHost": v, "fields": [name, ...],
//                             "backends": {"added": [id, ...], "removed": [id, ...],
//                                          "changed": [{"id": id, "fields": [name, ...]}]}}]},
//     "regions": {"added": [id, ...], "removed": [...], "changed": [{"id": id, "fields": [...]}]},
//     "certificates": {"added": [domain, ...], "removed": [...],
//                      "changed": [{"domain": d, "fields": [...]}]}}
//  An entry is changed when its two values are not json_equal. "fields" are
//  the top-level member names present in only one of the two values or
//  whose values differ; for a route "backends" is never among them: its
//  backends (the objects of its "backends" array, matched by their string
//  "id") are compared one by one instead. A missing or non-array "backends"
//  counts as empty; a backend that is not an object with a string "id" is
//  skipped, and of two backends with the same id the first counts. So a
//  route whose backends only changed order is listed as changed with empty
//  lists. Every list is sorted (strcmp). The diff holds names only, never
//  a value: a certificate whose key changed is listed with field "key", and
//  no key material appears anywhere in it.
//  Returns a new object, or NULL when from or to is not a configuration.
json_t *rt_history_diff(const json_t *from, const json_t *to);

//  A deep copy of cfg with its secrets replaced by RT_HISTORY_REDACTED:
//  every certificate's "key"; in every route, "ssl.key", each hash of
//  "auth.users" (an object of user names to crypt(3) hashes: the names are
//  kept) and each entry of "auth.tokens" (an array of SHA-256 digests: the
//  count is kept). Secrets are redacted wherever they are, whatever else is
//  wrong around them: "routes" and "certificates" may also be arrays; a
//  secret of another type is replaced whole; "auth.users" as an array of
//  objects gets their "password", "passwordHash" and "hash" redacted; other
//  members of the wrong type are left as they are.
//  Returns a new value, or NULL when cfg is not an object.
json_t *rt_history_redact(const json_t *cfg);

#endif
