//! keyvault reads `authorized_keys` exactly as OpenSSH does. A seeded differential test
//! compares keyvault's reading of generated lines (quotes, backslashes, escaped quotes,
//! tabs, runs of spaces, options over 16 KiB, comments, CR/LF, NUL, non-UTF-8) with
//! `ssh-keygen -lf` on the same file, and with a real sshd where ssh-keygen's own reading
//! differs from sshd's. `revoke` really removes a managed key however its line is spaced,
//! or fails; a key hidden in another line's options is not taken for the managed key.

use crate::sshd::Sshd;
use crate::support::Vault;
use keyvault_core::authorized_keys::{Reading, read_line};
use std::path::{Path, PathBuf};
use std::process::Command;

/// xorshift64*: a small seeded generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

struct PoolKey {
    private: PathBuf,
    kind: String,
    b64: String,
}

fn keygen(dir: &Path, name: &str, kind: &str) -> PoolKey {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let public = std::fs::read_to_string(private.with_extension("pub")).expect("pub");
    let mut parts = public.split_whitespace();
    PoolKey {
        private,
        kind: parts.next().expect("type").to_owned(),
        b64: parts.next().expect("base64").to_owned(),
    }
}

/// What `ssh-keygen -lf` reads from `path`: the fingerprint of its one line, if a key.
fn ssh_keygen_reads(path: &Path) -> Option<String> {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path)
        .output()
        .expect("ssh-keygen -lf");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one line, one key: {text}");
    text.split_whitespace().nth(1).map(ToOwned::to_owned)
}

fn mine(line: &[u8]) -> Option<Option<String>> {
    match read_line(line) {
        Reading::Key { fingerprint, .. } => Some(Some(fingerprint.to_string())),
        Reading::NotAKey => Some(None),
        Reading::Unsure { .. } => None,
    }
}

/// Lines built from the pieces sshd's reading turns on.
fn generate(rng: &mut Rng, pool: &[PoolKey]) -> Vec<u8> {
    const SEPS: &[&str] = &[" ", "\t", "  ", " \t", "\t\t ", "   "];
    const OPTIONS: &[&str] = &[
        "restrict",
        "no-pty",
        "from=\"*\"",
        "from=\"*\\\\\"",
        "command=\"echo \\\"a b\\\"\"",
        "environment=\"A=b c\"",
        "principals=\"root,deploy\"",
        "\"",
        "\\\"",
        "\\\\",
        "\\",
        ",",
        "\"a\tb\"",
        "cert-authority,",
        ",*\"",
    ];
    const COMMENTS: &[&str] = &[
        "#",
        "# a comment with spaces",
        "keyvault:m-1",
        "me@host",
        "x y z",
    ];
    const BYTES: &[&[u8]] = &[b"\r", b"\0", b"\xff", b"\xc3\x28", b"\x0b", b"\x0c", b"="];
    let key = |rng: &mut Rng| -> Vec<u8> {
        let k = rng.pick(pool);
        let mut b64 = k.b64.clone().into_bytes();
        match rng.below(10) {
            0 => {
                let at = 4 + rng.below(b64.len() - 4);
                b64.insert(at, *rng.pick(&[b'\r', 0x0b, b'=', b'-']));
            }
            1 => {
                let at = 4 + rng.below(b64.len() - 4);
                b64.remove(at);
            }
            2 => b64.extend_from_slice(b"="),
            _ => {}
        }
        let kind = if rng.below(12) == 0 {
            rng.pick(pool).kind.clone()
        } else {
            k.kind.clone()
        };
        let mut out = kind.into_bytes();
        out.extend_from_slice(rng.pick(SEPS).as_bytes());
        out.extend_from_slice(&b64);
        out
    };
    let mut line: Vec<u8> = Vec::new();
    if rng.below(4) == 0 {
        line.extend_from_slice(rng.pick(&["", " ", "\t", " \t "]).as_bytes());
    }
    let pieces = 1 + rng.below(7);
    for _ in 0..pieces {
        if !line.is_empty() && rng.below(10) < 6 {
            line.extend_from_slice(rng.pick(SEPS).as_bytes());
        }
        match rng.below(12) {
            0..=2 => line.extend(key(rng)),
            3 => line.extend_from_slice(rng.pick(pool).kind.as_bytes()),
            4 => line.extend_from_slice(rng.pick(pool).b64.as_bytes()),
            5..=7 => line.extend_from_slice(rng.pick(OPTIONS).as_bytes()),
            8 => line.extend_from_slice(rng.pick(COMMENTS).as_bytes()),
            9 => line.extend_from_slice(rng.pick::<&[u8]>(BYTES)),
            10 if rng.below(8) == 0 => {
                line.extend_from_slice(b"command=\"");
                line.extend(std::iter::repeat_n(b'x', 17 * 1024));
                line.push(b'"');
            }
            _ => {
                // The shape most lines have: options, a key, a comment.
                line.extend_from_slice(rng.pick(OPTIONS).as_bytes());
                line.extend_from_slice(rng.pick(SEPS).as_bytes());
                line.extend(key(rng));
                line.extend_from_slice(rng.pick(SEPS).as_bytes());
                line.extend_from_slice(rng.pick(COMMENTS).as_bytes());
            }
        }
    }
    line
}

