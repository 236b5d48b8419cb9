//! Typed, prefixed identifiers. An id carries its kind in its type, so a
//! `DeviceId` cannot be passed where a `UserId` is expected, and in its text,
//! so a human reading a log knows what `dev_…` names.
//!
//! The random part is 128 bits from the OS CSPRNG, encoded as 26 lowercase
//! base32 characters: unguessable, URL-safe, and the same length everywhere.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::str::FromStr;

use data_encoding::BASE32_DNSSEC;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of random bytes in an id: 128 bits, enough that guessing is hopeless.
pub const ID_RANDOM_BYTES: usize = 16;
/// Length of the encoded random part.
const ID_RANDOM_CHARS: usize = 26;

/// The kind of thing an id names, with its text prefix.
pub trait IdKind: 'static {
    /// Prefix without the underscore, e.g. `usr`.
    const PREFIX: &'static str;
    /// What it names, for answers: "no such {NOUN}".
    const NOUN: &'static str;
}

/// An identifier of kind `K`.
pub struct Id<K: IdKind> {
    text: String,
    kind: PhantomData<fn() -> K>,
}

impl<K: IdKind> Id<K> {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_RANDOM_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_random_bytes(bytes)
    }

    /// An id built from given random bytes (tests, deterministic fixtures).
    pub fn from_random_bytes(bytes: [u8; ID_RANDOM_BYTES]) -> Self {
        Self {
            text: format!("{}_{}", K::PREFIX, BASE32_DNSSEC.encode(&bytes)),
            kind: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Why a text is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid `{prefix}_` id")]
pub struct InvalidId {
    pub prefix: &'static str,
}

impl<K: IdKind> FromStr for Id<K> {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = InvalidId { prefix: K::PREFIX };
        let rest = s
            .strip_prefix(K::PREFIX)
            .and_then(|r| r.strip_prefix('_'))
            .ok_or(invalid.clone())?;
        if rest.len() != ID_RANDOM_CHARS || BASE32_DNSSEC.decode(rest.as_bytes()).is_err() {
            return Err(invalid);
        }
        Ok(Self {
            text: s.to_owned(),
            kind: PhantomData,
        })
    }
}

impl<K: IdKind> Clone for Id<K> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            kind: PhantomData,
        }
    }
}
impl<K: IdKind> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl<K: IdKind> Eq for Id<K> {}
impl<K: IdKind> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}
impl<K: IdKind> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: IdKind> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}
impl<K: IdKind> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl<K: IdKind> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
impl<'de, K: IdKind> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Declares an id kind and its alias in one line each; kept as plain items so
/// that rustdoc and grep find every kind here.
macro_rules! id_kind {
    ($(#[$doc:meta])* $kind:ident, $alias:ident, $prefix:literal, $noun:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $kind {}
        impl IdKind for $kind {
            const PREFIX: &'static str = $prefix;
            const NOUN: &'static str = $noun;
        }
        $(#[$doc])*
        pub type $alias = Id<$kind>;
    };
}

id_kind!(
    /// An outbox event; stable across redeliveries, so receivers de-duplicate on it.
    EventKind, EventId, "evt", "event"
);
id_kind!(
    /// A wallet user (account).
    UserKind, UserId, "usr", "account"
);
id_kind!(
    /// A registered device: phone, PC, TV, car, IoT box.
    DeviceKind, DeviceId, "dev", "device"
);
id_kind!(
    /// A request, for correlating logs and error answers.
    RequestKind, RequestId, "req", "request"
);
id_kind!(
    /// An OTP challenge.
    OtpKind, OtpId, "otp", "OTP challenge"
);
id_kind!(
    /// A message sent through the SMS gateway.
    SmsKind, SmsId, "sms", "message"
);
id_kind!(
    /// A message handed to the OS push relay.
    RelayMessageKind, RelayMessageId, "rly", "relay message"
);

id_kind!(
    /// A bank customer (issuer side).
    CustomerKind, CustomerId, "cus", "customer"
);
id_kind!(
    /// A bank card (issuer side).
    CardKind, CardId, "card", "card"
);
id_kind!(
    /// A login session (wallet account or bank app); the bearer token is separate and secret.
    SessionKind, SessionId, "ses", "session"
);
id_kind!(
    /// A WebAuthn credential registered by a device.
    CredentialKind, CredentialId, "cred", "credential"
);
id_kind!(
    /// A pending WebAuthn ceremony (registration or authentication).
    CeremonyKind, CeremonyId, "wac", "ceremony"
);

id_kind!(
    /// A binding of a bank card to a wallet account (flow F1).
    BindingKind, BindingId, "bnd", "binding"
);
id_kind!(
    /// A bank's quick-pay agreement (快捷签约) for a bound card: what the
    /// wallet debits the card by. (Its prefix predates the other agreements.)
    QuickPayAgreementKind, QuickPayAgreementId, "agr", "agreement"
);

id_kind!(
    /// A merchant of the wallet.
    MerchantKind, MerchantId, "mer", "merchant"
);
id_kind!(
    /// A merchant's API key (the id; the secret is separate).
    ApiKeyKind, ApiKeyId, "key", "API key"
);
id_kind!(
    /// A merchant's order.
    OrderKind, OrderId, "ord", "order"
);
id_kind!(
    /// A cross-device payment request: a first terminal asking the user's
    /// phone to pay (F4). Not the bank's `payment_id`, which is an order id.
    PaymentRequestKind, PaymentRequestId, "pay", "payment request"
);
id_kind!(
    /// A refund of (part of) a paid order.
    RefundKind, RefundId, "ref", "refund"
);

id_kind!(
    /// A security authentication (flow F2): the steps a new device or a
    /// bank-registered account passes before it is trusted.
    SecurityAuthKind, SecurityAuthId, "sau", "security authentication"
);
id_kind!(
    /// A transfer payment agreement (转移支付协议, flow F3): what a first
    /// device may pay through the phone, encrypted, with its limits.
    TransferAgreementKind, TransferAgreementId, "tpa", "transfer payment agreement"
);
id_kind!(
    /// A business binding request (业务绑定请求, flow F3): a first device
    /// asking to be paired, shown as a user code on its screen.
    PairingKind, PairingId, "dpr", "device pairing"
);
id_kind!(
    /// A transfer payment (flow F3): a first device's request to pay, from
    /// the transfer payment request to the payment result notification.
    TransferPaymentKind, TransferPaymentId, "tpy", "transfer payment"
);
id_kind!(
    /// A card token (标记, flow F5): the PAN's stand-in in the phone's secure element.
    CardTokenKind, CardTokenId, "ctk", "card token"
);
id_kind!(
    /// A virtual card application (申请卡的信息, flow F5), the wallet's id,
    /// which the issuer keys its side of the application on.
    CardApplicationKind, CardApplicationId, "vca", "card application"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let id = UserId::generate();
        assert!(id.as_str().starts_with("usr_"));
        assert_eq!(id.as_str().len(), 4 + ID_RANDOM_CHARS);
        let parsed: UserId = id.as_str().parse().unwrap();
        assert_eq!(parsed, id);
    }

    #[test]
    fn an_id_of_another_kind_is_rejected() {
        let device = DeviceId::generate();
        assert!(device.as_str().parse::<UserId>().is_err());
        assert!("usr_short".parse::<UserId>().is_err());
        assert!("usr_!!!!!!!!!!!!!!!!!!!!!!!!!!".parse::<UserId>().is_err());
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| EventId::generate()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
