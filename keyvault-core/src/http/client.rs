//! The client behind [`super::ApiSettings`]: one per account, generic over the API's
//! [`Dialect`] (its headers, what it calls a rate limit, its error type).

use super::ApiSettings;
use serde_json::Value;
use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::time::Duration;

/// The largest response body read (4 MiB).
const MAX_BODY: u64 = 4 << 20;

/// What one API adds to plain HTTP: the headers it wants, what it calls a rate limit, and
/// its errors for what can go wrong below the API (the connection, a body too large, a
/// rate limit that does not clear, a token no header can carry).
pub(crate) trait Dialect: fmt::Debug {
    /// The API's error type.
    type Error;
    /// `req` with the headers every request to this API carries besides the token.
    fn headers(&self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder;
    /// Whether `answer` says a rate limit was hit (429 for every API).
    fn rate_limited(&self, answer: &Answer) -> bool;
    /// The connection to `url` failed or timed out.
    fn network(&self, url: String, reason: String) -> Self::Error;
    /// The answer to `what` is not what the API sends.
    fn malformed(&self, what: String, reason: String) -> Self::Error;
    /// The token has characters no HTTP header can carry.
    fn bad_token(&self) -> Self::Error;
    /// A rate limit that did not clear within the retries and the cap.
    fn rate_limit(&self, retry_after: Option<u64>) -> Self::Error;
    /// Whether `error` is [`Dialect::network`]'s (worth a retry on a read).
    fn is_network(error: &Self::Error) -> bool;
}

/// One HTTP answer, body capped.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// A header of decimal digits as a number; one too large for a u64 is `u64::MAX` (a
    /// huge wait must stay huge, not become no wait at all).
    fn header_u64(&self, name: &str) -> Option<u64> {
        let v = self.header(name)?;
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return Some(v.parse().unwrap_or(u64::MAX));
        }
        None
    }

    /// The body as JSON (`Null` when it is none).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// How long the server asks to wait: `Retry-After`, else until `x-ratelimit-reset`
    /// (GitHub) or `RateLimit-Reset` (GitLab), both UTC epoch seconds.
    pub fn asked_wait(&self) -> Option<Duration> {
        if let Some(secs) = self.header_u64("retry-after") {
            return Some(Duration::from_secs(secs));
        }
        let reset = self
            .header_u64("x-ratelimit-reset")
            .or_else(|| self.header_u64("ratelimit-reset"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
    }
}

/// The HTTP side of one account: a client, the settings, a request counter.
#[derive(Debug)]
pub(crate) struct Http<D: Dialect> {
    settings: ApiSettings<D>,
    client: reqwest::blocking::Client,
    requests: Cell<u32>,
}

/// What to do after an answer to a read.
enum Next<E> {
    Done,
    Wait(Duration),
    GiveUp(E),
}

impl<D: Dialect> Http<D> {
    pub fn new(settings: ApiSettings<D>) -> Result<Self, D::Error> {
        let api = &settings.api;
        if let Err(reason) = safe_base(&settings.api_url) {
            return Err(api.network(settings.api_url.clone(), reason.to_owned()));
        }
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("keyvault/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token's header to another host: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| api.network(settings.api_url.clone(), e.to_string()))?;
        Ok(Http {
            settings,
            client,
            requests: Cell::new(0),
        })
    }

    /// The settings (the API, the base URL).
    pub fn settings(&self) -> &ApiSettings<D> {
        &self.settings
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_url)
    }

    /// How many HTTP requests were sent.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// `text` without the token or control characters, cut to 300 characters.
    pub fn scrub(&self, text: &str) -> String {
        self.settings.scrub(text)
    }

    /// Sends one request, once.
    pub fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, D::Error> {
        self.requests.set(self.requests.get() + 1);
        let api = &self.settings.api;
        let mut auth = reqwest::header::HeaderValue::try_from(format!(
            "Bearer {}",
            self.settings.token.expose()
        ))
        .map_err(|_| api.bad_token())?;
        auth.set_sensitive(true);
        let mut req = api.headers(
            self.client
                .request(method, url)
                .header(reqwest::header::AUTHORIZATION, auth),
        );
        if let Some(b) = body {
            req = req.json(b);
        }
        // A next page's URL came from the server, which may have echoed the token into it.
        let network = |reason: String| api.network(self.scrub(url), reason);
        let resp = req
            .send()
            .map_err(|e| network(self.scrub(&error_chain(&e))))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        resp.take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| {
                network(format!(
                    "reading the answer failed: {}",
                    self.scrub(&e.to_string())
                ))
            })?;
        if body.len() as u64 > MAX_BODY {
            return Err(api.malformed(
                self.scrub(url),
                format!("body larger than {MAX_BODY} bytes"),
            ));
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A `GET`, retried on rate limits, 5xx and network failures with backoff.
    pub fn read(&self, url: &str) -> Result<Answer, D::Error> {
        self.retried(reqwest::Method::GET, url, None)
    }

    /// A request that only reads (a `GET`, a GraphQL query), retried like [`Http::read`].
    pub fn retried(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, D::Error> {
        let mut attempt = 0;
        loop {
            let result = self.send(method.clone(), url, body);
            let next = match &result {
                Ok(a) => self.after(a, attempt),
                Err(e) if D::is_network(e) => Next::Wait(self.backoff(attempt)),
                Err(_) => Next::Done,
            };
            match next {
                Next::Wait(w) if attempt < self.settings.retries => {
                    std::thread::sleep(w);
                    attempt += 1;
                }
                Next::GiveUp(e) => return Err(e),
                Next::Wait(_) | Next::Done => return result,
            }
        }
    }

    /// What to do after `answer`: nothing, wait and retry, or give up at once (a rate limit
    /// whose reset lies beyond the cap).
    fn after(&self, answer: &Answer, attempt: u32) -> Next<D::Error> {
        if self.is_rate_limited(answer) {
            return match self.rate_limit_wait(answer, attempt) {
                Ok(w) => Next::Wait(w),
                Err(e) => Next::GiveUp(e),
            };
        }
        if answer.status >= 500 {
            return Next::Wait(self.backoff(attempt));
        }
        Next::Done
    }

    /// The wait a rate-limited answer asks for, or the error when it is over the cap.
    pub fn rate_limit_wait(&self, answer: &Answer, attempt: u32) -> Result<Duration, D::Error> {
        let wait = answer.asked_wait().unwrap_or_else(|| self.backoff(attempt));
        if wait > self.settings.max_wait {
            return Err(self.rate_limited(answer));
        }
        Ok(wait)
    }

    /// The error for a rate limit that did not clear.
    pub fn rate_limited(&self, answer: &Answer) -> D::Error {
        self.settings
            .api
            .rate_limit(answer.asked_wait().map(|d| d.as_secs()))
    }

    /// Whether `answer` is a rate limit.
    pub fn is_rate_limited(&self, answer: &Answer) -> bool {
        self.settings.api.rate_limited(answer)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.backoff.saturating_mul(1 << attempt.min(6));
        // Jitter from the clock's nanoseconds: spreading retries needs no secret randomness.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = u64::from(nanos) % (self.settings.backoff.as_millis().max(1) as u64);
        base + Duration::from_millis(jitter)
    }
}

/// Whether the token may be sent to `api_url`: https, or plain http only to this machine
/// (the test servers), and no user name or password in the URL.
pub(crate) fn safe_base(api_url: &str) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(api_url).map_err(|_| "the API URL is not a URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the API URL carries a user name or password; keyvault sends the token only in its header",
        );
    }
    let loopback = url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(
            "the API URL is plain http to another machine; keyvault sends the token only over https",
        ),
        _ => Err("the API URL is neither https nor http"),
    }
}

/// An error and its causes on one line (reqwest's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
