//! `fscryptfs fsck`: a volume written through a real mount is clean (exit 0); each kind of damage
//! done to a copy of its backing directory (`cp -a`, as a backup would) is found, named by backing
//! path, with exit 1; crash leftovers are notes (exit 0); a missing backing directory is exit 2.

mod support;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn fsck(backing: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("fsck")
        .arg(backing)
        .output()
        .expect("run fsck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the clean volume to damage.
fn copy_of(clean: &Path, tmp: &Path, name: &str) -> PathBuf {
    let dst = tmp.join(name);
    let st = Command::new("cp")
        .arg("-a")
        .arg(clean)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

/// Backing entries of `dir` that are not ours and not side files.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().as_bytes();
            !n.starts_with(b".fscryptfs") && !n.contains(&b'.')
        })
        .collect();
    v.sort();
    v
}

/// Expects problems (exit 1) and `path` named at the start of a line of stdout.
#[track_caller]
fn expect_problem(backing: &Path, path: &Path, what: &str) {
    let (code, out, err) = fsck(backing);
    assert_eq!(code, 1, "{what}: expected exit 1\n{out}{err}");
    let p = path.display().to_string();
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{p}: ")) && !l.contains(": note: ")),
        "{what}: {p} not named as a problem:\n{out}"
    );
    assert!(err.contains("problem"), "{err}");
}

