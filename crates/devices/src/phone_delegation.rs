//! The phone's part in flow F3: it enters a first device's user code,
//! approves the device with the biometric and the terms chosen, answers
//! transfer payment messages with signed confirm payment messages, checks
//! and executes payment execution tasks (the wallet's signature, then the
//! biometric unless direct, then its own signature), and sends the payment
//! completion message.

use paybridge_api::delegated::{
    AgreementTermsBody, ApprovePairing, CompleteTransferPayment, ConfirmPaymentClaims,
    ConfirmTransferPayment, Decision, EnterUserCode, ExecuteTask, ExecutionTaskClaims, PairingBody,
    PaymentCompletionClaims, TaskExecutionClaims, TransferAgreementBody, TransferPaymentBody,
};
use paybridge_api::wallet::WebauthnApproval;
use paybridge_crypto::device_proof::DeviceJwk;
use paybridge_crypto::signed_message::{message_hash, verify, MessageType};
use paybridge_domain::ids::{PairingId, TransferPaymentId};
use paybridge_domain::transfer_payment::TransferPaymentStage;

use crate::{DeviceError, DeviceResult, Phone};

impl Phone {
    /// Enters (or scans) the code a first device shows.
    pub async fn enter_pairing_code(&self, user_code: &str) -> DeviceResult<PairingBody> {
        let body = EnterUserCode {
            user_code: user_code.to_owned(),
        };
        Ok(self.app()?.enter_user_code(&body).await?)
    }

    /// Approves a claimed device with `terms`: the biometric (the passkey's
    /// assertion) over exactly these terms.
    pub async fn approve_pairing(
        &mut self,
        pairing: &PairingId,
        terms: &AgreementTermsBody,
    ) -> DeviceResult<TransferAgreementBody> {
        let app = self.app()?.clone();
        let ceremony = app.pairing_approval_challenge(pairing, terms).await?;
        let answer = self.passkey().get(&ceremony)?;
        let body = ApprovePairing {
            terms: terms.clone(),
            webauthn: WebauthnApproval {
                ceremony_id: ceremony.ceremony_id.to_string(),
                credential: answer.credential,
            },
        };
        Ok(app.approve_pairing(pairing, &body).await?)
    }

    /// Declines to pair the device.
    pub async fn deny_pairing(&self, pairing: &PairingId) -> DeviceResult<PairingBody> {
        Ok(self.app()?.deny_pairing(pairing).await?)
    }

    /// A confirm payment message (确认支付消息) for `payment`, signed with
    /// the phone's key.
    pub fn sign_confirmation(&self, payment: &TransferPaymentBody, decision: Decision) -> String {
        let claims = ConfirmPaymentClaims {
            transfer_payment_id: payment.id.to_string(),
            decision,
            amount: payment.amount.clone(),
        };
        self.signer()
            .sign_message(MessageType::ConfirmPayment, &claims)
    }

    /// Answers the transfer payment message: approve or decline.
    pub async fn answer_transfer_payment(
        &self,
        payment: &TransferPaymentBody,
        decision: Decision,
    ) -> DeviceResult<TransferPaymentBody> {
        let body = ConfirmTransferPayment {
            message: self.sign_confirmation(payment, decision),
        };
        Ok(self
            .app()?
            .confirm_transfer_payment(&payment.id, &body)
            .await?)
    }

