//! The fake GitHub holds to its API description and to GitHub's documented habits, and each
//! fault answers as GitHub does, so provider tests built on it mean something.

use super::{
    Answer, SK_KEY, assert_github_client_headers, assert_log_has_no_token,
    assert_loses_answers_and_hangs, call, public_key,
};
use keyvault_tests::fake_github::{self, Action, DEFAULT_TOKEN, FakeGithub, Fault, Kind, faults};
use serde_json::json;

const AUTH: &str = "Bearer ghp_FAKEtestTOKEN0000000000000000000000";

/// A request as a well-behaved client sends it.
fn gh(s: &FakeGithub, method: &str, target: &str, body: Option<serde_json::Value>) -> Answer {
    with_token(s, AUTH, method, target, body)
}

fn with_token(
    s: &FakeGithub,
    auth: &str,
    method: &str,
    target: &str,
    body: Option<serde_json::Value>,
) -> Answer {
    let body = body.map(|b| b.to_string());
    call(
        &s.url(),
        method,
        target,
        &[
            ("Authorization", auth),
            ("User-Agent", "keyvault-tests"),
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ],
        body.as_deref(),
    )
}

#[test]
fn github_fake_answers_every_documented_endpoint_as_described() {
    assert_eq!(AUTH, format!("Bearer {DEFAULT_TOKEN}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGithub::start();
    let line = public_key(dir.path(), "ed25519", "me@laptop");
    for (kind, base, key) in [
        (Kind::Auth, "/user/keys", line.as_str()),
        (Kind::Signing, "/user/ssh_signing_keys", SK_KEY),
    ] {
        let created = gh(
            &s,
            "POST",
            base,
            Some(json!({"key": key, "title": "keyvault:k1"})),
        );
        assert_eq!(created.status, 201, "{}", created.body);
        let k = created.json();
        // GitHub answers `type base64`: the comment is not kept.
        assert_eq!(k["key"], fake_github::key_body(key));
        assert_eq!(k["title"], "keyvault:k1");
        let id = k["id"].as_u64().expect("integer id");
        if kind == Kind::Auth {
            assert_eq!(k["url"], format!("{}/user/keys/{id}", s.url()));
            assert!(k["verified"].is_boolean() && k["read_only"].is_boolean());
        } else {
            assert!(k.get("url").is_none(), "signing keys have no url: {k}");
        }
        let listed = gh(&s, "GET", base, None);
        assert_eq!(listed.status, 200);
        assert_eq!(listed.json(), json!([k]));
        assert_eq!(listed.header("link"), None, "one page needs no Link");
        assert_eq!(gh(&s, "GET", &format!("{base}/{id}"), None).json(), k);
        let deleted = gh(&s, "DELETE", &format!("{base}/{id}"), None);
        assert_eq!((deleted.status, deleted.body.as_str()), (204, ""));
        let gone = gh(&s, "GET", &format!("{base}/{id}"), None);
        assert_eq!(
            (gone.status, gone.json()["message"].as_str()),
            (404, Some("Not Found"))
        );
        assert!(s.keys(kind).is_empty());
    }
    // Security keys are not authentication keys on GitHub (the description's pattern).
    let sk = gh(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": SK_KEY, "title": "t"})),
    );
    assert_eq!(sk.status, 422);
    assert!(sk.body.contains("key is invalid"), "{}", sk.body);
    assert!(s.keys(Kind::Auth).is_empty());
    let v = s.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("does not match pattern"), "{v:?}");
    assert_log_has_no_token(&s.log());
    assert_github_client_headers(&s.log());
    assert!(
        s.log()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer [token 0]"))
    );
}

#[test]
fn github_fake_checks_requests_against_the_description() {
    let s = FakeGithub::start();
    let missing = gh(&s, "POST", "/user/keys", Some(json!({"title": "no key"})));
    assert_eq!(missing.status, 422);
    assert!(
        missing.body.contains("missing property 'key'"),
        "{}",
        missing.body
    );
    // The list documents no 422: GitHub's 400 for a malformed request.
    let bad_param = gh(&s, "GET", "/user/keys?per_page=many", None);
    assert_eq!(bad_param.status, 400);
    let token_in_query = gh(&s, "GET", "/user/keys?access_token=x", None);
    assert_eq!(token_in_query.status, 400);
    let not_json = call(
        &s.url(),
        "POST",
        "/user/keys",
        &[("Authorization", AUTH), ("User-Agent", "t")],
        Some("{not json"),
    );
    assert_eq!(
        (not_json.status, not_json.json()["message"].as_str()),
        (400, Some("Problems parsing JSON"))
    );
    assert_eq!(gh(&s, "GET", "/user/keys/abc", None).status, 404);
    assert_eq!(
        gh(&s, "PATCH", "/user/keys/1", None).status,
        404,
        "no PATCH in the API"
    );
    assert_eq!(s.violations().len(), 4, "{:?}", s.violations());
}

#[test]
fn github_fake_wants_a_token_with_the_scopes() {
    let s = FakeGithub::start();
    s.allow_token("ghp_readonly", &["read:public_key"]);
    s.allow_token("github_pat_fine", &["keys=read"]);
    let post = Some(json!({"key": SK_KEY, "title": "t"}));
    let none = call(&s.url(), "GET", "/user/keys", &[("User-Agent", "t")], None);
    assert_eq!(
        (none.status, none.json()["message"].as_str()),
        (401, Some("Requires authentication"))
    );
    let wrong = with_token(&s, "token ghp_wrong", "GET", "/user/keys", None);
    assert_eq!(
        (wrong.status, wrong.json()["message"].as_str()),
        (401, Some("Bad credentials"))
    );
    // gh's own `Authorization: token …` works like Bearer.
    assert_eq!(
        with_token(
            &s,
            &format!("token {DEFAULT_TOKEN}"),
            "GET",
            "/user/keys",
            None
        )
        .status,
        200
    );
    let ro = with_token(&s, "Bearer ghp_readonly", "GET", "/user/keys", None);
    assert_eq!(
        (ro.status, ro.header("x-oauth-scopes")),
        (200, Some("read:public_key"))
    );
    let denied = with_token(
        &s,
        "Bearer ghp_readonly",
        "POST",
        "/user/ssh_signing_keys",
        post.clone(),
    );
    assert_eq!(denied.status, 404, "a missing scope hides the endpoint");
    assert_eq!(
        denied.header("x-accepted-oauth-scopes"),
        Some("write:ssh_signing_key, admin:ssh_signing_key")
    );
    s.set_missing_scope_status(403);
    let denied = with_token(&s, "Bearer ghp_readonly", "DELETE", "/user/keys/1", None);
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("admin:public_key"), "{}", denied.body);
    let fine = with_token(&s, "Bearer github_pat_fine", "POST", "/user/keys", post);
    assert_eq!(fine.status, 403);
    assert_eq!(
        fine.json()["message"],
        "Resource not accessible by personal access token"
    );
    assert_eq!(
        fine.header("x-accepted-github-permissions"),
        Some("keys=write")
    );
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    assert_log_has_no_token(&s.log());
    let which: Vec<_> = s
        .log()
        .iter()
        .filter_map(|r| r.authorization.clone())
        .collect();
    assert!(
        which.contains(&"Bearer [token 1]".to_owned())
            && which.contains(&"token [unknown token]".to_owned())
    );
}

