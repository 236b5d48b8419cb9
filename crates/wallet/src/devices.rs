//! Devices of a wallet account: register, list, rename, revoke. Another
//! account's device is "not found", never "forbidden", so ids reveal nothing.

use paybridge_domain::device::DeviceFilter;
use paybridge_domain::device::{check_device_name, DeviceStatus, DeviceType};
use paybridge_domain::event::Destination;
use paybridge_domain::happened::Happened;
use paybridge_domain::ids::{DeviceId, UserId};
use paybridge_domain::{ErrorCode, ServiceError};
use paybridge_store::{DeviceCreate, StoredDevice};

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

impl Wallet {
    pub async fn register_device(
        &self,
        user: &UserId,
        device_type: DeviceType,
        name: &str,
    ) -> Result<DeviceView, ServiceError> {
        let name = check_device_name(name)?;
        self.require_unrestricted(user).await?;
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
        };
        let event = Happened::DeviceRegistered {
            user_id: user.clone(),
            device_id: device.id.clone(),
            device_type,
        }
        .to(Destination::Internal, now);
        match self.store.device_create(&device, &[event]).await? {
            DeviceCreate::Created => {
                tracing::info!(user.id = %user, device.id = %device.id, device.kind = %device_type, "device registered");
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

    pub async fn devices(
        &self,
        user: &UserId,
        which: DeviceFilter,
    ) -> Result<Vec<DeviceView>, ServiceError> {
        let devices = self.store.devices_of(user, which).await?;
        Ok(devices.into_iter().map(DeviceView::from).collect())
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

    pub async fn rename_device(
        &self,
        user: &UserId,
        id: &DeviceId,
        name: &str,
    ) -> Result<DeviceView, ServiceError> {
        let name = check_device_name(name)?;
        self.active_device(user, id).await?;
        if !self.store.device_rename(user, id, &name).await? {
            return Err(revoked());
        }
        self.device(user, id).await
    }

    /// Revokes a device: its credential is deleted, its sessions end, its
    /// push channel closes. Revoking a revoked device changes nothing.
    pub async fn revoke_device(&self, user: &UserId, id: &DeviceId) -> Result<(), ServiceError> {
        let d = self.load_device(user, id).await?;
        if !d.status.is_active() {
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
