//! The identity authority (公安部系统) of flow F5: the **wallet** submits a
//! first-card applicant's card application, ID card photos and video
//! face-check frames; the authority compares them with its citizen record
//! and answers with a **match score** (匹配度评分) and a **reference
//! number** (备查身份号码). The wallet passes only the reference number to
//! the issuer, which **looks the score up** (反查) at the authority itself:
//! the authority answers a look-up only for the application and ID number
//! the reference was made for, so a reference cannot be reused for another
//! application or person, and the wallet cannot vouch for a score it made
//! up.
//!
//! The sandbox authority keeps a small citizen registry (the sandbox bank's
//! demo customers, three first-card applicants and one the sandbox bank blocks, [`SANDBOX_CITIZENS`])
//! and scores deterministically from what is submitted (documented in the
//! README):
//! - an ID number not in the registry is `unknown_citizen`;
//! - a name other than the registry's for that ID number scores 0–19;
//! - any photo or frame containing the bytes `SANDBOX-MISMATCH` scores
//!   10–39 (not the same person);
//! - otherwise 85–99; the same submission always gets the same score.
//!
//! Its checks are kept in memory (at most [`SANDBOX_CHECKS_KEPT`], each for
//! [`SANDBOX_CHECK_TTL_SECS`]): a sandbox authority is one per process,
//! shared by the wallet and the issuer roles it hosts.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use paybridge_domain::{Clock, Timestamp};
use sha2::{Digest, Sha256};

use crate::AdapterError;

/// Marker that makes the sandbox authority answer with a low score (part
/// of the sandbox's public contract, so it lives with the API's types).
pub use paybridge_api::sandbox::SANDBOX_MISMATCH_MARKER;
/// Checks the sandbox authority remembers for look-ups, at most.
pub const SANDBOX_CHECKS_KEPT: usize = 100_000;
/// How long the sandbox authority answers look-ups of a check.
pub const SANDBOX_CHECK_TTL_SECS: i64 = 24 * 3600;

/// The sandbox citizen registry: (name, ID number). The first three are the
/// sandbox bank's demo customers; the others have no card anywhere (the
/// first-card applicants of the demos and tests).
pub const SANDBOX_CITIZENS: &[(&str, &str)] = &[
    ("张三", "110105199003071239"),
    ("李四", "310104198511204567"),
    ("Wang Fang", "440305199208157893"),
    ("赵敏", "110108200001010015"),
    ("周杰", "320102199506150027"),
    ("吴芳", "440106198811200033"),
    // Blocked at the sandbox bank.
    ("钱伟", "110101197912310044"),
];

/// What the wallet submits for one application.
#[derive(Clone)]
pub struct IdentitySubmission {
    /// The application the check is for: a look-up must name it.
    pub application: String,
    pub name: String,
    pub id_number: String,
    pub photo_front: Vec<u8>,
    pub photo_back: Vec<u8>,
    pub video_frames: Vec<Vec<u8>>,
}

impl std::fmt::Debug for IdentitySubmission {
    /// Never prints the name, the ID number or the images.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySubmission")
            .field("application", &self.application)
            .field("frames", &self.video_frames.len())
            .finish_non_exhaustive()
    }
}

/// The authority's answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityVerdict {
    Scored {
        /// 0–100: how likely the photos and frames show the citizen on record.
        score: u8,
        /// The authority's reference for this check: what the issuer looks up.
        reference: String,
    },
    UnknownCitizen,
}

#[async_trait]
pub trait IdentityAuthority: Send + Sync + std::fmt::Debug {
    /// The wallet submits an application's photos and frames.
    async fn check(&self, submission: &IdentitySubmission)
        -> Result<IdentityVerdict, AdapterError>;
    /// The issuer looks a score up by its reference, for the application
    /// and ID number it expects: `None` unless the reference exists, is
    /// live, and was made for exactly those.
    async fn look_up(
        &self,
        reference: &str,
        application: &str,
        id_number: &str,
    ) -> Result<Option<u8>, AdapterError>;
}

/// A check the sandbox authority answers look-ups of.
#[derive(Debug, Clone)]
struct Check {
    application: String,
    /// SHA-256 of the ID number (the registry's key, not kept in clear here).
    id_number_digest: [u8; 32],
    score: u8,
    made_at: Timestamp,
}

#[derive(Debug)]
pub struct SandboxIdentityAuthority {
    clock: std::sync::Arc<dyn Clock>,
    checks: Mutex<(HashMap<String, Check>, VecDeque<String>)>,
}

