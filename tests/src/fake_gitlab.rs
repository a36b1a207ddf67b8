//! A fake GitLab REST API v4 (user SSH keys) on 127.0.0.1, faithful to
//! `tests/gitlab/openapi-user-keys.json` and `shared/gitlab/FACTS.md`:
//!
//! - `GET`/`POST /api/v4/user/keys`, `GET`/`DELETE /api/v4/user/keys/{key_id}`; every
//!   request and answer is checked against the description, with the two places where
//!   GitLab's code and its description disagree taken from the code: `DELETE` answers 204
//!   without a body (the description says 200 with the key), and `expires_at` and
//!   `last_used_at` are `null` when unset (the description has no `nullable`);
//! - `PRIVATE-TOKEN` or `Authorization: Bearer`; tokens carry scopes (`api`, `read_api`,
//!   `read_user`): reads need any of them, writes need `api`, else 403 `insufficient_scope`;
//! - the answered `key` has its comment replaced by `Name (host)` ("so we don't leak email
//!   addresses"; [`FakeGitlab::set_rewrite_comments`] turns it off); `usage_type` defaults to
//!   `auth_and_signing`; `expires_at` in the past is refused (`key: has expired`) but a key
//!   that expires later stays listed; a key already on any account (this one or
//!   [`FakeGitlab::in_use_elsewhere`]) is refused (`fingerprint_sha256: has already been
//!   taken`); an admin's key restrictions ([`FakeGitlab::restrict`]);
//! - parameter errors as `{"error": "key is missing"}`, model errors as
//!   `{"message": {"key": [...]}}`, 401 `{"message": "401 Unauthorized"}`, 404 `404 Key Not
//!   Found`;
//! - lists paginated with `page`/`per_page` (default 20, at most 100, or less with
//!   [`FakeGitlab::set_page_size`]) and `X-Page`, `X-Per-Page`, `X-Next-Page`,
//!   `X-Prev-Page`, `X-Total`, `X-Total-Pages` and `Link` headers;
//! - faults ([`faults`]): 401, 403 and 404 on a missing scope, the duplicate, 429 with
//!   `RateLimit-*` and `Retry-After`, 5xx, a hang, a lost answer after a write.

use crate::fake_http::{self, Api, Request, Response, Server};
pub use crate::fake_http::{Action, Fault, Logged};
use crate::openapi::Spec;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The token [`FakeGitlab::start`] accepts, with the `api` scope. A test value.
pub const DEFAULT_TOKEN: &str = "glpat-FAKEtestTOKEN000000000";

/// The API prefix: `CI_API_V4_URL` is the server's URL plus this.
pub const PREFIX: &str = "/api/v4";

/// An administrator's rule for one key type (GitLab's "SSH key restrictions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// Keys of this type are refused.
    Forbidden,
    /// Keys of this type need at least this many bits.
    MinimumBits(u32),
}

/// A key on the fake account.
#[derive(Debug, Clone)]
pub struct GitlabKey {
    pub id: u64,
    pub title: String,
    /// The key as uploaded, comment included (GitLab stores it; the API answers another).
    pub key: String,
    /// As GitLab formats it (`2026-01-21T00:00:00.000Z`), if set.
    pub expires_at: Option<String>,
    pub usage_type: String,
    pub created_at: String,
}

struct Gitlab {
    spec: Spec,
    base_url: String,
    keys: Vec<GitlabKey>,
    elsewhere: Vec<String>,
    next_id: u64,
    tokens: Vec<(String, Vec<String>)>,
    page_size: usize,
    rewrite: bool,
    omit_totals: bool,
    user_name: String,
    restrictions: Vec<(String, Restriction)>,
    offset: chrono::TimeDelta,
    violations: Vec<String>,
}