/// ssh-keygen -lf skips options and then exactly one separator (ssh-keygen.c
/// `do_fingerprint`), where sshd skips a run of them (`skip_space`): on such lines
/// ssh-keygen sees no key and sshd does. For those, the line with the run after the
/// options cut to one space is given to ssh-keygen again (which must then read keyvault's
/// key), and `sshd_reads_separator_runs_after_options_*` checks the same shape against a
/// real sshd. Returns the collapsed line when `line` has that shape.
fn collapse_separator_run_after_options(line: &[u8]) -> Option<Vec<u8>> {
    let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
    let (mut end, mut quoted) = (start, false);
    while end < line.len() && line[end] != 0 && (quoted || !matches!(line[end], b' ' | b'\t')) {
        if line[end] == b'\\' && line.get(end + 1) == Some(&b'"') {
            end += 1;
        } else if line[end] == b'"' {
            quoted = !quoted;
        }
        end += 1;
    }
    let run = line[end..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    (run > 1).then(|| [&line[..end], b" ", &line[end + run..]].concat())
}

#[test]
fn keyvault_reads_authorized_keys_lines_as_ssh_keygen_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = vec![
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
        keygen(dir.path(), "c", "ecdsa"),
        keygen(dir.path(), "d", "rsa"),
    ];
    let seed = std::env::var("KEYVAULT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_ed0f_0e55_u64);
    let count: usize = std::env::var("KEYVAULT_DIFF_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let mut rng = Rng(seed);
    let trick = |a: &PoolKey, b: &PoolKey| {
        format!(
            "from=\"*\\\\\" {} {} keyvault:m-1 ,*\" {} {}",
            a.kind, a.b64, b.kind, b.b64
        )
        .into_bytes()
    };
    let mut lines = vec![
        trick(&pool[0], &pool[1]),
        format!("{}\t{} c", pool[0].kind, pool[0].b64).into_bytes(),
        format!("{}  {}\r", pool[0].kind, pool[0].b64).into_bytes(),
        format!("{} {} {}", pool[0].kind, pool[0].b64, "c".repeat(20_000)).into_bytes(),
        format!(
            "{} {}\0{} {}",
            pool[0].kind,
            &pool[0].b64[..20],
            pool[1].kind,
            pool[1].b64
        )
        .into_bytes(),
    ];
    lines.extend((0..count).map(|_| generate(&mut rng, &pool)));
    let (mut keys, mut unsure, mut separator_runs) = (0, 0, 0);
    let mut differ = Vec::new();
    let file = dir.path().join("authorized_keys");
    for (i, line) in lines.iter().enumerate() {
        let mut content = line.clone();
        content.extend_from_slice(match i % 3 {
            0 => b"\n" as &[u8],
            1 => b"\r\n",
            _ => b"",
        });
        std::fs::write(&file, &content).expect("write");
        let with_cr = if i % 3 == 1 {
            &content[..content.len() - 1]
        } else {
            line.as_slice()
        };
        let Some(ours) = mine(with_cr) else {
            unsure += 1;
            continue;
        };
        let theirs = ssh_keygen_reads(&file);
        keys += usize::from(theirs.is_some());
        if ours == theirs {
            continue;
        }
        if let Some(collapsed) = collapse_separator_run_after_options(&content)
            && theirs.is_none()
        {
            std::fs::write(&file, &collapsed).expect("write");
            if ssh_keygen_reads(&file) == ours {
                separator_runs += 1;
                continue;
            }
        }
        differ.push(format!(
            "line {i}: keyvault {ours:?}, ssh-keygen {theirs:?}: {:?}",
            String::from_utf8_lossy(&content[..content.len().min(3000)])
        ));
    }
    assert!(
        differ.is_empty(),
        "seed {seed:#x}: {} of {} lines read differently:\n{}",
        differ.len(),
        lines.len(),
        differ.join("\n")
    );
    // The generator must exercise both sides, and keyvault must rarely be unsure.
    assert!(keys > lines.len() / 10, "only {keys} key lines");
    assert!(unsure < lines.len() / 50, "{unsure} unsure lines");
    eprintln!(
        "{} lines: {keys} keys, {unsure} unsure, {separator_runs} separator runs after options",
        lines.len()
    );
}

/// Logs in to `sshd` with each key in `pool`; returns the index of the one that got in.
fn who_logs_in(sshd: &Sshd, pool: &[PoolKey]) -> Vec<usize> {
    (0..pool.len())
        .filter(|&i| sshd.ssh(&pool[i].private, "", "true").code == 0)
        .collect()
}

#[test]
fn sshd_reads_separator_runs_after_options_and_hidden_keys_as_keyvault_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = dir.path().join("server");
    std::fs::create_dir(&server).expect("mkdir");
    let sshd = Sshd::start(&server);
    let pool = vec![
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    ];
    let (a, b) = (&pool[0], &pool[1]);
    let lines = [
        format!("restrict  {} {} two spaces", a.kind, a.b64),
        format!("no-pty\t \t{}\t\t{}", a.kind, a.b64),
        format!(
            "from=\"*\\\\\" {} {} keyvault:m-1 ,*\" {} {}",
            a.kind, a.b64, b.kind, b.b64
        ),
        format!("{}\t{}\r", b.kind, b.b64),
        format!("restrict {} {} {}", b.kind, b.b64, "c".repeat(20_000)),
    ];
    let fps: Vec<Option<String>> = pool
        .iter()
        .map(|k| {
            keyvault_core::remote::fingerprint_of(&format!("{} {}", k.kind, k.b64))
                .map(|fp| fp.to_string())
        })
        .collect();
    for line in &lines {
        std::fs::write(&sshd.authorized_keys, format!("{line}\n")).expect("write");
        let ours = mine(line.as_bytes()).expect("keyvault is sure");
        let got = who_logs_in(&sshd, &pool);
        assert_eq!(got.len(), 1, "exactly one key logs in with {line:?}");
        assert_eq!(ours, fps[got[0]], "keyvault and sshd disagree on {line:?}");
    }
}

fn setup() -> (Vault, Sshd, String) {
    crate::support::ci_vault_with_sshd("# host keys\n")
}

fn mint(v: &Vault, target: &str, name: &str) -> (String, PathBuf, String) {
    let out = v.root.join(name);
    let json = v
        .run(&[
            "--json",
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--deploy",
            target,
            "--private-key-out",
            out.to_str().expect("utf8"),
        ])
        .expect(0)
        .no_secrets()
        .json();
    (
        json["id"].as_str().expect("id").to_owned(),
        out,
        json["authorized_keys_line"]
            .as_str()
            .expect("line")
            .to_owned(),
    )
}

#[test]
fn revoke_removes_a_managed_key_however_sshd_spaces_its_line() {
    let (v, sshd, target) = setup();
    type Respace = fn(&str) -> String;
    let respaced: [(&str, Respace); 3] = [
        ("tab", |l| l.replacen(" ssh-ed25519 ", " ssh-ed25519\t", 1)),
        ("two spaces", |l| {
            l.replacen(" ssh-ed25519 ", "  ssh-ed25519  ", 1)
        }),
        ("long line", |l| format!("{l} {}", "c".repeat(17 * 1024))),
    ];
    for (what, respace) in respaced {
        let (id, key, line) = mint(&v, &target, &format!("key-{}", what.replace(' ', "-")));
        let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
        assert!(text.contains(&line), "{text}");
        std::fs::write(&sshd.authorized_keys, text.replace(&line, &respace(&line))).expect("write");
        assert_eq!(sshd.ssh(&key, "", "true").code, 0, "{what}: logs in before");
        // status sees the key where sshd does.
        let status = v.run(&["--json", "status"]).json();
        assert!(
            !status.to_string().contains(&format!("does not hold {id}")),
            "{what}: {status}"
        );
        let run = v.run(&["revoke", &id]);
        assert_eq!(run.code, 0, "{what}: {}{}", run.stdout, run.stderr);
        assert_ne!(
            sshd.ssh(&key, "", "true").code,
            0,
            "{what}: revoke said {:?} and sshd still accepts the key",
            run.stdout
        );
    }
}

#[test]
fn a_key_hidden_in_options_is_not_taken_for_the_managed_key() {
    let (v, sshd, target) = setup();
    let (id, managed, line) = mint(&v, &target, "managed");
    let other = keygen(&v.root, "other", "ed25519");
    let body = line.split_once(' ').expect("options").1;
    let body = body.rsplit_once(' ').expect("comment").0;
    let hidden = format!(
        "from=\"*\\\\\" {body} keyvault:{id} ,*\" {} {}\n",
        other.kind, other.b64
    );
    std::fs::write(&sshd.authorized_keys, &hidden).expect("write");
    assert_eq!(
        sshd.ssh(&other.private, "", "true").code,
        0,
        "sshd reads the hidden key"
    );
    assert_ne!(sshd.ssh(&managed, "", "true").code, 0);
    let status = v.run(&["--json", "status"]);
    assert!(
        status.stdout.contains(&format!("does not hold {id}")),
        "status must see the managed key missing: {}",
        status.stdout
    );
    // revoke keeps a line it does not read as the managed key, and sshd agrees.
    v.run(&["revoke", &id]).expect(0);
    assert_eq!(
        std::fs::read_to_string(&sshd.authorized_keys).expect("read"),
        hidden
    );
}

fn findings(v: &Vault, kind: &str) -> Vec<serde_json::Value> {
    let status = v.run(&["--json", "status"]).json();
    status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn narrowing_a_ca_rewrites_its_line_and_status_reports_options_drift() {
    let (v, sshd, target) = setup();
    v.run(&["ca", "init", "--passphrase-env", "KV_PASS"])
        .expect(0)
        .no_secrets();
    v.run(&["ca", "trust", &target, "--principals", "root,deploy"])
        .expect(0);
    let out = v.root.join("cert-root");
    v.run(&crate::support::mint_ci_cert(&out))
        .expect(0)
        .no_secrets();
    assert_eq!(
        sshd.ssh(&out, "", "true").code,
        0,
        "root's certificate logs in"
    );

    // Narrowed to deploy: the line says deploy only, and sshd refuses root's certificate.
    v.run(&["ca", "trust", &target, "--principals", "deploy"])
        .expect(0);
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    let ca_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("keyvault:ca-1"))
        .collect();
    assert_eq!(ca_lines.len(), 1, "{text}");
    assert!(
        ca_lines[0].starts_with("cert-authority,principals=\"deploy\","),
        "{text}"
    );
    assert_ne!(
        sshd.ssh(&out, "", "true").code,
        0,
        "a certificate for root still logs in after narrowing to deploy"
    );
    assert!(findings(&v, "options-drift").is_empty());

    // A person widens the line again: high drift; sshd lets root in.
    std::fs::write(
        &sshd.authorized_keys,
        text.replace("principals=\"deploy\"", "principals=\"deploy,root\""),
    )
    .expect("write");
    assert_eq!(sshd.ssh(&out, "", "true").code, 0);
    let drift = findings(&v, "options-drift");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0]["severity"], "high", "{drift:?}");
    assert_eq!(drift[0]["key_id"], "ca-1", "{drift:?}");
    // deploy puts back what keyvault means.
    v.run(&["ca", "trust", &target, "--principals", "deploy"])
        .expect(0);
    assert_ne!(sshd.ssh(&out, "", "true").code, 0);
    assert!(findings(&v, "options-drift").is_empty());
}

