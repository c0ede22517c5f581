//! The kernel's own fscrypt ioctls on the mount, through the bridge into the caller's memory
//! (`fs/caller_memory.rs`): the unmodified `xfs_io` drives a mount through every fscrypt command it
//! has, and each output and error is compared with the same command on a kernel ext4 loop mount in
//! the same test; raw ioctls with the argument placed against a guard page prove the bridge copies
//! exactly the structure the kernel copies (same results, same errnos, same bytes); and a daemon
//! that may not reach its caller answers ENOTTY while fscryptfs' own ioctls keep working.
//!
//! Needs root, /dev/fuse, loop devices, e2fsprogs and xfs_io: each test says SKIPPED loudly
//! without them, or fails with `FSCRYPTFS_REQUIRE_PRIVILEGED=1` (CI).

mod support;

#[path = "../../fscrypt/tests/support/mod.rs"]
mod oracle;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

use fscryptfs::abi;
use oracle::ext4::{Ext4Config, Ext4Image};
use support::*;

/// fstests' TEST_RAW_KEY (0x01..=0x40) and its identifier (kernel-computed).
fn test_raw_key() -> Vec<u8> {
    (1..=64u8).collect()
}
const TEST_KEY_IDENTIFIER: &str = "69b2f6edeee720cce0577937eb8a6751";
const TEST_KEY_DESCRIPTOR: &str = "0000111122223333";

fn have_xfs_io() -> bool {
    if Command::new("xfs_io").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("FSCRYPTFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("prerequisite missing: xfs_io (apt-get install xfsprogs)");
    }
    eprintln!("\n******** SKIPPED (xfs_io is missing: apt-get install xfsprogs) ********\n");
    false
}

