--
-- bad_input: every misuse fails with an SQLSTATE and a message that says what
-- to do; nothing crashes and nothing is half done.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset null '(null)'

SELECT autora.add_tenant('bad_1', 'west', 'Bad Input Motors');
SELECT autora.add_tenant('777', 'west', 'Numeric Store');
CREATE ROLE regress_bad_plain NOLOGIN;
CREATE ROLE regress_bad_app NOLOGIN IN ROLE autora_trusted;

CREATE TABLE bad_deals (id integer PRIMARY KEY, tenant_id text, customer text, notes text,
                        price numeric, score float8, "my col" text, "we""ird" text);
GRANT SELECT, INSERT, UPDATE, DELETE ON bad_deals TO regress_bad_app, regress_bad_plain;
CREATE VIEW bad_view AS SELECT * FROM bad_deals;
CREATE TABLE bad_nopk (tenant_id text, x integer);
CREATE TABLE bad_notenant (id integer PRIMARY KEY, store text);
CREATE TABLE bad_numeric_tenant (id integer PRIMARY KEY, tenant_id numeric);
CREATE TABLE bad_date_tenant (id integer PRIMARY KEY, tenant_id date);
CREATE TEMP TABLE bad_temp (id integer PRIMARY KEY, tenant_id text);
CREATE TABLE "Odd ""Table""" (id integer PRIMARY KEY, tenant_id text, "Odd Col" text);

SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
-- attempt(sql): 'allowed', or the SQLSTATE that refused it
CREATE FUNCTION pg_temp.attempt(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'allowed';
EXCEPTION WHEN OTHERS THEN
    RETURN 'refused: ' || SQLSTATE;
END
$$;

--
-- protect()
--
SELECT autora.protect('no_such_table');
\echo :SQLSTATE
SELECT autora.protect('bad_view');
\echo :SQLSTATE
SELECT autora.protect('bad_nopk');
\echo :SQLSTATE
SELECT autora.protect('bad_notenant');
\echo :SQLSTATE
SELECT autora.protect('bad_notenant', 'no_such_column');
\echo :SQLSTATE
SELECT autora.protect('bad_numeric_tenant');
\echo :SQLSTATE
SELECT autora.protect('bad_date_tenant');
\echo :SQLSTATE
SELECT autora.protect('bad_temp');
\echo :SQLSTATE
SELECT autora.protect('autora.tenants');
\echo :SQLSTATE
SELECT autora.protect('autora.ledger');
\echo :SQLSTATE
SELECT autora.protect('pg_catalog.pg_class', 'relname');
\echo :SQLSTATE
SELECT autora.protect('bad_deals', pii_columns => '{no_such_column}');
\echo :SQLSTATE
SELECT autora.protect('bad_deals', exclude_columns => '{no_such_column}');
\echo :SQLSTATE
SELECT autora.protect('bad_deals', exclude_columns => '{notes,tenant_id}');
\echo :SQLSTATE
SELECT autora.protect('bad_deals', pii_columns => ARRAY['customer', NULL]::name[]);
\echo :SQLSTATE
SELECT autora.protect(NULL);
\echo :SQLSTATE
-- a role outside autora_admin cannot protect
SET ROLE regress_bad_plain;
SELECT autora.protect('bad_deals');
\echo :SQLSTATE
RESET ROLE;
-- none of the failures protected anything or wrote an entry
SELECT count(*) AS protected FROM autora.protected_tables
 WHERE table_name IN ('bad_deals', 'bad_view', 'bad_nopk', 'bad_notenant', 'bad_numeric_tenant',
                      'bad_date_tenant', 'bad_temp', 'tenants', 'ledger', 'pg_class');
SELECT count(*) AS autora_triggers FROM pg_trigger
 WHERE tgrelid IN ('bad_deals'::regclass, 'bad_nopk'::regclass, 'bad_notenant'::regclass,
                   'bad_numeric_tenant'::regclass, 'bad_date_tenant'::regclass)
   AND tgname LIKE '%autora%';
SELECT count(*) AS entries_written FROM autora.ledger WHERE id > :mark;

-- NULL options mean the defaults; quoted names work everywhere
SELECT autora.protect('bad_deals', NULL, NULL, NULL);
SELECT tenant_column, pii_columns, exclude_columns FROM autora.protected_tables
 WHERE relid = 'bad_deals'::regclass;
SELECT autora.protect('bad_deals', 'tenant_id', '{"we\"ird"}', '{"my col"}');
SELECT tenant_column, pii_columns, exclude_columns FROM autora.protected_tables
 WHERE relid = 'bad_deals'::regclass;
SELECT autora.protect('"Odd ""Table"""', exclude_columns => '{"Odd Col"}');
SELECT table_name, exclude_columns FROM autora.protected_tables WHERE table_name LIKE 'Odd%';

--
-- unprotect()
--
SELECT autora.unprotect('"Odd ""Table"""', NULL);
\echo :SQLSTATE
SELECT autora.unprotect('"Odd ""Table"""', '');
\echo :SQLSTATE
SELECT autora.unprotect('"Odd ""Table"""', '   ');
\echo :SQLSTATE
SELECT autora.unprotect('bad_nopk', 'never protected');
\echo :SQLSTATE
SELECT autora.unprotect(NULL, 'no table');
\echo :SQLSTATE
SELECT autora.unprotect('"Odd ""Table"""', 'renamed store "Odd"');
SELECT autora.unprotect('"Odd ""Table"""', 'again');
\echo :SQLSTATE
SELECT op, event, entity_id, metadata - 'relid' AS metadata FROM autora.ledger
 WHERE id > :mark AND event = 'unprotect' ORDER BY id;

--
-- other admin functions
--
SELECT autora.add_tenant('');
\echo :SQLSTATE
SELECT autora.add_tenant(NULL);
\echo :SQLSTATE
-- tenant ids are at most 127 bytes, counted in the database encoding; the
-- table refuses longer ones too (other writes would fail for such a tenant)
SELECT autora.add_tenant(repeat('t', 128), 'west', 'Too Long Motors');
\echo :SQLSTATE
SELECT autora.add_tenant(repeat(U&'\00e9', 64), 'west', 'Too Long Motors');
\echo :SQLSTATE
SELECT pg_temp.attempt($$INSERT INTO autora.tenants (tenant_id) VALUES (repeat('t', 128))$$) AS direct_insert;
SELECT count(*) AS long_tenants FROM autora.tenants WHERE octet_length(tenant_id) > 127;
SELECT autora.protect_schema('no_such_schema');
\echo :SQLSTATE

--
-- set_context_trusted()
--
SELECT autora.set_context_trusted('no_such_store', 'u1', 'sales');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', 'u1', 'no_such_role');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', NULL, 'sales');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', '', 'sales');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', 'u1', NULL);
\echo :SQLSTATE
SELECT autora.set_context_trusted(NULL, 'u1', 'sales');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', 'u1', 'sales', '{"tenant": "other"}');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', 'u1', 'sales', '{"ip": "not-an-ip"}');
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', 'u1', 'sales', '["ip"]');
\echo :SQLSTATE
-- none of the failures left a context behind
SELECT autora.tenant();
\echo :SQLSTATE
-- only members of autora_trusted may set a context without a token
SET ROLE regress_bad_plain;
SELECT autora.set_context_trusted('bad_1', 'u1', 'sales');
\echo :SQLSTATE
RESET ROLE;

