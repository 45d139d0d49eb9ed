-- sample/demo.sql: a walk through autora_audit on the sample dealership platform.
--
-- `make demo` runs it in a fresh database `dealership` (CREATE EXTENSION
-- autora_audit already done) with
--     psql -X -v ON_ERROR_STOP=1 --echo-queries -f sample/demo.sql
-- as the superuser postgres.  Every refusal shown below is expected: it is
-- caught by pg_temp.expect_error(), which prints its SQLSTATE and message and
-- makes the demo fail if the statement was NOT refused.
--
-- The application's statements run as dealer_app, an ordinary role subject
-- to row level security; the demo's own set-up (and the superuser checks in
-- section 8) run as postgres.  A superuser bypasses row level security, as
-- PostgreSQL always lets it: never let the application connect as one.

\pset null '(null)'
\pset pager off

-- Runs stmt, which must fail; returns the error's SQLSTATE and message.
-- If stmt succeeds, its effects are rolled back and the demo stops.
CREATE FUNCTION pg_temp.expect_error(stmt text, OUT sqlstate text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE stmt;
    EXCEPTION WHEN OTHERS THEN
        expect_error.sqlstate := SQLSTATE;
        expect_error.message := SQLERRM;
        RETURN;
    END;
    RAISE EXCEPTION 'demo: this statement should have been refused but succeeded: %', stmt;
END
$$;

\echo
\echo '=================================================================='
\echo ' 0. The sample platform (sample/dealership.sql)'
\echo '=================================================================='
\echo 'Loading: 2 dealer groups, 4 stores, 4 protected tables, seed rows per store.'
\set ECHO none
\o /dev/null
SET client_min_messages = warning;
\ir dealership.sql
RESET client_min_messages;
\o
\set ECHO queries

SELECT tenant_id, group_id, name FROM autora.tenants ORDER BY group_id, tenant_id;

\echo 'protect() forced row level security on each table and attached the capture triggers:'
SELECT table_name, tenant_column, pii_columns, exclude_columns,
       rls_enabled, rls_forced, capture_enabled
  FROM autora.protected_tables ORDER BY table_name;

SELECT policyname, permissive, cmd, qual, with_check
  FROM pg_policies WHERE tablename = 'customers' ORDER BY policyname;

SELECT tgname, tgenabled AS enabled
  FROM pg_trigger
 WHERE tgrelid = 'customers'::regclass AND tgname LIKE '%autora%'
 ORDER BY tgname;

\echo 'Rows per store (postgres is a superuser, which bypasses row level security):'
SELECT tenant_id,
       (SELECT count(*) FROM customers c WHERE c.tenant_id = t.tenant_id) AS customers,
       (SELECT count(*) FROM vehicles v WHERE v.tenant_id = t.tenant_id) AS vehicles,
       (SELECT count(*) FROM deals d WHERE d.tenant_id = t.tenant_id) AS deals,
       (SELECT count(*) FROM service_appointments s WHERE s.tenant_id = t.tenant_id) AS appointments
  FROM autora.tenants t ORDER BY tenant_id;

\echo
\echo '=================================================================='
\echo ' 1. The application role: no context, no rows'
\echo '=================================================================='
\echo 'dealer_app is an ordinary role with table privileges only.'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dealer_app') AS create_dealer_app \gset
\if :create_dealer_app
CREATE ROLE dealer_app NOLOGIN;
\endif
GRANT SELECT, INSERT, UPDATE, DELETE
   ON customers, vehicles, deals, service_appointments TO dealer_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO dealer_app;

SET ROLE dealer_app;
\echo '-- without a session context every statement on a protected table fails (ZA001),'
\echo '-- checked at permission-check time: also when no row could match'
SELECT * FROM pg_temp.expect_error($$SELECT count(*) FROM customers$$);
SELECT * FROM pg_temp.expect_error($$SELECT * FROM deals WHERE false$$);
SELECT * FROM pg_temp.expect_error($$INSERT INTO customers (tenant_id, first_name, last_name)
                                     VALUES ('harbor-ford', 'No', 'Context')$$);
\echo '-- the application cannot list the stores, nor set a context without a token'
SELECT * FROM pg_temp.expect_error($$SELECT * FROM autora.tenants$$);
SELECT * FROM pg_temp.expect_error($$SELECT autora.set_context_trusted('harbor-ford', 'u-1042', 'sales')$$);
RESET ROLE;

\echo
\echo '=================================================================='
\echo ' 2. A store context: its rows, and only its rows'
\echo '=================================================================='
\echo 'Each transaction starts by setting the context.  Here a trusted service'
\echo '(postgres: superusers count as members of autora_trusted) sets it with'
\echo 'set_context_trusted(), then the statements run as dealer_app; section 4'
\echo 'shows the signed-token way.  The context lasts until COMMIT and cannot be'
\echo 'changed with SET.'

BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'u-1042', 'sales',
         '{"ip": "203.0.113.24", "ua": "DealerDesk/4.2 (Windows NT 10.0)",
           "endpoint": "/api/deals", "method": "POST", "req": "req-7f3a91"}');
