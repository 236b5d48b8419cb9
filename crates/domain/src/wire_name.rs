//! Enums whose values travel as fixed snake_case names (states, kinds,
//! methods). Each enum names its values once, in its own `as_str`; this
//! trait lists them (for the OpenAPI document's `enum`) and reads them back,
//! and [`wire_names!`](crate::wire_names) gives such an enum its serde form
//! from the same names, so the wire, the store and the docs cannot drift.

/// A name-only enum with a fixed name per value.
pub trait WireName: Copy + strum::IntoEnumIterator + 'static {
    fn wire_name(self) -> &'static str;

    fn from_wire_name(name: &str) -> Option<Self> {
        Self::iter().find(|v| v.wire_name() == name)
    }

    /// Every name, in declaration order.
    fn wire_names() -> Vec<&'static str> {
        Self::iter().map(Self::wire_name).collect()
    }
}

/// Implements [`WireName`] from each enum's `as_str`, serde as that name
/// (an unknown name is refused, listing the known ones), and `Display` as it.
#[macro_export]
macro_rules! wire_names {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::wire_name::WireName for $t {
            fn wire_name(self) -> &'static str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use $crate::wire_name::WireName;
                let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_wire_name(&name).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected one of {}",
                        Self::wire_names().join(", ")
                    ))
                })
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderState;
    use crate::payment_request::{ApprovalMethod, PaymentRequestStage};

    #[test]
    fn names_travel_as_themselves_and_unknown_ones_are_refused() {
        for s in <OrderState as strum::IntoEnumIterator>::iter() {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<OrderState>(&json).unwrap(), s);
        }
        let e = serde_json::from_str::<ApprovalMethod>("\"thumbprint\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected one of payment_password, webauthn"),
            "{e}"
        );
        assert_eq!(
            PaymentRequestStage::wire_names(),
            [
                "awaiting_gesture",
                "awaiting_scan",
                "presented",
                "paid",
                "declined",
                "expired",
                "superseded"
            ]
        );
    }
}
