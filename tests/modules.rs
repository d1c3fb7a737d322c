//! No import cycles between the top-level modules of any crate in the
//! workspace (issue 16): shared types sit in leaf modules, so no two
//! modules need each other, and each can be read, tested and changed from
//! the bottom up.
//!
//! The rule, per crate (every workspace member's `src/lib.rs`,
//! `src/main.rs` and `src/bin/*.rs`, found from the root `Cargo.toml`):
//!
//! - The nodes are the crate's **top-level modules**: the `mod`s its root
//!   file declares. A module's submodules (files below it, inline `mod`
//!   blocks, its `tests`) belong to it, so a child naming its parent
//!   (`agent/probe.rs` using `super::Agent`) or the parent naming a child
//!   is an edge inside one node, never a cycle.
//! - An edge A -> B is a path in A's source that resolves to B: `crate::B`,
//!   `super::` or `self::` climbing out of A into B (`super::super::B`
//!   from `a/c.rs`), or a `crate::{B, ..}` group, anywhere (use lines,
//!   expressions, types, macro arguments). Doc comments and strings do not
//!   count: an intra-doc link is not an import.
//! - `crate::Name` of an item the root file imports (`pub use b::Name`)
//!   is an edge to the module it comes from (B); an item the root defines
//!   itself, or brings in by a glob, is no module's, and makes no edge.
//! - The root file itself is not a node: it declares every module and
//!   re-exports from them, so every module "uses" it only through those.
//!
//! The scan works on tokens (`proc-macro2`'s lexer: comments, strings and
//! raw strings are skipped correctly) and follows `mod` declarations from
//! each root, as rustc does (`#[path]` is not supported: a module file it
//! cannot find fails the test, naming it). Sibling submodules inside one
//! top-level module are not checked against each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// A module graph: each module's outgoing edges, with where the first
/// reference behind each was seen (`file:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// A path in the source that reaches above the module it is written in.
struct Reference {
    /// The top-level module it is written in; `None` in the root file.
    from: Option<String>,
    /// The first segment below the crate root it resolves to: a top-level
    /// module, or an item of the root file.
    to: String,
    /// `file:line`.
    at: String,
}

/// What one crate's files hold, before names are resolved.
#[derive(Default)]
struct Scan {
    /// Top-level modules.
    modules: BTreeSet<String>,
    /// Names the root file imports, by the top-level module each comes
    /// from.
    root_imports: BTreeMap<String, String>,
    references: Vec<Reference>,
    /// What file names in `Reference::at` are relative to.
    workspace: PathBuf,
}

impl Scan {
    /// Reads the crate whose root file is `root`, following its `mod`
    /// declarations.
    fn of(root: &Path, workspace: &Path) -> Scan {
        let mut scan = Scan {
            workspace: workspace.to_path_buf(),
            ..Scan::default()
        };
        let dir = root.parent().expect("a root file sits in src/");
        scan.file(root, &[], dir);
        scan
    }

    /// The module at `path` (`[]`: the root), written in `file`, whose
    /// child module files sit in `children`.
    fn file(&mut self, file: &Path, path: &[String], children: &Path) {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        let tokens = TokenStream::from_str(&text)
            .unwrap_or_else(|error| panic!("cannot lex {}: {error:?}", file.display()));
        self.tokens(tokens, file, path, children);
    }

