//! The crate's shape, checked: modules depend one way only, in the order the crate documentation
//! lists them (`src/lib.rs`), and no function in `src/` is longer than 60 lines.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FUNCTION_LINES: usize = 60;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file under `src/`: the top-level module it belongs to (`None` for the binary and the crate
/// root) and how deep its module sits (`src/x.rs` and `src/x/mod.rs`: 1; `src/x/y.rs`: 2).
struct SourceFile {
    path: PathBuf,
    module: Option<String>,
    depth: usize,
}

fn source_files() -> Vec<SourceFile> {
    let root = src();
    walkdir::WalkDir::new(&root)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            let rel = e.path().strip_prefix(&root).unwrap().to_owned();
            let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let first = parts[0].strip_suffix(".rs").unwrap_or(&parts[0]).to_owned();
            let module = (first != "lib" && first != "main").then_some(first);
            let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod.rs"));
            SourceFile { path: e.into_path(), module, depth }
        })
        .collect()
}

/// The modules in the order `src/lib.rs` documents them, bottom layer first.
fn documented_order() -> Vec<String> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines().filter_map(|l| l.strip_prefix("//! - [`")).map(|l| l.split('`').next().unwrap().to_owned()).collect()
}

/// The top-level modules a file at module depth `depth` names: through `crate::` (also in
/// `crate::{a, b::c}` groups) and through as many `super::` as lead back to the crate root.
fn uses(text: &str, depth: usize) -> Vec<String> {
    let mut used = Vec::new();
    let mut add = |name: String| {
        if !name.is_empty() && !used.contains(&name) {
            used.push(name);
        }
    };
    let ident = |rest: &str| -> String { rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect() };
    let starts = text.match_indices("crate::").map(|(i, m)| (i, i + m.len()));
    let supers = text.match_indices("super::").filter_map(|(i, _)| {
        if text[..i].ends_with("super::") {
            return None;
        }
        let (mut end, mut count) = (i, 0);
        while text[end..].starts_with("super::") {
            end += "super::".len();
            count += 1;
        }
        (count >= depth).then_some((i, end))
    });
    for (at, end) in starts.chain(supers) {
        if text[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[end..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group.split(',').map(|item| ident(item.trim())).for_each(&mut add);
            }
            None => add(ident(rest)),
        }
    }
    used
}

#[test]
fn every_module_is_documented_in_its_layer() {
    let order = documented_order();
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    // A re-export at the root would let `crate::Name` hide a dependency, and an inline module
    // at the root would escape these checks.
    assert!(!lib.lines().any(|l| l.starts_with("pub use") || l.starts_with("use ")), "src/lib.rs re-exports");
    let main = fs::read_to_string(src().join("main.rs")).unwrap();
    for line in lib.lines().chain(main.lines()) {
        let inline_module = line.split_whitespace().collect::<Vec<_>>();
        assert!(!matches!(inline_module[..], ["mod", _, "{"] | ["pub", "mod", _, "{"]), "inline module: {line}");
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, declared, "the `//! - [`module`]` list in src/lib.rs must name every module once");
}

#[test]
fn modules_depend_only_on_the_layers_below() {
    let order = documented_order();
    let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    let mut wrong = Vec::new();
    for SourceFile { path, module, depth } in source_files() {
        let Some(module) = module else { continue };
        let text = fs::read_to_string(&path).unwrap();
        let own = rank[module.as_str()];
        for used in uses(&text, depth) {
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
        let qualifiers = ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe ", "extern \"C\" "];
        let mut rest = trimmed;
        while let Some(stripped) = qualifiers.iter().find_map(|q| rest.strip_prefix(q)) {
            rest = stripped;
        }
        let Some(rest) = rest.strip_prefix("fn ") else { continue };
        if trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        let Some(end) = lines[i..].iter().position(|l| *l == close) else { continue };
        // A declaration without a body (a trait's method) spread over several lines.
        let signature_end = format!("{indent})");
        if lines[i..i + end].iter().any(|l| l.starts_with(&signature_end) && l.ends_with(';')) {
            continue;
        }
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
    for SourceFile { path, .. } in source_files() {
        let text = fs::read_to_string(&path).unwrap();
        for (line, name, length) in long_functions(&text) {
            long.push(format!("{}:{line}: `{name}` has {length} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "split these functions:\n{}", long.join("\n"));
}

#[test]
fn the_checks_themselves_see_what_they_look_for() {
    assert_eq!(uses("use crate::post::X;\nlet a = crate::text::slugify(b); notcrate::y", 1), ["post", "text"]);
    assert_eq!(uses("use crate::{engine, daemon::inbox::Message, served};", 1), ["engine", "daemon", "served"]);
    assert_eq!(uses("use super::daemon::X;", 1), ["daemon"], "super:: from a top-level file is the root");
    assert!(uses("use super::inbox::Message;", 2).is_empty(), "super:: from a submodule is its parent");
    assert_eq!(uses("use super::super::engine::Engine;", 2), ["engine"]);
    assert!(long_functions("    pub(super) const fn f() {\n    }\n").is_empty());
    let body: String = (0..70).map(|i| format!("    let x{i} = {i};\n")).collect();
    let qualified = format!("    pub(crate) async fn slow() {{\n{body}    }}\n");
    assert_eq!(long_functions(&qualified), [(1, "slow".to_owned(), 72)]);
    let long = format!("fn short() {{}}\n\npub fn big(a: u8) {{\n{body}}}\n");
    assert_eq!(long_functions(&long), [(3, "big".to_owned(), 72)]);
    assert!(long_functions("fn f() {\n    1\n}\n").is_empty());
}
