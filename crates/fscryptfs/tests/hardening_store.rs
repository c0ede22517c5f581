//! The backing store is hostile input: attacks planted in it by an unprivileged user (uid 65534,
//! who owns directories of a root daemon's `allow_other` volume, since the daemon mirrors owners)
//! or by whoever copies, syncs or restores it.
//!
//! The main test is driven by `store::io::DAEMON_NAMES`, the store's own list of the names the
//! daemon creates or reads beside users' entries, so a name added there is attacked here without
//! editing this file: at each name, in the backing root and in a directory the attacker owns, it
//! plants in turn a symlink to a canary file outside the volume, a dangling symlink into a
//! root-only directory, a FIFO, a directory, a socket and an 8 GiB sparse file, then remounts and
//! runs every operation that touches the name. Pass: the canary is never changed and nothing is
//! created through the dangling link, no request takes longer than a few seconds, the daemon's
//! peak memory stays small, every failure is EUCLEAN or EIO with a log line naming the backing
//! path, and the daemon keeps serving. Long-name side files (`<entry>.n`) get their own test.
//!
//! Needs root and /dev/fuse (loud SKIPPED otherwise; a failure with FSCRYPTFS_REQUIRE_PRIVILEGED=1).

mod support;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fscryptfs::store::io::{Place, DAEMON_NAMES};
use support::*;

const ATTACKER: u32 = 65534;
const EUCLEAN: i32 = 117;
const EIO: i32 = 5;
/// No request may take longer than this.
const OP_LIMIT: Duration = Duration::from_secs(10);
/// The daemon's peak resident memory stays below this whatever is planted.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// What an attacker plants at a name.
#[derive(Clone, Copy, Debug)]
enum Plant {
    /// A symlink to a canary file outside the volume (a write through it would change it).
    SymlinkToCanary,
    /// A dangling symlink into a root-only directory (a create through it would make a file
    /// there: the reported root exploit).
    DanglingSymlink,
    Fifo,
    Directory,
    Socket,
    /// A sparse file of 8 GiB (a whole read would take the daemon's memory).
    Oversized,
}

const PLANTS: [Plant; 6] = [
    Plant::SymlinkToCanary,
    Plant::DanglingSymlink,
    Plant::Fifo,
    Plant::Directory,
    Plant::Socket,
    Plant::Oversized,
];

/// The objects outside the volume that must never be touched.
struct Canary {
    _dir: tempfile::TempDir,
    file: PathBuf,
    /// Where a create through the dangling symlink would land (in a 0700 root directory).
    forbidden: PathBuf,
    bytes: Vec<u8>,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let file = dir.path().join("canary");
        let bytes = b"canary: a root-owned file the attacker may read but never change\n".to_vec();
        fs::write(&file, &bytes).expect("canary");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        let root_only = dir.path().join("root-only");
        fs::create_dir(&root_only).expect("mkdir");
        fs::set_permissions(&root_only, fs::Permissions::from_mode(0o700)).expect("chmod");
        Canary {
            file,
            forbidden: root_only.join("created-by-the-daemon"),
            bytes,
            _dir: dir,
        }
    }

    fn assert_untouched(&self, ctx: &str) {
        assert_eq!(
            fs::read(&self.file).expect("read canary"),
            self.bytes,
            "{ctx}: the canary outside the volume was changed"
        );
        let md = fs::metadata(&self.file).expect("stat canary");
        assert_eq!(md.uid(), 0, "{ctx}: the canary changed owner");
        assert_eq!(md.mode() & 0o7777, 0o644, "{ctx}: the canary changed mode");
        assert!(
            fs::symlink_metadata(&self.forbidden).is_err(),
            "{ctx}: the daemon created {} through a planted symlink",
            self.forbidden.display()
        );
    }
}