fn json_response(status: u16, body: Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn model_error(attribute: &str, message: &str) -> Response {
    json_response(400, json!({"message": {attribute: [message]}}))
}

/// `type base64` of a key line.
fn key_body(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn gitlab_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// GitLab's name for a key's technology and its size in bits.
fn technology(key: &ssh_key::PublicKey) -> (&'static str, u32) {
    use ssh_key::public::KeyData;
    match key.key_data() {
        KeyData::Rsa(rsa) => {
            let n = rsa.n().as_positive_bytes().unwrap_or_default();
            let bits = n.len() as u32 * 8 - n.first().map_or(0, |b| b.leading_zeros());
            ("rsa", bits)
        }
        KeyData::Dsa(dsa) => (
            "dsa",
            dsa.p()
                .as_positive_bytes()
                .map_or(0, |p| p.len() as u32 * 8),
        ),
        KeyData::Ecdsa(e) => match e.curve() {
            ssh_key::EcdsaCurve::NistP256 => ("ecdsa", 256),
            ssh_key::EcdsaCurve::NistP384 => ("ecdsa", 384),
            ssh_key::EcdsaCurve::NistP521 => ("ecdsa", 521),
        },
        KeyData::Ed25519(_) => ("ed25519", 256),
        KeyData::SkEcdsaSha2NistP256(_) => ("ecdsa_sk", 256),
        KeyData::SkEd25519(_) => ("ed25519_sk", 256),
        _ => ("other", 0),
    }
}

impl Gitlab {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    fn token(&self, req: &Request) -> Option<usize> {
        let secret = req.header("private-token").or_else(|| {
            req.header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
        })?;
        self.tokens.iter().position(|(t, _)| t == secret.trim())
    }

    fn render(&self, k: &GitlabKey) -> Value {
        let key = if self.rewrite {
            let host = self.base_url.trim_start_matches("http://");
            let host = host.split(':').next().unwrap_or(host);
            format!("{} {} ({host})", key_body(&k.key), self.user_name)
        } else {
            k.key.clone()
        };
        json!({
            "id": k.id, "title": k.title, "created_at": k.created_at,
            "expires_at": k.expires_at, "last_used_at": null, "key": key,
            "usage_type": k.usage_type,
        })
    }

    fn list(&self, req: &Request) -> Response {
        let param = |name: &str, default: usize| req.query_number(name).unwrap_or(default);
        let per_page = param("per_page", 20).clamp(1, 100).min(self.page_size);
        let page = param("page", 1).max(1);
        let (range, pages) = fake_http::page_range(self.keys.len(), page, per_page);
        let body: Vec<Value> = self.keys[range].iter().map(|k| self.render(k)).collect();
        let mut r = json_response(200, Value::Array(body));
        let some = |p: usize, ok: bool| if ok { p.to_string() } else { String::new() };
        r.headers.extend([
            ("X-Page".to_owned(), page.to_string()),
            ("X-Per-Page".to_owned(), per_page.to_string()),
            ("X-Next-Page".to_owned(), some(page + 1, page < pages)),
            (
                "X-Prev-Page".to_owned(),
                some(page.saturating_sub(1), page > 1),
            ),
        ]);
        if !self.omit_totals {
            r.headers.extend([
                ("X-Total".to_owned(), self.keys.len().to_string()),
                ("X-Total-Pages".to_owned(), pages.to_string()),
            ]);
        }
        let base = format!("{}{PREFIX}/user/keys", self.base_url);
        if let Some(link) = fake_http::link_header(&base, page, pages, per_page) {
            // Without a total there is no last page to link to.
            let link: Vec<&str> = link
                .split(", ")
                .filter(|l| !(self.omit_totals && l.ends_with("rel=\"last\"")))
                .collect();
            r.headers.push(("Link".into(), link.join(", ")));
        }
        r
    }

    /// GitLab's model validations, in its order; `Ok` with the parsed expiry.
    fn validate(&self, body: &Value) -> Result<Option<DateTime<Utc>>, Response> {
        let title = body["title"].as_str().unwrap_or_default();
        if title.chars().count() > 255 {
            return Err(model_error(
                "title",
                "is too long (maximum is 255 characters)",
            ));
        }
        let line = body["key"].as_str().unwrap_or_default();
        let Ok(parsed) = ssh_key::PublicKey::from_openssh(&key_body(line)) else {
            return Err(json_response(
                400,
                json!({"message": {"key": ["is invalid"], "fingerprint_sha256": ["cannot be generated"]}}),
            ));
        };
        let (tech, bits) = technology(&parsed);
        match self
            .restrictions
            .iter()
            .find(|(t, _)| t == tech)
            .map(|r| r.1)
        {
            Some(Restriction::Forbidden) => {
                return Err(model_error(
                    "key",
                    &format!("type is forbidden. Must be {}", self.allowed()),
                ));
            }
            Some(Restriction::MinimumBits(min)) if bits < min => {
                return Err(model_error("key", &format!("must be at least {min} bits")));
            }
            _ => {}
        }
        let expires = match body["expires_at"].as_str() {
            Some(s) => {
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| json_response(400, json!({"error": "expires_at is invalid"})))?
                    .with_timezone(&Utc);
                if t <= self.now() {
                    return Err(model_error("key", "has expired"));
                }
                Some(t)
            }
            None => None,
        };
        let body_of = key_body(line);
        if self.keys.iter().any(|k| key_body(&k.key) == body_of)
            || self.elsewhere.contains(&body_of)
        {
            return Err(model_error("fingerprint_sha256", "has already been taken"));
        }
        Ok(expires)
    }

    /// The key types no restriction forbids, as GitLab words them ("RSA, ECDSA, or ED25519").
    fn allowed(&self) -> String {
        let names: Vec<String> = ["rsa", "dsa", "ecdsa", "ed25519", "ecdsa_sk", "ed25519_sk"]
            .iter()
            .filter(|t| {
                !self
                    .restrictions
                    .iter()
                    .any(|(r, x)| r == *t && *x == Restriction::Forbidden)
            })
            .map(|t| t.to_ascii_uppercase())
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{}, or {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => String::new(),
        }
    }

    fn create(&mut self, body: &Value) -> Response {
        let expires = match self.validate(body) {
            Ok(e) => e,
            Err(r) => return r,
        };
        self.next_id += 1;
        let line = body["key"].as_str().unwrap_or_default();
        let k = GitlabKey {
            id: self.next_id,
            title: body["title"].as_str().unwrap_or_default().to_owned(),
            // GitLab keeps the comment (`SSHPublicKey.sanitize`), one line, no newline.
            key: line.split_whitespace().collect::<Vec<_>>().join(" "),
            expires_at: expires.map(gitlab_time),
            usage_type: body["usage_type"]
                .as_str()
                .unwrap_or("auth_and_signing")
                .to_owned(),
            created_at: gitlab_time(self.now()),
        };
        let rendered = self.render(&k);
        self.keys.push(k);
        json_response(201, rendered)
    }

    fn one(&mut self, method: &str, id: &str) -> Response {
        let Some(i) = self.keys.iter().position(|k| id.parse() == Ok(k.id)) else {
            return json_response(404, json!({"message": "404 Key Not Found"}));
        };
        if method == "DELETE" {
            self.keys.remove(i);
            let mut r = json_response(204, Value::Null);
            r.body.clear();
            return r;
        }
        json_response(200, self.render(&self.keys[i]))
    }

    fn route(&mut self, req: &Request) -> Response {
        let Some(op) = self.spec.operation(&req.method, &req.path) else {
            return json_response(404, json!({"error": "404 Not Found"}));
        };
        let Some(t) = self.token(req) else {
            return json_response(401, json!({"message": "401 Unauthorized"}));
        };
        let scopes = &self.tokens[t].1;
        let allowed = if req.method == "GET" {
            scopes
                .iter()
                .any(|s| ["api", "read_api", "read_user"].contains(&s.as_str()))
        } else {
            scopes.iter().any(|s| s == "api")
        };
        if !allowed {
            return faults::insufficient_scope("api")
                .into_response("application/json")
                .expect("a Respond action");
        }
        let body = if req.body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(v) => Some(v),
                Err(_) => {
                    return json_response(
                        400,
                        json!({"error": "The request body is not valid JSON"}),
                    );
                }
            }
        };
        let problems = self.spec.check_request(&op, &req.query(), body.as_ref());
        if !problems.is_empty() {
            for p in &problems {
                self.violations
                    .push(format!("{} {}: {p}", req.method, req.path));
            }
            return param_error(&problems);
        }
        match (req.method.as_str(), op.path_params.first()) {
            ("GET", None) => self.list(req),
            ("POST", None) => self.create(&body.unwrap_or(Value::Null)),
            (method, Some((_, id))) => {
                let id = id.clone();
                self.one(method, &id)
            }
            _ => json_response(404, json!({"error": "404 Not Found"})),
        }
    }

    /// Checks an answer against the description (with GitLab's two known departures from
    /// it); an answer that breaks it is the fake's bug: recorded and turned into a 500.
    fn check_answer(&mut self, req: &Request, response: &mut Response) {
        let Some(op) = self.spec.operation(&req.method, &req.path) else {
            return;
        };
        let problems = if req.method == "DELETE" && response.status == 204 {
            // The description says 200 with the key; GitLab's code and docs say 204.
            if response.body.is_empty() {
                Vec::new()
            } else {
                vec!["a 204 answer has a body".to_owned()]
            }
        } else if self.spec.documents_status(&op, response.status) {
            self.spec
                .check_response(&op, response.status, &without_nulls(&response.body))
        } else if matches!(response.status, 401 | 403 | 404 | 412 | 429) || response.status >= 500 {
            // Documented in GitLab's REST docs for any endpoint (G14, G15, G16), not in the
            // description.
            Vec::new()
        } else {
            vec![format!("status {} is not documented", response.status)]
        };
        if problems.is_empty() {
            return;
        }
        let what = format!(
            "fake-gitlab answered {} {} with {} against its description: {}",
            req.method,
            req.path,
            response.status,
            problems.join("; ")
        );
        self.violations.push(what.clone());
        *response = json_response(500, json!({"message": what}));
    }
}

