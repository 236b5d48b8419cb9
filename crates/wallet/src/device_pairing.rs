//! Flow F3's pairing (seed 002, claims 2–3): the **business binding
//! request**. A first device (TV, car head unit, IoT box, PC) makes its own
//! key pair and uploads its **device info** with a proof of that key; it
//! shows a user code and a QR. On a trusted phone the user enters or scans
//! the code (the phone's account claims the request), sees the device,
//! chooses the card, limits, usage categories and approval policy, and
//! approves with the biometric (a WebAuthn assertion bound to the device,
//! the card and the terms shown). The wallet makes the **transfer payment
//! agreement** from the device info and the **user identity info**, sealed,
//! and the first device, polling with its key, collects a session bound to
//! that key. Shaped after RFC 8628 (device authorization grant); the rules
//! are `paybridge_domain::device_pairing`.

use std::net::IpAddr;

use paybridge_crypto::device_proof::DeviceJwk;
use paybridge_crypto::IndexPurpose;
use paybridge_domain::device::{check_device_name, DeviceStatus};
use paybridge_domain::device_pairing::{
    DeviceInfo, PairingState, PairingStatus, UserCode, MAX_OPEN_PAIRINGS,
    PAIRING_POLL_INTERVAL_SECS, USER_CODE_LEN,
};
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::{AgreementStep, Happened, PairingStep};
use paybridge_domain::ids::{
    BindingId, CeremonyId, DeviceId, PairingId, TransferAgreementId, UserId,
};
use paybridge_domain::transfer_agreement::{
    AgreementLimits, AgreementState, AgreementTerms, AgreementUsage, ApprovalPolicy, UsageCategory,
};
use paybridge_domain::{ErrorCode, ServiceError, Timestamp};
use paybridge_kernel::{on_conflict, Attempt};
use paybridge_store::{
    PairingApprove, PairingCaps, PairingCreate, StoredDevice, StoredPairing,
    StoredTransferAgreement, PAIRING_DEVICE_INFO,
};
use rand::RngCore;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use crate::accounts::{BoundDevice, OpenedSession, SessionUser};
use crate::device_proof::PresentedProof;
use crate::devices::key_record;
use crate::transfer_agreements::{agreement_events, Agreement, AgreementDevice, UserIdentityInfo};
use crate::views::{AgreementView, DeviceAgreementView};
use crate::webauthn::CeremonyStarted;
use crate::Wallet;

/// Draws of a user code before giving up: a collision with an open
/// request is one in millions, five in a row is a broken random source.
const USER_CODE_DRAWS: usize = 5;
/// Expired requests marked per sweep.
const PAIRING_EXPIRY_BATCH: i64 = 500;

/// What a first device sends to start pairing, as it sent it: checked only
/// once its proof of the key holds (an unauthenticated caller learns
/// nothing of what the wallet accepts).
#[derive(Debug, Clone, Copy)]
pub struct PairingStart<'a> {
    pub device_type: paybridge_domain::device::DeviceType,
    pub model: &'a str,
    pub vendor: &'a str,
    pub serial: &'a str,
    pub public_key: &'a DeviceJwk,
}

/// A business binding request just started: what the device shows.
#[derive(Debug, Clone)]
pub struct NewPairing {
    pub id: PairingId,
    pub user_code: UserCode,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub interval_secs: i64,
    pub expires_at: Timestamp,
}

/// A business binding request as the phone that entered its code sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingView {
    pub id: PairingId,
    pub state: PairingState,
    pub device: DeviceInfo,
    pub key_thumbprint: String,
    pub device_id: Option<DeviceId>,
    pub agreement_id: Option<TransferAgreementId>,
    pub expires_at: Timestamp,
}

/// What the user chooses for the device, on the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingTerms {
    pub binding: BindingId,
    /// The device's name; vendor and model when not given.
    pub name: Option<String>,
    pub limits: AgreementLimits,
    pub categories: Vec<UsageCategory>,
    pub policy: ApprovalPolicy,
}