/// Runs a Python snippet as the attacker (uid/gid 65534, no groups), with `argv[1]` = `path`.
fn as_attacker(script: &str, path: &Path) {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={ATTACKER}"),
            &format!("--regid={ATTACKER}"),
            "--clear-groups",
            // The distribution's interpreter: one under root's home (pyenv) is not the
            // attacker's to run.
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    assert!(
        out.status.success(),
        "attacker's {script:?} on {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Plants `plant` at `path` (whatever was there is removed first), as the attacker when
/// `attacker`, else as root (a hostile copy or restore of the backing store).
fn plant_at(path: &Path, plant: Plant, canary: &Canary, attacker: bool) {
    let target = match plant {
        Plant::SymlinkToCanary => canary.file.display().to_string(),
        _ => canary.forbidden.display().to_string(),
    };
    let script = format!(
        r#"
import os, socket, shutil, sys
p = sys.argv[1]
if os.path.isdir(p) and not os.path.islink(p):
    shutil.rmtree(p)
elif os.path.lexists(p):
    os.unlink(p)
kind = {kind:?}
if kind in ("SymlinkToCanary", "DanglingSymlink"):
    os.symlink({target:?}, p)
elif kind == "Fifo":
    os.mkfifo(p, 0o666)
elif kind == "Directory":
    os.mkdir(p, 0o777)
elif kind == "Socket":
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
elif kind == "Oversized":
    with open(p, "wb") as f:
        f.truncate(8 << 30)
"#,
        kind = format!("{plant:?}"),
    );
    if attacker {
        as_attacker(&script, path);
    } else {
        let out = Command::new("python3")
            .args(["-c", &script])
            .arg(path)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `f` on its own thread; its errno (0 for success), or a panic when it takes longer than
/// [`OP_LIMIT`] (a blocked daemon).
fn timed(what: &str, f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> i32 {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f().map_or_else(|e| e.raw_os_error().unwrap_or(-1), |()| 0));
    });
    match rx.recv_timeout(OP_LIMIT) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the check panicked"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "{what}: no answer after {:?}: a planted object blocked the daemon",
            start.elapsed()
        ),
    }
}