#[test]
fn fsck_finds_each_kind_of_damage() {
    let Some((mut m, id)) = encrypted_per_file_volume() else {
        return;
    };
    fs::write(m.path("enc/file"), vec![5u8; 5000]).unwrap();
    fs::write(m.path(&format!("enc/{}", "n".repeat(200))), b"long").unwrap();
    std::os::unix::fs::symlink("target", m.path("enc/link")).unwrap();
    fs::create_dir(m.path("enc/sub")).unwrap();
    fs::write(m.path("enc/sub/inner"), b"inner").unwrap();
    fs::hard_link(m.path("enc/sub/inner"), m.path("enc/sub/inner2")).unwrap();
    fs::write(m.path("plain"), b"plain").unwrap();
    fs::write(m.path(".fscryptfs-user"), b"escaped").unwrap();
    let mut p = policy_v2(&id);
    p[3] = 0x03 | 0x08;
    fs::create_dir(m.path("lblk")).unwrap();
    set_policy(&m.path("lblk"), &p).unwrap();
    fs::write(m.path("lblk/f"), b"x").unwrap();
    m.stop();
    let clean = m.backing.clone();
    let tmp = tempfile::tempdir().unwrap();

    let (code, out, err) = fsck(&clean);
    assert_eq!(code, 0, "clean volume:\n{out}{err}");
    assert!(out.contains("0 problems"), "{out}");
    assert!(out.contains("4 directories, 7 files, 1 symlinks"), "{out}");

    // Find the objects in enc/ by what they are.
    let enc = clean.join("enc");
    let ents = entries(&enc);
    let is_long = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".n");
        Path::new(&s).exists()
    };
    let rel = |p: &Path| p.strip_prefix(&clean).unwrap().to_path_buf();
    let long = rel(ents.iter().find(|p| is_long(p)).unwrap());
    let file = rel(ents
        .iter()
        .find(|p| fs::symlink_metadata(p).unwrap().len() == 4096 + 8192)
        .unwrap());
    let link = rel(ents.iter().find(|p| p.is_symlink()).unwrap());
    let sub = rel(ents.iter().find(|p| p.is_dir() && !p.is_symlink()).unwrap());

    // A truncated header.
    let b = copy_of(&clean, tmp.path(), "trunc");
    fs::OpenOptions::new()
        .write(true)
        .open(b.join(&file))
        .unwrap()
        .set_len(40)
        .unwrap();
    expect_problem(&b, &b.join(&file), "truncated header");

    // A flipped byte in a directory's context (checksum mismatch).
    let b = copy_of(&clean, tmp.path(), "ctxflip");
    let meta = b.join(&sub).join(".fscryptfs.dir");
    let mut bytes = fs::read(&meta).unwrap();
    bytes[24 + 10] ^= 0x40;
    fs::write(&meta, &bytes).unwrap();
    expect_problem(&b, &meta, "flipped context byte");

    // A flipped key-identifier byte with a recomputed checksum: the header is valid, but the
    // policy no longer matches the parent's.
    let b = copy_of(&clean, tmp.path(), "policy");
    let f = b.join(&file);
    let mut bytes = fs::read(&f).unwrap();
    bytes[32 + 8] ^= 0x01;
    let sum = fscryptfs::store::checksum(&bytes[..72]);
    bytes[72..80].copy_from_slice(&sum);
    fs::write(&f, &bytes).unwrap();
    let (_, out, _) = fsck(&b);
    assert!(out.contains("policy differs"), "{out}");
    expect_problem(&b, &f, "policy mismatch");

    // A deleted long-name side file, and an orphan one.
    let b = copy_of(&clean, tmp.path(), "side");
    let mut side = b.join(&long).into_os_string();
    side.push(".n");
    fs::remove_file(&side).unwrap();
    expect_problem(&b, &b.join(&long), "missing side file");
    let b = copy_of(&clean, tmp.path(), "orphan");
    let mut side = b.join(&long).into_os_string();
    side.push(".n");
    fs::remove_file(b.join(&long)).unwrap();
    // An orphan is what a crash between the side file and its entry leaves: a note.
    let (code, out, err) = fsck(&b);
    assert_eq!(code, 0, "orphan side file: expected exit 0\n{out}{err}");
    let p = Path::new(&side).display().to_string();
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{p}: note: orphan side file"))),
        "orphan side file not noted:\n{out}"
    );

    // A duplicated inode number (a plain copy of a file, not a hard link).
    let b = copy_of(&clean, tmp.path(), "dup");
    fs::copy(b.join("plain"), b.join("plain-copy")).unwrap();
    expect_problem(&b, &b.join("plain-copy"), "duplicate inode number");
    let out = Command::new(bin())
        .args(["inspect"])
        .arg(&b)
        .args(["inode", "--ino"])
        .arg(
            String::from_utf8(
                Command::new(bin())
                    .arg("inspect")
                    .arg(&b)
                    .args(["inode", "plain"])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("ino "))
            .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fsck"));

    // A bad symlink encoding.
    let b = copy_of(&clean, tmp.path(), "symlink");
    fs::remove_file(b.join(&link)).unwrap();
    std::os::unix::fs::symlink("fscryptfs:1:!!notbase64", b.join(&link)).unwrap();
    expect_problem(&b, &b.join(&link), "bad symlink encoding");

    // An unknown config version.
    let b = copy_of(&clean, tmp.path(), "config");
    let conf = b.join(".fscryptfs.conf");
    let text = fs::read_to_string(&conf)
        .unwrap()
        .replace("format 1", "format 7");
    fs::write(&conf, text).unwrap();
    expect_problem(&b, &conf, "newer config version");

    // A directory without metadata, and a junk name in an encrypted directory.
    let b = copy_of(&clean, tmp.path(), "nometa");
    fs::remove_file(b.join(&sub).join(".fscryptfs.dir")).unwrap();
    fs::write(b.join("enc/junk.txt"), b"").unwrap();
    expect_problem(&b, &b.join(&sub), "missing directory metadata");
    expect_problem(&b, &b.join("enc/junk.txt"), "junk name");

    // Crash leftovers are notes: exit 0.
    let b = copy_of(&clean, tmp.path(), "leftovers");
    fs::write(b.join("enc/.fscryptfs.tmp.0123456789abcdef"), b"").unwrap();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(b.join(&file))
        .unwrap();
    std::io::Write::write_all(&mut f, &[1u8; 4096]).unwrap();
    drop(f);
    let (code, out, err) = fsck(&b);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 notes"), "{out}");
    assert!(
        out.contains(&format!("{}: note: ", b.join(&file).display())),
        "{out}"
    );

    // Could not run: exit 2.
    let (code, _, err) = fsck(&tmp.path().join("missing"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing"), "{err}");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert_eq!(fsck(&empty).0, 2);
}

// ---- hostile objects where fscryptfs's own files belong (issue 8) ----

/// `fscryptfs fsck BACKING` under a 60 s deadline (a hang fails the test instead of the run).
fn fsck_bounded(backing: &Path) -> Bounded {
    let r = run_bounded(
        &[std::ffi::OsStr::new("fsck"), backing.as_os_str()],
        std::time::Duration::from_secs(60),
    );
    assert!(r.code.is_some(), "fsck hung (killed after 60 s):\n{r:?}");
    r
}

/// Expects exit 1 and a problem line naming `path` whose message contains `msg`.
#[track_caller]
fn expect_bounded_problem(backing: &Path, path: &Path, msg: &str) -> Bounded {
    let r = fsck_bounded(backing);
    assert_eq!(
        r.code,
        Some(1),
        "{}: expected exit 1\n{r:?}",
        path.display()
    );
    let p = format!("{}: ", path.display());
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with(&p) && !l.contains(": note: ") && l.contains(msg)),
        "no problem `{p}...{msg}...` in:\n{}",
        r.stdout
    );
    r
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

/// Replaces whatever is at `p` by a FIFO.
fn plant_fifo(p: &Path) {
    fs::remove_file(p).unwrap();
    mkfifo(p);
}

/// Replaces whatever is at `p` by a sparse regular file of `len` bytes.
fn plant_sparse(p: &Path, len: u64) {
    fs::remove_file(p).unwrap();
    fs::File::create(p).unwrap().set_len(len).unwrap();
}

/// Sets `p`'s atime and mtime far in the past (so relatime would update a read's atime).
fn age(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = [libc::timespec {
        tv_sec: 1_000_000,
        tv_nsec: 0,
    }; 2];
    // SAFETY: `c` is a valid path and `ts` two timespecs.
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) },
        0
    );
}

