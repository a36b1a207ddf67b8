//! Names users give keyvault, each checked once where it is parsed: [`KeySelector`] (a key
//! id or a purpose), [`Principal`] (of a certificate or a trusted CA) and [`SourcePattern`]
//! (a `from="…"` entry of a scoped key).

use crate::error::InputError;
use crate::inventory::{KeyId, Purpose};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a user names a key: a key id (`personal-2`) or a purpose (`personal`, meaning its
/// active key). A name can be both; [`Vault::find`](crate::Vault::find) then refuses it as
/// ambiguous when the inventory has both.
///
/// ```
/// use keyvault_core::KeySelector;
/// let s: KeySelector = "personal-2".parse().unwrap();
/// assert_eq!(s.id().map(|id| id.as_str()), Some("personal-2"));
/// assert!("../etc".parse::<KeySelector>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySelector {
    text: String,
    id: Option<KeyId>,
    purpose: Option<Purpose>,
}

impl KeySelector {
    /// The name as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The key id it names, if it is a valid one.
    #[must_use]
    pub fn id(&self) -> Option<&KeyId> {
        self.id.as_ref()
    }
    /// The purpose it names, if it is a valid one.
    #[must_use]
    pub fn purpose(&self) -> Option<&Purpose> {
        self.purpose.as_ref()
    }
}

impl FromStr for KeySelector {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s.parse::<KeyId>().ok();
        let purpose = s.parse::<Purpose>().ok();
        if id.is_none() && purpose.is_none() {
            return Err(InputError::Purpose {
                value: s.to_owned(),
                reason: "not a valid key id or purpose",
            });
        }
        Ok(KeySelector {
            text: s.to_owned(),
            id,
            purpose,
        })
    }
}

impl From<&KeyId> for KeySelector {
    fn from(id: &KeyId) -> Self {
        KeySelector {
            text: id.to_string(),
            id: Some(id.clone()),
            purpose: id.as_str().parse().ok(),
        }
    }
}

impl From<&Purpose> for KeySelector {
    fn from(purpose: &Purpose) -> Self {
        KeySelector {
            text: purpose.to_string(),
            id: purpose.as_str().parse().ok(),
            purpose: Some(purpose.clone()),
        }
    }
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A principal of a user certificate, or one a trusted CA's certificates are accepted for:
/// 1 to 255 letters, digits, `.`, `_`, `-` and `@`.
///
/// ```
/// use keyvault_core::Principal;
/// assert!("deploy@ci".parse::<Principal>().is_ok());
/// assert!("a,b".parse::<Principal>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Principal {
    type Err = InputError;