/// The daemon's peak resident memory in KiB.
fn daemon_peak_rss_kib(m: &Mounted) -> u64 {
    let pid = m.daemon_pid().expect("daemon running");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

/// What the operations answered: (operation, errno).
type Answers = Vec<(String, i32)>;

/// Every operation that touches a daemon name in directory `rel` of the mount (`""` = the root):
/// its metadata (stat, list, create, mkdir, set-policy), its special-file record (mkfifo, list
/// with types, unlink), the volume config (creating enough inodes to reserve numbers), and a
/// write/fsync/read of a file.
fn touch_everything(m: &Mounted, rel: &str) -> Answers {
    let dir = if rel.is_empty() {
        m.mnt.clone()
    } else {
        m.path(rel)
    };
    let mut out = Vec::new();
    let mut op = |name: &str, f: Box<dyn FnOnce() -> std::io::Result<()> + Send>| {
        out.push((name.to_string(), timed(name, f)));
    };
    let d = dir.clone();
    op("stat", Box::new(move || fs::metadata(&d).map(|_| ())));
    let d = dir.clone();
    op(
        "list",
        Box::new(move || {
            for e in fs::read_dir(&d)? {
                let e = e?;
                let _ = fs::symlink_metadata(e.path());
            }
            Ok(())
        }),
    );
    let d = dir.clone();
    op(
        "create, write, fsync, read",
        Box::new(move || {
            use std::io::Write;
            let p = d.join("file");
            let mut f = fs::File::create(&p)?;
            f.write_all(b"hello")?;
            f.sync_all()?;
            drop(f);
            assert_eq!(fs::read(&p)?, b"hello", "data read back");
            Ok(())
        }),
    );
    let d = dir.clone();
    op("mkdir", Box::new(move || fs::create_dir(d.join("sub"))));
    let d = dir.clone();
    op(
        "set-policy",
        Box::new(move || {
            let e = d.join("sub");
            let id = add_key(&e, &KEY)?;
            set_policy(&e, &policy_v2(&id))
        }),
    );
    let d = dir.clone();
    op(
        "mkfifo",
        Box::new(move || {
            let c = std::ffi::CString::new(d.join("fifo").as_os_str().as_encoded_bytes())
                .map_err(|_| std::io::Error::from_raw_os_error(22))?;
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }),
    );
    let d = dir.clone();
    op(
        "list special files",
        Box::new(move || fs::symlink_metadata(d.join("fifo")).map(|_| ())),
    );
    let d = dir.clone();
    op(
        "creates (the first after a mount reserves inode numbers in the config)",
        Box::new(move || {
            for i in 0..3 {
                fs::File::create(d.join(format!("n{i}")))?;
            }
            Ok(())
        }),
    );
    let d = dir.clone();
    op(
        "unlink",
        Box::new(move || {
            for e in fs::read_dir(&d)? {
                let p = e?.path();
                if p.is_dir() {
                    let _ = fs::remove_dir(&p);
                } else {
                    let _ = fs::remove_file(&p);
                }
            }
            Ok(())
        }),
    );
    out
}

/// Makes directory `rel` in the mount, owned by the attacker (so its backing form is too).
fn attacker_dir(m: &Mounted, rel: &str) -> PathBuf {
    let p = m.path(rel);
    fs::create_dir(&p).expect("mkdir");
    std::os::unix::fs::chown(&p, Some(ATTACKER), Some(ATTACKER)).expect("chown");
    let b = m.backing.join(rel);
    assert_eq!(
        fs::metadata(&b).expect("backing dir").uid(),
        ATTACKER,
        "the daemon mirrors owners"
    );
    b
}

#[test]
fn every_daemon_name_withstands_every_planted_object() {
    let Some(mut m) = mount_volume(&[], "allow_other") else {
        return;
    };
    let canary = Canary::new();
    let mut n = 0;
    for &(name, place) in DAEMON_NAMES {
        let places: &[bool] = match place {
            Place::Root => &[true],
            Place::EveryDirectory => &[false, true],
        };
        for plant in PLANTS {
            for &in_root in places {
                n += 1;
                let ctx = format!(
                    "{plant:?} at {name} in {}",
                    if in_root {
                        "the root"
                    } else {
                        "a user's directory"
                    }
                );
                let rel = format!("d{n}");
                let bdir = attacker_dir(&m, &rel);
                let target = if in_root {
                    m.backing.join(name)
                } else {
                    bdir.join(name)
                };
                m.stop();
                // What a root plant replaces, to put the volume back afterwards.
                let saved = if in_root {
                    fs::read(&target).ok()
                } else {
                    None
                };
                plant_at(&target, plant, &canary, !in_root);
                let log_before = m.log_text().len();
                let answers: Answers = match m.try_start_again("allow_other") {
                    Ok(()) => {
                        add_key(&m.mnt, &KEY).expect("add key");
                        let mut a = touch_everything(&m, &rel);
                        a.extend(touch_everything(&m, ""));
                        // Still serving: a fresh directory elsewhere works.
                        let ok = m.path(&format!("ok{n}"));
                        fs::create_dir(&ok).expect("the daemon keeps serving");
                        fs::write(ok.join("f"), b"x").expect("the daemon keeps serving");
                        let rss = daemon_peak_rss_kib(&m);
                        assert!(rss < RSS_LIMIT_KIB, "{ctx}: daemon peak RSS {rss} KiB");
                        m.stop();
                        a
                    }
                    Err(log) => {
                        // A refused mount is right for damaged root metadata, with one line that
                        // says what is wrong.
                        assert!(in_root, "{ctx}: mount refused: {log}");
                        assert!(
                            log.contains("belongs") || log.contains("more than"),
                            "{ctx}: a refused mount says what is damaged: {log}"
                        );
                        Vec::new()
                    }
                };
                canary.assert_untouched(&ctx);
                let log = m.log_text()[log_before..].to_string();
                for (op, e) in &answers {
                    assert!(
                        matches!(*e, 0 | EUCLEAN | EIO | libc::ENOENT | libc::EEXIST),
                        "{ctx}: {op} answered errno {e}"
                    );
                }
                assert!(
                    log.contains(&target.display().to_string()),
                    "{ctx}: no log line names the backing path {}:\n{log}",
                    target.display()
                );
                // Put the volume back for the next round (the user's damaged directory goes).
                remove_any(&target);
                if let Some(bytes) = saved {
                    fs::write(&target, bytes).expect("restore");
                }
                if !in_root {
                    remove_any(&bdir);
                }
                m.start_again("allow_other");
            }
        }
    }
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p).expect("rm -r"),
        Ok(_) => fs::remove_file(p).expect("rm"),
        Err(_) => {}
    }
}

