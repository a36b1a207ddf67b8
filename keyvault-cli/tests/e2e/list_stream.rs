//! `list --json` writes its records one at a time as the store hands them out: the bytes
//! are exactly those of the whole document rendered at once, which `show --json` gives for
//! each record.

use crate::support::Vault;

/// `{"keys": [...]}` pretty-printed around the `show --json` text of each of `ids`.
fn whole_document(v: &Vault, ids: &[&str]) -> String {
    if ids.is_empty() {
        return "{\n  \"keys\": []\n}\n".to_owned();
    }
    let elements: Vec<String> = ids
        .iter()
        .map(|id| {
            let shown = v.run(&["--json", "show", id]).expect(0).stdout;
            shown.trim_end().replace('\n', "\n    ")
        })
        .collect();
    format!(
        "{{\n  \"keys\": [\n    {}\n  ]\n}}\n",
        elements.join(",\n    ")
    )
}

#[test]
fn list_json_streams_the_bytes_of_the_whole_document() {
    let v = Vault::new();
    assert_eq!(
        whole_document(&v, &[]),
        v.run(&["--json", "list"]).expect(0).stdout
    );
    for purpose in ["a", "b", "c"] {
        v.new_key(purpose, &[]);
    }
    v.run(&["revoke", "b-1"]).expect(0);
    v.new_key("b", &[]);
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--json", "list"], &["a-1", "c-1", "b-2"]),
        (&["--json", "list", "--all"], &["a-1", "b-1", "c-1", "b-2"]),
        (
            &["--json", "list", "--all", "--purpose", "b"],
            &["b-1", "b-2"],
        ),
        (&["--json", "list", "--purpose", "x"], &[]),
    ];
    for (args, ids) in cases {
        let listed = v.run(args).expect(0).no_secrets();
        assert_eq!(listed.stdout, whole_document(&v, ids), "{args:?}");
        let parsed = listed.json();
        let got: Vec<&str> = parsed["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["id"].as_str().expect("id"))
            .collect();
        assert_eq!(got, ids, "{args:?}");
    }
    // The table lists the same records, revoked ones only with --all.
    let table = v.run(&["list"]).expect(0).stdout;
    assert!(table.contains("a-1") && table.contains("b-2") && !table.contains("b-1"));
    assert!(v.run(&["list", "--all"]).expect(0).stdout.contains("b-1"));
}