SET LOCAL ROLE dealer_app;
SELECT autora.tenant(), autora.actor(), autora.actor_role(), autora.visible_tenants(),
       current_setting('autora.tenant_id') AS "autora.tenant_id";

\echo '-- reads: row level security shows harbor-ford only'
SELECT tenant_id, count(*) AS customers FROM customers GROUP BY tenant_id;
SELECT stock_no, model_year, make, model, status FROM vehicles ORDER BY stock_no;
\echo '-- not even a direct look-up finds another store''s vehicle'
SELECT count(*) AS summit_vehicles_seen FROM vehicles WHERE tenant_id = 'summit-toyota';

\echo '-- tenant_id is left out: the row is stamped with the context tenant'
INSERT INTO customers (first_name, last_name, email, phone)
VALUES ('Jordan', 'Blake', 'jordan.blake@example.com', '+1-503-555-0199')
RETURNING id, tenant_id, first_name, last_name;

INSERT INTO deals (customer_id, vehicle_id, salesperson, price, finance_status, lender, notes, internal_cache)
SELECT c.id, v.id, 'Tom Becker', 30950.00, 'submitted', 'Ford Credit',
       'First-time buyer; wants remote start.', '{"quote_rev": 1}'
  FROM customers c, vehicles v
 WHERE c.email = 'jordan.blake@example.com' AND v.vin = '1FMCU9H67PUA20417'
RETURNING id AS deal_id, tenant_id, price, finance_status \gset
\echo new deal :deal_id stamped with tenant :tenant_id

\echo '-- a row for another store (summit-toyota) is refused'
SELECT * FROM pg_temp.expect_error($$
    INSERT INTO customers (tenant_id, first_name, last_name)
    VALUES ('summit-toyota', 'Eve', 'Mallory')$$);

\echo '-- moving a row to another store is refused'
SELECT * FROM pg_temp.expect_error($$
    UPDATE vehicles SET tenant_id = 'harbor-honda' WHERE vin = '3FMCR9B63NRD30982'$$);

\echo '-- another store''s rows cannot be changed: they are not there'
UPDATE vehicles SET status = 'on_hold' WHERE tenant_id = 'summit-toyota';

\echo '-- the context cannot be switched with SET or set_config()'
SELECT * FROM pg_temp.expect_error($$SET autora.tenant_id = 'summit-toyota'$$);
SELECT * FROM pg_temp.expect_error($$SELECT set_config('autora.tenant_id', 'summit-toyota', true)$$);
COMMIT;

\echo '-- after COMMIT the transaction-local context is gone'
SELECT current_setting('autora.tenant_id') = '' AS context_cleared;

\echo '-- unknown stores and actor roles are refused (ZA004)'
SELECT * FROM pg_temp.expect_error($$SELECT autora.set_context_trusted('no-such-store', 'u-1', 'sales')$$);
SELECT * FROM pg_temp.expect_error($$SELECT autora.set_context_trusted('harbor-ford', 'u-1', 'janitor')$$);

\echo
\echo '=================================================================='
\echo ' 3. Wider scopes: dealer group, platform, auditors'
\echo '=================================================================='
\echo 'An actor role''s scope (autora.actor_roles) decides which stores it sees;'
\echo 'it writes only the store of its context.'
SELECT role, scope, sees_pii FROM autora.actor_roles ORDER BY scope DESC, role;

