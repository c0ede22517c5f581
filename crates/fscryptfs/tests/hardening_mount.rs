//! The mount hardening of issue 8 (rows 5 and 6 and 7 of its table), on real FUSE mounts as root:
//! one read-write mount per volume (the `.fscryptfs.lock` OFD lock: a second mount fails with one
//! line naming the holder's pid, the lock dies with a `kill -9`ed daemon and is held through a lazy
//! unmount until the final writeout; `fsck`/`inspect` refuse a read-write mounted volume unless
//! `--force`; a planted symlink, FIFO or directory at the lock's name is refused), an empty
//! mountpoint unless `-o nonempty`, a daemon that is not dumpable (core limit 0, /proc files owned
//! by root for an ordinary user's daemon), and its logs: `-o log=` created 0600 and never through
//! a symlink, the system log (`FSCRYPTFS_SYSLOG_SOCKET` points it at a socket the test binds) when
//! detached without `log=`, and a daemon that still runs when no system log listens.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// `fscryptfs ARGS...` under a 30 s timeout: (exit code, stdout, stderr).
fn run(args: &[&OsStr], envs: &[(&str, &OsStr)]) -> (Option<i32>, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (o, e) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = Command::new(bin())
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawn fscryptfs");
    let st = wait_or_kill(
        &mut child,
        Instant::now(),
        Duration::from_secs(30),
        "fscryptfs",
    )
    .unwrap_or_else(|| panic!("fscryptfs {args:?} hung (killed after 30 s)"));
    (
        st.code(),
        fs::read_to_string(&o).unwrap_or_default(),
        fs::read_to_string(&e).unwrap_or_default(),
    )
}

/// Asserts a command failed with exit `code` and exactly one stderr line; returns that line.
#[track_caller]
fn one_line_failure(r: (Option<i32>, String, String), code: i32) -> String {
    assert_eq!(r.0, Some(code), "exit status; stderr: {}", r.2);
    assert_eq!(r.2.lines().count(), 1, "not one line: {:?}", r.2);
    r.2
}

/// Unmounts a background (detached) mount on drop and waits until it is gone.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if !is_mounted(&self.0) {
            return;
        }
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("fusermount3").arg("-uz").arg(&self.0).status();
        }
    }
}

/// Mounts `backing` on `mnt` without `-f` (the daemon detaches); the mount is live when it returns.
fn mount_background(backing: &Path, mnt: &Path, opts: &str, envs: &[(&str, &OsStr)]) -> String {
    let mut a: Vec<&OsStr> = vec![OsStr::new("mount")];
    if !opts.is_empty() {
        a.extend([OsStr::new("-o"), OsStr::new(opts)]);
    }
    a.extend([backing.as_os_str(), mnt.as_os_str()]);
    let (code, _, err) = run(&a, envs);
    assert_eq!(code, Some(0), "mount failed: {err}");
    assert!(is_mounted(mnt));
    err
}

/// Runs `f` until it is true or `secs` have passed.
fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new volume in a temporary directory (backing `b`, mountpoint `m`, not mounted) with a guard
/// that unmounts whatever a test mounts there.
fn fresh_volume() -> (tempfile::TempDir, PathBuf, PathBuf, Unmount) {
    let tmp = tempfile::tempdir().unwrap();
    let (backing, mnt) = (tmp.path().join("b"), tmp.path().join("m"));
    init(&backing);
    fs::create_dir(&mnt).unwrap();
    let guard = Unmount(mnt.clone());
    (tmp, backing, mnt, guard)
}

fn init(backing: &Path) {
    let (code, _, err) = run(&[OsStr::new("init"), backing.as_os_str()], &[]);
    assert_eq!(code, Some(0), "init: {err}");
}

// ---- one mount per volume ----