/// Grape's parameter errors: `key is missing`, `usage_type does not have a valid value`.
fn param_error(problems: &[String]) -> Response {
    let first = &problems[0];
    let message = match first.strip_prefix("$: missing property '") {
        Some(rest) => format!("{} is missing", rest.trim_end_matches('\'')),
        None => {
            let field = first
                .strip_prefix("$.")
                .or_else(|| first.strip_prefix("parameter "))
                .or_else(|| first.strip_prefix("query parameter '"))
                .and_then(|r| r.split([':', '\'']).next())
                .unwrap_or("request");
            format!("{field} is invalid")
        }
    };
    json_response(400, json!({"error": message}))
}

/// The body with `expires_at`/`last_used_at` nulls dropped: GitLab sends `null` for an
/// unset time though its description does not mark them nullable.
fn without_nulls(body: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(body) else {
        return body.to_owned();
    };
    let strip = |o: &mut Value| {
        if let Some(map) = o.as_object_mut() {
            map.retain(|k, v| !(v.is_null() && (k == "expires_at" || k == "last_used_at")));
        }
    };
    match &mut v {
        Value::Array(items) => items.iter_mut().for_each(strip),
        other => strip(other),
    }
    v.to_string()
}

impl Api for Gitlab {
    fn answer(&mut self, req: &Request) -> Response {
        self.route(req)
    }

