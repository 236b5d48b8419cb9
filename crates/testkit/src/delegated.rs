//! Flow F3 fixtures: a household (Zhang San's trusted phone with a passkey
//! and a card bound, and a smart TV paired with chosen terms), orders of
//! the sandbox merchant, the terms tests use, and what devices were pushed.

use paybridge_api::delegated::{
    AgreementLimitsBody, AgreementTermsBody, ApprovalBody, TransferAgreementBody,
    TransferPaymentBody,
};
use paybridge_api::wallet::MoneyBody;
use paybridge_devices::{DeviceResult, FirstDevice, FirstDeviceModel, Phone};
use paybridge_domain::event::Destination;
use paybridge_domain::ids::{DeviceId, MerchantId, OrderId};
use paybridge_domain::transfer_agreement::{ApprovalMode, UsageCategory};
use paybridge_wallet::merchants::SANDBOX_MERCHANT_KEY;
use serde_json::{json, Value};

use crate::TestApp;

/// The payment password of an F3 household.
pub const F3_PIN: &str = "482916";

pub fn cny(amount: i64) -> MoneyBody {
    MoneyBody {
        amount,
        currency: "CNY".into(),
    }
}

/// Limits of 50.00 a payment, 80.00 a day and 200.00 a month; in-app and
/// subscriptions; the biometric for every payment.
pub fn every_payment_terms(binding: &str) -> AgreementTermsBody {
    AgreementTermsBody {
        binding_id: binding.to_owned(),
        name: Some("Living-room TV".into()),
        limits: AgreementLimitsBody {
            per_payment: cny(5_000),
            per_day: cny(8_000),
            per_month: cny(20_000),
        },
        categories: vec![UsageCategory::InApp, UsageCategory::Subscription],
        approval: ApprovalBody {
            mode: ApprovalMode::EveryPayment,
            direct_ceiling: None,
        },
    }
}

/// The same, with payments up to 20.00 made without a prompt.
pub fn small_amounts_terms(binding: &str) -> AgreementTermsBody {
    AgreementTermsBody {
        approval: ApprovalBody {
            mode: ApprovalMode::SmallAmountsDirect,
            direct_ceiling: Some(cny(2_000)),
        },
        ..every_payment_terms(binding)
    }
}

/// Zhang San's phone (trusted, with a passkey) and his paired smart TV.
#[derive(Debug)]
pub struct F3Household {
    pub phone: Phone,
    pub tv: FirstDevice,
    pub agreement: TransferAgreementBody,
    pub binding: String,
    /// The sandbox merchant (Demo Shop).
    pub merchant: MerchantId,
}

impl F3Household {
    pub fn phone_id(&self) -> DeviceId {
        self.phone.device_id().expect("a registered phone").clone()
    }

    pub fn tv_id(&self) -> DeviceId {
        self.tv.id().expect("a paired TV").clone()
    }

    /// The TV asks to pay `order` of `amount` (in-app, a film rental).
    pub async fn tv_pays(&self, order: &OrderId, amount: i64) -> DeviceResult<TransferPaymentBody> {
        self.tv
            .request_payment(
                &self.merchant,
                order,
                &cny(amount),
                UsageCategory::InApp,
                "4K film rental",
            )
            .await
    }
}

impl TestApp {
    /// An F3 household whose TV is paired with `terms` (of the binding).
    pub async fn f3_household(&self, terms: fn(&str) -> AgreementTermsBody) -> F3Household {
        let (mut phone, binding) = self.f3_phone(0, F3_PIN).await;
        let (tv, agreement) = self
            .pair_first_device(&mut phone, FirstDeviceModel::smart_tv(), &terms(&binding))
            .await;
        let merchant = self
            .wallet
            .authenticate_merchant(SANDBOX_MERCHANT_KEY)
            .await
            .expect("the sandbox merchant")
            .merchant_id;
        F3Household {
            phone,
            tv,
            agreement,
            binding,
            merchant,
        }
    }

    /// A new order of the sandbox merchant for `amount` fen.
    pub async fn shop_order(&self, amount: i64) -> OrderId {
        let body = json!({"amount": {"amount": amount, "currency": "CNY"},
            "description": "4K film rental",
            "reference": format!("f3-{}", &DeviceId::generate().as_str()[4..16])});
        let (s, o) = self
            .call("POST", "/v1/orders", Some(SANDBOX_MERCHANT_KEY), Some(body))
            .await;
        assert_eq!(s, 201, "{o}");
        o["id"]
            .as_str()
            .expect("an order id")
            .parse()
            .expect("an order id")
    }

    /// The payloads of `topic` pushed to `device` about transfer payment `payment`.
    pub async fn pushed_about(&self, device: &DeviceId, topic: &str, payment: &str) -> Vec<Value> {
        self.wallet
            .store
            .outbox_events_for(&Destination::Device(device.clone()), 0, 1_000)
            .await
            .expect("the outbox reads")
            .into_iter()
            .filter(|e| e.topic.as_str() == topic && e.payload["transfer_payment_id"] == payment)
            .map(|e| e.payload)
            .collect()
    }
}
