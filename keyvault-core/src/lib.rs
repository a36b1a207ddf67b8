#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod admission;
pub mod agent;
mod agent_keys;
pub mod audit;
pub mod audit_tail;
pub mod authorized_keys;
#[cfg(feature = "backup")]
pub mod backup;
pub mod ca;
pub mod callbacks;
mod child;
pub mod child_env;
pub mod clock;
mod deploy;
mod dirfd;
pub mod due;
pub mod error;
mod fsutil;
pub mod http;
pub mod inventory;
mod kdf;
pub mod keyfile;
pub mod keygen;
mod keys;
pub mod manual;
pub mod metrics;
pub mod mint;
pub mod minted;
pub mod names;
pub mod observe;
pub mod passphrase_file;
mod pods;
pub mod policy;
pub mod remote;
pub mod report;
mod revoke;
pub mod rotate;
mod run;
pub mod runpod;
pub mod scan;
pub mod schedule;
pub mod secret;
pub mod span;
pub mod status;
mod store;
#[cfg(feature = "sqlite")]
#[doc(hidden)]
pub use store::bulk_import;
#[cfg(feature = "postgres")]
pub use store::{
    PostgresPasswordFileIgnored, postgres_legacy_password_account, postgres_password_account,
    postgres_password_file_ignored,
};
mod sweep;
pub mod target;
// Public for the CLI's JSON, which writes the inventory's timestamps the same way.
#[doc(hidden)]
pub mod timestamp;
pub mod vault;
pub mod vault_secrets;

pub use admission::{Admitted, KeyOptions};
pub use audit::{AuditEvent, AuditHead, Outcome, Verification};
pub use callbacks::{Callbacks, FixedPassphrase, PassphraseKind, PassphraseRequest, Progress};
pub use child_env::ChildEnv;
pub use clock::{Clock, FixedClock, SystemClock};
pub use due::{DueKey, DueReason, DueResult, DueRotation, DueRun, Unattended};
pub use error::{
    AuditError, AuditLog, ConfigError, ConfiguredSource, Error, InputError, KeyError, NextStep,
    Operation, PolicyError, Provider, ProviderError, Refusal, RequestError, Result, SourceProblem,
    StoreError, TargetError, WorkItem,
};
pub use inventory::ParseError as InventoryParseError;
pub use inventory::{
    Deployment, Inventory, JournalEntry, KeyId, KeyRecord, KeyState, Origin, Protection, Purpose,
    Scope, Step, TargetProgress,
};
pub use keygen::Algorithm;
pub use mint::{MintRequest, Minted};
pub use names::{KeySelector, Principal, SourcePattern};
pub use observe::{KeyMatch, PodReport, Reach};
pub use policy::{
    Config, DEFAULT_LOCK_TIMEOUT, LocationError, PassphraseRule, PassphraseSource, Policy,
    ProviderProfile, RotationRule, RunpodProfile, StoreLocation,
};
pub use report::{Deployed, PodOutcome, PodOutcomeKind, PodRetry, Report, Retiring, Rotated};
pub use rotate::{PlannedRotation, RotateRequest, RotationPlan};
pub use runpod::{Pod, RunpodClient, RunpodError, RunpodSettings};
pub use scan::{ScanFinding, ScanFix, ScanKind, ScanReport};
pub use secret::{ApiToken, Passphrase, secrecy};
pub use span::{Span, parse_date};
pub use status::{
    Finding, FindingKind, InGrace, ParseSeverityError, Remedy, Severity, StatusReport,
    TargetSummary, Unchecked,
};
#[cfg(feature = "network")]
pub use target::{AccountTarget, ProviderCredentials, ProviderSettings};
pub use target::{
    Applied, FileTarget, RunpodCredentials, RunpodTarget, SshTarget, StandardTargets, Target,
    TargetSpec, Targets,
};
pub use vault::{Expiry, FaultHook, ImportKey, NewKey, PodProgress, PodProgressSink, Vault};

/// The `ssh-key` crate, re-exported because its types appear in this API.
pub use ssh_key;
pub use ssh_key::Fingerprint;
