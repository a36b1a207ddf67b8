//! A blocking RunPod API client: the account's SSH key list over REST v2
//! (`GET`/`PUT /v2/account/ssh-keys`) with a GraphQL fallback (`myself { pubKey }` /
//! `updateUserSettings`) when v2 answers 404, and the pod list (`GET /v2/pods`).
//!
//! The HTTP side is [`crate::http`]'s, shared with GitHub and GitLab: bearer
//! authentication only (the API key never goes into a URL), reads retried on 429
//! (honouring `Retry-After` within a cap), 5xx and connection errors with backoff and
//! jitter, no redirect followed, bodies capped, the key scrubbed out of every message.
//! Writes are never replayed blindly: callers re-read and recompute. This module adds
//! RunPod's endpoints, its `problem+json` and GraphQL errors, and which API the server
//! speaks.

pub use crate::http::ApiSettings;
use crate::remote;
use crate::secret::ApiToken;
#[cfg(feature = "network")]
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

/// Without the `network` feature (the fuzz targets' build) the client sends nothing: every
/// request fails with [`RunpodError::Network`].
#[cfg(not(feature = "network"))]
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone)]
enum Method {
    GET,
    PUT,
    POST,
}

/// RunPod's production API (REST base).
pub const DEFAULT_API_URL: &str = "https://api.runpod.io";

/// RunPod's API in [`ApiSettings`]: the settings' URL is the REST base; this adds the
/// GraphQL endpoint.
#[derive(Debug, Clone)]
pub struct RunpodApi {
    graphql_url: String,
}

/// How to reach one RunPod account.
pub type RunpodSettings = ApiSettings<RunpodApi>;

impl ApiSettings<RunpodApi> {
    /// Settings for `api_key` against `api_url` (REST base, e.g. `https://api.runpod.io`),
    /// GraphQL at `graphql_url` or `<api_url>/graphql`, 30 s timeouts, 3 retries of reads,
    /// rate-limit waits of at most 30 s.
    #[must_use]
    pub fn new(api_key: ApiToken, api_url: &str, graphql_url: Option<&str>) -> Self {
        let api_url = api_url.trim_end_matches('/');
        let graphql_url =
            graphql_url.map_or_else(|| format!("{api_url}/graphql"), ToOwned::to_owned);
        ApiSettings::with(
            RunpodApi { graphql_url },
            api_key,
            api_url,
            Duration::from_secs(30),
        )
    }
}

#[cfg(feature = "network")]
impl crate::http::Dialect for RunpodApi {
    type Error = RunpodError;

    fn headers(&self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        req.header("Accept", "application/json")
    }

    /// 429 only: RunPod's 403 is a key without access.
    fn rate_limited(&self, answer: &crate::http::Answer) -> bool {
        answer.status == 429
    }

    fn network(&self, url: String, reason: String) -> RunpodError {
        RunpodError::Network { url, reason }
    }

    fn malformed(&self, _: String, reason: String) -> RunpodError {
        RunpodError::Malformed {
            what: "answer",
            reason,
        }
    }

    fn bad_token(&self) -> RunpodError {
        RunpodError::Unauthorized {
            detail: "the API key has characters no HTTP header can carry".to_owned(),
        }
    }

    fn rate_limit(&self, retry_after: Option<u64>) -> RunpodError {
        RunpodError::RateLimited { retry_after }
    }

    fn is_network(error: &RunpodError) -> bool {
        matches!(error, RunpodError::Network { .. })
    }
}

pub use crate::error::RunpodError;

/// Which API carries the key list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Unknown,
    V2,
    Graphql,
}

/// A pod as keyvault needs it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Pod {
    /// Pod id.
    pub id: String,
    /// Pod name.
    #[serde(default)]
    pub name: String,
    /// `PROVISIONING`, `STARTING`, `RUNNING`, `EXITED`, `ERROR` or `TERMINATED`.
    pub status: String,
    /// Environment; `PUBLIC_KEY` holds the keys the pod was created with.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How to reach it over SSH.
    #[serde(default)]
    pub ssh: Option<PodSsh>,
}