    fn finish(&mut self, req: &Request, _fault: Option<&Action>, response: &mut Response) {
        self.check_answer(req, response);
    }

    fn preset(&self, spec: &Value) -> Option<Action> {
        let seconds = spec["seconds"].as_u64().unwrap_or(60);
        Some(match spec["fault"].as_str()? {
            "unauthorized" => faults::unauthorized(),
            "insufficient_scope" => {
                faults::insufficient_scope(spec["scope"].as_str().unwrap_or("api"))
            }
            "not_found" => faults::not_found(),
            "already_taken" => faults::already_taken(),
            "rate_limited" => faults::rate_limited(seconds),
            "server_error" => {
                faults::server_error(spec["status"].as_u64().map_or(500, |s| s as u16))
            }
            _ => return None,
        })
    }

    fn redact(&self, name: &str, value: &str) -> Option<String> {
        let (scheme, secret) = match name {
            "private-token" | "job-token" => ("", value),
            "authorization" => value.split_once(' ').unwrap_or(("", value)),
            _ => return None,
        };
        let which = self
            .tokens
            .iter()
            .position(|(t, _)| t == secret.trim())
            .map_or("unknown token".to_owned(), |i| format!("token {i}"));
        Some(format!("{scheme} [{which}]").trim_start().to_owned())
    }
}

