//! Names of the inventory: a [`Purpose`] and a [`KeyId`].

use crate::error::InputError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A purpose name such as `personal`, `team` or `ci-deploy`: matches
/// `^[a-z0-9][a-z0-9._-]{0,63}$`, so it is always safe as a file name.
///
/// ```
/// use keyvault_core::Purpose;
/// assert!("ci-deploy".parse::<Purpose>().is_ok());
/// for bad in ["", "../x", "A", "-x", &"a".repeat(65)] {
///     assert!(bad.parse::<Purpose>().is_err());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Purpose(String);

impl Purpose {
    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    match bytes.first() {
        None => return Err("must not be empty"),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return Err("must start with a lowercase letter or a digit");
        }
        Some(_) => {}
    }
    if bytes.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may contain only a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

impl FromStr for Purpose {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::try_from(s.to_owned())
    }
}

impl TryFrom<String> for Purpose {
    type Error = InputError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match check_name(&s) {
            Ok(()) => Ok(Purpose(s)),
            Err(reason) => Err(InputError::Purpose { value: s, reason }),
        }
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Purpose::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's id, `<purpose>-<n>` (e.g. `personal-3`); safe as a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of the `n`th key of `purpose`.
    #[must_use]
    pub fn new(purpose: &Purpose, n: u64) -> Self {
        KeyId(format!("{purpose}-{n}"))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sequence number after the last `-`.
    #[must_use]
    pub fn number(&self) -> u64 {
        self.0
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }
}

impl FromStr for KeyId {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyId::try_from(s.to_owned())
    }
}

impl TryFrom<String> for KeyId {
    type Error = InputError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let valid = s.rsplit_once('-').is_some_and(|(purpose, n)| {
            check_name(purpose).is_ok()
                && !n.is_empty()
                && n.len() <= 12
                && n.bytes().all(|b| b.is_ascii_digit())
        });
        if valid {
            Ok(KeyId(s))
        } else {
            Err(InputError::KeyId { value: s })
        }
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KeyId::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
