//! Google's `fscrypt` tool as the oracle for its own metadata: on a real ext4 filesystem with
//! fscrypt (a loop device), every record one tool writes is read and used by the other, both
//! directions — passphrase and raw-key protectors, several protectors on one policy, a change of
//! passphrase — and both list the same protectors and policies. Our `setup` writes the global
//! configuration the tool then reads.
//!
//! Needs root, loop devices, e2fsprogs and the `fscrypt` tool (Debian package `fscrypt`): it
//! skips loudly without them, and fails under FSCRYPTFS_REQUIRE_PRIVILEGED=1 (CI). It changes
//! `/etc/fscrypt.conf` and may create `/.fscrypt`, both put back as they were at the end, so it is
//! one test (nothing else touches them: the other tests use `FSCRYPTFS_CONFIG`).

#[path = "../../fscrypt/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::ext4::{Ext4Config, Ext4Image};

const CONF: &str = "/etc/fscrypt.conf";

/// What one run did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    /// Shown in assertion messages.
    #[allow(dead_code)]
    stderr: String,
}

fn run(program: &str, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("FSCRYPTFS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    let out = child.wait_with_output().expect("wait");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ours(args: &[&str], stdin: &[u8]) -> String {
    let out = run(env!("CARGO_BIN_EXE_fscryptfs"), args, stdin);
    assert_eq!(out.code, 0, "fscryptfs {args:?}: {out:?}");
    out.stdout
}

fn tool(args: &[&str], stdin: &[u8]) -> String {
    let out = run("fscrypt", args, stdin);
    assert_eq!(out.code, 0, "fscrypt {args:?}: {out:?}");
    out.stdout
}

/// Puts `/etc/fscrypt.conf` and `/.fscrypt` back as they were.
struct GlobalState {
    conf: Option<Vec<u8>>,
    root_tree: bool,
}

impl GlobalState {
    fn save() -> Self {
        GlobalState {
            conf: std::fs::read(CONF).ok(),
            root_tree: Path::new("/.fscrypt").exists(),
        }
    }
}

impl Drop for GlobalState {
    fn drop(&mut self) {
        match &self.conf {
            Some(c) => {
                let _ = std::fs::write(CONF, c);
            }
            None => {
                let _ = std::fs::remove_file(CONF);
            }
        }
        if !self.root_tree {
            let _ = std::fs::remove_dir_all("/.fscrypt");
        }
    }
}

fn tool_present() -> bool {
    let found = Command::new("fscrypt")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("the fscrypt tool is missing (apt-get install fscrypt)");
        }
        eprintln!("SKIPPED: the fscrypt tool is missing (apt-get install fscrypt)");
    }
    found
}

/// The descriptors in the first column of the table headed `header`.
fn column(text: &str, header: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    v.sort();
    v
}

