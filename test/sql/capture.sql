--
-- capture: protected tables record every row change in autora.ledger.
-- A dealership schema owned by an ordinary role, written by the application's
-- service role (a member of autora_trusted), protected by an autora_admin member.
-- Ids, xids, timestamps and hashes are never printed, only checked.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset null '(null)'
SET application_name = 'dealer-app';
SET TimeZone = 'America/New_York';

CREATE ROLE regress_cap_owner NOLOGIN;
CREATE ROLE regress_cap_app NOLOGIN IN ROLE autora_trusted;
CREATE ROLE regress_cap_admin NOLOGIN IN ROLE autora_admin;
CREATE SCHEMA dealer AUTHORIZATION regress_cap_owner;
GRANT USAGE ON SCHEMA dealer TO regress_cap_app, regress_cap_admin;

SET ROLE regress_cap_admin;
SELECT autora.add_tenant('101', 'north', 'Main St Motors');
SELECT autora.add_tenant('102', 'north', 'Harbor Auto');
SELECT autora.add_tenant('5a1c9e2e-1d1f-4c43-9a57-0c9a2b1f7e01', 'south', 'Lakeside Autos');
RESET ROLE;
SELECT tenant_id, group_id, name, created_at IS NOT NULL AS has_created_at
  FROM autora.tenants ORDER BY tenant_id;

SET ROLE regress_cap_owner;
CREATE TABLE dealer.deals (
    id         bigserial PRIMARY KEY,
    tenant_id  text,
    customer   text NOT NULL,
    email      text,
    vin        text,
    price      numeric(12,2),
    status     text NOT NULL DEFAULT 'open',
    notes      text,
    updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
-- composite primary key, uuid tenant column
CREATE TABLE dealer.inventory (
    tenant_id  uuid,
    stock_no   integer,
    vin        text NOT NULL,
    list_price numeric(12,2),
    PRIMARY KEY (tenant_id, stock_no)
);
-- bigint tenant column with another name, a timestamptz column
CREATE TABLE dealer.appointments (
    id        integer PRIMARY KEY,
    store_id  bigint,
    starts_at timestamptz NOT NULL,
    kind      text NOT NULL
);
-- integer tenant column
CREATE TABLE dealer.test_drives (
    id       integer PRIMARY KEY,
    store    integer,
    vin      text NOT NULL,
    returned boolean NOT NULL DEFAULT false
);
GRANT SELECT, INSERT, UPDATE, DELETE
   ON dealer.deals, dealer.inventory, dealer.appointments, dealer.test_drives
   TO regress_cap_app;
GRANT USAGE ON SEQUENCE dealer.deals_id_seq TO regress_cap_app;
RESET ROLE;

SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset

-- the application role writes protected tables but cannot read the ledger
SET ROLE regress_cap_app;
SELECT count(*) FROM autora.ledger;
RESET ROLE;

-- protect, as a member of autora_admin
SET ROLE regress_cap_admin;
SELECT autora.protect('dealer.deals', pii_columns => '{email}', exclude_columns => '{updated_at}');
SELECT autora.protect('dealer.inventory');
SELECT autora.protect('dealer.appointments', 'store_id');
SELECT autora.protect('dealer.test_drives', tenant_column => 'store');
SELECT table_schema, table_name, tenant_column, pii_columns, exclude_columns,
       capture_enabled, protected_at IS NOT NULL AS has_protected_at, protected_by
  FROM autora.protected_tables WHERE table_schema = 'dealer' ORDER BY table_name;
RESET ROLE;

-- the three documented triggers on each, ENABLE ALWAYS
SELECT c.relname, t.tgname, t.tgenabled, t.tgtype
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'dealer'::regnamespace AND NOT t.tgisinternal
   AND t.tgname IN ('zz_autora_stamp_tenant', 'autora_capture', 'autora_truncate')
 ORDER BY c.relname, t.tgname;
-- and every trigger running an autora function is ENABLE ALWAYS
SELECT bool_and(t.tgenabled = 'A') AS all_always
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = 'autora'::regnamespace;

-- each protect is an EVENT entry of the platform chain (tenant_id NULL); its
-- metadata names the table's relid too (shown as whether it is the table's)
SELECT op, tenant_id, event, entity_type, entity_id, metadata - 'relid' AS metadata,
       (metadata->>'relid')::oid = entity_id::regclass AS relid_is_the_table,
       table_name, pk, before, after, actor_id, db_session_user
  FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- The context set_context_trusted returns and installs: every member can be
