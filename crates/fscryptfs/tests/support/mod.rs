//! Test plumbing for real mounts: a fresh volume in a temporary directory, mounted with the real
//! binary (`fscryptfs mount -f` in a child process), unmounted and reaped on drop whatever happens,
//! with the daemon's log printed when the test failed. Raw ioctl helpers speak `fscryptfs::abi`
//! directly, so these tests do not depend on the command's key subcommands.
//!
//! Prerequisites (/dev/fuse, root): when `FSCRYPTFS_REQUIRE_PRIVILEGED=1` a missing one fails the
//! test; otherwise the test prints a loud `SKIPPED (...)` line and returns.

#![allow(dead_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fscryptfs::abi;

/// A mounted volume; unmounts and reaps the daemon on drop.
pub struct Mounted {
    /// Keeps the temporary directory alive.
    pub tmp: tempfile::TempDir,
    /// The backing directory.
    pub backing: PathBuf,
    /// The mountpoint.
    pub mnt: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Says loudly that a prerequisite is missing and the test is skipped (false), or panics when
/// `FSCRYPTFS_REQUIRE_PRIVILEGED=1` (CI).
pub fn require_or_skip(what: &str) -> bool {
    if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("prerequisite missing: {what} (FSCRYPTFS_REQUIRE_PRIVILEGED=1)");
    }
    eprintln!("\n******** SKIPPED ({what}) ********\n");
    false
}

/// Whether this environment can mount (root and /dev/fuse); prints SKIPPED or panics otherwise.
pub fn can_mount() -> bool {
    if !Path::new("/dev/fuse").exists() {
        return require_or_skip("/dev/fuse is missing");
    }
    if !rustix_is_root() {
        return require_or_skip("these tests need root");
    }
    true
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `fscryptfs` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fscryptfs")
}

/// Creates a volume (`init` with `init_args`) and mounts it (`-o opts` when non-empty). None when
/// the environment cannot mount (after printing SKIPPED).
pub fn mount_volume(init_args: &[&str], opts: &str) -> Option<Mounted> {
    if !can_mount() {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir mnt");
    let out = Command::new(bin())
        .arg("init")
        .args(init_args)
        .arg(&backing)
        .output()
        .expect("run init");
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = Mounted {
        log: tmp.path().join("daemon.log"),
        tmp,
        backing,
        mnt,
        child: None,
    };
    m.start(opts);
    Some(m)
}

/// Mounts an existing backing directory (made with `init`, e.g. on a loop filesystem the test
/// made) on `mnt`; the guard's temporary directory holds only the daemon log.
pub fn mount_backing(backing: &Path, mnt: &Path, opts: &str) -> Mounted {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut m = Mounted {
        log: tmp.path().join("daemon.log"),
        tmp,
        backing: backing.to_path_buf(),
        mnt: mnt.to_path_buf(),
        child: None,
    };
    m.start(opts);
    m
}

/// Finds the test tool `name` on PATH or in Cargo's bin directory. None (after a loud SKIPPED)
/// when it is missing, a panic when `FSCRYPTFS_REQUIRE_PRIVILEGED=1`; `install` says how to get it.
pub fn find_tool(name: &str, install: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(h).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cargo/bin"));
    }
    if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(p);
    }
    require_or_skip(&format!("`{name}` is not installed: {install}"));
    None
}

/// Whether `mnt` is a mountpoint now (/proc/self/mountinfo).
pub fn is_mounted(mnt: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = mnt.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|p| p == want))
}

