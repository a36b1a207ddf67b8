#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod audit;
pub mod callbacks;
pub mod clock;
pub mod error;
mod fsutil;
pub mod inventory;
pub mod keyfile;
pub mod keygen;
pub mod policy;
pub mod secret;
pub mod span;
pub mod status;
mod store;
pub mod vault;

pub use audit::{AuditEvent, AuditHead, Outcome, Verification};
pub use callbacks::{Callbacks, FixedPassphrase, PassphraseKind, PassphraseRequest, Progress};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{
    AuditError, ConfigError, Error, InputError, KeyError, PolicyError, Result, StoreError,
};
pub use inventory::{
    Deployment, Inventory, KeyId, KeyRecord, KeyState, Origin, Protection, Purpose,
};
pub use keygen::Algorithm;
pub use policy::{Config, PassphraseRule, Policy};
pub use secret::{Passphrase, secrecy};
pub use span::{Span, parse_date};
pub use status::{Finding, FindingKind, Severity, StatusReport};
pub use vault::{Expiry, ImportKey, NewKey, Vault};

/// The `ssh-key` crate, re-exported because its types appear in this API.
pub use ssh_key;