\echo '-- group_admin at harbor-ford: sees the harbor group, writes harbor-ford only'
BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'u-5001', 'group_admin') ->> 'group' AS context_group;
SET LOCAL ROLE dealer_app;
SELECT autora.visible_tenants();
SELECT tenant_id, count(*) AS vehicles, sum(list_price) AS stock_value
  FROM vehicles GROUP BY tenant_id ORDER BY tenant_id;
UPDATE vehicles SET status = 'on_hold' WHERE tenant_id = 'harbor-honda' AND status = 'in_stock';
COMMIT;

\echo '-- platform_owner: no store of its own; sees every store, writes none'
BEGIN;
SELECT autora.set_context_trusted(NULL, 'ops-7', 'platform_owner') ->> 'scope' AS context_scope;
SET LOCAL ROLE dealer_app;
SELECT autora.visible_tenants();
SELECT tenant_id, count(*) AS deals, sum(price) AS revenue
  FROM deals GROUP BY tenant_id ORDER BY tenant_id;
SELECT * FROM pg_temp.expect_error($$
    INSERT INTO customers (first_name, last_name) VALUES ('Pat', 'Platform')$$);
COMMIT;

\echo '-- a member of autora_auditor reads every store without a context (reads only)'
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dealer_auditor') AS create_dealer_auditor \gset
\if :create_dealer_auditor
CREATE ROLE dealer_auditor NOLOGIN IN ROLE autora_auditor;
\endif
GRANT SELECT, UPDATE ON deals TO dealer_auditor;
SET ROLE dealer_auditor;
SELECT tenant_id, count(*) AS deals FROM deals GROUP BY tenant_id ORDER BY tenant_id;
SELECT * FROM pg_temp.expect_error($$UPDATE deals SET notes = 'audited' WHERE id = 1$$);
RESET ROLE;

\echo
\echo '=================================================================='
\echo ' 4. Signed context tokens: autora.set_context(token)'
\echo '=================================================================='
\echo 'In production the application receives a JWT from its identity service'
\echo 'and passes it to autora.set_context(); the token is the credential, so'
\echo 'any role may call it.  Here psql plays the issuer, with pgcrypto.'
CREATE SCHEMA IF NOT EXISTS issuer;
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA issuer;

