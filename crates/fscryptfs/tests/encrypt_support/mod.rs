//! Shared helpers of the ported fstests `encrypt` group (`tests/encrypt_*.rs`): fstests' test key,
//! fstests' `common/encrypt` helpers (`_add_enckey`, `_rm_enckey`, `_enckey_status`,
//! `_set_encpolicy`, `_get_encpolicy`) running the unmodified `xfs_io` against the mount (optionally
//! as another user, fstests' `_user_do`), the real `fscryptfs` command for what only it does, and
//! the few syscalls std does not wrap (renameat2, mknod, mkfifo, drop_caches).
//!
//! Every test file that uses this module also declares `mod support;` (the mount plumbing).

#![allow(dead_code)]

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{bin, Mounted};

/// fstests' `TEST_RAW_KEY`: the 64 bytes 0x01..=0x40.
pub const TEST_RAW_KEY: [u8; 64] = {
    let mut k = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        k[i] = (i + 1) as u8;
        i += 1;
    }
    k
};
/// fstests' `TEST_KEY_IDENTIFIER`: the HKDF-SHA512 identifier of [`TEST_RAW_KEY`] (kernel-computed).
pub const TEST_KEY_IDENTIFIER: &str = "69b2f6edeee720cce0577937eb8a6751";
/// fstests' `TEST_KEY_DESCRIPTOR` (v1).
pub const TEST_KEY_DESCRIPTOR: &str = "0000111122223333";

/// The unprivileged user of the ported tests (fstests' `fsgqa`).
#[allow(unused_imports)]
pub use crate::support::{make_reachable, NOBODY};

/// [`TEST_KEY_IDENTIFIER`] as bytes.
pub fn test_key_id() -> [u8; 16] {
    unhex16(TEST_KEY_IDENTIFIER)
}

/// 32 hex digits to 16 bytes.
pub fn unhex16(s: &str) -> [u8; 16] {
    assert_eq!(s.len(), 32, "not 32 hex digits: {s:?}");
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// Bytes to lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What one run of the command did.
#[derive(Debug)]
pub struct Out {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed: stdout {:?} stderr {:?}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts the operation failed (exit 1) with strerror text `what` on stderr.
    #[track_caller]
    pub fn fails_with(&self, what: &str) {
        assert_eq!(
            self.code, 1,
            "expected failure {what:?}: stdout {:?} stderr {:?}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.trim_end().ends_with(what),
            "expected stderr to end with {what:?}, got {:?}",
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "stdout on failure: {:?}",
            self.stdout
        );
    }
}

/// Runs `cmd` from `/` (as `uid` if given, with `stdin` if given) and collects what it did.
fn run_as(mut cmd: Command, uid: Option<u32>, stdin: Option<&[u8]>) -> Out {
    cmd.current_dir("/")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let name = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("stdin pipe");
        w.write_all(data).expect("write stdin");
    }
    let o = child.wait_with_output().expect("wait");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs `fscryptfs ARGS` (as `uid` if given, with `stdin` if given).
pub fn fscryptfs_as<S: AsRef<OsStr>>(uid: Option<u32>, stdin: Option<&[u8]>, args: &[S]) -> Out {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    run_as(cmd, uid, stdin)
}

/// Runs `fscryptfs ARGS` as root, no stdin.
pub fn fscryptfs<S: AsRef<OsStr>>(args: &[S]) -> Out {
    fscryptfs_as(None, None, args)
}

/// Whether `xfs_io` (xfsprogs) can run. Missing, it panics under `FSCRYPTFS_REQUIRE_PRIVILEGED=1`
/// and otherwise prints a loud SKIPPED line and returns false ([`mount_in`] then gives no mount).
pub fn have_xfs_io() -> bool {
    match Command::new("xfs_io").arg("-V").output() {
        Ok(o) if o.status.success() => true,
        r => {
            let why = match r {
                Ok(o) => format!("xfs_io -V exited with {}", o.status),
                Err(e) => e.to_string(),
            };
            if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!(
                    "prerequisite missing: xfs_io ({why}; apt-get install xfsprogs) \
                     (FSCRYPTFS_REQUIRE_PRIVILEGED=1)"
                );
            }
            eprintln!("\n******** SKIPPED (xfs_io is missing: {why}; apt-get install xfsprogs) ********\n");
            false
        }
    }
}

