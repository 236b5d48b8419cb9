-- Flow F5, part 1 (seed 004): virtual card applications, PAN
-- tokenisation, the phone's secure element.
--
-- A quick binding (快捷绑卡) is a binding of its own channel: the issuer
-- issued the card to the applicant the wallet vouched for. SQLite cannot
-- change a CHECK in place, so the table is rebuilt, the same way on both
-- dialects (no table refers to it).
CREATE TABLE bindings_rebuilt (
    id                        TEXT    PRIMARY KEY,
    issuer_id                 TEXT    NOT NULL,
    card_ref                  TEXT    NOT NULL,
    channel                   TEXT    NOT NULL CHECK (channel IN ('qr', 'push', 'registration', 'virtual_card')),
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
INSERT INTO bindings_rebuilt SELECT * FROM bindings;
DROP TABLE bindings;
ALTER TABLE bindings_rebuilt RENAME TO bindings;
CREATE UNIQUE INDEX bindings_one_active ON bindings (user_id, issuer_id, card_ref) WHERE state = 'active';
CREATE INDEX bindings_user ON bindings (user_id, created_at);

-- A phone's secure element (安全芯片) encryption key (X25519): what the
-- issuer seals a token's key material to. Registered under the phone's
-- device key signature; a new one (the element was reset) replaces it.
CREATE TABLE secure_element_keys (
    device_id      TEXT    PRIMARY KEY REFERENCES devices (id),
    public_key     TEXT    NOT NULL,
    registered_at  BIGINT  NOT NULL
);

-- A virtual card application (申请卡的信息) as the wallet (验证服务器)
-- runs it (`domain::card_application`). The applicant's name and ID number
-- are sealed; the binding id is chosen when the application starts, so the
-- issuer's quick-pay agreement can name it before the binding exists. One
-- pending application per account.
CREATE TABLE card_applications (
    id                TEXT    PRIMARY KEY,
    user_id           TEXT    NOT NULL REFERENCES wallet_users (id),
    device_id         TEXT    NOT NULL REFERENCES devices (id),
    issuer_id         TEXT    NOT NULL,
    product           TEXT    NOT NULL,
    applicant_sealed  TEXT    NOT NULL,
    applicant_kind    TEXT    CHECK (applicant_kind IN ('existing_cardholder', 'first_card')),
    state             TEXT    NOT NULL CHECK (state IN ('forwarded', 'otp_sent', 'resubmitted', 'photos_requested', 'video_requested', 'identity_checked', 'issued', 'provisioned', 'rejected', 'expired')),
    reason            TEXT,
    -- Existing cardholder: the OTP sent to the reserved phone.
    otp_id            TEXT,
    phone_sealed      TEXT,
    phone_masked      TEXT,
    -- First-card applicant: the video face check's instruction policy, the
    -- identity authority's reference number (sealed) and match score.
    video_policy      TEXT,
    reference_sealed  TEXT,
    match_score       BIGINT,
    binding_id        TEXT    NOT NULL UNIQUE,
    card_code         TEXT,
    token_id          TEXT,
    -- When the photos and frames go (the decision plus the retention).
    media_purge_at    BIGINT,
    expires_at        BIGINT  NOT NULL,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    version           BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX card_applications_one_pending ON card_applications (user_id) WHERE state IN ('forwarded', 'otp_sent', 'resubmitted', 'photos_requested', 'video_requested', 'identity_checked');
CREATE INDEX card_applications_user ON card_applications (user_id, created_at);
CREATE INDEX card_applications_due ON card_applications (state, expires_at);
CREATE INDEX card_applications_media ON card_applications (media_purge_at);

-- The ID card photos and video frames of a first-card applicant, sealed,
-- kept until the application's media_purge_at.
CREATE TABLE card_application_media (
    application_id  TEXT    NOT NULL REFERENCES card_applications (id),
    slot            TEXT    NOT NULL,
    content_type    TEXT    NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    size_bytes      BIGINT  NOT NULL,
    content_sealed  TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (application_id, slot)
);

-- The wallet's side of a card token (标记): the card code, the token
-- (sealed), the binding it pays by, the phone it lives on, and the HPKE box
-- for that phone's secure element until the phone installed it (the wallet
-- cannot open it). The state follows the issuer's.
CREATE TABLE card_tokens (
    id              TEXT    PRIMARY KEY,
    issuer_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES wallet_users (id),
    device_id       TEXT    NOT NULL REFERENCES devices (id),
    application_id  TEXT    NOT NULL UNIQUE REFERENCES card_applications (id),
    binding_id      TEXT    NOT NULL UNIQUE,
    card_code       TEXT    NOT NULL,
    token_sealed    TEXT    NOT NULL,
    token_last4     TEXT    NOT NULL,
    key_box         TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'deactivated')),
    state_by        TEXT    CHECK (state_by IN ('cardholder', 'issuer')),
    installed_at    BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX card_tokens_card_code ON card_tokens (issuer_id, card_code);
