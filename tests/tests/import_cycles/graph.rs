//! The import graph of one crate target, between its modules cut at the
//! second level (`api`, `api::data`; `api::dashboard::pages` counts as
//! `api::dashboard`; the crate root is `crate`).
//!
//! The module tree is found the way rustc finds it (`mod x;` in `a/b.rs`
//! is `a/b/x.rs` or `a/b/x/mod.rs`; inline `mod x { .. }` too). An edge
//! `A -> B` is a path written in A that names an item of B: in a `use`
//! (braces expanded, globs included) or in code (`crate::..`, `super::..`,
//! `self::..`, or a child module's or an imported module's name followed
//! by `::`). Items in a `mod.rs` belong to that module.
//!
//! A module using its ancestors' items is no edge: it is part of them
//! (rustc lets it see their private items for that reason), and a module
//! split over files (`chunk_store/mod.rs` with `read.rs`, `write.rs`)
//! does that both ways by design. An ancestor using a descendant is an
//! edge, so a cycle through outsiders is still caught: `api/mod.rs` routes
//! to `api::dashboard`, which uses `metrics`, which uses `api`'s state.
//!
//! A `#[cfg(test)]` module deeper than the second level is a node of its
//! own (`store::db::tests`): test code is no part of the module it tests,
//! nothing imports it, and its imports put no cycle in the product.
//!
//! Not seen: methods called on a value whose type is defined elsewhere
//! (no type inference here), and macros' bodies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::lexer::{lex, Tok, Token};

/// A module's path from the crate root (empty: the root).
pub type ModPath = Vec<String>;

/// Where an edge was seen first.
#[derive(Clone, Debug)]
pub struct Evidence {
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
}

/// One target's graph.
#[derive(Debug, Default)]
pub struct Graph {
    pub modules: BTreeSet<ModPath>,
    /// The modules under `#[cfg(test)]`.
    pub test_modules: BTreeSet<ModPath>,
    /// (from, to) nodes, with the first place seen.
    pub edges: BTreeMap<(String, String), Evidence>,
}

impl Graph {
    /// The node a module counts as: its first two segments, or the test
    /// module it is in when that is deeper.
    pub fn node(&self, m: &[String]) -> String {
        if let Some(n) = (3..=m.len()).find(|n| self.test_modules.contains(&m[..*n])) {
            return m[..n].join("::");
        }
        match m.len() {
            0 => "crate".to_string(),
            n => m[..n.min(2)].join("::"),
        }
    }
}

/// Reads source files (the disk, or a map in tests).
pub trait Sources {
    fn read(&self, path: &Path) -> Option<String>;
}

/// The files of the working tree.
pub struct Disk;

impl Sources for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

impl Sources for HashMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Option<String> {
        self.get(path).cloned()
    }
}

/// A lexed file and the module it is.
struct File {
    path: PathBuf,
    module: ModPath,
    tokens: Vec<Token>,
}

/// The graph of the target whose root file is `root` (`src/lib.rs`,
/// `src/main.rs`, `tests/x/main.rs`...).
pub fn build(sources: &dyn Sources, root: &Path) -> Result<Graph, String> {
    let files = discover(sources, root)?;
    let mut graph = Graph::default();
    for f in &files {
        walk(&f.tokens, &f.module, &mut |event| {
            if let Event::Mod { module, test, .. } = event {
                if test {
                    graph.test_modules.insert(module.clone());
                }
                graph.modules.insert(module);
            }
        });
    }
    graph.modules.insert(Vec::new());
    for f in &files {
        edges_of(f, &mut graph);
    }
    Ok(graph)
}

/// Every file of the module tree under `root`, lexed.
fn discover(sources: &dyn Sources, root: &Path) -> Result<Vec<File>, String> {
    let text = sources.read(root).ok_or_else(|| format!("cannot read {}", root.display()))?;
    let mut todo = vec![File { path: root.to_path_buf(), module: Vec::new(), tokens: lex(&text) }];
    let mut done = Vec::new();
    while let Some(f) = todo.pop() {
        let mut children = Vec::new();
        walk(&f.tokens, &f.module, &mut |event| {
            if let Event::Mod { module, inline: false, line, .. } = event {
                children.push((module, line));
            }
        });
        for (module, line) in children {
            let (path, text) = child_file(sources, &f.path, &f.module, &module)
                .ok_or_else(|| format!("{}:{line}: no file for module {}", f.path.display(), module.join("::")))?;
            todo.push(File { path, module, tokens: lex(&text) });
        }
        done.push(f);
    }
    Ok(done)
}

