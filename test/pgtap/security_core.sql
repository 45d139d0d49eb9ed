-- security_core.sql: the holes of issue 11 tried as the role that found
-- them (application role, table owner, superuser), each refused, and the
-- honest path beside it.
--
--   trigger functions: not executable by PUBLIC; acting only on registered
--     tables, with the registered configuration (never a crash, never an
--     entry in another store's chain);
--   the table owner: INHERIT / ATTACH under its own parent, pre-filled
--     partitions, dropping or retyping the tenant column (also by CASCADE),
--     USING rewrites, owner code run over every tenant's rows by CREATE
--     INDEX / CHECK / generated columns / statistics, rules, SET UNLOGGED;
--     renames keep the PII and tenant roles; every ALTER and GRANT recorded;
--   the registry and the ledger's indexes, also for superusers;
--   DELETE of another store's row by a role that bypasses RLS;
--   WITH HOLD cursors through a function; bad input.
BEGIN;
SELECT plan(114);

-- ------------------------------------------------------------------ set-up
CREATE SCHEMA sc;
CREATE FUNCTION sc.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
CREATE FUNCTION sc.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION sc.ctx(tenant text, role text DEFAULT 'sales') RETURNS void
LANGUAGE sql AS $$ SELECT autora.set_context_trusted(tenant, 'u-' || tenant, role) $$;
-- the newest ddl event of a table
CREATE FUNCTION sc.last_ddl(tbl text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT metadata FROM autora.ledger
     WHERE op = 'EVENT' AND event = 'ddl' AND entity_id = tbl ORDER BY id DESC LIMIT 1 $$;

CREATE ROLE sc_owner;
CREATE ROLE sc_app;
CREATE ROLE sc_bypass BYPASSRLS;
GRANT USAGE, CREATE ON SCHEMA sc TO sc_owner;
GRANT USAGE ON SCHEMA sc TO sc_app, sc_bypass;
GRANT TEMPORARY ON DATABASE autora_tap TO sc_app;
SELECT autora.add_tenant('sc-a', 'sc-g', 'Store A');
SELECT autora.add_tenant('sc-b', 'sc-g', 'Store B');

SET ROLE sc_owner;
CREATE TABLE sc.orders (id int PRIMARY KEY, tenant_id text NOT NULL, customer text,
                        email text, amount numeric NOT NULL DEFAULT 0);
CREATE TABLE sc.porders (id int NOT NULL, tenant_id text NOT NULL, v text,
                         PRIMARY KEY (tenant_id, id)) PARTITION BY LIST (tenant_id);
CREATE TABLE sc.porders_a PARTITION OF sc.porders FOR VALUES IN ('sc-a');
-- the owner's code: sees whatever row it is given
CREATE FUNCTION sc.leak(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE NOTICE 'leaked %', $1;
    RETURN $1;
END $$;
CREATE FUNCTION sc.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION sc.leak_rows() RETURNS SETOF text LANGUAGE plpgsql STABLE
AS $$ BEGIN RETURN QUERY SELECT customer FROM sc.orders; END $$;
CREATE FUNCTION sc.leak_rows_sql() RETURNS SETOF text LANGUAGE sql STABLE
AS $$ SELECT customer FROM sc.orders $$;
CREATE DOMAIN sc.tid AS text;
CREATE TABLE sc.visits (id int PRIMARY KEY, tenant_id sc.tid NOT NULL, note text);
GRANT SELECT, INSERT, UPDATE, DELETE ON sc.orders, sc.porders, sc.visits TO sc_app, sc_bypass;
RESET ROLE;
-- (before the first entry: this transaction then holds the ledger open)
SELECT is(sc.try('CREATE INDEX sc_ledger_actor ON autora.ledger (actor_id)'), 'ok',
          'honest: a superuser adds a plain index on a ledger column');
SELECT is(sc.try('DROP INDEX autora.sc_ledger_actor'), 'ok', 'honest: and drops it again');
SELECT autora.protect('sc.orders', pii_columns => '{email}');
SELECT autora.protect('sc.porders');
SELECT autora.protect('sc.visits');
SELECT sc.ctx('sc-a');
INSERT INTO sc.orders (id, customer, email, amount) VALUES (1, 'Alice A', 'alice@a.example', 10);
SELECT sc.ctx('sc-b');
INSERT INTO sc.orders (id, customer, email, amount) VALUES (2, 'Bob B', 'bob@b.example', 20),
                                                         (3, 'Bob B', 'bob2@b.example', 30);
SELECT autora.clear_context();

-- ------------------------------------------- trigger functions (item 3)
SELECT is(has_function_privilege('sc_app', f, 'EXECUTE'), false,
          'the application role may not execute autora trigger function ' || f)
  FROM unnest(ARRAY['autora.capture_row()', 'autora.stamp_tenant()',
                    'autora.capture_truncate()', 'autora.flush_entries()']) AS f;
SET ROLE sc_app;
CREATE TEMP TABLE my_orders (id int PRIMARY KEY, tenant_id text, area polygon);
SELECT is(sc.try($$CREATE TRIGGER t BEFORE INSERT ON my_orders FOR EACH ROW
                   EXECUTE FUNCTION autora.stamp_tenant()$$), '42501',
          'the application role cannot attach stamp_tenant to its own temp table');
SELECT is(sc.try($$CREATE TRIGGER t AFTER INSERT ON my_orders FOR EACH ROW
                   EXECUTE FUNCTION autora.capture_row()$$), '42501',
          'the application role cannot attach capture_row to its own temp table');
RESET ROLE;
-- even attached by someone who may: nothing happens outside the registry
CREATE TABLE sc.fake (id int PRIMARY KEY, tenant_id polygon, email text);
CREATE TRIGGER zz_stamp BEFORE INSERT ON sc.fake FOR EACH ROW EXECUTE FUNCTION autora.stamp_tenant();
CREATE TRIGGER cap AFTER INSERT OR DELETE ON sc.fake FOR EACH ROW EXECUTE FUNCTION autora.capture_row('tenant_id', '{}', '{}');
SELECT sc.ctx('sc-a');
SELECT is(sc.try($$INSERT INTO sc.fake (id) VALUES (1)$$), '42501',
          'stamp_tenant on an unregistered table with a polygon "tenant" column: refused, no crash');
DROP TRIGGER zz_stamp ON sc.fake;
SELECT is(sc.try($$INSERT INTO sc.fake (id, tenant_id) VALUES (1, '((0,0),(1,1))')$$), '42501',
          'capture_row on an unregistered table writes no entry, whatever its arguments say');
SELECT is((SELECT count(*) FROM autora.ledger WHERE table_name = 'fake'), 0::bigint,
          'no entry was written for the unregistered table');
SELECT is(sc.try('DROP TABLE sc.fake'), 'ok', 'a table that merely carries autora triggers can be dropped');
SELECT autora.clear_context();

-- ------------------------------------------- every operation checked against the context (item 13)
SELECT sc.ctx('sc-a');
SET ROLE sc_bypass;
SELECT is(sc.try('DELETE FROM sc.orders WHERE id = 2'), '42501',
          'a BYPASSRLS role with a store-A context cannot delete store B''s row');
SELECT is(sc.try('UPDATE sc.orders SET amount = 0 WHERE id = 2'), '42501',
          'nor update it');
SELECT is(sc.try('DELETE FROM sc.orders WHERE id = 1'), 'ok',
          'honest: it deletes its own store''s row');
RESET ROLE;
SELECT autora.clear_context();

-- ------------------------------------------- the owner's parents (item 4)
SET ROLE sc_owner;
CREATE TABLE sc.parent (id int, tenant_id text, customer text, email text, amount numeric);
SELECT is(sc.try('ALTER TABLE sc.orders INHERIT sc.parent'), '42501',
          'the owner cannot make a protected table inherit from its own unprotected parent');
CREATE TABLE sc.lp (id int, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id))
    PARTITION BY LIST (tenant_id);
CREATE TABLE sc.loose (id int NOT NULL, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id));
RESET ROLE;
SELECT autora.protect('sc.loose');
SET ROLE sc_owner;
SELECT is(sc.try($$ALTER TABLE sc.lp ATTACH PARTITION sc.loose FOR VALUES IN ('sc-a')$$), '42501',
          'the owner cannot attach a protected table under its own unprotected partitioned table');
CREATE TABLE sc.filled (id int NOT NULL, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id));
INSERT INTO sc.filled VALUES (1, 'sc-b', 'planted');
SELECT is(sc.try($$ALTER TABLE sc.porders ATTACH PARTITION sc.filled FOR VALUES IN ('sc-b')$$), '42501',
          'a pre-filled table cannot be attached under a protected table (rows without history)');