    fn tokens(&mut self, tokens: TokenStream, file: &Path, path: &[String], children: &Path) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut at = 0;
        while at < tokens.len() {
            match &tokens[at] {
                TokenTree::Ident(ident) if ident == "mod" => {
                    if let Some(TokenTree::Ident(name)) = tokens.get(at + 1) {
                        self.module(tokens.get(at + 2), name.to_string(), file, path, children);
                        // The name and the body or `;` are the declaration's.
                        at += 2;
                    }
                }
                TokenTree::Ident(ident) if ident == "use" && path.is_empty() => {
                    let end = tokens[at..]
                        .iter()
                        .position(|token| is_punct(token, ';'))
                        .map_or(tokens.len(), |end| at + end);
                    self.root_use(&tokens[at + 1..end]);
                }
                TokenTree::Ident(ident)
                    if ["crate", "super", "self"].contains(&ident.to_string().as_str()) =>
                {
                    // Only where a path starts: not the `super` of `super::super`.
                    let continues = at >= 1 && is_punct(&tokens[at - 1], ':');
                    if !continues {
                        let line = ident.span().start().line;
                        self.path(&tokens[at..], file, line, path);
                    }
                }
                TokenTree::Group(group) => self.tokens(group.stream(), file, path, children),
                _ => {}
            }
            at += 1;
        }
    }

    /// A `mod name` declaration at `path`, followed by `rest`: its file,
    /// or its inline body.
    fn module(
        &mut self,
        rest: Option<&TokenTree>,
        name: String,
        file: &Path,
        path: &[String],
        children: &Path,
    ) {
        let inner: Vec<String> = path.iter().cloned().chain([name.clone()]).collect();
        if path.is_empty() {
            self.modules.insert(name.clone());
        }
        match rest {
            Some(TokenTree::Group(body)) if body.delimiter() == Delimiter::Brace => {
                self.tokens(body.stream(), file, &inner, &children.join(&name));
            }
            Some(token) if is_punct(token, ';') => {
                let flat = children.join(format!("{name}.rs"));
                let nested = children.join(&name).join("mod.rs");
                let (found, below) = if flat.exists() {
                    (flat, children.join(&name))
                } else if nested.exists() {
                    (nested, children.join(&name))
                } else {
                    panic!(
                        "module {name} declared in {} has no file {} or {} (#[path] is not followed by this test)",
                        file.display(),
                        flat.display(),
                        nested.display()
                    );
                };
                self.file(&found, &inner, &below);
            }
            _ => {}
        }
    }

    /// A path starting at `tokens[0]` (`crate`, `super` or `self`),
    /// written in module `path`.
    fn path(&mut self, tokens: &[TokenTree], file: &Path, line: usize, path: &[String]) {
        let mut base: Vec<String> = path.to_vec();
        let mut at = 0;
        while let Some(TokenTree::Ident(segment)) = tokens.get(at)
            && is_path_separator(tokens, at + 1)
        {
            match segment.to_string().as_str() {
                "crate" if at == 0 => base.clear(),
                "self" if at == 0 => {}
                "super" => {
                    if base.pop().is_none() {
                        // Above the root: not Rust, nothing to resolve.
                        return;
                    }
                }
                _ => break,
            }
            at += 3;
        }
        if at == 0 {
            // `self.field`, `pub(crate)`: no path.
            return;
        }
        let from = path.first().cloned();
        let mut to = Vec::new();
        match (base.first(), tokens.get(at)) {
            (Some(top), _) => to.push(top.clone()),
            (None, Some(TokenTree::Ident(name))) => to.push(name.to_string()),
            (None, Some(TokenTree::Group(group))) if group.delimiter() == Delimiter::Brace => {
                let items: Vec<TokenTree> = group.stream().into_iter().collect();
                for item in items.split(|token| is_punct(token, ',')) {
                    if let Some(TokenTree::Ident(name)) = item.first()
                        && name != "self"
                    {
                        to.push(name.to_string());
                    }
                }
            }
            (None, _) => {}
        }
        for to in to {
            self.references.push(Reference {
                from: from.clone(),
                to,
                at: format!(
                    "{}:{line}",
                    file.strip_prefix(&self.workspace).unwrap_or(file).display()
                ),
            });
        }
    }

    /// A `use` of the root file (the tokens between `use` and `;`): which
    /// names it brings in from which top-level module.
    fn root_use(&mut self, tokens: &[TokenTree]) {
        for (path, name) in use_leaves(tokens) {
            let first = match path.first().map(String::as_str) {
                Some("crate" | "self") => path.get(1),
                _ => path.first(),
            };
            if let Some(first) = first {
                self.root_imports.insert(name, first.clone());
            }
        }
    }

    /// The crate's graph of top-level modules.
    fn graph(&self) -> Graph {
        let mut graph: Graph = self
            .modules
            .iter()
            .map(|module| (module.clone(), BTreeMap::new()))
            .collect();
        for reference in &self.references {
            let Some(from) = &reference.from else {
                continue;
            };
            let to = if self.modules.contains(&reference.to) {
                &reference.to
            } else if let Some(module) = self.root_imports.get(&reference.to) {
                module
            } else {
                continue;
            };
            if to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to.clone())
                    .or_insert_with(|| reference.at.clone());
            }
        }
        graph
    }
}

fn is_punct(token: &TokenTree, wanted: char) -> bool {
    matches!(token, TokenTree::Punct(punct) if punct.as_char() == wanted)
}

/// Whether `tokens[at..]` starts with `::`.
fn is_path_separator(tokens: &[TokenTree], at: usize) -> bool {
    matches!(
        (tokens.get(at), tokens.get(at + 1)),
        (Some(TokenTree::Punct(first)), Some(TokenTree::Punct(second)))
            if first.as_char() == ':' && first.spacing() == Spacing::Joint && second.as_char() == ':'
    )
}

