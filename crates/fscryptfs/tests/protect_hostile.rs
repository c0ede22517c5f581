//! Hostile protector and policy metadata (issue 10, "Bad input"): truncated, oversized and corrupt
//! records, metadata owned by another user, a protector for another policy, a policy naming a
//! protector that does not exist, symlinks, FIFOs and loose permissions in `.fscrypt`, descriptors
//! that try to leave the tree. Each is met with one clear line on stderr (`fscryptfs: ` and the path
//! or descriptor at fault), an empty stdout and its exit status (1 damage or insecure metadata, 2
//! bad arguments, 12 a wrong passphrase), and nothing else is read or changed: every other entry
//! of `.fscrypt` stays byte for byte (and inode for inode) as it was, a symlink's target is left
//! alone, and the directory unlocks again once the damage is repaired.
//!
//! Every test runs the real binary against a real mounted volume (skips loudly without root and
//! /dev/fuse; fails under FSCRYPTFS_REQUIRE_PRIVILEGED=1), with cheap Argon2id costs from a
//! configuration file of its own (`FSCRYPTFS_CONFIG`). Every command runs under a deadline, so a
//! hang (a FIFO read as metadata) fails the test instead of stalling it.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fscryptfs::protectors::proto::{PolicyData, ProtectorData};
use prost::Message;
use support::{bin, mount_volume, pattern, wait_or_kill, Mounted};

/// Cheap Argon2id costs, so a protector opens in milliseconds.
const CONFIG: &str = r#"{"hash_costs":{"time":"1","memory":"64","parallelism":"1"},"options":{"policy_version":"2"}}"#;

/// The passphrase of the directory's protector.
const PASS: &str = "pass";

/// The largest metadata file the tool reads.
const MAX_METADATA: usize = 16384;

/// The uid the unprivileged runs use, and the "other user" that owns planted metadata.
const NOBODY: u32 = 65534;
const OTHER: u32 = 12345;

/// No command may take longer than this (the FIFO cases would hang forever).
const DEADLINE: Duration = Duration::from_secs(20);

/// What one run did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// A mounted volume, set up, with `MNT/d` encrypted (protector "n", passphrase [`PASS`]), holding
/// `secret.txt`, and locked.
struct Vol {
    m: Mounted,
    config: PathBuf,
    /// The mount point as the tool names it (canonical).
    mnt: String,
    /// The encrypted directory.
    d: String,
    /// The policy of `d`.
    policy: String,
    /// Its one protector.
    protector: String,
}

impl Vol {
    fn new(opts: &str) -> Option<Vol> {
        let m = mount_volume(&[], opts)?;
        let config = m.tmp.path().join("fscrypt.conf");
        std::fs::write(&config, CONFIG).expect("write config");
        let mnt = std::fs::canonicalize(&m.mnt)
            .expect("canonical mount point")
            .to_str()
            .expect("ASCII path")
            .to_string();
        let d = format!("{mnt}/d");
        let mut v = Vol {
            m,
            config,
            mnt,
            d,
            policy: String::new(),
            protector: String::new(),
        };
        v.ok(&["setup", &v.mnt.clone()], "");
        std::fs::create_dir(&v.d).expect("mkdir d");
        let d = v.d.clone();
        v.ok(&["encrypt", &d, "--name=n"], &format!("{PASS}\n"));
        std::fs::write(format!("{d}/secret.txt"), "attack at dawn").expect("write secret");
        v.ok(&["lock", &d], "");
        assert!(!v.unlocked(), "locked after lock");
        let only = |sub: &str| {
            let names = names_in(&v.meta(sub));
            assert_eq!(names.len(), 1, "one record in {sub}: {names:?}");
            names[0].clone()
        };
        let (policy, protector) = (only("policies"), only("protectors"));
        v.policy = policy;
        v.protector = protector;
        Some(v)
    }

    /// `MNT/.fscrypt/<rel>`.
    fn meta(&self, rel: &str) -> PathBuf {
        Path::new(&self.mnt).join(".fscrypt").join(rel)
    }

    /// `MNT/.fscrypt/protectors/<protector>`.
    fn protector_path(&self) -> PathBuf {
        self.meta(&format!("protectors/{}", self.protector))
    }

    /// `MNT/.fscrypt/policies/<policy>`.
    fn policy_path(&self) -> PathBuf {
        self.meta(&format!("policies/{}", self.policy))
    }

    /// A path outside the mount, in the test's own temporary directory.
    fn outside(&self, name: &str) -> PathBuf {
        self.m.tmp.path().join(name)
    }

    /// Runs the binary as root with `stdin` piped in.
    fn run(&self, args: &[&str], stdin: &str) -> Out {
        run_as(&self.config, None, args, stdin)
    }

    /// Runs the binary as `uid` (its gid too) with `stdin` piped in.
    fn run_uid(&self, uid: u32, args: &[&str], stdin: &str) -> Out {
        run_as(&self.config, Some(uid), args, stdin)
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(out.code, 0, "fscryptfs {args:?}: {out:?}");
        assert_eq!(out.stderr, "", "fscryptfs {args:?}: {out:?}");
        out.stdout
    }

    /// Whether `d` shows its plaintext names.
    fn unlocked(&self) -> bool {
        std::fs::read_dir(&self.d)
            .expect("read_dir d")
            .any(|e| e.expect("entry").file_name() == "secret.txt")
    }