impl PairingTerms {
    fn agreement_terms(&self) -> AgreementTerms {
        AgreementTerms {
            state: AgreementState::Active,
            limits: self.limits,
            categories: self.categories.clone(),
            policy: self.policy,
        }
    }
}

/// What the approved device collects: its session (bound to its key) and
/// its agreement's public part.
#[derive(Debug)]
pub struct CollectedPairing {
    pub device_id: DeviceId,
    pub session: OpenedSession,
    pub agreement: DeviceAgreementView,
}

fn no_such_pairing() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such device pairing")
}

/// The code in what the phone typed or scanned (`…/pair?user_code=BDFG-HJKL`).
fn typed_code(typed: &str) -> &str {
    typed
        .rsplit_once("user_code=")
        .map_or(typed, |(_, code)| code)
        .split('&')
        .next()
        .unwrap_or_default()
}

/// The count of wrong user codes entered by `user`, among the login counters.
fn user_code_guard(user: &UserId) -> String {
    format!("user-code:{user}")
}

/// What a biometric approval of a pairing is bound to: the request, the
/// device's key, the card, the name and the terms, as shown.
fn approval_purpose(p: &StoredPairing, name: &str, terms: &PairingTerms) -> String {
    format!(
        "pairing:{}:device-key:{}:binding:{}:terms:{}:name:{name}",
        p.id,
        p.key.thumbprint,
        terms.binding,
        terms.agreement_terms().canonical()
    )
}

impl Wallet {
    fn user_code_hash(&self, code: &UserCode) -> String {
        self.keys
            .tokens
            .hash(&format!("device-pairing-user-code:{}", code.as_str()))
    }

    async fn pairing_view(&self, p: &StoredPairing) -> Result<PairingView, ServiceError> {
        Ok(PairingView {
            id: p.id.clone(),
            state: p.status.at(self.clock.now()),
            device: self.pairing_device_info(p).await?,
            key_thumbprint: p.key.thumbprint.clone(),
            device_id: p.approved.as_ref().map(|(d, _)| d.clone()),
            agreement_id: p.approved.as_ref().map(|(_, a)| a.clone()),
            expires_at: p.status.expires_at,
        })
    }

    async fn pairing_device_info(&self, p: &StoredPairing) -> Result<DeviceInfo, ServiceError> {
        Ok(self
            .vault
            .open_json(&PAIRING_DEVICE_INFO, p.id.as_str(), &p.device_info_sealed)
            .await?)
    }

