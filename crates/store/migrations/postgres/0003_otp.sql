-- OTP challenges. The code is kept only as a keyed hash; the phone sealed
-- (envelope encryption) with a blind index for the hourly cap and masked for
-- display.

CREATE TABLE otp_challenges (
    id              TEXT    PRIMARY KEY,
    purpose         TEXT    NOT NULL,
    phone_sealed    TEXT    NOT NULL,
    phone_index     TEXT    NOT NULL,
    phone_masked    TEXT    NOT NULL,
    code_hash       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'verified', 'locked')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    expires_at      BIGINT  NOT NULL,
    last_sent_at    BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE otp_sends (
    phone_index TEXT   NOT NULL,
    sent_at     BIGINT NOT NULL
);
CREATE INDEX otp_sends_phone ON otp_sends (phone_index, sent_at);
