//! The double-entry ledger, in TigerBeetle's vocabulary.
//!
//! Every transfer moves an amount from one account (debit) to another
//! (credit) of the same currency, so the sum of all debits always equals the
//! sum of all credits. A transfer is either posted at once (single phase) or
//! *pending* (an authorisation: the amount is reserved), later *posted*
//! (in full or in part), *voided*, or *expired* when its timeout passes.
//!
//! Each account keeps four running totals: debits and credits, pending and
//! posted. A customer's deposit account has the flag
//! `debits_must_not_exceed_credits`: its debits (posted and pending) may never
//! exceed its posted credits plus its overdraft limit, so it cannot go below
//! zero unless the bank allowed an overdraft.
//!
//! Transfer ids are chosen by the caller and unique: submitting the same
//! transfer twice is harmless (the second answer is "exists"), submitting a
//! different transfer under a used id is refused. This module decides; the
//! store locks the accounts, calls [`apply`], and saves what it returns.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{Id, IdKind};
use crate::money::{Currency, Money};

/// A ledger account.
#[derive(Debug)]
pub enum AccountKind {}
impl IdKind for AccountKind {
    const PREFIX: &'static str = "acc";
    const NOUN: &'static str = "ledger account";
}
pub type AccountId = Id<AccountKind>;

/// Longest caller-supplied transfer id.
pub const TRANSFER_ID_MAX_LEN: usize = 64;
/// Longest a pending transfer may stay pending: 30 days (card
/// authorisations are usually released within 7 to 30 days).
pub const PENDING_TIMEOUT_MAX_SECS: i64 = 30 * 86_400;

/// A caller-supplied unique transfer id: 1 to 64 of `A-Z a-z 0-9 _ - . :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransferId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a transfer id is 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.', ':'")]
pub struct InvalidTransferId;

impl TransferId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TransferId {
    type Err = InvalidTransferId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= TRANSFER_ID_MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        ok.then(|| Self(s.to_owned())).ok_or(InvalidTransferId)
    }
}
impl TryFrom<String> for TransferId {
    type Error = InvalidTransferId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl From<TransferId> for String {
    fn from(t: TransferId) -> String {
        t.0
    }
}
impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Balance constraints of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountFlags {
    /// Debits (posted + pending) may not exceed posted credits plus the
    /// overdraft limit: a customer's money cannot go below zero.
    pub debits_must_not_exceed_credits: bool,
    /// Credits (posted + pending) may not exceed posted debits: for accounts
    /// that only ever hold what was put in (a limit account).
    pub credits_must_not_exceed_debits: bool,
}

/// An account and its running totals, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub currency: Currency,
    pub flags: AccountFlags,
    /// How far below zero a `debits_must_not_exceed_credits` account may go.
    pub overdraft_limit_minor: i64,
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
}

impl Account {
    pub fn new(
        id: AccountId,
        currency: Currency,
        flags: AccountFlags,
        overdraft_limit_minor: i64,
    ) -> Self {
        Self {
            id,
            currency,
            flags,
            overdraft_limit_minor,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
        }
    }

    /// Posted credits minus posted debits: what a credit-normal account
    /// (a customer's deposit) holds.
    pub fn balance(&self) -> Money {
        Money::new(self.credits_posted - self.debits_posted, self.currency)
    }

    /// What can still be debited, reservations deducted (for a
    /// `debits_must_not_exceed_credits` account).
    pub fn available(&self) -> Money {
        Money::new(
            self.credits_posted - self.debits_posted - self.debits_pending,
            self.currency,
        )
    }

    fn check(&self) -> Result<(), LedgerError> {
        if self.flags.debits_must_not_exceed_credits
            && self.debits_pending + self.debits_posted
                > self.credits_posted + self.overdraft_limit_minor
        {
            return Err(LedgerError::ExceedsCredits);
        }
        if self.flags.credits_must_not_exceed_debits
            && self.credits_pending + self.credits_posted > self.debits_posted
        {
            return Err(LedgerError::ExceedsDebits);
        }
        Ok(())
    }
}

/// What a transfer does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TransferKind {
    /// Moves the amount now.
    Posted,
    /// Reserves the amount until posted, voided or `timeout_secs` passes.
    Pending { timeout_secs: i64 },
    /// Posts a pending transfer, in full or for a smaller amount (the rest is released).
    PostPending { pending_id: TransferId },
    /// Releases a pending transfer.
    VoidPending { pending_id: TransferId },
}