--
-- no context
--
SELECT autora.tenant();
\echo :SQLSTATE
SELECT autora.actor();
\echo :SQLSTATE
SELECT autora.actor_role();
\echo :SQLSTATE
SELECT autora.context();
\echo :SQLSTATE
SELECT autora.log_event('login');
\echo :SQLSTATE
-- as superuser (no row level security): the tenant cannot be stamped
INSERT INTO bad_deals (id, customer) VALUES (1, 'Nobody');
\echo :SQLSTATE
-- as an application role: refused before any row is looked at
SET ROLE regress_bad_app;
INSERT INTO bad_deals (id, tenant_id, customer) VALUES (1, 'bad_1', 'Nobody');
\echo :SQLSTATE
SELECT count(*) FROM bad_deals;
\echo :SQLSTATE
RESET ROLE;
-- a platform context has no tenant to stamp
SELECT autora.set_context_trusted(NULL, 'ops', 'platform_owner', is_local => false) IS NOT NULL AS context_set;
INSERT INTO bad_deals (id, customer) VALUES (1, 'Nobody');
\echo :SQLSTATE
SELECT autora.clear_context();
SELECT count(*) AS deals FROM bad_deals;

--
-- the context cannot be changed except through set_context*, even by a superuser
--
SET autora.tenant_id = 'bad_1';
\echo :SQLSTATE
SET autora.actor_role = 'platform_owner';
\echo :SQLSTATE
SET autora.context = '{"tenant": "bad_1", "sub": "u1", "role": "sales"}';
\echo :SQLSTATE
SELECT set_config('autora.tenant_id', 'bad_1', false);
\echo :SQLSTATE
SELECT set_config('autora.tenant_id', 'bad_1', true);
\echo :SQLSTATE
ALTER ROLE regress_bad_app SET autora.tenant_id = 'bad_1';
\echo :SQLSTATE
CREATE FUNCTION bad_in_tenant() RETURNS text LANGUAGE sql SET autora.tenant_id = 'bad_1'
RETURN current_setting('autora.tenant_id');
\echo :SQLSTATE
-- with a context in force, nothing but set_context* changes it: a superuser's
-- RESET of one mirror GUC is refused or changes nothing, SET LOCAL is refused,
-- and the mirrors always agree with the context
CREATE FUNCTION pg_temp.ctx() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN format('%s/%s/%s', autora.tenant(), autora.actor(), autora.actor_role());
EXCEPTION WHEN SQLSTATE 'ZA001' THEN
    RETURN 'no context';
END
$$;
CREATE FUNCTION pg_temp.mirrors() RETURNS text LANGUAGE sql
RETURN format('%s/%s/%s', current_setting('autora.tenant_id'), current_setting('autora.actor_id'),
              current_setting('autora.actor_role'));
SELECT autora.set_context_trusted('bad_1', 'u-reset', 'sales', is_local => false) IS NOT NULL AS context_set;
SELECT pg_temp.attempt('RESET autora.tenant_id') IN ('allowed', 'refused: 42501') AS reset_tenant_id_handled;
SELECT pg_temp.ctx(), pg_temp.mirrors();
SELECT pg_temp.attempt('RESET autora.actor_role') IN ('allowed', 'refused: 42501') AS reset_actor_role_handled;
SELECT pg_temp.ctx(), pg_temp.mirrors();
BEGIN;
SET LOCAL autora.tenant_id = '777';
\echo :SQLSTATE
ROLLBACK;
SELECT pg_temp.ctx(), pg_temp.mirrors();
-- for an ordinary role every way is refused
SET ROLE regress_bad_app;
SET autora.tenant_id = '777';
\echo :SQLSTATE
RESET autora.tenant_id;
\echo :SQLSTATE
SELECT set_config('autora.tenant_id', '777', true);
\echo :SQLSTATE
SELECT pg_temp.ctx(), pg_temp.mirrors();
RESET ROLE;
-- a superuser's RESET of the whole context leaves no mixed context either
SELECT pg_temp.attempt('RESET autora.context') IN ('allowed', 'refused: 42501') AS reset_context_handled;
SELECT pg_temp.ctx() = 'no context' AND pg_temp.mirrors() = '//'
       OR pg_temp.ctx() = pg_temp.mirrors() AS consistent;

