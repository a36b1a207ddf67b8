//! Criterion benchmarks of keyvault-core's hot paths: key generation and encryption per
//! algorithm, inventory load and save at 100 / 1,000 / 10,000 keys, and merging a
//! 1,000-key remote list. `cargo bench -p keyvault-core`; the whole-command comparisons with
//! OpenSSH are in `bench/compare.sh`, the numbers in BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keyvault_core::remote::{AddKey, RemoteKey, merge};
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::ssh_key::{HashAlg, PrivateKey};
use keyvault_core::{Algorithm, Inventory, Passphrase, keyfile, keygen};
use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

const ALGORITHMS: [Algorithm; 5] = Algorithm::GENERATABLE;

fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    for algorithm in ALGORITHMS {
        if algorithm.is_slow() {
            // RSA: prime search varies run to run; fewer, longer samples.
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(20));
        } else {
            group
                .sample_size(50)
                .measurement_time(Duration::from_secs(5));
        }
        group.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            let mut rng = UnwrapErr(SysRng);
            b.iter(|| keygen::generate(&mut rng, algorithm, "bench").expect("key"));
        });
    }
    group.finish();
}

fn encryption(c: &mut Criterion) {
    let mut group = c.benchmark_group("encrypt-16-rounds");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let passphrase = Passphrase::new("plum-Vortex-carpet-71-tundra".to_owned());
    let mut rng = UnwrapErr(SysRng);
    for algorithm in ALGORITHMS {
        let key = keygen::generate(&mut rng, algorithm, "bench").expect("key");
        group.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            let mut rng = UnwrapErr(SysRng);
            b.iter(|| {
                let encrypted = keyfile::encrypt(&mut rng, &key, &passphrase, 16).expect("encrypt");
                keyfile::to_openssh(&encrypted).expect("encode")
            });
        });
    }
    group.finish();
}

/// An inventory document with `n` keys, as `make-fleet` writes them.
fn inventory_json(n: usize) -> Vec<u8> {
    let mut rng = UnwrapErr(SysRng);
    let keys: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let key = PrivateKey::random(&mut rng, keyvault_core::ssh_key::Algorithm::Ed25519)
                .expect("key");
            let id = format!("p{}-{}", i % 50, i / 50 + 1);
            serde_json::json!({
                "id": id,
                "purpose": format!("p{}", i % 50),
                "algorithm": "ed25519",
                "fingerprint": key.fingerprint(HashAlg::Sha256).to_string(),
                "public_key": format!("{} keyvault:{id}", key.public_key().to_openssh().expect("pk")),
                "comment": format!("keyvault:{id}"),
                "created_at": "2026-11-01T00:00:00Z",
                "expires_at": "2027-01-01T00:00:00Z",
                "state": if i < 50 { "active" } else { "revoked" },
                "protection": "passphrase",
                "kdf_rounds": 16,
                "origin": "generated",
                "private_key_path": format!("keys/{id}"),
                "deployments": [{"target": "runpod", "added_at": "2026-11-01T00:00:00Z",
                                 "verified_at": "2026-11-01T00:00:00Z", "removed_at": null}],
                "rotated_from": null,
                "rotated_to": null,
                "revoked_at": if i < 50 { serde_json::Value::Null } else { "2026-11-02T00:00:00Z".into() },
                "pruned_at": null,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"version": 1, "keys": keys, "journal": []}))
        .expect("json")
}

fn inventory(c: &mut Criterion) {
    let mut group = c.benchmark_group("inventory");
    group.sample_size(20);
    for n in [100, 1_000, 10_000] {
        let bytes = inventory_json(n);
        let parsed = Inventory::parse(&bytes).expect("parse");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("load", n), &bytes, |b, bytes| {
            b.iter(|| Inventory::parse(black_box(bytes)).expect("parse"));
        });
        group.bench_with_input(BenchmarkId::new("save", n), &parsed, |b, inv| {
            b.iter(|| black_box(inv).to_json());
        });
    }
    group.finish();
}

fn remote_list(c: &mut Criterion) {
    let mut rng = UnwrapErr(SysRng);
    let lines: Vec<String> = (0..1_000)
        .map(|i| {
            let key = PrivateKey::random(&mut rng, keyvault_core::ssh_key::Algorithm::Ed25519)
                .expect("key");
            format!(
                "{} user{i}@example.com",
                key.public_key().to_openssh().expect("pk")
            )
        })
        .collect();
    let parsed: Vec<RemoteKey> = lines.iter().map(|l| RemoteKey::parse(l)).collect();
    let new =
        PrivateKey::random(&mut rng, keyvault_core::ssh_key::Algorithm::Ed25519).expect("key");
    let add = vec![AddKey {
        fingerprint: new.fingerprint(HashAlg::Sha256),
        line: new.public_key().to_openssh().expect("pk").to_string(),
    }];
    let remove: HashSet<keyvault_core::Fingerprint> = parsed
        .iter()
        .step_by(10)
        .filter_map(|k| k.fingerprint().copied())
        .collect();
    let mut group = c.benchmark_group("remote-1000");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("parse", |b| {
        b.iter(|| {
            lines
                .iter()
                .map(|l| RemoteKey::parse(black_box(l)))
                .collect::<Vec<_>>()
        });
    });
    group.bench_function("merge", |b| {
        b.iter(|| merge(black_box(&parsed), black_box(&add), black_box(&remove)));
    });
    group.finish();
}

criterion_group!(benches, generation, encryption, inventory, remote_list);
criterion_main!(benches);