-- base64url without padding (RFC 7515); encode() wraps lines, translate() drops them
CREATE FUNCTION pg_temp.b64url(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE RETURN translate(encode(b, 'base64'), E'+/=\n', '-_');

-- an HS256 JWT: base64url(header) . base64url(claims) . base64url(HMAC-SHA256)
CREATE FUNCTION pg_temp.hs256_token(claims jsonb, secret text, kid text DEFAULT 'demo-2026')
RETURNS text LANGUAGE sql AS $$
    SELECT signing_input || '.' || pg_temp.b64url(issuer.hmac(signing_input, secret, 'sha256'))
      FROM (SELECT pg_temp.b64url(convert_to(jsonb_build_object('alg', 'HS256', 'typ', 'JWT',
                                                                'kid', kid)::text, 'UTF8'))
                   || '.' || pg_temp.b64url(convert_to(claims::text, 'UTF8')) AS signing_input) s
$$;

\set demo_secret 'demo-only-hs256-secret-never-use-in-production!!'
\echo '-- register the shared secret (at least 32 bytes; this one is for the demo only)'
SELECT autora.add_key('demo-2026', 'HS256', :'demo_secret');
SELECT kid, alg, created_at IS NOT NULL AS created, revoked_at FROM autora.keys;
SELECT * FROM pg_temp.expect_error($$SELECT autora.add_key('too-short', 'HS256', 'secret')$$);

\echo '-- the claims of one request, as the identity service signs them (valid 5 minutes)'
CREATE TEMP TABLE request_claims AS
SELECT jsonb_build_object('tenant', 'summit-toyota', 'sub', 'u-3107', 'role', 'sales',
                          'email', 'marcus.lee@summit-toyota.example',
                          'ip', '198.51.100.77', 'ua', 'DealerDesk/4.2 (macOS 14.5)',
                          'endpoint', '/api/customers', 'method', 'PATCH', 'req', 'req-9a41c2',
                          'iat', extract(epoch FROM now())::bigint,
                          'exp', extract(epoch FROM now())::bigint + 300) AS claims;
SELECT jsonb_pretty(claims) AS claims FROM request_claims;

\echo '-- the signed token, and four that must be refused:'
\echo '--   tampered:  the claims say harbor-ford, the signature was made for summit-toyota'
\echo '--   expired:   exp two minutes ago, beyond the 30 s leeway'
\echo '--   wrong key: signed with a secret autora does not know'
\echo '--   unsigned:  "alg": "none" and no signature'
CREATE TEMP TABLE tokens AS
SELECT 1 AS n, 'good' AS name, pg_temp.hs256_token(claims, :'demo_secret') AS token
  FROM request_claims
UNION ALL
SELECT 2, 'tampered',
       split_part(pg_temp.hs256_token(claims, :'demo_secret'), '.', 1) || '.'
       || pg_temp.b64url(convert_to(jsonb_set(claims, '{tenant}', '"harbor-ford"')::text, 'UTF8'))
       || '.' || split_part(pg_temp.hs256_token(claims, :'demo_secret'), '.', 3)
  FROM request_claims
UNION ALL
SELECT 3, 'expired',
       pg_temp.hs256_token(jsonb_set(claims, '{exp}', to_jsonb(extract(epoch FROM now())::bigint - 120)),
                           :'demo_secret')
  FROM request_claims
UNION ALL
SELECT 4, 'wrong key', pg_temp.hs256_token(claims, 'a-different-secret-of-at-least-32-bytes!')
  FROM request_claims
UNION ALL
SELECT 5, 'unsigned',
       pg_temp.b64url(convert_to('{"alg": "none", "kid": "demo-2026"}', 'UTF8')) || '.'
       || pg_temp.b64url(convert_to(claims::text, 'UTF8')) || '.'
  FROM request_claims;
GRANT SELECT ON tokens TO dealer_app;
SELECT n, name, length(token) AS length, left(token, 36) || '...' || right(token, 12) AS token
  FROM tokens ORDER BY n;

\echo '-- dealer_app presents the good token: summit-toyota, as actor u-3107'
BEGIN;
SET LOCAL ROLE dealer_app;
SELECT autora.set_context(token) FROM tokens WHERE name = 'good';
SELECT tenant_id, count(*) AS customers FROM customers GROUP BY tenant_id;
UPDATE customers SET phone = '+1-303-555-0188' WHERE email = 'luis.herrera@example.org'
RETURNING id, tenant_id, first_name, last_name;
COMMIT;

\echo '-- the other four are refused: ZA002 bad token, ZA003 expired'
SET ROLE dealer_app;
SELECT t.n, t.name, e.sqlstate, e.message
  FROM tokens t, pg_temp.expect_error(format('SELECT autora.set_context(%L)', t.token)) e
 WHERE t.name <> 'good' ORDER BY t.n;
\echo '-- the application cannot read the keys'
SELECT * FROM pg_temp.expect_error($$SELECT * FROM autora.keys$$);
RESET ROLE;

\echo '-- after autora.revoke_key() even the good token is refused'
SELECT autora.revoke_key('demo-2026');
SELECT t.name, e.sqlstate, e.message
  FROM tokens t, pg_temp.expect_error(format('SELECT autora.set_context(%L)', t.token)) e
 WHERE t.name = 'good';
SELECT kid, alg, revoked_at IS NOT NULL AS revoked FROM autora.keys;

\echo
\echo '=================================================================='
\echo ' 5. Capture: every change is a ledger entry'
\echo '=================================================================='
\echo 'The two inserts of request req-7f3a91 (section 2) and the token-identified'
\echo 'update of request req-9a41c2 (section 4):'
SELECT id, tenant_id, seq, op, table_name, pk, actor_id, actor_role,
       client_addr, user_agent, endpoint, method, request_id,
       db_session_user, db_current_user
  FROM autora.ledger WHERE request_id IN ('req-7f3a91', 'req-9a41c2') ORDER BY id;

\echo 'email and phone are pii_columns of customers: the ledger holds commitments'
\echo '(HMAC-SHA256 under a random salt drawn per entry); the salt and the clear'
\echo 'values are kept apart in autora.pii_vault, where erasing them leaves'
\echo 'commitments nobody can open, in a chain that still verifies.'
SELECT id, table_name, after ->> 'last_name' AS last_name,
       after ->> 'email' AS email, after ->> 'phone' AS phone
  FROM autora.ledger
 WHERE request_id = 'req-7f3a91' AND table_name = 'customers';
SELECT v.entry_id, v.tenant_id, encode(v.salt, 'hex') AS salt, v.clear
  FROM autora.pii_vault v JOIN autora.ledger l ON l.id = v.entry_id
 WHERE l.request_id IN ('req-7f3a91', 'req-9a41c2') ORDER BY v.entry_id;

\echo 'The full deal entry (internal_cache is excluded from capture):'
SELECT id AS deal_entry FROM autora.ledger
 WHERE table_name = 'deals' AND op = 'INSERT' AND pk = jsonb_build_object('id', :deal_id) \gset
\x on
SELECT * FROM autora.ledger WHERE id = :deal_entry;
\x off

\echo '-- the F&I manager gets the loan approved and adjusts the price'
BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'u-2001', 'dealer_admin',
         '{"ip": "203.0.113.40", "endpoint": "/api/deals/finance", "method": "PATCH", "req": "req-7f3b02"}')
       IS NOT NULL AS context_set;
