//! Public key and authorized_keys lines: a line that parses yields a fingerprint that
//! survives re-encoding, with or without its comment; options parse back the same.
#![no_main]

use keyvault_core::remote::fingerprint_of;
use keyvault_core::ssh_key::{PublicKey, authorized_keys::Entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(fp) = fingerprint_of(line) {
        let key = PublicKey::from_openssh(line.trim()).expect("fingerprint_of parsed it");
        let encoded = key.to_openssh().expect("a parsed key encodes");
        assert_eq!(
            fingerprint_of(&encoded).as_deref(),
            Some(fp.as_str()),
            "re-encoding changed the key"
        );
        // Identity ignores the comment.
        let body: Vec<&str> = encoded.split_whitespace().take(2).collect();
        assert_eq!(
            fingerprint_of(&format!("{} other comment", body.join(" "))).as_deref(),
            Some(fp.as_str())
        );
    }
    if let Ok(entry) = line.parse::<Entry>() {
        let opts = entry.config_opts().as_str().to_owned();
        let key = entry.public_key().to_openssh().expect("encodes");
        let rebuilt = if opts.is_empty() {
            key.clone()
        } else {
            format!("{opts} {key}")
        };
        let again: Entry = rebuilt.parse().expect("a rebuilt entry parses");
        assert_eq!(again.public_key().key_data(), entry.public_key().key_data());
        assert_eq!(again.config_opts().as_str(), opts);
    }
});