    /// Unlocks `d` with the right passphrase and checks the plaintext is back (the repair worked).
    fn unlock_works(&self) {
        let out = self.ok(&["unlock", &self.d], &format!("{PASS}\n"));
        assert_eq!(
            out,
            format!("\"{}\" is now unlocked and ready for use.\n", self.d)
        );
        assert!(self.unlocked());
        assert_eq!(
            std::fs::read_to_string(format!("{}/secret.txt", self.d)).unwrap(),
            "attack at dawn"
        );
    }

    /// Everything under `.fscrypt` (see [`snapshot`]).
    fn snap(&self) -> Snapshot {
        snapshot(&self.meta(""))
    }

    /// Creates a second protector named `name` with passphrase `pass`; returns its descriptor.
    fn create_protector(&self, name: &str, pass: &str) -> String {
        let out = self.ok(
            &[
                "metadata",
                "create",
                "protector",
                &self.mnt,
                &format!("--name={name}"),
            ],
            &format!("{pass}\n"),
        );
        out.strip_prefix("Protector ")
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no descriptor in {out:?}"))
            .to_string()
    }
}

fn run_as(config: &Path, uid: Option<u32>, args: &[&str], stdin: &str) -> Out {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("FSCRYPTFS_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        cmd.uid(u).gid(u).current_dir("/");
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn fscryptfs");
    let mut si = child.stdin.take().expect("stdin");
    let input = stdin.as_bytes().to_vec();
    // The child may never read its stdin (or stop at the first newline): a broken pipe is fine.
    let feeder = std::thread::spawn(move || {
        let _ = si.write_all(&input);
    });
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut s);
        s
    });
    let status = wait_or_kill(&mut child, start, DEADLINE, "fscryptfs")
        .unwrap_or_else(|| panic!("fscryptfs {args:?} hung: killed after {DEADLINE:?}"));
    let took = start.elapsed();
    let _ = feeder.join();
    Out {
        code: status.code().expect("killed by a signal"),
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
        took,
    }
}

/// Asserts a clean failure: exit `code`, nothing on stdout, exactly one line on stderr starting
/// with `fscryptfs: ` and containing each of `needles`.
fn assert_fails(out: &Out, code: i32, needles: &[&str]) {
    eprint!("refused ({}): {}", out.code, out.stderr);
    assert_eq!(out.code, code, "exit status: {out:?}");
    assert_eq!(out.stdout, "", "stdout must stay empty: {out:?}");
    // One line of ours; a bad argument gets clap's whole message, its first line in our form
    // and ending with its --help hint.
    assert!(
        out.stderr.starts_with("fscryptfs: ")
            && out.stderr.ends_with('\n')
            && (out.stderr.matches('\n').count() == 1 || out.stderr.contains("try '--help'")),
        "stderr must be one line starting with \"fscryptfs: \": {out:?}"
    );
    for n in needles {
        assert!(out.stderr.contains(n), "stderr must name {n:?}: {out:?}");
    }
    assert!(
        out.stderr.matches("corrupt metadata").count() <= 1,
        "said once: {out:?}"
    );
}

/// One entry of a tree: its type, mode, owner, inode, and contents (a file's bytes, a symlink's
/// target; nothing for anything else).
#[derive(Debug, PartialEq, Eq, Clone)]
struct Entry {
    mode: u32,
    uid: u32,
    ino: u64,
    data: Vec<u8>,
}

type Snapshot = BTreeMap<PathBuf, Entry>;

