//! The fake GitHub and GitLab APIs for end-to-end tests: helpers to start each on
//! 127.0.0.1 and point the `keyvault` binary at it (`GH_TOKEN`/`GITHUB_API_URL`,
//! `GITLAB_TOKEN`/`CI_API_V4_URL`, as issue 16 names them), checks every provider test
//! wants (no token in any output, no write replayed, the API descriptions kept), and the
//! tests of the fakes themselves (`github`, `gitlab`): every documented endpoint answers as
//! its description says and every fault behaves as documented.

// The helpers serve the provider tests of the keyvault targets as well as the contract
// tests here; not all of them are used by both.
#![allow(dead_code)]

mod github;
mod gitlab;

use crate::support::{Run, Vault};
use keyvault_tests::fake_github::{self, FakeGithub};
use keyvault_tests::fake_gitlab::{self, FakeGitlab};
use keyvault_tests::fake_http::{Action, Fault, Logged};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// The environment that points `keyvault` at `server` with its test token.
pub fn github_env(server: &FakeGithub) -> Vec<(&'static str, String)> {
    vec![
        ("GH_TOKEN", fake_github::DEFAULT_TOKEN.to_owned()),
        ("GITHUB_API_URL", server.url()),
    ]
}

/// The environment that points `keyvault` at `server` with its test token.
pub fn gitlab_env(server: &FakeGitlab) -> Vec<(&'static str, String)> {
    vec![
        ("GITLAB_TOKEN", fake_gitlab::DEFAULT_TOKEN.to_owned()),
        ("CI_API_V4_URL", server.api_url()),
    ]
}

/// Points a test vault at the provider fakes.
pub trait UseProviders {
    /// Sets [`github_env`] for every later command.
    fn use_github(&self, server: &FakeGithub);
    /// Sets [`gitlab_env`] for every later command.
    fn use_gitlab(&self, server: &FakeGitlab);
}

impl UseProviders for Vault {
    fn use_github(&self, server: &FakeGithub) {
        for (k, v) in github_env(server) {
            self.set_env(k, &v);
        }
    }
    fn use_gitlab(&self, server: &FakeGitlab) {
        for (k, v) in gitlab_env(server) {
            self.set_env(k, &v);
        }
    }
}

/// Every token the fakes accept by default: none may appear in any output.
pub const TOKENS: &[&str] = &[fake_github::DEFAULT_TOKEN, fake_gitlab::DEFAULT_TOKEN];

/// Asserts neither stream of `run` holds a provider token (nor the other secrets
/// [`Run::no_secrets`] knows).
#[track_caller]
pub fn assert_no_tokens(run: Run) -> Run {
    for t in TOKENS {
        assert!(!run.stdout.contains(t), "token in stdout:\n{}", run.stdout);
        assert!(!run.stderr.contains(t), "token in stderr:\n{}", run.stderr);
    }
    run.no_secrets()
}

