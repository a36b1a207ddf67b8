//! Test support for keyvault's end-to-end scenarios: faithful fakes of the RunPod
//! ([`fake_runpod`]), GitHub ([`fake_github`]) and GitLab ([`fake_gitlab`]) APIs on one
//! shared HTTP server with faults and a request log ([`fake_http`]), usable from tests and
//! standalone (`cargo run -p keyvault-tests --bin fake-runpod`, `fake-github`,
//! `fake-gitlab`), and a throwaway PostgreSQL cluster ([`postgres`]).

// Test support, not published: field-level docs would repeat the names.
#![allow(missing_docs)]

pub mod fake_cli;
pub mod fake_github;
pub mod fake_gitlab;
pub mod fake_http;
pub mod fake_runpod;
mod openapi;
pub mod postgres;
