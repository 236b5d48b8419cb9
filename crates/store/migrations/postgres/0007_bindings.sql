-- Flow F1. The wallet's bindings of bank cards to wallet accounts: what the
-- bank sent (holder identity and reserved phone sealed, card display data
-- only: never a PAN), who claimed it, where it stands. One active binding per
-- (wallet user, bank, card).
CREATE TABLE bindings (
    id                        TEXT    PRIMARY KEY,
    issuer_id                 TEXT    NOT NULL,
    card_ref                  TEXT    NOT NULL,
    channel                   TEXT    NOT NULL CHECK (channel IN ('qr', 'push', 'registration')),
    address_hash              TEXT    UNIQUE,
    user_id                   TEXT,
    state                     TEXT    NOT NULL,
    failure                   TEXT,
    holder_name_sealed        TEXT    NOT NULL,
    holder_name_masked        TEXT    NOT NULL,
    holder_id_number_sealed   TEXT    NOT NULL,
    holder_id_number_index    TEXT    NOT NULL,
    phone_sealed              TEXT    NOT NULL,
    phone_masked              TEXT    NOT NULL,
    bank_name                 TEXT    NOT NULL,
    card_type                 TEXT    NOT NULL,
    last4                     TEXT    NOT NULL,
    otp_id                    TEXT,
    agreement_sealed          TEXT,
    expires_at                BIGINT  NOT NULL,
    created_at                BIGINT  NOT NULL,
    updated_at                BIGINT  NOT NULL,
    version                   BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX bindings_one_active ON bindings (user_id, issuer_id, card_ref) WHERE state = 'active';
CREATE INDEX bindings_user ON bindings (user_id, created_at);

-- The bank's quick-pay agreements: the number the wallet debits a bound card
-- with (sealed, found by blind index); one per wallet binding.
CREATE TABLE quick_pay_agreements (
    id             TEXT    PRIMARY KEY,
    number_sealed  TEXT    NOT NULL,
    number_index   TEXT    NOT NULL UNIQUE,
    card_id        TEXT    NOT NULL REFERENCES bank_cards (id),
    customer_id    TEXT    NOT NULL,
    wallet_id      TEXT    NOT NULL,
    binding_id     TEXT    NOT NULL UNIQUE,
    status         TEXT    NOT NULL CHECK (status IN ('active', 'cancelled')),
    created_at     BIGINT  NOT NULL,
    cancelled_at   BIGINT
);
CREATE INDEX quick_pay_agreements_customer ON quick_pay_agreements (customer_id, created_at);