    /// A first device starts a business binding request with its device
    /// info and public key, proving it holds the key (a DPoP proof without
    /// a session). At most `pairing_ip_hourly_cap` (by default
    /// [`paybridge_domain::device_pairing::MAX_PAIRINGS_PER_ADDRESS_HOUR`])
    /// per client address an hour, and
    /// [`MAX_OPEN_PAIRINGS`] open at once.
    pub async fn start_pairing(
        &self,
        start: PairingStart<'_>,
        proof: &PresentedProof<'_>,
        client_ip: Option<IpAddr>,
    ) -> Result<NewPairing, ServiceError> {
        let now = self.clock.now();
        let proved = self.device_proofs.check(proof, None, now)?;
        let key = key_record(start.public_key)?;
        let info = DeviceInfo::new(start.device_type, start.model, start.vendor, start.serial)?;
        if proved.thumbprint != key.thumbprint {
            return Err(ServiceError::rejected(
                ErrorCode::DpopProofInvalid,
                "the DPoP proof is not made by the key this request names",
            ));
        }
        let id = PairingId::generate();
        let device_info_sealed = self
            .vault
            .seal_json(&PAIRING_DEVICE_INFO, id.as_str(), &info)
            .await;
        let client_index = client_ip
            .filter(|_| self.pairing_ip_hourly_cap > 0)
            .map(|ip| {
                self.keys
                    .index
                    .index(IndexPurpose::ClientIp, &ip.to_canonical().to_string())
            });
        let caps = PairingCaps {
            per_address: self.pairing_ip_hourly_cap,
            since: now - time::Duration::hours(1),
            open: MAX_OPEN_PAIRINGS,
        };
        let event = Happened::DevicePairing {
            step: PairingStep::Started,
            pairing_id: id.clone(),
            user_id: None,
            device_id: None,
        }
        .to(Destination::Internal, now);
        for _ in 0..USER_CODE_DRAWS {
            let mut words = [0u32; USER_CODE_LEN];
            for w in &mut words {
                *w = rand::rngs::OsRng.next_u32();
            }
            let code = UserCode::from_random(words);
            let pairing = StoredPairing {
                id: id.clone(),
                user_code_hash: self.user_code_hash(&code),
                device_type: info.device_type,
                device_info_sealed: device_info_sealed.clone(),
                key: key.clone(),
                status: PairingStatus::started(now),
                client_index: client_index.clone(),
                claimed: None,
                approved: None,
                created_at: now,
                updated_at: now,
                version: 0,
            };
            match self
                .store
                .pairing_create(&pairing, caps, std::slice::from_ref(&event))
                .await?
            {
                PairingCreate::Created => {
                    tracing::info!(pairing.id = %id, device.kind = %info.device_type, "business binding request started");
                    let verification_uri = format!("{}/pair", self.app_origin);
                    return Ok(NewPairing {
                        verification_uri_complete: format!(
                            "{verification_uri}?user_code={}",
                            code.display()
                        ),
                        verification_uri,
                        id,
                        user_code: code,
                        interval_secs: PAIRING_POLL_INTERVAL_SECS,
                        expires_at: pairing.status.expires_at,
                    });
                }
                PairingCreate::CodeTaken => continue,
                PairingCreate::AddressBusy => {
                    return Err(ServiceError::rejected(
                        ErrorCode::RateLimited,
                        format!(
                            "this address started {} pairings in the last hour: wait",
                            self.pairing_ip_hourly_cap
                        ),
                    ))
                }
                PairingCreate::WalletBusy => {
                    return Err(ServiceError::rejected(
                        ErrorCode::RateLimited,
                        "too many devices are pairing right now: try again in a few minutes",
                    ))
                }
            }
        }
        Err(ServiceError::Internal(
            "no free user code in several draws: is the random source broken?".into(),
        ))
    }

    /// The first device asks how its request went, proving its key (RFC
    /// 8628 §3.4–3.5: `pairing_pending`, `slow_down`, `pairing_denied`,
    /// `pairing_expired`). Once approved, it collects its session (bound to
    /// its key) and its agreement's public part, once.
    pub async fn poll_pairing(
        &self,
        id: &PairingId,
        proof: &PresentedProof<'_>,
    ) -> Result<CollectedPairing, ServiceError> {
        let first = self.store.pairing(id).await?.ok_or_else(no_such_pairing)?;
        let proved = self.device_proofs.check(proof, None, self.clock.now())?;
        if proved.thumbprint != first.key.thumbprint {
            // Only the device that started it may ask: to others it is unknown.
            return Err(no_such_pairing());
        }
        on_conflict("the device pairing", || async {
            let p = self.store.pairing(id).await?.ok_or_else(no_such_pairing)?;
            let now = self.clock.now();
            let (polled, answer) = p.status.poll(now);
            let collected = answer.and_then(|_| polled.collect(now));
            let Ok(status) = collected else {
                let next = StoredPairing {
                    status: polled,
                    ..p.clone()
                };
                if !self.store.pairing_update(&next, &[]).await? {
                    return Ok(Attempt::Lost);
                }
                return Err(collected.expect_err("matched above").into());
            };
            let Some((device, agreement)) = p.approved.clone() else {
                return Err(ServiceError::Internal(
                    "an approved pairing names no device".into(),
                ));
            };
            let user = p
                .claimed
                .as_ref()
                .map(|(u, _)| u.clone())
                .ok_or_else(|| ServiceError::Internal("an approved pairing has no account".into()))?;
            let (session, opened) = self.new_session(
                &user,
                Some(BoundDevice {
                    id: device.clone(),
                    thumbprint: p.key.thumbprint.clone(),
                }),
            );
            let next = StoredPairing {
                status,
                updated_at: now,
                ..p.clone()
            };
            let event = Happened::DevicePairing {
                step: PairingStep::Collected,
                pairing_id: p.id.clone(),
                user_id: Some(user.clone()),
                device_id: Some(device.clone()),
            }
            .to(Destination::Internal, now);
            if !self.store.pairing_collect(&next, &session, &[event]).await? {
                return Ok(Attempt::Lost);
            }
            let a = self.own_agreement(&user, &agreement).await?;
            tracing::info!(pairing.id = %p.id, device.id = %device, "paired device collected its session");
            Ok(Attempt::Done(CollectedPairing {
                device_id: device,
                session: opened,
                agreement: DeviceAgreementView::of(&a, now),
            }))
        })
        .await
    }

