//! Health as metrics for monitoring systems: typed samples ([`Metrics`]) built from a
//! [`StatusReport`], the inventory and the audit log, and their Prometheus text exposition
//! (format 0.0.4), the file node exporter's textfile collector reads.
//!
//! The exposition text is a data format like JSON, not words: it is rendered here, next to
//! the model, so its escaping rules are tested once, and so [`write_textfile`] can write it
//! through the vault's file primitives.

use crate::audit::{AuditEvent, Outcome};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyState};
use crate::status::StatusReport;
use crate::vault::Vault;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file [`write_textfile`] writes in the collector's directory.
pub const TEXTFILE_NAME: &str = "keyvault.prom";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricType {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (its name ends in `_total`).
    Counter,
}

/// One sample: its labels (name, value) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values, in output order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// A metric family: a name, its help text, its type and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric name, e.g. `keyvault_key_expiry_timestamp_seconds`.
    pub name: &'static str,
    /// What it measures (the `# HELP` line).
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: MetricType,
    /// Its samples; a family without samples is left out of the exposition.
    pub samples: Vec<Sample>,
}

/// Every metric keyvault reports about a vault.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    /// The families, in output order.
    pub families: Vec<Family>,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &'static str, samples: Vec<Sample>) {
        self.push(name, help, MetricType::Gauge, samples);
    }

    fn push(&mut self, name: &'static str, help: &'static str, kind: MetricType, s: Vec<Sample>) {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: s,
        });
    }

    /// The family named `name`, if present.
    #[must_use]
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The Prometheus text exposition (format 0.0.4): `# HELP` and `# TYPE` before each
    /// family's samples; label values and help text escaped as the format requires.
    #[must_use]
    pub fn to_exposition(&self) -> String {
        let mut out = String::new();
        for family in self.families.iter().filter(|f| !f.samples.is_empty()) {
            let kind = match family.kind {
                MetricType::Gauge => "gauge",
                MetricType::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
            let _ = writeln!(out, "# TYPE {} {kind}", family.name);
            for sample in &family.samples {
                out.push_str(family.name);
                if !sample.labels.is_empty() {
                    out.push('{');
                    for (i, (name, value)) in sample.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{name}=\"{}\"", escape_label_value(value));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(sample.value));
            }
        }
        out
    }
}

