-- autora_audit 0.1: schema, ledger relations, roles and the SQL surface.
-- The C library (shared_preload_libraries = 'autora_audit') does the work:
-- capture triggers, hashing, sealing, verification and the guards.

\echo Use "CREATE EXTENSION autora_audit" to load this file. \quit

-- Refuse to install unless the library was preloaded: without it the guards
-- that make the ledger append-only are not in every backend.
CREATE FUNCTION autora._require_preload() RETURNS void
    AS 'MODULE_PATHNAME', 'autora_require_preload' LANGUAGE C STRICT;
SELECT autora._require_preload();
DROP FUNCTION autora._require_preload();

-- The schema is the extension's own: one made beforehand by a database
-- owner would let it create objects among autora's (a relation named like a
-- store's chain sequence, say).
DO $schema$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_class c
                WHERE c.relnamespace OPERATOR(pg_catalog.=) 'autora'::pg_catalog.regnamespace)
       OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
                 JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                WHERE n.nspname OPERATOR(pg_catalog.=) 'autora') THEN
        RAISE EXCEPTION 'schema autora exists already, with objects or an owner who is not a superuser'
            USING ERRCODE = '42501',
                  HINT = 'The schema is autora_audit''s own: drop it (or have a superuser own it, empty), then CREATE EXTENSION autora_audit again.';
    END IF;
END
$schema$;

-- Extension roles (cluster-wide, so only created when absent).
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['autora_admin', 'autora_auditor', 'autora_support', 'autora_trusted']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

GRANT USAGE ON SCHEMA autora TO PUBLIC;