fn policy_of(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Policy:").map(|p| p.trim().to_string()))
        .unwrap_or_else(|| panic!("no Policy line: {status}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("ASCII path")
}

#[test]
fn the_fscrypt_tool_and_fscryptfs_share_metadata() {
    if !support::prerequisites("the_fscrypt_tool_and_fscryptfs_share_metadata") || !tool_present() {
        return;
    }
    let _restore = GlobalState::save();
    let img = Ext4Image::create("protect_oracle", Ext4Config::default());
    let mnt = img.mnt().to_path_buf();
    let m = s(&mnt);
    let dir = |name: &str| -> PathBuf {
        let d = mnt.join(name);
        std::fs::create_dir(&d).expect("mkdir");
        d
    };

    // Our setup writes the configuration (cheap costs); the tool reads it for everything below.
    ours(&["setup", "--time", "20ms", "--force"], b"");
    let conf = std::fs::read_to_string(CONF).unwrap();
    assert!(conf.contains("\"policy_version\": \"2\""), "{conf}");
    // The tool sets up the filesystem.
    tool(&["setup", m, "--quiet"], b"");
    assert!(mnt.join(".fscrypt/policies").is_dir());

    // 1. The tool encrypts with a passphrase; we unlock.
    let t1 = dir("t1");
    tool(
        &[
            "encrypt",
            s(&t1),
            "--source=custom_passphrase",
            "--name=t",
            "--quiet",
        ],
        b"tool words\n",
    );
    std::fs::write(t1.join("f"), "from the tool").unwrap();
    tool(&["lock", s(&t1)], b"");
    assert!(std::fs::read(t1.join("f")).is_err(), "locked by the tool");
    let wrong = run(
        env!("CARGO_BIN_EXE_fscryptfs"),
        &["unlock", s(&t1)],
        b"other words\n",
    );
    assert_eq!(wrong.code, 12, "{wrong:?}");
    ours(&["unlock", s(&t1)], b"tool words\n");
    assert_eq!(
        std::fs::read_to_string(t1.join("f")).unwrap(),
        "from the tool"
    );
    ours(&["lock", s(&t1)], b"");
    assert!(tool(&["status", s(&t1)], b"").contains("Unlocked: No"));

    // 2. A raw-key protector made by the tool opens with our --key.
    let key = img.path("../raw.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let kf = format!("--key={}", s(&key));
    let t2 = dir("t2");
    tool(
        &[
            "encrypt",
            s(&t2),
            "--source=raw_key",
            "--name=rk",
            &kf,
            "--quiet",
        ],
        b"",
    );
    std::fs::write(t2.join("g"), "raw").unwrap();
    tool(&["lock", s(&t2)], b"");
    ours(&["unlock", s(&t2), &kf], b"");
    assert_eq!(std::fs::read_to_string(t2.join("g")).unwrap(), "raw");

    // 3. We encrypt with a passphrase; the tool unlocks.
    let o1 = dir("o1");
    let out = ours(&["encrypt", s(&o1), "--name=ours"], b"our words\n");
    assert!(out.contains("is now encrypted, unlocked, and ready for use."));
    std::fs::write(o1.join("h"), "from fscryptfs").unwrap();
    ours(&["lock", s(&o1)], b"");
    tool(&["unlock", s(&o1), "--quiet"], b"our words\n");
    assert_eq!(
        std::fs::read_to_string(o1.join("h")).unwrap(),
        "from fscryptfs"
    );
    tool(&["lock", s(&o1)], b"");

    // 4. We add a raw-key protector to our policy; the tool unlocks with it.
    let created = ours(
        &[
            "metadata",
            "create",
            "protector",
            m,
            "--source=raw_key",
            "--name=ourkey",
            &kf,
        ],
        b"",
    );
    let ourkey = created
        .split_whitespace()
        .nth(1)
        .expect("descriptor")
        .to_string();
    let o1_policy = policy_of(&ours(&["status", s(&o1)], b""));
    ours(
        &[
            "metadata",
            "add-protector-to-policy",
            &format!("--protector={m}:{ourkey}"),
            &format!("--policy={m}:{o1_policy}"),
            &kf,
        ],
        b"our words\n",
    );
    tool(
        &[
            "unlock",
            s(&o1),
            &format!("--unlock-with={m}:{ourkey}"),
            &kf,
            "--quiet",
        ],
        b"",
    );
    assert_eq!(
        std::fs::read_to_string(o1.join("h")).unwrap(),
        "from fscryptfs"
    );
    tool(&["lock", s(&o1)], b"");

    // 5. Changes of passphrase, each tool on the other's protector.
    let t_status = tool(&["status", s(&t1)], b"");
    let t_prot = column(&t_status, "PROTECTOR")[0].clone();
    ours(
        &[
            "metadata",
            "change-passphrase",
            &format!("--protector={m}:{t_prot}"),
        ],
        b"tool words\nnew tool words\n",
    );
    tool(&["unlock", s(&t1), "--quiet"], b"new tool words\n");
    assert_eq!(
        std::fs::read_to_string(t1.join("f")).unwrap(),
        "from the tool"
    );
    tool(&["lock", s(&t1)], b"");
    let o_status = ours(&["status", s(&o1)], b"");
    let o_prot = o_status
        .lines()
        .find(|l| l.contains("custom protector \"ours\""))
        .and_then(|l| l.split_whitespace().next())
        .expect("our protector")
        .to_string();
    tool(
        &[
            "metadata",
            "change-passphrase",
            &format!("--protector={m}:{o_prot}"),
            "--quiet",
        ],
        b"our words\nnew our words\n",
    );
    ours(
        &["unlock", s(&o1), &format!("--unlock-with={m}:{o_prot}")],
        b"new our words\n",
    );
    assert_eq!(
        std::fs::read_to_string(o1.join("h")).unwrap(),
        "from fscryptfs"
    );

    // 6. Both list the same protectors and policies, and agree on what is unlocked.
    let theirs = tool(&["status", m], b"");
    let mine = ours(&["status", m], b"");
    assert_eq!(
        column(&theirs, "PROTECTOR"),
        column(&mine, "PROTECTOR"),
        "{theirs}\n{mine}"
    );
    assert_eq!(
        column(&theirs, "POLICY"),
        column(&mine, "POLICY"),
        "{theirs}\n{mine}"
    );
    assert_eq!(column(&mine, "PROTECTOR").len(), 4);
    assert_eq!(column(&mine, "POLICY").len(), 3);
    let first_line = |t: &str| t.lines().next().unwrap_or("").to_string();
    assert_eq!(first_line(&theirs), first_line(&mine));
    for d in [&t1, &t2, &o1] {
        let unlocked = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("Unlocked:"))
                .map(|l| l.trim().to_string())
        };
        assert_eq!(
            unlocked(&tool(&["status", s(d)], b"")),
            unlocked(&ours(&["status", s(d)], b"")),
            "{}",
            d.display()
        );
    }
}
