-- Devices prove who they are with their own key pair (DPoP, RFC 9449).
-- `public_key` is the device's public JWK; `key_thumbprint` its RFC 7638
-- thumbprint, which proofs are matched against. Devices registered before
-- keys existed have neither and cannot open a device-bound session.
-- `paired_by` is the trusted device whose device-bound session paired this
-- one: such a device is trusted without a security authentication of its own.
ALTER TABLE devices ADD COLUMN public_key TEXT;
ALTER TABLE devices ADD COLUMN key_thumbprint TEXT;
ALTER TABLE devices ADD COLUMN paired_by TEXT;
-- A session opened with a device's proof is bound to the device's key:
-- every request of it must carry a proof by that key.
ALTER TABLE sessions ADD COLUMN key_thumbprint TEXT;

-- Escalating password locks (domain::credentials::PasswordGuard): locks
-- since the last success, and wrong tries since the last success across
-- locks (100 in a row need a step-up).
ALTER TABLE wallet_users ADD COLUMN pay_locks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE wallet_users ADD COLUMN pay_consecutive_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_guards ADD COLUMN locks BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_guards ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0;

-- The bank's own record of each binding it offered a wallet (flow F1, F2):
-- it opens a quick-pay agreement only for its own unexpired offer, for that
-- card and that wallet.
CREATE TABLE binding_offers (
    binding_id    TEXT    PRIMARY KEY,
    card_id       TEXT    NOT NULL,
    customer_id   TEXT    NOT NULL,
    wallet_id     TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX binding_offers_card ON binding_offers (card_id, expires_at);
