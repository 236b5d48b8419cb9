//! Flow F5 test households: an existing cardholder's phone and a
//! first-card applicant's, each trusted, with a payment password and its
//! secure element's key registered, ready to apply for a virtual card.

use paybridge_api::wallet::SetIdentity;
use paybridge_devices::phone::{genuine_android, SecurityAnswers, ThisDevice};
use paybridge_devices::Phone;
use paybridge_domain::ids::{CardApplicationId, CardTokenId};

use crate::{TestApp, TEST_LOGIN_PASSWORD};

/// The payment password of F5's test accounts.
pub const F5_PIN: &str = "361504";
/// Demo Bank's issuer id and its virtual credit product.
pub const F5_ISSUER: &str = "demo-bank";
pub const F5_PRODUCT: &str = "virtual_credit";

/// A first-card applicant of the sandbox citizen registry: no card at
/// Demo Bank, a wallet account with their declared identity.
#[derive(Debug, Clone, Copy)]
pub struct Citizen {
    pub name: &'static str,
    pub id_number: &'static str,
    pub phone: &'static str,
}

pub const ZHAO_MIN: Citizen = Citizen {
    name: "赵敏",
    id_number: "110108200001010015",
    phone: "13700137001",
};
pub const ZHOU_JIE: Citizen = Citizen {
    name: "周杰",
    id_number: "320102199506150027",
    phone: "13700137002",
};
/// Blocked at Demo Bank.
pub const QIAN_WEI: Citizen = Citizen {
    name: "钱伟",
    id_number: "110101197912310044",
    phone: "13700137003",
};

impl TestApp {
    /// Zhang San (a Demo Bank customer) on his trusted phone: his first
    /// card bound (the bank attested his identity), payment password
    /// [`F5_PIN`], the secure element's key registered.
    pub async fn f5_cardholder(&self) -> Phone {
        let (phone, _binding) = self.f3_phone(0, F5_PIN).await;
        phone
            .register_secure_element()
            .await
            .expect("the secure element's key registers");
        phone
    }

    /// `citizen`'s wallet account on their trusted phone: declared
    /// identity, payment password [`F5_PIN`], the secure element's key
    /// registered.
    pub async fn f5_first_card(&self, citizen: Citizen) -> Phone {
        let mut phone = self.phone(citizen.phone);
        phone
            .register(TEST_LOGIN_PASSWORD)
            .await
            .expect("the account registers");
        let token = phone
            .log_in(TEST_LOGIN_PASSWORD)
            .await
            .expect("the login succeeds")
            .token
            .clone();
        let account = self.app_of(&token);
        account
            .set_identity(&SetIdentity {
                name: citizen.name.into(),
                id_number: citizen.id_number.into(),
            })
            .await
            .expect("the identity is declared");
        phone
            .register_on(&account, "My phone")
            .await
            .expect("the phone registers");
        let device = phone.device_id().expect("a device id").clone();
        phone
            .pass_security_auth(SecurityAnswers {
                device: ThisDevice::Registered(device),
                environment: genuine_android(),
                id_number_last4: citizen.id_number[14..].into(),
                login_password: Some(TEST_LOGIN_PASSWORD.into()),
                // The account has none yet: security authentication sets it.
                payment_password: Some(F5_PIN.into()),
            })
            .await
            .expect("security authentication passes");
        phone
            .register_secure_element()
            .await
            .expect("the secure element's key registers");
        phone
    }
}

/// A virtual card issued to Zhang San by the OTP, its token written into
/// his phone's secure element.
#[derive(Debug)]
pub struct F5Token {
    pub phone: Phone,
    pub token_id: CardTokenId,
    pub card_code: String,
    pub binding_id: String,
}

impl TestApp {
    /// [`TestApp::f5_cardholder`], who applies, answers the OTP and
    /// provisions the issued token into his phone's secure element.
    pub async fn f5_token(&self) -> F5Token {
        let phone = self.f5_cardholder().await;
        let a = phone
            .apply_for_virtual_card(F5_ISSUER, F5_PRODUCT, "张三", "110105199003071239", F5_PIN)
            .await
            .expect("the application starts");
        let id: CardApplicationId = a.id.parse().expect("an application id");
        let issued = phone
            .answer_card_otp(&id, phone.inbox())
            .await
            .expect("the card is issued");
        let token_id: CardTokenId = issued
            .token_id
            .as_deref()
            .expect("an issued token")
            .parse()
            .expect("a token id");
        phone
            .provision_token(&token_id)
            .await
            .expect("the token is written into the secure element");
        F5Token {
            phone,
            token_id,
            card_code: issued.card_code.expect("a card code"),
            binding_id: issued.binding_id.expect("a quick binding"),
        }
    }
}
