//! A fake GitHub REST API (user SSH keys) on 127.0.0.1, faithful to
//! `tests/github/openapi-user-keys.json` and `shared/github/FACTS.md`:
//!
//! - `GET`/`POST /user/keys`, `GET`/`DELETE /user/keys/{key_id}` and the same four under
//!   `/user/ssh_signing_keys`; every request and every answer is checked against the
//!   description (a request that breaks it gets GitHub's 422, an answer that breaks it is a
//!   bug in the fake: it becomes a 500 and is kept in [`FakeGithub::violations`]);
//! - `Authorization: Bearer` or `token`; tokens carry classic scopes (`admin:public_key`, …)
//!   or fine-grained permissions (`keys=write`, `git_signing_ssh_public_keys=read`); a
//!   missing scope answers 404 (GitHub's habit; 403 with [`FakeGithub::set_missing_scope_status`]),
//!   a missing fine-grained permission 403 "Resource not accessible by personal access token";
//! - a request without `User-Agent` is refused (403); an `X-GitHub-Api-Version` GitHub does
//!   not serve is a 400; `x-ratelimit-*` and `X-OAuth-Scopes`/`X-Accepted-OAuth-Scopes`
//!   headers on every answer;
//! - the stored `key` is `type base64` (the comment is not kept); a key already on this or
//!   another account is a 422 "key is already in use"; `sk-` keys are refused for
//!   authentication (the description's pattern) and accepted for signing;
//! - lists paginated with `per_page` (default 30, at most 100, or less with
//!   [`FakeGithub::set_page_size`]) and a `Link` header;
//! - faults ([`faults`]) for 401, 403 and 404 on a missing scope, the 422, primary and
//!   secondary rate limits, 5xx, a hang and a lost answer after a write.

use crate::fake_http::{self, Api, Request, Response, Server};
pub use crate::fake_http::{Action, Fault, Logged};
use crate::openapi::{Operation, Spec};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The token [`FakeGithub::start`] accepts: a classic token with `admin:public_key` and
/// `admin:ssh_signing_key`. A test value, not a real token.
pub const DEFAULT_TOKEN: &str = "ghp_FAKEtestTOKEN0000000000000000000000";

/// The `X-GitHub-Api-Version` values the fake serves (S5: others are refused).
pub const API_VERSIONS: &[&str] = &["2022-11-28", "2026-03-10"];

const DOCS: &str = "https://docs.github.com/rest";

/// Which list a key is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/user/keys`: authentication keys.
    Auth,
    /// `/user/ssh_signing_keys`: commit signing keys.
    Signing,
}

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::Auth => "/user/keys",
            Kind::Signing => "/user/ssh_signing_keys",
        }
    }
    /// Classic scopes accepted for reading, writing and deleting, and the fine-grained
    /// permission's name.
    fn scopes(self) -> ([&'static str; 3], &'static str) {
        match self {
            Kind::Auth => (
                ["read:public_key", "write:public_key", "admin:public_key"],
                "keys",
            ),
            Kind::Signing => (
                [
                    "read:ssh_signing_key",
                    "write:ssh_signing_key",
                    "admin:ssh_signing_key",
                ],
                "git_signing_ssh_public_keys",
            ),
        }
    }
}

/// A key on the fake account.
#[derive(Debug, Clone)]
pub struct GithubKey {
    pub id: u64,
    pub kind: Kind,
    /// `type base64`, as GitHub answers it (no comment).
    pub key: String,
    pub title: String,
    pub created_at: String,
}

struct Token {
    secret: String,
    scopes: Vec<String>,
}

impl Token {
    fn fine_grained(&self) -> bool {
        self.scopes.iter().any(|s| s.contains('='))
    }
}

