//! The key and policy commands (`add-key`, `remove-key`, `key-status`, `set-policy`, `get-policy`,
//! `get-nonce`) through the real binary against the real kernel: ext4 with fscrypt on a loop device.
//! The commands use the kernel's ioctl numbers (on a mount too, through the daemon's bridge), so
//! these runs prove they drive ext4 exactly as they drive fscryptfs, and that errors carry the
//! kernel's errno in strerror's words. (The fallback to fscryptfs' own numbers where the daemon
//! cannot reach the caller is `tests/fs_ioctl_bridge.rs`'.)
//!
//! Every test that needs the kernel starts with `support::prerequisites` (root, loop devices,
//! e2fsprogs): it skips loudly, or fails with `FSCRYPTFS_REQUIRE_PRIVILEGED=1`.

#[path = "../../fscrypt/tests/support/mod.rs"]
mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::ext4::{Ext4Config, Ext4Image};

/// The unprivileged user the second-user cases run as.
const NOBODY: u32 = 65534;

/// What one run of the binary did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `bin args...` (as `uid` if given) with `stdin` on its standard input.
fn run_bin(bin: &Path, uid: Option<u32>, args: &[&str], stdin: &[u8]) -> Out {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().expect("spawn fscryptfs");
    // The command may exit before reading stdin (bad arguments): a broken pipe is not a failure.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    let out = child.wait_with_output().expect("wait fscryptfs");
    Out {
        code: out.status.code().expect("fscryptfs killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs the binary as root.
fn run(args: &[&str], stdin: &[u8]) -> Out {
    run_bin(
        Path::new(env!("CARGO_BIN_EXE_fscryptfs")),
        None,
        args,
        stdin,
    )
}

/// Runs the binary as root, asserts success with nothing on stderr, returns stdout.
fn ok(args: &[&str], stdin: &[u8]) -> String {
    let out = run(args, stdin);
    assert_ok(args, &out);
    out.stdout
}

fn assert_ok(args: &[&str], out: &Out) {
    assert!(
        out.code == 0 && out.stderr.is_empty(),
        "fscryptfs {args:?}: exit {}, stderr {:?}",
        out.code,
        out.stderr
    );
}

/// Asserts exit status `code`, nothing on stdout, and exactly the line `line` on stderr.
fn assert_fails(args: &[&str], out: &Out, code: i32, line: &str) {
    assert_eq!(out.code, code, "fscryptfs {args:?}: {out:?}");
    assert_eq!(out.stdout, "", "fscryptfs {args:?}");
    assert_eq!(out.stderr, format!("{line}\n"), "fscryptfs {args:?}");
}

/// Asserts a usage error: exit 2, nothing on stdout, and on stderr one line `fscryptfs: ...` (our
/// own errors) or that line followed by clap's details (the argument, a tip, the usage).
fn assert_usage(args: &[&str]) {
    let out = run(args, b"");
    assert_eq!(out.code, 2, "fscryptfs {args:?}: {out:?}");
    assert_eq!(out.stdout, "", "fscryptfs {args:?}");
    assert!(
        out.stderr.starts_with("fscryptfs: ")
            && (out.stderr.lines().count() == 1 || out.stderr.contains("try '--help'")),
        "fscryptfs {args:?}: stderr {:?}",
        out.stderr
    );
}

/// A path as a `&str` argument (the harness's paths are ASCII).
fn s(p: &Path) -> &str {
    p.to_str().expect("ASCII path")
}

/// A 64-byte test key.
fn test_key(seed: u8) -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(seed))
        .collect()
}

fn identifier_hex(key: &[u8]) -> String {
    hex::encode(fscrypt::keysetup::key_identifier(key).expect("key identifier"))
}

/// fscryptctl's rendering of a v2 policy.
fn v2_policy_text(
    path: &Path,
    id: &str,
    contents: &str,
    filenames: &str,
    flags: &str,
    du: &str,
) -> String {
    format!(
        "Encryption policy for {}:\n\tPolicy version: 2\n\tMaster key identifier: {id}\n\
         \tContents encryption mode: {contents}\n\tFilenames encryption mode: {filenames}\n\
         \tFlags: {flags}\n\tData unit size: {du}\n",
        path.display()
    )
}

fn mkdir(p: &Path) {
    std::fs::create_dir(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

/// A copy of the binary every user can run (the build tree may be private), in the image's
/// directory so that it goes with the image.
fn world_runnable_binary(img: &Ext4Image) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dest = img.mnt().parent().expect("image dir").join("fscryptfs-bin");
    std::fs::copy(env!("CARGO_BIN_EXE_fscryptfs"), &dest).expect("copy binary");
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).expect("chmod binary");
    dest
}

#[test]
fn v2_key_lifecycle_on_ext4() {
    let test = "v2_key_lifecycle_on_ext4";
    if !support::prerequisites(test) {
        return;
    }
    let img = Ext4Image::create(test, Ext4Config::default());
    let mnt = s(img.mnt());
    let key = test_key(1);
    let id = identifier_hex(&key);

    // add-key prints the identifier the kernel computed, which is the layer's.
    assert_eq!(ok(&["add-key", mnt], &key), format!("{id}\n"));
    assert_eq!(
        ok(&["key-status", &id, mnt], b""),
        "Present (user_count=1, added_by_self)\n"
    );
    // fscryptctl's spelling is an alias.
    assert_eq!(
        ok(&["key_status", &id, mnt], b""),
        "Present (user_count=1, added_by_self)\n"
    );

    // set-policy on an empty directory, then get-policy shows fscryptctl's block.
    let dir = img.path("dir");
    mkdir(&dir);
    assert_eq!(ok(&["set-policy", &id, s(&dir)], b""), "");
    let expected = v2_policy_text(&dir, &id, "AES-256-XTS", "AES-256-CTS", "PAD_32", "default");
    assert_eq!(ok(&["get-policy", s(&dir)], b""), expected);
    assert_eq!(ok(&["get_policy", s(&dir)], b""), expected);

    // get-nonce equals FS_IOC_GET_ENCRYPTION_NONCE.
    let nonce = support::ioctl::nonce_of(&dir).expect("nonce ioctl");
    assert_eq!(
        ok(&["get-nonce", s(&dir)], b""),
        format!("{}\n", hex::encode(nonce))
    );

    // The same policy again is fine; a different one is EEXIST.
    assert_eq!(ok(&["set_policy", &id, s(&dir)], b""), "");
    let args = ["set-policy", "--padding=16", &id, s(&dir)];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        &format!(
            "fscryptfs: failed to set encryption policy on {}: File exists",
            dir.display()
        ),
    );

    // A non-empty directory is ENOTEMPTY.
    let full = img.path("full");
    mkdir(&full);
    std::fs::write(full.join("x"), b"x").unwrap();
    let args = ["set-policy", &id, s(&full)];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        &format!(
            "fscryptfs: failed to set encryption policy on {}: Directory not empty",
            full.display()
        ),
    );

    // Unencrypted: ENODATA in strerror's words.
    let args = ["get-policy", s(&full)];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        &format!(
            "fscryptfs: error getting policy for {}: No data available",
            full.display()
        ),
    );
    let args = ["get-nonce", s(&full)];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        &format!(
            "fscryptfs: error getting nonce for {}: No data available",
            full.display()
        ),
    );

    // A file in the encrypted directory, kept open: removal is incomplete.
    let file_path = dir.join("file");
    std::fs::write(&file_path, b"secret contents").unwrap();
    let file = File::open(&file_path).unwrap();
    assert_eq!(
        ok(&["get-policy", s(&file_path)], b"").lines().nth(2),
        expected.lines().nth(2)
    );
    assert_eq!(
        ok(&["remove-key", &id, mnt], b""),
        format!("Removed encryption key with identifier {id}, but files still busy\n")
    );
    assert_eq!(ok(&["key-status", &id, mnt], b""), "Incompletely removed\n");
    // The open file still reads.
    let mut contents = Vec::new();
    (&file).read_to_end(&mut contents).unwrap();
    assert_eq!(contents, b"secret contents");

    // Closed: removing again completes; a third time there is no key.
    drop(file);
    assert_eq!(
        ok(&["remove_key", &id, mnt], b""),
        format!("Removed encryption key with identifier {id}\n")
    );
    assert_eq!(ok(&["key-status", &id, mnt], b""), "Absent\n");
    let args = ["remove-key", &id, mnt];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        "fscryptfs: error removing key: Required key not available",
    );

    // The policy does not need the key to be read.
    assert_eq!(ok(&["get-policy", s(&dir)], b""), expected);
    assert_eq!(
        ok(&["get-nonce", s(&dir)], b""),
        format!("{}\n", hex::encode(nonce))
    );
}

