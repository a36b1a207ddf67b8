//! What GitHub's and GitLab's key APIs share: settings, the HTTP client (User-Agent, API
//! version header, timeouts, the token only in an `Authorization: Bearer` header), retries of reads (429, 5xx and
//! network errors, honouring `Retry-After`, `x-ratelimit-reset` and GitLab's
//! `RateLimit-Reset` within a cap) and pagination to the end (`Link`, `X-Next-Page`).
//!
//! Writes are never sent twice from here: the account target reads the list back when a
//! write's answer is lost (see [`super::account`]).

use crate::error::{Provider, ProviderError};
use crate::secret::ApiToken;
use serde_json::Value;
use std::cell::Cell;
use std::io::Read;
use std::time::Duration;

/// The largest response body read (4 MiB).
const MAX_BODY: u64 = 4 << 20;
/// The most pages a list is followed through (100 keys a page).
const MAX_PAGES: usize = 200;

/// GitHub's API (github.com).
pub const GITHUB_API_URL: &str = "https://api.github.com";
/// GitLab's API (gitlab.com).
pub const GITLAB_API_URL: &str = "https://gitlab.com/api/v4";
/// The REST API version keyvault speaks to GitHub (`X-GitHub-Api-Version`).
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// How to reach one GitHub or GitLab account.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    provider: Provider,
    token: ApiToken,
    api_url: String,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_wait: Duration,
}

impl ProviderSettings {
    /// Settings for `token` against `api_url` (default: github.com's or gitlab.com's API),
    /// 30 s timeouts, 3 retries of reads, rate-limit waits of at most 60 s.
    #[must_use]
    pub fn new(provider: Provider, token: ApiToken, api_url: Option<&str>) -> Self {
        let default = match provider {
            Provider::Github => GITHUB_API_URL,
            Provider::Gitlab => GITLAB_API_URL,
        };
        ProviderSettings {
            provider,
            token,
            api_url: api_url.unwrap_or(default).trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(250),
            max_wait: Duration::from_secs(60),
        }
    }

    /// Connect and total timeout of each request.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a failed read is retried, the first backoff, and the longest wait
    /// for a rate limit honoured (a longer one fails at once).
    #[must_use]
    pub fn retries(mut self, retries: u32, backoff: Duration, max_wait: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self.max_wait = max_wait;
        self
    }

    /// The API base URL.
    #[must_use]
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The provider.
    #[must_use]
    pub fn provider(&self) -> Provider {
        self.provider
    }
}

