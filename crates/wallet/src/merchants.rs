//! Merchants of the wallet: API keys (the secret is shown once; the store
//! keeps a keyed hash and a visible prefix; keys can be revoked) and orders
//! (their state machine is `paybridge_domain::order`).

use data_encoding::BASE32_NOPAD;
use paybridge_crypto::Secret;
use paybridge_domain::event::{Destination, NewEvent};
use paybridge_domain::happened::{Happened, OrderFacts, OrderStep};
use paybridge_domain::ids::{ApiKeyId, MerchantId, OrderId, RefundId};
use paybridge_domain::ledger::{Account, AccountFlags, AccountId};
use paybridge_domain::order::{order_ttl, OrderState, OrderStatus};
use paybridge_domain::page::{page_limit, paged};
use paybridge_domain::{Currency, ErrorCode, Money, ServiceError};
use paybridge_kernel::ledger::derived_id;
use paybridge_store::{OrderCreate, StoredApiKey, StoredMerchant, StoredOrder};
use rand::RngCore;

use crate::views::{ApiKeyView, OrderView, RefundView};
use crate::Wallet;

/// The sandbox merchant, seeded by `serve` with the sandbox on.
pub const SANDBOX_MERCHANT_NAME: &str = "Demo Shop";
/// Its documented test key (like Stripe's test keys: sandbox only).
pub const SANDBOX_MERCHANT_KEY: &str = "sk_test_demoshopsandboxkeyaaaaaaaaaaaaaa";
/// Visible characters of a key kept for display (`sk_test_abcd`).
const KEY_PREFIX_CHARS: usize = 12;

/// A fresh secret key: `sk_test_` and 32 base32 characters (160 bits).
pub fn generate_api_key() -> Secret<String> {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(format!(
        "sk_test_{}",
        BASE32_NOPAD.encode(&bytes).to_lowercase()
    ))
}

/// Whether `text` has the shape of a key (junk is refused before hashing).
pub fn well_formed_api_key(text: &str) -> bool {
    text.strip_prefix("sk_test_").is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

const MERCHANT_ACCOUNT_FLAGS: AccountFlags = AccountFlags {
    debits_must_not_exceed_credits: true,
    credits_must_not_exceed_debits: false,
};

/// Who an API key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantCaller {
    pub merchant_id: MerchantId,
    pub key_id: ApiKeyId,
}

/// What a merchant asks for.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub amount: Money,
    pub description: String,
    pub reference: String,
    pub expires_in_secs: Option<i64>,
}

impl Wallet {
    fn api_key_record(&self, merchant: &MerchantId, secret: &str) -> StoredApiKey {
        StoredApiKey {
            id: ApiKeyId::generate(),
            merchant_id: merchant.clone(),
            prefix: secret[..KEY_PREFIX_CHARS].to_owned(),
            key_hash: self.keys.tokens.hash(secret),
            created_at: self.clock.now(),
            revoked_at: None,
        }
    }

    /// Seeds the sandbox merchant "Demo Shop" with its documented test key
    /// (idempotent).
    pub async fn seed_sandbox_merchant(&self) -> Result<MerchantId, ServiceError> {
        let id: MerchantId = derived_id(&format!("{}:merchant:demo-shop", self.id));
        let account = Account::new(
            derived_id(&format!("{}:merchant-account:demo-shop", self.id)),
            Currency::CNY,
            // The merchant's balance never goes below zero (refunds draw on it).
            MERCHANT_ACCOUNT_FLAGS,
            0,
        );
        let merchant = StoredMerchant {
            id: id.clone(),
            name: SANDBOX_MERCHANT_NAME.into(),
            account_id: account.id.clone(),
            created_at: self.clock.now(),
            webhook_url: None,
            webhook_secret_sealed: None,
        };
        let key = self.api_key_record(&id, SANDBOX_MERCHANT_KEY);
        self.store
            .merchant_create(&merchant, &account, &key)
            .await?;
        Ok(id)
    }

