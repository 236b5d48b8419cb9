//! Flow F3's payments (seed 002, claims 1, 4–11). A paired first device
//! sends a **transfer payment request** signed with its device key, on its
//! session. The wallet takes the **login info** from the session, finds the
//! device's agreement in the **agreement query result**, opens it (the
//! **first agreement state**), identifies the **device usage** against it
//! (counter, category, limits) and records it in the agreement, sealed
//! again. The **confirm payment request** is then made either from the
//! phone's **confirm payment message** (answering a **transfer payment
//! message**), or, for a small amount under a direct policy, from the first
//! state alone. The wallet opens the agreement again (the **second
//! agreement state**), signs a **payment execution task** and sends it to
//! the phone, which executes it (biometric unless direct, its device
//! signature); the debit runs through the bank (the payment saga of
//! `payments`, idempotent on the order id), the phone answers with its
//! **payment completion message**, and the **payment result notification**
//! goes to both devices.
//!
//! Every step is a transition of `paybridge_domain::transfer_payment` and
//! is saved with its events, and with the agreement's usage when it moves,
//! in one transaction.

use paybridge_api::delegated::{
    ConfirmPaymentClaims, Decision, ExecutionTaskClaims, PaymentCompletionClaims,
    TaskExecutionClaims, TaskPayee, TransferPaymentRequestClaims,
};
use paybridge_api::wallet::MoneyBody;
use paybridge_crypto::device_proof::DeviceJwk;
use paybridge_crypto::signed_message::{message_hash, verify, MessageType};
use paybridge_domain::device::DeviceType;
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::{
    Happened, PaymentMerchantFacts, RequestingDeviceFacts, TransferPaymentFacts, UsageFacts,
};
use paybridge_domain::ids::{CeremonyId, MerchantId, OrderId, TransferPaymentId, UserId};
use paybridge_domain::order::OrderState;
use paybridge_domain::transfer_agreement::{ConfirmRoute, DeviceUsage};
use paybridge_domain::transfer_payment::{
    check_pace, check_purpose, task_approval_purpose, CompletedBy, TransferPaymentStage,
    TransferPaymentState, TransferPaymentStatus, PACE_WINDOW_SECS,
};
use paybridge_domain::{ErrorCode, Money, ServiceError, Timestamp};
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::{IssuedTask, StoredDevice, StoredTransferPayment, TransferCreate};
use rand::RngCore;
use serde::de::DeserializeOwned;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use crate::accounts::SessionUser;
use crate::transfer_agreements::Agreement;
use crate::views::{DeviceView, TaskView, TransferPaymentView};
use crate::webauthn::CeremonyStarted;
use crate::Wallet;

/// Due payments settled per sweep.
const DUE_BATCH: i64 = 200;

fn no_such_payment() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such transfer payment")
}

fn not_this_task() -> ServiceError {
    ServiceError::rejected(
        ErrorCode::ExecutionTaskInvalid,
        "this is not the payment execution task the wallet issued for this payment",
    )
}

fn mismatch(message: &str) -> ServiceError {
    ServiceError::rejected(ErrorCode::MessageMismatch, message)
}

/// Opens a message `device` signed with its key: its kind, signature and
/// payload. A message by another key, of another kind or tampered with is
/// `device_signature_invalid`.
pub(crate) fn device_message<T: DeserializeOwned>(
    device: &StoredDevice,
    jws: &str,
    typ: MessageType,
) -> Result<T, ServiceError> {
    let key = device.key.as_ref().ok_or_else(|| {
        ServiceError::rejected(
            ErrorCode::DeviceSignatureInvalid,
            "this device was registered without a key: pair it again",
        )
    })?;
    let jwk: DeviceJwk = serde_json::from_str(&key.public_key).map_err(ServiceError::internal)?;
    let vk = jwk.verifying_key().map_err(ServiceError::internal)?;
    let verified = verify(jws, typ, &vk)
        .map_err(|e| ServiceError::rejected(ErrorCode::DeviceSignatureInvalid, e.to_string()))?;
    serde_json::from_slice(&verified.payload).map_err(|e| {
        ServiceError::rejected(
            ErrorCode::InvalidRequest,
            format!(
                "the signed message's payload is not a {} payload: {}",
                typ.typ(),
                e.classify_text()
            ),
        )
    })
}

