//! Public key and authorized_keys lines: a line that parses yields a fingerprint that
//! survives re-encoding, with or without its comment; keyvault's authorized_keys reading
//! (options split as sshd splits them) finds the same key after the options are rebuilt,
//! and its editor leaves an untouched line byte for byte and removes a key completely.
#![no_main]

use keyvault_core::authorized_keys::{edit, line_fingerprint, split_options};
use keyvault_core::remote::fingerprint_of;
use keyvault_core::ssh_key::PublicKey;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    // fingerprint_of reads as sshd does (runs of spaces and tabs, CR in the base64), which
    // is wider than ssh-key's own parser: check re-encoding where that parser agrees.
    if let (Some(fp), Ok(key)) = (fingerprint_of(line), PublicKey::from_openssh(line.trim())) {
        assert_eq!(
            key.fingerprint(keyvault_core::ssh_key::HashAlg::Sha256),
            fp,
            "ssh-key and keyvault read different keys"
        );
        let encoded = key.to_openssh().expect("a parsed key encodes");
        assert_eq!(
            fingerprint_of(&encoded),
            Some(fp),
            "re-encoding changed the key"
        );
        // Identity ignores the comment.
        let body: Vec<&str> = encoded.split_whitespace().take(2).collect();
        assert_eq!(
            fingerprint_of(&format!("{} other comment", body.join(" "))),
            Some(fp)
        );
    }
    if line.contains('\n') {
        return;
    }
    if let Some(fp) = line_fingerprint(line) {
        let (options, rest) = split_options(line);
        let rebuilt = match options {
            Some(o) => format!("{o} {rest}"),
            None => rest.to_owned(),
        };
        assert_eq!(line_fingerprint(&rebuilt), Some(fp));
        // The editor keeps an unrelated line byte for byte and removes this key's line.
        let text = format!("{line}\n");
        assert_eq!(edit(&text, &[], &HashSet::new()), text);
        assert_eq!(edit(&text, &[], &HashSet::from([fp])), "");
    } else {
        let text = format!("{line}\n");
        assert_eq!(edit(&text, &[], &HashSet::new()), text);
    }
});
