-- The reconciler looks for payments and refunds a crash or an unknown bank
-- answer left half done (`paying` orders, `pending` refunds, oldest first).
-- Partial indexes: only the few rows in flight are indexed.
CREATE INDEX orders_paying_since ON orders (updated_at) WHERE state = 'paying';
CREATE INDEX refunds_pending_since ON refunds (updated_at) WHERE state = 'pending';
