//! Requests the vault's state refuses (usage errors).

/// A request the vault's state does not allow as asked: a usage error, nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A rotation of every purpose, with no purpose holding an active key.
    #[error("nothing to rotate: no purpose has an active key")]
    NothingToRotate,
    /// A rollback of a purpose that has no rotation in progress.
    #[error("purpose {purpose} has no rotation in progress")]
    NoRotation {
        /// The purpose.
        purpose: String,
    },
    /// A rollback of a rotation that has promoted its new key already: it can only be
    /// finished, or the old key revoked.
    #[error("the rotation of {purpose} already made {new} active, so it cannot be rolled back")]
    AlreadyPromoted {
        /// The purpose.
        purpose: String,
        /// The key being rotated out.
        old: String,
        /// The key made active.
        new: String,
    },
    /// A key that a rotation in progress is moving; the rotation must end first.
    #[error("key {id} is part of a rotation in progress")]
    InRotation {
        /// The key.
        id: String,
        /// Its purpose, whose rotation is in progress.
        purpose: String,
    },
    /// A key that is revoked already.
    #[error("key {id} is already revoked")]
    AlreadyRevoked {
        /// The key.
        id: String,
    },
    /// A revoked or expired key asked to be deployed.
    #[error("key {id} is {state}; deploy a live key")]
    NotDeployable {
        /// The key.
        id: String,
        /// `revoked` or `expired`.
        state: &'static str,
    },
    /// A revoked or expired key asked to go into an agent.
    #[error("key {id} is {state}; only live keys go into an agent")]
    NotForAgent {
        /// The key.
        id: String,
        /// `revoked` or `expired`.
        state: &'static str,
    },
    /// A key whose private file was pruned, asked to log in to the pods that trust it.
    #[error(
        "key {id}'s private file was pruned, so the pods that still trust it cannot be logged in to; redeploy them"
    )]
    Pruned {
        /// The key.
        id: String,
    },
    /// A key that is not (yet) prunable.
    #[error("key {id} cannot be pruned: only revoked keys nothing depends on can")]
    NotPrunable {
        /// The key.
        id: String,
    },
    /// A key that is not a live certificate authority.
    #[error("key {id} is not a live certificate authority")]
    NotCertificateAuthority {
        /// The key.
        id: String,
        /// Whether it was to be trusted somewhere (rather than to sign).
        trusting: bool,
    },
    /// A certificate without principals.
    #[error("a certificate needs at least one principal")]
    NoPrincipals,
    /// A target that cannot hold `authorized_keys` options (a RunPod account).
    #[error("{target} cannot hold authorized_keys options; trust a CA in a file: or ssh:// target")]
    NoOptions {
        /// The target.
        target: String,
    },
    /// A scoped key asked to be deployed where its restrictions would not hold: the target
    /// keeps the bare key without `authorized_keys` options.
    #[error(
        "{target} keeps keys without authorized_keys options, so the key's restrictions ({}) would not hold there",
        .restrictions.join(", ")
    )]
    ScopeNotCarried {
        /// The target.
        target: String,
        /// The restrictions it cannot carry, as `authorized_keys` option names (`from`,
        /// `command`).
        restrictions: Vec<&'static str>,
    },
    /// A target that is not a RunPod account, where one is needed for its pods.
    #[error("{target} is not a RunPod account: use runpod-pods or runpod-pods:PROFILE")]
    NotRunpodAccount {
        /// The target.
        target: String,
    },
    /// A target without pods.
    #[error("{target} has no pods")]
    NoPods {
        /// The target.
        target: String,
    },
    /// A target that could not be opened.
    #[error("cannot open {target}")]
    NotOpened {
        /// The target.
        target: String,
    },
}
