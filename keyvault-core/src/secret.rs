//! Secret-bearing types. None of them implements `Display`, and their `Debug` is redacted.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

pub use secrecy;

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

    /// The passphrase itself, for handing to a KDF. Keep the borrow short.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the passphrase is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([REDACTED])")
    }
}

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

    /// The key itself, for the `Authorization` header. Keep the borrow short.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the key is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
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

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([REDACTED])")
    }
}

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
