-- format2.sql: what ledger format 2 records (SPEC "Ledger format 2",
-- "Protecting tables"), tried through the real capture path:
--   images: an INSERT's whole row, a DELETE's whole row, an UPDATE's changed
--     columns only; PII values as commitments under a salt drawn per entry,
--     which opens them with the clear values in the vault;
--     the state of a row is the fold of its entries;
--   partitions and inheritance children recorded under their root's name,
--     the member in metadata, across renames and schema moves;
--   platform tables: protect(platform => true), no row level security,
--     writes need a context and go to the platform chain with its actor.
BEGIN;
SELECT plan(58);

-- ------------------------------------------------------------------ set-up
CREATE SCHEMA f2;
CREATE FUNCTION f2.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
-- the entries written since the mark, oldest first
CREATE TABLE f2.mark (id bigint);
INSERT INTO f2.mark SELECT coalesce(max(id), 0) FROM autora.ledger;
CREATE FUNCTION f2.remark() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
    UPDATE f2.mark SET id = (SELECT coalesce(max(id), 0) FROM autora.ledger) $$;
CREATE VIEW f2.new AS
    SELECT l.* FROM autora.ledger l, f2.mark m WHERE l.id > m.id AND l.op <> 'EVENT';

CREATE ROLE f2_app;
GRANT autora_trusted TO f2_app;
GRANT USAGE ON SCHEMA f2 TO f2_app;
GRANT EXECUTE ON FUNCTION f2.remark() TO f2_app;
SELECT autora.add_tenant('f2-a', 'f2-g', 'Store A');
SELECT autora.add_tenant('f2-b', 'f2-g', 'Store B');

CREATE TABLE f2.cars (id int PRIMARY KEY, tenant_id text, vin text, price numeric(10,2),
                      owner_email text, notes text, touched timestamptz);
SELECT autora.protect('f2.cars', pii_columns => '{owner_email}', exclude_columns => '{touched}');
GRANT SELECT, INSERT, UPDATE, DELETE ON f2.cars TO f2_app;

-- ------------------------------------------------------------------ images
SET ROLE f2_app;
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'sales');
SELECT f2.remark();
INSERT INTO f2.cars (id, vin, price, owner_email, notes) VALUES (1, 'VIN1', 100, 'ann@example.com', 'new');
UPDATE f2.cars SET price = 90, touched = now() WHERE id = 1;
UPDATE f2.cars SET owner_email = 'bob@example.com' WHERE id = 1;
UPDATE f2.cars SET touched = now() WHERE id = 1;
DELETE FROM f2.cars WHERE id = 1;
RESET ROLE;

SELECT is((SELECT array_agg(op ORDER BY id) FROM f2.new),
          ARRAY['INSERT', 'UPDATE', 'UPDATE', 'DELETE'],
          'images: INSERT, two UPDATEs and DELETE recorded; the UPDATE of an excluded column only is skipped');
SELECT is((SELECT after - 'owner_email' FROM f2.new WHERE op = 'INSERT'),
          '{"id": 1, "vin": "VIN1", "notes": "new", "price": 100.00, "tenant_id": "f2-a"}'::jsonb,
          'images: an INSERT''s after is the whole captured row (excluded column left out)');
SELECT is((SELECT before IS NULL AND changed IS NULL FROM f2.new WHERE op = 'INSERT'), true,
          'images: an INSERT has no before and no changed');
SELECT is((SELECT jsonb_build_array(before, after, changed, pk) FROM f2.new
            WHERE op = 'UPDATE' ORDER BY id LIMIT 1),
          '[{"price": 100.00}, {"price": 90.00}, ["price"], {"id": 1}]'::jsonb,
          'images: an UPDATE holds only the changed column before and after, changed lists it, pk is whole');
SELECT is((SELECT array[before ? 'owner_email', after ? 'owner_email'] FROM f2.new
            WHERE op = 'UPDATE' ORDER BY id LIMIT 1),
          array[false, false], 'images: an unchanged PII column is not in an UPDATE''s images');
