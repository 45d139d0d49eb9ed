--
-- chain: committed entries are sealed into per-tenant hash-chained blocks;
-- autora.verify() checks them.  The background sealer may seal at any moment,
-- so block counts and boundaries are never printed, only their invariants.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset null '(null)'

-- The documented entry and block encodings, recomputed independently in SQL
-- (docs/ledger-format.md; framing: NULL is 0x00; a value is 0x01, u32 big-endian length, bytes;
-- integers and timestamps as big-endian int64, timestamps in microseconds since
-- the Unix epoch, jsonb in its canonical text form, inet in its output form).
CREATE FUNCTION pg_temp.fr(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN CASE WHEN b IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || int4send(length(b)) || b END;
CREATE FUNCTION pg_temp.ft(t text) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN pg_temp.fr(convert_to(t, getdatabaseencoding()));
CREATE FUNCTION pg_temp.fi(i bigint) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN pg_temp.fr(int8send(i));
CREATE FUNCTION pg_temp.fts(t timestamptz) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN pg_temp.fi((extract(epoch FROM t) * 1000000)::bigint);
CREATE FUNCTION pg_temp.fj(j jsonb) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN pg_temp.ft(j::text);
CREATE FUNCTION pg_temp.fa(a text[]) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN CASE WHEN a IS NULL THEN '\x00'::bytea
            ELSE '\x01'::bytea || int4send(coalesce(cardinality(a), 0))
                 || coalesce((SELECT string_agg(pg_temp.ft(e), ''::bytea ORDER BY n)
                                FROM unnest(a) WITH ORDINALITY AS u(e, n)), ''::bytea) END;
CREATE FUNCTION pg_temp.entry_hash(l autora.ledger) RETURNS bytea LANGUAGE sql STABLE
RETURN sha256(convert_to('autora-entry', 'UTF8')
    || pg_temp.fi(l.id) || pg_temp.fi(l.format) || pg_temp.ft(l.tenant_id) || pg_temp.fi(l.seq)
    || pg_temp.fi(l.xid) || pg_temp.fts(l.ts) || pg_temp.fts(l.stmt_ts)
    || pg_temp.ft(l.table_schema) || pg_temp.ft(l.table_name) || pg_temp.ft(l.op)
    || pg_temp.fj(l.pk) || pg_temp.fj(l.before) || pg_temp.fj(l.after) || pg_temp.fa(l.changed)
    || pg_temp.ft(l.actor_id) || pg_temp.ft(l.actor_role)
    || pg_temp.ft(l.db_session_user) || pg_temp.ft(l.db_current_user)
    || pg_temp.ft(CASE WHEN l.client_addr IS NOT NULL THEN format('%s', l.client_addr) END) || pg_temp.ft(l.application_name)
    || pg_temp.ft(l.user_agent) || pg_temp.ft(l.endpoint) || pg_temp.ft(l.method)
    || pg_temp.ft(l.request_id) || pg_temp.fi(l.support_session)
    || pg_temp.ft(l.event) || pg_temp.ft(l.entity_type) || pg_temp.ft(l.entity_id)
    || pg_temp.fj(l.metadata));
CREATE FUNCTION pg_temp.fia(a bigint[]) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN '\x01'::bytea || int4send(coalesce(cardinality(a), 0))
       || coalesce((SELECT string_agg(pg_temp.fi(e), ''::bytea ORDER BY n)
                      FROM unnest(a) WITH ORDINALITY AS u(e, n)), ''::bytea);
CREATE FUNCTION pg_temp.block_hash(b autora.ledger_blocks) RETURNS bytea LANGUAGE sql STABLE
RETURN sha256(convert_to('autora-block', 'UTF8')
    || pg_temp.fi(b.format) || pg_temp.ft(b.tenant_id) || pg_temp.fi(b.block_no)
    || pg_temp.fi(b.entry_count) || pg_temp.fi(b.first_entry) || pg_temp.fi(b.last_entry)
    || pg_temp.fts(b.sealed_at) || pg_temp.fr(b.merkle_root) || pg_temp.fr(b.prev_hash)
    || pg_temp.fi(b.seal_xmin) || pg_temp.fi(b.seal_xmax) || pg_temp.fia(b.seal_xip));
-- RFC 6962 Merkle tree hash over n concatenated 32-byte leaves
CREATE FUNCTION pg_temp.mth(h bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n int := length(h) / 32;
    k int := 1;
BEGIN
    IF n = 1 THEN
        RETURN sha256('\x00'::bytea || h);
    END IF;
    WHILE k * 2 < n LOOP
        k := k * 2;
    END LOOP;
    RETURN sha256('\x01'::bytea || pg_temp.mth(substring(h FROM 1 FOR 32 * k))
                                || pg_temp.mth(substring(h FROM 32 * k + 1)));
END
$$;

SELECT autora.add_tenant('chain_a', 'east', 'Chain A Motors');
SELECT autora.add_tenant('chain_b', 'east', 'Chain B Motors');
SELECT autora.add_tenant('chain_c', NULL, 'Chain C (no entries)');

CREATE TABLE ch_orders (id integer PRIMARY KEY, tenant_id text, amount numeric, tags text[]);
SELECT autora.protect('ch_orders');

-- committed entries of two tenants and the platform chain
BEGIN;
SELECT autora.set_context_trusted('chain_a', 'u-a', 'sales') IS NOT NULL AS context_set;
INSERT INTO ch_orders (id, amount, tags) VALUES (1, 10, '{new}'), (2, 20, NULL), (3, 30, '{}');
COMMIT;
BEGIN;
SELECT autora.set_context_trusted('chain_b', 'u-b', 'sales', '{"ip": "198.51.100.1"}') IS NOT NULL AS context_set;
INSERT INTO ch_orders (id, amount) VALUES (11, 110);
UPDATE ch_orders SET amount = 111, tags = '{"a b", NULL}' WHERE id = 11;
-- values whose canonical JSON text needs escaping, and numbers as numeric_out writes them
INSERT INTO ch_orders (id, amount, tags)
VALUES (14, -0.000100, ARRAY['"quoted"', 'back\slash', E'tab\there', E'new\nline', 'é 🚗', E'ctl\x01', '']);
SELECT autora.log_event('quote.sent', 'order', '11', '{"channel": "email"}') > 0 AS logged;
COMMIT;
BEGIN;
SELECT autora.set_context_trusted(NULL, 'ops', 'platform_owner') IS NOT NULL AS context_set;
SELECT autora.log_event('maintenance', metadata => '{"window": "sunday"}') > 0 AS logged;
-- a wide object (children past jsonb's offset stride of 32 and autora's 64-slot
-- offset buffer), nested arrays, and escapes inside long strings, at every
-- position of an 8-byte word, are hashed alike by the writer, verify and SQL
SELECT autora.log_event('bulk.import', metadata => (
         SELECT jsonb_object_agg('key ' || g,
                  CASE g % 4
                    WHEN 0 THEN to_jsonb(g * 1.5)
                    WHEN 1 THEN to_jsonb(repeat('x', g % 17) || E'"\\\n\t' || repeat('y', g))
                    WHEN 2 THEN jsonb_build_array(g, NULL, true, false, E'tab\tafter ' || repeat('z', g % 9))
                    ELSE jsonb_build_object('nested', repeat('w', g), 'ctl', E'\x01' || g)
                  END)
           FROM generate_series(1, 90) AS g)) > 0 AS logged;
COMMIT;
-- an aborted transaction leaves a gap in chain_a's numbering, nothing else
BEGIN;
SELECT autora.set_context_trusted('chain_a', 'u-a', 'sales') IS NOT NULL AS context_set;
INSERT INTO ch_orders (id, amount) VALUES (4, 40);
ROLLBACK;

-- every kind of column value in a row image (jsonb and json, nested and
-- escaped, a raw scalar, arrays, a composite, floats, NaN, booleans, a
-- timestamp, a type without a JSON form): the image is to_jsonb() of the row
-- (timestamps in UTC), and verify below hashes it as the writer did
CREATE TYPE ch_dims AS (len numeric, note text);
CREATE TABLE ch_specs (id integer PRIMARY KEY, tenant_id text, spec jsonb, raw json, dims ch_dims,
                       ok boolean, ratio float8, at timestamptz, price numeric, loc point);
SELECT autora.protect('ch_specs');
-- (and a client address other than the one of chain_b's entries before:
-- verify prints each address once per run of entries from it)
BEGIN;
SELECT autora.set_context_trusted('chain_b', 'u-b', 'sales', '{"ip": "2001:db8::7"}') IS NOT NULL AS context_set;
INSERT INTO ch_specs VALUES
  (1, 'chain_b', '{"b": [1, {"c": "x\"y"}], "a": null, "": 1.50}', '{"z": 1, "a": [true]}',
   ROW(4.5, 'wide "load"'), true, 0.1, '2024-02-29 12:00:00+05', 'NaN', '(1,2)'),
  (2, 'chain_b', '"scalar"', '3', NULL, false, 'Infinity', NULL, 12.30, NULL);
COMMIT;
BEGIN;
SET LOCAL TimeZone = 'UTC';
SELECT s.id, l.after = to_jsonb(s) AS image_is_to_jsonb, l.after->'spec' AS spec
  FROM autora.ledger l JOIN ch_specs s ON (l.pk->>'id')::int = s.id
 WHERE l.table_name = 'ch_specs' ORDER BY s.id;
COMMIT;

SELECT autora.seal() >= 0 AS sealed;

-- every tenant's chain verifies, the platform chain (tenant_id NULL) comes last;
-- a registered tenant without entries verifies too
SELECT tenant_id, ok, first_bad_entry, entries = sealed AS all_sealed, blocks >= 1 AS has_blocks,
       detail ~ '^chain verified: [0-9]+ entr(y|ies) in [0-9]+ blocks?$' AS detail_ok
  FROM autora.verify();
SELECT tenant_id, entries, sealed, blocks, ok, first_bad_entry, detail FROM autora.verify('chain_c');
SELECT tenant_id, entries, sealed, ok, first_bad_entry FROM autora.verify('chain_a');
SELECT tenant_id, entries, sealed, ok, first_bad_entry FROM autora.verify('chain_b');

-- a second batch, sealed separately, makes a second block in chain_a
BEGIN;
SELECT autora.set_context_trusted('chain_a', 'u-a2', 'dealer_admin') IS NOT NULL AS context_set;
INSERT INTO ch_orders (id, amount) VALUES (5, 50);
DELETE FROM ch_orders WHERE id = 1;
COMMIT;
SELECT autora.seal() >= 0 AS sealed;
SELECT tenant_id, entries, sealed, blocks >= 2 AS several_blocks, ok, first_bad_entry
  FROM autora.verify('chain_a');
-- seq 4 went with the aborted transaction: a gap, which verify accepts
SELECT array_agg(seq ORDER BY id) AS chain_a_seqs FROM autora.ledger WHERE tenant_id = 'chain_a';

-- block structure, per chain
SELECT tenant_id,
       min(block_no) = 1 AS starts_at_1,
       max(block_no) = count(*) AS contiguous,
       bool_and(CASE WHEN block_no = 1 THEN prev_hash = decode(repeat('00', 32), 'hex')
                     ELSE prev_hash = prev_block_hash END) AS linked,
       bool_and(length(merkle_root) = 32 AND length(block_hash) = 32 AND length(prev_hash) = 32)
         AS hash_lengths,
       bool_and(entry_count = cardinality(entry_ids) AND length(entry_hashes) = 32 * entry_count)
         AS counts_agree,
       bool_and(first_entry = entry_ids[1] AND last_entry = entry_ids[cardinality(entry_ids)])
         AS bounds_agree,
       bool_and(prev_last_entry IS NULL OR first_entry > prev_last_entry) AS blocks_ascending
  FROM (SELECT b.*, lag(b.block_hash) OVER w AS prev_block_hash,
               lag(b.last_entry) OVER w AS prev_last_entry
          FROM autora.ledger_blocks b
        WINDOW w AS (PARTITION BY b.tenant_id ORDER BY b.block_no)) b
 WHERE tenant_id IN ('chain_a', 'chain_b') OR tenant_id IS NULL
 GROUP BY tenant_id ORDER BY tenant_id;
-- every block's Merkle root and hash recompute from its contents
SELECT count(*) > 0 AS has_blocks,
       bool_and(b.merkle_root = pg_temp.mth(b.entry_hashes)) AS merkle_roots_match,
       bool_and(b.block_hash = pg_temp.block_hash(b)) AS block_hashes_match
  FROM autora.ledger_blocks b;
-- entry ids ascend within each block
SELECT count(*) AS unordered_blocks
  FROM autora.ledger_blocks b
 WHERE EXISTS (SELECT FROM unnest(b.entry_ids) WITH ORDINALITY AS u(id, n)
                WHERE n > 1 AND id <= b.entry_ids[n - 1]);
-- every entry is sealed exactly once, in its own tenant's chain, with its own hash
SELECT count(*) > 0 AS has_entries,
       count(*) FILTER (WHERE s.n <> 1) AS not_sealed_once,
       count(*) FILTER (WHERE s.same_tenant IS NOT TRUE) AS in_other_chain,
       count(*) FILTER (WHERE s.sealed_hash IS DISTINCT FROM l.hash) AS sealed_hash_differs
  FROM autora.ledger l
  LEFT JOIN LATERAL (
        SELECT count(*) AS n,
               bool_and(b.tenant_id IS NOT DISTINCT FROM l.tenant_id) AS same_tenant,
               (array_agg(substring(b.entry_hashes FROM 32 * (u.n - 1)::int + 1 FOR 32)))[1] AS sealed_hash
          FROM autora.ledger_blocks b, unnest(b.entry_ids) WITH ORDINALITY AS u(id, n)
         WHERE u.id = l.id) s ON true;
-- each entry's hash is SHA-256 of the documented encoding of all its fields
SELECT count(*) > 0 AS has_entries,
       count(*) FILTER (WHERE l.hash IS DISTINCT FROM pg_temp.entry_hash(l)) AS hashes_differ
  FROM autora.ledger l;

-- chain_status summarises verify with the head block
SELECT tenant_id, pending, head_block = blocks AS head_is_last, length(head_hash) AS head_hash_length,
       last_sealed_at IS NOT NULL AS has_sealed_at, ok
  FROM autora.chain_status WHERE tenant_id IN ('chain_a', 'chain_b', 'chain_c') OR tenant_id IS NULL
 ORDER BY tenant_id;

--
-- entries of a transaction still in progress are not sealed, even by a seal()
-- run inside that transaction: verify reports them pending (ok NULL)
--
BEGIN;
SELECT autora.set_context_trusted('chain_b', 'u-b', 'sales') IS NOT NULL AS context_set;
INSERT INTO ch_orders (id, amount) VALUES (12, 120), (13, 130);
SELECT autora.seal() >= 0 AS sealed;
SELECT count(*) AS own_entries,
       count(*) FILTER (WHERE EXISTS (SELECT FROM autora.ledger_blocks b WHERE l.id = ANY (b.entry_ids)))
         AS own_entries_sealed
  FROM autora.ledger l WHERE l.xid = pg_current_xact_id()::text::bigint;
SELECT tenant_id, entries - sealed AS pending, ok, first_bad_entry, detail
  FROM autora.verify('chain_b');
SELECT tenant_id, pending, ok FROM autora.chain_status WHERE tenant_id = 'chain_b';
-- the other chains are unaffected
SELECT tenant_id, ok FROM autora.verify('chain_a');
COMMIT;
SELECT autora.seal() >= 0 AS sealed;
SELECT tenant_id, entries - sealed AS pending, ok, first_bad_entry FROM autora.verify('chain_b');

-- verify of an unknown tenant
SELECT * FROM autora.verify('nonexistent');
\echo :SQLSTATE

-- after everything, every chain verifies
SELECT autora.seal() >= 0 AS sealed;
SELECT count(*) FILTER (WHERE ok IS NOT TRUE) AS chains_not_ok FROM autora.verify();

SELECT autora.clear_context();
SELECT autora.unprotect('ch_orders', 'regress cleanup');
DROP TABLE ch_orders;
