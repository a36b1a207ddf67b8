//! The fake GitLab holds to its API description (where GitLab's code departs from it, to the
//! code) and each fault answers as GitLab does.

use super::{
    Answer, SK_KEY, assert_log_has_no_token, assert_loses_answers_and_hangs, call, public_key,
};
use keyvault_tests::fake_gitlab::{Action, DEFAULT_TOKEN, FakeGitlab, Fault, Restriction, faults};
use serde_json::json;

fn gl(s: &FakeGitlab, method: &str, target: &str, body: Option<serde_json::Value>) -> Answer {
    with_token(s, ("PRIVATE-TOKEN", DEFAULT_TOKEN), method, target, body)
}

fn with_token(
    s: &FakeGitlab,
    auth: (&str, &str),
    method: &str,
    target: &str,
    body: Option<serde_json::Value>,
) -> Answer {
    let body = body.map(|b| b.to_string());
    call(
        &s.api_url(),
        method,
        target,
        &[auth, ("User-Agent", "keyvault-tests")],
        body.as_deref(),
    )
}

fn future(days: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn gitlab_fake_answers_every_documented_endpoint_as_gitlab_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGitlab::start();
    assert_eq!(s.api_url(), format!("{}/api/v4", s.url()));
    let line = public_key(dir.path(), "ed25519", "me@laptop");
    let expires = future(30);
    let body =
        json!({"key": line, "title": "keyvault:k1", "expires_at": expires, "usage_type": "auth"});
    let created = gl(&s, "POST", "/user/keys", Some(body));
    assert_eq!(created.status, 201, "{}", created.body);
    let k = created.json();
    // The comment is replaced by the account holder's name and the host.
    let body_of = line.rsplit_once(' ').expect("comment").0;
    assert_eq!(k["key"], format!("{body_of} Test User (127.0.0.1)"));
    assert_eq!(
        (k["title"].as_str(), k["usage_type"].as_str()),
        (Some("keyvault:k1"), Some("auth"))
    );
    assert_eq!(k["expires_at"], format!("{}.000Z", &expires[..19]));
    assert_eq!(
        s.keys()[0].key,
        line,
        "GitLab stores the comment, it only does not answer it"
    );
    // Without usage_type GitLab makes an authentication *and* signing key.
    let plain = gl(
        &s,
        "POST",
        "/user/keys",
        Some(json!({"key": SK_KEY, "title": "sk"})),
    );
    assert_eq!(
        (plain.status, plain.json()["usage_type"].as_str()),
        (201, Some("auth_and_signing"))
    );
    assert_eq!(plain.json()["expires_at"], serde_json::Value::Null);
    let id = k["id"].as_u64().expect("id");
    let listed = gl(&s, "GET", "/user/keys", None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), json!([k, plain.json()]));
    assert_eq!(
        (listed.header("x-total"), listed.header("x-next-page")),
        (Some("2"), Some(""))
    );
    assert_eq!(gl(&s, "GET", &format!("/user/keys/{id}"), None).json(), k);
    let deleted = gl(&s, "DELETE", &format!("/user/keys/{id}"), None);
    assert_eq!(
        (deleted.status, deleted.body.as_str()),
        (204, ""),
        "the code's 204, not the description's 200"
    );
    let gone = gl(&s, "GET", &format!("/user/keys/{id}"), None);
    assert_eq!(
        (gone.status, gone.json()),
        (404, json!({"message": "404 Key Not Found"}))
    );
    s.set_rewrite_comments(false);
    assert_eq!(gl(&s, "GET", "/user/keys", None).json()[0]["key"], SK_KEY);
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    assert_log_has_no_token(&s.log());
    assert!(
        s.log()
            .iter()
            .all(|r| r.header("private-token") == Some("[token 0]"))
    );
}

