//! A fake RunPod API on 127.0.0.1, faithful to `tests/runpod/openapi-v2.json` and
//! `shared/runpod/FACTS.md` for the parts keyvault uses:
//!
//! - `GET`/`PUT /v2/account/ssh-keys` (complete replacement; bodies validated against the
//!   OpenAPI schema, 422 with `errors` otherwise), `GET /v2/pods`, `GET`/`PATCH
//!   /v2/pods/{id}`;
//! - GraphQL `myself { pubKey }` and `updateUserSettings` (which must pass the list through
//!   variables), with RunPod's error habits (HTTP 401 for a bad key, 200 with `errors` for
//!   the rest);
//! - bearer auth, `application/problem+json` errors, `RateLimit` headers on authenticated
//!   answers, read-only keys;
//! - injectable faults: any status with body and headers, a hang, a truncated or non-JSON
//!   body, v2 absent, and a concurrent stale writer.
//!
//! Every request is logged so tests can count API calls.

pub use crate::fake_http::{Action, Fault, Logged};
use crate::fake_http::{Api, Request, Response, Server};
use crate::openapi::Spec;
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Debug)]
struct State {
    keys: Vec<String>,
    pods: Vec<Value>,
    tokens: BTreeMap<String, bool>,
    v2: bool,
    snapshot_at_last_read: Vec<String>,
}

struct Runpod {
    st: State,
    spec: Spec,
}

impl Api for Runpod {
    fn answer(&mut self, req: &Request) -> Response {
        handle(req, &mut self.st, &self.spec)
    }

    fn finish(&mut self, req: &Request, fault: Option<&Action>, response: &mut Response) {
        let st = &mut self.st;
        let authorized = req
            .headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| st.tokens.contains_key(t));
        if authorized && response.status != 401 {
            response.headers.push((
                "RateLimit".into(),
                "\"minute\";r=59;t=60, \"hour\";r=2999;t=3600".into(),
            ));
            response.headers.push((
                "RateLimit-Policy".into(),
                "\"minute\";q=60;w=60, \"hour\";q=3000;w=3600".into(),
            ));
        }
        if let Some(Action::StaleWriter { add }) = fault {
            let mut stale = st.snapshot_at_last_read.clone();
            stale.extend(add.iter().cloned());
            st.keys = stale;
        }
    }

    fn fault_json_type(&self) -> &'static str {
        "application/problem+json"
    }
}

/// A running fake RunPod server.
pub struct FakeRunpod {
    server: Server<Runpod>,
}

/// The API key the server accepts with write access unless told otherwise.
pub const DEFAULT_KEY: &str = "rpa_TESTKEY0123456789abcdef";

impl FakeRunpod {
    /// Starts a server on an ephemeral port of 127.0.0.1 accepting [`DEFAULT_KEY`].
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a server on `port` of 127.0.0.1 (0 for any free port).
    pub fn start_on(port: u16) -> Self {
        let st = State {
            keys: Vec::new(),
            pods: Vec::new(),
            tokens: BTreeMap::from([(DEFAULT_KEY.to_owned(), true)]),
            v2: true,
            snapshot_at_last_read: Vec::new(),
        };
        let api = Runpod {
            st,
            spec: Spec::load(),
        };
        FakeRunpod {
            server: Server::start(port, api),
        }
    }

