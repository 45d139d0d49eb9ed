-- OLTP mix under autora: oltp_app.sql with autora's trusted context and no
-- store in the WHEREs (its RLS policies add it).  Same pgbench variables,
-- same rows, same statements otherwise.
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
SELECT autora.set_context_trusted('t' || :t, 'user' || :g % 200, 'sales', '{"ip": "203.0.113.7", "endpoint": "/api/deals", "method": "POST"}');
INSERT INTO deals_oltp (tenant_id, customer_name, customer_email, vin, sale_price, finance_status, status, salesperson, notes) VALUES ('t' || :t, 'Customer ' || :g, 'customer' || :g || '@example.com', '1HGCM82633A' || lpad((:g % 1000000)::text, 6, '0'), 20000 + :g % 50000 + 0.99, 'pending', 'draft', 'sales' || :g % 25, 'Walk-in; test drive booked');
SELECT * FROM deals_oltp WHERE id = :lo;
UPDATE deals_oltp SET status = CASE status WHEN 'signed' THEN 'delivered' ELSE 'signed' END, updated_at = now() WHERE id = :lo;
SELECT * FROM deals_oltp WHERE id = :hi;
UPDATE deals_oltp SET status = CASE status WHEN 'signed' THEN 'delivered' ELSE 'signed' END, updated_at = now() WHERE id = :hi;
SELECT * FROM deals_oltp WHERE id = :c;
SELECT id, status, sale_price, salesperson FROM deals_oltp WHERE vin = '1HGCM8' || lpad(:v::text, 11, '0');
SELECT id, status, sale_price, salesperson FROM deals_oltp WHERE vin = '1HGCM8' || lpad(:w::text, 11, '0');
END;