/// The file of `child`, declared by `mod name;` in `parent_file` (module
/// `parent`; the declaration may sit in inline modules of that file).
fn child_file(sources: &dyn Sources, parent_file: &Path, parent: &[String], child: &[String]) -> Option<(PathBuf, String)> {
    let dir = parent_file.parent()?;
    let stem = parent_file.file_stem()?.to_str()?;
    let owns_dir = parent_file == dir.join("mod.rs") || parent.is_empty();
    let mut base = if owns_dir || stem == "mod" { dir.to_path_buf() } else { dir.join(stem) };
    // Inline modules between the file's module and the child are directories.
    for inner in &child[parent.len()..child.len() - 1] {
        base = base.join(inner);
    }
    let name = child.last()?;
    [base.join(format!("{name}.rs")), base.join(name).join("mod.rs")].into_iter().find_map(|p| sources.read(&p).map(|t| (p, t)))
}

/// What a walk over a file's tokens meets.
enum Event<'a> {
    /// `mod x;` (inline: false) or `mod x { .. }`; `test`: under `#[cfg(test)]`.
    Mod { module: ModPath, inline: bool, test: bool, line: usize },
    /// A path written in `scope`: `use` trees expanded (`glob`: it ended in `*`).
    Path { scope: &'a [String], segments: Vec<String>, glob: bool, alias: Option<String>, is_use: bool, line: usize },
}

/// Walks `tokens` of the file that is module `module`, keeping track of
/// inline modules, and reports module declarations and paths.
fn walk(tokens: &[Token], module: &[String], on: &mut dyn FnMut(Event)) {
    let ident = |k: usize| match tokens.get(k).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let is = |k: usize, t: Tok| tokens.get(k).map(|x| &x.tok) == Some(&t);
    // The inline modules open, with the brace depth they close at.
    let mut scopes: Vec<(ModPath, usize)> = vec![(module.to_vec(), 0)];
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let scope = scopes.last().map(|s| s.0.clone()).unwrap_or_default();
        let line = tokens[i].line;
        match &tokens[i].tok {
            Tok::LBrace => depth += 1,
            Tok::RBrace => {
                depth -= 1;
                if scopes.len() > 1 && scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
            }
            Tok::Ident(kw) if kw == "mod" && !is(i.wrapping_sub(1), Tok::PathSep) => {
                if let Some(name) = ident(i + 1) {
                    let child: ModPath = scope.iter().cloned().chain([name.to_string()]).collect();
                    let test = under_cfg_test(tokens, i);
                    if is(i + 2, Tok::Semi) {
                        on(Event::Mod { module: child, inline: false, test, line });
                    } else if is(i + 2, Tok::LBrace) {
                        on(Event::Mod { module: child.clone(), inline: true, test, line });
                        scopes.push((child, depth));
                        depth += 1;
                        i += 3;
                        continue;
                    }
                }
            }
            Tok::Ident(kw) if kw == "use" => {
                let mut trees = Vec::new();
                i = use_tree(tokens, i + 1, Vec::new(), &mut trees);
                for (segments, glob, alias) in trees {
                    on(Event::Path { scope: &scope, segments, glob, alias, is_use: true, line });
                }
                continue;
            }
            Tok::Ident(first) if !is(i.wrapping_sub(1), Tok::PathSep) && is(i + 1, Tok::PathSep) => {
                let mut segments = vec![first.clone()];
                let mut k = i + 1;
                while is(k, Tok::PathSep) {
                    match ident(k + 1) {
                        Some(s) => segments.push(s.to_string()),
                        None => break,
                    }
                    k += 2;
                }
                on(Event::Path { scope: &scope, segments, glob: false, alias: None, is_use: false, line });
                i = k;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// Whether the item whose keyword is at `i` (`mod`) carries
/// `#[cfg(test)]`, looking back over its visibility and other attributes.
fn under_cfg_test(tokens: &[Token], i: usize) -> bool {
    let tok = |k: usize| &tokens[k].tok;
    let mut k = i;
    // Its visibility: `pub`, `pub(crate)`, `pub(in a::b)`.
    if k > 0 && tok(k - 1) == &Tok::Other(')') {
        match (0..k - 1).rev().find(|j| tok(*j) == &Tok::Other('(')) {
            Some(open) if open > 0 => k = open,
            _ => return false,
        }
    }
    if k > 0 && matches!(tok(k - 1), Tok::Ident(s) if s == "pub") {
        k -= 1;
    }
    // Attributes, last first: `# [ ... ]`.
    while k > 0 && tok(k - 1) == &Tok::Other(']') {
        let close = k - 1;
        let Some(open) = (0..close).rev().find(|j| tok(*j) == &Tok::Other('[') && *j > 0 && tok(*j - 1) == &Tok::Other('#')) else { return false };
        let inner: Vec<&Tok> = (open + 1..close).map(tok).collect();
        let cfg_test = [Tok::Ident("cfg".into()), Tok::Other('('), Tok::Ident("test".into()), Tok::Other(')')];
        if inner.len() == cfg_test.len() && inner.iter().zip(&cfg_test).all(|(a, b)| *a == b) {
            return true;
        }
        k = open - 1;
    }
    false
}

/// Parses a use tree at `i` (after `use` or inside braces) under `prefix`;
/// returns the index after it.
fn use_tree(tokens: &[Token], mut i: usize, prefix: Vec<String>, out: &mut Vec<(Vec<String>, bool, Option<String>)>) -> usize {
    let mut segments = prefix;
    loop {
        match tokens.get(i).map(|t| &t.tok) {
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Ident(s)) => {
                segments.push(s.clone());
                i += 1;
                match tokens.get(i).map(|t| &t.tok) {
                    Some(Tok::PathSep) => i += 1,
                    Some(Tok::Ident(kw)) if kw == "as" => {
                        let alias = match tokens.get(i + 1).map(|t| &t.tok) {
                            Some(Tok::Ident(a)) => Some(a.clone()),
                            _ => None,
                        };
                        out.push((segments, false, alias));
                        return i + 2;
                    }
                    _ => {
                        out.push((segments, false, None));
                        return i;
                    }
                }
            }
            Some(Tok::LBrace) => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| &t.tok) {
                        None => return i,
                        Some(Tok::RBrace) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        Some(_) => {
                            let before = i;
                            i = use_tree(tokens, i, segments.clone(), out);
                            if i == before {
                                i += 1; // not a tree: step over it
                            }
                        }
                    }
                }
            }
            Some(Tok::Star) => {
                out.push((segments, true, None));
                return i + 1;
            }
            _ => return i,
        }
    }
}