#[test]
fn fsck_checks_special_records_and_the_type_and_size_of_every_metadata_object() {
    use fscryptfs::store::special::SpecialRecords;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    fs::create_dir(m.path("plain")).unwrap();
    mkfifo(&m.path("plain/p1"));
    mkfifo(&m.path("plain/p2"));
    fs::write(m.path("plain/reg"), b"regular").unwrap();
    mkfifo(&m.path("enc/fifo"));
    fs::write(m.path("enc/f"), b"data").unwrap();
    fs::write(m.path(&format!("enc/{}", "L".repeat(200))), b"long").unwrap();
    fs::create_dir(m.path("enc/sub")).unwrap();
    m.stop();
    let clean = m.backing.clone();
    let tmp = tempfile::tempdir().unwrap();

    let r = fsck_bounded(&clean);
    assert_eq!(r.code, Some(0), "clean volume:\n{r:?}");
    assert!(
        r.stdout.contains("3 special files; 0 problems, 0 notes"),
        "{}",
        r.stdout
    );
    let rel = |p: &Path| p.strip_prefix(&clean).unwrap().to_path_buf();
    let enc_ents = entries(&clean.join("enc"));
    let long = rel(enc_ents
        .iter()
        .find(|p| {
            let mut s = p.as_os_str().to_owned();
            s.push(".n");
            Path::new(&s).exists()
        })
        .unwrap());
    let enc_fifo = rel(enc_ents
        .iter()
        .find(|p| fs::symlink_metadata(p).unwrap().file_type().is_fifo())
        .unwrap());
    let enc_sub = rel(enc_ents.iter().find(|p| p.is_dir()).unwrap());
    assert!(clean.join("enc/.fscryptfs.special").is_file());

    // A FIFO at a directory's metadata file, at the root's and at the config: reported, no hang.
    let b = copy_of(&clean, tmp.path(), "fifo-dir");
    plant_fifo(&b.join(&enc_sub).join(".fscryptfs.dir"));
    plant_fifo(&b.join(".fscryptfs.dir"));
    expect_bounded_problem(&b, &b.join(&enc_sub).join(".fscryptfs.dir"), "a FIFO");
    expect_bounded_problem(&b, &b.join(".fscryptfs.dir"), "a FIFO");
    let b = copy_of(&clean, tmp.path(), "fifo-conf");
    plant_fifo(&b.join(".fscryptfs.conf"));
    expect_bounded_problem(&b, &b.join(".fscryptfs.conf"), "a FIFO");

    // A FIFO at a long name's side file, and at a special-file record.
    let b = copy_of(&clean, tmp.path(), "fifo-side");
    let mut side = b.join(&long).into_os_string();
    side.push(".n");
    plant_fifo(Path::new(&side));
    plant_fifo(&b.join("plain/.fscryptfs.special"));
    expect_bounded_problem(&b, Path::new(&side), "a FIFO");
    expect_bounded_problem(&b, &b.join("plain/.fscryptfs.special"), "a FIFO");

    // A directory and a socket where files belong.
    let b = copy_of(&clean, tmp.path(), "dir-conf");
    fs::remove_file(b.join(".fscryptfs.conf")).unwrap();
    fs::create_dir(b.join(".fscryptfs.conf")).unwrap();
    fs::remove_file(b.join("enc/.fscryptfs.special")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(b.join("enc/.fscryptfs.special")).unwrap();
    expect_bounded_problem(&b, &b.join(".fscryptfs.conf"), "a directory");
    expect_bounded_problem(&b, &b.join("enc/.fscryptfs.special"), "a socket");

    // Symlinks to a canary outside the volume (a valid record, so following it would "work"):
    // reported, and the canary is never opened (its atime stays) nor changed.
    let b = copy_of(&clean, tmp.path(), "symlink");
    let canary = tmp.path().join("canary");
    fs::copy(b.join("plain/.fscryptfs.special"), &canary).unwrap();
    let canary_bytes = fs::read(&canary).unwrap();
    age(&canary);
    let before = fs::metadata(&canary).unwrap();
    let side_b = {
        let mut s = b.join(&long).into_os_string();
        s.push(".n");
        PathBuf::from(s)
    };
    for p in [
        b.join("plain/.fscryptfs.special"),
        b.join(&enc_sub).join(".fscryptfs.dir"),
        side_b.clone(),
    ] {
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&canary, &p).unwrap();
    }
    let r = expect_bounded_problem(&b, &b.join("plain/.fscryptfs.special"), "a symlink");
    for p in [b.join(&enc_sub).join(".fscryptfs.dir"), side_b] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{}: ", p.display())) && l.contains("a symlink")),
            "{}: not reported\n{}",
            p.display(),
            r.stdout
        );
    }
    let after = fs::metadata(&canary).unwrap();
    assert_eq!(fs::read(&canary).unwrap(), canary_bytes, "canary changed");
    assert_eq!(
        (after.atime(), after.mtime(), after.ctime()),
        (before.atime(), before.mtime(), before.ctime()),
        "the canary was opened"
    );

    // 8 GiB sparse metadata files: reported from their size, never read (fsck stays small).
    let b = copy_of(&clean, tmp.path(), "huge");
    plant_sparse(&b.join("plain/.fscryptfs.special"), 8 << 30);
    plant_sparse(&b.join(&enc_sub).join(".fscryptfs.dir"), 8 << 30);
    let r = expect_bounded_problem(&b, &b.join("plain/.fscryptfs.special"), "more than");
    assert!(
        r.stdout.contains(&format!(
            "{}: ",
            b.join(&enc_sub).join(".fscryptfs.dir").display()
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.max_rss_kib < 200 * 1024,
        "fsck used {} KiB",
        r.max_rss_kib
    );

    // A damaged record (one flipped byte): its checksum fails.
    let b = copy_of(&clean, tmp.path(), "flip");
    let rec = b.join("plain/.fscryptfs.special");
    let mut bytes = fs::read(&rec).unwrap();
    bytes[12] ^= 0x01;
    fs::write(&rec, &bytes).unwrap();
    expect_bounded_problem(&b, &rec, "checksum mismatch");

    // Valid records that disagree with the directory: p2 without a record (a problem), records
    // for a missing name and for a regular file (crash leftovers: notes), p1 with the inode
    // number of a regular file (a problem).
    let b = copy_of(&clean, tmp.path(), "records");
    let rec = b.join("plain/.fscryptfs.special");
    let old = SpecialRecords::parse(&fs::read(&rec).unwrap(), "r").unwrap();
    let reg_ino = {
        let out = run_fscryptfs(
            &[
                std::ffi::OsStr::new("inspect"),
                b.as_os_str(),
                std::ffi::OsStr::new("inode"),
                std::ffi::OsStr::new("plain/reg"),
            ],
            None,
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("ino ").map(|n| n.parse::<u64>().unwrap()))
            .unwrap()
    };
    assert!(old.get(std::ffi::OsStr::new("p2")).is_some());
    let mut new = SpecialRecords::default();
    new.set(std::ffi::OsStr::new("p1"), reg_ino);
    new.set(std::ffi::OsStr::new("gone"), 999);
    new.set(std::ffi::OsStr::new("reg"), 1000);
    fs::write(&rec, new.to_bytes()).unwrap();
    let r = expect_bounded_problem(&b, &b.join("plain/p2"), "without a record");
    // p1 is checked first (names are sorted): reg's number is then the one used twice.
    expect_bounded_problem(&b, &b.join("plain/reg"), "is also used by");
    assert!(r
        .stdout
        .contains(&format!("also used by {}", b.join("plain/p1").display())));
    let note = |what: &str| {
        r.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{}: note: ", rec.display())) && l.contains(what))
    };
    assert!(note("gone, which does not exist"), "{}", r.stdout);
    assert!(note("reg, which is not a special file"), "{}", r.stdout);
    // The FIFO in the encrypted directory still has its record.
    assert!(
        !r.stdout.contains(&b.join(&enc_fifo).display().to_string()),
        "{}",
        r.stdout
    );
}
