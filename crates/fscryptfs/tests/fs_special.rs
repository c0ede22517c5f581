//! Special files (FIFOs, sockets, devices) keep their inode numbers across remounts through the
//! per-directory record `.fscryptfs.special`, through hard links, renames across directories and
//! RENAME_EXCHANGE, in plain and encrypted directories; readdir reports the numbers stat does once
//! an entry was seen, and never opens entries to learn them.

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use support::*;

fn mknod(p: &Path, mode: u32, dev: u64) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that lives across the call.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn exchange(a: &Path, b: &Path) {
    renameat2(a, b, libc::RENAME_EXCHANGE).unwrap();
}

fn inos(dir: &Path) -> BTreeMap<String, u64> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let n = e.file_name().to_string_lossy().into_owned();
            (n, fs::symlink_metadata(e.path()).unwrap().ino())
        })
        .collect()
}

#[test]
fn special_files_keep_their_inode_numbers() {
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    for d in ["p", "p2", "enc/a", "enc/b"] {
        fs::create_dir(m.path(d)).unwrap();
    }
    for d in ["p", "enc/a"] {
        let d = m.path(d);
        mknod(&d.join("fifo"), libc::S_IFIFO | 0o644, 0);
        mknod(&d.join("fifo2"), libc::S_IFIFO | 0o600, 0);
        mknod(&d.join("null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3));
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        fs::write(d.join("file"), b"f").unwrap();
    }
    assert!(fs::symlink_metadata(m.path("p/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(fs::symlink_metadata(m.path("p/sock"))
        .unwrap()
        .file_type()
        .is_socket());
    // Moves: a hard link into another directory, a rename across directories, an exchange of a
    // FIFO with a regular file, a rename over a special file.
    fs::hard_link(m.path("p/fifo"), m.path("p2/fifo-link")).unwrap();
    fs::rename(m.path("p/sock"), m.path("p2/sock")).unwrap();
    exchange(&m.path("p/fifo2"), &m.path("p2/fifo-link"));
    fs::rename(m.path("enc/a/fifo2"), m.path("enc/b/moved")).unwrap();
    fs::hard_link(m.path("enc/a/fifo"), m.path("enc/b/fifo-link")).unwrap();
    exchange(&m.path("enc/a/file"), &m.path("enc/b/fifo-link"));
    fs::write(m.path("p/victim"), b"v").unwrap();
    mknod(&m.path("p/over"), libc::S_IFIFO | 0o644, 0);
    fs::rename(m.path("p/victim"), m.path("p/over")).unwrap();
    assert!(fs::symlink_metadata(m.path("p/over")).unwrap().is_file());
    assert_eq!(
        fs::symlink_metadata(m.path("p/fifo")).unwrap().ino(),
        fs::symlink_metadata(m.path("p/fifo2")).unwrap().ino(),
        "a hard link is one inode"
    );

    let dirs = ["p", "p2", "enc/a", "enc/b"];
    let before: Vec<_> = dirs.iter().map(|d| inos(&m.path(d))).collect();
    // readdir agrees with stat for entries already seen.
    for (d, want) in dirs.iter().zip(&before) {
        for e in fs::read_dir(m.path(d)).unwrap() {
            let e = e.unwrap();
            let n = e.file_name().to_string_lossy().into_owned();
            assert_eq!(std::os::unix::fs::DirEntryExt::ino(&e), want[&n], "{d}/{n}");
        }
    }
    let all: Vec<u64> = before.iter().flat_map(|m| m.values().copied()).collect();
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len() - 2,
        "two pairs of hard links: {before:?}"
    );
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    let after: Vec<_> = dirs.iter().map(|d| inos(&m.path(d))).collect();
    assert_eq!(before, after, "inode numbers changed across a remount");
    // The record is never shown, and goes with the last special file of a directory.
    assert!(m.backing.join("p2/.fscryptfs.special").exists());
    for n in ["fifo", "fifo2", "null"] {
        fs::remove_file(m.path(&format!("p/{n}"))).unwrap();
    }
    assert!(!m.backing.join("p/.fscryptfs.special").exists());
    for e in fs::read_dir(m.path("p2")).unwrap() {
        assert!(!e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".fscryptfs"));
    }
    // A directory holding only special files and the record is empty to rmdir once they go.
    for e in fs::read_dir(m.path("p2")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::remove_dir(m.path("p2")).unwrap();
}
