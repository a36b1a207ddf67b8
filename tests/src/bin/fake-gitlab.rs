//! Runs the fake GitLab API so a person can try keyvault without an account:
//!
//! ```sh
//! cargo run -p keyvault-tests --bin fake-gitlab -- --port 8767
//! export CI_API_V4_URL=http://127.0.0.1:8767/api/v4 GITLAB_TOKEN=glpat-FAKEtestTOKEN000000000
//! keyvault deploy personal --to gitlab
//! ```
//!
//! `--scopes api` sets the test token's scopes (`api`, `read_api`, `read_user`),
//! `--keys-file FILE` preloads keys (one per line, not managed by keyvault), `--page-size N`
//! makes lists paginate after N keys.
//!
//! Faults are armed over its control API (not part of GitHub's or GitLab's), for example the
//! next key upload answered with a rate limit, then the request log (tokens redacted):
//!
//! ```sh
//! curl -X POST http://127.0.0.1:8767/_fake/faults \
//!      -d '{"method": "POST", "path": "/api/v4/user/keys", "fault": "rate_limited", "seconds": 30}'
//! curl http://127.0.0.1:8767/_fake/log
//! ```

use keyvault_tests::fake_cli::{Options, serve_until_killed};
use keyvault_tests::fake_gitlab::{DEFAULT_TOKEN, FakeGitlab};

fn main() {
    let o = Options::parse(
        "fake-gitlab",
        "a fake GitLab API v4 (user SSH keys) on 127.0.0.1",
        8767,
    );
    let scopes = o.scopes_or(&["api"]);
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let server = FakeGitlab::start_with(o.port, &[(DEFAULT_TOKEN, &scopes)]);
    for (i, line) in o.preload_keys().iter().enumerate() {
        server.add_key(
            line,
            &format!("preloaded {}", i + 1),
            None,
            "auth_and_signing",
        );
    }
    if let Some(n) = o.page_size {
        server.set_page_size(n);
    }
    server.enable_control_api();
    println!("fake GitLab API listening on {}", server.url());
    println!("  export CI_API_V4_URL={}", server.api_url());
    println!("  export GITLAB_TOKEN={DEFAULT_TOKEN}   # the fake's test token, not a real one");
    println!("press Ctrl-C to stop");
    serve_until_killed();
}
