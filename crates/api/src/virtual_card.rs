//! Flow F5's wire types (virtual cards, card tokens, the phone's secure
//! element): the wallet app's calls (apply for a virtual card, the OTP or
//! the photos and video frames, the card tokens and their lifecycle, the
//! secure element's key), the signed partner calls between the wallet and
//! the issuer, and what the issuer seals to a phone's secure element when
//! it provisions a token ([`TokenKeyMaterial`], inside an HPKE box: see
//! `paybridge_crypto::hpke_box`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wallet::MoneyBody;

/// The HPKE `info` of a token's key material: what the box is for.
pub const TOKEN_KEYS_INFO: &[u8] = b"paybridge token key material v1";

/// What a secure element needs to make a token's cryptograms, sealed by
/// the issuer to that element's own key (the box's associated data is the
/// token's id): the token (a PAN-shaped number of the token BIN range),
/// its PAN sequence number and expiry, and the token's master key for
/// application cryptograms (derived from the issuer master key by EMV
/// Option A). The issuer master key never leaves the issuer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenKeyMaterial {
    /// The token's id at the issuer (`ctk_…`).
    pub token_id: String,
    /// The card token: what the POS reads, never the PAN.
    pub token: String,
    /// PAN sequence number, two digits.
    pub psn: String,
    /// `MM/YY`.
    pub expiry: String,
    /// The token's master key for application cryptograms (MK-AC), hex.
    pub mk_ac: String,
}

crate::redacted_debug!(TokenKeyMaterial);

// ---- the wallet app ----

/// The payload a phone signs with its device key to register its secure
/// element's encryption key (JWS `typ` `secure-element-key+jwt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecureElementKeyClaims {
    /// The phone's device id at the wallet.
    pub device_id: String,
    /// The element's X25519 public key, base64url (32 bytes).
    pub public_key: String,
    /// Unix seconds when the phone signed it: an older registration than
    /// the one held, or one older than five minutes, is refused.
    pub iat: i64,
}

/// Registers the phone's secure element key: the claims, signed by the
/// phone's device key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSecureElementKey {
    /// Compact JWS over [`SecureElementKeyClaims`].
    pub registration: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecureElementKeyBody {
    pub device_id: String,
    pub public_key: String,
    /// RFC 3339.
    pub registered_at: String,
}

/// A card product an issuer offers as a virtual card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardProductBody {
    #[schema(example = "virtual_credit")]
    pub id: String,
    #[schema(example = "Demo Bank Virtual Credit")]
    pub name: String,
    /// `debit` or `credit`.
    pub card_type: String,
    /// A credit product's limit.
    pub credit_limit: Option<MoneyBody>,
    /// Cards of this product one person may hold.
    pub max_per_person: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardProductList {
    #[schema(example = "demo-bank")]
    pub issuer: String,
    pub products: Vec<CardProductBody>,
}

/// Which issuer's products to list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CardProductQuery {
    #[param(example = "demo-bank")]
    pub issuer: String,
}

/// "Apply for a virtual card": the account's payment password, the bank
/// and product, and the card application (申请卡的信息).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCardApplication {
    pub payment_password: String,
    #[schema(example = "demo-bank")]
    pub issuer: String,
    #[schema(example = "virtual_credit")]
    pub product: String,
    /// As on the ID card; must match the account's verified identity.
    #[schema(example = "张三")]
    pub name: String,
    #[schema(example = "110105199003071239")]
    pub id_number: String,
}

crate::redacted_debug!(StartCardApplication);

/// The OTP sent to the reserved phone (existing cardholders).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardApplicationOtp {
    #[schema(example = "123456")]
    pub code: String,
}

crate::redacted_debug!(CardApplicationOtp);

/// The ID card's two sides (first-card applicants), base64 JPEG or PNG.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardApplicationPhotos {
    pub front: String,
    pub back: String,
}

crate::redacted_debug!(CardApplicationPhotos);

/// The frames the app captured during the video face check, base64 JPEG
/// or PNG, in order.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardApplicationVideo {
    pub frames: Vec<String>,
}

crate::redacted_debug!(CardApplicationVideo);

/// The instruction policy (指令策略) for the ID card photos.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PhotoPolicyBody {
    /// `id_front`, `id_back`.
    pub sides: Vec<String>,
    /// `image/jpeg`, `image/png` (told by content).
    pub types: Vec<String>,
    pub max_bytes: u64,
}

/// The instruction policy for the video face check (视频面签).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VideoPolicyBody {
    /// In order: `blink`, `turn_left` or `turn_right`, `read_digits`.
    pub actions: Vec<String>,
    /// The four digits to read aloud.
    pub digits: String,
    pub frames_min: u32,
    pub frames_max: u32,
    pub frame_max_bytes: u64,
    pub types: Vec<String>,
}

