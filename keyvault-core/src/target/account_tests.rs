//! The account target against a small scripted HTTP server on 127.0.0.1: what it sends,
//! how it pages, verifies, reads back a lost answer and refuses before writing.

use super::super::account::AccountTarget;
use super::super::provider::{Http, ProviderSettings};
use super::super::{Target, TargetSpec};
use crate::error::{Error, Provider, ProviderError, TargetError};
use crate::remote::AddKey;
use crate::secret::ApiToken;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "tok_SECRET_abcdef123456";

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the script answers: status, extra headers, body; `None` drops the connection.
type Answer = Option<(u16, Vec<(String, String)>, String)>;

/// Serves `handler` on 127.0.0.1 until the test ends; returns the URL and the requests.
fn serve(
    mut handler: impl FnMut(&Req, &str) -> Answer + Send + 'static,
) -> (String, Arc<Mutex<Vec<Req>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, base) = (Arc::clone(&seen), url.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).expect("header");
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap_or(0));
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("body");
            let req = Req {
                method,
                target,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            log.lock().expect("lock").push(req.clone());
            let Some((status, extra, body)) = handler(&req, &base) else {
                continue;
            };
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            let _ = write!(stream, "{head}\r\n{body}");
        }
    });
    (url, seen)
}

fn key(comment: &str) -> AddKey {
    let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
    let k = crate::keygen::generate(&mut rng, crate::keygen::Algorithm::Ed25519, comment)
        .expect("generate");
    AddKey {
        fingerprint: k.public_key().fingerprint(ssh_key::HashAlg::Sha256),
        line: k.public_key().to_openssh().expect("encode"),
    }
}

fn body(line: &str) -> String {
    line.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn open(provider: Provider, spec: &str, url: &str) -> AccountTarget {
    let settings = ProviderSettings::new(provider, ApiToken::new(TOKEN), Some(url)).retries(
        2,
        Duration::from_millis(5),
        Duration::from_secs(2),
    );
    let spec: TargetSpec = spec.parse().expect("spec");
    let api: Box<dyn super::super::account::Api> = match provider {
        Provider::Github => Box::new(super::super::github::Github::new(false)),
        Provider::Gitlab => Box::new(super::super::gitlab::Gitlab),
    };
    AccountTarget::new(spec, Http::new(settings).expect("client"), api)
}

fn no_hook(_: &str) -> Result<(), Error> {
    Ok(())
}

/// A GitHub key list in memory, one key a page, `Link` headers to the next.
fn github(keys: Arc<Mutex<Vec<Value>>>) -> impl FnMut(&Req, &str) -> Answer + Send {
    move |req, base| {
        let mut keys = keys.lock().expect("lock");
        let path = req.target.split('?').next().unwrap_or("");
        match (req.method.as_str(), path) {
            ("GET", "/user/keys") => {
                let page: usize = req
                    .target
                    .split("page=")
                    .nth(2)
                    .or_else(|| req.target.split("&page=").nth(1))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                let item: Vec<&Value> = keys.iter().skip(page - 1).take(1).collect();
                let mut headers = Vec::new();
                if page < keys.len() {
                    let next = format!(
                        "<{base}/user/keys?per_page=100&page={}>; rel=\"next\"",
                        page + 1
                    );
                    headers.push(("link".to_owned(), next));
                }
                Some((200, headers, json!(item).to_string()))
            }
            ("POST", "/user/keys") => {
                let v: Value = serde_json::from_str(&req.body).expect("json");
                let id = 100 + keys.len() as u64;
                let k = json!({"id": id, "key": body(v["key"].as_str().expect("key")), "title": v["title"]});
                keys.push(k.clone());
                Some((201, Vec::new(), k.to_string()))
            }
            ("DELETE", p) => {
                let id: u64 = p
                    .rsplit('/')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .expect("id");
                keys.retain(|k| k["id"] != id);
                Some((204, Vec::new(), String::new()))
            }
            _ => Some((404, Vec::new(), "{}".to_owned())),
        }
    }
}

#[test]
fn github_pages_adds_verifies_and_deletes_only_its_own_keys() {
    let (unmanaged, managed) = (key("me@laptop"), key("keyvault:web-1"));
    let keys = Arc::new(Mutex::new(vec![
        json!({"id": 1, "key": body(&unmanaged.line), "title": "laptop"}),
        json!({"id": 2, "key": body(&key("other").line), "title": "other"}),
    ]));
    let (url, seen) = serve(github(Arc::clone(&keys)));
    let mut target = open(Provider::Github, "github", &url);
    let applied = target
        .apply(std::slice::from_ref(&managed), &HashSet::new(), &no_hook)
        .expect("apply");
    assert!(applied.wrote && applied.present.contains(&managed.fingerprint));
    assert_eq!(applied.present.len(), 3, "every page was read");
    let requests = seen.lock().expect("lock").clone();
    let post = requests.iter().find(|r| r.method == "POST").expect("post");
    let sent: Value = serde_json::from_str(&post.body).expect("json");
    assert_eq!(sent["title"], "keyvault:web-1");
    assert_eq!(
        sent["key"],
        format!("{} keyvault:web-1", body(&managed.line))
    );
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            r.header("user-agent")
                .is_some_and(|u| u.starts_with("keyvault/"))
        );
        assert!(!r.target.contains(TOKEN));
    }
    // Listing shows the title as the comment; removing deletes that key alone.
    let listed = target.list().expect("list");
    assert_eq!(listed[2].comment(), "keyvault:web-1");
    let remove = HashSet::from([managed.fingerprint]);
    target.apply(&[], &remove, &no_hook).expect("remove");
    let deletes: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(deletes, ["/user/keys/102"]);
    assert_eq!(keys.lock().expect("lock").len(), 2);
}

