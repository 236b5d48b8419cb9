//! The wallet's app API, one method per endpoint: what the wallet app on a
//! phone and the first devices (PC, TV, car, IoT box) call. Unauthenticated
//! calls (registration, login, security authentication) go out as they are;
//! the rest need [`WalletApp::signed_in`] with a session token.

use paybridge_api::merchant::{OrderBody, PayOrder};
use paybridge_api::wallet::{
    AccountBody, ApprovePayment, AssertionBody, BindingBody, BindingConfirmation, BindingList,
    CeremonyAnswer, CeremonyBody, ChannelQuery, ClaimAddress, CompleteBinding, ConfirmRegistration,
    CreatePaymentRequest, CredentialBody, DeviceBody, DeviceList, DeviceListQuery, IdentityBody,
    Login, PaymentRequestBody, RegisterAccount, RegisterDevice, RegistrationStarted, RenameDevice,
    ReportGesture, ScanPaymentCode, SecurityAuthBody, SecurityAuthIdentity, SecurityAuthOtp,
    SecurityAuthPasswords, SessionBody, SetIdentity, SetPaymentPassword, StartSecurityAuth,
    Verified, VerifyPaymentPassword,
};
use paybridge_domain::ids::{
    BindingId, CeremonyId, DeviceId, OrderId, PaymentRequestId, SecurityAuthId,
};

use crate::push::PushChannel;
use crate::{ApiError, PublicClient};

/// The wallet app's view of paybridge.
#[derive(Debug, Clone)]
pub struct WalletApp {
    client: PublicClient,
}

type Answer<T> = Result<T, ApiError>;