fn id_digest(id_number: &str) -> [u8; 32] {
    Sha256::digest(format!("sandbox-citizen:{id_number}").as_bytes()).into()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl SandboxIdentityAuthority {
    pub fn new(clock: std::sync::Arc<dyn Clock>) -> Self {
        Self {
            clock,
            checks: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn remember(&self, reference: &str, check: Check) {
        let mut guard = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        let (by_reference, order) = &mut *guard;
        if by_reference.insert(reference.to_owned(), check).is_none() {
            order.push_back(reference.to_owned());
        }
        while order.len() > SANDBOX_CHECKS_KEPT {
            if let Some(oldest) = order.pop_front() {
                by_reference.remove(&oldest);
            }
        }
    }
}

#[async_trait]
impl IdentityAuthority for SandboxIdentityAuthority {
    async fn check(&self, s: &IdentitySubmission) -> Result<IdentityVerdict, AdapterError> {
        let Some((name, _)) = SANDBOX_CITIZENS.iter().find(|(_, id)| *id == s.id_number) else {
            return Ok(IdentityVerdict::UnknownCitizen);
        };
        let mut hasher = Sha256::new();
        for part in [
            s.application.as_bytes(),
            s.name.as_bytes(),
            s.id_number.as_bytes(),
            &s.photo_front,
            &s.photo_back,
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        for frame in &s.video_frames {
            hasher.update((frame.len() as u64).to_be_bytes());
            hasher.update(frame);
        }
        let digest = hasher.finalize();
        let mismatch = std::iter::once(&s.photo_front)
            .chain(std::iter::once(&s.photo_back))
            .chain(s.video_frames.iter())
            .any(|bytes| contains(bytes, SANDBOX_MISMATCH_MARKER));
        let score = if *name != s.name {
            digest[0] % 20
        } else if mismatch {
            10 + digest[0] % 30
        } else {
            85 + digest[0] % 15
        };
        let reference = format!("IDA{}", hex::encode_upper(&digest[1..9]));
        self.remember(
            &reference,
            Check {
                application: s.application.clone(),
                id_number_digest: id_digest(&s.id_number),
                score,
                made_at: self.clock.now(),
            },
        );
        Ok(IdentityVerdict::Scored { score, reference })
    }

    async fn look_up(
        &self,
        reference: &str,
        application: &str,
        id_number: &str,
    ) -> Result<Option<u8>, AdapterError> {
        let guard = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        let live_since = self.clock.now() - time::Duration::seconds(SANDBOX_CHECK_TTL_SECS);
        Ok(guard
            .0
            .get(reference)
            .filter(|c| {
                c.application == application
                    && c.id_number_digest == id_digest(id_number)
                    && c.made_at >= live_since
            })
            .map(|c| c.score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paybridge_domain::ManualClock;
    use std::sync::Arc;

    fn submission(front: &[u8]) -> IdentitySubmission {
        IdentitySubmission {
            application: "app_1".into(),
            name: "赵敏".into(),
            id_number: "110108200001010015".into(),
            photo_front: front.to_vec(),
            photo_back: b"back".to_vec(),
            video_frames: vec![b"frame-1".to_vec(), b"frame-2".to_vec()],
        }
    }

    fn authority() -> (SandboxIdentityAuthority, ManualClock) {
        let clock = ManualClock::new(time::macros::datetime!(2026-12-07 10:00 UTC));
        (
            SandboxIdentityAuthority::new(Arc::new(clock.clone())),
            clock,
        )
    }

    #[tokio::test]
    async fn scores_are_deterministic_high_for_a_match_and_looked_up_by_their_application() {
        let (a, clock) = authority();
        let first = a.check(&submission(b"front")).await.unwrap();
        assert_eq!(a.check(&submission(b"front")).await.unwrap(), first);
        let IdentityVerdict::Scored { score, reference } = first else {
            panic!("scored")
        };
        assert!((85..=99).contains(&score));
        assert!(reference.starts_with("IDA") && reference.len() == 19);
        let id = "110108200001010015";
        assert_eq!(
            a.look_up(&reference, "app_1", id).await.unwrap(),
            Some(score)
        );
        // Another application, another person, another reference: nothing.
        assert_eq!(a.look_up(&reference, "app_2", id).await.unwrap(), None);
        assert_eq!(
            a.look_up(&reference, "app_1", "320102199506150027")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            a.look_up("IDA0000000000000000", "app_1", id).await.unwrap(),
            None
        );
        // Looked up too late: gone.
        clock.advance(time::Duration::seconds(SANDBOX_CHECK_TTL_SECS + 1));
        assert_eq!(a.look_up(&reference, "app_1", id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_mismatch_a_wrong_name_and_an_unknown_citizen_are_told() {
        let (a, _) = authority();
        let IdentityVerdict::Scored { score, .. } =
            a.check(&submission(b"xxSANDBOX-MISMATCHxx")).await.unwrap()
        else {
            panic!("scored")
        };
        assert!((10..=39).contains(&score));
        let mut wrong_name = submission(b"front");
        wrong_name.name = "李四".into();
        let IdentityVerdict::Scored { score, .. } = a.check(&wrong_name).await.unwrap() else {
            panic!("scored")
        };
        assert!(score < 20);
        let mut unknown = submission(b"front");
        unknown.id_number = "11010519491231002X".into();
        assert_eq!(
            a.check(&unknown).await.unwrap(),
            IdentityVerdict::UnknownCitizen
        );
        assert!(!format!("{unknown:?}").contains("11010519491231002X"));
    }
}