/// Row 1 of the attack, for long-name side files: a symlink planted at the side-file name of an
/// entry about to be created (the attacker owns the encrypted directory and can compute it) is
/// refused, never written through; one planted at an existing entry's side file shows the no-key
/// name with a log line.
#[test]
fn planted_side_files_are_refused_and_never_followed() {
    let Some(mut m) = mount_volume(&[], "allow_other") else {
        return;
    };
    let canary = Canary::new();
    let id = add_key(&m.mnt, &KEY).expect("add key");
    let enc = m.path("enc");
    fs::create_dir(&enc).expect("mkdir");
    set_policy(&enc, &policy_v2(&id)).expect("set policy");
    std::os::unix::fs::chown(&enc, Some(ATTACKER), Some(ATTACKER)).expect("chown");
    let long = "L".repeat(200);
    let side_of = |m: &Mounted| -> OsString {
        fs::read_dir(m.backing.join("enc"))
            .expect("list backing")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .find(|n| n.to_string_lossy().ends_with(".n"))
            .expect("a side file")
    };
    fs::write(enc.join(&long), b"x").expect("create long name");
    let side = m.backing.join("enc").join(side_of(&m));
    // The entry goes (its side file with it); the attacker plants at the side file's name.
    fs::remove_file(enc.join(&long)).expect("unlink");
    assert!(
        fs::symlink_metadata(&side).is_err(),
        "side file removed with its entry"
    );
    for plant in [
        Plant::SymlinkToCanary,
        Plant::DanglingSymlink,
        Plant::Fifo,
        Plant::Directory,
    ] {
        plant_at(&side, plant, &canary, true);
        let e = timed("create over a planted side file", {
            let p = enc.join(&long);
            move || fs::write(p, b"y")
        });
        assert_eq!(e, EUCLEAN, "{plant:?}: create answered errno {e}");
        canary.assert_untouched(&format!("{plant:?} at a side file"));
        assert!(
            m.log_text().contains(".n"),
            "a log line names the side file"
        );
        remove_any(&side);
    }
    // An existing entry's side file replaced by a FIFO: listing shows the no-key name, no hang.
    fs::write(enc.join(&long), b"z").expect("create long name");
    let side = m.backing.join("enc").join(side_of(&m));
    plant_at(&side, Plant::Fifo, &canary, true);
    m.remount("allow_other");
    add_key(&m.mnt, &KEY).expect("add key");
    let e = timed("list with a FIFO side file", {
        let enc = enc.clone();
        move || {
            let names: Vec<_> = fs::read_dir(&enc)?.filter_map(|e| e.ok()).collect();
            assert_eq!(names.len(), 1);
            assert_ne!(
                names[0].file_name(),
                OsString::from(&long),
                "no-key name shown"
            );
            Ok(())
        }
    });
    assert_eq!(e, 0);
    assert!(
        m.log_text().contains("FIFO"),
        "a log line says what was found"
    );
    canary.assert_untouched("FIFO side file");
}