/// Unmounts the daemonized mount at `mnt`: `umount` until it takes (it is EBUSY while the
/// kernel still holds the fresh mount's root), lazily after 10 s; then waits for the daemon to
/// let go of the volume lock, which it does as it exits, just after the unmount.
pub fn wait_unmounted(mnt: &Path) {
    let t0 = Instant::now();
    while is_mounted(mnt) {
        let lazy = t0.elapsed() > Duration::from_secs(10);
        let _ = Command::new("umount")
            .args(if lazy { &["-l"][..] } else { &[][..] })
            .arg(mnt)
            .stderr(Stdio::null())
            .status();
        assert!(t0.elapsed() < Duration::from_secs(20), "still mounted");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

impl Mounted {
    fn start(&mut self, opts: &str) {
        if let Err(e) = self.try_start(opts) {
            panic!("{e}");
        }
    }

    /// Mounts (`mount -f` in a child); the daemon's log when it exits before mounting.
    fn try_start(&mut self, opts: &str) -> Result<(), String> {
        // Appended to: a remount keeps the earlier daemon's log for the failure report.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(bin());
        cmd.arg("mount").arg("-f");
        if !opts.is_empty() {
            cmd.arg("-o").arg(opts);
        }
        cmd.arg(&self.backing)
            .arg(&self.mnt)
            .env("FSCRYPTFS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn daemon");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if is_mounted(&self.mnt) {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!(
                    "daemon exited ({st}) before mounting:\n{}",
                    self.log_text()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mount did not appear within 15 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops the daemon, moves its (debug-level, possibly huge) log into `art`, and leaves only its
    /// tail where the drop prints it on a panic.
    pub fn stop_and_keep_log(&mut self, art: &Path) {
        self.stop();
        let full = art.join("daemon.log");
        if std::fs::copy(&self.log, &full).is_ok() {
            let text = self.log_text();
            let short = format!(
                "[... full log: {} ...]\n{}",
                full.display(),
                tail(&text, 100)
            );
            let _ = std::fs::write(&self.log, short);
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts (lazily if busy) and reaps the daemon.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }

    /// Unmounts and mounts again (the daemon's keyring starts empty).
    pub fn remount(&mut self, opts: &str) {
        self.stop();
        self.start(opts);
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The daemon's process id, while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        let pid = self.daemon_pid().expect("daemon running") as i32;
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// Waits up to `timeout` for the daemon to exit; its status, and the daemon is reaped. None
    /// if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mounts again after the daemon stopped; the daemon's log when the mount was refused.
    pub fn try_start_again(&mut self, opts: &str) -> Result<(), String> {
        assert!(self.child.is_none(), "daemon still running");
        self.try_start(opts)
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Mounts again after the daemon exited by itself (no unmount first).
    pub fn start_again(&mut self, opts: &str) {
        assert!(self.child.is_none(), "daemon still running");
        self.start(opts);
    }

    /// Whether the mountpoint is mounted.
    pub fn is_mounted(&self) -> bool {
        is_mounted(&self.mnt)
    }
}

/// Which of `needles` (name, bytes; each at least 16 bytes) occur in the memory of process `pid`,
/// searched as 16-byte pieces through `/proc/PID/mem` (needs root). Returns the names found.
pub fn scan_process(pid: u32, needles: &[(&str, &[u8])]) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = scan_process_hits(pid, needles)
        .into_iter()
        .map(|h| h.needle().to_string())
        .collect();
    names.into_iter().collect()
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", failure_report(&self.log_text()));
            if let Some(dir) = std::env::var_os("FSCRYPTFS_TEST_KEEP_LOGS") {
                let to = Path::new(&dir).join(format!("daemon-{}.log", std::process::id()));
                if std::fs::copy(&self.log, &to).is_ok() {
                    eprintln!("daemon log kept in {}", to.display());
                }
            }
        }
    }
}

/// The backing file of the regular file with stable number `ino` in backing directory `dir`, and
/// its parsed header (panics when there is none).
pub fn backing_file_of(dir: &Path, ino: u64) -> (PathBuf, fscryptfs::store::meta::FileHeader) {
    use std::os::unix::fs::FileExt;
    let fsp = fscryptfs::store::fs_params();
    for e in std::fs::read_dir(dir).expect("read backing dir") {
        let p = e.expect("backing dir entry").path();
        if !p.is_file()
            || p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        {
            continue;
        }
        let mut b = [0u8; 80];
        File::open(&p)
            .and_then(|f| f.read_exact_at(&mut b, 0))
            .expect("read a backing header");
        if let Ok(h) = fscryptfs::store::meta::FileHeader::parse(&b, &fsp, "f") {
            if h.ino == ino {
                return (p, h);
            }
        }
    }
    panic!("no backing file with inode {ino} in {}", dir.display());
}

/// A volume whose backing store lives on a size-limited tmpfs (ENOSPC tests). Drop order: the
/// daemon first, then the tmpfs.
pub struct SmallVolume {
    pub m: Mounted,
    ram: PathBuf,
}

impl SmallVolume {
    /// Stops `m`, moves its backing store onto a new tmpfs of `size` bytes and mounts it from there
    /// with `opts`.
    pub fn move_onto_tmpfs(mut m: Mounted, size: u64, opts: &str) -> SmallVolume {
        m.stop();
        let ram = m.tmp.path().join("ram");
        std::fs::create_dir(&ram).expect("mkdir ram");
        let mut v = SmallVolume { m, ram };
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&v.ram)
            .status()
            .is_ok_and(|s| s.success());
        assert!(mounted, "mount -t tmpfs (needs root)");
        let backing = v.ram.join("backing");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&v.m.backing)
            .arg(&backing)
            .status()
            .is_ok_and(|s| s.success());
        assert!(copied, "cp -a the backing store onto the tmpfs");
        v.m.backing = backing;
        v.m.remount(opts);
        v
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        self.m.stop();
        let ok = Command::new("umount")
            .arg(&self.ram)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.ram).status();
        }
    }
}

/// Deterministic bytes (xorshift64 from `seed`).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs the `fscryptfs` binary with `args`, feeding `stdin` from a thread (the child writes its
/// output while it reads, and pipes are bounded); returns its status and output.
pub fn run_fscryptfs(args: &[&std::ffi::OsStr], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fscryptfs");
    let mut si = child.stdin.take().expect("stdin");
    let input = stdin.map(<[u8]>::to_vec);
    let feeder = std::thread::spawn(move || {
        if let Some(b) = input {
            si.write_all(&b).expect("write stdin");
        }
    });
    let out = child.wait_with_output().expect("wait");
    feeder.join().expect("stdin feeder");
    out
}

/// Waits for `child` until `deadline` has passed since `start`; kills it then. None: killed.
pub fn wait_or_kill(
    child: &mut Child,
    start: Instant,
    deadline: Duration,
    what: &str,
) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(st) = child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait {what}: {e}"))
        {
            return Some(st);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets the flag when dropped, so a test's other threads stop even when an assertion fails.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a failed test prints of a daemon log: its errors (the first 100), its warnings (the first
/// 50), then the last 300 lines (a long race's debug log runs to megabytes).
fn failure_report(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let with = |level: &str, max: usize| -> (usize, String) {
        let all: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(level))
            .collect();
        (all.len(), all[..all.len().min(max)].join("\n"))
    };
    let (errors, error_lines) = with(" ERROR ", 100);
    let (warnings, warning_lines) = with(" WARN ", 50);
    let tail = &lines[lines.len().saturating_sub(300)..];
    format!(
        "---- daemon log: {} lines; {errors} errors ----\n{error_lines}\n\
         ---- {warnings} warnings ----\n{warning_lines}\n\
         ---- last {} lines ----\n{}\n---- end of daemon log ----",
        lines.len(),
        tail.len(),
        tail.join("\n")
    )
}

// ---- raw ioctls ----

/// `ioctl(fd, cmd, buf)`; the kernel copies `_IOC_SIZE(cmd)` bytes of `buf` in and/or out.
pub fn ioctl(f: &File, cmd: u32, buf: &mut [u8]) -> io::Result<i32> {
    assert!(buf.len() >= abi::ioc_size(cmd));
    // SAFETY: `buf` is valid for reads and writes of at least the size encoded in `cmd`, which is
    // all the kernel (restricted FUSE ioctls) touches.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as _, buf.as_mut_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Opens a file or directory for an ioctl.
pub fn open_any(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
}

fn spec_bytes(id: &[u8; 16]) -> [u8; 40] {
    let mut s = [0u8; 40];
    s[..4].copy_from_slice(&abi::KEY_SPEC_TYPE_IDENTIFIER.to_le_bytes());
    s[8..24].copy_from_slice(id);
    s
}

/// Adds a v2 key through FSCRYPTFS_IOC_ADD_KEY; returns the identifier.
pub fn add_key(mnt: &Path, raw: &[u8]) -> io::Result<[u8; 16]> {
    let f = open_any(mnt)?;
    let mut buf = vec![0u8; abi::ADD_KEY_HEADER_SIZE + 64];
    buf[..4].copy_from_slice(&abi::KEY_SPEC_TYPE_IDENTIFIER.to_le_bytes());
    buf[40..44].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    buf[80..80 + raw.len()].copy_from_slice(raw);
    ioctl(&f, abi::FSCRYPTFS_IOC_ADD_KEY, &mut buf)?;
    assert!(buf[80..].iter().all(|&b| b == 0), "raw key came back");
    let mut id = [0u8; 16];
    id.copy_from_slice(&buf[8..24]);
    Ok(id)
}

/// FS_IOC_REMOVE_ENCRYPTION_KEY(_ALL_USERS); returns the removal status flags.
pub fn remove_key(mnt: &Path, id: &[u8; 16], all_users: bool) -> io::Result<u32> {
    let f = open_any(mnt)?;
    let mut buf = [0u8; 64];
    buf[..40].copy_from_slice(&spec_bytes(id));
    let cmd = if all_users {
        abi::FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS
    } else {
        abi::FS_IOC_REMOVE_ENCRYPTION_KEY
    };
    ioctl(&f, cmd, &mut buf)?;
    Ok(u32::from_le_bytes([buf[40], buf[41], buf[42], buf[43]]))
}

/// FS_IOC_GET_ENCRYPTION_KEY_STATUS: (status, flags, user_count).
pub fn key_status(mnt: &Path, id: &[u8; 16]) -> io::Result<(u32, u32, u32)> {
    let f = open_any(mnt)?;
    let mut buf = [0u8; 128];
    buf[..40].copy_from_slice(&spec_bytes(id));
    ioctl(&f, abi::FS_IOC_GET_ENCRYPTION_KEY_STATUS, &mut buf)?;
    let u = |o: usize| u32::from_le_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
    Ok((u(64), u(68), u(72)))
}

/// A v2 policy: AES-256-XTS / AES-256-CTS, padding 16 (flags 0x02), default data units.
pub fn policy_v2(id: &[u8; 16]) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[0] = 2;
    p[1] = 1;
    p[2] = 4;
    p[3] = 0x02;
    p[8..24].copy_from_slice(id);
    p
}

/// FSCRYPTFS_IOC_SET_POLICY with a 12- or 24-byte policy.
pub fn set_policy(dir: &Path, policy: &[u8]) -> io::Result<()> {
    let f = open_any(dir)?;
    let mut buf = [0u8; 24];
    buf[..policy.len()].copy_from_slice(policy);
    ioctl(&f, abi::FSCRYPTFS_IOC_SET_POLICY, &mut buf).map(|_| ())
}

/// FSCRYPTFS_IOC_GET_POLICY: the policy bytes.
pub fn get_policy(p: &Path) -> io::Result<Vec<u8>> {
    let f = open_any(p)?;
    let mut buf = [0u8; abi::GET_POLICY_EX_ARG_SIZE];
    buf[..8].copy_from_slice(&24u64.to_le_bytes());
    ioctl(&f, abi::FSCRYPTFS_IOC_GET_POLICY, &mut buf)?;
    let n = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")) as usize;
    Ok(buf[8..8 + n].to_vec())
}

/// FS_IOC_GET_ENCRYPTION_NONCE.
pub fn get_nonce(p: &Path) -> io::Result<[u8; 16]> {
    let f = open_any(p)?;
    let mut buf = [0u8; 16];
    ioctl(&f, abi::FS_IOC_GET_ENCRYPTION_NONCE, &mut buf)?;
    Ok(buf)
}

/// The errno of an io::Error.
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Asserts `r` failed with `errno`.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(r: io::Result<T>, errno: i32) {
    match r {
        Ok(v) => panic!("expected errno {errno}, got Ok({v:?})"),
        Err(e) => assert_eq!(errno_of(&e), errno, "expected errno {errno}, got {e}"),
    }
}

/// A fixed 64-byte test key.
pub const KEY: [u8; 64] = {
    let mut k = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        k[i] = (i as u8).wrapping_mul(7).wrapping_add(3);
        i += 1;
    }
    k
};

