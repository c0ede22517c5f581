//! fscryptfs fits the system's mount machinery (issue 11, part 1): `mount -t fuse.fscryptfs`
//! through the helper `/sbin/mount.fuse.fscryptfs` (a symlink to the binary), an fstab line
//! (`mount --fstab FILE MNT`), libfuse's `mount.fuse3` convention (`fscryptfs SOURCE DIR -o OPTS`),
//! an ordinary user's `user` fstab line (plain `mount MNT` / `umount MNT`, in a private mount
//! namespace with its own /etc/fstab), fstab-only options accepted, every mount (root's and an
//! ordinary user's) in mountinfo as
//! `fuse.fscryptfs` with the absolute backing directory as its source, `umount MNT` as root ending
//! the daemon with the data written, and the shipped systemd units passing `systemd-analyze
//! verify`.
//!
//! The helper symlink is shared system state: each test that needs it holds an exclusive lock
//! (`flock` on a file in /tmp) while it exists, moves any file already there aside and puts it
//! back afterwards. Every mount is undone by a guard, whatever the test did.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{bin, can_mount, is_mounted, nobody_volume_dirs, users_can_mount, NOBODY};

/// Where mount(8) looks for the helper of type `fuse.fscryptfs` (its search path is /sbin,
/// /sbin/fs.d, /sbin/fs).
const HELPER: &str = "/sbin/mount.fuse.fscryptfs";

/// Holds the helper installed (a symlink to the built binary) and the lock that serializes the
/// tests using it; removes it (restoring whatever was there) on drop.
struct Helper {
    _lock: std::fs::File,
    saved: Option<PathBuf>,
    installed: bool,
}

impl Helper {
    /// Takes the lock; with `install`, puts the symlink in place, else makes sure none is there.
    fn new(install: bool) -> Helper {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/fscryptfs-test-mount-helper.lock")
            .expect("helper lock file");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        let mut h = Helper {
            _lock: lock,
            saved: None,
            installed: false,
        };
        let here = Path::new(HELPER);
        if here.symlink_metadata().is_ok() {
            let aside = PathBuf::from(format!("{HELPER}.fscryptfs-test-saved"));
            std::fs::rename(here, &aside).expect("move the installed helper aside");
            h.saved = Some(aside);
        }
        if install {
            std::os::unix::fs::symlink(bin(), here).expect("install the helper symlink");
            h.installed = true;
        }
        h
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.installed {
            let _ = std::fs::remove_file(HELPER);
        }
        if let Some(aside) = self.saved.take() {
            let _ = std::fs::rename(aside, HELPER);
        }
    }
}

/// Unmounts `mnt` on drop (if still mounted) and waits for the volume's daemons to exit, killing
/// them after 10 s.
struct Unmount {
    mnt: PathBuf,
    backing: PathBuf,
}

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let ok = Command::new("umount")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if !wait_for(10, || daemons_of(&self.backing).is_empty()) {
            for pid in daemons_of(&self.backing) {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The running (not zombie) `fscryptfs mount` daemons whose command line names `backing`.
fn daemons_of(backing: &Path) -> Vec<i32> {
    let want = backing.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = args.iter().any(|a| a == "mount") && args.iter().any(|a| a == &want);
        let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if ours && !zombie && args.first().is_some_and(|a| a.ends_with("fscryptfs")) {
            pids.push(pid);
        }
    }
    pids
}

fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
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

/// The filesystem type and source of the mount on `mnt` (/proc/self/mountinfo).
fn mountinfo_of(mnt: &Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mnt.to_string_lossy();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        if f.get(4) != Some(&want.as_ref()) {
            return None;
        }
        let sep = f.iter().position(|x| *x == "-")?;
        Some((f.get(sep + 1)?.to_string(), f.get(sep + 2)?.to_string()))
    })
}

