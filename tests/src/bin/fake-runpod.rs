//! Runs the fake RunPod API so a person can try keyvault without an account:
//!
//! ```sh
//! cargo run -p keyvault-tests --bin fake-runpod -- --port 8765
//! export RUNPOD_API_URL=http://127.0.0.1:8765 RUNPOD_API_KEY=rpa_TESTKEY0123456789abcdef
//! keyvault deploy personal --to runpod
//! ```

use keyvault_tests::fake_runpod::{DEFAULT_KEY, FakeRunpod};

fn main() {
    let mut port = 8765;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
                    eprintln!("error: --port needs a number");
                    std::process::exit(2)
                });
            }
            "--help" | "-h" => {
                println!(
                    "fake-runpod [--port PORT]: a fake RunPod API on 127.0.0.1 (default port 8765)"
                );
                return;
            }
            other => {
                eprintln!("error: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let server = FakeRunpod::start_on(port);
    println!("fake RunPod API listening on {}", server.url());
    println!("  export RUNPOD_API_URL={}", server.url());
    println!("  export RUNPOD_API_KEY={DEFAULT_KEY}   # the fake's test key, not a real one");
    println!("press Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}
