-- The public half of the key each role signs its partner calls with, as the
-- first instance on this store had it. Instances that share a store must
-- sign alike (the partners know one key per role), so an instance with
-- another key refuses to start instead of sending calls that fail later.
CREATE TABLE signing_keys (
    partner_id  TEXT    PRIMARY KEY,
    public_key  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
