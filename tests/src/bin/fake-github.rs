//! Runs the fake GitHub API so a person can try keyvault without an account:
//!
//! ```sh
//! cargo run -p keyvault-tests --bin fake-github -- --port 8766
//! export GITHUB_API_URL=http://127.0.0.1:8766 GH_TOKEN=ghp_FAKEtestTOKEN0000000000000000000000
//! keyvault deploy personal --to github
//! ```
//!
//! `--scopes admin:public_key,admin:ssh_signing_key` sets the test token's scopes (classic
//! scopes, or fine-grained permissions such as `keys=write`), `--keys-file FILE` preloads
//! authentication keys (one per line, not managed by keyvault), `--page-size N` makes lists
//! paginate after N keys.
//!
//! Faults are armed over its control API (not part of GitHub's or GitLab's), for example the
//! next key upload answered with a rate limit, then the request log (tokens redacted):
//!
//! ```sh
//! curl -X POST http://127.0.0.1:8766/_fake/faults \
//!      -d '{"method": "POST", "path": "/user/keys", "fault": "rate_limited", "seconds": 30}'
//! curl http://127.0.0.1:8766/_fake/log
//! ```

use keyvault_tests::fake_cli::{Options, serve_until_killed};
use keyvault_tests::fake_github::{DEFAULT_TOKEN, FakeGithub, Kind};

fn main() {
    let o = Options::parse(
        "fake-github",
        "a fake GitHub API (user SSH keys) on 127.0.0.1",
        8766,
    );
    let scopes = o.scopes_or(&["admin:public_key", "admin:ssh_signing_key"]);
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let server = FakeGithub::start_with(o.port, &[(DEFAULT_TOKEN, &scopes)]);
    for (i, line) in o.preload_keys().iter().enumerate() {
        server.add_key(Kind::Auth, line, &format!("preloaded {}", i + 1));
    }
    if let Some(n) = o.page_size {
        server.set_page_size(n);
    }
    server.enable_control_api();
    println!("fake GitHub API listening on {}", server.url());
    println!("  export GITHUB_API_URL={}", server.url());
    println!("  export GH_TOKEN={DEFAULT_TOKEN}   # the fake's test token, not a real one");
    println!("press Ctrl-C to stop");
    serve_until_killed();
}