/// A pod's SSH endpoints.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Default)]
pub struct PodSsh {
    /// RunPod's proxy: interactive shell only.
    pub proxy: Option<SshEndpoint>,
    /// The pod's own sshd on a public port: full SSH.
    pub direct: Option<SshEndpoint>,
}

/// One SSH endpoint.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct SshEndpoint {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub username: String,
}

impl Pod {
    /// The keys in the pod's `PUBLIC_KEY` (what it trusts since creation).
    #[must_use]
    pub fn public_keys(&self) -> Vec<remote::RemoteKey> {
        self.env
            .get("PUBLIC_KEY")
            .map(|v| {
                remote::split_graphql(v)
                    .iter()
                    .map(|l| remote::RemoteKey::parse(l))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the pod runs now (`RUNNING`): the only state in which its keys can be
    /// changed over SSH.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING"
    }

    /// Whether the pod is on its way to running (`PROVISIONING`, `STARTING`): it cannot be
    /// logged in to yet, and shortly runs trusting the keys in its `PUBLIC_KEY` (added to
    /// whatever its `~/.ssh/authorized_keys` kept, if it kept anything).
    #[must_use]
    pub fn is_starting(&self) -> bool {
        matches!(self.status.as_str(), "PROVISIONING" | "STARTING")
    }

    /// Whether the pod is gone for good (`TERMINATED`). Any other pod that is not running
    /// (`EXITED`, `ERROR`, `PROVISIONING`, `STARTING`, or a status keyvault does not know)
    /// may start again, and then trusts the keys in its `PUBLIC_KEY` again: a restart reuses
    /// them, whatever was changed in its `~/.ssh/authorized_keys` over SSH.
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        self.status == "TERMINATED"
    }

    /// Whether `fingerprint` is in the pod's `PUBLIC_KEY`, so that the pod trusts that key
    /// whenever it (re)starts.
    #[must_use]
    pub fn starts_with_key(&self, fingerprint: &ssh_key::Fingerprint) -> bool {
        self.public_keys()
            .iter()
            .any(|k| k.fingerprint() == Some(fingerprint))
    }
}

/// The client. Not `Sync`: it remembers which API the server speaks.
#[derive(Debug)]
pub struct RunpodClient {
    #[cfg(feature = "network")]
    http: crate::http::Http<RunpodApi>,
    #[cfg(not(feature = "network"))]
    settings: RunpodSettings,
    api: Cell<Api>,
}

/// What the client needs of an HTTP answer.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

#[cfg(feature = "network")]
impl From<crate::http::Answer> for Answer {
    fn from(a: crate::http::Answer) -> Self {
        Answer {
            status: a.status,
            retry_after: a.asked_wait().map(|d| d.as_secs()),
            body: a.body,
        }
    }
}

#[cfg(feature = "network")]
impl RunpodClient {
    /// A client for `settings`.
    ///
    /// # Errors
    ///
    /// [`RunpodError::Network`] if a URL is not one the key may be sent to (https, or
    /// http to this machine) or the HTTP client cannot be built.
    pub fn new(settings: RunpodSettings) -> Result<Self, RunpodError> {
        let graphql_url = settings.api.graphql_url.clone();
        crate::http::safe_base(&graphql_url).map_err(|reason| RunpodError::Network {
            url: graphql_url,
            reason: reason.to_owned(),
        })?;
        Ok(RunpodClient {
            http: crate::http::Http::new(settings)?,
            api: Cell::new(Api::Unknown),
        })
    }

    /// How many HTTP requests this client has sent.
    #[must_use]
    pub fn requests(&self) -> u32 {
        self.http.requests()
    }

    fn settings(&self) -> &RunpodSettings {
        self.http.settings()
    }

    fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Answer, RunpodError> {
        self.http.send(method, url, body).map(Answer::from)
    }