/// Mounts a volume, adds [`KEY`], and makes `enc/` an encrypted directory. Returns (mount, id).
pub fn encrypted_volume() -> Option<(Mounted, [u8; 16])> {
    encrypted_volume_made_with(&[])
}

/// [`encrypted_volume`] in the per-file layout (the kernel's bytes; v1 and the IV flags allowed).
pub fn encrypted_per_file_volume() -> Option<(Mounted, [u8; 16])> {
    encrypted_volume_made_with(&["--contents-layout=per-file"])
}

/// [`encrypted_volume`] made with `init_args`.
pub fn encrypted_volume_made_with(init_args: &[&str]) -> Option<(Mounted, [u8; 16])> {
    let m = mount_volume(init_args, "")?;
    let (id, _) = make_encrypted_dir(&m);
    Some((m, id))
}

/// Adds [`KEY`] to the mounted volume `m` and makes `enc/` an encrypted directory (a v2 policy of
/// that key). Returns the key's identifier and the directory's path.
pub fn make_encrypted_dir(m: &Mounted) -> ([u8; 16], PathBuf) {
    let id = add_key(&m.mnt, &KEY).expect("add key");
    let enc = m.path("enc");
    std::fs::create_dir(&enc).expect("mkdir enc");
    set_policy(&enc, &policy_v2(&id)).expect("set policy");
    (id, enc)
}

