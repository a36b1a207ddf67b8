//! RunPod end to end, through the `keyvault` binary against the fake RunPod API: deploy,
//! rotate, revoke and sweep over REST v2 and GraphQL with the exact remote list asserted
//! (unmanaged keys and an unparseable line survive, in order), every fault, a crash at
//! every step, two accounts, pods, drift.

use crate::support::{OTHER_API_KEY, Vault, snapshot};
use keyvault_tests::fake_runpod::{Action, DEFAULT_KEY, FakeRunpod, Fault, pod};
use std::time::Duration;

/// A key keyvault does not manage.
const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";
/// A line RunPod accepted once but that is not a public key.
const GARBAGE: &str = "ssh-rsa AAAA-not-base64 legacy-entry";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Api {
    V2,
    Graphql,
}

fn setup(api: Api) -> (Vault, FakeRunpod) {
    let server = FakeRunpod::start();
    server.set_keys(&[UNMANAGED, GARBAGE]);
    if api == Api::Graphql {
        server.disable_v2();
    }
    let v = Vault::new();
    v.use_runpod(&server);
    (v, server)
}

/// The line keyvault deploys for key `id` (its public key with the default comment).
fn line(v: &Vault, id: &str) -> String {
    let key = v.run(&["--json", "show", id]).expect(0).json();
    key["public_key"].as_str().expect("public key").to_owned()
}

