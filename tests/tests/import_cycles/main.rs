//! No import cycles: every target of every workspace crate (libraries,
//! binaries, integration tests) has an acyclic graph of imports between
//! its modules, cut at the second level (`graph.rs` says what counts).
//!
//! `cargo test -p dfs-tests --test import_cycles -- --nocapture` prints
//! each target's size; with `DFS_MODULE_GRAPH=1` every edge and where it
//! was seen. A cycle fails the test with the edges that make it.

mod graph;
mod lexer;

use std::path::{Path, PathBuf};

use graph::{cycles, explain, Disk, Graph};

/// Cycles known and accepted for now, per target root (relative to the
/// workspace): each the exact set of nodes of one cycle. A listed cycle
/// that is gone fails the test too, so this list only shrinks.
const ALLOWED: &[(&str, &[&str])] = &[];

/// The workspace's root directory; `DFS_CHECK_WORKSPACE` names another
/// (an older checkout, to see the cycles it had).
fn workspace() -> PathBuf {
    if let Some(dir) = std::env::var_os("DFS_CHECK_WORKSPACE") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate sits in the workspace").to_path_buf()
}

/// The members listed in the root `Cargo.toml` (`members = [...]`).
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace manifest");
    let list = manifest.split("members").nth(1).and_then(|rest| rest.split(']').next()).expect("a members list");
    list.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// Every target root of a member: its library, binaries, integration tests.
fn target_roots(member: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"].iter().map(|p| member.join(p)).filter(|p| p.exists()).collect();
    for dir in ["src/bin", "tests"] {
        let Ok(entries) = std::fs::read_dir(member.join(dir)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                roots.push(path);
            } else if path.join("main.rs").exists() {
                roots.push(path.join("main.rs"));
            }
        }
    }
    roots.sort();
    roots
}

fn print_edges(name: &str, g: &Graph) {
    for ((from, to), e) in &g.edges {
        println!("  {name}: {from} -> {to}   ({}:{}: {})", e.file.display(), e.line, e.path);
    }
}

#[test]
fn no_module_imports_itself_through_others() {
    let root = workspace();
    let verbose = std::env::var_os("DFS_MODULE_GRAPH").is_some();
    let mut failures = Vec::new();
    let mut allowed_seen = Vec::new();
    let mut targets = 0;
    for member in members(&root) {
        for target in target_roots(&root.join(&member)) {
            let name = target.strip_prefix(&root).unwrap_or(&target).display().to_string();
            let g = graph::build(&Disk, &target).unwrap_or_else(|e| panic!("{name}: {e}"));
            targets += 1;
            println!("{name}: {} modules, {} edges between {} nodes", g.modules.len(), g.edges.len(), nodes(&g));
            if verbose {
                print_edges(&name, &g);
            }
            for cycle in cycles(&g) {
                let listed = ALLOWED.iter().any(|(t, c)| *t == name && c.iter().copied().eq(cycle.iter().map(String::as_str)));
                if listed {
                    println!("{name}: allowed cycle {}", cycle.join(", "));
                    allowed_seen.push((name.clone(), cycle));
                    continue;
                }
                failures.push(format!("{name}: cycle between {}:\n    {}", cycle.join(", "), explain(&g, &cycle).join("\n    ")));
            }
            if name == "master/src/lib.rs" {
                // The chunk engine's modules are checked like the rest.
                assert!(g.modules.iter().any(|m| m.first().is_some_and(|s| s == "chunks") && m.len() > 1), "master's chunks modules not read");
            }
        }
    }
    for (target, cycle) in ALLOWED {
        if !allowed_seen.iter().any(|(t, c)| t == target && c.iter().map(String::as_str).eq(cycle.iter().copied())) {
            failures.push(format!("{target}: the allowed cycle {} is gone: remove it from ALLOWED", cycle.join(", ")));
        }
    }
    assert!(targets >= 10, "only {targets} targets found under {}", root.display());
    assert!(failures.is_empty(), "import cycles:\n{}", failures.join("\n"));
}

/// The number of distinct nodes with an edge.
fn nodes(g: &Graph) -> usize {
    g.edges.keys().flat_map(|(a, b)| [a, b]).collect::<std::collections::BTreeSet<_>>().len()
}