/// Every entry under `root` (not following symlinks, not opening anything but regular files).
fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, rel: &Path, out: &mut Snapshot) {
        let p = root.join(rel);
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = md.file_type();
        let data = if ft.is_file() {
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        } else if ft.is_symlink() {
            std::fs::read_link(&p)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        out.insert(
            rel.to_path_buf(),
            Entry {
                mode: md.mode(),
                uid: md.uid(),
                ino: md.ino(),
                data,
            },
        );
        if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                walk(root, &rel.join(n), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// The names in a directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The table row of `status` output whose first column is `first`.
fn row<'a>(stdout: &'a str, first: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row for {first} in:\n{stdout}"))
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        r,
        0,
        "mkfifo {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// The length of `n` as a protobuf varint.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `record` with an unknown length-delimited field (number 1000) appended, `total` bytes long: a
/// record any protobuf reader accepts (unknown fields are skipped), whatever its size.
fn padded(record: &[u8], total: usize) -> Vec<u8> {
    let key = (1000 << 3) | 2;
    let room = total - record.len() - varint_len(key);
    let len = (0..room)
        .rev()
        .find(|&l| l + varint_len(l) == room)
        .expect("a field length that fits");
    let mut out = record.to_vec();
    push_varint(&mut out, key);
    push_varint(&mut out, len);
    out.extend(std::iter::repeat_n(b'A', len));
    assert_eq!(out.len(), total);
    out
}

// 1. A truncated protector.
#[test]
fn truncated_protector_is_corrupt_and_status_still_lists_it() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let before = v.snap();

    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 1, &["corrupt metadata", &path.display().to_string()]);
    assert!(!v.unlocked(), "still locked");
    let out = v.run(
        &[
            "metadata",
            "dump",
            &format!("--protector={}:{}", v.mnt, v.protector),
        ],
        "",
    );
    assert_fails(&out, 1, &["corrupt metadata", &path.display().to_string()]);

    // The filesystem view still lists the policy, and the bad protector without crashing.
    let status = v.ok(&["status", &v.mnt], "");
    assert!(status.contains("has 1 protector and 1 policy"), "{status}");
    let prow = row(&status, &v.protector);
    assert!(prow.contains("corrupt metadata"), "{status}");
    let polrow = row(&status, &v.policy);
    assert!(polrow.contains(&v.protector), "{status}");
    // The directory view too.
    let status = v.ok(&["status", &v.d], "");
    assert!(
        status.contains(&format!("Policy:   {}", v.policy)),
        "{status}"
    );
    assert!(row(&status, &v.protector).contains("corrupt metadata"));

    assert_eq!(v.snap(), before, "nothing in .fscrypt changed");
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 2. An oversized protector: a record that would otherwise decode is refused for its size alone.
#[test]
fn oversized_protector_is_refused_at_16385_bytes_and_accepted_at_16384() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    // The padded records still decode to the same protector.
    let at_max = padded(&good, MAX_METADATA);
    assert_eq!(
        ProtectorData::decode(&at_max[..]).unwrap(),
        ProtectorData::decode(&good[..]).unwrap()
    );

    for size in [MAX_METADATA + 1, 1 << 20] {
        std::fs::write(&path, padded(&good, size)).unwrap();
        let before = v.snap();
        let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
        assert_fails(
            &out,
            1,
            &[
                "corrupt metadata",
                &path.display().to_string(),
                &format!("{size} bytes"),
            ],
        );
        assert!(!v.unlocked());
        let status = v.ok(&["status", &v.mnt], "");
        assert!(
            row(&status, &v.protector).contains("corrupt metadata"),
            "{status}"
        );
        assert_eq!(v.snap(), before, "nothing changed (size {size})");
    }

    // Exactly the limit is fine.
    std::fs::write(&path, &at_max).unwrap();
    v.unlock_works();
    v.ok(&["lock", &v.d], "");

    // The same bound for a policy.
    let ppath = v.policy_path();
    let good_policy = std::fs::read(&ppath).unwrap();
    std::fs::write(&ppath, padded(&good_policy, MAX_METADATA + 1)).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[
            "corrupt metadata",
            &ppath.display().to_string(),
            "16385 bytes",
        ],
    );
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    std::fs::write(&ppath, padded(&good_policy, MAX_METADATA)).unwrap();
    v.unlock_works();
}

// 3. A policy of random bytes.
#[test]
fn garbage_policy_fails_unlock_and_status_clearly() {
    let Some(v) = Vol::new("") else { return };
    let x = v.create_protector("x", "xpass");
    let path = v.policy_path();
    let good = std::fs::read(&path).unwrap();
    let garbage = pattern(0x5eed, 300);
    std::fs::write(&path, &garbage).unwrap();
    let before = v.snap();
    let pathname = path.display().to_string();

    // Adding a protector to it rewrites nothing.
    let out = v.run(
        &[
            "metadata",
            "add-protector-to-policy",
            &format!("--protector={}:{x}", v.mnt),
            &format!("--policy={}:{}", v.mnt, v.policy),
        ],
        &format!("xpass\n{PASS}\n"),
    );
    assert_fails(&out, 1, &["corrupt metadata", &pathname]);

    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 1, &["corrupt metadata", &pathname]);
    assert!(!v.unlocked());
    let out = v.run(&["status", &v.d], "");
    assert_fails(&out, 1, &["corrupt metadata", &pathname]);
    let out = v.run(&["lock", &v.d], "");
    assert_fails(&out, 1, &["corrupt metadata", &pathname]);
    let out = v.run(
        &[
            "metadata",
            "dump",
            &format!("--policy={}:{}", v.mnt, v.policy),
        ],
        "",
    );
    assert_fails(&out, 1, &["corrupt metadata", &pathname]);
    // The filesystem view lists it as bad and goes on.
    let status = v.ok(&["status", &v.mnt], "");
    assert!(
        row(&status, &v.policy).contains("corrupt metadata"),
        "{status}"
    );
    assert!(row(&status, &v.protector).contains("custom protector \"n\""));

    assert_eq!(v.snap(), before);
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 4. A well-formed policy record with an invalid field: a 15-byte IV; and a policy file holding
// another policy's record.
#[test]
fn policy_with_a_bad_field_or_another_descriptor_is_corrupt() {
    let Some(v) = Vol::new("") else { return };
    let path = v.policy_path();
    let pathname = path.display().to_string();
    let good = std::fs::read(&path).unwrap();
    let mut rec = PolicyData::decode(&good[..]).unwrap();
    rec.wrapped_policy_keys[0]
        .wrapped_key
        .as_mut()
        .unwrap()
        .iv
        .truncate(15);
    std::fs::write(&path, rec.encode_to_vec()).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &["corrupt metadata", &pathname, "IV is not 16 bytes"],
    );
    assert!(!v.unlocked());
    let out = v.run(&["status", &v.d], "");
    assert_fails(&out, 1, &["IV is not 16 bytes", &pathname]);
    assert_eq!(v.snap(), before);

    // A valid record under the wrong name.
    let mut other = PolicyData::decode(&good[..]).unwrap();
    other.key_descriptor = "00112233445566778899aabbccddeeff".into();
    std::fs::write(&path, other.encode_to_vec()).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[
            "corrupt metadata",
            &pathname,
            "00112233445566778899aabbccddeeff",
        ],
    );
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);

    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 4b. A protector file holding another protector's (valid) record.
