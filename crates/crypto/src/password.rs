//! Password hashing with Argon2id (login and payment passwords).
//!
//! Parameters follow OWASP's recommendation for Argon2id (19 MiB, 2 passes,
//! 1 lane). A six-digit payment password has only a million values, so its
//! hash alone would not resist an offline search; what protects it is that
//! the hashes never leave the server and online tries lock after five.
//!
//! [`PasswordHasher::verify_or_dummy`] spends the same time when there is no
//! account (or no password) to check against, so an answer's timing does not
//! tell whether an account exists.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// A stored hash no password verifies against (a login that has no
/// password yet): not a PHC string, so [`PasswordHasher::verify_or_dummy`]
/// spends the same time as for a real one and refuses.
pub const UNUSABLE_HASH: &str = "!";

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self {
            params: Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
                .expect("valid Argon2 parameters"),
        }
    }
}

impl PasswordHasher {
    fn argon2(&self) -> Argon2<'_> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The PHC string (`$argon2id$v=19$m=…`), salt included.
    pub fn hash(&self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .expect("Argon2id hashing with valid parameters cannot fail")
            .to_string()
    }

    /// Whether `password` matches `stored`. With `None` (no such account, no
    /// password set) a dummy hash is checked, so the time is the same, and
    /// the answer is `false`.
    pub fn verify_or_dummy(&self, stored: Option<&str>, password: &str) -> bool {
        match stored.and_then(|s| PasswordHash::new(s).ok()) {
            Some(hash) => {
                // Verify with the parameters recorded in the hash itself.
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            }
            None => {
                let dummy = self.dummy();
                let hash = PasswordHash::new(dummy).expect("dummy hash parses");
                let _ = Argon2::default().verify_password(password.as_bytes(), &hash);
                false
            }
        }
    }

    fn dummy(&self) -> &'static str {
        static DUMMY: OnceLock<String> = OnceLock::new();
        DUMMY.get_or_init(|| self.hash("paybridge-dummy-password"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = PasswordHasher::default();
        let a = h.hash("482916");
        let b = h.hash("482916");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(a, b, "salted");
        assert!(h.verify_or_dummy(Some(&a), "482916"));
        assert!(!h.verify_or_dummy(Some(&a), "482917"));
        assert!(!h.verify_or_dummy(None, "482916"));
        assert!(!h.verify_or_dummy(Some("garbage"), "482916"));
    }
}
