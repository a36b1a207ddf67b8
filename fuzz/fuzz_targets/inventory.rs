//! The inventory file: whatever parses serializes back to a document that parses to the
//! same inventory.
#![no_main]

use keyvault_core::Inventory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(inventory) = Inventory::parse(data) {
        let written = inventory.to_json();
        let again = Inventory::parse(&written).expect("what keyvault writes, it reads");
        assert_eq!(again, inventory);
        assert_eq!(again.to_json(), written);
    }
});