SELECT is(sc.try('ALTER TABLE sc.filled INHERIT sc.orders'), '42501',
          'nor made to inherit from one');
DELETE FROM sc.filled;
SELECT is(sc.try($$ALTER TABLE sc.porders ATTACH PARTITION sc.filled FOR VALUES IN ('sc-b')$$), 'ok',
          'honest: an empty table can be attached');
SELECT is(sc.try($$CREATE TABLE sc.porders_c PARTITION OF sc.porders FOR VALUES IN ('sc-c')$$), 'ok',
          'honest: the owner creates a partition of its protected table');
RESET ROLE;
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = r::regclass
            AND tgfoid = 'autora.capture_row()'::regprocedure AND tgenabled = 'A'), 1::bigint,
          r || ' got its capture trigger')
  FROM unnest(ARRAY['sc.filled', 'sc.porders_c']) AS r;
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = 'sc.filled'::regclass
             AND polname IN ('autora_read', 'autora_insert', 'autora_update', 'autora_delete')),
          4::bigint, 'the attached partition got the autora policies');
SELECT sc.ctx('sc-b');
INSERT INTO sc.porders (id, tenant_id, v) VALUES (7, 'sc-b', 'routed');
SELECT is((SELECT count(*) FROM autora.ledger WHERE table_name = 'porders' AND op = 'INSERT'
             AND metadata->'partition'->>'name' = 'filled'), 1::bigint,
          'a row routed to the attached partition is captured, under the partitioned table''s name');