/// Runs `f` on a thread of its own whose filesystem uid and gid are `uid` (None: stays root), so
/// the FUSE requests it makes carry `uid` while the rest of the test stays root (`setfsuid` changes
/// only the calling thread's credentials; dropping fsuid 0 also drops the file capabilities).
/// Panics when `f` has not returned within `timeout` (a hung request must not hang the test; the
/// mount's guard then unmounts and kills the daemon, which ends the request).
pub fn as_fsuid<T, F>(uid: Option<u32>, timeout: Duration, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(u) = uid {
            // SAFETY: setfsgid/setfsuid take plain integers and only change this thread's
            // credentials (the raw system calls; glibc does not broadcast them to other threads).
            unsafe {
                libc::setfsgid(u);
                libc::setfsuid(u);
            }
            // SAFETY: as above; an invalid id (-1) changes nothing and returns the current fsuid.
            let now = unsafe { libc::setfsuid(u32::MAX) };
            assert_eq!(now as u32, u, "setfsuid({u}) did not take");
        }
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(e) => panic!("as uid {uid:?}: no answer within {timeout:?} ({e})"),
    }
}

/// PRK = HMAC-SHA512(64 zero bytes, raw): fscrypt's master secret after HKDF-Extract, computed here
/// from the raw key for the memory scans.
pub fn prk_of(raw: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha512};
    let inner = Sha512::new()
        .chain_update([0x36u8; 128])
        .chain_update(raw)
        .finalize();
    Sha512::new()
        .chain_update([0x5cu8; 128])
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// One needle found by [`scan_process_hits`]: its name, the address of the 16-byte piece, and the
/// mapping it is in (`/proc/PID/maps` line: range, permissions, path or `[heap]`/`[stack]`).
#[derive(Debug, Clone)]
pub struct MemHit {
    pub name: String,
    pub addr: u64,
    pub mapping: String,
}