#[test]
fn protector_file_holding_another_protector_is_corrupt() {
    let Some(v) = Vol::new("") else { return };
    let x = v.create_protector("x", "xpass");
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    std::fs::copy(v.meta(&format!("protectors/{x}")), &path).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], "xpass\n");
    assert_fails(
        &out,
        1,
        &["corrupt metadata", &path.display().to_string(), &x],
    );
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 5. Metadata owned by another user, seen by an unprivileged user.
#[test]
fn metadata_owned_by_another_user_is_refused_to_an_ordinary_user() {
    let Some(v) = Vol::new("allow_other") else {
        return;
    };
    // Let uid 65534 reach the mount, its config, the directory and the (readable) records.
    chmod(v.m.tmp.path(), 0o755);
    chmod(&v.config, 0o644);
    chown(Path::new(&v.d), NOBODY);
    chmod(&v.policy_path(), 0o644);
    chmod(&v.protector_path(), 0o644);
    let ppath = v.protector_path();
    let pname = ppath.display().to_string();

    // Root's records are trusted by everyone: the user gets as far as its passphrase.
    let out = v.run_uid(NOBODY, &["unlock", &v.d], "wrong\n");
    assert_fails(&out, 12, &["incorrect passphrase"]);

    chown(&ppath, OTHER);
    let before = v.snap();
    let out = v.run_uid(NOBODY, &["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[&pname, "owned by another user", &OTHER.to_string()],
    );
    assert!(!v.unlocked());
    let out = v.run_uid(
        NOBODY,
        &[
            "metadata",
            "dump",
            &format!("--protector={}:{}", v.mnt, v.protector),
        ],
        "",
    );
    assert_fails(&out, 1, &[&pname, "owned by another user"]);
    // The user's view of the filesystem leaves the untrusted protector out.
    let out = v.run_uid(NOBODY, &["status", &v.mnt], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("has 0 protectors and 1 policy"),
        "{out:?}"
    );
    // Root trusts any owner (the tool's rule).
    let dump = v.ok(
        &[
            "metadata",
            "dump",
            &format!("--protector={}:{}", v.mnt, v.protector),
        ],
        "",
    );
    assert!(dump.contains(&v.protector));
    assert_eq!(v.snap(), before);

    // A policy owned by someone else.
    chown(&ppath, 0);
    let polpath = v.policy_path();
    chown(&polpath, OTHER);
    let before = v.snap();
    let out = v.run_uid(NOBODY, &["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[
            &polpath.display().to_string(),
            "owned by another user",
            &OTHER.to_string(),
        ],
    );
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    chown(&polpath, 0);

    // A policies directory set up by someone else.
    let policies = v.meta("policies");
    chown(&policies, OTHER);
    let before = v.snap();
    let pdir = policies.display().to_string();
    for args in [
        vec!["unlock", v.d.as_str()],
        vec!["status", v.mnt.as_str()],
        vec!["status", v.d.as_str()],
    ] {
        let out = v.run_uid(NOBODY, &args, &format!("{PASS}\n"));
        assert_fails(&out, 1, &[&pdir, "setup by another user"]);
    }
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    // And `.fscrypt` itself.
    chown(&policies, 0);
    chown(&v.meta(""), OTHER);
    let before = v.snap();
    let out = v.run_uid(NOBODY, &["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[&format!("{}/.fscrypt", v.mnt), "owned by another user"],
    );
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    chown(&v.meta(""), 0);
    v.unlock_works();
}

// 6. `policies/` replaced by a symlink to a directory elsewhere (holding a copy of the real
// policy, which would open if it were followed).
#[test]
fn policies_dir_as_a_symlink_is_refused_and_its_target_untouched() {
    let Some(v) = Vol::new("") else { return };
    let elsewhere = v.outside("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::copy(v.policy_path(), elsewhere.join(&v.policy)).unwrap();
    std::fs::write(elsewhere.join("keep"), "keep me").unwrap();
    let policies = v.meta("policies");
    let moved = v.meta("policies.moved");
    std::fs::rename(&policies, &moved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &policies).unwrap();
    let before = v.snap();
    let outside_before = snapshot(&elsewhere);
    let pdir = policies.display().to_string();

    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 1, &[&pdir, "symlink"]);
    assert!(!v.unlocked());
    let out = v.run(&["status", &v.mnt], "");
    assert_fails(&out, 1, &[&pdir, "symlink"]);
    // A new directory cannot be encrypted there: nothing is written through the link.
    let e = format!("{}/e", v.mnt);
    std::fs::create_dir(&e).unwrap();
    let out = v.run(&["encrypt", &e, "--name=e"], &format!("{PASS}\n"));
    assert_fails(&out, 1, &[&pdir, "symlink"]);
    let out = v.run(
        &["metadata", "create", "protector", &v.mnt, "--name=p"],
        &format!("{PASS}\n"),
    );
    assert_fails(&out, 1, &[&pdir, "symlink"]);

    assert_eq!(v.snap(), before);
    assert_eq!(snapshot(&elsewhere), outside_before, "the target untouched");
    std::fs::remove_file(&policies).unwrap();
    std::fs::rename(&moved, &policies).unwrap();
    v.unlock_works();

    // `metadata destroy MNT` removes a planted symlink, never what it points to.
    std::os::unix::fs::symlink(&elsewhere, v.meta("protectors/0123456789abcdef")).unwrap();
    v.ok(&["metadata", "destroy", "--force", &v.mnt], "");
    assert!(!v.meta("").exists());
    assert_eq!(snapshot(&elsewhere), outside_before, "the target untouched");
}

// 7. A protector replaced by a symlink to a file outside (a copy of the real protector).
#[test]
fn protector_as_a_symlink_is_refused_and_its_target_never_read_or_written() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let target = v.outside("protector.copy");
    std::fs::copy(&path, &target).unwrap();
    let good = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let before = v.snap();
    let target_ino = std::fs::metadata(&target).unwrap().ino();
    let pname = path.display().to_string();

    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 1, &[&pname, "symlink"]);
    assert!(!v.unlocked());
    let pref = format!("--protector={}:{}", v.mnt, v.protector);
    let out = v.run(
        &["metadata", "change-passphrase", &pref],
        &format!("{PASS}\nnewpass\n"),
    );
    assert_fails(&out, 1, &[&pname, "symlink"]);
    let out = v.run(&["metadata", "dump", &pref], "");
    assert_fails(&out, 1, &[&pname, "symlink"]);
    let status = v.ok(&["status", &v.mnt], "");
    assert!(row(&status, &v.protector).contains("symlink"), "{status}");

    assert_eq!(v.snap(), before, "the symlink is still there, unchanged");
    assert_eq!(std::fs::read(&target).unwrap(), good, "target unchanged");
    assert_eq!(std::fs::metadata(&target).unwrap().ino(), target_ino);
    // Destroying the protector removes the symlink, not its target.
    v.ok(&["metadata", "destroy", "--force", &pref], "");
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "the link is gone"
    );
    assert_eq!(std::fs::read(&target).unwrap(), good, "target unchanged");
    assert_eq!(std::fs::metadata(&target).unwrap().ino(), target_ino);
    std::fs::write(&path, &good).unwrap();
    chmod(&path, 0o600);
    v.unlock_works();
}