    /// `http://127.0.0.1:PORT`, the REST base (`RUNPOD_API_URL`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The GraphQL endpoint (`RUNPOD_GRAPHQL_URL`).
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.server.url())
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.server.with(|api| f(&mut api.st))
    }

    /// The account's key list, exactly.
    pub fn keys(&self) -> Vec<String> {
        self.with(|st| st.keys.clone())
    }

    /// Replaces the account's key list.
    pub fn set_keys(&self, keys: &[&str]) {
        self.with(|st| st.keys = keys.iter().map(|k| (*k).to_owned()).collect());
    }

    /// Adds a pod (a JSON object as `GET /v2/pods` returns it).
    pub fn add_pod(&self, pod: Value) {
        self.with(|st| st.pods.push(pod));
    }

    /// Takes a pod out of the list, as the API forgets a pod some time after it is
    /// terminated.
    pub fn remove_pod(&self, id: &str) {
        self.with(|st| st.pods.retain(|p| p["id"] != id));
    }

    /// Sets a pod's status (e.g. `EXITED` for a stopped pod, `TERMINATED`).
    pub fn set_pod_status(&self, id: &str, status: &str) {
        self.with(|st| {
            for p in st.pods.iter_mut().filter(|p| p["id"] == id) {
                p["status"] = json!(status);
            }
        });
    }

    /// Accepts `token`, with write access or read-only.
    pub fn allow_token(&self, token: &str, can_write: bool) {
        self.with(|st| st.tokens.insert(token.to_owned(), can_write));
    }

    /// Turns REST v2 off (every `/v2/...` answers 404), leaving GraphQL.
    pub fn disable_v2(&self) {
        self.with(|st| st.v2 = false);
    }

    crate::forward_to_server!();

    /// `(reads, writes)` of the key list so far, over either API (v2's 404s, which only
    /// tell a client to use GraphQL, are not counted).
    pub fn key_calls(&self) -> (usize, usize) {
        let log = self.log();
        let reads = log
            .iter()
            // A 404 from v2 only tells a client to use GraphQL; it is not a read.
            .filter(|r| r.status != 404)
            .filter(|r| {
                (r.method == "GET" && r.path == "/v2/account/ssh-keys")
                    || (r.path == "/graphql" && !r.body.contains("mutation"))
            })
            .count();
        let writes = log
            .iter()
            .filter(|r| {
                (r.method == "PUT" && r.path == "/v2/account/ssh-keys")
                    || (r.path == "/graphql" && r.body.contains("mutation"))
            })
            .count();
        (reads, writes)
    }
}