/// Runs `xfs_io -c CMD PATH` (as `uid` if given, with `stdin` if given): one fstests helper.
pub fn xfs_io_as(uid: Option<u32>, stdin: Option<&[u8]>, cmd: &str, path: &Path) -> Out {
    let mut c = Command::new("xfs_io");
    c.arg("-c").arg(cmd).arg(path);
    run_as(c, uid, stdin)
}

/// `"CMD OPTS ARG"` without empty parts.
fn xfs_io_cmd(cmd: &str, opts: &str, arg: &str) -> String {
    [cmd, opts, arg]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// fstests' `_add_enckey MNT KEY [OPTS]`: `xfs_io -c "add_enckey OPTS" MNT` with `raw` on stdin
/// (as `uid` if given). Prints `Added encryption key with identifier ID` (or `descriptor DESC`
/// with `-d DESC`).
pub fn add_enckey(uid: Option<u32>, mnt: &Path, raw: &[u8], opts: &str) -> Out {
    xfs_io_as(uid, Some(raw), &xfs_io_cmd("add_enckey", opts, ""), mnt)
}

/// fstests' `_rm_enckey MNT KEYSPEC [OPTS]`: `xfs_io -c "rm_enckey OPTS KEYSPEC" MNT` (`-a`: all
/// users).
pub fn rm_enckey(uid: Option<u32>, mnt: &Path, keyspec: &str, opts: &str) -> Out {
    xfs_io_as(uid, None, &xfs_io_cmd("rm_enckey", opts, keyspec), mnt)
}

/// fstests' `_enckey_status MNT KEYSPEC`: `xfs_io -c "enckey_status KEYSPEC" MNT`, stdout trimmed
/// (asserts success): `Absent`, `Present`, `Present (user_count=N[, added_by_self])`,
/// `Incompletely removed`.
#[track_caller]
pub fn enckey_status(uid: Option<u32>, mnt: &Path, keyspec: &str) -> String {
    xfs_io_as(uid, None, &xfs_io_cmd("enckey_status", "", keyspec), mnt)
        .ok()
        .trim_end()
        .to_string()
}

/// fstests' `_set_encpolicy DIR [KEYSPEC] [OPTS]`: `xfs_io -c "set_encpolicy OPTS KEYSPEC" DIR`.
/// xfs_io's defaults are fstests' policy: AES-256-XTS / AES-256-CTS, flags 0x02 (PAD_16), v1 for a
/// 16-digit descriptor and v2 for a 32-digit identifier. OPTS: `-c MODE`, `-n MODE`, `-f FLAGS`
/// (padding 4/8/16/32 = 0x00/0x01/0x02/0x03, DIRECT_KEY 0x04, IV_INO_LBLK_64 0x08,
/// IV_INO_LBLK_32 0x10), `-v VERSION`.
pub fn set_encpolicy(uid: Option<u32>, dir: &Path, keyspec: &str, opts: &str) -> Out {
    xfs_io_as(uid, None, &xfs_io_cmd("set_encpolicy", opts, keyspec), dir)
}

/// fstests' `_get_encpolicy FILE [OPTS]`: `xfs_io -c "get_encpolicy OPTS" FILE`.
pub fn get_encpolicy(uid: Option<u32>, path: &Path, opts: &str) -> Out {
    xfs_io_as(uid, None, &xfs_io_cmd("get_encpolicy", opts, ""), path)
}

/// What xfs_io's `get_encpolicy` prints for fstests' default policy (XTS/CTS, flags 0x02) on
/// `path` with key `key` (a 16-digit v1 descriptor, which xfs_io shows as version 0, or a 32-digit
/// v2 identifier).
pub fn default_policy_text(path: &Path, key: &str) -> String {
    let (version, key_line) = if key.len() == 16 {
        (0, format!("Master key descriptor: {key}"))
    } else {
        (2, format!("Master key identifier: {key}"))
    };
    format!(
        "Encryption policy for {}:\n\tPolicy version: {version}\n\t{key_line}\n\
         \tContents encryption mode: 1 (AES-256-XTS)\n\
         \tFilenames encryption mode: 4 (AES-256-CTS)\n\tFlags: 0x02\n",
        path.display()
    )
}

/// `echo 2 > /proc/sys/vm/drop_caches`: the kernel forgets unused dentries and inodes (FORGETs).
pub fn drop_caches() {
    fs::write("/proc/sys/vm/drop_caches", b"2").expect("drop_caches (needs root)");
}

/// The sorted names in a directory.
pub fn listing(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", p.display()))
        .map(|d| {
            d.expect("dirent")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mknod(p, mode, makedev(major, minor))`.
pub fn mknod(p: &Path, mode: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: a NUL-terminated path; makedev is a pure computation.
    check(unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) })
}

/// `mkfifo(p, 0644)`.
pub fn mkfifo(p: &Path) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: a NUL-terminated path.
    check(unsafe { libc::mkfifo(c.as_ptr(), 0o644) })
}

/// The errno of a result (0 on success).
pub fn errno_or_zero<T>(r: &io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Every entry below `dir` (recursively, not following symlinks), as (path, depth >= 1).
pub fn walk(dir: &Path) -> Vec<(PathBuf, usize)> {
    fn rec(d: &Path, depth: usize, out: &mut Vec<(PathBuf, usize)>) {
        for e in fs::read_dir(d).unwrap_or_else(|e| panic!("readdir {}: {e}", d.display())) {
            let p = e.expect("dirent").path();
            let is_dir = fs::symlink_metadata(&p)
                .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
                .is_dir();
            out.push((p.clone(), depth));
            if is_dir {
                rec(&p, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    rec(dir, 1, &mut out);
    out
}

/// `xz -c` of `data`: the compressed size, or None (after a loud SKIPPED) when xz is missing.
pub fn xz_size(data: &[u8]) -> Option<usize> {
    let child = Command::new("xz")
        .args(["-c", "--lzma2=dict=64MiB,mf=hc4,mode=fast,nice=16"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!("prerequisite missing: xz ({e}) (FSCRYPTFS_REQUIRE_PRIVILEGED=1)");
            }
            eprintln!("\n******** SKIPPED (xz is missing: {e}) ********\n");
            return None;
        }
    };
    let mut w = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || w.write_all(&data));
    let o = child.wait_with_output().expect("xz");
    feeder.join().expect("feeder").expect("feed xz");
    assert!(o.status.success(), "xz failed");
    Some(o.stdout.len())
}

/// A pseudo-random 64-byte raw key from `seed` (distinct seeds, distinct keys). Keys made of one
/// repeated byte are unusable with v1 policies: v1's AES-ECB derivation turns them into an XTS key
/// with equal halves, which fscrypt (like the kernel, FORBID_WEAK_KEYS) refuses with EINVAL.
pub fn pseudo_key(seed: u64) -> [u8; 64] {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D;
    let mut k = [0u8; 64];
    for b in &mut k {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    k
}

/// The contents layout of the volume a test runs in (`fscryptfs init --contents-layout=...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The default: one key per file, contents in place (ext4/f2fs model).
    PerFile,
    /// Per-extent files (btrfs model): v1 policies and the DIRECT_KEY / IV_INO_LBLK flags are
    /// refused with EINVAL.
    Extent,
}

impl Layout {
    /// The `init` arguments that make a volume of this layout.
    pub fn init_args(self) -> &'static [&'static str] {
        match self {
            Layout::PerFile => &["--contents-layout=per-file"],
            Layout::Extent => &["--contents-layout=extent"],
        }
    }

    pub fn is_extent(self) -> bool {
        self == Layout::Extent
    }
}

/// [`crate::support::mount_volume`] for a volume of `layout`.
/// `None` as well (after a loud SKIPPED) when xfs_io is missing, see [`have_xfs_io`].
pub fn mount_in(layout: Layout, opts: &str) -> Option<Mounted> {
    mount_volume_xfs_io(layout.init_args(), opts)
}

/// [`crate::support::mount_volume`], `None` (after a loud SKIPPED) when xfs_io is missing unless
/// `FSCRYPTFS_REQUIRE_PRIVILEGED=1` (then it panics): see [`have_xfs_io`].
pub fn mount_volume_xfs_io(init_args: &[&str], opts: &str) -> Option<Mounted> {
    if !have_xfs_io() {
        return None;
    }
    crate::support::mount_volume(init_args, opts)
}

/// The v2 key identifier (hex) of a raw key, as the kernel computes it.
pub fn identifier_of(raw: &[u8]) -> String {
    hex(&fscrypt::keysetup::key_identifier(raw).expect("raw key size"))
}

/// The raw policy bytes of v1 (12) with `flags` and descriptor 0000000000000000, XTS/CTS.
pub fn raw_policy_v1(flags: u8) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0] = 0;
    p[1] = 1;
    p[2] = 4;
    p[3] = flags;
    p
}

