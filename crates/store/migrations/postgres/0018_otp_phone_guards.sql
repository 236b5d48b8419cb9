-- Wrong OTP answers in a row per phone (blind index), across challenges: a
-- new challenge does not reset them (NIST SP 800-63B 5.2.2). At 100 the
-- phone's codes are refused until a step-up that is not by SMS (a login
-- on a trusted device, proved by its key) clears them.
CREATE TABLE otp_phone_guards (
    phone_index           TEXT    PRIMARY KEY,
    consecutive_failures  BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);