#[test]
fn second_user_claims_and_permissions() {
    let test = "second_user_claims_and_permissions";
    if !support::prerequisites(test) {
        return;
    }
    let img = Ext4Image::create(test, Ext4Config::default());
    let bin = world_runnable_binary(&img);
    let nobody = |args: &[&str], stdin: &[u8]| run_bin(&bin, Some(NOBODY), args, stdin);
    let mnt = s(img.mnt());
    let key = test_key(2);
    let id = identifier_hex(&key);
    let dir = img.path("nobody");
    mkdir(&dir);
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();

    assert_eq!(ok(&["add-key", mnt], &key), format!("{id}\n"));

    // Without a claim of its own, the user may not use the key in a policy (ENOKEY)...
    let args = ["set-policy", &id, s(&dir)];
    assert_fails(
        &args,
        &nobody(&args, b""),
        1,
        &format!(
            "fscryptfs: failed to set encryption policy on {}: Required key not available",
            dir.display()
        ),
    );
    // ...sees root's claim but not its own...
    let out = nobody(&["key-status", &id, mnt], b"");
    assert_ok(&["key-status"], &out);
    assert_eq!(out.stdout, "Present (user_count=1)\n");
    // ...and cannot remove root's claim.
    let args = ["remove-key", &id, mnt];
    assert_fails(
        &args,
        &nobody(&args, b""),
        1,
        "fscryptfs: error removing key: Required key not available",
    );

    // With its own claim it can.
    let out = nobody(&["add-key", mnt], &key);
    assert_ok(&["add-key"], &out);
    assert_eq!(out.stdout, format!("{id}\n"));
    assert_eq!(
        nobody(&["key-status", &id, mnt], b"").stdout,
        "Present (user_count=2, added_by_self)\n"
    );
    let out = nobody(&["set-policy", &id, s(&dir)], b"");
    assert_ok(&["set-policy"], &out);
    assert_eq!(
        ok(&["get-policy", s(&dir)], b""),
        v2_policy_text(&dir, &id, "AES-256-XTS", "AES-256-CTS", "PAD_32", "default")
    );

    // Removing its claim leaves root's.
    let out = nobody(&["remove-key", &id, mnt], b"");
    assert_ok(&["remove-key"], &out);
    assert_eq!(
        out.stdout,
        format!("Removed user's claim to encryption key with identifier {id}\n")
    );
    assert_eq!(
        nobody(&["key-status", &id, mnt], b"").stdout,
        "Present (user_count=1)\n"
    );

    // --all-users needs CAP_SYS_ADMIN (EACCES), and so does a v1 key.
    assert_eq!(nobody(&["add-key", mnt], &key).code, 0);
    let args = ["remove-key", "--all-users", &id, mnt];
    assert_fails(
        &args,
        &nobody(&args, b""),
        1,
        "fscryptfs: error removing key: Permission denied",
    );
    assert_eq!(
        ok(&["key-status", &id, mnt], b""),
        "Present (user_count=2, added_by_self)\n"
    );
    let args = ["add-key", "--descriptor=0123456789abcdef", mnt];
    assert_fails(
        &args,
        &nobody(&args, &key),
        1,
        &format!("fscryptfs: error adding key to {mnt}: Permission denied"),
    );

    // Root removes every claim.
    assert_eq!(
        ok(&["remove-key", "--all-users", &id, mnt], b""),
        format!("Removed encryption key with identifier {id}\n")
    );
    assert_eq!(ok(&["key-status", &id, mnt], b""), "Absent\n");
    assert_eq!(nobody(&["key-status", &id, mnt], b"").stdout, "Absent\n");
}