/// A running fake GitLab API.
pub struct FakeGitlab {
    server: Server<Gitlab>,
}

impl FakeGitlab {
    /// Starts a server on an ephemeral port of 127.0.0.1 accepting [`DEFAULT_TOKEN`].
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a server on `port` (0 for any free port) accepting [`DEFAULT_TOKEN`].
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &[(DEFAULT_TOKEN, &["api"])])
    }

    /// Starts a server on `port` accepting exactly `tokens`, each with its scopes.
    pub fn start_with(port: u16, tokens: &[(&str, &[&str])]) -> Self {
        let api = Gitlab {
            spec: Spec::gitlab(),
            base_url: String::new(),
            keys: Vec::new(),
            elsewhere: Vec::new(),
            next_id: 2000,
            tokens: Vec::new(),
            page_size: 100,
            rewrite: true,
            omit_totals: false,
            user_name: "Test User".to_owned(),
            restrictions: Vec::new(),
            offset: chrono::TimeDelta::zero(),
            violations: Vec::new(),
        };
        let server = Server::start(port, api);
        let url = server.url();
        server.with(|g| g.base_url = url);
        let fake = FakeGitlab { server };
        for (t, scopes) in tokens {
            fake.allow_token(t, scopes);
        }
        fake
    }

    /// The server, `http://127.0.0.1:PORT` (what `GITLAB_HOST` would name).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The API root, `http://127.0.0.1:PORT/api/v4` (`CI_API_V4_URL`).
    pub fn api_url(&self) -> String {
        format!("{}{PREFIX}", self.server.url())
    }

    /// Turns on the control API (`/_fake/faults`, `/_fake/log`; see
    /// [`fake_http::Server::enable_control`]); fault names are those of [`faults`].
    pub fn enable_control_api(&self) {
        self.server.enable_control();
    }

    /// Leaves `X-Total` and `X-Total-Pages` out of list answers, as GitLab.com may for
    /// large collections (G13): a client must follow `X-Next-Page`.
    pub fn omit_totals(&self) {
        self.server.with(|g| g.omit_totals = true);
    }

    /// Accepts `token` too, with these scopes (`api`, `read_api`, `read_user`).
    pub fn allow_token(&self, token: &str, scopes: &[&str]) {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.server
            .with(|g| g.tokens.push((token.to_owned(), scopes)));
    }

    /// The account's keys, as stored (comments kept).
    pub fn keys(&self) -> Vec<GitlabKey> {
        self.server.with(|g| g.keys.clone())
    }

    /// Puts a key on the account as if added elsewhere, with no checks (so it may already
    /// be expired: GitLab keeps listing those); returns its id.
    pub fn add_key(
        &self,
        line: &str,
        title: &str,
        expires_at: Option<DateTime<Utc>>,
        usage_type: &str,
    ) -> u64 {
        self.server.with(|g| {
            g.next_id += 1;
            let created_at = gitlab_time(g.now());
            g.keys.push(GitlabKey {
                id: g.next_id,
                title: title.to_owned(),
                key: line.trim().to_owned(),
                expires_at: expires_at.map(gitlab_time),
                usage_type: usage_type.to_owned(),
                created_at,
            });
            g.next_id
        })
    }

    /// Marks `line`'s key as on another account (or a deploy key): adding it is refused.
    pub fn in_use_elsewhere(&self, line: &str) {
        self.server.with(|g| g.elsewhere.push(key_body(line)));
    }

    /// An administrator's restriction on `technology` (`rsa`, `dsa`, `ecdsa`, `ed25519`,
    /// `ecdsa_sk`, `ed25519_sk`).
    pub fn restrict(&self, technology: &str, rule: Restriction) {
        self.server.with(|g| {
            g.restrictions.retain(|(t, _)| t != technology);
            g.restrictions.push((technology.to_owned(), rule));
        });
    }

    /// Whether answers replace the key comment with `Name (host)` (on by default, as GitLab).
    pub fn set_rewrite_comments(&self, on: bool) {
        self.server.with(|g| g.rewrite = on);
    }

    /// The account holder's name, which answers put in place of the key comment.
    pub fn set_user_name(&self, name: &str) {
        self.server.with(|g| g.user_name = name.to_owned());
    }

    crate::forward_to_server!(paged);
}