--
-- log_event()
--
SELECT autora.log_event('');
\echo :SQLSTATE
SELECT autora.log_event(NULL);
\echo :SQLSTATE

--
-- awkward values are captured exactly
--
SELECT autora.set_context_trusted('bad_1', 'u-odd', 'sales', is_local => false) IS NOT NULL AS context_set;
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
INSERT INTO bad_deals (id, customer, notes, price, score, "my col", "we""ird")
VALUES (2, E'O''Brien "Bob" \\ \u00e9\u00e8 \U0001F697 <tab>\t</tab>', repeat('x', 1048576),
        'NaN', '-Infinity', 'excluded', 'quoted "pii"');
SELECT length(after->>'notes') AS notes_length,
       after->>'notes' = repeat('x', 1048576) AS notes_intact,
       after->>'customer' = E'O''Brien "Bob" \\ \u00e9\u00e8 \U0001F697 <tab>\t</tab>' AS customer_intact,
       after->'price' AS price, after->'score' AS score,
       after ? 'my col' AS excluded_present, after->>'we"ird' LIKE 'pii:%' AS pii_committed
  FROM autora.ledger WHERE id > :mark AND op = 'INSERT';
UPDATE bad_deals SET notes = notes || 'y' WHERE id = 2;
SELECT changed, length(before->>'notes') AS before_length, length(after->>'notes') AS after_length
  FROM autora.ledger WHERE id > :mark AND op = 'UPDATE';
-- a tenant id that is not valid for the tenant column's type
CREATE TABLE bad_int_store (id integer PRIMARY KEY, store integer);
SELECT autora.protect('bad_int_store', 'store');
SELECT pg_temp.attempt('INSERT INTO bad_int_store (id) VALUES (1)') AS insert_with_bad_1;
SELECT count(*) AS stores FROM bad_int_store;
SELECT autora.clear_context();
SELECT autora.set_context_trusted('777', 'u-777', 'sales', is_local => false) IS NOT NULL AS context_set;
INSERT INTO bad_int_store (id) VALUES (1);
SELECT tenant_id, after FROM autora.ledger WHERE table_name = 'bad_int_store';
SELECT autora.clear_context();

-- a tenant id of the longest length works end to end: context, capture,
-- sealing and verification
SELECT autora.add_tenant(repeat('t', 127), 'west', 'Longest Id Motors');
SELECT autora.set_context_trusted(repeat('t', 127), 'u-long', 'sales', is_local => false) IS NOT NULL AS context_set;
INSERT INTO bad_deals (id, customer) VALUES (3, 'Long Id');
DELETE FROM bad_deals WHERE id = 3;
SELECT autora.clear_context();
SELECT op, length(tenant_id) AS tenant_length FROM autora.ledger
 WHERE tenant_id = repeat('t', 127) ORDER BY id;

SELECT autora.seal() >= 0 AS sealed;
SELECT count(*) FILTER (WHERE ok IS NOT TRUE) AS chains_not_ok FROM autora.verify();
SELECT entries, sealed, ok FROM autora.verify(repeat('t', 127));

-- RESET ALL and DISCARD ALL clear the whole context
RESET ALL;
SELECT current_setting('autora.tenant_id') = '' AS tenant_guc_cleared;
SELECT autora.tenant();
\echo :SQLSTATE
SELECT autora.set_context_trusted('bad_1', 'u-reset', 'sales', is_local => false) IS NOT NULL AS context_set;
DISCARD ALL;
SELECT current_setting('autora.actor_id') = '' AS actor_guc_cleared;
SELECT autora.actor();
\echo :SQLSTATE

SELECT autora.unprotect('bad_deals', 'regress cleanup');
SELECT autora.unprotect('bad_int_store', 'regress cleanup');
DROP TABLE bad_deals CASCADE;
DROP TABLE bad_nopk, bad_notenant, bad_numeric_tenant, bad_date_tenant, bad_int_store, "Odd ""Table""";
DROP ROLE regress_bad_plain, regress_bad_app;
