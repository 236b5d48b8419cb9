-- Flow F3, device-delegated transfer payment (seed 002).
--
-- A business binding request (业务绑定请求): a first device (pc, tv, car,
-- iot) shows a user code; a phone of an account enters it (claims the
-- request) and approves or denies; the device then collects a session
-- bound to its key. The user code is kept as a keyed hash, unique among
-- the requests still open; the device info (model, vendor, serial) is
-- sealed; the client address only as a blind index (pairings per address
-- per hour).
CREATE TABLE device_pairings (
    id                  TEXT    PRIMARY KEY,
    user_code_hash      TEXT    NOT NULL,
    device_type         TEXT    NOT NULL CHECK (device_type IN ('pc', 'tv', 'car', 'iot')),
    device_info_sealed  TEXT    NOT NULL,
    public_key          TEXT    NOT NULL,
    key_thumbprint      TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'claimed', 'approved', 'collected', 'denied', 'expired')),
    client_index        TEXT,
    -- The account whose phone entered the code, and that phone.
    claimed_by          TEXT    REFERENCES wallet_users (id),
    claimed_on          TEXT    REFERENCES devices (id),
    -- The first device and its agreement, once approved.
    device_id           TEXT    REFERENCES devices (id),
    agreement_id        TEXT,
    last_polled_at      BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    expires_at          BIGINT  NOT NULL,
    version             BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX device_pairings_open_code ON device_pairings (user_code_hash) WHERE state IN ('pending', 'claimed');
CREATE INDEX device_pairings_address ON device_pairings (client_index, created_at);
CREATE INDEX device_pairings_open ON device_pairings (state, expires_at);

-- The transfer payment agreement (转移支付协议): what a first device may
-- pay through the phone that approved it. Everything of it but the ids and
-- the state is the payment agreement information (支付协议信息): the
-- device info, the user identity info, the card, limits, categories,
-- approval policy and the device usage so far, sealed for the agreement
-- id, user id and device id together (so it opens on this row only).
CREATE TABLE transfer_agreements (
    id            TEXT    PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES wallet_users (id),
    device_id     TEXT    NOT NULL REFERENCES devices (id),
    -- The phone that approved it: it confirms and executes the payments.
    phone_id      TEXT    NOT NULL REFERENCES devices (id),
    state         TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'revoked')),
    info_sealed   TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    version       BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX transfer_agreements_device ON transfer_agreements (device_id);
CREATE INDEX transfer_agreements_user ON transfer_agreements (user_id, created_at);

-- A transfer payment: from the first device's transfer payment request to
-- the payment result notification. The money is the order's; the amount
-- here is what the device signed for (equal to the order's). One open (or
-- paid) transfer payment per order.
CREATE TABLE transfer_payments (
    id            TEXT    PRIMARY KEY,
    agreement_id  TEXT    NOT NULL REFERENCES transfer_agreements (id),
    user_id       TEXT    NOT NULL REFERENCES wallet_users (id),
    device_id     TEXT    NOT NULL REFERENCES devices (id),
    phone_id      TEXT    NOT NULL REFERENCES devices (id),
    order_id      TEXT    NOT NULL REFERENCES orders (id),
    merchant_id   TEXT    NOT NULL,
    amount_minor  BIGINT  NOT NULL CHECK (amount_minor > 0),
    currency      TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    counter       BIGINT  NOT NULL,
    purpose       TEXT    NOT NULL,
    route         TEXT    NOT NULL CHECK (route IN ('with_user', 'direct')),
    state         TEXT    NOT NULL CHECK (state IN ('awaiting_confirmation', 'confirmed', 'task_issued', 'executing', 'debited', 'paid', 'declined', 'failed', 'expired')),
    failure       TEXT,
    -- The payment execution task as the wallet signed it, and its hash.
    task          TEXT,
    task_hash     TEXT,
    completed_by  TEXT,
    -- When the first agreement state counted it against the limits.
    counted_at    BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    version       BIGINT  NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX transfer_payments_open_order ON transfer_payments (order_id) WHERE state NOT IN ('declined', 'failed', 'expired');
CREATE INDEX transfer_payments_device ON transfer_payments (device_id, created_at);
CREATE INDEX transfer_payments_phone ON transfer_payments (phone_id, created_at);
CREATE INDEX transfer_payments_agreement ON transfer_payments (agreement_id, state);
CREATE INDEX transfer_payments_due ON transfer_payments (state, expires_at);