/// A transfer as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub id: TransferId,
    pub debit_account: AccountId,
    pub credit_account: AccountId,
    /// For `PostPending`, at most the pending amount; for `VoidPending`,
    /// the pending amount (or zero, meaning "all of it").
    pub amount: Money,
    pub kind: TransferKind,
}

/// Where a pending transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
pub enum PendingState {
    Pending,
    Posted,
    Voided,
    Expired,
}

impl PendingState {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingState::Pending => "pending",
            PendingState::Posted => "posted",
            PendingState::Voided => "voided",
            PendingState::Expired => "expired",
        }
    }
}

impl FromStr for PendingState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        <Self as strum::IntoEnumIterator>::iter()
            .find(|p| p.as_str() == s)
            .ok_or(())
    }
}

/// A transfer as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub debit_account: AccountId,
    pub credit_account: AccountId,
    pub amount: Money,
    pub kind: TransferKind,
    /// For a `Pending` transfer: where it stands now. `None` for the others.
    pub pending_state: Option<PendingState>,
    /// For a `Pending` transfer: when it expires.
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Transfer {
    /// Whether `req` is this same transfer submitted again. `requested_minor`
    /// is the amount its first submitter asked for (for a post, 0 means "the
    /// whole pending amount", so the recorded amount may differ).
    pub fn is_resubmission(&self, requested_minor: i64, req: &TransferRequest) -> bool {
        self.debit_account == req.debit_account
            && self.credit_account == req.credit_account
            && self.amount.currency == req.amount.currency
            && requested_minor == req.amount.amount_minor
            && self.kind == req.kind
    }
}

/// Why a transfer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the amount must be positive")]
    AmountNotPositive,
    #[error("a transfer needs two different accounts")]
    SameAccount,
    #[error("the accounts and the amount must have one currency")]
    CurrencyMismatch,
    #[error("the debit would exceed the account's credits (insufficient funds)")]
    ExceedsCredits,
    #[error("the credit would exceed the account's debits")]
    ExceedsDebits,
    #[error("the pending timeout must be between 1 s and 30 days")]
    InvalidTimeout,
    #[error("no such pending transfer")]
    PendingNotFound,
    #[error("the pending transfer was already posted")]
    PendingAlreadyPosted,
    #[error("the pending transfer was already voided")]
    PendingAlreadyVoided,
    #[error("the pending transfer has expired")]
    PendingExpired,
    #[error("the amount exceeds the pending amount")]
    ExceedsPendingAmount,
    #[error("the accounts differ from the pending transfer's")]
    PendingAccountsMismatch,
    #[error("a different transfer already has this id")]
    ExistsWithDifferentFields,
    #[error("an account total would overflow")]
    Overflow,
}

impl From<LedgerError> for crate::error::DomainError {
    fn from(e: LedgerError) -> Self {
        use crate::error::ErrorCode as C;
        let code = match e {
            LedgerError::ExceedsCredits => C::InsufficientFunds,
            LedgerError::ExistsWithDifferentFields => C::TransferIdReused,
            LedgerError::PendingAlreadyPosted
            | LedgerError::PendingAlreadyVoided
            | LedgerError::PendingExpired => C::PendingTransferClosed,
            LedgerError::PendingNotFound => C::NotFound,
            LedgerError::AmountNotPositive
            | LedgerError::SameAccount
            | LedgerError::CurrencyMismatch
            | LedgerError::ExceedsDebits
            | LedgerError::InvalidTimeout
            | LedgerError::ExceedsPendingAmount
            | LedgerError::PendingAccountsMismatch
            | LedgerError::Overflow => C::InvalidTransfer,
        };
        crate::error::DomainError::new(code, e.to_string())
    }
}

/// The outcome of [`apply`]: the accounts as they must be saved, the
/// transfer to record, and the new state of the pending transfer it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub debit: Account,
    pub credit: Account,
    pub transfer: Transfer,
    pub settles: Option<(TransferId, PendingState)>,
}

fn add(a: i64, b: i64) -> Result<i64, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}

