-- Flow F2. Accounts a bank registered, by the bank's own reference (a retry
-- with the same reference returns the same account), and security
-- authentications in progress.
CREATE TABLE partner_registrations (
    issuer_id     TEXT    NOT NULL,
    reference     TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    binding_id    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (issuer_id, reference)
);

CREATE TABLE security_auths (
    id              TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    device_id       TEXT    NOT NULL,
    conditions      TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    otp_id          TEXT    NOT NULL,
    digit_attempts  BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX security_auths_user ON security_auths (user_id, state);
