//! The `fscrypt` tool's commands on a mounted fscryptfs volume, driven as a person drives them:
//! passphrases typed at a real pseudo-terminal (no echo, asked twice when new) or piped in, and the
//! two-command volume encrypted from its root. Each test mounts a fresh volume (skips loudly
//! without root and /dev/fuse, fails under FSCRYPTFS_REQUIRE_PRIVILEGED=1) and uses a
//! configuration with cheap Argon2id costs (`FSCRYPTFS_CONFIG`), so a protector opens in
//! milliseconds.

#[path = "support/pty.rs"]
mod pty;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pty::{expect, pty_run, send_line};
use support::{bin, mount_volume, Mounted};

/// What one run did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A mounted volume with a cheap configuration beside it.
struct Vol {
    m: Mounted,
    config: PathBuf,
}

impl Vol {
    fn new() -> Option<Vol> {
        let m = mount_volume(&[], "")?;
        let config = m.tmp.path().join("fscrypt.conf");
        std::fs::write(
            &config,
            r#"{"hash_costs":{"time":"1","memory":"64","parallelism":"1"},"options":{"policy_version":"2"}}"#,
        )
        .expect("write config");
        let v = Vol { m, config };
        v.ok(&["setup", v.mnt()], "");
        Some(v)
    }

    fn mnt(&self) -> &str {
        self.m.mnt.to_str().expect("ASCII path")
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.mnt())
    }

    /// Runs the binary with `stdin` piped in.
    fn run(&self, args: &[&str], stdin: &str) -> Out {
        run_with(&self.config, args, stdin)
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(out.code, 0, "fscryptfs {args:?}: {out:?}");
        out.stdout
    }

    /// The protector descriptors `status MNT` lists.
    fn protectors(&self) -> Vec<String> {
        let text = self.ok(&["status", self.mnt()], "");
        table_column(&text, "PROTECTOR")
    }
}

fn run_with(config: &Path, args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(bin())
        .args(args)
        .env("FSCRYPTFS_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fscryptfs");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    Out {
        code: out.status.code().expect("killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The first column of the table whose header row starts with `header`.
fn table_column(text: &str, header: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Whether `dir` shows its plaintext name `name` (unlocked) or not (locked: no-key names).
fn shows(dir: &str, name: &str) -> bool {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .any(|e| e.expect("entry").file_name() == name)
}

#[test]
fn encrypt_lock_unlock_with_a_piped_passphrase() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("d");
    std::fs::create_dir(&d).unwrap();
    let out = v.ok(&["encrypt", &d, "--name=home"], "correct horse\n");
    assert_eq!(
        out,
        format!("\"{d}\" is now encrypted, unlocked, and ready for use.\n")
    );
    // The tool's rule: the directory is made private.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
        0o700
    );
    std::fs::write(format!("{d}/secret.txt"), "attack at dawn").unwrap();
    assert_eq!(v.ok(&["lock", &d], ""), format!("\"{d}\" is now locked.\n"));
    assert!(!shows(&d, "secret.txt"), "locked: no plaintext names");
    // A wrong passphrase: its own status, the directory stays locked.
    let bad = v.run(&["unlock", &d], "correct horse!\n");
    assert_eq!(bad.code, 12, "{bad:?}");
    assert_eq!(bad.stderr, "fscryptfs: incorrect passphrase\n");
    assert!(!shows(&d, "secret.txt"));
    // A passphrase without the newline is the same passphrase.
    assert_eq!(
        v.ok(&["unlock", &d], "correct horse"),
        format!("\"{d}\" is now unlocked and ready for use.\n")
    );
    assert_eq!(
        std::fs::read_to_string(format!("{d}/secret.txt")).unwrap(),
        "attack at dawn"
    );
    let again = v.run(&["unlock", &d], "correct horse\n");
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        format!("fscryptfs: \"{d}\" is already unlocked\n")
    );
}

#[test]
fn prompts_at_a_terminal_without_echo_and_twice_when_new() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("t");
    std::fs::create_dir(&d).unwrap();
    let config = v.config.to_str().unwrap().to_string();
    let env = [("FSCRYPTFS_CONFIG", config.as_str())];
    let o = pty_run(
        bin(),
        &["encrypt", d.as_str(), "--name=tty"],
        &env,
        &[
            expect("Enter custom passphrase for protector \"tty\": "),
            send_line("typed secret"),
            expect("Confirm passphrase: "),
            send_line("typed secret"),
            expect("is now encrypted, unlocked, and ready for use."),
        ],
    );
    assert_eq!(o.code(), 0, "{}", o.transcript);
    assert!(
        !o.transcript.contains("typed secret"),
        "the passphrase was echoed: {}",
        o.transcript
    );
    assert!(o.terminal_sane(), "terminal left without echo");
    v.ok(&["lock", &d], "");
    // Unlock: a wrong passphrase is asked again at a terminal.
    let o = pty_run(
        bin(),
        &["unlock", d.as_str()],
        &env,
        &[
            expect("Enter custom passphrase for custom protector \"tty\": "),
            send_line("wrong"),
            expect("incorrect passphrase"),
            expect("Enter custom passphrase for custom protector \"tty\": "),
            send_line("typed secret"),
            expect("is now unlocked and ready for use."),
        ],
    );
    assert_eq!(o.code(), 0, "{}", o.transcript);
    assert!(!o.transcript.contains("typed secret"));
}