SELECT is((SELECT count(*) FROM autora.pii_vault v JOIN f2.new l ON l.id = v.entry_id
            WHERE l.op = 'UPDATE' AND l.changed = '{price}'), 0::bigint,
          'images: an UPDATE that changed no PII column has no vault row');
SELECT is((SELECT jsonb_build_array(changed, before->>'owner_email' LIKE 'pii:%',
                                    after->>'owner_email' LIKE 'pii:%',
                                    position('example.com' IN before::text || after::text) = 0)
             FROM f2.new WHERE op = 'UPDATE' ORDER BY id DESC LIMIT 1),
          '[["owner_email"], true, true, true]'::jsonb,
          'images: a changed PII column is digested in both images, never in clear');
SELECT is((SELECT v.clear FROM autora.pii_vault v JOIN f2.new l ON l.id = v.entry_id
            WHERE l.op = 'UPDATE'),
          '{"after": {"owner_email": "bob@example.com"}, "before": {"owner_email": "ann@example.com"}}'::jsonb,
          'images: the vault keeps the clear values of exactly the changed PII column');
SELECT is((SELECT before - 'owner_email' FROM f2.new WHERE op = 'DELETE'),
          '{"id": 1, "vin": "VIN1", "notes": "new", "price": 90.00, "tenant_id": "f2-a"}'::jsonb,
          'images: a DELETE''s before is the whole captured row as it was');

-- PII commitments: at most 32 characters, opened by the vault row's salt,
-- and unlinkable across entries
CREATE EXTENSION pgcrypto;
CREATE FUNCTION f2.commitment(value text, salt bytea) RETURNS text LANGUAGE sql AS $$
    SELECT 'pii:' || rtrim(translate(encode(substr(public.hmac(convert_to(value, 'UTF8'), salt, 'sha256'), 1, 16),
                                            'base64'), '+/', '-_'), '=') $$;
SELECT is((SELECT bool_and(length(c) <= 32 AND c ~ '^pii:[A-Za-z0-9_-]{22}$')
             FROM f2.new, LATERAL (VALUES (before->>'owner_email'), (after->>'owner_email')) AS x(c)
            WHERE c IS NOT NULL), true,
          'pii: every commitment is "pii:" and 22 base64url characters (at most 32)');
SELECT is((SELECT array_agg(i.c = f2.commitment(v.clear->i.image->>'owner_email', v.salt) ORDER BY l.id, i.image)
             FROM f2.new l JOIN autora.pii_vault v ON v.entry_id = l.id,
                  LATERAL (VALUES ('before', l.before->>'owner_email'), ('after', l.after->>'owner_email')) AS i(image, c)
            WHERE i.c IS NOT NULL),
          ARRAY[true, true, true, true],
          'pii: each commitment opens with its entry''s vault row (HMAC-SHA256 under the salt, recomputed with pgcrypto)');
SELECT is((SELECT u.after->>'owner_email' <> d.before->>'owner_email'
             FROM f2.new u, f2.new d WHERE u.op = 'UPDATE' AND u.changed = '{owner_email}' AND d.op = 'DELETE'),
          true, 'pii: the same value committed by two entries gives two commitments (unlinkable)');
SELECT is((SELECT after->>'owner_email' <> before->>'owner_email' FROM f2.new WHERE op = 'UPDATE' AND changed = '{owner_email}'),
          true, 'pii: a changed value''s commitments differ');
SELECT is(f2.try($$SELECT autora.protect('f2.cars', pii_columns => '{id}')$$), '22023',
          'pii: a primary key column cannot be a PII column (22023)');
SELECT f2.remark();
SET ROLE f2_app;
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'sales');
INSERT INTO f2.cars (id, vin) VALUES (9, 'VIN9');
RESET ROLE;
SELECT is((SELECT count(*) FROM autora.pii_vault v JOIN f2.new l ON l.id = v.entry_id), 0::bigint,
          'pii: an entry whose PII values are all NULL writes no vault row');
DELETE FROM f2.cars WHERE id = 9;

