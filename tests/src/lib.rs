//! Test support for keyvault's end-to-end scenarios: a faithful fake of the RunPod API
//! ([`fake_runpod`]), usable from tests and standalone (`cargo run -p keyvault-tests --bin
//! fake-runpod`).

// Test support, not published: field-level docs would repeat the names.
#![allow(missing_docs)]

pub mod fake_http;
pub mod fake_runpod;
mod openapi;