// 8. A FIFO in place of a protector, and of a policy: refused at once, never opened for reading.
#[test]
fn fifo_in_place_of_a_record_fails_promptly() {
    let Some(v) = Vol::new("") else { return };
    let ppath = v.protector_path();
    let good = std::fs::read(&ppath).unwrap();
    std::fs::remove_file(&ppath).unwrap();
    mkfifo(&ppath);
    let before = v.snap();
    let pname = ppath.display().to_string();
    let pref = format!("--protector={}:{}", v.mnt, v.protector);
    for (args, stdin) in [
        (vec!["unlock", v.d.as_str()], format!("{PASS}\n")),
        (
            vec!["metadata", "change-passphrase", pref.as_str()],
            format!("{PASS}\nnew\n"),
        ),
        (vec!["metadata", "dump", pref.as_str()], String::new()),
    ] {
        let out = v.run(&args, &stdin);
        assert_fails(&out, 1, &[&pname, "FIFO"]);
        assert!(out.took < Duration::from_secs(5), "{args:?} took {out:?}");
    }
    let status = v.run(&["status", &v.mnt], "");
    assert_eq!(status.code, 0, "{status:?}");
    assert!(row(&status.stdout, &v.protector).contains("FIFO"));
    assert!(status.took < Duration::from_secs(5));
    assert_eq!(v.snap(), before);
    std::fs::remove_file(&ppath).unwrap();
    std::fs::write(&ppath, &good).unwrap();

    let path = v.policy_path();
    let good = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 1, &[&path.display().to_string(), "FIFO"]);
    assert!(out.took < Duration::from_secs(5), "{out:?}");
    let status = v.run(&["status", &v.mnt], "");
    assert_eq!(status.code, 0, "{status:?}");
    assert!(row(&status.stdout, &v.policy).contains("FIFO"));
    assert_eq!(v.snap(), before);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 9. A policy naming a protector that does not exist.
#[test]
fn policy_naming_a_missing_protector_says_so() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[&format!("protector metadata for {} not found", v.protector)],
    );
    assert!(!v.unlocked());
    // The directory view shows the dangling slot.
    let status = v.ok(&["status", &v.d], "");
    assert!(row(&status, &v.protector).contains("not found"), "{status}");
    assert_eq!(v.snap(), before);
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 10. A protector that does not protect this policy.
#[test]
fn protector_of_another_policy_cannot_unlock() {
    let Some(v) = Vol::new("") else { return };
    let x = v.create_protector("x", "xpass");
    let before = v.snap();
    let out = v.run(
        &["unlock", &v.d, &format!("--unlock-with={}:{x}", v.mnt)],
        "xpass\n",
    );
    assert_fails(
        &out,
        1,
        &[&format!(
            "policy {} is not protected by protector {x}",
            v.policy
        )],
    );
    assert!(!v.unlocked());
    // As the tool: the choice is refused before any passphrase is asked (stdin empty).
    let out = v.run(
        &["unlock", &v.d, &format!("--unlock-with={}:{x}", v.mnt)],
        "",
    );
    assert_fails(
        &out,
        1,
        &[&format!(
            "policy {} is not protected by protector {x}",
            v.policy
        )],
    );
    let out = v.run(
        &[
            "metadata",
            "remove-protector-from-policy",
            "--force",
            &format!("--protector={}:{x}", v.mnt),
            &format!("--policy={}:{}", v.mnt, v.policy),
        ],
        "",
    );
    assert_fails(&out, 1, &["not protected by protector", &x]);
    assert_eq!(v.snap(), before);
    let out = v.ok(
        &[
            "unlock",
            &v.d,
            &format!("--unlock-with={}:{}", v.mnt, v.protector),
        ],
        &format!("{PASS}\n"),
    );
    assert!(out.contains("is now unlocked"));
    assert!(v.unlocked());
}

