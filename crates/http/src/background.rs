//! The server's background loops, each stopped by the same switch as the
//! HTTP server: purging what has outlived its use (and releasing expired
//! ledger holds), expiring cross-device
//! payment requests nobody answered and F3's transfer payments and device
//! pairings whose step ran out, and resuming payments a crash or an
//! unknown bank answer left half done (the payment saga's recovery step). (The outbox dispatchers run beside
//! them; see `paybridge_adapters::dispatcher`.)

use std::sync::Arc;
use std::time::Duration;

use paybridge_domain::Clock;
use paybridge_store::{IdempotencyStore, KeyVault, LedgerStore, NonceStore, OtpStore, Store};
use paybridge_wallet::Wallet;
use tokio::sync::watch;

/// How often expired nonces and idempotency answers are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Runs `round` every `interval` until `stop` turns; a round's failure is
/// logged and the next round tries again.
async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        round().await;
    }
}

/// Ledger holds expired per sweep step (steps repeat while they fill up).
pub const HOLDS_PER_SWEEP: i64 = 500;

/// One round of the purge: forgets nonces past their window and
/// idempotency answers past 24 h, and expires the ledger holds whose
/// timeout passed (their amounts become available again). Returns how many
/// holds it expired.
pub async fn purge_once<S>(stores: &[&S], now: paybridge_domain::Timestamp) -> u64
where
    S: NonceStore + IdempotencyStore + LedgerStore + OtpStore + ?Sized,
{
    let mut expired = 0;
    for store in stores {
        let forget = now - time::Duration::seconds(paybridge_domain::otp::OTP_BUDGET_MEMORY_SECS);
        if let Err(e) = store.otp_sends_purge(forget).await {
            tracing::warn!(error = %e, "purging old SMS sends failed");
        }
        if let Err(e) = store.nonce_purge(now).await {
            tracing::warn!(error = %e, "nonce purge failed");
        }
        if let Err(e) = store.idempotency_purge(now).await {
            tracing::warn!(error = %e, "idempotency purge failed");
        }
        loop {
            match store.ledger_expire_due(now, HOLDS_PER_SWEEP).await {
                Ok(n) => {
                    expired += n;
                    if n < HOLDS_PER_SWEEP as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expiring ledger holds failed");
                    break;
                }
            }
        }
    }
    if expired > 0 {
        tracing::info!(count = expired, "expired ledger holds released");
    }
    expired
}

pub(crate) async fn purge_loop(
    stores: Vec<Store>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) {
    let stores: Vec<&Store> = stores.iter().collect();
    every(PURGE_INTERVAL, stop, || async {
        purge_once(&stores, clock.now()).await;
    })
    .await
}

/// Reads the roles' key rings again every [`KEY_REFRESH_SECS`]: after a
/// `keys rotate` this instance seals with the new active key.
///
/// [`KEY_REFRESH_SECS`]: paybridge_store::keys::KEY_REFRESH_SECS
pub(crate) async fn key_refresh_loop(vaults: Vec<Arc<KeyVault>>, stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(paybridge_store::keys::KEY_REFRESH_SECS);
    every(interval, stop, || async {
        for vault in &vaults {
            if let Err(e) = vault.reload().await {
                tracing::warn!(error = %e, "reading the key ring again failed");
            }
        }
    })
    .await
}

/// How often pending cross-device payment requests past their expiry are
/// expired (and their terminal and phone told).
pub const PAYMENT_EXPIRY_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) async fn payment_expiry_loop(wallet: Wallet, stop: watch::Receiver<bool>) {
    every(PAYMENT_EXPIRY_INTERVAL, stop, || async {
        expire_once(&wallet).await;
    })
    .await
}

/// One round of the expiry loop: cross-device payment requests nobody
/// answered; flow F3's transfer payments whose step ran out (expired,
/// their executing debit followed, completed without a quiet phone); and
/// business binding requests past their expiry; flow F5's applications
/// past their expiry, and their photos and frames past their retention.
/// Returns how many moved.
pub async fn expire_once(wallet: &Wallet) -> usize {
    let mut moved = 0;
    match wallet.expire_due_payment_requests().await {
        Ok(0) => {}
        Ok(n) => {
            moved += n;
            tracing::info!(count = n, "payment requests expired")
        }
        Err(e) => tracing::warn!(error = %e, "payment request expiry failed"),
    }
    match wallet.settle_due_transfer_payments().await {
        Ok(0) => {}
        Ok(n) => {
            moved += n;
            tracing::info!(count = n, "due transfer payments settled")
        }
        Err(e) => tracing::warn!(error = %e, "settling due transfer payments failed"),
    }
    match wallet.expire_pairings().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(count = n, "device pairings expired"),
        Err(e) => tracing::warn!(error = %e, "device pairing expiry failed"),
    }
    match wallet.sweep_card_applications().await {
        Ok((0, 0)) => {}
        Ok((expired, purged)) => {
            moved += expired as usize;
            tracing::info!(expired, images_deleted = purged, "card applications swept")
        }
        Err(e) => tracing::warn!(error = %e, "sweeping card applications failed"),
    }
    moved
}

/// How often the recovery steps of the payment and refund sagas look for
/// stalled payments and refunds (a paying order is asked about after 20 s,
/// so an unknown outcome is settled within a minute when the bank has it).
pub const PAYMENT_RECOVERY_INTERVAL: Duration = Duration::from_secs(15);

pub(crate) async fn payment_recovery_loop(wallet: Wallet, stop: watch::Receiver<bool>) {
    every(PAYMENT_RECOVERY_INTERVAL, stop, || async {
        match wallet.reconcile_paying_orders().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "paying orders reconciled"),
            Err(e) => tracing::warn!(error = %e, "reconciling paying orders failed"),
        }
        match wallet.resume_stalled_refunds().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "stalled refunds resumed"),
            Err(e) => tracing::warn!(error = %e, "resuming stalled refunds failed"),
        }
    })
    .await
}