/// Decides a transfer. `debit` and `credit` are the accounts named by the
/// request (for post/void: by the pending transfer); `pending` is the
/// pending transfer a post or void refers to.
pub fn apply(
    req: &TransferRequest,
    debit: &Account,
    credit: &Account,
    pending: Option<&Transfer>,
    now: Timestamp,
) -> Result<Applied, LedgerError> {
    if debit.id == credit.id {
        return Err(LedgerError::SameAccount);
    }
    if debit.currency != req.amount.currency || credit.currency != req.amount.currency {
        return Err(LedgerError::CurrencyMismatch);
    }
    assert!(
        req.debit_account == debit.id && req.credit_account == credit.id,
        "the store passes the accounts the request names"
    );
    let mut d = debit.clone();
    let mut c = credit.clone();
    let amount = req.amount.amount_minor;
    let (pending_state, expires_at, settles, recorded_amount) = match &req.kind {
        TransferKind::Posted => {
            if amount <= 0 {
                return Err(LedgerError::AmountNotPositive);
            }
            d.debits_posted = add(d.debits_posted, amount)?;
            c.credits_posted = add(c.credits_posted, amount)?;
            (None, None, None, amount)
        }
        TransferKind::Pending { timeout_secs } => {
            if amount <= 0 {
                return Err(LedgerError::AmountNotPositive);
            }
            if !(1..=PENDING_TIMEOUT_MAX_SECS).contains(timeout_secs) {
                return Err(LedgerError::InvalidTimeout);
            }
            d.debits_pending = add(d.debits_pending, amount)?;
            c.credits_pending = add(c.credits_pending, amount)?;
            let expires = now + time::Duration::seconds(*timeout_secs);
            (Some(PendingState::Pending), Some(expires), None, amount)
        }
        TransferKind::PostPending { pending_id } | TransferKind::VoidPending { pending_id } => {
            let p = pending.ok_or(LedgerError::PendingNotFound)?;
            assert_eq!(
                &p.id, pending_id,
                "the store passes the pending transfer named"
            );
            if p.debit_account != req.debit_account || p.credit_account != req.credit_account {
                return Err(LedgerError::PendingAccountsMismatch);
            }
            if p.amount.currency != req.amount.currency {
                return Err(LedgerError::CurrencyMismatch);
            }
            match p.pending_state {
                Some(PendingState::Pending) => {}
                Some(PendingState::Posted) => return Err(LedgerError::PendingAlreadyPosted),
                Some(PendingState::Voided) => return Err(LedgerError::PendingAlreadyVoided),
                Some(PendingState::Expired) => return Err(LedgerError::PendingExpired),
                None => return Err(LedgerError::PendingNotFound),
            }
            if p.expires_at.is_some_and(|at| at <= now) {
                return Err(LedgerError::PendingExpired);
            }
            let reserved = p.amount.amount_minor;
            // Release the reservation either way.
            d.debits_pending -= reserved;
            c.credits_pending -= reserved;
            if matches!(req.kind, TransferKind::PostPending { .. }) {
                // Zero means "the full pending amount".
                let post = if amount == 0 { reserved } else { amount };
                if post < 0 {
                    return Err(LedgerError::AmountNotPositive);
                }
                if post > reserved {
                    return Err(LedgerError::ExceedsPendingAmount);
                }
                d.debits_posted = add(d.debits_posted, post)?;
                c.credits_posted = add(c.credits_posted, post)?;
                (None, None, Some((p.id.clone(), PendingState::Posted)), post)
            } else {
                if amount != 0 && amount != reserved {
                    return Err(LedgerError::ExceedsPendingAmount);
                }
                (
                    None,
                    None,
                    Some((p.id.clone(), PendingState::Voided)),
                    reserved,
                )
            }
        }
    };
    d.check()?;
    c.check()?;
    for a in [&d, &c] {
        assert!(
            a.debits_pending >= 0
                && a.credits_pending >= 0
                && a.debits_posted >= 0
                && a.credits_posted >= 0,
            "ledger totals never go negative: {a:?}"
        );
    }
    Ok(Applied {
        transfer: Transfer {
            id: req.id.clone(),
            debit_account: d.id.clone(),
            credit_account: c.id.clone(),
            amount: Money::new(recorded_amount, req.amount.currency),
            kind: req.kind.clone(),
            pending_state,
            expires_at,
            created_at: now,
        },
        debit: d,
        credit: c,
        settles,
    })
}

