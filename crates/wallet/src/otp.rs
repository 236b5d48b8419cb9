//! OTP challenges for the wallet's flows (binding confirmation, security
//! authentication, card applications): issue a code to a reserved phone
//! through the SMS gateway, check an answer, resend. Answers never show the
//! code or the full phone number.

use std::sync::Arc;

use paybridge_adapters::sms::SmsGateway;
use paybridge_crypto::blind_index::BlindIndexKey;
use paybridge_crypto::otp::{generate_code, well_formed, OtpHasher};
use paybridge_domain::ids::OtpId;
use paybridge_domain::otp::{OtpError, OtpStatus, OTP_HOURLY_CAP, OTP_RESEND_AFTER_SECS};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{Clock, ErrorCode, ServiceError, Timestamp};
use paybridge_kernel::personal::Protector;
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{KeyVault, OtpSend, OtpStore, SendBudget, StoredOtp};

/// What the caller may see of an issued challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedOtp {
    pub id: OtpId,
    pub phone_masked: String,
    pub expires_at: Timestamp,
    pub resend_after: Timestamp,
}

#[derive(Debug, Clone)]
pub struct OtpService {
    pub store: Arc<dyn OtpStore>,
    pub sms: Arc<dyn SmsGateway>,
    pub hasher: OtpHasher,
    pub vault: Arc<KeyVault>,
    pub index_key: BlindIndexKey,
    pub clock: Arc<dyn Clock>,
}

const PHONE: SealedColumn = SealedColumn {
    table: "otp_challenges",
    id_column: "id",
    column: "phone_sealed",
};

/// Codes one phone may get in an hour, enforced by the store at the send.
const SEND_BUDGET: SendBudget = SendBudget {
    per_hour: OTP_HOURLY_CAP,
};

fn hourly_cap_reached() -> ServiceError {
    ServiceError::Rejected(OtpError::HourlyCapReached.into())
}

fn message(code: &str, purpose: &str) -> String {
    format!(
        "[paybridge] Your code for {purpose} is {code}. It expires in 5 minutes. Never share it."
    )
}

impl OtpService {
    /// Sends a fresh code for `purpose` to `phone`.
    pub async fn issue(
        &self,
        purpose: &str,
        phone: &PhoneNumber,
    ) -> Result<IssuedOtp, ServiceError> {
        let now = self.clock.now();
        let personal = Protector {
            vault: &self.vault,
            index: &self.index_key,
        };
        let phone_index = personal.index_of(phone);
        let id = OtpId::generate();
        let code = generate_code();
        let status = OtpStatus::issued(now);
        let sealed_phone = personal.shown(&PHONE, id.as_str(), phone).await;
        let otp = StoredOtp {
            id: id.clone(),
            purpose: purpose.to_owned(),
            phone_sealed: sealed_phone.sealed,
            phone_index,
            phone_masked: sealed_phone.masked,
            code_hash: self.hasher.hash(id.as_str(), code.expose()),
            status,
            version: 0,
        };
        // The store checks and counts the send in one transaction: the
        // budget holds under concurrent sends.
        match self.store.otp_create(&otp, now, SEND_BUDGET).await? {
            OtpSend::Sent => {}
            OtpSend::BudgetSpent | OtpSend::Stale => return Err(hourly_cap_reached()),
        }
        self.deliver(phone.as_str(), code.expose(), purpose).await?;
        tracing::info!(otp.id = %id, otp.purpose = purpose, "OTP issued");
        Ok(self.issued(&otp, status))
    }

    fn issued(&self, otp: &StoredOtp, status: OtpStatus) -> IssuedOtp {
        IssuedOtp {
            id: otp.id.clone(),
            phone_masked: otp.phone_masked.clone(),
            expires_at: status.expires_at,
            resend_after: status.last_sent_at + time::Duration::seconds(OTP_RESEND_AFTER_SECS),
        }
    }

    async fn deliver(&self, phone: &str, code: &str, purpose: &str) -> Result<(), ServiceError> {
        self.sms
            .send(phone, &message(code, purpose))
            .await
            .map_err(|e| ServiceError::Unavailable {
                code: ErrorCode::PartnerUnreachable,
                source: Box::new(e),
            })?;
        Ok(())
    }

    async fn load(&self, id: &OtpId) -> Result<StoredOtp, ServiceError> {
        self.store
            .otp_get(id)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such OTP challenge"))
    }

    /// Checks an entered code. Every wrong answer is counted, also under
    /// concurrent answers; the fifth locks the challenge.
    pub async fn verify(&self, id: &OtpId, entered: &str) -> Result<(), ServiceError> {
        on_conflict("the OTP challenge", || async {
            let otp = self.load(id).await?;
            let matches =
                well_formed(entered) && self.hasher.matches(&otp.code_hash, id.as_str(), entered);
            let now = self.clock.now();
            let (status, outcome) = otp.status.answer(matches, now);
            if status != otp.status && !self.store.otp_update(id, otp.version, &status).await? {
                return Ok(Attempt::Lost); // another answer moved it first: judge again on the fresh row
            }
            if let Err(e) = outcome {
                tracing::info!(otp.id = %id, attempts = status.attempts, "OTP answer refused");
                return Err(ServiceError::Rejected(e.into()));
            }
            tracing::info!(otp.id = %id, "OTP verified");
            Ok(Attempt::Done(()))
        })
        .await
    }

    /// Checks an entered code of a challenge issued for `purpose` and
    /// answers the phone it was sent to: what holding that phone proves.
    /// A challenge of another purpose is answered like an unknown one.
    pub async fn verify_phone(
        &self,
        id: &OtpId,
        purpose: &str,
        entered: &str,
    ) -> Result<PhoneNumber, ServiceError> {
        let otp = self.load(id).await?;
        if otp.purpose != purpose {
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no such OTP challenge",
            ));
        }
        self.verify(id, entered).await?;
        let phone = self
            .vault
            .open_text(&PHONE, id.as_str(), &otp.phone_sealed)
            .await?;
        phone.expose().parse().map_err(ServiceError::internal)
    }

    /// Sends a new code for the same challenge (after the resend wait).
    pub async fn resend(&self, id: &OtpId) -> Result<IssuedOtp, ServiceError> {
        let otp = self.load(id).await?;
        let now = self.clock.now();
        let sent = self
            .store
            .otp_sends_since(&otp.phone_index, now - time::Duration::hours(1))
            .await?;
        let status = otp
            .status
            .resend(sent, now)
            .map_err(|e| ServiceError::Rejected(e.into()))?;
        let phone = self
            .vault
            .open_text(&PHONE, id.as_str(), &otp.phone_sealed)
            .await?;
        let phone = phone.expose().clone();
        let code = generate_code();
        let hash = self.hasher.hash(id.as_str(), code.expose());
        match self
            .store
            .otp_resend(id, otp.version, &status, &hash, now, SEND_BUDGET)
            .await?
        {
            OtpSend::Sent => {}
            OtpSend::BudgetSpent => return Err(hourly_cap_reached()),
            OtpSend::Stale => {
                return Err(ServiceError::rejected(
                    ErrorCode::OtpResendTooSoon,
                    "the challenge changed meanwhile; retry",
                ))
            }
        }
        self.deliver(&phone, code.expose(), &otp.purpose).await?;
        Ok(self.issued(&otp, status))
    }
}
