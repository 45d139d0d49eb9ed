-- OLTP mix, as the app writes it without RLS (baseline, plpgsql triggers,
-- pgaudit): context as plain custom settings, 1 INSERT, 2 single-row
-- UPDATEs and 5 indexed SELECTs (3 by primary key, 2 by VIN), each naming
-- the store in its WHERE.  oltp_autora.sql is the same transaction with
-- autora's context and no store in the WHEREs: RLS adds it.
-- pgbench -D ntenants=N -D per_store=R: the store t is picked among t1..tN;
-- it owns the ids (t-1)*R+1 .. t*R of deals_oltp, and row i's VIN is
-- '1HGCM8' || lpad(i, 11, '0') (bench/sql/oltp_load.sql).  The two UPDATEs
-- go in id order, so concurrent transactions cannot deadlock.
\set t random(1, :ntenants)
\set g random(1, 100000000)
\set first (:t - 1) * :per_store + 1
\set last :first + :per_store - 1
\set a random(:first, :last)
\set b random(:first, :last)
\set lo least(:a, :b)
\set hi greatest(:a, :b)
\set c random(:first, :last)
\set v random(:first, :last)
\set w random(:first, :last)
BEGIN;
SELECT set_config('app.tenant', 't' || :t, true), set_config('app.actor', 'user' || :g % 200, true), set_config('app.role', 'sales', true), set_config('app.ctx', '{"ip": "203.0.113.7", "endpoint": "/api/deals", "method": "POST"}', true);
INSERT INTO deals_oltp (tenant_id, customer_name, customer_email, vin, sale_price, finance_status, status, salesperson, notes) VALUES ('t' || :t, 'Customer ' || :g, 'customer' || :g || '@example.com', '1HGCM82633A' || lpad((:g % 1000000)::text, 6, '0'), 20000 + :g % 50000 + 0.99, 'pending', 'draft', 'sales' || :g % 25, 'Walk-in; test drive booked');
SELECT * FROM deals_oltp WHERE id = :lo AND tenant_id = 't' || :t;
UPDATE deals_oltp SET status = CASE status WHEN 'signed' THEN 'delivered' ELSE 'signed' END, updated_at = now() WHERE id = :lo AND tenant_id = 't' || :t;
SELECT * FROM deals_oltp WHERE id = :hi AND tenant_id = 't' || :t;
UPDATE deals_oltp SET status = CASE status WHEN 'signed' THEN 'delivered' ELSE 'signed' END, updated_at = now() WHERE id = :hi AND tenant_id = 't' || :t;
SELECT * FROM deals_oltp WHERE id = :c AND tenant_id = 't' || :t;
SELECT id, status, sale_price, salesperson FROM deals_oltp WHERE vin = '1HGCM8' || lpad(:v::text, 11, '0') AND tenant_id = 't' || :t;
SELECT id, status, sale_price, salesperson FROM deals_oltp WHERE vin = '1HGCM8' || lpad(:w::text, 11, '0') AND tenant_id = 't' || :t;
END;