#[test]
fn github_fake_wants_a_user_agent_and_a_known_api_version() {
    let s = FakeGithub::start();
    let anonymous = call(
        &s.url(),
        "GET",
        "/user/keys",
        &[("Authorization", AUTH)],
        None,
    );
    assert_eq!(anonymous.status, 403);
    assert!(anonymous.body.contains("User-Agent"), "{}", anonymous.body);
    let version = call(
        &s.url(),
        "GET",
        "/user/keys",
        &[
            ("Authorization", AUTH),
            ("User-Agent", "t"),
            ("X-GitHub-Api-Version", "2001-01-01"),
        ],
        None,
    );
    assert_eq!(version.status, 400);
    let ok = gh(&s, "GET", "/user/keys", None);
    let remaining: u64 = ok
        .header("x-ratelimit-remaining")
        .and_then(|v| v.parse().ok())
        .expect("remaining");
    assert!(remaining < 5000 && ok.header("x-ratelimit-reset").is_some());
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[test]
fn github_fake_paginates_with_link_headers_and_refuses_keys_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGithub::start();
    s.set_page_size(2);
    let lines: Vec<String> = (0..5)
        .map(|i| public_key(dir.path(), "ed25519", &format!("k{i}")))
        .collect();
    for (i, l) in lines.iter().enumerate() {
        s.add_key(Kind::Auth, l, &format!("unmanaged {i}"));
    }
    let mut target = "/user/keys?per_page=100".to_owned();
    let mut seen = Vec::new();
    loop {
        let page = gh(&s, "GET", &target, None);
        let items = page.json();
        assert!(items.as_array().expect("array").len() <= 2);
        seen.extend(
            items
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| k["key"].clone()),
        );
        let Some(next) = page.header("link").and_then(next_link) else {
            break;
        };
        target = next.trim_start_matches(&s.url()).to_owned();
    }
    let want: Vec<_> = lines
        .iter()
        .map(|l| json!(fake_github::key_body(l)))
        .collect();
    assert_eq!(seen, want);
    let last = gh(&s, "GET", "/user/keys?page=3", None);
    assert!(
        last.header("link")
            .is_some_and(|l| l.contains("rel=\"prev\"") && !l.contains("rel=\"next\""))
    );
    let again = gh(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": lines[0], "title": "dup"})),
    );
    assert_eq!(again.status, 422);
    assert_eq!(
        again.json()["errors"][0]["message"],
        "key is already in use"
    );
    let other = public_key(dir.path(), "ecdsa", "deploy");
    s.in_use_elsewhere(&other);
    let taken = gh(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": other, "title": "t"})),
    );
    assert_eq!(
        taken.json()["errors"][0]["message"],
        "key is already in use"
    );
    assert_eq!(s.keys(Kind::Auth).len(), 5);
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| l.split(['<', '>']).nth(1))
        .map(str::to_owned)
}

