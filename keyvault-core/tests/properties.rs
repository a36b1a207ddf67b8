//! Property tests over the public API: the authorized_keys editor and the RunPod list
//! merge keep every unrelated line byte for byte and in order, and are idempotent; the
//! inventory round-trips through its file format.

use keyvault_core::authorized_keys::{self, edit};
use keyvault_core::remote::{AddKey, fingerprint_of, merge, parse_list};
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::ssh_key::{Algorithm, PrivateKey};
use keyvault_core::{Fingerprint, Inventory};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::OnceLock;

/// Eight real public keys (type and base64), made once.
fn pool() -> &'static [String] {
    static POOL: OnceLock<Vec<String>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..8)
            .map(|_| {
                let key =
                    PrivateKey::random(&mut UnwrapErr(SysRng), Algorithm::Ed25519).expect("key");
                key.public_key().to_openssh().expect("encode")
            })
            .collect()
    })
}

/// A line of an authorized_keys file: a key from the pool (maybe with options and a
/// comment), a comment, a blank line, or garbage.
#[derive(Debug, Clone)]
enum Line {
    Key {
        index: usize,
        options: String,
        comment: String,
    },
    Comment(String),
    Blank(String),
    Garbage(String),
}

impl Line {
    fn text(&self) -> String {
        match self {
            Line::Key {
                index,
                options,
                comment,
            } => {
                let key = &pool()[*index];
                let mut s = String::new();
                if !options.is_empty() {
                    s.push_str(options);
                    s.push(' ');
                }
                s.push_str(key);
                if !comment.is_empty() {
                    s.push(' ');
                    s.push_str(comment);
                }
                s
            }
            Line::Comment(c) => format!("#{c}"),
            Line::Blank(b) => b.clone(),
            Line::Garbage(g) => g.clone(),
        }
    }
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        (
            0..8usize,
            prop_oneof![
                Just(String::new()),
                Just("restrict".to_owned()),
                Just("from=\"10.0.0.0/8\",command=\"uptime\"".to_owned()),
                Just("expiry-time=\"209912312359Z\",no-pty".to_owned()),
            ],
            "[a-z@.:-]{0,12}"
        )
            .prop_map(|(index, options, comment)| Line::Key {
                index,
                options,
                comment
            }),
        "[ -~]{0,20}".prop_map(Line::Comment),
        "[ \t]{0,3}".prop_map(Line::Blank),
        "[a-z =\"]{1,30}".prop_map(Line::Garbage),
    ]
}

fn document() -> impl Strategy<Value = (Vec<Line>, Vec<&'static str>, bool)> {
    (
        prop::collection::vec(line(), 0..12),
        prop::collection::vec(prop_oneof![Just("\n"), Just("\r\n")], 12),
        any::<bool>(),
    )
}

fn render(lines: &[Line], endings: &[&str], final_newline: bool) -> String {
    let mut s = String::new();
    for (i, l) in lines.iter().enumerate() {
        s.push_str(&l.text());
        if i + 1 < lines.len() || final_newline {
            s.push_str(endings[i]);
        }
    }
    s
}

