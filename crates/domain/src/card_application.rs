//! A **virtual card application** (flow F5, seed 004, claims 1, 2, 5, 6),
//! as the wallet (验证服务器, the verification server) runs it. The user
//! enters the account's payment password; the wallet checks the **card
//! application** (申请卡的信息: name and ID number, against the account's
//! verified identity) and forwards it to the issuer, which tells an
//! **existing cardholder** (非第一卡用户) from a **first-card applicant**
//! (第一卡用户):
//!
//! ```text
//! forwarded ──existing cardholder──▶ otp_sent ──OTP verified──▶ resubmitted ──────────────────────┐
//!     └──────first-card applicant──▶ photos_requested ──ID photos──▶ video_requested              │
//!                                        ──video frames (scored by the identity authority)──▶ identity_checked
//!                                                                                                 ▼
//!                           issued (card code, token, agreement number) ──the token in the secure element──▶ provisioned
//! any step before issued ──the issuer refuses (pre-verification, score, limits)──▶ rejected(reason)
//! any step before issued, past its expiry ──▶ expired
//! ```
//!
//! Every call to the issuer is recorded before it is made (`forwarded`,
//! `resubmitted`, `identity_checked` wait for its answer), so a crash or a
//! lost answer is resumed with the same application id, which the issuer
//! is idempotent on. The **instruction policies** (指令策略) the app
//! receives for the ID card photos and the **video face check** (视频面签)
//! are here too, with the checks of what comes back.

use crate::error::{DomainError, ErrorCode};
use crate::Timestamp;

/// An application lives 30 minutes from its start: long enough to find the
/// ID card and record the video, short enough that an abandoned one ends.
pub const APPLICATION_TTL_SECS: i64 = 30 * 60;
/// Largest ID card photo, in bytes (a phone's camera, compressed).
pub const PHOTO_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Smallest plausible photo: a header and a few pixels are not a photo.
pub const PHOTO_MIN_BYTES: usize = 64;
/// Video frames the app returns for the face check, at least and at most.
pub const VIDEO_FRAMES_MIN: usize = 3;
pub const VIDEO_FRAMES_MAX: usize = 12;
/// Largest video frame, in bytes.
pub const VIDEO_FRAME_MAX_BYTES: usize = 512 * 1024;
/// How many of its own pending applications an account may have: one (a
/// second at once is refused, so one card comes of it).
pub const MAX_PENDING_PER_ACCOUNT: i64 = 1;

/// What the issuer decided the applicant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ApplicantKind {
    /// Has a card with the issuer: the reserved phone proves them (OTP).
    ExistingCardholder,
    /// Has none: ID card photos and a video face check, scored by the
    /// identity authority.
    FirstCard,
}

impl ApplicantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicantKind::ExistingCardholder => "existing_cardholder",
            ApplicantKind::FirstCard => "first_card",
        }
    }
}

/// Where an application is. A rejected one carries why (a stable error
/// code). [`ApplicationStage`] is its name alone (what is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumDiscriminants)]
#[strum_discriminants(name(ApplicationStage), derive(Hash, strum::EnumIter))]
pub enum ApplicationState {
    Forwarded,
    OtpSent,
    Resubmitted,
    PhotosRequested,
    VideoRequested,
    IdentityChecked,
    Issued,
    Provisioned,
    Rejected { reason: ErrorCode },
    Expired,
}

impl ApplicationStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::OtpSent => "otp_sent",
            Self::Resubmitted => "resubmitted",
            Self::PhotosRequested => "photos_requested",
            Self::VideoRequested => "video_requested",
            Self::IdentityChecked => "identity_checked",
            Self::Issued => "issued",
            Self::Provisioned => "provisioned",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

crate::wire_names!(ApplicantKind, ApplicationStage);

impl ApplicationState {
    pub fn stage(self) -> ApplicationStage {
        ApplicationStage::from(self)
    }

    /// Whether the application still waits for a step (it counts against
    /// the account's one pending application).
    pub fn is_pending(self) -> bool {
        !matches!(
            self,
            Self::Issued | Self::Provisioned | Self::Rejected { .. } | Self::Expired
        )
    }

    pub fn rejection(self) -> Option<ErrorCode> {
        match self {
            Self::Rejected { reason } => Some(reason),
            _ => None,
        }
    }

    pub fn from_parts(stage: ApplicationStage, reason: Option<ErrorCode>) -> Option<Self> {
        use ApplicationStage as S;
        Some(match stage {
            S::Forwarded => Self::Forwarded,
            S::OtpSent => Self::OtpSent,
            S::Resubmitted => Self::Resubmitted,
            S::PhotosRequested => Self::PhotosRequested,
            S::VideoRequested => Self::VideoRequested,
            S::IdentityChecked => Self::IdentityChecked,
            S::Issued => Self::Issued,
            S::Provisioned => Self::Provisioned,
            S::Rejected => Self::Rejected { reason: reason? },
            S::Expired => Self::Expired,
        })
    }
}

