//! The phone's part in flow F5: it registers its secure element's key
//! (signed by its device key), applies for a virtual card with the payment
//! password, answers the OTP to the reserved phone or uploads the ID card
//! photos and the frames of the video face check, writes the issued token
//! into its secure element, and follows the token's state.
//!
//! The photos and frames are made up here (a camera is not): small JPEGs
//! whose bytes differ per side, action and frame, and which carry the
//! sandbox authority's mismatch marker when a test wants another face.

use paybridge_api::sandbox::SANDBOX_MISMATCH_MARKER;
use paybridge_api::virtual_card::{
    CardApplicationBody, CardApplicationOtp, CardApplicationPhotos, CardApplicationVideo,
    CardTokenBody, RegisterSecureElementKey, SecureElementKeyBody, SecureElementKeyClaims,
    StartCardApplication, VideoPolicyBody,
};
use paybridge_crypto::signed_message::MessageType;
use paybridge_domain::card_token::TokenStage;
use paybridge_domain::ids::{CardApplicationId, CardTokenId};
use paybridge_domain::WireName;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::secure_element::TokenPublicData;
use crate::{DeviceError, DeviceResult, Phone};

/// Who the camera sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// The applicant, as on the ID card.
    Applicant,
    /// Someone else (the sandbox authority scores it low).
    SomeoneElse,
}

/// A made-up JPEG of `size` bytes: the JPEG signature, then `label`, then
/// filler. The sandbox authority scores by content; a real one by faces.
pub fn sandbox_jpeg(label: &str, face: Face, size: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend_from_slice(label.as_bytes());
    if face == Face::SomeoneElse {
        bytes.extend_from_slice(SANDBOX_MISMATCH_MARKER);
    }
    let mut i = 0u8;
    while bytes.len() < size.saturating_sub(2) {
        bytes.push(i);
        i = i.wrapping_add(31);
    }
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

/// The frames the app captures while the user follows `policy`: two per
/// action, the digits read in the last ones.
pub fn video_frames(policy: &VideoPolicyBody, face: Face) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for (i, action) in policy.actions.iter().enumerate() {
        for n in 0..2 {
            let label = format!("frame {i}.{n}: {action} {}", policy.digits);
            frames.push(sandbox_jpeg(&label, face, 4 * 1024));
        }
    }
    frames.truncate(policy.frames_max as usize);
    frames
}

impl Phone {
    /// Registers the secure element's encryption key with the wallet,
    /// signed by this phone's device key.
    pub async fn register_secure_element(&self) -> DeviceResult<SecureElementKeyBody> {
        let device = self.device_id().ok_or(DeviceError::NotReady(
            "the phone is no registered device yet",
        ))?;
        let claims = SecureElementKeyClaims {
            device_id: device.to_string(),
            public_key: self.secure_element().encryption_public_key(),
            iat: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let registration = self
            .signer()
            .sign_message(MessageType::SecureElementKey, &claims);
        Ok(self
            .app()?
            .register_secure_element_key(&RegisterSecureElementKey { registration })
            .await?)
    }

    /// "Apply for a virtual card": the payment password and the card
    /// application.
    pub async fn apply_for_virtual_card(
        &self,
        issuer: &str,
        product: &str,
        name: &str,
        id_number: &str,
        payment_password: &str,
    ) -> DeviceResult<CardApplicationBody> {
        let body = StartCardApplication {
            payment_password: payment_password.to_owned(),
            issuer: issuer.to_owned(),
            product: product.to_owned(),
            name: name.to_owned(),
            id_number: id_number.to_owned(),
        };
        Ok(self.app()?.start_card_application(&body).await?)
    }

    /// Existing cardholder: enters the code the reserved phone received.
    pub async fn answer_card_otp(
        &self,
        application: &CardApplicationId,
        reserved: &crate::inbox::SmsInbox,
    ) -> DeviceResult<CardApplicationBody> {
        let code = reserved.latest_code().await?;
        Ok(self
            .app()?
            .card_application_otp(application, &CardApplicationOtp { code })
            .await?)
    }

    /// First-card applicant: photographs the ID card's two sides.
    pub async fn upload_id_photos(
        &self,
        application: &CardApplicationId,
        face: Face,
    ) -> DeviceResult<CardApplicationBody> {
        let body = CardApplicationPhotos {
            front: B64.encode(sandbox_jpeg("ID card, front", face, 48 * 1024)),
            back: B64.encode(sandbox_jpeg("ID card, back", face, 40 * 1024)),
        };
        Ok(self
            .app()?
            .card_application_photos(application, &body)
            .await?)
    }

    /// First-card applicant: follows the video face check's instruction
    /// policy and sends the frames captured.
    pub async fn record_video_face_check(
        &self,
        application: &CardApplicationBody,
        face: Face,
    ) -> DeviceResult<CardApplicationBody> {
        let policy = application
            .video_policy
            .as_ref()
            .ok_or_else(|| DeviceError::Unexpected("no video face check was asked for".into()))?;
        let body = CardApplicationVideo {
            frames: video_frames(policy, face)
                .iter()
                .map(|f| B64.encode(f))
                .collect(),
        };
        let id: CardApplicationId = application
            .id
            .parse()
            .map_err(|_| DeviceError::Unexpected("an application id that is none".into()))?;
        Ok(self.app()?.card_application_video(&id, &body).await?)
    }

    /// Writes an issued token into the secure element (only it can open
    /// the bank's box) and tells the wallet.
    pub async fn provision_token(
        &self,
        token: &CardTokenId,
    ) -> DeviceResult<(TokenPublicData, CardTokenBody)> {
        let app = self.app()?;
        let p = app.token_provisioning(token).await?;
        let data = self
            .secure_element()
            .install(&p.card_code, &p.token_id, &p.key_box)
            .map_err(|e| DeviceError::Unexpected(format!("the secure element refused: {e}")))?;
        let body = app.token_installed(token).await?;
        Ok((data, body))
    }

    /// Brings the secure element to the token's state at the wallet (what
    /// the app does on a `card_token.changed` push).
    pub async fn follow_token(&self, token: &CardTokenId) -> DeviceResult<CardTokenBody> {
        let body = self.app()?.card_token(token).await?;
        let stage = TokenStage::from_wire_name(&body.state)
            .ok_or_else(|| DeviceError::Unexpected(format!("token state {}", body.state)))?;
        self.secure_element()
            .follow(&body.card_code, stage)
            .map_err(|e| DeviceError::Unexpected(format!("the secure element refused: {e}")))?;
        Ok(body)
    }
}