/// A fresh volume in a temporary directory (`b`, made with `init`) and an empty mountpoint `m`;
/// the directory's path is canonical, so it is what mountinfo shows.
fn volume() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().expect("canonical tempdir");
    let (backing, mnt) = (dir.join("b"), dir.join("m"));
    std::fs::create_dir(&mnt).expect("mkdir");
    let out = Command::new(bin())
        .arg("init")
        .arg(&backing)
        .output()
        .expect("init");
    assert!(out.status.success(), "init: {out:?}");
    (tmp, backing, mnt)
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What most tests start from: the helper installed (or not), a new volume, and the guard that
/// unmounts it whatever happens. None (after a loud SKIPPED) when this machine cannot mount.
fn prepared(helper: bool) -> Option<(Helper, tempfile::TempDir, PathBuf, PathBuf, Unmount)> {
    if !can_mount() {
        return None;
    }
    let h = Helper::new(helper);
    let (tmp, backing, mnt) = volume();
    let guard = Unmount {
        mnt: mnt.clone(),
        backing: backing.clone(),
    };
    Some((h, tmp, backing, mnt, guard))
}

/// The options an fstab line carries that mean nothing to fscryptfs (mount(8) keeps `noauto` and
/// `x-*` to itself; the rest reach the helper) plus generic ones it maps.
const FSTAB_OPTIONS: &str =
    "defaults,noauto,nofail,_netdev,x-systemd.automount,x-systemd.device-timeout=10,user,users,rw,nodev,nosuid,relatime";

#[test]
fn mount_t_fuse_fscryptfs_accepts_fstab_options_and_shows_the_type_and_source() {
    let Some((_helper, tmp, backing, mnt, _guard)) = prepared(true) else {
        return;
    };
    let log = tmp.path().join("daemon.log");
    run(Command::new("mount")
        .args(["-t", "fuse.fscryptfs"])
        .arg(&backing)
        .arg(&mnt)
        .arg("-o")
        .arg(format!("{FSTAB_OPTIONS},log={}", log.display())));
    assert_eq!(
        mountinfo_of(&mnt),
        Some((
            "fuse.fscryptfs".to_string(),
            backing.to_string_lossy().into_owned()
        ))
    );
    let found = run(Command::new("findmnt")
        .args(["-n", "-t", "fuse.fscryptfs", "-o", "SOURCE,TARGET"])
        .arg(&mnt));
    let found = String::from_utf8_lossy(&found.stdout);
    assert!(
        found.contains(&*backing.to_string_lossy()),
        "findmnt -t fuse.fscryptfs: {found:?}"
    );
    std::fs::write(mnt.join("f"), b"through mount(8)").unwrap();
    // A relative source and mountpoint are made absolute: mountinfo shows the absolute backing path.
    run(Command::new("umount").arg(&mnt));
    assert!(wait_for(10, || daemons_of(&backing).is_empty()));
    run(Command::new("mount")
        .current_dir(tmp.path())
        .args(["-t", "fuse.fscryptfs", "b", "m"]));
    assert_eq!(
        mountinfo_of(&mnt).map(|(_, s)| s),
        Some(backing.to_string_lossy().into_owned())
    );
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"through mount(8)");
}

#[test]
fn an_unknown_option_is_still_refused_with_one_line() {
    if !can_mount() {
        return;
    }
    let _helper = Helper::new(true);
    let (_tmp, backing, mnt) = volume();
    let _guard = Unmount {
        mnt: mnt.clone(),
        backing: backing.clone(),
    };
    let out = Command::new("mount")
        .args(["-t", "fuse.fscryptfs", "-o", "nofail,bogus"])
        .arg(&backing)
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown mount option \"bogus\""), "{err}");
    assert!(!is_mounted(&mnt));
    // mount -s (sloppy): the unknown option is left out, with a warning.
    let out = run(Command::new("mount")
        .args(["-s", "-t", "fuse.fscryptfs", "-o", "nofail,bogus"])
        .arg(&backing)
        .arg(&mnt));
    assert!(is_mounted(&mnt));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ignoring the unknown mount option \"bogus\""),
        "{err}"
    );
    run(Command::new("umount").arg(&mnt));
    assert!(wait_for(10, || daemons_of(&backing).is_empty()));
    // mount -f (fake): everything is checked, nothing mounted.
    run(Command::new("mount")
        .args(["-f", "-t", "fuse.fscryptfs"])
        .arg(&backing)
        .arg(&mnt));
    assert!(!is_mounted(&mnt));
}

