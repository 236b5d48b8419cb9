-- Refunds of paid orders. A refund reserves its amount on the order (in the
-- same transaction as this row), then the bank returns it to the card, then
-- the wallet's ledger moves it out of the merchant's balance. `reference` is
-- the merchant's: a retry with it resumes the same refund.
CREATE TABLE refunds (
    id           TEXT    PRIMARY KEY,
    order_id     TEXT    NOT NULL REFERENCES orders (id),
    reference    TEXT    NOT NULL,
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    failure      TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    UNIQUE (order_id, reference)
);