struct Github {
    spec: Spec,
    base_url: String,
    keys: Vec<GithubKey>,
    elsewhere: Vec<String>,
    next_id: u64,
    tokens: Vec<Token>,
    page_size: usize,
    missing_scope_status: u16,
    remaining: u64,
    /// When the current rate-limit window ends (Unix time).
    reset: i64,
    /// The path the API is served under: empty for github.com, `/api/v3` for Enterprise.
    prefix: String,
    offset: chrono::TimeDelta,
    violations: Vec<String>,
}

/// `type base64` of a key line (its first two fields).
pub fn key_body(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn error(status: u16, message: &str) -> Response {
    json_response(
        status,
        json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
    )
}

fn json_response(status: u16, body: Value) -> Response {
    Response {
        status,
        content_type: "application/json; charset=utf-8",
        headers: Vec::new(),
        body: body.to_string(),
    }
}

/// The 422 GitHub answers a key it will not take.
fn validation_failed(message: &str) -> Response {
    json_response(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PublicKey", "code": "custom", "field": "key", "message": message}],
            "documentation_url": DOCS,
        }),
    )
}

impl Github {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// The operation a request names, its path taken under the prefix.
    fn operation(&self, req: &Request) -> Option<Operation<'_>> {
        let path = req.path.strip_prefix(self.prefix.as_str())?;
        self.spec.operation(&req.method, path)
    }

    /// The API base: the server's URL and the prefix.
    fn api_url(&self) -> String {
        format!("{}{}", self.base_url, self.prefix)
    }

    fn token(&self, req: &Request) -> Result<usize, Response> {
        let Some(auth) = req.header("authorization") else {
            return Err(error(401, "Requires authentication"));
        };
        let secret = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("token "));
        secret
            .and_then(|s| self.tokens.iter().position(|t| t.secret == s.trim()))
            .ok_or_else(|| error(401, "Bad credentials"))
    }

    /// `Ok` when token `t` may do `method` on `kind`'s keys.
    fn authorize(&self, t: usize, method: &str, kind: Kind) -> Result<(), Response> {
        let token = &self.tokens[t];
        let (levels, permission) = kind.scopes();
        let need = match method {
            "GET" => 0,
            "POST" => 1,
            _ => 2,
        };
        if token.fine_grained() {
            let level = if need == 0 { "read" } else { "write" };
            let ok = token.scopes.iter().any(|s| {
                s.split_once('=')
                    .is_some_and(|(p, l)| p == permission && (l == "write" || l == level))
            });
            if ok {
                return Ok(());
            }
            let mut r = error(403, "Resource not accessible by personal access token");
            r.headers.push((
                "X-Accepted-GitHub-Permissions".into(),
                format!("{permission}={level}"),
            ));
            return Err(r);
        }
        if levels[need..]
            .iter()
            .any(|l| token.scopes.iter().any(|s| s == l))
        {
            return Ok(());
        }
        Err(match self.missing_scope_status {
            403 => faults::missing_scope_forbidden(levels[need])
                .into_response("application/json; charset=utf-8")
                .expect("a Respond action"),
            _ => error(404, "Not Found"),
        })
    }

    fn render(&self, k: &GithubKey) -> Value {
        match k.kind {
            Kind::Auth => json!({
                "id": k.id, "key": k.key, "url": format!("{}/user/keys/{}", self.api_url(), k.id),
                "title": k.title, "created_at": k.created_at, "verified": true,
                "read_only": false, "last_used": null,
            }),
            Kind::Signing => json!({
                "id": k.id, "key": k.key, "title": k.title, "created_at": k.created_at,
            }),
        }
    }

    fn list(&self, req: &Request, kind: Kind) -> Response {
        let param = |name: &str, default: usize| req.query_number(name).unwrap_or(default);
        let per_page = param("per_page", 30).clamp(1, 100).min(self.page_size);
        let page = param("page", 1).max(1);
        let keys: Vec<&GithubKey> = self.keys.iter().filter(|k| k.kind == kind).collect();
        let (range, pages) = fake_http::page_range(keys.len(), page, per_page);
        let body: Vec<Value> = keys[range].iter().map(|k| self.render(k)).collect();
        let mut r = json_response(200, Value::Array(body));
        let base = format!("{}{}", self.api_url(), kind.base());
        if let Some(link) = fake_http::link_header(&base, page, pages, per_page) {
            r.headers.push(("Link".into(), link));
        }
        r
    }

    fn create(&mut self, body: &Value, kind: Kind) -> Response {
        let line = body["key"].as_str().unwrap_or_default();
        let key = key_body(line);
        if ssh_key::PublicKey::from_openssh(&key).is_err() {
            return validation_failed(
                "key is invalid. You must supply a key in OpenSSH public key format",
            );
        }
        let taken_here = self.keys.iter().any(|k| k.kind == kind && k.key == key);
        if taken_here || (kind == Kind::Auth && self.elsewhere.contains(&key)) {
            return validation_failed("key is already in use");
        }
        self.next_id += 1;
        let k = GithubKey {
            id: self.next_id,
            kind,
            key,
            // What GitHub does without a title is not documented; the fake keeps it empty.
            title: body["title"].as_str().unwrap_or_default().to_owned(),
            created_at: self.now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        };
        let rendered = self.render(&k);
        self.keys.push(k);
        json_response(201, rendered)
    }

    fn one(&mut self, method: &str, id: &str, kind: Kind) -> Response {
        let Some(i) = self
            .keys
            .iter()
            .position(|k| k.kind == kind && id.parse() == Ok(k.id))
        else {
            return error(404, "Not Found");
        };
        if method == "DELETE" {
            self.keys.remove(i);
            return Response {
                status: 204,
                content_type: "application/json; charset=utf-8",
                headers: Vec::new(),
                body: String::new(),
            };
        }
        json_response(200, self.render(&self.keys[i]))
    }

    fn route(&mut self, req: &Request) -> Response {
        if req.header("user-agent").is_none_or(str::is_empty) {
            return error(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
            );
        }
        if let Some(v) = req.header("x-github-api-version")
            && !API_VERSIONS.contains(&v)
        {
            return error(400, &format!("{v} is not a supported API version"));
        }
        let Some(op) = self.operation(req) else {
            return error(404, "Not Found");
        };
        let t = match self.token(req) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let kind = if op.template.starts_with("/user/keys") {
            Kind::Auth
        } else {
            Kind::Signing
        };
        if let Err(r) = self.authorize(t, &req.method, kind) {
            return r;
        }
        let body = if req.body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(v) if v.is_object() => Some(v),
                Ok(_) => return error(400, "Body should be a JSON object"),
                Err(_) => return error(400, "Problems parsing JSON"),
            }
        };
        let problems = self.spec.check_request(&op, &req.query(), body.as_ref());
        if !problems.is_empty() {
            if let Some(p) = problems
                .iter()
                .find(|p| p.starts_with("$.key: does not match"))
            {
                self.violations
                    .push(format!("{} {}: {p}", req.method, req.path));
                return validation_failed(
                    "key is invalid. You must supply a key in OpenSSH public key format",
                );
            }
            if problems.iter().any(|p| {
                p.starts_with("parameter key_id") || p.starts_with("parameter ssh_signing_key_id")
            }) {
                // GitHub's router matches integer ids only: anything else is no such page.
                let all = problems.join("; ");
                self.violations
                    .push(format!("{} {}: {all}", req.method, req.path));
                return error(404, "Not Found");
            }
            let status = if self.spec.documents_status(&op, 422) {
                422
            } else {
                400
            };
            return self.invalid_request(req, status, &problems);
        }
        match (req.method.as_str(), op.path_params.first()) {
            ("GET", None) => self.list(req, kind),
            ("POST", None) => self.create(&body.unwrap_or(Value::Null), kind),
            (method, Some((_, id))) => {
                let id = id.clone();
                self.one(method, &id, kind)
            }
            _ => error(404, "Not Found"),
        }
    }

    /// GitHub's "Invalid request" (S9): `status` 422 where the operation documents one, else
    /// the 400 GitHub answers a malformed request.
    fn invalid_request(&mut self, req: &Request, status: u16, problems: &[String]) -> Response {
        for p in problems {
            self.violations
                .push(format!("{} {}: {p}", req.method, req.path));
        }
        json_response(
            status,
            json!({
                "message": format!("Invalid request.\n\n{}", problems.join("\n")),
                "documentation_url": DOCS,
            }),
        )
    }

    /// Checks an answer against the description; an answer the description does not allow
    /// is the fake's bug: recorded, and turned into a 500 that says so.
    fn check_answer(&mut self, req: &Request, response: &mut Response) {
        let Some(op) = self.operation(req) else {
            return;
        };
        let problems = answer_problems(&self.spec, &op, response);
        if problems.is_empty() {
            return;
        }
        let what = format!(
            "fake-github answered {} {} with {} against its description: {}",
            req.method,
            req.path,
            response.status,
            problems.join("; ")
        );
        self.violations.push(what.clone());
        *response = json_response(500, json!({"message": what}));
    }
}

