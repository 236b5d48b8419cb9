//! Paying a merchant's order with a bound card: the wallet debits the card
//! through its bank (signed call, quick-pay agreement, idempotent on the
//! order id), credits the merchant's balance in its own ledger and marks the
//! order paid; the merchant hears it through its webhook. A retried or
//! concurrent payment of the same order never debits twice: one call moves
//! the order to `paying`; a retry by the same payer re-asks the bank with
//! the same payment id, which answers with the same transfer.
//!
//! Two ways in: the phone pays its own order with the payment password
//! ([`Wallet::pay_order`]), or approves a cross-device payment request (flow
//! F4, `cross_device`). Both end in [`Wallet::charge_order`].

use paybridge_api::partner::{DebitAnswer, DebitRequest};
use paybridge_api::wallet::MoneyBody;
use paybridge_domain::binding::BindingState;
use paybridge_domain::happened::OrderStep;
use paybridge_domain::ids::{BindingId, OrderId, UserId};
use paybridge_domain::ledger::{AccountId, TransferKind, TransferRequest};
use paybridge_domain::order::OrderState;
use paybridge_domain::partner::{InvalidPartnerId, PartnerId};
use paybridge_domain::{Currency, ErrorCode, ServiceError};
use paybridge_kernel::ledger::{clearing_account, settled, transfer_id};
use paybridge_store::StoredOrder;

use crate::views::OrderView;
use crate::Wallet;

/// A payment still `paying` this long after its last step is resumed by
/// [`Wallet::resume_stalled_payments`]: well past the 30 s a request may
/// run, so a payment still in its request is not raced (racing it would
/// still be safe: every step is idempotent).
pub const STALLED_PAYMENT_SECS: i64 = 120;
/// Stalled payments resumed per round.
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
    /// both start.
    pub(crate) async fn charge_order(
        &self,
        user: &UserId,
        mut order: StoredOrder,
        binding_id: &BindingId,
    ) -> Result<StoredOrder, ServiceError> {
        let order_id = order.id.clone();
        let mine = order.payer_user_id.as_deref() == Some(user.as_str());
        if order.status.state == OrderState::Paid && mine {
            return Ok(order);
        }
        let issuer = self.active_binding_issuer(user, binding_id).await?;

        // Start paying, or resume our own payment in progress.
        if !(order.status.state == OrderState::Paying && mine) {
            order.status = order.status.start_paying(self.clock.now())?;
            order.payer_user_id = Some(user.to_string());
            order.binding_id = Some(binding_id.to_string());
            order.updated_at = self.clock.now();
            if !self.store.order_update(&order, &[]).await? {
                return Err(ServiceError::rejected(
                    ErrorCode::OrderNotPayable,
                    "a payment of this order is in progress",
                ));
            }
            order.version += 1;
        }

        let client = self.issuers.get(&issuer).ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::PartnerUnknown,
                "the bank is no longer registered",
            )
        })?;
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
            Ok(_) => self.credit_merchant(&issuer, &order).await?,
            Err(paybridge_client::PartnerError::Refused {
                status,
                code,
                message,
                ..
            }) if status < 500 => {
                // Refused for good (no funds, card blocked): the order is open again.
                order.status = order.status.payment_failed()?;
                order.updated_at = self.clock.now();
                self.store.order_update(&order, &[]).await?;
                let code = ErrorCode::from_wire(&code).unwrap_or(ErrorCode::PartnerResponseInvalid);
                return Err(ServiceError::rejected(
                    code,
                    format!("the bank refused the payment: {message}"),
                ));
            }
            // Unknown outcome: the order stays `paying`; a retry asks again
            // with the same payment id and cannot debit twice.
            Err(e) => return Err(e.into()),
        }
        order.status = order.status.paid()?;
        order.updated_at = self.clock.now();
        let event = Self::order_event_for(&order, OrderStep::Paid);
        if !self.store.order_update(&order, &[event]).await? {
            // A racing retry marked it paid first.
            return self.load_order(&order_id).await;
        }
        order.version += 1;
        tracing::info!(order.id = %order.id, user.id = %user, "order paid");
        Ok(order)
    }

    /// The recovery step of the payment saga. Paying an order is four steps
    /// that cannot share one transaction, because the second is the bank's:
    ///
    /// ```text
    /// 1 order open → paying (commit) · 2 bank debit (idempotent on the order id)
    /// 3 merchant credited (ledger, idempotent on `order-paid:{order}`) · 4 order paid (commit)
    /// ```
    ///
    /// A crash or an unknown bank answer between 1 and 4 leaves the order
    /// `paying`. This resumes every such order older than
    /// [`STALLED_PAYMENT_SECS`] from step 2: each step is idempotent, so a
    /// resumed payment debits at most once, and one the bank refuses
    /// reopens the order. Returns how many were resumed to an end (paid or
    /// reopened); the rest stay for the next round.
    pub async fn resume_stalled_payments(&self) -> Result<usize, ServiceError> {
        let before = self.clock.now() - time::Duration::seconds(STALLED_PAYMENT_SECS);
        let stalled = self
            .store
            .orders_stalled_paying(before, STALLED_PAYMENT_BATCH)
            .await?;
        let mut ended = 0;
        for order in stalled {
            let Ok(Some((payer, binding))) = payment_of(&order) else {
                tracing::error!(order.id = %order.id, "a paying order without a readable payer: left for an operator");
                continue;
            };
            let id = order.id.clone();
            let outcome = self.charge_order(&payer, order, &binding).await;
            let now = self.load_order(&id).await?.status.state;
            match (outcome, now) {
                (_, OrderState::Paying) => {
                    tracing::warn!(order.id = %id, "stalled payment still unresolved; tried again next round")
                }
                (Ok(_), state) | (Err(ServiceError::Rejected(_)), state) => {
                    tracing::info!(order.id = %id, state = state.as_str(), "stalled payment resumed");
                    ended += 1;
                }
                (Err(e), state) => {
                    tracing::warn!(order.id = %id, state = state.as_str(), error = %e, "stalled payment resumed with an error")
                }
            }
        }
        Ok(ended)
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
