//! Stable error codes. A code is part of the public API: clients branch on it,
//! so a code is never renamed or reused for another meaning. The HTTP layer maps
//! each [`ErrorKind`] to a status; this crate knows nothing of HTTP.

use std::fmt;

/// What sort of failure a code is; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot be read (400).
    BadRequest,
    /// No or bad credentials or signature (401).
    Unauthenticated,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// Unknown, or not the caller's to know about (404).
    NotFound,
    /// The method is not served on this path (405).
    MethodNotAllowed,
    /// Conflicts with the current state (409).
    Conflict,
    /// Body too large (413).
    PayloadTooLarge,
    /// Wrong content type (415).
    UnsupportedMediaType,
    /// Readable but semantically invalid (422).
    Unprocessable,
    /// Too many attempts or requests (429).
    TooManyRequests,
    /// Our fault: a bug (500).
    Internal,
    /// The other party failed or answered badly (502).
    BadGateway,
    /// A dependency (the store) is not available right now (503).
    Unavailable,
    /// The request took too long (504).
    Timeout,
}

/// Every error code paybridge answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    UnsupportedMediaType,
    BodyTooLarge,
    RouteNotFound,
    MethodNotAllowed,
    NotFound,
    IdempotencyKeyMissing,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    SignatureMissing,
    SignatureInvalid,
    SignatureExpired,
    NonceReplayed,
    PartnerUnknown,
    PartnerUnreachable,
    PartnerResponseInvalid,
    RateLimited,
    Contended,
    InsufficientFunds,
    InvalidTransfer,
    TransferIdReused,
    PendingTransferClosed,
    OtpInvalid,
    OtpExpired,
    OtpLocked,
    OtpAlreadyUsed,
    OtpResendTooSoon,
    OtpRateLimited,
    SessionInvalid,
    /// A device proof (DPoP) was missing, malformed, replayed, or made by
    /// another key than the device's or the session's.
    DpopProofInvalid,
    /// The device proof lacks a fresh server nonce: sign again with the
    /// one in the answer's `DPoP-Nonce` header (RFC 9449 §8).
    UseDpopNonce,
    /// The operation is for one device and this session is not bound to it
    /// by the device's key (or to no device at all).
    DeviceProofRequired,
    CredentialsInvalid,
    PasswordLocked,
    PaymentPasswordInvalid,
    PaymentPasswordNotSet,
    PasswordTooWeak,
    PhoneAlreadyRegistered,
    IdentityAlreadyVerified,
    IdentityInvalid,
    IdentityInUse,
    CardInvalid,
    DeviceRevoked,
    DeviceLimitReached,
    WebauthnRejected,
    CredentialExists,
    OrderExpired,
    OrderNotPayable,
    /// The bank has not confirmed a debit: the order stays paying until it does.
    PaymentPending,
    OrderNotRefundable,
    ApiKeyInvalid,
    OrderReferenceReused,
    TerminalNotOfAccount,
    PaymentRequestClosed,
    PaymentRequestExpired,
    GestureNotExpected,
    TooManyPendingPayments,
    /// A terminal asked too often, or was declined too often, lately.
    PaymentRequestsThrottled,
    /// A device holds the most push channels allowed.
    TooManyPushChannels,
    RefundExceedsPayment,
    SecurityAuthClosed,
    SecurityAuthStep,
    SecurityAuthLocked,
    IdentityDigitsWrong,
    AccountRestricted,
    AccountExists,
    DeviceEnvironmentRefused,
    SecurityAuthRequired,
    /// Security authentication was asked for where none of its conditions holds.
    SecurityAuthNotRequired,
    StepUpUnavailable,
    BindingExpired,
    BindingNotPending,
    BindingAlreadyClaimed,
    IdentityMismatch,
    BindingExists,
    NoWalletUser,
    CeremonyExpired,
    CeremonyUsed,
    UserCodeInvalid,
    PairingExpired,
    PairingClosed,
    PairingPending,
    PairingDenied,
    SlowDown,
    AgreementInactive,
    CategoryNotAllowed,
    DeviceCounterReplayed,
    AmountOverLimit,
    TransferPaymentClosed,
    TransferPaymentExpired,
    ExecutionTaskInvalid,
    /// A first device's transfer payment request names no agreement of it.
    NoAgreement,
    /// A message a device signed (a transfer payment request, a confirm
    /// payment message, an executed task, a completion message) does not
    /// verify with that device's key, or is not of the expected form.
    DeviceSignatureInvalid,
    /// A signed message is for another transfer payment, task or amount
    /// than the one it was sent for.
    MessageMismatch,
    /// A card token is suspended or deactivated for what was asked (F5).
    TokenInactive,
    /// A virtual card application is not at the step the request is for.
    ApplicationStep,
    ApplicationExpired,
    /// An uploaded image is larger than its instruction policy allows.
    ImageTooLarge,
    /// An upload is not a JPEG or PNG image by its content.
    ImageInvalid,
    /// Too few or too many video frames for the face check.
    VideoFramesInvalid,
    /// The identity authority's match score is below the issuer's threshold.
    ScoreTooLow,
    /// The applicant holds as many cards of the product as it allows.
    CardLimitReached,
    /// The issuer does not issue to this identity (blocked at the bank).
    IdentityBlocked,
    /// An identity authority reference number that does not exist, or
    /// belongs to another application or ID number.
    ReferenceInvalid,
    /// The account has an application under way already (one card at a time).
    ApplicationPending,
    /// The proof of an OTP step is not for this application and phone.
    OtpProofInvalid,
    /// The phone has no secure element key registered with the wallet.
    SecureElementMissing,
    StoreUnavailable,
    Timeout,
    InternalError,
}