/// One `xfs_io -c CMD PATH` (stdin: `input`) as "exit N / stdout / stderr", with `root` (the
/// mount's path) written as `MNT` so that both mounts' transcripts compare.
fn xfs_io(root: &Path, rel: &str, cmd: &str, input: &[u8]) -> String {
    let path = root.join(rel);
    let mut child = Command::new("xfs_io")
        .arg("-c")
        .arg(cmd)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xfs_io is needed (apt-get install xfsprogs)");
    let _ = child.stdin.take().expect("stdin").write_all(input);
    let out = child.wait_with_output().expect("xfs_io");
    let text = format!(
        "exit {:?}\n{}---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.replace(root.to_str().expect("ASCII path"), "MNT")
}

/// The directories and files every step runs on, made alike on both mounts.
fn lay_out(root: &Path) {
    for d in ["v1", "v2", "plain", "full", "modes"] {
        std::fs::create_dir(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("full/f"), b"x").expect("write");
    std::fs::write(root.join("file"), b"x").expect("write");
}

/// The policy cases `set_encpolicy` is given on a fresh empty directory each: every mode pair
/// and flag the kernel knows (valid or not), bad versions and numbers.
const POLICY_CASES: &[&str] = &[
    "-c AES-256-XTS -n AES-256-CTS",
    "-c AES-256-XTS -n AES-256-CTS -f 0",
    "-c AES-256-XTS -n AES-256-CTS -f 1",
    "-c AES-256-XTS -n AES-256-CTS -f 2",
    "-c AES-256-XTS -n AES-256-CTS -f 3",
    "-c AES-128-CBC -n AES-128-CTS",
    "-c Adiantum -n Adiantum",
    "-c Adiantum -n Adiantum -f 4",
    "-c AES-256-XTS -n AES-256-CTS -f 4",
    "-c AES-256-XTS -n AES-256-CTS -f 8",
    "-c AES-256-XTS -n AES-256-CTS -f 16",
    "-c AES-256-XTS -n AES-256-CTS -f 24",
    "-c AES-256-XTS -n AES-256-CTS -f 32",
    "-c AES-256-XTS -n AES-128-CTS",
    "-c AES-128-CBC -n AES-256-CTS",
    "-c 99 -n AES-256-CTS",
    "-c 9 -n 10",
    "-c AES-256-XTS -n 4",
];

/// Every step of the transcript: (path relative to the mount, xfs_io command, stdin).
fn steps() -> Vec<(String, String, Vec<u8>)> {
    let key = test_raw_key();
    let id = TEST_KEY_IDENTIFIER;
    let desc = TEST_KEY_DESCRIPTOR;
    let mut s: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut step = |rel: &str, cmd: String, input: &[u8]| {
        s.push((rel.to_string(), cmd, input.to_vec()));
    };
    step("", "get_encpolicy -t".into(), b"");
    step("plain", "get_encpolicy".into(), b"");
    step("plain", "get_encpolicy -1".into(), b"");
    step("file", "get_encpolicy".into(), b"");
    // add_enckey: v2 and v1 keys, every valid size's edges and invalid ones.
    step("", "add_enckey".into(), &key);
    step("", format!("add_enckey -d {desc}"), &key);
    for n in [0usize, 1, 15, 16, 17, 32, 63, 64, 65, 100] {
        let raw: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        step("", "add_enckey".into(), &raw);
        step("", "add_enckey -d 1111222233334444".into(), &raw);
    }
    step("", "add_enckey -d 00001111".into(), &key);
    step("", "add_enckey -d zz00111122223333".into(), &key);
    step("", "add_enckey -x".into(), &key);
    // set_encpolicy and get_encpolicy: v1 and v2, the old and the new ioctl.
    step("v1", format!("set_encpolicy {desc}"), b"");
    step("v1", "get_encpolicy".into(), b"");
    step("v1", "get_encpolicy -1".into(), b"");
    step("v1", format!("set_encpolicy {desc}"), b"");
    step("v1", format!("set_encpolicy {id}"), b"");
    step("v2", format!("set_encpolicy {id}"), b"");
    step("v2", "get_encpolicy".into(), b"");
    step("v2", "get_encpolicy -1".into(), b"");
    step("v2", "get_encpolicy -t".into(), b"");
    step("v2", format!("set_encpolicy {id}"), b"");
    step(
        "v2",
        format!("set_encpolicy -c AES-128-CBC -n AES-128-CTS {id}"),
        b"",
    );
    step("v2", format!("set_encpolicy -v 1 {desc}"), b"");
    step("full", format!("set_encpolicy {id}"), b"");
    step("file", format!("set_encpolicy {id}"), b"");
    step("plain", "set_encpolicy -v 3".into(), b"");
    step("plain", "set_encpolicy -v 2 1234".into(), b"");
    for (i, case) in POLICY_CASES.iter().enumerate() {
        for (v, spec) in [("1", desc), ("2", id)] {
            let dir = format!("modes/{i}-v{v}");
            step("", format!("mkdir_placeholder {dir}"), b"");
            step(&dir, format!("set_encpolicy {case} {spec}"), b"");
            step(&dir, "get_encpolicy".into(), b"");
        }
    }
    // The key's status and its removal, v2 then v1, twice.
    step("v2", format!("enckey_status {id}"), b"");
    step("", format!("rm_enckey {id}"), b"");
    step("", format!("enckey_status {id}"), b"");
    step("", format!("rm_enckey {id}"), b"");
    step("", format!("enckey_status {desc}"), b"");
    step("", format!("rm_enckey {desc}"), b"");
    step("", format!("rm_enckey -a {desc}"), b"");
    step("", "enckey_status 0011".into(), b"");
    s
}

/// Runs the transcript on the mount at `root` (laid out first). `mkdir_placeholder DIR` steps
/// make DIR instead of running xfs_io.
fn transcript(root: &Path) -> Vec<String> {
    lay_out(root);
    steps()
        .iter()
        .map(
            |(rel, cmd, input)| match cmd.strip_prefix("mkdir_placeholder ") {
                Some(dir) => {
                    std::fs::create_dir(root.join(dir)).expect("mkdir");
                    String::new()
                }
                None => format!(
                    "$ xfs_io -c '{cmd}' MNT/{rel}\n{}",
                    xfs_io(root, rel, cmd, input)
                ),
            },
        )
        .collect()
}

#[test]
fn xfs_io_drives_the_mount_exactly_as_it_drives_ext4() {
    if !oracle::prerequisites("xfs_io_drives_the_mount_exactly_as_it_drives_ext4") || !have_xfs_io()
    {
        return;
    }
    let Some(m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let img = Ext4Image::create("ioctl-bridge-xfs-io", Ext4Config::default());
    let kernel = transcript(img.mnt());
    let ours = transcript(&m.mnt);
    assert_eq!(kernel.len(), ours.len());
    for (k, o) in kernel.iter().zip(&ours) {
        assert_eq!(o, k, "fscryptfs (left) and ext4 (right) differ");
    }
    // The transcript did what it says: keys were added, policies set and read back.
    let all = ours.join("\n");
    assert!(all.contains(&format!(
        "Added encryption key with identifier {TEST_KEY_IDENTIFIER}"
    )));
    assert!(all.contains(&format!("Master key identifier: {TEST_KEY_IDENTIFIER}")));
    assert!(all.contains(&format!("Master key descriptor: {TEST_KEY_DESCRIPTOR}")));
    assert!(all.contains("Removed encryption key with identifier"));
    // The daemon never fell back: the bridge reached xfs_io every time.
    assert!(!m.log_text().contains("answer ENOTTY"), "{}", m.log_text());
}

/// `len` bytes placed so that they end exactly where an inaccessible page begins: a target that
/// touched one byte more would fault. Unmapped on drop.
struct GuardedArg {
    base: *mut u8,
    page: usize,
    len: usize,
}

impl GuardedArg {
    fn new(bytes: &[u8]) -> GuardedArg {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        assert!(bytes.len() <= page);
        // SAFETY: an anonymous private mapping of two pages; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let base = base.cast::<u8>();
        // SAFETY: the second page of our own mapping.
        let r = unsafe { libc::mprotect(base.add(page).cast(), page, libc::PROT_NONE) };
        assert_eq!(r, 0);
        let g = GuardedArg {
            base,
            page,
            len: bytes.len(),
        };
        // SAFETY: `len` bytes ending at the guard page lie inside the first, writable page.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), g.ptr(), bytes.len()) };
        g
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: `len <= page`: the pointer stays inside the first page.
        unsafe { self.base.add(self.page - self.len) }
    }

    fn bytes(&self) -> Vec<u8> {
        // SAFETY: the `len` bytes at `ptr` are ours and readable.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }.to_vec()
    }

    /// `ioctl(fd, cmd, ptr)`: the errno, or 0.
    fn ioctl(&self, f: &std::fs::File, cmd: u32) -> i32 {
        // SAFETY: the argument points into our mapping; the target may touch exactly the `len`
        // bytes before the guard page (and faults, returning EFAULT, beyond them).
        let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as _, self.ptr()) };
        if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        } else {
            0
        }
    }
}