#[test]
fn gitlab_fake_refuses_what_gitlab_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGitlab::start();
    let line = public_key(dir.path(), "ed25519", "c");
    let post = |body: serde_json::Value| gl(&s, "POST", "/user/keys", Some(body));
    let error = |a: Answer| (a.status, a.json());
    assert_eq!(
        error(post(json!({"key": line}))),
        (400, json!({"error": "title is missing"}))
    );
    assert_eq!(
        error(post(json!({"title": "t"}))),
        (400, json!({"error": "key is missing"}))
    );
    let odd = post(json!({"key": line, "title": "t", "usage_type": "both"}));
    assert_eq!(error(odd), (400, json!({"error": "usage_type is invalid"})));
    let date_only = post(json!({"key": line, "title": "t", "expires_at": "2030-01-01"}));
    assert_eq!(
        date_only.status, 400,
        "send a full date-time, as the description says"
    );
    let past = post(json!({"key": line, "title": "t", "expires_at": future(-1)}));
    assert_eq!(
        error(past),
        (400, json!({"message": {"key": ["has expired"]}}))
    );
    assert_eq!(post(json!({"key": line, "title": "t"})).status, 201);
    let taken = json!({"message": {"fingerprint_sha256": ["has already been taken"]}});
    assert_eq!(
        error(post(json!({"key": line, "title": "again"}))),
        (400, taken.clone())
    );
    let other = public_key(dir.path(), "ecdsa", "deploy");
    s.in_use_elsewhere(&other);
    assert_eq!(
        error(post(json!({"key": other, "title": "t"}))),
        (400, taken)
    );
    let rsa = public_key(dir.path(), "rsa", "old");
    s.restrict("rsa", Restriction::MinimumBits(3072));
    let small = json!({"message": {"key": ["must be at least 3072 bits"]}});
    assert_eq!(error(post(json!({"key": rsa, "title": "t"}))), (400, small));
    s.restrict("rsa", Restriction::Forbidden);
    let forbidden = error(post(json!({"key": rsa, "title": "t"})));
    let want = "type is forbidden. Must be DSA, ECDSA, ED25519, ECDSA_SK, or ED25519_SK";
    assert_eq!(forbidden, (400, json!({"message": {"key": [want]}})));
    assert_eq!(s.keys().len(), 1);
    assert_eq!(s.violations().len(), 4, "{:?}", s.violations());
}

#[test]
fn gitlab_fake_wants_a_token_with_the_api_scope() {
    let s = FakeGitlab::start();
    s.allow_token("glpat-read", &["read_api"]);
    let unauthorized = json!({"message": "401 Unauthorized"});
    let none = call(&s.api_url(), "GET", "/user/keys", &[], None);
    assert_eq!((none.status, none.json()), (401, unauthorized.clone()));
    let wrong = with_token(
        &s,
        ("PRIVATE-TOKEN", "glpat-wrong"),
        "GET",
        "/user/keys",
        None,
    );
    assert_eq!((wrong.status, wrong.json()), (401, unauthorized));
    let bearer = format!("Bearer {DEFAULT_TOKEN}");
    assert_eq!(
        with_token(&s, ("Authorization", &bearer), "GET", "/user/keys", None).status,
        200
    );
    let read = with_token(
        &s,
        ("PRIVATE-TOKEN", "glpat-read"),
        "GET",
        "/user/keys",
        None,
    );
    assert_eq!(read.status, 200);
    let write = with_token(
        &s,
        ("PRIVATE-TOKEN", "glpat-read"),
        "POST",
        "/user/keys",
        Some(json!({"key": SK_KEY, "title": "t"})),
    );
    assert_eq!(write.status, 403);
    assert_eq!(
        (
            write.json()["error"].as_str(),
            write.json()["scope"].as_str()
        ),
        (Some("insufficient_scope"), Some("api"))
    );
    assert!(s.keys().is_empty());
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    assert_log_has_no_token(&s.log());
}