/// The module a path written in `scope` lands in, and whether every
/// segment was a module (the path names a module itself).
fn resolve(graph: &Graph, scope: &[String], aliases: &HashMap<String, ModPath>, segments: &[String]) -> Option<(ModPath, bool)> {
    let first = segments.first()?;
    let (mut base, rest): (ModPath, &[String]) = match first.as_str() {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (scope.to_vec(), &segments[1..]),
        "super" => {
            let mut base = scope.to_vec();
            let supers = segments.iter().take_while(|s| *s == "super").count();
            for _ in 0..supers {
                base.pop()?;
            }
            (base, &segments[supers..])
        }
        name => {
            let child: ModPath = scope.iter().cloned().chain([name.to_string()]).collect();
            if graph.modules.contains(&child) {
                (scope.to_vec(), segments)
            } else {
                (aliases.get(name)?.clone(), &segments[1..])
            }
        }
    };
    let mut whole = true;
    for seg in rest {
        if seg == "self" {
            continue;
        }
        let next: ModPath = base.iter().cloned().chain([seg.clone()]).collect();
        if !graph.modules.contains(&next) {
            whole = false;
            break;
        }
        base = next;
    }
    Some((base, whole))
}

/// Adds the edges of one file's paths.
fn edges_of(f: &File, graph: &mut Graph) {
    let mut aliases: HashMap<ModPath, HashMap<String, ModPath>> = HashMap::new();
    let mut found = Vec::new();
    walk(&f.tokens, &f.module, &mut |event| {
        let Event::Path { scope, segments, glob, alias, is_use, line } = event else { return };
        let scope_aliases = aliases.entry(scope.to_vec()).or_default();
        let Some((target, whole)) = resolve(graph, scope, scope_aliases, &segments) else { return };
        if is_use && whole && !glob {
            let name = alias.or_else(|| segments.iter().rev().find(|s| *s != "self").cloned());
            if let Some(name) = name {
                scope_aliases.insert(name, target.clone());
            }
        }
        if target.len() < scope.len() && scope.starts_with(&target) {
            return; // an ancestor: part of it
        }
        found.push((
            graph.node(scope),
            graph.node(&target),
            Evidence { file: f.path.clone(), line, path: segments.join("::") + if glob { "::*" } else { "" } },
        ));
    });
    for (from, to, evidence) in found {
        if from != to {
            graph.edges.entry((from, to)).or_insert(evidence);
        }
    }
}