/// Statuses GitHub answers that the description leaves out: 400 (S9: bad JSON, unknown
/// API version), 410 (S5), 429 (S6, S7), and server errors.
fn undocumented_but_real(status: u16) -> bool {
    matches!(status, 400 | 410 | 429) || status >= 500
}

fn answer_problems(spec: &Spec, op: &Operation<'_>, r: &Response) -> Vec<String> {
    if spec.documents_status(op, r.status) {
        return spec.check_response(op, r.status, &r.body);
    }
    if undocumented_but_real(r.status) {
        return Vec::new();
    }
    vec![format!("status {} is not documented", r.status)]
}

impl Api for Github {
    fn answer(&mut self, req: &Request) -> Response {
        self.route(req)
    }

    fn finish(&mut self, req: &Request, _fault: Option<&Action>, response: &mut Response) {
        self.check_answer(req, response);
        let has =
            |r: &Response, name: &str| r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let token = self.token(req).ok();
        if token.is_some() && !has(response, "x-ratelimit-remaining") {
            // A fixed hour-long window, as GitHub counts: it resets when the hour is up.
            let now = self.now().timestamp();
            if now >= self.reset {
                (self.remaining, self.reset) = (5000, now + 3600);
            }
            self.remaining = self.remaining.saturating_sub(1);
            let reset = self.reset;
            for (k, v) in [
                ("x-ratelimit-limit", "5000".to_owned()),
                ("x-ratelimit-remaining", self.remaining.to_string()),
                ("x-ratelimit-used", (5000 - self.remaining).to_string()),
                ("x-ratelimit-reset", reset.to_string()),
                ("x-ratelimit-resource", "core".to_owned()),
            ] {
                response.headers.push((k.into(), v));
            }
        }
        if let Some(t) = token.map(|t| &self.tokens[t])
            && !t.fine_grained()
        {
            response
                .headers
                .push(("X-OAuth-Scopes".into(), t.scopes.join(", ")));
        }
        if let Some(op) = self.operation(req)
            && !has(response, "X-Accepted-OAuth-Scopes")
        {
            let kind = if op.template.starts_with("/user/keys") {
                Kind::Auth
            } else {
                Kind::Signing
            };
            let (levels, _) = kind.scopes();
            let need = match req.method.as_str() {
                "GET" => 0,
                "POST" => 1,
                _ => 2,
            };
            response
                .headers
                .push(("X-Accepted-OAuth-Scopes".into(), levels[need..].join(", ")));
        }
        response.headers.push((
            "X-GitHub-Media-Type".into(),
            "github.v3; format=json".into(),
        ));
    }

