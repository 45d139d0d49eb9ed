--
-- guards: the ledger relations are append-only and protected tables keep their
-- autora triggers, for every role, superusers included (this file runs as
-- superuser; test/pgtap/tamper.sql repeats it for other roles).  Each attempt
-- fails with 42501; afterwards the ledger is byte-for-byte unchanged.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset null '(null)'

SELECT autora.add_tenant('guard_a', NULL, 'Guarded Motors');
CREATE ROLE regress_grd_owner NOLOGIN;
CREATE TABLE grd_deals (id integer PRIMARY KEY, tenant_id text, price numeric);
ALTER TABLE grd_deals OWNER TO regress_grd_owner;
SELECT autora.protect('grd_deals');
SELECT autora.set_context_trusted('guard_a', 'u-guard', 'sales', is_local => false) IS NOT NULL AS context_set;
INSERT INTO grd_deals (id, price) VALUES (1, 100), (2, 200);
UPDATE grd_deals SET price = 150 WHERE id = 1;
SELECT autora.seal() >= 0 AS sealed;

-- fingerprints of everything the guards keep
SELECT count(*) AS n_ledger, md5(string_agg(l::text, '|' ORDER BY l.id)) AS ledger_fp
  FROM autora.ledger l \gset
SELECT max(block_id) AS last_block, md5(string_agg(b::text, '|' ORDER BY b.block_id)) AS blocks_fp
  FROM autora.ledger_blocks b \gset
SELECT md5(string_agg(v::text, '|' ORDER BY v.entry_id)) AS vault_fp FROM autora.pii_vault v \gset
SELECT min(id) AS first_id, max(id) AS fp_last_id FROM autora.ledger \gset
-- attempt(sql): 'allowed', or the SQLSTATE that refused it (where the exact
-- message is not the point)
CREATE FUNCTION pg_temp.attempt(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'allowed';
EXCEPTION WHEN OTHERS THEN
    RETURN 'refused: ' || SQLSTATE;
END
$$;

--
-- DML on the ledger relations
--
UPDATE autora.ledger SET actor_id = 'someone-else' WHERE id = :first_id;
\echo :SQLSTATE
DELETE FROM autora.ledger WHERE id = :first_id;
\echo :SQLSTATE
INSERT INTO autora.ledger SELECT * FROM autora.ledger WHERE id = :first_id;
\echo :SQLSTATE
INSERT INTO autora.ledger (id, format, seq, xid, ts, stmt_ts, op, db_session_user, db_current_user, hash)
VALUES (-1, 1, 1, 1, now(), now(), 'EVENT', 'x', 'x', '\x00');
\echo :SQLSTATE
MERGE INTO autora.ledger l USING (SELECT :first_id::bigint AS id) s ON l.id = s.id
WHEN MATCHED THEN DELETE;
\echo :SQLSTATE
MERGE INTO autora.ledger l USING (SELECT -1::bigint AS id) s ON l.id = s.id
WHEN NOT MATCHED THEN INSERT (id, format, seq, xid, ts, stmt_ts, op, db_session_user, db_current_user, hash)
VALUES (-1, 1, 1, 1, now(), now(), 'EVENT', 'x', 'x', '\x00');
\echo :SQLSTATE
WITH d AS (DELETE FROM autora.ledger WHERE id = :first_id RETURNING id) SELECT count(*) FROM d;
\echo :SQLSTATE
WITH u AS (UPDATE autora.ledger_blocks SET sealed_at = now() RETURNING block_id) SELECT count(*) FROM u;
\echo :SQLSTATE
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) DELETE FROM autora.ledger WHERE id = :first_id;
\echo :SQLSTATE
PREPARE grd_del AS DELETE FROM autora.ledger;
EXECUTE grd_del;
\echo :SQLSTATE
DEALLOCATE grd_del;
-- through a SECURITY DEFINER function
CREATE FUNCTION grd_rewrite() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS
$$ BEGIN UPDATE autora.ledger SET metadata = '{}' WHERE id > 0; END $$;
SELECT grd_rewrite();
\echo :SQLSTATE
DROP FUNCTION grd_rewrite();
TRUNCATE autora.ledger;
\echo :SQLSTATE
TRUNCATE autora.ledger_blocks;
\echo :SQLSTATE
COPY autora.ledger FROM STDIN;
\.
\echo :SQLSTATE
COPY autora.ledger_blocks FROM '/dev/null';
\echo :SQLSTATE
UPDATE autora.ledger_blocks SET prev_hash = block_hash;
\echo :SQLSTATE
DELETE FROM autora.ledger_blocks;
\echo :SQLSTATE
-- the PII vault is guarded the same way
UPDATE autora.pii_vault SET salt = decode(repeat('00', 16), 'hex');
\echo :SQLSTATE
DELETE FROM autora.pii_vault;
\echo :SQLSTATE
TRUNCATE autora.pii_vault;
\echo :SQLSTATE
-- restore mode lets a superuser load only an EMPTY ledger, not add to this one
SET autora.restore_mode = on;
INSERT INTO autora.ledger SELECT * FROM autora.ledger WHERE id = :first_id;
\echo :SQLSTATE
RESET autora.restore_mode;