SELECT autora.clear_context();

-- ------------------------------------------- the tenant column (items 5, 8)
SET ROLE sc_owner;
SELECT is(sc.try('ALTER TABLE sc.orders DROP COLUMN tenant_id CASCADE'), '42501',
          'the owner cannot drop the tenant column, CASCADE or not');
SELECT is(sc.try('ALTER TABLE sc.orders ALTER COLUMN customer TYPE text USING tenant_id'), '42501',
          'the owner cannot rewrite a column with USING (no entries)');
SELECT is(sc.try('ALTER TABLE sc.orders ALTER COLUMN tenant_id TYPE varchar(20)'), '42501',
          'the owner cannot retype the tenant column');
SELECT is(sc.try('DROP DOMAIN sc.tid CASCADE'), '42501',
          'a cascade that would drop the tenant column (its domain) is refused');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = 'sc.orders'::regclass
             AND polname IN ('autora_read', 'autora_insert', 'autora_update', 'autora_delete')),
          4::bigint, 'the autora policies are all still there');
SELECT is(sc.try('ALTER TABLE sc.orders RENAME COLUMN email TO contact'), 'ok',
          'honest: the owner renames the PII column');
SELECT is(sc.try('ALTER TABLE sc.orders RENAME COLUMN tenant_id TO store_id'), 'ok',
          'honest: and the tenant column');
RESET ROLE;
SELECT is((SELECT tenant_column::text || ' ' || pii_columns::text FROM autora.protected_tables
            WHERE relid = 'sc.orders'::regclass), 'store_id {contact}',
          'the registry follows the renamed tenant and PII columns');
