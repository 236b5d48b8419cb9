//! The issuer's side of a virtual card application (flow F5, seed 004,
//! claims 1, 2, 5, 6): the **card products** a bank offers, the issuer's
//! review of an application, and the **pre-verification** (前置验证) it
//! runs before it creates a card.
//!
//! ```text
//! received ──existing cardholder──▶ awaiting_otp_proof ──the wallet's OTP proof──┐
//!     └─────first-card applicant──▶ awaiting_identity ──reference number, looked up──┤
//!                                                                                   ▼
//!                                        pre-verification ──passes──▶ issued (card, card code, agreement, token)
//!                                                         └──fails───▶ rejected(reason)
//! ```
//!
//! The wallet's side is `card_application`; the issuer keys its review on
//! the wallet's application id, so every call on it is idempotent.

use crate::card::{BinRange, CardType};
use crate::error::{DomainError, ErrorCode};

/// What a bank issues as a virtual card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardProduct {
    /// Stable id the wallet quotes (`virtual_credit`).
    pub id: String,
    pub name: String,
    pub card_type: CardType,
    /// Where the product's PANs come from.
    pub bins: BinRange,
    /// A credit product's limit (its account's overdraft), minor units.
    pub credit_limit_minor: i64,
    /// Cards of this product one person may hold.
    pub max_per_person: u32,
    /// The identity authority's score a first-card applicant must reach.
    pub min_score: u8,
    /// Years from issue to expiry.
    pub validity_years: u8,
}

/// Which path the issuer chose, from whether it knows the applicant.
pub use crate::card_application::ApplicantKind;

/// The issuer's review of one application. [`ReviewStage`] is its name
/// alone (what is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumDiscriminants)]
#[strum_discriminants(name(ReviewStage), derive(Hash, strum::EnumIter))]
pub enum ReviewState {
    /// An existing cardholder: the wallet sends an OTP to the reserved
    /// phone and resubmits with proof of it.
    AwaitingOtpProof,
    /// A first-card applicant: the wallet has the identity authority score
    /// photos and frames and passes the reference number.
    AwaitingIdentity,
    Issued,
    Rejected {
        reason: ErrorCode,
    },
}

impl ReviewStage {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStage::AwaitingOtpProof => "awaiting_otp_proof",
            ReviewStage::AwaitingIdentity => "awaiting_identity",
            ReviewStage::Issued => "issued",
            ReviewStage::Rejected => "rejected",
        }
    }
}

crate::wire_names!(ReviewStage);

/// What the wallet brings back to complete an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The wallet verified an OTP to the reserved phone for this application.
    OtpProof,
    /// The identity authority's reference number, for the issuer to look up.
    IdentityReference,
}

impl ReviewState {
    pub fn stage(self) -> ReviewStage {
        ReviewStage::from(self)
    }

    /// The state of a stored review.
    pub fn from_parts(stage: ReviewStage, reason: Option<ErrorCode>) -> Option<Self> {
        Some(match stage {
            ReviewStage::AwaitingOtpProof => ReviewState::AwaitingOtpProof,
            ReviewStage::AwaitingIdentity => ReviewState::AwaitingIdentity,
            ReviewStage::Issued => ReviewState::Issued,
            ReviewStage::Rejected => ReviewState::Rejected { reason: reason? },
        })
    }

    pub fn reason(self) -> Option<ErrorCode> {
        match self {
            ReviewState::Rejected { reason } => Some(reason),
            _ => None,
        }
    }

    /// A new application, on the path its applicant's kind decides.
    pub fn received(kind: ApplicantKind) -> Self {
        match kind {
            ApplicantKind::ExistingCardholder => ReviewState::AwaitingOtpProof,
            ApplicantKind::FirstCard => ReviewState::AwaitingIdentity,
        }
    }

    /// Whether `evidence` is what this review waits for: an OTP proof
    /// completes only an existing cardholder's application, a reference
    /// number only a first-card applicant's (no OTP on that path).
    pub fn accepts(self, evidence: Evidence) -> Result<(), DomainError> {
        match (self, evidence) {
            (ReviewState::AwaitingOtpProof, Evidence::OtpProof)
            | (ReviewState::AwaitingIdentity, Evidence::IdentityReference) => Ok(()),
            (ReviewState::AwaitingOtpProof | ReviewState::AwaitingIdentity, _) => {
                Err(DomainError::new(
                    ErrorCode::ApplicationStep,
                    format!(
                        "this application is {}: it takes the other evidence",
                        self.stage().as_str()
                    ),
                ))
            }
            _ => Err(DomainError::new(
                ErrorCode::ApplicationStep,
                format!("this application is {} already", self.stage().as_str()),
            )),
        }
    }

