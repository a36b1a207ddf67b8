//! Runs the fake RunPod API so a person can try keyvault without an account:
//!
//! ```sh
//! cargo run -p keyvault-tests --bin fake-runpod -- --port 8765
//! export RUNPOD_API_URL=http://127.0.0.1:8765 RUNPOD_API_KEY=rpa_TESTKEY0123456789abcdef
//! keyvault deploy personal --to runpod
//! ```
//!
//! The benchmarks (`bench/compare.sh`) also preload the account's keys (`--keys-file`, one
//! per line) and pods (`--pods-file`, a JSON array), and read how many times the key list
//! was read and written from `--stats-file` (`READS WRITES`, rewritten as requests arrive).

use keyvault_tests::fake_cli::{fail, number, parse_args, serve_until_killed};
use keyvault_tests::fake_runpod::{DEFAULT_KEY, FakeRunpod};
use std::path::PathBuf;

fn main() {
    let mut port = 8765;
    let mut keys_file: Option<PathBuf> = None;
    let mut pods_file: Option<PathBuf> = None;
    let mut stats_file: Option<PathBuf> = None;
    let usage = "fake-runpod [--port PORT] [--keys-file FILE] [--pods-file FILE] [--stats-file FILE]:\n  \
                 a fake RunPod API on 127.0.0.1 (default port 8765)";
    parse_args(usage, |flag, value| {
        match flag {
            "--port" => port = number(flag, value()),
            "--keys-file" => keys_file = Some(PathBuf::from(value())),
            "--pods-file" => pods_file = Some(PathBuf::from(value())),
            "--stats-file" => stats_file = Some(PathBuf::from(value())),
            _ => return false,
        }
        true
    });
    let server = FakeRunpod::start_on(port);
    if let Some(f) = keys_file {
        let text =
            std::fs::read_to_string(&f).unwrap_or_else(|e| fail(&format!("{}: {e}", f.display())));
        let keys: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        server.set_keys(&keys);
    }
    if let Some(f) = pods_file {
        let text =
            std::fs::read_to_string(&f).unwrap_or_else(|e| fail(&format!("{}: {e}", f.display())));
        let pods: Vec<serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{}: {e}", f.display())));
        for pod in pods {
            server.add_pod(pod);
        }
    }
    println!("fake RunPod API listening on {}", server.url());
    println!("  export RUNPOD_API_URL={}", server.url());
    println!("  export RUNPOD_API_KEY={DEFAULT_KEY}   # the fake's test key, not a real one");
    println!("press Ctrl-C to stop");
    match stats_file {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            let mut last = None;
            loop {
                let calls = server.key_calls();
                if last != Some(calls) {
                    let _ = std::fs::write(&tmp, format!("{} {}\n", calls.0, calls.1))
                        .and_then(|()| std::fs::rename(&tmp, &path));
                    last = Some(calls);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        None => serve_until_killed(),
    }
}