fn state(v: &Vault, id: &str) -> String {
    v.run(&["--json", "show", id]).expect(0).json()["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

fn expect_list(server: &FakeRunpod, expected: &[&str]) {
    assert_eq!(
        server.keys(),
        expected.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

fn rotate(v: &Vault, args: &[&str]) -> crate::support::Run {
    let mut a = vec!["rotate"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--passphrase-env", "KV_PASS"]);
    v.run(&a)
}

fn lifecycle(api: Api) {
    let (v, s) = setup(api);
    v.new_key("personal", &[]);
    v.new_key("team", &[]);
    let out = v
        .run(&["deploy", "personal", "--to", "runpod"])
        .expect(0)
        .no_secrets();
    assert_eq!(out.stdout, "deployed personal-1 to runpod\n");
    v.run(&["deploy", "team", "--to", "runpod"])
        .expect(0)
        .no_secrets();
    let (p1, t1) = (line(&v, "personal-1"), line(&v, "team-1"));
    expect_list(&s, &[UNMANAGED, GARBAGE, &p1, &t1]);
    assert!(p1.ends_with(" keyvault:personal-1"), "{p1}");

    // Deploying again reads, finds the key, writes nothing.
    s.clear_log();
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    assert_eq!(s.key_calls(), (1, 0));

    // The account's keys, managed or not.
    let keys = v
        .run(&["--json", "runpod", "keys"])
        .expect(0)
        .no_secrets()
        .json();
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["state"].as_str().expect("s"))
        .collect();
    assert_eq!(states, ["unmanaged", "unparseable", "active", "active"]);

    // Rotate one purpose: new key added and old removed in one write, then verified.
    s.clear_log();
    rotate(&v, &["personal"]).expect(0).no_secrets();
    assert_eq!(s.key_calls(), (2, 1), "read, write, verifying read");
    let p2 = line(&v, "personal-2");
    expect_list(&s, &[UNMANAGED, GARBAGE, &t1, &p2]);
    assert_eq!(state(&v, "personal-1"), "revoked");
    assert_eq!(state(&v, "personal"), "active");
    assert_eq!(
        std::fs::read_link(v.home.join("current/personal")).expect("link"),
        std::path::Path::new("../keys/personal-2")
    );

    // --dry-run changes nothing, locally or remotely.
    let before = snapshot(&v.home);
    s.clear_log();
    let plan = v
        .run(&["--json", "rotate", "--all", "--dry-run"])
        .expect(0)
        .json();
    assert_eq!(plan["rotations"].as_array().map(Vec::len), Some(2));
    assert_eq!(snapshot(&v.home), before);
    assert!(s.log().is_empty());

    // Every purpose at once: still one read, one write, one verifying read.
    rotate(&v, &["--all"]).expect(0).no_secrets();
    assert_eq!(s.key_calls(), (2, 1));
    let (p3, t2) = (line(&v, "personal-3"), line(&v, "team-2"));
    expect_list(&s, &[UNMANAGED, GARBAGE, &p3, &t2]);

    // With a grace period the old key stays (retiring) until sweep after the grace.
    v.new_key("ci", &["--ttl", "4s"]);
    v.run(&["deploy", "ci", "--to", "runpod"]).expect(0);
    let c1 = line(&v, "ci-1");
    let out = rotate(&v, &["personal", "--grace", "4s"]).expect(0);
    assert!(
        out.stdout.contains("personal-3 stays deployed until"),
        "{}",
        out.stdout
    );
    let p4 = line(&v, "personal-4");
    expect_list(&s, &[UNMANAGED, GARBAGE, &p3, &t2, &c1, &p4]);
    assert_eq!(state(&v, "personal-3"), "retiring");
    v.run(&["sweep"]).expect(0);
    expect_list(&s, &[UNMANAGED, GARBAGE, &p3, &t2, &c1, &p4]);
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    let until = chrono::DateTime::parse_from_rfc3339(
        inventory["journal"][0]["grace_until"]
            .as_str()
            .expect("grace"),
    )
    .expect("rfc3339");
    // A second after the grace ends (and ci-1 expired) by keyvault's clock, without sleeping.
    v.set_now(until.with_timezone(&chrono::Utc) + chrono::Duration::seconds(1));

    // Sweep ends the grace period and revokes the expired key: one write for both.
    s.clear_log();
    let swept = v.run(&["--json", "sweep"]).expect(0).no_secrets().json();
    assert_eq!(swept["revoked"], serde_json::json!(["personal-3", "ci-1"]));
    expect_list(&s, &[UNMANAGED, GARBAGE, &t2, &p4]);
    assert_eq!(state(&v, "personal-3"), "revoked");
    assert_eq!(state(&v, "ci-1"), "revoked");

    // Revoke removes from every target and marks it revoked.
    v.run(&["revoke", "team"]).expect(0).no_secrets();
    expect_list(&s, &[UNMANAGED, GARBAGE, &p4]);
    assert_eq!(state(&v, "team-2"), "revoked");
    assert!(!v.home.join("current/team").exists());

    v.run(&["log", "--verify"]).expect(0);
    assert_eq!(v.run(&["status"]).expect(0).code, 0);
    for r in s.log() {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {DEFAULT_KEY}").as_str())
        );
        assert!(
            !r.target.contains(DEFAULT_KEY) && !r.target.contains("api_key"),
            "{}",
            r.target
        );
    }
    v.assert_no_secret_on_disk();
    assert!(!v.inventory_text().contains(DEFAULT_KEY));
}

#[test]
fn lifecycle_over_rest_v2() {
    lifecycle(Api::V2);
}

#[test]
fn lifecycle_over_graphql_when_v2_is_absent() {
    lifecycle(Api::Graphql);
}

/// A vault with `personal-1` deployed to the server.
fn deployed(api: Api) -> (Vault, FakeRunpod, String) {
    let (v, s) = setup(api);
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let p1 = line(&v, "personal-1");
    (v, s, p1)
}

/// After a failure: the inventory reads, the log verifies, nothing leaked.
fn consistent(v: &Vault) {
    v.run(&["--json", "list", "--all"]).expect(0);
    v.run(&["log", "--verify"]).expect(0);
    v.assert_no_secret_on_disk();
}

fn respond(status: u16, body: &str, headers: &[(&str, &str)]) -> Action {
    Action::Respond {
        status,
        body: body.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// A fault's name, how to arm it, and the message it must produce.
type FaultCase<'a> = (&'static str, Box<dyn Fn() + 'a>, &'static str);

#[test]
fn faults_give_clear_errors_and_leave_a_consistent_vault() {
    let (v, s, p1) = deployed(Api::V2);
    v.new_key("team", &[]);
    let cases: Vec<FaultCase<'_>> = vec![
        (
            "invalid key",
            Box::new(|| v.set_env("RUNPOD_API_KEY", "rpa_WRONG_KEY_12345")),
            "RunPod rejected the API key (401 invalid bearer token)",
        ),
        (
            "read-only key",
            Box::new(|| {
                s.allow_token(OTHER_API_KEY, false);
                v.set_env("RUNPOD_API_KEY", OTHER_API_KEY);
            }),
            "lacks access for this (access denied); a read-only key cannot change SSH keys",
        ),
        (
            "validation",
            Box::new(|| {
                s.fault(Fault::on("PUT", "/v2/account/ssh-keys", respond(422, r#"{"title":"Unprocessable Entity","status":422,"detail":"Request validation failed.","errors":["$.keys[2]: does not match pattern","$.keys[3]: too long"]}"#, &[])))
            }),
            "RunPod refused the request as invalid: $.keys[2]: does not match pattern; $.keys[3]: too long",
        ),
        (
            "rate limited",
            Box::new(|| {
                s.fault(Fault::on("GET", "/v2/account/ssh-keys", respond(429, r#"{"title":"Too Many Requests","status":429,"detail":"rate limit exceeded for the minute window"}"#, &[("Retry-After", "1")])).times(4))
            }),
            "RunPod is rate limiting this API key (retry after 1 s)",
        ),
        (
            "hang",
            Box::new(|| {
                s.fault(
                    Fault::on(
                        "GET",
                        "/v2/account/ssh-keys",
                        Action::Hang(Duration::from_secs(4)),
                    )
                    .times(4),
                )
            }),
            "cannot reach RunPod at",
        ),
        (
            "truncated body",
            Box::new(|| {
                s.fault(Fault::on("GET", "/v2/account/ssh-keys", Action::Truncate).times(4))
            }),
            "cannot reach RunPod at",
        ),
        (
            "not json",
            Box::new(|| s.fault(Fault::on("GET", "/v2/account/ssh-keys", Action::NotJson))),
            "unexpected answer from RunPod GET /v2/account/ssh-keys",
        ),
        (
            "another writer",
            Box::new(|| {
                s.fault(Fault::on(
                    "PUT",
                    "/v2/account/ssh-keys",
                    Action::StaleWriter { add: vec![] },
                ))
            }),
            "another writer changed the key list while keyvault was writing it",
        ),
    ];
    for (name, arm, message) in cases {
        v.use_runpod(&s);
        arm();
        let before = snapshot(&v.home);
        let run = v.run(&["deploy", "team", "--to", "runpod"]).no_secrets();
        assert_eq!(
            snapshot(&v.home),
            before,
            "{name}: a failed deploy changed the vault"
        );
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(message),
            "{name}: expected {message:?} in\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: ") || name == "not json" || name == "validation",
            "{name}: no hint\n{}",
            run.stderr
        );
        // Nothing recorded, unmanaged keys untouched.
        assert_eq!(
            v.run(&["--json", "show", "team"]).expect(0).json()["deployments"],
            serde_json::json!([]),
            "{name}"
        );
        let keys = s.keys();
        assert_eq!(
            &keys[..3],
            &[UNMANAGED.to_owned(), GARBAGE.to_owned(), p1.clone()],
            "{name}"
        );
        consistent(&v);
        // Whatever the fault left behind, the next run succeeds.
        v.use_runpod(&s);
        v.run(&["deploy", "team", "--to", "runpod"]).expect(0);
        let team = line(&v, "team");
        expect_list(&s, &[UNMANAGED, GARBAGE, &p1, &team]);
        // Start the next case from the same remote state, with a fresh team key.
        v.run(&["revoke", "team"]).expect(0);
        expect_list(&s, &[UNMANAGED, GARBAGE, &p1]);
        v.run(&["new", "--purpose", "team", "--passphrase-env", "KV_PASS"])
            .expect(0);
    }
}

#[test]
fn transient_failures_are_retried_and_unknown_writes_re_read() {
    let (v, s, p1) = deployed(Api::V2);
    v.new_key("team", &[]);
    // 500 then 429 on reads: retried.
    s.fault(Fault::on(
        "GET",
        "/v2/account/ssh-keys",
        respond(
            500,
            r#"{"title":"Internal Server Error","status":500,"detail":"boom"}"#,
            &[],
        ),
    ));
    s.fault(Fault::on(
        "GET",
        "/v2/account/ssh-keys",
        respond(
            429,
            r#"{"title":"Too Many Requests","status":429,"detail":"slow down"}"#,
            &[("Retry-After", "1")],
        ),
    ));
    // The write is applied but its answer lost: keyvault re-reads instead of replaying.
    s.fault(Fault::on("PUT", "/v2/account/ssh-keys", Action::DropAfter));
    s.clear_log();
    v.run(&["deploy", "team", "--to", "runpod"])
        .expect(0)
        .no_secrets();
    let t1 = line(&v, "team-1");
    expect_list(&s, &[UNMANAGED, GARBAGE, &p1, &t1]);
    let (_, writes) = s.key_calls();
    assert_eq!(
        writes, 1,
        "a write whose answer was lost must not be replayed when the read shows it applied"
    );
}

#[test]
fn graphql_errors_on_writes_are_checked() {
    let (v, s, p1) = deployed(Api::Graphql);
    v.new_key("team", &[]);
    s.allow_token(OTHER_API_KEY, false);
    v.set_env("RUNPOD_API_KEY", OTHER_API_KEY);
    let run = v
        .run(&["deploy", "team", "--to", "runpod"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains("lacks access for this (GraphQL: Unauthorized)"),
        "{}",
        run.stderr
    );
    v.use_runpod(&s);
    s.fault(Fault::on("POST", "/graphql", respond(200, r#"{"errors":[{"message":"Something went wrong. Please try again later or contact support."}]}"#, &[])));
    let run = v
        .run(&["deploy", "team", "--to", "runpod"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains("RunPod GraphQL error: Something went wrong"),
        "{}",
        run.stderr
    );
    expect_list(&s, &[UNMANAGED, GARBAGE, &p1]);
    consistent(&v);
    // Keys travel through variables, never spliced into the query text.
    v.run(&["deploy", "team", "--to", "runpod"]).expect(0);
    for r in s.log().iter().filter(|r| r.body.contains("mutation")) {
        let body: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert!(!body["query"].as_str().expect("query").contains("ssh-"));
        assert!(
            body["variables"]["input"]["pubKey"]
                .as_str()
                .expect("pubKey")
                .contains(UNMANAGED)
        );
    }
}

#[test]
fn oversized_list_is_refused_before_sending_naming_sweepable_keys() {
    let (v, s) = setup(Api::V2);
    // old-1 is deployed while live, then expires: keyvault's clock moves on, nothing sleeps.
    let born = chrono::Utc::now();
    v.set_now(born);
    v.new_key("old", &["--ttl", "20s"]);
    v.run(&["deploy", "old", "--to", "runpod"]).expect(0);
    let old = line(&v, "old-1");
    // Fill the account close to the limit with other (unmanaged) keys' lines.
    let filler: Vec<String> = (0..700)
        .map(|i| format!("{UNMANAGED}-{i:04}-{}", "x".repeat(60)))
        .collect();
    let mut all: Vec<&str> = vec![&old];
    all.extend(filler.iter().map(String::as_str));
    s.set_keys(&all);
    v.set_now(born + chrono::Duration::seconds(21));
    v.new_key("big", &["--algorithm", "rsa-4096"]);
    s.clear_log();
    let run = v
        .run(&["deploy", "big", "--to", "runpod"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains("over RunPod's limit of about 65000"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`keyvault sweep` would remove these expired keys: old-1"),
        "{}",
        run.stderr
    );
    assert_eq!(s.key_calls(), (1, 0), "nothing may be sent");
}

/// Runs a rotation that stops at `point` (`=abort` kills the process), then finishes it,
/// checking the invariants in between.
fn crash_and_finish(point: &str, grace: bool) {
    let (v, s, p1) = deployed(Api::V2);
    let mut args = vec!["personal"];
    if grace {
        args.extend_from_slice(&["--grace", "1s"]);
    }
    v.set_env("KEYVAULT_TEST_FAULT", point);
    let run = rotate(&v, &args).no_secrets();
    assert_ne!(
        run.code, 0,
        "{point}: the fault did not fire\n{}",
        run.stdout
    );
    v.set_env("KEYVAULT_TEST_FAULT", "");

    // Invariants at the crash: the inventory reads, unmanaged keys are untouched and in
    // order, and the account trusts a personal key whose private half is on disk.
    let inventory = v.run(&["--json", "list", "--all"]).expect(0).json();
    let keys = s.keys();
    assert_eq!(
        &keys[..2],
        &[UNMANAGED.to_owned(), GARBAGE.to_owned()],
        "{point}"
    );
    let held: Vec<String> = inventory["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| std::path::Path::new(k["private_key_path"].as_str().expect("path")).exists())
        .map(|k| k["public_key"].as_str().expect("pk").to_owned())
        .collect();
    assert!(
        keys.iter().any(|k| held.contains(k)),
        "{point}: the account trusts no key we hold\n{keys:?}"
    );
    v.run(&["log", "--verify"]).expect(0);
    let status = v.run(&["--json", "status"]).json();
    if !point.starts_with("promoted") {
        assert!(
            status["findings"]
                .as_array()
                .expect("f")
                .iter()
                .any(|f| f["kind"] == "interrupted"),
            "{point}: status does not report the interrupted rotation: {status}"
        );
    }

    // Running the same command again finishes the rotation; sweep ends the grace.
    let again = rotate(&v, &args).expect(0);
    if !point.starts_with("promoted") {
        assert!(
            again
                .stdout
                .contains("rotated personal: personal-2 replaced personal-1"),
            "{point}: {}",
            again.stdout
        );
    }
    if grace {
        // After the 1 s grace by keyvault's clock, without sleeping.
        v.set_now(chrono::Utc::now() + chrono::Duration::seconds(2));
        v.run(&["sweep"]).expect(0);
    }
    let p2 = line(&v, "personal-2");
    expect_list(&s, &[UNMANAGED, GARBAGE, &p2]);
    assert_eq!(state(&v, "personal-1"), "revoked", "{point}");
    assert_eq!(state(&v, "personal"), "active");
    assert_eq!(
        v.run(&["--json", "show", "personal"]).json()["id"],
        "personal-2"
    );
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    assert_eq!(inventory["journal"], serde_json::json!([]), "{point}");
    assert!(
        !v.run(&["list", "--all"]).stdout.contains("personal-3"),
        "{point}: a second new key was made"
    );
    v.run(&["log", "--verify"]).expect(0);
    assert_eq!(v.run(&["status"]).code, 0, "{point}");
    let _ = p1;
}

#[test]
fn crash_at_every_rotation_step_then_finish() {
    for point in [
        "prepared",
        "write:runpod",
        "written:runpod",
        "added:runpod",
        "promoted",
    ] {
        crash_and_finish(point, false);
        crash_and_finish(&format!("{point}=abort"), false);
    }
}

#[test]
fn crash_at_every_step_of_a_graceful_rotation_and_its_sweep() {
    for point in ["prepared", "written:runpod", "added:runpod", "promoted"] {
        crash_and_finish(&format!("{point}=abort"), true);
    }
    // Crashes during the sweep that ends the grace period.
    for point in ["write:runpod", "written:runpod", "removed:runpod"] {
        let (v, s, _) = deployed(Api::V2);
        // Records keep whole seconds, so a very short grace could end during `rotate` itself.
        rotate(&v, &["personal", "--grace", "3s"]).expect(0);
        let inventory: serde_json::Value =
            serde_json::from_str(&v.inventory_text()).expect("inventory");
        let until = chrono::DateTime::parse_from_rfc3339(
            inventory["journal"][0]["grace_until"]
                .as_str()
                .expect("grace"),
        )
        .expect("rfc3339");
        // A second after the grace ends by keyvault's clock, without sleeping.
        v.set_now(until.with_timezone(&chrono::Utc) + chrono::Duration::seconds(1));
        v.set_env("KEYVAULT_TEST_FAULT", &format!("{point}=abort"));
        assert_ne!(v.run(&["sweep"]).code, 0, "{point}");
        v.set_env("KEYVAULT_TEST_FAULT", "");
        v.run(&["log", "--verify"]).expect(0);
        v.run(&["sweep"]).expect(0);
        let p2 = line(&v, "personal-2");
        expect_list(&s, &[UNMANAGED, GARBAGE, &p2]);
        assert_eq!(state(&v, "personal-1"), "revoked", "{point}");
    }
}

#[test]
fn abort_rolls_back_an_unfinished_rotation() {
    let (v, s, p1) = deployed(Api::V2);
    v.set_env("KEYVAULT_TEST_FAULT", "added:runpod");
    rotate(&v, &["personal"]).expect(1);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    // Revoking either key of the rotation in progress is refused, naming both ways out, and
    // changes nothing here or at RunPod.
    let (before, account) = (snapshot(&v.home), s.keys());
    s.clear_log();
    for id in ["personal-1", "personal-2"] {
        let refused = v.run(&["revoke", id]).expect(2).no_secrets();
        assert_eq!(
            refused.stderr.lines().next(),
            Some(
                format!(
                    "error: key {id} is part of a rotation in progress; finish it with `keyvault rotate personal` or roll it back with `keyvault rotate --abort personal`"
                )
                .as_str()
            ),
            "{}",
            refused.stderr
        );
        assert_eq!(snapshot(&v.home), before, "{id}");
    }
    assert_eq!(s.keys(), account);
    assert!(s.log().is_empty(), "a refused revoke talked to RunPod");
    let out = v
        .run(&["rotate", "--abort", "personal"])
        .expect(0)
        .no_secrets();
    assert!(
        out.stdout.contains("rolled back: personal-2"),
        "{}",
        out.stdout
    );
    expect_list(&s, &[UNMANAGED, GARBAGE, &p1]);
    assert_eq!(state(&v, "personal-1"), "active");
    assert_eq!(state(&v, "personal-2"), "revoked");
    // Nothing left to abort: refused by name, nothing changes.
    let before = snapshot(&v.home);
    s.clear_log();
    let again = v.run(&["rotate", "--abort", "personal"]).expect(2);
    assert_eq!(
        again.stderr.lines().next(),
        Some("error: purpose personal has no rotation in progress"),
        "{}",
        again.stderr
    );
    assert_eq!(snapshot(&v.home), before);
    assert!(s.log().is_empty(), "a refused abort talked to RunPod");
    expect_list(&s, &[UNMANAGED, GARBAGE, &p1]);
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_failure_part_way_says_what_was_done_and_how_to_finish() {
    let (v, s, _) = deployed(Api::V2);
    s.allow_token(OTHER_API_KEY, false);
    v.set_env("RUNPOD_API_KEY", OTHER_API_KEY);
    let run = rotate(&v, &["personal"]).expect(1).no_secrets();
    assert!(
        run.stderr.starts_with(
            "error: rotation of personal stopped: runpod: the RunPod API key lacks access"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("not done: personal-2 not yet added to runpod"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: run `keyvault rotate personal` to finish, or `keyvault rotate --abort personal` to roll back"), "{}", run.stderr);
    v.use_runpod(&s);
    rotate(&v, &["personal"]).expect(0);
    assert_eq!(state(&v, "personal-2"), "active");
}

#[test]
fn two_accounts_through_profiles() {
    let personal = FakeRunpod::start();
    let team = FakeRunpod::start();
    team.allow_token(OTHER_API_KEY, true);
    team.set_keys(&[UNMANAGED]);
    let v = Vault::new();
    v.use_runpod(&personal);
    v.set_env("TEAM_RUNPOD_KEY", OTHER_API_KEY);
    v.write_config(&format!(
        "[runpod.team]\napi_key_env = \"TEAM_RUNPOD_KEY\"\napi_url = \"{}\"\n",
        team.url()
    ));
    v.new_key("personal", &[]);
    v.new_key("gpu", &[]);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    v.run(&["deploy", "gpu", "--to", "runpod:team"])
        .expect(0)
        .no_secrets();
    expect_list(&personal, &[&line(&v, "personal-1")]);
    expect_list(&team, &[UNMANAGED, &line(&v, "gpu-1")]);
    rotate(&v, &["--all"]).expect(0).no_secrets();
    expect_list(&personal, &[&line(&v, "personal-2")]);
    expect_list(&team, &[UNMANAGED, &line(&v, "gpu-2")]);
    // Each account saw only its own API key.
    assert!(
        team.log()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {OTHER_API_KEY}")))
    );
    assert!(
        personal
            .log()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {DEFAULT_KEY}")))
    );
    let keys = v
        .run(&["--json", "runpod", "keys", "--target", "runpod:team"])
        .expect(0)
        .json();
    assert_eq!(keys["keys"][1]["id"], "gpu-2");
    // A profile that does not exist, or whose key is not set, is a usage error.
    let run = v.run(&["deploy", "gpu", "--to", "runpod:other"]).expect(2);
    assert!(
        run.stderr
            .contains("no credentials for runpod:other: config.toml has no [runpod.other] table"),
        "{}",
        run.stderr
    );
    v.set_env("TEAM_RUNPOD_KEY", "");
    let run = v
        .run(&["runpod", "keys", "--target", "runpod:team"])
        .expect(2);
    assert!(
        run.stderr
            .contains("set environment variable TEAM_RUNPOD_KEY, or run `keyvault runpod login --target runpod:team`"),
        "{}",
        run.stderr
    );
}

#[test]
fn pods_report_and_status_flag_pods_on_old_keys() {
    let (v, s, p1) = deployed(Api::V2);
    rotate(&v, &["personal"]).expect(0);
    let p2 = line(&v, "personal-2");
    s.add_pod(pod(
        "old1",
        "RUNNING",
        &[UNMANAGED, &p1],
        Some(("127.0.0.1", 2222)),
    ));
    s.add_pod(pod("prox", "RUNNING", &[&p1], None));
    s.add_pod(pod("new1", "RUNNING", &[&p2], Some(("127.0.0.1", 2223))));
    s.add_pod(pod("gone", "EXITED", &[&p1], None));
    let report = v
        .run(&["--json", "runpod", "pods"])
        .expect(0)
        .no_secrets()
        .json();
    let pods = report["pods"].as_array().expect("pods");
    let old1 = &pods[0];
    assert_eq!(old1["keys"][0]["state"], "unmanaged");
    assert_eq!(old1["keys"][1]["id"], "personal-1");
    assert_eq!(old1["keys"][1]["state"], "revoked");
    assert_eq!(
        old1["reach"],
        serde_json::json!({"kind": "direct", "host": "127.0.0.1", "port": 2222, "username": "root"})
    );
    let warnings = old1["warnings"].as_array().expect("warnings");
    assert_eq!(warnings[0], "trusts revoked key personal-1");
    assert_eq!(
        warnings[1],
        "does not trust personal-2, the active key of personal"
    );
    assert_eq!(pods[1]["reach"]["kind"], "proxy-only");
    assert!(
        pods[1]["warnings"]
            .as_array()
            .expect("w")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("redeploy")))
    );
    assert_eq!(pods[2]["warnings"], serde_json::json!([]));
    // A stopped pod trusts the revoked key again when it starts.
    assert_eq!(
        pods[3]["warnings"],
        serde_json::json!([
            "EXITED: trusts revoked key personal-1 again when it starts: its PUBLIC_KEY \
             holds it; redeploy or terminate the pod"
        ]),
    );
    let human = v.run(&["runpod", "pods"]).expect(0).stdout;
    assert!(
        human.contains(
            "old1  pod-old1  RUNNING  root@127.0.0.1:2222  unmanaged, personal-1 (revoked)"
        ),
        "{human}"
    );

    let status = v.run(&["--json", "status"]).expect(3).json();
    let flagged: Vec<&str> = status["findings"]
        .as_array()
        .expect("f")
        .iter()
        .filter(|f| f["kind"] == "pod-trusts-old-key")
        .map(|f| f["message"].as_str().expect("m"))
        .collect();
    assert_eq!(flagged.len(), 3, "{status}");
    assert!(flagged[0].contains("running pod old1 (pod-old1) still trusts personal-1 (revoked)"));
    assert!(
        flagged.contains(
            &"pod gone (pod-gone), EXITED, trusts personal-1 (revoked) again when it starts: \
              its PUBLIC_KEY holds it"
        ),
        "{status}"
    );
    assert_eq!(
        status["targets"][0],
        serde_json::json!({"target": "runpod", "managed": 1, "unmanaged": 1, "unparseable": 1})
    );
    // --offline skips the network: only local checks.
    v.run(&["status", "--offline"]).expect(0);
}

#[test]
fn status_reports_drift_and_unreachable_targets() {
    let (v, s, p1) = deployed(Api::V2);
    // Someone removed our key by hand.
    s.set_keys(&[UNMANAGED]);
    let status = v.run(&["--json", "status"]).expect(3).json();
    assert_eq!(status["findings"][0]["kind"], "missing");
    assert_eq!(
        status["findings"][0]["fix"],
        "keyvault deploy personal-1 --to runpod"
    );
    v.run(&["deploy", "personal-1", "--to", "runpod"]).expect(0);
    v.run(&["status"]).expect(0);
    // A revoked key that is back on the account.
    v.run(&["revoke", "personal"]).expect(0);
    s.set_keys(&[UNMANAGED, &p1]);
    let status = v.run(&["--json", "status"]).expect(3).json();
    assert_eq!(status["findings"][0]["kind"], "still-trusted");
    // An unreachable account: exit 1, said plainly.
    v.set_env("RUNPOD_API_URL", "http://127.0.0.1:9");
    let run = v.run(&["status"]).expect(1).no_secrets();
    assert!(
        run.stdout
            .contains("could not check runpod: runpod: cannot reach RunPod at http://127.0.0.1:9"),
        "{}",
        run.stdout
    );
}

#[test]
fn prune_deletes_only_revoked_private_keys() {
    let (v, _s, _) = deployed(Api::V2);
    rotate(&v, &["personal"]).expect(0);
    let old = v.home.join("keys/personal-1");
    assert!(old.exists());
    let run = v.run(&["prune"]).expect(2);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
    assert!(old.exists());
    v.run(&["prune", "--yes"]).expect(0).no_secrets();
    assert!(!old.exists());
    assert!(v.home.join("keys/personal-1.pub").exists());
    assert!(v.home.join("keys/personal-2").exists());
    assert!(v.run(&["--json", "show", "personal-1"]).json()["pruned_at"].is_string());
    assert_eq!(
        v.run(&["prune", "--yes"]).expect(0).stdout,
        "nothing to do\n"
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn missing_credentials_are_a_usage_error() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let run = v.run(&["deploy", "personal", "--to", "runpod"]).expect(2);
    assert!(
        run.stderr
            .contains("no credentials for runpod: set RUNPOD_API_KEY"),
        "{}",
        run.stderr
    );
    let run = v.run(&["deploy", "personal", "--to", "nowhere"]).expect(2);
    assert!(
        run.stderr.contains("invalid target \"nowhere\""),
        "{}",
        run.stderr
    );
}

#[test]
fn api_key_from_runpodctl_config_and_oversized_answers() {
    let (v, s) = setup(Api::V2);
    v.new_key("personal", &[]);
    // No RUNPOD_API_KEY: runpodctl's config file is used.
    v.set_env("RUNPOD_API_KEY", "");
    std::fs::create_dir_all(v.root.join(".runpod")).expect("mkdir");
    std::fs::write(
        v.root.join(".runpod/config.toml"),
        format!("apiKey = \"{DEFAULT_KEY}\"\napiUrl = \"ignored\"\n"),
    )
    .expect("write");
    v.run(&["deploy", "personal", "--to", "runpod"])
        .expect(0)
        .no_secrets();
    expect_list(&s, &[UNMANAGED, GARBAGE, &line(&v, "personal-1")]);
    // An answer larger than keyvault reads is refused, not buffered.
    let huge = format!("{{\"keys\": [\"{}\"]}}", "A".repeat(5 << 20));
    s.fault(Fault::on(
        "GET",
        "/v2/account/ssh-keys",
        respond(200, &huge, &[]),
    ));
    let run = v.run(&["runpod", "keys"]).expect(1).no_secrets();
    assert!(
        run.stderr.contains("body larger than 4194304 bytes"),
        "{}",
        run.stderr
    );
}