/// A help text as the format wants it: backslash and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
pub(crate) fn escape_label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A value as Go's `strconv.ParseFloat` reads it (integers without a fraction).
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn sample(labels: Vec<(&'static str, String)>, value: f64) -> Sample {
    Sample { labels, value }
}

fn unlabelled(value: f64) -> Vec<Sample> {
    vec![sample(Vec::new(), value)]
}

fn secs(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64
}

/// The newest audit event whose action is `action`: when, and whether it succeeded.
fn last_of(events: &[AuditEvent], action: &str) -> Option<(f64, bool)> {
    events
        .iter()
        .rev()
        .find(|e| e.action() == action)
        .map(|e| (secs(e.time()), e.outcome() == Outcome::Ok))
}

impl Vault {
    /// The vault's health as metrics: `report` (from [`Vault::status`]) counted by severity
    /// and kind, every live key's creation and expiry times, keys by state, whether the
    /// audit chain verifies, and the time and result of the last `sweep` and the last
    /// rotation as the audit log records them (absent when the log holds none, or does not
    /// verify). An inventory that cannot be read leaves the key and audit samples out (the
    /// report already carries the finding).
    #[must_use]
    pub fn metrics(&self, report: &StatusReport) -> Metrics {
        let mut m = Metrics::default();
        m.gauge(
            "keyvault_status_timestamp_seconds",
            "When keyvault status checked the vault (Unix time).",
            unlabelled(secs(report.checked_at())),
        );
        let inventory = self.store.load(crate::store::View::Live).ok();
        if let Some(inventory) = &inventory {
            key_families(&mut m, inventory);
        }
        finding_families(&mut m, report);
        let events = inventory
            .as_ref()
            .map(|i| self.audit_events_to(i.audit_head()));
        if let Some(events) = events {
            audit_families(&mut m, events.ok().as_deref());
        }
        m
    }
}

/// Per live key its creation and expiry times; keys by state.
fn key_families(m: &mut Metrics, inventory: &Inventory) {
    let mut created = Vec::new();
    let mut expiry = Vec::new();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    if inventory.revoked_unloaded > 0 {
        by_state.insert(KeyState::Revoked.to_string(), inventory.revoked_unloaded);
    }
    for k in inventory.keys() {
        *by_state.entry(k.state().to_string()).or_default() += 1;
        if k.state() == KeyState::Revoked {
            continue;
        }
        let labels = vec![
            ("id", k.id().to_string()),
            ("purpose", k.purpose().to_string()),
            ("state", k.state().to_string()),
            ("algorithm", k.algorithm().to_string()),
        ];
        if let Some(at) = k.expires_at() {
            expiry.push(sample(labels.clone(), secs(at)));
        }
        created.push(sample(labels, secs(k.created_at())));
    }
    m.gauge(
        "keyvault_key_created_timestamp_seconds",
        "When each live (not revoked) key was created (Unix time).",
        created,
    );
    m.gauge(
        "keyvault_key_expiry_timestamp_seconds",
        "When each live (not revoked) key expires (Unix time); keys without an expiry are absent.",
        expiry,
    );
    m.gauge(
        "keyvault_keys",
        "Keys in the inventory by state.",
        by_state
            .into_iter()
            .map(|(state, n)| sample(vec![("state", state)], n as f64))
            .collect(),
    );
}

/// The report's findings counted by severity and kind; targets it could not check.
fn finding_families(m: &mut Metrics, report: &StatusReport) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in report.findings() {
        // The kind's stable name is the one `status --json` writes.
        let kind = serde_json::to_value(f.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", f.kind()));
        *counts.entry((f.severity().to_string(), kind)).or_default() += 1;
    }
    m.gauge(
        "keyvault_findings",
        "Problems keyvault status found, by severity and kind (absent: none).",
        counts
            .into_iter()
            .map(|((severity, kind), n)| {
                sample(vec![("severity", severity), ("kind", kind)], n as f64)
            })
            .collect(),
    );
    m.gauge(
        "keyvault_status_unchecked_targets",
        "Targets (or the OS keyring) keyvault status could not check.",
        unlabelled(report.unchecked().len() as f64),
    );
}

/// Whether the chain verifies (`events` is `None` when it does not), how many events it
/// holds, and the last sweep and rotation.
fn audit_families(m: &mut Metrics, events: Option<&[AuditEvent]>) {
    m.gauge(
        "keyvault_audit_chain_verified",
        "1 when the audit log's hash chain verifies against the inventory, else 0.",
        unlabelled(if events.is_some() { 1.0 } else { 0.0 }),
    );
    let Some(events) = events else {
        return;
    };
    m.push(
        "keyvault_audit_events_total",
        "Events in the audit log.",
        MetricType::Counter,
        unlabelled(events.len() as f64),
    );
    for (action, at, ok, at_help, ok_help) in [
        (
            "sweep",
            "keyvault_last_sweep_timestamp_seconds",
            "keyvault_last_sweep_success",
            "When the last keyvault sweep ended (Unix time).",
            "1 when the last keyvault sweep succeeded, 0 when it stopped part-way.",
        ),
        (
            "rotate",
            "keyvault_last_rotation_timestamp_seconds",
            "keyvault_last_rotation_success",
            "When the last rotation was promoted or failed (Unix time).",
            "1 when the last rotation succeeded, 0 when it stopped part-way.",
        ),
    ] {
        if let Some((time, success)) = last_of(events, action) {
            m.gauge(at, at_help, unlabelled(time));
            m.gauge(ok, ok_help, unlabelled(if success { 1.0 } else { 0.0 }));
        }
    }
}

/// Writes `metrics` to `dir/keyvault.prom` atomically (a hidden temporary file beside it,
/// renamed over it, so the collector never reads half a file), mode 0644: metrics hold no
/// secret, and the collector often runs as another user. `dir` must exist.
///
/// # Errors
///
/// [`StoreError`] when the file cannot be written.
pub fn write_textfile(dir: &Path, metrics: &Metrics) -> Result<PathBuf> {
    let path = dir.join(TEXTFILE_NAME);
    fsutil::write_atomic(
        &path,
        metrics.to_exposition().as_bytes(),
        0o644,
        fsutil::Replace::Yes,
    )
    .map_err(|e: StoreError| e.into())
    .map(|()| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_label_values_and_help() {
        let mut m = Metrics::default();
        m.gauge(
            "x_seconds",
            "a \\ b\nc",
            vec![sample(vec![("l", "q\"\\\nz".to_owned())], 1.5)],
        );
        m.gauge("empty", "left out", Vec::new());
        m.push("n_total", "n", MetricType::Counter, unlabelled(3.0));
        assert_eq!(
            m.to_exposition(),
            "# HELP x_seconds a \\\\ b\\nc\n# TYPE x_seconds gauge\nx_seconds{l=\"q\\\"\\\\\\nz\"} 1.5\n\
             # HELP n_total n\n# TYPE n_total counter\nn_total 3\n"
        );
    }

    #[test]
    fn values_are_written_as_go_parses_them() {
        assert_eq!(format_value(1_764_633_600.0), "1764633600");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