#[test]
fn an_fstab_line_mounts() {
    let Some((_helper, tmp, backing, mnt, _guard)) = prepared(true) else {
        return;
    };
    let fstab = tmp.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# test\n{} {} fuse.fscryptfs {FSTAB_OPTIONS},log={} 0 0\n",
            backing.display(),
            mnt.display(),
            tmp.path().join("daemon.log").display()
        ),
    )
    .unwrap();
    run(Command::new("mount").arg("--fstab").arg(&fstab).arg(&mnt));
    assert_eq!(
        mountinfo_of(&mnt),
        Some((
            "fuse.fscryptfs".to_string(),
            backing.to_string_lossy().into_owned()
        ))
    );
    std::fs::write(mnt.join("f"), b"fstab").unwrap();
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"fstab");
}

#[test]
fn mount_fuse3_convention_runs_fscryptfs_with_source_and_mountpoint() {
    if !can_mount() {
        return;
    }
    let Some(fuse3) = ["/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        support::find_tool("mount.fuse3", "apt-get install fuse3");
        return;
    };
    // No helper of ours: libfuse's mount.fuse3 (what mount(8) falls back to for `fuse.*` types)
    // runs `fscryptfs SOURCE DIR -o OPTS` from PATH. mount(8) resets PATH to the standard one, so
    // this runs mount.fuse3 itself with the built binary's directory on PATH.
    let _helper = Helper::new(false);
    let (tmp, backing, mnt) = volume();
    let _guard = Unmount {
        mnt: mnt.clone(),
        backing: backing.clone(),
    };
    let dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new(fuse3)
        .arg(&backing)
        .arg(&mnt)
        .args(["-t", "fuse.fscryptfs", "-o"])
        .arg(format!(
            "nofail,_netdev,users,log={}",
            tmp.path().join("daemon.log").display()
        ))
        .env("PATH", path));
    assert_eq!(
        mountinfo_of(&mnt),
        Some((
            "fuse.fscryptfs".to_string(),
            backing.to_string_lossy().into_owned()
        ))
    );
}

