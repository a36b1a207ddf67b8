//! Human durations such as `90d`, `12h`, `2w` or `1d12h`, and expiry dates.

use crate::error::InputError;
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt;
use std::str::FromStr;

/// The longest span keyvault accepts: 100 years.
const MAX_SECONDS: u64 = 100 * 365 * 86_400;

/// A length of time written as one or more `<number><unit>` parts, units `s`, `m`, `h`,
/// `d`, `w` (seconds to weeks), e.g. `90d`, `12h`, `1d12h`, `30s`.
///
/// ```
/// use keyvault_core::Span;
/// let span: Span = "1d12h".parse().unwrap();
/// assert_eq!(span.as_secs(), 36 * 3600);
/// assert_eq!(span.to_string(), "1d12h");
/// assert!("12 parsecs".parse::<Span>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(u64);

impl Span {
    /// A span of whole seconds.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Span(secs)
    }

    /// A span of whole days.
    #[must_use]
    pub const fn from_days(days: u64) -> Self {
        Span(days * 86_400)
    }

    /// Its length in seconds.
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// As a chrono duration.
    #[must_use]
    pub fn to_delta(self) -> chrono::TimeDelta {
        // MAX_SECONDS keeps this far inside i64.
        chrono::TimeDelta::seconds(i64::try_from(self.0).unwrap_or(i64::MAX / 1000))
    }
}

impl FromStr for Span {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| InputError::Duration {
            value: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let mut total: u64 = 0;
        let mut number: Option<u64> = None;
        for c in s.chars() {
            if let Some(d) = c.to_digit(10) {
                let n = number.unwrap_or(0);
                number = Some(
                    n.checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .filter(|n| *n <= MAX_SECONDS)
                        .ok_or_else(|| err("too long (at most 100 years)"))?,
                );
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => {
                    return Err(err(
                        "expected a number followed by s, m, h, d or w, e.g. 90d",
                    ));
                }
            };
            let n = number
                .take()
                .ok_or_else(|| err("a unit must follow a number, e.g. 90d"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .filter(|t| *t <= MAX_SECONDS)
                .ok_or_else(|| err("too long (at most 100 years)"))?;
        }
        if number.is_some() {
            return Err(err("missing unit: use s, m, h, d or w, e.g. 90d"));
        }
        if total == 0 {
            return Err(err("must be longer than zero"));
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        // Weeks only when the span is whole weeks, so "90d" stays "90d".
        let units: &[(u64, char)] = if rest.is_multiple_of(7 * 86_400) {
            &[(7 * 86_400, 'w')]
        } else {
            &[(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')]
        };
        for &(size, unit) in units {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses an expiry given as `YYYY-MM-DD` (00:00 UTC that day) or an RFC 3339 timestamp.
///
/// # Errors
///
/// [`InputError::Date`] when the value is neither.
pub fn parse_date(value: &str) -> Result<DateTime<Utc>, InputError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| InputError::Date {
            value: value.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (text, secs, shown) in [
            ("90d", 90 * 86_400, "90d"),
            ("2w", 14 * 86_400, "2w"),
            ("12h", 43_200, "12h"),
            ("1d12h", 129_600, "1d12h"),
            ("1s", 1, "1s"),
            ("90m", 5400, "1h30m"),
        ] {
            let span: Span = text.parse().expect(text);
            assert_eq!(span.as_secs(), secs, "{text}");
            assert_eq!(span.to_string(), shown, "{text}");
            assert_eq!(span.to_string().parse::<Span>().expect(shown), span);
        }
    }

    #[test]
    fn rejects_bad_input() {
        for text in [
            "",
            "0d",
            "d",
            "90",
            "9x",
            "-1d",
            "1.5d",
            "99999999999999999999d",
            "4000000000s",
            "5300w",
            " 1d",
        ] {
            assert!(text.parse::<Span>().is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("2027-01-31").expect("date").to_rfc3339(),
            "2027-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_date("2027-01-31T10:00:00+02:00")
                .expect("ts")
                .to_rfc3339(),
            "2027-01-31T08:00:00+00:00"
        );
        assert!(parse_date("31/01/2027").is_err());
    }
}
