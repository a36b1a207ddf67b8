//! GitLab's SSH keys (`/user/keys`, target `gitlab`): created with `usage_type` `auth`
//! (not GitLab's default `auth_and_signing`) and `expires_at` from the key's expiry, so
//! GitLab refuses an expired key even if `sweep` never ran.

use super::account::{Api, Listed, NewKey, detail, fingerprint, key_part};
use super::provider::{Answer, Http};
use crate::error::{Provider, ProviderError};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// GitLab's key endpoints.
#[derive(Debug)]
pub(crate) struct Gitlab;

/// `expires_at` as GitLab sends it: ISO 8601 date-time, or (older docs) a date.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// GitLab's validation messages (`{"message": {"key": ["…"]}}`) as sentences.
fn reasons(http: &Http, answer: &Answer) -> Vec<String> {
    let v = answer.json();
    let mut out = Vec::new();
    match v.get("message") {
        Some(Value::Object(fields)) => {
            for (field, messages) in fields {
                let texts: Vec<String> = match messages {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(ToOwned::to_owned)
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    _ => Vec::new(),
                };
                out.extend(texts.iter().map(|t| http.scrub(&format!("{field} {t}"))));
            }
        }
        Some(Value::String(s)) => out.push(http.scrub(s)),
        _ => {}
    }
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        out.push(http.scrub(e));
    }
    if out.is_empty() {
        out.push(detail(http, answer));
    }
    out
}

impl Api for Gitlab {
    fn path(&self) -> &'static str {
        "/user/keys"
    }

    fn parse(&self, item: &Value) -> Option<Listed> {
        let key = key_part(item.get("key")?.as_str()?)?;
        let expires_at = match item.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_time(v.as_str()?)?),
        };
        Some(Listed {
            id: item.get("id")?.as_u64()?,
            fingerprint: fingerprint(&key),
            key,
            title: item.get("title")?.as_str()?.to_owned(),
            expires_at,
        })
    }

    fn create_body(&self, key: &NewKey) -> Value {
        let mut body = json!({ "title": key.title, "key": key.line(), "usage_type": "auth" });
        if let Some(at) = key.expires_at {
            body["expires_at"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        body
    }

    fn check(&self, _key: &NewKey) -> Result<(), Vec<String>> {
        // What an instance accepts is its admin's setting: GitLab says it on create.
        Ok(())
    }

    fn taken(&self, answer: &Answer) -> bool {
        let v = answer.json();
        (answer.status == 400 || answer.status == 422)
            && ["fingerprint_sha256", "fingerprint"].iter().any(|f| {
                v.pointer(&format!("/message/{f}"))
                    .is_some_and(|m| m.to_string().contains("already been taken"))
            })
    }

    fn error(&self, http: &Http, answer: &Answer, key: Option<&NewKey>) -> ProviderError {
        let provider = Provider::Gitlab;
        match answer.status {
            401 => ProviderError::Unauthorized {
                provider,
                detail: detail(http, answer),
            },
            403 | 404 => ProviderError::MissingScope {
                provider,
                status: answer.status,
                needed: vec!["the api scope".to_owned()],
                detail: detail(http, answer),
            },
            400 | 422 if key.is_some() => ProviderError::KeyRefused {
                provider,
                fingerprint: key.map(|k| k.fingerprint.to_string()).unwrap_or_default(),
                reasons: reasons(http, answer),
            },
            status => ProviderError::Status {
                provider,
                status,
                detail: detail(http, answer),
            },
        }
    }

    fn line(&self, record: &crate::KeyRecord) -> String {
        match record.expires_at() {
            Some(at) => format!(
                "expiry-time=\"{}\" {}",
                at.format("%Y%m%d%H%M%SZ"),
                record.deploy_line()
            ),
            None => record.deploy_line(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_expiry_formats() {
        assert_eq!(
            parse_time("2016-01-21T00:00:00.000Z").map(|t| t.to_rfc3339()),
            Some("2016-01-21T00:00:00+00:00".to_owned())
        );
        assert_eq!(
            parse_time("2016-01-21").map(|t| t.to_rfc3339()),
            Some("2016-01-21T00:00:00+00:00".to_owned())
        );
        assert_eq!(parse_time("soon"), None);
    }
}
