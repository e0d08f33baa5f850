/*  rt_pg_sql - the SQL of the PostgreSQL config store (rt_pg.h).

    The project's own tables, all named switchyard_* so they never collide
    with seed 002's tables in the same schema:

      switchyard_schema_migrations(version, description, applied_at)
      switchyard_config(singleton, version)        the current version
      switchyard_routes(vhost, route)              a route without backends
      switchyard_backends(vhost, id, position, backend)
      switchyard_regions(id, public_address)
      switchyard_certificates(domain, cert, key, issuer, subject,
                              not_before, not_after,
                              ocsp, ocsp_next_update)   (migration 2)
      switchyard_config_versions(version, at, by, summary, changes, created)

    Objects are kept in the store form the file store writes (rt_store.h),
    as jsonb: a route's fields, each backend's fields. Migrations are
    numbered; each runs once, in a transaction that holds an advisory lock,
    and is recorded in switchyard_schema_migrations: running RT_PG_MIGRATE
    again changes nothing. A later schema change is a new numbered block
    appended here, never an edit of an old one.
*/
#ifndef RT_PG_SQL_H
#define RT_PG_SQL_H

//  Migration 2: a certificate's OCSP response to staple (base64) and its
//  nextUpdate, both NULL for none; switchyard_commit stores them.
#define RT_PG_MIGRATE_2                                                                            \
    "DO $m2$ BEGIN"                                                                                \
    " IF NOT EXISTS (SELECT 1 FROM switchyard_schema_migrations WHERE version = 2) THEN"           \
    "  ALTER TABLE switchyard_certificates"                                                        \
    "   ADD COLUMN ocsp text, ADD COLUMN ocsp_next_update text;"                                   \
    "  CREATE OR REPLACE FUNCTION switchyard_commit(p_version bigint, p_entry jsonb) RETURNS void" \
    "  LANGUAGE plpgsql AS $f$"                                                                    \
    "  DECLARE cur bigint; ch jsonb; aft jsonb; k text;"                                           \
    "  BEGIN"                                                                                      \
    "   SELECT version INTO cur FROM switchyard_config FOR UPDATE;"                                \
    "   IF cur <> p_version - 1 THEN"                                                              \
    "    RAISE EXCEPTION 'configuration version % was made elsewhere (the database is at %)',"     \
    "     p_version, cur USING ERRCODE = 'SY409';"                                                 \
    "   END IF;"                                                                                   \
    "   FOR ch IN SELECT value FROM jsonb_array_elements(p_entry->'changes') LOOP"                 \
    "    aft := ch->'after'; k := ch->>'key';"                                                     \
    "    IF ch->>'what' = 'route' THEN"                                                            \
    "     DELETE FROM switchyard_routes WHERE vhost = k;"                                          \
    "     IF jsonb_typeof(aft) = 'object' THEN"                                                    \
    "      INSERT INTO switchyard_routes (vhost, route) VALUES (k, aft - 'backends');"             \
    "      INSERT INTO switchyard_backends (vhost, id, position, backend)"                         \
    "       SELECT k, b.value->>'id', b.ord::integer, b.value"                                     \
    "       FROM jsonb_array_elements(coalesce(aft->'backends', '[]'::jsonb))"                     \
    "            WITH ORDINALITY AS b(value, ord);"                                                \
    "     END IF;"                                                                                 \
    "    ELSIF ch->>'what' = 'region' THEN"                                                        \
    "     DELETE FROM switchyard_regions WHERE id = k;"                                            \
    "     IF jsonb_typeof(aft) = 'object' THEN"                                                    \
    "      INSERT INTO switchyard_regions VALUES (k, aft->>'publicAddress');"                      \
    "     END IF;"                                                                                 \
    "    ELSIF ch->>'what' = 'certificate' THEN"                                                   \
    "     DELETE FROM switchyard_certificates WHERE domain = k;"                                   \
    "     IF jsonb_typeof(aft) = 'object' THEN"                                                    \
    "      INSERT INTO switchyard_certificates (domain, cert, key, issuer, subject, not_before,"   \
    "       not_after, ocsp, ocsp_next_update) VALUES (k, aft->>'cert', aft->>'key',"              \
    "       aft->>'issuer', aft->>'subject', aft->>'notBefore', aft->>'notAfter',"                 \
    "       aft->>'ocsp', aft->>'ocspNextUpdate');"                                                \
    "     END IF;"                                                                                 \
    "    ELSE"                                                                                     \
    "     RAISE EXCEPTION 'unknown change %', ch->>'what' USING ERRCODE = 'SY400';"                \
    "    END IF;"                                                                                  \
    "   END LOOP;"                                                                                 \
    "   INSERT INTO switchyard_config_versions (version, at, by, summary, changes)"                \
    "    VALUES (p_version, p_entry->>'at', p_entry->>'by', p_entry->>'summary',"                  \
    "            coalesce(p_entry->'changes', '[]'::jsonb));"                                      \
    "   DELETE FROM switchyard_config_versions WHERE version <= p_version - 1000;"                 \
    "   UPDATE switchyard_config SET version = p_version;"                                         \
    "   PERFORM pg_notify('switchyard_config', p_version::text);"                                  \
    "  END $f$;"                                                                                   \
    "  INSERT INTO switchyard_schema_migrations (version, description)"                            \
    "   VALUES (2, 'certificates: the OCSP response to staple');"                                  \
    " END IF;"                                                                                     \
    "END $m2$;"

