//! Secret-bearing types. None of them implements `Display`, and their `Debug` is redacted.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

pub use secrecy;

/// What every secret string here offers: the secret for a short borrow, whether it is
/// empty, and a `Debug` that prints only the type's name.
macro_rules! secret_string {
    ($name:ident, $what:literal, $use:literal) => {
        impl $name {
            #[doc = concat!("The ", $what, " itself, ", $use, ". Keep the borrow short.")]
            #[must_use]
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }

            #[doc = concat!("Whether the ", $what, " is empty.")]
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.0.expose_secret().is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }
    };
}

/// A passphrase protecting a private key.
///
/// The bytes are zeroized on drop; `Debug` prints `Passphrase([REDACTED])`.
///
/// ```
/// use keyvault_core::Passphrase;
/// let p = Passphrase::new("correct horse battery staple".to_owned());
/// assert_eq!(format!("{p:?}"), "Passphrase([REDACTED])");
/// ```
#[derive(Clone)]
pub struct Passphrase(SecretString);

impl Passphrase {
    /// Wraps a passphrase. The `String` is moved, not copied.
    #[must_use]
    pub fn new(value: String) -> Self {
        Passphrase(SecretString::from(value))
    }
}

secret_string!(Passphrase, "passphrase", "for handing to a KDF");

impl From<String> for Passphrase {
    fn from(value: String) -> Self {
        Passphrase::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Passphrase::new("s3cret-value".to_owned());
        let shown = format!("{p:?} {:?}", Some(p.clone()));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(p.expose(), "s3cret-value");
    }
}

/// A RunPod API key. `Debug` prints `ApiToken([REDACTED])`; there is no `Display`.
#[derive(Clone)]
pub struct ApiToken(SecretString);

impl ApiToken {
    /// Wraps an API key (surrounding whitespace removed).
    #[must_use]
    pub fn new(value: &str) -> Self {
        ApiToken(SecretString::from(value.trim().to_owned()))
    }

    /// `text` with every occurrence of the key replaced by `[REDACTED]`; for anything a
    /// server sends back that might end up in a message.
    #[must_use]
    pub fn scrub(&self, text: &str) -> String {
        let key = self.expose();
        if key.len() < 4 {
            text.to_owned()
        } else {
            text.replace(key, "[REDACTED]")
        }
    }
}

secret_string!(ApiToken, "API key", "for the `Authorization` header");

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted_and_scrubs() {
        let t = ApiToken::new(" rpa_SECRETKEY123 \n");
        assert_eq!(format!("{t:?}"), "ApiToken([REDACTED])");
        assert_eq!(t.expose(), "rpa_SECRETKEY123");
        assert_eq!(t.scrub("bad key rpa_SECRETKEY123!"), "bad key [REDACTED]!");
    }
}