#[test]
fn a_narrowed_line_is_medium_drift() {
    let (v, sshd, target) = setup();
    let (id, _, line) = mint(&v, &target, "narrow");
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    std::fs::write(
        &sshd.authorized_keys,
        text.replace(&line, &line.replacen("restrict,", "restrict,no-pty,", 1)),
    )
    .expect("write");
    let drift = findings(&v, "options-drift");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0]["severity"], "medium", "{drift:?}");
    assert_eq!(drift[0]["key_id"], id.as_str(), "{drift:?}");
}

#[test]
fn revoke_fails_naming_a_line_that_may_still_hold_the_key() {
    let (v, sshd, target) = setup();
    let (id, _, line) = mint(&v, &target, "unsure");
    // A key type some sshd builds know and keyvault does not decode, over the same key:
    // keyvault cannot be sure what sshd reads there, so it keeps the line and says so.
    let blob = line.split_whitespace().nth(2).expect("base64");
    let unsure = format!("webauthn-sk-ecdsa-sha2-nistp256@openssh.com {blob} x\n");
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    std::fs::write(&sshd.authorized_keys, format!("{text}{unsure}")).expect("write");
    assert_eq!(findings(&v, "unsure-line").len(), 1);
    let run = v.run(&["revoke", &id]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(!run.stdout.contains("revoked"), "{}", run.stdout);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    let after = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(
        after.ends_with(&unsure) && !after.contains(&line),
        "{after}"
    );
}

/// `base64` from coreutils, one way or the other.
fn base64(input: &[u8], decode: bool) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("base64")
        .args(if decode { &["-d"][..] } else { &["-w0"][..] })
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let out = child.wait_with_output().expect("base64");
    assert!(out.status.success());
    out.stdout
}

