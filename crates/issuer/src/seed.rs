//! Seed files: demo customers, cards and balances for a sandbox bank.
//! `paybridge serve` applies [`SANDBOX_SEED`] to the sandbox bank and any
//! `--seed FILE` after it. Applying a seed twice changes nothing: customers
//! are matched by login name, cards by PAN, and opening balances are ledger
//! transfers with ids derived from the card.

use paybridge_crypto::IndexPurpose;
use paybridge_crypto::Secret;
use paybridge_domain::card::{CardType, Expiry, Pan};
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::phone::PhoneNumber;
use paybridge_domain::{Money, ServiceError};
use serde::Deserialize;

use crate::customers::{NewCard, NewCustomer};
use crate::Issuer;

/// The sandbox bank's demo data (listed in the README).
pub const SANDBOX_SEED: &str = include_str!("sandbox_seed.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub customers: Vec<SeedCustomer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCustomer {
    pub username: String,
    pub password: String,
    pub name: String,
    pub id_number: String,
    pub phone: String,
    #[serde(default)]
    pub cards: Vec<SeedCard>,
}

impl std::fmt::Debug for SeedCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedCustomer")
            .field("username", &self.username)
            .field("cards", &self.cards.len())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCard {
    /// Omitted: the bank picks a number in its BIN range.
    pub pan: Option<String>,
    #[serde(rename = "type")]
    pub card_type: CardType,
    pub expiry: String,
    pub balance: Money,
    #[serde(default)]
    pub credit_limit: i64,
}

impl std::fmt::Debug for SeedCard {
    /// Never prints the PAN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedCard")
            .field("type", &self.card_type)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// What applying a seed did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub customers_created: usize,
    pub cards_created: usize,
    /// Customers and cards that were there already.
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the seed file is not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("customer {username}: {message}")]
    Invalid { username: String, message: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl SeedFile {
    pub fn parse(text: &str) -> Result<SeedFile, SeedError> {
        Ok(toml::from_str(text)?)
    }
}

/// A seed customer checked in full before anything is written.
struct Checked {
    customer: NewCustomer,
    cards: Vec<NewCard>,
}

impl Issuer {
    /// Checks every customer and card of the file; the first problem is
    /// reported and nothing is written.
    fn check_seed(&self, seed: &SeedFile) -> Result<Vec<Checked>, SeedError> {
        seed.customers
            .iter()
            .map(|c| {
                let invalid = |message: String| SeedError::Invalid {
                    username: c.username.clone(),
                    message,
                };
                let customer = NewCustomer {
                    username: c.username.clone(),
                    password: Secret::new(c.password.clone()),
                    name: PersonName::parse(&c.name).map_err(|e| invalid(e.message))?,
                    id_number: IdNumber::parse(&c.id_number).map_err(|e| invalid(e.message))?,
                    phone: c
                        .phone
                        .parse::<PhoneNumber>()
                        .map_err(|e| invalid(e.to_string()))?,
                };
                let cards = c
                    .cards
                    .iter()
                    .map(|card| {
                        let pan = card
                            .pan
                            .as_deref()
                            .map(Pan::parse)
                            .transpose()
                            .map_err(|e| invalid(e.message))?;
                        if pan.as_ref().is_some_and(|p| !self.bins.admits(p)) {
                            return Err(invalid(format!(
                                "a card number outside {}'s BIN range",
                                self.name
                            )));
                        }
                        Ok(NewCard {
                            pan,
                            card_type: card.card_type,
                            expiry: Expiry::parse(&card.expiry).map_err(|e| invalid(e.message))?,
                            opening_balance: card.balance,
                            credit_limit_minor: card.credit_limit,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Checked { customer, cards })
            })
            .collect()
    }

    pub async fn apply_seed(&self, seed: &SeedFile) -> Result<SeedReport, SeedError> {
        let checked = self.check_seed(seed)?;
        let mut report = SeedReport::default();
        for Checked { customer, cards } in checked {
            let invalid = |message: String| SeedError::Invalid {
                username: customer.username.clone(),
                message,
            };
            let existing = self
                .store
                .bank_customer_by_username(&customer.username)
                .await
                .map_err(ServiceError::from)?;
            let customer_id = match existing {
                Some(found) => {
                    report.kept += 1;
                    found.id
                }
                None => {
                    report.customers_created += 1;
                    self.create_customer(&customer)
                        .await
                        .map_err(|e| invalid(e.to_string()))?
                        .id
                }
            };
            for card in cards {
                if let Some(pan) = &card.pan {
                    let index = self.keys.index.index(IndexPurpose::Pan, pan.expose());
                    let found = self
                        .store
                        .bank_card_by_pan(&index)
                        .await
                        .map_err(ServiceError::from)?;
                    if found.is_some() {
                        report.kept += 1;
                        continue;
                    }
                }
                self.issue_card(&customer_id, &card)
                    .await
                    .map_err(|e| invalid(e.to_string()))?;
                report.cards_created += 1;
            }
        }
        Ok(report)
    }
}
