//! Makes a vault at fleet size for the benchmarks in `bench/compare.sh`: thousands of keys
//! across purposes, some expired, some deployed to a RunPod account, optionally trusted by
//! pods that are sshd instances on 127.0.0.1.
//!
//! ```sh
//! BENCH_PASS='…' make-fleet --home /tmp/fleet --out /tmp/fleet-out --keys 10000 \
//!     --purposes 50 --expired 1000 --runpod 400
//! BENCH_PASS='…' make-fleet --home /tmp/big --out /tmp/big-out --keys 1000000 \
//!     --purposes 50 --revoked 999000 --store sqlite
//! ```
//!
//! Writes the vault home (`inventory.json` as the files store and earlier releases keep it,
//! or with `--store sqlite` a `vault.db` filled in one transaction; keys/, current/), and in
//! `--out`:
//! `account-keys.txt` (the RunPod account's key list, one per line), `pods.json` (with
//! `--pod-ports`, and `pods-1.json` with the first pod only) and `authorized_keys` (what each pod's sshd trusts).
//!
//! Every purpose has one active key; the other keys are minted (scoped) keys, the way
//! automation fills a vault. The first 64 keys' private files are really encrypted with
//! the passphrase in `$BENCH_PASS`; the rest share one encrypted file, which nothing the
//! benchmarks run reads (list, status and sweep never decrypt). With `--revoked R` the last R
//! keys are revoked history: a record each, and no key file (a vault only grows, and
//! history is most of a big one).

use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Options {
    home: PathBuf,
    out: PathBuf,
    keys: usize,
    purposes: usize,
    expired: usize,
    runpod: usize,
    pod_ports: Vec<u16>,
    revoked: usize,
    sqlite: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: make-fleet --home DIR --out DIR --keys N [--purposes P] [--expired E] [--runpod R] [--pod-ports PORT,…] [--revoked N] [--store files|sqlite]\n\
         (the passphrase of the really encrypted keys comes from $BENCH_PASS)"
    );
    std::process::exit(2)
}

fn parse() -> Options {
    let mut o = Options {
        home: PathBuf::new(),
        out: PathBuf::new(),
        keys: 0,
        purposes: 1,
        expired: 0,
        runpod: 0,
        pod_ports: Vec::new(),
        revoked: 0,
        sqlite: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let number = || value.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--home" => o.home = PathBuf::from(&value),
            "--out" => o.out = PathBuf::from(&value),
            "--keys" => o.keys = number(),
            "--purposes" => o.purposes = number(),
            "--expired" => o.expired = number(),
            "--runpod" => o.runpod = number(),
            "--revoked" => o.revoked = number(),
            "--store" => {
                o.sqlite = match value.as_str() {
                    "sqlite" => true,
                    "files" => false,
                    _ => usage(),
                };
            }
            "--pod-ports" => {
                o.pod_ports = value
                    .split(',')
                    .map(|p| p.parse().unwrap_or_else(|_| usage()))
                    .collect();
            }
            _ => usage(),
        }
    }
    if o.home.as_os_str().is_empty()
        || o.out.as_os_str().is_empty()
        || o.keys < o.purposes
        || o.keys - o.purposes < o.revoked
    {
        usage();
    }
    o
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// What the records made so far have left to the rest of the fleet.
struct Fleet<'a> {
    o: &'a Options,
    rng: UnwrapErr<SysRng>,
    passphrase: String,
    shared: String,
    now: chrono::DateTime<chrono::Utc>,
    step: usize,
    expired_so_far: usize,
    numbers: Vec<usize>,
    account: Vec<String>,
    first_of_p0: Option<String>,
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Fleet<'_> {
    /// Key `i`'s record, its key files written unless it is revoked history.
    fn record(&mut self, i: usize) -> Value {
        let o = self.o;
        let p = i % o.purposes;
        self.numbers[p] += 1;
        let purpose = format!("p{p}");
        let id = format!("{purpose}-{}", self.numbers[p]);
        let active = i < o.purposes;
        let revoked = i >= o.keys - o.revoked;
        let expired = !active
            && !revoked
            && (i - o.purposes).is_multiple_of(self.step)
            && self.expired_so_far < o.expired;
        self.expired_so_far += usize::from(expired);
        let key = PrivateKey::random(&mut self.rng, Algorithm::Ed25519).expect("key");
        let comment = format!("keyvault:{id}");
        let public = key.public_key().to_openssh().expect("public");
        let public = format!("{public} {comment}");
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let keys_dir = o.home.join("keys");
        if !revoked {
            let private = if i < 64 {
                key.encrypt(&mut self.rng, self.passphrase.as_bytes())
                    .expect("encrypt")
                    .to_openssh(LineEnding::LF)
                    .expect("encode")
                    .to_string()
            } else {
                self.shared.clone()
            };
            write(&keys_dir.join(&id), &private, 0o600);
            write(
                &keys_dir.join(format!("{id}.pub")),
                &format!("{public}\n"),
                0o644,
            );
        }
        let now = self.now;
        let (created, expires) = if expired || revoked {
            (
                now - chrono::TimeDelta::days(2),
                now - chrono::TimeDelta::days(1),
            )
        } else {
            (
                now - chrono::TimeDelta::days(1),
                now + chrono::TimeDelta::days(60),
            )
        };
        let mut deployments = Vec::new();
        if i < o.runpod && !revoked {
            deployments.push(json!({
                "target": "runpod",
                "added_at": stamp(created),
                "verified_at": stamp(created),
                "removed_at": null,
            }));
            self.account.push(public.clone());
        }
        let mut record = json!({
            "id": id,
            "purpose": purpose,
            "algorithm": "ed25519",
            "fingerprint": fingerprint,
            "public_key": public,
            "comment": comment,
            "created_at": stamp(created),
            "expires_at": stamp(expires),
            "state": if revoked { "revoked" } else { "active" },
            "protection": "passphrase",
            "kdf_rounds": 16,
            "origin": "generated",
            "private_key_path": format!("keys/{id}"),
            "deployments": deployments,
            "rotated_from": null,
            "rotated_to": null,
            "revoked_at": if revoked { Value::String(stamp(expires)) } else { Value::Null },
            "pruned_at": null,
        });
        if active {
            let current = o.home.join("current");
            std::os::unix::fs::symlink(format!("../keys/{id}"), current.join(&purpose))
                .expect("link");
            std::os::unix::fs::symlink(
                format!("../keys/{id}.pub"),
                current.join(format!("{purpose}.pub")),
            )
            .expect("link");
            if p == 0 {
                self.first_of_p0 = Some(public.clone());
            }
        } else {
            record["scope"] = json!({"from": ["10.0.0.0/8"], "force_command": null});
        }
        record
    }
}