--
-- DDL on the ledger relations
--
ALTER TABLE autora.ledger ADD COLUMN note text;
\echo :SQLSTATE
ALTER TABLE autora.ledger ALTER COLUMN actor_id TYPE varchar(10);
\echo :SQLSTATE
ALTER TABLE autora.ledger OWNER TO regress_grd_owner;
\echo :SQLSTATE
ALTER TABLE autora.ledger SET SCHEMA public;
\echo :SQLSTATE
ALTER TABLE autora.ledger RENAME TO ledger_old;
\echo :SQLSTATE
ALTER TABLE autora.ledger RENAME COLUMN actor_id TO who;
\echo :SQLSTATE
ALTER TABLE autora.ledger DISABLE TRIGGER ALL;
\echo :SQLSTATE
ALTER TABLE autora.ledger ENABLE ROW LEVEL SECURITY;
\echo :SQLSTATE
ALTER TABLE autora.ledger SET UNLOGGED;
\echo :SQLSTATE
ALTER TABLE autora.ledger_blocks DROP CONSTRAINT ledger_blocks_chain_key;
\echo :SQLSTATE
DROP TABLE autora.ledger;
\echo :SQLSTATE
DROP TABLE autora.ledger_blocks CASCADE;
\echo :SQLSTATE
DROP TABLE autora.pii_vault;
\echo :SQLSTATE
DROP INDEX autora.ledger_blocks_pkey;
\echo :SQLSTATE
DROP INDEX autora.ledger_id_xid_idx;
\echo :SQLSTATE
ALTER INDEX autora.ledger_id_xid_idx RENAME TO ledger_id_xid_idx_old;
\echo :SQLSTATE
ALTER INDEX autora.ledger_id_xid_idx SET (fillfactor = 50);
\echo :SQLSTATE
CREATE FUNCTION grd_swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER grd_swallow BEFORE INSERT ON autora.ledger FOR EACH ROW EXECUTE FUNCTION grd_swallow();
\echo :SQLSTATE
CREATE TRIGGER grd_swallow BEFORE INSERT ON autora.ledger_blocks FOR EACH ROW EXECUTE FUNCTION grd_swallow();
\echo :SQLSTATE
CREATE RULE grd_nothing AS ON INSERT TO autora.ledger DO INSTEAD NOTHING;
\echo :SQLSTATE
-- a child table would show forged rows to every reader of autora.ledger
SELECT pg_temp.attempt('CREATE TABLE grd_forged () INHERITS (autora.ledger)') AS create_inherits;
CREATE TABLE grd_forged2 (LIKE autora.ledger);
SELECT pg_temp.attempt('ALTER TABLE grd_forged2 INHERIT autora.ledger') AS alter_inherit;
SELECT pg_temp.attempt('CREATE TABLE grd_forged3 () INHERITS (autora.ledger_blocks)') AS create_inherits_blocks;
SELECT count(*) AS ledger_children FROM pg_inherits
 WHERE inhparent IN ('autora.ledger'::regclass, 'autora.ledger_blocks'::regclass);