SELECT sc.ctx('sc-a');
SELECT is(sc.try($$INSERT INTO sc.orders (id, customer, contact) VALUES (4, 'Ann A', 'ann@a.example')$$), 'ok',
          'writes still work after the renames (the renamed tenant column is stamped)');
SELECT is((SELECT after ->> 'contact' LIKE 'pii:%' AND after ->> 'store_id' = 'sc-a'
             FROM autora.ledger WHERE table_name = 'orders' AND op = 'INSERT' ORDER BY id DESC LIMIT 1), true,
          'the renamed PII column reaches the ledger as a digest, never in clear');
SELECT autora.clear_context();
SET ROLE sc_owner;
ALTER TABLE sc.orders DROP COLUMN contact;
ALTER TABLE sc.orders ADD COLUMN contact text;
RESET ROLE;
SELECT is((SELECT pii_columns::text FROM autora.protected_tables WHERE relid = 'sc.orders'::regclass), '{}',
          'a dropped PII column leaves the list; one added later under its name is ordinary');

-- ------------------------------------------- the owner's code over every row (item 6)
SET ROLE sc_owner;
SELECT is(sc.try('CREATE INDEX ON sc.orders (sc.leak(customer))'), '42501',
          'an index expression calling the owner''s function is refused before any row is read');
SELECT is(sc.try('CREATE INDEX ON sc.orders (customer) WHERE sc.leak(customer) IS NOT NULL'), '42501',
          'so is an index predicate');
SELECT is(sc.try('ALTER TABLE sc.orders ADD CONSTRAINT c_leak CHECK (sc.leak(customer) IS NOT NULL)'), '42501',
          'so is a CHECK constraint validated over every row');
SELECT is(sc.try('ALTER TABLE sc.orders ADD COLUMN g text GENERATED ALWAYS AS (sc.leak(customer)) STORED'), '42501',
          'so is a generated column');
SELECT is(sc.try('CREATE STATISTICS sc.st ON (sc.leak(customer)) FROM sc.orders'), '42501',
          'statistics on expressions are refused (ANALYZE would run them as the owner)');
SELECT is(sc.try('ALTER DOMAIN sc.tid ADD CONSTRAINT tid_peek CHECK (sc.leak(VALUE) IS NOT NULL)'), '42501',
          'so is a domain constraint checked over the tenant column of a protected table');
CREATE DOMAIN sc.free AS text;
SELECT is(sc.try('ALTER DOMAIN sc.free ADD CONSTRAINT free_peek CHECK (sc.leak(VALUE) IS NOT NULL)'), 'ok',
          'honest: the owner''s function in a constraint of a domain no protected table uses');
SELECT is(sc.try('CREATE POLICY a_peek ON sc.orders AS RESTRICTIVE FOR SELECT USING (sc.leak(customer) IS NOT NULL)'),
          '42501', 'a restrictive policy of the owner named before autora''s (it would see every row first) is refused');
SELECT is(sc.try('CREATE POLICY zz_check ON sc.orders AS RESTRICTIVE FOR SELECT USING (customer IS NOT NULL)'), 'ok',
          'honest: a restrictive policy named after autora''s');
SELECT is(sc.try('ALTER POLICY zz_check ON sc.orders RENAME TO a_check'), '42501',
          'and it cannot be renamed before them');
SELECT is(sc.try('CREATE POLICY a_perm ON sc.orders AS PERMISSIVE FOR SELECT USING (true)'), 'ok',
          'honest: a permissive policy of any name (applied after the restrictive ones)');
SELECT is(sc.try('CREATE TRIGGER autora_capture AFTER INSERT ON sc.parent FOR EACH ROW EXECUTE FUNCTION sc.noop()'),
          '42939', 'trigger names beginning autora_ are reserved, on any table');
SELECT is(sc.try('CREATE POLICY autora_read ON sc.parent USING (true)'), '42939',
          'so are policy names beginning autora_');
CREATE TABLE sc.spy (id int, tenant_id text, customer text);
SELECT is(sc.try('CREATE TABLE sc.orders2 () INHERITS (sc.orders, sc.spy)'), '42501',
          'a child of a protected table with a second, unprotected parent is refused');
