//! OTP challenges for the wallet's flows (binding confirmation, security
//! authentication, card applications): issue a code to a reserved phone
//! through the SMS gateway, check an answer, resend. Answers never show the
//! code or the full phone number.

use std::net::IpAddr;
use std::sync::Arc;

use paybridge_adapters::sms::SmsGateway;
use paybridge_crypto::blind_index::BlindIndexKey;
use paybridge_crypto::otp::{generate_code, well_formed, OtpHasher};
use paybridge_crypto::IndexPurpose;
use paybridge_domain::ids::{OtpId, UserId};
use paybridge_domain::otp::{
    OtpError, OtpStatus, OTP_ACCOUNT_DAILY_CAP, OTP_HOURLY_CAP, OTP_IP_HOURLY_CAP,
    OTP_MAX_CONSECUTIVE_FAILURES, OTP_RESEND_AFTER_SECS,
};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{Clock, ErrorCode, ServiceError, Timestamp};
use paybridge_kernel::personal::Protector;
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::keys::SealedColumn;
use paybridge_store::{KeyVault, OtpSend, OtpStore, SendBudget, SendLimit, StoredOtp};

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
    /// The budgets wider than a phone's.
    pub caps: SmsCaps,
}

/// The SMS budgets an operator sets (a phone's and an account's are fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsCaps {
    /// Codes requests from one client address may cause in an hour; 0
    /// switches the budget off (behind a proxy every client has its address).
    pub per_ip_hour: u32,
    /// Codes the whole wallet may send in an hour.
    pub global_per_hour: u32,
}

impl Default for SmsCaps {
    fn default() -> Self {
        Self {
            per_ip_hour: OTP_IP_HOURLY_CAP,
            global_per_hour: paybridge_domain::otp::OTP_GLOBAL_HOURLY_CAP,
        }
    }
}

/// Who caused a send, for the budgets wider than the phone's: the account
/// the flow is for and the client's address, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendContext {
    pub account: Option<UserId>,
    pub client_ip: Option<IpAddr>,
}

impl SendContext {
    pub fn new(account: Option<&UserId>, client_ip: Option<IpAddr>) -> Self {
        Self {
            account: account.cloned(),
            client_ip,
        }
    }
}

const PHONE: SealedColumn = SealedColumn {
    table: "otp_challenges",
    id_column: "id",
    column: "phone_sealed",
};

/// Whose budget a send limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetScope {
    Phone,
    Account,
    ClientAddress,
    Wallet,
}

/// The limits a send counts against, each with whose it is (the store
/// sees only keys; the caller is told which budget was spent).
struct Budgets {
    send: SendBudget,
    scopes: Vec<BudgetScope>,
}

impl Budgets {
    fn push(&mut self, scope: BudgetScope, limit: SendLimit) {
        self.send.limits.push(limit);
        self.scopes.push(scope);
    }

    /// Why a send was over its limit number `limit`.
    fn spent(&self, limit: usize) -> ServiceError {
        let message = match self.scopes.get(limit).copied() {
            Some(BudgetScope::Account) => {
                "too many codes were asked for this account today; try again tomorrow"
            }
            Some(BudgetScope::ClientAddress) => {
                "too many codes were asked from this network in the last hour; try again later"
            }
            Some(BudgetScope::Wallet) => {
                "the wallet is sending too many codes right now; try again in a while"
            }
            Some(BudgetScope::Phone) | None => {
                return ServiceError::Rejected(OtpError::HourlyCapReached.into())
            }
        };
        ServiceError::rejected(ErrorCode::OtpRateLimited, message)
    }
}

fn message(code: &str, purpose: &str) -> String {
    format!(
        "[paybridge] Your code for {purpose} is {code}. It expires in 5 minutes. Never share it."
    )
}

fn codes_locked(guard: &str) -> ServiceError {
    let whose = if guard.starts_with("account:") {
        "this account"
    } else {
        "this phone"
    };
    ServiceError::rejected(
        ErrorCode::OtpLocked,
        format!("too many wrong codes for {whose}: sign in on a trusted device (or contact support) to unlock its codes"),
    )
}

/// The key wrong answers to an account's codes are counted under.
pub(crate) fn account_guard(account: &UserId) -> String {
    format!("account:{account}")
}

/// The counters a challenge's wrong answers go to: its phone's and, when it
/// was sent for an account, the account's (NIST SP 800-63B 5.2.2 counts
/// per subscriber; a binding's code goes to the bank's phone, so the
/// phone's count alone would let one account fail codes at many phones).
fn guards(phone_index: &str, account: Option<&UserId>) -> Vec<String> {
    let mut out = vec![phone_index.to_owned()];
    out.extend(account.map(account_guard));
    out
}

impl OtpService {
    /// Refuses when one of the counters is locked by wrong answers in a
    /// row; otherwise answers each counter's count.
    async fn refuse_locked(&self, guards: &[String]) -> Result<Vec<u32>, ServiceError> {
        let mut counts = Vec::with_capacity(guards.len());
        for guard in guards {
            let n = self.store.otp_guard_failures(guard).await?;
            if n >= OTP_MAX_CONSECUTIVE_FAILURES {
                return Err(codes_locked(guard));
            }
            counts.push(n);
        }
        Ok(counts)
    }

    /// Clears the phone's wrong answers in a row: after a step-up that is
    /// not by SMS.
    pub async fn unlock_phone(&self, phone: &PhoneNumber) -> Result<(), ServiceError> {
        let personal = Protector {
            vault: &self.vault,
            index: &self.index_key,
        };
        Ok(self
            .store
            .otp_guard_clear(&personal.index_of(phone))
            .await?)
    }