#[test]
fn gitlab_fake_paginates_and_keeps_listing_expired_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGitlab::start();
    s.set_page_size(2);
    let soon = chrono::Utc::now() + chrono::TimeDelta::days(1);
    for i in 0..5 {
        s.add_key(
            &public_key(dir.path(), "ed25519", &format!("k{i}")),
            &format!("t{i}"),
            Some(soon),
            "auth",
        );
    }
    // A day later every key has expired; GitLab still lists them.
    s.set_now(soon + chrono::TimeDelta::days(1));
    let mut page = "1".to_owned();
    let mut titles = Vec::new();
    while !page.is_empty() {
        let a = gl(
            &s,
            "GET",
            &format!("/user/keys?per_page=20&page={page}"),
            None,
        );
        assert_eq!(
            (
                a.header("x-total"),
                a.header("x-total-pages"),
                a.header("x-per-page")
            ),
            (Some("5"), Some("3"), Some("2"))
        );
        titles.extend(
            a.json()
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| k["title"].clone()),
        );
        page = a.header("x-next-page").expect("x-next-page").to_owned();
    }
    assert_eq!(titles, ["t0", "t1", "t2", "t3", "t4"]);
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[test]
fn gitlab_faults_answer_as_gitlab_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGitlab::start();
    let cases: Vec<(Action, u16, &str)> = vec![
        (faults::unauthorized(), 401, "401 Unauthorized"),
        (faults::insufficient_scope("api"), 403, "insufficient_scope"),
        (faults::not_found(), 404, "404 Not Found"),
        (faults::already_taken(), 400, "has already been taken"),
        (faults::rate_limited(9), 429, "Retry later"),
        (faults::server_error(500), 500, "Internal Server Error"),
    ];
    for (action, status, text) in cases {
        s.fault(Fault::on("POST", "/api/v4/user/keys", action));
        let key = public_key(dir.path(), "ed25519", "x");
        let a = gl(
            &s,
            "POST",
            "/user/keys",
            Some(json!({"key": key, "title": "t"})),
        );
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.body.contains(text), "{}", a.body);
        if status == 429 {
            assert_eq!(
                (a.header("retry-after"), a.header("ratelimit-remaining")),
                (Some("9"), Some("0"))
            );
            let reset: i64 = a
                .header("ratelimit-reset")
                .and_then(|v| v.parse().ok())
                .expect("reset");
            assert!(reset > chrono::Utc::now().timestamp());
        }
    }
    assert!(s.keys().is_empty(), "no faulted write landed");
    s.fault(Fault::on("DELETE", "/api/v4/user/keys/*", faults::server_error(502)).times(2));
    let id = s.add_key(&public_key(dir.path(), "ed25519", "y"), "y", None, "auth");
    for expect in [502, 502, 204] {
        assert_eq!(
            gl(&s, "DELETE", &format!("/user/keys/{id}"), None).status,
            expect
        );
    }
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[test]
fn gitlab_fake_loses_answers_and_hangs_on_demand() {
    let s = FakeGitlab::start();
    assert_loses_answers_and_hangs(
        &s.api_url(),
        "/api/v4/user/keys",
        &[("PRIVATE-TOKEN", DEFAULT_TOKEN)],
        &|fault| s.fault(fault),
        &|| s.keys().len(),
    );
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[test]
fn gitlab_fake_can_leave_the_totals_out_as_gitlab_com_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FakeGitlab::start();
    s.set_page_size(1);
    s.omit_totals();
    for i in 0..3 {
        s.add_key(
            &public_key(dir.path(), "ed25519", &format!("k{i}")),
            &format!("t{i}"),
            None,
            "auth",
        );
    }
    let first = gl(&s, "GET", "/user/keys", None);
    assert_eq!(
        (first.header("x-total"), first.header("x-total-pages")),
        (None, None)
    );
    assert_eq!(first.header("x-next-page"), Some("2"));
    let link = first.header("link").expect("link");
    assert!(
        link.contains("rel=\"next\"") && !link.contains("rel=\"last\""),
        "{link}"
    );
    let last = gl(&s, "GET", "/user/keys?page=3", None);
    assert_eq!(
        (last.header("x-next-page"), last.json()[0]["title"].as_str()),
        (Some(""), Some("t2"))
    );
    s.enable_control_api();
    let spec = json!({"method": "GET", "path": "/api/v4/user/keys", "fault": "rate_limited", "seconds": 2});
    assert_eq!(
        call(
            &s.url(),
            "POST",
            "/_fake/faults",
            &[],
            Some(&spec.to_string())
        )
        .status,
        201
    );
    let limited = gl(&s, "GET", "/user/keys", None);
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("2"))
    );
    let log = call(&s.url(), "GET", "/_fake/log", &[], None);
    assert!(
        log.body.contains(r#""private-token":"[token 0]""#),
        "{}",
        log.body
    );
    assert!(!log.body.contains(DEFAULT_TOKEN), "{}", log.body);
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}
