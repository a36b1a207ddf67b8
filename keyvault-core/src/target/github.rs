//! GitHub's SSH keys: authentication keys (`/user/keys`, target `github`) and signing keys
//! (`/user/ssh_signing_keys`, target `github-signing`).

use super::account::{Api, Listed, NewKey, detail, fingerprint, key_part};
use super::provider::{Answer, Http};
use crate::error::{Provider, ProviderError};
use serde_json::{Value, json};

/// GitHub's key endpoints of one kind.
#[derive(Debug)]
pub(crate) struct Github {
    signing: bool,
}

impl Github {
    pub fn new(signing: bool) -> Self {
        Github { signing }
    }

    /// The scopes or permissions a token needs here.
    fn needed(&self) -> Vec<String> {
        if self.signing {
            vec![
                "admin:ssh_signing_key (classic token)".to_owned(),
                "\"SSH signing keys\" read and write (fine-grained token)".to_owned(),
            ]
        } else {
            vec![
                "admin:public_key (classic token; write:public_key cannot delete)".to_owned(),
                "\"Git SSH keys\" read and write (fine-grained token)".to_owned(),
            ]
        }
    }
}

/// The key types GitHub's API description accepts (`key`'s pattern).
fn accepted(kind: &str, signing: bool) -> bool {
    matches!(
        kind,
        "ssh-rsa"
            | "ssh-dss"
            | "ssh-ed25519"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
    ) || (signing
        && matches!(
            kind,
            "sk-ssh-ed25519@openssh.com" | "sk-ecdsa-sha2-nistp256@openssh.com"
        ))
}

impl Api for Github {
    fn path(&self) -> &'static str {
        if self.signing {
            "/user/ssh_signing_keys"
        } else {
            "/user/keys"
        }
    }

    fn parse(&self, item: &Value) -> Option<Listed> {
        let key = key_part(item.get("key")?.as_str()?)?;
        Some(Listed {
            id: item.get("id")?.as_u64()?,
            fingerprint: fingerprint(&key),
            key,
            title: item.get("title")?.as_str()?.to_owned(),
            expires_at: None,
        })
    }

    fn create_body(&self, key: &NewKey) -> Value {
        json!({ "title": key.title, "key": key.line() })
    }

    fn check(&self, key: &NewKey) -> Result<(), Vec<String>> {
        let kind = key.key.split(' ').next().unwrap_or("");
        if accepted(kind, self.signing) {
            return Ok(());
        }
        Err(vec![if kind.starts_with("sk-") {
            format!("GitHub accepts {kind} keys as signing keys only, not for authentication")
        } else {
            format!("GitHub does not accept {kind} keys")
        }])
    }

    fn taken(&self, answer: &Answer) -> bool {
        answer.status == 422
            && String::from_utf8_lossy(&answer.body)
                .to_ascii_lowercase()
                .contains("already in use")
    }

    fn error(&self, http: &Http, answer: &Answer, key: Option<&NewKey>) -> ProviderError {
        let provider = Provider::Github;
        let detail = detail(http, answer);
        match answer.status {
            401 => ProviderError::Unauthorized { provider, detail },
            403 | 404 => {
                let mut needed = self.needed();
                // What GitHub says this action accepts, when it says.
                if let Some(accepted) = answer
                    .headers
                    .get("x-accepted-oauth-scopes")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.trim().is_empty())
                {
                    needed.push(format!(
                        "one of the scopes GitHub names: {}",
                        http.scrub(accepted)
                    ));
                }
                ProviderError::MissingScope {
                    provider,
                    status: answer.status,
                    needed,
                    detail,
                }
            }
            422 if key.is_some() => {
                let v = answer.json();
                let mut reasons: Vec<String> = v
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|errors| {
                        errors
                            .iter()
                            .filter_map(|e| {
                                e.get("message")
                                    .and_then(Value::as_str)
                                    .map(ToOwned::to_owned)
                                    .or_else(|| {
                                        let field = e.get("field").and_then(Value::as_str)?;
                                        let code = e.get("code").and_then(Value::as_str)?;
                                        Some(format!("{field} {code}"))
                                    })
                            })
                            .map(|m| http.scrub(&m))
                            .collect()
                    })
                    .unwrap_or_default();
                if reasons.is_empty() {
                    reasons.push(detail);
                }
                ProviderError::KeyRefused {
                    provider,
                    fingerprint: key.map(|k| k.fingerprint.to_string()).unwrap_or_default(),
                    reasons,
                }
            }
            status => ProviderError::Status {
                provider,
                status,
                detail,
            },
        }
    }
}
