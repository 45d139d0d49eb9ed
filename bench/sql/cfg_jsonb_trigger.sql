-- bench/sql/cfg_jsonb_trigger.sql: configuration 3, what most teams write
-- first: a plpgsql AFTER ROW trigger storing to_jsonb(NEW) / to_jsonb(OLD)
-- in an audit table (the supa_audit / audit-trigger class: same columns and
-- indexes as supa_audit's audit.record_version, plus the app's context).

CREATE SCHEMA audit;

CREATE TABLE audit.record_version (
    id           bigserial PRIMARY KEY,
    tenant_id    text,
    record_id    text,
    op           text NOT NULL,
    ts           timestamptz NOT NULL DEFAULT clock_timestamp(),
    table_oid    oid NOT NULL,
    table_schema name NOT NULL,
    table_name   name NOT NULL,
    actor_id     text,
    actor_role   text,
    context      jsonb,
    record       jsonb,
    old_record   jsonb
);
CREATE INDEX record_version_ts ON audit.record_version USING brin (ts);
CREATE INDEX record_version_table_oid ON audit.record_version (table_oid);
CREATE INDEX record_version_record_id ON audit.record_version (record_id)
    WHERE record_id IS NOT NULL;

CREATE FUNCTION audit.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rec jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    old jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
BEGIN
    INSERT INTO audit.record_version
        (tenant_id, record_id, op, table_oid, table_schema, table_name,
         actor_id, actor_role, context, record, old_record)
    VALUES (coalesce(rec, old) ->> 'tenant_id', coalesce(rec, old) ->> 'id', TG_OP,
            TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME,
            current_setting('app.actor', true), current_setting('app.role', true),
            nullif(current_setting('app.ctx', true), '')::jsonb, rec, old);
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON deals
    FOR EACH ROW EXECUTE FUNCTION audit.capture();
CREATE TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON deals_read
    FOR EACH ROW EXECUTE FUNCTION audit.capture();
CREATE TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON deals_oltp
    FOR EACH ROW EXECUTE FUNCTION audit.capture();
