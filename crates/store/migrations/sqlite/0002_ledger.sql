-- The double-entry ledger (see paybridge_domain::ledger). Totals are BIGINT
-- minor units; flags is a bit set: 1 = debits_must_not_exceed_credits,
-- 2 = credits_must_not_exceed_debits.

CREATE TABLE ledger_accounts (
    id                  TEXT    PRIMARY KEY,
    currency            TEXT    NOT NULL,
    flags               BIGINT  NOT NULL DEFAULT 0,
    overdraft_limit     BIGINT  NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    debits_pending      BIGINT  NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted       BIGINT  NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending     BIGINT  NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted      BIGINT  NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at          BIGINT  NOT NULL
);

CREATE TABLE ledger_transfers (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,
    debit_account_id    TEXT    NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id   TEXT    NOT NULL REFERENCES ledger_accounts (id),
    amount              BIGINT  NOT NULL CHECK (amount >= 0),
    requested_amount    BIGINT  NOT NULL,
    currency            TEXT    NOT NULL,
    kind                TEXT    NOT NULL CHECK (kind IN ('posted', 'pending', 'post_pending', 'void_pending')),
    pending_id          TEXT,
    timeout_secs        BIGINT,
    pending_state       TEXT    CHECK (pending_state IN ('pending', 'posted', 'voided', 'expired')),
    expires_at          BIGINT,
    created_at          BIGINT  NOT NULL
);
-- A pending transfer is settled (posted or voided) at most once.
CREATE UNIQUE INDEX ledger_transfers_one_settlement ON ledger_transfers (pending_id)
    WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_expiring ON ledger_transfers (expires_at)
    WHERE pending_state = 'pending';
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, seq);