/// Faults as GitLab answers them; arm with `FakeGitlab::fault(Fault::on(method, path,
/// action))` (`path` may end in `*`). A hang is [`Action::Hang`]; a lost answer after a
/// write is [`Action::DropAfter`].
pub mod faults {
    use super::Action;
    use serde_json::json;

    fn respond(status: u16, body: String, headers: &[(&str, String)]) -> Action {
        Action::respond(status, body, headers)
    }

    /// 401: the token is wrong, expired or revoked.
    pub fn unauthorized() -> Action {
        respond(401, json!({"message": "401 Unauthorized"}).to_string(), &[])
    }

    /// 403: the token lacks `scope`, which the body names.
    pub fn insufficient_scope(scope: &str) -> Action {
        let body = json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": scope,
        });
        respond(403, body.to_string(), &[])
    }

    /// 404 where a token without the scope cannot see the resource.
    pub fn not_found() -> Action {
        respond(404, json!({"message": "404 Not Found"}).to_string(), &[])
    }

    /// 400: the key is already on an account (GitLab checks fingerprints globally).
    pub fn already_taken() -> Action {
        let body = json!({"message": {"fingerprint_sha256": ["has already been taken"]}});
        respond(400, body.to_string(), &[])
    }

    /// 429 from the instance throttle: plain-text `Retry later`, `RateLimit-*` headers and
    /// `Retry-After: retry_after` (real time).
    pub fn rate_limited(retry_after: u64) -> Action {
        let now = chrono::Utc::now();
        let reset = now + chrono::TimeDelta::seconds(retry_after as i64);
        let headers = [
            ("RateLimit-Name", "throttle_authenticated_api".to_owned()),
            ("RateLimit-Limit", "7200".to_owned()),
            ("RateLimit-Observed", "7201".to_owned()),
            ("RateLimit-Remaining", "0".to_owned()),
            ("RateLimit-Reset", reset.timestamp().to_string()),
            (
                "RateLimit-ResetTime",
                reset.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            ),
            ("Retry-After", retry_after.to_string()),
        ];
        respond(429, "Retry later\n".to_owned(), &headers)
    }

    /// A server error (`status` 500, 502, 503 …).
    pub fn server_error(status: u16) -> Action {
        respond(
            status,
            json!({"message": "500 Internal Server Error"}).to_string(),
            &[],
        )
    }
}