-- read (the object is built in jsonb's key order, not sorted), and the
-- setting holds its text
--
BEGIN;
SET LOCAL ROLE regress_cap_app;
SELECT ctx::text AS context, ctx = ctx::text::jsonb AS same_when_reparsed,
       current_setting('autora.context') = ctx::text AS setting_holds_it,
       ARRAY[ctx->>'ip', ctx->>'ua', ctx->>'req', ctx->>'sub', ctx->>'via', ctx->>'role',
             ctx->>'email', ctx->>'group', ctx->>'scope', ctx->>'method', ctx->>'tenant',
             ctx->>'endpoint'] AS members
  FROM autora.set_context_trusted('101', 'u-alice', 'sales',
         '{"ip": "203.0.113.7", "ua": "Mozilla/5.0 (DealerApp)", "endpoint": "/api/deals",
           "method": "POST", "req": 1001, "email": "alice@mainst.example"}') AS ctx \gx
ROLLBACK;

--
-- INSERT, with the tenant stamped from the context
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
BEGIN;
SET LOCAL ROLE regress_cap_app;
SELECT autora.set_context_trusted('101', 'u-alice', 'sales',
         '{"ip": "203.0.113.7", "ua": "Mozilla/5.0 (DealerApp)", "endpoint": "/api/deals",
           "method": "POST", "req": "req-0001", "email": "alice@mainst.example"}') IS NOT NULL AS context_set;
INSERT INTO dealer.deals (customer, email, vin, price, notes)
VALUES ('Ada Lovelace', 'ada@example.com', '1HGCM82633A004352', 23450.00, 'trade-in: 2012 Civic')
RETURNING id, tenant_id, customer, status;
RESET ROLE;
\x on
SELECT format, op, tenant_id, table_schema, table_name, pk, after - 'email' AS after_without_email,
       before, changed, actor_id, actor_role, db_session_user, db_current_user, client_addr,
       application_name, user_agent, endpoint, method, request_id, support_session,
       event, entity_type, entity_id, metadata
  FROM autora.ledger WHERE id > :mark ORDER BY id;
\x off
SELECT xid = pg_current_xact_id()::text::bigint AS xid_is_this_transaction,
       ts IS NOT NULL AS has_ts, ts >= stmt_ts AS ts_not_before_statement,
       stmt_ts >= transaction_timestamp() AS stmt_ts_in_transaction,
       ts <= clock_timestamp() AS ts_not_in_future,
       length(hash) AS hash_length,
       after ? 'email' AS email_recorded, after->>'email' ~ '^pii:[A-Za-z0-9_-]{22}$' AS email_committed,
       position('ada@example.com' IN after::text) = 0 AS no_clear_email,
       NOT (after ? 'updated_at') AS updated_at_excluded
  FROM autora.ledger WHERE id > :mark;
COMMIT;
-- the clear PII value is kept in the vault, beside the entry, with the
-- entry's random salt
SELECT v.tenant_id, v.clear, length(v.salt) AS salt_bytes
  FROM autora.pii_vault v JOIN autora.ledger l ON l.id = v.entry_id
 WHERE l.id > :mark;
-- the commitment is the first 128 bits of HMAC-SHA256 (RFC 2104) of the
-- value's text under that salt, base64url: recomputed here with pgcrypto
CREATE EXTENSION pgcrypto;
CREATE FUNCTION pg_temp.commitment(value text, salt bytea) RETURNS text LANGUAGE sql AS $$
    SELECT 'pii:' || rtrim(translate(encode(substr(hmac(convert_to(value, 'UTF8'), salt, 'sha256'), 1, 16),
                                            'base64'), '+/', '-_'), '=') $$;
SELECT l.after->>'email' = pg_temp.commitment('ada@example.com', v.salt) AS commitment_opens
  FROM autora.ledger l JOIN autora.pii_vault v ON v.entry_id = l.id WHERE l.id > :mark;

--
-- UPDATE (format 2): before and after hold only the changed columns;
-- excluded columns never appear
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
SELECT autora.set_context_trusted('101', 'u-bob', 'dealer_admin', '{"ip": "2001:db8::5", "req": "req-0002"}',
                                  is_local => false) IS NOT NULL AS context_set;
UPDATE dealer.deals SET price = 22999.00, status = 'negotiating', updated_at = '2024-02-01 10:00:00+00'
 WHERE id = 1;
RESET ROLE;
SELECT op, tenant_id, pk, changed, before - 'email' AS before, after - 'email' AS after,
       NOT (before ? 'email' OR after ? 'email') AS unchanged_email_absent,
       actor_id, actor_role, client_addr, request_id, user_agent, endpoint, method, db_current_user
  FROM autora.ledger WHERE id > :mark ORDER BY id;
-- an UPDATE that leaves the PII columns alone keeps no clear value: the
-- entry that set them (the INSERT) has it
SELECT count(*) AS vault_rows FROM autora.pii_vault WHERE entry_id > :mark;
-- an UPDATE of a PII column keeps its clear values before and after
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
UPDATE dealer.deals SET email = 'ada@lovelace.example' WHERE id = 1;
RESET ROLE;
SELECT l.changed, before->>'email' <> after->>'email' AS email_digest_changed, v.clear
  FROM autora.ledger l LEFT JOIN autora.pii_vault v ON v.entry_id = l.id WHERE l.id > :mark;
-- a no-op UPDATE and an UPDATE of only an excluded column write nothing
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
UPDATE dealer.deals SET status = status, price = 22999 WHERE id = 1;
UPDATE dealer.deals SET updated_at = '2024-02-02 10:00:00+00' WHERE id = 1;
RESET ROLE;
SELECT count(*) AS entries_written FROM autora.ledger WHERE id > :mark;
-- NULL to a value and a value to NULL are changes
SET ROLE regress_cap_app;
UPDATE dealer.deals SET notes = NULL, vin = NULL WHERE id = 1;
UPDATE dealer.deals SET vin = '1HGCM82633A004352' WHERE id = 1;
RESET ROLE;
SELECT op, changed, before->'notes' AS notes_before, after->'notes' AS notes_after,
       before->'vin' AS vin_before, after->'vin' AS vin_after
  FROM autora.ledger WHERE id > :mark ORDER BY id;

-- with autora.skip_noop_updates off (a superuser setting) a no-op UPDATE is
-- recorded, with an empty list of changed columns
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
SET autora.skip_noop_updates = off;
\echo :SQLSTATE
RESET ROLE;
SET autora.skip_noop_updates = off;
UPDATE dealer.deals SET status = status WHERE id = 1;
RESET autora.skip_noop_updates;
SELECT op, changed, before = after AS same_image, actor_id FROM autora.ledger WHERE id > :mark;

-- an explicit tenant equal to the context's is accepted
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
INSERT INTO dealer.deals (tenant_id, customer, email, price)
VALUES ('101', 'Grace Hopper', 'ada@example.com', 18000) RETURNING id, tenant_id;
RESET ROLE;
-- equal PII values of two rows cannot be linked: each entry has its own salt
SELECT l.after->>'email' <> (SELECT after->>'email' FROM autora.ledger
                              WHERE table_name = 'deals' AND op = 'INSERT' AND pk = '{"id": 1}')
       AS unlinkable, l.after->>'email' = pg_temp.commitment('ada@example.com', v.salt) AS commitment_opens
  FROM autora.ledger l JOIN autora.pii_vault v ON v.entry_id = l.id WHERE l.id > :mark;
DROP EXTENSION pgcrypto;

-- a mismatching tenant is refused, and so is moving a row to another tenant
SET ROLE regress_cap_app;
INSERT INTO dealer.deals (tenant_id, customer) VALUES ('102', 'Mallory');
\echo :SQLSTATE
UPDATE dealer.deals SET tenant_id = '102' WHERE id = 1;
\echo :SQLSTATE
UPDATE dealer.deals SET tenant_id = NULL WHERE id = 1;
\echo :SQLSTATE
SELECT id, tenant_id FROM dealer.deals ORDER BY id;
RESET ROLE;
SELECT count(*) AS entries_written FROM autora.ledger WHERE id > :mark;

--
-- DELETE
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
DELETE FROM dealer.deals WHERE id = 2;
RESET ROLE;
SELECT op, tenant_id, pk, after, changed, before - 'email' AS before,
       before->>'email' LIKE 'pii:%' AS email_committed, actor_id
  FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- another tenant; per-tenant sequence numbers; events
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
SELECT autora.set_context_trusted('102', 'u-carol', 'sales', is_local => false) IS NOT NULL AS context_set;
INSERT INTO dealer.deals (customer, price) VALUES ('Carol Shaw', 9999.99), ('Dan Bricklin', 15000.50)
RETURNING id, tenant_id, customer;
SELECT autora.log_event('deal.export', 'deal', '3', '{"format": "csv", "rows": 2}') > :mark AS event_id_returned;
-- an event with only a name
SELECT autora.log_event('login') > :mark AS event_id_returned;
RESET ROLE;
SELECT op, tenant_id, event, entity_type, entity_id, metadata, table_schema, table_name, pk,
       actor_id, actor_role, db_current_user
  FROM autora.ledger WHERE id > :mark ORDER BY id;
-- log_event returns the id of its entry
SELECT autora.log_event('probe', metadata => NULL) AS probe_id \gset
SELECT id = :probe_id AS returns_entry_id, tenant_id, event, metadata
  FROM autora.ledger WHERE id = (SELECT max(id) FROM autora.ledger);
-- seq numbers each tenant's chain on its own: strictly increasing per tenant
SELECT tenant_id, count(*) AS entries,
       bool_and(prev_seq IS NULL OR seq > prev_seq) AS seq_increasing,
       count(DISTINCT seq) = count(*) AS seq_unique
  FROM (SELECT tenant_id, seq, lag(seq) OVER (PARTITION BY tenant_id ORDER BY id) AS prev_seq
          FROM autora.ledger) s
 GROUP BY tenant_id ORDER BY tenant_id;
-- tenant 102's chain is new: it starts at 1 with no gap
SELECT array_agg(seq ORDER BY id) AS seqs_102 FROM autora.ledger WHERE tenant_id = '102';

--
-- other tenant column types: uuid (composite key), bigint, integer
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
SELECT autora.set_context_trusted('5a1c9e2e-1d1f-4c43-9a57-0c9a2b1f7e01', 'u-erin', 'dealer_admin',
                                  is_local => false) IS NOT NULL AS context_set;
-- the NULL key column is stamped before the NOT NULL check
INSERT INTO dealer.inventory (stock_no, vin, list_price) VALUES (7, '2T1BURHE0JC074514', 17500);
UPDATE dealer.inventory SET list_price = 16900 WHERE stock_no = 7;
INSERT INTO dealer.inventory (tenant_id, stock_no, vin) VALUES ('6b2d0f3f-2e20-4d54-8b68-1d0b3c208f12', 8, 'X');
\echo :SQLSTATE
RESET ROLE;
SELECT op, tenant_id, table_name, pk, changed, after FROM autora.ledger WHERE id > :mark ORDER BY id;

SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
SELECT autora.set_context_trusted('101', 'u-alice', 'sales', is_local => false) IS NOT NULL AS context_set;
-- timestamps are recorded in UTC whatever the session's TimeZone
INSERT INTO dealer.appointments (id, starts_at, kind) VALUES (1, '2024-05-01 10:00:00-04', 'service');
INSERT INTO dealer.appointments (id, store_id, starts_at, kind) VALUES (2, 101, '2024-05-02 09:30:00+02', 'sales');
INSERT INTO dealer.appointments (id, store_id, starts_at, kind) VALUES (3, 102, '2024-05-03 09:00:00+00', 'sales');
\echo :SQLSTATE
UPDATE dealer.appointments SET store_id = 102 WHERE id = 1;
\echo :SQLSTATE
INSERT INTO dealer.test_drives (id, vin) VALUES (1, '1FTFW1ET5DFC10312');
UPDATE dealer.test_drives SET returned = true WHERE id = 1;
DELETE FROM dealer.test_drives WHERE id = 1;
INSERT INTO dealer.test_drives (id, store, vin) VALUES (2, 102, 'X');
\echo :SQLSTATE
SELECT * FROM dealer.appointments ORDER BY id;
-- the application cannot turn TRUNCATE on
SET autora.allow_truncate = on;
\echo :SQLSTATE
RESET ROLE;
SELECT op, tenant_id, table_name, pk, changed, before, after FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- subtransactions, upserts and COPY (the context is still store 101's)
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_app;
BEGIN;
INSERT INTO dealer.appointments (id, starts_at, kind) VALUES (10, '2024-06-01 09:00:00+00', 'kept');
SAVEPOINT s1;
INSERT INTO dealer.appointments (id, starts_at, kind) VALUES (11, '2024-06-01 10:00:00+00', 'rolled back');
UPDATE dealer.appointments SET kind = 'changed, rolled back' WHERE id = 10;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO dealer.appointments (id, starts_at, kind) VALUES (12, '2024-06-01 11:00:00+00', 'kept too')
    ON CONFLICT (id) DO NOTHING;
INSERT INTO dealer.appointments (id, starts_at, kind) VALUES (10, '2024-06-01 09:00:00+00', 'upserted')
    ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind;
INSERT INTO dealer.appointments (id, starts_at, kind) VALUES (12, '2024-06-01 11:00:00+00', 'ignored')
    ON CONFLICT (id) DO NOTHING;
COMMIT;
-- PostgreSQL refuses COPY FROM for roles under row level security
COPY dealer.appointments (id, starts_at, kind) FROM STDIN;
13	2024-06-02 09:00:00+00	copied by the application
\.
\echo :SQLSTATE
RESET ROLE;
-- a superuser's COPY is captured (and stamped) row by row
COPY dealer.appointments (id, starts_at, kind) FROM STDIN;
14	2024-06-02 10:00:00+00	copied
15	2024-06-02 11:00:00+00	copied
\.
SELECT op, tenant_id, pk, changed, after->>'kind' AS kind, before->>'kind' AS kind_before
  FROM autora.ledger WHERE id > :mark ORDER BY id;
SELECT id, store_id, kind FROM dealer.appointments WHERE id >= 10 ORDER BY id;

--
-- TRUNCATE is refused, even for a superuser, unless autora.allow_truncate is on
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
TRUNCATE dealer.deals;
\echo :SQLSTATE
SELECT tenant_id, count(*) AS deals FROM dealer.deals GROUP BY tenant_id ORDER BY tenant_id;
SELECT autora.set_context_trusted(NULL, 'ops-1', 'platform_owner', '{"req": "maint-7"}',
                                  is_local => false) IS NOT NULL AS context_set;
SET autora.allow_truncate = on;
TRUNCATE dealer.deals;
RESET autora.allow_truncate;
-- one entry per tenant, with its row count
SELECT op, tenant_id, table_schema, table_name, metadata, pk, before, after, changed,
       actor_id, actor_role, request_id
  FROM autora.ledger WHERE id > :mark ORDER BY id;
SELECT count(*) AS deals_left FROM dealer.deals;
-- truncating an empty table records nothing
SET autora.allow_truncate = on;
TRUNCATE dealer.deals;
RESET autora.allow_truncate;
SELECT count(*) AS entries_written FROM autora.ledger WHERE id > :mark AND op <> 'TRUNCATE';
SELECT count(*) AS truncate_entries FROM autora.ledger WHERE id > :mark AND op = 'TRUNCATE';

--
-- session_replication_role = replica does not skip capture (or stamping)
--
SELECT autora.set_context_trusted('102', 'u-carol', 'sales', is_local => false) IS NOT NULL AS context_set;
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET session_replication_role = replica;
INSERT INTO dealer.deals (customer, price) VALUES ('Replica Rita', 1);
UPDATE dealer.deals SET price = 2 WHERE customer = 'Replica Rita';
DELETE FROM dealer.deals WHERE customer = 'Replica Rita';
INSERT INTO dealer.deals (tenant_id, customer) VALUES ('101', 'Mallory');
\echo :SQLSTATE
RESET session_replication_role;
SELECT op, tenant_id, changed, after->'price' AS price_after, before->'price' AS price_before
  FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- protect is idempotent; protecting again with new options applies them
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SELECT autora.protect('dealer.deals', pii_columns => '{email}', exclude_columns => '{updated_at}');
SELECT autora.protect('dealer.deals', pii_columns => '{email}', exclude_columns => '{updated_at}');
SELECT count(*) AS autora_triggers FROM pg_trigger
 WHERE tgrelid = 'dealer.deals'::regclass AND tgname IN ('zz_autora_stamp_tenant', 'autora_capture', 'autora_truncate');
SELECT count(*) AS registrations FROM autora.protected_tables WHERE relid = 'dealer.deals'::regclass;
INSERT INTO dealer.deals (customer, price, notes) VALUES ('Idem Potent', 1, 'first');
SELECT count(*) AS insert_entries FROM autora.ledger WHERE id > :mark AND op = 'INSERT';
SELECT autora.protect('dealer.deals', pii_columns => '{email}', exclude_columns => '{updated_at,notes}');
SELECT exclude_columns FROM autora.protected_tables WHERE relid = 'dealer.deals'::regclass;
UPDATE dealer.deals SET notes = 'second' WHERE customer = 'Idem Potent';
UPDATE dealer.deals SET price = 3 WHERE customer = 'Idem Potent';
SELECT op, event, changed, before, after FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- unprotect: needs a reason, is recorded, and stops capture
--
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_admin;
SELECT autora.unprotect('dealer.test_drives', 'store 101 stopped offering test drives');
RESET ROLE;
SELECT count(*) AS autora_triggers FROM pg_trigger WHERE tgrelid = 'dealer.test_drives'::regclass;
SELECT count(*) AS registrations FROM autora.protected_tables WHERE relid = 'dealer.test_drives'::regclass;
INSERT INTO dealer.test_drives (id, store, vin) VALUES (3, 101, 'Y');
SELECT op, tenant_id, event, entity_type, entity_id, metadata - 'relid' AS metadata
  FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- protect_schema: existing tables with the tenant column, and tables created later
--
CREATE SCHEMA crm AUTHORIZATION regress_cap_owner;
GRANT USAGE ON SCHEMA crm TO regress_cap_admin;
SET ROLE regress_cap_owner;
CREATE TABLE crm.leads (id integer PRIMARY KEY, tenant_id text, name text);
CREATE TABLE crm.lookup (code text PRIMARY KEY, label text);
RESET ROLE;
SET ROLE regress_cap_admin;
SELECT autora.protect_schema('crm');
RESET ROLE;
SET ROLE regress_cap_owner;
CREATE TABLE crm.visits (id integer PRIMARY KEY, tenant_id text, lead_id integer, note text);
CREATE TABLE crm.sources (id integer PRIMARY KEY, label text);
RESET ROLE;
SELECT table_schema, table_name, tenant_column, capture_enabled
  FROM autora.protected_tables WHERE table_schema = 'crm' ORDER BY table_name;
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
INSERT INTO crm.visits (id, lead_id, note) VALUES (1, 1, 'walk-in');
INSERT INTO crm.sources (id, label) VALUES (1, 'web');
SELECT op, tenant_id, table_schema, table_name, after FROM autora.ledger WHERE id > :mark ORDER BY id;

--
-- partitioned tables: existing and later partitions capture
--
SET ROLE regress_cap_owner;
CREATE TABLE dealer.service_orders (
    id        integer,
    opened    date,
    tenant_id text,
    total     numeric(10,2),
    PRIMARY KEY (id, opened)
) PARTITION BY RANGE (opened);
CREATE TABLE dealer.service_orders_2024 PARTITION OF dealer.service_orders
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
RESET ROLE;
SELECT autora.protect('dealer.service_orders');
SET ROLE regress_cap_owner;
CREATE TABLE dealer.service_orders_2025 PARTITION OF dealer.service_orders
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
RESET ROLE;
SELECT c.relname, t.tgname, t.tgenabled
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relname LIKE 'service_orders%' AND NOT t.tgisinternal
   AND t.tgname IN ('zz_autora_stamp_tenant', 'autora_capture', 'autora_truncate')
 ORDER BY c.relname, t.tgname;
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET session_replication_role = replica;
INSERT INTO dealer.service_orders (id, opened, total) VALUES (1, '2024-06-01', 120.00), (2, '2025-03-01', 80.50);
RESET session_replication_role;
UPDATE dealer.service_orders SET total = 99.99 WHERE id = 2;
INSERT INTO dealer.service_orders (id, opened, tenant_id, total) VALUES (3, '2025-04-01', '101', 1);
\echo :SQLSTATE
-- (format 2) rows of a partition are recorded under the partitioned table's
-- name, with the partition in the metadata
SELECT op, tenant_id, table_schema, table_name, pk, changed, after, metadata
  FROM autora.ledger WHERE id > :mark ORDER BY id;
-- a partition cannot be truncated behind the parent's back
TRUNCATE dealer.service_orders_2024;
\echo :SQLSTATE
SELECT count(*) AS orders FROM dealer.service_orders;
-- renaming the partitioned table or a partition: entries follow the new names
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SET ROLE regress_cap_owner;
ALTER TABLE dealer.service_orders RENAME TO work_orders;
ALTER TABLE dealer.service_orders_2025 RENAME TO work_orders_2025;
RESET ROLE;
UPDATE dealer.work_orders SET total = 98.00 WHERE id = 2;
SELECT op, table_name, changed, metadata FROM autora.ledger WHERE id > :mark AND op <> 'EVENT' ORDER BY id;
SET ROLE regress_cap_owner;
ALTER TABLE dealer.work_orders_2025 RENAME TO service_orders_2025;
ALTER TABLE dealer.work_orders RENAME TO service_orders;
RESET ROLE;
-- TRUNCATE, where a superuser allows it: one entry per partition and tenant
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
BEGIN;
SET LOCAL autora.allow_truncate = on;
TRUNCATE dealer.service_orders;
SELECT op, tenant_id, table_name, metadata FROM autora.ledger WHERE id > :mark ORDER BY id;
ROLLBACK;
-- unprotecting the partitioned table unprotects its partitions
SELECT coalesce(max(id), 0) AS mark FROM autora.ledger \gset
SELECT autora.unprotect('dealer.service_orders', 'service orders move to another system');
SELECT count(*) AS still_protected FROM autora.protected_tables WHERE table_name LIKE 'service_orders%';
SELECT count(*) AS autora_triggers
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = 'autora'::regnamespace
   AND t.tgrelid IN ('dealer.service_orders'::regclass, 'dealer.service_orders_2024'::regclass,
                     'dealer.service_orders_2025'::regclass);
SELECT op, tenant_id, event, entity_id, metadata - 'relid' AS metadata
  FROM autora.ledger WHERE id > :mark ORDER BY id;

SELECT autora.clear_context();

-- ANALYZE keeps statistics on the columns queries filter by, and none on the
-- images, their context or hashes, which no plan uses
ANALYZE autora.ledger, autora.pii_vault;
SELECT tablename, attname FROM pg_stats
 WHERE schemaname = 'autora' AND tablename IN ('ledger', 'pii_vault')
   AND attname IN ('pk', 'before', 'after', 'changed', 'metadata', 'hash', 'clear',
                   'tenant_id', 'table_name')
 ORDER BY tablename, attname;

-- clean up: protected tables are dropped only after unprotect (which is
-- recorded); the ledger keeps every entry
SELECT count(*) AS unprotected
  FROM (SELECT autora.unprotect(p.relid, 'regress cleanup')
          FROM autora.protected_tables p JOIN pg_class c ON c.oid = p.relid
         WHERE p.table_schema IN ('dealer', 'crm') AND NOT c.relispartition) s;
DROP OWNED BY regress_cap_owner, regress_cap_app, regress_cap_admin;
DROP ROLE regress_cap_owner, regress_cap_app, regress_cap_admin;
