//! `inventory.json`: reading it ([`Inventory::parse`], [`ParseError`]) and writing it
//! one record per line ([`Inventory::to_json`]).

use super::{INVENTORY_VERSION, Inventory};
use serde::{Deserialize, Serialize};

/// Why an inventory document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a valid inventory.
    Corrupt(String),
    /// A schema version this build does not read.
    Version(u64),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Corrupt(why) => f.write_str(why),
            ParseError::Version(v) => {
                write!(f, "schema version {v} is not one this keyvault reads")
            }
        }
    }
}

/// The layout of `inventory.json`: the document's members and the elements of its arrays
/// (keys, journal entries) each on a line of their own, everything deeper compact. A key is
/// one line, so the file reads and diffs record by record, and it is about a quarter
/// smaller (and faster to read) than indented JSON.
#[derive(Default)]
struct RecordPerLine {
    depth: usize,
    has_value: bool,
}

impl RecordPerLine {
    /// Containers down to this depth put their members on separate lines.
    const LINE_DEPTH: usize = 2;

    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        let broken = self.depth <= Self::LINE_DEPTH;
        self.depth -= 1;
        if broken && self.has_value {
            self.newline(w)?;
        }
        w.write_all(bracket)
    }

    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn member<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.depth <= Self::LINE_DEPTH {
            self.newline(w)?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for RecordPerLine {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.member(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.member(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(if self.depth <= Self::LINE_DEPTH {
            b": "
        } else {
            b":"
        })
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

impl Inventory {
    /// Parses an `inventory.json` document: valid JSON, this build's schema version, no
    /// unknown fields, unique ids, paths keyvault could have made.
    ///
    /// # Errors
    ///
    /// A description of the first problem (the store wraps it with the file name).
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        // One typed pass; only when it fails is the version looked at, so that a newer
        // schema is named as such rather than as corrupt.
        // UTF-8 is checked once for the whole document (much faster than string by string).
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ParseError::Corrupt(format!("not valid JSON ({e})")))?;
        let inventory: Inventory = match serde_json::from_str(text) {
            Ok(inventory) => inventory,
            Err(typed) => {
                #[derive(Deserialize)]
                struct VersionOnly {
                    version: Option<serde_json::Value>,
                }
                let head: VersionOnly = serde_json::from_slice(bytes)
                    .map_err(|e| ParseError::Corrupt(format!("not valid JSON ({e})")))?;
                let version = head
                    .version
                    .as_ref()
                    .and_then(serde_json::Value::as_u64)
                    .ok_or_else(|| ParseError::Corrupt("no \"version\" number".to_owned()))?;
                if version != u64::from(INVENTORY_VERSION) {
                    return Err(ParseError::Version(version));
                }
                return Err(ParseError::Corrupt(typed.to_string()));
            }
        };
        if inventory.version != INVENTORY_VERSION {
            return Err(ParseError::Version(u64::from(inventory.version)));
        }
        let mut ids = std::collections::HashSet::with_capacity(inventory.keys.len());
        for k in inventory.keys() {
            if !ids.insert(k.id()) {
                return Err(ParseError::Corrupt(format!(
                    "key id {} appears twice",
                    k.id()
                )));
            }
            if k.private_key_path().strip_prefix("keys/") != Some(k.id().as_str()) {
                return Err(ParseError::Corrupt(format!(
                    "key {} has an unexpected private_key_path",
                    k.id()
                )));
            }
        }
        Ok(inventory)
    }

    /// The document as written to `inventory.json`: one line per member of the document
    /// and per key or journal entry, each record compact on its line; trailing newline.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        // About 800 bytes a key; the estimate only saves regrowing the buffer.
        let mut text = Vec::with_capacity(1024 + 800 * self.keys.len());
        let mut out = serde_json::Serializer::with_formatter(&mut text, RecordPerLine::default());
        // Serializing plain data structures into memory cannot fail.
        if self.serialize(&mut out).is_err() {
            text.clear();
        }
        text.push(b'\n');
        text
    }
}
