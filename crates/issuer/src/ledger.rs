//! The bank's ledger as a service: open accounts, move money. Every call is
//! one store transaction; a transfer's id makes it idempotent.

use std::sync::Arc;

use paybridge_domain::event::NewEvent;
use paybridge_domain::ledger::{Account, AccountFlags, AccountId, Transfer, TransferRequest};
use paybridge_domain::{Clock, Currency, ErrorCode, ServiceError};
use paybridge_store::LedgerStore;

#[derive(Debug, Clone)]
pub struct Ledger {
    pub store: Arc<dyn LedgerStore>,
    pub clock: Arc<dyn Clock>,
}

impl Ledger {
    /// Opens an account with zero totals.
    pub async fn open_account(
        &self,
        currency: Currency,
        flags: AccountFlags,
        overdraft_limit_minor: i64,
    ) -> Result<Account, ServiceError> {
        if overdraft_limit_minor < 0 {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "the overdraft limit cannot be negative",
            ));
        }
        let account = Account::new(
            AccountId::generate(),
            currency,
            flags,
            overdraft_limit_minor,
        );
        let created = self
            .store
            .ledger_open_account(&account, self.clock.now())
            .await?;
        assert!(created, "a fresh random account id is never taken");
        Ok(account)
    }

    /// Submits a transfer; a resubmission of the same transfer returns it again.
    pub async fn transfer(
        &self,
        request: &TransferRequest,
        events: &[NewEvent],
    ) -> Result<Transfer, ServiceError> {
        let outcome = self
            .store
            .ledger_submit(request, events, self.clock.now())
            .await?;
        paybridge_kernel::ledger::settled(outcome, "no such account or pending transfer")
    }

    pub async fn account(&self, id: &AccountId) -> Result<Account, ServiceError> {
        self.store
            .ledger_account(id)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such account"))
    }
}
