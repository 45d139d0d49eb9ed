-- One sale per transaction, as the app writes it: context first (autora).
-- pgbench -D ntenants=N picks the store among t1..tN.
\set t random(1, :ntenants)
\set g random(1, 100000000)
BEGIN;
SELECT autora.set_context_trusted('t' || :t, 'user' || :g % 200, 'sales', '{"ip": "203.0.113.7", "endpoint": "/api/deals", "method": "POST"}');
INSERT INTO deals (tenant_id, customer_name, customer_email, vin, sale_price, finance_status, status, salesperson, notes) VALUES ('t' || :t, 'Customer ' || :g, 'customer' || :g || '@example.com', '1HGCM82633A' || lpad((:g % 1000000)::text, 6, '0'), 20000 + :g % 50000 + 0.99, 'pending', 'draft', 'sales' || :g % 25, 'Walk-in; test drive booked');
END;
