//! A GitHub or GitLab account's keys as a [`Target`]: what both share. Keys are one
//! resource each (no list to replace), identified by type and base64 (GitLab rewrites the
//! comment), titled `keyvault:<id>`; keys keyvault does not manage are never touched.
//! Every write is verified by reading the list back, and a write whose answer was lost is
//! never replayed before the list says it did not land. The provider modules
//! ([`super::github`], [`super::gitlab`]) supply endpoints, JSON shapes and error mapping.

use super::provider::{Answer, Http};
use super::{Applied, Hook, Target, TargetSpec};
use crate::error::{Error, ProviderError, TargetError};
use crate::remote::{AddKey, RemoteKey};
use chrono::{DateTime, Utc};
use serde_json::Value;
use ssh_key::Fingerprint;
use std::collections::HashSet;

/// A key as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub id: u64,
    /// `<type> <base64>`.
    pub key: String,
    pub title: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub fingerprint: Option<Fingerprint>,
}

/// A key to add, from the line [`Target::line`] made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewKey {
    pub fingerprint: Fingerprint,
    /// `<type> <base64>`.
    pub key: String,
    /// `keyvault:<id>`.
    pub title: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewKey {
    /// Reads `type base64 comment`, optionally after `expiry-time="YYYYMMDDHHMMSSZ"`.
    fn parse(add: &AddKey) -> Option<NewKey> {
        let mut words = add.line.split_whitespace().peekable();
        let mut expires_at = None;
        if let Some(option) = words.peek().and_then(|w| w.strip_prefix("expiry-time=\"")) {
            let digits = option.trim_end_matches('"').trim_end_matches('Z');
            expires_at = Some(
                chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S")
                    .ok()?
                    .and_utc(),
            );
            words.next();
        }
        let kind = words.next()?;
        let blob = words.next()?;
        let comment: Vec<&str> = words.collect();
        let title = match comment.first() {
            Some(first) if first.starts_with("keyvault:") => (*first).to_owned(),
            Some(_) => comment.join(" "),
            None => "keyvault".to_owned(),
        };
        Some(NewKey {
            fingerprint: add.fingerprint,
            key: format!("{kind} {blob}"),
            title,
            expires_at,
        })
    }

    /// The key as uploaded: `type base64 title`.
    pub fn line(&self) -> String {
        format!("{} {}", self.key, self.title)
    }
}

/// A provider's endpoints, JSON shapes and error mapping.
pub(crate) trait Api: Send + std::fmt::Debug {
    /// The list's path under the API base, e.g. `/user/keys`.
    fn path(&self) -> &'static str;
    /// One listed key; `None` when it is not the documented shape.
    fn parse(&self, item: &Value) -> Option<Listed>;
    /// The body that creates `key`.
    fn create_body(&self, key: &NewKey) -> Value;
    /// The provider's documented refusal of `key`, checked before anything is sent.
    fn check(&self, key: &NewKey) -> Result<(), Vec<String>>;
    /// Whether a refused create says the key already exists somewhere.
    fn taken(&self, answer: &Answer) -> bool;
    /// The error an answer other than success means (`key`: the key being created).
    fn error(&self, http: &Http, answer: &Answer, key: Option<&NewKey>) -> ProviderError;
    /// The line the target holds for a record.
    fn line(&self, record: &crate::KeyRecord) -> String {
        record.deploy_line()
    }
}

/// A GitHub or GitLab account's keys.
#[derive(Debug)]
pub struct AccountTarget {
    spec: TargetSpec,
    http: Http,
    api: Box<dyn Api>,
}

/// How often a write is tried again after the list showed it did not land.
const WRITE_ATTEMPTS: u32 = 3;

/// How a write decides the answers particular to it: `Some` ends the write with that result.
type Settle<'a> = &'a mut dyn FnMut(&AccountTarget, &Answer) -> Option<Result<(), TargetError>>;

impl AccountTarget {
    pub(crate) fn new(spec: TargetSpec, http: Http, api: Box<dyn Api>) -> Self {
        AccountTarget { spec, http, api }
    }

    /// How many HTTP requests this target has sent.
    #[must_use]
    pub fn requests(&self) -> u32 {
        self.http.requests()
    }

    fn err(&self, source: ProviderError) -> TargetError {
        TargetError::Provider {
            target: self.spec.to_string(),
            source,
        }
    }

