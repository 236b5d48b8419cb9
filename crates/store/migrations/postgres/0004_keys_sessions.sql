-- Key-encryption keys of envelope encryption, wrapped by the master key.
-- Exactly one is active (seals new values); the others still open old ones.
CREATE TABLE encryption_keys (
    id          TEXT    PRIMARY KEY,
    wrapped     TEXT    NOT NULL,
    active      BIGINT  NOT NULL CHECK (active IN (0, 1)),
    created_at  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX encryption_keys_one_active ON encryption_keys (active) WHERE active = 1;

-- Login sessions (wallet accounts, bank app customers). Only the keyed hash
-- of the bearer token is stored.
CREATE TABLE sessions (
    id            TEXT    PRIMARY KEY,
    token_hash    TEXT    NOT NULL UNIQUE,
    subject       TEXT    NOT NULL,
    device_id     TEXT,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX sessions_subject ON sessions (subject);

-- Wrong-password counters by login name (blind index), kept for unknown
-- names too, so a locked answer does not reveal that an account exists.
CREATE TABLE login_guards (
    login_index     TEXT    PRIMARY KEY,
    failed_attempts BIGINT  NOT NULL,
    locked_until    BIGINT
);
