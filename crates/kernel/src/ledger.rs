//! Ledger plumbing both roles need around [`LedgerStore::ledger_submit`]:
//! ids derived from a label (so a retry names the same transfer or account),
//! the clearing account each side keeps for the other, and what a submitted
//! transfer came to as a service answer.

use paybridge_domain::ids::{IdKind, ID_RANDOM_BYTES};
use paybridge_domain::ledger::{
    Account, AccountFlags, AccountId, InvalidTransferId, Transfer, TransferId,
};
use paybridge_domain::partner::PartnerId;
use paybridge_domain::{Clock, Currency, ErrorCode, Id, ServiceError};
use paybridge_store::{LedgerStore, TransferOutcome};
use sha2::{Digest, Sha256};

/// An id that is a function of `label`: the same label, the same id, on
/// every retry and every instance.
pub fn derived_id<K: IdKind>(label: &str) -> Id<K> {
    let digest = Sha256::digest(label.as_bytes());
    let mut bytes = [0u8; ID_RANDOM_BYTES];
    bytes.copy_from_slice(&digest[..ID_RANDOM_BYTES]);
    Id::from_random_bytes(bytes)
}

/// A transfer id from its label (`order-paid:{order}`, `refund:{refund}`).
/// Labels are ours, so one that does not parse is a bug.
pub fn transfer_id(label: &str) -> Result<TransferId, ServiceError> {
    label
        .parse()
        .map_err(|e: InvalidTransferId| ServiceError::internal(e))
}

/// The account in `me`'s ledger of what stands between it and partner
/// `peer` in `currency` (`side` names which: `wallet-clearing` at the bank,
/// `issuer-clearing` at the wallet). Opened on first use.
pub async fn clearing_account(
    store: &dyn LedgerStore,
    clock: &dyn Clock,
    me: &PartnerId,
    side: &str,
    peer: &PartnerId,
    currency: Currency,
) -> Result<AccountId, ServiceError> {
    let id: AccountId = derived_id(&format!("{me}:{side}:{peer}:{}", currency.code()));
    let account = Account::new(id.clone(), currency, AccountFlags::default(), 0);
    store.ledger_open_account(&account, clock.now()).await?;
    Ok(id)
}

/// A transfer recorded now or before is the answer; a refusal is the
/// ledger's error; a missing account is `missing` (what the caller knows
/// it to be).
pub fn settled(outcome: TransferOutcome, missing: &str) -> Result<Transfer, ServiceError> {
    match outcome {
        TransferOutcome::Created(t) | TransferOutcome::Exists(t) => Ok(t),
        TransferOutcome::Refused(e) => Err(ServiceError::Rejected(e.into())),
        TransferOutcome::NotFound => Err(ServiceError::rejected(
            ErrorCode::NotFound,
            missing.to_owned(),
        )),
    }
}
