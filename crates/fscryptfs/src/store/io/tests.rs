//! Tests of the hardened backing-store calls (`store::io`).

use super::*;
use std::os::unix::fs::symlink;

fn dir() -> (tempfile::TempDir, OwnedFd) {
    let t = tempfile::tempdir().unwrap();
    let fd = rustix::fs::open(t.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
    (t, fd)
}

#[test]
fn symlinks_are_never_followed() {
    let (t, d) = dir();
    let canary = t.path().join("canary");
    std::fs::write(&canary, b"keep").unwrap();
    symlink(&canary, t.path().join("m")).unwrap();
    let e = read_bounded(&d, OsStr::new("m"), 100, "m").unwrap_err();
    assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    assert_eq!(
        create_new(&d, OsStr::new("m"), 0o600, "m")
            .unwrap_err()
            .errno(),
        Errno::EXIST
    );
    let e = replace(&d, OsStr::new("m"), b"new", 0o600, true, "m").unwrap_err();
    assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    assert_eq!(std::fs::read(&canary).unwrap(), b"keep");
    // A regular file is replaced, atomically, by a new inode.
    std::fs::write(t.path().join("r"), b"old").unwrap();
    replace(&d, OsStr::new("r"), b"new", 0o600, true, "r").unwrap();
    assert_eq!(std::fs::read(t.path().join("r")).unwrap(), b"new");
}

#[test]
fn fifos_and_directories_are_damage_and_never_block() {
    let (t, d) = dir();
    rustix::fs::mkfifoat(&d, "f", Mode::from_raw_mode(0o644)).unwrap();
    std::fs::create_dir(t.path().join("d")).unwrap();
    for n in ["f", "d"] {
        let e = read_bounded(&d, OsStr::new(n), 100, n).unwrap_err();
        assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    }
    for n in ["f", "d"] {
        let e = replace(&d, OsStr::new(n), b"x", 0o600, false, n).unwrap_err();
        assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    }
    // The failed replacement left no temporary file behind.
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn reads_are_bounded() {
    let (t, d) = dir();
    std::fs::write(t.path().join("big"), vec![1u8; 101]).unwrap();
    std::fs::write(t.path().join("ok"), vec![1u8; 100]).unwrap();
    assert_eq!(
        read_bounded(&d, OsStr::new("big"), 100, "big")
            .unwrap_err()
            .errno(),
        Errno::UCLEAN
    );
    assert_eq!(
        read_bounded(&d, OsStr::new("ok"), 100, "ok")
            .unwrap()
            .unwrap()
            .len(),
        100
    );
    assert!(read_bounded(&d, OsStr::new("none"), 100, "none")
        .unwrap()
        .is_none());
    // A sparse file claiming a huge size is refused before any read.
    let f = File::create(t.path().join("sparse")).unwrap();
    f.set_len(8 << 30).unwrap();
    assert_eq!(
        read_bounded(&d, OsStr::new("sparse"), 100, "s")
            .unwrap_err()
            .errno(),
        Errno::UCLEAN
    );
}

#[test]
fn removals_unlink_names_and_take_only_trees_of_ours() {
    use std::os::unix::fs::PermissionsExt;
    let (t, d) = dir();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), b"keep").unwrap();
    // A symlink is removed itself, never its target; a type is enforced when asked.
    symlink(outside.path(), t.path().join(".fscryptfs.tmp.l")).unwrap();
    let ft = remove_object(&d, OsStr::new(".fscryptfs.tmp.l"), None, "l").unwrap();
    assert_eq!(ft, FileType::Symlink);
    symlink(outside.path().join("precious"), t.path().join("s.n")).unwrap();
    let e = remove_object(&d, OsStr::new("s.n"), Some(Want::File), "s").unwrap_err();
    assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    assert!(t.path().join("s.n").is_symlink());
    std::fs::create_dir(t.path().join("d")).unwrap();
    let e = remove_object(&d, OsStr::new("d"), None, "d").unwrap_err();
    assert_eq!(e.errno(), Errno::ISDIR, "{e}");
    // A tree of ours goes whole; its symlinks are not followed.
    let ours = t.path().join(".fscryptfs.tmp.d");
    std::fs::create_dir_all(ours.join("a/b")).unwrap();
    std::fs::write(ours.join(".fscryptfs.dir"), b"m").unwrap();
    std::fs::write(ours.join("a/b/.fscryptfs.special"), b"r").unwrap();
    symlink(outside.path(), ours.join("a/.fscryptfs.tmp.x")).unwrap();
    remove_dir_of_ours(&d, OsStr::new(".fscryptfs.tmp.d"), "o").unwrap();
    assert!(!ours.exists());
    // A tree holding anything else is left whole.
    let mixed = t.path().join(".fscryptfs.tmp.m");
    std::fs::create_dir_all(mixed.join("a")).unwrap();
    std::fs::write(mixed.join(".fscryptfs.dir"), b"m").unwrap();
    std::fs::write(mixed.join("a/user.txt"), b"u").unwrap();
    let e = remove_dir_of_ours(&d, OsStr::new(".fscryptfs.tmp.m"), "m").unwrap_err();
    assert_eq!(e.errno(), Errno::NOTEMPTY, "{e}");
    assert!(e.message().contains("user.txt"), "{e}");
    assert!(mixed.join(".fscryptfs.dir").exists() && mixed.join("a/user.txt").exists());
    // Too deep is left too.
    let deep = t.path().join(".fscryptfs.tmp.deep");
    std::fs::create_dir_all(deep.join("1/2/3/4/5/6/7/8/9")).unwrap();
    let e = remove_dir_of_ours(&d, OsStr::new(".fscryptfs.tmp.deep"), "x").unwrap_err();
    assert_eq!(e.errno(), Errno::NOTEMPTY, "{e}");
    assert!(deep.join("1/2/3/4/5/6/7/8/9").exists());
    assert_eq!(
        std::fs::read(outside.path().join("precious")).unwrap(),
        b"keep"
    );
    // A rewrite keeps the old mode; nothing but a regular file is rewritten.
    let f = t.path().join("conf");
    std::fs::write(&f, b"old").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    replace_keeping_owner(&d, OsStr::new("conf"), b"new", true, "c").unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"new");
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o640);
    let e = replace_keeping_owner(&d, OsStr::new("s.n"), b"x", false, "s").unwrap_err();
    assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    let e = replace_keeping_owner(&d, OsStr::new("none"), b"x", false, "n").unwrap_err();
    assert_eq!(e.errno(), Errno::NOENT, "{e}");
}

#[test]
fn names_with_slashes_or_dotdot_do_not_escape() {
    let (_t, d) = dir();
    assert!(open_object(&d, OsStr::new("../etc"), "x").is_err());
    assert!(open_object(&d, OsStr::new(".."), "x").is_err());
}