SET LOCAL ROLE dealer_app;
UPDATE deals
   SET price = 30450.00, finance_status = 'approved',
       notes = notes || ' Approved at 5.9% APR, 60 months.'
 WHERE id = :deal_id;
COMMIT;

\echo 'Ledger format 2: an UPDATE entry holds only the changed fields, before and after:'
SELECT l.id, l.op, l.actor_id, l.changed, f.field,
       l.before -> f.field AS before, l.after -> f.field AS after
  FROM autora.ledger l, unnest(l.changed) AS f(field)
 WHERE l.request_id = 'req-7f3b02'
 ORDER BY l.id, f.field;

\echo
\echo '=================================================================='
\echo ' 6. No-op updates are skipped (autora.skip_noop_updates = on)'
\echo '=================================================================='
SELECT count(*) AS entries_for_deal FROM autora.ledger
 WHERE table_name = 'deals' AND pk = jsonb_build_object('id', :deal_id);
BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'u-2001', 'dealer_admin') IS NOT NULL AS context_set;
SET LOCAL ROLE dealer_app;
\echo '-- nothing changes:'
UPDATE deals SET price = price, finance_status = finance_status WHERE id = :deal_id;
\echo '-- only the excluded column internal_cache changes:'
UPDATE deals SET internal_cache = '{"quote_rev": 2}' WHERE id = :deal_id;
COMMIT;
SELECT count(*) AS entries_for_deal FROM autora.ledger
 WHERE table_name = 'deals' AND pk = jsonb_build_object('id', :deal_id);

\echo
\echo '=================================================================='
\echo ' 7. Semantic events: autora.log_event()'
\echo '=================================================================='
BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'u-2001', 'dealer_admin',
         '{"endpoint": "/api/deals/override", "method": "POST", "req": "req-7f3c17"}') IS NOT NULL AS context_set;
SET LOCAL ROLE dealer_app;
SELECT autora.log_event('deal.price_override', 'deal', :'deal_id',
         '{"reason": "matched competitor quote", "old_price": 30950.00, "new_price": 30450.00}') AS entry_id;
COMMIT;

\echo '-- an actor with platform scope has no tenant: its events go to the platform chain'
BEGIN;
SELECT autora.set_context_trusted(NULL, 'ops-7', 'platform_owner') IS NOT NULL AS context_set;
SELECT autora.log_event('platform.maintenance_window', metadata => '{"window": "02:00-03:00 UTC"}') AS entry_id;
COMMIT;

SELECT id, tenant_id, seq, op, event, entity_type, entity_id, actor_id, actor_role, metadata
  FROM autora.ledger WHERE op = 'EVENT' ORDER BY id;

\echo
\echo '=================================================================='
\echo ' 8. Tamper refusal: append-only ledger, fixed protection, even for a superuser'
\echo '=================================================================='
SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;

