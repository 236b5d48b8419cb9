//! Refunds of paid orders: the merchant asks (API key, its own reference
//! per refund); the amount is reserved on the order and in the merchant's
//! balance (a pending transfer in the wallet's ledger), the bank returns it
//! to the card the order was paid with (signed call, bounded by the debit),
//! then the reservation is posted. A refused refund releases both; one whose
//! outcome is unknown (bank unreachable) stays pending, and retrying it with
//! the same reference resumes it without refunding twice.

use paybridge_api::partner::{RefundAnswer, RefundRequest};
use paybridge_api::wallet::MoneyBody;
use paybridge_domain::event::Destination;
use paybridge_domain::happened::{Happened, OrderStep};
use paybridge_domain::ids::{MerchantId, OrderId, RefundId};
use paybridge_domain::ledger::{AccountId, TransferId, TransferKind, TransferRequest};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::refund::{RefundFailure, RefundStatus};
use paybridge_domain::{ErrorCode, Money, ServiceError};
use paybridge_kernel::ledger::transfer_id;
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::{RefundBegin, StoredOrder, StoredRefund, TransferOutcome};

use crate::views::{OrderView, RefundView};
use crate::Wallet;

/// How long a refund's reservation of the merchant's balance holds while
/// its bank call is unresolved.
const RESERVATION_SECS: i64 = 7 * 24 * 3600;
/// A refund still `pending` this long after its last change was left half
/// done (a crash, an unknown bank answer): the reconciler resumes it.
pub const STALLED_REFUND_SECS: i64 = 120;
/// Refunds resumed per round; the rest wait for the next one.
const STALLED_REFUND_BATCH: i64 = 100;

/// The two accounts of a refund's transfers in the wallet's ledger.
struct RefundAccounts {
    merchant: AccountId,
    clearing: AccountId,
}