/// An application's state and its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplicationStatus {
    pub state: ApplicationState,
    pub expires_at: Timestamp,
}

fn out_of_step(state: ApplicationState, what: &str) -> DomainError {
    DomainError::new(
        ErrorCode::ApplicationStep,
        format!(
            "this application is {}: it cannot {what} now",
            state.stage().as_str()
        ),
    )
}

impl ApplicationStatus {
    /// The payment password was right and the application checked: it is
    /// forwarded to the issuer (recorded before the call).
    pub fn forwarded(now: Timestamp) -> Self {
        Self {
            state: ApplicationState::Forwarded,
            expires_at: now + time::Duration::seconds(APPLICATION_TTL_SECS),
        }
    }

    /// The state as of `now`: a pending step past the deadline is expired.
    pub fn at(self, now: Timestamp) -> ApplicationState {
        if self.state.is_pending() && now >= self.expires_at {
            ApplicationState::Expired
        } else {
            self.state
        }
    }

    fn expect(
        self,
        expected: ApplicationState,
        now: Timestamp,
        what: &str,
    ) -> Result<(), DomainError> {
        match self.at(now) {
            s if s == expected => Ok(()),
            ApplicationState::Expired => Err(DomainError::new(
                ErrorCode::ApplicationExpired,
                "this application expired; start a new one",
            )),
            s => Err(out_of_step(s, what)),
        }
    }

    fn to(self, state: ApplicationState) -> Self {
        Self { state, ..self }
    }

    /// The issuer's first answer: the applicant's kind decides the path.
    pub fn answered(self, kind: ApplicantKind, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(ApplicationState::Forwarded, now, "be answered")?;
        Ok(self.to(match kind {
            ApplicantKind::ExistingCardholder => ApplicationState::OtpSent,
            ApplicantKind::FirstCard => ApplicationState::PhotosRequested,
        }))
    }

    /// Existing cardholder: the OTP to the reserved phone was verified; the
    /// application goes to the issuer again with the proof.
    pub fn otp_verified(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(ApplicationState::OtpSent, now, "take an OTP")?;
        Ok(self.to(ApplicationState::Resubmitted))
    }

    /// First-card applicant: the ID card photos came (checked).
    pub fn photos_received(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(
            ApplicationState::PhotosRequested,
            now,
            "take ID card photos",
        )?;
        Ok(self.to(ApplicationState::VideoRequested))
    }

    /// First-card applicant: the video frames came and the identity
    /// authority scored them; the reference number goes to the issuer.
    pub fn identity_checked(self, now: Timestamp) -> Result<Self, DomainError> {
        self.expect(ApplicationState::VideoRequested, now, "take video frames")?;
        Ok(self.to(ApplicationState::IdentityChecked))
    }

    /// The issuer pre-verified and issued the card: card code, token and
    /// agreement number. Only from a step that waits for the issuer.
    pub fn issued(self, now: Timestamp) -> Result<Self, DomainError> {
        match self.at(now) {
            ApplicationState::Resubmitted | ApplicationState::IdentityChecked => {
                Ok(self.to(ApplicationState::Issued))
            }
            ApplicationState::Expired => Err(DomainError::new(
                ErrorCode::ApplicationExpired,
                "this application expired; start a new one",
            )),
            s => Err(out_of_step(s, "be issued")),
        }
    }

    /// The token is in the phone's secure element.
    pub fn provisioned(self) -> Result<Self, DomainError> {
        match self.state {
            ApplicationState::Issued => Ok(self.to(ApplicationState::Provisioned)),
            s => Err(out_of_step(s, "be provisioned")),
        }
    }

    /// The issuer (or a failed check on the way) refused it for good.
    pub fn rejected(self, reason: ErrorCode, now: Timestamp) -> Result<Self, DomainError> {
        match self.at(now) {
            s if s.is_pending() => Ok(self.to(ApplicationState::Rejected { reason })),
            ApplicationState::Expired => Err(DomainError::new(
                ErrorCode::ApplicationExpired,
                "this application expired; start a new one",
            )),
            s => Err(out_of_step(s, "be rejected")),
        }
    }

    /// Past its deadline before it was issued.
    pub fn expire(self, now: Timestamp) -> Result<Self, DomainError> {
        match self.at(now) {
            ApplicationState::Expired => Ok(self.to(ApplicationState::Expired)),
            s => Err(out_of_step(s, "expire")),
        }
    }
}

/// What the app must upload next: the ID card's two sides, as JPEG or PNG
/// of at most [`PHOTO_MAX_BYTES`] each (the photos instruction policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoPolicy {
    pub max_bytes: usize,
}

