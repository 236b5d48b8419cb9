//! Flow F5's API on the wallet app's and the bank app's clients, one
//! method per endpoint: the phone registers its secure element key, applies
//! for a virtual card (the OTP, or photos and video frames), provisions the
//! token into its secure element and manages its tokens; the bank app
//! lists and moves the tokens of the customer's virtual cards.

use paybridge_api::bank::{BankTokenBody, BankTokenList};
use paybridge_api::virtual_card::{
    CardApplicationBody, CardApplicationOtp, CardApplicationPhotos, CardApplicationVideo,
    CardProductList, CardProductQuery, CardTokenBody, CardTokenList, RegisterSecureElementKey,
    SecureElementKeyBody, StartCardApplication, TokenProvisioning,
};
use paybridge_domain::ids::{CardApplicationId, CardTokenId};

use crate::{ApiError, BankApp, WalletApp};

type Answer<T> = Result<T, ApiError>;

impl WalletApp {
    /// `POST /v1/secure-element-key`
    pub async fn register_secure_element_key(
        &self,
        body: &RegisterSecureElementKey,
    ) -> Answer<SecureElementKeyBody> {
        self.client().post("/v1/secure-element-key", body).await
    }

    /// `GET /v1/card-products?issuer=`
    pub async fn card_products(&self, issuer: &str) -> Answer<CardProductList> {
        let query = CardProductQuery {
            issuer: issuer.to_owned(),
        };
        self.client().get_query("/v1/card-products", &query).await
    }

    /// `POST /v1/card-applications`
    pub async fn start_card_application(
        &self,
        body: &StartCardApplication,
    ) -> Answer<CardApplicationBody> {
        self.client().post("/v1/card-applications", body).await
    }

    /// `GET /v1/card-applications/{application_id}`
    pub async fn card_application(&self, id: &CardApplicationId) -> Answer<CardApplicationBody> {
        self.client()
            .get(&format!("/v1/card-applications/{id}"))
            .await
    }

    /// `POST /v1/card-applications/{application_id}/otp`
    pub async fn card_application_otp(
        &self,
        id: &CardApplicationId,
        body: &CardApplicationOtp,
    ) -> Answer<CardApplicationBody> {
        let path = format!("/v1/card-applications/{id}/otp");
        self.client().post(&path, body).await
    }

    /// `POST /v1/card-applications/{application_id}/photos`
    pub async fn card_application_photos(
        &self,
        id: &CardApplicationId,
        body: &CardApplicationPhotos,
    ) -> Answer<CardApplicationBody> {
        let path = format!("/v1/card-applications/{id}/photos");
        self.client().post(&path, body).await
    }

    /// `POST /v1/card-applications/{application_id}/video`
    pub async fn card_application_video(
        &self,
        id: &CardApplicationId,
        body: &CardApplicationVideo,
    ) -> Answer<CardApplicationBody> {
        let path = format!("/v1/card-applications/{id}/video");
        self.client().post(&path, body).await
    }

    /// `POST /v1/card-applications/{application_id}/resume`
    pub async fn resume_card_application(
        &self,
        id: &CardApplicationId,
    ) -> Answer<CardApplicationBody> {
        let path = format!("/v1/card-applications/{id}/resume");
        self.client().post_empty(&path).await
    }

    /// `GET /v1/card-tokens`
    pub async fn card_tokens(&self) -> Answer<CardTokenList> {
        self.client().get("/v1/card-tokens").await
    }

    /// `GET /v1/card-tokens/{token_id}`
    pub async fn card_token(&self, id: &CardTokenId) -> Answer<CardTokenBody> {
        self.client().get(&format!("/v1/card-tokens/{id}")).await
    }

    /// `GET /v1/card-tokens/{token_id}/provisioning`
    pub async fn token_provisioning(&self, id: &CardTokenId) -> Answer<TokenProvisioning> {
        self.client()
            .get(&format!("/v1/card-tokens/{id}/provisioning"))
            .await
    }

    /// `POST /v1/card-tokens/{token_id}/installed`
    pub async fn token_installed(&self, id: &CardTokenId) -> Answer<CardTokenBody> {
        self.client()
            .post_empty(&format!("/v1/card-tokens/{id}/installed"))
            .await
    }

    /// `POST /v1/card-tokens/{token_id}/{suspend|resume|delete}`
    pub async fn change_card_token(&self, id: &CardTokenId, action: &str) -> Answer<CardTokenBody> {
        self.client()
            .post_empty(&format!("/v1/card-tokens/{id}/{action}"))
            .await
    }
}

impl BankApp {
    /// `GET /v1/app/cards/{card_id}/tokens`
    pub async fn card_tokens(&self, card: &str) -> Answer<BankTokenList> {
        self.client()
            .get(&format!("/v1/app/cards/{card}/tokens"))
            .await
    }

    /// `POST /v1/app/tokens/{token_id}/{suspend|resume|delete}`
    pub async fn change_token(&self, token: &str, action: &str) -> Answer<BankTokenBody> {
        self.client()
            .post_empty(&format!("/v1/app/tokens/{token}/{action}"))
            .await
    }
}
