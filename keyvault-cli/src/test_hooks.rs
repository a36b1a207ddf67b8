//! Hooks for the end-to-end tests, read from `KEYVAULT_TEST_*` variables. Each is compiled
//! into debug builds only (the e2e suite runs the debug binary): a release build neither
//! reads the variables nor contains the code. The fault hook lives in `targets.rs`, the
//! PostgreSQL store's `KEYVAULT_TEST_LOOPBACK_IS_REMOTE` in keyvault-core's
//! `store/postgres/target.rs` (read where the store's URL is parsed).

/// `KEYVAULT_TEST_NOW=<RFC 3339 instant>` runs the command with that fixed time as
/// keyvault's clock (expiry, TTLs, grace periods, sweep, audit times), so tests move time
/// forward instead of sleeping. External clocks (ssh-agent lifetimes, sshd's checks of
/// `expiry-time` and certificates) still read the real time. Unset or empty: the system
/// clock. Anything else is a usage error.
#[cfg(debug_assertions)]
pub fn with_test_clock(vault: keyvault_core::Vault) -> Result<keyvault_core::Vault, String> {
    use chrono::{DateTime, SubsecRound, Utc};
    let Some(text) = std::env::var("KEYVAULT_TEST_NOW")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(vault);
    };
    let now = DateTime::parse_from_rfc3339(text.trim())
        .map_err(|e| format!("KEYVAULT_TEST_NOW={text:?} is not an RFC 3339 instant: {e}"))?
        .with_timezone(&Utc)
        .trunc_subsecs(0);
    Ok(vault.with_clock(std::sync::Arc::new(keyvault_core::FixedClock(now))))
}
