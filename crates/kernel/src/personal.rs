//! Personal data at rest: a phone number, an ID number or a name is kept
//! sealed for its row and column (envelope encryption), shown masked, and
//! the ones looked up by value also get a blind index. [`Protector`] does
//! the three together, so a field cannot be sealed with one purpose and
//! looked up with another: each field type names its own index purpose.

use paybridge_crypto::{BlindIndexKey, IndexPurpose};
use paybridge_domain::identity::{IdNumber, PersonName};
use paybridge_domain::phone::PhoneNumber;
use paybridge_store::keys::SealedColumn;
use paybridge_store::KeyVault;

/// A personal-data value and how it is shown.
pub trait PersonalField {
    /// The value in clear (only for sealing and indexing).
    fn clear(&self) -> &str;
    /// What may be shown: part of it, the rest hidden.
    fn masked(&self) -> String;
}

/// A personal-data value that is also found by equality.
pub trait IndexedField: PersonalField {
    /// The blind index it is found by; stored indexes depend on it.
    const PURPOSE: IndexPurpose;
}

impl PersonalField for PhoneNumber {
    fn clear(&self) -> &str {
        self.as_str()
    }
    fn masked(&self) -> String {
        PhoneNumber::masked(self)
    }
}

impl IndexedField for PhoneNumber {
    const PURPOSE: IndexPurpose = IndexPurpose::Phone;
}

impl PersonalField for IdNumber {
    fn clear(&self) -> &str {
        self.expose()
    }
    fn masked(&self) -> String {
        IdNumber::masked(self)
    }
}

impl IndexedField for IdNumber {
    const PURPOSE: IndexPurpose = IndexPurpose::IdNumber;
}

impl PersonalField for PersonName {
    fn clear(&self) -> &str {
        self.expose()
    }
    fn masked(&self) -> String {
        PersonName::masked(self)
    }
}

/// A field as stored: sealed, and masked for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub sealed: String,
    pub masked: String,
}

/// A field as stored when it is also looked up: sealed, masked, indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub sealed: String,
    pub masked: String,
    pub index: String,
}

/// Seals, masks and indexes personal data for one role.
#[derive(Debug, Clone, Copy)]
pub struct Protector<'a> {
    pub vault: &'a KeyVault,
    pub index: &'a BlindIndexKey,
}

impl Protector<'_> {
    /// `field` for `column` of row `row`.
    pub async fn shown<F: PersonalField>(
        &self,
        column: &SealedColumn,
        row: &str,
        field: &F,
    ) -> Shown {
        Shown {
            sealed: self.vault.seal(column, row, field.clear().as_bytes()).await,
            masked: field.masked(),
        }
    }

    /// `field` for `column` of row `row`, with its blind index.
    pub async fn indexed<F: IndexedField>(
        &self,
        column: &SealedColumn,
        row: &str,
        field: &F,
    ) -> Indexed {
        Indexed {
            sealed: self.vault.seal(column, row, field.clear().as_bytes()).await,
            masked: field.masked(),
            index: self.index_of(field),
        }
    }

    /// The blind index `field` is found by.
    pub fn index_of<F: IndexedField>(&self, field: &F) -> String {
        self.index.index(F::PURPOSE, field.clear())
    }
}
