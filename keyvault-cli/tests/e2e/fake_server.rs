//! The fake RunPod API itself holds to the OpenAPI contract, so tests built on it mean
//! something: bodies that break the schema get RunPod's 422, pods can be read and patched.

use keyvault_tests::fake_runpod::{DEFAULT_KEY, FakeRunpod, pod};
use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends one HTTP request to the fake and returns (status, body).
fn request(
    server: &FakeRunpod,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn rejects_what_runpod_rejects() {
    let s = FakeRunpod::start();
    assert_eq!(request(&s, "GET", "/v2/account/ssh-keys", None, "").0, 401);
    assert_eq!(
        request(&s, "GET", "/v2/account/ssh-keys", Some("wrong"), "").0,
        401
    );
    let (status, body) = request(
        &s,
        "PUT",
        "/v2/account/ssh-keys",
        Some(DEFAULT_KEY),
        r#"{"keys": ["command=\"x\" ssh-ed25519 AAAA c"], "bogus": 1}"#,
    );
    assert_eq!(status, 422);
    let errors: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("$.keys[0]: does not match pattern")),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"$: additional properties 'bogus' not allowed"),
        "{errors:?}"
    );
    assert_eq!(
        request(
            &s,
            "PUT",
            "/v2/account/ssh-keys",
            Some(DEFAULT_KEY),
            r#"{}"#
        )
        .1["errors"][0],
        "$: missing property 'keys'"
    );
    let (status, body) = request(
        &s,
        "PUT",
        "/v2/account/ssh-keys",
        Some(DEFAULT_KEY),
        r#"{"keys": ["ssh-ed25519 AAAA a comment"]}"#,
    );
    assert_eq!(
        (status, body["keys"][0].as_str()),
        (200, Some("ssh-ed25519 AAAA a comment"))
    );
    assert_eq!(s.keys(), ["ssh-ed25519 AAAA a comment"]);
}

#[test]
fn pods_read_and_patch() {
    let s = FakeRunpod::start();
    s.add_pod(pod(
        "abc",
        "RUNNING",
        &["ssh-ed25519 AAAA k"],
        Some(("127.0.0.1", 2222)),
    ));
    let (status, body) = request(&s, "GET", "/v2/pods", Some(DEFAULT_KEY), "");
    assert_eq!(status, 200);
    assert_eq!(body["pods"][0]["env"]["PUBLIC_KEY"], "ssh-ed25519 AAAA k");
    assert_eq!(
        request(&s, "GET", "/v2/pods/nope", Some(DEFAULT_KEY), "").0,
        404
    );
    // PATCH replaces the env as a whole, and refuses properties the schema does not have.
    let (status, body) = request(
        &s,
        "PATCH",
        "/v2/pods/abc",
        Some(DEFAULT_KEY),
        r#"{"env": {"PUBLIC_KEY": "ssh-ed25519 BBBB k2"}}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        body["env"],
        serde_json::json!({"PUBLIC_KEY": "ssh-ed25519 BBBB k2"})
    );
    let (status, body) = request(
        &s,
        "PATCH",
        "/v2/pods/abc",
        Some(DEFAULT_KEY),
        r#"{"sshKeys": []}"#,
    );
    assert_eq!(status, 422, "{body}");
    s.allow_token("readonly", false);
    assert_eq!(
        request(
            &s,
            "PATCH",
            "/v2/pods/abc",
            Some("readonly"),
            r#"{"name": "x"}"#
        )
        .0,
        403
    );
    let log = s.log();
    assert!(log.iter().all(|r| r.status != 0));
}
