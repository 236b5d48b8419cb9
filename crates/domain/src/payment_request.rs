//! Cross-device payment requests (flow F4, seed 003): a first terminal (PC,
//! TV, car, IoT box) asks the user's phone to pay a merchant's order.
//!
//! ```text
//!                 ┌─(gesture required)─▶ awaiting_gesture ──gesture──┐
//! request ──phone─┤                                                  ▼
//!                 ├─(phone prefers its scanner)─▶ awaiting_scan ──scanned──▶ presented ──paid──▶ paid
//!                 └────────────────────────────────────────────────────────▶ presented ──declined──▶ declined
//! request ──no phone (no correspondence)──▶ awaiting_scan (the PC shows the QR code)
//! any pending ──newer request from the same terminal──▶ superseded
//! any pending past its expiry ──▶ expired
//! ```
//!
//! The money is the order's: a payment request never carries an amount of
//! its own, and an approval is bound to the request id, order, amount and
//! payee (see [`approval_purpose`]).

use crate::error::{DomainError, ErrorCode};
use crate::ids::BindingId;
use crate::{Money, Timestamp};

/// A payment request lives 2 minutes unless configured.
pub const PAYMENT_REQUEST_DEFAULT_TTL_SECS: i64 = 120;
/// Bounds of a configured lifetime.
pub const PAYMENT_REQUEST_MIN_TTL_SECS: i64 = 30;
pub const PAYMENT_REQUEST_MAX_TTL_SECS: i64 = 15 * 60;
/// Pending requests one phone may have at once: no push flooding.
pub const MAX_PENDING_PER_PHONE: i64 = 3;
/// The window a terminal's pace is judged over.
pub const TERMINAL_WINDOW_SECS: i64 = 10 * 60;
/// Requests one terminal may make in that window.
pub const MAX_REQUESTS_PER_TERMINAL: i64 = 20;
/// Declines of one terminal's requests in that window after which it waits:
/// a terminal the user keeps saying no to is not the user's.
pub const MAX_DECLINES_PER_TERMINAL: i64 = 3;

/// What one terminal asked for in the last [`TERMINAL_WINDOW_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TerminalActivity {
    pub requested: i64,
    pub declined: i64,
}

/// Whether a terminal may ask again: at most [`MAX_REQUESTS_PER_TERMINAL`]
/// requests and fewer than [`MAX_DECLINES_PER_TERMINAL`] declines per window.
pub fn check_terminal_pace(a: TerminalActivity) -> Result<(), DomainError> {
    if a.declined >= MAX_DECLINES_PER_TERMINAL {
        return Err(DomainError::new(
            ErrorCode::PaymentRequestsThrottled,
            format!(
                "the user declined {MAX_DECLINES_PER_TERMINAL} requests from this device: it may ask again in {} minutes",
                TERMINAL_WINDOW_SECS / 60
            ),
        ));
    }
    if a.requested >= MAX_REQUESTS_PER_TERMINAL {
        return Err(DomainError::new(
            ErrorCode::PaymentRequestsThrottled,
            format!(
                "this device asked {MAX_REQUESTS_PER_TERMINAL} times in {} minutes: wait",
                TERMINAL_WINDOW_SECS / 60
            ),
        ));
    }
    Ok(())
}

/// A phone whose push channel was seen within this window is "live": the
/// wallet pushes to it. An older phone gets no push; the PC shows the QR.
pub const PHONE_LIVE_WINDOW_SECS: i64 = 10 * 60;

/// Where a payment request is. A paid request carries what paid it; the
/// other states carry nothing. [`PaymentRequestStage`] is the state's name
/// alone (what is stored, compared and listed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, strum::EnumDiscriminants)]
#[strum_discriminants(name(PaymentRequestStage), derive(Hash, strum::EnumIter))]
pub enum PaymentRequestState {
    AwaitingGesture,
    AwaitingScan,
    Presented,
    Paid {
        /// The bound card the phone paid with.
        binding: BindingId,
        approved_with: ApprovalMethod,
    },
    Declined,
    Expired,
    Superseded,
}

impl PaymentRequestStage {
    /// Stages in which the request still waits for the user.
    pub const PENDING: [PaymentRequestStage; 3] =
        [Self::AwaitingGesture, Self::AwaitingScan, Self::Presented];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingGesture => "awaiting_gesture",
            Self::AwaitingScan => "awaiting_scan",
            Self::Presented => "presented",
            Self::Paid => "paid",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|v| v.as_str() == s)
    }
}

impl PaymentRequestState {
    pub fn stage(&self) -> PaymentRequestStage {
        PaymentRequestStage::from(self)
    }

