//! The identity authority: compares a first-card applicant's ID card photos
//! and video-check frames with the citizen record, and answers with a match
//! score and a reference number the issuer keeps.
//!
//! The sandbox authority is deterministic, so demos and tests can choose the
//! outcome (documented in the README):
//! - the same inputs always give the same score and reference number;
//! - normally the score is between 85 and 99 (a match);
//! - if any photo or frame contains the bytes `SANDBOX-MISMATCH`, the score is
//!   between 10 and 39 (not the same person);
//! - an ID number that is not 18 characters (17 digits and a digit or `X`)
//!   is `unknown_citizen`.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::AdapterError;

/// Marker that makes the sandbox authority answer with a low score.
pub const SANDBOX_MISMATCH_MARKER: &[u8] = b"SANDBOX-MISMATCH";

/// What the issuer submits.
#[derive(Clone)]
pub struct IdentityCheck {
    pub name: String,
    pub id_number: String,
    pub photo_front: Vec<u8>,
    pub photo_back: Vec<u8>,
    pub video_frames: Vec<Vec<u8>>,
}

impl std::fmt::Debug for IdentityCheck {
    /// Never prints the name or ID number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCheck")
            .field("frames", &self.video_frames.len())
            .finish_non_exhaustive()
    }
}

/// The authority's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityVerdict {
    Scored {
        /// 0–100: how likely the photos show the citizen on record.
        score: u8,
        /// The authority's reference for this check, to quote in disputes.
        reference: String,
    },
    UnknownCitizen,
}

#[async_trait]
pub trait IdentityAuthority: Send + Sync + std::fmt::Debug {
    async fn check(&self, request: &IdentityCheck) -> Result<IdentityVerdict, AdapterError>;
}

#[derive(Debug, Clone, Default)]
pub struct SandboxIdentityAuthority;

fn plausible_id_number(id: &str) -> bool {
    id.len() == 18
        && id[..17].bytes().all(|b| b.is_ascii_digit())
        && id[17..].bytes().all(|b| b.is_ascii_digit() || b == b'X')
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[async_trait]
impl IdentityAuthority for SandboxIdentityAuthority {
    async fn check(&self, request: &IdentityCheck) -> Result<IdentityVerdict, AdapterError> {
        if !plausible_id_number(&request.id_number) {
            return Ok(IdentityVerdict::UnknownCitizen);
        }
        let mut hasher = Sha256::new();
        for part in [
            request.name.as_bytes(),
            request.id_number.as_bytes(),
            &request.photo_front,
            &request.photo_back,
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        for frame in &request.video_frames {
            hasher.update((frame.len() as u64).to_be_bytes());
            hasher.update(frame);
        }
        let digest = hasher.finalize();
        let mismatch = std::iter::once(&request.photo_front)
            .chain(std::iter::once(&request.photo_back))
            .chain(request.video_frames.iter())
            .any(|bytes| contains(bytes, SANDBOX_MISMATCH_MARKER));
        let score = if mismatch {
            10 + digest[0] % 30
        } else {
            85 + digest[0] % 15
        };
        Ok(IdentityVerdict::Scored {
            score,
            reference: format!("IDA{}", hex::encode_upper(&digest[1..7])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(front: &[u8]) -> IdentityCheck {
        IdentityCheck {
            name: "张三".into(),
            id_number: "11010519491231002X".into(),
            photo_front: front.to_vec(),
            photo_back: b"back".to_vec(),
            video_frames: vec![b"frame-1".to_vec(), b"frame-2".to_vec()],
        }
    }

    #[tokio::test]
    async fn scores_are_deterministic_and_high_for_a_match() {
        let a = SandboxIdentityAuthority
            .check(&check(b"front"))
            .await
            .unwrap();
        let b = SandboxIdentityAuthority
            .check(&check(b"front"))
            .await
            .unwrap();
        assert_eq!(a, b);
        let IdentityVerdict::Scored { score, reference } = a else {
            panic!("scored")
        };
        assert!((85..=99).contains(&score));
        assert!(reference.starts_with("IDA") && reference.len() == 15);
    }

    #[tokio::test]
    async fn the_mismatch_marker_gives_a_low_score() {
        let v = SandboxIdentityAuthority
            .check(&check(b"xxSANDBOX-MISMATCHxx"))
            .await
            .unwrap();
        let IdentityVerdict::Scored { score, .. } = v else {
            panic!("scored")
        };
        assert!((10..=39).contains(&score));
    }

    #[tokio::test]
    async fn an_implausible_id_number_is_unknown() {
        let mut c = check(b"front");
        c.id_number = "12345".into();
        assert_eq!(
            SandboxIdentityAuthority.check(&c).await.unwrap(),
            IdentityVerdict::UnknownCitizen
        );
        assert!(!format!("{c:?}").contains("12345"));
    }
}
