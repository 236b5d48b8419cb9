//! Flow F3's **transfer payment agreement** (转移支付协议): made from the
//! first device's **device info** and the **user identity info**, sealed
//! into the **payment agreement information** (支付协议信息: AES-256-GCM
//! through the key vault, bound to the agreement id, user id and device id),
//! and its lifecycle on the phone: list, read, change the terms (a
//! sensitive operation), suspend, resume, revoke. The first device reads
//! its own agreement's public part and can unpair itself.
//!
//! Nothing of an agreement but its ids and state is stored in clear: its
//! card, limits, categories, approval policy and the device usage so far
//! are sealed with the device and user info, and opened for each use. A
//! decrypted agreement naming another user or device than its row is an
//! invariant violation: the code asserts, and no payment is made.
//!
//! The rules (state machine, limits, the two agreement states) are in
//! `paybridge_domain::transfer_agreement`.

use paybridge_domain::device::DeviceType;
use paybridge_domain::device_pairing::DeviceInfo;
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::{AgreementStep, Happened};
use paybridge_domain::ids::{BindingId, DeviceId, TransferAgreementId, TransferPaymentId, UserId};
use paybridge_domain::transfer_agreement::{
    AgreementLimits, AgreementState, AgreementTerms, AgreementUsage, ApprovalMode, ApprovalPolicy,
    UsageCategory,
};
use paybridge_domain::{ErrorCode, Money, ServiceError, Timestamp};
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::{
    transfer_agreement_seal_key, AgreementChange, StoredTransferAgreement, StoredTransferPayment,
    TRANSFER_AGREEMENT_INFO,
};
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::Date;

use crate::accounts::SessionUser;
use crate::views::{AgreementView, DeviceAgreementView};
use crate::Wallet;

/// Payments the agreement keeps in its recorded device usage (the newest).
pub const RECENT_USES_KEPT: usize = 20;
/// Version of the sealed format.
const SEALED_VERSION: u8 = 1;

/// The user identity info (用户身份信息) an agreement is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserIdentityInfo {
    pub user_id: UserId,
    /// Whether a bank attested the account's real-name identity.
    pub identity_verified: bool,
    pub name_masked: Option<String>,
}

/// The first device as the agreement records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgreementDevice {
    pub device_id: DeviceId,
    pub key_thumbprint: String,
    pub name: String,
    pub info: DeviceInfo,
}

/// One payment recorded in the agreement's device usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub transfer_payment_id: TransferPaymentId,
    pub category: UsageCategory,
    pub counter: u64,
    pub amount: Money,
    pub at: Timestamp,
}

/// An agreement, opened: its row and its payment agreement information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agreement {
    pub row: StoredTransferAgreement,
    pub user: UserIdentityInfo,
    pub device: AgreementDevice,
    pub binding: BindingId,
    pub limits: AgreementLimits,
    pub categories: Vec<UsageCategory>,
    pub policy: ApprovalPolicy,
    pub usage: AgreementUsage,
    pub recent: Vec<UsageRecord>,
}

impl Agreement {
    /// The terms a payment is judged against, with the agreement's state now.
    pub fn terms(&self) -> AgreementTerms {
        AgreementTerms {
            state: self.row.state,
            limits: self.limits,
            categories: self.categories.clone(),
            policy: self.policy,
        }
    }

    /// Records a payment in the device usage (the newest first, a few kept).
    pub fn record(&mut self, payment: &StoredTransferPayment) {
        self.recent.insert(
            0,
            UsageRecord {
                transfer_payment_id: payment.id.clone(),
                category: payment.usage.category,
                counter: payment.usage.counter,
                amount: payment.amount,
                at: payment.counted_at,
            },
        );
        self.recent.truncate(RECENT_USES_KEPT);
    }
}

/// The payment agreement information as it is sealed (JSON). Dates as
/// `YYYY-MM-DD`, times as Unix microseconds: plain forms that stay readable.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    v: u8,
    agreement_id: TransferAgreementId,
    user: UserIdentityInfo,
    device: AgreementDevice,
    binding_id: BindingId,
    currency: String,
    per_payment: i64,
    per_day: i64,
    per_month: i64,
    categories: Vec<UsageCategory>,
    approval: ApprovalMode,
    direct_ceiling: Option<i64>,
    last_counter: u64,
    day: Option<String>,
    spent_day: i64,
    month: Option<String>,
    spent_month: i64,
    recent: Vec<SealedUse>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedUse {
    transfer_payment_id: TransferPaymentId,
    category: UsageCategory,
    counter: u64,
    amount_minor: i64,
    at_micros: i64,
}

