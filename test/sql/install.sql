--
-- install: CREATE EXTENSION in a fresh database, the roles, objects, seeds,
-- privileges and configuration defaults it brings.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset null '(null)'

-- nothing of autora exists before CREATE EXTENSION
SELECT count(*) AS autora_schemas FROM pg_namespace WHERE nspname = 'autora';

CREATE EXTENSION autora_audit;

SELECT e.extname, n.nspname AS schema, e.extrelocatable, e.extversion
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'autora_audit';

-- a second CREATE EXTENSION fails; IF NOT EXISTS only notices
CREATE EXTENSION autora_audit;
\echo :SQLSTATE
CREATE EXTENSION IF NOT EXISTS autora_audit;

-- the extension roles: NOLOGIN, no special attributes
SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolinherit
  FROM pg_roles WHERE rolname LIKE 'autora\_%' ORDER BY rolname;

-- relations of the autora schema, and that they belong to the extension
-- (indexes belong to their tables, not to the extension directly)
SELECT c.relname, c.relkind,
       EXISTS (SELECT FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'autora_audit'))
         AS extension_member
  FROM pg_class c
 WHERE c.relnamespace = 'autora'::regnamespace
   AND c.relname IN ('tenants', 'actor_roles', 'ledger', 'ledger_blocks', 'protected',
                     'protected_schemas', 'protected_tables', 'chain_status',
                     'ledger_id_seq', 'ledger_block_id_seq', 'chain_seq_platform',
                     'ledger_id_xid_idx', 'ledger_blocks_pkey', 'ledger_blocks_chain_key',
                     'pii_vault', 'keys')
 ORDER BY c.relname;

-- the ledger's columns (the entry format), in order
SELECT attnum, attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute
 WHERE attrelid = 'autora.ledger'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

SELECT attnum, attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute
 WHERE attrelid = 'autora.ledger_blocks'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- the SQL surface of this version
SELECT sig, to_regprocedure(sig) IS NOT NULL AS present
  FROM (VALUES ('autora.add_tenant(text,text,text)'),
               ('autora.set_context(text,boolean)'),
               ('autora.set_context_trusted(text,text,text,jsonb,boolean)'),
               ('autora.add_key(text,text,text)'),
               ('autora.clear_context()'),
               ('autora.visible_tenants()'),
               ('autora.tenant()'),
               ('autora.actor()'),
               ('autora.actor_role()'),
               ('autora.context()'),
               ('autora.protect(regclass,name,name[],name[],boolean)'),
               ('autora.unprotect(regclass,text)'),
               ('autora.protect_schema(name,name)'),
               ('autora.log_event(text,text,text,jsonb)'),
               ('autora.seal()'),
               ('autora.verify(text)')) AS f(sig)
 ORDER BY sig;

-- the readers are fast C functions usable inside policies
SELECT p.proname, p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') AS is_c,
       p.provolatile, p.proparallel
  FROM pg_proc p
 WHERE p.pronamespace = 'autora'::regnamespace
   AND p.proname IN ('tenant', 'actor', 'actor_role', 'context', 'visible_tenants')
 ORDER BY p.proname;

-- protect / unprotect / protect_schema run as the extension owner with a safe search_path
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.oid IN ('autora.protect(regclass,name,name[],name[],boolean)'::regprocedure,
                 'autora.unprotect(regclass,text)'::regprocedure,
                 'autora.protect_schema(name,name)'::regprocedure,
                 'autora.add_tenant(text,text,text)'::regprocedure)
 ORDER BY p.oid::regprocedure::text;

-- the event trigger that protects tables created later in protected schemas
SELECT evtname, evtevent, evtenabled, evttags FROM pg_event_trigger
 WHERE evtfoid = 'autora._protect_new_tables()'::regprocedure;

-- seeds
SELECT role, scope, sees_pii FROM autora.actor_roles ORDER BY role;
SELECT count(*) AS tenants FROM autora.tenants;
SELECT count(*) AS ledger_entries FROM autora.ledger;
SELECT count(*) AS ledger_blocks FROM autora.ledger_blocks;
SELECT count(*) AS protected FROM autora.protected_tables;
SELECT count(*) AS vault_rows FROM autora.pii_vault;
-- the PII vault's columns: each row keeps its entry's salt with the clear values
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute WHERE attrelid = 'autora.pii_vault'::regclass AND attnum > 0 ORDER BY attnum;
SELECT * FROM autora.verify();
SELECT * FROM autora.chain_status;

-- privileges: PUBLIC reads the actor roles, not the stores nor the ledger;
-- the extension roles get what the contract gives them
CREATE ROLE regress_inst_nobody NOLOGIN;
SELECT r.rolname, t.tbl,
       has_table_privilege(r.rolname, t.tbl, 'SELECT') AS sel,
       has_table_privilege(r.rolname, t.tbl, 'INSERT') AS ins,
       has_table_privilege(r.rolname, t.tbl, 'UPDATE') AS upd,
       has_table_privilege(r.rolname, t.tbl, 'DELETE') AS del
  FROM (VALUES ('regress_inst_nobody'), ('autora_admin'), ('autora_auditor')) AS r(rolname),
       (VALUES ('autora.ledger'), ('autora.ledger_blocks'), ('autora.tenants'),
               ('autora.actor_roles'), ('autora.protected_tables'),
               ('autora.pii_vault'), ('autora.keys')) AS t(tbl)
 ORDER BY 1, 2;
SELECT r.rolname, f.fn, has_function_privilege(r.rolname, f.fn, 'EXECUTE') AS exec
  FROM (VALUES ('regress_inst_nobody'), ('autora_admin'), ('autora_auditor')) AS r(rolname),
       (VALUES ('autora.protect(regclass,name,name[],name[],boolean)'),
               ('autora.unprotect(regclass,text)'),
               ('autora.protect_schema(name,name)'),
               ('autora.add_tenant(text,text,text)'),
               ('autora.seal()'),
               ('autora.verify(text)'),
               ('autora.set_context_trusted(text,text,text,jsonb,boolean)'),
               ('autora.set_context(text,boolean)'),
               ('autora.tenant()'),
               ('autora.log_event(text,text,text,jsonb)')) AS f(fn)
 ORDER BY 1, 2;
DROP ROLE regress_inst_nobody;

-- configuration defaults
SHOW autora.seal_interval;
SHOW autora.block_size;
SHOW autora.skip_noop_updates;
SHOW autora.allow_truncate;
SHOW autora.restore_mode;
SHOW autora.tenant_column;
-- the context GUCs are empty without a context
SELECT current_setting('autora.tenant_id') = '' AS tenant_empty,
       current_setting('autora.actor_id') = '' AS actor_empty,
       current_setting('autora.actor_role') = '' AS role_empty;
-- the autora prefix is reserved: unknown autora.* settings are refused
SET autora.no_such_setting = 'x';
\echo :SQLSTATE

-- the background sealer's launcher runs (the library is preloaded)
SELECT count(*) AS sealer_launchers FROM pg_stat_activity
 WHERE backend_type = 'autora sealer launcher';