/// A short, input-free description of a JSON error.
trait ClassifyText {
    fn classify_text(&self) -> &'static str;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a field is missing, unknown or of the wrong type",
            _ => "not JSON",
        }
    }
}

fn money_of(body: &MoneyBody) -> Result<Money, ServiceError> {
    let currency = body.currency.parse().map_err(|_| {
        ServiceError::rejected(
            ErrorCode::InvalidRequest,
            "amount.currency: an ISO 4217 code",
        )
    })?;
    Ok(Money::new(body.amount, currency))
}

impl Wallet {
    /// A transfer payment of `user`'s account (another's looks unknown).
    async fn own_payment(
        &self,
        user: &UserId,
        id: &TransferPaymentId,
    ) -> Result<StoredTransferPayment, ServiceError> {
        self.store
            .transfer_payment(id)
            .await?
            .filter(|p| &p.user_id == user)
            .ok_or_else(no_such_payment)
    }

    /// The payment, for the phone it was sent to: its session, proved by
    /// its key, and the phone itself to verify its messages with.
    async fn payment_for_phone(
        &self,
        session: &SessionUser,
        id: &TransferPaymentId,
    ) -> Result<(StoredTransferPayment, StoredDevice), ServiceError> {
        let p = self.own_payment(&session.user_id, id).await?;
        if session.device_id.as_ref() != Some(&p.phone_id) {
            return Err(ServiceError::rejected(
                ErrorCode::TerminalNotOfAccount,
                "answer this transfer payment from the phone it was sent to",
            ));
        }
        let phone = self.active_device(&session.user_id, &p.phone_id).await?;
        Ok((p, phone))
    }

    /// What both devices are told of a payment.
    async fn payment_facts(
        &self,
        p: &StoredTransferPayment,
    ) -> Result<TransferPaymentFacts, ServiceError> {
        let order = self.load_order(&p.order_id).await?;
        let merchant = self.store.merchant(&p.merchant_id).await?;
        let device = self
            .store
            .device(&p.device_id)
            .await?
            .ok_or_else(no_such_payment)?;
        Ok(TransferPaymentFacts {
            transfer_payment_id: p.id.clone(),
            order_id: p.order_id.clone(),
            amount: p.amount,
            description: order.description,
            merchant: PaymentMerchantFacts {
                id: p.merchant_id.clone(),
                name: merchant.map(|m| m.name).unwrap_or_default(),
            },
            requested_by: RequestingDeviceFacts {
                device_id: device.id,
                name: device.name,
                device_type: device.device_type,
            },
            usage: UsageFacts {
                category: p.usage.category,
                purpose: p.usage.purpose.clone(),
                counter: p.usage.counter,
            },
        })
    }

    fn changed_event(p: &StoredTransferPayment, now: Timestamp) -> NewEvent {
        Happened::TransferPaymentChanged {
            transfer_payment_id: p.id.clone(),
            state: p.status.state.stage(),
        }
        .to(Destination::Internal, now)
    }