    fn preset(&self, spec: &Value) -> Option<Action> {
        let seconds = spec["seconds"].as_u64().unwrap_or(60);
        Some(match spec["fault"].as_str()? {
            "bad_credentials" => faults::bad_credentials(),
            "missing_scope_forbidden" => faults::missing_scope_forbidden(
                spec["scope"].as_str().unwrap_or("admin:public_key"),
            ),
            "missing_scope_not_found" => faults::missing_scope_not_found(),
            "already_in_use" => faults::already_in_use(),
            "rate_limited" => faults::rate_limited(seconds),
            "rate_limited_forbidden" => faults::rate_limited_forbidden(seconds),
            "secondary_rate_limit" => faults::secondary_rate_limit(seconds),
            "server_error" => {
                faults::server_error(spec["status"].as_u64().map_or(500, |s| s as u16))
            }
            _ => return None,
        })
    }

    fn redact(&self, name: &str, value: &str) -> Option<String> {
        if name != "authorization" {
            return None;
        }
        let (scheme, secret) = value.split_once(' ').unwrap_or(("", value));
        let which = self
            .tokens
            .iter()
            .position(|t| t.secret == secret.trim())
            .map_or("unknown token".to_owned(), |i| format!("token {i}"));
        Some(format!("{scheme} [{which}]"))
    }
}

