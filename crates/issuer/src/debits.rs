//! Debits by quick-pay agreement: the wallet takes a payment from a bound
//! card (flows F3, F4, F5). One ledger transfer per payment id, from the
//! card's account to the bank's clearing account for that wallet; a retry
//! is answered from the ledger (the same transfer), never debited twice.

use paybridge_api::partner::{DebitAnswer, DebitRequest, DebitStatus, RefundAnswer, RefundRequest};
use paybridge_api::wallet::MoneyBody;
use paybridge_crypto::IndexPurpose;
use paybridge_domain::card::CardStatus;
use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::ledger::{
    Account, AccountFlags, AccountId, TransferId, TransferKind, TransferRequest,
};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{Currency, ErrorCode, Money, ServiceError};
use paybridge_kernel::ledger::{clearing_account, derived_id};

use crate::Issuer;

impl Issuer {
    /// The bank's account of what it owes a wallet in `currency` (its side of every debit).
    async fn clearing_account(
        &self,
        wallet: &PartnerId,
        currency: Currency,
    ) -> Result<AccountId, ServiceError> {
        clearing_account(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.id,
            "wallet-clearing",
            wallet,
            currency,
        )
        .await
    }

    pub async fn debit_by_agreement(
        &self,
        wallet: &PartnerId,
        req: &DebitRequest,
    ) -> Result<DebitAnswer, ServiceError> {
        let bad = |m: &str| ServiceError::rejected(ErrorCode::InvalidRequest, m);
        if req.payment_id.is_empty()
            || req.payment_id.len() > 64
            || !req
                .payment_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b))
        {
            return Err(bad(
                "payment_id: 1 to 64 of A-Z, a-z, 0-9, '_', '-', ':', '.'",
            ));
        }
        let currency: Currency = req
            .amount
            .currency
            .parse()
            .map_err(|_| bad("amount.currency: an ISO 4217 code we support"))?;
        let amount = Money::positive(req.amount.amount, currency)
            .map_err(|_| bad("amount: must be positive"))?;
        let transfer_id = debit_transfer_id(wallet, &req.payment_id)?;
        // A retry of a debit that went through gets the same answer, whatever
        // became of the agreement or the card since: so every refusal below
        // is a definite "not debited" the wallet may act on.
        if let Some(done) = self.store.ledger_transfer(&transfer_id).await? {
            if done.amount != amount {
                return Err(ServiceError::rejected(
                    ErrorCode::TransferIdReused,
                    "this payment id was debited with another amount",
                ));
            }
            return Ok(DebitAnswer {
                transfer_id: done.id.to_string(),
                status: "posted".into(),
            });
        }
        let not_found = || ServiceError::rejected(ErrorCode::NotFound, "no such active agreement");
        let agreement = self
            .store
            .agreement_by_number(
                &self
                    .keys
                    .index
                    .index(IndexPurpose::Agreement, &req.agreement_number),
            )
            .await?
            .filter(|a| a.status.is_active() && a.wallet_id == wallet.as_str())
            .ok_or_else(not_found)?;
        let card = self
            .store
            .bank_card(&agreement.card_id)
            .await?
            .ok_or_else(not_found)?;
        if card.status != CardStatus::Active {
            return Err(ServiceError::rejected(
                ErrorCode::CardInvalid,
                "the card is not active",
            ));
        }
        let clearing = self.clearing_account(wallet, currency).await?;
        let event = Happened::CardDebited {
            card_id: card.id.to_string(),
            agreement_id: agreement.id.to_string(),
            payment_id: req.payment_id.clone(),
            amount,
        }
        .to(Destination::Internal, self.clock.now());
        let transfer = self
            .ledger()
            .transfer(
                &TransferRequest {
                    id: transfer_id,
                    debit_account: card.account_id.clone(),
                    credit_account: clearing,
                    amount,
                    kind: TransferKind::Posted,
                },
                &[event],
            )
            .await?;
        tracing::info!(card.id = %card.id, payment.id = %req.payment_id, "card debited by agreement");
        Ok(DebitAnswer {
            transfer_id: transfer.id.to_string(),
            status: "posted".into(),
        })
    }

    /// What the bank knows of the wallet's debit `payment_id`: debited (and
    /// how much), or absent. The wallet's reconciliation asks this for a
    /// payment whose answer it never got, instead of debiting again.
    pub async fn debit_status(
        &self,
        wallet: &PartnerId,
        payment_id: &str,
    ) -> Result<DebitStatus, ServiceError> {
        let transfer = self
            .store
            .ledger_transfer(&debit_transfer_id(wallet, payment_id)?)
            .await?;
        Ok(DebitStatus {
            payment_id: payment_id.to_owned(),
            status: if transfer.is_some() {
                "debited"
            } else {
                "absent"
            }
            .into(),
            transfer_id: transfer.as_ref().map(|t| t.id.to_string()),
            amount: transfer.map(|t| MoneyBody::from(t.amount)),
        })
    }

    /// Returns (part of) a debited payment to its card. The original debit
    /// bounds every refund of it together: a per-payment allowance account
    /// (no overdraft) is credited the debited amount once, and each refund
    /// draws on it in the same ledger, so two refunds can never return more
    /// than was taken, whatever the wallet asks.
    pub async fn refund_payment(
        &self,
        wallet: &PartnerId,
        req: &RefundRequest,
    ) -> Result<RefundAnswer, ServiceError> {
        let bad = |m: &str| ServiceError::rejected(ErrorCode::InvalidRequest, m);
        let transfer_id = |label: String| -> Result<TransferId, ServiceError> {
            label
                .parse()
                .map_err(|_| bad("refund_id/payment_id: too long or not usable as a transfer id"))
        };
        let debit = self
            .store
            .ledger_transfer(&transfer_id(format!("debit:{wallet}:{}", req.payment_id))?)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such payment"))?;
        let currency: Currency = req
            .amount
            .currency
            .parse()
            .map_err(|_| bad("amount.currency: an ISO 4217 code we support"))?;
        if currency != debit.amount.currency {
            return Err(bad("amount.currency: not the payment's currency"));
        }
        let amount = Money::positive(req.amount.amount, currency)
            .map_err(|_| bad("amount: must be positive"))?;
        let allowance = derived_id::<paybridge_domain::ledger::AccountKind>(&format!(
            "{}:refundable:{wallet}:{}",
            self.id, req.payment_id
        ));
        let memo = derived_id::<paybridge_domain::ledger::AccountKind>(&format!(
            "{}:refund-allowances:{}",
            self.id,
            currency.code()
        ));
        let now = self.clock.now();
        let no_overdraft = AccountFlags {
            debits_must_not_exceed_credits: true,
            ..AccountFlags::default()
        };
        self.store
            .ledger_open_account(
                &Account::new(allowance.clone(), currency, no_overdraft, 0),
                now,
            )
            .await?;
        self.store
            .ledger_open_account(
                &Account::new(memo.clone(), currency, AccountFlags::default(), 0),
                now,
            )
            .await?;
        let ledger = self.ledger();
        ledger
            .transfer(
                &TransferRequest {
                    id: transfer_id(format!("allow:{wallet}:{}", req.payment_id))?,
                    debit_account: memo.clone(),
                    credit_account: allowance.clone(),
                    amount: debit.amount,
                    kind: TransferKind::Posted,
                },
                &[],
            )
            .await?;
        ledger
            .transfer(
                &TransferRequest {
                    id: transfer_id(format!("refund-allow:{wallet}:{}", req.refund_id))?,
                    debit_account: allowance,
                    credit_account: memo,
                    amount,
                    kind: TransferKind::Posted,
                },
                &[],
            )
            .await
            .map_err(|e| match e {
                ServiceError::Rejected(d) if d.code == ErrorCode::InsufficientFunds => {
                    ServiceError::rejected(
                        ErrorCode::RefundExceedsPayment,
                        "the refunds of this payment would exceed what was debited",
                    )
                }
                other => other,
            })?;
        let clearing = self.clearing_account(wallet, currency).await?;
        let event = Happened::CardRefunded {
            payment_id: req.payment_id.clone(),
            refund_id: req.refund_id.clone(),
            amount,
        }
        .to(Destination::Internal, now);
        let transfer = ledger
            .transfer(
                &TransferRequest {
                    id: transfer_id(format!("refund:{wallet}:{}", req.refund_id))?,
                    debit_account: clearing,
                    credit_account: debit.debit_account.clone(),
                    amount,
                    kind: TransferKind::Posted,
                },
                &[event],
            )
            .await?;
        tracing::info!(payment.id = %req.payment_id, refund.id = %req.refund_id, "payment refunded to the card");
        Ok(RefundAnswer {
            transfer_id: transfer.id.to_string(),
            status: "posted".into(),
        })
    }
}

/// The bank's ledger transfer of the wallet's debit `payment_id`: derived
/// from both, so a retry finds the same one.
fn debit_transfer_id(wallet: &PartnerId, payment_id: &str) -> Result<TransferId, ServiceError> {
    format!("debit:{wallet}:{payment_id}").parse().map_err(|_| {
        ServiceError::rejected(
            ErrorCode::InvalidRequest,
            "payment_id: not usable as a transfer id",
        )
    })
}