fn fp(index: usize) -> Fingerprint {
    fingerprint_of(&pool()[index]).expect("pool key")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn authorized_keys_edit_keeps_unrelated_lines((lines, endings, final_newline) in document(), removed in prop::collection::btree_set(0..8usize, 0..4), added in prop::collection::vec(0..8usize, 0..3)) {
        let text = render(&lines, &endings, final_newline);
        let remove: HashSet<Fingerprint> = removed.iter().map(|i| fp(*i)).collect();
        let add: Vec<AddKey> = added.iter().map(|i| AddKey { fingerprint: fp(*i), line: format!("restrict {} keyvault:k-{i}", pool()[*i]) }).collect();
        let out = edit(&text, &add, &remove);

        // Lines of keys neither removed nor added are byte-identical, in order; lines of
        // added keys hold exactly the options keyvault writes (a line with other options is
        // rewritten); removed keys are gone, as sshd reads the file.
        let touched: HashSet<Fingerprint> = remove.iter().copied().chain(add.iter().map(|a| a.fingerprint)).collect();
        let untouched = |t: &str| -> Vec<String> {
            t.split_inclusive('\n')
                .filter(|seg| authorized_keys::line_fingerprint(seg.trim_end_matches(['\n', '\r'])).is_none_or(|f| !touched.contains(&f)))
                .map(|seg| seg.trim_end_matches('\n').to_owned())
                .collect()
        };
        prop_assert_eq!(untouched(&text), untouched(&out), "unrelated lines changed:\n{:?}\n=>\n{:?}", text, out);
        prop_assert!(authorized_keys::verify(&out, &add, &remove).is_ok(), "{:?}", authorized_keys::verify(&out, &add, &remove));
        let present = authorized_keys::fingerprints(&out);
        for i in &added {
            prop_assert_eq!(present.contains(&fp(*i)), !remove.contains(&fp(*i)));
        }
        prop_assert!(present.is_disjoint(&remove));
        // Idempotent.
        prop_assert_eq!(edit(&out, &add, &remove), out.clone());
    }

    #[test]
    fn runpod_merge_keeps_unmanaged_and_unparseable_in_order(entries in prop::collection::vec(prop_oneof![(0..8usize, "[a-z@.-]{0,10}").prop_map(|(i, c)| format!("{} {c}", pool()[i]).trim().to_owned()), "ssh-rsa [A-Za-z-]{3,10} [a-z]{0,6}".prop_map(|s| s.trim().to_owned())], 0..12), removed in prop::collection::btree_set(0..8usize, 0..4), added in prop::collection::vec(0..8usize, 0..3)) {
        let current = parse_list(&entries);
        let remove: HashSet<Fingerprint> = removed.iter().map(|i| fp(*i)).collect();
        let add: Vec<AddKey> = added.iter().map(|i| AddKey { fingerprint: fp(*i), line: format!("{} keyvault:k-{i}", pool()[*i]) }).collect();
        let out = merge(&current, &add, &remove);
        let expected_prefix: Vec<String> = current
            .iter()
            .filter(|k| k.fingerprint().is_none_or(|f| !remove.contains(f)))
            .map(|k| k.raw().to_owned())
            .collect();
        prop_assert_eq!(&out[..expected_prefix.len()], &expected_prefix[..]);
        let after = parse_list(&out);
        let present: HashSet<Fingerprint> = after.iter().filter_map(|k| k.fingerprint().copied()).collect();
        prop_assert!(present.is_disjoint(&remove));
        for i in &added {
            prop_assert_eq!(present.contains(&fp(*i)), !remove.contains(&fp(*i)));
        }
        prop_assert_eq!(merge(&after, &add, &remove), out);
    }

    #[test]
    fn inventory_round_trips(keys in prop::collection::vec(key_record(), 0..6)) {
        let mut seen = HashSet::new();
        let keys: Vec<serde_json::Value> = keys.into_iter().filter(|k| seen.insert(k["id"].as_str().map(ToOwned::to_owned))).collect();
        let doc = serde_json::json!({"version": 1, "keys": keys, "journal": [], "audit": null});
        let bytes = serde_json::to_vec(&doc).expect("json");
        let inventory = Inventory::parse(&bytes).expect("a valid document parses");
        let written = inventory.to_json();
        let again = Inventory::parse(&written).expect("what keyvault writes, it reads");
        prop_assert_eq!(&again, &inventory);
        prop_assert_eq!(again.to_json(), written);
        prop_assert_eq!(inventory.keys().len(), keys.len());
    }
}

/// A valid key record as JSON.
fn key_record() -> impl Strategy<Value = serde_json::Value> {
    (
        "[a-z][a-z0-9._-]{0,10}",
        1..50u64,
        0..8usize,
        prop_oneof![Just("ed25519"), Just("rsa-3072"), Just("ecdsa-p256")],
        prop_oneof![Just("pending"), Just("active"), Just("retiring"), Just("revoked")],
        0..2_000_000_000i64,
        prop::option::of(0..2_000_000_000i64),
        any::<bool>(),
        prop::collection::vec(("runpod(:[a-z]{1,5})?", 0..2_000_000_000i64, any::<bool>()), 0..3),
    )
        .prop_map(|(purpose, n, key, algorithm, state, created, expires, encrypted, deployments)| {
            let ts = |t: i64| chrono::DateTime::from_timestamp(t, 0).expect("ts").to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let id = format!("{purpose}-{n}");
            serde_json::json!({
                "id": id,
                "purpose": purpose,
                "algorithm": algorithm,
                "fingerprint": fp(key).to_string(),
                "public_key": format!("{} keyvault:{id}", pool()[key]),
                "comment": format!("keyvault:{id}"),
                "created_at": ts(created),
                "expires_at": expires.map(ts),
                "state": state,
                "protection": if encrypted { "passphrase" } else { "none" },
                "kdf_rounds": if encrypted { Some(16) } else { None },
                "origin": "generated",
                "private_key_path": format!("keys/{id}"),
                "deployments": deployments.iter().map(|(t, at, removed)| serde_json::json!({
                    "target": t, "added_at": ts(*at), "verified_at": ts(*at), "removed_at": if *removed { Some(ts(*at)) } else { None },
                })).collect::<Vec<_>>(),
                "rotated_from": null,
                "rotated_to": null,
                "revoked_at": null,
                "pruned_at": null,
            })
        })
}
