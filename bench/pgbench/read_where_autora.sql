-- One store's deals on the protected table, with the WHERE written out
-- (used while autora has no RLS policies: issue 4).
BEGIN;
SELECT autora.set_context_trusted('t3', 'user7', 'sales');
SELECT count(*), sum(sale_price), max(updated_at) FROM deals_read WHERE tenant_id = 't3';
END;
