-- One store's deals on the protected table through RLS: no WHERE, the
-- policy built on the context does the filtering.
BEGIN;
SELECT autora.set_context_trusted('t3', 'user7', 'sales');
SELECT count(*), sum(sale_price), max(updated_at) FROM deals_read;
END;