#[test]
fn confirmation_mismatch_creates_nothing() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("m");
    std::fs::create_dir(&d).unwrap();
    let config = v.config.to_str().unwrap().to_string();
    let o = pty_run(
        bin(),
        &["encrypt", d.as_str(), "--name=mm"],
        &[("FSCRYPTFS_CONFIG", config.as_str())],
        &[
            expect("Enter custom passphrase"),
            send_line("one"),
            expect("Confirm passphrase: "),
            send_line("two"),
            expect("do not match"),
        ],
    );
    assert_ne!(o.code(), 0, "{}", o.transcript);
    assert!(v.protectors().is_empty(), "no protector left behind");
    let st = v.run(&["status", &d], "");
    assert_eq!(st.code, 1, "{st:?}");
    assert!(st.stderr.contains("is not encrypted"), "{st:?}");
}

#[test]
fn change_passphrase_and_a_second_protector() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("d");
    std::fs::create_dir(&d).unwrap();
    v.ok(&["encrypt", &d, "--name=first"], "old pass\n");
    std::fs::write(format!("{d}/f"), "data").unwrap();
    let first = v.protectors();
    assert_eq!(first.len(), 1);
    let pref = format!("--protector={}:{}", v.mnt(), first[0]);
    // change-passphrase: old, then new (the tool reads them line by line from a pipe).
    let out = v.ok(
        &["metadata", "change-passphrase", &pref],
        "old pass\nnew pass\n",
    );
    assert_eq!(
        out,
        format!(
            "Passphrase for protector {} successfully changed.\n",
            first[0]
        )
    );
    v.ok(&["lock", &d], "");
    assert_eq!(v.run(&["unlock", &d], "old pass\n").code, 12);
    v.ok(&["unlock", &d], "new pass\n");
    // A raw-key protector as a second way in.
    let keyfile = v.m.tmp.path().join("raw.key");
    std::fs::write(&keyfile, [0x5au8; 32]).unwrap();
    let key = keyfile.to_str().unwrap();
    let out = v.ok(
        &[
            "metadata",
            "create",
            "protector",
            v.mnt(),
            "--source=raw_key",
            "--name=backup",
            &format!("--key={key}"),
        ],
        "",
    );
    let second = out
        .split_whitespace()
        .nth(1)
        .expect("Protector DESC created")
        .to_string();
    let policy = {
        let st = v.ok(&["status", &d], "");
        st.lines()
            .find_map(|l| l.strip_prefix("Policy:").map(|p| p.trim().to_string()))
            .expect("Policy line")
    };
    let polref = format!("--policy={}:{policy}", v.mnt());
    let sref = format!("--protector={}:{second}", v.mnt());
    let out = v.run(
        &[
            "metadata",
            "add-protector-to-policy",
            &sref,
            &polref,
            &format!("--key={key}"),
        ],
        "new pass\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out
        .stderr
        .contains("All files using this policy will be accessible with this protector"));
    v.ok(&["lock", &d], "");
    // Several protectors and no terminal: say which to choose.
    let ambiguous = v.run(&["unlock", &d], "new pass\n");
    assert_eq!(ambiguous.code, 2, "{ambiguous:?}");
    assert!(ambiguous.stderr.contains("--unlock-with="), "{ambiguous:?}");
    v.ok(
        &[
            "unlock",
            &d,
            &format!("--unlock-with={}:{second}", v.mnt()),
            &format!("--key={key}"),
        ],
        "",
    );
    assert_eq!(std::fs::read_to_string(format!("{d}/f")).unwrap(), "data");
    // A wrong raw key is refused like a wrong passphrase.
    v.ok(&["lock", &d], "");
    std::fs::write(&keyfile, [0x5bu8; 32]).unwrap();
    let wrong = v.run(
        &[
            "unlock",
            &d,
            &format!("--unlock-with={}:{second}", v.mnt()),
            &format!("--key={key}"),
        ],
        "",
    );
    assert_eq!(wrong.code, 12, "{wrong:?}");
    assert_eq!(wrong.stderr, "fscryptfs: incorrect key provided\n");
    // Remove the first protector; the last one cannot be removed.
    let fref = format!("--protector={}:{}", v.mnt(), first[0]);
    v.ok(
        &[
            "metadata",
            "remove-protector-from-policy",
            &fref,
            &polref,
            "--force",
        ],
        "",
    );
    let last = v.run(
        &[
            "metadata",
            "remove-protector-from-policy",
            &sref,
            &polref,
            "--force",
        ],
        "",
    );
    assert_ne!(last.code, 0, "{last:?}");
    assert!(last.stderr.contains("only protector"), "{last:?}");
    let st = v.ok(&["status", &d], "");
    assert!(st.contains("Protected with 1 protector:"), "{st}");
    assert!(
        st.contains(&format!("{second}  No      raw key protector \"backup\"")),
        "{st}"
    );
}

