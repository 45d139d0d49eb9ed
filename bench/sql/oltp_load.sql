-- bench/sql/oltp_load.sql: one store's rows of deals_oltp under known ids,
-- so that the OLTP mix (bench/pgbench/oltp_*.sql) picks a store's rows
-- without reading the table: ids :first .. :first + :rows - 1 belong to
-- :tenant, and the VIN of row i is '1HGCM8' || lpad(i, 11, '0').
-- psql variables: ctx (the context statement), tenant, first, rows.
BEGIN;
:ctx
INSERT INTO deals_oltp (id, tenant_id, customer_name, customer_email, vin, sale_price,
                        finance_status, status, salesperson, notes)
SELECT i, :'tenant',
       'Customer ' || i,
       'customer' || i || '@example.com',
       '1HGCM8' || lpad(i::text, 11, '0'),
       20000 + (i % 50000) + 0.99,
       (ARRAY['cash', 'pending', 'approved', 'declined'])[1 + i % 4],
       (ARRAY['draft', 'signed', 'delivered', 'cancelled'])[1 + i % 4],
       'sales' || (i % 25),
       'Trade-in ' || (i % 7) || ' year old sedan; extended warranty offered'
  FROM generate_series(:first::bigint, :first::bigint + :rows - 1) AS i;
COMMIT;