    fn listed(&self) -> Result<Vec<Listed>, TargetError> {
        let first = self.http.url(&format!("{}?per_page=100", self.api.path()));
        let items = self
            .http
            .list_all(&first, &|a| self.api.error(&self.http, a, None))
            .map_err(|e| self.err(e))?;
        items
            .iter()
            .map(|item| {
                self.api.parse(item).ok_or_else(|| {
                    self.err(self.http.malformed(
                        &format!("GET {}", self.api.path()),
                        "a key without id, key or title",
                    ))
                })
            })
            .collect()
    }

    fn remote(listed: &Listed) -> RemoteKey {
        let title: String = listed
            .title
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        RemoteKey::with_options(
            &format!("{} {title}", listed.key),
            listed.fingerprint,
            listed
                .expires_at
                .map(|t| format!("expiry-time=\"{}\"", t.format("%Y%m%d%H%M%SZ"))),
        )
    }

    fn holds(&self, fingerprint: &Fingerprint) -> Result<bool, TargetError> {
        Ok(self
            .listed()?
            .iter()
            .any(|l| l.fingerprint.as_ref() == Some(fingerprint)))
    }

    /// Creates `key`. A lost answer, a 5xx or a rate limit is followed by a read of the
    /// list: if the key is there, that is success; only if not is it sent again.
    fn create(&self, key: &NewKey) -> Result<(), TargetError> {
        let url = self.http.url(self.api.path());
        let body = self.api.create_body(key);
        let holds = |this: &Self| this.holds(&key.fingerprint);
        self.write(
            reqwest::Method::POST,
            &url,
            Some(&body),
            Some(key),
            &holds,
            &mut |this, answer| match answer.status {
                200 | 201 => Some(Ok(())),
                _ if this.api.taken(answer) => Some(match this.holds(&key.fingerprint) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(this.err(ProviderError::KeyInUse {
                        provider: this.http.provider(),
                        fingerprint: key.fingerprint.to_string(),
                        detail: detail(&this.http, answer),
                    })),
                    Err(e) => Err(e),
                }),
                _ => None,
            },
        )
    }

    /// Deletes `key`. 404 counts as gone (the read-back decides, and a 404 that hides a
    /// missing scope comes back as that error when the key is still listed).
    fn delete(&self, key: &Listed, denied: &mut Option<ProviderError>) -> Result<(), TargetError> {
        let url = self.http.url(&format!("{}/{}", self.api.path(), key.id));
        let gone = |this: &Self| -> Result<bool, TargetError> {
            Ok(!this.listed()?.iter().any(|l| l.id == key.id))
        };
        self.write(
            reqwest::Method::DELETE,
            &url,
            None,
            None,
            &gone,
            &mut |this, answer| match answer.status {
                200 | 204 => Some(Ok(())),
                404 => {
                    *denied = Some(this.api.error(&this.http, answer, None));
                    Some(Ok(()))
                }
                _ => None,
            },
        )
    }

    /// Sends a write until it is `done` (asked after an answer is lost, a 5xx or a rate
    /// limit; only if not is it sent again). `settle` decides the answers particular to
    /// the write (success, a key in use, a 404); any other is an error (`key`: the key
    /// being created, for its message).
    fn write(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        key: Option<&NewKey>,
        done: &dyn Fn(&Self) -> Result<bool, TargetError>,
        settle: Settle<'_>,
    ) -> Result<(), TargetError> {
        let mut last = None;
        for attempt in 0..WRITE_ATTEMPTS {
            let answer = match self.http.send(method.clone(), url, body) {
                Ok(answer) => answer,
                Err(e) if e.outcome_unknown() => {
                    if done(self)? {
                        return Ok(());
                    }
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(self.err(e)),
            };
            if let Some(settled) = settle(self, &answer) {
                return settled;
            }
            if self.http.is_rate_limited(&answer) {
                let wait = self
                    .http
                    .rate_limit_wait(&answer, attempt)
                    .map_err(|e| self.err(e))?;
                std::thread::sleep(wait);
                last = Some(self.http.rate_limited(&answer));
            } else if answer.status >= 500 {
                last = Some(self.api.error(&self.http, &answer, key));
            } else {
                return Err(self.err(self.api.error(&self.http, &answer, key)));
            }
            if done(self)? {
                return Ok(());
            }
        }
        Err(self
            .err(last.unwrap_or_else(|| self.http.malformed(method.as_str(), "no attempt made"))))
    }

    /// Reads the list back: every added key is there, no removed one is.
    fn verify(
        &self,
        add: &[NewKey],
        remove: &HashSet<Fingerprint>,
        denied: Option<ProviderError>,
    ) -> Result<Applied, Error> {
        let after = self.listed()?;
        let present: HashSet<Fingerprint> = after.iter().filter_map(|l| l.fingerprint).collect();
        // GitLab's refusal of an expired key is only as good as the expiry it kept.
        let unkept: Vec<String> = add
            .iter()
            .filter(|a| {
                a.expires_at.is_some()
                    && after.iter().any(|l| {
                        l.fingerprint == Some(a.fingerprint) && l.expires_at != a.expires_at
                    })
            })
            .map(|a| a.fingerprint.to_string())
            .collect();
        if remove.iter().any(|f| present.contains(f))
            && let Some(denied) = denied
        {
            return Err(self.err(denied).into());
        }
        super::check_written(
            &self.spec.to_string(),
            &present,
            add.iter().map(|a| &a.fingerprint),
            remove,
            (&unkept, "held without the expiry keyvault sent"),
        )?;
        Ok(Applied {
            wrote: true,
            present,
        })
    }
}