CREATE INDEX card_tokens_user ON card_tokens (user_id, created_at);

-- The issuer's side. A virtual card is a bank card with a card code (卡代号,
-- its public reference) and the product it was issued as.
ALTER TABLE bank_cards ADD COLUMN card_code TEXT;
ALTER TABLE bank_cards ADD COLUMN product TEXT;
CREATE UNIQUE INDEX bank_cards_card_code ON bank_cards (card_code);
CREATE INDEX bank_cards_product ON bank_cards (customer_id, product);

-- A card application as the issuer sees it, keyed by the wallet's
-- application id (so every call on it is idempotent). The applicant is
-- sealed and found by the blind index of the ID number.
CREATE TABLE bank_card_applications (
    id                TEXT    PRIMARY KEY,
    wallet_id         TEXT    NOT NULL,
    product           TEXT    NOT NULL,
    applicant_sealed  TEXT    NOT NULL,
    id_number_index   TEXT    NOT NULL,
    binding_id        TEXT    NOT NULL,
    applicant_kind    TEXT    NOT NULL CHECK (applicant_kind IN ('existing_cardholder', 'first_card')),
    customer_id       TEXT    REFERENCES bank_customers (id),
    state             TEXT    NOT NULL CHECK (state IN ('awaiting_otp_proof', 'awaiting_identity', 'issued', 'rejected')),
    reason            TEXT,
    match_score       BIGINT,
    card_id           TEXT    REFERENCES bank_cards (id),
    token_id          TEXT,
    agreement_id      TEXT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    version           BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX bank_card_applications_person ON bank_card_applications (id_number_index, created_at);

-- The cards of a product a person holds, one per numbered slot below the
-- product's limit: two racing issues cannot both take the last slot.
CREATE TABLE bank_product_holdings (
    id_number_index  TEXT    NOT NULL,
    product          TEXT    NOT NULL,
    slot             BIGINT  NOT NULL,
    card_id          TEXT    NOT NULL REFERENCES bank_cards (id),
    PRIMARY KEY (id_number_index, product, slot)
);

-- The token vault: the only place a token maps back to a card (and so to
-- its PAN). The token is sealed and found by blind index; its domain is
-- one wallet, one device of that wallet and the channels allowed.
CREATE TABLE token_vault (
    id            TEXT    PRIMARY KEY,
    token_index   TEXT    NOT NULL UNIQUE,
    token_sealed  TEXT    NOT NULL,
    card_id       TEXT    NOT NULL REFERENCES bank_cards (id),
    wallet_id     TEXT    NOT NULL,
    device_id     TEXT    NOT NULL,
    channels      TEXT    NOT NULL,
    psn           TEXT    NOT NULL,
    expiry        TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'deactivated')),
    state_by      TEXT    CHECK (state_by IN ('cardholder', 'issuer')),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    version       BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX token_vault_card ON token_vault (card_id);
