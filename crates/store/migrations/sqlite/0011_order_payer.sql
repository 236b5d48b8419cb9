-- Who pays an order, with which binding: a retried payment by the same payer
-- resumes it; anyone else is refused.
ALTER TABLE orders ADD COLUMN payer_user_id TEXT;
ALTER TABLE orders ADD COLUMN binding_id TEXT;