-- the state of a row is the fold of its entries
SET ROLE f2_app;
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'sales');
SELECT f2.remark();
INSERT INTO f2.cars (id, vin, price, notes) VALUES (2, 'VIN2', 200, 'a'), (3, 'VIN3', 300, 'b');
UPDATE f2.cars SET price = price + 1 WHERE id IN (2, 3);
UPDATE f2.cars SET notes = NULL, vin = 'VIN2b' WHERE id = 2;
UPDATE f2.cars SET id = 4 WHERE id = 3;
RESET ROLE;
SELECT is((SELECT count(*) FROM f2.new WHERE op = 'UPDATE' AND pk = '{"id": 4}'
                                         AND changed = '{id}' AND before = '{"id": 3}'), 1::bigint,
          'images: a changed primary key is in both images; pk holds the new key');
SELECT is((SELECT jsonb_object_agg(c.key, c.value ORDER BY n.id) - 'owner_email'
             FROM f2.new n, jsonb_each(n.after) c WHERE n.pk = '{"id": 2}'),
          (SELECT to_jsonb(r) - 'touched' - 'owner_email' FROM f2.cars r WHERE id = 2),
          'images: the INSERT''s after with each UPDATE''s after laid over it is the row');

-- ------------------------------------------------------------------ partitions
CREATE TABLE f2.jobs (id int, tenant_id text NOT NULL, kind text, total numeric,
                      PRIMARY KEY (tenant_id, id)) PARTITION BY LIST (tenant_id);
CREATE TABLE f2.jobs_a PARTITION OF f2.jobs FOR VALUES IN ('f2-a') PARTITION BY RANGE (id);
CREATE TABLE f2.jobs_a_low PARTITION OF f2.jobs_a FOR VALUES FROM (0) TO (100);
SELECT autora.protect('f2.jobs');
CREATE TABLE f2.jobs_a_high PARTITION OF f2.jobs_a FOR VALUES FROM (100) TO (1000);
CREATE TABLE f2.legacy (id int PRIMARY KEY, tenant_id text NOT NULL, kind text);
CREATE TABLE f2.legacy_2019 () INHERITS (f2.legacy);
ALTER TABLE f2.legacy_2019 ADD PRIMARY KEY (id);
SELECT autora.protect('f2.legacy');
GRANT SELECT, INSERT, UPDATE, DELETE ON f2.jobs, f2.jobs_a, f2.jobs_a_low, f2.jobs_a_high,
                                       f2.legacy, f2.legacy_2019 TO f2_app;

SET ROLE f2_app;
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'sales');
SELECT f2.remark();
INSERT INTO f2.jobs (id, tenant_id, kind, total) VALUES (1, 'f2-a', 'oil', 50), (500, 'f2-a', 'engine', 5000);
UPDATE f2.jobs_a_high SET total = 4500 WHERE id = 500;
INSERT INTO f2.legacy_2019 (id, tenant_id, kind) VALUES (1, 'f2-a', 'old');
DELETE FROM f2.legacy WHERE id = 1;
RESET ROLE;
SELECT is((SELECT array_agg(DISTINCT table_schema || '.' || table_name) FROM f2.new),
          ARRAY['f2.jobs', 'f2.legacy'],
          'partitions: rows of sub-partitions and inheritance children are recorded under the protected table''s name');
SELECT is((SELECT array_agg(metadata->'partition'->>'name' ORDER BY id) FROM f2.new),
          ARRAY['jobs_a_low', 'jobs_a_high', 'jobs_a_high', 'legacy_2019', 'legacy_2019'],
          'partitions: the member that holds the row is named in metadata');
SELECT is((SELECT count(*) FROM f2.new WHERE metadata->'partition'->>'schema' = 'f2'), 5::bigint,
          'partitions: with its schema');