CREATE TYPE sc.order_t AS (id int, tenant_id text, customer text);
SELECT is(sc.try('ALTER TABLE sc.orders OF sc.order_t'), '42501',
          'a protected table cannot become a typed table (ALTER TYPE ... CASCADE would reach it)');
CREATE UNLOGGED TABLE sc.porders_u (id int NOT NULL, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id));
SELECT is(sc.try($$ALTER TABLE sc.porders ATTACH PARTITION sc.porders_u FOR VALUES IN ('sc-u')$$), '42501',
          'an unlogged table cannot be attached under a protected one');
CREATE TABLE sc.porders_x (id int NOT NULL, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id));
CREATE INDEX ON sc.porders_x (sc.leak(v));
SELECT is(sc.try($$ALTER TABLE sc.porders ATTACH PARTITION sc.porders_x FOR VALUES IN ('sc-x')$$), '42501',
          'a table whose index calls the owner''s function cannot join a protected tree (autovacuum would run it)');
SELECT is(sc.try('CREATE INDEX ON sc.porders (sc.leak(v))'), '42501',
          'nor can such an index be built on a protected table whose rows are all elsewhere (nothing evaluated)');
SELECT is(sc.try('CREATE RULE r AS ON INSERT TO sc.orders DO ALSO NOTIFY x'), '42501',
          'rules on a protected table are refused');
SELECT is(sc.try('ALTER TABLE sc.orders SET UNLOGGED'), '42501',
          'SET UNLOGGED is refused (a crash would empty the table without entries)');
SELECT is(sc.err('CREATE UNIQUE INDEX ON sc.orders (customer)'),
          '23505: could not create unique index "..." (its values are withheld)',
          'a duplicate across stores fails without quoting the other store''s value');
SELECT is(sc.err($$CREATE INDEX ON sc.orders ((CASE WHEN id = 2 THEN ('&' || customer)::tsquery END))$$),
          '42601: syntax error in tsquery: "..." (its values are withheld)',
          'an error of any class raised on a row loses its values');
SELECT is(sc.try($$ALTER TABLE sc.orders ADD CONSTRAINT c_set CHECK (set_config('sc.x', customer, false) IS NOT NULL)$$),
          '42501', 'a built-in volatile function that takes the row (set_config) cannot run over every store''s rows');
SELECT is(current_setting('sc.x', true), NULL, 'and nothing was passed on');
SELECT is(sc.try('CREATE INDEX orders_customer ON sc.orders (lower(customer))'), 'ok',
          'honest: an index on built-in functions of columns');
SELECT is(sc.try('ALTER TABLE sc.orders ADD CONSTRAINT amount_positive CHECK (amount >= 0)'), 'ok',
          'honest: a CHECK constraint with built-in operators');
SELECT is(sc.try('ALTER TABLE sc.orders ALTER COLUMN amount TYPE numeric(12,2)'), 'ok',
          'honest: a column retyped without USING');
SELECT is(sc.try('ALTER TABLE sc.orders ADD COLUMN note text'), 'ok', 'honest: ADD COLUMN');
RESET ROLE;
SELECT is((SELECT metadata ->> 'command' FROM autora.ledger WHERE op = 'EVENT' AND event = 'ddl'
            AND entity_id = 'sc.orders' ORDER BY id DESC LIMIT 1), 'ALTER TABLE',
          'ALTER TABLE on a protected table is recorded as a ddl event in the platform chain');
SELECT ok(sc.last_ddl('sc.orders') -> 'columns_after' @> '[{"name": "note"}]'
          AND NOT sc.last_ddl('sc.orders') -> 'columns_before' @> '[{"name": "note"}]',
          'the event carries the column lists before and after');
SELECT is((SELECT count(*) FROM autora.ledger WHERE op = 'EVENT' AND event = 'ddl'
            AND entity_id = 'sc.orders' AND metadata ->> 'command' = 'ALTER TABLE'
            AND metadata ->> 'statement' LIKE '%numeric(12,2)%'), 1::bigint,
          'the retype is recorded with its statement');