    fn from_str(p: &str) -> Result<Self, Self::Err> {
        let ok = !p.is_empty()
            && p.len() <= 255
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
        if ok {
            Ok(Principal(p.to_owned()))
        } else {
            Err(InputError::Principal {
                value: p.to_owned(),
            })
        }
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of a scoped key's `from="…"` option: an address, a CIDR or a host pattern
/// (1 to 255 letters, digits and `.:/*?!-_`, so it can never break out of the quotes).
///
/// ```
/// use keyvault_core::SourcePattern;
/// assert!("10.0.0.0/8".parse::<SourcePattern>().is_ok());
/// assert!("10.0.0.1\" x".parse::<SourcePattern>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SourcePattern(String);

impl SourcePattern {
    /// The pattern.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SourcePattern {
    type Err = InputError;

    fn from_str(f: &str) -> Result<Self, Self::Err> {
        let ok = !f.is_empty()
            && f.len() <= 255
            && f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:/*?!-_".contains(&b));
        if ok {
            Ok(SourcePattern(f.to_owned()))
        } else {
            Err(InputError::SourcePattern {
                value: f.to_owned(),
            })
        }
    }
}

impl<'de> Deserialize<'de> for SourcePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fingerprint as its `SHA256:…` text, for `#[serde(with)]`.
pub(crate) mod fingerprint_text {
    use ssh_key::Fingerprint;
    use std::fmt;

    pub(crate) fn serialize<S: serde::Serializer>(
        fp: &Fingerprint,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(fp)
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Fingerprint, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Fingerprint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fingerprint, SHA256:…")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fingerprint, E> {
                v.parse()
                    .map_err(|_| E::custom(format_args!("invalid fingerprint {v:?}")))
            }
        }
        d.deserialize_str(Text)
    }

    /// The same for an `Option`.
    pub(crate) mod option {
        use ssh_key::Fingerprint;

        pub(crate) fn serialize<S: serde::Serializer>(
            fp: &Option<Fingerprint>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match fp {
                Some(fp) => s.collect_str(fp),
                None => s.serialize_none(),
            }
        }
    }
}

/// Joins names with `,`, as `authorized_keys` options and certificates list them.
pub(crate) fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use ssh_key::Fingerprint;

    #[test]
    fn a_selector_is_an_id_a_purpose_or_both() {
        let s: KeySelector = "personal-2".parse().expect("id");
        assert_eq!(s.id().map(KeyId::as_str), Some("personal-2"));
        assert_eq!(s.purpose().map(Purpose::as_str), Some("personal-2"));
        assert_eq!(s.to_string(), "personal-2");
        let s: KeySelector = "personal".parse().expect("purpose");
        assert_eq!(s.id(), None);
        assert_eq!(s.purpose().map(Purpose::as_str), Some("personal"));
        // An id whose purpose part is fine, even where the whole is no purpose.
        let s: KeySelector = "a.b-12".parse().expect("id");
        assert!(s.id().is_some());
        for bad in ["", "../etc", "Personal", "-1", "a b", "x/1"] {
            let e = bad.parse::<KeySelector>().expect_err(bad);
            assert_eq!(
                e.to_string(),
                InputError::Purpose {
                    value: bad.to_owned(),
                    reason: "not a valid key id or purpose",
                }
                .to_string()
            );
        }
        let id: KeyId = "team-3".parse().expect("id");
        assert_eq!(
            KeySelector::from(&id),
            "team-3".parse::<KeySelector>().expect("parses")
        );
        let p: Purpose = "team".parse().expect("purpose");
        assert_eq!(
            KeySelector::from(&p),
            "team".parse::<KeySelector>().expect("parses")
        );
    }

    #[test]
    fn principals_accept_only_their_characters() {
        for good in ["root", "deploy@ci", "a.b_c-d", &"p".repeat(255)] {
            assert_eq!(good.parse::<Principal>().expect(good).as_str(), good);
        }
        for bad in ["", "a,b", "a b", "a\"", "é", "a*", &"p".repeat(256)] {
            let e = bad.parse::<Principal>().expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("invalid principal {bad:?}: use letters, digits, '.', '_', '-' and '@'")
            );
        }
    }

    #[test]
    fn source_patterns_accept_only_their_characters() {
        for good in [
            "10.0.0.1",
            "10.0.0.0/8",
            "::1",
            "*.example.com",
            "!bad?host_1",
        ] {
            assert_eq!(good.parse::<SourcePattern>().expect(good).as_str(), good);
        }
        for bad in ["", "10.0.0.1\" x", "a,b", "a b", "a\n", &"1".repeat(256)] {
            let e = bad.parse::<SourcePattern>().expect_err(bad);
            assert_eq!(
                e.to_string(),
                // The library's words; the CLI says "--from entry" (explain.rs).
                format!(
                    "invalid source pattern {bad:?}: expected an address, a CIDR or a host pattern"
                )
            );
        }
    }

    #[test]
    fn principals_and_patterns_read_back_as_strings_and_refuse_bad_ones() {
        let p: Vec<Principal> = serde_json::from_str(r#"["root","deploy"]"#).expect("reads");
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"["root","deploy"]"#
        );
        assert!(serde_json::from_str::<Vec<Principal>>(r#"["a,b"]"#).is_err());
        let f: Vec<SourcePattern> = serde_json::from_str(r#"["10.0.0.0/8"]"#).expect("reads");
        assert_eq!(
            serde_json::to_string(&f).expect("json"),
            r#"["10.0.0.0/8"]"#
        );
        assert!(serde_json::from_str::<Vec<SourcePattern>>(r#"["a\""]"#).is_err());
    }

    /// An inventory written by the keyvault before typed identities (see
    /// `tests/fixtures/README.md`), with targets of every kind in a deployment list and in a
    /// journal entry: read with typed targets, fingerprints and names, and written back
    /// byte for byte.
    #[test]
    fn an_inventory_from_before_typed_identities_reads_and_writes_back_unchanged() {
        let bytes = include_bytes!("../tests/fixtures/inventory-v1.json");
        let inventory = Inventory::parse(bytes).expect("parses");
        assert_eq!(
            String::from_utf8(inventory.to_json()).expect("UTF-8"),
            std::str::from_utf8(bytes).expect("UTF-8")
        );
        let entry = &inventory.journal()[0];
        let names: Vec<String> = entry.targets().keys().map(ToString::to_string).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            names, sorted,
            "journal targets keep the order of their names"
        );
        let kinds: Vec<(bool, bool, bool)> = entry
            .targets()
            .keys()
            .map(|t| (t.is_runpod(), t.is_ssh(), t.is_pod()))
            .collect();
        assert_eq!(
            kinds,
            [
                (false, false, false),
                (false, false, false),
                (false, false, true),
                (true, false, false),
                (true, false, false),
                (false, true, false),
            ]
        );
        let old = inventory.get(entry.old()).expect("old key");
        assert_eq!(
            *old.fingerprint(),
            "SHA256:/WxlIaPG5iJyzbfH3UmBhlYqAaCVhiXaW4XR/GIY57c"
                .parse::<Fingerprint>()
                .expect("fingerprint")
        );
        // A fingerprint that is not one is refused, as any corrupt field.
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        let bad = text.replacen(&old.fingerprint().to_string(), "SHA256:x", 1);
        assert!(matches!(
            Inventory::parse(bad.as_bytes()),
            Err(crate::inventory::ParseError::Corrupt(why)) if why.contains("invalid fingerprint")
        ));
        let pods: Vec<Option<&str>> = old
            .deployments()
            .iter()
            .filter(|d| d.target().is_pod())
            .map(|d| d.target().pod_id())
            .collect();
        assert_eq!(pods, [Some("abc123"), Some("gone1")]);
        assert_eq!(old.live_targets().len(), 6);
        let ci = inventory
            .get(&"ci-1".parse().expect("id"))
            .expect("minted key");
        let scope = ci.scope().expect("scoped");
        assert_eq!(
            scope
                .from
                .iter()
                .map(SourcePattern::as_str)
                .collect::<Vec<_>>(),
            ["10.0.0.0/8", "::1"]
        );
        let cert = ci.certificate().expect("certificate");
        assert_eq!(cert.principals[0].as_str(), "deploy");
        let ca = inventory.get(&"ca-1".parse().expect("id")).expect("ca");
        assert_eq!(
            ca.cert_authority()
                .expect("a CA")
                .iter()
                .map(Principal::as_str)
                .collect::<Vec<_>>(),
            ["root", "deploy"]
        );
    }
}