impl ErrorCode {
    /// The wire form: stable snake_case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTooLarge => "body_too_large",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::IdempotencyKeyMissing => "idempotency_key_missing",
            Self::IdempotencyKeyInvalid => "idempotency_key_invalid",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyRequestInProgress => "idempotency_request_in_progress",
            Self::SignatureMissing => "signature_missing",
            Self::SignatureInvalid => "signature_invalid",
            Self::SignatureExpired => "signature_expired",
            Self::NonceReplayed => "nonce_replayed",
            Self::PartnerUnknown => "partner_unknown",
            Self::PartnerUnreachable => "partner_unreachable",
            Self::PartnerResponseInvalid => "partner_response_invalid",
            Self::RateLimited => "rate_limited",
            Self::Contended => "contended",
            Self::InsufficientFunds => "insufficient_funds",
            Self::InvalidTransfer => "invalid_transfer",
            Self::TransferIdReused => "transfer_id_reused",
            Self::PendingTransferClosed => "pending_transfer_closed",
            Self::OtpInvalid => "otp_invalid",
            Self::OtpExpired => "otp_expired",
            Self::OtpLocked => "otp_locked",
            Self::OtpAlreadyUsed => "otp_already_used",
            Self::OtpResendTooSoon => "otp_resend_too_soon",
            Self::OtpRateLimited => "otp_rate_limited",
            Self::SessionInvalid => "session_invalid",
            Self::DpopProofInvalid => "dpop_proof_invalid",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::DeviceProofRequired => "device_proof_required",
            Self::CredentialsInvalid => "credentials_invalid",
            Self::PasswordLocked => "password_locked",
            Self::PaymentPasswordInvalid => "payment_password_invalid",
            Self::PaymentPasswordNotSet => "payment_password_not_set",
            Self::PasswordTooWeak => "password_too_weak",
            Self::PhoneAlreadyRegistered => "phone_already_registered",
            Self::IdentityAlreadyVerified => "identity_already_verified",
            Self::IdentityInvalid => "identity_invalid",
            Self::IdentityInUse => "identity_in_use",
            Self::CardInvalid => "card_invalid",
            Self::DeviceRevoked => "device_revoked",
            Self::DeviceLimitReached => "device_limit_reached",
            Self::WebauthnRejected => "webauthn_rejected",
            Self::CredentialExists => "credential_exists",
            Self::OrderExpired => "order_expired",
            Self::OrderNotPayable => "order_not_payable",
            Self::PaymentPending => "payment_pending",
            Self::OrderNotRefundable => "order_not_refundable",
            Self::ApiKeyInvalid => "api_key_invalid",
            Self::OrderReferenceReused => "order_reference_reused",
            Self::TerminalNotOfAccount => "terminal_not_of_account",
            Self::PaymentRequestClosed => "payment_request_closed",
            Self::PaymentRequestExpired => "payment_request_expired",
            Self::GestureNotExpected => "gesture_not_expected",
            Self::TooManyPendingPayments => "too_many_pending_payments",
            Self::PaymentRequestsThrottled => "payment_requests_throttled",
            Self::TooManyPushChannels => "too_many_push_channels",
            Self::RefundExceedsPayment => "refund_exceeds_payment",
            Self::SecurityAuthClosed => "security_auth_closed",
            Self::SecurityAuthStep => "security_auth_step",
            Self::SecurityAuthLocked => "security_auth_locked",
            Self::IdentityDigitsWrong => "identity_digits_wrong",
            Self::AccountRestricted => "account_restricted",
            Self::AccountExists => "account_exists",
            Self::DeviceEnvironmentRefused => "device_environment_refused",
            Self::SecurityAuthRequired => "security_auth_required",
            Self::SecurityAuthNotRequired => "security_auth_not_required",
            Self::StepUpUnavailable => "step_up_unavailable",
            Self::BindingExpired => "binding_expired",
            Self::BindingNotPending => "binding_not_pending",
            Self::BindingAlreadyClaimed => "binding_already_claimed",
            Self::IdentityMismatch => "identity_mismatch",
            Self::BindingExists => "binding_exists",
            Self::NoWalletUser => "no_wallet_user",
            Self::CeremonyExpired => "ceremony_expired",
            Self::CeremonyUsed => "ceremony_used",
            Self::UserCodeInvalid => "user_code_invalid",
            Self::PairingExpired => "pairing_expired",
            Self::PairingClosed => "pairing_closed",
            Self::PairingPending => "pairing_pending",
            Self::PairingDenied => "pairing_denied",
            Self::SlowDown => "slow_down",
            Self::AgreementInactive => "agreement_inactive",
            Self::CategoryNotAllowed => "category_not_allowed",
            Self::DeviceCounterReplayed => "device_counter_replayed",
            Self::AmountOverLimit => "amount_over_limit",
            Self::TransferPaymentClosed => "transfer_payment_closed",
            Self::TransferPaymentExpired => "transfer_payment_expired",
            Self::ExecutionTaskInvalid => "execution_task_invalid",
            Self::NoAgreement => "no_agreement",
            Self::DeviceSignatureInvalid => "device_signature_invalid",
            Self::MessageMismatch => "message_mismatch",
            Self::TokenInactive => "token_inactive",
            Self::ApplicationStep => "application_step",
            Self::ApplicationExpired => "application_expired",
            Self::ImageTooLarge => "image_too_large",
            Self::ImageInvalid => "image_invalid",
            Self::VideoFramesInvalid => "video_frames_invalid",
            Self::ScoreTooLow => "score_too_low",
            Self::CardLimitReached => "card_limit_reached",
            Self::IdentityBlocked => "identity_blocked",
            Self::ReferenceInvalid => "reference_invalid",
            Self::ApplicationPending => "application_pending",
            Self::OtpProofInvalid => "otp_proof_invalid",
            Self::SecureElementMissing => "secure_element_missing",
            Self::StoreUnavailable => "store_unavailable",
            Self::Timeout => "timeout",
            Self::InternalError => "internal_error",
        }
    }

    pub const fn kind(self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Self::InvalidJson | Self::IdempotencyKeyMissing | Self::IdempotencyKeyInvalid => {
                K::BadRequest
            }
            Self::InvalidRequest
            | Self::IdempotencyKeyReused
            | Self::InsufficientFunds
            | Self::InvalidTransfer => K::Unprocessable,
            Self::TransferIdReused | Self::PendingTransferClosed | Self::OtpAlreadyUsed => {
                K::Conflict
            }
            Self::OtpInvalid | Self::OtpExpired => K::Unprocessable,
            Self::OtpLocked | Self::OtpResendTooSoon | Self::OtpRateLimited => K::TooManyRequests,
            Self::UnsupportedMediaType => K::UnsupportedMediaType,
            Self::BodyTooLarge => K::PayloadTooLarge,
            Self::RouteNotFound | Self::NotFound => K::NotFound,
            Self::MethodNotAllowed => K::MethodNotAllowed,
            Self::IdempotencyRequestInProgress => K::Conflict,
            Self::SignatureMissing
            | Self::SignatureInvalid
            | Self::SignatureExpired
            | Self::NonceReplayed
            | Self::PartnerUnknown => K::Unauthenticated,
            Self::PartnerUnreachable | Self::PartnerResponseInvalid => K::BadGateway,
            Self::RateLimited => K::TooManyRequests,
            // Lost a race on every try: retry at once (not throttling).
            Self::Contended => K::Conflict,
            Self::SessionInvalid => K::Unauthenticated,
            Self::DpopProofInvalid => K::Unauthenticated,
            Self::UseDpopNonce => K::Unauthenticated,
            Self::DeviceProofRequired => K::Forbidden,
            Self::CredentialsInvalid => K::Unauthenticated,
            Self::PasswordLocked => K::TooManyRequests,
            Self::PaymentPasswordInvalid => K::Forbidden,
            Self::PaymentPasswordNotSet => K::Conflict,
            Self::PasswordTooWeak => K::Unprocessable,
            Self::PhoneAlreadyRegistered => K::Conflict,
            Self::IdentityAlreadyVerified => K::Conflict,
            Self::IdentityInvalid => K::Unprocessable,
            Self::IdentityInUse => K::Conflict,
            Self::CardInvalid => K::Unprocessable,
            Self::DeviceRevoked => K::Forbidden,
            Self::DeviceLimitReached => K::Conflict,
            Self::WebauthnRejected => K::Forbidden,
            Self::CredentialExists => K::Conflict,
            Self::OrderExpired => K::Unprocessable,
            Self::OrderNotPayable => K::Conflict,
            // Retry with the same card, or read the order: it is settled
            // by the reconciliation without the client.
            Self::PaymentPending => K::Conflict,
            Self::OrderNotRefundable => K::Unprocessable,
            Self::ApiKeyInvalid => K::Unauthenticated,
            Self::OrderReferenceReused => K::Conflict,
            Self::TerminalNotOfAccount => K::Forbidden,
            Self::PaymentRequestClosed => K::Conflict,
            Self::PaymentRequestExpired => K::Unprocessable,
            Self::GestureNotExpected => K::Conflict,
            Self::TooManyPendingPayments => K::TooManyRequests,
            Self::PaymentRequestsThrottled => K::TooManyRequests,
            Self::TooManyPushChannels => K::TooManyRequests,
            Self::RefundExceedsPayment => K::Unprocessable,
            Self::SecurityAuthClosed => K::Conflict,
            Self::SecurityAuthStep => K::Conflict,
            Self::SecurityAuthLocked => K::TooManyRequests,
            Self::IdentityDigitsWrong => K::Unprocessable,
            Self::AccountRestricted => K::Forbidden,
            Self::AccountExists => K::Conflict,
            Self::DeviceEnvironmentRefused => K::Unprocessable,
            Self::SecurityAuthRequired => K::Forbidden,
            Self::SecurityAuthNotRequired => K::Conflict,
            Self::StepUpUnavailable => K::Conflict,
            Self::BindingExpired => K::Unprocessable,
            Self::BindingNotPending => K::Conflict,
            Self::BindingAlreadyClaimed => K::Conflict,
            Self::IdentityMismatch => K::Unprocessable,
            Self::BindingExists => K::Conflict,
            Self::NoWalletUser => K::NotFound,
            Self::CeremonyExpired => K::Unprocessable,
            Self::CeremonyUsed => K::Conflict,
            Self::UserCodeInvalid => K::Unprocessable,
            Self::PairingExpired => K::Unprocessable,
            Self::PairingClosed => K::Conflict,
            Self::PairingPending => K::Conflict,
            Self::PairingDenied => K::Forbidden,
            Self::SlowDown => K::TooManyRequests,
            Self::AgreementInactive => K::Conflict,
            Self::CategoryNotAllowed => K::Unprocessable,
            Self::DeviceCounterReplayed => K::Conflict,
            Self::AmountOverLimit => K::Unprocessable,
            Self::TransferPaymentClosed => K::Conflict,
            Self::TransferPaymentExpired => K::Unprocessable,
            Self::ExecutionTaskInvalid => K::Forbidden,
            Self::NoAgreement => K::NotFound,
            Self::DeviceSignatureInvalid => K::Unauthenticated,
            Self::MessageMismatch => K::Unprocessable,
            Self::TokenInactive => K::Conflict,
            Self::ApplicationStep => K::Conflict,
            Self::ApplicationExpired => K::Unprocessable,
            Self::ImageTooLarge => K::PayloadTooLarge,
            Self::ImageInvalid => K::Unprocessable,
            Self::VideoFramesInvalid => K::Unprocessable,
            Self::ScoreTooLow => K::Unprocessable,
            Self::CardLimitReached => K::Conflict,
            Self::IdentityBlocked => K::Forbidden,
            Self::ReferenceInvalid => K::Unprocessable,
            Self::ApplicationPending => K::Conflict,
            Self::OtpProofInvalid => K::Unprocessable,
            Self::SecureElementMissing => K::Conflict,
            Self::StoreUnavailable => K::Unavailable,
            Self::Timeout => K::Timeout,
            Self::InternalError => K::Internal,
        }
    }

    /// Parses the wire form back (the client uses this).
    pub fn from_wire(s: &str) -> Option<Self> {
        <Self as strum::IntoEnumIterator>::iter().find(|c| c.as_str() == s)
    }
}

/// A code travels as its wire form (in an event's `reason`, say).
impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a caller may see: a stable code and a message that is safe to show
/// (it never contains secrets, personal data or internal detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DomainError {
    pub code: ErrorCode,
    pub message: String,
}

impl DomainError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in <ErrorCode as strum::IntoEnumIterator>::iter() {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert_eq!(ErrorCode::from_wire(s), Some(code));
        }
    }
}

/// What a role service answers when it cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller's request was refused, with a code the caller may see.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// A dependency (store, partner) is down; the caller may retry later.
    #[error("a dependency is unavailable")]
    Unavailable {
        code: ErrorCode,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bug or corrupt data: logged with detail, answered as `internal_error`.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    pub fn rejected(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Rejected(DomainError::new(code, message))
    }

    /// A bug or corrupt data (logged with `e`, answered as `internal_error`).
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ServiceError::Internal(Box::new(e))
    }

    /// The code the caller sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Rejected(e) => e.code,
            ServiceError::Unavailable { code, .. } => *code,
            ServiceError::Internal(_) => ErrorCode::InternalError,
        }
    }
}
