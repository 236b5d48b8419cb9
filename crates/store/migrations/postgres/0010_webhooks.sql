-- Merchants' webhook endpoints: where order events go, and the secret they
-- are signed with (sealed).
ALTER TABLE merchants ADD COLUMN webhook_url TEXT;
ALTER TABLE merchants ADD COLUMN webhook_secret_sealed TEXT;
