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

#[test]
fn a_password_anywhere_the_client_reads_one_in_a_postgres_url_is_refused_and_never_echoed() {
    // The client reads the userinfo up to the first `@` and decodes parameter names: each
    // of these carries the password `hunter2`, whatever a simpler reading would say.
    let port = crate::support::dead_port();
    let urls = [
        format!("postgres://kv:hunter2/x@127.0.0.1:{port}/kv"),
        format!("postgres://kv:hunter2?x@127.0.0.1:{port}/kv"),
        format!("postgresql://kv@127.0.0.1:{port}/kv?pass%77ord=hunter2"),
        format!("postgres://kv@127.0.0.1:{port}/kv?sslmode=disable&%50ASSWORD=hunter2"),
    ];
    for url in &urls {
        let from_env = Vault::new();
        from_env.set_env("KEYVAULT_STORE", url);
        let from_config = Vault::new();
        from_config.write_config(&format!("store = \"{url}\"\n"));
        for v in [&from_env, &from_config] {
            for run in [
                v.run(&["list"]),
                v.run_stdin(&["store", "login", "--stdin"], "pw-from-stdin"),
            ] {
                let run = run.expect(2);
                for stream in [&run.stdout, &run.stderr] {
                    assert!(!stream.contains("hunter2"), "{url}: {stream}");
                    assert!(!stream.contains("pw-from-stdin"), "{url}: {stream}");
                }
                assert!(run.stderr.contains("PGPASSWORD"), "{url}: {}", run.stderr);
            }
            assert!(!v.home.join("keys").exists(), "{url}");
        }
    }
}