    /// Moves a payment that gives no amount back: `to` answers its next
    /// status, or `None` when there is nothing to do (answered as it is).
    /// Saved at its version, with the transition's audit event.
    async fn step_payment(
        &self,
        user: &UserId,
        id: &TransferPaymentId,
        to: impl Fn(
            &StoredTransferPayment,
            Timestamp,
        ) -> Result<Option<TransferPaymentStatus>, ServiceError>,
    ) -> Result<StoredTransferPayment, ServiceError> {
        let to = &to;
        on_conflict("the transfer payment", || async move {
            let mut p = self.own_payment(user, id).await?;
            let now = self.clock.now();
            let Some(status) = to(&p, now)? else {
                return Ok(Attempt::Done(p));
            };
            p.status = status;
            p.updated_at = now;
            if !self
                .store
                .transfer_payment_update(&p, None, &[Self::changed_event(&p, now)])
                .await?
            {
                return Ok(Attempt::Lost);
            }
            p.version += 1;
            Ok(Attempt::Done(p))
        })
        .await
    }

    /// The payment result notification (支付结果通知), to both devices, and
    /// the transition's audit event.
    pub(crate) async fn result_events(
        &self,
        p: &StoredTransferPayment,
        now: Timestamp,
    ) -> Result<Vec<NewEvent>, ServiceError> {
        let result = Happened::PaymentResult {
            payment: Box::new(self.payment_facts(p).await?),
            result: p.status.state.stage(),
            reason: p.status.state.failure(),
            completed_by: p.completed_by,
        };
        Ok(vec![
            result.to(Destination::Device(p.device_id.clone()), now),
            result.to(Destination::Device(p.phone_id.clone()), now),
            Self::changed_event(p, now),
        ])
    }

    /// The payment as its devices see it; the task only for the phone.
    async fn payment_view(
        &self,
        p: StoredTransferPayment,
        for_phone: bool,
    ) -> Result<TransferPaymentView, ServiceError> {
        let facts = self.payment_facts(&p).await?;
        let device = self
            .store
            .device(&p.device_id)
            .await?
            .ok_or_else(no_such_payment)?;
        let task = p.task.as_ref().filter(|_| for_phone).map(|t| TaskView {
            jws: t.jws.clone(),
            hash: t.hash.clone(),
            biometric_required: p.status.route == ConfirmRoute::WithUser,
            expires_at: p.status.expires_at,
        });
        Ok(TransferPaymentView {
            state: p.status.at(self.clock.now()),
            route: p.status.route,
            agreement_id: p.agreement_id,
            requested_by: DeviceView::from(device),
            phone_id: p.phone_id,
            order_id: p.order_id,
            merchant_id: p.merchant_id,
            merchant_name: facts.merchant.name,
            description: facts.description,
            amount: p.amount,
            usage: p.usage,
            task,
            completed_by: p.completed_by,
            expires_at: p.status.expires_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            id: p.id,
        })
    }