GRANT SELECT ON sc.orders TO sc_app;
SELECT is(sc.last_ddl('sc.orders') ->> 'command', 'GRANT', 'GRANT on a protected table is recorded');
DROP INDEX sc.orders_customer;
SELECT is(sc.last_ddl('sc.orders') ->> 'command', 'DROP INDEX', 'DROP INDEX on a protected table is recorded');
ALTER DOMAIN sc.tid ADD CONSTRAINT tid_not_empty CHECK (VALUE <> '');
SELECT is(sc.last_ddl('sc.visits') ->> 'command', 'ALTER DOMAIN',
          'ALTER DOMAIN of a domain a protected table uses is recorded for that table');
SELECT is((SELECT tenant_id FROM autora.ledger WHERE op = 'EVENT' AND event = 'ddl' ORDER BY id DESC LIMIT 1),
          NULL, 'ddl events go to the platform chain');

-- ------------------------------------------- protected trees with their own configurations
SET ROLE sc_owner;
CREATE TABLE sc.people (id int PRIMARY KEY, tenant_id text NOT NULL);
CREATE TABLE sc.staff (id int PRIMARY KEY, tenant_id text NOT NULL, ssn text);
CREATE TABLE sc.vendors (id int PRIMARY KEY, tenant_id text NOT NULL);
CREATE TABLE sc.typed OF sc.order_t (PRIMARY KEY (id));
RESET ROLE;
SELECT autora.protect('sc.people');
SELECT autora.protect('sc.staff', pii_columns => '{ssn}');
SELECT autora.protect('sc.vendors');
SELECT is(sc.try($$SELECT autora.protect('sc.typed')$$), '42809', 'a typed table cannot be protected');
SET ROLE sc_owner;
SELECT is(sc.try('ALTER TABLE sc.staff INHERIT sc.people'), '42501',
          'a protected table with PII columns cannot go under one without (its PII would reach the ledger in clear)');
SELECT is(sc.try('ALTER TABLE sc.vendors INHERIT sc.people'), 'ok',
          'honest: a protected table goes under one with the same options');
RESET ROLE;
SELECT is((SELECT count(*) FROM autora.protected WHERE relid = 'sc.vendors'::regclass), 0::bigint,
          'it is a member of the parent''s tree now, not registered on its own');
SELECT autora.unprotect('sc.people', 'test');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sc.vendors'::regclass
            AND tgfoid = 'autora.capture_row()'::regprocedure), 0::bigint,
          'unprotecting the parent takes the member along (nothing left half-protected)');
SET ROLE sc_owner;
SELECT is(sc.try($$SET autora.tenant_column = 'store_id'$$), '42501',
          'autora.tenant_column is a superuser setting (a database owner could steer protect())');
RESET ROLE;

-- ------------------------------------------- the registry and the ledger (items 16, 17)
SELECT is(sc.try($$DELETE FROM autora.protected WHERE relid = 'sc.visits'::regclass$$), '42501',
          'a superuser cannot delete a table from the registry behind unprotect''s back');
SELECT is(sc.try($$UPDATE autora.protected SET pii_columns = '{}'$$), '42501',
          'nor change the registered columns');
SELECT is(sc.try($$INSERT INTO autora.protected_schemas VALUES ('sc', 'tenant_id')$$), '42501',
          'nor register a schema directly');
SELECT is(sc.try('TRUNCATE autora.protected'), '42501', 'nor truncate the registry');
SELECT is(sc.try('CREATE UNIQUE INDEX ON autora.ledger (tenant_id)'), '42501',
          'a unique index on the ledger (it would break capture) is refused to superusers');
SELECT is(sc.try('CREATE INDEX ON autora.ledger ((actor_id || sc.leak(actor_id)))'), '42501',
          'so is an expression index (code in every capture)');