impl Default for PhotoPolicy {
    fn default() -> Self {
        Self {
            max_bytes: PHOTO_MAX_BYTES,
        }
    }
}

/// An action the video face check prompts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum VideoAction {
    Blink,
    TurnLeft,
    TurnRight,
    /// Read aloud the four digits the policy shows.
    ReadDigits,
}

impl VideoAction {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoAction::Blink => "blink",
            VideoAction::TurnLeft => "turn_left",
            VideoAction::TurnRight => "turn_right",
            VideoAction::ReadDigits => "read_digits",
        }
    }
}

crate::wire_names!(VideoAction);

/// The video face check's instruction policy: the actions to perform, in
/// order, the digits to read, and how many frames come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPolicy {
    pub actions: Vec<VideoAction>,
    /// Four digits shown on screen, read aloud (a replayed video says others).
    pub digits: String,
    pub frames_min: usize,
    pub frames_max: usize,
    pub frame_max_bytes: usize,
}

impl VideoPolicy {
    /// A policy from random words: a blink, a turn to a random side, the
    /// digits read; the digits drawn from the words.
    pub fn from_random(words: [u8; 5]) -> Self {
        let turn = if words[0].is_multiple_of(2) {
            VideoAction::TurnLeft
        } else {
            VideoAction::TurnRight
        };
        Self {
            actions: vec![VideoAction::Blink, turn, VideoAction::ReadDigits],
            digits: words[1..]
                .iter()
                .map(|w| char::from(b'0' + w % 10))
                .collect(),
            frames_min: VIDEO_FRAMES_MIN,
            frames_max: VIDEO_FRAMES_MAX,
            frame_max_bytes: VIDEO_FRAME_MAX_BYTES,
        }
    }
}

/// An image type, told by its content (its magic bytes), never by a name
/// or a declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ImageKind {
    Jpeg,
    Png,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpeg",
            ImageKind::Png => "png",
        }
    }

    /// The kind `bytes` are, if JPEG (`FF D8 FF`) or PNG (its 8-byte signature).
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        const PNG: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(&PNG) {
            Some(ImageKind::Png)
        } else {
            None
        }
    }
}

crate::wire_names!(ImageKind);

fn image(bytes: &[u8], max: usize, what: &str) -> Result<ImageKind, DomainError> {
    if bytes.len() > max {
        return Err(DomainError::new(
            ErrorCode::ImageTooLarge,
            format!("{what}: at most {max} bytes"),
        ));
    }
    let kind = ImageKind::sniff(bytes).ok_or_else(|| {
        DomainError::new(
            ErrorCode::ImageInvalid,
            format!("{what}: a JPEG or PNG image (told by its content)"),
        )
    })?;
    if bytes.len() < PHOTO_MIN_BYTES {
        return Err(DomainError::new(
            ErrorCode::ImageInvalid,
            format!("{what}: too small to be a photo"),
        ));
    }
    Ok(kind)
}

/// Checks the ID card photos against the policy.
pub fn check_photos(policy: &PhotoPolicy, front: &[u8], back: &[u8]) -> Result<(), DomainError> {
    image(front, policy.max_bytes, "photo_front")?;
    image(back, policy.max_bytes, "photo_back")?;
    Ok(())
}