#[test]
fn a_second_mount_of_a_volume_fails_with_one_line_naming_the_pid() {
    let Some(m) = mount_volume(&[], "") else {
        return;
    };
    let pid = m.daemon_pid().unwrap();
    fs::write(m.path("f"), b"first").unwrap();
    let lock = m.backing.join(".fscryptfs.lock");
    let md = fs::symlink_metadata(&lock).expect("the daemon made its lock file");
    assert!(md.file_type().is_file());
    assert_eq!(md.mode() & 0o777, 0o600);
    let text = fs::read_to_string(&lock).unwrap();
    assert!(text.starts_with(&format!("{pid} ")), "{text:?}");
    assert!(text.ends_with('\n'), "{text:?}");
    // Hidden from the mount; fsck is refused while mounted (below), so only the listing here.
    let names: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsStr::new("f")], "{names:?}");

    let mnt2 = m.tmp.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let _guard = Unmount(mnt2.clone());
    for fg in [false, true] {
        let mut a = vec![OsStr::new("mount")];
        if fg {
            a.push(OsStr::new("-f"));
        }
        a.extend([m.backing.as_os_str(), mnt2.as_os_str()]);
        let line = one_line_failure(run(&a, &[]), 1);
        assert!(line.contains("in use"), "{line}");
        assert!(
            line.contains(&format!("process {pid} on this host")),
            "{line}"
        );
        assert!(!is_mounted(&mnt2), "second mount appeared (-f: {fg})");
    }
    // The first mount is untouched.
    assert_eq!(fs::read(m.path("f")).unwrap(), b"first");
    fs::write(m.path("g"), b"second").unwrap();
    assert_eq!(fs::read(m.path("g")).unwrap(), b"second");
}

#[test]
fn the_lock_dies_with_a_killed_daemon() {
    let Some(mut m) = mount_volume(&[], "") else {
        return;
    };
    fs::write(m.path("f"), b"x").unwrap();
    m.signal(libc::SIGKILL);
    m.wait_exit(Duration::from_secs(10))
        .expect("the daemon dies on SIGKILL");
    // The dead connection's mount is still there: take it away, then mount again at once.
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(&m.mnt)
        .stderr(Stdio::null())
        .status();
    assert!(wait_until(10, || !m.is_mounted()));
    m.start_again("");
    assert_eq!(fs::read(m.path("f")).unwrap(), b"x");
}