    /// Clears the account's wrong answers in a row: after a step-up that
    /// is not by SMS.
    pub async fn unlock_account(&self, account: &UserId) -> Result<(), ServiceError> {
        Ok(self.store.otp_guard_clear(&account_guard(account)).await?)
    }

    /// The budgets a send to the phone with `phone_index` counts against:
    /// the phone's (10 an hour), the account's (30 a day), the client
    /// address's and the wallet's (per hour, as configured).
    fn budget(&self, phone_index: &str, ctx: &SendContext) -> Budgets {
        let mut budget = Budgets {
            send: SendBudget::phone_per_hour(phone_index, OTP_HOURLY_CAP),
            scopes: vec![BudgetScope::Phone],
        };
        if let Some(account) = &ctx.account {
            budget.push(
                BudgetScope::Account,
                SendLimit {
                    key: account_guard(account),
                    max: OTP_ACCOUNT_DAILY_CAP,
                    window_secs: 24 * 3600,
                },
            );
        }
        if let Some(ip) = ctx.client_ip.filter(|_| self.caps.per_ip_hour > 0) {
            budget.push(
                BudgetScope::ClientAddress,
                SendLimit {
                    key: format!(
                        "ip:{}",
                        self.index_key
                            .index(IndexPurpose::ClientIp, &ip.to_canonical().to_string())
                    ),
                    max: self.caps.per_ip_hour,
                    window_secs: 3600,
                },
            );
        }
        budget.push(
            BudgetScope::Wallet,
            SendLimit {
                key: "global".into(),
                max: self.caps.global_per_hour,
                window_secs: 3600,
            },
        );
        // Locks are taken in this order by every send: phone, account,
        // address, global, so two sends never wait on each other in a cycle.
        budget
    }

    /// Sends a fresh code for `purpose` to `phone`, counted against every
    /// budget `ctx` names.
    pub async fn issue(
        &self,
        purpose: &str,
        phone: &PhoneNumber,
        ctx: &SendContext,
    ) -> Result<IssuedOtp, ServiceError> {
        let now = self.clock.now();
        let personal = Protector {
            vault: &self.vault,
            index: &self.index_key,
        };
        let phone_index = personal.index_of(phone);
        self.refuse_locked(&guards(&phone_index, ctx.account.as_ref()))
            .await?;
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
            account: ctx.account.clone(),
            code_hash: self.hasher.hash(id.as_str(), code.expose()),
            status,
            version: 0,
        };
        // The store checks and counts the send in one transaction: the
        // budget holds under concurrent sends.
        let budget = self.budget(&otp.phone_index, ctx);
        match self.store.otp_create(&otp, now, &budget.send).await? {
            OtpSend::Sent => {}
            OtpSend::BudgetSpent { limit } => return Err(budget.spent(limit)),
            OtpSend::Stale => return Err(budget.spent(0)),
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
            let guards = guards(&otp.phone_index, otp.account.as_ref());
            let counts = self.refuse_locked(&guards).await?;
            let matches =
                well_formed(entered) && self.hasher.matches(&otp.code_hash, id.as_str(), entered);
            let now = self.clock.now();
            let (status, outcome) = otp.status.answer(matches, now);
            if status != otp.status && !self.store.otp_update(id, otp.version, &status).await? {
                return Ok(Attempt::Lost); // another answer moved it first: judge again on the fresh row
            }
            // Counted per phone and per account too, across challenges: a
            // new challenge buys five more guesses, never a hundred more.
            // (A right answer clears only the counters that count something:
            // no write for the usual case.)
            for (guard, count) in guards.iter().zip(counts) {
                if status.attempts > otp.status.attempts {
                    self.store.otp_guard_failed(guard, now).await?;
                } else if outcome.is_ok() && count > 0 {
                    self.store.otp_guard_clear(guard).await?;
                }
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

    /// The challenge `id`, if it was issued for `purpose` (one of another
    /// purpose is answered like an unknown one).
    pub async fn challenge_for(
        &self,
        id: &OtpId,
        purpose: &str,
    ) -> Result<StoredOtp, ServiceError> {
        let otp = self.load(id).await?;
        if otp.purpose != purpose {
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no such OTP challenge",
            ));
        }
        Ok(otp)
    }

    /// The phone `otp` was sent to: what answering it proves one holds.
    pub async fn phone_of(&self, otp: &StoredOtp) -> Result<PhoneNumber, ServiceError> {
        let phone = self
            .vault
            .open_text(&PHONE, otp.id.as_str(), &otp.phone_sealed)
            .await?;
        phone.expose().parse().map_err(ServiceError::internal)
    }

    /// Sends a new code for the same challenge (after the resend wait),
    /// counted like a first send.
    pub async fn resend(&self, id: &OtpId, ctx: &SendContext) -> Result<IssuedOtp, ServiceError> {
        let otp = self.load(id).await?;
        self.refuse_locked(&guards(&otp.phone_index, otp.account.as_ref()))
            .await?;
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
        let budget = self.budget(&otp.phone_index, ctx);
        match self
            .store
            .otp_resend(id, otp.version, &status, &hash, now, &budget.send)
            .await?
        {
            OtpSend::Sent => {}
            OtpSend::BudgetSpent { limit } => return Err(budget.spent(limit)),
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