    pub fn as_str(&self) -> &'static str {
        self.stage().as_str()
    }

    pub fn is_pending(&self) -> bool {
        PaymentRequestStage::PENDING.contains(&self.stage())
    }

    pub fn is_paid(&self) -> bool {
        matches!(self, Self::Paid { .. })
    }

    /// The state of a stored request: its stage, and for a paid one what
    /// paid it. `None` when the parts do not make a state.
    pub fn from_parts(
        stage: PaymentRequestStage,
        binding: Option<BindingId>,
        approved_with: Option<ApprovalMethod>,
    ) -> Option<Self> {
        use PaymentRequestStage as S;
        Some(match stage {
            S::AwaitingGesture => Self::AwaitingGesture,
            S::AwaitingScan => Self::AwaitingScan,
            S::Presented => Self::Presented,
            S::Paid => Self::Paid {
                binding: binding?,
                approved_with: approved_with?,
            },
            S::Declined => Self::Declined,
            S::Expired => Self::Expired,
            S::Superseded => Self::Superseded,
        })
    }

    /// The binding and approval of a paid request, for storing beside the stage.
    pub fn payment(&self) -> Option<(&BindingId, ApprovalMethod)> {
        match self {
            Self::Paid {
                binding,
                approved_with,
            } => Some((binding, *approved_with)),
            _ => None,
        }
    }
}

/// How the phone's user approved a payment (PSD2 SCA: a knowledge factor,
/// or the phone's biometric as a WebAuthn assertion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ApprovalMethod {
    PaymentPassword,
    Webauthn,
}

impl ApprovalMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMethod::PaymentPassword => "payment_password",
            ApprovalMethod::Webauthn => "webauthn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|v| v.as_str() == s)
    }
}

/// What the phone's user did to accept the push (seed 003: 滑动 / 点击 / 举起).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum Gesture {
    Swipe,
    Tap,
    Raise,
}

impl Gesture {
    pub fn as_str(self) -> &'static str {
        match self {
            Gesture::Swipe => "swipe",
            Gesture::Tap => "tap",
            Gesture::Raise => "raise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|v| v.as_str() == s)
    }
}

/// How the gesture reached the wallet: from the phone, or relayed by the
/// OS vendor's push server (signed call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum GestureRoute {
    Direct,
    Relay,
}

impl GestureRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            GestureRoute::Direct => "direct",
            GestureRoute::Relay => "relay",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|v| v.as_str() == s)
    }
}

/// What the payment response opens on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, strum::EnumIter)]
pub enum OpenWith {
    /// The payment page of the order, directly.
    #[default]
    PaymentPage,
    /// The phone's QR scanner, to scan the code the PC shows.
    Scanner,
}

impl OpenWith {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenWith::PaymentPage => "payment_page",
            OpenWith::Scanner => "scanner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|v| v.as_str() == s)
    }
}

/// Checks a configured lifetime.
pub fn payment_request_ttl(secs: Option<i64>) -> Result<i64, DomainError> {
    let ttl = secs.unwrap_or(PAYMENT_REQUEST_DEFAULT_TTL_SECS);
    if !(PAYMENT_REQUEST_MIN_TTL_SECS..=PAYMENT_REQUEST_MAX_TTL_SECS).contains(&ttl) {
        return Err(DomainError::new(
            ErrorCode::InvalidRequest,
            format!(
                "payment request lifetime: from {PAYMENT_REQUEST_MIN_TTL_SECS} to {PAYMENT_REQUEST_MAX_TTL_SECS} seconds"
            ),
        ));
    }
    Ok(ttl)
}

/// A phone of the account, as the correspondence look-up sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneCandidate<Id> {
    pub id: Id,
    /// When its push channel was last seen.
    pub last_seen_at: Timestamp,
}

/// The terminal correspondence: the second terminal to push to, i.e. the
/// account's phone with a live push channel, most recently seen first.
/// `None` means "no correspondence": the PC shows the QR code.
pub fn correspondence<Id: Clone>(phones: &[PhoneCandidate<Id>], now: Timestamp) -> Option<Id> {
    let live_since = now - time::Duration::seconds(PHONE_LIVE_WINDOW_SECS);
    phones
        .iter()
        .filter(|p| p.last_seen_at >= live_since)
        .max_by_key(|p| p.last_seen_at)
        .map(|p| p.id.clone())
}