#[test]
fn umount_as_root_ends_the_daemon_and_keeps_the_data() {
    let Some((_helper, tmp, backing, mnt, _guard)) = prepared(true) else {
        return;
    };
    let log = tmp.path().join("daemon.log");
    let mount = || {
        run(Command::new("mount")
            .args(["-t", "fuse.fscryptfs", "-o"])
            .arg(format!("log={}", log.display()))
            .arg(&backing)
            .arg(&mnt));
    };
    for layout in ["extent", "per-file"] {
        let sub = format!("{layout}-dir");
        // Each layout gets its own volume: a fresh backing directory made with that layout.
        if layout == "per-file" {
            std::fs::remove_dir_all(&backing).unwrap();
            run(Command::new(bin())
                .args(["init", "--contents-layout", "per-file"])
                .arg(&backing));
        }
        mount();
        let daemons = daemons_of(&backing);
        assert_eq!(daemons.len(), 1, "one daemon: {daemons:?}");
        // Written through the page cache and the per-extent write buffer, never synced.
        std::fs::create_dir(mnt.join(&sub)).unwrap();
        let data = support::pattern(7, 300_000);
        std::fs::write(mnt.join(&sub).join("data"), &data).unwrap();
        run(Command::new("umount").arg(&mnt));
        assert!(!is_mounted(&mnt));
        assert!(
            wait_for(10, || daemons_of(&backing).is_empty()),
            "the daemon did not exit after umount:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("unmounted"), "{text}");
        mount();
        assert_eq!(std::fs::read(mnt.join(&sub).join("data")).unwrap(), data);
        run(Command::new("umount").arg(&mnt));
        assert!(wait_for(10, || daemons_of(&backing).is_empty()));
    }
}

/// Runs `cmd` as [`NOBODY`] (HOME `/`, no input), which must succeed.
fn as_nobody(cmd: &mut Command) -> std::process::Output {
    cmd.uid(NOBODY)
        .gid(NOBODY)
        .env("HOME", "/")
        .stdin(Stdio::null());
    run(cmd)
}

/// A volume [`NOBODY`] made (`init` as that user) in directories of its own: the temporary
/// directory, the canonical backing directory and mountpoint, and the guard that unmounts it.
fn nobody_volume() -> (tempfile::TempDir, PathBuf, PathBuf, Unmount) {
    let (tmp, backing, mnt) = nobody_volume_dirs();
    let backing = backing.canonicalize().unwrap();
    let mnt = mnt.canonicalize().unwrap();
    let guard = Unmount {
        mnt: mnt.clone(),
        backing: backing.clone(),
    };
    as_nobody(Command::new(bin()).arg("init").arg(&backing));
    (tmp, backing, mnt, guard)
}

#[test]
fn an_ordinary_users_mount_through_the_helper_is_fuse_fscryptfs_too() {
    if !users_can_mount() {
        return;
    }
    let (tmp, backing, mnt, _guard) = nobody_volume();
    // mount(8) runs the helper as the user for a `user` fstab line; here the user runs it directly
    // (argv[0] names the helper; no symlink needed).
    let log = tmp.path().join("user.log");
    std::fs::write(&log, b"").unwrap();
    std::os::unix::fs::chown(&log, Some(NOBODY), Some(NOBODY)).unwrap();
    as_nobody(
        Command::new(bin())
            .arg0("mount.fuse.fscryptfs")
            .arg(&backing)
            .arg(&mnt)
            .arg("-n")
            .arg("-o")
            .arg(format!("nofail,_netdev,user=nobody,log={}", log.display())),
    );
    assert_eq!(
        mountinfo_of(&mnt),
        Some((
            "fuse.fscryptfs".to_string(),
            backing.to_string_lossy().into_owned()
        ))
    );
    as_nobody(Command::new("fusermount3").arg("-u").arg(&mnt));
    assert!(wait_for(10, || daemons_of(&backing).is_empty()));
}

/// `fscryptfs mount` returns only once nothing of the daemon's own holds the mount: an unmount
/// right after it succeeds. (The daemon's `stat` of its mountpoint, which waits for the kernel's
/// INIT and sets the read-ahead, once ran after "ready", and `fusermount3 -u` then failed with
/// EBUSY now and then.) A race, so a hundred rounds as an ordinary user, whose unmount is never lazy.
#[test]
fn an_unmount_right_after_mount_is_never_busy() {
    if !users_can_mount() {
        return;
    }
    let (_tmp, backing, mnt, _guard) = nobody_volume();
    for round in 0..100 {
        as_nobody(Command::new(bin()).arg("mount").arg(&backing).arg(&mnt));
        as_nobody(Command::new("fusermount3").arg("-u").arg(&mnt));
        assert!(
            wait_for(10, || daemons_of(&backing).is_empty()),
            "round {round}: the daemon is still running"
        );
    }
}

/// The shipped units, with the binary's path pointed at the built one: `systemd-analyze verify`
/// (when it is installed; required with FSCRYPTFS_REQUIRE_PRIVILEGED=1).
#[test]
fn the_systemd_units_verify() {
    let Some(analyze) = support::find_tool("systemd-analyze", "apt-get install systemd") else {
        return;
    };
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(dist.join("fscryptfs@.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/bin/fscryptfs mount -f "));
    std::fs::write(
        tmp.path().join("fscryptfs@.service"),
        service.replace("/usr/bin/fscryptfs", bin()),
    )
    .unwrap();
    // A mount unit's name must be its mount point, escaped: the example's is /mnt/vault.
    let mount = std::fs::read_to_string(dist.join("example-mnt-vault.mount")).unwrap();
    assert!(mount.contains("Where=/mnt/vault") && mount.contains("Type=fuse.fscryptfs"));
    std::fs::write(tmp.path().join("mnt-vault.mount"), mount).unwrap();
    for unit in ["fscryptfs@mnt-vault.service", "mnt-vault.mount"] {
        let out = Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(tmp.path().join(unit))
            .env("SYSTEMD_LOG_LEVEL", "notice")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "systemd-analyze verify {unit}: {err}");
        assert!(
            !err.contains("fscryptfs") && !err.contains("vault"),
            "systemd-analyze verify {unit} complains: {err}"
        );
    }
}