fn main() {
    let o = parse();
    let passphrase = std::env::var("BENCH_PASS").unwrap_or_else(|_| {
        eprintln!("error: set BENCH_PASS to the passphrase of the generated keys");
        std::process::exit(2)
    });
    let mut rng = UnwrapErr(SysRng);
    let keys_dir = o.home.join("keys");
    let current = o.home.join("current");
    for d in [&o.home, &keys_dir, &current, &o.out] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    for d in [&o.home, &keys_dir, &current] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let shared = {
        let k = PrivateKey::random(&mut rng, Algorithm::Ed25519).expect("key");
        k.encrypt(&mut rng, passphrase.as_bytes())
            .expect("encrypt")
            .to_openssh(LineEnding::LF)
            .expect("encode")
            .to_string()
    };
    // Spread the expired keys evenly, never over a purpose's active key.
    let step = (o.keys - o.purposes - o.revoked)
        .checked_div(o.expired)
        .map_or(usize::MAX, |s| s.max(1));
    let mut fleet = Fleet {
        o: &o,
        rng,
        passphrase,
        shared,
        now: chrono::Utc::now(),
        step,
        expired_so_far: 0,
        numbers: vec![0usize; o.purposes],
        account: Vec::new(),
        first_of_p0: None,
    };
    if o.sqlite {
        // One transaction through keyvault itself, record by record (memory stays flat).
        let mut records = (0..o.keys).map(|i| {
            serde_json::from_value::<keyvault_core::inventory::KeyRecord>(fleet.record(i))
                .expect("a valid record")
        });
        keyvault_core::bulk_import(&o.home, &mut records).expect("bulk import");
    } else {
        let records: Vec<Value> = (0..o.keys).map(|i| fleet.record(i)).collect();
        // Checked and laid out by keyvault itself, exactly as it writes the file.
        let inventory = json!({"version": 1, "keys": records, "journal": []});
        let inventory = keyvault_core::inventory::Inventory::parse(
            &serde_json::to_vec(&inventory).expect("json"),
        )
        .expect("a valid inventory");
        write(
            &o.home.join("inventory.json"),
            std::str::from_utf8(&inventory.to_json()).expect("UTF-8"),
            0o600,
        );
    }
    let (account, first_of_p0, expired_so_far) =
        (fleet.account, fleet.first_of_p0, fleet.expired_so_far);
    write(&o.out.join("account-keys.txt"), &account.join("\n"), 0o644);
    if !o.pod_ports.is_empty() {
        let trusted = first_of_p0.expect("purpose p0 has an active key");
        let pods: Vec<Value> = o
            .pod_ports
            .iter()
            .map(|port| {
                keyvault_tests::fake_runpod::pod(
                    &format!("pod{port}"),
                    "RUNNING",
                    &[&trusted],
                    Some(("127.0.0.1", *port)),
                )
            })
            .collect();
        write(
            &o.out.join("pods.json"),
            &serde_json::to_string(&pods).expect("json"),
            0o644,
        );
        write(
            &o.out.join("pods-1.json"),
            &serde_json::to_string(&pods[..1]).expect("json"),
            0o644,
        );
        write(
            &o.out.join("authorized_keys"),
            &format!("{trusted}\n"),
            0o600,
        );
    }
    println!(
        "{}: {} keys in {} purposes, {} expired, {} at RunPod, {} pods",
        o.home.display(),
        o.keys,
        o.purposes,
        expired_so_far,
        o.runpod,
        o.pod_ports.len()
    );
}
