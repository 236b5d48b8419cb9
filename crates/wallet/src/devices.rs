//! Devices of a wallet account: register, list, rename, revoke. Another
//! account's device is "not found", never "forbidden", so ids reveal nothing.
//!
//! Every device registers its own public key (a JWK); it proves who it is
//! with that key (see [`crate::device_proof`]). A device registered by the
//! session of a trusted device is *paired*: trusted at once. A device
//! registered any other way must pass security authentication before it
//! can log in. Renaming and revoking devices are sensitive operations.

use paybridge_crypto::device_proof::{DeviceJwk, VerifiedProof};
use paybridge_domain::device::DeviceFilter;
use paybridge_domain::device::{check_device_name, DeviceStatus, DeviceType};
use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::ids::{DeviceId, UserId};
use paybridge_domain::{ErrorCode, ServiceError};
use paybridge_store::{DeviceCreate, DeviceKeyRecord, StoredDevice};

use crate::accounts::SessionUser;
use crate::device_proof::device_key;
use crate::views::DeviceView;
use crate::Wallet;

fn not_found() -> ServiceError {
    ServiceError::rejected(ErrorCode::NotFound, "no such device")
}

fn revoked() -> ServiceError {
    ServiceError::rejected(
        ErrorCode::DeviceRevoked,
        "the device was revoked; register it again",
    )
}

/// The key of `device`, if the request's proof was made by it.
pub(crate) fn proved_key(
    device: StoredDevice,
    proved: &VerifiedProof,
) -> Result<DeviceKeyRecord, ServiceError> {
    let key = device.key.ok_or_else(|| {
        ServiceError::rejected(
            ErrorCode::DpopProofInvalid,
            "this device was registered without a key: register it again",
        )
    })?;
    if key.thumbprint != proved.thumbprint {
        return Err(ServiceError::rejected(
            ErrorCode::DpopProofInvalid,
            "the DPoP proof is not made by this device's key",
        ));
    }
    Ok(key)
}

/// A device's public key as stored: its JWK and thumbprint.
pub(crate) fn key_record(jwk: &DeviceJwk) -> Result<DeviceKeyRecord, ServiceError> {
    device_key(jwk)?;
    Ok(DeviceKeyRecord {
        public_key: serde_json::to_string(jwk).map_err(|e| ServiceError::Internal(e.into()))?,
        thumbprint: jwk.thumbprint(),
    })
}

impl Wallet {
    /// Registers a device with its public key. From the session of a
    /// trusted device this pairs it (trusted at once); otherwise it must
    /// pass security authentication before it can log in.
    pub async fn register_device(
        &self,
        session: &SessionUser,
        device_type: DeviceType,
        name: &str,
        public_key: &DeviceJwk,
    ) -> Result<DeviceView, ServiceError> {
        let user = &session.user_id;
        let name = check_device_name(name)?;
        let key = key_record(public_key)?;
        self.require_unrestricted(user).await?;
        let paired_by = match &session.device_id {
            Some(d) if self.store.device_trusted(user, d).await? => Some(d.clone()),
            _ => None,
        };
        let now = self.clock.now();
        let device = StoredDevice {
            id: DeviceId::generate(),
            user_id: user.clone(),
            device_type,
            name,
            status: DeviceStatus::Active,
            created_at: now,
            last_seen_at: now,
            has_credential: false,
            key: Some(key),
            paired_by,
        };
        let event = Happened::DeviceRegistered {
            user_id: user.clone(),
            device_id: device.id.clone(),
            device_type,
        }
        .to(Destination::Internal, now);
        match self.store.device_create(&device, &[event]).await? {
            DeviceCreate::Created => {
                tracing::info!(
                    user.id = %user,
                    device.id = %device.id,
                    device.kind = %device_type,
                    device.paired = device.paired_by.is_some(),
                    "device registered"
                );
                Ok(device.into())
            }
            DeviceCreate::LimitReached => Err(ServiceError::rejected(
                ErrorCode::DeviceLimitReached,
                format!(
                    "an account has at most {} active devices; revoke one first",
                    paybridge_domain::device::MAX_ACTIVE_DEVICES
                ),
            )),
        }
    }

