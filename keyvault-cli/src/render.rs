//! Output: aligned tables and sentences for people, stable JSON for scripts.
//!
//! Colour is anstyle's, written through anstream's stdout: on a terminal unless NO_COLOR
//! is set, anywhere with CLICOLOR_FORCE, and stripped everywhere else, so what a pipe or a
//! file receives is the plain text.

use anstream::println;
use anstyle::{AnsiColor, Effects, Style};
use chrono::{DateTime, Utc};
use keyvault_core::{
    AuditEvent, KeyMatch, KeyRecord, KeyState, PodReport, Reach, Report, RotationPlan,
    StatusReport, Step, TargetSpec, Vault,
};
use serde_json::{Value, json};

const BOLD: Style = Style::new().effects(Effects::BOLD);
const GOOD: Style = AnsiColor::Green.on_default();
const WARN: Style = AnsiColor::Yellow.on_default();
const BAD: Style = AnsiColor::Red.on_default();
const SEVERE: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);

/// `text` in `style`. The escapes reach the terminal only where anstream's stdout lets
/// them through (a terminal without NO_COLOR, or CLICOLOR_FORCE); elsewhere it strips them.
fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// `text` in bold.
pub fn bold(text: &str) -> String {
    paint(BOLD, text)
}

/// A key's state, coloured by how healthy it is.
pub fn styled_state(state: &str) -> String {
    let style = match state {
        "active" => GOOD,
        "expired" | "revoked" => BAD,
        "retiring" | "pending" => WARN,
        _ => Style::new(),
    };
    paint(style, state)
}

/// A pod's result, coloured by whether it needs attention.
pub fn styled_outcome(outcome: &str) -> String {
    let style = match outcome {
        "failed" | "needs-redeploy" => BAD,
        "gone" | "pending" => WARN,
        _ => GOOD,
    };
    paint(style, outcome)
}

/// A severity, upper case and padded to one width.
pub fn styled_severity(severity: &str) -> String {
    let style = match severity {
        "high" => SEVERE,
        "medium" => WARN,
        _ => Style::new(),
    };
    paint(style, &format!("{:<6}", severity.to_uppercase()))
}

/// `1 key`, `3 keys`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Prints rows as columns separated by two spaces; `header` in bold. Width is measured on
/// the unstyled text, so colour codes do not break alignment.
pub fn table(header: &[&str], rows: &[Vec<(String, String)>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, (plain, _)) in row.iter().enumerate() {
            widths[i] = widths[i].max(plain.chars().count());
        }
    }
    // Built whole and written once: one decision about colour, one write.
    let mut text = String::new();
    let mut line = |cells: &[(String, String)]| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (plain, shown)) in cells.iter().enumerate() {
            out.push_str(shown);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - plain.chars().count() + 2));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    let header: Vec<(String, String)> = header.iter().map(|h| (h.to_string(), bold(h))).collect();
    line(&header);
    for row in rows {
        line(row);
    }
    anstream::print!("{text}");
}

pub fn plain(s: impl Into<String>) -> (String, String) {
    let s = clean(&s.into()).into_owned();
    (s.clone(), s)
}