impl Drop for GuardedArg {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), 2 * self.page) };
    }
}

fn add_key_arg(spec_type: u32, desc: &[u8], raw_size: u32, raw: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; abi::ADD_KEY_HEADER_SIZE];
    b[..4].copy_from_slice(&spec_type.to_le_bytes());
    b[8..8 + desc.len()].copy_from_slice(desc);
    b[40..44].copy_from_slice(&raw_size.to_le_bytes());
    b.extend_from_slice(raw);
    b
}

/// Every raw case on the directory `root` of one mount: (what, errno, bytes after the call).
fn raw_cases(root: &Path) -> Vec<(String, i32, Vec<u8>)> {
    std::fs::create_dir(root.join("g1")).expect("mkdir");
    std::fs::create_dir(root.join("g2")).expect("mkdir");
    let key = test_raw_key();
    let id = {
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&TEST_KEY_IDENTIFIER[2 * i..2 * i + 2], 16).expect("hex");
        }
        id
    };
    let desc = [0u8, 0, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33];
    let at_root = std::fs::File::open(root).expect("open root");
    let g1 = || std::fs::File::open(root.join("g1")).expect("open g1");
    let g2 = || std::fs::File::open(root.join("g2")).expect("open g2");
    let mut out = Vec::new();
    let mut run = |what: &str, f: &std::fs::File, cmd: u32, arg: Vec<u8>| {
        let g = GuardedArg::new(&arg);
        let e = g.ioctl(f, cmd);
        out.push((what.to_string(), e, g.bytes()));
    };
    // ADD_KEY: the header and exactly raw_size bytes before the guard page.
    run(
        "add v2 key, 64 bytes",
        &at_root,
        abi::FS_IOC_ADD_ENCRYPTION_KEY,
        add_key_arg(2, &[], 64, &key),
    );
    run(
        "add v2 key, 16 bytes",
        &at_root,
        abi::FS_IOC_ADD_ENCRYPTION_KEY,
        add_key_arg(2, &[], 16, &key[..16]),
    );
    run(
        "add v1 key",
        &at_root,
        abi::FS_IOC_ADD_ENCRYPTION_KEY,
        add_key_arg(1, &desc, 32, &key[..32]),
    );
    // raw_size says 64, only 32 bytes before the guard page: EFAULT, on ext4 as here.
    run(
        "add v2 key running into the guard page",
        &at_root,
        abi::FS_IOC_ADD_ENCRYPTION_KEY,
        add_key_arg(2, &[], 64, &key[..32]),
    );
    run(
        "add key with a keyring key and raw bytes",
        &at_root,
        abi::FS_IOC_ADD_ENCRYPTION_KEY,
        {
            let mut a = add_key_arg(2, &[], 16, &key[..16]);
            a[44..48].copy_from_slice(&5u32.to_le_bytes());
            a
        },
    );
    // SET_POLICY: a v1 policy is 12 bytes, a v2 policy 24, read to the byte.
    let mut v1 = vec![0u8, 1, 4, 0];
    v1.extend_from_slice(&desc);
    run(
        "set v1 policy",
        &g1(),
        abi::FS_IOC_SET_ENCRYPTION_POLICY,
        v1,
    );
    let mut v2 = vec![2u8, 1, 4, 0, 0, 0, 0, 0];
    v2.extend_from_slice(&id);
    run(
        "set v2 policy",
        &g2(),
        abi::FS_IOC_SET_ENCRYPTION_POLICY,
        v2,
    );
    run(
        "set a policy of version 3",
        &g2(),
        abi::FS_IOC_SET_ENCRYPTION_POLICY,
        vec![3u8],
    );
    run(
        "set a v2 policy cut by the guard page",
        &g2(),
        abi::FS_IOC_SET_ENCRYPTION_POLICY,
        vec![2u8, 1, 4, 0],
    );
    // GET_POLICY (v1 only, 12 bytes written) and GET_POLICY_EX (8 + policy size written).
    run(
        "get v1 policy",
        &g1(),
        abi::FS_IOC_GET_ENCRYPTION_POLICY,
        vec![0xaa; 12],
    );
    run(
        "get v1 policy of a v2 directory",
        &g2(),
        abi::FS_IOC_GET_ENCRYPTION_POLICY,
        vec![0xaa; 12],
    );
    run(
        "get v1 policy of a plain directory",
        &at_root,
        abi::FS_IOC_GET_ENCRYPTION_POLICY,
        vec![0xaa; 12],
    );
    for (dir, room) in [("g1", 12u64), ("g2", 24), ("g2", 23), ("g2", 9)] {
        let mut a = room.to_le_bytes().to_vec();
        a.resize(8 + room as usize, 0xaa);
        let f = std::fs::File::open(root.join(dir)).expect("open");
        run(
            &format!("get policy ex of {dir}, room {room}"),
            &f,
            abi::FS_IOC_GET_ENCRYPTION_POLICY_EX,
            a,
        );
    }
    out
}

