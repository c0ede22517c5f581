//! The shape of the source tree, checked by reading it (docs/DESIGN.md, "The map").
//!
//! Rules:
//!
//! 1. **`fs/` is layered.** Every file under `src/fs` belongs to a *room*: a top-level file
//!    (`fs/mount.rs` is `mount`) or a directory (`fs/node/*` is `node`); `fs/mod.rs` is the map. The
//!    rooms sit on the levels of [`LEVELS`], and an import may only go to a room on a lower level,
//!    or to another room of the same level (operation rooms use each other: `names` uses `keys`),
//!    or within its own room. Nothing runs back up a level: `node` knows no table, the tables know
//!    no contents, `contents` knows no `mount` and no operation room, `mount` no operation room.
//! 2. **No cycles**, between rooms nor between files.
//! 3. **Only the adapter files name `fuser`**: `fs/fuse.rs` and `fs/daemon.rs`, in code (`use
//!    fuser`, a `fuser::` path; comments may mention it, and messages the psmisc command).
//! 4. **No file above [`MAX_LINES`] lines** in `src`, except the ones in [`LONG_FILES`], each with
//!    its reason (a table, tests); an entry that is no longer long must leave the list.
//! 5. **One name for one thing**: the kind of a file is `store::kind::Kind`, defined nowhere else
//!    in `fs/`, `store/` and `offline/` ([`KIND_ROOMS`]);
//!    a contents layout is `store::config::ContentsLayout`, its raw bytes (`LAYOUT_*`) named only
//!    in `store/meta.rs`, which encodes and decodes the header.
//!
//! Imports are read simply, as text: every `use` statement (brace groups expanded) and every
//! `crate::fs::…` / `super::…` path written inline in code, with `//` comments stripped and inline
//! `mod … { }` blocks (unit tests, whose `super` is the file itself) skipped. A path is resolved to
//! the longest prefix that names a file (`a/b.rs` or `a/b/mod.rs`); paths that end outside `src/fs`
//! are not `fs` imports. A room's children are declared by `mod` lines, which are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The rooms of `fs/`, lowest level first.
const LEVELS: &[&[&str]] = &[
    // Leaves: poison-tolerant locks; the request types the adapter and the rooms exchange; the
    // mount's read-ahead (a sysfs write the daemon makes) and the gate that orders a handle's
    // reads on a network backing store; the recalled headers of evicted files.
    &["locks", "types", "read_ahead", "read_order", "recall"],
    // One inode: `Node`, its `State`, the per-extent per-inode state and the buffer budget; the
    // ioctl bridge into a caller's memory.
    &["node", "caller_memory"],
    // The tables: nodes by number (transit, stable numbers), open handles.
    &["inodes", "handle_table"],
    // Regular-file contents behind the `Contents` trait, on its own `Engine`.
    &["contents"],
    // The `Fs` object: construction, the contents engine, eviction, unmount flush.
    &["mount"],
    // The operations.
    &[
        "backing",
        "keys",
        "names",
        "namespace",
        "rename",
        "attr",
        "handles",
        "ioctl",
    ],
    // The adapters: the only files naming `fuser`.
    &["fuse", "daemon"],
    // The map (`fs/mod.rs`).
    &["mod"],
];

/// Files allowed to name `fuser`.
const FUSER_FILES: &[&str] = &["fs/fuse.rs", "fs/daemon.rs"];

/// The longest a file in `src` may be.
const MAX_LINES: usize = 700;

/// Files allowed above [`MAX_LINES`], with the reason (paths relative to `src`).
const LONG_FILES: &[(&str, &str)] = &[];

