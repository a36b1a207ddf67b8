//! RunPod key lists: the v2 JSON form and GraphQL's newline-separated string. Merging
//! keeps every entry it does not remove, verbatim and in order; adding is idempotent;
//! the GraphQL split/join round-trips.
#![no_main]

use keyvault_core::remote::{AddKey, fingerprints, join_graphql, merge, parse_list, split_graphql};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // GraphQL string: split, join, split again gives the same entries.
    let entries = split_graphql(text);
    assert_eq!(split_graphql(&join_graphql(&entries)), entries);
    // v2 JSON, or the GraphQL entries when the input is not JSON.
    let list: Vec<String> = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("keys").cloned())
        .and_then(|k| serde_json::from_value(k).ok())
        .unwrap_or(entries);
    let parsed = parse_list(&list);
    // No change: the list comes back byte for byte.
    assert_eq!(merge(&parsed, &[], &HashSet::new()), list);
    // Removing the first key's fingerprint keeps everything else, in order.
    let present = fingerprints(&parsed);
    if let Some(victim) = parsed.iter().find_map(|k| k.fingerprint()) {
        let remove = HashSet::from([victim.to_owned()]);
        let out = merge(&parsed, &[], &remove);
        let expected: Vec<String> = parsed
            .iter()
            .filter(|k| k.fingerprint() != Some(victim))
            .map(|k| k.raw().to_owned())
            .collect();
        assert_eq!(out, expected);
        // Adding it back appends one line; adding again changes nothing.
        let add = [AddKey {
            fingerprint: victim.to_owned(),
            line: "ssh-ed25519 AAAA re-added".to_owned(),
        }];
        let back = merge(&parse_list(&out), &add, &HashSet::new());
        assert_eq!(back.len(), out.len() + 1);
        let _ = present;
    }
});