// 11. Descriptors that are not descriptors: nothing is looked up.
#[test]
fn descriptor_arguments_with_path_traversal_are_usage_errors() {
    let Some(v) = Vol::new("") else { return };
    let before = v.snap();
    let m = &v.mnt;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "metadata".into(),
                "dump".into(),
                format!("--protector={m}:../../etc"),
            ],
            "../../etc",
        ),
        (
            vec![
                "metadata".into(),
                "dump".into(),
                format!("--policy={m}:../protectors/{}", v.protector),
            ],
            "../protectors",
        ),
        (
            vec![
                "unlock".into(),
                v.d.clone(),
                format!("--unlock-with={m}:../../etc/passwd"),
            ],
            "../../etc/passwd",
        ),
        (
            vec![
                "metadata".into(),
                "destroy".into(),
                "--force".into(),
                format!("--protector={m}:.."),
            ],
            "..",
        ),
        (
            vec![
                "metadata".into(),
                "change-passphrase".into(),
                format!("--protector={m}:{}/x", v.protector),
            ],
            "is not of the form",
        ),
        // Alphanumeric, but not a descriptor: refused before any file is opened. (The protector's
        // own descriptor in capitals, made sure to hold a letter: a random one may be all digits,
        // and then it is the descriptor itself.)
        (
            vec![
                "metadata".into(),
                "dump".into(),
                format!("--protector={m}:A{}", v.protector[1..].to_uppercase()),
            ],
            "is not a protector descriptor",
        ),
        (
            vec![
                "metadata".into(),
                "destroy".into(),
                "--force".into(),
                format!("--policy={m}:etc"),
            ],
            "is not a policy descriptor",
        ),
        (
            vec![
                "unlock".into(),
                v.d.clone(),
                format!("--unlock-with={m}:passwd"),
            ],
            "is not a protector descriptor",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = v.run(&args, &format!("{PASS}\n"));
        assert_fails(&out, 2, &[needle]);
        assert!(!v.unlocked(), "{args:?}");
    }
    assert_eq!(v.snap(), before);
    v.unlock_works();
}

// 12. World-writable metadata directories without the sticky bit.
#[test]
fn world_writable_metadata_dirs_without_sticky_bit_are_insecure() {
    let Some(v) = Vol::new("") else { return };
    for sub in ["policies", "protectors"] {
        let dir = v.meta(sub);
        let dname = dir.display().to_string();
        chmod(&dir, 0o777);
        let before = v.snap();
        let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
        assert_fails(&out, 1, &[&dname, "insecure permissions"]);
        assert!(!v.unlocked());
        let out = v.run(&["status", &v.mnt], "");
        assert_fails(&out, 1, &[&dname, "insecure permissions"]);
        let e = format!("{}/e-{sub}", v.mnt);
        std::fs::create_dir(&e).unwrap();
        let out = v.run(&["encrypt", &e, "--name=e"], &format!("{PASS}\n"));
        assert_fails(&out, 1, &[&dname, "insecure permissions"]);
        assert_eq!(v.snap(), before, "{sub}");
        // With the sticky bit (`setup --all-users`), it is the shared layout and fine.
        chmod(&dir, 0o1777);
        v.unlock_works();
        v.ok(&["lock", &v.d], "");
        chmod(&dir, 0o755);
    }
}

// 13. A wrong passphrase.
#[test]
fn wrong_passphrase_is_exit_12_and_stays_locked() {
    let Some(v) = Vol::new("") else { return };
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], "not the passphrase\n");
    assert_fails(&out, 12, &[]);
    assert_eq!(out.stderr, "fscryptfs: incorrect passphrase\n");
    assert!(!v.unlocked());
    let file = v.outside("wrong.txt");
    std::fs::write(&file, "pas\n").unwrap();
    let out = v.run(
        &[
            "unlock",
            &v.d,
            &format!("--passphrase-file={}", file.display()),
        ],
        "",
    );
    assert_eq!(out.stderr, "fscryptfs: incorrect passphrase\n");
    assert_eq!(out.code, 12);
    let pref = format!("--protector={}:{}", v.mnt, v.protector);
    let out = v.run(
        &["metadata", "change-passphrase", &pref],
        "not the passphrase\nnew\n",
    );
    assert_fails(&out, 12, &["incorrect passphrase"]);
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    v.unlock_works();
}

