//! Devices a wallet user registers: the phone that confirms payments, and
//! the PCs, TVs, cars and IoT boxes that ask it to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// Most active devices one account may have (bounds push fan-out).
pub const MAX_ACTIVE_DEVICES: usize = 20;
/// Longest device name, in characters.
pub const DEVICE_NAME_MAX_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumIter)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// Runs the wallet app; can hold a WebAuthn credential and confirm payments.
    Phone,
    Pc,
    Tv,
    Car,
    Iot,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Phone => "phone",
            DeviceType::Pc => "pc",
            DeviceType::Tv => "tv",
            DeviceType::Car => "car",
            DeviceType::Iot => "iot",
        }
    }

    /// Only phones confirm payments with a biometric credential.
    pub fn can_hold_credential(self) -> bool {
        self == DeviceType::Phone
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <DeviceType as strum::IntoEnumIterator>::iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(
                    ErrorCode::InvalidRequest,
                    "a device type is one of phone, pc, tv, car, iot",
                )
            })
    }
}

/// Whether a device may act; a revoked one carries when. [`DeviceStage`]
/// is the status's name alone (the wire's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(rename_all = "snake_case")]
#[strum_discriminants(name(DeviceStage), derive(Hash, strum::EnumIter))]
pub enum DeviceStatus {
    Active,
    /// Revoked at that time: its credential, sessions and channel are gone.
    Revoked {
        at: Timestamp,
    },
}

impl DeviceStage {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStage::Active => "active",
            DeviceStage::Revoked => "revoked",
        }
    }
}

impl DeviceStatus {
    pub fn stage(self) -> DeviceStage {
        DeviceStage::from(self)
    }

    pub fn as_str(self) -> &'static str {
        self.stage().as_str()
    }

    pub fn is_active(self) -> bool {
        self == DeviceStatus::Active
    }

    /// When it was revoked, if it was.
    pub fn revoked_at(self) -> Option<Timestamp> {
        match self {
            DeviceStatus::Active => None,
            DeviceStatus::Revoked { at } => Some(at),
        }
    }
}

/// Which of an account's devices a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFilter {
    Active,
    /// Revoked ones too (the account's history).
    WithRevoked,
}

/// A device's display name ("Li's MacBook"): 1 to 64 characters, trimmed, no
/// control characters.
pub fn check_device_name(name: &str) -> Result<String, DomainError> {
    let t = name.trim();
    let n = t.chars().count();
    if n == 0 || n > DEVICE_NAME_MAX_CHARS || t.chars().any(char::is_control) {
        return Err(DomainError::new(
            ErrorCode::InvalidRequest,
            "a device name has 1 to 64 characters and no control characters",
        ));
    }
    Ok(t.to_owned())
}

/// Its serde form is derived (snake_case, the same names as `as_str`).
impl crate::wire_name::WireName for DeviceType {
    fn wire_name(self) -> &'static str {
        self.as_str()
    }
}

crate::wire_names!(DeviceStage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_and_names_are_checked() {
        for t in <DeviceType as strum::IntoEnumIterator>::iter() {
            assert_eq!(t.as_str().parse::<DeviceType>().unwrap(), t);
        }
        assert!("watch".parse::<DeviceType>().is_err());
        assert_eq!(check_device_name("  Li's PC ").unwrap(), "Li's PC");
        assert!(check_device_name("").is_err());
        assert!(check_device_name(&"x".repeat(65)).is_err());
    }
}