impl MemHit {
    /// The needle's name (`name` without the piece's byte range).
    pub fn needle(&self) -> &str {
        self.name.split('[').next().unwrap_or(&self.name)
    }
}

/// [`scan_process`] with the place of every hit, for failure messages that say where a secret was
/// left (one hit per piece and mapping; at most 64 in all, but every needle found is there).
pub fn scan_process_hits(pid: u32, needles: &[(&str, &[u8])]) -> Vec<MemHit> {
    use std::io::{Read, Seek, SeekFrom};
    const PIECE: usize = 16;
    const CHUNK: usize = 1 << 20;
    let pieces: Vec<(&str, usize, &[u8])> = needles
        .iter()
        .flat_map(|(n, b)| {
            b.chunks_exact(PIECE)
                .enumerate()
                .map(move |(i, c)| (*n, i * PIECE, c))
        })
        .collect();
    let mut prefix = vec![false; 1 << 16];
    for (_, _, p) in &pieces {
        prefix[usize::from(u16::from_le_bytes([p[0], p[1]]))] = true;
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = File::open(format!("/proc/{pid}/mem")).expect("open mem");
    let mut hits = Vec::new();
    let mut buf = vec![0u8; PIECE - 1 + CHUNK];
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let name = f.nth(3).unwrap_or("");
        if !perms.starts_with('r') || name.starts_with("[vvar") || name == "[vsyscall]" {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let (mut addr, mut carry) = (start, 0usize);
        while addr < end {
            let len = (CHUNK as u64).min(end - addr) as usize;
            if mem.seek(SeekFrom::Start(addr)).is_err()
                || mem.read_exact(&mut buf[carry..carry + len]).is_err()
            {
                break;
            }
            let data = &buf[..carry + len];
            for (i, w) in data.windows(PIECE).enumerate() {
                if !prefix[usize::from(u16::from_le_bytes([w[0], w[1]]))] {
                    continue;
                }
                for (n, off, p) in &pieces {
                    if w == *p
                        && (hits.len() < 64 || !hits.iter().any(|h: &MemHit| h.needle() == *n))
                    {
                        hits.push(MemHit {
                            name: format!("{n}[{off}..{}]", off + PIECE),
                            addr: addr - carry as u64 + i as u64,
                            mapping: format!("{range} {perms} {name}"),
                        });
                    }
                }
            }
            let total = data.len();
            let keep = (PIECE - 1).min(total);
            buf.copy_within(total - keep..total, 0);
            carry = keep;
            addr += len as u64;
        }
    }
    hits
}

/// What [`run_bounded`] saw of a child process.
#[derive(Debug)]
pub struct Bounded {
    /// Exit status; None when it was killed at the deadline.
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Its peak resident set size in KiB (`getrusage` of the reaped child).
    pub max_rss_kib: i64,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs the `fscryptfs` binary with `args` (stdin closed) under `deadline`: killed (and reaped)
/// when it runs longer. Reaps it with `wait4`, so its peak RSS is known.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's Child does not know about
pub fn run_bounded(args: &[&std::ffi::OsStr], deadline: Duration) -> Bounded {
    use std::io::Read;
    let start = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fscryptfs");
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = pipe(Box::new(child.stdout.take().expect("stdout")));
    let err = pipe(Box::new(child.stderr.take().expect("stderr")));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: `pid` is our unreaped child; `status` and `ru` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", io::Error::last_os_error());
        if !killed && start.elapsed() > deadline {
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    Bounded {
        code: (!killed && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status)),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        max_rss_kib: ru.ru_maxrss,
        elapsed,
    }
}

/// The ordinary user the tests mount as.
pub const NOBODY: u32 = 65534;

/// Whether an ordinary user can mount here: root to set the test up, setuid `fusermount3`, and
/// `/dev/fuse` open to users (distributions ship it 0666; `.ci/run` sets that). Prints SKIPPED, or
/// panics with FSCRYPTFS_REQUIRE_PRIVILEGED=1, otherwise.
pub fn users_can_mount() -> bool {
    use std::os::unix::fs::MetadataExt;
    if !can_mount() {
        return false;
    }
    let setuid = std::fs::metadata("/usr/bin/fusermount3")
        .is_ok_and(|md| md.uid() == 0 && md.mode() & 0o4000 != 0);
    if !setuid {
        return require_or_skip("fusermount3 is not setuid root");
    }
    // fusermount3 opens /dev/fuse as the calling user: its mode decides who may use FUSE.
    let dev = std::fs::metadata("/dev/fuse")
        .map(|m| m.mode())
        .unwrap_or(0);
    if dev & 0o006 != 0o006 {
        return require_or_skip(&format!(
            "/dev/fuse has mode {:o}: users cannot open it, so fusermount3 cannot mount for them",
            dev & 0o777
        ));
    }
    true
}

/// Makes the mount reachable for other users: each directory above it that others cannot search
/// (a test's 0700 temporary directory) gets search permission for group and others, and nothing
/// else changes (`/tmp` keeps its 1777: setting 0755 there, as this once did, took the sticky bit
/// and everyone's write permission away from the machine's `/tmp`).
pub fn make_reachable(m: &Mounted) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = m.mnt.clone();
    while let Some(parent) = p.parent() {
        if parent == Path::new("/") || parent == Path::new("") {
            break;
        }
        if let Ok(meta) = std::fs::metadata(parent) {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o001 == 0 {
                let _ =
                    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o011));
            }
        }
        p = parent.to_path_buf();
    }
}

/// A temporary directory (0755) with a backing directory `b` and a mountpoint `m` owned by
/// [`NOBODY`], for a volume an ordinary user makes and mounts.
pub fn nobody_volume_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (backing, mnt) = (tmp.path().join("b"), tmp.path().join("m"));
    for d in [&backing, &mnt] {
        std::fs::create_dir(d).expect("mkdir");
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).expect("chown");
    }
    (tmp, backing, mnt)
}

/// `renameat2(AT_FDCWD, a, AT_FDCWD, b, flags)` (`RENAME_EXCHANGE`, `RENAME_NOREPLACE`, ...).
pub fn renameat2(a: &Path, b: &Path, flags: u32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path without NUL");
    let (a, b) = (c(a), c(b));
    // SAFETY: both are NUL-terminated C strings living across the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The read-ahead (KiB) of the mount at `mnt` once it is `want` (the daemon sets it on a thread
/// of its own after INIT), or what it still is after 10 s.
pub fn read_ahead_kb_once(mnt: &Path, want: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(mnt).expect("stat mountpoint").dev();
    let p = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    let now = || {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while now() != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    now()
}