#[test]
fn v1_key_by_descriptor() {
    let test = "v1_key_by_descriptor";
    if !support::prerequisites(test) {
        return;
    }
    let img = Ext4Image::create(test, Ext4Config::default());
    let mnt = s(img.mnt());
    let key = test_key(3);
    let desc = "0011223344556677";

    assert_eq!(
        ok(&["add-key", &format!("--descriptor={desc}"), mnt], &key),
        format!("Added encryption key with descriptor {desc}\n")
    );
    // v1 keys have no user claims.
    assert_eq!(ok(&["key-status", desc, mnt], b""), "Present\n");

    let dir = img.path("v1");
    mkdir(&dir);
    assert_eq!(ok(&["set-policy", desc, s(&dir)], b""), "");
    assert_eq!(
        ok(&["get-policy", s(&dir)], b""),
        format!(
            "Encryption policy for {}:\n\tPolicy version: 1\n\tMaster key descriptor: {desc}\n\
             \tContents encryption mode: AES-256-XTS\n\tFilenames encryption mode: AES-256-CTS\n\
             \tFlags: PAD_32\n",
            dir.display()
        )
    );
    // The key works: a file can be written and read back.
    std::fs::write(dir.join("f"), b"v1 data").unwrap();
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"v1 data");
    // --v1 with a descriptor is the same policy.
    assert_eq!(ok(&["set-policy", "--v1", desc, s(&dir)], b""), "");

    assert_eq!(
        ok(&["remove-key", desc, mnt], b""),
        format!("Removed encryption key with descriptor {desc}\n")
    );
    assert_eq!(ok(&["key-status", desc, mnt], b""), "Absent\n");

    // --v1 needs a descriptor; --data-unit-size needs v2.
    let id = identifier_hex(&key);
    assert_usage(&["set-policy", "--v1", &id, s(&dir)]);
    assert_usage(&["set-policy", "--data-unit-size=4096", desc, s(&dir)]);
    assert_usage(&["add-key", &format!("--descriptor={id}"), mnt]);
}