#[test]
fn github_faults_answer_as_github_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGithub::start();
    let cases: Vec<(Action, u16, &str)> = vec![
        (faults::bad_credentials(), 401, "Bad credentials"),
        (
            faults::missing_scope_forbidden("admin:public_key"),
            403,
            "admin:public_key",
        ),
        (faults::missing_scope_not_found(), 404, "Not Found"),
        (faults::already_in_use(), 422, "key is already in use"),
        (faults::rate_limited(30), 429, "API rate limit exceeded"),
        (
            faults::rate_limited_forbidden(30),
            403,
            "API rate limit exceeded",
        ),
        (faults::secondary_rate_limit(7), 403, "secondary rate limit"),
        (faults::server_error(502), 502, "Server Error"),
    ];
    for (action, status, text) in cases {
        s.fault(Fault::on("POST", "/user/keys", action));
        let key = public_key(dir.path(), "ed25519", "x");
        let a = gh(
            &s,
            "POST",
            "/user/keys",
            Some(json!({"key": key, "title": "t"})),
        );
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.body.contains(text), "{}", a.body);
        if text.starts_with("API rate limit") {
            assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
            let reset: i64 = a
                .header("x-ratelimit-reset")
                .and_then(|v| v.parse().ok())
                .expect("reset");
            assert!(reset > chrono::Utc::now().timestamp());
        }
        if text.contains("secondary") {
            assert_eq!(a.header("retry-after"), Some("7"));
        }
    }
    assert!(s.keys(Kind::Auth).is_empty(), "no faulted write landed");
    // Armed twice, on any id: two answers, then the real one.
    s.fault(Fault::on("DELETE", "/user/keys/*", faults::server_error(503)).times(2));
    let id = s.add_key(Kind::Auth, &public_key(dir.path(), "ed25519", "y"), "y");
    for expect in [503, 503, 204] {
        assert_eq!(
            gh(&s, "DELETE", &format!("/user/keys/{id}"), None).status,
            expect
        );
    }
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[test]
fn github_fake_loses_answers_and_hangs_on_demand() {
    let s = FakeGithub::start();
    assert_loses_answers_and_hangs(
        &s.url(),
        "/user/keys",
        &[("Authorization", AUTH), ("User-Agent", "t")],
        &|fault| s.fault(fault),
        &|| s.keys(Kind::Auth).len(),
    );
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[test]
fn github_fake_serves_enterprise_under_api_v3_with_a_fixed_rate_window() {
    let s = FakeGithub::start();
    s.serve_as_enterprise();
    assert!(s.url().ends_with("/api/v3"), "{}", s.url());
    let created = gh(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": SK_KEY, "title": "t"})),
    );
    assert_eq!(
        created.status, 422,
        "still github's rules: {}",
        created.body
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key = public_key(dir.path(), "ed25519", "e");
    let created = gh(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": key, "title": "t"})),
    );
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_u64().expect("id");
    assert_eq!(created.json()["url"], format!("{}/user/keys/{id}", s.url()));
    let root = s.url().trim_end_matches("/api/v3").to_owned();
    assert_eq!(
        call(
            &root,
            "GET",
            "/user/keys",
            &[("Authorization", AUTH), ("User-Agent", "t")],
            None
        )
        .status,
        404
    );
    let first = gh(&s, "GET", "/user/keys", None);
    let second = gh(&s, "GET", "/user/keys", None);
    let remaining = |a: &Answer| {
        a.header("x-ratelimit-remaining")
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(remaining(&second), remaining(&first).map(|r| r - 1));
    assert_eq!(
        first.header("x-ratelimit-reset"),
        second.header("x-ratelimit-reset")
    );
    assert_eq!(s.violations().len(), 1, "the sk- key: {:?}", s.violations());
}

#[test]
fn github_fake_control_api_arms_faults_and_shows_the_log() {
    let s = FakeGithub::start();
    s.enable_control_api();
    let arm = |spec: serde_json::Value| {
        call(
            &s.url(),
            "POST",
            "/_fake/faults",
            &[],
            Some(&spec.to_string()),
        )
    };
    let spec = json!({"method": "POST", "path": "/user/keys", "fault": "secondary_rate_limit", "seconds": 3});
    assert_eq!(arm(spec).status, 201);
    let custom = json!({"method": "GET", "path": "/user/keys", "status": 503, "body": "{}", "headers": {"retry-after": "1"}});
    assert_eq!(arm(custom).status, 201);
    assert_eq!(arm(json!({"fault": "no_such_fault"})).status, 400);
    let limited = gh(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": SK_KEY, "title": "t"})),
    );
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (403, Some("3"))
    );
    let unavailable = gh(&s, "GET", "/user/keys", None);
    assert_eq!(
        (unavailable.status, unavailable.header("retry-after")),
        (503, Some("1"))
    );
    assert_eq!(
        gh(&s, "GET", "/user/keys", None).status,
        200,
        "each fault fires once"
    );
    let log = call(&s.url(), "GET", "/_fake/log", &[], None);
    assert_eq!(
        log.json().as_array().map(Vec::len),
        Some(3),
        "control requests are not logged"
    );
    assert!(
        !log.body.contains(DEFAULT_TOKEN) && log.body.contains("[token 0]"),
        "{}",
        log.body
    );
    assert_eq!(
        call(&s.url(), "DELETE", "/_fake/faults", &[], None).status,
        200
    );
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    // Without the control API (the default in tests) /_fake/ is just another unknown path.
    let plain = FakeGithub::start();
    assert_eq!(
        call(
            &plain.url(),
            "GET",
            "/_fake/log",
            &[("User-Agent", "t")],
            None
        )
        .status,
        404
    );
}