/// Row 8: a write near the kernel's size limit in a per-extent file is kept (the layout stores
/// every size the kernel accepts), across fsync, key removal and a new add; one past it fails at
/// the call. Per-file files refuse a size beyond ext4's limit at the call when the write reaches
/// the daemon (no writeback cache).
#[test]
fn writes_at_the_size_limit_fail_at_the_call_or_are_kept() {
    use std::os::unix::fs::FileExt;
    let Some((mut m, id)) = encrypted_volume() else {
        return;
    };
    let p = m.path("enc/big");
    let near = (1u64 << 63) - 8192;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .expect("create");
    f.write_all_at(&[7u8; 4096], near).expect("write near 2^63");
    let e = f
        .write_at(&[8u8; 4096], near + 4096)
        .expect_err("past 2^63 - 1");
    assert!(
        matches!(e.raw_os_error(), Some(libc::EFBIG) | Some(libc::EINVAL)),
        "{e}"
    );
    f.sync_all()
        .expect("fsync: nothing accepted is refused later");
    drop(f);
    remove_key(&m.mnt, &id, false).expect("remove key");
    add_key(&m.mnt, &KEY).expect("add key");
    let f = fs::File::open(&p).expect("open");
    assert_eq!(f.metadata().expect("stat").len(), near + 4096);
    let mut back = [0u8; 4096];
    f.read_exact_at(&mut back, near).expect("read back");
    assert_eq!(back, [7u8; 4096]);
    drop(f);
    m.stop();

    // Per-file layout without the writeback cache: the daemon sees the write and refuses it.
    let Some((m, _)) = encrypted_volume_made_with(&["--contents-layout=per-file"]) else {
        return;
    };
    drop(m);
    let Some(m) = mount_volume(&["--contents-layout=per-file"], "no_writeback_cache") else {
        return;
    };
    let f = fs::File::create(m.path("f")).expect("create");
    let limit = ((1u64 << 32) - 1) << 12;
    let e = f.write_at(b"x", limit).expect_err("past ext4's limit");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    let e = f.set_len(limit + 1).expect_err("truncate past the limit");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    f.sync_all().expect("nothing was accepted");
}

/// Row 1 of the attack, for regular files made in place (`O_CREAT|O_EXCL` under the final name):
/// the attacker owns a directory, lets the mount find a name absent, then plants a symlink (to the
/// canary, dangling) or a directory at that very backing name before the create arrives. Whether
/// the kernel sends the CREATE (a cached negative entry) or looks the name up again, the create
/// fails (EEXIST at the exclusive create, or the damaged entry's EUCLEAN, EISDIR, ELOOP), nothing
/// is written through the plant, and the plant is still there, unchanged in type.
#[test]
fn a_plant_at_the_name_being_created_is_never_opened() {
    let Some(m) = mount_volume(&[], "allow_other") else {
        return;
    };
    let canary = Canary::new();
    let dir = m.path("plain");
    fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::chown(&dir, Some(ATTACKER), Some(ATTACKER)).expect("chown");
    for (i, plant) in [
        Plant::SymlinkToCanary,
        Plant::DanglingSymlink,
        Plant::Directory,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("new{i}");
        assert!(
            fs::symlink_metadata(dir.join(&name)).is_err(),
            "absent first"
        );
        let backing = m.backing.join("plain").join(&name);
        plant_at(&backing, plant, &canary, true);
        let e = timed("create at a planted name", {
            let p = dir.join(&name);
            move || {
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p)
                    .map(drop)
            }
        });
        assert!(
            matches!(e, libc::EEXIST | EUCLEAN | libc::EISDIR | libc::ELOOP),
            "{plant:?}: create answered errno {e}"
        );
        canary.assert_untouched(&format!("{plant:?} at the name being created"));
        let md = fs::symlink_metadata(&backing).expect("the plant is still there");
        match plant {
            Plant::Directory => assert!(md.is_dir(), "{plant:?}"),
            _ => assert!(md.file_type().is_symlink(), "{plant:?}"),
        }
    }
}