/// Checks the video frames against the policy: their count, size and type.
pub fn check_frames(policy: &VideoPolicy, frames: &[Vec<u8>]) -> Result<(), DomainError> {
    if frames.len() < policy.frames_min || frames.len() > policy.frames_max {
        return Err(DomainError::new(
            ErrorCode::VideoFramesInvalid,
            format!(
                "frames: from {} to {} video frames",
                policy.frames_min, policy.frames_max
            ),
        ));
    }
    for (i, f) in frames.iter().enumerate() {
        image(f, policy.frame_max_bytes, &format!("frames[{i}]"))?;
    }
    // A camera's frames never repeat byte for byte: repeats are a still
    // image sent as a video.
    let distinct: std::collections::HashSet<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    if distinct.len() != frames.len() {
        return Err(DomainError::new(
            ErrorCode::VideoFramesInvalid,
            "frames: a frame repeats (a still image is no video)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-12-07 10:00 UTC);

    fn jpeg(len: usize) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
        b.resize(len, 7);
        b
    }

    #[test]
    fn an_existing_cardholder_proves_the_reserved_phone_then_is_issued() {
        let s = ApplicationStatus::forwarded(T0);
        let s = s.answered(ApplicantKind::ExistingCardholder, T0).unwrap();
        assert_eq!(s.state, ApplicationState::OtpSent);
        assert_eq!(
            s.photos_received(T0).unwrap_err().code,
            ErrorCode::ApplicationStep
        );
        assert_eq!(
            s.issued(T0).unwrap_err().code,
            ErrorCode::ApplicationStep,
            "no issue before the OTP"
        );
        let s = s.otp_verified(T0).unwrap();
        let s = s.issued(T0).unwrap();
        assert!(!s.state.is_pending());
        assert_eq!(
            s.provisioned().unwrap().state,
            ApplicationState::Provisioned
        );
    }

    #[test]
    fn a_first_card_applicant_sends_photos_and_frames_then_is_issued() {
        let s = ApplicationStatus::forwarded(T0)
            .answered(ApplicantKind::FirstCard, T0)
            .unwrap();
        assert_eq!(s.state, ApplicationState::PhotosRequested);
        assert_eq!(
            s.otp_verified(T0).unwrap_err().code,
            ErrorCode::ApplicationStep
        );
        assert_eq!(
            s.identity_checked(T0).unwrap_err().code,
            ErrorCode::ApplicationStep
        );
        let s = s.photos_received(T0).unwrap().identity_checked(T0).unwrap();
        assert_eq!(s.state, ApplicationState::IdentityChecked);
        assert_eq!(s.issued(T0).unwrap().state, ApplicationState::Issued);
    }

    #[test]
    fn refusals_are_final_and_late_steps_expired() {
        let s = ApplicationStatus::forwarded(T0);
        let r = s.rejected(ErrorCode::ScoreTooLow, T0).unwrap();
        assert_eq!(r.state.rejection(), Some(ErrorCode::ScoreTooLow));
        assert!(r.rejected(ErrorCode::ScoreTooLow, T0).is_err());
        assert!(r.answered(ApplicantKind::FirstCard, T0).is_err());
        let late = T0 + time::Duration::seconds(APPLICATION_TTL_SECS);
        assert_eq!(s.at(late), ApplicationState::Expired);
        assert_eq!(
            s.answered(ApplicantKind::FirstCard, late).unwrap_err().code,
            ErrorCode::ApplicationExpired
        );
        assert_eq!(s.expire(late).unwrap().state, ApplicationState::Expired);
        assert!(s.expire(T0).is_err());
        // Issued is never expired.
        let issued = s
            .answered(ApplicantKind::ExistingCardholder, T0)
            .unwrap()
            .otp_verified(T0)
            .unwrap()
            .issued(T0)
            .unwrap();
        assert_eq!(issued.at(late), ApplicationState::Issued);
        for stage in <ApplicationStage as strum::IntoEnumIterator>::iter() {
            let reason =
                (stage == ApplicationStage::Rejected).then_some(ErrorCode::CardLimitReached);
            assert_eq!(
                ApplicationState::from_parts(stage, reason).unwrap().stage(),
                stage
            );
        }
    }

    #[test]
    fn photos_and_frames_are_images_by_content_within_their_limits() {
        let p = PhotoPolicy::default();
        assert!(check_photos(&p, &jpeg(1000), &jpeg(1000)).is_ok());
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        png.resize(200, 0);
        assert_eq!(ImageKind::sniff(&png), Some(ImageKind::Png));
        assert!(check_photos(&p, &png, &jpeg(100)).is_ok());
        let text = b"this is a PDF pretending to be a JPEG, or worse".repeat(3);
        assert_eq!(
            check_photos(&p, &text, &jpeg(100)).unwrap_err().code,
            ErrorCode::ImageInvalid
        );
        assert_eq!(
            check_photos(&p, &jpeg(10), &jpeg(100)).unwrap_err().code,
            ErrorCode::ImageInvalid
        );
        assert_eq!(
            check_photos(&p, &jpeg(100), &jpeg(PHOTO_MAX_BYTES + 1))
                .unwrap_err()
                .code,
            ErrorCode::ImageTooLarge
        );
        let v = VideoPolicy::from_random([1, 2, 3, 4, 15]);
        assert_eq!(v.digits, "2345");
        assert_eq!(v.actions[1], VideoAction::TurnRight);
        let frames: Vec<Vec<u8>> = (0..VIDEO_FRAMES_MIN).map(|i| jpeg(500 + i)).collect();
        assert!(check_frames(&v, &frames).is_ok());
        assert_eq!(
            check_frames(&v, &vec![jpeg(500); VIDEO_FRAMES_MIN])
                .unwrap_err()
                .code,
            ErrorCode::VideoFramesInvalid,
            "a still image is no video"
        );
        assert_eq!(
            check_frames(&v, &frames[..2]).unwrap_err().code,
            ErrorCode::VideoFramesInvalid
        );
        assert_eq!(
            check_frames(&v, &vec![jpeg(500); VIDEO_FRAMES_MAX + 1])
                .unwrap_err()
                .code,
            ErrorCode::VideoFramesInvalid
        );
        let mut bad = frames.clone();
        bad[1] = text.clone();
        assert_eq!(
            check_frames(&v, &bad).unwrap_err().code,
            ErrorCode::ImageInvalid
        );
    }
}
