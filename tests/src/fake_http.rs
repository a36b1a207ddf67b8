//! The HTTP plumbing the fake APIs share: a thread-per-connection HTTP/1.1 server on
//! 127.0.0.1, injectable faults ([`Fault`], [`Action`]) and a request log ([`Logged`]).
//!
//! A fake supplies its behaviour as an [`Api`]; [`Server`] reads each request, applies the
//! first armed fault that matches, asks the `Api` for the normal answer otherwise, logs the
//! exchange and writes (or withholds) the answer.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The methods every fake forwards to its `server` field (a [`Server`]): `fault`, `log`
/// and `clear_log`; with `paged`, also `set_page_size`, `set_now` and `violations` over
/// the API state's `page_size`, `offset` and `violations` (GitHub's and GitLab's). Used
/// inside the fake's `impl` block.
#[macro_export]
macro_rules! forward_to_server {
    (paged) => {
        /// Serves at most `n` keys a page (the real APIs: 100), to test pagination with
        /// few keys.
        pub fn set_page_size(&self, n: usize) {
            self.server.with(|g| g.page_size = n.max(1));
        }

        /// Sets the fake's clock (creation times, expiry, rate-limit resets) to `t`.
        pub fn set_now(&self, t: chrono::DateTime<chrono::Utc>) {
            self.server.with(|g| g.offset = t - chrono::Utc::now());
        }

        /// Every request or answer so far that broke the API description.
        pub fn violations(&self) -> Vec<String> {
            self.server.with(|g| g.violations.clone())
        }

        $crate::forward_to_server!();
    };
    () => {
        /// Arms a fault (see the fake's `faults` module).
        pub fn fault(&self, fault: $crate::fake_http::Fault) {
            self.server.fault(fault);
        }

        /// Every request so far (credentials redacted).
        pub fn log(&self) -> Vec<$crate::fake_http::Logged> {
            self.server.log()
        }

        /// Forgets the request log.
        pub fn clear_log(&self) {
            self.server.clear_log();
        }
    };
}

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