/// The service's `ExecStart=` line, with systemd's substitutions made by hand for the instance
/// `mnt-vault`-like escaped mount point and an environment file's `BACKING=`/`OPTIONS=`, mounts in
/// the foreground, and its stop signal (SIGTERM) unmounts and ends it with status 0.
#[test]
fn the_services_command_line_mounts_and_stops_on_sigterm() {
    if !can_mount() {
        return;
    }
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/systemd");
    let service = std::fs::read_to_string(dist.join("fscryptfs@.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let stop_signal = service
        .lines()
        .find_map(|l| l.strip_prefix("KillSignal="))
        .expect("KillSignal=");
    assert_eq!(stop_signal, "SIGTERM");
    let (tmp, backing, mnt) = volume();
    let _guard = Unmount {
        mnt: mnt.clone(),
        backing: backing.clone(),
    };
    for options in ["", "nofail,commit=1"] {
        // `${VAR}` is one argument (empty or not), `%f` the unescaped instance: the mount point.
        let argv: Vec<String> = exec
            .split_whitespace()
            .map(|w| {
                w.replace("${OPTIONS}", options)
                    .replace("${BACKING}", &backing.to_string_lossy())
                    .replace("%f", &mnt.to_string_lossy())
            })
            .collect();
        assert_eq!(argv[0], "/usr/bin/fscryptfs");
        let log = std::fs::File::create(tmp.path().join("service.log")).unwrap();
        let mut child = Command::new(bin())
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let text = || std::fs::read_to_string(tmp.path().join("service.log")).unwrap_or_default();
        assert!(
            wait_for(15, || is_mounted(&mnt)
                || child.try_wait().is_ok_and(|s| s.is_some())),
            "{}",
            text()
        );
        assert_eq!(
            mountinfo_of(&mnt),
            Some((
                "fuse.fscryptfs".to_string(),
                backing.to_string_lossy().into_owned()
            )),
            "{argv:?}: {}",
            text()
        );
        std::fs::write(mnt.join(format!("f{}", options.len())), options).unwrap();
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let st = support::wait_or_kill(
            &mut child,
            Instant::now(),
            Duration::from_secs(10),
            "daemon",
        );
        assert!(st.is_some_and(|s| s.success()), "{st:?}: {}", text());
        assert!(!is_mounted(&mnt));
    }
    for f in ["f0", "f15"] {
        assert!(backing.join(f).exists(), "{f} written through the mount");
    }
}

/// An ordinary user mounts and unmounts a `user` line of /etc/fstab with plain `mount MNT` and
/// `umount MNT`: setuid mount(8) runs the helper as the user, which mounts through fusermount3.
/// The fstab is a temporary file bind-mounted over /etc/fstab in a private mount namespace
/// (`unshare -m`), so the machine's own is never touched; the mount lives in that namespace.
#[test]
fn an_ordinary_user_mounts_a_user_fstab_line() {
    if !users_can_mount() {
        return;
    }
    let _helper = Helper::new(true);
    let (tmp, backing, mnt) = nobody_volume_dirs();
    let backing = backing.canonicalize().unwrap();
    let mnt = mnt.canonicalize().unwrap();
    let _guard = Unmount {
        mnt: mnt.clone(),
        backing: backing.clone(),
    };
    run(Command::new(bin())
        .arg("init")
        .arg(&backing)
        .uid(NOBODY)
        .gid(NOBODY)
        .env("HOME", "/"));
    let log = tmp.path().join("user.log");
    std::fs::write(&log, b"").unwrap();
    std::os::unix::fs::chown(&log, Some(NOBODY), Some(NOBODY)).unwrap();
    let fstab = tmp.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{} {} fuse.fscryptfs user,noauto,nofail,_netdev,log={} 0 0\n",
            backing.display(),
            mnt.display(),
            log.display()
        ),
    )
    .unwrap();
    let user = format!("setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups");
    let m = mnt.display();
    let script = format!(
        "set -e\n\
         mount --bind '{fstab}' /etc/fstab\n\
         {user} mount '{m}'\n\
         grep ' {m} ' /proc/self/mountinfo\n\
         {user} sh -c 'echo user-data > \"$1\"/f && cat \"$1\"/f' sh '{m}'\n\
         {user} umount '{m}'\n\
         if grep -q ' {m} ' /proc/self/mountinfo; then echo still-mounted; exit 1; fi\n",
        fstab = fstab.display()
    );
    let out = run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(&script));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    let f: Vec<&str> = line.split(' ').collect();
    let sep = f.iter().position(|x| *x == "-").expect("a mountinfo line");
    assert_eq!(f[sep + 1], "fuse.fscryptfs", "{text}");
    assert_eq!(f[sep + 2], backing.to_string_lossy(), "{text}");
    assert!(text.contains("user-data"), "{text}");
    // The daemon (which held the namespace) is gone after the user's umount.
    assert!(wait_for(10, || daemons_of(&backing).is_empty()));
    assert!(std::fs::read_to_string(&log).unwrap().contains("unmounted"));
}