/// What a WebAuthn approval of a payment is bound to (dynamic linking): the
/// ceremony stores this text, and the approval fails if any part changed.
pub fn approval_purpose(payment_id: &str, order_id: &str, amount: Money, payee: &str) -> String {
    format!(
        "payment:{payment_id}:order:{order_id}:amount:{}:{}:payee:{payee}",
        amount.amount_minor,
        amount.currency.code()
    )
}

/// The parts of a payment request the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequestStatus {
    pub state: PaymentRequestState,
    pub expires_at: Timestamp,
}

fn refuse(code: ErrorCode, m: &str) -> DomainError {
    DomainError::new(code, m)
}

/// Whether the account has a phone the payment response can be pushed to
/// (the terminal correspondence, see [`correspondence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correspondence {
    Found,
    /// No live phone: the terminal shows a QR code instead.
    Missing,
}

/// Whether the push waits for a gesture on the phone first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GestureWait {
    Required,
    Skipped,
}

impl GestureWait {
    pub fn from_required(required: bool) -> GestureWait {
        if required {
            GestureWait::Required
        } else {
            GestureWait::Skipped
        }
    }
}

impl PaymentRequestStatus {
    /// A new request.
    pub fn start(
        correspondence: Correspondence,
        gesture: GestureWait,
        open_with: OpenWith,
        now: Timestamp,
        ttl_secs: i64,
    ) -> Self {
        use Correspondence::{Found, Missing};
        use GestureWait::{Required, Skipped};
        let state = match (correspondence, gesture, open_with) {
            (Missing, _, _) => PaymentRequestState::AwaitingScan,
            (Found, Required, _) => PaymentRequestState::AwaitingGesture,
            (Found, Skipped, OpenWith::Scanner) => PaymentRequestState::AwaitingScan,
            (Found, Skipped, OpenWith::PaymentPage) => PaymentRequestState::Presented,
        };
        Self {
            state,
            expires_at: now + time::Duration::seconds(ttl_secs),
        }
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.state.is_pending() && now >= self.expires_at
    }

    /// Refuses anything on a request that is over or out of time.
    fn live(&self, now: Timestamp) -> Result<(), DomainError> {
        if self.is_expired(now) || self.state == PaymentRequestState::Expired {
            return Err(refuse(
                ErrorCode::PaymentRequestExpired,
                "the payment request expired; ask again from the terminal",
            ));
        }
        if !self.state.is_pending() {
            return Err(refuse(
                ErrorCode::PaymentRequestClosed,
                "the payment request is over",
            ));
        }
        Ok(())
    }

    /// The phone's user made the gesture: now the payment page opens
    /// (or the scanner, if the phone prefers it).
    pub fn gesture(self, open_with: OpenWith, now: Timestamp) -> Result<Self, DomainError> {
        self.live(now)?;
        if self.state != PaymentRequestState::AwaitingGesture {
            return Err(refuse(
                ErrorCode::GestureNotExpected,
                "this payment request does not wait for a gesture",
            ));
        }
        let state = match open_with {
            OpenWith::PaymentPage => PaymentRequestState::Presented,
            OpenWith::Scanner => PaymentRequestState::AwaitingScan,
        };
        Ok(Self { state, ..self })
    }

    /// The phone scanned the code the PC shows.
    pub fn scanned(self, now: Timestamp) -> Result<Self, DomainError> {
        self.live(now)?;
        if self.state != PaymentRequestState::AwaitingScan {
            return Err(refuse(
                ErrorCode::PaymentRequestClosed,
                "this payment request is not waiting for a scan",
            ));
        }
        Ok(Self {
            state: PaymentRequestState::Presented,
            ..self
        })
    }

    /// The payment page is open and in time: the user may approve.
    pub fn check_approvable(&self, now: Timestamp) -> Result<(), DomainError> {
        self.live(now)?;
        if self.state != PaymentRequestState::Presented {
            return Err(refuse(
                ErrorCode::PaymentRequestClosed,
                "the payment page of this request is not open",
            ));
        }
        Ok(())
    }

    /// The debit went through with `binding`, approved with `approved_with`.
    /// (Checked for time before the debit, not after: money that moved is
    /// recorded even if the clock ran out.)
    pub fn paid(
        self,
        binding: BindingId,
        approved_with: ApprovalMethod,
    ) -> Result<Self, DomainError> {
        if self.state != PaymentRequestState::Presented {
            return Err(refuse(
                ErrorCode::PaymentRequestClosed,
                "the payment page of this request is not open",
            ));
        }
        Ok(Self {
            state: PaymentRequestState::Paid {
                binding,
                approved_with,
            },
            ..self
        })
    }

