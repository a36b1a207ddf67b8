//! End-to-end scenarios through the `keyvault` binary, one test binary with modules.

mod secret_service;
mod support;

mod agent;
mod audit_log;
mod authorized_keys_reading;
mod backup;
mod bad_input;
mod cli_edges;
mod concurrency;
mod contention;
mod fake_server;
mod file_safety;
mod interop;
mod keyring;
mod keys;
mod passphrases;
mod pods;
mod provider_fakes;
mod refusals;
mod restore_audit;
mod rotate_due;
mod rotate_due_review;
mod rotation_matrix;
mod rotation_recovery;
mod runpod;
mod runpod_accounts;
mod scan;
mod scoped;
mod secrets;
mod ssh_logins;
mod sshd;
mod terminal;
mod test_clock;
