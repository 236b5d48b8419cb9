//! Flow F3's API on the wallet app's client, one method per endpoint: what
//! a first device (pairing, its transfer payment requests, its own
//! agreement) and the phone (claiming a code, approving a device, managing
//! agreements, answering and executing transfer payments) call.

use paybridge_api::delegated::{
    AgreementTermsBody, ApprovePairing, ChangeTransferAgreement, CompleteTransferPayment,
    ConfirmTransferPayment, CreateTransferPayment, DeviceAgreementBody, EnterUserCode, ExecuteTask,
    PairedDevice, PairingBody, PairingStarted, StartPairing, TransferAgreementBody,
    TransferAgreementList, TransferPaymentBody, WalletKeys,
};
use paybridge_api::wallet::{CeremonyBody, PageQuery};
use paybridge_domain::ids::{PairingId, TransferAgreementId, TransferPaymentId};

use crate::{ApiError, WalletApp};

type Answer<T> = Result<T, ApiError>;

impl WalletApp {
    // The first device.

    /// `POST /v1/device-pairings` (with a proof by the key it names).
    pub async fn start_pairing(&self, body: &StartPairing) -> Answer<PairingStarted> {
        self.client().post("/v1/device-pairings", body).await
    }

    /// `POST /v1/device-pairings/{pairing_id}/session` (a poll).
    pub async fn collect_pairing(&self, pairing: &PairingId) -> Answer<PairedDevice> {
        let path = format!("/v1/device-pairings/{pairing}/session");
        self.client().post_empty(&path).await
    }

    /// `POST /v1/transfer-payments`
    pub async fn request_transfer_payment(
        &self,
        body: &CreateTransferPayment,
    ) -> Answer<TransferPaymentBody> {
        self.client().post("/v1/transfer-payments", body).await
    }

    /// `GET /v1/device-agreement`
    pub async fn device_agreement(&self) -> Answer<DeviceAgreementBody> {
        self.client().get("/v1/device-agreement").await
    }

    /// `POST /v1/device-agreement/unpair`
    pub async fn unpair(&self) -> Answer<DeviceAgreementBody> {
        self.client()
            .post_empty("/v1/device-agreement/unpair")
            .await
    }

    // The phone.

    /// `POST /v1/device-pairings/claims`
    pub async fn enter_user_code(&self, body: &EnterUserCode) -> Answer<PairingBody> {
        self.client().post("/v1/device-pairings/claims", body).await
    }

    /// `GET /v1/device-pairings/{pairing_id}`
    pub async fn pairing(&self, pairing: &PairingId) -> Answer<PairingBody> {
        self.client()
            .get(&format!("/v1/device-pairings/{pairing}"))
            .await
    }

    /// `POST /v1/device-pairings/{pairing_id}/approval-challenges`
    pub async fn pairing_approval_challenge(
        &self,
        pairing: &PairingId,
        terms: &AgreementTermsBody,
    ) -> Answer<CeremonyBody> {
        let path = format!("/v1/device-pairings/{pairing}/approval-challenges");
        self.client().post(&path, terms).await
    }

    /// `POST /v1/device-pairings/{pairing_id}/approval`
    pub async fn approve_pairing(
        &self,
        pairing: &PairingId,
        body: &ApprovePairing,
    ) -> Answer<TransferAgreementBody> {
        let path = format!("/v1/device-pairings/{pairing}/approval");
        self.client().post(&path, body).await
    }

    /// `POST /v1/device-pairings/{pairing_id}/denial`
    pub async fn deny_pairing(&self, pairing: &PairingId) -> Answer<PairingBody> {
        let path = format!("/v1/device-pairings/{pairing}/denial");
        self.client().post_empty(&path).await
    }

    /// `GET /v1/transfer-agreements`
    pub async fn transfer_agreements(&self, page: &PageQuery) -> Answer<TransferAgreementList> {
        self.client()
            .get_query("/v1/transfer-agreements", page)
            .await
    }

    /// `GET /v1/transfer-agreements/{agreement_id}`
    pub async fn transfer_agreement(
        &self,
        agreement: &TransferAgreementId,
    ) -> Answer<TransferAgreementBody> {
        self.client()
            .get(&format!("/v1/transfer-agreements/{agreement}"))
            .await
    }

    /// `PATCH /v1/transfer-agreements/{agreement_id}`
    pub async fn change_transfer_agreement(
        &self,
        agreement: &TransferAgreementId,
        body: &ChangeTransferAgreement,
    ) -> Answer<TransferAgreementBody> {
        self.client()
            .patch(&format!("/v1/transfer-agreements/{agreement}"), body)
            .await
    }

    /// `POST /v1/transfer-agreements/{agreement_id}/suspend`
    pub async fn suspend_transfer_agreement(
        &self,
        agreement: &TransferAgreementId,
    ) -> Answer<TransferAgreementBody> {
        let path = format!("/v1/transfer-agreements/{agreement}/suspend");
        self.client().post_empty(&path).await
    }

    /// `POST /v1/transfer-agreements/{agreement_id}/resume`
    pub async fn resume_transfer_agreement(
        &self,
        agreement: &TransferAgreementId,
    ) -> Answer<TransferAgreementBody> {
        let path = format!("/v1/transfer-agreements/{agreement}/resume");
        self.client().post_empty(&path).await
    }

    /// `POST /v1/transfer-agreements/{agreement_id}/revoke`
    pub async fn revoke_transfer_agreement(
        &self,
        agreement: &TransferAgreementId,
    ) -> Answer<TransferAgreementBody> {
        let path = format!("/v1/transfer-agreements/{agreement}/revoke");
        self.client().post_empty(&path).await
    }

    /// `GET /v1/transfer-payments/{transfer_payment_id}`
    pub async fn transfer_payment(
        &self,
        payment: &TransferPaymentId,
    ) -> Answer<TransferPaymentBody> {
        self.client()
            .get(&format!("/v1/transfer-payments/{payment}"))
            .await
    }

    /// `POST /v1/transfer-payments/{transfer_payment_id}/confirmation`
    pub async fn confirm_transfer_payment(
        &self,
        payment: &TransferPaymentId,
        body: &ConfirmTransferPayment,
    ) -> Answer<TransferPaymentBody> {
        let path = format!("/v1/transfer-payments/{payment}/confirmation");
        self.client().post(&path, body).await
    }

    /// `POST /v1/transfer-payments/{transfer_payment_id}/approval-challenges`
    pub async fn task_approval_challenge(
        &self,
        payment: &TransferPaymentId,
    ) -> Answer<CeremonyBody> {
        let path = format!("/v1/transfer-payments/{payment}/approval-challenges");
        self.client().post_empty(&path).await
    }

    /// `POST /v1/transfer-payments/{transfer_payment_id}/execution`
    pub async fn execute_task(
        &self,
        payment: &TransferPaymentId,
        body: &ExecuteTask,
    ) -> Answer<TransferPaymentBody> {
        let path = format!("/v1/transfer-payments/{payment}/execution");
        self.client().post(&path, body).await
    }

    /// `POST /v1/transfer-payments/{transfer_payment_id}/completion`
    pub async fn complete_transfer_payment(
        &self,
        payment: &TransferPaymentId,
        body: &CompleteTransferPayment,
    ) -> Answer<TransferPaymentBody> {
        let path = format!("/v1/transfer-payments/{payment}/completion");
        self.client().post(&path, body).await
    }

    /// `GET /v1/wallet-keys`
    pub async fn wallet_keys(&self) -> Answer<WalletKeys> {
        self.client().get("/v1/wallet-keys").await
    }
}
