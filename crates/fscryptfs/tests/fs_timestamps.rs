//! Timestamps like the backing filesystem's (issue 11, part 6): ctime advances on every change —
//! truncate, ftruncate, chmod, chown, link, rename, write, utimes — and mtime on truncate,
//! ftruncate and write, even when the previous change was a millisecond ago (less than a clock
//! tick: Linux's multigrain timestamps give ext4/xfs/btrfs/tmpfs that; a POSIX suite pausing 1 ms
//! checks it). On an encrypted and a plain file, in both layouts, with and without the kernel's
//! writeback cache.

mod support;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use support::*;

/// (ctime, mtime) in nanoseconds, as stat(2) through the mount reports them.
fn times(p: &Path) -> (i128, i128) {
    let m = fs::symlink_metadata(p).unwrap();
    (
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    )
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// One operation on the file at `p` (its `i`-th run); returns where the file is afterwards.
type Op = fn(&Path, usize) -> std::path::PathBuf;

fn op_truncate(p: &Path, i: usize) -> std::path::PathBuf {
    // SAFETY: a NUL-terminated path; truncate has no other preconditions.
    let rc = unsafe { libc::truncate(cstr(p).as_ptr(), 1000 + i as libc::off_t) };
    assert_eq!(rc, 0, "truncate: {}", std::io::Error::last_os_error());
    p.to_path_buf()
}

fn op_ftruncate(p: &Path, i: usize) -> std::path::PathBuf {
    let f = OpenOptions::new().write(true).open(p).unwrap();
    f.set_len(3000 + i as u64).unwrap();
    p.to_path_buf()
}

fn op_chmod(p: &Path, i: usize) -> std::path::PathBuf {
    let mode = if i.is_multiple_of(2) { 0o640 } else { 0o644 };
    fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    p.to_path_buf()
}

fn op_chown(p: &Path, i: usize) -> std::path::PathBuf {
    std::os::unix::fs::lchown(p, Some(1000 + (i as u32 % 2)), None).unwrap();
    p.to_path_buf()
}

fn op_link(p: &Path, i: usize) -> std::path::PathBuf {
    let l = p.with_file_name(format!(
        "{}.link{i}",
        p.file_name().unwrap().to_string_lossy()
    ));
    fs::hard_link(p, l).unwrap();
    p.to_path_buf()
}

fn op_rename(p: &Path, i: usize) -> std::path::PathBuf {
    let to = p.with_file_name(format!("renamed{i}"));
    fs::rename(p, &to).unwrap();
    to
}

fn op_write(p: &Path, i: usize) -> std::path::PathBuf {
    let mut f = OpenOptions::new().write(true).open(p).unwrap();
    f.write_all(&[i as u8; 100]).unwrap();
    p.to_path_buf()
}

fn op_utimes(p: &Path, i: usize) -> std::path::PathBuf {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
    let f = File::options().write(true).open(p).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
    p.to_path_buf()
}

const OPS: &[(&str, Op, bool)] = &[
    ("truncate", op_truncate, true),
    ("ftruncate", op_ftruncate, true),
    ("chmod", op_chmod, false),
    ("chown", op_chown, false),
    ("link", op_link, false),
    ("rename", op_rename, false),
    ("write", op_write, true),
    ("utimes", op_utimes, false),
];

/// Every operation, several times each, on a file of its own in `dir`: stat, 1 ms pause, the
/// operation, stat: ctime strictly later (and mtime, where POSIX says). The files are written
/// first and left for longer than the kernel keeps their attributes, so the first round starts
/// from a stamp older than the daemon's last clock advance (which it then skips) and the rest from
/// one just made.
fn check_dir(m: &Mounted, dir: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, _, _) in OPS {
        let sub = m.path(&format!("{dir}/{name}"));
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("f"), vec![7u8; 5000]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    for (name, op, mtime_too) in OPS {
        let mut p = m.path(&format!("{dir}/{name}/f"));
        for i in 0..8 {
            let (c0, m0) = times(&p);
            std::thread::sleep(Duration::from_millis(1));
            p = op(&p, i);
            let (c1, m1) = times(&p);
            if c1 <= c0 {
                bad.push(format!("{dir}: {name} #{i}: ctime {c0} -> {c1}"));
            }
            if *mtime_too && m1 <= m0 {
                bad.push(format!("{dir}: {name} #{i}: mtime {m0} -> {m1}"));
            }
        }
    }
    bad
}

fn check_volume(m: &Mounted) {
    fs::create_dir(m.path("plain")).unwrap();
    let mut bad = check_dir(m, "enc");
    bad.extend(check_dir(m, "plain"));
    assert!(
        bad.is_empty(),
        "timestamps did not advance:\n{}",
        bad.join("\n")
    );
}

#[test]
fn per_extent_volume_timestamps_advance() {
    let Some((m, _)) = encrypted_volume() else {
        return;
    };
    check_volume(&m);
}

#[test]
fn per_extent_volume_without_writeback_cache_timestamps_advance() {
    let Some(mut m) = mount_volume(&[], "no_writeback_cache") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).expect("add key");
    fs::create_dir(m.path("enc")).unwrap();
    set_policy(&m.path("enc"), &policy_v2(&id)).unwrap();
    check_volume(&m);
    m.stop();
}

#[test]
fn per_file_volume_timestamps_advance() {
    let Some((m, _)) = encrypted_per_file_volume() else {
        return;
    };
    check_volume(&m);
}
