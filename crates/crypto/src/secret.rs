//! A wrapper for secrets (keys, OTPs, passwords, PANs): its `Debug` prints a
//! mask, it has no `Display` or `Serialize`, and its memory is zeroed on drop.
//! Reading it takes an explicit [`Secret::expose`], which is easy to grep for.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Every call site is a place a secret is used.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> ZeroizeOnDrop for Secret<T> {}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new(String::from("4111111111111111"));
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "4111111111111111");
    }
}