#[test]
fn policy_options_and_kernel_validation() {
    let test = "policy_options_and_kernel_validation";
    if !support::prerequisites(test) {
        return;
    }
    let img = Ext4Image::create(test, Ext4Config::default());
    let mnt = s(img.mnt());
    let key = test_key(4);
    let id = identifier_hex(&key);
    assert_eq!(ok(&["add-key", mnt], &key), format!("{id}\n"));

    // Options reach the kernel and come back in get-policy.
    let cases: [(&[&str], &str, &str, &str); 3] = [
        (
            &["--iv-ino-lblk-64"],
            "AES-256-CTS",
            "PAD_32, IV_INO_LBLK_64",
            "default",
        ),
        (
            &["--padding=16", "--data-unit-size=1024"],
            "AES-256-CTS",
            "PAD_16",
            "1024",
        ),
        (
            &["--filenames=AES_256_HCTR2", "--padding=4"],
            "AES-256-HCTR2",
            "PAD_4",
            "default",
        ),
    ];
    for (i, (opts, filenames, flags, du)) in cases.iter().enumerate() {
        let dir = img.path(format!("ok{i}"));
        mkdir(&dir);
        let mut args = vec!["set-policy"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&id, s(&dir)]);
        assert_eq!(ok(&args, b""), "", "{args:?}");
        assert_eq!(
            ok(&["get-policy", s(&dir)], b""),
            v2_policy_text(&dir, &id, "AES-256-XTS", filenames, flags, du)
        );
    }

    // Invalid policies are the kernel's to reject (EINVAL), not ours.
    let invalid: [&[&str]; 4] = [
        &["--direct-key"],
        &["--data-unit-size=256"],
        &["--iv-ino-lblk-64", "--iv-ino-lblk-32"],
        &["--contents=AES-256-CTS"],
    ];
    let dir = img.path("invalid");
    mkdir(&dir);
    for opts in invalid {
        let mut args = vec!["set-policy"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&id, s(&dir)]);
        assert_fails(
            &args,
            &run(&args, b""),
            1,
            &format!(
                "fscryptfs: failed to set encryption policy on {}: Invalid argument",
                dir.display()
            ),
        );
    }

    // Keys of the wrong size are bad input (exit 2), caught before the kernel.
    let args = ["add-key", mnt];
    assert_fails(
        &args,
        &run(&args, &key[..15]),
        2,
        "fscryptfs: key was too short; it must be at least 16 bytes",
    );
    let long = [key.clone(), vec![0]].concat();
    assert_fails(
        &args,
        &run(&args, &long),
        2,
        "fscryptfs: key was too long; it can be at most 64 bytes",
    );
    // A 16-byte key is accepted (its use is for policies to judge).
    assert_eq!(
        ok(&args, &key[..16]),
        format!("{}\n", identifier_hex(&key[..16]))
    );

    // A regular file is not a directory.
    let file = img.path("file");
    std::fs::write(&file, b"").unwrap();
    let args = ["set-policy", &id, s(&file)];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        &format!(
            "fscryptfs: error opening {}: Not a directory",
            file.display()
        ),
    );

    // A read-only mount: EROFS.
    let ro = img.path("ro");
    mkdir(&ro);
    support::ext4::run_ok("mount", ["-o", "remount,ro", mnt]);
    let out = run(&["set-policy", &id, s(&ro)], b"");
    support::ext4::run_ok("mount", ["-o", "remount,rw", mnt]);
    assert_fails(
        &["set-policy"],
        &out,
        1,
        &format!(
            "fscryptfs: failed to set encryption policy on {}: Read-only file system",
            ro.display()
        ),
    );
    // Writable again, the same directory takes the policy.
    assert_eq!(ok(&["set-policy", &id, s(&ro)], b""), "");
}

