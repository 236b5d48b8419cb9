-- Flow F5 at a POS: the highest application transaction counter (ATC) the
-- issuer has accepted for each vault token. A tap's ATC must be above it,
-- so a cryptogram read once cannot be replayed, nor an older one used.
ALTER TABLE token_vault ADD COLUMN highest_atc BIGINT;