/// A running fake GitHub API.
pub struct FakeGithub {
    server: Server<Github>,
}

impl FakeGithub {
    /// Starts a server on an ephemeral port of 127.0.0.1 accepting [`DEFAULT_TOKEN`].
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a server on `port` of 127.0.0.1 (0 for any free port) accepting
    /// [`DEFAULT_TOKEN`].
    pub fn start_on(port: u16) -> Self {
        Self::start_with(
            port,
            &[(
                DEFAULT_TOKEN,
                &["admin:public_key", "admin:ssh_signing_key"],
            )],
        )
    }

    /// Starts a server on `port` accepting exactly `tokens`, each with its classic scopes
    /// (`admin:public_key`) or fine-grained permissions (`keys=write`).
    pub fn start_with(port: u16, tokens: &[(&str, &[&str])]) -> Self {
        let api = Github {
            spec: Spec::github(),
            base_url: String::new(),
            keys: Vec::new(),
            elsewhere: Vec::new(),
            next_id: 1000,
            tokens: Vec::new(),
            page_size: 100,
            missing_scope_status: 404,
            remaining: 5000,
            reset: 0,
            prefix: String::new(),
            offset: chrono::TimeDelta::zero(),
            violations: Vec::new(),
        };
        let server = Server::start(port, api);
        let url = server.url();
        let fake = FakeGithub { server };
        fake.server.with(|g| g.base_url = url);
        for (t, scopes) in tokens {
            fake.allow_token(t, scopes);
        }
        fake
    }

    /// The API base, `http://127.0.0.1:PORT` (`GITHUB_API_URL`), with the Enterprise
    /// prefix if [`FakeGithub::serve_as_enterprise`] set one.
    pub fn url(&self) -> String {
        self.server.with(|g| g.api_url())
    }

    /// Serves the API under `/api/v3`, as GitHub Enterprise Server does (`https://HOST/api/v3`).
    pub fn serve_as_enterprise(&self) {
        self.server.with(|g| g.prefix = "/api/v3".to_owned());
    }

    /// Turns on the control API (`/_fake/faults`, `/_fake/log`; see
    /// [`fake_http::Server::enable_control`]); fault names are those of [`faults`].
    pub fn enable_control_api(&self) {
        self.server.enable_control();
    }

    /// Accepts `token` too, with these classic scopes or fine-grained permissions.
    pub fn allow_token(&self, token: &str, scopes: &[&str]) {
        self.server.with(|g| {
            g.tokens.push(Token {
                secret: token.to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            });
        });
    }

    /// The account's keys of `kind`, in the order GitHub lists them.
    pub fn keys(&self, kind: Kind) -> Vec<GithubKey> {
        self.server
            .with(|g| g.keys.iter().filter(|k| k.kind == kind).cloned().collect())
    }

