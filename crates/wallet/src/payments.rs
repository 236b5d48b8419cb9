//! Paying a merchant's order with a bound card: the wallet debits the card
//! through its bank (signed call, quick-pay agreement, idempotent on the
//! order id), credits the merchant's balance in its own ledger and marks the
//! order paid; the merchant hears it through its webhook. A retried or
//! concurrent payment of the same order never debits twice: one call moves
//! the order to `paying`; a retry by the same payer with the same binding
//! re-asks the bank with the same payment id, which answers with the same
//! transfer. An unknown bank answer is never taken for a refusal: the order
//! stays `paying` until a retry or the reconciliation learns the outcome.
//!
//! Two ways in: the phone pays its own order with the payment password
//! ([`Wallet::pay_order`]), or approves a cross-device payment request (flow
//! F4, `cross_device`). Both end in [`Wallet::charge_order`].

use paybridge_api::partner::{DebitAnswer, DebitRequest, DebitStatus};
use paybridge_api::wallet::MoneyBody;
use paybridge_client::{PartnerClient, PartnerError};
use paybridge_crypto::signing::MAX_CLOCK_SKEW_SECS;
use paybridge_domain::binding::BindingState;
use paybridge_domain::happened::OrderStep;
use paybridge_domain::ids::{BindingId, OrderId, UserId};
use paybridge_domain::ledger::{AccountId, TransferKind, TransferRequest};
use paybridge_domain::order::{debit_refusal, DebitRefusal, OrderState};
use paybridge_domain::partner::{InvalidPartnerId, PartnerId};
use paybridge_domain::{Currency, ErrorCode, ServiceError};
use paybridge_kernel::ledger::{clearing_account, settled, transfer_id};
use paybridge_store::StoredOrder;

use crate::views::OrderView;
use crate::Wallet;

/// A payment still `paying` this long after its last debit request is
/// reconciled by [`Wallet::reconcile_paying_orders`]: past the 15 s a debit
/// call may take, so a payment still in its request is rarely raced (racing
/// it is safe: the reconciliation only reads the bank's debit).
pub const SETTLE_AFTER_SECS: i64 = 20;
/// After this long since its last debit request, a debit the bank does not
/// hold never will: the request's signature is too old to be accepted
/// ([`MAX_CLOCK_SKEW_SECS`] and a margin). Only then does "absent" reopen
/// the order.
pub const ABSENT_IS_FINAL_AFTER_SECS: i64 = MAX_CLOCK_SKEW_SECS + 60;
/// Paying orders reconciled per round.
const STALLED_PAYMENT_BATCH: i64 = 100;

/// Who paid `order` and with which binding, once a payment started
/// (`None` before). Ids the wallet wrote itself that do not parse are a bug.
pub(crate) fn payment_of(order: &StoredOrder) -> Result<Option<(UserId, BindingId)>, ServiceError> {
    let (Some(payer), Some(binding)) = (&order.payer_user_id, &order.binding_id) else {
        return Ok(None);
    };
    let payer = payer.parse().map_err(ServiceError::internal)?;
    let binding = binding.parse().map_err(ServiceError::internal)?;
    Ok(Some((payer, binding)))
}

impl Wallet {
    pub(crate) async fn load_order(&self, id: &OrderId) -> Result<StoredOrder, ServiceError> {
        self.store
            .order(id)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such order"))
    }

    /// Pays `order` with `binding` after checking the payment password.
    pub async fn pay_order(
        &self,
        user: &UserId,
        order_id: &OrderId,
        binding_id: &BindingId,
        payment_password: &str,
    ) -> Result<OrderView, ServiceError> {
        self.require_unrestricted(user).await?;
        let order = self.load_order(order_id).await?;
        let mine = order.payer_user_id.as_deref() == Some(user.as_str());
        if order.status.state == OrderState::Paid && mine {
            return Ok(order.into()); // a retry of a payment that went through
        }
        self.active_binding_issuer(user, binding_id).await?;
        self.verify_payment_password(user, payment_password).await?;
        self.charge_order(user, order, binding_id)
            .await
            .map(OrderView::from)
    }