SELECT is(sc.try('DROP INDEX autora.ledger_id_xid_idx'), '42501', 'the ledger''s own index cannot be dropped');
SELECT is(sc.try('ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE pg_default'), '42501',
          'ALTER TABLE ALL IN TABLESPACE does not move the ledger relations either');

-- ------------------------------------------- WITH HOLD through a function (item 14)
SELECT sc.ctx('sc-b');
SELECT is(sc.try('DECLARE held_sql CURSOR WITH HOLD FOR SELECT * FROM sc.leak_rows_sql()'), '42501',
          'a WITH HOLD cursor over an inlined SQL function reading a protected table is refused');
DECLARE held CURSOR WITH HOLD FOR SELECT * FROM sc.leak_rows();
SELECT throws_ok('FETCH ALL FROM held', '42501', NULL,
                 'a WITH HOLD cursor cannot read a protected table through a function');
CLOSE held;

-- ------------------------------------------- red team, application role
GRANT USAGE ON SCHEMA sc TO sc_app;
GRANT EXECUTE ON FUNCTION sc.try(text) TO sc_app;
CREATE INDEX orders_secret ON sc.orders (customer);
SELECT sc.ctx('sc-a');
SET ROLE sc_app;
SELECT is(sc.try('EXPLAIN (ANALYZE) SELECT 1 FROM sc.orders WHERE customer >= ''B'''), '42501',
          'EXPLAIN ANALYZE of a protected table is refused (its counts include the rows RLS removed)');
SELECT is(sc.try('EXPLAIN SELECT 1 FROM sc.orders WHERE customer >= ''B'''), 'ok',
          'honest: EXPLAIN without ANALYZE');
SELECT is(sc.try($$UPDATE sc.orders SET customer = 'anon' WHERE id = 4 RETURNING autora.clear_context()$$), 'ZA001',
          'a change whose context ends before it is recorded is refused (no entry without an actor)');
SELECT is(sc.try($$UPDATE sc.orders SET customer = 'Ann B' WHERE id = 4 RETURNING id$$), 'ok',
          'honest: the same change with the context in place');
RESET ROLE;
SELECT autora.clear_context();
SELECT is(sc.try('EXPLAIN (ANALYZE) SELECT 1 FROM sc.orders'), 'ok',
          'honest: a role that bypasses row level security may EXPLAIN ANALYZE');

-- ------------------------------------------- red team, superuser and round 2
CREATE EXTENSION IF NOT EXISTS hstore;
SELECT is(sc.try('ALTER EXTENSION hstore ADD TABLE sc.orders'), '42501',
          'a protected table cannot become a member of another extension (it would go with it)');
SELECT is(sc.try('ALTER TRIGGER autora_capture ON sc.orders DEPENDS ON EXTENSION hstore'), '42501',
          'autora''s trigger cannot depend on another extension');
SELECT is(sc.try('ALTER INDEX autora.ledger_id_xid_idx DEPENDS ON EXTENSION hstore'), '42501',
          'nor the ledger''s index');
CREATE FUNCTION sc.plant() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    CREATE TRIGGER planted AFTER INSERT ON autora.protected FOR EACH ROW EXECUTE FUNCTION sc.noop();
END $$;
CREATE EVENT TRIGGER sc_plant ON ddl_command_end WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION sc.plant();
SELECT is(sc.try('CREATE EXTENSION IF NOT EXISTS citext'), '42501',
          'another extension''s creation gives no exemption from the guards on schema autora');
DROP EVENT TRIGGER sc_plant;
SET LOCAL autora.restore_mode = on;
SELECT is(sc.try($$INSERT INTO autora.restore_state (started_by) VALUES ('x')$$), '42501',
          'the restore marker is not loadable, even in restore mode');
SELECT is(sc.try($$INSERT INTO autora.xid_base VALUES (4611686018427387905)$$), '23514',
          'an xid base that would break signed comparisons is refused');
RESET autora.restore_mode;
SELECT is(sc.try('CREATE INDEX ON autora.ledger (actor_id text_pattern_ops)'), '42501',
          'an index on the ledger with an operator class of its own is refused');
