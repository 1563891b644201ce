//! The crate's shape, checked: modules depend one way only, in the order the crate documentation
//! lists them (`src/lib.rs`), and no function in `src/` is longer than 60 lines.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FUNCTION_LINES: usize = 60;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, with the top-level module it belongs to (`None` for the binary
/// and the crate root).
fn source_files() -> Vec<(PathBuf, Option<String>)> {
    let root = src();
    walkdir::WalkDir::new(&root)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            let rel = e.path().strip_prefix(&root).unwrap().to_owned();
            let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            let module = match first.strip_suffix(".rs") {
                Some("lib" | "main") => None,
                Some(name) => Some(name.to_owned()),
                None => Some(first),
            };
            (e.into_path(), module)
        })
        .collect()
}

/// The modules in the order `src/lib.rs` documents them, bottom layer first.
fn documented_order() -> Vec<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines().filter_map(|l| l.strip_prefix("//! - [`")).map(|l| l.split('`').next().unwrap().to_owned()).collect()
}

/// The top-level modules a file names through `crate::`.
fn uses(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        if !name.is_empty() && !used.contains(&name) {
            used.push(name);
        }
    }
    used
}

#[test]
fn every_module_is_documented_in_its_layer() {
    let order = documented_order();
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, declared, "the `//! - [`module`]` list in src/lib.rs must name every module once");
}

#[test]
fn modules_depend_only_on_the_layers_below() {
    let order = documented_order();
    let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut wrong = Vec::new();
    for (path, module) in source_files() {
        let Some(module) = module else { continue };
        let text = fs::read_to_string(&path).unwrap();
        let own = rank[module.as_str()];
        for used in uses(&text) {
            let Some(&other) = rank.get(used.as_str()) else { continue };
            if used != module && other >= own {
                wrong.push(format!("{}: `{module}` uses `{used}`, which is not below it", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows must point down the list in src/lib.rs:\n{}", wrong.join("\n"));
}

/// Function lengths, from the `fn` line to the closing brace at the same indentation
/// (rustfmt's layout; `cargo fmt --check` runs in CI).
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = ["pub fn ", "pub(crate) fn ", "fn ", "pub async fn ", "async fn "];
        let Some(rest) = signature.iter().find_map(|s| trimmed.strip_prefix(s)) else { continue };
        if trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        let Some(end) = lines[i..].iter().position(|l| *l == close) else { continue };
        if end + 1 > MAX_FUNCTION_LINES {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            long.push((i + 1, name, end + 1));
        }
    }
    long
}

#[test]
fn no_function_is_longer_than_60_lines() {
    let mut long = Vec::new();
    for (path, _) in source_files() {
        let text = fs::read_to_string(&path).unwrap();
        for (line, name, length) in long_functions(&text) {
            long.push(format!("{}:{line}: `{name}` has {length} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "split these functions:\n{}", long.join("\n"));
}

#[test]
fn the_checks_themselves_see_what_they_look_for() {
    assert_eq!(uses("use crate::post::X;\nlet a = crate::text::slugify(b); notcrate::y"), ["post", "text"]);
    let body: String = (0..70).map(|i| format!("    let x{i} = {i};\n")).collect();
    let long = format!("fn short() {{}}\n\npub fn big(a: u8) {{\n{body}}}\n");
    assert_eq!(long_functions(&long), [(3, "big".to_owned(), 72)]);
    assert!(long_functions("fn f() {\n    1\n}\n").is_empty());
}
