-- isolation_rls.sql: reading and writing another store's rows.
--
-- Stores iso-a and iso-b share group iso-g1, iso-c is in iso-g2.  With a
-- token for iso-a the application role tries to reach iso-b's rows through
-- filters, writes with the other store's id, ON CONFLICT and MERGE on the
-- other store's keys, views, SECURITY DEFINER functions, partitions queried
-- directly, inheritance children, materialized views, the table owner,
-- SET ROLE, prepared statements and PL/pgSQL cached plans across tenant
-- switches (also as generic plans), parallel workers, leaky functions and
-- statistics; plus the honest path and the documented exceptions
-- (BYPASSRLS, superuser-owned views / materialized views).
BEGIN;
SELECT plan(80);

-- ------------------------------------------------------------------ set-up
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA iso;
CREATE FUNCTION iso.b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT translate(encode($1, 'base64'), E'+/=\n', '-_') $$;
CREATE FUNCTION iso.secret() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT 'iso-rls-secret-0123456789-abcdefghijklmn' $$;
CREATE FUNCTION iso.jwt(hdr jsonb, pay jsonb, secret text DEFAULT iso.secret())
RETURNS text LANGUAGE sql AS $$
    SELECT s || '.' || iso.b64url(hmac(convert_to(s, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'))
    FROM (SELECT iso.b64url(convert_to(hdr::text, 'UTF8')) || '.' ||
                 iso.b64url(convert_to(pay::text, 'UTF8')) AS s) AS parts $$;
CREATE FUNCTION iso.tok(tenant text, role text DEFAULT 'sales')
RETURNS text LANGUAGE sql AS $$
    SELECT iso.jwt('{"alg": "HS256", "typ": "JWT", "kid": "iso-hs"}',
                   jsonb_strip_nulls(jsonb_build_object('tenant', tenant,
                       'sub', 'u-' || coalesce(tenant, 'platform'), 'role', role,
                       'exp', extract(epoch FROM now())::bigint + 600))) $$;
CREATE FUNCTION iso.ctx(tenant text, role text DEFAULT 'sales')
RETURNS text LANGUAGE sql AS $$ SELECT coalesce(autora.set_context(iso.tok(tenant, role)) ->> 'tenant', '<none>') $$;
CREATE FUNCTION iso.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
-- rows affected by a statement (data-modifying CTEs cannot sit inside is())
CREATE FUNCTION iso.affected(sql text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE sql;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
-- workers launched by the parallel nodes of a query (EXPLAIN ANALYZE; autora
-- refuses that to roles subject to row level security, so it runs as the
-- function's owner, a superuser, on the same plan shape)
CREATE FUNCTION iso.workers_launched(sql text) RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) ' || sql INTO plan;
    RETURN (SELECT coalesce(sum(w::int), 0) FROM jsonb_path_query(plan, '$.**."Workers Launched"') AS w);
END $$;
CREATE FUNCTION iso.ids(tbl regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    EXECUTE format('SELECT coalesce(string_agg(id::text, %L ORDER BY id), %L) FROM %s', ',', '-', tbl) INTO r;
    RETURN r;
END $$;

CREATE ROLE iso_app;
CREATE ROLE iso_app2;
CREATE ROLE iso_owner;
CREATE ROLE iso_bypass BYPASSRLS;
GRANT iso_app2 TO iso_app;
GRANT USAGE ON SCHEMA iso TO iso_app, iso_app2, iso_owner, iso_bypass;
GRANT CREATE ON SCHEMA iso TO iso_app, iso_owner;

DO $$
DECLARE
    r record;
BEGIN
    PERFORM autora.revoke_key(kid) FROM autora.keys WHERE revoked_at IS NULL;
    PERFORM autora.add_key('iso-hs', 'HS256', iso.secret());
    PERFORM autora.add_tenant('iso-a', 'iso-g1', 'Store A');
    PERFORM autora.add_tenant('iso-b', 'iso-g1', 'Store B');
    PERFORM autora.add_tenant('iso-c', 'iso-g2', 'Store C');
    PERFORM autora.add_tenant('9101', 'iso-g3', 'Store 9101');
    PERFORM autora.add_tenant('09101', 'iso-g4', 'Store 09101');
    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
             WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'S') LOOP
        EXECUTE format('GRANT ALL ON %s TO iso_app, iso_app2, iso_owner, iso_bypass', r.rel);
    END LOOP;
END $$;

-- the main table, owned by a non-superuser as applications usually do
CREATE TABLE iso.deals (id int PRIMARY KEY, tenant_id text NOT NULL, v text);
ALTER TABLE iso.deals OWNER TO iso_owner;
-- a partitioned table: pt_a exists at protect time, pt_b is attached and
-- pt_c created afterwards
CREATE TABLE iso.pt (id int, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id))
    PARTITION BY LIST (tenant_id);
CREATE TABLE iso.pt_a PARTITION OF iso.pt FOR VALUES IN ('iso-a');
-- attached empty after protect (a table with rows would be refused), filled after
CREATE TABLE iso.pt_b (id int NOT NULL, tenant_id text NOT NULL, v text, PRIMARY KEY (tenant_id, id));
-- plain inheritance: ih_c1 inherits before protect, ih_c2 after
CREATE TABLE iso.ih (id int PRIMARY KEY, tenant_id text NOT NULL, v text);
CREATE TABLE iso.ih_c1 (id int PRIMARY KEY, tenant_id text NOT NULL, v text);
ALTER TABLE iso.ih_c1 INHERIT iso.ih;
-- a bigint tenant column
CREATE TABLE iso.nums (id int PRIMARY KEY, store bigint NOT NULL, v text);
-- enough rows for a parallel scan
CREATE TABLE iso.big (id int PRIMARY KEY, tenant_id text NOT NULL, pad text);
ALTER TABLE iso.big SET (parallel_workers = 2);

DO $$
BEGIN
    PERFORM autora.protect('iso.deals');
    PERFORM autora.protect('iso.pt');
    PERFORM autora.protect('iso.ih');
    PERFORM autora.protect('iso.nums', 'store');
    PERFORM autora.protect('iso.big');
END $$;
ALTER TABLE iso.pt ATTACH PARTITION iso.pt_b FOR VALUES IN ('iso-b');
INSERT INTO iso.pt_b VALUES (1, 'iso-b', 'pt-b1');
CREATE TABLE iso.pt_c PARTITION OF iso.pt FOR VALUES IN ('iso-c');
CREATE TABLE iso.ih_c2 (PRIMARY KEY (id)) INHERITS (iso.ih);
GRANT ALL ON ALL TABLES IN SCHEMA iso TO iso_app, iso_app2, iso_bypass;

DO $$
BEGIN
    PERFORM iso.ctx('iso-a');
    INSERT INTO iso.deals VALUES (1, 'iso-a', 'a1'), (2, 'iso-a', 'a2'), (3, 'iso-a', 'a3');
    INSERT INTO iso.pt VALUES (1, 'iso-a', 'pt-a1');
    INSERT INTO iso.ih VALUES (1, 'iso-a', 'ih-a');
    INSERT INTO iso.ih_c1 VALUES (2, 'iso-a', 'ih_c1-a');
    INSERT INTO iso.ih_c2 VALUES (3, 'iso-a', 'ih_c2-a');
    INSERT INTO iso.big SELECT g, 'iso-a', repeat('a', 200) FROM generate_series(1, 4000) g;
    PERFORM iso.ctx('iso-b');
    INSERT INTO iso.deals VALUES (11, 'iso-b', 'b1'), (12, 'iso-b', 'b2');
    INSERT INTO iso.ih VALUES (11, 'iso-b', 'ih-b');
    INSERT INTO iso.ih_c1 VALUES (12, 'iso-b', 'ih_c1-b');
    INSERT INTO iso.ih_c2 VALUES (13, 'iso-b', 'ih_c2-b');
    INSERT INTO iso.big SELECT g, 'iso-b', repeat('b', 200) FROM generate_series(4001, 6000) g;
    PERFORM iso.ctx('iso-c');
    INSERT INTO iso.deals VALUES (21, 'iso-c', 'c1');
    INSERT INTO iso.pt VALUES (1, 'iso-c', 'pt-c1');
    PERFORM iso.ctx('9101');
    INSERT INTO iso.nums VALUES (1, 9101, 'secret of store 9101');
    PERFORM autora.clear_context();
END $$;
ANALYZE iso.deals;
ANALYZE iso.big;

-- views, functions and materialized views over the protected table
CREATE VIEW iso.v_owner AS SELECT * FROM iso.deals;
CREATE VIEW iso.v_invoker WITH (security_invoker = true) AS SELECT * FROM iso.deals;
ALTER VIEW iso.v_owner OWNER TO iso_owner;
ALTER VIEW iso.v_invoker OWNER TO iso_owner;
CREATE VIEW iso.v_superuser AS SELECT * FROM iso.deals;
CREATE FUNCTION iso.definer_ids() RETURNS text LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog AS $$ SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') FROM iso.deals $$;
ALTER FUNCTION iso.definer_ids() OWNER TO iso_owner;
CREATE MATERIALIZED VIEW iso.mv_owner AS SELECT * FROM iso.deals WITH NO DATA;
ALTER MATERIALIZED VIEW iso.mv_owner OWNER TO iso_owner;
CREATE MATERIALIZED VIEW iso.mv_superuser AS SELECT * FROM iso.deals;
GRANT SELECT ON iso.v_owner, iso.v_invoker, iso.v_superuser, iso.mv_owner, iso.mv_superuser
    TO iso_app, iso_app2;

SET ROLE iso_app;

-- ------------------------------------------------------------------ reads
SELECT is(iso.ctx('iso-a'), 'iso-a', 'honest: context for store iso-a');
SELECT is(iso.ids('iso.deals'), '1,2,3', 'honest: iso-a reads exactly its own deals');
SELECT is((SELECT count(*) FROM iso.deals WHERE tenant_id = 'iso-b'), 0::bigint,
    'WHERE tenant_id = iso-b returns nothing');
SELECT is((SELECT count(*) FROM iso.deals WHERE id IN (11, 12, 21)), 0::bigint,
    'selecting the other stores'' primary keys returns nothing');
SELECT is((SELECT count(*) FROM (SELECT id FROM iso.deals WHERE id = 11 FOR UPDATE) AS l), 0::bigint,
    'SELECT ... FOR UPDATE cannot lock another store''s row');
SELECT is((SELECT count(*) FROM iso.deals d1 JOIN iso.deals d2 ON d2.id <> d1.id), 6::bigint,
    'a self join only combines own rows (3 x 2)');

-- ------------------------------------------------------------------ writes
SELECT throws_ok($$INSERT INTO iso.deals VALUES (13, 'iso-b', 'planted')$$, '42501', NULL,
    'INSERT with another store''s tenant id: 42501');
SELECT iso.affected($$INSERT INTO iso.deals (id, v) VALUES (4, 'a4')$$) AS ins4 \gset
SELECT is(:'ins4' || ':' || (SELECT tenant_id FROM iso.deals WHERE id = 4), '1:iso-a',
    'honest: INSERT without a tenant id is stamped with the context tenant');
SELECT throws_ok($$UPDATE iso.deals SET tenant_id = 'iso-b' WHERE id = 1$$, '42501', NULL,
    'UPDATE moving an own row to another store: 42501');
SELECT is(iso.affected($$UPDATE iso.deals SET v = 'hacked' WHERE id IN (11, 12)$$), 0::bigint,
    'UPDATE of another store''s rows by key touches nothing');
SELECT is(iso.affected($$WITH u AS (UPDATE iso.deals SET v = 'hacked' WHERE tenant_id = 'iso-b' RETURNING 1)
                         SELECT * FROM u$$), 0::bigint,
    'data-modifying CTE on another store''s rows touches nothing');
SELECT is(iso.affected($$DELETE FROM iso.deals WHERE id IN (11, 12, 21)$$), 0::bigint,
    'DELETE of other stores'' rows by key touches nothing');
SELECT throws_ok($$INSERT INTO iso.deals VALUES (11, 'iso-a', 'x') ON CONFLICT (id) DO UPDATE SET v = 'hacked'$$,
    '42501', NULL, 'ON CONFLICT DO UPDATE on another store''s key: 42501, nothing updated');
SELECT throws_ok($$INSERT INTO iso.deals (id, v) VALUES (12, 'x') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v RETURNING *$$,
    '42501', NULL, 'ON CONFLICT DO UPDATE ... RETURNING on another store''s key: 42501, nothing returned');
SELECT is(iso.affected($$INSERT INTO iso.deals VALUES (11, 'iso-a', 'x') ON CONFLICT (id) DO NOTHING$$), 0::bigint,
    'ON CONFLICT DO NOTHING on another store''s key inserts and changes nothing');
SELECT is(iso.affected($$MERGE INTO iso.deals d USING (VALUES (11), (12)) s(id) ON d.id = s.id
                         WHEN MATCHED THEN UPDATE SET v = 'merged'$$), 0::bigint,
    'MERGE ... WHEN MATCHED UPDATE does not match another store''s rows');
SELECT is(iso.affected($$MERGE INTO iso.deals d USING (VALUES (11), (21)) s(id) ON d.id = s.id
                         WHEN MATCHED THEN DELETE$$), 0::bigint,
    'MERGE ... WHEN MATCHED DELETE does not match other stores'' rows');
SELECT throws_ok($$MERGE INTO iso.deals d USING (VALUES (11)) s(id) ON d.id = s.id
                   WHEN MATCHED THEN UPDATE SET v = 'merged' WHEN NOT MATCHED THEN INSERT VALUES (11, 'iso-a', 'merged')$$,
    NULL, NULL, 'MERGE falling through to INSERT on another store''s key fails (unique violation), changing nothing');
SELECT throws_ok($$MERGE INTO iso.deals d USING (VALUES (1)) s(id) ON d.id = s.id
                   WHEN MATCHED THEN UPDATE SET tenant_id = 'iso-b'$$, '42501', NULL,
    'MERGE moving an own row to another store: 42501');
SELECT throws_ok($$MERGE INTO iso.deals d USING (VALUES (30)) s(id) ON d.id = s.id
                   WHEN NOT MATCHED THEN INSERT VALUES (30, 'iso-b', 'merged')$$, '42501', NULL,
    'MERGE inserting a row for another store: 42501');
SELECT throws_ok('TRUNCATE iso.deals', '42501', NULL, 'TRUNCATE (which ignores RLS) is refused');
SELECT throws_ok('SET row_security = off; SELECT count(*) FROM iso.deals', '42501', NULL,
    'row_security = off does not switch policies off for the application role');
RESET ROLE;
SELECT is((SELECT string_agg(id || ':' || tenant_id || ':' || v, ',' ORDER BY id) FROM iso.deals WHERE tenant_id <> 'iso-a'),
    '11:iso-b:b1,12:iso-b:b2,21:iso-c:c1',
    'after every attempt the other stores'' rows are exactly as they were');
SET ROLE iso_app;

-- ------------------------------------------------------------------ leaks through functions and statistics
CREATE TABLE iso.seen (v text);
CREATE FUNCTION iso.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001
AS $$ BEGIN INSERT INTO iso.seen VALUES ($1); RETURN true; END $$;
SELECT iso.ctx('iso-a') AS peek_ctx \gset
SELECT count(*) AS peek_count FROM iso.deals WHERE iso.peek(v) \gset
SELECT is((SELECT string_agg(v, ',' ORDER BY v) FROM iso.seen), 'a1,a2,a3,a4',
    'a cheap non-leakproof function in WHERE only ever sees own rows');
SELECT is((SELECT count(*) FROM pg_stats WHERE schemaname = 'iso' AND tablename = 'deals'), 0::bigint,
    'pg_stats hides the protected table''s column statistics from the application role');
SELECT throws_ok('SELECT count(*) FROM autora.ledger', '42501', NULL,
    'the ledger (every store''s before/after images) is not readable by the application role');

-- ------------------------------------------------------------------ views and SECURITY DEFINER
SELECT is(iso.ids('iso.v_owner'), '1,2,3,4', 'view owned by the (non-bypass) table owner: own rows only');
SELECT is(iso.ids('iso.v_invoker'), '1,2,3,4', 'security_invoker view: own rows only');
SELECT is(iso.definer_ids(), '1,2,3,4', 'SECURITY DEFINER function owned by a non-bypass role: own rows only');
SELECT is(iso.ctx('iso-b') || ':' || iso.ids('iso.v_owner') || ':' || iso.definer_ids(), 'iso-b:11,12:11,12',
    'the same view and function follow a switch to iso-b');
SELECT lives_ok('SELECT autora.clear_context()', 'context cleared');
SELECT throws_ok('SELECT count(*) FROM iso.v_owner', 'ZA001', NULL,
    'owner-rights view without a context: ZA001');
SELECT throws_ok('SELECT count(*) FROM iso.v_invoker', 'ZA001', NULL,
    'security_invoker view without a context: ZA001');
SELECT throws_ok('SELECT iso.definer_ids()', 'ZA001', NULL, 'SECURITY DEFINER function without a context: ZA001');
SELECT is((SELECT count(*) FROM iso.v_superuser), 7::bigint,
    'DOCUMENTED: a view owned by a superuser runs with BYPASSRLS rights and shows every store, even without a context');

-- ------------------------------------------------------------------ partitions
SELECT is(iso.ctx('iso-a'), 'iso-a', 'context iso-a again');
SELECT is(iso.ids('iso.pt'), '1', 'honest: the partitioned root shows iso-a''s row only');
SELECT is((SELECT count(*) FROM iso.pt_b), 0::bigint,
    'partition attached after protect, queried directly: no iso-b rows');
SELECT is((SELECT count(*) FROM iso.pt_c), 0::bigint,
    'partition created after protect, queried directly: no iso-c rows');
SELECT throws_ok($$INSERT INTO iso.pt_b VALUES (2, 'iso-b', 'planted')$$, '42501', NULL,
    'INSERT straight into another store''s partition: 42501');
SELECT is(iso.affected('DELETE FROM iso.pt_c'), 0::bigint, 'DELETE straight from another store''s partition: nothing');
SELECT lives_ok('SELECT autora.clear_context()', 'context cleared');
SELECT throws_ok('SELECT count(*) FROM iso.pt_c', 'ZA001', NULL, 'a partition queried without a context: ZA001');

-- ------------------------------------------------------------------ inheritance
SELECT is(iso.ctx('iso-a'), 'iso-a', 'context iso-a again');
SELECT is(iso.ids('iso.ih'), '1,2,3', 'honest: the parent shows iso-a''s rows of parent and children');
SELECT is((SELECT count(*) FROM iso.ih_c1 WHERE tenant_id = 'iso-b'), 0::bigint,
    'child inheriting before protect, queried directly: no iso-b rows');
RESET ROLE;
SELECT is((SELECT count(*) FROM autora.ledger WHERE table_schema = 'iso' AND table_name = 'ih' AND op = 'INSERT'
              AND metadata->'partition' = '{"schema": "iso", "name": "ih_c1"}'),
    2::bigint, 'writes to a child table that protect() put under RLS are captured in the ledger, under the parent''s name');
SELECT is((SELECT relforcerowsecurity FROM pg_class WHERE oid = 'iso.ih_c2'::regclass), true,
    'a plain inheritance child created after protect() of its parent is protected too');
SET ROLE iso_app;
SELECT is((SELECT count(*) FROM iso.ih_c2 WHERE tenant_id = 'iso-b'), 0::bigint,
    '... so queried directly it shows no other store''s row');

-- ------------------------------------------------------------------ materialized views
SELECT lives_ok('SELECT autora.clear_context()', 'context cleared');
RESET ROLE;
SET ROLE iso_owner;
SELECT throws_ok('REFRESH MATERIALIZED VIEW iso.mv_owner', 'ZA001', NULL,
    'REFRESH of a materialized view owned by a non-bypass role without a context: ZA001');
SELECT is(iso.ctx('iso-a') || ':' || iso.try('REFRESH MATERIALIZED VIEW iso.mv_owner'), 'iso-a:ok',
    'REFRESH under iso-a''s context');
SET ROLE iso_app;
SELECT is(iso.ctx('iso-b') || ':' || iso.ids('iso.mv_owner'), 'iso-b:1,2,3,4',
    'DOCUMENTED: a materialized view holds the refresher''s rows and shows them to every reader (iso-b sees iso-a''s)');
SELECT is((SELECT count(*) FROM iso.mv_superuser), 6::bigint,
    'DOCUMENTED: a materialized view created by a superuser holds every store''s rows');

-- ------------------------------------------------------------------ table owner, BYPASSRLS, SET ROLE
RESET ROLE;
SET ROLE iso_owner;
SELECT is(iso.ctx('iso-a') || ':' || iso.ids('iso.deals'), 'iso-a:1,2,3,4',
    'the table owner is subject to FORCE ROW LEVEL SECURITY');
SELECT throws_ok('ALTER TABLE iso.deals NO FORCE ROW LEVEL SECURITY', '42501', NULL,
    'the owner cannot switch FORCE off');
SELECT throws_ok('ALTER TABLE iso.deals DISABLE ROW LEVEL SECURITY', '42501', NULL,
    'the owner cannot disable row level security');
SELECT throws_ok('DROP POLICY autora_read ON iso.deals', '42501', NULL, 'the owner cannot drop autora_read');
SELECT throws_ok('ALTER POLICY autora_read ON iso.deals USING (true)', '42501', NULL,
    'the owner cannot rewrite autora_read');
SELECT is(iso.try('CREATE POLICY iso_open ON iso.deals AS PERMISSIVE FOR SELECT USING (true)') || ':' ||
          iso.ids('iso.deals'), 'ok:1,2,3,4',
    'a permissive USING (true) policy added by the owner does not widen the restrictive autora policies');
SELECT lives_ok('SELECT autora.clear_context()', 'context cleared');
SELECT throws_ok('SELECT count(*) FROM iso.deals', 'ZA001', NULL, 'the owner without a context: ZA001');
RESET ROLE;
SET ROLE iso_bypass;
SELECT is((SELECT count(*) FROM iso.deals), 7::bigint,
    'DOCUMENTED: a BYPASSRLS role reads every store without a context');
RESET ROLE;
SET ROLE iso_app;
SELECT is(iso.ctx('iso-a'), 'iso-a', 'context iso-a again');
SET ROLE iso_app2;
SELECT is(autora.tenant() || ':' || iso.ids('iso.deals'), 'iso-a:1,2,3,4',
    'SET ROLE to another application role keeps the session''s context and its rows');
SET ROLE iso_app;

-- ------------------------------------------------------------------ plans across tenant switches
PREPARE iso_ids AS SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') AS ids FROM iso.deals;
PREPARE iso_gt(int) AS SELECT count(*) AS n FROM iso.deals WHERE id > $1;
CREATE FUNCTION iso.plpgsql_ids() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') INTO r FROM iso.deals;
    RETURN r;
END $$;
-- run each several times under iso-a so the plan cache settles on a generic plan
SELECT iso.ctx('iso-a') AS p1 \gset
SELECT iso.plpgsql_ids() AS f1, iso.plpgsql_ids() AS f2, iso.plpgsql_ids() AS f3,
       iso.plpgsql_ids() AS f4, iso.plpgsql_ids() AS f5, iso.plpgsql_ids() AS f6 \gset
EXECUTE iso_gt(0) \gset a1_
EXECUTE iso_gt(0) \gset a2_
EXECUTE iso_gt(0) \gset a3_
EXECUTE iso_gt(0) \gset a4_
EXECUTE iso_gt(0) \gset a5_
EXECUTE iso_gt(0) \gset a6_
EXECUTE iso_ids \gset a_
SELECT iso.ctx('iso-b') AS p2 \gset
EXECUTE iso_ids \gset b_
EXECUTE iso_gt(0) \gset b_
SELECT is(:'a_ids' || '/' || :'a6_n' || ' then ' || :'b_ids' || '/' || :'b_n', '1,2,3,4/4 then 11,12/2',
    'prepared statements re-apply the policies after a tenant switch');
SELECT is(iso.plpgsql_ids(), '11,12', 'a PL/pgSQL cached plan follows the switch to iso-b');
SET plan_cache_mode = force_generic_plan;
PREPARE iso_generic(int) AS SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') AS ids FROM iso.deals WHERE id > $1;
EXECUTE iso_generic(0) \gset gb_
SELECT iso.ctx('iso-a') AS p3 \gset
EXECUTE iso_generic(0) \gset ga_
SELECT is(:'gb_ids' || ' then ' || :'ga_ids' || ' / ' || iso.plpgsql_ids(), '11,12 then 1,2,3,4 / 1,2,3,4',
    'force_generic_plan: prepared statement and PL/pgSQL follow the switch back to iso-a');
SELECT lives_ok('SELECT autora.clear_context()', 'context cleared');
SELECT is(iso.try('EXECUTE iso_generic(0)') || ':' || iso.try('SELECT iso.plpgsql_ids()'), 'ZA001:ZA001',
    'cached generic plans without a context: ZA001');
RESET plan_cache_mode;
DEALLOCATE iso_ids;
DEALLOCATE iso_gt;
DEALLOCATE iso_generic;

-- ------------------------------------------------------------------ parallel query
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT iso.ctx('iso-a') AS par_ctx \gset
SELECT count(*) AS n FROM iso.big \gset par_all_
SELECT count(*) AS n FROM iso.big WHERE tenant_id = autora.tenant() \gset par_own_
SELECT cmp_ok(iso.workers_launched('SELECT count(*) FROM iso.big WHERE tenant_id = autora.tenant()'), '>', 0,
    'the parallel plan really launched workers');
SELECT is(:'par_all_n' || '/' || :'par_own_n', '4000/4000',
    'parallel workers see the leader''s context: count equals iso-a''s rows, with and without autora.tenant() in workers');
SELECT iso.ctx('iso-b') AS par_ctx_b \gset
SELECT count(*) AS n FROM iso.big WHERE tenant_id = autora.tenant() OR tenant_id = 'iso-a' \gset par_b_
SELECT is(:'par_b_n'::text, '2000', 'parallel scan after switching to iso-b: iso-b''s rows only');
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
RESET enable_indexscan;
RESET enable_bitmapscan;

-- ------------------------------------------------------------------ scopes
SELECT is(iso.ctx('iso-a', 'group_admin') || ':' || iso.ids('iso.deals'), 'iso-a:1,2,3,4,11,12',
    'honest: group admin of iso-g1 reads iso-a and iso-b');
SELECT is((SELECT count(*) FROM iso.deals WHERE tenant_id = 'iso-c'), 0::bigint,
    'group admin of iso-g1 does not see iso-c (group iso-g2)');
SELECT throws_ok($$INSERT INTO iso.deals VALUES (14, 'iso-b', 'by group admin')$$, '42501', NULL,
    'group admin writes only its context store, not another store of the group');
SELECT is(iso.affected($$UPDATE iso.deals SET v = 'by group admin' WHERE id = 11$$), 0::bigint,
    'group admin cannot update another store of the group');
SELECT is(iso.ctx(NULL, 'platform_owner') || ':' || (SELECT count(*) FROM iso.deals), '<none>:7',
    'honest: platform scope reads every store');

-- ------------------------------------------------------------------ typed tenant columns
SELECT is(iso.ctx('9101') || ':' || iso.ids('iso.nums'), '9101:1', 'honest: store 9101 reads its bigint-keyed row');
SELECT is(iso.ctx('09101') || ':' || iso.ids('iso.nums'), '09101:-',
    'store ''09101'' does not see store ''9101''''s rows in a bigint tenant column');

SELECT * FROM finish();
ROLLBACK;
