-- bench/sql/cfg_hash_chain.sql: configuration 4, a tamper-evident log done
-- in plpgsql: each entry's hash is sha256(previous hash || entry), per
-- tenant, with the tenant's chain head row locked FOR UPDATE (pgcrypto).

CREATE EXTENSION pgcrypto;
CREATE SCHEMA audit;

CREATE TABLE audit.chain_head (
    tenant_id text PRIMARY KEY,
    seq       bigint NOT NULL,
    hash      bytea NOT NULL
);
INSERT INTO audit.chain_head SELECT 't' || i, 0, '\x'::bytea FROM generate_series(1, 8) AS i;

CREATE TABLE audit.chain (
    id         bigserial PRIMARY KEY,
    tenant_id  text NOT NULL,
    seq        bigint NOT NULL,
    ts         timestamptz NOT NULL,
    op         text NOT NULL,
    table_name name NOT NULL,
    actor_id   text,
    actor_role text,
    context    jsonb,
    record     jsonb,
    old_record jsonb,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL,
    UNIQUE (tenant_id, seq)
);

CREATE FUNCTION audit.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog, pg_temp AS $$
DECLARE
    rec    jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    old    jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    tenant text := coalesce(rec, old) ->> 'tenant_id';
    actor  text := current_setting('app.actor', true);
    role   text := current_setting('app.role', true);
    ctx    jsonb := nullif(current_setting('app.ctx', true), '')::jsonb;
    now_ts timestamptz := clock_timestamp();
    head   audit.chain_head;
    h      bytea;
BEGIN
    SELECT * INTO head FROM audit.chain_head WHERE tenant_id = tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO audit.chain_head VALUES (tenant, 0, '\x'::bytea) ON CONFLICT DO NOTHING;
        SELECT * INTO head FROM audit.chain_head WHERE tenant_id = tenant FOR UPDATE;
    END IF;
    h := digest(head.hash || convert_to(concat_ws('|', tenant, head.seq + 1, now_ts, TG_OP,
                                                  TG_TABLE_NAME, actor, role, ctx, rec, old),
                                        'UTF8'), 'sha256');
    INSERT INTO audit.chain (tenant_id, seq, ts, op, table_name, actor_id, actor_role, context,
                             record, old_record, prev_hash, hash)
    VALUES (tenant, head.seq + 1, now_ts, TG_OP, TG_TABLE_NAME, actor, role, ctx,
            rec, old, head.hash, h);
    UPDATE audit.chain_head SET seq = head.seq + 1, hash = h WHERE tenant_id = tenant;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_chain AFTER INSERT OR UPDATE OR DELETE ON deals
    FOR EACH ROW EXECUTE FUNCTION audit.capture();
CREATE TRIGGER audit_chain AFTER INSERT OR UPDATE OR DELETE ON deals_read
    FOR EACH ROW EXECUTE FUNCTION audit.capture();
CREATE TRIGGER audit_chain AFTER INSERT OR UPDATE OR DELETE ON deals_oltp
    FOR EACH ROW EXECUTE FUNCTION audit.capture();
