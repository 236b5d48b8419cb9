//! Paying a merchant's order with a bound card and the payment password:
//! the wallet debits the card through its bank (signed call, quick-pay
//! agreement, idempotent on the order id) and marks the order paid; the
//! merchant hears it through its webhook. A retried or concurrent payment of
//! the same order never debits twice: one call moves the order to `paying`;
//! a retry by the same payer re-asks the bank with the same payment id,
//! which answers with the same transfer. (The cross-device flow of F4 adds
//! the PC, the push and the WebAuthn approval around this.)

use paybridge_api::partner::{DebitAnswer, DebitRequest};
use paybridge_api::wallet::MoneyBody;
use paybridge_domain::binding::BindingState;
use paybridge_domain::ids::{BindingId, OrderId, UserId};
use paybridge_domain::order::OrderState;
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{ErrorCode, ServiceError};
use paybridge_store::StoredOrder;

use crate::Wallet;

fn rejected(code: ErrorCode, message: impl Into<String>) -> ServiceError {
    ServiceError::rejected(code, message)
}

impl Wallet {
    async fn load_order(&self, id: &OrderId) -> Result<StoredOrder, ServiceError> {
        self.store
            .order(id)
            .await?
            .ok_or_else(|| rejected(ErrorCode::NotFound, "no such order"))
    }

    /// Pays `order` with `binding` after checking the payment password.
    pub async fn pay_order(
        &self,
        user: &UserId,
        order_id: &OrderId,
        binding_id: &BindingId,
        payment_password: &str,
    ) -> Result<StoredOrder, ServiceError> {
        self.require_unrestricted(user).await?;
        let order = self.load_order(order_id).await?;
        let mine = order.payer_user_id.as_deref() == Some(user.as_str());
        if order.status.state == OrderState::Paid && mine {
            return Ok(order); // a retry of a payment that went through
        }
        let binding = self.binding(user, binding_id).await?;
        if binding.state != BindingState::Active {
            return Err(rejected(
                ErrorCode::BindingNotPending,
                "the binding is not active",
            ));
        }
        self.verify_payment_password(user, payment_password).await?;

        // Start paying, or resume our own payment in progress.
        let mut order = order;
        if !(order.status.state == OrderState::Paying && mine) {
            order.status = order.status.start_paying(self.clock.now())?;
            order.payer_user_id = Some(user.to_string());
            order.binding_id = Some(binding_id.to_string());
            order.updated_at = self.clock.now();
            if !self.store.order_update(&order, &[]).await? {
                return Err(rejected(
                    ErrorCode::OrderNotPayable,
                    "a payment of this order is in progress",
                ));
            }
            order.version += 1;
        }

        let issuer: PartnerId = binding.issuer_id.parse().map_err(
            |e: paybridge_domain::partner::InvalidPartnerId| ServiceError::Internal(Box::new(e)),
        )?;
        let client = self.issuers.get(&issuer).ok_or_else(|| {
            rejected(
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
            Ok(_) => {}
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
                return Err(rejected(
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
        let event = Self::order_event_for(&order, "order.paid");
        if !self.store.order_update(&order, &[event]).await? {
            // A racing retry marked it paid first.
            return self.load_order(order_id).await;
        }
        order.version += 1;
        tracing::info!(order.id = %order.id, user.id = %user, "order paid");
        Ok(order)
    }
}