/// A virtual card application as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardApplicationBody {
    #[schema(example = "vca_…")]
    pub id: String,
    pub issuer: String,
    pub product: String,
    /// `forwarded`, `otp_sent`, `resubmitted`, `photos_requested`,
    /// `video_requested`, `identity_checked`, `issued`, `provisioned`,
    /// `rejected`, `expired`.
    pub state: String,
    /// Why it was rejected (an error code).
    pub reason: Option<String>,
    /// `existing_cardholder` or `first_card`, once the issuer answered.
    pub applicant: Option<String>,
    /// The masked name on the application.
    pub name_masked: String,
    /// Existing cardholder: where the OTP went (masked).
    pub otp_phone_masked: Option<String>,
    /// First-card applicant, `photos_requested`: what to upload.
    pub photo_policy: Option<PhotoPolicyBody>,
    /// First-card applicant, `video_requested`: what to do on camera.
    pub video_policy: Option<VideoPolicyBody>,
    /// Issued: the card code (卡代号) and the token's id.
    pub card_code: Option<String>,
    pub token_id: Option<String>,
    pub binding_id: Option<String>,
    /// RFC 3339.
    pub expires_at: String,
    pub created_at: String,
}

/// A card token as the wallet app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardTokenBody {
    #[schema(example = "ctk_…")]
    pub id: String,
    pub issuer: String,
    pub card_code: String,
    /// The token's last four digits (never the PAN's).
    pub token_last4: String,
    /// `active`, `suspended`, `deactivated`.
    pub state: String,
    /// Who suspended or deactivated it: `cardholder` or `issuer`.
    pub state_by: Option<String>,
    /// The phone whose secure element holds it.
    pub device_id: String,
    pub binding_id: String,
    /// Whether the phone has written it into its secure element.
    pub installed: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardTokenList {
    pub tokens: Vec<CardTokenBody>,
}

/// What the phone writes into its secure element: the card code, the
/// token's id and the issuer's HPKE box (only the element can open it).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenProvisioning {
    pub token_id: String,
    pub card_code: String,
    /// `hpke1.…`, sealed by the issuer to this phone's secure element.
    pub key_box: String,
}

crate::redacted_debug!(TokenProvisioning);

// ---- partner calls: wallet → issuer ----

/// The wallet forwards a checked card application. Idempotent on
/// `application_id`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardCardApplication {
    #[schema(example = "vca_…")]
    pub application_id: String,
    pub product: String,
    pub name: String,
    pub id_number: String,
    /// The account's verified phone (a first card's reserved phone).
    pub phone: String,
    /// The quick binding the agreement will name (the wallet's id).
    #[schema(example = "bnd_…")]
    pub binding_id: String,
}

crate::redacted_debug!(ForwardCardApplication);

/// The issuer's answer: which path the applicant takes.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CardApplicationAnswer {
    pub application_id: String,
    /// `existing_cardholder` or `first_card`.
    pub applicant: String,
    /// Existing cardholder: the reserved phone the wallet sends the OTP to.
    pub reserved_phone: Option<String>,
}

crate::redacted_debug!(CardApplicationAnswer);

/// The wallet's proof of the OTP step, bound to the application and the
/// reserved phone (inside the signed partner call).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpProof {
    pub application_id: String,
    #[schema(example = "otp_…")]
    pub otp_id: String,
    /// The phone the OTP went to: the issuer's reserved phone.
    pub phone: String,
    /// RFC 3339.
    pub verified_at: String,
}

crate::redacted_debug!(OtpProof);

/// The wallet sends the application again with its evidence: the OTP
/// proof (existing cardholder) or the identity authority's reference
/// number (first card), and where the token goes.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResubmitCardApplication {
    pub otp_proof: Option<OtpProof>,
    /// 备查身份号码: the issuer looks the score up by it.
    pub identity_reference: Option<String>,
    /// The wallet's id of the phone that will hold the token (its domain).
    pub device_id: String,
    /// That phone's secure element key (X25519, base64url).
    pub secure_element_key: String,
}

crate::redacted_debug!(ResubmitCardApplication);

/// The card issued: card code, token, agreement number, and the token's
/// key material sealed to the phone's secure element.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CardIssued {
    pub application_id: String,
    /// The bank's display name.
    pub bank_name: String,
    /// 卡代号: the card's public reference.
    pub card_code: String,
    /// `debit` or `credit`.
    pub card_type: String,
    /// The PAN's last four digits (display only).
    pub last4: String,
    pub token_id: String,
    /// 标记: the card token (a PAN-shaped number of the token BIN range).
    pub token: String,
    /// 协议号: the quick-pay agreement number.
    pub agreement_id: String,
    pub agreement_number: String,
    /// `hpke1.…`: [`TokenKeyMaterial`] sealed to the secure element.
    pub key_box: String,
}

crate::redacted_debug!(CardIssued);

/// A card token's state as one side tells the other (partner event data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenStateChange {
    pub token_id: String,
    /// `active`, `suspended`, `deactivated`.
    pub state: String,
    /// `cardholder` or `issuer`.
    pub by: Option<String>,
}
