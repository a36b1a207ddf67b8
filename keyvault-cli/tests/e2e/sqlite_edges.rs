//! The SQLite store's edges: links planted where SQLite keeps its files beside `vault.db`.

use crate::support::{Vault, snapshot, three_events};

/// Commands that read or write the records.
const COMMANDS: [&[&str]; 4] = [
    &["list"],
    &["new", "--purpose", "z", "--passphrase-env", "KV_PASS"],
    &["status", "--offline"],
    &["log", "--verify"],
];

#[test]
fn a_link_where_sqlite_keeps_its_log_or_index_is_named_and_nothing_changes() {
    let v = Vault::new();
    three_events(&v);
    let listed = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    for (name, what) in [
        ("vault.db-wal", "write-ahead log"),
        ("vault.db-shm", "shared-memory index"),
        ("vault.db-journal", "rollback journal"),
    ] {
        let planted = v.home.join(name);
        assert!(!planted.exists(), "{name} is gone once keyvault exits");
        // A link to a file of someone else's, and one to nowhere.
        let target = v.root.join(format!("{name}.target"));
        std::fs::write(&target, "not keyvault's").expect("target");
        for to_nowhere in [false, true] {
            if to_nowhere {
                std::fs::remove_file(&target).expect("rm target");
            }
            std::os::unix::fs::symlink(&target, &planted).expect("plant");
            let before = snapshot(&v.home);
            for args in COMMANDS {
                let run = v.run(args).expect(1).no_secrets();
                let said = format!(
                    "error: {} is a symlink or not a regular file where SQLite keeps the database's {what}",
                    planted.display()
                );
                assert!(run.stderr.starts_with(&said), "{args:?}: {}", run.stderr);
                assert!(run.stderr.contains("hint: "), "{}", run.stderr);
                assert_eq!(snapshot(&v.home), before, "{name} {args:?}");
            }
            if to_nowhere {
                assert!(!target.exists(), "{name}: nothing made through the link");
            } else {
                assert_eq!(
                    std::fs::read_to_string(&target).expect("target"),
                    "not keyvault's"
                );
            }
            std::fs::remove_file(&planted).expect("unplant");
        }
    }
    // A directory there is refused alike; once it is gone, the vault is as it was.
    std::fs::create_dir(v.home.join("vault.db-wal")).expect("mkdir");
    let run = v.run(&["list"]).expect(1);
    assert!(run.stderr.contains("vault.db-wal"), "{}", run.stderr);
    std::fs::remove_dir(v.home.join("vault.db-wal")).expect("rmdir");
    assert_eq!(v.run(&["--json", "list", "--all"]).expect(0).stdout, listed);
    v.run(&["log", "--verify"]).expect(0);
}
