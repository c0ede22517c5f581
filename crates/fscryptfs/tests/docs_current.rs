//! The man pages and completions in `dist/` are current: regenerated from the command-line
//! definition they must equal, file for file and byte for byte, what the tree holds (run
//! `scripts/gen-docs` after changing an option or a help text).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["man", "completions"] {
        for e in
            std::fs::read_dir(dir.join(sub)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        {
            let e = e.unwrap();
            out.insert(
                format!("{sub}/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    out
}

#[test]
fn man_pages_and_completions_are_current() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_fscryptfs"))
        .arg("generate-docs")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    let fresh = files(tmp.path());
    let kept = files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist"));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&fresh), names(&kept), "run scripts/gen-docs");
    for (name, bytes) in &fresh {
        assert!(
            kept[name] == *bytes,
            "{name} is stale: run scripts/gen-docs"
        );
    }
    assert!(fresh.contains_key("man/fscryptfs-encrypt.1"));
    assert!(fresh.contains_key("completions/fscryptfs.bash"));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_fscryptfs"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("unlock") && text.contains("--unlock-with"),
            "{shell}"
        );
    }
}