#[test]
fn bad_arguments_and_help() {
    let id = "00112233445566778899aabbccddeeff";
    for args in [
        &["set-policy"][..],
        &["set-policy", id],
        &["set-policy", "nothex", "/"],
        &["set-policy", "0011", "/"],
        &["set-policy", "--padding=3", id, "/"],
        &["set-policy", "--contents=AES-999", id, "/"],
        &["set-policy", "--filenames=nope", id, "/"],
        &["set-policy", "--data-unit-size=3000", id, "/"],
        &["set-policy", "--data-unit-size=1", id, "/"],
        &["set-policy", "--bogus", id, "/"],
        &["remove-key", "xyz", "/"],
        &["remove-key", id],
        &["key-status", id, "/", "extra"],
        &["key_status", "0123", "/"],
        &["add-key"],
        &["add-key", "--descriptor=01", "/"],
        &["get-policy"],
        &["get-nonce", "/a", "/b"],
    ] {
        assert_usage(args);
    }

    for cmd in [
        "add-key",
        "remove-key",
        "key-status",
        "set-policy",
        "get-policy",
        "get-nonce",
        "add_key",
        "remove_key",
        "key_status",
        "set_policy",
        "get_policy",
        "get_nonce",
    ] {
        let out = run(&[cmd, "--help"], b"");
        assert_eq!(out.code, 0, "{cmd} --help: {out:?}");
        assert!(
            out.stdout.contains("Exit status: 0"),
            "{cmd} --help: {}",
            out.stdout
        );
    }

    // Not a filesystem with fscrypt (procfs): the kernel's ENOTTY, after the fallback, said as
    // what it means.
    let args = ["key-status", id, "/proc"];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        "fscryptfs: error getting key status: /proc is not on an fscryptfs mount, and its \
         filesystem (proc) has no fscrypt support",
    );
    let args = ["get-policy", "/proc"];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        "fscryptfs: error getting policy for /proc: /proc is not on an fscryptfs mount, and its \
         filesystem (proc) has no fscrypt support",
    );
    let args = ["get-policy", "/nonexistent/x"];
    assert_fails(
        &args,
        &run(&args, b""),
        1,
        "fscryptfs: error opening /nonexistent/x: No such file or directory",
    );
}
