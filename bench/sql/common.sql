-- bench/sql/common.sql: the dealership schema every configuration starts from.
-- bench_create_deals(name) makes a deals-shaped table, so the workload table
-- (deals), the read table (deals_read), the OLTP mix's table (deals_oltp) and the
-- 1M-row table (deals_big) are alike.

CREATE FUNCTION bench_create_deals(tbl text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($ddl$
        CREATE TABLE %1$I (
            id             bigserial PRIMARY KEY,
            tenant_id      text NOT NULL,
            customer_name  text NOT NULL,
            customer_email text,
            vin            text NOT NULL,
            sale_price     numeric(12,2) NOT NULL,
            finance_status text NOT NULL,
            status         text NOT NULL,
            salesperson    text NOT NULL,
            notes          text,
            updated_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX %2$I ON %1$I (tenant_id);
        GRANT SELECT, INSERT, UPDATE, DELETE ON %1$I TO bench_app;
        GRANT USAGE ON SEQUENCE %3$I TO bench_app;
    $ddl$, tbl, tbl || '_tenant_idx', tbl || '_id_seq');
END
$$;

SELECT bench_create_deals('deals');
SELECT bench_create_deals('deals_read');

-- The OLTP mix's table (bench/pgbench/oltp_*.sql): each store's rows under
-- known ids (bench/sql/oltp_load.sql), looked up by id and by VIN.
SELECT bench_create_deals('deals_oltp');
CREATE INDEX deals_oltp_vin_idx ON deals_oltp (vin);