/// Releases an expired pending transfer: the reservation goes back.
pub fn expire(pending: &Transfer, debit: &Account, credit: &Account) -> (Account, Account) {
    assert_eq!(
        pending.pending_state,
        Some(PendingState::Pending),
        "only pending transfers expire"
    );
    let mut d = debit.clone();
    let mut c = credit.clone();
    d.debits_pending -= pending.amount.amount_minor;
    c.credits_pending -= pending.amount.amount_minor;
    assert!(
        d.debits_pending >= 0 && c.credits_pending >= 0,
        "reservations never go negative"
    );
    (d, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Timestamp {
        time::macros::datetime!(2026-11-23 08:00 UTC)
    }

    fn customer(balance: i64) -> Account {
        let mut a = Account::new(
            AccountId::generate(),
            Currency::CNY,
            AccountFlags {
                debits_must_not_exceed_credits: true,
                ..Default::default()
            },
            0,
        );
        a.credits_posted = balance;
        a
    }

    fn bank() -> Account {
        Account::new(
            AccountId::generate(),
            Currency::CNY,
            AccountFlags::default(),
            0,
        )
    }

    fn req(id: &str, d: &Account, c: &Account, amount: i64, kind: TransferKind) -> TransferRequest {
        TransferRequest {
            id: id.parse().unwrap(),
            debit_account: d.id.clone(),
            credit_account: c.id.clone(),
            amount: Money::new(amount, Currency::CNY),
            kind,
        }
    }

    #[test]
    fn a_posted_transfer_moves_money_and_balances() {
        let (alice, shop) = (customer(1_000), bank());
        let out = apply(
            &req("t1", &alice, &shop, 300, TransferKind::Posted),
            &alice,
            &shop,
            None,
            t0(),
        )
        .unwrap();
        assert_eq!(out.debit.balance().amount_minor, 700);
        assert_eq!(out.credit.credits_posted, 300);
        assert_eq!(out.transfer.pending_state, None);
    }

    #[test]
    fn no_overdraft_unless_allowed() {
        let (alice, shop) = (customer(100), bank());
        let r = req("t1", &alice, &shop, 101, TransferKind::Posted);
        assert_eq!(
            apply(&r, &alice, &shop, None, t0()),
            Err(LedgerError::ExceedsCredits)
        );
        let mut overdraft = alice.clone();
        overdraft.overdraft_limit_minor = 1;
        assert!(apply(&r, &overdraft, &shop, None, t0()).is_ok());
    }

    #[test]
    fn pending_reserves_then_posts_part_and_releases_the_rest() {
        let (alice, shop) = (customer(1_000), bank());
        let hold = apply(
            &req(
                "auth",
                &alice,
                &shop,
                600,
                TransferKind::Pending { timeout_secs: 60 },
            ),
            &alice,
            &shop,
            None,
            t0(),
        )
        .unwrap();
        assert_eq!(hold.debit.available().amount_minor, 400);
        // The reservation counts against the balance.
        let too_much = req("t2", &hold.debit, &shop, 401, TransferKind::Posted);
        assert_eq!(
            apply(&too_much, &hold.debit, &hold.credit, None, t0()),
            Err(LedgerError::ExceedsCredits)
        );
        let post = req(
            "cap",
            &alice,
            &shop,
            450,
            TransferKind::PostPending {
                pending_id: "auth".parse().unwrap(),
            },
        );
        let done = apply(&post, &hold.debit, &hold.credit, Some(&hold.transfer), t0()).unwrap();
        assert_eq!(done.debit.balance().amount_minor, 550);
        assert_eq!(done.debit.debits_pending, 0);
        assert_eq!(
            done.settles,
            Some(("auth".parse().unwrap(), PendingState::Posted))
        );
        assert_eq!(done.transfer.amount.amount_minor, 450);
    }

    #[test]
    fn a_settled_or_expired_pending_cannot_be_settled_again() {
        let (alice, shop) = (customer(1_000), bank());
        let hold = apply(
            &req(
                "auth",
                &alice,
                &shop,
                600,
                TransferKind::Pending { timeout_secs: 60 },
            ),
            &alice,
            &shop,
            None,
            t0(),
        )
        .unwrap();
        let void = req(
            "void",
            &alice,
            &shop,
            0,
            TransferKind::VoidPending {
                pending_id: "auth".parse().unwrap(),
            },
        );
        let voided = apply(&void, &hold.debit, &hold.credit, Some(&hold.transfer), t0()).unwrap();
        assert_eq!(voided.debit.available().amount_minor, 1_000);
        let mut settled = hold.transfer.clone();
        settled.pending_state = Some(PendingState::Voided);
        let post = req(
            "cap",
            &alice,
            &shop,
            0,
            TransferKind::PostPending {
                pending_id: "auth".parse().unwrap(),
            },
        );
        assert_eq!(
            apply(&post, &voided.debit, &voided.credit, Some(&settled), t0()),
            Err(LedgerError::PendingAlreadyVoided)
        );
        let late = t0() + time::Duration::seconds(61);
        assert_eq!(
            apply(&post, &hold.debit, &hold.credit, Some(&hold.transfer), late),
            Err(LedgerError::PendingExpired)
        );
        let (d, c) = expire(&hold.transfer, &hold.debit, &hold.credit);
        assert_eq!((d.debits_pending, c.credits_pending), (0, 0));
    }

    #[test]
    fn bad_requests_are_refused() {
        let (alice, shop) = (customer(1_000), bank());
        assert_eq!(
            apply(
                &req("t", &alice, &shop, 0, TransferKind::Posted),
                &alice,
                &shop,
                None,
                t0()
            ),
            Err(LedgerError::AmountNotPositive)
        );
        assert_eq!(
            apply(
                &req("t", &alice, &alice, 1, TransferKind::Posted),
                &alice,
                &alice,
                None,
                t0()
            ),
            Err(LedgerError::SameAccount)
        );
        let usd = Account::new(
            AccountId::generate(),
            "USD".parse().unwrap(),
            AccountFlags::default(),
            0,
        );
        assert_eq!(
            apply(
                &req("t", &alice, &usd, 1, TransferKind::Posted),
                &alice,
                &usd,
                None,
                t0()
            ),
            Err(LedgerError::CurrencyMismatch)
        );
        assert_eq!(
            apply(
                &req(
                    "t",
                    &alice,
                    &shop,
                    1,
                    TransferKind::Pending { timeout_secs: 0 }
                ),
                &alice,
                &shop,
                None,
                t0()
            ),
            Err(LedgerError::InvalidTimeout)
        );
        assert!("".parse::<TransferId>().is_err());
        assert!("a b".parse::<TransferId>().is_err());
        assert!("order:42-capture.1".parse::<TransferId>().is_ok());
    }

    proptest! {
        /// Whatever sequence of transfers is attempted, debits equal credits
        /// and a no-overdraft account never goes below zero.
        #[test]
        fn debits_always_equal_credits(amounts in proptest::collection::vec((0usize..3, 0usize..3, 1i64..500, any::<bool>()), 1..60)) {
            let mut accounts = [customer(1_000), customer(200), bank()];
            // The customers' opening balances came from the bank account.
            accounts[2].debits_posted = 1_200;
            let mut pendings: Vec<Transfer> = Vec::new();
            for (i, (from, to, amount, hold)) in amounts.into_iter().enumerate() {
                let (d, c) = (accounts[from].clone(), accounts[to].clone());
                let kind = if hold { TransferKind::Pending { timeout_secs: 60 } } else { TransferKind::Posted };
                let r = req(&format!("t{i}"), &d, &c, amount, kind);
                if let Ok(out) = apply(&r, &d, &c, None, t0()) {
                    accounts[from] = out.debit;
                    accounts[to] = out.credit;
                    if hold { pendings.push(out.transfer); }
                }
                // Settle the oldest pending every few steps.
                if i % 3 == 2 && !pendings.is_empty() {
                    let p = pendings.remove(0);
                    let di = accounts.iter().position(|a| a.id == p.debit_account).unwrap();
                    let ci = accounts.iter().position(|a| a.id == p.credit_account).unwrap();
                    let post = TransferRequest { id: format!("p{i}").parse().unwrap(), debit_account: p.debit_account.clone(), credit_account: p.credit_account.clone(), amount: Money::new(0, Currency::CNY), kind: TransferKind::PostPending { pending_id: p.id.clone() } };
                    let out = apply(&post, &accounts[di], &accounts[ci], Some(&p), t0()).unwrap();
                    accounts[di] = out.debit;
                    accounts[ci] = out.credit;
                }
                let debits: i64 = accounts.iter().map(|a| a.debits_posted + a.debits_pending).sum();
                let credits: i64 = accounts.iter().map(|a| a.credits_posted + a.credits_pending).sum();
                prop_assert_eq!(debits, credits);
                prop_assert!(accounts[0].available().amount_minor >= 0);
                prop_assert!(accounts[1].available().amount_minor >= 0);
            }
        }
    }
}
