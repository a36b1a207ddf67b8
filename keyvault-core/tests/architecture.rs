//! The layers ARCHITECTURE.md draws, checked against the imports: every `crate::` path in
//! `keyvault-core/src` (outside tests and comments) points to a module of the same layer or
//! a lower one, and every module has a layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module name → layer number, from the table in ARCHITECTURE.md.
fn layers() -> BTreeMap<String, u32> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    let text = std::fs::read_to_string(&doc).expect("read ARCHITECTURE.md");
    let mut layers = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | 4 operations | `vault`, `keys`, ... |
        let [_, layer, modules, _] = cells[..] else {
            continue;
        };
        let Some(n) = layer
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        for module in modules.split(',') {
            let name = module.trim().trim_matches('`').to_owned();
            assert!(
                layers.insert(name.clone(), n).is_none(),
                "{name} is in two layers"
            );
        }
    }
    assert!(layers.len() > 10, "no layer table found in {doc:?}");
    layers
}

/// Every `.rs` file under `dir` with its module: `name` for `name.rs` and everything under
/// `name/`, or `name/sub` where the table places that submodule on its own.
fn sources(dir: &Path, top: Option<&str>, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        let module = top.map_or(name.clone(), |t| format!("{t}/{name}"));
        if path.is_dir() {
            sources(&path, Some(&module), out);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests" {
            out.push((module, path));
        }
    }
}

/// The module a file belongs to in the table: its own path if listed, else its top level.
fn placed(module: &str, layers: &BTreeMap<String, u32>) -> String {
    if layers.contains_key(module) {
        module.to_owned()
    } else {
        module.split('/').next().unwrap_or(module).to_owned()
    }
}

/// The items (`struct`, `enum`, `trait`, `fn`, `type`, `const`) a file defines.
fn defined(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().skip_while(|w| w.starts_with("pub"));
        if let (Some("struct" | "enum" | "trait" | "fn" | "type" | "const"), Some(name)) =
            (words.next(), words.next())
        {
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            items.push(name);
        }
    }
    items
}

/// The code of a file without its `#[cfg(test)]` module and without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Items lib.rs re-exports at the crate root (`crate::Vault`), with their module.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    let flat = lib.replace('\n', " ");
    for stmt in flat.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, list)) = rest.split_once("::") else {
            continue;
        };
        for item in list
            .trim_matches(|c| c == '{' || c == '}' || c == ' ')
            .split(',')
        {
            let item = item.split(" as ").last().unwrap_or(item).trim();
            if !item.is_empty() {
                items.insert(item.to_owned(), module.trim().to_owned());
            }
        }
    }
    items
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let layers = layers();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let items = reexports(&lib);
    let mut files = Vec::new();
    sources(&src, None, &mut files);
    let files: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|(m, p)| (placed(&m, &layers), p))
        .collect();
    // Items of submodules the table places apart (`target/spec`): `crate::target::TargetSpec`
    // points at the submodule that defines it.
    let mut sub_items: BTreeMap<(String, String), String> = BTreeMap::new();
    for (module, path) in files.iter().filter(|(m, _)| m.contains('/')) {
        let top = module.split('/').next().unwrap_or(module).to_owned();
        for item in defined(&std::fs::read_to_string(path).expect("read")) {
            sub_items.insert((top.clone(), item), module.clone());
        }
    }
    let mut unplaced = Vec::new();
    let mut upward = Vec::new();
    for (module, path) in &files {
        if module == "lib" {
            continue;
        }
        let Some(&own) = layers.get(module) else {
            unplaced.push(module.clone());
            continue;
        };
        let text = code(&std::fs::read_to_string(path).expect("read"));
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let top = items.get(&name).cloned().unwrap_or(name);
            // The path's other names, up to the end of the statement or expression.
            let tail: String = rest[top.len().min(rest.len())..]
                .chars()
                .take_while(|c| !matches!(c, ';' | '(' | '\n'))
                .collect();
            let named: Vec<String> = tail
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter_map(|w| sub_items.get(&(top.clone(), w.to_owned())).cloned())
                .collect();
            let targets = if named.is_empty() { vec![top] } else { named };
            for target in targets {
                if let Some(&theirs) = layers.get(&target)
                    && theirs > own
                    && !target.starts_with(&format!("{module}/"))
                {
                    upward.push(format!(
                        "{} ({module}, layer {own}) uses {target} (layer {theirs})",
                        path.strip_prefix(&src).unwrap_or(path).display()
                    ));
                }
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in ARCHITECTURE.md: {unplaced:?}"
    );
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports that point up:\n{}",
        upward.join("\n")
    );
    for module in layers.keys() {
        assert!(
            files.iter().any(|(m, _)| m == module),
            "ARCHITECTURE.md names {module}, which is not a module of keyvault-core"
        );
    }
}