#[test]
fn the_bridge_copies_exactly_what_the_kernel_copies() {
    if !oracle::prerequisites("the_bridge_copies_exactly_what_the_kernel_copies") {
        return;
    }
    let Some(m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let img = Ext4Image::create("ioctl-bridge-guard", Ext4Config::default());
    let kernel = raw_cases(img.mnt());
    let ours = raw_cases(&m.mnt);
    for (k, o) in kernel.iter().zip(&ours) {
        assert_eq!(o, k, "fscryptfs (left) and ext4 (right) differ");
    }
    // Sanity: the cases did succeed and fail where they should.
    let errno_of = |what: &str| {
        ours.iter()
            .find(|(w, _, _)| w == what)
            .map(|(_, e, _)| *e)
            .expect("case")
    };
    assert_eq!(errno_of("add v2 key, 64 bytes"), 0);
    assert_eq!(
        errno_of("add v2 key running into the guard page"),
        libc::EFAULT
    );
    assert_eq!(errno_of("set v2 policy"), 0);
    assert_eq!(errno_of("get v1 policy of a v2 directory"), libc::EINVAL);
    assert_eq!(errno_of("get policy ex of g2, room 23"), libc::EOVERFLOW);
    // The identifier came back in the key specifier, the raw key's bytes stayed as they were.
    let (_, _, after) = &ours[0];
    assert_eq!(
        hex(&after[8..24]),
        TEST_KEY_IDENTIFIER,
        "identifier written back"
    );
    assert_eq!(&after[80..], &test_raw_key()[..], "raw key untouched");

    // GET_PWSALT: 16 bytes, made once and kept (across a remount too), never on ext4's terms of
    // content (random), so only its shape and stability are compared.
    let salt = |root: &Path| {
        let f = std::fs::File::open(root).expect("open");
        let g = GuardedArg::new(&[0u8; 16]);
        assert_eq!(g.ioctl(&f, abi::FS_IOC_GET_ENCRYPTION_PWSALT), 0);
        g.bytes()
    };
    let (k1, k2) = (salt(img.mnt()), salt(img.mnt()));
    assert_eq!(k1, k2);
    let (s1, s2) = (salt(&m.mnt), salt(&m.mnt));
    assert_eq!(s1, s2, "the salt is made once");
    assert_ne!(s1, vec![0u8; 16]);
    let mut m = m;
    m.remount("");
    assert_eq!(salt(&m.mnt), s1, "the salt is kept in the volume");
    let conf = std::fs::read_to_string(m.backing.join(".fscryptfs.conf")).expect("config");
    assert!(conf.contains(&format!("pw-salt {}", hex(&s1))), "{conf}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How the daemon of a [`SideMount`] runs.
#[derive(Clone, Copy, PartialEq)]
enum Daemon {
    /// As [`NOBODY`], through fusermount3 (an ordinary user's mount).
    Nobody,
    /// As root, in a new pid namespace: no caller outside it has a pid it can see.
    PidNamespace,
}

/// A volume mounted by a daemon started unlike `support::Mounted`'s; unmounted and reaped on drop
/// whatever happens, its log (debug level) printed when the test failed.
struct SideMount {
    _tmp: tempfile::TempDir,
    mnt: std::path::PathBuf,
    log: std::path::PathBuf,
    daemon: std::process::Child,
}

impl SideMount {
    fn start(how: Daemon) -> SideMount {
        use std::os::unix::process::CommandExt;
        let (tmp, backing, mnt) = nobody_volume_dirs();
        let mut init = Command::new(bin());
        init.arg("init").arg(&backing).env("HOME", "/");
        if how == Daemon::Nobody {
            init.uid_gid_nobody();
        }
        let out = init.output().expect("init");
        assert!(out.status.success(), "{out:?}");
        let log = tmp.path().join("daemon.log");
        let mut cmd = match how {
            Daemon::Nobody => {
                let mut c = Command::new(bin());
                c.uid_gid_nobody();
                c
            }
            Daemon::PidNamespace => {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--kill-child", bin()]);
                c
            }
        };
        let daemon = cmd
            .arg("mount")
            .arg("-f")
            .arg(&backing)
            .arg(&mnt)
            .env("HOME", "/")
            .env("FSCRYPTFS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .process_group(0)
            .spawn()
            .expect("mount");
        let mut m = SideMount {
            _tmp: tmp,
            mnt,
            log,
            daemon,
        };
        let t0 = std::time::Instant::now();
        while !is_mounted(&m.mnt) {
            if let Ok(Some(st)) = m.daemon.try_wait() {
                panic!("daemon exited ({st}): {}", m.log_text());
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(15),
                "no mount"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        m
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SideMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.log_text());
        }
    }
}

/// `uid(NOBODY).gid(NOBODY)` in one call.
trait AsNobody {
    fn uid_gid_nobody(&mut self) -> &mut Self;
}

impl AsNobody for Command {
    fn uid_gid_nobody(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.uid(NOBODY).gid(NOBODY)
    }
}

/// The caller the bridge may not reach: a process that became [`NOBODY`] by setuid (the kernel
/// makes it non-dumpable, so the user's own daemon may not read its memory), calling each
/// `NAME=CMD` ioctl on `path` with a zeroed 160-byte argument; prints `NAME errno` per call.
fn nondumpable_caller(path: &Path, calls: &[(&str, u32)]) -> String {
    let script = r#"
import errno, fcntl, os, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
fd = os.open(sys.argv[1], os.O_RDONLY)
for spec in sys.argv[2:]:
    name, cmd = spec.split("=")
    buf = bytearray(160)
    if name.startswith("add"):
        buf[0] = 2; buf[40] = 32
    try:
        fcntl.ioctl(fd, int(cmd), buf, True); e = 0
    except OSError as x:
        e = x.errno
    print(name, errno.errorcode.get(e, e))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .args(calls.iter().map(|(n, c)| format!("{n}={c}")))
        .output()
        .expect("python3 is needed");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn an_unprivileged_daemon_that_may_not_reach_its_caller_answers_enotty_once_logged() {
    if !users_can_mount() {
        return;
    }
    let m = SideMount::start(Daemon::Nobody);
    let calls = [
        ("get_policy_ex", abi::FS_IOC_GET_ENCRYPTION_POLICY_EX),
        ("add_key", abi::FS_IOC_ADD_ENCRYPTION_KEY),
        ("get_policy_ex_again", abi::FS_IOC_GET_ENCRYPTION_POLICY_EX),
        ("own_get_policy", abi::FSCRYPTFS_IOC_GET_POLICY),
        ("key_status", abi::FS_IOC_GET_ENCRYPTION_KEY_STATUS),
    ];
    let got = nondumpable_caller(&m.mnt, &calls);
    assert_eq!(
        got,
        "get_policy_ex ENOTTY\nadd_key ENOTTY\nget_policy_ex_again ENOTTY\n\
         own_get_policy ENODATA\nkey_status EINVAL\n"
    );
    // The log says why, once (then each refusal only at debug level).
    let log = m.log_text();
    assert_eq!(log.matches("answer ENOTTY").count(), 1, "{log}");
    assert!(log.contains("Permission denied"), "{log}");
    // A caller the user's daemon may reach (a process the user started) is served.
    let out = Command::new("xfs_io")
        .args(["-c", "get_encpolicy -t"])
        .arg(&m.mnt)
        .uid_gid_nobody()
        .output()
        .expect("xfs_io");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "supported\n");
}

#[test]
fn the_commands_fall_back_to_fscryptfs_ioctls_where_the_bridge_cannot_reach() {
    if !can_mount() || !have_xfs_io() {
        return;
    }
    let m = SideMount::start(Daemon::PidNamespace);
    let run = |args: &[&str], input: &[u8]| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let out = run_fscryptfs(&args, Some(input));
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let mnt = m.mnt.to_str().expect("ASCII path");
    // Unmodified tools see what they saw before the bridge: ENOTTY.
    let out = Command::new("xfs_io")
        .args(["-c", "get_encpolicy -t"])
        .arg(&m.mnt)
        .output()
        .expect("xfs_io");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unsupported\n");
    // Our commands fall back to fscryptfs' own numbers and work.
    let added = run(&["add-key", mnt], &test_raw_key());
    assert!(added.contains(TEST_KEY_IDENTIFIER), "{added}");
    let dir = m.mnt.join("d");
    std::fs::create_dir(&dir).expect("mkdir");
    let dir = dir.to_str().expect("ASCII path");
    run(&["set-policy", TEST_KEY_IDENTIFIER, dir], b"");
    let shown = run(&["get-policy", dir], b"");
    assert!(shown.contains(TEST_KEY_IDENTIFIER), "{shown}");
    let log = m.log_text();
    assert_eq!(log.matches("answer ENOTTY").count(), 1, "{log}");
    assert!(
        log.matches("ioctl bridge: the caller is outside the daemon's pid namespace")
            .count()
            >= 4,
        "xfs_io, add-key, set-policy and get-policy each tried the kernel's number: {log}"
    );
}
