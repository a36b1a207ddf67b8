//! Serde for the inventory's timestamps, with a fast path for the one form keyvault
//! writes (`2026-11-26T16:02:34Z`: whole seconds, UTC).
//!
//! chrono's own (de)serializer goes through its general format machinery, which was
//! about a tenth of `list --json` at 10,000 keys (50,000 timestamps). The fast path
//! writes exactly the text chrono writes, and reads only text chrono reads the same way;
//! anything else (fractions, offsets, leap seconds, years past 9999) falls back to chrono.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use serde::{Deserializer, Serializer, de};
use std::fmt;

/// `YYYY-MM-DDTHH:MM:SSZ`, when `t` has no fraction of a second and a four-digit year.
fn format_fast(t: &DateTime<Utc>) -> Option<[u8; 20]> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    if t.nanosecond() != 0 {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            // Each digit is a value below 10.
            out[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    Some(out)
}

/// The inverse of [`format_fast`]; `None` for any other text.
fn parse_fast(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    // Second 60 (a leap second) is left to chrono.
    let time = date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?;
    Some(time.and_utc())
}

fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_fast(s) {
        Some(t) => Ok(t),
        None => s
            .parse::<DateTime<FixedOffset>>()
            .map(|t| t.with_timezone(&Utc)),
    }
}

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 date and time")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        parse(s).map_err(E::custom)
    }
}

/// `#[serde(with = "timestamp")]` for `DateTime<Utc>`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match format_fast(t) {
        // The buffer holds only ASCII digits and separators.
        Some(text) => s.serialize_str(std::str::from_utf8(&text).unwrap_or_default()),
        None => serde::Serialize::serialize(t, s),
    }
}

/// `#[serde(with = "timestamp")]` for `DateTime<Utc>`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Visitor)
}

/// `#[serde(with = "timestamp::option")]` for `Option<DateTime<Utc>>`.
pub mod option {
    use super::{DateTime, Deserializer, Serializer, Utc, de, fmt};

    // Serde's `with` passes `&Option<T>`.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    struct OptionVisitor;

    impl<'de> de::Visitor<'de> for OptionVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 date and time, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fast_path_matches_chrono_and_falls_back() {
        for text in [
            "2026-11-26T16:02:34Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-02-29T12:00:00Z",
        ] {
            let fast = parse_fast(text).expect(text);
            assert_eq!(Some(fast), text.parse::<DateTime<Utc>>().ok(), "{text}");
            assert_eq!(format_fast(&fast).map(|b| b.to_vec()), Some(text.into()));
        }
        // Not the fast form: chrono decides.
        for (text, want) in [
            ("2026-11-26T16:02:34.5Z", Some("2026-11-26T16:02:34.500Z")),
            ("2026-11-26T17:02:34+01:00", Some("2026-11-26T16:02:34Z")),
            ("2026-11-26t16:02:34z", Some("2026-11-26T16:02:34Z")),
            ("2023-02-29T12:00:00Z", None),
            ("2026-11-26T24:00:00Z", None),
            ("2026-1x-26T16:02:34Z", None),
            ("2026-11-26 16:02:34", None),
            ("", None),
        ] {
            let got = parse(text).ok();
            assert_eq!(
                got,
                text.parse::<DateTime<FixedOffset>>()
                    .ok()
                    .map(|t| t.to_utc())
            );
            let printed = got.map(|t| serde_json::to_string(&Wrap(t)).expect("serializes"));
            assert_eq!(printed, want.map(|w| format!("\"{w}\"")), "{text}");
        }
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Wrap(#[serde(with = "super")] DateTime<Utc>);

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct WrapOpt(#[serde(with = "super::option")] Option<DateTime<Utc>>);

    proptest! {
        /// Whatever the instant, the text is chrono's and reads back to the same instant.
        #[test]
        fn same_text_as_chrono(secs in -62_135_596_800i64..253_402_300_800, nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000]) {
            let t = DateTime::from_timestamp(secs, nanos).expect("in range");
            let ours = serde_json::to_string(&Wrap(t)).expect("serializes");
            prop_assert_eq!(&ours, &serde_json::to_string(&t).expect("serializes"));
            prop_assert_eq!(serde_json::from_str::<Wrap>(&ours).expect("reads").0, t);
            let opt = serde_json::to_string(&WrapOpt(Some(t))).expect("serializes");
            prop_assert_eq!(serde_json::from_str::<WrapOpt>(&opt).expect("reads").0, Some(t));
        }
    }

    #[test]
    fn option_reads_null() {
        assert_eq!(
            serde_json::from_str::<WrapOpt>("null").expect("reads").0,
            None
        );
        assert_eq!(
            serde_json::to_string(&WrapOpt(None)).expect("writes"),
            "null"
        );
    }
}
