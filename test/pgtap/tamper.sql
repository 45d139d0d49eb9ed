-- tamper.sql: the tamper matrix.  Every forbidden operation on the ledger
-- relations, on the autora triggers of a protected table, and on the extension
-- itself fails with 42501 for the protected table's owner, for a member of
-- autora_admin (given every privilege PostgreSQL would need), and for a
-- superuser.  Then the honest path still works.
--
-- Each attempt runs through pg_temp.as_role(), which switches role for the
-- attempt only.  An attempt that succeeds becomes an error (so a broken guard
-- fails its assertion, and its effect is rolled back with the savepoint that
-- throws_ok() takes), and so does a refusal that comes from PostgreSQL's own
-- privilege checks rather than from autora (whose refusals all say "not
-- allowed"): each assertion holds only because autora refused.
BEGIN;
SELECT plan(100);

CREATE FUNCTION pg_temp.as_role(r name, sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE sql;
    EXCEPTION WHEN OTHERS THEN
        IF SQLERRM NOT LIKE '%not allowed%' THEN
            RAISE EXCEPTION 'refused by PostgreSQL, not by autora: % %', SQLSTATE, SQLERRM
                USING ERRCODE = 'XX000';
        END IF;
        RAISE;
    END;
    RAISE EXCEPTION 'tamper attempt was allowed: %', sql USING ERRCODE = 'P0001';
END
$$;

-- the cast: the table's owner, an autora admin who may act as the owner and
-- holds every privilege on the ledger relations, and the superuser
CREATE ROLE tap_owner NOLOGIN;
CREATE ROLE tap_admin NOLOGIN IN ROLE autora_admin, tap_owner;
GRANT ALL ON autora.ledger, autora.ledger_blocks, autora.pii_vault TO tap_admin;
GRANT pg_read_server_files TO tap_admin;
CREATE TABLE tap_roles (r name, label text);
INSERT INTO tap_roles VALUES ('tap_owner', 'table owner'), ('tap_admin', 'autora_admin member'),
                             (session_user, 'superuser');

CREATE TABLE tap_deals (id integer PRIMARY KEY, tenant_id text, price numeric);
ALTER TABLE tap_deals OWNER TO tap_owner;
DO $$
BEGIN
    PERFORM autora.add_tenant('tap_t1', NULL, 'Tamper Test Motors');
    PERFORM autora.protect('tap_deals');
    PERFORM autora.set_context_trusted('tap_t1', 'u-tap', 'sales');
END
$$;
INSERT INTO tap_deals (id, price) VALUES (1, 100), (2, 200);
CREATE FUNCTION tap_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;

SELECT count(*) AS n_before, md5(string_agg(l::text, '|' ORDER BY l.id)) AS fp_before
  FROM autora.ledger l \gset

CREATE TABLE tap_ops (n serial, op text, sql text);
INSERT INTO tap_ops (op, sql) VALUES
    ('UPDATE ledger',             $$UPDATE autora.ledger SET actor_id = 'x'$$),
    ('DELETE ledger',             $$DELETE FROM autora.ledger$$),
    ('INSERT ... SELECT ledger',  $$INSERT INTO autora.ledger SELECT * FROM autora.ledger LIMIT 1$$),
    ('MERGE ledger',              $$MERGE INTO autora.ledger l USING (SELECT id FROM autora.ledger) s
                                    ON l.id = s.id WHEN MATCHED THEN DELETE$$),
    ('data-modifying WITH',       $$WITH d AS (DELETE FROM autora.ledger RETURNING id) SELECT count(*) FROM d$$),
    ('TRUNCATE ledger',           $$TRUNCATE autora.ledger$$),
    ('COPY ledger FROM',          $$COPY autora.ledger FROM '/dev/null'$$),
    ('UPDATE ledger_blocks',      $$UPDATE autora.ledger_blocks SET prev_hash = block_hash$$),
    ('DELETE pii_vault',          $$DELETE FROM autora.pii_vault$$),
    ('ALTER TABLE ledger',        $$ALTER TABLE autora.ledger ADD COLUMN note text$$),
    ('RENAME ledger',             $$ALTER TABLE autora.ledger RENAME TO ledger_old$$),
    ('DROP TABLE ledger',         $$DROP TABLE autora.ledger$$),
    ('DROP INDEX ledger_id_xid_idx', $$DROP INDEX autora.ledger_id_xid_idx$$),
    ('CREATE TRIGGER on ledger',  $$CREATE TRIGGER t BEFORE INSERT ON autora.ledger
                                    FOR EACH ROW EXECUTE FUNCTION tap_noop()$$),
    ('CREATE RULE on ledger',     $$CREATE RULE r AS ON INSERT TO autora.ledger DO INSTEAD NOTHING$$),
    ('DISABLE TRIGGER autora_capture', $$ALTER TABLE tap_deals DISABLE TRIGGER autora_capture$$),
    ('DISABLE TRIGGER ALL',       $$ALTER TABLE tap_deals DISABLE TRIGGER ALL$$),
    ('DISABLE TRIGGER USER',      $$ALTER TABLE tap_deals DISABLE TRIGGER USER$$),
    ('ENABLE REPLICA TRIGGER',    $$ALTER TABLE tap_deals ENABLE REPLICA TRIGGER autora_capture$$),
    ('DROP TRIGGER autora_capture', $$DROP TRIGGER autora_capture ON tap_deals$$),
    ('DROP TRIGGER stamp',        $$DROP TRIGGER zz_autora_stamp_tenant ON tap_deals$$),
    ('RENAME TRIGGER',            $$ALTER TRIGGER autora_capture ON tap_deals RENAME TO off$$),
    ('CREATE OR REPLACE TRIGGER', $$CREATE OR REPLACE TRIGGER autora_capture AFTER INSERT ON tap_deals
                                    FOR EACH ROW EXECUTE FUNCTION tap_noop()$$),
    ('TRUNCATE protected table',  $$TRUNCATE tap_deals$$),
    ('DROP EXTENSION',            $$DROP EXTENSION autora_audit$$),
    ('DROP SCHEMA autora CASCADE', $$DROP SCHEMA autora CASCADE$$),
    ('ALTER EXTENSION ... DROP',  $$ALTER EXTENSION autora_audit DROP TABLE autora.ledger$$),
    ('UPDATE pii_vault salt',     $$UPDATE autora.pii_vault SET salt = salt$$),
    ('ALTER INDEX ledger_blocks_pkey', $$ALTER INDEX autora.ledger_blocks_pkey RENAME TO pk_old$$),
    ('DROP TABLE ledger_blocks',  $$DROP TABLE autora.ledger_blocks CASCADE$$);

-- 30 operations x 3 roles
SELECT throws_ok(format('SELECT pg_temp.as_role(%L, %L)', r.r, o.sql), '42501', NULL,
                 format('%s is refused for the %s', o.op, r.label))
  FROM tap_ops o CROSS JOIN tap_roles r
 ORDER BY o.n, r.label;

-- nothing changed
SELECT is((SELECT count(*) FROM autora.ledger), :n_before::bigint, 'ledger row count unchanged');
SELECT is((SELECT md5(string_agg(l::text, '|' ORDER BY l.id)) FROM autora.ledger l), :'fp_before',
          'ledger contents unchanged');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap_deals'::regclass AND tgenabled = 'A'
              AND tgname IN ('autora_capture', 'zz_autora_stamp_tenant', 'autora_truncate')),
          3::bigint, 'the three autora triggers of the protected table are still ENABLE ALWAYS');