    /// The signed client of a registered bank.
    pub(crate) fn bank_client(&self, issuer: &PartnerId) -> Result<&PartnerClient, ServiceError> {
        self.issuers.get(issuer).ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::PartnerUnknown,
                "the bank is no longer registered",
            )
        })
    }

    /// The bank of `payer`'s binding `binding`, whatever its state now: a
    /// payment made with it is settled (and refunded) through that bank.
    pub(crate) async fn bank_of_binding(
        &self,
        payer: &UserId,
        binding: &BindingId,
    ) -> Result<PartnerId, ServiceError> {
        self.binding(payer, binding)
            .await?
            .issuer_id
            .parse()
            .map_err(|e: InvalidPartnerId| ServiceError::internal(e))
    }

    /// The bank of an active binding of `user`.
    pub(crate) async fn active_binding_issuer(
        &self,
        user: &UserId,
        binding_id: &BindingId,
    ) -> Result<PartnerId, ServiceError> {
        let binding = self.binding(user, binding_id).await?;
        if binding.state != BindingState::Active {
            return Err(ServiceError::rejected(
                ErrorCode::BindingNotPending,
                "the binding is not active",
            ));
        }
        binding
            .issuer_id
            .parse()
            .map_err(|e: InvalidPartnerId| ServiceError::internal(e))
    }

    /// Debits the payer's bound card for `order` once its approval was
    /// checked, credits the merchant and marks the order paid. Starting to
    /// pay is a compare-and-set on the order, so two racing approvals cannot
    /// both start; a payment in progress resumes only with the binding that
    /// started it. Only a definite refusal of the bank reopens the order
    /// ([`debit_refusal`]); an unknown outcome leaves it `paying` for
    /// [`Wallet::reconcile_paying_orders`].
    pub(crate) async fn charge_order(
        &self,
        user: &UserId,
        order: StoredOrder,
        binding_id: &BindingId,
    ) -> Result<StoredOrder, ServiceError> {
        let mine = order.payer_user_id.as_deref() == Some(user.as_str());
        if order.status.state == OrderState::Paid && mine {
            return Ok(order);
        }
        let issuer = self.active_binding_issuer(user, binding_id).await?;
        self.check_merchant_currency(&order).await?;
        let order = self.start_or_resume_paying(user, order, binding_id).await?;
        let client = self.bank_client(&issuer)?;
        let agreement = self.agreement_number(user, binding_id).await?;
        let debit: Result<DebitAnswer, _> = client
            .call(
                reqwest::Method::POST,
                "/v1/partner/debits",
                Some(&DebitRequest {
                    payment_id: order.id.to_string(),
                    agreement_number: agreement,
                    amount: MoneyBody::from(order.status.amount),
                    description: order.description.clone(),
                }),
                Some(&format!("pay:{}", order.id)),
            )
            .await;
        match debit {
            Ok(_) => self.settle_paid(&issuer, order).await,
            Err(PartnerError::Refused {
                status,
                code,
                message,
                ..
            }) if debit_refusal(status, &code) == DebitRefusal::Declined => {
                // Refused for good (no funds, card blocked): the order is open again.
                self.reopen(order).await?;
                let code = ErrorCode::from_wire(&code).unwrap_or(ErrorCode::PartnerResponseInvalid);
                Err(ServiceError::rejected(
                    code,
                    format!("the bank refused the payment: {message}"),
                ))
            }
            Err(e) => {
                // Unknown outcome: the order stays `paying`. A retry with the
                // same binding asks again with the same payment id (it
                // cannot debit twice); the reconciliation settles it if no
                // one retries.
                tracing::warn!(order.id = %order.id, error = %e, "debit outcome unknown; the order stays paying");
                Err(ServiceError::rejected(
                    ErrorCode::PaymentPending,
                    "the bank has not confirmed the debit; the order stays paying and is settled \
                     within minutes; retrying with the same card is safe",
                ))
            }
        }
    }

    /// Moves `order` to `paying` by `user` with `binding`, or resumes the
    /// payment `user` started with that same binding. Either way the order's
    /// `updated_at` is now: the reconciliation measures from the last debit
    /// request sent.
    async fn start_or_resume_paying(
        &self,
        user: &UserId,
        mut order: StoredOrder,
        binding_id: &BindingId,
    ) -> Result<StoredOrder, ServiceError> {
        let mine = order.payer_user_id.as_deref() == Some(user.as_str());
        if order.status.state == OrderState::Paying && mine {
            if order.binding_id.as_deref() != Some(binding_id.as_str()) {
                return Err(ServiceError::rejected(
                    ErrorCode::OrderNotPayable,
                    "a payment of this order with another card is in progress; retry with that card",
                ));
            }
        } else {
            order.status = order.status.start_paying(self.clock.now())?;
            order.payer_user_id = Some(user.to_string());
            order.binding_id = Some(binding_id.to_string());
        }
        order.updated_at = self.clock.now();
        if !self.store.order_update(&order, &[]).await? {
            return Err(ServiceError::rejected(
                ErrorCode::OrderNotPayable,
                "a payment of this order is in progress",
            ));
        }
        order.version += 1;
        Ok(order)
    }

    /// The money is the merchant's before any debit: an order in a currency
    /// the merchant's account does not hold is refused (it could never be
    /// credited).
    async fn check_merchant_currency(&self, order: &StoredOrder) -> Result<(), ServiceError> {
        let held = self.merchant_currency(&order.merchant_id).await?;
        if held != order.status.amount.currency {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                format!(
                    "the order is in {}, the merchant's account holds {held}",
                    order.status.amount.currency
                ),
            ));
        }
        Ok(())
    }

    /// The debit went through: the merchant is credited and the order paid
    /// (both idempotent, so a resumed payment does each once).
    async fn settle_paid(
        &self,
        issuer: &PartnerId,
        mut order: StoredOrder,
    ) -> Result<StoredOrder, ServiceError> {
        self.credit_merchant(issuer, &order).await?;
        let order_id = order.id.clone();
        order.status = order.status.paid()?;
        order.updated_at = self.clock.now();
        let event = Self::order_event_for(&order, OrderStep::Paid);
        if !self.store.order_update(&order, &[event]).await? {
            // A racing retry marked it paid first.
            return self.load_order(&order_id).await;
        }
        order.version += 1;
        tracing::info!(order.id = %order.id, "order paid");
        Ok(order)
    }

    /// No money moved: the order is open for another payment.
    async fn reopen(&self, mut order: StoredOrder) -> Result<(), ServiceError> {
        order.status = order.status.payment_failed()?;
        order.updated_at = self.clock.now();
        self.store.order_update(&order, &[]).await?;
        Ok(())
    }

    /// The reconciliation of the payment saga. Paying an order is four steps
    /// that cannot share one transaction, because the second is the bank's:
    ///
    /// ```text
    /// 1 order open → paying (commit) · 2 bank debit (idempotent on the order id)
    /// 3 merchant credited (ledger, idempotent on `order-paid:{order}`) · 4 order paid (commit)
    /// ```
    ///
    /// A crash or an unknown bank answer between 1 and 4 leaves the order
    /// `paying`. For each order `paying` for over [`SETTLE_AFTER_SECS`] this
    /// asks the bank what became of the debit (it never debits again):
    /// debited, and the merchant is credited and the order paid; absent, and
    /// once [`ABSENT_IS_FINAL_AFTER_SECS`] passed since the last debit
    /// request (no signed request of ours can still be accepted) the order
    /// opens again. Returns how many reached an end; the rest wait.
    pub async fn reconcile_paying_orders(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now();
        let stalled = self
            .store
            .orders_stalled_paying(
                now - time::Duration::seconds(SETTLE_AFTER_SECS),
                STALLED_PAYMENT_BATCH,
            )
            .await?;
        let mut ended = 0;
        for order in stalled {
            let id = order.id.clone();
            match self.reconcile(order, now).await {
                Ok(Some(state)) => {
                    tracing::info!(order.id = %id, state = state.as_str(), "paying order reconciled");
                    ended += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(order.id = %id, error = %e, "paying order not reconciled; tried again next round")
                }
            }
        }
        Ok(ended)
    }

    /// One paying order: its state once settled, `None` while it must wait.
    async fn reconcile(
        &self,
        order: StoredOrder,
        now: paybridge_domain::Timestamp,
    ) -> Result<Option<OrderState>, ServiceError> {
        let Some((payer, binding)) = payment_of(&order)? else {
            tracing::error!(order.id = %order.id, "a paying order without a payer: left for an operator");
            return Ok(None);
        };
        let issuer = self.bank_of_binding(&payer, &binding).await?;
        let client = self.bank_client(&issuer)?;
        let status: DebitStatus = client
            .call::<(), _>(
                reqwest::Method::GET,
                &format!("/v1/partner/debits?payment_id={}", order.id),
                None,
                None,
            )
            .await?;
        match status.status.as_str() {
            "debited" => Ok(Some(self.settle_paid(&issuer, order).await?.status.state)),
            "absent"
                if now - order.updated_at
                    >= time::Duration::seconds(ABSENT_IS_FINAL_AFTER_SECS) =>
            {
                self.reopen(order).await?;
                Ok(Some(OrderState::Open))
            }
            "absent" => Ok(None),
            other => Err(ServiceError::rejected(
                ErrorCode::PartnerResponseInvalid,
                format!("the bank's debit status {other:?} is not one we know"),
            )),
        }
    }

    /// The wallet's account of what `issuer` owes it in `currency` (the
    /// other side of the bank's clearing account for this wallet).
    pub(crate) async fn issuer_clearing_account(
        &self,
        issuer: &PartnerId,
        currency: Currency,
    ) -> Result<AccountId, ServiceError> {
        clearing_account(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.id,
            "issuer-clearing",
            issuer,
            currency,
        )
        .await
    }

    /// The bank debited the card: the money is the merchant's now. One
    /// transfer per order; its id makes a retry answer the same transfer.
    async fn credit_merchant(
        &self,
        issuer: &PartnerId,
        order: &StoredOrder,
    ) -> Result<(), ServiceError> {
        let merchant = self
            .store
            .merchant(&order.merchant_id)
            .await?
            .ok_or_else(|| {
                ServiceError::rejected(ErrorCode::NotFound, "the order's merchant is gone")
            })?;
        let clearing = self
            .issuer_clearing_account(issuer, order.status.amount.currency)
            .await?;
        let id = transfer_id(&format!("order-paid:{}", order.id))?;
        let request = TransferRequest {
            id,
            debit_account: clearing,
            credit_account: merchant.account_id,
            amount: order.status.amount,
            kind: TransferKind::Posted,
        };
        let outcome = self
            .store
            .ledger_submit(&request, &[], self.clock.now())
            .await?;
        settled(outcome, "the merchant's account is missing").map(|_| ())
    }
}