/// Issue 12, found by the attacker's pass: an RSA key whose exponent carries extra leading
/// zero bytes is the same key to sshd (and to `ssh-keygen -lf`); `revoke` must remove it.
#[test]
fn revoke_removes_an_rsa_key_written_with_padded_numbers() {
    let (v, sshd, target) = setup();
    let out = v.root.join("rsa");
    let json = v
        .run(&[
            "--json",
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--algorithm",
            "rsa-3072",
            "--no-passphrase",
            "--deploy",
            &target,
            "--private-key-out",
            out.to_str().expect("utf8"),
        ])
        .expect(0)
        .json();
    let id = json["id"].as_str().expect("id").to_owned();
    let fingerprint = json["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    let line = json["authorized_keys_line"]
        .as_str()
        .expect("line")
        .to_owned();
    let (head, rest) = line.split_once(" ssh-rsa ").expect("an ssh-rsa line");
    let (b64, comment) = rest.split_once(' ').expect("comment");
    let blob = base64(b64.as_bytes(), true);
    // string "ssh-rsa", then mpint e = 00 00 00 03 01 00 01: give it two more zero bytes.
    assert_eq!(&blob[11..18], &[0, 0, 0, 3, 1, 0, 1], "e = 65537");
    let mut padded = blob[..11].to_vec();
    padded.extend_from_slice(&[0, 0, 0, 5, 0, 0, 1, 0, 1]);
    padded.extend_from_slice(&blob[18..]);
    let padded_line = format!(
        "{head} ssh-rsa {} {comment}",
        String::from_utf8(base64(&padded, false)).expect("ascii")
    );
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    std::fs::write(&sshd.authorized_keys, text.replace(&line, &padded_line)).expect("write");
    // The oracle: OpenSSH reads the padded line as the managed key.
    let one = v.root.join("one-line");
    std::fs::write(&one, format!("{padded_line}\n")).expect("write");
    assert_eq!(
        ssh_keygen_reads(&one).as_deref(),
        Some(fingerprint.as_str())
    );
    assert_eq!(sshd.ssh(&out, "", "true").code, 0, "logs in before");
    assert!(
        !v.run(&["--json", "status"])
            .stdout
            .contains(&format!("does not hold {id}")),
        "status sees the key where sshd does"
    );
    let run = v.run(&["revoke", &id]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        !std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains(&padded_line)
    );
    assert_ne!(
        sshd.ssh(&out, "", "true").code,
        0,
        "revoke said {:?} and sshd still accepts the key",
        run.stdout
    );
}
