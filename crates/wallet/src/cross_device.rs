//! Flow F4 (seed 003): a first terminal (PC, TV, car, IoT box) logged in to
//! the wallet asks for an order to be paid; the wallet finds the terminal
//! correspondence (the account's live phone), sends the phone a payment
//! response that opens the payment page (or its QR scanner), optionally only
//! after a gesture reported by the phone or relayed by the OS push server;
//! the phone approves with the payment password or its WebAuthn credential
//! (bound to payment id, order, amount and payee); the card is debited, and
//! the terminal and the merchant are told. Without a correspondence the
//! terminal shows a QR code that a phone of the account scans.
//!
//! The rules are in `paybridge_domain::payment_request`; this module loads,
//! decides with them, and saves each decision with its events.

use paybridge_crypto::token::{generate_token, TokenKind};
use paybridge_domain::device::DeviceFilter;
use paybridge_domain::device::DeviceType;
use paybridge_domain::event::{Destination, EventTopic, NewEvent};
use paybridge_domain::happened::{
    Happened, PaymentMerchantFacts, PaymentRequestFacts, PaymentRequestStep, RequestingDeviceFacts,
};
use paybridge_domain::ids::{
    BindingId, CeremonyId, DeviceId, MerchantId, OrderId, PaymentRequestId, UserId,
};
use paybridge_domain::payment_request::{
    approval_purpose, check_terminal_pace, correspondence, ApprovalMethod, Correspondence, Gesture,
    GestureRoute, GestureWait, OpenWith, PaymentRequestState, PaymentRequestStatus, PhoneCandidate,
    MAX_PENDING_PER_PHONE, TERMINAL_WINDOW_SECS,
};
use paybridge_domain::{ErrorCode, ServiceError, Timestamp};
use paybridge_store::{PaymentRequestCreate, StoredDevice, StoredOrder, StoredPaymentRequest};
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use crate::webauthn::CeremonyStarted;
use paybridge_domain::clock::rfc3339;
use paybridge_kernel::{on_conflict, Attempt};

use crate::views::PaymentPageView;
use crate::Wallet;

/// Due requests expired per sweep.
const EXPIRY_BATCH: i64 = 200;

fn no_such_request() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such payment request")
}

/// What the terminal asks for beyond the order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentRequestOptions {
    /// Wait for a gesture on the phone before opening the payment page.
    pub gesture_required: bool,
    /// What the payment response opens on the phone.
    pub open_with: OpenWith,
}

/// A payment request with what its pages show: what is paid, to whom, who
/// asked and which phone answers.
#[derive(Debug, Clone)]
pub(crate) struct PaymentPage {
    pub request: StoredPaymentRequest,
    pub order: StoredOrder,
    pub merchant_name: String,
    pub terminal: StoredDevice,
    pub phone: Option<StoredDevice>,
    /// Number matching: the two digits the terminal and the phone both show.
    pub match_code: String,
}

impl From<PaymentPage> for PaymentPageView {
    fn from(p: PaymentPage) -> Self {
        PaymentPageView {
            request: p.request.into(),
            order: p.order.into(),
            merchant_name: p.merchant_name,
            terminal: p.terminal.into(),
            phone: p.phone.map(Into::into),
            match_code: p.match_code,
        }
    }
}

/// A new request: the page, and the one-time URL the terminal shows as a
/// QR code (only now: the wallet keeps a keyed hash of it).
#[derive(Debug, Clone)]
pub struct NewPaymentRequest {
    pub page: PaymentPageView,
    pub scan_url: String,
}

/// How the phone's user approves.
#[derive(Debug, Clone)]
pub enum PaymentApproval {
    PaymentPassword(String),
    Webauthn {
        ceremony: CeremonyId,
        credential: Box<PublicKeyCredential>,
    },
}

impl PaymentApproval {
    fn method(&self) -> ApprovalMethod {
        match self {
            PaymentApproval::PaymentPassword(_) => ApprovalMethod::PaymentPassword,
            PaymentApproval::Webauthn { .. } => ApprovalMethod::Webauthn,
        }
    }
}

/// The last part of a scanned payment URL (`<origin>/pay/<code>`), or the code itself.
fn scan_token(scanned: &str) -> &str {
    scanned.rsplit('/').next().unwrap_or(scanned).trim()
}

impl Wallet {
    /// The active device `id` of `user`; anything else looks unknown.
    async fn own_device(&self, user: &UserId, id: &DeviceId) -> Option<StoredDevice> {
        self.store
            .device(id)
            .await
            .ok()
            .flatten()
            .filter(|d| &d.user_id == user && d.status.is_active())
    }