fn problem(status: u16, title: &str, detail: &str, errors: Option<Vec<String>>) -> Response {
    let mut body = json!({"title": title, "status": status, "detail": detail});
    if let Some(e) = errors {
        body["errors"] = json!(e);
    }
    Response {
        status,
        content_type: "application/problem+json",
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn ok(body: Value) -> Response {
    Response {
        status: 200,
        content_type: "application/json",
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn handle(req: &Request, st: &mut State, spec: &Spec) -> Response {
    let token = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    let access = token.as_ref().and_then(|t| st.tokens.get(t).copied());
    let Some(can_write) = access else {
        let detail = if token.is_none() {
            "missing bearer token"
        } else {
            "invalid bearer token"
        };
        return problem(401, "Unauthorized", detail, None);
    };
    if req.path == "/graphql" {
        return graphql(req, st, can_write);
    }
    if !req.path.starts_with("/v2/") || !st.v2 {
        return problem(404, "Not Found", "resource not found", None);
    }
    let body: Option<Value> = if req.body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => Some(v),
            Err(e) => {
                return problem(
                    400,
                    "Bad Request",
                    &format!("request body is not JSON: {e}"),
                    None,
                );
            }
        }
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/account/ssh-keys") => {
            st.snapshot_at_last_read = st.keys.clone();
            ok(json!({ "keys": st.keys }))
        }
        ("PUT", "/v2/account/ssh-keys") => {
            let body = match admit_write(spec, can_write, "/v2/account/ssh-keys", "put", body) {
                Ok(body) => body,
                Err(refusal) => return refusal,
            };
            st.keys = body["keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(ToOwned::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            ok(json!({ "keys": st.keys }))
        }
        ("GET", "/v2/pods") => ok(json!({ "pods": st.pods })),
        (method, path) if path.starts_with("/v2/pods/") => {
            let id = &path["/v2/pods/".len()..];
            let Some(pod) = st.pods.iter_mut().find(|p| p["id"] == id) else {
                return problem(404, "Not Found", "pod not found", None);
            };
            match method {
                "GET" => ok(pod.clone()),
                "PATCH" => {
                    let body = match admit_write(spec, can_write, "/v2/pods/{id}", "patch", body) {
                        Ok(body) => body,
                        Err(refusal) => return refusal,
                    };
                    if let (Some(obj), Some(update)) = (pod.as_object_mut(), body.as_object()) {
                        for (k, v) in update {
                            obj.insert(k.clone(), v.clone());
                        }
                    }
                    ok(pod.clone())
                }
                _ => problem(
                    405,
                    "Method Not Allowed",
                    "The requested method is not allowed for this path.",
                    None,
                ),
            }
        }
        _ => problem(404, "Not Found", "resource not found", None),
    }
}

/// A REST write's body, or the answer that refuses it: 403 for a read-only key, 422 when
/// the body breaks the OpenAPI document's request schema for `method` on `path`.
fn admit_write(
    spec: &Spec,
    can_write: bool,
    path: &str,
    method: &str,
    body: Option<Value>,
) -> Result<Value, Response> {
    if !can_write {
        return Err(problem(403, "Forbidden", "access denied", None));
    }
    let body = body.unwrap_or(Value::Null);
    let errors = spec.validate(spec.request_schema(path, method), &body);
    if !errors.is_empty() {
        return Err(problem(
            422,
            "Unprocessable Entity",
            "Request validation failed.",
            Some(errors),
        ));
    }
    Ok(body)
}

fn graphql(req: &Request, st: &mut State, can_write: bool) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return ok(json!({"errors": [{"message": "Must provide query string."}]})),
    };
    let query = body["query"].as_str().unwrap_or("");
    if query.contains("mutation") {
        if query.contains("ssh-") || query.contains("AAAA") {
            return ok(
                json!({"errors": [{"message": "keys must be passed through variables, not in the query text"}]}),
            );
        }
        if !query.contains("updateUserSettings") || !query.contains("$input") {
            return ok(json!({"errors": [{"message": "Cannot query field on type Mutation."}]}));
        }
        if !can_write {
            return ok(
                json!({"errors": [{"message": "Unauthorized"}], "data": {"updateUserSettings": null}}),
            );
        }
        let Some(pub_key) = body
            .pointer("/variables/input/pubKey")
            .and_then(Value::as_str)
        else {
            return ok(json!({"errors": [{"message": "Variable \"$input\" got invalid value."}]}));
        };
        st.keys = pub_key
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .map(ToOwned::to_owned)
            .collect();
        return ok(json!({"data": {"updateUserSettings": {"id": "user_fake"}}}));
    }
    if query.contains("myself") {
        st.snapshot_at_last_read = st.keys.clone();
        // RunPod's own clients join keys with a blank line.
        let pub_key = if st.keys.is_empty() {
            Value::Null
        } else {
            json!(st.keys.join("\n\n"))
        };
        return ok(json!({"data": {"myself": {"id": "user_fake", "pubKey": pub_key}}}));
    }
    ok(json!({"errors": [{"message": "Cannot query field on type Query."}]}))
}

/// A pod object as `GET /v2/pods` returns it, with `PUBLIC_KEY` set to `public_keys`
/// and a direct SSH endpoint at `direct` (`None`: proxy only).
pub fn pod(id: &str, status: &str, public_keys: &[&str], direct: Option<(&str, u16)>) -> Value {
    let direct = direct.map(|(host, port)| {
        json!({"host": host, "port": port, "username": "root", "command": format!("ssh root@{host} -p {port}")})
    });
    json!({
        "id": id,
        "name": format!("pod-{id}"),
        "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
        "args": "",
        "disk": 50,
        "ports": if direct.is_some() { json!(["8888/http", "22/tcp"]) } else { json!(["8888/http"]) },
        "env": {"PUBLIC_KEY": public_keys.join("\n"), "MODEL_NAME": "llama-3"},
        "registry": null,
        "status": status,
        "actions": ["stop", "restart", "terminate"],
        "mounts": {"persistent": {"size": 20, "path": "/workspace"}},
        "cloud": "SECURE",
        "dataCenterId": "US-KS-2",
        "cudaVersion": "12.8",
        "ssh": {
            "proxy": {"host": "ssh.runpod.io", "port": 22, "username": format!("{id}-64411eb2"), "command": format!("ssh {id}-64411eb2@ssh.runpod.io")},
            "direct": direct,
        },
        "template": null,
        "cost": 0.44,
        "locked": false,
        "globalNetworking": {"enabled": false},
        "runtime": null,
        "createdAt": "2026-06-01T12:00:00Z",
        "startedAt": "2026-06-01T12:02:00Z",
    })
}