impl Action {
    /// Answer with `status`, `body` and `headers`.
    pub fn respond(status: u16, body: impl Into<String>, headers: &[(&str, String)]) -> Action {
        Action::Respond {
            status,
            body: body.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// A `Respond` action as the answer it gives, with `content_type`; `None` for the
    /// others.
    pub fn into_response(self, content_type: &'static str) -> Option<Response> {
        match self {
            Action::Respond {
                status,
                body,
                headers,
            } => Some(Response {
                status,
                content_type,
                headers,
                body,
            }),
            _ => None,
        }
    }
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
    /// A fault for requests with `method` (e.g. `PUT`) to `path` (e.g. `/graphql`; a
    /// trailing `*` matches any rest, e.g. `/user/keys/*`).
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
    /// A fault for every request with `method`, whatever its path.
    pub fn on_method(method: &str, action: Action) -> Self {
        Fault {
            method: Some(method.to_owned()),
            path: None,
            action,
            times: 1,
        }
    }
    /// `path` matches exactly, or by prefix when it ends in `*` (`/user/keys/*`).
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path
                .as_deref()
                .is_none_or(|p| match p.strip_suffix('*') {
                    Some(prefix) => path.starts_with(prefix),
                    None => p == path,
                })
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The request target as sent, query string included.
    pub target: String,
    /// The `Authorization` header: as sent by the RunPod fake's clients; the GitHub and
    /// GitLab fakes log the scheme and which accepted token it was (`Bearer [token 0]`), never
    /// the token itself.
    pub authorization: Option<String>,
    /// Every header (names lower-case), credential values redacted as for `authorization`.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

impl Logged {
    /// The value of header `name` (lower-case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request could have changed something (any method but GET and HEAD).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// One parsed request.
pub struct Request {
    pub method: String,
    pub path: String,
    pub target: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    /// Header `name` (lower-case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Query parameter `name` as a number, if sent and numeric.
    pub fn query_number(&self, name: &str) -> Option<usize> {
        self.query()
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// The query string, split and percent-decoded, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        self.target
            .split_once('?')
            .map(|(_, q)| crate::openapi::parse_query(q))
            .unwrap_or_default()
    }
}

/// One answer.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A fake API's behaviour, called with the server's lock held.
pub trait Api: Send + 'static {
    /// The normal answer to `req`.
    fn answer(&mut self, req: &Request) -> Response;
    /// Adjusts every answer, a fault's included, before it is logged and sent.
    fn finish(&mut self, _req: &Request, _fault: Option<&Action>, _response: &mut Response) {}
    /// The content type of a fault's JSON body.
    fn fault_json_type(&self) -> &'static str {
        "application/json"
    }
    /// What the log keeps of credential header `name`'s `value` (`None`: the value as sent).
    fn redact(&self, _name: &str, _value: &str) -> Option<String> {
        None
    }
    /// The fault the control API's `{"fault": NAME, …}` names, with its arguments from the
    /// same object (`scope`, `seconds`, `status`), if this fake has one by that name.
    fn preset(&self, _spec: &serde_json::Value) -> Option<Action> {
        None
    }
}

/// The page `page` (from 1) of `len` items `per_page` at a time, as an index range, and the
/// number of pages (at least 1).
pub fn page_range(len: usize, page: usize, per_page: usize) -> (std::ops::Range<usize>, usize) {
    let per_page = per_page.max(1);
    let pages = len.div_ceil(per_page).max(1);
    let start = (page.max(1) - 1).saturating_mul(per_page).min(len);
    (start..(start + per_page).min(len), pages)
}

/// An RFC 8288 `Link` header for page `page` of `pages`: `prev`, `next`, `first` and `last`
/// as GitHub and GitLab send them, each URL `base` plus `per_page` and `page` (`None` when
/// there is nothing to link).
pub fn link_header(base: &str, page: usize, pages: usize, per_page: usize) -> Option<String> {
    let url = |p: usize| format!("<{base}?per_page={per_page}&page={p}>");
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < pages {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
    }
    if pages > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
        links.push(format!("{}; rel=\"last\"", url(pages)));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

struct Inner<A> {
    api: A,
    faults: VecDeque<Fault>,
    log: Vec<Logged>,
    control: bool,
}

/// A running fake server.
pub struct Server<A: Api> {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner<A>>>,
    stop: Arc<AtomicBool>,
}

fn lock<A>(inner: &Mutex<Inner<A>>) -> std::sync::MutexGuard<'_, Inner<A>> {
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<A: Api> Server<A> {
    /// Starts serving `api` on `port` of 127.0.0.1 (0 for any free port).
    pub fn start(port: u16, api: A) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Mutex::new(Inner {
            api,
            faults: VecDeque::new(),
            log: Vec::new(),
            control: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let inner = Arc::clone(&inner);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let inner = Arc::clone(&inner);
                    std::thread::spawn(move || serve(conn, &inner));
                }
            });
        }
        Server { addr, inner, stop }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` on the fake's state.
    pub fn with<R>(&self, f: impl FnOnce(&mut A) -> R) -> R {
        f(&mut lock(&self.inner).api)
    }

    /// Arms a fault.
    pub fn fault(&self, fault: Fault) {
        lock(&self.inner).faults.push_back(fault);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.inner).log.clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        lock(&self.inner).log.clear();
    }

    /// Turns on the control API for a fake run on its own, under `/_fake/` (never checked
    /// against an API description, never logged):
    ///
    /// - `POST /_fake/faults` arms a fault: `{"method": "POST", "path": "/user/keys",
    ///   "times": 1, …}` with either `"fault": NAME` (`hang` with `seconds`, `lost_answer`,
    ///   `truncate`, `not_json`, or one the fake names, e.g. `rate_limited`) or `"status"`,
    ///   `"body"` and `"headers"` (an object) for any answer;
    /// - `DELETE /_fake/faults` disarms them all;
    /// - `GET /_fake/log` lists the requests so far (credentials redacted).
    pub fn enable_control(&self) {
        lock(&self.inner).control = true;
    }
}

/// Answers a control API request (see [`Server::enable_control`]).
fn control<A: Api>(inner: &mut Inner<A>, req: &Request) -> Response {
    let json = |status: u16, body: serde_json::Value| Response {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        body: body.to_string(),
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/_fake/faults") => {
            let spec = serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
            match fault_from_json(&inner.api, &spec) {
                Ok(fault) => {
                    inner.faults.push_back(fault);
                    json(201, serde_json::json!({"armed": inner.faults.len()}))
                }
                Err(e) => json(400, serde_json::json!({"error": e})),
            }
        }
        ("DELETE", "/_fake/faults") => {
            inner.faults.clear();
            json(200, serde_json::json!({"armed": 0}))
        }
        ("GET", "/_fake/log") => {
            let log: Vec<serde_json::Value> = inner
                .log
                .iter()
                .map(|r| {
                    let headers: serde_json::Map<String, serde_json::Value> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                        .collect();
                    serde_json::json!({"method": r.method, "target": r.target, "status": r.status,
                        "headers": headers, "body": r.body})
                })
                .collect();
            json(200, serde_json::Value::Array(log))
        }
        _ => json(404, serde_json::json!({"error": "unknown control request"})),
    }
}

fn fault_from_json<A: Api>(api: &A, spec: &serde_json::Value) -> Result<Fault, String> {
    let text = |k: &str| spec[k].as_str().map(ToOwned::to_owned);
    let action = match (spec["fault"].as_str(), spec["status"].as_u64()) {
        (Some("hang"), _) => {
            Action::Hang(Duration::from_secs(spec["seconds"].as_u64().unwrap_or(60)))
        }
        (Some("lost_answer"), _) => Action::DropAfter,
        (Some("truncate"), _) => Action::Truncate,
        (Some("not_json"), _) => Action::NotJson,
        (Some(name), _) => api
            .preset(spec)
            .ok_or_else(|| format!("this fake has no fault named {name:?}"))?,
        (None, Some(status)) => Action::Respond {
            status: u16::try_from(status).map_err(|_| "status out of range".to_owned())?,
            body: text("body").unwrap_or_default(),
            headers: spec["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
        },
        (None, None) => return Err("give \"fault\" or \"status\"".to_owned()),
    };
    Ok(Fault {
        method: text("method"),
        path: text("path"),
        action,
        times: spec["times"].as_u64().map_or(1, |n| n as usize),
    })
}

impl<A: Api> Drop for Server<A> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
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

fn take_fault<A>(inner: &mut Inner<A>, req: &Request) -> Option<Action> {
    let pos = inner
        .faults
        .iter()
        .position(|f| f.matches(&req.method, &req.path));
    pos.map(|i| {
        let f = inner.faults[i].clone();
        inner.faults[i].times -= 1;
        if inner.faults[i].times == 0 {
            inner.faults.remove(i);
        }
        f.action
    })
}

fn serve<A: Api>(mut conn: TcpStream, inner: &Mutex<Inner<A>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&conn) else {
        return;
    };
    {
        let mut guard = lock(inner);
        if guard.control && req.path.starts_with("/_fake/") {
            let response = control(&mut guard, &req);
            drop(guard);
            write_response(&mut conn, &response, false);
            return;
        }
    }
    let fault = take_fault(&mut lock(inner), &req);
    if let Some(Action::Hang(d)) = &fault {
        std::thread::sleep(*d);
    }
    let mut response = {
        let mut guard = lock(inner);
        let inner = &mut *guard;
        let mut response = match &fault {
            Some(Action::Respond {
                status,
                body,
                headers,
            }) => Response {
                status: *status,
                content_type: if body.trim_start().starts_with('{') {
                    inner.api.fault_json_type()
                } else {
                    "text/plain"
                },
                headers: headers.clone(),
                body: body.clone(),
            },
            _ => inner.api.answer(&req),
        };
        inner.api.finish(&req, fault.as_ref(), &mut response);
        let logged = |name: &str, value: &str| {
            inner
                .api
                .redact(name, value)
                .unwrap_or_else(|| value.to_owned())
        };
        let authorization = req
            .headers
            .get("authorization")
            .map(|v| logged("authorization", v));
        let headers = req
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), logged(k, v)))
            .collect();
        inner.log.push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            target: req.target.clone(),
            authorization,
            headers,
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status: response.status,
        });
        response
    };
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
