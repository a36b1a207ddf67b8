//! `keyvault store logout` under a real Secret Service (gnome-keyring on a private bus):
//! for a URL with several servers it also deletes the entry an older keyvault kept under
//! the first server's account.

use crate::secret_service::SecretService;
use crate::support::Vault;

const PASSWORD: &str = "pg-secret-password-4242";

#[test]
fn logout_of_a_multi_host_store_deletes_the_older_first_host_entry_too() {
    let ss = SecretService::start();
    let v = Vault::new();
    v.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
    let first = "postgres://kv@127.0.0.1:5433/vault";
    let both = "postgres://kv@127.0.0.1:5433,127.0.0.2:5434/vault";
    let legacy = "postgres:kv@127.0.0.1:5433/vault";
    let current = "postgres:kv@127.0.0.1,127.0.0.2:5433,5434/vault";
    // An older keyvault's `store login` for `both` kept the password where a login for
    // `first` keeps it today: the first server's account.
    v.set_env("KEYVAULT_STORE", first);
    let login = v
        .run_stdin(&["store", "login", "--stdin"], PASSWORD)
        .expect(0);
    assert!(!login.stdout.contains(PASSWORD) && !login.stderr.contains(PASSWORD));
    v.set_env("KEYVAULT_STORE", both);
    v.run_stdin(&["store", "login", "--stdin"], PASSWORD)
        .expect(0);
    let mut accounts = ss.accounts();
    accounts.sort();
    assert_eq!(accounts, [current, legacy]);

    let out = v.run(&["--json", "store", "logout"]).expect(0);
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
    assert_eq!(
        out.json(),
        serde_json::json!({"store": both, "removed": true})
    );
    assert_eq!(ss.lookup(legacy), None);
    assert_eq!(ss.lookup(current), None);
    assert_eq!(ss.accounts(), Vec::<String>::new());

    // The older entry alone is enough for logout to find something to delete.
    v.set_env("KEYVAULT_STORE", first);
    v.run_stdin(&["store", "login", "--stdin"], PASSWORD)
        .expect(0);
    v.set_env("KEYVAULT_STORE", both);
    let out = v.run(&["store", "logout"]).expect(0);
    assert!(
        out.stdout.contains("deleted from the OS keyring"),
        "{}",
        out.stdout
    );
    assert_eq!(ss.accounts(), Vec::<String>::new());
    // A single-host store has no older form: its logout deletes its own entry only.
    v.set_env("KEYVAULT_STORE", both);
    v.run_stdin(&["store", "login", "--stdin"], PASSWORD)
        .expect(0);
    v.set_env("KEYVAULT_STORE", first);
    v.run(&["store", "logout"]).expect(0);
    assert_eq!(ss.accounts(), [current]);
}