/// The leaves of a use tree (`a::b::{C, d::E as F, self}`): each one's
/// path and the name it binds. Globs bind no name and are left out.
fn use_leaves(tokens: &[TokenTree]) -> Vec<(Vec<String>, String)> {
    let mut leaves = Vec::new();
    let mut path = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        match &tokens[at] {
            TokenTree::Ident(ident) if ident == "as" => {
                if let Some(TokenTree::Ident(alias)) = tokens.get(at + 1) {
                    leaves.pop();
                    leaves.push((path.clone(), alias.to_string()));
                }
                return leaves;
            }
            TokenTree::Ident(ident) => {
                path.push(ident.to_string());
                leaves = vec![(path.clone(), ident.to_string())];
            }
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {
                let items: Vec<TokenTree> = group.stream().into_iter().collect();
                let mut nested = Vec::new();
                for item in items.split(|token| is_punct(token, ',')) {
                    for (mut inner, name) in use_leaves(item) {
                        let name = if name == "self" {
                            path.last().cloned().unwrap_or(name)
                        } else {
                            name
                        };
                        if inner.first().is_some_and(|first| first == "self") {
                            inner.remove(0);
                        }
                        nested.push((path.iter().cloned().chain(inner).collect(), name));
                    }
                }
                return nested;
            }
            _ => {}
        }
        at += 1;
    }
    leaves
}

/// Every cycle of `graph`, one per strongly connected component of more
/// than one module, each as the modules along it (the first not
/// repeated at the end), starting from the smallest name; with all the
/// component's modules.
fn cycles(graph: &Graph) -> Vec<(Vec<String>, BTreeSet<String>)> {
    let mut found = Vec::new();
    let mut placed: BTreeSet<&String> = BTreeSet::new();
    for start in graph.keys() {
        if placed.contains(start) {
            continue;
        }
        let component: BTreeSet<&String> = reachable(graph, start)
            .into_iter()
            .filter(|node| reachable(graph, node).contains(start))
            .collect();
        placed.extend(component.iter().copied());
        if component.len() > 1 {
            let members = component.iter().map(|&node| node.clone()).collect();
            found.push((shortest_cycle(graph, start, &component), members));
        }
    }
    found
}

/// The modules reachable from `start`, itself included.
fn reachable<'a>(graph: &'a Graph, start: &'a String) -> BTreeSet<&'a String> {
    let mut seen = BTreeSet::from([start]);
    let mut todo = vec![start];
    while let Some(node) = todo.pop() {
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if seen.insert(next) {
                todo.push(next);
            }
        }
    }
    seen
}

/// The shortest way from `start` back to it inside `component`
/// (breadth-first).
fn shortest_cycle(graph: &Graph, start: &String, component: &BTreeSet<&String>) -> Vec<String> {
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut frontier = vec![start];
    while !frontier.is_empty() {
        let mut next_frontier = Vec::new();
        for node in frontier {
            for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
                if !component.contains(next) || came_from.contains_key(next) {
                    continue;
                }
                came_from.insert(next, node);
                if next == start {
                    let mut cycle = vec![start.clone()];
                    let mut at = came_from[start];
                    while at != start {
                        cycle.push(at.clone());
                        at = came_from[at];
                    }
                    cycle[1..].reverse();
                    return cycle;
                }
                next_frontier.push(next);
            }
        }
        frontier = next_frontier;
    }
    unreachable!("{start} is in a strongly connected component of more than one module")
}

/// The cycles of `graph`, described: the modules on each and
/// where each edge comes from.
fn describe_cycles(label: &str, graph: &Graph) -> String {
    let mut text = String::new();
    for (cycle, component) in cycles(graph) {
        let mut ring = cycle.clone();
        ring.push(cycle[0].clone());
        let _ = writeln!(text, "{label}: {}", ring.join(" -> "));
        if component.len() > cycle.len() {
            let all: Vec<&str> = component.iter().map(String::as_str).collect();
            let _ = writeln!(
                text,
                "    (one of the cycles among {} modules: {})",
                all.len(),
                all.join(", ")
            );
        }
        for pair in ring.windows(2) {
            let _ = writeln!(
                text,
                "    {} -> {}: {}",
                pair[0], pair[1], graph[&pair[0]][&pair[1]]
            );
        }
    }
    text
}

/// The root files of every crate of the workspace: each member's (and
/// the root package's) `src/lib.rs`, `src/main.rs` and `src/bin/*.rs`.
fn crate_roots(workspace: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("Cargo.toml is TOML");
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members is a list");
    let mut dirs = vec![workspace.to_path_buf()];
    dirs.extend(
        members
            .iter()
            .map(|member| workspace.join(member.as_str().expect("a member is a path"))),
    );
    let mut roots = Vec::new();
    for dir in dirs {
        let src = dir.join("src");
        for name in ["lib.rs", "main.rs"] {
            if src.join(name).exists() {
                roots.push(src.join(name));
            }
        }
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            let mut bins: Vec<PathBuf> = bins
                .map(|entry| entry.expect("a directory entry").path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
                .collect();
            bins.sort();
            roots.extend(bins);
        }
    }
    roots
}