    /// Puts a key on the account as if added elsewhere (by hand, by gh); returns its id.
    pub fn add_key(&self, kind: Kind, line: &str, title: &str) -> u64 {
        self.server.with(|g| {
            g.next_id += 1;
            let created_at = g.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            g.keys.push(GithubKey {
                id: g.next_id,
                kind,
                key: key_body(line),
                title: title.to_owned(),
                created_at,
            });
            g.next_id
        })
    }

    /// Marks `line`'s key as used by another account or as a deploy key: adding it as an
    /// authentication key fails with 422 "key is already in use".
    pub fn in_use_elsewhere(&self, line: &str) {
        self.server.with(|g| g.elsewhere.push(key_body(line)));
    }

    /// How a missing classic scope answers: 404 (default, as GitHub mostly does) or 403.
    pub fn set_missing_scope_status(&self, status: u16) {
        self.server.with(|g| g.missing_scope_status = status);
    }

    crate::forward_to_server!(paged);
}

/// Faults as GitHub answers them; arm with `FakeGithub::fault(Fault::on(method, path,
/// action))` (`path` may end in `*`). A hang is [`Action::Hang`]; a lost answer after a
/// write (it lands, the connection drops) is [`Action::DropAfter`].
pub mod faults {
    use super::{Action, DOCS};
    use serde_json::json;

    fn respond(status: u16, body: serde_json::Value, headers: &[(&str, String)]) -> Action {
        Action::respond(status, body.to_string(), headers)
    }

    fn basic(status: u16, message: &str) -> serde_json::Value {
        json!({"message": message, "documentation_url": DOCS, "status": status.to_string()})
    }

    /// 401: the token is wrong, expired or revoked.
    pub fn bad_credentials() -> Action {
        respond(401, basic(401, "Bad credentials"), &[])
    }

    /// 403 for a token without `scope`: the message and `X-Accepted-OAuth-Scopes` name it.
    pub fn missing_scope_forbidden(scope: &str) -> Action {
        respond(
            403,
            basic(
                403,
                &format!(
                    "Resource not accessible by personal access token; this endpoint needs the {scope} scope"
                ),
            ),
            &[("X-Accepted-OAuth-Scopes", scope.to_owned())],
        )
    }

    /// 404 for a token without the scope (GitHub hides what exists).
    pub fn missing_scope_not_found() -> Action {
        respond(404, basic(404, "Not Found"), &[])
    }

    /// 422: the key is on another account or is a deploy key.
    pub fn already_in_use() -> Action {
        respond(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PublicKey", "code": "custom", "field": "key", "message": "key is already in use"}],
                "documentation_url": DOCS,
            }),
            &[],
        )
    }

    /// The primary rate limit: 429 with `x-ratelimit-remaining: 0` and a reset `reset_in`
    /// seconds from now (real time).
    pub fn rate_limited(reset_in: u64) -> Action {
        primary_limit(429, reset_in)
    }

    /// The primary rate limit as GitHub also answers it: 403 (not a missing scope: the
    /// message and `x-ratelimit-remaining: 0` say so).
    pub fn rate_limited_forbidden(reset_in: u64) -> Action {
        primary_limit(403, reset_in)
    }

    fn primary_limit(status: u16, reset_in: u64) -> Action {
        let reset = chrono::Utc::now().timestamp() + reset_in as i64;
        respond(
            status,
            basic(status, "API rate limit exceeded for user ID 1."),
            &[
                ("x-ratelimit-limit", "5000".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-used", "5000".to_owned()),
                ("x-ratelimit-reset", reset.to_string()),
                ("x-ratelimit-resource", "core".to_owned()),
            ],
        )
    }

    /// A secondary rate limit: 403 with `retry-after: retry_after` and GitHub's message.
    pub fn secondary_rate_limit(retry_after: u64) -> Action {
        respond(
            403,
            basic(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            ),
            &[("retry-after", retry_after.to_string())],
        )
    }

    /// A server error (`status` 500, 502, 503 …).
    pub fn server_error(status: u16) -> Action {
        respond(status, json!({"message": "Server Error"}), &[])
    }
}
