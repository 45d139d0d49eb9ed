-- protect() / unprotect() never widen access: a table whose row level
-- security denied everything keeps denying, and unprotect() puts row level
-- security back as it was. Also: ALTER SEQUENCE on autora's sequences is
-- refused, and TRUNCATE entries are visible in the same transaction.
BEGIN;
SELECT plan(14);

DO $$ BEGIN PERFORM autora.add_tenant('ps-1'); PERFORM autora.add_tenant('ps-2'); END $$;
CREATE ROLE ps_reader;

-- a table with row level security on and no policy: nobody but the owner sees rows
CREATE TABLE ps_closed (id int PRIMARY KEY, tenant_id text);
ALTER TABLE ps_closed ENABLE ROW LEVEL SECURITY;
INSERT INTO ps_closed VALUES (1, 'ps-1'), (2, 'ps-2');
GRANT SELECT ON ps_closed TO ps_reader;
SET ROLE ps_reader;
SELECT is((SELECT count(*) FROM ps_closed), 0::bigint, 'before protect: the closed table shows nothing');
RESET ROLE;

SELECT lives_ok($$SELECT autora.protect('ps_closed')$$, 'protect the closed table');
SELECT lives_ok($$SELECT autora.protect('ps_closed')$$, 'protect it again');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = 'ps_closed'::regclass AND polname = 'autora_base'),
          0::bigint, 'no permissive autora_base on a table whose row level security denied everything');
SELECT is((SELECT rls_before FROM autora.protected WHERE relid = 'ps_closed'::regclass), true,
          'the state before the first protect() is kept through a second protect()');
SELECT lives_ok($$SELECT autora.set_context_trusted('ps-1', 'u-ps', 'sales')$$, 'context ps-1');
SET ROLE ps_reader;
SELECT is((SELECT count(*) FROM ps_closed), 0::bigint, 'protected: still nothing, even with a context');
RESET ROLE;

SELECT lives_ok($$SELECT autora.unprotect('ps_closed', 'test')$$, 'unprotect the closed table');
SELECT is((SELECT relrowsecurity FROM pg_class WHERE oid = 'ps_closed'::regclass), true,
          'unprotect leaves row level security on, as it was');
SET ROLE ps_reader;
SELECT is((SELECT count(*) FROM ps_closed), 0::bigint, 'after unprotect: still nothing');
RESET ROLE;

-- an ordinary table gets row level security back off
CREATE TABLE ps_open (id int PRIMARY KEY, tenant_id text);
DO $$ BEGIN PERFORM autora.protect('ps_open'); PERFORM autora.unprotect('ps_open', 'test'); END $$;
SELECT is((SELECT relrowsecurity FROM pg_class WHERE oid = 'ps_open'::regclass), false,
          'unprotect of a table that had row level security off turns it off again');

-- ALTER SEQUENCE on the ledger numbering would make ids repeat
SELECT throws_ok($$ALTER SEQUENCE autora.ledger_id_seq RESTART WITH 1$$, '42501', NULL,
                 'ALTER SEQUENCE autora.ledger_id_seq is refused, even for a superuser');

-- TRUNCATE entries are written at once
CREATE TABLE ps_plates (id int PRIMARY KEY, tenant_id text);
DO $$ BEGIN PERFORM autora.protect('ps_plates'); END $$;
INSERT INTO ps_plates VALUES (1, 'ps-1');
SET LOCAL autora.allow_truncate = on;
TRUNCATE ps_plates;
SELECT is((SELECT count(*) FROM autora.ledger WHERE op = 'TRUNCATE' AND table_name = 'ps_plates'),
          1::bigint, 'the TRUNCATE entry is in the ledger within the same transaction');
SELECT is((SELECT metadata->>'rows' FROM autora.ledger WHERE op = 'TRUNCATE' AND table_name = 'ps_plates'),
          '1', 'with its row count');

SELECT * FROM finish();
ROLLBACK;
