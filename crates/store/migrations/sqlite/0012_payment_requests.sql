-- Cross-device payment requests (flow F4): a first terminal (PC, TV, car,
-- IoT box) asks the account's phone to pay an order. The money is the
-- order's; this row records who asked, which phone answers, and how.
CREATE TABLE payment_requests (
    id                TEXT    PRIMARY KEY,
    user_id           TEXT    NOT NULL REFERENCES wallet_users (id),
    order_id          TEXT    NOT NULL REFERENCES orders (id),
    terminal_id       TEXT    NOT NULL REFERENCES devices (id),
    -- The phone of the terminal correspondence, or the one that scanned.
    phone_id          TEXT    REFERENCES devices (id),
    state             TEXT    NOT NULL CHECK (state IN ('awaiting_gesture', 'awaiting_scan', 'presented', 'paid', 'declined', 'expired', 'superseded')),
    open_with         TEXT    NOT NULL CHECK (open_with IN ('payment_page', 'scanner')),
    gesture_required  BIGINT  NOT NULL CHECK (gesture_required IN (0, 1)),
    gesture           TEXT,
    gesture_route     TEXT,
    -- Keyed hash of the one-time code in the QR the terminal shows.
    scan_code_hash    TEXT    NOT NULL UNIQUE,
    binding_id        TEXT,
    approved_with     TEXT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    expires_at        BIGINT  NOT NULL,
    version           BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX payment_requests_terminal ON payment_requests (terminal_id, state);
CREATE INDEX payment_requests_phone ON payment_requests (phone_id, state);
CREATE INDEX payment_requests_due ON payment_requests (state, expires_at);
CREATE INDEX payment_requests_order ON payment_requests (order_id);