impl Wallet {
    /// Refunds `amount` of a paid order of `merchant`. The same `reference`
    /// again answers (or resumes) the same refund.
    pub async fn refund_order(
        &self,
        merchant: &MerchantId,
        order_id: &OrderId,
        amount: Money,
        reference: &str,
    ) -> Result<(OrderView, RefundView), ServiceError> {
        if reference.is_empty()
            || reference.len() > 64
            || !reference.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "reference: 1 to 64 visible ASCII characters",
            ));
        }
        let (order, refund) = self
            .begin_refund(merchant, order_id, amount, reference)
            .await?;
        let (order, refund) = if refund.status.on_retry()? {
            self.carry_out_refund(merchant, order, refund).await?
        } else {
            (order, refund)
        };
        // The order as it stands now (the refund moved its amounts).
        let order = self.merchant_order(merchant, &order.id).await?;
        Ok((order.into(), refund.into()))
    }

    /// Reserves the refund on the order, or finds the one with this reference.
    async fn begin_refund(
        &self,
        merchant: &MerchantId,
        order_id: &OrderId,
        amount: Money,
        reference: &str,
    ) -> Result<(StoredOrder, StoredRefund), ServiceError> {
        on_conflict("the order", || async {
            let order = self.merchant_order(merchant, order_id).await?;
            if amount.currency != order.status.amount.currency {
                return Err(ServiceError::rejected(
                    ErrorCode::InvalidRequest,
                    "amount.currency: not the order's currency",
                ));
            }
            let now = self.clock.now();
            let mut next = order.clone();
            let refund = StoredRefund {
                id: RefundId::generate(),
                order_id: order.id.clone(),
                reference: reference.to_owned(),
                amount,
                status: RefundStatus::Pending,
                created_at: now,
                updated_at: now,
            };
            // A retry of a known reference must not be judged against the
            // amount already reserved by it: look it up first.
            let reserve = order.status.refund(amount.amount_minor);
            let event = Happened::RefundStarted {
                refund_id: refund.id.clone(),
                order_id: order.id.clone(),
                amount,
            }
            .to(Destination::Internal, now);
            match reserve {
                Ok(status) => {
                    next.status = status;
                    next.updated_at = now;
                }
                Err(e) => {
                    if let Some(existing) = self
                        .store
                        .refunds_of(order_id)
                        .await?
                        .into_iter()
                        .find(|r| r.reference == reference)
                    {
                        return self
                            .known_refund(order, existing, amount)
                            .map(Attempt::Done);
                    }
                    return Err(e.into());
                }
            }
            match self.store.refund_begin(&next, &refund, &[event]).await? {
                RefundBegin::Started => {
                    next.version += 1;
                    Ok(Attempt::Done((next, refund)))
                }
                RefundBegin::Exists(existing) => self
                    .known_refund(order, *existing, amount)
                    .map(Attempt::Done),
                RefundBegin::OrderMoved => Ok(Attempt::Lost),
            }
        })
        .await
    }

    fn known_refund(
        &self,
        order: StoredOrder,
        existing: StoredRefund,
        amount: Money,
    ) -> Result<(StoredOrder, StoredRefund), ServiceError> {
        if existing.amount != amount {
            return Err(ServiceError::rejected(
                ErrorCode::OrderReferenceReused,
                "this reference belongs to another refund of this order",
            ));
        }
        Ok((order, existing))
    }

    /// Reserve the merchant's balance, have the bank return the money, post.
    async fn carry_out_refund(
        &self,
        merchant: &MerchantId,
        order: StoredOrder,
        mut refund: StoredRefund,
    ) -> Result<(StoredOrder, StoredRefund), ServiceError> {
        let issuer = self.bank_of_payment(&order).await?;
        let accounts = RefundAccounts {
            merchant: self
                .store
                .merchant(merchant)
                .await?
                .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such merchant"))?
                .account_id,
            clearing: self
                .issuer_clearing_account(&issuer, refund.amount.currency)
                .await?,
        };
        let reservation = transfer_id(&format!("refund:{}", refund.id))?;
        let reserved = self
            .refund_transfer(
                &refund,
                &accounts,
                reservation.clone(),
                TransferKind::Pending {
                    timeout_secs: RESERVATION_SECS,
                },
            )
            .await?;
        if let TransferOutcome::Refused(e) = reserved {
            let e: paybridge_domain::DomainError = e.into();
            let why = format!(
                "the merchant's balance cannot cover the refund: {}",
                e.message
            );
            return self
                .fail_refund(order, refund, ErrorCode::InsufficientFunds, &why)
                .await;
        }
        let bank = self.bank_client(&issuer)?;
        match Self::ask_bank_to_refund(bank, &order, &refund).await {
            Ok(_) => {
                let post = TransferKind::PostPending {
                    pending_id: reservation,
                };
                let id = transfer_id(&format!("refund-post:{}", refund.id))?;
                let posted = self.refund_transfer(&refund, &accounts, id, post).await?;
                if !matches!(
                    posted,
                    TransferOutcome::Created(_) | TransferOutcome::Exists(_)
                ) {
                    // The bank returned the money, but the merchant's
                    // reservation can no longer be posted (it outlived its
                    // timeout): the refund stays pending, for an operator.
                    tracing::error!(refund.id = %refund.id, order.id = %order.id, outcome = ?posted,
                        "refund returned by the bank but its reservation cannot be posted");
                    return Err(ServiceError::internal(std::io::Error::other(format!(
                        "refund {}: the reservation cannot be posted",
                        refund.id
                    ))));
                }
                refund.status = refund.status.succeed()?;
                refund.updated_at = self.clock.now();
                let event = Self::order_event_for(&order, OrderStep::Refunded);
                self.store.refund_finish(&refund, None, &[event]).await?;
                tracing::info!(order.id = %order.id, refund.id = %refund.id, "order refunded");
                Ok((order, refund))
            }
            Err(paybridge_client::PartnerError::Refused {
                status,
                code,
                message,
                ..
            }) if status < 500 && status != 409 => {
                let void = TransferKind::VoidPending {
                    pending_id: reservation,
                };
                let id = transfer_id(&format!("refund-void:{}", refund.id))?;
                self.refund_transfer(&refund, &accounts, id, void).await?;
                let code = ErrorCode::from_wire(&code).unwrap_or(ErrorCode::PartnerResponseInvalid);
                let why = format!("the bank refused the refund: {message}");
                self.fail_refund(order, refund, code, &why).await
            }
            // Unknown outcome: stays pending; the same reference resumes it.
            Err(e) => Err(e.into()),
        }
    }

    /// The recovery step of the refund saga. A refund is four steps that
    /// cannot share one transaction, because the third is the bank's:
    ///
    /// ```text
    /// 1 refund pending, amount reserved on the order (commit)
    /// 2 merchant's balance reserved (ledger, pending transfer `refund:{id}`)
    /// 3 bank returns the money to the card (idempotent on the refund id)
    /// 4 reservation posted, refund succeeded (commit) — or voided, failed
    /// ```
    ///
    /// A crash or an unknown bank answer between 1 and 4 leaves the refund
    /// `pending`. This resumes every such refund older than
    /// [`STALLED_REFUND_SECS`] from step 2: each step is idempotent, so a
    /// resumed refund returns the money at most once. Returns how many
    /// reached an end (succeeded or failed); the rest stay for the next round.
    pub async fn resume_stalled_refunds(&self) -> Result<usize, ServiceError> {
        let before = self.clock.now() - time::Duration::seconds(STALLED_REFUND_SECS);
        let stalled = self
            .store
            .refunds_stalled_pending(before, STALLED_REFUND_BATCH)
            .await?;
        let mut ended = 0;
        for refund in stalled {
            let id = refund.id.clone();
            let order = self.load_order(&refund.order_id).await?;
            let merchant = order.merchant_id.clone();
            let order_id = order.id.clone();
            let outcome = self.carry_out_refund(&merchant, order, refund).await;
            let now = self
                .store
                .refunds_of(&order_id)
                .await?
                .into_iter()
                .find(|r| r.id == id)
                .map(|r| r.status);
            match (outcome, now) {
                (_, Some(RefundStatus::Pending)) | (_, None) => {
                    tracing::warn!(refund.id = %id, "stalled refund still unresolved; tried again next round")
                }
                (Err(e), Some(status)) if !matches!(e, ServiceError::Rejected(_)) => {
                    tracing::warn!(refund.id = %id, status = status.as_str(), error = %e, "stalled refund resumed with an error")
                }
                (_, Some(status)) => {
                    tracing::info!(refund.id = %id, status = status.as_str(), "stalled refund resumed to its end");
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }

    /// The bank the order was paid through (its payer's binding's bank).
    async fn bank_of_payment(&self, order: &StoredOrder) -> Result<PartnerId, ServiceError> {
        let Some((payer, binding)) = crate::payments::payment_of(order)? else {
            return Err(ServiceError::rejected(
                ErrorCode::OrderNotRefundable,
                "the order has no payment to refund",
            ));
        };
        self.bank_of_binding(&payer, &binding).await
    }

    /// The bank's signed refund call (idempotent on the refund id).
    async fn ask_bank_to_refund(
        bank: &paybridge_client::PartnerClient,
        order: &StoredOrder,
        refund: &StoredRefund,
    ) -> Result<RefundAnswer, paybridge_client::PartnerError> {
        bank.call(
            reqwest::Method::POST,
            "/v1/partner/refunds",
            Some(&RefundRequest {
                refund_id: refund.id.to_string(),
                payment_id: order.id.to_string(),
                amount: MoneyBody::from(refund.amount),
            }),
            Some(&format!("refund:{}", refund.id)),
        )
        .await
    }

    /// One of the refund's transfers from the merchant's balance to clearing.
    async fn refund_transfer(
        &self,
        refund: &StoredRefund,
        accounts: &RefundAccounts,
        id: TransferId,
        kind: TransferKind,
    ) -> Result<TransferOutcome, ServiceError> {
        let request = TransferRequest {
            id,
            debit_account: accounts.merchant.clone(),
            credit_account: accounts.clearing.clone(),
            amount: refund.amount,
            kind,
        };
        Ok(self
            .store
            .ledger_submit(&request, &[], self.clock.now())
            .await?)
    }

    /// Records the failure and makes the amount refundable again.
    async fn fail_refund(
        &self,
        order: StoredOrder,
        mut refund: StoredRefund,
        code: ErrorCode,
        message: &str,
    ) -> Result<(StoredOrder, StoredRefund), ServiceError> {
        refund.status = refund.status.fail(RefundFailure {
            code,
            message: message.to_owned(),
        })?;
        refund.updated_at = self.clock.now();
        on_conflict("the order", || async {
            let current = self.load_order(&order.id).await?;
            let mut next = current.clone();
            next.status = current.status.refund_reverted(refund.amount.amount_minor)?;
            next.updated_at = self.clock.now();
            let event = Happened::RefundFailed {
                refund_id: refund.id.clone(),
                order_id: order.id.clone(),
                code: code.as_str(),
            }
            .to(Destination::Internal, refund.updated_at);
            let recorded = self
                .store
                .refund_finish(&refund, Some(&next), &[event])
                .await?;
            Ok(if recorded {
                Attempt::Done(())
            } else {
                Attempt::Lost
            })
        })
        .await?;
        Err(ServiceError::rejected(code, message.to_owned()))
    }
}