fn day_text(d: Option<Date>) -> Option<String> {
    d.map(|d| d.to_string())
}

fn day_of(text: Option<String>) -> Result<Option<Date>, ServiceError> {
    text.map(|t| {
        Date::parse(&t, format_description!("[year]-[month]-[day]")).map_err(ServiceError::internal)
    })
    .transpose()
}

fn not_found() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such transfer payment agreement")
}

/// What a change of terms sets; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct TermsChange {
    pub limits: Option<AgreementLimits>,
    pub categories: Option<Vec<UsageCategory>>,
    /// The approval policy's mode and, for small amounts, its ceiling (in
    /// the currency of the limits).
    pub approval: Option<(ApprovalMode, Option<Money>)>,
}

impl Wallet {
    /// Seals an agreement's payment agreement information for its row.
    pub(crate) async fn seal_agreement(&self, a: &Agreement) -> Result<String, ServiceError> {
        let sealed = Sealed {
            v: SEALED_VERSION,
            agreement_id: a.row.id.clone(),
            user: a.user.clone(),
            device: a.device.clone(),
            binding_id: a.binding.clone(),
            currency: a.limits.currency.code().to_owned(),
            per_payment: a.limits.per_payment,
            per_day: a.limits.per_day,
            per_month: a.limits.per_month,
            categories: a.categories.clone(),
            approval: a.policy.mode(),
            direct_ceiling: a.policy.ceiling(),
            last_counter: a.usage.last_counter,
            day: day_text(a.usage.day),
            spent_day: a.usage.spent_day,
            month: day_text(a.usage.month),
            spent_month: a.usage.spent_month,
            recent: a
                .recent
                .iter()
                .map(|r| SealedUse {
                    transfer_payment_id: r.transfer_payment_id.clone(),
                    category: r.category,
                    counter: r.counter,
                    amount_minor: r.amount.amount_minor,
                    at_micros: paybridge_domain::clock::to_unix_micros(r.at),
                })
                .collect(),
        };
        let key = transfer_agreement_seal_key(
            a.row.id.as_str(),
            a.row.user_id.as_str(),
            a.row.device_id.as_str(),
        );
        Ok(self
            .vault
            .seal_json(&TRANSFER_AGREEMENT_INFO, &key, &sealed)
            .await)
    }

    /// The row to write for `a` as it is now (its information sealed anew).
    pub(crate) async fn agreement_row(
        &self,
        a: &Agreement,
        now: Timestamp,
    ) -> Result<StoredTransferAgreement, ServiceError> {
        Ok(StoredTransferAgreement {
            info_sealed: self.seal_agreement(a).await?,
            updated_at: now,
            ..a.row.clone()
        })
    }

    /// Opens an agreement's payment agreement information (the first or
    /// second agreement state is judged on what this gives).
    pub(crate) async fn open_agreement(
        &self,
        row: StoredTransferAgreement,
    ) -> Result<Agreement, ServiceError> {
        let key = transfer_agreement_seal_key(
            row.id.as_str(),
            row.user_id.as_str(),
            row.device_id.as_str(),
        );
        let s: Sealed = self
            .vault
            .open_json(&TRANSFER_AGREEMENT_INFO, &key, &row.info_sealed)
            .await?;
        if s.v != SEALED_VERSION {
            return Err(ServiceError::Internal(
                format!("sealed agreement format {} is not known", s.v).into(),
            ));
        }
        // The sealed information is bound to the row's ids by the cipher;
        // content naming another agreement, user or device can only come
        // from a bug that sealed it so. Never pay on it.
        assert_eq!(
            s.agreement_id, row.id,
            "a sealed agreement names another agreement"
        );
        assert_eq!(
            s.user.user_id, row.user_id,
            "a sealed agreement names another user"
        );
        assert_eq!(
            s.device.device_id, row.device_id,
            "a sealed agreement names another device"
        );
        let currency = s.currency.parse().map_err(ServiceError::internal)?;
        let recent = s
            .recent
            .into_iter()
            .map(|r| UsageRecord {
                transfer_payment_id: r.transfer_payment_id,
                category: r.category,
                counter: r.counter,
                amount: Money::new(r.amount_minor, currency),
                at: paybridge_domain::clock::from_unix_micros(r.at_micros),
            })
            .collect();
        Ok(Agreement {
            user: s.user,
            device: s.device,
            binding: s.binding_id,
            limits: AgreementLimits {
                currency,
                per_payment: s.per_payment,
                per_day: s.per_day,
                per_month: s.per_month,
            },
            categories: s.categories,
            policy: ApprovalPolicy::from_parts(s.approval, s.direct_ceiling)
                .map_err(ServiceError::internal)?,
            usage: AgreementUsage {
                last_counter: s.last_counter,
                day: day_of(s.day)?,
                spent_day: s.spent_day,
                month: day_of(s.month)?,
                spent_month: s.spent_month,
            },
            recent,
            row,
        })
    }

