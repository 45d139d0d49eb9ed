-- bench/sql/bulk_update.sql: one transaction, context set once, then an
-- UPDATE of 2 columns of every row of :tenant in :tbl (issue 12's
-- workload; both really change in every row).
-- psql variables: timeout (statement_timeout, 0 = none), before (untimed),
-- ctx, tbl, tenant, after (untimed).  Only BEGIN .. COMMIT is timed.
SET statement_timeout = :'timeout';
:before
\timing on
BEGIN;
:ctx
UPDATE :tbl
   SET sale_price = sale_price + 250,
       status = CASE status WHEN 'signed' THEN 'delivered' ELSE 'signed' END
 WHERE tenant_id = :'tenant';
COMMIT;
\timing off
RESET statement_timeout;
:after
