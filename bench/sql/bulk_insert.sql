-- bench/sql/bulk_insert.sql: one transaction, context set once, then
-- INSERT ... SELECT of :rows deals for :tenant into :tbl.
-- psql variables: timeout (statement_timeout, 0 = none), before (untimed),
-- ctx (the context statement), tbl, tenant, rows, after (untimed).
-- Only BEGIN .. COMMIT is timed (\timing); :after runs untimed.
SET statement_timeout = :'timeout';
:before
\timing on
BEGIN;
:ctx
INSERT INTO :tbl (tenant_id, customer_name, customer_email, vin, sale_price,
                  finance_status, status, salesperson, notes)
SELECT :'tenant',
       'Customer ' || g,
       'customer' || g || '@example.com',
       '1HGCM82633A' || lpad((g % 1000000)::text, 6, '0'),
       20000 + (g % 50000) + 0.99,
       (ARRAY['cash', 'pending', 'approved', 'declined'])[1 + g % 4],
       (ARRAY['draft', 'signed', 'delivered', 'cancelled'])[1 + g % 4],
       'sales' || (g % 25),
       'Trade-in ' || (g % 7) || ' year old sedan; extended warranty offered'
  FROM generate_series(1, :rows) AS g;
COMMIT;
\timing off
RESET statement_timeout;
:after
