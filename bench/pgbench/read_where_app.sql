-- One store's deals on an unprotected table: the hand-written WHERE.
BEGIN;
SELECT set_config('app.tenant', 't3', true), set_config('app.actor', 'user7', true), set_config('app.role', 'sales', true);
SELECT count(*), sum(sale_price), max(updated_at) FROM deals_read WHERE tenant_id = 't3';
END;