    /// The phone enters (or scans) the code: the request becomes this
    /// account's to answer. Wrong codes are counted per account (a wrong
    /// code names no request): five in a row lock entry for a while.
    pub async fn enter_user_code(
        &self,
        session: &SessionUser,
        typed: &str,
    ) -> Result<PairingView, ServiceError> {
        let user = &session.user_id;
        let phone = self.require_trusted_phone(session).await?;
        let code = UserCode::parse(typed_code(typed))?;
        let found = self
            .store
            .pairing_by_code(&self.user_code_hash(&code))
            .await?;
        let now = self.clock.now();
        if let Some(p) = &found {
            if p.status.at(now) == PairingState::Expired {
                return Err(ServiceError::rejected(
                    ErrorCode::PairingExpired,
                    "this code expired: start the pairing again on the device",
                ));
            }
        }
        paybridge_kernel::login::judge(
            self.store.as_ref(),
            self.clock.as_ref(),
            paybridge_kernel::login::LoginTry {
                login_index: &user_code_guard(user),
                correct: found.is_some(),
                lock_secs: paybridge_domain::credentials::LOGIN_LOCK_SECS,
                wrong: "no device is waiting with this code",
            },
        )
        .await
        .map_err(|e| match e.code() {
            ErrorCode::CredentialsInvalid => ServiceError::rejected(
                ErrorCode::UserCodeInvalid,
                "no device is waiting with this code: check the letters on its screen (wrong codes in a row lock entry for a while)",
            ),
            _ => e,
        })?;
        let found = found.ok_or_else(no_such_pairing)?;
        let p = on_conflict("the device pairing", || async {
            let p = self
                .store
                .pairing(&found.id)
                .await?
                .ok_or_else(no_such_pairing)?;
            match &p.claimed {
                Some((u, d)) if u == user && d == &phone => return Ok(Attempt::Done(p)),
                Some(_) => return Err(ServiceError::rejected(
                    ErrorCode::PairingClosed,
                    "another phone entered this code first: start the pairing again on the device",
                )),
                None => {}
            }
            let next = StoredPairing {
                status: p.status.claim(self.clock.now())?,
                claimed: Some((user.clone(), phone.clone())),
                updated_at: self.clock.now(),
                ..p.clone()
            };
            let event = Happened::DevicePairing {
                step: PairingStep::Claimed,
                pairing_id: p.id.clone(),
                user_id: Some(user.clone()),
                device_id: None,
            }
            .to(Destination::Internal, self.clock.now());
            if !self.store.pairing_update(&next, &[event]).await? {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done(StoredPairing {
                version: next.version + 1,
                ..next
            }))
        })
        .await?;
        self.pairing_view(&p).await
    }

    /// A session on a trusted phone of the account (pairing and managing
    /// first devices are sensitive operations).
    pub(crate) async fn require_trusted_phone(
        &self,
        session: &SessionUser,
    ) -> Result<DeviceId, ServiceError> {
        let phone = self.require_phone(session).await?;
        self.require_unrestricted(&session.user_id).await?;
        self.require_trusted_device(&session.user_id, Some(&phone))
            .await?;
        Ok(phone)
    }