// 14. `metadata change-passphrase` replaces the file atomically, keeping its mode and owner.
#[test]
fn change_passphrase_writes_a_new_inode_keeping_mode_and_owner() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    chmod(&path, 0o640);
    chown(&path, OTHER);
    let old = std::fs::symlink_metadata(&path).unwrap();
    let old_bytes = std::fs::read(&path).unwrap();
    // A second name for the old file elsewhere on the volume: the rewrite must not reach it.
    let victim = Path::new(&v.mnt).join("victim");
    std::fs::hard_link(&path, &victim).unwrap();
    let policy_before = std::fs::read(v.policy_path()).unwrap();
    let pref = format!("--protector={}:{}", v.mnt, v.protector);
    let out = v.ok(
        &["metadata", "change-passphrase", &pref],
        &format!("{PASS}\nnewpass\n"),
    );
    assert_eq!(
        out,
        format!(
            "Passphrase for protector {} successfully changed.\n",
            v.protector
        )
    );
    let new = std::fs::symlink_metadata(&path).unwrap();
    assert_ne!(new.ino(), old.ino(), "renamed into place, not rewritten");
    assert_eq!(new.mode() & 0o7777, 0o640, "mode kept");
    assert_eq!(new.uid(), OTHER, "owner kept");
    assert!(new.file_type().is_file());
    assert_ne!(std::fs::read(&path).unwrap(), old_bytes);
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        old_bytes,
        "the old inode kept"
    );
    assert_eq!(std::fs::metadata(&victim).unwrap().ino(), old.ino());
    assert_eq!(
        names_in(&v.meta("protectors")),
        vec![v.protector.clone()],
        "no temporary files left"
    );
    assert_eq!(names_in(&v.meta("")), vec!["policies", "protectors"]);
    assert_eq!(std::fs::read(v.policy_path()).unwrap(), policy_before);
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 12, &["incorrect passphrase"]);
    v.ok(&["unlock", &v.d], "newpass\n");
    assert!(v.unlocked());
}

// 15. Leftover temporary files (ours and the tool's) are not metadata.
#[test]
fn leftover_temporary_files_are_ignored() {
    let Some(v) = Vol::new("") else { return };
    let junk = [
        v.meta("protectors/.fscryptfs.tmp.0123456789abcdef"),
        v.meta("protectors/.tmp123456"),
        v.meta("policies/.fscryptfs.tmp.x"),
        v.meta("policies/.tmp987"),
    ];
    for (i, j) in junk.iter().enumerate() {
        std::fs::write(j, pattern(i as u64 + 1, 100)).unwrap();
    }
    let before = v.snap();
    let status = v.ok(&["status", &v.mnt], "");
    assert!(status.contains("has 1 protector and 1 policy"), "{status}");
    let leftovers = [".fscryptfs.tmp", ".tmp123456", ".tmp987"];
    for l in leftovers {
        assert!(!status.contains(l), "{status}");
    }
    assert!(!status.contains("corrupt"), "{status}");
    let status = v.ok(&["status", &v.d], "");
    for l in leftovers {
        assert!(!status.contains(l), "{status}");
    }
    assert_eq!(
        v.snap(),
        before,
        "left alone, not removed or read as records"
    );
    v.unlock_works();
}

// 16. A hostile `.link` in place of a protector: garbage, a symlink, oversized, a FIFO.
#[test]
fn hostile_protector_links_are_refused_naming_the_link() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let link = v.meta(&format!("protectors/{}.link", v.protector));
    let lname = link.display().to_string();
    let target = v.outside("link-target");
    std::fs::write(&target, format!("PATH={}\n", v.mnt)).unwrap();
    type Plant = Box<dyn Fn(&Path)>;
    let plants: Vec<(Plant, &str)> = vec![
        (
            Box::new(|p: &Path| std::fs::write(p, "garbage without a key\n").unwrap()),
            "neither UUID nor PATH",
        ),
        (
            Box::new(|p: &Path| std::fs::write(p, padded(b"PATH=/\n", MAX_METADATA + 1)).unwrap()),
            "16385 bytes",
        ),
        (
            Box::new(move |p: &Path| std::os::unix::fs::symlink(&target, p).unwrap()),
            "symlink",
        ),
        (Box::new(|p: &Path| mkfifo(p)), "FIFO"),
    ];
    for (plant, needle) in plants {
        plant(&link);
        let before = v.snap();
        let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
        assert_fails(&out, 1, &[&lname, needle]);
        assert!(out.took < Duration::from_secs(5), "{out:?}");
        assert!(!v.unlocked());
        let status = v.ok(&["status", &v.d], "");
        assert!(row(&status, &v.protector).contains(needle), "{status}");
        assert_eq!(v.snap(), before, "{needle}");
        std::fs::remove_file(&link).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(v.outside("link-target")).unwrap(),
        format!("PATH={}\n", v.mnt)
    );
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 17. A `.link` leads only to a mount point (the tool's `GetMount`), never into a directory where
// someone planted a `.fscrypt` of their own; a link to another real mount works.
#[test]
fn protector_link_into_a_plain_directory_is_refused() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    // A directory that is not a mount point, with a tree holding a copy of the real protector
    // (which the right passphrase opens): following the link would unlock through it.
    let planted = v.outside("planted");
    for sub in ["policies", "protectors"] {
        std::fs::create_dir_all(planted.join(".fscrypt").join(sub)).unwrap();
    }
    std::fs::write(
        planted.join(".fscrypt/protectors").join(&v.protector),
        &good,
    )
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    let link = v.meta(&format!("protectors/{}.link", v.protector));
    std::fs::write(&link, format!("PATH={}\n", planted.display())).unwrap();
    let before = v.snap();
    let planted_before = snapshot(&planted);
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(&out, 1, &[&link.display().to_string(), "not a mountpoint"]);
    assert!(!v.unlocked(), "not unlocked through the planted tree");
    assert_eq!(v.snap(), before);
    assert_eq!(snapshot(&planted), planted_before);

    // The same protector on another mounted volume, linked by its mount point: that works.
    let Some(other) = mount_volume(&[], "") else {
        return;
    };
    let omnt = std::fs::canonicalize(&other.mnt).unwrap();
    v.ok(&["setup", omnt.to_str().unwrap()], "");
    std::fs::write(omnt.join(".fscrypt/protectors").join(&v.protector), &good).unwrap();
    std::fs::write(&link, format!("PATH={}\n", omnt.display())).unwrap();
    v.unlock_works();
    let status = v.ok(&["status", &v.d], "");
    assert!(
        row(&status, &v.protector).contains(&format!("Yes ({})", omnt.display())),
        "{status}"
    );
}

