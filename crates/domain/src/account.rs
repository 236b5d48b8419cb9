//! A wallet account's lifecycle.
//!
//! ```text
//! (registered by its owner) ──────────────────────────▶ active
//! (registered by a bank, flow F2) ──▶ restricted ──security authentication passed──▶ active
//! ```
//!
//! A restricted account can be looked at, but cannot pair devices, bind
//! cards, pay or log in with a password it does not have yet.

use crate::error::{DomainError, ErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum AccountStatus {
    Active,
    /// Registered by a bank; usable once its owner passed security authentication.
    Restricted,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Restricted => "restricted",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        <Self as strum::IntoEnumIterator>::iter().find(|a| a.as_str() == s)
    }

    /// The owner passed security authentication.
    pub fn authenticated(self) -> AccountStatus {
        AccountStatus::Active
    }

    /// Refuses what a restricted account may not do yet.
    pub fn require_unrestricted(self) -> Result<(), DomainError> {
        match self {
            AccountStatus::Active => Ok(()),
            AccountStatus::Restricted => Err(DomainError::new(
                ErrorCode::AccountRestricted,
                "finish security authentication in the wallet app first",
            )),
        }
    }
}

crate::wire_names!(AccountStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_account_becomes_active_once_authenticated() {
        assert_eq!(
            AccountStatus::parse("restricted"),
            Some(AccountStatus::Restricted)
        );
        assert_eq!(AccountStatus::parse("frozen"), None);
        let code = AccountStatus::Restricted
            .require_unrestricted()
            .unwrap_err()
            .code;
        assert_eq!(code, ErrorCode::AccountRestricted);
        assert!(AccountStatus::Restricted
            .authenticated()
            .require_unrestricted()
            .is_ok());
    }
}
