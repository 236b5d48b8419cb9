-- Merchants of the wallet, their API keys (only a keyed hash and a visible
-- prefix are kept) and their orders (flows F3, F4, F5 pay them).
CREATE TABLE merchants (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    account_id  TEXT    NOT NULL REFERENCES ledger_accounts (id),
    created_at  BIGINT  NOT NULL
);

CREATE TABLE merchant_api_keys (
    id           TEXT    PRIMARY KEY,
    merchant_id  TEXT    NOT NULL REFERENCES merchants (id),
    prefix       TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    created_at   BIGINT  NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX merchant_api_keys_merchant ON merchant_api_keys (merchant_id);

CREATE TABLE orders (
    id           TEXT    PRIMARY KEY,
    merchant_id  TEXT    NOT NULL REFERENCES merchants (id),
    reference    TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    refunded     BIGINT  NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    version      BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (merchant_id, reference)
);
CREATE INDEX orders_merchant ON orders (merchant_id, created_at);