#[test]
fn github_refuses_security_keys_for_authentication_before_any_request() {
    let sk = AddKey {
        fingerprint: key("x").fingerprint,
        line: "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gAAAABHNzaDo= keyvault:s-1".to_owned(),
    };
    let (url, seen) = serve(|_, _| Some((500, Vec::new(), "{}".to_owned())));
    let mut target = open(Provider::Github, "github", &url);
    let err = target
        .apply(&[sk], &HashSet::new(), &no_hook)
        .expect_err("refused");
    assert!(
        matches!(&err, Error::Target(TargetError::Provider { source: ProviderError::KeyRefused { reasons, .. }, .. }) if reasons[0].contains("signing keys only")),
        "{err}"
    );
    assert!(seen.lock().expect("lock").is_empty());
}

#[test]
fn gitlab_lost_answer_is_read_back_not_replayed_and_carries_expiry_and_usage() {
    let k = key("keyvault:ci-1");
    let stored: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let keys = Arc::clone(&stored);
    let (url, seen) = serve(move |req, _| {
        let mut keys = keys.lock().expect("lock");
        if req.method == "POST" {
            let v: Value = serde_json::from_str(&req.body).expect("json");
            // GitLab rewrites the comment; then the answer is lost.
            let rewritten = format!(
                "{} Jane Doe (gitlab.example.com)",
                body(v["key"].as_str().expect("key"))
            );
            keys.push(json!({"id": 7, "key": rewritten, "title": v["title"], "expires_at": v["expires_at"], "usage_type": v["usage_type"]}));
            return None;
        }
        Some((
            200,
            vec![("x-next-page".to_owned(), String::new())],
            json!(*keys).to_string(),
        ))
    });
    let mut target = open(Provider::Gitlab, "gitlab", &url);
    let add = AddKey {
        fingerprint: k.fingerprint,
        line: format!("expiry-time=\"20300102030405Z\" {}", k.line),
    };
    let applied = target
        .apply(&[add], &HashSet::new(), &no_hook)
        .expect("apply");
    assert!(applied.present.contains(&k.fingerprint));
    let requests = seen.lock().expect("lock").clone();
    let posts: Vec<&Req> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "the write was read back, not sent again");
    let sent: Value = serde_json::from_str(&posts[0].body).expect("json");
    assert_eq!(sent["usage_type"], "auth");
    assert_eq!(sent["expires_at"], "2030-01-02T03:04:05Z");
    assert_eq!(
        posts[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // The listed key carries its expiry as status compares it.
    let listed = target.list().expect("list");
    assert_eq!(listed[0].options(), Some("expiry-time=\"20300102030405Z\""));
    assert_eq!(listed[0].fingerprint(), Some(&k.fingerprint));
}

#[test]
fn a_delete_answered_404_while_the_key_stays_is_a_missing_scope() {
    let k = key("keyvault:web-1");
    let listed = json!([{"id": 5, "key": body(&k.line), "title": "keyvault:web-1"}]).to_string();
    let (url, _) = serve(move |req, _| {
        Some(if req.method == "DELETE" {
            (404, Vec::new(), r#"{"message":"Not Found"}"#.to_owned())
        } else {
            (200, Vec::new(), listed.clone())
        })
    });
    let mut target = open(Provider::Github, "github", &url);
    let err = target
        .apply(&[], &HashSet::from([k.fingerprint]), &no_hook)
        .expect_err("still there");
    assert!(
        matches!(&err, Error::Target(TargetError::Provider { source: ProviderError::MissingScope { status: 404, needed, .. }, .. }) if needed[0].starts_with("admin:public_key")),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN), "{err}");
}

#[test]
fn a_server_echoing_the_token_into_a_next_page_url_never_gets_it_into_an_error() {
    // Page 1 links to a page 2 whose URL carries the token (a proxy echoing it); page 2's
    // connection drops.
    let (url, _) = serve(move |req, base| {
        if req.target.contains("page=2") {
            return None;
        }
        let link = format!("<{base}/user/keys?page=2&access_token={TOKEN}>; rel=\"next\"");
        Some((200, vec![("link".to_owned(), link)], "[]".to_owned()))
    });
    let mut target = open(Provider::Github, "github", &url);
    let err = target.list().expect_err("page 2 drops");
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
}

#[test]
fn gitlab_dropping_the_expiry_sent_is_not_done() {
    let k = key("keyvault:ci-2");
    let stored: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let keys = Arc::clone(&stored);
    let (url, _) = serve(move |req, _| {
        let mut keys = keys.lock().expect("lock");
        if req.method == "POST" {
            let v: Value = serde_json::from_str(&req.body).expect("json");
            // An instance that ignores expires_at: the key would never expire there.
            let held = json!({"id": 8, "key": v["key"], "title": v["title"], "expires_at": null});
            keys.push(held.clone());
            return Some((201, Vec::new(), held.to_string()));
        }
        Some((200, Vec::new(), json!(*keys).to_string()))
    });
    let mut target = open(Provider::Gitlab, "gitlab", &url);
    let add = AddKey {
        fingerprint: k.fingerprint,
        line: format!("expiry-time=\"20300102030405Z\" {}", k.line),
    };
    let err = target
        .apply(&[add], &HashSet::new(), &no_hook)
        .expect_err("the expiry was not kept");
    assert!(
        matches!(&err, Error::Target(TargetError::Interference { what, .. }) if what.contains("without the expiry")),
        "{err}"
    );
}