    /// Sends a read, retrying rate limits, 5xx and network failures.
    fn read(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Answer, RunpodError> {
        self.http.retried(method, url, body).map(Answer::from)
    }
}

#[cfg(not(feature = "network"))]
impl RunpodClient {
    /// A client for `settings` that sends nothing.
    ///
    /// # Errors
    ///
    /// None in this build; the signature is the `network` build's.
    pub fn new(settings: RunpodSettings) -> Result<Self, RunpodError> {
        Ok(RunpodClient {
            settings,
            api: Cell::new(Api::Unknown),
        })
    }

    /// How many HTTP requests this client has sent: none in this build.
    #[must_use]
    pub fn requests(&self) -> u32 {
        0
    }

    fn settings(&self) -> &RunpodSettings {
        &self.settings
    }

    fn send(&self, _: Method, url: &str, _: Option<&Value>) -> Result<Answer, RunpodError> {
        Err(RunpodError::Network {
            url: url.to_owned(),
            reason: "keyvault-core was built without its `network` feature".to_owned(),
        })
    }

    fn read(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Answer, RunpodError> {
        self.send(method, url, body)
    }
}

impl RunpodClient {
    fn scrub(&self, text: &str) -> String {
        self.settings().scrub(text)
    }

    fn problem(&self, answer: &Answer) -> RunpodError {
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let title = v.get("title").and_then(Value::as_str).unwrap_or("");
        let detail = v.get("detail").and_then(Value::as_str).unwrap_or(title);
        let detail = self.scrub(if detail.is_empty() {
            std::str::from_utf8(&answer.body).unwrap_or("")
        } else {
            detail
        });
        match answer.status {
            401 => RunpodError::Unauthorized { detail },
            403 => RunpodError::Forbidden { detail },
            422 => {
                let mut messages: Vec<String> = v
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| self.scrub(s))
                            .collect()
                    })
                    .unwrap_or_default();
                if messages.is_empty() {
                    messages.push(detail);
                }
                RunpodError::Validation { messages }
            }
            429 => RunpodError::RateLimited {
                retry_after: answer.retry_after,
            },
            status => RunpodError::Status { status, detail },
        }
    }

    fn keys_url(&self) -> String {
        format!("{}/v2/account/ssh-keys", self.settings().api_url)
    }

    fn parse_keys(&self, answer: &Answer, what: &'static str) -> Result<Vec<String>, RunpodError> {
        #[derive(Deserialize)]
        struct Keys {
            keys: Vec<String>,
        }
        // RunPod writes the entries into a pod's authorized_keys joined by newlines, so an
        // entry with a newline inside is several lines there: list each line, never hide one.
        serde_json::from_slice::<Keys>(&answer.body)
            .map(|k| {
                k.keys
                    .iter()
                    .flat_map(|e| remote::split_graphql(e))
                    .collect()
            })
            .map_err(|e| RunpodError::Malformed {
                what,
                reason: self.scrub(&e.to_string()),
            })
    }

    /// The account's key list, entry by entry.
    ///
    /// # Errors
    ///
    /// Any [`RunpodError`] after retries.
    pub fn get_keys(&self) -> Result<Vec<String>, RunpodError> {
        if self.api.get() != Api::Graphql {
            let answer = self.read(Method::GET, &self.keys_url(), None)?;
            match answer.status {
                200 => {
                    self.api.set(Api::V2);
                    return self.parse_keys(&answer, "GET /v2/account/ssh-keys");
                }
                404 if self.api.get() == Api::Unknown => self.api.set(Api::Graphql),
                _ => return Err(self.problem(&answer)),
            }
        }
        let data = self.graphql(
            json!({"query": "query myself { myself { id pubKey } }"}),
            true,
        )?;
        match data.pointer("/myself/pubKey") {
            Some(Value::String(s)) => Ok(remote::split_graphql(s)),
            Some(Value::Null) => Ok(Vec::new()),
            _ => Err(RunpodError::Malformed {
                what: "GraphQL myself",
                reason: "no myself.pubKey in the answer".to_owned(),
            }),
        }
    }

