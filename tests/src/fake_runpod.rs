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

use crate::openapi::Spec;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a fault does instead of (or around) the normal answer.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with this status, body and extra headers.
    Respond {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Wait this long before answering normally (past the client's timeout, it never sees it).
    Hang(Duration),
    /// Process the request, then send only part of the answer and close.
    Truncate,
    /// Process the request, then answer 200 with a body that is not JSON.
    NotJson,
    /// Process the request, then let a stale writer (one that read before it) overwrite the
    /// key list with what it held then plus `add`.
    StaleWriter { add: Vec<String> },
    /// Process the request and then drop the connection without answering.
    DropAfter,
}

/// A fault armed for the next `times` requests that match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<String>,
    pub path: Option<String>,
    pub action: Action,
    pub times: usize,
}

impl Fault {
    /// A fault for requests with `method` (e.g. `PUT`) to `path` (e.g. `/graphql`).
    pub fn on(method: &str, path: &str, action: Action) -> Self {
        Fault {
            method: Some(method.to_owned()),
            path: Some(path.to_owned()),
            action,
            times: 1,
        }
    }
    /// Arm it for `n` matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|p| p == path)
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The request target as sent, query string included.
    pub target: String,
    pub authorization: Option<String>,
    pub body: String,
    pub status: u16,
}

#[derive(Debug)]
struct State {
    keys: Vec<String>,
    pods: Vec<Value>,
    tokens: BTreeMap<String, bool>,
    v2: bool,
    faults: VecDeque<Fault>,
    log: Vec<Logged>,
    snapshot_at_last_read: Vec<String>,
}

/// A running fake RunPod server.
pub struct FakeRunpod {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
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
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            keys: Vec::new(),
            pods: Vec::new(),
            tokens: BTreeMap::from([(DEFAULT_KEY.to_owned(), true)]),
            v2: true,
            faults: VecDeque::new(),
            log: Vec::new(),
            snapshot_at_last_read: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let spec = Arc::new(Spec::load());
        {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = Arc::clone(&state);
                    let spec = Arc::clone(&spec);
                    std::thread::spawn(move || serve(conn, &state, &spec));
                }
            });
        }
        FakeRunpod { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT`, the REST base (`RUNPOD_API_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The GraphQL endpoint (`RUNPOD_GRAPHQL_URL`).
    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The account's key list, exactly.
    pub fn keys(&self) -> Vec<String> {
        self.state().keys.clone()
    }

    /// Replaces the account's key list.
    pub fn set_keys(&self, keys: &[&str]) {
        self.state().keys = keys.iter().map(|k| (*k).to_owned()).collect();
    }

    /// Adds a pod (a JSON object as `GET /v2/pods` returns it).
    pub fn add_pod(&self, pod: Value) {
        self.state().pods.push(pod);
    }

    /// Sets a pod's status (e.g. `TERMINATED`).
    pub fn set_pod_status(&self, id: &str, status: &str) {
        for p in self.state().pods.iter_mut().filter(|p| p["id"] == id) {
            p["status"] = json!(status);
        }
    }

    /// Accepts `token`, with write access or read-only.
    pub fn allow_token(&self, token: &str, can_write: bool) {
        self.state().tokens.insert(token.to_owned(), can_write);
    }

    /// Turns REST v2 off (every `/v2/...` answers 404), leaving GraphQL.
    pub fn disable_v2(&self) {
        self.state().v2 = false;
    }

    /// Arms a fault.
    pub fn fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state().log.clear();
    }

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

impl Drop for FakeRunpod {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    method: String,
    path: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(8 << 20)];
    reader.read_exact(&mut body).ok()?;
    let path = target.split('?').next().unwrap_or("").to_owned();
    Some(Request {
        method,
        path,
        target,
        headers,
        body,
    })
}

struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: String,
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(conn: &mut TcpStream, r: &Response, truncate: bool) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let body = if truncate {
        &r.body[..r.body.len() / 2]
    } else {
        &r.body[..]
    };
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
    let _ = conn.flush();
}

fn serve(mut conn: TcpStream, state: &Mutex<State>, spec: &Spec) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&conn) else {
        return;
    };
    let lock = || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let fault = {
        let mut st = lock();
        let pos = st
            .faults
            .iter()
            .position(|f| f.matches(&req.method, &req.path));
        pos.map(|i| {
            let f = st.faults[i].clone();
            st.faults[i].times -= 1;
            if st.faults[i].times == 0 {
                st.faults.remove(i);
            }
            f.action
        })
    };
    if let Some(Action::Hang(d)) = &fault {
        std::thread::sleep(*d);
    }
    let mut response = match &fault {
        Some(Action::Respond {
            status,
            body,
            headers,
        }) => Response {
            status: *status,
            content_type: if body.trim_start().starts_with('{') {
                "application/problem+json"
            } else {
                "text/plain"
            },
            headers: headers.clone(),
            body: body.clone(),
        },
        _ => handle(&req, &mut lock(), spec),
    };
    let authorized = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| lock().tokens.contains_key(t));
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
    {
        let mut st = lock();
        if let Some(Action::StaleWriter { add }) = &fault {
            let mut stale = st.snapshot_at_last_read.clone();
            stale.extend(add.iter().cloned());
            st.keys = stale;
        }
        st.log.push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            target: req.target.clone(),
            authorization: req.headers.get("authorization").cloned(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status: response.status,
        });
    }
    match fault {
        Some(Action::DropAfter) => {}
        Some(Action::Truncate) => write_response(&mut conn, &response, true),
        Some(Action::NotJson) => {
            response.body = "<html>502 Bad Gateway</html>".to_owned();
            response.status = 200;
            response.content_type = "text/html";
            write_response(&mut conn, &response, false);
        }
        _ => write_response(&mut conn, &response, false),
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
            if !can_write {
                return problem(403, "Forbidden", "access denied", None);
            }
            let body = body.unwrap_or(Value::Null);
            let errors = spec.validate(spec.request_schema("/v2/account/ssh-keys", "put"), &body);
            if !errors.is_empty() {
                return problem(
                    422,
                    "Unprocessable Entity",
                    "Request validation failed.",
                    Some(errors),
                );
            }
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
                    if !can_write {
                        return problem(403, "Forbidden", "access denied", None);
                    }
                    let body = body.unwrap_or(Value::Null);
                    let errors =
                        spec.validate(spec.request_schema("/v2/pods/{id}", "patch"), &body);
                    if !errors.is_empty() {
                        return problem(
                            422,
                            "Unprocessable Entity",
                            "Request validation failed.",
                            Some(errors),
                        );
                    }
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
