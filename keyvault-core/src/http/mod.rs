//! The HTTP side RunPod's, GitHub's and GitLab's APIs share: [`ApiSettings`] (base URL, the
//! token, timeouts, retries of reads) and, with the `network` feature, one client that
//! sends the token only in an `Authorization: Bearer` header, follows no redirect, caps
//! bodies, retries reads (429 and whatever else the API calls a rate limit, 5xx, network
//! errors) honouring `Retry-After` within a cap, and scrubs the token out of every message.
//!
//! Writes are never sent twice from here: the callers read the list back when a write's
//! answer is lost.

#[cfg(feature = "network")]
mod client;

#[cfg(feature = "network")]
pub(crate) use client::{Answer, Dialect, Http, safe_base};

use crate::secret::ApiToken;
use std::time::Duration;

/// How to reach one account of an API: which API and where (`api`, for example a
/// [`Provider`](crate::Provider) or RunPod's [`RunpodApi`](crate::runpod::RunpodApi)), the
/// token, timeouts and retries. [`ProviderSettings`](crate::target::ProviderSettings) and
/// [`RunpodSettings`](crate::RunpodSettings) name the two kinds.
#[derive(Debug, Clone)]
pub struct ApiSettings<A> {
    pub(crate) api: A,
    pub(crate) token: ApiToken,
    pub(crate) api_url: String,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_wait: Duration,
}

impl<A> ApiSettings<A> {
    /// Settings for `token` against `api_url` (trailing `/` dropped): 30 s timeouts,
    /// 3 retries of reads from 250 ms, rate-limit waits of at most `max_wait`.
    pub(crate) fn with(api: A, token: ApiToken, api_url: &str, max_wait: Duration) -> Self {
        ApiSettings {
            api,
            token,
            api_url: api_url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(250),
            max_wait,
        }
    }

    /// Connect and total timeout of each request.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a failed read is retried, the first backoff, and the longest wait
    /// for a rate limit honoured (a longer one fails at once).
    #[must_use]
    pub fn retries(mut self, retries: u32, backoff: Duration, max_wait: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self.max_wait = max_wait;
        self
    }

    /// The API base URL.
    #[must_use]
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// `text` without the token or control characters, cut to 300 characters.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let clean: String = self
            .token
            .scrub(text)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        clean.trim().to_owned()
    }
}