    /// Creates a merchant with a first API key, shown once.
    pub async fn create_merchant(
        &self,
        name: &str,
    ) -> Result<(StoredMerchant, Secret<String>), ServiceError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "name: 1 to 100 characters",
            ));
        }
        let id = MerchantId::generate();
        let account = Account::new(
            AccountId::generate(),
            Currency::CNY,
            // The merchant's balance never goes below zero (refunds draw on it).
            MERCHANT_ACCOUNT_FLAGS,
            0,
        );
        let merchant = StoredMerchant {
            id: id.clone(),
            name: name.to_owned(),
            account_id: account.id.clone(),
            created_at: self.clock.now(),
            webhook_url: None,
            webhook_secret_sealed: None,
        };
        let secret = generate_api_key();
        let key = self.api_key_record(&id, secret.expose());
        self.store
            .merchant_create(&merchant, &account, &key)
            .await?;
        Ok((merchant, secret))
    }

    /// The merchant a secret key speaks for; unknown, malformed and revoked
    /// keys answer alike.
    pub async fn authenticate_merchant(&self, key: &str) -> Result<MerchantCaller, ServiceError> {
        let invalid = || {
            ServiceError::rejected(
                ErrorCode::ApiKeyInvalid,
                "the API key is unknown or revoked",
            )
        };
        if !well_formed_api_key(key) {
            return Err(invalid());
        }
        let k = self
            .store
            .api_key_by_hash(&self.keys.tokens.hash(key))
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(invalid)?;
        Ok(MerchantCaller {
            merchant_id: k.merchant_id,
            key_id: k.id,
        })
    }

    pub async fn create_api_key(
        &self,
        merchant: &MerchantId,
    ) -> Result<(ApiKeyView, Secret<String>), ServiceError> {
        let secret = generate_api_key();
        let key = self.api_key_record(merchant, secret.expose());
        self.store.api_key_create(&key).await?;
        Ok((key.into(), secret))
    }

    /// A page of the merchant's keys, oldest first.
    pub async fn api_keys(
        &self,
        merchant: &MerchantId,
        limit: Option<u32>,
        after: Option<&ApiKeyId>,
    ) -> Result<(Vec<ApiKeyView>, Option<ApiKeyId>), ServiceError> {
        let limit = page_limit(limit)?;
        let page = self.store.api_keys_page(merchant, limit, after).await?;
        let (keys, next) = paged(page, limit, |k| &k.id, "an API key of this merchant")?;
        Ok((keys.into_iter().map(ApiKeyView::from).collect(), next))
    }

    pub async fn revoke_api_key(
        &self,
        merchant: &MerchantId,
        id: &ApiKeyId,
    ) -> Result<(), ServiceError> {
        if !self
            .store
            .api_key_revoke(merchant, id, self.clock.now())
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::NotFound,
                "no such live API key",
            ));
        }
        Ok(())
    }

    /// An order's state change: for the merchant's webhook endpoint.
    pub(crate) fn order_event_for(o: &StoredOrder, step: OrderStep) -> NewEvent {
        Happened::Order {
            step,
            order: OrderFacts {
                order_id: o.id.clone(),
                reference: o.reference.clone(),
                state: o.status.state,
                amount: o.status.amount,
                refunded: o.status.refunded_minor,
            },
        }
        .to(Destination::Merchant(o.merchant_id.clone()), o.updated_at)
    }

    /// The currency the merchant's balance is kept in (orders must be in it).
    pub(crate) async fn merchant_currency(
        &self,
        merchant: &MerchantId,
    ) -> Result<Currency, ServiceError> {
        let m = self
            .store
            .merchant(merchant)
            .await?
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such merchant"))?;
        let account = self
            .store
            .ledger_account(&m.account_id)
            .await?
            .ok_or_else(|| {
                ServiceError::internal(std::io::Error::other("a merchant without its account"))
            })?;
        Ok(account.currency)
    }

    /// Creates an order; the same reference with the same content returns
    /// the same order (a retry), with other content is refused.
    pub async fn create_order(
        &self,
        merchant: &MerchantId,
        new: &NewOrder,
    ) -> Result<(OrderView, bool), ServiceError> {
        let r = &new.reference;
        if r.is_empty() || r.len() > 64 || !r.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "reference: 1 to 64 visible ASCII characters",
            ));
        }
        let description = new.description.trim();
        if description.is_empty()
            || description.chars().count() > 200
            || description.chars().any(char::is_control)
        {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                "description: 1 to 200 characters",
            ));
        }
        let held = self.merchant_currency(merchant).await?;
        if new.amount.currency != held {
            return Err(ServiceError::rejected(
                ErrorCode::InvalidRequest,
                format!("amount.currency: the merchant's account holds {held}"),
            ));
        }
        let now = self.clock.now();
        let status = OrderStatus::open(new.amount, now, order_ttl(new.expires_in_secs)?)?;
        let order = StoredOrder {
            id: OrderId::generate(),
            merchant_id: merchant.clone(),
            reference: r.clone(),
            description: description.to_owned(),
            status,
            payer_user_id: None,
            binding_id: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        match self
            .store
            .order_create(&order, &[Self::order_event_for(&order, OrderStep::Created)])
            .await?
        {
            OrderCreate::Created => Ok((order.into(), true)),
            OrderCreate::ReferenceTaken(existing)
                if matches!(
                    existing.status.state,
                    OrderState::Cancelled | OrderState::Expired
                ) =>
            {
                // Not a retry's answer: the order it names can never be paid.
                Err(ServiceError::rejected(
                    ErrorCode::OrderReferenceReused,
                    format!(
                        "this reference belongs to an order that is {}; use a new reference",
                        existing.status.state.as_str()
                    ),
                ))
            }
            OrderCreate::ReferenceTaken(existing)
                if existing.status.amount == order.status.amount
                    && existing.description == order.description =>
            {
                Ok(((*existing).into(), false))
            }
            OrderCreate::ReferenceTaken(_) => Err(ServiceError::rejected(
                ErrorCode::OrderReferenceReused,
                "this reference belongs to another order of yours",
            )),
        }
    }

    /// One of the merchant's orders (another merchant's is "not found"); an
    /// open order past its expiry is recorded as expired on the way.
    pub async fn order(
        &self,
        merchant: &MerchantId,
        id: &OrderId,
    ) -> Result<OrderView, ServiceError> {
        self.merchant_order(merchant, id).await.map(OrderView::from)
    }

    /// The refunds of one of the merchant's orders, oldest first.
    pub async fn refunds(
        &self,
        merchant: &MerchantId,
        id: &OrderId,
        limit: Option<u32>,
        after: Option<&RefundId>,
    ) -> Result<(Vec<RefundView>, Option<RefundId>), ServiceError> {
        let limit = page_limit(limit)?;
        let order = self.merchant_order(merchant, id).await?;
        let page = self.store.refunds_page(&order.id, limit, after).await?;
        let (refunds, next) = paged(page, limit, |r| &r.id, "a refund of this order")?;
        Ok((refunds.into_iter().map(RefundView::from).collect(), next))
    }

    /// [`Wallet::order`] as stored, for the services that change it.
    pub(crate) async fn merchant_order(
        &self,
        merchant: &MerchantId,
        id: &OrderId,
    ) -> Result<StoredOrder, ServiceError> {
        let mut o = self
            .store
            .order(id)
            .await?
            .filter(|o| &o.merchant_id == merchant)
            .ok_or_else(|| ServiceError::rejected(ErrorCode::NotFound, "no such order"))?;
        let now = self.clock.now();
        if let Some(expired) = o.status.expire(now) {
            let mut next = o.clone();
            next.status = expired;
            next.updated_at = now;
            if self
                .store
                .order_update(&next, &[Self::order_event_for(&next, OrderStep::Expired)])
                .await?
            {
                next.version += 1;
                o = next;
            } else {
                return Box::pin(self.merchant_order(merchant, id)).await;
            }
        }
        Ok(o)
    }

    pub async fn cancel_order(
        &self,
        merchant: &MerchantId,
        id: &OrderId,
    ) -> Result<OrderView, ServiceError> {
        let mut o = self.merchant_order(merchant, id).await?;
        if o.status.state == OrderState::Cancelled {
            return Ok(o.into());
        }
        o.status = o.status.cancel(self.clock.now())?;
        o.updated_at = self.clock.now();
        if !self
            .store
            .order_update(&o, &[Self::order_event_for(&o, OrderStep::Cancelled)])
            .await?
        {
            return Err(ServiceError::rejected(
                ErrorCode::OrderNotPayable,
                "the order changed meanwhile; look at it again",
            ));
        }
        Ok(o.into())
    }
}