    /// The outcome of the pre-verification, from a state that waited for it.
    pub fn decided(self, outcome: Result<(), ErrorCode>) -> Result<Self, DomainError> {
        match self {
            ReviewState::AwaitingOtpProof | ReviewState::AwaitingIdentity => Ok(match outcome {
                Ok(()) => ReviewState::Issued,
                Err(reason) => ReviewState::Rejected { reason },
            }),
            s => Err(DomainError::new(
                ErrorCode::ApplicationStep,
                format!("this application is {} already", s.stage().as_str()),
            )),
        }
    }
}

/// What the pre-verification judges, gathered by the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreVerification {
    /// The application's name matches the bank's record of the ID number
    /// (an existing cardholder) or the identity authority's (a first card).
    pub identity_matches: bool,
    /// The bank does not issue to this identity.
    pub blocked: bool,
    /// Cards of the product the person holds already.
    pub cards_of_product: u32,
    /// The looked-up match score (first-card applicants only).
    pub score: Option<u8>,
}

/// The pre-verification (前置验证): identity, blocked identities, the
/// score, cards per person. The first failure is the reason.
pub fn pre_verify(product: &CardProduct, p: &PreVerification) -> Result<(), ErrorCode> {
    if !p.identity_matches {
        return Err(ErrorCode::IdentityMismatch);
    }
    if p.blocked {
        return Err(ErrorCode::IdentityBlocked);
    }
    if p.score.is_some_and(|s| s < product.min_score) {
        return Err(ErrorCode::ScoreTooLow);
    }
    if p.cards_of_product >= product.max_per_person {
        return Err(ErrorCode::CardLimitReached);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireName;
    use strum::IntoEnumIterator;

    fn product() -> CardProduct {
        CardProduct {
            id: "virtual_credit".into(),
            name: "Virtual Credit".into(),
            card_type: CardType::Credit,
            bins: BinRange {
                prefixes: vec!["625999".into()],
                lengths: vec![16],
            },
            credit_limit_minor: 500_000,
            max_per_person: 1,
            min_score: 80,
            validity_years: 5,
        }
    }

    fn fine() -> PreVerification {
        PreVerification {
            identity_matches: true,
            blocked: false,
            cards_of_product: 0,
            score: Some(90),
        }
    }

    #[test]
    fn each_path_takes_only_its_own_evidence() {
        let existing = ReviewState::received(ApplicantKind::ExistingCardholder);
        let first = ReviewState::received(ApplicantKind::FirstCard);
        assert!(existing.accepts(Evidence::OtpProof).is_ok());
        assert!(first.accepts(Evidence::IdentityReference).is_ok());
        for (s, e) in [
            (existing, Evidence::IdentityReference),
            (first, Evidence::OtpProof),
            (ReviewState::Issued, Evidence::OtpProof),
        ] {
            assert_eq!(s.accepts(e).unwrap_err().code, ErrorCode::ApplicationStep);
        }
    }

    #[test]
    fn a_review_is_decided_once() {
        let s = ReviewState::AwaitingIdentity;
        assert_eq!(s.decided(Ok(())).unwrap(), ReviewState::Issued);
        let rejected = s.decided(Err(ErrorCode::ScoreTooLow)).unwrap();
        assert_eq!(rejected.reason(), Some(ErrorCode::ScoreTooLow));
        assert!(ReviewState::Issued.decided(Ok(())).is_err());
        assert!(rejected.decided(Ok(())).is_err());
    }

    #[test]
    fn pre_verification_names_the_first_failure() {
        let p = product();
        assert_eq!(pre_verify(&p, &fine()), Ok(()));
        let cases = [
            (
                PreVerification {
                    identity_matches: false,
                    blocked: true,
                    ..fine()
                },
                ErrorCode::IdentityMismatch,
            ),
            (
                PreVerification {
                    blocked: true,
                    ..fine()
                },
                ErrorCode::IdentityBlocked,
            ),
            (
                PreVerification {
                    score: Some(79),
                    ..fine()
                },
                ErrorCode::ScoreTooLow,
            ),
            (
                PreVerification {
                    cards_of_product: 1,
                    ..fine()
                },
                ErrorCode::CardLimitReached,
            ),
        ];
        for (case, code) in cases {
            assert_eq!(pre_verify(&p, &case), Err(code));
        }
        // An existing cardholder has no score: only the other checks apply.
        let no_score = PreVerification {
            score: None,
            ..fine()
        };
        assert_eq!(pre_verify(&p, &no_score), Ok(()));
        assert_eq!(
            pre_verify(
                &p,
                &PreVerification {
                    score: Some(80),
                    ..fine()
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn stored_states_read_back() {
        for stage in ReviewStage::iter() {
            assert_eq!(ReviewStage::from_wire_name(stage.as_str()), Some(stage));
        }
        let r = ReviewState::Rejected {
            reason: ErrorCode::IdentityBlocked,
        };
        assert_eq!(ReviewState::from_parts(r.stage(), r.reason()), Some(r));
        assert_eq!(ReviewState::from_parts(ReviewStage::Rejected, None), None);
    }
}