impl WalletApp {
    /// An app talking to the wallet at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::on(PublicClient::new(base_url))
    }

    pub fn on(client: PublicClient) -> Self {
        Self { client }
    }

    /// The same app with a session: the calls that need one carry it.
    pub fn signed_in(&self, session_token: impl Into<String>) -> Self {
        Self::on(self.client.with_bearer(session_token))
    }

    /// The same app on a device: every call carries a proof by its key
    /// (login naming the device, security authentication, and every call
    /// of a session bound to the device).
    pub fn on_device(&self, device: std::sync::Arc<crate::DeviceSigner>) -> Self {
        Self::on(self.client.with_device(device))
    }

    /// The transport, for a call the typed methods do not make (a retry
    /// under a chosen idempotency key).
    pub fn client(&self) -> &PublicClient {
        &self.client
    }

    // Accounts and sessions.

    /// `POST /v1/accounts`: a code goes to the phone.
    pub async fn register(&self, body: &RegisterAccount) -> Answer<RegistrationStarted> {
        self.client.post("/v1/accounts", body).await
    }

    /// `POST /v1/accounts/confirmation`: the code and the login password.
    pub async fn confirm_registration(&self, body: &ConfirmRegistration) -> Answer<AccountBody> {
        self.client.post("/v1/accounts/confirmation", body).await
    }

    /// `POST /v1/sessions`
    pub async fn login(&self, body: &Login) -> Answer<SessionBody> {
        self.client.post("/v1/sessions", body).await
    }

    /// `DELETE /v1/sessions/current`
    pub async fn logout(&self) -> Answer<()> {
        self.client.delete("/v1/sessions/current").await
    }

    /// `GET /v1/me`
    pub async fn me(&self) -> Answer<AccountBody> {
        self.client.get("/v1/me").await
    }

    /// `POST /v1/me/payment-password`
    pub async fn set_payment_password(&self, body: &SetPaymentPassword) -> Answer<()> {
        self.client.post("/v1/me/payment-password", body).await
    }

    /// `POST /v1/me/payment-password/verify`
    pub async fn verify_payment_password(&self, body: &VerifyPaymentPassword) -> Answer<Verified> {
        self.client
            .post("/v1/me/payment-password/verify", body)
            .await
    }

    /// `POST /v1/me/identity`
    pub async fn set_identity(&self, body: &SetIdentity) -> Answer<IdentityBody> {
        self.client.post("/v1/me/identity", body).await
    }

    // Security authentication (a new device for the account).

    /// `POST /v1/security-authentications`
    pub async fn start_security_auth(&self, body: &StartSecurityAuth) -> Answer<SecurityAuthBody> {
        self.client.post("/v1/security-authentications", body).await
    }

    /// `POST /v1/security-authentications/{auth_id}/otp`
    pub async fn security_auth_otp(
        &self,
        auth: &SecurityAuthId,
        body: &SecurityAuthOtp,
    ) -> Answer<SecurityAuthBody> {
        let path = format!("/v1/security-authentications/{auth}/otp");
        self.client.post(&path, body).await
    }

    /// `POST /v1/security-authentications/{auth_id}/identity`
    pub async fn security_auth_identity(
        &self,
        auth: &SecurityAuthId,
        body: &SecurityAuthIdentity,
    ) -> Answer<SecurityAuthBody> {
        let path = format!("/v1/security-authentications/{auth}/identity");
        self.client.post(&path, body).await
    }

    /// `POST /v1/security-authentications/{auth_id}/passwords`
    pub async fn security_auth_passwords(
        &self,
        auth: &SecurityAuthId,
        body: &SecurityAuthPasswords,
    ) -> Answer<SecurityAuthBody> {
        let path = format!("/v1/security-authentications/{auth}/passwords");
        self.client.post(&path, body).await
    }

    // Devices and their WebAuthn credential.

    /// `POST /v1/devices`
    pub async fn register_device(&self, body: &RegisterDevice) -> Answer<DeviceBody> {
        self.client.post("/v1/devices", body).await
    }

    /// `GET /v1/devices`
    pub async fn devices(&self, query: &DeviceListQuery) -> Answer<DeviceList> {
        self.client.get_query("/v1/devices", query).await
    }

    /// `GET /v1/devices/{device_id}`
    pub async fn device(&self, device: &DeviceId) -> Answer<DeviceBody> {
        self.client.get(&format!("/v1/devices/{device}")).await
    }

    /// `PATCH /v1/devices/{device_id}`
    pub async fn rename_device(
        &self,
        device: &DeviceId,
        body: &RenameDevice,
    ) -> Answer<DeviceBody> {
        self.client
            .patch(&format!("/v1/devices/{device}"), body)
            .await
    }

    /// `DELETE /v1/devices/{device_id}`
    pub async fn revoke_device(&self, device: &DeviceId) -> Answer<()> {
        self.client.delete(&format!("/v1/devices/{device}")).await
    }

    /// `POST /v1/devices/{device_id}/credential/registrations`
    pub async fn start_credential_registration(&self, device: &DeviceId) -> Answer<CeremonyBody> {
        let path = format!("/v1/devices/{device}/credential/registrations");
        self.client.post_empty(&path).await
    }

    /// `POST /v1/devices/{device_id}/credential/registrations/{ceremony_id}`
    pub async fn finish_credential_registration(
        &self,
        device: &DeviceId,
        ceremony: &CeremonyId,
        body: &CeremonyAnswer,
    ) -> Answer<CredentialBody> {
        let path = format!("/v1/devices/{device}/credential/registrations/{ceremony}");
        self.client.post(&path, body).await
    }

    /// `POST /v1/devices/{device_id}/credential/assertions`
    pub async fn start_credential_assertion(&self, device: &DeviceId) -> Answer<CeremonyBody> {
        let path = format!("/v1/devices/{device}/credential/assertions");
        self.client.post_empty(&path).await
    }

    /// `POST /v1/devices/{device_id}/credential/assertions/{ceremony_id}`
    pub async fn finish_credential_assertion(
        &self,
        device: &DeviceId,
        ceremony: &CeremonyId,
        body: &CeremonyAnswer,
    ) -> Answer<AssertionBody> {
        let path = format!("/v1/devices/{device}/credential/assertions/{ceremony}");
        self.client.post(&path, body).await
    }

    /// `GET /v1/devices/{device_id}/events`: the device's push channel,
    /// resumed after sequence number `query.after`.
    pub async fn device_events(
        &self,
        device: &DeviceId,
        query: &ChannelQuery,
    ) -> Answer<PushChannel> {
        let mut path = format!("/v1/devices/{device}/events");
        if let Some(after) = query.after {
            path.push_str(&format!("?after={after}"));
        }
        let response = self.client.open_stream(&path).await?;
        Ok(PushChannel::reading(response))
    }

    // Bindings (flow F1).

    /// `POST /v1/bindings/claims`
    pub async fn claim_binding_address(&self, body: &ClaimAddress) -> Answer<BindingBody> {
        self.client.post("/v1/bindings/claims", body).await
    }

    /// `POST /v1/bindings/{binding_id}/claim`
    pub async fn claim_offered_binding(&self, binding: &BindingId) -> Answer<BindingBody> {
        let path = format!("/v1/bindings/{binding}/claim");
        self.client.post_empty(&path).await
    }

    /// `POST /v1/bindings/{binding_id}/confirmation`
    pub async fn confirm_binding(&self, binding: &BindingId) -> Answer<BindingConfirmation> {
        let path = format!("/v1/bindings/{binding}/confirmation");
        self.client.post_empty(&path).await
    }

    /// `POST /v1/bindings/{binding_id}/completion`
    pub async fn complete_binding(
        &self,
        binding: &BindingId,
        body: &CompleteBinding,
    ) -> Answer<BindingBody> {
        let path = format!("/v1/bindings/{binding}/completion");
        self.client.post(&path, body).await
    }

    /// `GET /v1/bindings`
    pub async fn bindings(&self) -> Answer<BindingList> {
        self.client.get("/v1/bindings").await
    }

    /// `GET /v1/bindings?limit=…&after=…`: one page of the bindings.
    pub async fn bindings_page(
        &self,
        page: &paybridge_api::wallet::PageQuery,
    ) -> Answer<BindingList> {
        self.client.get_query("/v1/bindings", page).await
    }

    /// `GET /v1/bindings/{binding_id}`
    pub async fn binding(&self, binding: &BindingId) -> Answer<BindingBody> {
        self.client.get(&format!("/v1/bindings/{binding}")).await
    }

    /// `DELETE /v1/bindings/{binding_id}`
    pub async fn unbind(&self, binding: &BindingId) -> Answer<BindingBody> {
        self.client.delete(&format!("/v1/bindings/{binding}")).await
    }

    // Payments (flow F4 and paying an order on the phone).

    /// `POST /v1/payment-requests`
    pub async fn create_payment_request(
        &self,
        body: &CreatePaymentRequest,
    ) -> Answer<PaymentRequestBody> {
        self.client.post("/v1/payment-requests", body).await
    }

    /// `GET /v1/payment-requests/{payment_id}`
    pub async fn payment_request(&self, payment: &PaymentRequestId) -> Answer<PaymentRequestBody> {
        self.client
            .get(&format!("/v1/payment-requests/{payment}"))
            .await
    }

    /// `POST /v1/payment-requests/{payment_id}/gestures`
    pub async fn report_gesture(
        &self,
        payment: &PaymentRequestId,
        body: &ReportGesture,
    ) -> Answer<PaymentRequestBody> {
        let path = format!("/v1/payment-requests/{payment}/gestures");
        self.client.post(&path, body).await
    }

    /// `POST /v1/payment-requests/{payment_id}/approval-challenges`
    pub async fn approval_challenge(&self, payment: &PaymentRequestId) -> Answer<CeremonyBody> {
        let path = format!("/v1/payment-requests/{payment}/approval-challenges");
        self.client.post_empty(&path).await
    }

    /// `POST /v1/payment-requests/{payment_id}/approvals`
    pub async fn approve_payment(
        &self,
        payment: &PaymentRequestId,
        body: &ApprovePayment,
    ) -> Answer<PaymentRequestBody> {
        let path = format!("/v1/payment-requests/{payment}/approvals");
        self.client.post(&path, body).await
    }

    /// `POST /v1/payment-requests/{payment_id}/decline`
    pub async fn decline_payment(&self, payment: &PaymentRequestId) -> Answer<PaymentRequestBody> {
        let path = format!("/v1/payment-requests/{payment}/decline");
        self.client.post_empty(&path).await
    }

    /// `POST /v1/payment-scans`
    pub async fn scan_payment_code(&self, body: &ScanPaymentCode) -> Answer<PaymentRequestBody> {
        self.client.post("/v1/payment-scans", body).await
    }

    /// `POST /v1/orders/{order_id}/payments`
    pub async fn pay_order(&self, order: &OrderId, body: &PayOrder) -> Answer<OrderBody> {
        let path = format!("/v1/orders/{order}/payments");
        self.client.post(&path, body).await
    }
}