SET client_min_messages = warning;
DROP TABLE IF EXISTS grd_forged, grd_forged2, grd_forged3;
RESET client_min_messages;
DROP SCHEMA autora CASCADE;
\echo :SQLSTATE
ALTER SCHEMA autora RENAME TO autora_old;
\echo :SQLSTATE
ALTER EXTENSION autora_audit DROP TABLE autora.ledger;
\echo :SQLSTATE
ALTER EXTENSION autora_audit DROP TABLE autora.ledger_blocks;
\echo :SQLSTATE
DROP EXTENSION autora_audit;
\echo :SQLSTATE
DROP EXTENSION autora_audit CASCADE;
\echo :SQLSTATE

-- the functions and views of schema autora cannot be replaced or altered:
-- replacing capture_row() or tenant() would switch capture or tenancy off
CREATE OR REPLACE FUNCTION autora.tenant() RETURNS text LANGUAGE sql AS $$ SELECT 'guard_a' $$;
\echo :SQLSTATE
CREATE FUNCTION autora.extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
\echo :SQLSTATE
ALTER FUNCTION autora.capture_row() RENAME TO capture_row_off;
\echo :SQLSTATE
ALTER FUNCTION autora.verify(text) SECURITY DEFINER;
\echo :SQLSTATE
DROP FUNCTION autora.stamp_tenant();
\echo :SQLSTATE
CREATE OR REPLACE VIEW autora.protected_tables AS SELECT 1 AS relid;
\echo :SQLSTATE

--
-- the autora triggers of a protected table
--
ALTER TABLE grd_deals DISABLE TRIGGER autora_capture;
\echo :SQLSTATE
ALTER TABLE grd_deals DISABLE TRIGGER zz_autora_stamp_tenant;
\echo :SQLSTATE
ALTER TABLE grd_deals DISABLE TRIGGER autora_truncate;
\echo :SQLSTATE
ALTER TABLE grd_deals DISABLE TRIGGER ALL;
\echo :SQLSTATE
ALTER TABLE grd_deals DISABLE TRIGGER USER;
\echo :SQLSTATE
ALTER TABLE grd_deals ENABLE REPLICA TRIGGER autora_capture;
\echo :SQLSTATE
-- ENABLE (origin) would let session_replication_role = replica skip capture
ALTER TABLE grd_deals ENABLE TRIGGER autora_capture;
\echo :SQLSTATE
ALTER TABLE grd_deals ADD COLUMN note text, DISABLE TRIGGER autora_capture;
\echo :SQLSTATE
DROP TRIGGER autora_capture ON grd_deals;
\echo :SQLSTATE
DROP TRIGGER zz_autora_stamp_tenant ON grd_deals;
\echo :SQLSTATE
DROP TRIGGER autora_truncate ON grd_deals;
\echo :SQLSTATE
ALTER TRIGGER autora_capture ON grd_deals RENAME TO autora_capture_off;
\echo :SQLSTATE
CREATE FUNCTION grd_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE OR REPLACE TRIGGER autora_capture AFTER INSERT OR UPDATE OR DELETE ON grd_deals
    FOR EACH ROW EXECUTE FUNCTION grd_noop();
\echo :SQLSTATE
CREATE OR REPLACE TRIGGER zz_autora_stamp_tenant BEFORE INSERT OR UPDATE ON grd_deals
    FOR EACH ROW EXECUTE FUNCTION grd_noop();
\echo :SQLSTATE
-- dropping a protected table would remove every store's rows unrecorded
DROP TABLE grd_deals;
\echo :SQLSTATE
CREATE SCHEMA grd_s;
CREATE TABLE grd_s.visits (id integer PRIMARY KEY, tenant_id text);
SELECT autora.protect('grd_s.visits');
DROP SCHEMA grd_s CASCADE;
\echo :SQLSTATE
SELECT pg_temp.attempt('DROP OWNED BY regress_grd_owner') AS drop_owned;
SELECT count(*) AS still_there FROM pg_class WHERE oid IN ('grd_deals'::regclass, 'grd_s.visits'::regclass);
-- the owner of the table is refused too
SET ROLE regress_grd_owner;
ALTER TABLE grd_deals DISABLE TRIGGER ALL;
\echo :SQLSTATE
DROP TRIGGER autora_capture ON grd_deals;
\echo :SQLSTATE
RESET ROLE;