    /// The user declined on the phone.
    pub fn decline(self, now: Timestamp) -> Result<Self, DomainError> {
        self.live(now)?;
        Ok(Self {
            state: PaymentRequestState::Declined,
            ..self
        })
    }

    /// A newer request from the same terminal replaces this one.
    pub fn supersede(self) -> Result<Self, DomainError> {
        if !self.state.is_pending() {
            return Err(refuse(
                ErrorCode::PaymentRequestClosed,
                "the payment request is over",
            ));
        }
        Ok(Self {
            state: PaymentRequestState::Superseded,
            ..self
        })
    }

    /// Out of time.
    pub fn expire(self, now: Timestamp) -> Result<Self, DomainError> {
        if !self.is_expired(now) {
            return Err(refuse(
                ErrorCode::PaymentRequestClosed,
                "the payment request is not pending past its expiry",
            ));
        }
        Ok(Self {
            state: PaymentRequestState::Expired,
            ..self
        })
    }
}

crate::wire_names!(
    PaymentRequestStage,
    ApprovalMethod,
    OpenWith,
    Gesture,
    GestureRoute
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-11-23 12:00 UTC);

    fn secs(n: i64) -> time::Duration {
        time::Duration::seconds(n)
    }

    fn start(phone: Correspondence, gesture: GestureWait, open: OpenWith) -> PaymentRequestStatus {
        PaymentRequestStatus::start(phone, gesture, open, NOW, PAYMENT_REQUEST_DEFAULT_TTL_SECS)
    }

    #[test]
    fn the_first_state_follows_correspondence_gesture_and_preference() {
        use PaymentRequestState as S;
        assert_eq!(
            start(
                Correspondence::Missing,
                GestureWait::Required,
                OpenWith::PaymentPage
            )
            .state,
            S::AwaitingScan
        );
        assert_eq!(
            start(
                Correspondence::Found,
                GestureWait::Required,
                OpenWith::Scanner
            )
            .state,
            S::AwaitingGesture
        );
        assert_eq!(
            start(
                Correspondence::Found,
                GestureWait::Skipped,
                OpenWith::Scanner
            )
            .state,
            S::AwaitingScan
        );
        assert_eq!(
            start(
                Correspondence::Found,
                GestureWait::Skipped,
                OpenWith::PaymentPage
            )
            .state,
            S::Presented
        );
        assert_eq!(
            start(
                Correspondence::Found,
                GestureWait::Skipped,
                OpenWith::PaymentPage
            )
            .expires_at,
            NOW + secs(120)
        );
    }

    #[test]
    fn a_gesture_opens_the_page_once() {
        let r = start(
            Correspondence::Found,
            GestureWait::Required,
            OpenWith::PaymentPage,
        );
        let r = r.gesture(OpenWith::PaymentPage, NOW).unwrap();
        assert_eq!(r.state, PaymentRequestState::Presented);
        let again = r.gesture(OpenWith::PaymentPage, NOW).unwrap_err();
        assert_eq!(again.code, ErrorCode::GestureNotExpected);
        let scanner = start(
            Correspondence::Found,
            GestureWait::Required,
            OpenWith::Scanner,
        )
        .gesture(OpenWith::Scanner, NOW)
        .unwrap();
        assert_eq!(scanner.state, PaymentRequestState::AwaitingScan);
        assert_eq!(
            scanner.scanned(NOW).unwrap().state,
            PaymentRequestState::Presented
        );
    }

    #[test]
    fn nothing_happens_past_expiry() {
        let r = start(
            Correspondence::Found,
            GestureWait::Required,
            OpenWith::PaymentPage,
        );
        let late = NOW + secs(120);
        assert!(r.is_expired(late));
        for e in [
            r.clone().gesture(OpenWith::PaymentPage, late).unwrap_err(),
            r.clone().decline(late).unwrap_err(),
            start(
                Correspondence::Missing,
                GestureWait::Skipped,
                OpenWith::PaymentPage,
            )
            .scanned(late)
            .unwrap_err(),
            start(
                Correspondence::Found,
                GestureWait::Skipped,
                OpenWith::PaymentPage,
            )
            .check_approvable(late)
            .unwrap_err(),
        ] {
            assert_eq!(e.code, ErrorCode::PaymentRequestExpired);
        }
        assert_eq!(
            r.clone().expire(late).unwrap().state,
            PaymentRequestState::Expired
        );
        assert!(r.expire(NOW).is_err(), "not yet due");
    }

    #[test]
    fn only_an_open_page_is_approved_and_paid() {
        let waiting = start(
            Correspondence::Found,
            GestureWait::Required,
            OpenWith::PaymentPage,
        );
        assert_eq!(
            waiting.check_approvable(NOW).unwrap_err().code,
            ErrorCode::PaymentRequestClosed
        );
        assert!(waiting
            .clone()
            .paid(binding(), ApprovalMethod::Webauthn)
            .is_err());
        let page = start(
            Correspondence::Found,
            GestureWait::Skipped,
            OpenWith::PaymentPage,
        );
        page.check_approvable(NOW).unwrap();
        let paid = page.paid(binding(), ApprovalMethod::Webauthn).unwrap();
        assert_eq!(
            paid.state.payment(),
            Some((&binding(), ApprovalMethod::Webauthn)),
            "a paid request names what paid it"
        );
        assert_eq!(
            paid.clone().decline(NOW).unwrap_err().code,
            ErrorCode::PaymentRequestClosed
        );
        assert!(paid.clone().supersede().is_err());
        assert!(
            !paid.is_expired(NOW + secs(10_000)),
            "a paid request never expires"
        );
    }

    #[test]
    fn declined_and_superseded_requests_are_over() {
        let d = start(
            Correspondence::Found,
            GestureWait::Skipped,
            OpenWith::PaymentPage,
        )
        .decline(NOW)
        .unwrap();
        assert_eq!(d.state, PaymentRequestState::Declined);
        assert!(d.check_approvable(NOW).is_err());
        let s = start(
            Correspondence::Missing,
            GestureWait::Skipped,
            OpenWith::PaymentPage,
        )
        .supersede()
        .unwrap();
        assert_eq!(s.state, PaymentRequestState::Superseded);
        assert!(s.scanned(NOW).is_err());
    }

    #[test]
    fn correspondence_is_the_most_recently_seen_live_phone() {
        let p = |id: &'static str, ago: i64| PhoneCandidate {
            id,
            last_seen_at: NOW - secs(ago),
        };
        assert_eq!(correspondence::<&str>(&[], NOW), None);
        assert_eq!(
            correspondence(&[p("old", 300), p("new", 5), p("mid", 60)], NOW),
            Some("new")
        );
        assert_eq!(
            correspondence(&[p("stale", PHONE_LIVE_WINDOW_SECS + 1)], NOW),
            None
        );
    }

    #[test]
    fn the_approval_names_payment_order_amount_and_payee() {
        let cny: Currency = "CNY".parse().unwrap();
        let a = approval_purpose("pay_1", "ord_1", Money::new(1999, cny), "mer_1");
        assert_eq!(a, "payment:pay_1:order:ord_1:amount:1999:CNY:payee:mer_1");
        assert_ne!(
            a,
            approval_purpose("pay_1", "ord_1", Money::new(1998, cny), "mer_1")
        );
    }

    #[test]
    fn ttl_is_bounded() {
        assert_eq!(payment_request_ttl(None).unwrap(), 120);
        assert!(payment_request_ttl(Some(5)).is_err());
        assert!(payment_request_ttl(Some(3600)).is_err());
    }

    fn binding() -> BindingId {
        BindingId::from_random_bytes([7; crate::ids::ID_RANDOM_BYTES])
    }

    #[test]
    fn a_stored_state_needs_its_data() {
        use PaymentRequestStage as S;
        assert_eq!(
            PaymentRequestState::from_parts(
                S::Paid,
                Some(binding()),
                Some(ApprovalMethod::PaymentPassword)
            ),
            Some(PaymentRequestState::Paid {
                binding: binding(),
                approved_with: ApprovalMethod::PaymentPassword
            })
        );
        assert_eq!(
            PaymentRequestState::from_parts(S::Paid, None, Some(ApprovalMethod::Webauthn)),
            None
        );
        assert_eq!(
            PaymentRequestState::from_parts(S::Declined, None, None),
            Some(PaymentRequestState::Declined)
        );
    }

    #[test]
    fn names_round_trip() {
        for s in <PaymentRequestStage as strum::IntoEnumIterator>::iter() {
            assert_eq!(PaymentRequestStage::parse(s.as_str()), Some(s));
        }
        for a in <ApprovalMethod as strum::IntoEnumIterator>::iter() {
            assert_eq!(ApprovalMethod::parse(a.as_str()), Some(a));
        }
        for g in <Gesture as strum::IntoEnumIterator>::iter() {
            assert_eq!(Gesture::parse(g.as_str()), Some(g));
        }
        assert_eq!(OpenWith::parse("scanner"), Some(OpenWith::Scanner));
        assert_eq!(GestureRoute::parse("relay"), Some(GestureRoute::Relay));
        assert_eq!(Gesture::parse("wave"), None);
    }
}
