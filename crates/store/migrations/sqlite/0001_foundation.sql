-- Foundation tables shared by both roles: idempotency, partner nonces, the
-- event outbox, the partner inbox, and the sandbox parties' mailboxes.
-- Times are BIGINT microseconds since the Unix epoch (UTC) in both dialects.

CREATE TABLE idempotency_keys (
    scope               TEXT    NOT NULL,
    idem_key            TEXT    NOT NULL,
    request_hash        TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('in_progress', 'completed')),
    response_status     BIGINT,
    response_body       BLOB,
    locked_until        BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    expires_at          BIGINT  NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

CREATE TABLE partner_nonces (
    partner_id  TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    seen_at     BIGINT  NOT NULL,
    PRIMARY KEY (partner_id, nonce)
);
CREATE INDEX partner_nonces_seen_at ON partner_nonces (seen_at);

CREATE TABLE outbox_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    topic           TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    occurred_at     BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    delivered_at    BIGINT,
    dead_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_events_due ON outbox_events (next_attempt_at)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_events_destination ON outbox_events (destination, seq);

CREATE TABLE partner_inbox (
    partner_id  TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (partner_id, event_id)
);

CREATE TABLE sandbox_sms (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT    NOT NULL UNIQUE,
    phone   TEXT    NOT NULL,
    body    TEXT    NOT NULL,
    sent_at BIGINT  NOT NULL
);
CREATE INDEX sandbox_sms_phone ON sandbox_sms (phone, seq);

CREATE TABLE sandbox_relay_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    device_token TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    sent_at      BIGINT  NOT NULL
);
CREATE INDEX sandbox_relay_messages_device ON sandbox_relay_messages (device_token, seq);
