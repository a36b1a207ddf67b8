//! Audit logs and chain verification: arbitrary bytes never panic; a log that verifies
//! against no head also verifies against its own last line; changing any byte of a
//! verified log breaks it (or leaves it unparsable) when checked against its head.
#![no_main]

use keyvault_core::audit::{head_of, verify_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = verify_bytes(data, None) else {
        return;
    };
    let head = head_of(data);
    let anchored = verify_bytes(data, head.as_ref()).expect("a log verifies against its own head");
    assert_eq!(anchored.events, v.events);
    assert_eq!(anchored.unanchored, 0);
    if let Some(head) = head {
        // Flip one byte somewhere before the final newline.
        let i = (data.len() - 1) / 2;
        let mut tampered = data.to_vec();
        tampered[i] ^= 0x01;
        if tampered != data {
            assert!(
                verify_bytes(&tampered, Some(&head)).is_err(),
                "a changed byte went unnoticed"
            );
        }
    }
});