//  Connection settings, then the migrations, then LISTEN (one simple query).
//  (clang-format would join the lines around RT_PG_MIGRATE_2.)
// clang-format off
#define RT_PG_MIGRATE                                                                              \
    "SET statement_timeout = 5000;"                                                                \
    "SET client_min_messages = warning;"                                                           \
    "BEGIN;"                                                                                       \
    "SELECT pg_advisory_xact_lock(7345296001);"                                                    \
    "CREATE TABLE IF NOT EXISTS switchyard_schema_migrations ("                                    \
    "  version integer PRIMARY KEY,"                                                               \
    "  description text NOT NULL,"                                                                 \
    "  applied_at timestamptz NOT NULL DEFAULT now());"                                            \
    "DO $m1$ BEGIN"                                                                                \
    " IF NOT EXISTS (SELECT 1 FROM switchyard_schema_migrations WHERE version = 1) THEN"           \
    "  CREATE TABLE switchyard_config ("                                                           \
    "    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"                            \
    "    version bigint NOT NULL);"                                                                \
    "  INSERT INTO switchyard_config (version) VALUES (0);"                                        \
    "  CREATE TABLE switchyard_routes (vhost text PRIMARY KEY, route jsonb NOT NULL);"             \
    "  CREATE TABLE switchyard_backends ("                                                         \
    "    vhost text NOT NULL REFERENCES switchyard_routes ON DELETE CASCADE,"                      \
    "    id text NOT NULL, position integer NOT NULL, backend jsonb NOT NULL,"                     \
    "    PRIMARY KEY (vhost, id));"                                                                \
    "  CREATE TABLE switchyard_regions (id text PRIMARY KEY, public_address text NOT NULL);"       \
    "  CREATE TABLE switchyard_certificates ("                                                     \
    "    domain text PRIMARY KEY, cert text NOT NULL, key text NOT NULL,"                          \
    "    issuer text, subject text, not_before text, not_after text);"                             \
    "  CREATE TABLE switchyard_config_versions ("                                                  \
    "    version bigint PRIMARY KEY, at text NOT NULL, by text NOT NULL,"                          \
    "    summary text NOT NULL, changes jsonb NOT NULL,"                                           \
    "    created timestamptz NOT NULL DEFAULT now());"                                             \
    "  CREATE FUNCTION switchyard_commit(p_version bigint, p_entry jsonb) RETURNS void"            \
    "  LANGUAGE plpgsql AS $f$"                                                                    \
    "  DECLARE cur bigint; ch jsonb; aft jsonb; k text;"                                           \
    "  BEGIN"                                                                                      \
    "   SELECT version INTO cur FROM switchyard_config FOR UPDATE;"                                \
    "   IF cur <> p_version - 1 THEN"                                                              \
    "    RAISE EXCEPTION 'configuration version % was made elsewhere (the database is at %)',"     \
    "     p_version, cur USING ERRCODE = 'SY409';"                                                 \
    "   END IF;"                                                                                   \
    "   FOR ch IN SELECT value FROM jsonb_array_elements(p_entry->'changes') LOOP"                 \
    "    aft := ch->'after'; k := ch->>'key';"                                                     \
    "    IF ch->>'what' = 'route' THEN"                                                            \
    "     DELETE FROM switchyard_routes WHERE vhost = k;"                                          \
    "     IF jsonb_typeof(aft) = 'object' THEN"                                                    \
    "      INSERT INTO switchyard_routes (vhost, route) VALUES (k, aft - 'backends');"             \
    "      INSERT INTO switchyard_backends (vhost, id, position, backend)"                         \
    "       SELECT k, b.value->>'id', b.ord::integer, b.value"                                     \
    "       FROM jsonb_array_elements(coalesce(aft->'backends', '[]'::jsonb))"                     \
    "            WITH ORDINALITY AS b(value, ord);"                                                \
    "     END IF;"                                                                                 \
    "    ELSIF ch->>'what' = 'region' THEN"                                                        \
    "     DELETE FROM switchyard_regions WHERE id = k;"                                            \
    "     IF jsonb_typeof(aft) = 'object' THEN"                                                    \
    "      INSERT INTO switchyard_regions VALUES (k, aft->>'publicAddress');"                      \
    "     END IF;"                                                                                 \
    "    ELSIF ch->>'what' = 'certificate' THEN"                                                   \
    "     DELETE FROM switchyard_certificates WHERE domain = k;"                                   \
    "     IF jsonb_typeof(aft) = 'object' THEN"                                                    \
    "      INSERT INTO switchyard_certificates VALUES (k, aft->>'cert', aft->>'key',"              \
    "       aft->>'issuer', aft->>'subject', aft->>'notBefore', aft->>'notAfter');"                \
    "     END IF;"                                                                                 \
    "    ELSE"                                                                                     \
    "     RAISE EXCEPTION 'unknown change %', ch->>'what' USING ERRCODE = 'SY400';"                \
    "    END IF;"                                                                                  \
    "   END LOOP;"                                                                                 \
    "   INSERT INTO switchyard_config_versions (version, at, by, summary, changes)"                \
    "    VALUES (p_version, p_entry->>'at', p_entry->>'by', p_entry->>'summary',"                  \
    "            coalesce(p_entry->'changes', '[]'::jsonb));"                                      \
    "   DELETE FROM switchyard_config_versions WHERE version <= p_version - 1000;"                 \
    "   UPDATE switchyard_config SET version = p_version;"                                         \
    "   PERFORM pg_notify('switchyard_config', p_version::text);"                                  \
    "  END $f$;"                                                                                   \
    "  INSERT INTO switchyard_schema_migrations (version, description)"                            \
    "   VALUES (1, 'config tables, versions and switchyard_commit');"                              \
    " END IF;"                                                                                     \
    "END $m1$;"                                                                                    \
    RT_PG_MIGRATE_2                                                                                \
    "COMMIT;"                                                                                      \
    "LISTEN switchyard_config;"