SELECT * FROM pg_temp.expect_error($$UPDATE autora.ledger SET actor_id = 'someone-else' WHERE id = 1$$);
SELECT * FROM pg_temp.expect_error($$DELETE FROM autora.ledger WHERE tenant_id = 'harbor-ford'$$);
SELECT * FROM pg_temp.expect_error($$TRUNCATE autora.ledger$$);
SELECT * FROM pg_temp.expect_error($$INSERT INTO autora.ledger SELECT * FROM autora.ledger WHERE id = 1$$);
SELECT * FROM pg_temp.expect_error($$UPDATE autora.ledger_blocks SET prev_hash = block_hash$$);
SELECT * FROM pg_temp.expect_error($$ALTER TABLE autora.ledger DROP COLUMN actor_id$$);
SELECT * FROM pg_temp.expect_error($$DROP TABLE autora.ledger_blocks$$);

\echo '-- capture and row level security on a protected table cannot be switched off'
SELECT * FROM pg_temp.expect_error($$ALTER TABLE deals DISABLE TRIGGER autora_capture$$);
SELECT * FROM pg_temp.expect_error($$ALTER TABLE deals DISABLE TRIGGER ALL$$);
SELECT * FROM pg_temp.expect_error($$DROP TRIGGER autora_capture ON deals$$);
SELECT * FROM pg_temp.expect_error($$ALTER TABLE deals NO FORCE ROW LEVEL SECURITY$$);
SELECT * FROM pg_temp.expect_error($$DROP POLICY autora_read ON deals$$);
SELECT * FROM pg_temp.expect_error($$TRUNCATE deals$$);
SELECT * FROM pg_temp.expect_error($$DROP TABLE service_appointments$$);
\echo '-- nor can the functions the policies and triggers call be replaced'
SELECT * FROM pg_temp.expect_error($sql$
    CREATE OR REPLACE FUNCTION autora.tenant() RETURNS text
    LANGUAGE sql AS $$SELECT 'harbor-ford'$$ $sql$);
SELECT * FROM pg_temp.expect_error($$DROP EXTENSION autora_audit CASCADE$$);

\echo '-- session_replication_role = replica does not skip capture'
BEGIN;
SELECT autora.set_context_trusted('harbor-ford', 'u-3300', 'dealer_admin',
         '{"req": "req-replica-1"}') IS NOT NULL AS context_set;
SET LOCAL session_replication_role = replica;
UPDATE service_appointments SET status = 'checked_in' WHERE tenant_id = 'harbor-ford';
COMMIT;
SELECT id, tenant_id, op, table_name, changed, after ->> 'status' AS status
  FROM autora.ledger WHERE request_id = 'req-replica-1';

\echo
\echo '=================================================================='
\echo ' 9. Sealing: entries become hash-chained Merkle blocks per tenant'
\echo '=================================================================='
\echo 'The background sealer seals committed entries within autora.seal_interval'
\echo '(default 1s), so some may already be sealed; autora.seal() seals the rest now.'
SELECT count(*) AS not_yet_sealed
  FROM autora.ledger l
 WHERE NOT EXISTS (SELECT FROM autora.ledger_blocks b WHERE l.id = ANY (b.entry_ids));
SELECT autora.seal() AS sealed_now;

SELECT tenant_id, block_no, format, entry_count, first_entry, last_entry,
       left(encode(merkle_root, 'hex'), 16) AS merkle_root,
       left(encode(prev_hash, 'hex'), 16) AS prev_hash,
       left(encode(block_hash, 'hex'), 16) AS block_hash
  FROM autora.ledger_blocks
 ORDER BY tenant_id NULLS LAST, block_no;

\echo
\echo '=================================================================='
\echo ' 10. Verification: recompute every hash, Merkle root and chain link'
\echo '=================================================================='
\echo 'ok = true: verified; ok = NULL: sealed chain verifies, entries pending seal;'
\echo 'ok = false: tampering, first_bad_entry names the first failing entry.'
\echo 'The row with tenant_id NULL is the platform chain.'
SELECT * FROM autora.verify();
SELECT * FROM autora.verify('harbor-ford');
SELECT * FROM pg_temp.expect_error($$SELECT * FROM autora.verify('no-such-store')$$);

\echo
\echo '=================================================================='
\echo ' 11. autora.chain_status: one row per chain, with its head block'
\echo '=================================================================='
SELECT tenant_id, entries, sealed, pending, blocks, head_block,
       left(encode(head_hash, 'hex'), 16) AS head_hash, ok, detail
  FROM autora.chain_status;

\echo
\echo 'Demo complete.'
