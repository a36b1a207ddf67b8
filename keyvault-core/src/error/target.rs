//! Deployment targets: [`TargetError`] and RunPod's [`RunpodError`].

/// A deployment target failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The RunPod API failed.
    #[error("{target}: {source}")]
    Runpod {
        /// The target, e.g. `runpod:team`.
        target: String,
        /// What RunPod said.
        source: RunpodError,
    },
    /// GitHub's or GitLab's key API failed.
    #[error("{target}: {source}")]
    Provider {
        /// The target, e.g. `github:work`.
        target: String,
        /// What the provider said.
        source: super::ProviderError,
    },
    /// The key list would exceed RunPod's size limit.
    #[error(
        "{target}: the key list would be {len} characters, over RunPod's limit of about {limit}{}",
        match sweepable.as_deref() {
            None => String::new(),
            Some([]) => "; remove keys you no longer use from the account".to_owned(),
            Some(ids) => format!("; a sweep would remove these expired keys: {}", ids.join(", ")),
        }
    )]
    ListTooLong {
        /// The target.
        target: String,
        /// The list's size with the change.
        len: usize,
        /// The limit.
        limit: usize,
        /// Once the vault looked: the expired managed keys on the target, which a sweep
        /// would remove (empty: none); `None` when not looked at.
        sweepable: Option<Vec<String>>,
    },
    /// Another writer changed the list at the same time.
    #[error("{target}: another writer changed the key list while keyvault was writing it ({what})")]
    Interference {
        /// The target.
        target: String,
        /// What the read-back showed.
        what: String,
    },
    /// The target could not be read.
    #[error("cannot read {target}: {reason}")]
    Unreachable {
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// keyvault will not edit the target's file: a symlink, not a regular file, too
    /// large, or an owner it cannot keep.
    #[error("{target}: {reason}")]
    Refused {
        /// The target.
        target: String,
        /// What was refused and why.
        reason: String,
    },
    /// The target's file has a line that is no `authorized_keys` entry: it may be another
    /// kind of file, which keyvault does not edit unless told to.
    #[error(
        "{target}: line {line} is not an authorized_keys entry (a key, a comment or a blank line); keyvault does not edit a file that may not be an authorized_keys file"
    )]
    NotAuthorizedKeys {
        /// The target.
        target: String,
        /// The 1-based line.
        line: usize,
    },
    /// No credentials for the target.
    #[error("no credentials for {target}: {reason}")]
    Credentials {
        /// The target.
        target: String,
        /// What is missing.
        reason: String,
    },
    /// A RunPod, GitHub or GitLab target names a profile the configuration does not
    /// define (the table is `[<kind>.<profile>]`, the kind being the target's name up to
    /// the colon: `runpod`, `github`, `gitlab`).
    #[error("no credentials for {target}: config.toml has no [{}.{profile}] table", target.split(':').next().unwrap_or("runpod").trim_end_matches("-signing"))]
    UnknownProfile {
        /// The target, e.g. `runpod:team`.
        target: String,
        /// The profile.
        profile: String,
    },
    /// A RunPod account was asked for and the target is none.
    #[error("{target} is not a RunPod account")]
    NotRunpod {
        /// The target.
        target: String,
    },
}

/// What went wrong talking to RunPod. Messages never contain the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunpodError {
    /// 401: the key is missing, malformed, expired or wrong.
    #[error("RunPod rejected the API key (401 {detail})")]
    Unauthorized {
        /// The server's detail.
        detail: String,
    },
    /// 403, or GraphQL's "Unauthorized" on a write: a valid key without this access.
    #[error(
        "the RunPod API key lacks access for this ({detail}); a read-only key cannot change SSH keys"
    )]
    Forbidden {
        /// The server's detail.
        detail: String,
    },
    /// 422: the request failed validation.
    #[error("RunPod refused the request as invalid: {}", messages.join("; "))]
    Validation {
        /// Each validation message.
        messages: Vec<String>,
    },
    /// 429 after every retry.
    #[error("RunPod is rate limiting this API key{}; try again later", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    RateLimited {
        /// The last `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// Any other HTTP error status.
    #[error("RunPod answered {status} {detail}")]
    Status {
        /// The status code.
        status: u16,
        /// The server's detail.
        detail: String,
    },
    /// GraphQL `errors` in a 200 answer.
    #[error("RunPod GraphQL error: {}", messages.join("; "))]
    Graphql {
        /// Each error message.
        messages: Vec<String>,
    },
    /// The body is not what the API documents.
    #[error("unexpected answer from RunPod {what}: {reason}")]
    Malformed {
        /// Which call.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The connection failed or timed out.
    #[error("cannot reach RunPod at {url}: {reason}")]
    Network {
        /// The URL (never carries the key).
        url: String,
        /// The cause.
        reason: String,
    },
    /// The endpoint does not exist (REST v2 absent on this server).
    #[error("RunPod has no {what} endpoint at {url}")]
    NotFound {
        /// Which call.
        what: &'static str,
        /// The URL.
        url: String,
    },
}

impl RunpodError {
    /// Whether a write that failed this way may nevertheless have been applied, so the
    /// caller must re-read before deciding.
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            RunpodError::Network { .. } | RunpodError::Malformed { .. }
        ) || matches!(self, RunpodError::Status { status, .. } if *status >= 500)
    }
}