// 18. A protector whose Argon2id costs ask for more memory than the machine has (valid to the
// tool's checks: up to 2³²−1 KiB): refused at once as bad metadata, naming the protector — no
// crash, no attempt to touch terabytes.
#[test]
fn protector_demanding_terabytes_for_its_hash_is_refused() {
    let Some(v) = Vol::new("") else { return };
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();
    let mut rec = ProtectorData::decode(&good[..]).unwrap();
    rec.costs.as_mut().unwrap().memory = u32::MAX as i64;
    std::fs::write(&path, rec.encode_to_vec()).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &["corrupt metadata", &v.protector, "cannot allocate"],
    );
    assert!(out.took < Duration::from_secs(5), "{out:?}");
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 19. Records whose fields point elsewhere: a policy slot or a protector naming a path instead of
// a descriptor (refused by the record's checks before any lookup), and a login protector of one
// user in a file owned by another.
#[test]
fn records_naming_paths_or_other_users_are_refused() {
    let Some(v) = Vol::new("") else { return };
    let ppath = v.policy_path();
    let good_policy = std::fs::read(&ppath).unwrap();
    let path = v.protector_path();
    let good = std::fs::read(&path).unwrap();

    for evil in ["../protectors/x", "../../../../etc", "0123456789ABCDEF"] {
        let mut rec = PolicyData::decode(&good_policy[..]).unwrap();
        rec.wrapped_policy_keys[0].protector_descriptor = evil.into();
        std::fs::write(&ppath, rec.encode_to_vec()).unwrap();
        let before = v.snap();
        let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
        assert_fails(
            &out,
            1,
            &[
                "corrupt metadata",
                &ppath.display().to_string(),
                "bad protector descriptor",
            ],
        );
        assert!(!v.unlocked());
        assert_eq!(v.snap(), before, "{evil}");
    }
    std::fs::write(&ppath, &good_policy).unwrap();

    let mut rec = ProtectorData::decode(&good[..]).unwrap();
    rec.protector_descriptor = "../policies/x".into();
    std::fs::write(&path, rec.encode_to_vec()).unwrap();
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[
            "corrupt metadata",
            &path.display().to_string(),
            "bad descriptor",
        ],
    );
    assert_eq!(v.snap(), before);

    // A login protector of uid 12346 planted in a file of uid 12345.
    let mut rec = ProtectorData::decode(&good[..]).unwrap();
    rec.source = 1; // pam_passphrase
    rec.name.clear();
    rec.uid = (OTHER + 1).into();
    std::fs::write(&path, rec.encode_to_vec()).unwrap();
    chown(&path, OTHER);
    let before = v.snap();
    let out = v.run(&["unlock", &v.d], &format!("{PASS}\n"));
    assert_fails(
        &out,
        1,
        &[
            &path.display().to_string(),
            &format!("login protector of uid {} owned by uid {OTHER}", OTHER + 1),
        ],
    );
    assert!(!v.unlocked());
    assert_eq!(v.snap(), before);

    chown(&path, 0);
    std::fs::write(&path, &good).unwrap();
    v.unlock_works();
}

// 20. `.fscrypt` as a symlink to a directory elsewhere: `setup` does not build through it, other
// commands find nothing set up, and the target stays empty.
#[test]
fn setup_does_not_build_through_a_planted_fscrypt_symlink() {
    let Some(v) = Vol::new("") else { return };
    v.ok(&["metadata", "destroy", "--force", &v.mnt], "");
    let elsewhere = v.outside("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let meta = Path::new(&v.mnt).join(".fscrypt");
    std::os::unix::fs::symlink(&elsewhere, &meta).unwrap();
    let root_before = names_in(Path::new(&v.mnt));

    let out = v.run(&["setup", &v.mnt], "");
    assert_fails(&out, 1, &[&v.mnt, "already setup"]);
    assert_eq!(
        names_in(&elsewhere),
        Vec::<String>::new(),
        "nothing built there"
    );
    assert_eq!(
        names_in(Path::new(&v.mnt)),
        root_before,
        "no temporary left"
    );
    for args in [vec!["status", v.mnt.as_str()], vec!["unlock", v.d.as_str()]] {
        let out = v.run(&args, &format!("{PASS}\n"));
        assert_fails(&out, 1, &[&v.mnt]);
    }
    let out = v.run(&["status", &v.mnt], "");
    assert!(
        out.stderr.contains("is not setup for use with fscrypt"),
        "{out:?}"
    );
    assert_eq!(names_in(&elsewhere), Vec::<String>::new());
    assert!(std::fs::symlink_metadata(&meta)
        .unwrap()
        .file_type()
        .is_symlink());
}