/// The server's message, scrubbed: `message`, GitLab's `error`, or the body's start.
pub(crate) fn detail(http: &Http, answer: &Answer) -> String {
    let v = answer.json();
    let text = match v.get("message").or_else(|| v.get("error")) {
        Some(Value::String(s)) => s.clone(),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::from_utf8_lossy(&answer.body).into_owned(),
    };
    http.scrub(&text)
}

impl Target for AccountTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        Ok(self.listed()?.iter().map(Self::remote).collect())
    }

    fn line(&self, record: &crate::KeyRecord) -> String {
        self.api.line(record)
    }

    fn carries_options(&self) -> bool {
        false
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        let news: Vec<NewKey> = add
            .iter()
            .filter(|a| !remove.contains(&a.fingerprint))
            .map(|a| {
                NewKey::parse(a).ok_or_else(|| TargetError::Refused {
                    target: name.clone(),
                    reason: format!("{} is not a public key line", a.fingerprint),
                })
            })
            .collect::<Result<_, _>>()?;
        // The provider's documented refusals come before anything changes.
        for key in &news {
            self.api.check(key).map_err(|reasons| {
                self.err(ProviderError::KeyRefused {
                    provider: self.http.provider(),
                    fingerprint: key.fingerprint.to_string(),
                    reasons,
                })
            })?;
        }
        let current = self.listed()?;
        let held: HashSet<Fingerprint> = current.iter().filter_map(|l| l.fingerprint).collect();
        let to_add: Vec<&NewKey> = news
            .iter()
            .filter(|k| !held.contains(&k.fingerprint))
            .collect();
        let to_remove: Vec<&Listed> = current
            .iter()
            .filter(|l| l.fingerprint.is_some_and(|f| remove.contains(&f)))
            .collect();
        // A key held with another expiry than its own (GitLab) is made again: no update
        // endpoint exists, and the provider holds each key once.
        let stale: Vec<(&Listed, &NewKey)> = news
            .iter()
            .filter_map(|k| {
                current
                    .iter()
                    .find(|l| l.fingerprint == Some(k.fingerprint) && l.expires_at != k.expires_at)
                    .map(|l| (l, k))
            })
            .collect();
        if to_add.is_empty() && to_remove.is_empty() && stale.is_empty() {
            return Ok(Applied {
                wrote: false,
                present: held,
            });
        }
        hook(&format!("write:{name}"))?;
        let mut denied = None;
        for (held, key) in stale {
            self.delete(held, &mut denied)?;
            self.create(key)?;
        }
        // Add first, then remove: a refused key leaves the old ones in place.
        for key in to_add {
            self.create(key)?;
        }
        for key in to_remove {
            self.delete(key, &mut denied)?;
        }
        hook(&format!("written:{name}"))?;
        self.verify(&news, remove, denied)
    }
}

/// The fingerprint of `type base64` (comments ignored).
pub(crate) fn fingerprint(key: &str) -> Option<Fingerprint> {
    crate::remote::fingerprint_of(key)
}

/// `<type> <base64>` of a listed key (the provider may add a comment of its own).
pub(crate) fn key_part(key: &str) -> Option<String> {
    let mut words = key.split_whitespace();
    Some(format!("{} {}", words.next()?, words.next()?))
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
