//! Flow F5 at a POS: the issuer checks a tap. The token goes through the
//! POS to the issuer, which turns it back into the PAN at its vault, checks
//! the token's state and domain, verifies the application cryptogram with
//! the token's key (derived from the issuer master key, which never leaves
//! the issuer) and takes the ATC only if it rises. The order of the checks,
//! and why a tap is declined, are `domain::authorisation`'s. The debit
//! itself, and the acquirer's signed request that carries a tap here, come
//! next.

use paybridge_domain::authorisation::DeclineReason;
use paybridge_domain::card::Pan;
use paybridge_domain::card_token::{TokenChannel, TokenState};
use paybridge_domain::ServiceError;
use paybridge_emv::terminal::read_emv_data;
use paybridge_store::StoredVaultToken;

use crate::Issuer;

/// A tap the issuer accepts: what the debit needs, and the ARPC for the POS.
#[derive(Debug, Clone)]
pub struct CheckedTap {
    pub token: StoredVaultToken,
    pub pan: Pan,
    pub atc: u16,
    pub amount_minor: u64,
    /// ISO 4217 numeric.
    pub currency: u16,
    /// The issuer's answer to the cryptogram (ARPC method 1, approved).
    pub arpc: [u8; 8],
}

impl Issuer {
    /// Checks a tap of `token` with the EMV data the POS read: `Ok(Err(…))`
    /// is a decline with its reason; `Err` is a failure of ours.
    pub async fn check_tap(
        &self,
        token: &str,
        emv_data: &[u8],
    ) -> Result<Result<CheckedTap, DeclineReason>, ServiceError> {
        let Some(emv) = read_emv_data(emv_data) else {
            return Ok(Err(DeclineReason::FormatError));
        };
        let Some(found) = self.detokenise(token).await? else {
            return Ok(Err(DeclineReason::UnknownToken));
        };
        if found.token.state != TokenState::Active {
            return Ok(Err(DeclineReason::TokenInactive));
        }
        let nfc = TokenChannel::Nfc.as_str();
        if !found.token.channels.split(',').any(|c| c == nfc) {
            return Ok(Err(DeclineReason::ChannelNotAllowed));
        }
        let Some(arpc) = self.cards()?.verify_cryptogram(
            token,
            &found.token.psn,
            emv.atc,
            &emv.cryptogram_data,
            &emv.arqc,
        ) else {
            return Ok(Err(DeclineReason::CryptogramInvalid));
        };
        // Only a cryptogram that verified may take the counter.
        if !self
            .store
            .vault_token_accept_atc(&found.token.id, emv.atc)
            .await?
        {
            return Ok(Err(DeclineReason::AtcReplayed));
        }
        Ok(Ok(CheckedTap {
            token: found.token,
            pan: found.pan,
            atc: emv.atc,
            amount_minor: emv.amount_minor,
            currency: emv.currency,
            arpc,
        }))
    }
}