SELECT is(sc.try('CREATE POLICY p ON autora.ledger USING (true)'), '42501',
          'so is a policy on the ledger');
SET ROLE sc_owner;
CREATE DOMAIN sc.cust AS text;
SELECT is(sc.try('CREATE INDEX ON sc.orders ((customer::sc.cust))'), 'ok',
          'honest: an index through a domain with no constraint of the owner''s');
SELECT is(sc.try('ALTER DOMAIN sc.cust ADD CONSTRAINT cust_peek CHECK (sc.leak(VALUE) IS NOT NULL) NOT VALID'), '42501',
          'a NOT VALID domain constraint calling the owner''s code, in an index ANALYZE evaluates, is refused');
CREATE TABLE sc.r (id int NOT NULL, tenant_id text NOT NULL, customer text, email text, amount numeric NOT NULL DEFAULT 0, contact text, note text);
CREATE TABLE sc.s (id int, tenant_id text, customer text);
CREATE TABLE sc.q () INHERITS (sc.r, sc.s);
SELECT is(sc.try('ALTER TABLE sc.r INHERIT sc.orders'), '42501',
          'a tree whose member has a second parent cannot join a protected table');
CREATE TABLE sc.pp (id int NOT NULL, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id)) PARTITION BY LIST (id);
CREATE UNLOGGED TABLE sc.pp_1 PARTITION OF sc.pp FOR VALUES IN (1);
SELECT is(sc.try($$ALTER TABLE sc.porders ATTACH PARTITION sc.pp FOR VALUES IN ('sc-pp')$$), '42501',
          'a partitioned table with an unlogged partition cannot be attached under a protected one');
CREATE TYPE sc.status AS ENUM ('open', 'closed');
ALTER TABLE sc.orders ADD COLUMN status sc.status;
SELECT is(sc.try($$ALTER TYPE sc.status RENAME VALUE 'open' TO 'closed_'$$), '42501',
          'renaming a label of an enum a protected table uses is refused (every row would say something else)');
SELECT is(sc.try($$ALTER TYPE sc.status ADD VALUE 'pending'$$), 'ok', 'honest: adding a label');
CREATE DOMAIN sc.memo AS text;
ALTER TABLE sc.orders ADD COLUMN memo sc.memo;
SELECT is(sc.try('DROP DOMAIN sc.memo CASCADE'), '42501',
          'a cascade cannot drop a column of a protected table (unrecorded)');
SELECT is(sc.try('ALTER TABLE sc.orders DROP COLUMN memo'), 'ok',
          'honest: ALTER TABLE ... DROP COLUMN (recorded)');
RESET ROLE;

-- ------------------------------------------- bad input (item 18)
SELECT is(sc.try('SELECT autora.protect(0)'), '42P01', 'protect(0): no such relation, not an internal error');
SELECT is(sc.try($$SELECT autora.unprotect(0, 'why')$$), '42P01', 'unprotect(0) likewise');
SELECT autora.clear_context();
CREATE TABLE sc.docs (id int PRIMARY KEY, tenant_id text NOT NULL, body json, bodies json[]);
SELECT autora.protect('sc.docs');
SELECT sc.ctx('sc-a');
SELECT is(sc.try($$INSERT INTO sc.docs (id, body, bodies) VALUES (1, '{"a": "x\u0000y"}', ARRAY['"\u0000"'::json])$$),
          'ok', 'a json value with \u0000 can be written to a protected table');
SELECT is(sc.try($$UPDATE sc.docs SET body = '{"a": "z\u0000"}' WHERE id = 1$$), 'ok', 'updated');
SELECT is(sc.try('DELETE FROM sc.docs WHERE id = 1'), 'ok', 'and deleted');
SELECT is((SELECT after -> 'body' FROM autora.ledger WHERE table_name = 'docs' AND op = 'INSERT'),
          to_jsonb('{"a": "x\u0000y"}'::text), 'its entry keeps the json text, as a string');
SELECT autora.clear_context();

SELECT * FROM finish();
ROLLBACK;