/// The rooms whose file kinds rule 5 makes one `Kind` (the `fscrypt` tool's record kinds in
/// `protectors` are another thing, policies and protectors).
const KIND_ROOMS: &[&str] = &["fs/", "store/", "offline/"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, relative to `src`, sorted.
fn rs_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src()).unwrap();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` with `//` comments stripped; with `skip_inline_mods`, lines inside inline
/// `mod name { … }` blocks are left out (their `super` is the file, not its parent).
fn code_lines(text: &str, skip_inline_mods: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth: i64 = 0;
    let mut in_mod = false;
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let t = code.trim_start();
        let starts_mod = {
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub(super) "))
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            t.starts_with("mod ") && t.trim_end().ends_with('{')
        };
        if skip_inline_mods && !in_mod && starts_mod {
            in_mod = true;
            depth = 0;
        }
        if in_mod {
            depth += code.matches('{').count() as i64;
            depth -= code.matches('}').count() as i64;
            if depth <= 0 {
                in_mod = false;
            }
            continue;
        }
        out.push(code.to_string());
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into full paths.
fn expand_use(tree: &str) -> Vec<String> {
    // `a as b` keeps `a` (the renaming is marked before whitespace goes).
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree: String = tree
        .replace(" as ", "#")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    fn go(prefix: &str, t: &str, out: &mut Vec<String>) {
        match t.find('{') {
            None => out.push(format!("{prefix}{t}")),
            Some(i) => {
                let head = &t[..i];
                let inner = &t[i + 1..t.rfind('}').unwrap_or(t.len())];
                let mut level = 0;
                let mut start = 0;
                let bytes = inner.as_bytes();
                for (j, &b) in bytes.iter().enumerate() {
                    match b {
                        b'{' => level += 1,
                        b'}' => level -= 1,
                        b',' if level == 0 => {
                            go(&format!("{prefix}{head}"), &inner[start..j], out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                if start < inner.len() {
                    go(&format!("{prefix}{head}"), &inner[start..], out);
                }
            }
        }
    }
    let mut out = Vec::new();
    go("", &tree, &mut out);
    out.into_iter()
        .map(|p| p.split('#').next().unwrap_or_default().to_string())
        .collect()
}

/// The module path of a file (`fs/contents/mod.rs` → `[fs, contents]`).
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The file a path written in `file` leads to, when it is a file of `src/fs`.
fn resolve(file: &str, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    let mut module = module_of(file);
    let mut rest: &[&str] = &segs;
    match *segs.first()? {
        "crate" => {
            module.clear();
            rest = &segs[1..];
        }
        "super" => {
            while rest.first() == Some(&"super") {
                module.pop();
                rest = &rest[1..];
            }
        }
        "self" => rest = &segs[1..],
        _ => return None,
    }
    let mut full = module;
    full.extend(rest.iter().map(|s| s.to_string()));
    // The longest prefix naming a file.
    for n in (1..=full.len()).rev() {
        let base = full[..n].join("/");
        for cand in [format!("{base}.rs"), format!("{base}/mod.rs")] {
            if src().join(&cand).is_file() {
                return cand.starts_with("fs/").then_some(cand);
            }
        }
    }
    None
}

/// The identifier path starting at byte `i` of `s` (`a::b::C`).
fn path_at(s: &str, i: usize) -> String {
    s[i..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect::<String>()
        .trim_end_matches(':')
        .to_string()
}

/// The `fs` files each `fs` file imports (self excluded).
fn fs_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for file in rs_files(&src().join("fs")) {
        let text = fs::read_to_string(src().join(&file)).unwrap();
        let lines = code_lines(&text, true);
        let mut paths = Vec::new();
        let mut stmt: Option<String> = None;
        for line in &lines {
            let t = line.trim();
            if stmt.is_none() {
                let starts = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "];
                if let Some(r) = starts.iter().find_map(|p| t.strip_prefix(p)) {
                    stmt = Some(String::from(r));
                    stmt.as_mut().unwrap().push(' ');
                    if !t.ends_with(';') {
                        continue;
                    }
                }
            } else if let Some(s) = stmt.as_mut() {
                s.push_str(t);
                s.push(' ');
            }
            if let Some(s) = stmt.take_if(|s| s.trim_end().ends_with(';')) {
                paths.extend(expand_use(s.trim().trim_end_matches(';')));
                continue;
            }
            if stmt.is_some() {
                continue;
            }
            for needle in ["crate::fs::", "super::"] {
                let mut from = 0;
                while let Some(i) = line[from..].find(needle) {
                    let at = from + i;
                    let before_ok = at == 0 || {
                        let c = line.as_bytes()[at - 1];
                        !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
                    };
                    if before_ok {
                        paths.push(path_at(line, at));
                    }
                    from = at + needle.len();
                }
            }
        }
        let targets: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| resolve(&file, p))
            .filter(|t| *t != file)
            .collect();
        graph.insert(file, targets);
    }
    graph
}

/// The room of an `fs` file (`fs/node/extent.rs` → `node`, `fs/mod.rs` → `mod`).
fn room_of(file: &str) -> String {
    let rest = file.strip_prefix("fs/").unwrap();
    rest.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

fn level_of(room: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.contains(&room))
}

/// A cycle in `graph`, if any (as the list of its nodes).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut c = stack[i..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_reader_of_imports_reads_what_it_should() {
    assert_eq!(
        expand_use("super::node::{extent::{a, b}, Kind}"),
        [
            "super::node::extent::a",
            "super::node::extent::b",
            "super::node::Kind"
        ]
    );
    assert_eq!(
        expand_use("crate::store::io as store_io"),
        ["crate::store::io"]
    );
    assert_eq!(
        resolve("fs/contents/per_file.rs", "super::layout::Contents").as_deref(),
        Some("fs/contents/layout.rs")
    );
    assert_eq!(
        resolve("fs/keys.rs", "super::node::extent::secret_need").as_deref(),
        Some("fs/node/extent.rs")
    );
    assert_eq!(
        resolve("fs/keys.rs", "super::node::Kind").as_deref(),
        Some("fs/node/mod.rs")
    );
    assert_eq!(resolve("fs/keys.rs", "crate::store::meta::DirMeta"), None);
    let lines = code_lines(
        "use a; // use b\nmod tests {\n    use super::*;\n}\nuse c;",
        true,
    );
    assert_eq!(lines, ["use a; ", "use c;"]);
}

#[test]
fn fs_rooms_are_layered_without_cycles() {
    let graph = fs_imports();
    assert!(
        graph.len() > 20,
        "the reader found only {} files under src/fs",
        graph.len()
    );
    let mut problems = Vec::new();
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, targets) in &graph {
        let from = room_of(file);
        let Some(lf) = level_of(&from) else {
            problems.push(format!("{file}: room `{from}` is on no level of LEVELS"));
            continue;
        };
        rooms.entry(from.clone()).or_default();
        for t in targets {
            let to = room_of(t);
            if to == from {
                continue;
            }
            let Some(lt) = level_of(&to) else {
                continue;
            };
            if lt > lf {
                problems.push(format!(
                    "{file} imports {t}: `{from}` (level {lf}) must not import `{to}` (level {lt})"
                ));
            }
            rooms.entry(from.clone()).or_default().insert(to);
        }
    }
    if let Some(c) = find_cycle(&rooms) {
        problems.push(format!(
            "rooms import each other in a cycle: {}",
            c.join(" → ")
        ));
    }
    if let Some(c) = find_cycle(&graph) {
        problems.push(format!(
            "files import each other in a cycle: {}",
            c.join(" → ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_adapter_files_name_fuser() {
    let mut named = Vec::new();
    for file in rs_files(&src()) {
        let text = fs::read_to_string(src().join(&file)).unwrap();
        // The crate as a path (`fuser::…`, `use fuser`, `extern crate fuser`); the word alone may
        // be the psmisc command in a message.
        let uses = code_lines(&text, false).iter().any(|l| {
            let t = l.trim_start();
            t.starts_with("use fuser")
                || t.starts_with("extern crate fuser")
                || l.match_indices("fuser::").any(|(i, _)| {
                    let b = l.as_bytes();
                    i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
                })
        });
        if uses && !FUSER_FILES.contains(&file.as_str()) {
            named.push(file);
        } else if !uses && file == "fs/fuse.rs" {
            panic!("the reader does not see `fuser` in the adapter, fs/fuse.rs");
        }
    }
    assert!(
        named.is_empty(),
        "only {FUSER_FILES:?} may name fuser; also: {named:?}"
    );
}

#[test]
fn no_file_is_longer_than_the_limit_unless_listed() {
    let mut long = Vec::new();
    for file in rs_files(&src()) {
        let n = fs::read_to_string(src().join(&file))
            .unwrap()
            .lines()
            .count();
        let listed = LONG_FILES.iter().any(|(f, _)| *f == file);
        if n > MAX_LINES && !listed {
            long.push(format!("{file}: {n} lines"));
        }
        if listed && n <= MAX_LINES {
            long.push(format!(
                "{file}: {n} lines, no longer long: take it out of LONG_FILES"
            ));
        }
    }
    for (f, _) in LONG_FILES {
        if !src().join(f).is_file() {
            long.push(format!("{f}: listed in LONG_FILES but missing"));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn one_kind_enum_and_layout_bytes_only_in_the_header_code() {
    let mut found = Vec::new();
    for file in rs_files(&src()) {
        let text = fs::read_to_string(src().join(&file)).unwrap();
        for line in code_lines(&text, false) {
            let t = line.trim_start();
            let t = t.strip_prefix("pub ").unwrap_or(t);
            let defines_kind = ["enum Kind ", "enum InodeKind ", "enum Kind{"]
                .iter()
                .any(|d| t.starts_with(d));
            let kind_room = KIND_ROOMS.iter().any(|r| file.starts_with(r));
            if defines_kind && kind_room && file != "store/kind.rs" {
                found.push(format!("{file}: {}", line.trim()));
            }
            if line.contains("LAYOUT_") && file != "store/meta.rs" {
                found.push(format!("{file}: {}", line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