/// A busy mount detached lazily by SIGTERM keeps its daemon, and the lock, until the last file is
/// closed and the final writeout is done; then the volume mounts again with everything written.
#[test]
fn the_lock_is_held_through_a_lazy_unmount_until_the_final_writeout() {
    let Some(mut m) = mount_volume(&[], "") else {
        return;
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(m.path("busy"))
        .unwrap();
    std::io::Write::write_all(&mut f, &[7u8; 5000]).unwrap();
    m.signal(libc::SIGTERM);
    assert!(
        wait_until(10, || !m.is_mounted()),
        "busy mount not detached:\n{}",
        m.log_text()
    );
    let mnt2 = m.tmp.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let _guard = Unmount(mnt2.clone());
    let a = [OsStr::new("mount"), m.backing.as_os_str(), mnt2.as_os_str()];
    let line = one_line_failure(run(&a, &[]), 1);
    assert!(line.contains("in use"), "{line}");
    std::io::Write::write_all(&mut f, &[6u8; 3000]).unwrap();
    drop(f);
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("daemon exits once the last file is closed");
    assert!(st.success(), "{st}");
    m.start_again("");
    let mut want = vec![7u8; 5000];
    want.extend_from_slice(&[6u8; 3000]);
    assert_eq!(fs::read(m.path("busy")).unwrap(), want);
}

#[test]
fn fsck_and_inspect_refuse_a_read_write_mounted_volume_unless_forced() {
    let Some(mut m) = mount_volume(&[], "") else {
        return;
    };
    fs::write(m.path("f"), b"x").unwrap();
    let b = m.backing.clone();
    let pid = m.daemon_pid().unwrap();
    let fsck = |extra: &[&str]| {
        let mut a = vec![OsStr::new("fsck"), b.as_os_str()];
        a.extend(extra.iter().map(OsStr::new));
        run(&a, &[])
    };
    let inspect = |extra: &[&str]| {
        let mut a = vec![OsStr::new("inspect"), b.as_os_str()];
        a.extend(extra.iter().map(OsStr::new));
        a.push(OsStr::new("volume"));
        run(&a, &[])
    };
    let line = one_line_failure(fsck(&[]), 2);
    assert!(
        line.contains(&format!("process {pid}")) && line.contains("--force"),
        "{line}"
    );
    let line = one_line_failure(inspect(&[]), 1);
    assert!(line.contains("--force"), "{line}");
    let (code, out, err) = fsck(&["--force"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.contains("mounted read-write"), "{err}");
    assert!(!out.contains(".fscryptfs.lock"), "{out}");
    let (code, out, err) = inspect(&["--force"]);
    assert_eq!(code, Some(0), "{out}{err}");

    // Read-only mounts share the lock with the offline tools and with each other, not with a
    // read-write mount.
    m.remount("ro");
    let (code, out, err) = fsck(&[]);
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    let mnt2 = m.tmp.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let _guard = Unmount(mnt2.clone());
    let a = [OsStr::new("mount"), b.as_os_str(), mnt2.as_os_str()];
    let line = one_line_failure(run(&a, &[]), 1);
    assert!(line.contains("in use"), "{line}");
    mount_background(&b, &mnt2, "ro", &[]);
    assert_eq!(fs::read(mnt2.join("f")).unwrap(), b"x");
    drop(_guard);

    // Unmounted: clean, and the lock file is not "unknown".
    m.stop();
    let (code, out, err) = fsck(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("0 problems"), "{out}");
}

/// A symlink, FIFO or directory planted at the lock's name: the mount fails at once with EUCLEAN's
/// one line, the symlink's target outside the volume is untouched.
#[test]
fn a_planted_lock_file_is_refused_and_never_followed() {
    if !can_mount() {
        return;
    }
    let (tmp, backing, mnt, _guard) = fresh_volume();
    let canary = tmp.path().join("canary");
    fs::write(&canary, b"canary").unwrap();
    fs::set_permissions(&canary, fs::Permissions::from_mode(0o644)).unwrap();
    let lock = backing.join(".fscryptfs.lock");
    let plants: [(&str, &dyn Fn()); 3] = [
        ("a symlink", &|| {
            std::os::unix::fs::symlink(&canary, &lock).unwrap()
        }),
        ("a FIFO", &|| {
            let c = std::ffi::CString::new(lock.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }),
        ("a directory", &|| fs::create_dir(&lock).unwrap()),
    ];
    for (what, plant) in plants {
        plant();
        for fg in [true, false] {
            let mut a = vec![OsStr::new("mount")];
            if fg {
                a.push(OsStr::new("-f"));
            }
            a.extend([backing.as_os_str(), mnt.as_os_str()]);
            let line = one_line_failure(run(&a, &[]), 1);
            assert!(
                line.contains(what) && line.contains(".fscryptfs.lock"),
                "{line}"
            );
            assert!(!is_mounted(&mnt));
        }
        let md = fs::symlink_metadata(&lock).unwrap();
        if md.is_dir() {
            fs::remove_dir(&lock).unwrap();
        } else {
            fs::remove_file(&lock).unwrap();
        }
    }
    assert_eq!(fs::read(&canary).unwrap(), b"canary");
    assert_eq!(fs::metadata(&canary).unwrap().mode() & 0o7777, 0o644);
    // Cleared: it mounts.
    mount_background(
        &backing,
        &mnt,
        &format!("log={}", tmp.path().join("d.log").display()),
        &[],
    );
}

// ---- the mountpoint ----

#[test]
fn a_non_empty_mountpoint_needs_nonempty() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (backing, mnt) = (tmp.path().join("b"), tmp.path().join("m"));
    init(&backing);
    fs::create_dir(&mnt).unwrap();
    fs::write(mnt.join("hidden"), b"under").unwrap();
    let guard = Unmount(mnt.clone());
    for fg in [true, false] {
        let mut a = vec![OsStr::new("mount")];
        if fg {
            a.push(OsStr::new("-f"));
        }
        a.extend([backing.as_os_str(), mnt.as_os_str()]);
        let line = one_line_failure(run(&a, &[]), 1);
        assert!(
            line.contains("not empty") && line.contains("nonempty"),
            "{line}"
        );
        assert!(!is_mounted(&mnt));
    }
    mount_background(
        &backing,
        &mnt,
        &format!("nonempty,log={}", tmp.path().join("d.log").display()),
        &[],
    );
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0, "the mount hides it");
    drop(guard);
    assert!(wait_until(10, || !is_mounted(&mnt)));
    assert_eq!(fs::read(mnt.join("hidden")).unwrap(), b"under");
}

// ---- not dumpable ----

/// The value of `Max core file size` in /proc/PID/limits: (soft, hard).
fn core_limits(pid: u32) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_else(|| panic!("no core limit in {text}"));
    let mut f = line["Max core file size".len()..].split_whitespace();
    (f.next().unwrap().into(), f.next().unwrap().into())
}

