-- capture_matrix.sql: tenant stamping and capture for each supported tenant
-- column type (text, uuid, integer, bigint): a NULL tenant is stamped from the
-- context, a matching one is accepted, another tenant's is refused, a row
-- cannot move to another tenant; and the entries carry the right op, changed
-- columns, before and after (typed as to_jsonb would type them, excluded
-- columns absent).  Writes run as an application role (subject to row level
-- security), checks as superuser.
BEGIN;
SELECT plan(97);

-- exec_as(role, sql): run sql as role and come back; an error propagates
-- (and throws_ok / lives_ok roll it back, role switch included)
CREATE FUNCTION pg_temp.exec_as(r name, sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE sql;
    RESET ROLE;
END
$$;

-- as_app(sql): the statement that runs sql as the application role
CREATE FUNCTION pg_temp.as_app(sql text) RETURNS text LANGUAGE sql
RETURN format('SELECT pg_temp.exec_as(%L, %L)', 'tap_mx_app', sql);

CREATE ROLE tap_mx_owner NOLOGIN;
CREATE ROLE tap_mx_app NOLOGIN IN ROLE autora_trusted;

CREATE TABLE mx_text   (id integer PRIMARY KEY, tenant_id text,    v text, secret text);
CREATE TABLE mx_uuid   (id integer PRIMARY KEY, tenant_id uuid,    v text, secret text);
CREATE TABLE mx_int    (id integer PRIMARY KEY, store     integer, v text, secret text);
CREATE TABLE mx_bigint (id integer PRIMARY KEY, store     bigint,  v text, secret text);
ALTER TABLE mx_text OWNER TO tap_mx_owner;
ALTER TABLE mx_uuid OWNER TO tap_mx_owner;
ALTER TABLE mx_int OWNER TO tap_mx_owner;
ALTER TABLE mx_bigint OWNER TO tap_mx_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON mx_text, mx_uuid, mx_int, mx_bigint TO tap_mx_app;

DO $$
BEGIN
    PERFORM autora.add_tenant(t) FROM unnest(ARRAY['store-a', 'store-b',
        'a0a0a0a0-0000-4000-8000-00000000000a', 'b0b0b0b0-0000-4000-8000-00000000000b',
        '501', '502', '9000000001', '9000000002']) AS t;
    PERFORM autora.protect('mx_text', exclude_columns => '{secret}');
    PERFORM autora.protect('mx_uuid', exclude_columns => '{secret}');
    PERFORM autora.protect('mx_int', 'store', exclude_columns => '{secret}');
    PERFORM autora.protect('mx_bigint', 'store', exclude_columns => '{secret}');
END
$$;

-- The matrix for one table: 20 assertions.
CREATE FUNCTION pg_temp.matrix(tbl regclass, col name, typ text, a text, b text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    mark bigint := (SELECT coalesce(max(id), 0) FROM autora.ledger);
    t text := tbl::text;
    c text := quote_ident(col);
    lbl text := format('%s (%s): ', t, typ);
    stamped text;
    entries autora.ledger[];
BEGIN
    PERFORM autora.set_context_trusted(a, 'u-' || t, 'sales');

    RETURN NEXT lives_ok(pg_temp.as_app(format('INSERT INTO %s (id, v, secret) VALUES (1, ''one'', ''s1'')', t)),
        lbl || 'insert with a NULL tenant is accepted');
    EXECUTE format('SELECT %s::text FROM %s WHERE id = 1', c, t) INTO stamped;
    RETURN NEXT is(stamped, a, lbl || 'the NULL tenant is stamped from the context');
    RETURN NEXT lives_ok(pg_temp.as_app(format('INSERT INTO %s (id, %s, v) VALUES (2, %L, ''two'')', t, c, a)),
        lbl || 'insert with the context''s tenant is accepted');
    RETURN NEXT throws_ok(pg_temp.as_app(format('INSERT INTO %s (id, %s, v) VALUES (3, %L, ''three'')', t, c, b)),
        '42501', NULL, lbl || 'insert with another tenant is refused');
    RETURN NEXT throws_ok(pg_temp.as_app(format('UPDATE %s SET %s = %L WHERE id = 1', t, c, b)),
        '42501', NULL, lbl || 'moving a row to another tenant is refused');
    RETURN NEXT throws_ok(pg_temp.as_app(format('UPDATE %s SET %s = NULL, v = ''orphan'' WHERE id = 1', t, c)),
        '42501', NULL, lbl || 'clearing the tenant of a row is refused');
    RETURN NEXT lives_ok(pg_temp.as_app(format('UPDATE %s SET v = ''uno'' WHERE id = 1', t)),
        lbl || 'update of another column is accepted');
    RETURN NEXT lives_ok(pg_temp.as_app(format('UPDATE %s SET secret = ''s2'' WHERE id = 1', t)),
        lbl || 'update of an excluded column only is accepted');
    RETURN NEXT lives_ok(pg_temp.as_app(format('UPDATE %s SET v = v, %s = %s WHERE id = 2', t, c, c)),
        lbl || 'no-op update is accepted');
    RETURN NEXT lives_ok(pg_temp.as_app(format('DELETE FROM %s WHERE id = 2', t)),
        lbl || 'delete is accepted');
    EXECUTE format('SELECT count(*)::text FROM %s', t) INTO stamped;
    RETURN NEXT is(stamped, '1', lbl || 'one row is left');

    SELECT array_agg(l ORDER BY l.id) INTO entries
      FROM autora.ledger l WHERE l.id > mark AND l.table_name = t;
    RETURN NEXT is((SELECT array_agg(e.op ORDER BY e.id) FROM unnest(entries) e),
                   ARRAY['INSERT', 'INSERT', 'UPDATE', 'DELETE'],
                   lbl || 'entries: two INSERTs, one UPDATE, one DELETE; refused and no-op statements left none');
    RETURN NEXT ok((SELECT bool_and(e.tenant_id = a) FROM unnest(entries) e),
                   lbl || 'every entry is in the context tenant''s chain');
    RETURN NEXT is(entries[1].after,
                   jsonb_build_object('id', 1, col, to_jsonb(a), 'v', 'one')
                   || (SELECT CASE WHEN typ IN ('integer', 'bigint')
                                   THEN jsonb_build_object(col, a::bigint) ELSE '{}' END),
                   lbl || 'INSERT after: the row as jsonb, tenant typed, excluded column absent');
    RETURN NEXT ok(entries[1].before IS NULL AND entries[1].changed IS NULL,
                   lbl || 'INSERT has no before and no changed');
    RETURN NEXT is(entries[1].pk, '{"id": 1}'::jsonb, lbl || 'pk is the primary key as jsonb');
    RETURN NEXT is(entries[3].changed, ARRAY['v'], lbl || 'UPDATE changed lists only v');
    RETURN NEXT ok(entries[3].before->>'v' = 'one' AND entries[3].after->>'v' = 'uno'
                   AND entries[3].pk = '{"id": 1}',
                   lbl || 'UPDATE before and after hold the old and new values');
    RETURN NEXT ok(entries[4].after IS NULL AND entries[4].before->>'v' = 'two'
                   AND entries[4].pk = '{"id": 2}' AND entries[4].changed IS NULL,
                   lbl || 'DELETE has the old row as before and no after');
    RETURN NEXT ok((SELECT bool_and(NOT coalesce(e.before ? 'secret', false)
                                    AND NOT coalesce(e.after ? 'secret', false)
                                    AND e.actor_id = 'u-' || t AND e.actor_role = 'sales'
                                    AND e.db_current_user = 'tap_mx_app'
                                    AND length(e.hash) = 32)
                      FROM unnest(entries) e),
                   lbl || 'no entry holds the excluded column; actor, role and database role recorded');
END
$$;

SELECT * FROM pg_temp.matrix('mx_text', 'tenant_id', 'text', 'store-a', 'store-b');
SELECT * FROM pg_temp.matrix('mx_uuid', 'tenant_id', 'uuid',
                             'a0a0a0a0-0000-4000-8000-00000000000a', 'b0b0b0b0-0000-4000-8000-00000000000b');
SELECT * FROM pg_temp.matrix('mx_int', 'store', 'integer', '501', '502');
SELECT * FROM pg_temp.matrix('mx_bigint', 'store', 'bigint', '9000000001', '9000000002');

-- across tables and types
SELECT is((SELECT count(DISTINCT tenant_id) FROM autora.ledger
            WHERE table_name IN ('mx_text', 'mx_uuid', 'mx_int', 'mx_bigint')),
          4::bigint, 'each table''s entries went to its own tenant''s chain');
SELECT is((SELECT array_agg(DISTINCT jsonb_typeof(after->'store') ORDER BY jsonb_typeof(after->'store'))
             FROM autora.ledger WHERE table_name IN ('mx_int', 'mx_bigint') AND after ? 'store'),
          ARRAY['number'], 'integer and bigint tenants are recorded as JSON numbers');
SELECT is((SELECT array_agg(DISTINCT jsonb_typeof(after->'tenant_id') ORDER BY jsonb_typeof(after->'tenant_id'))
             FROM autora.ledger WHERE table_name IN ('mx_text', 'mx_uuid') AND after ? 'tenant_id'),
          ARRAY['string'], 'text and uuid tenants are recorded as JSON strings');
-- a context tenant that is not valid for the column type is refused, not stamped
DO $$ BEGIN PERFORM autora.set_context_trusted('store-a', 'u-x', 'sales'); END $$;
SELECT throws_ok(pg_temp.as_app('INSERT INTO mx_int (id, v) VALUES (9, ''x'')'),
                 '42501', NULL, 'a non-integer context tenant cannot be stamped into an integer column');
SELECT throws_ok(pg_temp.as_app('INSERT INTO mx_uuid (id, v) VALUES (9, ''x'')'),
                 '42501', NULL, 'a non-uuid context tenant cannot be stamped into a uuid column');
-- a tenant id registered in another spelling of a uuid (upper case) is refused:
-- only the column type's own text form counts, or 'C0C0...' and 'c0c0...'
-- would be two tenants sharing one column value
CREATE TABLE mx_uuid2 (id integer PRIMARY KEY, tenant_id uuid, v text);
GRANT SELECT, INSERT, UPDATE, DELETE ON mx_uuid2 TO tap_mx_app;
DO $$
BEGIN
    PERFORM autora.add_tenant('C0C0C0C0-0000-4000-8000-00000000000C');
    PERFORM autora.protect('mx_uuid2');
    PERFORM autora.set_context_trusted('C0C0C0C0-0000-4000-8000-00000000000C', 'u-c', 'sales');
END
$$;
SELECT throws_ok(pg_temp.as_app('INSERT INTO mx_uuid2 (id, v) VALUES (1, ''x'')'),
                 '42501', NULL, 'an upper-case uuid tenant is not stamped into a uuid column');
SELECT throws_ok(pg_temp.as_app('INSERT INTO mx_uuid2 (id, tenant_id, v) VALUES (2, ''C0C0C0C0-0000-4000-8000-00000000000C'', ''y'')'),
                 '42501', NULL, 'an upper-case uuid tenant given explicitly does not match the stored form');
SELECT is((SELECT count(*) FROM autora.ledger WHERE table_name = 'mx_uuid2' AND op = 'INSERT'),
          0::bigint, 'nothing was written or captured');
-- a statement that fails after some of its rows were captured leaves no
-- entry behind, and the next statement is captured normally; bulk statements
-- get one entry per row
CREATE FUNCTION mx_fail_21() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 21 THEN
        RAISE EXCEPTION 'row 21 is refused by an application trigger';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER zzz_fail_21 AFTER INSERT ON mx_text FOR EACH ROW EXECUTE FUNCTION mx_fail_21();
DO $$ BEGIN PERFORM autora.set_context_trusted('store-a', 'u-bulk', 'sales'); END $$;
SELECT throws_ok(pg_temp.as_app('INSERT INTO mx_text (id, v) VALUES (20, ''a''), (21, ''b'')'),
                 'P0001', NULL, 'an application trigger fails the statement after row 20 was captured');
SELECT lives_ok(pg_temp.as_app('INSERT INTO mx_text (id, v) VALUES (30, ''c'')'),
                'the next statement succeeds');
SELECT is((SELECT array_agg(pk->>'id' ORDER BY id) FROM autora.ledger
            WHERE table_name = 'mx_text' AND (pk->>'id')::int BETWEEN 20 AND 30),
          ARRAY['30'], 'no entry of the failed statement survives; the next one is captured');
SELECT lives_ok(pg_temp.as_app('INSERT INTO mx_text (id, v) SELECT g, ''bulk'' FROM generate_series(1000, 2999) g'),
                'bulk insert of 2000 rows');
SELECT lives_ok(pg_temp.as_app('UPDATE mx_text SET v = ''bulk2'' WHERE id BETWEEN 1000 AND 2999'),
                'bulk update of 2000 rows');
SELECT results_eq(
    $$SELECT op, count(*), count(DISTINCT pk), count(DISTINCT seq), bool_and(length(hash) = 32)
        FROM autora.ledger WHERE table_name = 'mx_text' AND (pk->>'id')::int BETWEEN 1000 AND 2999
       GROUP BY op ORDER BY op$$,
    $$VALUES ('INSERT', 2000::bigint, 2000::bigint, 2000::bigint, true),
             ('UPDATE', 2000::bigint, 2000::bigint, 2000::bigint, true)$$,
    'one entry per row of each bulk statement, each with its own key, seq and hash');
SELECT ok((SELECT bool_and(after->>'v' = 'bulk2' AND before->>'v' = 'bulk' AND changed = '{v}')
             FROM autora.ledger WHERE table_name = 'mx_text' AND op = 'UPDATE'
              AND (pk->>'id')::int BETWEEN 1000 AND 2999),
          'every bulk UPDATE entry has the right before, after and changed');
-- with no context at all, the application role is refused outright
DO $$ BEGIN PERFORM autora.clear_context(); END $$;
SELECT throws_ok(pg_temp.as_app('INSERT INTO mx_text (id, v) VALUES (9, ''x'')'),
                 'ZA001', NULL, 'no context: insert is refused with ZA001');
SELECT throws_ok(pg_temp.as_app('UPDATE mx_text SET v = ''x'''),
                 'ZA001', NULL, 'no context: update is refused with ZA001');

SELECT * FROM finish();
ROLLBACK;