-- renames and schema moves: entries follow the names of the moment
CREATE SCHEMA f2_moved;
ALTER TABLE f2.jobs RENAME TO work;
ALTER TABLE f2.jobs_a_low RENAME TO work_low;
ALTER TABLE f2.work SET SCHEMA f2_moved;
GRANT USAGE ON SCHEMA f2_moved TO f2_app;
SET ROLE f2_app;
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'sales');
SELECT f2.remark();
UPDATE f2_moved.work SET total = 55 WHERE id = 1;
RESET ROLE;
SELECT is((SELECT jsonb_build_array(table_schema, table_name, metadata) FROM f2.new),
          '["f2_moved", "work", {"partition": {"name": "work_low", "schema": "f2"}}]'::jsonb,
          'partitions: after renaming and moving the root, its members record its new name');
SELECT is((SELECT count(*) FROM autora.protected_tables WHERE table_schema = 'f2_moved' AND table_name = 'work'),
          1::bigint, 'partitions: protected_tables shows the root under its new name');
SELECT is((SELECT count(*) FROM autora.protected_tables WHERE table_name LIKE 'work%' OR table_name LIKE 'jobs%'),
          1::bigint, 'partitions: protected_tables shows the root only, not its partitions');

-- ------------------------------------------------------------------ platform tables
CREATE TABLE f2.price_book (sku text PRIMARY KEY, price numeric(10,2) NOT NULL, note text);
INSERT INTO f2.price_book VALUES ('OIL-5W30', 39.90, NULL);
GRANT SELECT, INSERT, UPDATE, DELETE ON f2.price_book TO f2_app;
SELECT is(f2.try($$SELECT autora.protect('f2.price_book', tenant_column => 'sku', platform => true)$$), '22023',
          'platform: naming a tenant column for a platform table is refused (22023)');
SELECT is(f2.try($$SELECT autora.protect('f2.price_book', platform => true)$$), 'ok',
          'platform: protect(tbl, platform => true) protects a table without a tenant column');
SELECT is(f2.try($$SELECT autora.protect('f2.price_book', tenant_column => NULL, platform => true)$$), 'ok',
          'platform: protecting it again is idempotent');
SELECT is((SELECT jsonb_build_array(tenant_column, platform, rls_enabled, capture_enabled)
             FROM autora.protected_tables WHERE table_name = 'price_book'),
          '[null, true, false, true]'::jsonb,
          'platform: protected_tables shows no tenant column, platform, no row level security, capture on');
SELECT is((SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger
            WHERE tgrelid = 'f2.price_book'::regclass AND NOT tgisinternal),
          ARRAY['autora_capture', 'autora_flush', 'autora_truncate'],
          'platform: capture, flush and TRUNCATE triggers, no stamp trigger');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = 'f2.price_book'::regclass), 0::bigint,
          'platform: no policies');
SELECT is(f2.try($$SELECT autora.protect('f2.cars', platform => true)$$), '55000',
          'platform: a table protected per tenant cannot be turned into a platform table by protect() (55000)');
SELECT is(f2.try($$SELECT autora.protect('f2.price_book', 'sku')$$), '55000',
          'platform: nor a platform table into a tenant table');

SET ROLE f2_app;
SELECT autora.clear_context();
SELECT is((SELECT price FROM f2.price_book WHERE sku = 'OIL-5W30'), 39.90::numeric(10,2),
          'platform: any role with the privilege reads it without a context');
SELECT is(f2.try($$UPDATE f2.price_book SET price = 1$$), 'ZA001',
          'platform: writing it without a context is refused (ZA001)');
SELECT is(f2.try($$INSERT INTO f2.price_book VALUES ('X', 1, NULL)$$), 'ZA001',
          'platform: inserting without a context is refused (ZA001)');
SELECT autora.set_context_trusted('f2-b', 'u-bea', 'dealer_admin');
SELECT f2.remark();
UPDATE f2.price_book SET price = 41.50 WHERE sku = 'OIL-5W30';
INSERT INTO f2.price_book VALUES ('FILTER', 12.00, 'new');
SELECT is((SELECT count(*) FROM f2.price_book), 2::bigint,
          'platform: a store''s context sees every row (no row level security)');