// clang-format on

//  The current version alone (the refresh's cheap check).
#define RT_PG_VERSION "SELECT version FROM switchyard_config"

//  The whole configuration as one document (rt_store_parse's form), read
//  in one statement, so from one snapshot; history: the newest 1000. A
//  certificate without OCSP response has neither "ocsp" nor
//  "ocspNextUpdate" (json_strip_nulls).
#define RT_PG_LOAD                                                                                 \
    "SELECT json_build_object("                                                                    \
    " 'format', 1,"                                                                                \
    " 'version', (SELECT version FROM switchyard_config),"                                         \
    " 'routes', coalesce((SELECT json_agg(r.route || jsonb_build_object('backends',"               \
    "    coalesce((SELECT jsonb_agg(b.backend ORDER BY b.position) FROM switchyard_backends b"     \
    "              WHERE b.vhost = r.vhost), '[]'::jsonb)) ORDER BY r.vhost)"                      \
    "   FROM switchyard_routes r), '[]'::json),"                                                   \
    " 'regions', coalesce((SELECT json_agg(json_build_object('id', id, 'publicAddress',"           \
    "    public_address) ORDER BY id) FROM switchyard_regions), '[]'::json),"                      \
    " 'certificates', coalesce((SELECT json_agg(json_strip_nulls(json_build_object('domain',"      \
    "    domain, 'cert', cert, 'key', key, 'issuer', issuer, 'subject', subject, 'notBefore',"     \
    "    not_before, 'notAfter', not_after, 'ocsp', ocsp, 'ocspNextUpdate', ocsp_next_update))"    \
    "    ORDER BY domain) FROM switchyard_certificates), '[]'::json),"                             \
    " 'history', coalesce((SELECT json_agg(json_build_object('version', version, 'at', at,"        \
    "    'by', by, 'summary', summary, 'changes', changes) ORDER BY version)"                      \
    "   FROM (SELECT * FROM switchyard_config_versions ORDER BY version DESC LIMIT 1000) h),"      \
    "   '[]'::json))::text"

//  One change: $1 the new version, $2 its history entry (with changes).
#define RT_PG_COMMIT "SELECT switchyard_commit($1::bigint, $2::jsonb)"

//  SQLSTATE of "another router made this version first".
#define RT_PG_CONFLICT_STATE "SY409"

#endif