#[test]
fn lock_with_a_file_open_names_it() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("busy");
    std::fs::create_dir(&d).unwrap();
    v.ok(&["encrypt", &d, "--name=b"], "pw\n");
    let f = format!("{d}/open.txt");
    std::fs::write(&f, "still here").unwrap();
    let held = std::fs::File::open(&f).unwrap();
    let out = v.run(&["lock", &d], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.starts_with(
            "fscryptfs: Directory was incompletely locked because some files are still open. \
             These files remain accessible."
        ),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("/busy/open.txt"),
        "names the file: {out:?}"
    );
    // The process that holds it (FUSE names the opening thread, here not the main one; the
    // report says its process).
    assert!(
        out.stderr.contains(&format!("[{}]", std::process::id())),
        "names the process: {out:?}"
    );
    let st = v.ok(&["status", &d], "");
    assert!(
        st.contains("Unlocked: Partially (incompletely locked)"),
        "{st}"
    );
    drop(held);
    // Closed: the key goes with the last open file (the release reaches the daemon just after
    // close returns), and the directory is then locked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let st = v.ok(&["status", &d], "");
        if st.contains("Unlocked: No") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still unlocked: {st}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let again = v.run(&["lock", &d], "");
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        format!("fscryptfs: \"{d}\" is already locked\n")
    );
    assert!(!shows(&d, "open.txt"));
}

#[test]
fn status_views() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("s");
    std::fs::create_dir(&d).unwrap();
    v.ok(&["encrypt", &d, "--name=viewer"], "pw\n");
    let fs_view = v.ok(&["status", v.mnt()], "");
    assert!(
        fs_view.starts_with(&format!(
            "fscryptfs filesystem \"{}\" has 1 protector and 1 policy.\n",
            v.mnt()
        )),
        "{fs_view}"
    );
    assert!(
        fs_view.contains("PROTECTOR         LINKED  DESCRIPTION\n"),
        "{fs_view}"
    );
    assert!(fs_view.contains("custom protector \"viewer\""), "{fs_view}");
    let policies = table_column(&fs_view, "POLICY");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].len(), 32);
    let dir_view = v.ok(&["status", &d], "");
    assert!(dir_view.starts_with(&format!("\"{d}\" is encrypted with fscrypt.\n")));
    assert!(dir_view.contains(&format!("Policy:   {}\n", policies[0])));
    assert!(dir_view.contains(
        "Options:  padding:32 contents:AES_256_XTS filenames:AES_256_CTS policy_version:2\n"
    ));
    assert!(dir_view.contains("Unlocked: Yes\n"));
    let global = v.ok(&["status"], "");
    assert!(
        global.contains("filesystems with fscrypt metadata:"),
        "{global}"
    );
    let row = global
        .lines()
        .find(|l| l.starts_with(&format!("{} ", v.mnt())))
        .unwrap_or_else(|| panic!("no row for the mount: {global}"));
    assert!(
        row.contains("fscryptfs") && row.contains("supported") && row.ends_with("Yes"),
        "{row}"
    );
    // An unencrypted directory.
    let plain = v.path("plain");
    std::fs::create_dir(&plain).unwrap();
    let out = v.run(&["status", &plain], "");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!("fscryptfs: file or directory \"{plain}\" is not encrypted\n")
    );
}