SELECT autora.set_context_trusted(NULL, 'u-ops', 'platform_owner');
DELETE FROM f2.price_book WHERE sku = 'FILTER';
RESET ROLE;
SELECT is((SELECT array_agg(jsonb_build_array(op, tenant_id, actor_id, actor_role) ORDER BY id) FROM f2.new),
          ARRAY['["UPDATE", null, "u-bea", "dealer_admin"]', '["INSERT", null, "u-bea", "dealer_admin"]',
                '["DELETE", null, "u-ops", "platform_owner"]']::jsonb[],
          'platform: changes go to the platform chain (tenant NULL), each with the actor of its context');
SELECT is((SELECT jsonb_build_array(table_name, pk, before, after, changed) FROM f2.new WHERE op = 'UPDATE'),
          '["price_book", {"sku": "OIL-5W30"}, {"price": 39.90}, {"price": 41.50}, ["price"]]'::jsonb,
          'platform: entries have the format 2 images');

-- TRUNCATE: refused, or one platform-chain entry with the row count
SELECT is(f2.try($$TRUNCATE f2.price_book$$), '42501',
          'platform: TRUNCATE is refused (42501) without autora.allow_truncate');
SELECT f2.remark();
SET LOCAL autora.allow_truncate = on;
TRUNCATE f2.price_book;
RESET autora.allow_truncate;
SELECT is((SELECT array_agg(jsonb_build_array(op, tenant_id, metadata)) FROM autora.ledger l, f2.mark m WHERE l.id > m.id),
          ARRAY['["TRUNCATE", null, {"rows": 1}]']::jsonb[],
          'platform: an allowed TRUNCATE writes one platform-chain entry with the row count');

-- partitions of a platform table: capture only
CREATE TABLE f2.rates (region text, valid_from date, rate numeric, PRIMARY KEY (region, valid_from))
    PARTITION BY LIST (region);
CREATE TABLE f2.rates_eu PARTITION OF f2.rates FOR VALUES IN ('eu');
SELECT autora.protect('f2.rates', platform => true);
CREATE TABLE f2.rates_us PARTITION OF f2.rates FOR VALUES IN ('us');
SELECT is((SELECT array_agg(c.relname || ':' || t.tgname ORDER BY c.relname, t.tgname)
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            WHERE c.relname LIKE 'rates%' AND c.relnamespace = 'f2'::regnamespace AND NOT t.tgisinternal),
          ARRAY['rates:autora_flush', 'rates:autora_truncate',
                'rates_eu:autora_capture', 'rates_eu:autora_flush', 'rates_eu:autora_truncate',
                'rates_us:autora_capture', 'rates_us:autora_flush', 'rates_us:autora_truncate'],
          'platform: partitions, also created later, get the capture trigger and no stamp trigger');
SELECT is((SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
            WHERE c.relname LIKE 'rates%' AND c.relnamespace = 'f2'::regnamespace), 0::bigint,
          'platform: and no policies');
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'dealer_admin');
SELECT f2.remark();
INSERT INTO f2.rates VALUES ('us', '2026-01-01', 0.07);
SELECT is((SELECT jsonb_build_array(table_name, tenant_id, metadata->'partition'->>'name') FROM f2.new),
          '["rates", null, "rates_us"]'::jsonb,
          'platform: a partition''s row is recorded under the platform table''s name, in the platform chain');
SELECT autora.clear_context();

-- the owner's DDL guards hold for platform tables too
SELECT is(f2.try($$ALTER TABLE f2.price_book ALTER COLUMN price TYPE numeric(12,2) USING price * 2$$), '42501',
          'platform: a USING rewrite is refused (42501): it would change rows unaudited');
SELECT is(f2.try($$ALTER TABLE f2.price_book DISABLE TRIGGER autora_capture$$), '42501',
          'platform: its capture trigger cannot be disabled (42501)');
SELECT is(f2.try($$ALTER TABLE f2.price_book RENAME COLUMN note TO remark$$), 'ok',
          'platform: ordinary migrations keep working');

