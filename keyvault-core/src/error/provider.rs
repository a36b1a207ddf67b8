//! GitHub's and GitLab's key APIs: [`Provider`] and [`ProviderError`].

use std::fmt;

/// A Git hosting provider whose accounts hold SSH keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// GitHub (github.com, GitHub Enterprise).
    Github,
    /// GitLab (gitlab.com, self-managed).
    Gitlab,
}

impl Provider {
    /// The name targets and config tables use: `github`, `gitlab`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Github => "GitHub",
            Provider::Gitlab => "GitLab",
        })
    }
}

/// What went wrong talking to GitHub or GitLab. Messages never contain the token, and
/// what the server said is scrubbed of it before it is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// 401: the token is wrong, revoked or expired.
    #[error("{provider} rejected the token (401 {detail})")]
    Unauthorized {
        /// Which provider.
        provider: Provider,
        /// The server's message.
        detail: String,
    },
    /// 403 or 404 on the key endpoints: the token lacks a scope or permission.
    #[error("{provider} refused access ({status} {detail}); the token lacks {}", needed.join(" or "))]
    MissingScope {
        /// Which provider.
        provider: Provider,
        /// 403 or 404.
        status: u16,
        /// The scopes or permissions that would allow it (e.g. `admin:public_key`).
        needed: Vec<String>,
        /// The server's message.
        detail: String,
    },
    /// The key is already in use on another account (or as a deploy key).
    #[error(
        "{provider} says the key {fingerprint} is already in use (on another account or as a deploy key): {detail}"
    )]
    KeyInUse {
        /// Which provider.
        provider: Provider,
        /// The key.
        fingerprint: String,
        /// The server's message.
        detail: String,
    },
    /// The provider refused the key itself (type, size, expiry, a compromised key).
    #[error("{provider} refused the key {fingerprint}: {}", reasons.join("; "))]
    KeyRefused {
        /// Which provider.
        provider: Provider,
        /// The key.
        fingerprint: String,
        /// The provider's reasons.
        reasons: Vec<String>,
    },
    /// Rate limited after every retry honoured within the cap.
    #[error("{provider} is rate limiting this token{}; try again later", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    RateLimited {
        /// Which provider.
        provider: Provider,
        /// Seconds until the limit resets, when the provider said.
        retry_after: Option<u64>,
    },
    /// Any other HTTP error status.
    #[error("{provider} answered {status} {detail}")]
    Status {
        /// Which provider.
        provider: Provider,
        /// The status code.
        status: u16,
        /// The server's message.
        detail: String,
    },
    /// The body is not what the API documents.
    #[error("unexpected answer from {provider} ({what}): {reason}")]
    Malformed {
        /// Which provider.
        provider: Provider,
        /// Which call.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The connection failed or timed out.
    #[error("cannot reach {provider} at {url}: {reason}")]
    Network {
        /// Which provider.
        provider: Provider,
        /// The URL (never carries the token).
        url: String,
        /// The cause.
        reason: String,
    },
}

impl ProviderError {
    /// Whether a write that failed this way may nevertheless have been applied, so the
    /// caller must read the list back before deciding.
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            ProviderError::Network { .. } | ProviderError::Malformed { .. }
        ) || matches!(self, ProviderError::Status { status, .. } if *status >= 500)
    }

    /// The provider.
    #[must_use]
    pub fn provider(&self) -> Provider {
        match self {
            ProviderError::Unauthorized { provider, .. }
            | ProviderError::MissingScope { provider, .. }
            | ProviderError::KeyInUse { provider, .. }
            | ProviderError::KeyRefused { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::Status { provider, .. }
            | ProviderError::Malformed { provider, .. }
            | ProviderError::Network { provider, .. } => *provider,
        }
    }
}