-- the honest path still works: capture records, within this transaction the
-- new entries are pending (not sealed), and the chain verifies
INSERT INTO tap_deals (id, price) VALUES (3, 300);
UPDATE tap_deals SET price = 250 WHERE id = 2;
SELECT is((SELECT count(*) FROM autora.ledger), :n_before::bigint + 2, 'capture still records');
SELECT results_eq(
    $$SELECT op, tenant_id, pk FROM autora.ledger WHERE id > (SELECT max(id) - 2 FROM autora.ledger) ORDER BY id$$,
    $$VALUES ('INSERT', 'tap_t1', '{"id": 3}'::jsonb), ('UPDATE', 'tap_t1', '{"id": 2}'::jsonb)$$,
    'the new entries are the INSERT and the UPDATE, in tap_t1''s chain');
SELECT ok(autora.seal() >= 0, 'seal() runs inside the transaction');
SELECT is((SELECT count(*) FROM autora.ledger l
            WHERE l.xid = pg_current_xact_id()::text::bigint
              AND EXISTS (SELECT FROM autora.ledger_blocks b WHERE l.id = ANY (b.entry_ids))),
          0::bigint, 'entries of the open transaction are not sealed');
SELECT results_eq(
    $$SELECT tenant_id, entries, sealed, ok, first_bad_entry FROM autora.verify('tap_t1')$$,
    $$VALUES ('tap_t1'::text, 4::bigint, 0::bigint, NULL::boolean, NULL::bigint)$$,
    'verify: tap_t1''s entries are pending, ok is NULL, nothing is bad');
SELECT matches((SELECT detail FROM autora.verify('tap_t1')), '^4 entries pending seal',
               'verify explains that entries are pending seal');
SELECT is((SELECT count(*) FROM autora.verify() WHERE ok IS FALSE), 0::bigint, 'no chain reports tampering');

SELECT * FROM finish();
ROLLBACK;