/// Text from outside keyvault (a server's key comments, pod names and statuses, file
/// names, anything an error quotes) as it is safe to print to a terminal: every control
/// character, and the bidirectional marks that reorder what a reader sees, escaped
/// (`\n`, `\u{1b}`), so nothing can move the cursor, fake a line or hide text.
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A key as `list --json` and `show --json` print it: the documented members of its
/// record, each once (the record's own `private_key_path` is relative to the home; the
/// absolute one below replaces it), plus where its files are and whether it has expired.
/// Under a shared store, a key whose file is not on this machine has no paths here (null),
/// and `machine` names the one that has them, when recorded.
#[derive(serde::Serialize)]
pub struct KeyJson<'a> {
    id: &'a keyvault_core::KeyId,
    purpose: &'a keyvault_core::Purpose,
    algorithm: keyvault_core::Algorithm,
    fingerprint: String,
    public_key: &'a str,
    comment: &'a str,
    #[serde(with = "keyvault_core::timestamp")]
    created_at: DateTime<Utc>,
    #[serde(with = "keyvault_core::timestamp::option")]
    expires_at: Option<DateTime<Utc>>,
    state: KeyState,
    protection: keyvault_core::Protection,
    kdf_rounds: Option<u32>,
    origin: keyvault_core::Origin,
    deployments: &'a [keyvault_core::Deployment],
    rotated_from: Option<&'a keyvault_core::KeyId>,
    rotated_to: Option<&'a keyvault_core::KeyId>,
    #[serde(with = "keyvault_core::timestamp::option")]
    revoked_at: Option<DateTime<Utc>>,
    #[serde(with = "keyvault_core::timestamp::option")]
    pruned_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a keyvault_core::Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_authority: Option<&'a [keyvault_core::Principal]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<&'a keyvault_core::inventory::CertificateInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyring_account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    machine: Option<&'a str>,
    private_key_path: Option<String>,
    public_key_path: Option<String>,
    current_path: Option<String>,
    expired: bool,
}

/// [`KeyJson`] as a JSON value, for outputs that add fields to it.
pub fn key_json(vault: &Vault, record: &KeyRecord, now: DateTime<Utc>) -> Value {
    serde_json::to_value(KeyJson::new(vault, record, now)).unwrap_or(Value::Null)
}

impl<'a> KeyJson<'a> {
    pub fn new(vault: &Vault, record: &'a KeyRecord, now: DateTime<Utc>) -> Self {
        let private = vault
            .local_private_key_path(record)
            .map(|p| p.display().to_string());
        // Only a purpose's own active key is behind current/<purpose>, never a minted one,
        // and only on the machine that has its file.
        let current =
            (record.state() == KeyState::Active && record.scope().is_none() && private.is_some())
                .then(|| vault.current_path(record.purpose()).display().to_string());
        KeyJson {
            id: record.id(),
            purpose: record.purpose(),
            algorithm: record.algorithm(),
            fingerprint: record.fingerprint().to_string(),
            public_key: record.public_key(),
            comment: record.comment(),
            created_at: record.created_at(),
            expires_at: record.expires_at(),
            state: record.state(),
            protection: record.protection(),
            kdf_rounds: record.kdf_rounds(),
            origin: record.origin(),
            deployments: record.deployments(),
            rotated_from: record.rotated_from(),
            rotated_to: record.rotated_to(),
            revoked_at: record.revoked_at(),
            pruned_at: record.pruned_at(),
            scope: record.scope(),
            cert_authority: record.cert_authority(),
            certificate: record.certificate(),
            keyring_account: record.keyring_account(),
            machine: record.machine(),
            public_key_path: private.as_ref().map(|p| format!("{p}.pub")),
            private_key_path: private,
            current_path: current,
            expired: record.is_expired_at(now),
        }
    }
}