/// The strongly connected components of more than one node: each is a
/// set of nodes that import each other, directly or not (Tarjan).
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.edges.keys() {
        next.entry(from.as_str()).or_default().push(to.as_str());
        next.entry(to.as_str()).or_default();
    }
    struct State<'a> {
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, st: &mut State<'a>) {
        let n = st.index.len();
        st.index.insert(v, n);
        st.low.insert(v, n);
        st.stack.push(v);
        st.on_stack.insert(v);
        for &w in next.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if !st.index.contains_key(w) {
                visit(w, next, st);
                let low = st.low[v].min(st.low[w]);
                st.low.insert(v, low);
            } else if st.on_stack.contains(w) {
                let low = st.low[v].min(st.index[w]);
                st.low.insert(v, low);
            }
        }
        if st.low[v] == st.index[v] {
            let mut component = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                st.found.push(component);
            }
        }
    }
    let mut st = State { index: HashMap::new(), low: HashMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), found: Vec::new() };
    for v in next.keys() {
        if !st.index.contains_key(v) {
            visit(v, &next, &mut st);
        }
    }
    st.found.sort();
    st.found
}

/// One cycle through the component's first node, as the edges that make
/// it, each with where it was seen: what a reader needs to break it.
pub fn explain(graph: &Graph, component: &[String]) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let start = component[0].as_str();
    // Breadth first from the start back to it, inside the component.
    let mut came_from: HashMap<&str, &str> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut last = None;
    'search: while let Some(v) = queue.pop_front() {
        for (from, to) in graph.edges.keys().filter(|(f, t)| f == v && inside.contains(t.as_str())) {
            if to == start {
                last = Some(from.as_str());
                break 'search;
            }
            if !came_from.contains_key(to.as_str()) {
                came_from.insert(to, from);
                queue.push_back(to);
            }
        }
    }
    let mut path = vec![start];
    let mut v = match last {
        Some(v) => v,
        None => return vec![],
    };
    while v != start {
        path.push(v);
        v = came_from[v];
    }
    path.push(start);
    path.reverse();
    path.windows(2)
        .map(|w| {
            let e = &graph.edges[&(w[0].to_string(), w[1].to_string())];
            format!("{} -> {}   ({}:{}: {})", w[0], w[1], e.file.display(), e.line, e.path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target from `(path, text)` pairs under `/c/src`.
    fn graph_of(files: &[(&str, &str)]) -> Graph {
        let sources: HashMap<PathBuf, String> = files.iter().map(|(p, t)| (Path::new("/c/src").join(p), t.to_string())).collect();
        build(&sources, Path::new("/c/src/lib.rs")).unwrap()
    }

    fn edges(g: &Graph) -> Vec<String> {
        g.edges.keys().map(|(a, b)| format!("{a}>{b}")).collect()
    }

    #[test]
    fn a_deliberate_cycle_between_two_modules_is_found_and_explained() {
        let g = graph_of(&[
            ("lib.rs", "pub mod node;\npub mod api;\n"),
            ("node.rs", "pub struct Node;\npub fn run() { crate::api::data::serve(); }\n"),
            ("api/mod.rs", "pub mod data;\n"),
            ("api/data.rs", "use crate::node::Node;\npub fn serve() {}\n"),
        ]);
        assert_eq!(cycles(&g), vec![vec!["api::data".to_string(), "node".to_string()]]);
        let why = explain(&g, &cycles(&g)[0]);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].starts_with("api::data -> node") && why[0].contains("/c/src/api/data.rs:1: crate::node::Node"), "{why:?}");
        assert!(why[1].starts_with("node -> api::data") && why[1].contains("node.rs:2"), "{why:?}");
    }

    #[test]
    fn a_child_using_its_parent_is_part_of_it_but_a_way_back_through_an_outsider_is_a_cycle() {
        let mut files = vec![
            ("lib.rs", "mod api; mod metrics;"),
            ("api/mod.rs", "mod dashboard;\nmod state;\npub struct AppState;\nfn router() { get(dashboard::page) }\n"),
            ("api/dashboard/mod.rs", "mod pages;\nuse super::state::Shared;\nuse crate::api::AppState;\n"),
            ("api/dashboard/pages.rs", "use crate::api::AppState;\nuse super::super::state::Shared;\n"),
            ("api/state.rs", "pub struct Shared;"),
            ("metrics.rs", "pub fn figures() {}"),
        ];
        let g = graph_of(&files);
        assert!(cycles(&g).is_empty(), "{:?}", edges(&g));
        assert_eq!(edges(&g), vec!["api>api::dashboard".to_string(), "api::dashboard>api::state".to_string()]);
        // The dashboard calls the metrics, and they use the API's state: a cycle.
        files[2].1 = "use crate::metrics::figures;";
        files[5].1 = "use crate::api::AppState;";
        let g = graph_of(&files);
        assert_eq!(cycles(&g), vec![vec!["api".to_string(), "api::dashboard".to_string(), "metrics".to_string()]]);
    }

    #[test]
    fn a_cycle_through_three_nodes_and_deeper_modules_is_one_component() {
        let g = graph_of(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "mod deep { mod deeper { use crate::b::x; } }"),
            ("b.rs", "pub fn x() { super::c::y() }"),
            ("c.rs", "use crate::{a::{self}, b as other};\nfn y() { a::deep::z(); }"),
        ]);
        // The inline module two levels down counts as `a::deep`; `c` uses `a` too, outside the cycle.
        assert_eq!(cycles(&g), vec![vec!["a::deep".to_string(), "b".to_string(), "c".to_string()]]);
        assert!(edges(&g).contains(&"c>a".to_string()), "{:?}", edges(&g));
    }

    #[test]
    fn tests_globs_strings_and_externs_add_no_false_edges() {
        let g = graph_of(&[
            ("lib.rs", "pub mod a; pub mod b;"),
            ("a.rs", "use crate::b::Thing;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn f() { let s = \"crate::b::x\"; }\n}\n"),
            ("b.rs", "use dfs_common::a::Thing;\nuse std::collections::*;\n// crate::a::x\npub struct Thing;\n"),
        ]);
        assert!(cycles(&g).is_empty(), "{:?}", edges(&g));
        assert_eq!(edges(&g), vec!["a>b".to_string()]);
    }

    #[test]
    fn imports_of_test_modules_put_no_cycle_in_the_product() {
        let files = |attr: &str| {
            let a = format!("pub mod inner {{\n    pub fn x() {{}}\n    {attr}\n    pub(crate) mod checks {{\n        use crate::b::y;\n    }}\n}}\n");
            graph_of(&[("lib.rs", "mod a; mod b;"), ("a.rs", &a), ("b.rs", "pub fn y() { crate::a::inner::x() }")])
        };
        let g = files("#[cfg(test)]\n#[allow(dead_code)]");
        assert!(cycles(&g).is_empty(), "{:?}", edges(&g));
        assert!(edges(&g).contains(&"a::inner::checks>b".to_string()), "{:?}", edges(&g));
        // The same module in the product is part of `a::inner`: a cycle.
        assert_eq!(cycles(&files("#[allow(dead_code)]")), vec![vec!["a::inner".to_string(), "b".to_string()]]);
    }

    #[test]
    fn an_imported_module_name_is_followed() {
        let g = graph_of(&[("lib.rs", "mod a; mod b;"), ("a.rs", "use crate::b;\nfn f() { b::g() }"), ("b.rs", "pub fn g() { crate::a::h() }")]);
        assert_eq!(cycles(&g).len(), 1);
    }

    #[test]
    fn a_missing_module_file_is_an_error_not_a_silent_gap() {
        let sources: HashMap<PathBuf, String> = [(PathBuf::from("/c/src/lib.rs"), "mod gone;".to_string())].into();
        let e = build(&sources, Path::new("/c/src/lib.rs")).unwrap_err();
        assert!(e.contains("gone"), "{e}");
    }
}