    /// The request this account's phone `phone` claimed (others' look unknown).
    async fn claimed_pairing(
        &self,
        user: &UserId,
        phone: &DeviceId,
        id: &PairingId,
    ) -> Result<StoredPairing, ServiceError> {
        self.store
            .pairing(id)
            .await?
            .filter(|p| p.claimed.as_ref() == Some(&(user.clone(), phone.clone())))
            .ok_or_else(no_such_pairing)
    }

    /// A request the account's phone claimed, as it shows it.
    pub async fn pairing(
        &self,
        session: &SessionUser,
        id: &PairingId,
    ) -> Result<PairingView, ServiceError> {
        let phone = self.require_phone(session).await?;
        let p = self.claimed_pairing(&session.user_id, &phone, id).await?;
        self.pairing_view(&p).await
    }

    /// The terms checked, with the device's name: the card is an active
    /// binding of the account, the limits and policy make sense.
    async fn checked_terms(
        &self,
        user: &UserId,
        p: &StoredPairing,
        terms: &PairingTerms,
    ) -> Result<String, ServiceError> {
        terms.agreement_terms().check()?;
        self.active_binding_issuer(user, &terms.binding).await?;
        match &terms.name {
            Some(n) => Ok(check_device_name(n)?),
            None => Ok(self.pairing_device_info(p).await?.default_name()),
        }
    }

    /// Starts the biometric approval of a claimed request, bound to the
    /// device, the card, the name and the terms as shown.
    pub async fn start_pairing_approval(
        &self,
        session: &SessionUser,
        id: &PairingId,
        terms: &PairingTerms,
    ) -> Result<CeremonyStarted<RequestChallengeResponse>, ServiceError> {
        let user = &session.user_id;
        let phone = self.require_trusted_phone(session).await?;
        let p = self.claimed_pairing(user, &phone, id).await?;
        // Only a claimed request is approved: the same refusal as approving.
        p.status.approve(self.clock.now())?;
        let name = self.checked_terms(user, &p, terms).await?;
        self.start_assertion(user, &phone, &approval_purpose(&p, &name, terms))
            .await
    }

    /// The user approves with the biometric: the first device is registered
    /// (paired by this phone, with the key it made), and its transfer
    /// payment agreement made from its device info and the user identity
    /// info, sealed, in one transaction. The device collects its session
    /// when it next asks.
    pub async fn approve_pairing(
        &self,
        session: &SessionUser,
        id: &PairingId,
        terms: &PairingTerms,
        ceremony: &CeremonyId,
        credential: &PublicKeyCredential,
    ) -> Result<AgreementView, ServiceError> {
        let user = &session.user_id;
        let phone = self.require_trusted_phone(session).await?;
        let p = self.claimed_pairing(user, &phone, id).await?;
        p.status.approve(self.clock.now())?;
        let name = self.checked_terms(user, &p, terms).await?;
        // Recomputed from what is approved now: an assertion made for other
        // terms, another card or another device does not pass.
        self.finish_assertion(
            user,
            &phone,
            ceremony,
            &approval_purpose(&p, &name, terms),
            credential,
        )
        .await?;
        let info = self.pairing_device_info(&p).await?;
        let account = self.load_user(user).await?;
        let identity = UserIdentityInfo {
            user_id: user.clone(),
            identity_verified: account.identity.as_ref().is_some_and(|i| i.attested),
            name_masked: account.identity.as_ref().map(|i| i.name_masked.clone()),
        };
        let a = on_conflict("the device pairing", || async {
            let p = self.claimed_pairing(user, &phone, id).await?;
            let now = self.clock.now();
            let status = p.status.approve(now)?;
            let device = StoredDevice {
                id: DeviceId::generate(),
                user_id: user.clone(),
                device_type: info.device_type,
                name: name.clone(),
                status: DeviceStatus::Active,
                created_at: now,
                last_seen_at: now,
                has_credential: false,
                key: Some(p.key.clone()),
                paired_by: Some(phone.clone()),
            };
            let agreement = Agreement {
                row: StoredTransferAgreement {
                    id: TransferAgreementId::generate(),
                    user_id: user.clone(),
                    device_id: device.id.clone(),
                    phone_id: phone.clone(),
                    state: AgreementState::Active,
                    info_sealed: String::new(),
                    created_at: now,
                    updated_at: now,
                    version: 0,
                },
                user: identity.clone(),
                device: AgreementDevice {
                    device_id: device.id.clone(),
                    key_thumbprint: p.key.thumbprint.clone(),
                    name: name.clone(),
                    info: info.clone(),
                },
                binding: terms.binding.clone(),
                limits: terms.limits,
                categories: terms.categories.clone(),
                policy: terms.policy,
                usage: AgreementUsage::default(),
                recent: Vec::new(),
            };
            let row = self.agreement_row(&agreement, now).await?;
            let next = StoredPairing {
                status,
                approved: Some((device.id.clone(), row.id.clone())),
                updated_at: now,
                ..p.clone()
            };
            let mut events = approval_events(&p, user, &device, now);
            events.extend(agreement_events(
                &agreement,
                AgreementStep::Created,
                AgreementState::Active,
                now,
            ));
            match self
                .store
                .pairing_approve(&next, &device, &row, &events)
                .await?
            {
                PairingApprove::Approved => Ok(Attempt::Done(Agreement { row, ..agreement })),
                PairingApprove::Stale => Ok(Attempt::Lost),
                PairingApprove::DeviceLimitReached => Err(ServiceError::rejected(
                    ErrorCode::DeviceLimitReached,
                    format!(
                        "an account has at most {} active devices; revoke one first",
                        paybridge_domain::device::MAX_ACTIVE_DEVICES
                    ),
                )),
            }
        })
        .await?;
        tracing::info!(pairing.id = %id, device.id = %a.row.device_id, agreement.id = %a.row.id, "first device paired");
        self.agreement_view(&a).await
    }