/// One HTTP answer, body capped.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
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

    /// Whether this answer says a rate limit was hit: 429, or GitHub's 403 with no requests
    /// left or a message about a (secondary) rate limit.
    fn rate_limited(&self) -> bool {
        self.status == 429
            || (self.status == 403
                && (self.header("x-ratelimit-remaining") == Some("0")
                    || String::from_utf8_lossy(&self.body)
                        .to_ascii_lowercase()
                        .contains("rate limit")))
    }

    /// How long the provider asks to wait: `Retry-After`, else until `x-ratelimit-reset`
    /// (GitHub) or `RateLimit-Reset` (GitLab), both UTC epoch seconds.
    fn asked_wait(&self) -> Option<Duration> {
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
pub(crate) struct Http {
    settings: ProviderSettings,
    client: reqwest::blocking::Client,
    requests: Cell<u32>,
}

/// What to do after an answer to a read.
enum Next {
    Done,
    Wait(Duration),
    GiveUp(ProviderError),
}

impl Http {
    pub fn new(settings: ProviderSettings) -> Result<Self, ProviderError> {
        if let Err(reason) = safe_base(&settings.api_url) {
            return Err(ProviderError::Network {
                provider: settings.provider,
                url: settings.api_url.clone(),
                reason: reason.to_owned(),
            });
        }
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("keyvault/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token's header to another host: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::Network {
                provider: settings.provider,
                url: settings.api_url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Http {
            settings,
            client,
            requests: Cell::new(0),
        })
    }

    pub fn provider(&self) -> Provider {
        self.settings.provider
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
        let clean: String = self
            .settings
            .token
            .scrub(text)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        clean.trim().to_owned()
    }

    /// Sends one request, once.
    pub fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ProviderError> {
        self.requests.set(self.requests.get() + 1);
        let provider = self.settings.provider;
        // GitLab takes personal access tokens and OAuth tokens (glab's) alike as Bearer.
        let mut auth = reqwest::header::HeaderValue::try_from(format!(
            "Bearer {}",
            self.settings.token.expose()
        ))
        .map_err(|_| ProviderError::Unauthorized {
            provider,
            detail: "the token has characters no HTTP header can carry".to_owned(),
        })?;
        auth.set_sensitive(true);
        let mut req = self
            .client
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, auth);
        req = match provider {
            Provider::Github => req
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", GITHUB_API_VERSION),
            Provider::Gitlab => req.header("Accept", "application/json"),
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        // A next page's URL came from the server, which may have echoed the token into it.
        let network = |reason: String| ProviderError::Network {
            provider,
            url: self.scrub(url),
            reason,
        };
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
            return Err(ProviderError::Malformed {
                provider,
                what: self.scrub(url),
                reason: format!("body larger than {MAX_BODY} bytes"),
            });
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A `GET`, retried on 429/rate limits, 5xx and network failures with backoff.
    pub fn read(&self, url: &str) -> Result<Answer, ProviderError> {
        let mut attempt = 0;
        loop {
            let result = self.send(reqwest::Method::GET, url, None);
            let next = match &result {
                Ok(a) => self.after(a, attempt),
                Err(ProviderError::Network { .. }) => Next::Wait(self.backoff(attempt)),
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
    fn after(&self, answer: &Answer, attempt: u32) -> Next {
        if answer.rate_limited() {
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
    pub fn rate_limit_wait(
        &self,
        answer: &Answer,
        attempt: u32,
    ) -> Result<Duration, ProviderError> {
        let wait = answer.asked_wait().unwrap_or_else(|| self.backoff(attempt));
        if wait > self.settings.max_wait {
            return Err(self.rate_limited(answer));
        }
        Ok(wait)
    }

    /// The error for a rate limit that did not clear.
    pub fn rate_limited(&self, answer: &Answer) -> ProviderError {
        ProviderError::RateLimited {
            provider: self.settings.provider,
            retry_after: answer.asked_wait().map(|d| d.as_secs()),
        }
    }

    /// Whether `answer` is a rate limit.
    pub fn is_rate_limited(answer: &Answer) -> bool {
        answer.rate_limited()
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

    /// Every item of a paginated list, from `first` to the last page. `check` turns an
    /// answer other than 200 into the provider's error.
    pub fn list_all(
        &self,
        first: &str,
        check: &dyn Fn(&Answer) -> ProviderError,
    ) -> Result<Vec<Value>, ProviderError> {
        let mut items = Vec::new();
        let mut url = first.to_owned();
        for _ in 0..MAX_PAGES {
            let answer = self.read(&url)?;
            if answer.status != 200 {
                return Err(if answer.rate_limited() {
                    self.rate_limited(&answer)
                } else {
                    check(&answer)
                });
            }
            match serde_json::from_slice::<Value>(&answer.body) {
                Ok(Value::Array(page)) => items.extend(page),
                Ok(_) => return Err(self.malformed(&url, "the list is not a JSON array")),
                Err(e) => return Err(self.malformed(&url, &e.to_string())),
            }
            match self.next_page(&answer, &url)? {
                Some(next) => url = next,
                None => return Ok(items),
            }
        }
        Err(self.malformed(first, &format!("more than {MAX_PAGES} pages")))
    }

    pub fn malformed(&self, what: &str, reason: &str) -> ProviderError {
        ProviderError::Malformed {
            provider: self.settings.provider,
            what: self.scrub(what),
            reason: self.scrub(reason),
        }
    }

    /// The next page's URL: `Link: <…>; rel="next"`, else GitLab's `X-Next-Page` applied to
    /// the current URL. The token only ever goes to the API's own origin.
    fn next_page(&self, answer: &Answer, current: &str) -> Result<Option<String>, ProviderError> {
        let from_link = answer.header("link").and_then(next_link);
        let next = match from_link {
            Some(next) => next,
            None => match answer.header("x-next-page").filter(|p| !p.is_empty()) {
                Some(page) => {
                    let page: u32 = page
                        .parse()
                        .map_err(|_| self.malformed(current, "X-Next-Page is not a number"))?;
                    with_page(current, page).ok_or_else(|| {
                        self.malformed(current, "cannot build the next page's URL")
                    })?
                }
                None => return Ok(None),
            },
        };
        let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
        // reqwest turns a URL's user name and password into a second Authorization header.
        let userinfo = reqwest::Url::parse(&next)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some());
        if userinfo || origin(&next).is_none() || origin(&next) != origin(&self.settings.api_url) {
            return Err(self.malformed(
                current,
                "the next page is on another host than the API; keyvault does not send the token there",
            ));
        }
        if next == current {
            return Err(self.malformed(current, "the next page is the same page"));
        }
        Ok(Some(next))
    }
}

/// Whether the token may be sent to `api_url`: https, or plain http only to this machine
/// (the test servers), and no user name or password in the URL.
fn safe_base(api_url: &str) -> Result<(), &'static str> {
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

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_owned())
    })
}

/// `url` with its `page` query parameter set to `page`.
fn with_page(url: &str, page: u32) -> Option<String> {
    let mut parsed = reqwest::Url::parse(url).ok()?;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("page", &page.to_string());
    Some(parsed.to_string())
}

/// An error and its causes on one line.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link_and_sets_pages() {
        let link = "<https://api.github.com/user/keys?per_page=100&page=2>; rel=\"next\", <https://api.github.com/user/keys?per_page=100&page=5>; rel=\"last\"";
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/user/keys?per_page=100&page=2")
        );
        assert_eq!(next_link("<https://x/?page=1>; rel=\"prev\""), None);
        assert_eq!(
            with_page("http://127.0.0.1:9/api/v4/user/keys?per_page=100&page=1", 3).as_deref(),
            Some("http://127.0.0.1:9/api/v4/user/keys?per_page=100&page=3")
        );
    }

    fn open(url: &str) -> Result<Http, ProviderError> {
        Http::new(ProviderSettings::new(
            Provider::Gitlab,
            ApiToken::new("glpat-SECRETTOKEN123456"),
            Some(url),
        ))
    }

    #[test]
    fn the_token_goes_only_over_https_or_to_this_machine() {
        for ok in [
            "https://gitlab.example.com/api/v4",
            "http://127.0.0.1:8080/api/v4",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            assert!(open(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://gitlab.example.com/api/v4",
            "http://10.0.0.1/api/v4",
            "https://user:pw@gitlab.example.com/api/v4",
            "ftp://gitlab.example.com",
            "gitlab.example.com",
        ] {
            let err = open(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!err.to_string().contains("SECRETTOKEN"), "{err}");
        }
    }

    #[test]
    fn the_next_page_stays_on_the_api_without_credentials_in_its_url() {
        let http = open("http://127.0.0.1:9/api/v4").expect("client");
        let answer = |link: &str| Answer {
            status: 200,
            headers: [(
                reqwest::header::LINK,
                reqwest::header::HeaderValue::from_str(link).expect("header"),
            )]
            .into_iter()
            .collect(),
            body: Vec::new(),
        };
        let current = "http://127.0.0.1:9/api/v4/user/keys?page=1";
        let ok = answer("<http://127.0.0.1:9/api/v4/user/keys?page=2>; rel=\"next\"");
        assert!(http.next_page(&ok, current).expect("same host").is_some());
        for bad in [
            "<http://evil.example:9/api/v4/user/keys?page=2>; rel=\"next\"",
            "<https://127.0.0.1:9/api/v4/user/keys?page=2>; rel=\"next\"",
            "<http://127.0.0.1:10/api/v4/user/keys?page=2>; rel=\"next\"",
            "<http://u:p@127.0.0.1:9/api/v4/user/keys?page=2>; rel=\"next\"",
        ] {
            assert!(http.next_page(&answer(bad), current).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_retry_after_too_large_for_a_number_is_not_no_wait() {
        let answer = Answer {
            status: 429,
            headers: [(
                reqwest::header::RETRY_AFTER,
                reqwest::header::HeaderValue::from_static("99999999999999999999999"),
            )]
            .into_iter()
            .collect(),
            body: Vec::new(),
        };
        let http = open("http://127.0.0.1:9").expect("client");
        assert!(http.rate_limit_wait(&answer, 0).is_err());
    }

    #[test]
    fn settings_and_errors_never_show_the_token() {
        let settings = ProviderSettings::new(
            Provider::Github,
            ApiToken::new("ghp_SECRETTOKEN123456"),
            Some("http://127.0.0.1:9/"),
        )
        .retries(0, Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(settings.api_url(), "http://127.0.0.1:9");
        let http = Http::new(settings.clone()).expect("client");
        let err = http
            .read(&http.url("/user/keys"))
            .err()
            .expect("nothing listens on port 9");
        for shown in [
            format!("{settings:?}"),
            format!("{http:?}"),
            err.to_string(),
        ] {
            assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        }
        assert!(
            err.to_string().contains("http://127.0.0.1:9/user/keys"),
            "{err}"
        );
    }
}
