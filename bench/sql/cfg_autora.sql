-- bench/sql/cfg_autora.sql: configuration 2, autora_audit.
-- 8 stores, deals, deals_read and deals_oltp protected (capture, chain, RLS).

CREATE EXTENSION autora_audit;
GRANT autora_trusted TO bench_app;

SELECT autora.add_tenant('t' || i, 'g' || (1 + i % 2), 'Store ' || i) FROM generate_series(1, 8) AS i;

SELECT autora.protect('deals', pii_columns => '{customer_name,customer_email}');
SELECT autora.protect('deals_read', pii_columns => '{customer_name,customer_email}');
SELECT autora.protect('deals_oltp', pii_columns => '{customer_name,customer_email}');

-- The ledger id sequence's high-water mark: entries made by sessions that
-- start later, or by this session from now on, get greater ids (the
-- sequence caches per session, so a new session starts above it).
-- bench_mark() also keeps it for bench_wait_sealed() in this session.
CREATE FUNCTION bench_ledger_mark() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM autora.ledger_id_seq $$;

CREATE FUNCTION bench_mark() RETURNS bigint LANGUAGE sql
AS $$ SELECT set_config('bench.since', bench_ledger_mark()::text, false)::bigint $$;

-- Milliseconds until every entry with an id above `since` is in a block
-- (default: the session's bench_mark(), else everything above the highest
-- sealed id).  The sealer runs in the background; this only watches.  The
-- ledger's id index is BRIN, so both counts read a range, never probe ids.
CREATE FUNCTION bench_wait_sealed(since bigint DEFAULT NULL, timeout_s float8 DEFAULT 300)
RETURNS float8
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t0   timestamptz := clock_timestamp();
    s    bigint := coalesce(since, nullif(current_setting('bench.since', true), '')::bigint,
                           (SELECT max(last_entry) FROM autora.ledger_blocks), 0);
    want bigint := (SELECT count(*) FROM autora.ledger WHERE id > s);
BEGIN
    LOOP
        EXIT WHEN (SELECT count(*) FROM autora.ledger_blocks b, unnest(b.entry_ids) AS e(id)
                    WHERE b.last_entry > s AND e.id > s) >= want;
        IF clock_timestamp() - t0 > make_interval(secs => timeout_s) THEN
            RAISE EXCEPTION 'ledger entries above id % were not all sealed within % s', s, timeout_s;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 1);
END
$$;
GRANT EXECUTE ON FUNCTION bench_ledger_mark(), bench_mark(), bench_wait_sealed(bigint, float8) TO bench_app;