/// The raw v2 policy for identifier `id` with `contents`/`filenames` modes and `flags`.
pub fn raw_policy_v2(id: &[u8; 16], contents: u8, filenames: u8, flags: u8) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[0] = 2;
    p[1] = contents;
    p[2] = filenames;
    p[3] = flags;
    p[8..24].copy_from_slice(id);
    p
}

/// The extent layout's refusals (as btrfs): on the empty unencrypted directory `dir`, v1 policies
/// (through xfs_io's `set_encpolicy`, as `uid`, and through the raw ioctl) and v2 policies with DIRECT_KEY (with
/// Adiantum, where it is otherwise valid), IV_INO_LBLK_64 or IV_INO_LBLK_32 are EINVAL, and `dir`
/// stays unencrypted. `id` is a v2 key identifier the caller may use (need not be added for root).
#[track_caller]
pub fn assert_extent_refuses_v1_and_iv_flags(uid: Option<u32>, dir: &Path, id: &[u8; 16]) {
    set_encpolicy(uid, dir, TEST_KEY_DESCRIPTOR, "").fails_with("Invalid argument");
    if uid.is_none() {
        let errno = |p: &[u8]| errno_or_zero(&crate::support::set_policy(dir, p));
        assert_eq!(errno(&raw_policy_v1(0x02)), libc::EINVAL, "v1 XTS/CTS");
        assert_eq!(
            errno(&raw_policy_v1(0x00)),
            libc::EINVAL,
            "v1 XTS/CTS pad 4"
        );
        // Adiantum + DIRECT_KEY (valid on the per-file layout).
        assert_eq!(
            errno(&raw_policy_v2(id, 9, 9, 0x02 | 0x04)),
            libc::EINVAL,
            "v2 Adiantum DIRECT_KEY"
        );
        assert_eq!(
            errno(&raw_policy_v2(id, 1, 4, 0x02 | 0x08)),
            libc::EINVAL,
            "v2 IV_INO_LBLK_64"
        );
        assert_eq!(
            errno(&raw_policy_v2(id, 1, 4, 0x02 | 0x10)),
            libc::EINVAL,
            "v2 IV_INO_LBLK_32"
        );
        // The same valid v2 policy without the flags is accepted on an empty directory: checked
        // by the callers, which go on with it.
    }
    assert_eq!(
        errno_or_zero(&crate::support::get_policy(dir)),
        libc::ENODATA,
        "{} was left encrypted",
        dir.display()
    );
}

/// Two `#[test]`s per case: `$per_file` runs `$run(Layout::PerFile)`, `$extent` runs
/// `$run(Layout::Extent)`; attributes written before `$extent` (e.g. `#[ignore = "bug: ..."]`)
/// apply to the extent variant only.
#[allow(unused_macros)]
macro_rules! in_both_layouts {
    ($($per_file:ident, $(#[$attr:meta])* $extent:ident => $run:expr;)*) => {$(
        #[test]
        fn $per_file() {
            ($run)($crate::encrypt_support::Layout::PerFile)
        }
        #[test]
        $(#[$attr])*
        fn $extent() {
            ($run)($crate::encrypt_support::Layout::Extent)
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use in_both_layouts;