-- unprotect a platform table, on record
SELECT is(f2.try($$SELECT autora.unprotect('f2.price_book', 'moved to the catalogue service')$$), 'ok',
          'platform: unprotect works, with a reason');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'f2.price_book'::regclass AND NOT tgisinternal),
          0::bigint, 'platform: and removes the triggers');

-- ------------------------------------------------------------------ columns follow their roles; coverage
-- a renamed PII column stays PII; a column added later is ordinary, and
-- autora.coverage lists it for review until protect() runs again
ALTER TABLE f2.cars RENAME COLUMN owner_email TO contact_email;
ALTER TABLE f2.cars ADD COLUMN phone text;
SET ROLE f2_app;
SELECT autora.set_context_trusted('f2-a', 'u-ann', 'sales');
SELECT f2.remark();
INSERT INTO f2.cars (id, vin, contact_email, phone) VALUES (20, 'VIN20', 'cy@example.com', '+1 555 0199');
RESET ROLE;
SELECT is((SELECT jsonb_build_array(after->>'contact_email' LIKE 'pii:%', after->>'phone') FROM f2.new),
          '[true, "+1 555 0199"]'::jsonb,
          'columns: a renamed PII column stays PII; a column added later is captured as an ordinary one');
SELECT is((SELECT jsonb_build_array(protected, unreviewed_columns, gap, fix) FROM autora.coverage
            WHERE table_schema = 'f2' AND table_name = 'cars'),
          jsonb_build_array(true, ARRAY['phone'], 'columns added since protect() await review: phone',
                            'SELECT autora.protect(''f2.cars'', ''tenant_id'', ''{contact_email}'', ''{touched}'');'),
          'coverage: the added column awaits review, with the command that records the review');
SELECT autora.protect('f2.cars', 'tenant_id', '{contact_email,phone}', '{touched}');
SELECT is((SELECT jsonb_build_array(unreviewed_columns, gap, fix) FROM autora.coverage
            WHERE table_schema = 'f2' AND table_name = 'cars'),
          '[[], null, null]'::jsonb, 'coverage: protect() again marks the columns reviewed');
SELECT is((SELECT jsonb_build_array(protected, gap, fix) FROM autora.coverage
            WHERE table_schema = 'f2' AND table_name = 'mark'),
          '[false, "not protected", "SELECT autora.protect(''f2.mark'', tenant_column => ''<its tenant column>''); -- or platform => true if it holds no store''s rows"]'::jsonb,
          'coverage: an unprotected table is a gap, with a fix');
SELECT is((SELECT count(*) FROM autora.coverage WHERE table_name IN ('jobs_a_low', 'work_low', 'jobs_a_high', 'rates_us')),
          0::bigint, 'coverage: partitions are covered by their root''s row');
SELECT autora.unprotect('f2.legacy', 'schema change');
SELECT matches((SELECT protected || ' ' || gap FROM autora.coverage
                 WHERE table_schema = 'f2' AND table_name = 'legacy'),
               '^false not protected; unprotected from .* to now \(schema change\)$',
               'coverage: an unprotected table shows as not protected, since when and why');
SELECT autora.protect('f2.legacy');
SELECT matches((SELECT gap FROM autora.coverage WHERE table_schema = 'f2' AND table_name = 'legacy'),
               '^unprotected from .* to .* \(schema change\)$',
               'coverage: the window between unprotect() and protect() stays visible, with its reason');
SELECT is((SELECT fix FROM autora.coverage WHERE table_schema = 'f2' AND table_name = 'legacy'), NULL,
          'coverage: a past window has no fix');
RESET ROLE;
SET ROLE f2_app;
SELECT is(f2.try($$SELECT * FROM autora.coverage$$), '42501',
          'coverage: the application role may not read it (42501)');
RESET ROLE;

-- ------------------------------------------------------------------ every chain still verifies
SELECT is((SELECT count(*) FROM autora.verify() WHERE ok IS FALSE), 0::bigint,
          'every chain verifies');
SELECT is((SELECT count(*) FROM autora.ledger WHERE format <> 2), 0::bigint,
          'every entry is of format 2');

SELECT * FROM finish();
ROLLBACK;
