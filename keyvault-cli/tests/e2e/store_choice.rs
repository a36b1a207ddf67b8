//! Choosing the store: `store = "…"` in config.toml and `KEYVAULT_STORE`, with errors that
//! name what is wrong and never repeat a password.

use crate::support::Vault;

#[test]
fn the_files_store_is_chosen_by_name_and_bad_choices_are_usage_errors() {
    let v = Vault::new();
    v.set_env("KEYVAULT_STORE", "files");
    v.new_key("a", &[]);
    assert!(v.home.join("inventory.json").is_file());
    assert!(v.home.join("audit.jsonl").is_file());
    for value in ["mysql://db/kv", "postgres://kv:hunter2@127.0.0.1/kv"] {
        v.set_env("KEYVAULT_STORE", value);
        let run = v.run(&["list"]).expect(2);
        assert!(
            run.stderr.contains("invalid KEYVAULT_STORE"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: set KEYVAULT_STORE"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
    }
    v.set_env("KEYVAULT_STORE", "");
    v.write_config("[policy]\nwarn_within = \"7d\"\n\nstore = \"files\"\n");
    let run = v.run(&["list"]).expect(2);
    assert!(run.stderr.contains("invalid config"), "{}", run.stderr);
    v.write_config("store = \"postgresql://kv:hunter2@db/kv\"\n");
    let run = v.run(&["list"]).expect(2);
    assert!(run.stderr.contains("line 1: store:"), "{}", run.stderr);
    assert!(run.stderr.contains("password"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    // Named in config.toml (an empty KEYVAULT_STORE counts as unset).
    v.write_config("store = \"files\"\n");
    let listed = v.run(&["--json", "list"]).expect(0).json();
    assert_eq!(listed["keys"][0]["id"], "a-1");
}