------------------------------------------------------------------------------
-- Configuration: tenants and actor roles
------------------------------------------------------------------------------
-- A tenant id is at most 127 bytes (AUTORA_TENANT_ID_MAXLEN in
-- src/autora_audit.h, which sizes the C code's tenant-keyed buffers).
CREATE TABLE autora.tenants (
    tenant_id  text PRIMARY KEY CHECK (tenant_id <> '')
               CONSTRAINT tenants_tenant_id_length CHECK (pg_catalog.octet_length(tenant_id) <= 127),
    group_id   text,
    name       text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('autora.tenants', '');

CREATE TABLE autora.actor_roles (
    role     text PRIMARY KEY,
    scope    text NOT NULL CHECK (scope IN ('tenant', 'group', 'platform')),
    sees_pii boolean NOT NULL DEFAULT false
);
INSERT INTO autora.actor_roles (role, scope, sees_pii) VALUES
    ('platform_owner', 'platform', true),
    ('group_admin',    'group',    true),
    ('dealer_admin',   'tenant',   true),
    ('sales',          'tenant',   true),
    ('marketing',      'tenant',   false),
    ('support',        'tenant',   false);
-- the seeded roles are recreated by CREATE EXTENSION; dump only the others
SELECT pg_catalog.pg_extension_config_dump('autora.actor_roles',
    $$WHERE role NOT IN ('platform_owner', 'group_admin', 'dealer_admin', 'sales', 'marketing', 'support')$$);

-- Per-tenant entry numbering: one sequence per chain, non-transactional so
-- that writers of one tenant never wait for each other.  The platform chain
-- (entries without a tenant) has its own.
-- Each backend takes entry numbers 64 at a time: ids and per-tenant
-- sequence numbers rise within a session and may have gaps; block
-- membership, not numbering, is what verification relies on.
CREATE SEQUENCE autora.ledger_id_seq AS bigint CACHE 64;
CREATE SEQUENCE autora.chain_seq_platform AS bigint CACHE 64;
-- dumped with the ledger, so a restored ledger continues its numbering
SELECT pg_catalog.pg_extension_config_dump('autora.ledger_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('autora.chain_seq_platform', '');

------------------------------------------------------------------------------
-- The ledger.  Only the capture path and the sealer write these relations,
-- directly through the heap; SQL writes are refused by the library's guards.
-- The byte encoding hashed for each entry is documented in docs/ledger-format.md.
------------------------------------------------------------------------------
CREATE TABLE autora.ledger (
    id               bigint      NOT NULL,
    format           smallint    NOT NULL,
    tenant_id        text,
    seq              bigint      NOT NULL,
    xid              bigint      NOT NULL,
    ts               timestamptz NOT NULL,
    stmt_ts          timestamptz NOT NULL,
    table_schema     text,
    table_name       text,
    op               text        NOT NULL,
    pk               jsonb,
    before           jsonb,
    after            jsonb,
    changed          text[],
    actor_id         text,
    actor_role       text,
    db_session_user  text        NOT NULL,
    db_current_user  text        NOT NULL,
    client_addr      inet,
    application_name text,
    user_agent       text,
    endpoint         text,
    method           text,
    request_id       text,
    support_session  bigint,
    event            text,
    entity_type      text,
    entity_id        text,
    metadata         jsonb,
    hash             bytea       NOT NULL
);
-- No query plan depends on the row images, their context or hashes: ANALYZE
-- skips them, so that autovacuum's ANALYZE of a busy ledger does not sort
-- thousands of jsonb values (it took 2% of the server's CPU under pgbench).
ALTER TABLE autora.ledger
    ALTER COLUMN pk SET STATISTICS 0,
    ALTER COLUMN before SET STATISTICS 0,
    ALTER COLUMN after SET STATISTICS 0,
    ALTER COLUMN changed SET STATISTICS 0,
    ALTER COLUMN metadata SET STATISTICS 0,
    ALTER COLUMN hash SET STATISTICS 0;
-- Ids come from a sequence and rise, and so do transaction ids: one BRIN
-- index over both finds an id, or the sealer's new entries (src/chain.c),
-- among a few pages.  It costs writers next to nothing (one revmap lookup
-- per entry; the newest, unsummarised pages, the ones the sealer wants, stay
-- in view), where a btree primary key cost as much as the audited table's
-- own.  autora.verify() checks that ids are unique.
-- The sealer summarizes the ranges as they fill (src/summarize.c).
CREATE INDEX ledger_id_xid_idx ON autora.ledger USING brin (id, xid)
    WITH (pages_per_range = 16);
SELECT pg_catalog.pg_extension_config_dump('autora.ledger', '');

CREATE TABLE autora.ledger_blocks (
    block_id     bigint      NOT NULL,
    tenant_id    text,
    block_no     bigint      NOT NULL,
    sealed_at    timestamptz NOT NULL,
    entry_count  integer     NOT NULL,
    first_entry  bigint      NOT NULL,
    last_entry   bigint      NOT NULL,
    entry_ids    bigint[]    NOT NULL,
    entry_hashes bytea       NOT NULL,
    merkle_root  bytea       NOT NULL,
    prev_hash    bytea       NOT NULL,
    block_hash   bytea       NOT NULL,
    seal_xmin    bigint      NOT NULL,
    seal_xmax    bigint      NOT NULL,
    seal_xip     bigint[]    NOT NULL,
    format       smallint    NOT NULL,
    CONSTRAINT ledger_blocks_pkey PRIMARY KEY (block_id),
    CONSTRAINT ledger_blocks_chain_key UNIQUE NULLS NOT DISTINCT (tenant_id, block_no)
);
-- entry hashes are random bytes: pglz would try (and fail) to compress every
-- block's list, which was 2% of the server's CPU under pgbench; entry_ids,
-- rising numbers, do compress
ALTER TABLE autora.ledger_blocks ALTER COLUMN entry_hashes SET STORAGE EXTERNAL;
SELECT pg_catalog.pg_extension_config_dump('autora.ledger_blocks', '');

-- Clear values of PII columns, one row per entry whose images hold PII, with
-- the random salt of that entry's commitments (src/vault.c).  Erasable without
-- breaking the chain; once a row is gone its commitments cannot be opened.
CREATE TABLE autora.pii_vault (
    entry_id  bigint NOT NULL,
    tenant_id text,
    salt      bytea NOT NULL,
    clear     jsonb NOT NULL
);
ALTER TABLE autora.pii_vault ALTER COLUMN clear SET STATISTICS 0;
-- Written with the entries, in id order: BRIN, as for the ledger (a btree
-- primary key was 5% of a bulk INSERT).  Only autora writes it.
CREATE INDEX pii_vault_entry_idx ON autora.pii_vault USING brin (entry_id)
    WITH (pages_per_range = 16);
SELECT pg_catalog.pg_extension_config_dump('autora.pii_vault', '');

-- The ledger's xid space (src/restore.c): what the ledger adds to the
-- FullTransactionIds it records, 0 unless the ledger was restored into a
-- cluster whose transaction counter was behind the source's.  At most one
-- row; dumped with the ledger, so that its numbering keeps rising.
CREATE TABLE autora.xid_base (
    base bigint NOT NULL CHECK (base >= 0 AND base < 4611686018427387904)  -- 2^62
);
SELECT pg_catalog.pg_extension_config_dump('autora.xid_base', '');

-- A restore under way (never dumped): sealing waits for restore_finish().
CREATE TABLE autora.restore_state (
    started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_by text NOT NULL
);

------------------------------------------------------------------------------
-- Registry of protected tables and schemas
------------------------------------------------------------------------------
CREATE TABLE autora.protected (
    relid           regclass PRIMARY KEY,
    tenant_column   name,    -- NULL: a platform table (protect(..., platform => true))
    pii_columns     name[]   NOT NULL DEFAULT '{}',
    exclude_columns name[]   NOT NULL DEFAULT '{}',
    protected_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    protected_by    text     NOT NULL DEFAULT CURRENT_USER,
    -- row level security as it was before the first protect(), restored by unprotect()
    rls_before      boolean  NOT NULL DEFAULT false,
    force_before    boolean  NOT NULL DEFAULT false,
    -- the columns (attribute numbers) the last protect() saw: a column added
    -- since is captured as an ordinary one and listed by autora.coverage
    reviewed_columns smallint[] NOT NULL DEFAULT '{}'
);
SELECT pg_catalog.pg_extension_config_dump('autora.protected', '');

CREATE TABLE autora.protected_schemas (
    schema_name   name PRIMARY KEY,
    tenant_column name NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('autora.protected_schemas', '');

-- Keys: HS256 secrets and Ed25519 public keys verify context tokens;
-- EdDSA-sign private keys sign digests.  Never readable by application roles:
-- set_context reads them from C.  Created last: the library looks for the
-- whole set of autora relations and treats a partial set as "installing".
CREATE TABLE autora.keys (
    kid        text PRIMARY KEY CHECK (kid <> ''),
    alg        text NOT NULL CHECK (alg IN ('HS256', 'EdDSA', 'EdDSA-sign')),
    key        text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    revoked_at timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('autora.keys', '');

------------------------------------------------------------------------------
-- Session context (src/context.c)
------------------------------------------------------------------------------
CREATE FUNCTION autora.set_context_trusted(tenant text, actor text, role text,
                                           extra jsonb DEFAULT '{}',
                                           is_local boolean DEFAULT true)
RETURNS jsonb AS 'MODULE_PATHNAME', 'autora_set_context_trusted'
LANGUAGE C VOLATILE;

CREATE FUNCTION autora.set_context(token text, is_local boolean DEFAULT true)
RETURNS jsonb AS 'MODULE_PATHNAME', 'autora_set_context'
LANGUAGE C VOLATILE;

CREATE FUNCTION autora._check_key(alg text, key text) RETURNS void
AS 'MODULE_PATHNAME', 'autora_check_key' LANGUAGE C STRICT;

CREATE FUNCTION autora.add_key(kid text, alg text, key text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF kid IS NULL OR kid = '' OR alg IS NULL OR key IS NULL THEN
        RAISE EXCEPTION 'kid, alg and key are required'
            USING ERRCODE = '22023', HINT = 'e.g. autora.add_key(''app-2026'', ''HS256'', ''<at least 32 random bytes>'').';
    END IF;
    PERFORM autora._check_key(alg, key);
    INSERT INTO autora.keys AS k (kid, alg, key) VALUES (add_key.kid, add_key.alg, add_key.key)
    ON CONFLICT ON CONSTRAINT keys_pkey DO UPDATE
        SET alg = EXCLUDED.alg, key = EXCLUDED.key, created_at = now(), revoked_at = NULL;
END
$$;

CREATE FUNCTION autora.revoke_key(kid text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE autora.keys k SET revoked_at = now() WHERE k.kid = revoke_key.kid AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active key "%"', kid
            USING ERRCODE = '42704', HINT = 'See autora.keys for the registered keys.';
    END IF;
END
$$;

CREATE FUNCTION autora.clear_context() RETURNS void
AS 'MODULE_PATHNAME', 'autora_clear_context' LANGUAGE C VOLATILE;

CREATE FUNCTION autora.tenant() RETURNS text
AS 'MODULE_PATHNAME', 'autora_tenant' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora.actor() RETURNS text
AS 'MODULE_PATHNAME', 'autora_actor' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora.actor_role() RETURNS text
AS 'MODULE_PATHNAME', 'autora_actor_role' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora.context() RETURNS jsonb
AS 'MODULE_PATHNAME', 'autora_context' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora.visible_tenants() RETURNS text[]
AS 'MODULE_PATHNAME', 'autora_visible_tenants' LANGUAGE C STABLE PARALLEL SAFE;

-- Typed visible-tenant lists for the policies of protected tables; an
-- auditor without a context sees every store (src/scope.c).
CREATE FUNCTION autora._visible_text() RETURNS text[]
AS 'MODULE_PATHNAME', 'autora_visible_text' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora._visible_int4() RETURNS integer[]
AS 'MODULE_PATHNAME', 'autora_visible_int4' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora._visible_int8() RETURNS bigint[]
AS 'MODULE_PATHNAME', 'autora_visible_int8' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora._visible_uuid() RETURNS uuid[]
AS 'MODULE_PATHNAME', 'autora_visible_uuid' LANGUAGE C STABLE PARALLEL SAFE;

-- The context tenant, typed, for the write policies (NULL refuses the write).
CREATE FUNCTION autora._own_text() RETURNS text
AS 'MODULE_PATHNAME', 'autora_own_text' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora._own_int4() RETURNS integer
AS 'MODULE_PATHNAME', 'autora_own_int4' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora._own_int8() RETURNS bigint
AS 'MODULE_PATHNAME', 'autora_own_int8' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION autora._own_uuid() RETURNS uuid
AS 'MODULE_PATHNAME', 'autora_own_uuid' LANGUAGE C STABLE PARALLEL SAFE;

------------------------------------------------------------------------------
-- Tenants
------------------------------------------------------------------------------
-- Name of a tenant's chain sequence (a digest, as tenant ids are free text).
CREATE FUNCTION autora._chain_seq_name(tenant text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 'chain_seq_' || pg_catalog.substr(pg_catalog.encode(
           pg_catalog.sha256(pg_catalog.convert_to(tenant, 'UTF8')), 'hex'), 1, 32);

CREATE FUNCTION autora.add_tenant(tenant_id text, group_id text DEFAULT NULL,
                                  name text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tenant_id IS NULL OR tenant_id = '' THEN
        RAISE EXCEPTION 'tenant id must not be empty'
            USING ERRCODE = '22023', HINT = 'Pass the store id, e.g. autora.add_tenant(''101'', ''north'', ''Main St Motors'').';
    END IF;
    IF pg_catalog.octet_length(tenant_id) > 127 THEN
        RAISE EXCEPTION 'tenant id is too long'
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('It is %s bytes long in the database encoding.',
                                             pg_catalog.octet_length(tenant_id)),
                  HINT = 'Use a store id of at most 127 bytes.';
    END IF;
    INSERT INTO autora.tenants AS t (tenant_id, group_id, name)
    VALUES (add_tenant.tenant_id, add_tenant.group_id, add_tenant.name)
    ON CONFLICT ON CONSTRAINT tenants_pkey DO UPDATE
        SET group_id = EXCLUDED.group_id, name = EXCLUDED.name;
    IF to_regclass(format('autora.%I', autora._chain_seq_name(add_tenant.tenant_id))) IS NULL THEN
        EXECUTE format('CREATE SEQUENCE autora.%I AS bigint CACHE 64',
                       autora._chain_seq_name(add_tenant.tenant_id));
    ELSIF (SELECT c.relkind FROM pg_class c
            WHERE c.oid = to_regclass(format('autora.%I', autora._chain_seq_name(add_tenant.tenant_id))))
          <> 'S' THEN
        RAISE EXCEPTION 'the chain sequence name of tenant "%" is taken by another object', add_tenant.tenant_id
            USING ERRCODE = '55000',
                  HINT = format('A superuser should look at autora.%I: only autora creates objects in its schema.',
                                autora._chain_seq_name(add_tenant.tenant_id));
    END IF;
END
$$;

------------------------------------------------------------------------------
-- Capture (src/capture.c) and protection (src/protect.c)
------------------------------------------------------------------------------
CREATE FUNCTION autora.capture_row() RETURNS trigger
AS 'MODULE_PATHNAME', 'autora_capture_row' LANGUAGE C;
CREATE FUNCTION autora.capture_truncate() RETURNS trigger
AS 'MODULE_PATHNAME', 'autora_capture_truncate' LANGUAGE C;
CREATE FUNCTION autora.stamp_tenant() RETURNS trigger
AS 'MODULE_PATHNAME', 'autora_stamp_tenant' LANGUAGE C;
CREATE FUNCTION autora.flush_entries() RETURNS trigger
AS 'MODULE_PATHNAME', 'autora_flush_entries' LANGUAGE C;

-- Backends cache tenant and actor-role lookups (src/scope.c); any change to
-- those tables invalidates the caches, in every backend, when it commits.
CREATE FUNCTION autora._registry_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'autora_registry_changed' LANGUAGE C;
CREATE TRIGGER autora_registry_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON autora.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION autora._registry_changed();
CREATE TRIGGER autora_registry_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON autora.actor_roles
    FOR EACH STATEMENT EXECUTE FUNCTION autora._registry_changed();
-- also under session_replication_role = replica (logical replication, restores)
ALTER TABLE autora.tenants ENABLE ALWAYS TRIGGER autora_registry_changed;
ALTER TABLE autora.actor_roles ENABLE ALWAYS TRIGGER autora_registry_changed;

CREATE FUNCTION autora.protect(tbl regclass, tenant_column name DEFAULT NULL,
                               pii_columns name[] DEFAULT '{}',
                               exclude_columns name[] DEFAULT '{}',
                               platform boolean DEFAULT false)
RETURNS void AS 'MODULE_PATHNAME', 'autora_protect'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION autora.unprotect(tbl regclass, reason text)
RETURNS void AS 'MODULE_PATHNAME', 'autora_unprotect'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- The registry is written only by autora's own code (the guards refuse
-- any other write, superusers included).
CREATE FUNCTION autora._register_schema(schema name, tenant_column name) RETURNS void
AS 'MODULE_PATHNAME', 'autora_register_schema' LANGUAGE C STRICT;

CREATE FUNCTION autora.protect_schema(schema name, tenant_column name DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name := coalesce(tenant_column, current_setting('autora.tenant_column')::name);
    rel regclass;
    n integer := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = schema) THEN
        RAISE EXCEPTION 'schema "%" does not exist', schema
            USING ERRCODE = '3F000', HINT = 'Create the schema first, or check the spelling.';
    END IF;
    PERFORM autora._register_schema(schema, col);
    FOR rel IN
        SELECT c.oid::regclass
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = col AND NOT a.attisdropped
         WHERE n.nspname = schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           -- tables protected already keep their options (PII columns included)
           AND autora._protected_root(c.oid::regclass) IS NULL
         ORDER BY c.oid
    LOOP
        PERFORM autora.protect(rel, col);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION autora._protect_partitions(rel regclass) RETURNS boolean
AS 'MODULE_PATHNAME', 'autora_protect_partitions'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Protects tables created later in a schema registered with protect_schema,
-- and new or attached partitions of protected partitioned tables.
CREATE FUNCTION autora._protect_new_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd record;
    col name;
BEGIN
    -- pg_restore recreates triggers and policies itself; the setting is
    -- unknown while the library is not loaded (a restart without it)
    IF coalesce(current_setting('autora.restore_mode', true), 'off')::boolean THEN
        RETURN;
    END IF;
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE object_type = 'table'
    LOOP
        -- the tenant column of the table's schema, if protect_schema() registered it
        SELECT p.tenant_column INTO col
          FROM autora.protected_schemas p
         WHERE p.schema_name = cmd.schema_name;
        IF col IS NOT NULL
           AND NOT EXISTS (SELECT FROM pg_attribute
                            WHERE attrelid = cmd.objid AND attname = col AND NOT attisdropped) THEN
            col := NULL;
        END IF;
        -- a table with a store's rows must not join a platform table's tree,
        -- which has neither row level security nor a tenant to stamp
        IF col IS NOT NULL AND EXISTS (SELECT FROM autora.protected p
                                        WHERE p.relid = autora._protected_root(cmd.objid::regclass)
                                          AND p.tenant_column IS NULL) THEN
            RAISE EXCEPTION 'table % has tenant column % but would be protected as a member of platform table %',
                            cmd.object_identity, col, autora._protected_root(cmd.objid::regclass)
                USING ERRCODE = '42501',
                      DETAIL = 'A platform table''s tree has no row level security: every store''s rows would be readable without a context.',
                      HINT = 'Create it without inheriting from the platform table.';
        END IF;
        -- a partition or inheritance child of a protected table (also attached later)
        CONTINUE WHEN autora._protect_partitions(cmd.objid::regclass);
        CONTINUE WHEN cmd.command_tag NOT IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO');
        CONTINUE WHEN col IS NULL;
        PERFORM autora.protect(cmd.objid::regclass, col);
    END LOOP;
END
$$;
CREATE EVENT TRIGGER autora_protect_new_tables ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION autora._protect_new_tables();
-- also under session_replication_role = replica: new partitions get their
-- row triggers from it
ALTER EVENT TRIGGER autora_protect_new_tables ENABLE ALWAYS;

CREATE VIEW autora.protected_tables AS
SELECT p.relid,
       n.nspname AS table_schema,
       c.relname AS table_name,
       p.tenant_column,
       p.tenant_column IS NULL AS platform,
       p.pii_columns,
       p.exclude_columns,
       c.relrowsecurity AS rls_enabled,
       c.relforcerowsecurity AS rls_forced,
       -- every member of the tree that holds rows has the capture trigger, enabled
       NOT EXISTS (WITH RECURSIVE tree(relid) AS (
                       SELECT c.oid
                       UNION ALL
                       SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid)
                   SELECT FROM tree JOIN pg_class m ON m.oid = tree.relid
                    WHERE m.relkind <> 'p'
                      AND NOT EXISTS (SELECT FROM pg_trigger t
                                       WHERE t.tgrelid = m.oid AND t.tgenabled = 'A'
                                         AND t.tgfoid = 'autora.capture_row()'::regprocedure))
           AS capture_enabled,
       p.protected_at,
       p.protected_by
  FROM autora.protected p
  JOIN pg_class c ON c.oid = p.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace;

-- The protected table whose protection covers a table (itself, or the
-- protected ancestor of a partition or inheritance child); NULL if none.
CREATE FUNCTION autora._protected_root(rel regclass) RETURNS regclass
AS 'MODULE_PATHNAME', 'autora_protected_root' LANGUAGE C STRICT STABLE;

-- What is not audited, and how to fix it: one row per table of the user
-- schemas (partitions are covered by their root's row).
CREATE VIEW autora.coverage AS
WITH t AS (
    SELECT c.oid AS relid, n.nspname AS table_schema, c.relname AS table_name,
           pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified,
           c.relforcerowsecurity AS rls_forced,
           autora._protected_root(c.oid::pg_catalog.regclass) AS root
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'autora')
       AND n.nspname NOT LIKE 'pg\_%'
), s AS (
    SELECT t.*, p.tenant_column, p.pii_columns, p.exclude_columns, p.relid IS NOT NULL AS registered,
           -- every member of the tree that holds rows has the capture trigger, enabled
           t.root IS NOT NULL AND NOT EXISTS (
               WITH RECURSIVE tree(relid) AS (
                   SELECT t.relid
                   UNION ALL
                   SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid)
               SELECT FROM tree JOIN pg_catalog.pg_class m ON m.oid = tree.relid
                WHERE m.relkind <> 'p'
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                                   WHERE g.tgrelid = m.oid AND g.tgenabled = 'A'
                                     AND g.tgfoid = 'autora.capture_row()'::pg_catalog.regprocedure))
               AS capture_enabled,
           -- columns whose names the last protect() of the root did not see
           ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
                    AND t.root IS NOT NULL
                    AND a.attname NOT IN (SELECT r.attname FROM pg_catalog.pg_attribute r
                                           WHERE r.attrelid = t.root AND r.attnum = ANY (p.reviewed_columns)
                                             AND NOT r.attisdropped)
                  ORDER BY a.attnum) AS unreviewed_columns,
           -- windows between an unprotect() and the next protect(), from the
           -- protection events of the platform chain
           (SELECT pg_catalog.string_agg(pg_catalog.format('unprotected from %s to %s (%s)', u.ts,
                                                          coalesce(r.ts::text, 'now'), u.metadata->>'reason'),
                                        '; ' ORDER BY u.id)
              FROM autora.ledger u
              LEFT JOIN LATERAL (SELECT l.ts FROM autora.ledger l
                                  WHERE l.op = 'EVENT' AND l.event = 'protect' AND l.tenant_id IS NULL
                                    AND (l.metadata->>'relid' = u.metadata->>'relid' OR l.entity_id = u.entity_id)
                                    AND l.id > u.id ORDER BY l.id LIMIT 1) r ON true
             WHERE u.op = 'EVENT' AND u.event = 'unprotect' AND u.tenant_id IS NULL
               -- by relid, which survives renames; by name for events without one
               AND (u.metadata->>'relid' = t.relid::text
                    OR (u.metadata->>'relid' IS NULL AND u.entity_id = t.qualified))) AS windows
      FROM t LEFT JOIN autora.protected p ON p.relid = t.root
), g AS (
    SELECT s.*,
           pg_catalog.array_remove(ARRAY[
               CASE WHEN root IS NULL THEN 'not protected' END,
               CASE WHEN root IS NOT NULL AND tenant_column IS NOT NULL AND NOT rls_forced
                    THEN 'row level security is not forced' END,
               CASE WHEN root IS NOT NULL AND NOT capture_enabled THEN 'capture is not enabled on every member' END,
               CASE WHEN pg_catalog.cardinality(unreviewed_columns) > 0
                    THEN 'columns added since protect() await review: '
                         || pg_catalog.array_to_string(unreviewed_columns, ', ') END,
               windows], NULL) AS gaps,
           -- protect() again, with the registered options: it restores what is
           -- missing and marks the columns reviewed (add new PII columns first)
           CASE WHEN registered AND tenant_column IS NULL
                THEN pg_catalog.format('SELECT autora.protect(%L, pii_columns => %L, exclude_columns => %L, platform => true);',
                                       qualified, pii_columns, exclude_columns)
                WHEN registered
                THEN pg_catalog.format('SELECT autora.protect(%L, %L, %L, %L);',
                                       qualified, tenant_column, pii_columns, exclude_columns)
                WHEN root IS NOT NULL
                THEN pg_catalog.format('-- protected with %s: fix it there', root)
                WHEN EXISTS (SELECT FROM pg_catalog.pg_attribute a
                              WHERE a.attrelid = relid AND NOT a.attisdropped
                                AND a.attname = pg_catalog.current_setting('autora.tenant_column'))
                THEN pg_catalog.format('SELECT autora.protect(%L);', qualified)
                ELSE pg_catalog.format('SELECT autora.protect(%L, tenant_column => ''<its tenant column>''); -- or platform => true if it holds no store''s rows', qualified)
           END AS repair
      FROM s
)
SELECT table_schema, table_name, tenant_column,
       root IS NOT NULL AS protected, rls_forced, capture_enabled,
       unreviewed_columns,
       CASE WHEN pg_catalog.cardinality(gaps) > 0 THEN pg_catalog.array_to_string(gaps, '; ') END AS gap,
       CASE WHEN pg_catalog.cardinality(gaps) > 0 AND (gaps <> ARRAY[windows] OR windows IS NULL)
            THEN repair END AS fix
  FROM g;

------------------------------------------------------------------------------
-- Events, sealing, verification (src/ledger.c, src/chain.c, src/verify.c)
------------------------------------------------------------------------------
CREATE FUNCTION autora.log_event(event text, entity_type text DEFAULT NULL,
                                 entity_id text DEFAULT NULL,
                                 metadata jsonb DEFAULT '{}')
RETURNS bigint AS 'MODULE_PATHNAME', 'autora_log_event' LANGUAGE C VOLATILE;

-- Asks this database's background sealer for a round and waits for it
-- (src/sealer.c): the caller's transaction takes no lock, so holding it open
-- stalls nobody's sealing.
-- The end of a restore (README, "Restore"); superusers only.
CREATE FUNCTION autora.restore_finish() RETURNS jsonb
AS 'MODULE_PATHNAME', 'autora_restore_finish' LANGUAGE C VOLATILE;

CREATE FUNCTION autora.seal() RETURNS bigint
AS 'MODULE_PATHNAME', 'autora_seal' LANGUAGE C VOLATILE;

-- The background sealer, per database of the cluster: its worker, whether it
-- waits for a background worker slot, its last round and last error.
CREATE FUNCTION autora._sealer_status(
    OUT datid oid, OUT datname name, OUT pid integer, OUT state text,
    OUT waiting_since timestamptz, OUT last_round_at timestamptz,
    OUT last_round_sealed bigint, OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'autora_sealer_status' LANGUAGE C VOLATILE;
CREATE VIEW autora.sealer_status AS
SELECT s.datid, s.datname, s.pid, s.state, s.waiting_since, s.last_round_at,
       s.last_round_sealed, s.last_error, s.last_error_at
  FROM autora._sealer_status() s;

CREATE FUNCTION autora.verify(tenant text DEFAULT NULL)
RETURNS TABLE (tenant_id text, entries bigint, sealed bigint, blocks bigint,
               ok boolean, first_bad_entry bigint, detail text)
AS 'MODULE_PATHNAME', 'autora_verify' LANGUAGE C STABLE;

CREATE VIEW autora.chain_status AS
SELECT v.tenant_id, v.entries, v.sealed, v.entries - v.sealed AS pending, v.blocks,
       b.block_no AS head_block, b.block_hash AS head_hash, b.sealed_at AS last_sealed_at,
       v.ok, v.first_bad_entry, v.detail
  FROM autora.verify() v
  LEFT JOIN LATERAL (SELECT lb.block_no, lb.block_hash, lb.sealed_at
                       FROM autora.ledger_blocks lb
                      WHERE lb.tenant_id IS NOT DISTINCT FROM v.tenant_id
                      ORDER BY lb.block_no DESC LIMIT 1) b ON true;

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA autora FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA autora FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA autora FROM PUBLIC;

-- Readers and the context setters are for everyone: the readers run inside
-- every policy, and set_context_trusted checks autora_trusted membership itself.
GRANT EXECUTE ON FUNCTION autora.tenant(), autora.actor(), autora.actor_role(),
                          autora.context(), autora.clear_context(),
                          autora.visible_tenants(), autora._visible_text(),
                          autora._visible_int4(), autora._visible_int8(),
                          autora._visible_uuid(), autora._own_text(),
                          autora._own_int4(), autora._own_int8(), autora._own_uuid(),
                          autora.set_context(text, boolean),
                          autora.set_context_trusted(text, text, text, jsonb, boolean),
                          autora.log_event(text, text, text, jsonb),
                          autora._chain_seq_name(text)
      TO PUBLIC;
-- The trigger functions are not executable by PUBLIC: PostgreSQL checks
-- EXECUTE when a trigger is created, so nobody attaches them to a table of
-- their own (protect() creates them as the extension owner; partitions get
-- theirs cloned by PostgreSQL).  They act only on registered tables anyway.
-- Application roles do not see the list of stores (set_context reads it
-- from C); role definitions are not sensitive.
GRANT SELECT ON autora.actor_roles TO PUBLIC;
GRANT SELECT ON autora.tenants TO autora_admin, autora_auditor;

GRANT EXECUTE ON FUNCTION autora.protect(regclass, name, name[], name[], boolean),
                          autora.unprotect(regclass, text),
                          autora.protect_schema(name, name),
                          autora.add_tenant(text, text, text),
                          autora.add_key(text, text, text),
                          autora.revoke_key(text),
                          autora.seal()
      TO autora_admin;
GRANT SELECT ON autora.protected, autora.protected_schemas, autora.protected_tables,
                autora.coverage
      TO autora_admin, autora_auditor;
GRANT EXECUTE ON FUNCTION autora._protected_root(regclass) TO autora_admin, autora_auditor;
GRANT SELECT (kid, alg, created_at, revoked_at) ON autora.keys TO autora_admin;

GRANT SELECT ON autora.ledger, autora.ledger_blocks, autora.chain_status TO autora_auditor;
GRANT EXECUTE ON FUNCTION autora.verify(text), autora.seal() TO autora_auditor;
GRANT SELECT ON autora.sealer_status TO autora_admin, autora_auditor;
GRANT EXECUTE ON FUNCTION autora._sealer_status() TO autora_admin, autora_auditor;