    /// Checks a payment execution task as the app does before showing it:
    /// signed by a wallet key the app pinned, for this payment, this phone,
    /// this amount. Returns what it says.
    pub fn check_task(&self, payment: &TransferPaymentBody) -> DeviceResult<ExecutionTaskClaims> {
        let task = payment
            .task
            .as_ref()
            .ok_or(DeviceError::NotReady("no payment execution task yet"))?;
        if message_hash(&task.task) != task.task_hash {
            return Err(DeviceError::Unexpected(
                "the task's hash does not match the task".into(),
            ));
        }
        let verified = self
            .wallet_keys()
            .iter()
            .find_map(|k| {
                let jwk = DeviceJwk {
                    kty: k.kty.clone(),
                    crv: k.crv.clone(),
                    x: k.x.clone(),
                };
                let vk = jwk.verifying_key().ok()?;
                verify(&task.task, MessageType::ExecutionTask, &vk).ok()
            })
            .ok_or_else(|| {
                DeviceError::Unexpected(
                    "the task is not signed by a wallet key this app trusts (pin them first)"
                        .into(),
                )
            })?;
        let claims: ExecutionTaskClaims = serde_json::from_slice(&verified.payload)
            .map_err(|e| DeviceError::Unexpected(format!("the task's payload: {e}")))?;
        let mine = self.device_id() == Some(&claims.phone_id);
        if claims.transfer_payment_id != payment.id || claims.amount != payment.amount || !mine {
            return Err(DeviceError::Unexpected(
                "the task is for another payment, amount or phone".into(),
            ));
        }
        Ok(claims)
    }

    /// An execution of `payment`'s task, signed with the phone's key.
    pub fn sign_execution(&self, payment: &TransferPaymentId, task_hash: &str) -> String {
        let claims = TaskExecutionClaims {
            transfer_payment_id: payment.to_string(),
            task_hash: task_hash.to_owned(),
        };
        self.signer()
            .sign_message(MessageType::TaskExecution, &claims)
    }

    /// Executes the payment execution task as a payment of its own: checks
    /// it, passes the biometric when the task asks, and submits it signed.
    /// Answers the payment as the debit left it.
    pub async fn execute_task(
        &mut self,
        payment: &TransferPaymentBody,
    ) -> DeviceResult<TransferPaymentBody> {
        let claims = self.check_task(payment)?;
        let task_hash = payment
            .task
            .as_ref()
            .map(|t| t.task_hash.clone())
            .unwrap_or_default();
        let app = self.app()?.clone();
        let webauthn = if claims.biometric_required {
            let ceremony = app.task_approval_challenge(&payment.id).await?;
            let answer = self.passkey().get(&ceremony)?;
            Some(WebauthnApproval {
                ceremony_id: ceremony.ceremony_id.to_string(),
                credential: answer.credential,
            })
        } else {
            None
        };
        let body = ExecuteTask {
            execution: self.sign_execution(&payment.id, &task_hash),
            webauthn,
        };
        Ok(app.execute_task(&payment.id, &body).await?)
    }

    /// The payment completion message (支付完成消息) for a debited payment.
    pub async fn complete_transfer_payment(
        &self,
        payment: &TransferPaymentBody,
    ) -> DeviceResult<TransferPaymentBody> {
        let task_hash =
            payment
                .task
                .as_ref()
                .map(|t| t.task_hash.clone())
                .ok_or(DeviceError::NotReady(
                    "no payment execution task to complete",
                ))?;
        let claims = PaymentCompletionClaims {
            transfer_payment_id: payment.id.to_string(),
            task_hash,
            result: TransferPaymentStage::Paid,
        };
        let body = CompleteTransferPayment {
            message: self
                .signer()
                .sign_message(MessageType::PaymentCompletion, &claims),
        };
        Ok(self
            .app()?
            .complete_transfer_payment(&payment.id, &body)
            .await?)
    }

    /// The whole of the phone's part once it has a task: execute it and, if
    /// the bank debited, send the completion message.
    pub async fn execute_and_complete(
        &mut self,
        payment: &TransferPaymentBody,
    ) -> DeviceResult<TransferPaymentBody> {
        let executed = self.execute_task(payment).await?;
        if executed.state != TransferPaymentStage::Debited {
            return Ok(executed);
        }
        // The answer to the execution names the task the phone executed.
        let with_task = TransferPaymentBody {
            task: payment.task.clone(),
            ..executed
        };
        self.complete_transfer_payment(&with_task).await
    }
}
