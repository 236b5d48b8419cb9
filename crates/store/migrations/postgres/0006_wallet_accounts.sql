-- Wallet accounts. The phone and the real-name identity are sealed, with
-- blind indexes (one account per phone, one per person).
CREATE TABLE wallet_users (
    id                    TEXT    PRIMARY KEY,
    phone_sealed          TEXT    NOT NULL,
    phone_index           TEXT    NOT NULL UNIQUE,
    phone_masked          TEXT    NOT NULL,
    password_hash         TEXT,
    pay_password_hash     TEXT,
    pay_failed_attempts   BIGINT  NOT NULL DEFAULT 0,
    pay_locked_until      BIGINT,
    status                TEXT    NOT NULL CHECK (status IN ('active', 'restricted')),
    registered_by         TEXT,
    name_sealed           TEXT,
    name_masked           TEXT,
    id_number_sealed      TEXT,
    id_number_index       TEXT    UNIQUE,
    identity_verified_at  BIGINT,
    created_at            BIGINT  NOT NULL,
    version               BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id            TEXT    PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES wallet_users (id),
    device_type   TEXT    NOT NULL CHECK (device_type IN ('phone', 'pc', 'tv', 'car', 'iot')),
    name          TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX devices_user ON devices (user_id, status);

-- WebAuthn credentials (one per phone). `passkey` is webauthn-rs's credential
-- record (public key, counter, flags) as JSON; nothing in it is secret.
CREATE TABLE webauthn_credentials (
    id             TEXT    PRIMARY KEY,
    user_id        TEXT    NOT NULL REFERENCES wallet_users (id),
    device_id      TEXT    NOT NULL UNIQUE REFERENCES devices (id),
    credential_id  TEXT    NOT NULL UNIQUE,
    passkey        TEXT    NOT NULL,
    sign_count     BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    last_used_at   BIGINT
);

-- A WebAuthn ceremony in progress: webauthn-rs's server state, single use,
-- bound to what it approves (`purpose`, e.g. a payment's id, amount, payee).
CREATE TABLE webauthn_ceremonies (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('registration', 'authentication')),
    purpose     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT
);