    /// Replaces the account's whole key list. Returns the list the server reports back
    /// (REST v2), or `None` when the API gives no list back (GraphQL).
    ///
    /// # Errors
    ///
    /// Any [`RunpodError`]; [`RunpodError::outcome_unknown`] says whether the write may
    /// have happened anyway.
    pub fn put_keys(&self, keys: &[String]) -> Result<Option<Vec<String>>, RunpodError> {
        if self.api.get() == Api::Unknown {
            // Learn which API the server speaks with a read; writes are never probes.
            self.get_keys()?;
        }
        if self.api.get() == Api::V2 {
            let answer = self.send(
                Method::PUT,
                &self.keys_url(),
                Some(&json!({ "keys": keys })),
            )?;
            if answer.status != 200 {
                return Err(self.problem(&answer));
            }
            return self
                .parse_keys(&answer, "PUT /v2/account/ssh-keys")
                .map(Some);
        }
        let body = json!({
            "query": "mutation updateUserSettings($input: UpdateUserSettingsInput) { updateUserSettings(input: $input) { id } }",
            "variables": { "input": { "pubKey": remote::join_graphql(keys) } },
        });
        self.graphql(body, false)?;
        Ok(None)
    }

    fn graphql(&self, body: Value, is_read: bool) -> Result<Value, RunpodError> {
        let url = &self.settings().api.graphql_url;
        let answer = if is_read {
            self.read(Method::POST, url, Some(&body))?
        } else {
            self.send(Method::POST, url, Some(&body))?
        };
        if answer.status == 404 {
            return Err(RunpodError::NotFound {
                what: "GraphQL",
                url: url.clone(),
            });
        }
        if answer.status != 200 {
            return Err(self.problem(&answer));
        }
        let v: Value =
            serde_json::from_slice(&answer.body).map_err(|e| RunpodError::Malformed {
                what: "GraphQL",
                reason: self.scrub(&e.to_string()),
            })?;
        if let Some(errors) = v
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| {
                    self.scrub(
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error"),
                    )
                })
                .collect();
            if messages
                .iter()
                .any(|m| m.eq_ignore_ascii_case("unauthorized"))
            {
                return Err(RunpodError::Forbidden {
                    detail: format!("GraphQL: {}", messages.join("; ")),
                });
            }
            return Err(RunpodError::Graphql { messages });
        }
        v.get("data")
            .cloned()
            .filter(|d| !d.is_null())
            .ok_or_else(|| RunpodError::Malformed {
                what: "GraphQL",
                reason: "no data in the answer".to_owned(),
            })
    }

    /// Every pod of the account (REST v2 only).
    ///
    /// # Errors
    ///
    /// Any [`RunpodError`] after retries.
    pub fn list_pods(&self) -> Result<Vec<Pod>, RunpodError> {
        let url = format!("{}/v2/pods", self.settings().api_url);
        let answer = self.read(Method::GET, &url, None)?;
        if answer.status == 404 {
            return Err(RunpodError::NotFound { what: "pods", url });
        }
        if answer.status != 200 {
            return Err(self.problem(&answer));
        }
        #[derive(Deserialize)]
        struct Pods {
            pods: Vec<Pod>,
        }
        serde_json::from_slice::<Pods>(&answer.body)
            .map(|p| p.pods)
            .map_err(|e| RunpodError::Malformed {
                what: "GET /v2/pods",
                reason: self.scrub(&e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_api_key() {
        let settings = RunpodSettings::new(
            ApiToken::new("rpa_SECRETKEY123456"),
            "http://127.0.0.1:9",
            None,
        )
        .retries(0, Duration::from_millis(1), Duration::from_millis(1));
        let client = RunpodClient::new(settings.clone()).expect("client");
        for shown in [format!("{settings:?}"), format!("{client:?}")] {
            assert!(!shown.contains("SECRETKEY"), "{shown}");
        }
        // Errors name the URL and never the key.
        let err = client.get_keys().expect_err("nothing listens on port 9");
        assert!(!err.to_string().contains("SECRETKEY"), "{err}");
        assert!(err.to_string().contains("http://127.0.0.1:9"), "{err}");
    }
}