#[test]
fn the_root_daemon_makes_no_core_dump() {
    let Some(m) = mount_volume(&[], "") else {
        return;
    };
    let pid = m.daemon_pid().unwrap();
    assert_eq!(core_limits(pid), ("0".into(), "0".into()));
}

/// An ordinary user's daemon: its /proc files belong to root and the user cannot read its
/// environment (nor its memory); its core limit is 0.
#[test]
fn an_ordinary_users_daemon_is_not_dumpable() {
    if !users_can_mount() {
        return;
    }
    let (tmp, backing, mnt) = nobody_volume_dirs();
    let as_user = |cmd: &mut Command| cmd.uid(NOBODY).gid(NOBODY).env("HOME", "/").output();
    let out = as_user(Command::new(bin()).arg("init").arg(&backing)).unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = tmp.path().join("user.log");
    let mut daemon = Command::new(bin())
        .arg("mount")
        .arg("-f")
        .arg(&backing)
        .arg(&mnt)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _guard = Unmount(mnt.clone());
    let mounted = wait_until(15, || {
        is_mounted(&mnt) || daemon.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(
        mounted && is_mounted(&mnt),
        "no mount: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let pid = daemon.id();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&NOBODY.to_string())),
        "{status}"
    );
    for f in ["environ", "mem"] {
        let md = fs::metadata(format!("/proc/{pid}/{f}")).unwrap();
        assert_eq!(md.uid(), 0, "/proc/{pid}/{f} belongs to root");
    }
    let out = as_user(Command::new("cat").arg(format!("/proc/{pid}/environ"))).unwrap();
    assert!(
        !out.status.success(),
        "the user read its daemon's environment"
    );
    assert_eq!(core_limits(pid), ("0".into(), "0".into()));
    // The lock file is the user's, like every other backing object.
    let lock = fs::metadata(backing.join(".fscryptfs.lock")).unwrap();
    assert_eq!(lock.uid(), NOBODY);
    let out = as_user(Command::new("fusermount3").arg("-u").arg(&mnt)).unwrap();
    assert!(out.status.success(), "{out:?}");
    let st = wait_or_kill(
        &mut daemon,
        Instant::now(),
        Duration::from_secs(10),
        "daemon",
    );
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
}

// ---- logs ----

#[test]
fn the_log_file_is_created_private_and_never_through_a_symlink() {
    if !can_mount() {
        return;
    }
    let (tmp, backing, mnt, guard) = fresh_volume();
    let canary = tmp.path().join("canary");
    fs::write(&canary, b"canary").unwrap();
    let mount = |log: &Path| {
        let o = format!("log={}", log.display());
        run(
            &[
                OsStr::new("mount"),
                OsStr::new("-o"),
                OsStr::new(&o),
                backing.as_os_str(),
                mnt.as_os_str(),
            ],
            &[],
        )
    };
    // A symlink, a FIFO, a directory, another user's file: refused before mounting.
    let link = tmp.path().join("link.log");
    std::os::unix::fs::symlink(&canary, &link).unwrap();
    let line = one_line_failure(mount(&link), 1);
    assert!(line.contains("symlink"), "{line}");
    let dangling = tmp.path().join("dangling.log");
    std::os::unix::fs::symlink(tmp.path().join("made-by-root"), &dangling).unwrap();
    one_line_failure(mount(&dangling), 1);
    assert!(!tmp.path().join("made-by-root").exists());
    let fifo = tmp.path().join("fifo.log");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let line = one_line_failure(mount(&fifo), 1);
    assert!(line.contains("not a regular file"), "{line}");
    let theirs = tmp.path().join("theirs.log");
    fs::write(&theirs, b"").unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let line = one_line_failure(mount(&theirs), 1);
    assert!(line.contains("owned by uid 65534"), "{line}");
    assert!(!is_mounted(&mnt));
    assert_eq!(fs::read(&canary).unwrap(), b"canary");

    // A new log: 0600 whatever the umask, and the daemon writes to it.
    let log = tmp.path().join("daemon.log");
    let (code, _, err) = mount(&log);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    assert!(fs::read_to_string(&log).unwrap().contains("mounted"));
    drop(guard);
}

/// Binds a datagram socket for the daemon's system log.
fn syslog_socket(dir: &Path) -> (UnixDatagram, PathBuf) {
    let p = dir.join("syslog.sock");
    let s = UnixDatagram::bind(&p).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (s, p)
}

/// Datagrams received until one contains `want` (or 15 s pass).
fn receive_until(s: &UnixDatagram, want: &str, got: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = s.recv(&mut buf) {
            let d = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = d.contains(want);
            got.push(d);
            if hit {
                return true;
            }
        }
    }
    false
}

/// Detached without `log=`, the daemon logs to the system log: RFC 3164 datagrams, facility
/// daemon, tagged `fscryptfs[PID]`. (`FSCRYPTFS_SYSLOG_SOCKET` points it at the test's socket;
/// /dev/log itself is the machine's.)
#[test]
fn a_detached_daemon_logs_to_the_system_log() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (backing, mnt) = (tmp.path().join("b"), tmp.path().join("m"));
    init(&backing);
    fs::create_dir(&mnt).unwrap();
    let (sock, path) = syslog_socket(tmp.path());
    let guard = Unmount(mnt.clone());
    let err = mount_background(
        &backing,
        &mnt,
        "",
        &[("FSCRYPTFS_SYSLOG_SOCKET", path.as_os_str())],
    );
    assert_eq!(err, "", "nothing on stderr when the system log listens");
    let mut got = Vec::new();
    assert!(receive_until(&sock, "mounted", &mut got), "{got:?}");
    let first = got.last().unwrap().clone();
    // <30>: facility daemon (3) * 8 + severity info (6).
    assert!(first.starts_with("<30>fscryptfs["), "{first}");
    let pid: u32 = first["<30>fscryptfs[".len()..]
        .split(']')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {first}"));
    assert!(fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .contains("mount"));
    fs::write(mnt.join("f"), b"x").unwrap();
    drop(guard);
    assert!(receive_until(&sock, "unmounted", &mut got), "{got:?}");
}

/// No system log: the daemon says so once on stderr before detaching, and runs.
#[test]
fn without_a_system_log_the_daemon_still_runs() {
    if !can_mount() {
        return;
    }
    let (tmp, backing, mnt, _guard) = fresh_volume();
    let nowhere = tmp.path().join("no-such-socket");
    let err = mount_background(
        &backing,
        &mnt,
        "",
        &[("FSCRYPTFS_SYSLOG_SOCKET", nowhere.as_os_str())],
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("lost") && err.contains("log="), "{err}");
    fs::write(mnt.join("f"), b"still serving").unwrap();
    assert_eq!(fs::read(mnt.join("f")).unwrap(), b"still serving");
}