    /// A page of the account's devices, newest first: at most `limit` (1
    /// to 100, default 50) after the device `after`; the second value is
    /// the cursor of the next page, if there may be one.
    pub async fn devices(
        &self,
        user: &UserId,
        which: DeviceFilter,
        limit: Option<u32>,
        after: Option<&DeviceId>,
    ) -> Result<(Vec<DeviceView>, Option<DeviceId>), ServiceError> {
        let limit = paybridge_domain::page::page_limit(limit)?;
        let page = self
            .store
            .devices_page(user, which, limit, after)
            .await?
            .ok_or_else(|| {
                ServiceError::rejected(
                    ErrorCode::InvalidRequest,
                    "after: not a device of this account (use `next` of the page before)",
                )
            })?;
        let next = paybridge_domain::page::next_cursor(&page, limit, |d| &d.id);
        Ok((page.into_iter().map(DeviceView::from).collect(), next))
    }

    /// One of the account's devices, active or revoked.
    pub async fn device(&self, user: &UserId, id: &DeviceId) -> Result<DeviceView, ServiceError> {
        self.load_device(user, id).await.map(DeviceView::from)
    }

    pub(crate) async fn load_device(
        &self,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<StoredDevice, ServiceError> {
        self.store.device_of(user, id).await?.ok_or_else(not_found)
    }

    /// One of the account's active devices, named by a client that may not
    /// know it is revoked (a login, a security authentication): anything
    /// else is "not found".
    pub(crate) async fn named_active_device(
        &self,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<StoredDevice, ServiceError> {
        self.store
            .device_of(user, id)
            .await?
            .filter(|d| d.status.is_active())
            .ok_or_else(|| {
                ServiceError::rejected(ErrorCode::NotFound, "no such active device on this account")
            })
    }

    /// One of the account's devices that is still active.
    pub(crate) async fn active_device(
        &self,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<StoredDevice, ServiceError> {
        let d = self.load_device(user, id).await?;
        if !d.status.is_active() {
            return Err(revoked());
        }
        Ok(d)
    }

    /// Renames a device: a sensitive operation (a trusted device's session).
    pub async fn rename_device(
        &self,
        session: &SessionUser,
        id: &DeviceId,
        name: &str,
    ) -> Result<DeviceView, ServiceError> {
        let user = &session.user_id;
        let name = check_device_name(name)?;
        // Another account's device is "not found" before anything else.
        self.active_device(user, id).await?;
        self.require_trusted_device(user, session.device_id.as_ref())
            .await?;
        if !self.store.device_rename(user, id, &name).await? {
            return Err(revoked());
        }
        self.device(user, id).await
    }

    /// Revokes a device: its credential is deleted, its sessions end, its
    /// push channel closes. Revoking a revoked device changes nothing. A
    /// sensitive operation (a trusted device's session).
    pub async fn revoke_device(
        &self,
        session: &SessionUser,
        id: &DeviceId,
    ) -> Result<(), ServiceError> {
        let user = &session.user_id;
        let d = self.load_device(user, id).await?;
        self.require_trusted_device(user, session.device_id.as_ref())
            .await?;
        if !d.status.is_active() {
            return Ok(());
        }
        // A first device with a transfer payment agreement goes with it:
        // its pending payments stop and the device is revoked in the same
        // transaction.
        if self.revoke_agreements_of_device(user, id).await? {
            tracing::info!(user.id = %user, device.id = %id, "device revoked with its agreement");
            return Ok(());
        }
        let now = self.clock.now();
        let event = Happened::DeviceRevoked {
            device_id: id.clone(),
        }
        .to(Destination::Device(id.clone()), now);
        self.store.device_revoke(user, id, now, &[event]).await?;
        tracing::info!(user.id = %user, device.id = %id, "device revoked");
        Ok(())
    }
}