-- a partition keeps its capture: it cannot be switched off on the partition, and
-- detaching it either is refused or leaves the detached table protected
CREATE TABLE grd_orders (id integer, tenant_id text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE grd_orders_1 PARTITION OF grd_orders FOR VALUES FROM (0) TO (1000);
SELECT autora.protect('grd_orders');
ALTER TABLE grd_orders_1 DISABLE TRIGGER autora_capture;
\echo :SQLSTATE
SELECT pg_temp.attempt('ALTER TABLE grd_orders DETACH PARTITION grd_orders_1') IN
       ('allowed', 'refused: 42501') AS detach_attempted;
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
INSERT INTO grd_orders_1 (id) VALUES (1);
SELECT op, tenant_id, table_name, after FROM autora.ledger WHERE id > :mark;

--
-- after every attempt: nothing changed, and the chain verifies
--
SELECT count(*) = :n_ledger AS same_count,
       md5(string_agg(l::text, '|' ORDER BY l.id)) = :'ledger_fp' AS same_entries
  FROM autora.ledger l WHERE l.id <= :fp_last_id;
-- the only entries added since: protecting grd_s.visits and grd_orders, and the insert above
SELECT op, event, entity_id, table_name FROM autora.ledger WHERE id > :fp_last_id ORDER BY id;
SELECT md5(string_agg(b::text, '|' ORDER BY b.block_id)) = :'blocks_fp' AS same_blocks
  FROM autora.ledger_blocks b WHERE b.block_id <= :last_block;
SELECT md5(string_agg(v::text, '|' ORDER BY v.entry_id)) = :'vault_fp' AS same_vault FROM autora.pii_vault v;
SELECT c.relname, count(*) AS autora_triggers, bool_and(t.tgenabled = 'A') AS all_always
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relname = 'grd_deals' AND t.tgname IN ('autora_capture', 'zz_autora_stamp_tenant', 'autora_truncate')
 GROUP BY c.relname;
SELECT count(*) AS ledger_columns FROM pg_attribute
 WHERE attrelid = 'autora.ledger'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT autora.seal() >= 0 AS sealed;
SELECT count(*) FILTER (WHERE ok IS NOT TRUE) AS chains_not_ok FROM autora.verify();

--
-- what stays allowed: reading, and indexing the ledger for queries
--
SELECT count(*) > 0 AS readable FROM autora.ledger WHERE tenant_id = 'guard_a';
SELECT tenant_id, op, table_name FROM autora.ledger
 WHERE tenant_id = 'guard_a' ORDER BY id LIMIT 2;
CREATE INDEX grd_ledger_ts ON autora.ledger (ts);
\echo :SQLSTATE
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SELECT now() AS before_insert \gset
INSERT INTO grd_deals (id, price) VALUES (3, 300);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT op, tenant_id FROM autora.ledger WHERE ts > '-infinity';
SELECT op, tenant_id, pk FROM autora.ledger WHERE ts >= :'before_insert' AND id > :mark;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT autora.seal() >= 0 AS sealed;
SELECT tenant_id, ok FROM autora.verify('guard_a');

SELECT autora.clear_context();
SELECT autora.unprotect('grd_deals', 'regress cleanup');
SELECT autora.unprotect('grd_s.visits', 'regress cleanup');
DROP SCHEMA grd_s CASCADE;
SELECT autora.unprotect('grd_orders', 'regress cleanup');
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT relid FROM autora.protected_tables WHERE table_name = 'grd_orders_1' LOOP
        PERFORM autora.unprotect(r, 'regress cleanup');
    END LOOP;
END
$$;
SET client_min_messages = warning;
DROP TABLE IF EXISTS grd_orders_1;
RESET client_min_messages;
DROP TABLE grd_deals, grd_orders;
DROP FUNCTION grd_swallow(), grd_noop();
DROP ROLE regress_grd_owner;
