//! Durations, target specs, purposes, key ids, key selectors, principals, `from=` patterns
//! and algorithm names: whatever parses displays as text that parses to the same value.
#![no_main]

use keyvault_core::{
    Algorithm, KeyId, KeySelector, Principal, Purpose, SourcePattern, Span, TargetSpec,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(span) = s.parse::<Span>() {
        assert_eq!(
            span.to_string().parse::<Span>().expect("display parses"),
            span
        );
    }
    if let Ok(t) = s.parse::<TargetSpec>() {
        // The displayed form is canonical (e.g. `ssh://h:090` shows as `ssh://h:90`, which is
        // what the inventory records): it parses to the same target and displays unchanged.
        let shown = t.to_string();
        let again = shown.parse::<TargetSpec>().expect("display parses");
        assert_eq!(again, t);
        assert_eq!(again.to_string(), shown);
    }
    if let Ok(p) = s.parse::<Purpose>() {
        assert_eq!(p.as_str(), s);
        assert!(!s.contains('/') && !s.starts_with('.'));
    }
    if let Ok(id) = s.parse::<KeyId>() {
        assert_eq!(id.to_string().parse::<KeyId>().expect("display parses"), id);
        assert!(!s.contains('/'));
    }
    if let Ok(k) = s.parse::<KeySelector>() {
        assert_eq!(k.as_str(), s);
        assert!(k.id().is_some() || k.purpose().is_some());
        assert!(!s.contains('/'));
    }
    if let Ok(p) = s.parse::<Principal>() {
        // Safe inside `principals="…"` and a certificate: no quote, comma or space.
        assert_eq!(p.as_str(), s);
        assert!(!s.contains(['"', ',', ' ', '\n']));
    }
    if let Ok(f) = s.parse::<SourcePattern>() {
        assert_eq!(f.as_str(), s);
        assert!(!s.contains(['"', ',', ' ', '\n']));
    }
    if let Ok(a) = s.parse::<Algorithm>() {
        assert_eq!(
            a.to_string().parse::<Algorithm>().expect("display parses"),
            a
        );
    }
});