    /// The first device asks to pay (the transfer payment request): judged
    /// against the first agreement state, recorded in the agreement, and
    /// then the transfer payment message goes to the phone or (direct) the
    /// confirm payment request is made at once.
    pub async fn request_transfer_payment(
        &self,
        session: &SessionUser,
        request: &str,
    ) -> Result<TransferPaymentView, ServiceError> {
        let user = &session.user_id;
        let device_id = session.proven_device()?.clone();
        let device = self.active_device(user, &device_id).await?;
        if device.device_type == DeviceType::Phone {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "a phone pays its own orders; transfer payments come from a PC, TV, car or IoT box",
            ));
        }
        let claims: TransferPaymentRequestClaims =
            device_message(&device, request, MessageType::TransferPaymentRequest)?;
        if claims.device_id != device_id.as_str() {
            return Err(mismatch(
                "the transfer payment request names another device than this session's",
            ));
        }
        let unknown_order =
            || ServiceError::rejected(ErrorCode::NotFound, "no such order of this merchant");
        let merchant: MerchantId = claims.merchant_id.parse().map_err(|_| unknown_order())?;
        let order_id: OrderId = claims.order_id.parse().map_err(|_| unknown_order())?;
        let amount = money_of(&claims.amount)?;
        let usage = DeviceUsage {
            category: claims.usage.category,
            counter: claims.usage.counter,
            purpose: check_purpose(&claims.usage.purpose)?,
        };
        let order = self
            .payable_order(&merchant, &order_id, self.clock.now())
            .await?;
        if order.status.amount != amount {
            return Err(mismatch(
                "the amount the device signed differs from the order's",
            ));
        }
        let p = on_conflict("the transfer payment agreement", || async {
            let mut a = self.agreement_of_device(user, &device_id).await?;
            self.require_agreement_phone(&a).await?;
            let now = self.clock.now();
            let (counted, route) = a.usage.admit(&a.terms(), &usage, amount, now)?;
            let p = StoredTransferPayment {
                id: TransferPaymentId::generate(),
                agreement_id: a.row.id.clone(),
                user_id: user.clone(),
                device_id: device_id.clone(),
                phone_id: a.row.phone_id.clone(),
                order_id: order_id.clone(),
                merchant_id: merchant.clone(),
                amount,
                usage: usage.clone(),
                status: TransferPaymentStatus::requested(route, now),
                task: None,
                completed_by: None,
                counted_at: now,
                created_at: now,
                updated_at: now,
                version: 0,
            };
            a.usage = counted;
            a.record(&p);
            let row = self.agreement_row(&a, now).await?;
            let mut events = vec![Self::changed_event(&p, now)];
            if route == ConfirmRoute::WithUser {
                events.push(
                    Happened::TransferPaymentMessage {
                        payment: Box::new(self.payment_facts(&p).await?),
                        expires_at: paybridge_domain::clock::rfc3339(p.status.expires_at),
                    }
                    .to(Destination::Device(p.phone_id.clone()), now),
                );
            }
            let since = now - time::Duration::seconds(PACE_WINDOW_SECS);
            match self
                .store
                .transfer_payment_create(&p, &row, since, &events)
                .await?
            {
                TransferCreate::Created => Ok(Attempt::Done(p)),
                TransferCreate::Stale => Ok(Attempt::Lost),
                TransferCreate::Paced(pace) => {
                    check_pace(pace)?;
                    Err(ServiceError::Internal(
                        "the store paced a device whose pace is fine".into(),
                    ))
                }
                TransferCreate::OrderBusy => Err(ServiceError::rejected(
                    ErrorCode::OrderNotPayable,
                    "this order has a transfer payment under way already",
                )),
            }
        })
        .await?;
        tracing::info!(
            transfer_payment.id = %p.id,
            device.id = %p.device_id,
            route = p.status.route.as_str(),
            "transfer payment requested"
        );
        let p = if p.status.route == ConfirmRoute::Direct {
            // The confirm payment request, made from the first agreement
            // state and the device usage alone (claims 6–7).
            self.make_confirm_payment_request(user, &p.id).await?
        } else {
            p
        };
        self.payment_view(p, false).await
    }

    /// The agreement's phone must still be an active device: it confirms
    /// and executes the payments.
    async fn require_agreement_phone(&self, a: &Agreement) -> Result<(), ServiceError> {
        let active = self
            .store
            .device(&a.row.phone_id)
            .await?
            .is_some_and(|d| d.status.is_active());
        if active {
            Ok(())
        } else {
            Err(ServiceError::rejected(
                ErrorCode::AgreementInactive,
                "the phone that approved this device is no longer active: pair the device again from another phone",
            ))
        }
    }

    /// The phone's confirm payment message (确认支付消息): approve or
    /// decline, signed with the phone's key, for this payment and amount.
    pub async fn confirm_transfer_payment(
        &self,
        session: &SessionUser,
        id: &TransferPaymentId,
        message: &str,
    ) -> Result<TransferPaymentView, ServiceError> {
        let user = &session.user_id;
        let (p, phone) = self.payment_for_phone(session, id).await?;
        let claims: ConfirmPaymentClaims =
            device_message(&phone, message, MessageType::ConfirmPayment)?;
        if claims.transfer_payment_id != p.id.as_str() {
            return Err(mismatch(
                "the confirm payment message is for another transfer payment",
            ));
        }
        if money_of(&claims.amount)? != p.amount {
            return Err(mismatch(
                "the confirm payment message names another amount than the payment's",
            ));
        }
        let p = match claims.decision {
            Decision::Decline => self.settle(user, id, |s, now| s.decline(now), None).await?,
            Decision::Approve => {
                self.step_payment(user, id, |p, now| Ok(Some(p.status.approve(now)?)))
                    .await?;
                self.make_confirm_payment_request(user, id).await?
            }
        };
        tracing::info!(transfer_payment.id = %id, state = p.status.state.as_str(), "confirm payment message received");
        self.payment_view(p, true).await
    }

    /// Moves a payment to a final state that gives its amount back to the
    /// agreement (declined, failed, expired), with the payment result
    /// notification to both devices.
    async fn settle(
        &self,
        user: &UserId,
        id: &TransferPaymentId,
        to: impl Fn(
            TransferPaymentStatus,
            Timestamp,
        ) -> Result<TransferPaymentStatus, paybridge_domain::DomainError>,
        completed_by: Option<CompletedBy>,
    ) -> Result<StoredTransferPayment, ServiceError> {
        let to = &to;
        on_conflict("the transfer payment", || async move {
            let mut p = self.own_payment(user, id).await?;
            let now = self.clock.now();
            p.status = to(p.status, now)?;
            p.updated_at = now;
            p.completed_by = completed_by;
            let agreement = if TransferPaymentStage::RELEASED.contains(&p.status.state.stage()) {
                let row = self.store.transfer_agreement(&p.agreement_id).await?.ok_or_else(|| {
                    ServiceError::Internal("a transfer payment's agreement is gone".into())
                })?;
                let mut a = self.open_agreement(row).await?;
                a.usage = a.usage.release(p.amount.amount_minor, p.counted_at);
                Some(self.agreement_row(&a, now).await?)
            } else {
                None
            };
            let events = self.result_events(&p, now).await?;
            if !self
                .store
                .transfer_payment_update(&p, agreement.as_ref(), &events)
                .await?
            {
                return Ok(Attempt::Lost);
            }
            p.version += 1;
            tracing::info!(transfer_payment.id = %p.id, result = p.status.state.as_str(), "payment result notified");
            Ok(Attempt::Done(p))
        })
        .await
    }

    /// The confirm payment request (确认支付请求): the agreement is opened
    /// again (the second agreement state) and judged with what was counted
    /// since; if it holds, the payment execution task is signed and sent to
    /// the phone, else the payment fails with the refusal's code.
    async fn make_confirm_payment_request(
        &self,
        user: &UserId,
        id: &TransferPaymentId,
    ) -> Result<StoredTransferPayment, ServiceError> {
        on_conflict("the transfer payment", || async {
            let mut p = self.own_payment(user, id).await?;
            if p.status.state != TransferPaymentState::Confirmed {
                return Ok(Attempt::Done(p));
            }
            let row = self
                .store
                .transfer_agreement(&p.agreement_id)
                .await?
                .ok_or_else(|| ServiceError::Internal("a transfer payment's agreement is gone".into()))?;
            let mut a = self.open_agreement(row).await?;
            let now = self.clock.now();
            let second = a.usage.reconfirm(
                &a.terms(),
                p.usage.category,
                p.amount,
                p.counted_at,
                now,
            );
            let events = match second {
                Ok(counted) => {
                    p.status = p.status.task_issued(now)?;
                    let task = self.sign_task(&p).await?;
                    a.usage = counted;
                    p.counted_at = now;
                    p.updated_at = now;
                    let event = Happened::PaymentExecutionTask {
                        transfer_payment_id: p.id.clone(),
                        task: task.jws.clone(),
                        task_hash: task.hash.clone(),
                        biometric_required: p.status.route == ConfirmRoute::WithUser,
                        expires_at: paybridge_domain::clock::rfc3339(p.status.expires_at),
                    }
                    .to(Destination::Device(p.phone_id.clone()), now);
                    p.task = Some(task);
                    vec![event, Self::changed_event(&p, now)]
                }
                Err(refusal) => {
                    tracing::info!(transfer_payment.id = %p.id, code = refusal.code.as_str(), "the second agreement state refused");
                    p.status = p.status.refused_at_confirmation(refusal.code, now)?;
                    a.usage = a.usage.release(p.amount.amount_minor, p.counted_at);
                    p.updated_at = now;
                    self.result_events(&p, now).await?
                }
            };
            let row = self.agreement_row(&a, now).await?;
            if !self
                .store
                .transfer_payment_update(&p, Some(&row), &events)
                .await?
            {
                return Ok(Attempt::Lost);
            }
            p.version += 1;
            Ok(Attempt::Done(p))
        })
        .await
    }

    /// The payment execution task (支付执行任务), signed by the wallet.
    async fn sign_task(&self, p: &StoredTransferPayment) -> Result<IssuedTask, ServiceError> {
        let payee = self
            .store
            .merchant(&p.merchant_id)
            .await?
            .map(|m| m.name)
            .unwrap_or_default();
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let claims = ExecutionTaskClaims {
            transfer_payment_id: p.id.clone(),
            order_id: p.order_id.clone(),
            amount: p.amount.into(),
            payee: TaskPayee {
                merchant_id: p.merchant_id.clone(),
                name: payee,
            },
            agreement_id: p.agreement_id.clone(),
            device_id: p.device_id.clone(),
            phone_id: p.phone_id.clone(),
            biometric_required: p.status.route == ConfirmRoute::WithUser,
            expires_at: paybridge_domain::clock::rfc3339(p.status.expires_at),
            nonce: data_encoding::BASE64URL_NOPAD.encode(&nonce),
        };
        let payload = serde_json::to_vec(&claims).map_err(ServiceError::internal)?;
        let jws = self.task_key.sign(MessageType::ExecutionTask, &payload);
        Ok(IssuedTask {
            hash: message_hash(&jws),
            jws,
        })
    }

    /// Starts the phone's biometric approval of its task, bound to the
    /// task's hash (a task the user did not see cannot be approved).
    pub async fn start_task_approval(
        &self,
        session: &SessionUser,
        id: &TransferPaymentId,
    ) -> Result<CeremonyStarted<RequestChallengeResponse>, ServiceError> {
        let (p, phone) = self.payment_for_phone(session, id).await?;
        let task = self.task_to_execute(&p)?;
        self.start_assertion(
            &session.user_id,
            &phone.id,
            &task_approval_purpose(&task.hash),
        )
        .await
    }

    /// The task a payment waits on the phone to execute.
    fn task_to_execute<'a>(
        &self,
        p: &'a StoredTransferPayment,
    ) -> Result<&'a IssuedTask, ServiceError> {
        p.status.executing(self.clock.now())?;
        p.task.as_ref().ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::ExecutionTaskInvalid,
                "this payment has no payment execution task",
            )
        })
    }

    /// The phone executes its task: its device signature over the task's
    /// hash and (unless direct) the biometric. The debit then runs through
    /// the bank, idempotent on the order; the answer says whether it went
    /// through (`debited`), was refused (`failed`, with why) or is not
    /// known yet (`executing`: settled within a minute).
    pub async fn execute_task(
        &self,
        session: &SessionUser,
        id: &TransferPaymentId,
        execution: &str,
        biometric: Option<(CeremonyId, Box<PublicKeyCredential>)>,
    ) -> Result<TransferPaymentView, ServiceError> {
        let user = &session.user_id;
        let (p, phone) = self.payment_for_phone(session, id).await?;
        let claims: TaskExecutionClaims =
            device_message(&phone, execution, MessageType::TaskExecution)?;
        if claims.transfer_payment_id != p.id.as_str() {
            return Err(mismatch("the execution is for another transfer payment"));
        }
        let task = self.task_to_execute(&p)?;
        if claims.task_hash != task.hash {
            return Err(not_this_task());
        }
        let purpose = task_approval_purpose(&task.hash);
        match (&biometric, p.status.route) {
            (Some((ceremony, credential)), _) => {
                self.finish_assertion(user, &phone.id, ceremony, &purpose, credential)
                    .await?;
            }
            (None, ConfirmRoute::WithUser) => return Err(ServiceError::rejected(
                ErrorCode::WebauthnRejected,
                "this task needs the biometric: start an approval challenge and send its assertion",
            )),
            (None, ConfirmRoute::Direct) => {}
        }
        let p = self
            .step_payment(user, id, |p, now| {
                if p.task.as_ref().map(|t| &t.hash) != Some(&claims.task_hash) {
                    return Err(not_this_task());
                }
                Ok(Some(p.status.executing(now)?))
            })
            .await?;
        let p = self.debit(p).await?;
        self.payment_view(p, true).await
    }

    /// Runs the debit of an executing payment (the payment saga of
    /// `payments`, idempotent on the order id) and records what is known.
    async fn debit(&self, p: StoredTransferPayment) -> Result<StoredTransferPayment, ServiceError> {
        let row = self
            .store
            .transfer_agreement(&p.agreement_id)
            .await?
            .ok_or_else(|| {
                ServiceError::Internal("a transfer payment's agreement is gone".into())
            })?;
        let a = self.open_agreement(row).await?;
        let order = self.load_order(&p.order_id).await?;
        match self.charge_order(&p.user_id, order, &a.binding).await {
            Ok(_) => self.mark_debited(&p.user_id, &p.id).await,
            Err(ServiceError::Rejected(e)) if e.code != ErrorCode::PaymentPending => {
                tracing::info!(transfer_payment.id = %p.id, code = e.code.as_str(), "the debit was refused");
                self.settle(&p.user_id, &p.id, |s, _| s.debit_failed(e.code), None)
                    .await
            }
            Err(e) => {
                // Unknown outcome: the payment stays executing; the order's
                // saga learns the outcome and the sweep follows it.
                tracing::warn!(transfer_payment.id = %p.id, error = %e, "debit outcome unknown; the transfer payment stays executing");
                Ok(p)
            }
        }
    }

    async fn mark_debited(
        &self,
        user: &UserId,
        id: &TransferPaymentId,
    ) -> Result<StoredTransferPayment, ServiceError> {
        let p = self
            .step_payment(user, id, |p, now| match p.status.state {
                TransferPaymentState::Executing => Ok(Some(p.status.debited(now)?)),
                _ => Ok(None),
            })
            .await?;
        tracing::info!(transfer_payment.id = %id, state = p.status.state.as_str(), "transfer payment debited");
        Ok(p)
    }

    /// The phone's payment completion message (支付完成消息): the task it
    /// executed and the result it showed. The payment is paid, and the
    /// payment result notification goes to both devices.
    pub async fn complete_transfer_payment(
        &self,
        session: &SessionUser,
        id: &TransferPaymentId,
        message: &str,
    ) -> Result<TransferPaymentView, ServiceError> {
        let (p, phone) = self.payment_for_phone(session, id).await?;
        let claims: PaymentCompletionClaims =
            device_message(&phone, message, MessageType::PaymentCompletion)?;
        if claims.transfer_payment_id != p.id.as_str() {
            return Err(mismatch(
                "the completion message is for another transfer payment",
            ));
        }
        match &p.task {
            Some(t) if t.hash == claims.task_hash => {}
            Some(_) => {
                return Err(ServiceError::rejected(
                    ErrorCode::ExecutionTaskInvalid,
                    "the completion message names another task than this payment's",
                ))
            }
            None => {
                return Err(ServiceError::rejected(
                    ErrorCode::ExecutionTaskInvalid,
                    "a completion message without a task: this payment was given none",
                ))
            }
        }
        if p.status.state == TransferPaymentState::Paid
            && p.completed_by == Some(CompletedBy::Phone)
        {
            return self.payment_view(p, true).await; // sent again
        }
        if claims.result != TransferPaymentStage::Paid {
            return Err(mismatch(
                "the completion message's result is not what the wallet recorded: the debit went through",
            ));
        }
        let p = self
            .settle(
                &session.user_id,
                id,
                |s, _| s.completed(),
                Some(CompletedBy::Phone),
            )
            .await?;
        self.payment_view(p, true).await
    }

    /// A transfer payment, for its first device or its phone.
    pub async fn transfer_payment(
        &self,
        session: &SessionUser,
        id: &TransferPaymentId,
    ) -> Result<TransferPaymentView, ServiceError> {
        let p = self.own_payment(&session.user_id, id).await?;
        let for_phone = session.device_id.as_ref() == Some(&p.phone_id);
        if !for_phone && session.device_id.as_ref() != Some(&p.device_id) {
            return Err(no_such_payment());
        }
        self.payment_view(p, for_phone).await
    }

    /// Acts on payments whose step's time ran out: expires those the user
    /// or the phone did not answer (amounts given back), follows an
    /// executing payment's debit once the order's saga knows it, and
    /// completes a debited payment whose phone went quiet. Returns how
    /// many moved.
    pub async fn settle_due_transfer_payments(&self) -> Result<usize, ServiceError> {
        let due = self
            .store
            .transfer_payments_due(self.clock.now(), DUE_BATCH)
            .await?;
        let mut moved = 0;
        for p in due {
            let id = p.id.clone();
            match self.settle_due(p).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(transfer_payment.id = %id, error = %e, "a due transfer payment was not settled; tried again next round")
                }
            }
        }
        Ok(moved)
    }

    async fn settle_due(&self, p: StoredTransferPayment) -> Result<bool, ServiceError> {
        let user = p.user_id.clone();
        match p.status.state {
            TransferPaymentState::AwaitingConfirmation
            | TransferPaymentState::Confirmed
            | TransferPaymentState::TaskIssued => {
                self.settle(&user, &p.id, |s, now| s.expire(now), None)
                    .await?;
                Ok(true)
            }
            TransferPaymentState::Debited => {
                self.settle(
                    &user,
                    &p.id,
                    |s, _| s.completed(),
                    Some(CompletedBy::Wallet),
                )
                .await?;
                Ok(true)
            }
            TransferPaymentState::Executing => {
                let order = self.load_order(&p.order_id).await?;
                let mine = order.payer_user_id.as_deref() == Some(user.as_str());
                match order.status.state {
                    OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Refunded
                        if mine =>
                    {
                        self.mark_debited(&user, &p.id).await?;
                        Ok(true)
                    }
                    OrderState::Paying => {
                        let mut next = p.clone();
                        next.status = p.status.still_executing(self.clock.now())?;
                        self.store.transfer_payment_update(&next, None, &[]).await?;
                        Ok(false)
                    }
                    _ => {
                        // The debit never reached the bank, or the bank
                        // holds none (the order's saga opened it again).
                        self.settle(
                            &user,
                            &p.id,
                            |s, _| s.debit_failed(ErrorCode::PartnerUnreachable),
                            None,
                        )
                        .await?;
                        Ok(true)
                    }
                }
            }
            TransferPaymentState::Paid
            | TransferPaymentState::Declined
            | TransferPaymentState::Failed { .. }
            | TransferPaymentState::Expired => Ok(false),
        }
    }

    /// The wallet's public keys that sign payment execution tasks (JWKs and
    /// their ids), for phones to pin.
    pub fn task_keys(&self) -> Vec<(String, DeviceJwk)> {
        vec![(self.task_key.kid(), self.task_key.public_jwk())]
    }
}
