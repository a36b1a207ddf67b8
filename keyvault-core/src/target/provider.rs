//! What GitHub's and GitLab's key APIs share on top of [`crate::http`]: their settings
//! ([`ProviderSettings`]), their headers (GitHub's API version) and rate limits (GitHub's
//! 403 with no requests left), and pagination to the end (`Link`, `X-Next-Page`).
//!
//! Writes are never sent twice from here: the account target reads the list back when a
//! write's answer is lost (see [`super::account`]).

use crate::error::{Provider, ProviderError};
use crate::http::{ApiSettings, Dialect};
use crate::secret::ApiToken;
use serde_json::Value;
use std::time::Duration;

pub(crate) use crate::http::Answer;

/// The HTTP side of one GitHub or GitLab account.
pub(crate) type Http = crate::http::Http<Provider>;

/// The most pages a list is followed through (100 keys a page).
const MAX_PAGES: usize = 200;

/// GitHub's API (github.com).
pub const GITHUB_API_URL: &str = "https://api.github.com";
/// GitLab's API (gitlab.com).
pub const GITLAB_API_URL: &str = "https://gitlab.com/api/v4";
/// The REST API version keyvault speaks to GitHub (`X-GitHub-Api-Version`).
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// How to reach one GitHub or GitLab account.
pub type ProviderSettings = ApiSettings<Provider>;

impl ApiSettings<Provider> {
    /// Settings for `token` against `api_url` (default: github.com's or gitlab.com's API),
    /// 30 s timeouts, 3 retries of reads, rate-limit waits of at most 60 s.
    #[must_use]
    pub fn new(provider: Provider, token: ApiToken, api_url: Option<&str>) -> Self {
        let default = match provider {
            Provider::Github => GITHUB_API_URL,
            Provider::Gitlab => GITLAB_API_URL,
        };
        ApiSettings::with(
            provider,
            token,
            api_url.unwrap_or(default),
            Duration::from_secs(60),
        )
    }

    /// The provider.
    #[must_use]
    pub fn provider(&self) -> Provider {
        self.api
    }
}

impl Dialect for Provider {
    type Error = ProviderError;

    fn headers(&self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        // GitLab takes personal access tokens and OAuth tokens (glab's) alike as Bearer.
        match self {
            Provider::Github => req
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", GITHUB_API_VERSION),
            Provider::Gitlab => req.header("Accept", "application/json"),
        }
    }

    /// 429, or GitHub's 403 with no requests left or a message about a (secondary) rate
    /// limit.
    fn rate_limited(&self, answer: &Answer) -> bool {
        answer.status == 429
            || (answer.status == 403
                && (answer.header("x-ratelimit-remaining") == Some("0")
                    || String::from_utf8_lossy(&answer.body)
                        .to_ascii_lowercase()
                        .contains("rate limit")))
    }

    fn network(&self, url: String, reason: String) -> ProviderError {
        ProviderError::Network {
            provider: *self,
            url,
            reason,
        }
    }

    fn malformed(&self, what: String, reason: String) -> ProviderError {
        ProviderError::Malformed {
            provider: *self,
            what,
            reason,
        }
    }

    fn bad_token(&self) -> ProviderError {
        ProviderError::Unauthorized {
            provider: *self,
            detail: "the token has characters no HTTP header can carry".to_owned(),
        }
    }

    fn rate_limit(&self, retry_after: Option<u64>) -> ProviderError {
        ProviderError::RateLimited {
            provider: *self,
            retry_after,
        }
    }

    fn is_network(error: &ProviderError) -> bool {
        matches!(error, ProviderError::Network { .. })
    }
}

impl crate::http::Http<Provider> {
    pub fn provider(&self) -> Provider {
        self.settings().api
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
                return Err(if self.is_rate_limited(&answer) {
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
            provider: self.provider(),
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
        if userinfo || origin(&next).is_none() || origin(&next) != origin(self.settings().api_url())
        {
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