#[test]
fn a_volume_encrypted_from_its_root_in_two_commands() {
    if !support::can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("fscrypt.conf");
    std::fs::write(
        &config,
        r#"{"hash_costs":{"time":"1","memory":"64","parallelism":"1"}}"#,
    )
    .unwrap();
    let backing = tmp.path().join("backing");
    let b = backing.to_str().unwrap();
    let out = run_with(&config, &["init", "--encrypt", b], "vault words\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("encrypted from its root"), "{out:?}");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // A wrong passphrase fails before mounting.
    let bad = run_with(
        &config,
        &["mount", b, mnt.to_str().unwrap()],
        "wrong words\n",
    );
    assert_eq!(bad.code, 12, "{bad:?}");
    assert!(!support::is_mounted(&mnt));
    // The right one, from a file (-o passfile=), through the detaching mount.
    let pf = tmp.path().join("pass");
    std::fs::write(&pf, "vault words\n").unwrap();
    let opt = format!("passfile={}", pf.display());
    {
        let _unmount = Unmount::mount(&config, &["-o", &opt], b, &mnt, "");
        std::fs::write(mnt.join("taxes.txt"), "my tax return").unwrap();
        std::fs::create_dir(mnt.join("Documents")).unwrap();
        std::fs::write(mnt.join("Documents/letter.txt"), "dear diary").unwrap();
    }
    // Nothing readable in the backing directory: no name, no content.
    let mut hits = Vec::new();
    for entry in walk(&backing) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        for needle in ["taxes", "Documents", "letter"] {
            if name.contains(needle) {
                hits.push(entry.display().to_string());
            }
        }
        if entry.is_file() {
            let bytes = std::fs::read(&entry).unwrap();
            for needle in [&b"my tax return"[..], b"dear diary"] {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(format!("{} holds plaintext", entry.display()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "plaintext in the backing directory: {hits:?}"
    );
    // Mounted again with the passphrase on stdin, the files are there.
    {
        let _unmount = Unmount::mount(&config, &[], b, &mnt, "vault words\n");
        assert_eq!(
            std::fs::read_to_string(mnt.join("Documents/letter.txt")).unwrap(),
            "dear diary"
        );
    }
    // The daemon lets go of the volume just after the unmount returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let fsck = loop {
        let fsck = run_with(&config, &["fsck", b], "");
        if !fsck.stderr.contains("in use") || std::time::Instant::now() > deadline {
            break fsck;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(fsck.code, 0, "{fsck:?}");
}

/// A detached mount made by `fscryptfs mount`, unmounted on drop (whatever happened), after which
/// the daemon has released the volume.
struct Unmount(PathBuf);

impl Unmount {
    /// Mounts, retrying while the previous daemon still holds the volume.
    fn mount(config: &Path, opts: &[&str], backing: &str, mnt: &Path, stdin: &str) -> Unmount {
        let m = mnt.to_str().unwrap();
        let mut args = vec!["mount"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[backing, m]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let out = run_with(config, &args, stdin);
            if out.code == 0 {
                assert!(support::is_mounted(mnt));
                return Unmount(mnt.to_path_buf());
            }
            assert!(
                out.stderr.contains("in use") && std::time::Instant::now() < deadline,
                "{out:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.0).status();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn skip_unlock_leaves_the_new_directory_locked() {
    let Some(v) = Vol::new() else { return };
    let d = v.path("later");
    std::fs::create_dir(&d).unwrap();
    let out = v.ok(&["encrypt", &d, "--name=later", "--skip-unlock"], "pw\n");
    assert_eq!(
        out,
        format!("\"{d}\" is now encrypted, but it is still locked.\n")
    );
    let st = v.ok(&["status", &d], "");
    assert!(st.contains("Unlocked: No"), "{st}");
    assert!(
        std::fs::write(format!("{d}/f"), "x").is_err(),
        "no key: no new file"
    );
    v.ok(&["unlock", &d], "pw\n");
    std::fs::write(format!("{d}/f"), "x").unwrap();
}

/// Whoever controls the backing directory plants a symlink at the volume's protector tree,
/// pointing at a tree of their own: it is not followed, and nothing is mounted.
#[test]
fn a_symlinked_volume_tree_in_the_backing_directory_is_refused() {
    if !support::can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("fscrypt.conf");
    std::fs::write(
        &config,
        r#"{"hash_costs":{"time":"1","memory":"64","parallelism":"1"}}"#,
    )
    .unwrap();
    let backing = tmp.path().join("backing");
    let b = backing.to_str().unwrap();
    let out = run_with(&config, &["init", "--encrypt", b], "words\n");
    assert_eq!(out.code, 0, "{out:?}");
    let tree = backing.join(".fscryptfs.fscrypt");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::rename(&tree, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &tree).unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = run_with(&config, &["mount", b, mnt.to_str().unwrap()], "words\n");
    let mounted = support::is_mounted(&mnt);
    if mounted {
        let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
    }
    assert!(!mounted, "mounted through a planted symlink: {out:?}");
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "fscryptfs: {}: not a directory (a symlink is not followed there)\n",
            tree.display()
        )
    );
}