/// Asserts no file under `dir` holds a provider token.
#[track_caller]
pub fn assert_no_tokens_on_disk(dir: &Path) {
    for (path, _) in crate::support::snapshot(dir) {
        let Ok(bytes) = std::fs::read(dir.join(&path)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for t in TOKENS {
            assert!(!text.contains(t), "token in {}", path.display());
        }
    }
}

/// Asserts no write (POST, DELETE …) in `log` was sent twice with the same target and body:
/// a client must read the list back, not replay a write whose answer it lost.
#[track_caller]
pub fn assert_no_write_replayed(log: &[Logged]) {
    let writes: Vec<&Logged> = log.iter().filter(|r| r.is_write()).collect();
    for (i, a) in writes.iter().enumerate() {
        for b in &writes[i + 1..] {
            assert!(
                !(a.method == b.method && a.target == b.target && a.body == b.body),
                "write replayed: {} {} {}",
                a.method,
                a.target,
                a.body
            );
        }
    }
}

/// Asserts a fake at `base` (the API base, whose key list is `/user/keys`, at `fault_path`
/// on the server) loses answers and hangs when told: with [`Action::DropAfter`] armed
/// through `arm`, a new key POSTed with `headers` lands (`held` counts one key) but no
/// answer comes; with a 3 s [`Action::Hang`] armed, a GET gets no answer within 500 ms.
#[track_caller]
pub fn assert_loses_answers_and_hangs(
    base: &str,
    fault_path: &str,
    headers: &[(&str, &str)],
    arm: &dyn Fn(Fault),
    held: &dyn Fn() -> usize,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A lost answer: the write lands, the connection closes without a word.
    arm(Fault::on("POST", fault_path, Action::DropAfter));
    let key = public_key(dir.path(), "ed25519", "z");
    let body = serde_json::json!({"key": key, "title": "lost"}).to_string();
    let post = try_call(
        base,
        "POST",
        "/user/keys",
        headers,
        Some(&body),
        Duration::from_secs(5),
    );
    assert!(post.is_none(), "the lost answer came");
    assert_eq!(held(), 1, "the write landed though its answer was lost");
    // A hang: no answer within the client's patience.
    arm(Fault::on(
        "GET",
        fault_path,
        Action::Hang(Duration::from_secs(3)),
    ));
    let get = try_call(
        base,
        "GET",
        "/user/keys",
        headers,
        None,
        Duration::from_millis(500),
    );
    assert!(get.is_none(), "the hang answered");
}

/// Asserts every request in a GitHub fake's `log` carried what GitHub asks of a client: a
/// `User-Agent`, the API version header (`X-GitHub-Api-Version: 2022-11-28`) and a token in
/// the `Authorization` header only.
#[track_caller]
pub fn assert_github_client_headers(log: &[Logged]) {
    for r in log {
        let what = format!("{} {}", r.method, r.target);
        assert!(
            r.header("user-agent").is_some_and(|v| !v.is_empty()),
            "no User-Agent: {what}"
        );
        assert_eq!(
            r.header("x-github-api-version"),
            Some("2022-11-28"),
            "{what}"
        );
        assert!(
            r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer [token") || a.starts_with("token [token")),
            "{what}"
        );
        assert!(!r.target.contains("token="), "a token in the query: {what}");
    }
}

/// Asserts the log of a fake holds no token value.
#[track_caller]
pub fn assert_log_has_no_token(log: &[Logged]) {
    for r in log {
        let text = format!("{r:?}");
        for t in TOKENS {
            assert!(!text.contains(t), "token in the request log: {text}");
        }
    }
}

/// An HTTP answer as a test reads it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// Header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Sends one HTTP/1.1 request to `url` (`http://127.0.0.1:PORT…`) + `target`; `None` when
/// the connection closed without an answer or none came within `timeout`.
pub fn try_call(
    url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> Option<Answer> {
    let rest = url.trim_start_matches("http://");
    let (addr, prefix) = rest
        .split_once('/')
        .map_or((rest, String::new()), |(a, p)| (a, format!("/{p}")));
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(timeout)).expect("timeout");
    let mut head =
        format!("{method} {prefix}{target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    conn.write_all(head.as_bytes()).expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// [`try_call`] that expects an answer within 10 s.
#[track_caller]
pub fn call(
    url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    try_call(url, method, target, headers, body, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no answer to {method} {target}"))
}

/// A fresh OpenSSH public key line (`ssh-keygen`, the oracle), comment `comment`.
pub fn public_key(dir: &Path, kind: &str, comment: &str) -> String {
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let path = dir.join(format!("key{n}"));
    let mut args = vec!["-q", "-t", kind, "-N", "", "-C", comment, "-f"];
    let p = path.to_str().expect("utf-8 path");
    args.push(p);
    if kind == "rsa" {
        args.extend(["-b", "2048"]);
    }
    let out = std::process::Command::new("ssh-keygen")
        .args(&args)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path.with_extension("pub"))
        .expect("read public key")
        .trim()
        .to_owned()
}

/// A security-key (`sk-ssh-ed25519@openssh.com`) public key line; `ssh-keygen -lf` reads it
/// (`ED25519-SK`), but making one needs hardware, so its 32 key bytes are 1..=32.
pub const SK_KEY: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gAAAABHNzaDo= yubikey";