    /// The agreement `id` of `user`'s account (another's looks unknown).
    pub(crate) async fn own_agreement(
        &self,
        user: &UserId,
        id: &TransferAgreementId,
    ) -> Result<Agreement, ServiceError> {
        let row = self
            .store
            .transfer_agreement(id)
            .await?
            .filter(|a| &a.user_id == user)
            .ok_or_else(not_found)?;
        self.open_agreement(row).await
    }

    /// The agreement query result (协议查询结果) of the login info: the
    /// account's agreements; of those, the one of `device`. `404
    /// no_agreement` when it has none.
    pub(crate) async fn agreement_of_device(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Agreement, ServiceError> {
        let found = self.store.transfer_agreements_of(user).await?;
        let row = found
            .into_iter()
            .find(|a| &a.device_id == device)
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::NoAgreement,
                    "this device has no transfer payment agreement: pair it from the phone first",
                )
            })?;
        self.open_agreement(row).await
    }

    /// Agreements are managed from the account's phone: a session on a
    /// phone of the account.
    pub(crate) async fn require_phone(
        &self,
        session: &SessionUser,
    ) -> Result<DeviceId, ServiceError> {
        let device = session.proven_device()?.clone();
        let d = self.active_device(&session.user_id, &device).await?;
        if d.device_type != DeviceType::Phone {
            return Err(ServiceError::rejected(
                ErrorCode::DeviceProofRequired,
                "transfer payment agreements are managed on the account's phone",
            ));
        }
        Ok(device)
    }

    /// What the phone shows of an agreement.
    pub(crate) async fn agreement_view(
        &self,
        a: &Agreement,
    ) -> Result<AgreementView, ServiceError> {
        let card = self.binding(&a.row.user_id, &a.binding).await?;
        Ok(AgreementView::of(
            a,
            card.bank_name,
            card.last4,
            self.clock.now(),
        ))
    }

    /// A page of the account's agreements, newest first.
    pub async fn transfer_agreements(
        &self,
        session: &SessionUser,
        limit: Option<u32>,
        after: Option<&TransferAgreementId>,
    ) -> Result<(Vec<AgreementView>, Option<TransferAgreementId>), ServiceError> {
        self.require_phone(session).await?;
        let limit = paybridge_domain::page::page_limit(limit)?;
        let page = self
            .store
            .transfer_agreements_page(&session.user_id, limit, after)
            .await?
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::InvalidRequest,
                    "after: not an agreement of this account (use `next` of the page before)",
                )
            })?;
        let next = paybridge_domain::page::next_cursor(&page, limit, |a| &a.id);
        let mut views = Vec::with_capacity(page.len());
        for row in page {
            let a = self.open_agreement(row).await?;
            views.push(self.agreement_view(&a).await?);
        }
        Ok((views, next))
    }

    /// One agreement of the account, on its phone.
    pub async fn transfer_agreement(
        &self,
        session: &SessionUser,
        id: &TransferAgreementId,
    ) -> Result<AgreementView, ServiceError> {
        self.require_phone(session).await?;
        let a = self.own_agreement(&session.user_id, id).await?;
        self.agreement_view(&a).await
    }

    /// Changes limits, categories or the approval policy: a sensitive
    /// operation (a trusted phone, and the payment password). Payments
    /// already counted stay counted; the second agreement state judges them
    /// against the new terms.
    pub async fn change_transfer_agreement(
        &self,
        session: &SessionUser,
        id: &TransferAgreementId,
        change: TermsChange,
        payment_password: &str,
    ) -> Result<AgreementView, ServiceError> {
        let user = &session.user_id;
        self.require_phone(session).await?;
        self.own_agreement(user, id).await?;
        self.require_trusted_device(user, session.device_id.as_ref())
            .await?;
        self.verify_payment_password(user, payment_password).await?;
        let a = on_conflict("the transfer payment agreement", || async {
            let mut a = self.own_agreement(user, id).await?;
            if a.row.state == AgreementState::Revoked {
                return Err(ServiceError::rejected(
                    ErrorCode::AgreementInactive,
                    "a revoked agreement cannot be changed",
                ));
            }
            if let Some(l) = change.limits {
                a.limits = l;
            }
            if let Some(c) = &change.categories {
                a.categories = c.clone();
            }
            if let Some((mode, ceiling)) = change.approval {
                if ceiling.is_some_and(|c| c.currency != a.limits.currency) {
                    return Err(ServiceError::rejected(
                        ErrorCode::InvalidRequest,
                        "approval.direct_ceiling: in the currency of the limits",
                    ));
                }
                a.policy = ApprovalPolicy::from_parts(mode, ceiling.map(|c| c.amount_minor))?;
            }
            a.terms().check()?;
            let now = self.clock.now();
            let row = self.agreement_row(&a, now).await?;
            let events = agreement_events(&a, AgreementStep::Changed, a.row.state, now);
            if !self
                .store
                .transfer_agreement_change(&row, AgreementChange::default(), &events)
                .await?
            {
                return Ok(Attempt::Lost);
            }
            a.row = StoredTransferAgreement {
                version: row.version + 1,
                ..row
            };
            Ok(Attempt::Done(a))
        })
        .await?;
        tracing::info!(agreement.id = %id, "transfer payment agreement changed");
        self.agreement_view(&a).await
    }

    /// Suspends an agreement (on a trusted phone): its pending payments stop.
    pub async fn suspend_transfer_agreement(
        &self,
        session: &SessionUser,
        id: &TransferAgreementId,
    ) -> Result<AgreementView, ServiceError> {
        self.phone_changes_state(session, id, AgreementStep::Suspended)
            .await
    }

    /// Resumes a suspended agreement (on a trusted phone).
    pub async fn resume_transfer_agreement(
        &self,
        session: &SessionUser,
        id: &TransferAgreementId,
    ) -> Result<AgreementView, ServiceError> {
        self.phone_changes_state(session, id, AgreementStep::Resumed)
            .await
    }

    /// Revokes an agreement (on a trusted phone): its pending payments
    /// stop and its first device is revoked (its session ends). Revoking a
    /// revoked agreement changes nothing.
    pub async fn revoke_transfer_agreement(
        &self,
        session: &SessionUser,
        id: &TransferAgreementId,
    ) -> Result<AgreementView, ServiceError> {
        self.phone_changes_state(session, id, AgreementStep::Revoked)
            .await
    }

    async fn phone_changes_state(
        &self,
        session: &SessionUser,
        id: &TransferAgreementId,
        step: AgreementStep,
    ) -> Result<AgreementView, ServiceError> {
        let user = &session.user_id;
        self.require_phone(session).await?;
        self.own_agreement(user, id).await?;
        self.require_trusted_device(user, session.device_id.as_ref())
            .await?;
        let a = self.move_agreement(user, id, step).await?;
        self.agreement_view(&a).await
    }

    /// Moves an agreement to `step`'s state, stopping its payments that are
    /// not executing yet (their amounts given back) and, for a revocation,
    /// revoking its first device, all in one transaction.
    pub(crate) async fn move_agreement(
        &self,
        user: &UserId,
        id: &TransferAgreementId,
        step: AgreementStep,
    ) -> Result<Agreement, ServiceError> {
        let a = on_conflict("the transfer payment agreement", || async {
            let mut a = self.own_agreement(user, id).await?;
            let next = match step {
                AgreementStep::Suspended => a.row.state.suspend(),
                AgreementStep::Resumed => a.row.state.resume(),
                AgreementStep::Revoked if a.row.state == AgreementState::Revoked => {
                    return Ok(Attempt::Done(a));
                }
                AgreementStep::Revoked => a.row.state.revoke(),
                AgreementStep::Created | AgreementStep::Changed => {
                    return Err(ServiceError::Internal(
                        "an agreement's state moves by suspend, resume or revoke".into(),
                    ))
                }
            }?;
            let now = self.clock.now();
            let mut stopped = Vec::new();
            let mut events = Vec::new();
            if next != AgreementState::Active {
                for p in self.store.transfer_payments_open_of(&a.row.id).await? {
                    let Some(status) = p.status.stopped(now) else {
                        continue;
                    };
                    a.usage = a.usage.release(p.amount.amount_minor, p.counted_at);
                    let stopped_payment = StoredTransferPayment {
                        status,
                        updated_at: now,
                        ..p
                    };
                    events.extend(self.result_events(&stopped_payment, now).await?);
                    stopped.push(stopped_payment);
                }
            }
            a.row.state = next;
            let row = self.agreement_row(&a, now).await?;
            events.extend(agreement_events(&a, step, next, now));
            let change = AgreementChange {
                stopped: &stopped,
                revoke_device: next == AgreementState::Revoked,
            };
            if step == AgreementStep::Revoked {
                events.push(
                    Happened::DeviceRevoked {
                        device_id: a.row.device_id.clone(),
                    }
                    .to(Destination::Device(a.row.device_id.clone()), now),
                );
            }
            if !self
                .store
                .transfer_agreement_change(&row, change, &events)
                .await?
            {
                return Ok(Attempt::Lost);
            }
            a.row = StoredTransferAgreement {
                version: row.version + 1,
                ..row
            };
            Ok(Attempt::Done(a))
        })
        .await?;
        tracing::info!(agreement.id = %id, state = a.row.state.as_str(), "transfer payment agreement moved");
        Ok(a)
    }

    /// The first device's own agreement, its public part (limits left).
    pub async fn device_transfer_agreement(
        &self,
        session: &SessionUser,
    ) -> Result<DeviceAgreementView, ServiceError> {
        let device = session.proven_device()?;
        let a = self.agreement_of_device(&session.user_id, device).await?;
        Ok(DeviceAgreementView::of(&a, self.clock.now()))
    }

    /// The first device unpairs itself: its agreement is revoked and the
    /// device with it (this session ends).
    pub async fn unpair_device(
        &self,
        session: &SessionUser,
    ) -> Result<DeviceAgreementView, ServiceError> {
        let device = session.proven_device()?;
        let a = self.agreement_of_device(&session.user_id, device).await?;
        let a = self
            .move_agreement(&session.user_id, &a.row.id, AgreementStep::Revoked)
            .await?;
        Ok(DeviceAgreementView::of(&a, self.clock.now()))
    }

    /// Revokes the agreements of device `device` (the device is revoked
    /// with them); `true` if it had one that was not revoked.
    pub(crate) async fn revoke_agreements_of_device(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<bool, ServiceError> {
        let mut any = false;
        for row in self.store.transfer_agreements_of(user).await? {
            if &row.device_id == device && row.state != AgreementState::Revoked {
                self.move_agreement(user, &row.id, AgreementStep::Revoked)
                    .await?;
                any = true;
            }
        }
        Ok(any)
    }
}

/// The events of an agreement moving to `state`: for audit, and to the
/// first device (it reads its limits and learns it was suspended).
pub(crate) fn agreement_events(
    a: &Agreement,
    step: AgreementStep,
    state: AgreementState,
    now: Timestamp,
) -> Vec<NewEvent> {
    let what = Happened::TransferAgreement {
        step,
        agreement_id: a.row.id.clone(),
        device_id: a.row.device_id.clone(),
        state,
    };
    let mut events = vec![what.to(Destination::Internal, now)];
    if step != AgreementStep::Created {
        events.push(what.to(Destination::Device(a.row.device_id.clone()), now));
    }
    events
}
