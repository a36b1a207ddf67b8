//! Encrypted private key files: parsing never panics; decryption is attempted only under a
//! small rounds cap, so no input stalls a run; an unencrypted key re-encodes to the same key.
#![no_main]

use keyvault_core::Passphrase;
use keyvault_core::keyfile::{decrypt_capped, parse, to_openssh};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = parse(data, Path::new("fuzz")) else {
        return;
    };
    if key.is_encrypted() {
        let _ = decrypt_capped(&key, &Passphrase::new("fuzz".to_owned()), "fuzz", 2);
    } else if let Ok(text) = to_openssh(&key) {
        let again =
            parse(text.as_bytes(), Path::new("fuzz")).expect("what keyvault writes, it reads");
        assert_eq!(again.public_key().key_data(), key.public_key().key_data());
    }
});