pub fn key_rows(keys: &[&KeyRecord], now: DateTime<Utc>) {
    let rows: Vec<Vec<(String, String)>> = keys
        .iter()
        .map(|k| {
            let state = k.display_state_at(now);
            vec![
                plain(k.id().as_str()),
                plain(k.purpose().as_str()),
                plain(k.algorithm().to_string()),
                (state.to_owned(), styled_state(state)),
                plain(k.expires_at().map_or_else(|| "never".to_owned(), time)),
                plain(k.fingerprint().to_string()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PURPOSE",
            "ALGORITHM",
            "STATE",
            "EXPIRES",
            "FINGERPRINT",
        ],
        &rows,
    );
}

pub fn show_key(vault: &Vault, k: &KeyRecord, now: DateTime<Utc>) {
    let state = k.display_state_at(now);
    let mut fields: Vec<(&str, String)> = vec![
        ("id", k.id().to_string()),
        ("purpose", k.purpose().to_string()),
        ("algorithm", k.algorithm().to_string()),
        ("state", styled_state(state)),
        ("fingerprint", k.fingerprint().to_string()),
        ("comment", clean(k.comment()).into_owned()),
        ("created", time(k.created_at())),
        (
            "expires",
            k.expires_at().map_or_else(|| "never".to_owned(), time),
        ),
        (
            "protection",
            match (k.kdf_rounds(), k.keyring_account()) {
                (Some(r), Some(account)) => format!(
                    "passphrase in the OS keyring (service keyvault, account {account}; aes256-ctr, {r} bcrypt-pbkdf rounds)"
                ),
                (Some(r), None) => format!("passphrase (aes256-ctr, {r} bcrypt-pbkdf rounds)"),
                (None, _) => "none (unencrypted)".to_owned(),
            },
        ),
        ("origin", format!("{:?}", k.origin()).to_lowercase()),
        (
            "private key",
            match (vault.local_private_key_path(k), k.machine()) {
                (Some(path), _) => path.display().to_string(),
                (None, Some(machine)) => {
                    format!("not on this machine (kept on {})", clean(machine))
                }
                (None, None) => "not on this machine".to_owned(),
            },
        ),
    ];
    let here = vault.local_private_key_path(k).is_some();
    if k.state() == KeyState::Active && here {
        fields.push((
            "stable path",
            vault.current_path(k.purpose()).display().to_string(),
        ));
    }
    if let Some(f) = k.rotated_from() {
        fields.push(("rotated from", f.to_string()));
    }
    if let Some(t) = k.rotated_to() {
        fields.push(("rotated to", t.to_string()));
    }
    if let Some(t) = k.revoked_at() {
        fields.push(("revoked", time(t)));
    }
    let deployments = if k.deployments().is_empty() {
        "none".to_owned()
    } else {
        k.deployments()
            .iter()
            .map(|d| d.target().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    fields.push(("deployed to", deployments));
    fields.push(("public key", k.public_key().to_owned()));
    let width = fields.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in fields {
        println!("{}  {value}", bold(&format!("{name:width$}")));
    }
}

pub fn status_json(report: &StatusReport) -> Value {
    json!({
        "healthy": report.is_healthy() && report.unchecked().is_empty(),
        "checked_at": report.checked_at(),
        "keys": report.keys(),
        "live_keys": report.live_keys(),
        "findings": report
            .findings()
            .iter()
            .map(|f| {
                let mut value = json!(f);
                value["fix"] = json!(crate::explain::remedy(f.fix()));
                value
            })
            .collect::<Vec<_>>(),
        "targets": report.targets(),
        "unchecked": report.unchecked(),
        "in_grace": report.in_grace(),
    })
}

/// What a lifecycle command did, as sentences or JSON.
/// A report as printed, each pod's detail in the CLI's words (with the command that retries
/// it).
pub fn worded(r: &Report) -> Report {
    let mut r = r.clone();
    for p in &mut r.pods {
        p.detail = crate::explain::pod_detail(p);
    }
    r
}

pub fn report(json: bool, r: &Report) {
    if json {
        // In the report's own field order.
        std::println!(
            "{}",
            serde_json::to_string_pretty(&worded(r)).unwrap_or_default()
        );
        return;
    }
    let mut said = false;
    for d in &r.deployed {
        println!(
            "deployed {} to {}",
            bold(d.key.as_str()),
            clean(&d.target.to_string())
        );
        said = true;
    }
    for x in &r.rotated {
        println!(
            "rotated {}: {} replaced {}",
            x.purpose,
            bold(x.new.as_str()),
            x.old
        );
        said = true;
    }
    for x in &r.retiring {
        match x.until {
            Some(t) => println!(
                "{} stays deployed until {} (grace period); `keyvault sweep` removes it then",
                x.key,
                time(t)
            ),
            None => println!("{} is retiring", x.key),
        }
        said = true;
    }
    for x in &r.ended_grace {
        let until = x.until.map_or_else(String::new, |t| {
            format!(" (it was to stay until {})", time(t))
        });
        println!(
            "ended the grace period of {}{until}: removed from every target now",
            x.key
        );
        said = true;
    }
    for id in &r.revoked {
        println!("revoked {id}");
        said = true;
    }
    for id in &r.aborted {
        println!("rolled back: {id} removed and revoked; the previous key stays active");
        said = true;
    }
    for id in &r.pruned {
        println!("deleted the private key file of {id}");
        said = true;
    }
    if !r.pods.is_empty() {
        let rows: Vec<Vec<(String, String)>> = r
            .pods
            .iter()
            .map(|p| {
                vec![
                    plain(p.pod.clone()),
                    (p.outcome.to_string(), styled_outcome(p.outcome.as_str())),
                    plain(crate::explain::pod_detail(p)),
                ]
            })
            .collect();
        table(&["POD", "RESULT", "DETAIL"], &rows);
        said = true;
    }
    if !said {
        println!("nothing to do");
    }
}

pub fn plan(p: &RotationPlan) {
    for r in &p.rotations {
        let targets = if r.targets.is_empty() {
            "no targets".to_owned()
        } else {
            r.targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (&r.new, r.resumes) {
            (Some(new), Some(step)) => println!(
                "would finish the {}rotation of {} from {} to {new} at {targets}: {}",
                if step < Step::Promoted {
                    "interrupted "
                } else {
                    ""
                },
                r.purpose,
                r.old,
                match step {
                    Step::Prepared => format!("{new} was made but not yet added to any target"),
                    Step::Adding =>
                        format!("{new} was being added to the targets and is not active yet"),
                    _ => format!(
                        "{new} is already active; what remains is removing {}",
                        r.old
                    ),
                }
            ),
            _ => println!(
                "would rotate {}: {} -> a new {} key expiring {}, at {targets}",
                r.purpose,
                r.old,
                r.algorithm,
                r.expires_at.map_or_else(|| "never".to_owned(), time)
            ),
        }
        match r.grace_until {
            Some(g) => println!(
                "  {} stays deployed until {} (grace period)",
                r.old,
                time(g)
            ),
            None => println!(
                "  {} is removed as soon as the new key is verified everywhere",
                r.old
            ),
        }
    }
}

pub fn remote_keys(spec: &TargetSpec, keys: &[KeyMatch]) {
    if keys.is_empty() {
        println!("{} holds no keys", clean(&spec.to_string()));
        return;
    }
    let rows: Vec<Vec<(String, String)>> = keys
        .iter()
        .map(|k| {
            vec![
                plain(
                    k.fingerprint
                        .map_or_else(|| "-".to_owned(), |fp| fp.to_string()),
                ),
                plain(k.id.as_ref().map_or("-".to_owned(), ToString::to_string)),
                plain(
                    k.purpose
                        .as_ref()
                        .map_or("-".to_owned(), ToString::to_string),
                ),
                (k.state.clone(), styled_state(&k.state)),
                plain(k.comment.clone()),
            ]
        })
        .collect();
    table(
        &["FINGERPRINT", "KEY", "PURPOSE", "STATE", "COMMENT"],
        &rows,
    );
}

pub fn minted(k: &KeyRecord, private_key_path: &str) {
    println!(
        "minted {} ({}, {}), expires {}",
        bold(k.id().as_str()),
        k.algorithm(),
        k.purpose(),
        k.expires_at().map_or_else(|| "never".to_owned(), time)
    );
    println!("  fingerprint      {}", k.fingerprint());
    println!("  private key      {private_key_path}");
    for d in k.deployments() {
        println!("  deployed to      {}", d.target());
    }
    println!("  authorized_keys  {}", k.authorized_keys_line());
}

pub fn scan(report: &keyvault_core::ScanReport) {
    println!(
        "scanned {}, {}: {}",
        count(report.files, "file"),
        count(report.private_keys, "private key"),
        if report.findings.is_empty() {
            "no findings".to_owned()
        } else {
            count(report.findings.len(), "finding")
        }
    );
    for f in &report.findings {
        let sev = f.severity.to_string();
        println!(
            "{}  {}: {}",
            styled_severity(&sev),
            clean(&f.file.display().to_string()),
            clean(&f.message)
        );
        println!(
            "{}  fix: {}",
            " ".repeat(6),
            clean(&crate::explain::scan_fix(f))
        );
    }
}

pub fn pods(pods: &[PodReport]) {
    if pods.is_empty() {
        println!("no pods");
        return;
    }
    let rows: Vec<Vec<(String, String)>> = pods
        .iter()
        .map(|p| {
            let reach = match &p.reach {
                Reach::Direct {
                    host,
                    port,
                    username,
                } => format!("{username}@{host}:{port}"),
                Reach::ProxyOnly => "proxy only".to_owned(),
                Reach::None => "-".to_owned(),
            };
            let keys = p
                .keys
                .iter()
                .map(|k| match &k.id {
                    Some(id) => format!("{id} ({})", k.state),
                    None => k.state.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                plain(p.id.clone()),
                plain(p.name.clone()),
                plain(p.status.clone()),
                plain(reach),
                plain(keys),
            ]
        })
        .collect();
    table(&["POD", "NAME", "STATUS", "SSH", "TRUSTS"], &rows);
    // Each warning with its own severity; a pod's warnings of one severity on one line.
    for p in pods {
        let rated: Vec<(&String, String)> = (p.warnings.iter())
            .zip(p.severities.iter().map(ToString::to_string))
            .collect();
        for run in rated.chunk_by(|a, b| a.1 == b.1) {
            let words: Vec<&str> = run.iter().map(|(w, _)| w.as_str()).collect();
            println!(
                "{}  {}: {}",
                styled_severity(&run[0].1),
                clean(&p.id),
                clean(&words.join("; "))
            );
        }
    }
}

pub fn status_human(report: &StatusReport) {
    let n = report.findings().len();
    for g in report.in_grace() {
        println!(
            "{} ({}) is retiring, replaced by {}: still deployed until {} (grace period); `keyvault revoke {}` removes it now",
            g.key,
            g.purpose,
            g.replaced_by,
            time(g.until),
            g.key
        );
    }
    for t in report.targets() {
        println!(
            "{}: {} managed, {} unmanaged{}",
            clean(&t.target.to_string()),
            count(t.managed, "key"),
            t.unmanaged,
            if t.unparseable > 0 {
                format!(", {} unparseable lines", t.unparseable)
            } else {
                String::new()
            }
        );
    }
    if n == 0 && !report.unchecked().is_empty() {
        for u in report.unchecked() {
            println!("could not check {}: {}", clean(&u.target), clean(&u.reason));
        }
        return;
    }
    if n == 0 {
        println!(
            "healthy: {}, {} live, no problems found",
            count(report.keys(), "key"),
            report.live_keys()
        );
        return;
    }
    println!(
        "{} found ({}, {} live)",
        count(n, "problem"),
        count(report.keys(), "key"),
        report.live_keys()
    );
    for f in report.findings() {
        let sev = f.severity().to_string();
        println!("{}  {}", styled_severity(&sev), clean(f.message()));
        println!(
            "{}  fix: {}",
            " ".repeat(6),
            clean(&crate::explain::remedy(f.fix()))
        );
    }
    for u in report.unchecked() {
        println!("could not check {}: {}", clean(&u.target), clean(&u.reason));
    }
}

pub fn events_human(events: &[AuditEvent]) {
    let rows: Vec<Vec<(String, String)>> = events
        .iter()
        .map(|e| {
            vec![
                plain(e.seq().to_string()),
                plain(time(e.time())),
                plain(e.actor()),
                plain(e.action()),
                plain(e.key_id().unwrap_or("-")),
                plain(format!("{:?}", e.outcome()).to_lowercase()),
                plain(e.detail().unwrap_or("")),
            ]
        })
        .collect();
    table(
        &["#", "TIME", "ACTOR", "ACTION", "KEY", "OUTCOME", "DETAIL"],
        &rows,
    );
}
