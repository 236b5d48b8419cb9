-- The bank's customers and cards. Personal data sealed (envelope
-- encryption), with blind indexes for look-ups and masked copies for display.
CREATE TABLE bank_customers (
    id                TEXT    PRIMARY KEY,
    username          TEXT    NOT NULL UNIQUE,
    password_hash     TEXT    NOT NULL,
    name_sealed       TEXT    NOT NULL,
    name_masked       TEXT    NOT NULL,
    id_number_sealed  TEXT    NOT NULL,
    id_number_index   TEXT    NOT NULL UNIQUE,
    phone_sealed      TEXT    NOT NULL,
    phone_index       TEXT    NOT NULL,
    phone_masked      TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL
);
CREATE INDEX bank_customers_phone ON bank_customers (phone_index);

CREATE TABLE bank_cards (
    id            TEXT    PRIMARY KEY,
    customer_id   TEXT    NOT NULL REFERENCES bank_customers (id),
    pan_sealed    TEXT    NOT NULL,
    pan_index     TEXT    NOT NULL UNIQUE,
    last4         TEXT    NOT NULL,
    card_type     TEXT    NOT NULL CHECK (card_type IN ('debit', 'credit')),
    expiry        TEXT    NOT NULL,
    account_id    TEXT    NOT NULL REFERENCES ledger_accounts (id),
    status        TEXT    NOT NULL CHECK (status IN ('active', 'blocked')),
    created_at    BIGINT  NOT NULL
);
CREATE INDEX bank_cards_customer ON bank_cards (customer_id, created_at);
