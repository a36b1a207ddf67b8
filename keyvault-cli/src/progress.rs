//! Progress on stderr with indicatif: a spinner for slow steps (key generation, scrypt)
//! and one line per pod while `rotate --pods`, `deploy --to runpod-pods` and friends work.
//! Used only when stderr is a terminal and not with --json; stdout never sees any of it.

use crate::render;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyvault_core::{PodProgress, PodProgressSink};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a spinner moves.
const TICK: Duration = Duration::from_millis(100);

/// A turning bar before the message.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("|/-\\ ")
}

/// A spinner with `label`, on stderr; `finish_and_clear` removes it.
fn spinner(label: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(spinner_style());
    bar.set_message(label);
    bar.enable_steady_tick(TICK);
    bar
}

/// A spinner on stderr for one slow step; cleared when stopped or dropped.
pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn start(label: String) -> Self {
        Spinner(spinner(format!("{label}…")))
    }

    /// Stops and clears the spinner.
    pub fn stop(self) {}
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// One line per pod: a spinner while keyvault works on it, then its outcome (a pod
/// visited again, to remove the old key after adding the new one, reuses its line).
struct PodLines {
    lines: MultiProgress,
    pods: Mutex<HashMap<String, ProgressBar>>,
}

impl PodLines {
    fn event(&self, event: &PodProgress) {
        let Ok(mut pods) = self.pods.lock() else {
            return;
        };
        match event {
            PodProgress::Started { pod } => {
                let text = format!("pod {}: updating…", render::clean(pod));
                match pods.get(pod) {
                    Some(line) => {
                        line.reset();
                        line.set_style(spinner_style());
                        line.set_message(text);
                        line.enable_steady_tick(TICK);
                    }
                    None => {
                        let line = self.lines.add(spinner(text));
                        pods.insert(pod.clone(), line);
                    }
                }
            }
            PodProgress::Finished { pod, outcome } => {
                let text = format!("pod {}: {outcome}", render::clean(pod));
                let line = pods
                    .entry(pod.clone())
                    .or_insert_with(|| self.lines.add(ProgressBar::new_spinner()));
                line.disable_steady_tick();
                line.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                line.finish_with_message(text);
            }
            _ => {}
        }
    }
}

/// The pod progress sink for the vault: live lines on stderr, or where indicatif draws
/// nothing (TERM unset or `dumb`) a plain line as each pod starts and ends.
pub fn pod_lines() -> PodProgressSink {
    let target = ProgressDrawTarget::stderr();
    if target.is_hidden() {
        return Arc::new(|event: &PodProgress| match event {
            PodProgress::Started { pod } => eprintln!("pod {}: updating…", render::clean(pod)),
            PodProgress::Finished { pod, outcome } => {
                eprintln!("pod {}: {outcome}", render::clean(pod));
            }
            _ => {}
        });
    }
    let lines = PodLines {
        lines: MultiProgress::with_draw_target(target),
        pods: Mutex::new(HashMap::new()),
    };
    Arc::new(move |event: &PodProgress| lines.event(event))
}
