-- format2_redteam.sql: what the red team of ledger format 2 found, tried
-- again as the role that found it, each refused or recorded, and the honest
-- path beside it:
--   F1  protect() of a table with an unprotected parent (also through
--       protect_schema's event trigger);
--   F2  a member with a second parent; F3 a tenant table joining a platform
--       tree; F4 row locks (foreign keys) on platform tables;
--   F5  an inheritance lattice (the root lookup visits each ancestor once);
--   F6  a column both PII and excluded; F12 a new primary key over PII;
--   F7  protect_schema() again keeps the options of protected tables;
--   F8  a change of an excluded key column; F9 the settings of a retype;
--   F10 a schema rename; F11 coverage windows across renames.
BEGIN;
SET client_min_messages = warning;
SELECT plan(23);

CREATE SCHEMA rt;
CREATE FUNCTION rt.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
CREATE ROLE rt_owner;
CREATE ROLE rt_app;
GRANT USAGE, CREATE ON SCHEMA rt TO rt_owner;
GRANT USAGE ON SCHEMA rt TO rt_app;
GRANT autora_trusted TO rt_app;
SELECT autora.add_tenant('rt-a', 'rt-g', 'Store A');

-- F1: a table with an unprotected parent is refused, directly and through protect_schema
SET ROLE rt_owner;
CREATE TABLE rt.u (id int, tenant_id text, secret text);
CREATE TABLE rt.t (id int PRIMARY KEY, tenant_id text, secret text) INHERITS (rt.u);
CREATE TABLE rt.up (id int, tenant_id text, secret text) PARTITION BY LIST (tenant_id);
CREATE TABLE rt.op PARTITION OF rt.up (PRIMARY KEY (id)) FOR VALUES IN ('rt-a');
RESET ROLE;
SELECT is(rt.try($$SELECT autora.protect('rt.t')$$), '42501',
          'F1: protect() of a table with an unprotected inheritance parent is refused (42501)');
SELECT is(rt.try($$SELECT autora.protect('rt.op')$$), '42501',
          'F1: protect() of a partition of an unprotected table is refused (42501)');
CREATE SCHEMA rt_auto;
GRANT USAGE, CREATE ON SCHEMA rt_auto TO rt_owner;
SELECT autora.protect_schema('rt_auto');
SET ROLE rt_owner;
SELECT is(rt.try($$CREATE TABLE rt_auto.t2 (id int PRIMARY KEY, tenant_id text) INHERITS (rt.u)$$), '42501',
          'F1: protect_schema''s event trigger refuses a new table with an unprotected parent (42501)');
SELECT is(rt.try($$CREATE TABLE rt_auto.t3 (id int PRIMARY KEY, tenant_id text)$$), 'ok',
          'F1: honest: a new table of the schema is protected as before');
RESET ROLE;
SELECT is((SELECT protected FROM autora.coverage WHERE table_schema = 'rt_auto' AND table_name = 't3'), true,
          'F1: honest: and coverage shows it protected');

-- F2: a member with a second parent
SET ROLE rt_owner;
CREATE TABLE rt.n1 (id int PRIMARY KEY, tenant_id text, secret text);
CREATE TABLE rt.n2 (id int PRIMARY KEY, secret text);
CREATE TABLE rt.nc (id int PRIMARY KEY, tenant_id text, secret text) INHERITS (rt.n1, rt.n2);
RESET ROLE;
SELECT is(rt.try($$SELECT autora.protect('rt.n1')$$), '42501',
          'F2: protect() of a parent whose member has another parent is refused (42501)');
SELECT is(rt.try($$SELECT autora.protect('rt.n2', platform => true)$$), '42501',
          'F2: as a platform table too');

-- F3: a tenant table joining a platform tree in a protect_schema schema
CREATE TABLE rt.prices (id int PRIMARY KEY, price numeric);
SELECT autora.protect('rt.prices', platform => true);
GRANT SELECT, REFERENCES ON rt.prices TO rt_owner;
SET ROLE rt_owner;
SELECT is(rt.try($$CREATE TABLE rt_auto.leads (id int PRIMARY KEY, tenant_id text, secret text) INHERITS (rt.prices)$$),
          '42501', 'F3: a table with the schema''s tenant column cannot join a platform table''s tree (42501)');
RESET ROLE;

-- F4: a foreign key to a platform table needs no context; changing it does
INSERT INTO rt.prices VALUES (1, 9.99);
CREATE TABLE rt.plain (id int PRIMARY KEY, price_id int REFERENCES rt.prices (id));
GRANT SELECT, INSERT ON rt.plain TO rt_app;
GRANT SELECT, UPDATE ON rt.prices TO rt_app;
SET ROLE rt_app;
SELECT autora.clear_context();
SELECT is(rt.try($$INSERT INTO rt.plain VALUES (1, 1)$$), 'ok',
          'F4: a foreign key check on a platform table (a row lock) needs no context');
SELECT is(rt.try($$SELECT * FROM rt.prices FOR SHARE$$), 'ok',
          'F4: nor does SELECT ... FOR SHARE');
SELECT is(rt.try($$UPDATE rt.prices SET price = 1$$), 'ZA001',
          'F4: an UPDATE of it still does (ZA001)');
RESET ROLE;

-- F5: an inheritance lattice 24 levels deep: each ancestor is looked up once
CREATE SCHEMA rt_lat;
CREATE TABLE rt_lat.t0a (x int);
CREATE TABLE rt_lat.t0b (x int);
DO $$
BEGIN
    FOR i IN 1..24 LOOP
        EXECUTE format('CREATE TABLE rt_lat.t%sa () INHERITS (rt_lat.t%sa, rt_lat.t%sb)', i, i - 1, i - 1);
        EXECUTE format('CREATE TABLE rt_lat.t%sb () INHERITS (rt_lat.t%sa, rt_lat.t%sb)', i, i - 1, i - 1);
    END LOOP;
END $$;
SET LOCAL statement_timeout = '5s';
SELECT is(rt.try($$SELECT count(*) FROM rt_lat.t24a$$), 'ok',
          'F5: a statement on the bottom of a 24-level lattice finishes (it took 2^24 lookups)');
SELECT is((SELECT count(*) FROM autora.coverage WHERE table_schema = 'rt_lat'), 50::bigint,
          'F5: and coverage lists the lattice''s tables');
RESET statement_timeout;

-- F6 / F12: PII and exclusion; PII in a primary key
CREATE TABLE rt.p1 (id int PRIMARY KEY, tenant_id text, phone text, ssn text);
SELECT is(rt.try($$SELECT autora.protect('rt.p1', pii_columns => '{ssn}', exclude_columns => '{ssn}')$$), '22023',
          'F6: a column named both PII and excluded is refused (22023)');
SELECT autora.protect('rt.p1', pii_columns => '{phone}', exclude_columns => '{ssn}');
ALTER TABLE rt.p1 OWNER TO rt_owner;
SET ROLE rt_owner;
SELECT is(rt.try($$ALTER TABLE rt.p1 DROP CONSTRAINT p1_pkey, ADD PRIMARY KEY (id, phone)$$), '42501',
          'F12: a new primary key over a PII column is refused (42501)');
SELECT is(rt.try($$ALTER TABLE rt.p1 DROP CONSTRAINT p1_pkey, ADD CONSTRAINT p1_pkey PRIMARY KEY (id)$$), 'ok',
          'F12: honest: re-keying over other columns works');
RESET ROLE;

-- F7: protect_schema() again keeps a protected table's options
SELECT autora.protect('rt_auto.t3', pii_columns => '{tenant_id}');
SELECT autora.protect_schema('rt_auto');
SELECT is((SELECT pii_columns FROM autora.protected WHERE relid = 'rt_auto.t3'::regclass), '{tenant_id}'::name[],
          'F7: protect_schema() again leaves the PII columns of a protected table as they are');

-- F8: a change of an excluded key column is recorded
CREATE TABLE rt.ex (id int PRIMARY KEY, tenant_id text, note text);
SELECT autora.protect('rt.ex', exclude_columns => '{id}');
GRANT SELECT, INSERT, UPDATE ON rt.ex TO rt_app;
SET ROLE rt_app;
SELECT autora.set_context_trusted('rt-a', 'u-1', 'sales');
INSERT INTO rt.ex VALUES (1, 'rt-a', 'n');
UPDATE rt.ex SET id = 99;
RESET ROLE;
SELECT is((SELECT jsonb_build_array(changed, before, after, pk) FROM autora.ledger
            WHERE table_name = 'ex' AND op = 'UPDATE'),
          '[["id"], {"id": 1}, {"id": 99}, {"id": 99}]'::jsonb,
          'F8: changing only an excluded key column writes an entry that says from what to what');

-- F9: a retype records the settings its casts read
ALTER TABLE rt.ex ALTER COLUMN note TYPE varchar(20);
SELECT is((SELECT metadata->'settings' ? 'TimeZone' FROM autora.ledger
            WHERE op = 'EVENT' AND event = 'ddl' AND entity_id = 'rt.ex' ORDER BY id DESC LIMIT 1), true,
          'F9: the ddl event of a retype records TimeZone and the other settings a cast reads');

-- F10: a schema rename: entries carry the new name at once, and it is recorded
CREATE SCHEMA rt_s;
CREATE TABLE rt_s.root (id int PRIMARY KEY, tenant_id text);
SELECT autora.protect('rt_s.root');
GRANT USAGE ON SCHEMA rt_s TO rt_app;
GRANT SELECT, INSERT ON rt_s.root TO rt_app;
SET ROLE rt_app;
INSERT INTO rt_s.root VALUES (1, 'rt-a');
RESET ROLE;
ALTER SCHEMA rt_s RENAME TO rt_s2;
SET ROLE rt_app;
INSERT INTO rt_s2.root VALUES (2, 'rt-a');
RESET ROLE;
SELECT is((SELECT table_schema FROM autora.ledger WHERE table_name = 'root' AND pk = '{"id": 2}'), 'rt_s2',
          'F10: after a schema rename, this very session records entries under the new schema name');
SELECT is((SELECT count(*) FROM autora.ledger WHERE op = 'EVENT' AND event = 'ddl' AND entity_id = 'rt_s2.root'),
          1::bigint, 'F10: and the rename is a ddl event of the protected table');

-- F11: a window without protection survives a rename of the table
CREATE TABLE rt.wt (id int PRIMARY KEY, tenant_id text);
SELECT autora.protect('rt.wt');
SELECT autora.unprotect('rt.wt', 'window');
ALTER TABLE rt.wt RENAME TO wt2;
SELECT matches((SELECT gap FROM autora.coverage WHERE table_schema = 'rt' AND table_name = 'wt2'),
               'unprotected from .* to now \(window\)',
               'F11: coverage still shows the window after the table is renamed');

SELECT is((SELECT count(*) FROM autora.verify() WHERE ok IS FALSE), 0::bigint, 'every chain verifies');

SELECT * FROM finish();
ROLLBACK;