    /// The first terminal of a request: an active non-phone device of the
    /// session's account, and the device the session is bound to.
    async fn first_terminal(
        &self,
        user: &UserId,
        session_device: Option<&DeviceId>,
        terminal: &DeviceId,
    ) -> Result<StoredDevice, ServiceError> {
        let not_ours = || {
            ServiceError::rejected(
                ErrorCode::TerminalNotOfAccount,
                "the terminal is not a device of this account (or not this session's)",
            )
        };
        // The terminal asks for itself, proved by its own key.
        match session_device {
            Some(d) if d == terminal => {}
            Some(_) => return Err(not_ours()),
            None => return Err(ServiceError::rejected(
                ErrorCode::DeviceProofRequired,
                "a payment request comes from the terminal's own session, proved by its key (DPoP)",
            )),
        }
        let device = self.own_device(user, terminal).await.ok_or_else(not_ours)?;
        if device.device_type == DeviceType::Phone {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "a phone pays its own orders (POST /v1/orders/{id}/payments); payment requests come from a PC, TV, car or IoT box",
            ));
        }
        Ok(device)
    }

    /// The terminal correspondence of `user`'s account.
    async fn corresponding_phone(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Option<StoredDevice>, ServiceError> {
        let phones: Vec<StoredDevice> = self
            .store
            .devices_of(user, DeviceFilter::Active)
            .await?
            .into_iter()
            .filter(|d| d.device_type == DeviceType::Phone && d.status.is_active())
            .collect();
        let candidates: Vec<PhoneCandidate<usize>> = phones
            .iter()
            .enumerate()
            .map(|(i, d)| PhoneCandidate {
                id: i,
                last_seen_at: d.last_seen_at,
            })
            .collect();
        Ok(correspondence(&candidates, now).map(|i| phones[i].clone()))
    }

    /// An open order of `merchant` (another merchant's looks unknown).
    pub(crate) async fn payable_order(
        &self,
        merchant: &MerchantId,
        order: &OrderId,
        now: Timestamp,
    ) -> Result<StoredOrder, ServiceError> {
        let order = self.merchant_order(merchant, order).await?;
        // The same check that starting to pay makes, without starting.
        order.status.start_paying(now)?;
        Ok(order)
    }

    async fn page(&self, request: StoredPaymentRequest) -> Result<PaymentPage, ServiceError> {
        let order = self.load_order(&request.order_id).await?;
        let merchant_name = self
            .store
            .merchant(&order.merchant_id)
            .await?
            .map(|m| m.name)
            .unwrap_or_default();
        let terminal = self
            .store
            .device(&request.terminal_id)
            .await?
            .ok_or_else(no_such_request)?;
        let phone = match &request.phone_id {
            Some(p) => self.store.device(p).await?,
            None => None,
        };
        Ok(PaymentPage {
            match_code: self.match_code(&request.id),
            request,
            order,
            merchant_name,
            terminal,
            phone,
        })
    }

    /// Number matching: two digits both screens show, so the user approves
    /// on the phone only what the terminal in front of them asked for (a
    /// request pushed by someone else's terminal shows other digits). Keyed,
    /// so nobody can pick a request id for chosen digits.
    fn match_code(&self, id: &PaymentRequestId) -> String {
        let mac = self
            .keys
            .tokens
            .hash_bytes(format!("payment-request-match:{id}").as_bytes());
        let n = u16::from_str_radix(&mac[..4], 16).unwrap_or_default() % 100;
        format!("{n:02}")
    }

    /// What every event of a request carries: enough for the phone's
    /// payment page and the terminal's screen, nothing secret.
    fn facts(page: &PaymentPage) -> PaymentRequestFacts {
        let r = &page.request;
        PaymentRequestFacts {
            payment_id: r.id.clone(),
            state: r.status.state.stage(),
            order_id: page.order.id.clone(),
            amount: page.order.status.amount,
            description: page.order.description.clone(),
            merchant: PaymentMerchantFacts {
                id: page.order.merchant_id.clone(),
                name: page.merchant_name.clone(),
            },
            requested_by: RequestingDeviceFacts {
                device_id: page.terminal.id.clone(),
                name: page.terminal.name.clone(),
                device_type: page.terminal.device_type,
            },
            expires_at: rfc3339(r.status.expires_at),
        }
    }

    /// Events of a transition: the phone's first (then the terminal's), so
    /// every transaction takes the devices' locks in the same order.
    fn events(
        page: &PaymentPage,
        phone_step: Option<PaymentRequestStep>,
        terminal_step: Option<PaymentRequestStep>,
    ) -> Vec<NewEvent> {
        let now = page.request.updated_at;
        let told = |step| Happened::PaymentRequest {
            step,
            request: Box::new(Self::facts(page)),
        };
        let mut events = Vec::new();
        if let (Some(step), Some(phone)) = (phone_step, &page.request.phone_id) {
            events.push(told(step).to(Destination::Device(phone.clone()), now));
        }
        if let Some(step) = terminal_step {
            let terminal = Destination::Device(page.request.terminal_id.clone());
            events.push(told(step).to(terminal, now));
        }
        let changed = Happened::PaymentRequestChanged {
            payment_id: page.request.id.clone(),
            state: page.request.status.state.stage(),
        };
        events.push(changed.to(Destination::Internal, now));
        events
    }

    /// The phone's event when a request reaches `state` for it.
    fn phone_step(state: &PaymentRequestState) -> Option<PaymentRequestStep> {
        match state {
            // The payment response: opens the payment page.
            PaymentRequestState::Presented => Some(PaymentRequestStep::Presented),
            PaymentRequestState::AwaitingGesture => Some(PaymentRequestStep::GestureRequested),
            // The payment response that opens the phone's scanner.
            PaymentRequestState::AwaitingScan => Some(PaymentRequestStep::ScanRequested),
            PaymentRequestState::Paid { .. } => Some(PaymentRequestStep::Paid),
            PaymentRequestState::Declined => Some(PaymentRequestStep::Declined),
            PaymentRequestState::Expired => Some(PaymentRequestStep::Expired),
            PaymentRequestState::Superseded => Some(PaymentRequestStep::Withdrawn),
        }
    }

    /// A first terminal asks for `order` to be paid.
    pub async fn request_payment(
        &self,
        user: &UserId,
        session_device: Option<&DeviceId>,
        terminal_id: &DeviceId,
        merchant: &MerchantId,
        order_id: &OrderId,
        options: PaymentRequestOptions,
    ) -> Result<NewPaymentRequest, ServiceError> {
        self.require_unrestricted(user).await?;
        let terminal = self
            .first_terminal(user, session_device, terminal_id)
            .await?;
        let now = self.clock.now();
        let terminal_since = now - time::Duration::seconds(TERMINAL_WINDOW_SECS);
        // Checked first so a throttled terminal costs no page, and again
        // when the request is created.
        let activity = self
            .store
            .payment_request_activity_of_terminal(&terminal.id, terminal_since)
            .await?;
        check_terminal_pace(activity)?;
        let order = self.payable_order(merchant, order_id, now).await?;
        let merchant_name = self
            .store
            .merchant(merchant)
            .await?
            .map(|m| m.name)
            .unwrap_or_default();
        let phone = self.corresponding_phone(user, now).await?;
        let code = generate_token(TokenKind::PaymentCode);
        let scan_url = format!("{}/pay/{}", self.app_origin, code.expose());
        let request = StoredPaymentRequest {
            id: PaymentRequestId::generate(),
            user_id: user.clone(),
            order_id: order.id.clone(),
            terminal_id: terminal.id.clone(),
            phone_id: phone.as_ref().map(|p| p.id.clone()),
            status: PaymentRequestStatus::start(
                if phone.is_some() {
                    Correspondence::Found
                } else {
                    Correspondence::Missing
                },
                GestureWait::from_required(options.gesture_required),
                options.open_with,
                now,
                self.payment_request_ttl_secs,
            ),
            open_with: options.open_with,
            gesture_required: options.gesture_required,
            gesture: None,
            scan_code_hash: self.keys.tokens.hash(code.expose()),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let page = PaymentPage {
            match_code: self.match_code(&request.id),
            request,
            order,
            merchant_name,
            terminal,
            phone,
        };
        on_conflict("the payment request", || async {
            // A newer request from a terminal replaces its older pending ones.
            let mut superseded = Vec::new();
            let mut events = Vec::new();
            for old in self
                .store
                .payment_requests_pending_of_terminal(&page.terminal.id)
                .await?
            {
                let mut next = old.clone();
                next.status = old.status.supersede()?;
                next.updated_at = now;
                let old_page = self.page(next.clone()).await?;
                events.extend(Self::events(
                    &old_page,
                    Some(PaymentRequestStep::Withdrawn),
                    Some(PaymentRequestStep::Superseded),
                ));
                superseded.push(next);
            }
            events.extend(Self::events(
                &page,
                Self::phone_step(&page.request.status.state),
                None,
            ));
            match self
                .store
                .payment_request_create(
                    &page.request,
                    &superseded,
                    MAX_PENDING_PER_PHONE,
                    terminal_since,
                    &events,
                )
                .await?
            {
                PaymentRequestCreate::Created => {
                    tracing::info!(
                        payment.id = %page.request.id,
                        terminal.id = %page.terminal.id,
                        state = page.request.status.state.as_str(),
                        "payment request created"
                    );
                    if page.request.status.state == PaymentRequestState::AwaitingGesture {
                        self.relay_gesture_prompt(&page).await;
                    }
                    Ok(Attempt::Done(()))
                }
                PaymentRequestCreate::Conflict => Ok(Attempt::Lost),
                // Judged again in the creating transaction: racing
                // requests cannot pass the pace together.
                PaymentRequestCreate::Throttled(activity) => {
                    check_terminal_pace(activity)?;
                    Err(ServiceError::Internal(
                        "the store throttled a terminal whose pace is fine".into(),
                    ))
                }
                PaymentRequestCreate::PhoneBusy(n) => Err(ServiceError::rejected(
                    ErrorCode::TooManyPendingPayments,
                    format!("the phone already has {n} payment requests waiting; answer or let them expire first"),
                )),
            }
        })
        .await?;
        Ok(NewPaymentRequest {
            page: page.into(),
            scan_url,
        })
    }

    /// Hands the gesture prompt to the OS push relay too, so a phone whose
    /// app is asleep wakes up. Best effort: the push channel has it anyway.
    async fn relay_gesture_prompt(&self, page: &PaymentPage) {
        let (Some(relay), Some(phone)) = (&self.relay, &page.request.phone_id) else {
            return;
        };
        let payload = json!({
            "topic": EventTopic::PaymentRequestGestureRequested.as_str(),
            "payment_id": page.request.id,
            "requested_by": page.terminal.name,
            "expires_at": rfc3339(page.request.status.expires_at),
        });
        if let Err(e) = relay.push(phone.as_str(), &payload).await {
            tracing::warn!(payment.id = %page.request.id, error = %e, "OS push relay refused the gesture prompt");
        }
    }

    /// A request of `user`'s account; one past its expiry is recorded as
    /// expired on the way (both devices are told).
    async fn own_request(
        &self,
        user: &UserId,
        id: &PaymentRequestId,
    ) -> Result<StoredPaymentRequest, ServiceError> {
        on_conflict("the payment request", || async {
            let r = self
                .store
                .payment_request(id)
                .await?
                .filter(|r| &r.user_id == user)
                .ok_or_else(no_such_request)?;
            Ok(match self.expire_if_due(r).await? {
                Some(r) => Attempt::Done(r),
                None => Attempt::Lost,
            })
        })
        .await
    }

    /// `Some(current)` (expired now if it was due), `None` if it moved meanwhile.
    async fn expire_if_due(
        &self,
        r: StoredPaymentRequest,
    ) -> Result<Option<StoredPaymentRequest>, ServiceError> {
        let now = self.clock.now();
        if !r.status.is_expired(now) {
            return Ok(Some(r));
        }
        let mut next = r;
        next.status = next.status.expire(now)?;
        next.updated_at = now;
        let page = self.page(next.clone()).await?;
        let events = Self::events(
            &page,
            Some(PaymentRequestStep::Expired),
            Some(PaymentRequestStep::Expired),
        );
        if !self.store.payment_request_update(&next, &events).await? {
            return Ok(None);
        }
        next.version += 1;
        Ok(Some(next))
    }

    /// Expires due requests and tells their devices; returns how many.
    pub async fn expire_due_payment_requests(&self) -> Result<usize, ServiceError> {
        let due = self
            .store
            .payment_requests_due(self.clock.now(), EXPIRY_BATCH)
            .await?;
        let mut n = 0;
        for r in due {
            if self.expire_if_due(r).await?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The request and its page, for the terminal or a phone of the account.
    pub async fn payment_request(
        &self,
        user: &UserId,
        id: &PaymentRequestId,
    ) -> Result<PaymentPageView, ServiceError> {
        let r = self.own_request(user, id).await?;
        self.page(r).await.map(PaymentPageView::from)
    }

    /// Saves `next` (read at its version) with the events of its new state.
    async fn save_transition(
        &self,
        next: StoredPaymentRequest,
        terminal_step: PaymentRequestStep,
    ) -> Result<Option<PaymentPage>, ServiceError> {
        let mut page = self.page(next).await?;
        let events = Self::events(
            &page,
            Self::phone_step(&page.request.status.state),
            Some(terminal_step),
        );
        if !self
            .store
            .payment_request_update(&page.request, &events)
            .await?
        {
            return Ok(None);
        }
        page.request.version += 1;
        Ok(Some(page))
    }

    /// The phone's user made the gesture: reported by the phone itself
    /// (`Direct`, from its session) or by the OS push relay (`Relay`, a
    /// signed call naming the phone). Only the phone the request was sent
    /// to may answer it.
    pub async fn report_gesture(
        &self,
        id: &PaymentRequestId,
        phone: &DeviceId,
        user: Option<&UserId>,
        gesture: Gesture,
        route: GestureRoute,
    ) -> Result<PaymentPageView, ServiceError> {
        on_conflict("the payment request", || async {
            let r = self
                .store
                .payment_request(id)
                .await?
                .filter(|r| user.is_none_or(|u| &r.user_id == u))
                .ok_or_else(no_such_request)?;
            let Some(r) = self.expire_if_due(r).await? else {
                return Ok(Attempt::Lost);
            };
            if r.phone_id.as_ref() != Some(phone) {
                return Err(ServiceError::rejected(
                    ErrorCode::GestureNotExpected,
                    "this payment request was not sent to that phone",
                ));
            }
            let mut next = r.clone();
            next.status = r.status.gesture(r.open_with, self.clock.now())?;
            next.gesture = Some((gesture, route));
            next.updated_at = self.clock.now();
            if let Some(page) = self
                .save_transition(next, PaymentRequestStep::GestureReceived)
                .await?
            {
                tracing::info!(payment.id = %id, route = route.as_str(), "gesture received");
                return Ok(Attempt::Done(page));
            }
            Ok(Attempt::Lost)
        })
        .await
        .map(PaymentPageView::from)
    }

    /// A phone of the account scanned the code the terminal shows.
    pub async fn scan_payment_code(
        &self,
        user: &UserId,
        phone: &DeviceId,
        scanned: &str,
    ) -> Result<PaymentPageView, ServiceError> {
        self.require_unrestricted(user).await?;
        let device = self.own_device(user, phone).await.ok_or_else(|| {
            ServiceError::rejected(
                ErrorCode::TerminalNotOfAccount,
                "scan with a phone of this account",
            )
        })?;
        if device.device_type != DeviceType::Phone {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "scan with a phone",
            ));
        }
        let hash = self.keys.tokens.hash(scan_token(scanned));
        on_conflict("the payment request", || async {
            // Another account's code looks unknown: the QR pays the asking account's order.
            let r = self
                .store
                .payment_request_by_scan_code(&hash)
                .await?
                .filter(|r| &r.user_id == user)
                .ok_or_else(|| {
                    ServiceError::rejected(ErrorCode::NotFound, "no such payment code")
                })?;
            let Some(r) = self.expire_if_due(r).await? else {
                return Ok(Attempt::Lost);
            };
            if r.status.state == PaymentRequestState::Presented
                && r.phone_id.as_ref() == Some(phone)
            {
                return self.page(r).await.map(Attempt::Done); // scanned twice by the same phone
            }
            let mut next = r.clone();
            next.status = r.status.scanned(self.clock.now())?;
            next.phone_id = Some(phone.clone());
            next.updated_at = self.clock.now();
            if let Some(page) = self
                .save_transition(next, PaymentRequestStep::Scanned)
                .await?
            {
                return Ok(Attempt::Done(page));
            }
            Ok(Attempt::Lost)
        })
        .await
        .map(PaymentPageView::from)
    }

    /// The request as the answering phone may act on it.
    async fn request_for_phone(
        &self,
        user: &UserId,
        phone: Option<&DeviceId>,
        id: &PaymentRequestId,
    ) -> Result<StoredPaymentRequest, ServiceError> {
        let r = self.own_request(user, id).await?;
        match (phone, &r.phone_id) {
            (Some(p), Some(target)) if p == target => Ok(r),
            _ => Err(ServiceError::rejected(
                ErrorCode::TerminalNotOfAccount,
                "answer this payment request from the phone it was sent to",
            )),
        }
    }

    /// Starts a WebAuthn approval bound to this payment's id, order, amount and payee.
    pub async fn start_payment_approval(
        &self,
        user: &UserId,
        phone: Option<&DeviceId>,
        id: &PaymentRequestId,
    ) -> Result<CeremonyStarted<RequestChallengeResponse>, ServiceError> {
        let r = self.request_for_phone(user, phone, id).await?;
        r.status.check_approvable(self.clock.now())?;
        let order = self.load_order(&r.order_id).await?;
        let purpose = approval_purpose(
            r.id.as_str(),
            order.id.as_str(),
            order.status.amount,
            order.merchant_id.as_str(),
        );
        let phone = r.phone_id.as_ref().expect("checked above");
        self.start_assertion(user, phone, &purpose).await
    }

    /// The user approves on the payment page: checks the approval, debits
    /// the card, marks the order and the request paid, tells the terminal.
    /// A retry of an approved request answers the paid request again.
    pub async fn approve_payment(
        &self,
        user: &UserId,
        phone: Option<&DeviceId>,
        id: &PaymentRequestId,
        binding: &BindingId,
        approval: PaymentApproval,
    ) -> Result<PaymentPageView, ServiceError> {
        self.require_unrestricted(user).await?;
        let r = self.request_for_phone(user, phone, id).await?;
        if r.status.state.is_paid() {
            return self.page(r).await.map(PaymentPageView::from);
        }
        r.status.check_approvable(self.clock.now())?;
        let order = self.load_order(&r.order_id).await?;
        self.active_binding_issuer(user, binding).await?;
        let phone = r.phone_id.clone().expect("checked above");
        match &approval {
            PaymentApproval::PaymentPassword(pin) => {
                self.verify_payment_password(user, pin).await?;
            }
            PaymentApproval::Webauthn {
                ceremony,
                credential,
            } => {
                // Recomputed from the stored order now: if anything changed
                // since the challenge, the purposes differ and it fails.
                let purpose = approval_purpose(
                    r.id.as_str(),
                    order.id.as_str(),
                    order.status.amount,
                    order.merchant_id.as_str(),
                );
                self.finish_assertion(user, &phone, ceremony, &purpose, credential)
                    .await?;
            }
        }
        self.charge_order(user, order, binding).await?;
        // The money moved; record it on the request. (Had it been declined
        // or superseded in the meantime, the order is still paid: the
        // merchant's webhook and the order say so.)
        on_conflict("the payment request", || async {
            let current = self.own_request(user, id).await?;
            if current.status.state.is_paid() {
                return self.page(current).await.map(Attempt::Done);
            }
            let mut next = current.clone();
            next.status = match current
                .status
                .clone()
                .paid(binding.clone(), approval.method())
            {
                Ok(s) => s,
                Err(_) => return self.page(current).await.map(Attempt::Done),
            };
            next.updated_at = self.clock.now();
            if let Some(page) = self.save_transition(next, PaymentRequestStep::Paid).await? {
                tracing::info!(payment.id = %id, order.id = %page.order.id, "payment request paid");
                return Ok(Attempt::Done(page));
            }
            Ok(Attempt::Lost)
        })
        .await
        .map(PaymentPageView::from)
    }

    /// The user declined on the phone; the terminal is told.
    pub async fn decline_payment(
        &self,
        user: &UserId,
        phone: Option<&DeviceId>,
        id: &PaymentRequestId,
    ) -> Result<PaymentPageView, ServiceError> {
        on_conflict("the payment request", || async {
            let r = self.request_for_phone(user, phone, id).await?;
            if r.status.state == PaymentRequestState::Declined {
                return self.page(r).await.map(Attempt::Done);
            }
            let mut next = r.clone();
            next.status = r.status.decline(self.clock.now())?;
            next.updated_at = self.clock.now();
            if let Some(page) = self
                .save_transition(next, PaymentRequestStep::Declined)
                .await?
            {
                tracing::info!(payment.id = %id, "payment request declined");
                return Ok(Attempt::Done(page));
            }
            Ok(Attempt::Lost)
        })
        .await
        .map(PaymentPageView::from)
    }
}

#[cfg(test)]
mod tests {
    use super::scan_token;

    #[test]
    fn a_scanned_url_or_bare_code_gives_the_code() {
        assert_eq!(scan_token("https://pay.example/pay/pbq_abc"), "pbq_abc");
        assert_eq!(scan_token(" pbq_abc "), "pbq_abc");
    }
}