#[test]
fn no_crate_has_an_import_cycle_between_its_top_level_modules() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roots = crate_roots(workspace);
    assert!(
        roots.len() >= 6,
        "found only {} crate roots under {}: is the workspace list read?",
        roots.len(),
        workspace.display()
    );
    let mut report = String::new();
    for root in roots {
        let scan = Scan::of(&root, workspace);
        let label = root
            .strip_prefix(workspace)
            .unwrap_or(&root)
            .display()
            .to_string();
        report.push_str(&describe_cycles(&label, &scan.graph()));
    }
    assert!(
        report.is_empty(),
        "import cycles between top-level modules; move what both sides use into a leaf module:\n{report}"
    );
}

/// A graph from `a -> b` pairs.
fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph.entry((*to).to_owned()).or_default();
        graph
            .entry((*from).to_owned())
            .or_default()
            .insert((*to).to_owned(), format!("{from}.rs:1"));
    }
    graph
}

#[test]
fn the_detector_finds_each_cycle_and_nothing_in_a_tree() {
    let acyclic = graph_of(&[("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]);
    assert!(cycles(&acyclic).is_empty());
    let names =
        |names: &[&str]| -> Vec<String> { names.iter().map(|&name| name.to_owned()).collect() };
    let cyclic = graph_of(&[
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "d"),
        ("f", "a"),
    ]);
    let found: Vec<Vec<String>> = cycles(&cyclic)
        .into_iter()
        .map(|(cycle, _)| cycle)
        .collect();
    assert_eq!(found, [names(&["a", "b", "c"]), names(&["d", "e"])]);
    // A shortcut inside a larger component: the shortest cycle, and the
    // whole component named.
    let tangled = graph_of(&[("a", "b"), ("b", "a"), ("b", "c"), ("c", "a")]);
    let (cycle, component) = &cycles(&tangled)[0];
    assert_eq!(*cycle, names(&["a", "b"]));
    assert_eq!(component.len(), 3);
    assert!(describe_cycles("demo", &tangled).contains("among 3 modules: a, b, c"));
    let text = describe_cycles("demo", &cyclic);
    assert!(text.contains("demo: a -> b -> c -> a"), "{text}");
    assert!(text.contains("c -> a: c.rs:1"), "{text}");
}

/// Writes `files` (path, text) under a new directory.
fn fabricated(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

#[test]
fn the_scan_sees_crate_super_and_reexported_paths_and_not_comments() {
    let dir = fabricated(&[
        (
            "src/lib.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\npub use d::{Leaf as Renamed, other};\n",
        ),
        // a -> b through a group, a -> d through the root's re-export;
        // the doc link and the string name c, which is no edge.
        (
            "src/a.rs",
            "//! See [`crate::c`].\nmod inner;\nuse crate::{b::Thing, Renamed};\nconst NAME: &str = \"crate::c\";\n",
        ),
        // A child naming its parent and, two levels up, module b.
        (
            "src/a/inner.rs",
            "use super::NAME;\nfn f() { super::super::b::g(); }\n",
        ),
        // b -> a inside a macro call: a cycle with a.
        (
            "src/b/mod.rs",
            "pub struct Thing;\npub fn g() { println!(\"{}\", crate::a::NAME); }\n#[cfg(test)]\nmod tests { use super::*; }\n",
        ),
        // c -> d only.
        (
            "src/c.rs",
            "use self::inner::X;\nmod inner { pub use crate::d::Leaf as X; }\n",
        ),
        ("src/d.rs", "pub struct Leaf;\npub mod other {}\n"),
    ]);
    let graph = Scan::of(&dir.path().join("src/lib.rs"), dir.path()).graph();
    let edges = |from: &str| graph[from].keys().cloned().collect::<Vec<_>>();
    assert_eq!(edges("a"), ["b", "d"]);
    assert_eq!(edges("b"), ["a"]);
    assert_eq!(edges("c"), ["d"]);
    assert!(edges("d").is_empty());
    let found: Vec<Vec<String>> = cycles(&graph).into_iter().map(|(cycle, _)| cycle).collect();
    assert_eq!(found, [["a".to_owned(), "b".to_owned()]]);
    // The first reference seen: the child's, read where `mod inner;` is.
    assert!(graph["a"]["b"] == "src/a/inner.rs:2", "{graph:?}");
}