    /// The user declines to pair the device.
    pub async fn deny_pairing(
        &self,
        session: &SessionUser,
        id: &PairingId,
    ) -> Result<PairingView, ServiceError> {
        let user = &session.user_id;
        let phone = self.require_trusted_phone(session).await?;
        let p = on_conflict("the device pairing", || async {
            let p = self.claimed_pairing(user, &phone, id).await?;
            let now = self.clock.now();
            let next = StoredPairing {
                status: p.status.deny(now)?,
                updated_at: now,
                ..p.clone()
            };
            let event = Happened::DevicePairing {
                step: PairingStep::Denied,
                pairing_id: p.id.clone(),
                user_id: Some(user.clone()),
                device_id: None,
            }
            .to(Destination::Internal, now);
            if !self.store.pairing_update(&next, &[event]).await? {
                return Ok(Attempt::Lost);
            }
            Ok(Attempt::Done(next))
        })
        .await?;
        self.pairing_view(&p).await
    }

    /// Marks requests past their expiry expired (their codes free again);
    /// returns how many.
    pub async fn expire_pairings(&self) -> Result<u64, ServiceError> {
        Ok(self
            .store
            .pairings_expire(self.clock.now(), PAIRING_EXPIRY_BATCH)
            .await?)
    }
}

fn approval_events(
    p: &StoredPairing,
    user: &UserId,
    device: &StoredDevice,
    now: Timestamp,
) -> Vec<NewEvent> {
    vec![
        Happened::DevicePairing {
            step: PairingStep::Approved,
            pairing_id: p.id.clone(),
            user_id: Some(user.clone()),
            device_id: Some(device.id.clone()),
        }
        .to(Destination::Internal, now),
        Happened::DeviceRegistered {
            user_id: user.clone(),
            device_id: device.id.clone(),
            device_type: device.device_type,
        }
        .to(Destination::Internal, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::typed_code;

    #[test]
    fn a_scanned_url_or_a_typed_code_gives_the_code() {
        assert_eq!(
            typed_code("https://pay.example/pair?user_code=BDFG-HJKL"),
            "BDFG-HJKL"
        );
        assert_eq!(
            typed_code("https://pay.example/pair?user_code=BDFG-HJKL&x=1"),
            "BDFG-HJKL"
        );
        assert_eq!(typed_code("bdfg hjkl"), "bdfg hjkl");
    }
}
