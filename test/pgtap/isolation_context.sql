-- isolation_context.sql: the session context cannot be forged or mixed.
--
-- An application role (iso_app, no BYPASSRLS) tries every way around
-- autora.set_context(): SET / SET LOCAL / RESET / set_config() of the context
-- GUCs (also the hidden autora.context, inside subqueries and in function SET
-- clauses), ALTER ROLE / DATABASE SET, trusted context without membership,
-- writing its own key, tenant or actor role.  Every attempt must fail with
-- 42501 and leave the context exactly as it was; SAVEPOINT / ROLLBACK TO,
-- aborted subtransactions and RESET ALL must restore or clear all of it.
-- Session-level behaviour (COMMIT, DISCARD ALL, PGOPTIONS, planted role
-- settings) is in test/t/012_isolation_sessions.pl.
BEGIN;
SELECT plan(52);

-- ------------------------------------------------------------------ set-up
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA iso;
CREATE FUNCTION iso.b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT translate(encode($1, 'base64'), E'+/=\n', '-_') $$;
CREATE FUNCTION iso.secret() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT 'iso-context-secret-0123456789-abcdefghij' $$;
-- HS256 compact JWT over the given header and payload
CREATE FUNCTION iso.jwt(hdr jsonb, pay jsonb, secret text DEFAULT iso.secret())
RETURNS text LANGUAGE sql AS $$
    SELECT s || '.' || iso.b64url(hmac(convert_to(s, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'))
    FROM (SELECT iso.b64url(convert_to(hdr::text, 'UTF8')) || '.' ||
                 iso.b64url(convert_to(pay::text, 'UTF8')) AS s) AS parts $$;
CREATE FUNCTION iso.tok(tenant text, role text DEFAULT 'sales', sub text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT iso.jwt('{"alg": "HS256", "typ": "JWT", "kid": "iso-hs"}',
                   jsonb_strip_nulls(jsonb_build_object('tenant', tenant,
                       'sub', coalesce(sub, 'u-' || coalesce(tenant, 'platform')), 'role', role,
                       'exp', extract(epoch FROM now())::bigint + 600))) $$;
-- sets a transaction-scoped context from a fresh token, returns its tenant
CREATE FUNCTION iso.ctx(tenant text, role text DEFAULT 'sales', sub text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$ SELECT autora.set_context(iso.tok(tenant, role, sub)) ->> 'tenant' $$;
-- runs a statement; 'ok' or the SQLSTATE it failed with (effects kept on success)
CREATE FUNCTION iso.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
-- the context as the GUCs show it and as the readers return it
CREATE FUNCTION iso.state() RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws('|', current_setting('autora.tenant_id'), current_setting('autora.actor_id'),
                     current_setting('autora.actor_role'), autora.tenant(), autora.actor(),
                     autora.actor_role(), autora.context() ->> 'tenant') $$;

CREATE ROLE iso_app;
CREATE ROLE iso_app2;
CREATE ROLE iso_owner;
GRANT iso_app2 TO iso_app;
GRANT USAGE, CREATE ON SCHEMA iso TO iso_app, iso_app2;

DO $$
DECLARE
    r record;
BEGIN
    -- only this file's key is in force while it runs (all rolled back)
    PERFORM autora.revoke_key(kid) FROM autora.keys WHERE revoked_at IS NULL;
    PERFORM autora.add_key('iso-hs', 'HS256', iso.secret());
    PERFORM autora.add_tenant('iso-a', 'iso-g1', 'Store A');
    PERFORM autora.add_tenant('iso-b', 'iso-g1', 'Store B');
    PERFORM autora.add_tenant('iso-c', 'iso-g2', 'Store C');
    -- pgTAP keeps its state in temp tables the application role must write
    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
             WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'S') LOOP
        EXECUTE format('GRANT ALL ON %s TO iso_app, iso_app2', r.rel);
    END LOOP;
END $$;

CREATE TABLE iso.deals (id int PRIMARY KEY, tenant_id text NOT NULL, v text);
CREATE TABLE iso.empty_t (id int PRIMARY KEY, tenant_id text);
ALTER TABLE iso.deals OWNER TO iso_owner;
ALTER TABLE iso.empty_t OWNER TO iso_owner;
SELECT autora.protect('iso.deals') IS NULL AS protected_deals \gset
SELECT autora.protect('iso.empty_t') IS NULL AS protected_empty \gset
GRANT ALL ON iso.deals, iso.empty_t TO iso_app, iso_app2;
DO $$
BEGIN
    PERFORM iso.ctx('iso-a');
    INSERT INTO iso.deals VALUES (1, 'iso-a', 'a1'), (2, 'iso-a', 'a2'), (3, 'iso-a', 'a3');
    PERFORM iso.ctx('iso-b');
    INSERT INTO iso.deals VALUES (11, 'iso-b', 'b1'), (12, 'iso-b', 'b2');
    PERFORM iso.ctx('iso-c');
    INSERT INTO iso.deals VALUES (21, 'iso-c', 'c1');
    PERFORM autora.clear_context();
END $$;

SET ROLE iso_app;

-- ------------------------------------------------------------------ no context
SELECT throws_ok('SELECT autora.tenant()', 'ZA001', NULL,
    'no context: autora.tenant() raises ZA001 instead of returning NULL');
SELECT throws_ok('SELECT autora.visible_tenants()', 'ZA001', NULL,
    'no context: autora.visible_tenants() raises ZA001');
SELECT throws_ok('SELECT count(*) FROM iso.empty_t', 'ZA001', NULL,
    'no context: reading an EMPTY protected table fails ZA001 (permission-check time)');
SELECT throws_ok('INSERT INTO iso.empty_t (id, tenant_id) VALUES (1, ''iso-a'')', 'ZA001', NULL,
    'no context: writing a protected table fails ZA001');
SELECT is(current_setting('autora.tenant_id'), '',
    'no context: the autora.tenant_id GUC is empty');

-- ------------------------------------------------------------------ honest path
SELECT is(iso.ctx('iso-a'), 'iso-a', 'honest: set_context(token) sets tenant iso-a');
SELECT is(iso.state(), 'iso-a|u-iso-a|sales|iso-a|u-iso-a|sales|iso-a',
    'honest: GUCs and readers agree on tenant, actor and role');
SELECT results_eq('SELECT id FROM iso.deals ORDER BY id', ARRAY[1, 2, 3],
    'honest: tenant iso-a reads exactly its own rows');

-- ------------------------------------------------------------------ SET / RESET / set_config
SELECT throws_ok('SET autora.tenant_id = ''iso-b''', '42501', NULL,
    'SET autora.tenant_id is refused');
SELECT throws_ok('SET LOCAL autora.tenant_id = ''iso-b''', '42501', NULL,
    'SET LOCAL autora.tenant_id is refused');
SELECT throws_ok('SET autora.actor_id = ''u-iso-b''', '42501', NULL,
    'SET autora.actor_id is refused');
SELECT throws_ok('SET autora.actor_role = ''platform_owner''', '42501', NULL,
    'SET autora.actor_role = platform_owner is refused');
SELECT throws_ok('SET autora.context = ''{"tenant": "iso-b", "sub": "x", "role": "platform_owner", "scope": "platform"}''',
    '42501', NULL, 'SET of the hidden autora.context GUC is refused');
SELECT throws_ok('RESET autora.tenant_id', '42501', NULL,
    'RESET autora.tenant_id is refused');
SELECT throws_ok('RESET autora.context', '42501', NULL,
    'RESET autora.context is refused');
SELECT throws_ok($$SELECT set_config('autora.tenant_id', 'iso-b', false)$$, '42501', NULL,
    'set_config(autora.tenant_id, session) is refused');
SELECT throws_ok($$SELECT set_config('autora.actor_role', 'platform_owner', true)$$, '42501', NULL,
    'set_config(autora.actor_role, local) is refused');
SELECT throws_ok($$SELECT set_config('autora.context', '{"tenant": "iso-b", "sub": "x", "role": "sales", "scope": "tenant"}', true)$$,
    '42501', NULL, 'set_config(autora.context) is refused');
SELECT throws_ok($$SELECT count(*) FROM iso.deals WHERE (SELECT set_config('autora.tenant_id', 'iso-b', true)) IS NOT NULL$$,
    '42501', NULL, 'set_config inside a subquery of a query on the protected table is refused');
SELECT throws_ok($$SELECT id FROM iso.deals WHERE set_config('autora.tenant_id', 'iso-b', true) = 'iso-b'$$,
    '42501', NULL, 'set_config evaluated per row in a WHERE clause is refused');

-- ------------------------------------------------------------------ function SET clauses
SELECT throws_ok($$CREATE FUNCTION iso.f_set() RETURNS text LANGUAGE sql
                   SET autora.tenant_id = 'iso-b' AS 'SELECT autora.tenant()'$$,
    '42501', NULL, 'CREATE FUNCTION ... SET autora.tenant_id by the app role is refused');
RESET ROLE;
SELECT throws_ok($$CREATE FUNCTION iso.f_set() RETURNS text LANGUAGE sql
                   SET autora.tenant_id = 'iso-b' AS 'SELECT autora.tenant()'$$,
    '42501', NULL, 'CREATE FUNCTION ... SET autora.tenant_id is refused even for a superuser');
-- a SET clause planted straight into the catalog must still fail when called
CREATE FUNCTION iso.f_planted() RETURNS text LANGUAGE sql AS 'SELECT autora.tenant()';
CREATE FUNCTION iso.f_planted_definer() RETURNS text LANGUAGE sql SECURITY DEFINER
    AS 'SELECT autora.tenant()';
UPDATE pg_proc SET proconfig = '{autora.tenant_id=iso-b}'
 WHERE pronamespace = 'iso'::regnamespace AND proname IN ('f_planted', 'f_planted_definer');
SET ROLE iso_app;
SELECT throws_ok('SELECT iso.f_planted()', '42501', NULL,
    'a function whose SET clause names autora.tenant_id fails when called');
SELECT throws_ok('SELECT iso.f_planted_definer()', '42501', NULL,
    'the same SET clause on a superuser-owned SECURITY DEFINER function fails too');

-- ------------------------------------------------------------------ ALTER ROLE / DATABASE SET
RESET ROLE;
SELECT throws_ok('ALTER ROLE iso_app SET autora.tenant_id = ''iso-b''', '42501', NULL,
    'ALTER ROLE ... SET autora.tenant_id is refused');
SELECT throws_ok('ALTER ROLE iso_app SET autora.context = ''{"tenant": "iso-b", "sub": "x", "role": "sales"}''',
    '42501', NULL, 'ALTER ROLE ... SET autora.context is refused');
SELECT throws_ok(format('ALTER DATABASE %I SET autora.actor_role = %L', current_database(), 'platform_owner'),
    '42501', NULL, 'ALTER DATABASE ... SET autora.actor_role is refused');
SELECT throws_ok('SET autora.tenant_id = ''iso-b''', '42501', NULL,
    'SET autora.tenant_id is refused for a superuser as well');
-- a superuser may RESET a PGC_SUSET GUC; whatever happens, never a mixed context
SELECT iso.ctx('iso-a') AS su_ctx, iso.try('RESET autora.tenant_id') AS su_reset \gset
SELECT is(current_setting('autora.tenant_id'), autora.tenant(),
    'superuser RESET autora.tenant_id does not leave a mixed context (GUC vs autora.tenant())');
SET ROLE iso_app;
SELECT iso.ctx('iso-a') AS reset_ctx \gset

-- ------------------------------------------------------------------ nothing changed
SELECT is(iso.state(), 'iso-a|u-iso-a|sales|iso-a|u-iso-a|sales|iso-a',
    'after every refused attempt the context is intact and consistent');
SELECT results_eq('SELECT id FROM iso.deals ORDER BY id', ARRAY[1, 2, 3],
    'after every refused attempt tenant iso-a still reads only its rows');

-- ------------------------------------------------------------------ failed set_context keeps the old one
SELECT throws_ok($$SELECT autora.set_context(iso.jwt('{"alg": "HS256", "kid": "iso-hs"}',
                       '{"tenant": "iso-b", "sub": "x", "role": "sales"}', 'not-the-secret-not-the-secret-not-the-secret'))$$,
    'ZA002', NULL, 'a token with a bad signature is refused');
SELECT throws_ok($$SELECT iso.ctx('iso-b', 'no_such_role')$$, 'ZA004', NULL,
    'a signed token with an unknown role is refused');
SELECT is(iso.state(), 'iso-a|u-iso-a|sales|iso-a|u-iso-a|sales|iso-a',
    'failed set_context calls leave the previous context whole (no partial switch)');

-- ------------------------------------------------------------------ switching, subtransactions
SELECT is(iso.ctx('iso-b', 'dealer_admin', 'boss-b') || '|' || iso.state(),
    'iso-b|iso-b|boss-b|dealer_admin|iso-b|boss-b|dealer_admin|iso-b',
    'switching tenants replaces tenant, actor and role together');
SELECT iso.ctx('iso-a') AS back_to_a \gset
SELECT throws_ok($$SELECT iso.ctx('iso-b') || (1 / 0)::text$$, '22012', NULL,
    'set_context(iso-b) inside a statement that then fails');
SELECT is(iso.state(), 'iso-a|u-iso-a|sales|iso-a|u-iso-a|sales|iso-a',
    'the aborted subtransaction restored the iso-a context');
-- SQL-level SAVEPOINT: observe inside, roll back, observe again (psql
-- variables survive ROLLBACK TO; pgTAP's own tables would not)
SAVEPOINT sp_iso;
SELECT iso.ctx('iso-b') AS sp_tenant,
       (SELECT string_agg(id::text, ',' ORDER BY id) FROM iso.deals) AS sp_rows \gset
ROLLBACK TO SAVEPOINT sp_iso;
SELECT is(:'sp_tenant' || ':' || :'sp_rows', 'iso-b:11,12',
    'inside the savepoint the iso-b context read iso-b rows only');
SELECT is(iso.state() || ':' || (SELECT string_agg(id::text, ',' ORDER BY id) FROM iso.deals),
    'iso-a|u-iso-a|sales|iso-a|u-iso-a|sales|iso-a:1,2,3',
    'ROLLBACK TO SAVEPOINT restored the iso-a context and its rows');
SAVEPOINT sp_keep;
SELECT iso.ctx('iso-b') AS keep_tenant \gset
RELEASE SAVEPOINT sp_keep;
SELECT is(autora.tenant(), 'iso-b', 'honest: RELEASE SAVEPOINT keeps the context set inside it');

-- ------------------------------------------------------------------ SET ROLE keeps the context
SELECT iso.ctx('iso-a') AS before_set_role \gset
SET ROLE iso_app2;
SELECT is(autora.tenant() || ':' || (SELECT string_agg(id::text, ',' ORDER BY id) FROM iso.deals),
    'iso-a:1,2,3', 'SET ROLE to another application role keeps the session context');
SET ROLE iso_app;

-- ------------------------------------------------------------------ RESET ALL / clear_context
RESET ALL;
SELECT throws_ok('SELECT autora.tenant()', 'ZA001', NULL, 'RESET ALL clears the context');
SELECT throws_ok('SELECT count(*) FROM iso.deals', 'ZA001', NULL,
    'after RESET ALL the protected table is closed again');
SELECT iso.ctx('iso-a') AS after_reset_all \gset
SELECT lives_ok('SELECT autora.clear_context()', 'honest: clear_context() is callable by the app role');
SELECT throws_ok('SELECT count(*) FROM iso.deals', 'ZA001', NULL,
    'after clear_context() the protected table is closed again');

-- ------------------------------------------------------------------ configuration is out of reach
SELECT iso.ctx('iso-a') AS cfg_ctx \gset
SELECT throws_ok($$SELECT autora.set_context_trusted('iso-b', 'x', 'platform_owner')$$, '42501', NULL,
    'set_context_trusted by a role outside autora_trusted is refused');
SELECT throws_ok('SELECT count(*) FROM autora.tenants', '42501', NULL,
    'autora.tenants is not readable by the application role');
SELECT throws_ok('SELECT kid, key FROM autora.keys', '42501', NULL,
    'autora.keys is not readable by the application role');
SELECT throws_ok($$SELECT autora.add_key('iso-evil', 'HS256', repeat('e', 40))$$, '42501', NULL,
    'the application role cannot register its own signing key');
SELECT throws_ok($$INSERT INTO autora.keys (kid, alg, key) VALUES ('iso-evil', 'HS256', repeat('e', 40))$$,
    '42501', NULL, 'the application role cannot insert into autora.keys');
SELECT throws_ok($$UPDATE autora.actor_roles SET scope = 'platform' WHERE role = 'sales'$$, '42501', NULL,
    'the application role cannot widen an actor role''s scope');
SELECT throws_ok($$SELECT autora.add_tenant('iso-b', 'iso-g3')$$, '42501', NULL,
    'the application role cannot move a store to another group');

SELECT * FROM finish();
ROLLBACK;
