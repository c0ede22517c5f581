//! Busy reports are private (issue 8, row 4). On a real `-o allow_other` mount, with two real
//! unprivileged users A and B sharing one key: A keeps a file open in its `0700` encrypted
//! directory, B one in its own (held by B and by a root process). Once B's removal leaves the key
//! incompletely removed, B's `remove-key` and B's raw `FSCRYPTFS_IOC_BUSY_FILES` name B's files
//! and B's process only, and count the rest ("and 2 more in use by other users", "+1" process);
//! A's retry sees A's own; root sees every inode and every process. REMOVE_KEY's own answer (status
//! flags, errno) stays the kernel's.

mod support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fscryptfs::abi;
use support::{as_fsuid, make_reachable, mount_volume, remove_key, wait_or_kill, KEY};

/// How long one command or ioctl may take before the test fails instead of hanging.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// `FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY`.
const FILES_BUSY: u32 = 0x1;

/// What one run of the command did.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "fscryptfs failed: {}\n{self:?}",
            self.stderr
        );
        &self.stdout
    }
}

/// Runs `fscryptfs ARGS` as `uid` (None: root), with `stdin`, killed after [`STEP_TIMEOUT`].
fn fscryptfs_as(uid: Option<u32>, args: &[&str], stdin: &[u8]) -> Out {
    let mut cmd = Command::new(support::bin());
    cmd.args(args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let mut child = cmd.spawn().expect("spawn fscryptfs");
    {
        use std::io::Write;
        let mut w = child.stdin.take().expect("stdin pipe");
        // Small enough for the pipe: written before the child reads it.
        w.write_all(stdin).expect("write stdin");
    }
    let status = wait_or_kill(&mut child, Instant::now(), STEP_TIMEOUT, "fscryptfs");
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let out = Out {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    };
    assert!(status.is_some(), "fscryptfs {args:?} hung: {out:?}");
    out
}

/// A process (as `uid`, None: root) holding `path` open on fd 3 (created if missing) until dropped.
struct Holder {
    child: Child,
}

impl Holder {
    fn open(uid: Option<u32>, path: &Path) -> Holder {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec 3>>\"$1\" && exec sleep 600")
            .arg("sh")
            .arg(path)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(u) = uid {
            cmd.uid(u).gid(u);
        }
        let mut h = Holder {
            child: cmd.spawn().expect("spawn holder"),
        };
        let fd3 = format!("/proc/{}/fd/3", h.pid());
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if fs::read_link(&fd3).is_ok_and(|t| t.ends_with(path.file_name().unwrap_or_default()))
            {
                return h;
            }
            if let Ok(Some(st)) = h.child.try_wait() {
                panic!("holder of {} exited: {st}", path.display());
            }
            assert!(
                Instant::now() < deadline,
                "holder of {} did not open it",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The holder's pid: the pid its FUSE OPEN carried (`exec` keeps it).
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct unprivileged users from the password database; when there are not two, one is
/// created (`useradd`). None (after a loud SKIPPED, or a panic with FSCRYPTFS_REQUIRE_PRIVILEGED=1)
/// when that fails.
fn two_users() -> Option<(u32, u32)> {
    let users = || -> Vec<u32> {
        let text = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let mut v: Vec<u32> = text
            .lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .filter(|&u| u >= 1000)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut v = users();
    if v.len() < 2 {
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg("fscryptfs-busy")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        v = users();
    }
    if v.len() < 2 {
        let what = "two unprivileged users (useradd failed)";
        if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("prerequisite missing: {what} (FSCRYPTFS_REQUIRE_PRIVILEGED=1)");
        }
        eprintln!("\n******** SKIPPED ({what}) ********\n");
        return None;
    }
    // nobody (65534) when it exists, and another.
    let a = if v.contains(&65534) { 65534 } else { v[0] };
    let b = *v.iter().find(|&&u| u != a)?;
    Some((a, b))
}

/// FSCRYPTFS_IOC_BUSY_FILES on `mnt` for the key `id`, as `uid` (None: root), on a thread whose
/// fsuid is `uid`: the whole answer buffer as the kernel copied it out.
fn busy_files_raw(uid: Option<u32>, mnt: &Path, id: [u8; 16]) -> Vec<u8> {
    let mnt = mnt.to_path_buf();
    let call = move || -> std::io::Result<Vec<u8>> {
        let f = support::open_any(&mnt)?;
        let mut buf = vec![0u8; abi::ioc_size(abi::FSCRYPTFS_IOC_BUSY_FILES)];
        buf[..4].copy_from_slice(&abi::KEY_SPEC_TYPE_IDENTIFIER.to_le_bytes());
        buf[8..24].copy_from_slice(&id);
        support::ioctl(&f, abi::FSCRYPTFS_IOC_BUSY_FILES, &mut buf)?;
        Ok(buf)
    };
    as_fsuid(uid, STEP_TIMEOUT, call).unwrap_or_else(|e| panic!("BUSY_FILES as {uid:?}: {e}"))
}

/// The text of a BUSY_FILES answer (up to the NUL).
fn text_of(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .expect("BUSY_FILES answer is NUL-terminated");
    String::from_utf8(buf[..end].to_vec()).expect("UTF-8")
}

/// Every pid named in `[...]` lists of a busy listing.
fn pids_named(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| {
            let open = l.rfind('[')?;
            let close = open + l[open..].find(']')?;
            Some(l[open + 1..close].to_string())
        })
        .flat_map(|list| {
            list.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The line of `text` naming `path` (exactly, as ` PATH [`).
fn line_of<'a>(text: &'a str, path: &str) -> Option<&'a str> {
    text.lines().find(|l| l.contains(&format!(" {path} [")))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn busy_reports_show_each_user_only_its_own_files_and_processes() {
    let Some(m) = mount_volume(&[], "allow_other") else {
        return;
    };
    let Some((ua, ub)) = two_users() else {
        return;
    };
    make_reachable(&m);
    let mnt = m.mnt.to_str().expect("UTF-8 mount path").to_string();

    // Each user's private directory.
    for (name, uid) in [("alice", ua), ("bob", ub)] {
        let d = m.path(name);
        fs::create_dir(&d).expect("mkdir");
        std::os::unix::fs::chown(&d, Some(uid), Some(uid)).expect("chown");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    // A adds the key and encrypts its directory; B claims the same key and does the same.
    let out = fscryptfs_as(Some(ua), &["add-key", &mnt], &KEY);
    let id_hex = out.ok().trim().to_string();
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id_hex[2 * i..2 * i + 2], 16).expect("hex identifier");
    }
    assert_eq!(hex(&id), id_hex);
    let alice = m.path("alice");
    let bob = m.path("bob");
    fscryptfs_as(
        Some(ua),
        &["set-policy", &id_hex, alice.to_str().expect("UTF-8")],
        b"",
    )
    .ok();
    fscryptfs_as(Some(ub), &["add-key", &mnt], &KEY).ok();
    fscryptfs_as(
        Some(ub),
        &["set-policy", &id_hex, bob.to_str().expect("UTF-8")],
        b"",
    )
    .ok();

    // A's secret file, held by A; B's file, held by B and by root.
    let secret: PathBuf = alice.join("plans-for-tuesday.txt");
    let bobs: PathBuf = bob.join("bobs-file");
    let held_a = Holder::open(Some(ua), &secret);
    let held_b = Holder::open(Some(ub), &bobs);
    let held_root = Holder::open(None, &bobs);
    let (pa, pb, proot) = (held_a.pid(), held_b.pid(), held_root.pid());
    assert_eq!(fs::metadata(&secret).map(|s| s.uid()).ok(), Some(ua));

    // A's removal only drops its claim (the kernel's answer, unchanged).
    let out = fscryptfs_as(Some(ua), &["remove-key", &id_hex, &mnt], b"");
    assert_eq!(
        out.ok(),
        format!("Removed user's claim to encryption key with identifier {id_hex}\n")
    );

    // B's removal starts removing the key: FILES_BUSY, and B is told about its own files only.
    let out = fscryptfs_as(Some(ub), &["remove-key", &id_hex, &mnt], b"");
    let text = out.ok();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!("Removed encryption key with identifier {id_hex}, but files still busy")
                .as_str()
        ),
        "{text}"
    );
    assert!(lines.all(|l| l.starts_with("  ")), "{text}");
    assert!(!text.contains("alice") && !text.contains("plans"), "{text}");
    assert_eq!(pids_named(text), [pb], "{text}");
    let file_line = line_of(text, "/bob/bobs-file").unwrap_or_else(|| panic!("{text}"));
    assert!(
        file_line.ends_with(&format!("[{pb}] and 1 process of other users")),
        "{text}"
    );
    assert!(line_of(text, "/bob").is_some(), "{text}");
    assert!(
        text.ends_with("  and 2 more in use by other users\n"),
        "{text}"
    );

    // The same through the raw ioctl: nothing of A's (or root's) crosses the FUSE channel.
    let raw = busy_files_raw(Some(ub), &m.mnt, id);
    let t = text_of(&raw);
    for needle in [&b"alice"[..], b"plans-for-tuesday"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "B's answer holds {:?}: {t}",
            String::from_utf8_lossy(needle)
        );
    }
    assert!(
        !t.contains(&pa.to_string()) && !t.contains(&proot.to_string()),
        "{t}"
    );
    assert_eq!(pids_named(&t), [pb], "{t}");
    assert_eq!(t.lines().count(), 3, "{t}");
    assert!(
        line_of(&t, "/bob/bobs-file").is_some_and(|l| l.ends_with(&format!("[{pb}] +1"))),
        "{t}"
    );
    assert!(t.ends_with("\nhidden 2 0\n"), "{t}");

    // B (no claim left, key incompletely removed) retries the kernel's REMOVE_KEY: its answer is
    // the kernel's, FILES_BUSY and nothing more.
    let mnt_path = m.mnt.clone();
    let flags = as_fsuid(Some(ub), STEP_TIMEOUT, move || {
        remove_key(&mnt_path, &id, false)
    })
    .expect("retry as B");
    assert_eq!(flags, FILES_BUSY);
    // And without privilege, removing for all users is still EACCES.
    let mnt_path = m.mnt.clone();
    let err = as_fsuid(Some(ub), STEP_TIMEOUT, move || {
        remove_key(&mnt_path, &id, true)
    })
    .expect_err("all-users removal as B");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));

    // A's retry: A's directory and file with A's process; B's counted.
    let out = fscryptfs_as(Some(ua), &["remove-key", &id_hex, &mnt], b"");
    let text = out.ok();
    assert!(
        text.starts_with(&format!(
            "Removed encryption key with identifier {id_hex}, but files still busy\n"
        )),
        "{text}"
    );
    assert!(!text.contains("bob"), "{text}");
    assert_eq!(pids_named(text), [pa], "{text}");
    assert!(
        line_of(text, "/alice/plans-for-tuesday.txt")
            .is_some_and(|l| l.ends_with(&format!("[{pa}]"))),
        "{text}"
    );
    assert!(line_of(text, "/alice").is_some(), "{text}");
    assert!(
        text.ends_with("  and 2 more in use by other users\n"),
        "{text}"
    );
    let t = text_of(&busy_files_raw(Some(ua), &m.mnt, id));
    assert!(!t.contains("bob"), "{t}");
    assert_eq!(pids_named(&t), [pa], "{t}");
    assert!(t.ends_with("\nhidden 2 0\n"), "{t}");

    // Root sees every busy inode and every process, and nothing is hidden from it.
    let t = text_of(&busy_files_raw(None, &m.mnt, id));
    assert_eq!(t.lines().count(), 5, "{t}");
    assert!(line_of(&t, "/alice").is_some(), "{t}");
    assert!(
        line_of(&t, "/alice/plans-for-tuesday.txt")
            .is_some_and(|l| l.ends_with(&format!("[{pa}]"))),
        "{t}"
    );
    assert!(line_of(&t, "/bob").is_some(), "{t}");
    let mut both = [pb, proot];
    both.sort_unstable();
    assert!(
        line_of(&t, "/bob/bobs-file")
            .is_some_and(|l| l.ends_with(&format!("[{},{}]", both[0], both[1]))),
        "{t}"
    );
    assert!(t.ends_with("\nhidden 0 0\n"), "{t}");
    let out = fscryptfs_as(None, &["remove-key", &id_hex, &mnt], b"");
    let text = out.ok();
    for needle in ["/alice/plans-for-tuesday.txt [", "/bob/bobs-file ["] {
        assert!(text.contains(needle), "{text}");
    }
    let mut pids = pids_named(text);
    pids.sort_unstable();
    let mut want = vec![pa, pb, proot];
    want.sort_unstable();
    assert_eq!(pids, want, "{text}");
    assert!(!text.contains("more"), "{text}");

    // A vanished process is dropped: once root's holder is gone, root sees B's pid alone.
    drop(held_root);
    let t = text_of(&busy_files_raw(None, &m.mnt, id));
    assert!(
        line_of(&t, "/bob/bobs-file").is_some_and(|l| l.ends_with(&format!("[{pb}]"))),
        "{t}"
    );

    // Everything closed: the next removal completes, as the kernel's would.
    drop(held_a);
    drop(held_b);
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let out = fscryptfs_as(None, &["remove-key", &id_hex, &mnt], b"");
        if out.ok() == format!("Removed encryption key with identifier {id_hex}\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removal never completed: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
