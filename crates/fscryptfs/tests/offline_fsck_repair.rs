//! `fscryptfs fsck --repair` (issue 11, part 5): volumes written through a real mount, unmounted,
//! then damaged the ways a crash leaves them — an orphaned long-name side file, special-file records
//! of names that are gone, a config inode counter behind the numbers in use, leftover temporary
//! files and directories, a torn tail on a per-extent log. `--repair` fixes each with one
//! `repaired:` line and exit 4, a second check is clean (exit 0), and the volume mounts and reads
//! back. What cannot be repaired without guessing is reported (exit 1) and not one byte changes; a
//! mounted volume is refused (exit 2, one line); symlinks planted where a repair acts are never
//! followed. On a terminal a check that runs for more than a second shows a spinner on stderr.

#[path = "support/pty.rs"]
mod pty;
mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// Runs `fscryptfs fsck ARGS BACKING`: (exit status, stdout, stderr).
fn fsck(args: &[&str], backing: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("fsck")
        .args(args)
        .arg(backing)
        .output()
        .expect("run fsck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}: {}",
        std::io::Error::last_os_error()
    );
}

/// The backing entries of `dir` (not ours, not side files) for which `pred` holds.
fn backing_entries(dir: &Path, pred: impl Fn(&Path, &fs::Metadata) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().as_bytes();
            !n.starts_with(b".fscryptfs") && !n.contains(&b'.')
        })
        .filter(|p| pred(p, &fs::symlink_metadata(p).unwrap()))
        .collect();
    v.sort();
    v
}

fn side_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".n");
    PathBuf::from(s)
}

/// The `repaired:` lines of fsck's output, by path.
fn repaired_lines(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in out.lines() {
        if let Some(rest) = l.strip_prefix("repaired: ") {
            let (p, what) = rest.split_once(": ").expect("repaired: PATH: what");
            m.entry(p.to_string()).or_default().push(what.to_string());
        }
    }
    m
}

/// Every object under `root`: relative path → (kind, mode, contents or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let (kind, data) = if ft.is_dir() {
                stack.push(p.clone());
                ("dir", Vec::new())
            } else if ft.is_symlink() {
                (
                    "symlink",
                    fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
                )
            } else if ft.is_file() {
                ("file", fs::read(&p).unwrap())
            } else {
                ("special", Vec::new())
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (kind.to_string(), md.mode(), data),
            );
        }
    }
    out
}

/// The stable inode number `inspect` gives for no-key path `path`.
fn stable_ino(backing: &Path, path: &str) -> u64 {
    let out = run_fscryptfs(
        &[
            OsStr::new("inspect"),
            backing.as_os_str(),
            OsStr::new("inode"),
            OsStr::new(path),
        ],
        None,
    );
    assert!(out.status.success(), "inspect inode {path}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ino ").map(|n| n.parse::<u64>().unwrap()))
        .expect("ino line")
}

/// The config's `next-ino`.
fn next_ino(backing: &Path) -> u64 {
    fs::read_to_string(backing.join(".fscryptfs.conf"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("next-ino ").map(|n| n.parse().unwrap()))
        .expect("next-ino line")
}

#[test]
fn repair_fixes_each_crash_leftover_and_the_volume_reads_back() {
    let Some((mut m, _id)) = encrypted_volume_made_with(&["--contents-layout=extent"]) else {
        return;
    };
    let data = pattern(7, 3 * 4096 + 100);
    fs::write(m.path("enc/file"), &data).unwrap();
    let long_a = format!("enc/{}", "a".repeat(200));
    let long_b = format!("enc/{}", "b".repeat(200));
    fs::write(m.path(&long_a), b"long a").unwrap();
    fs::write(m.path(&long_b), b"long b").unwrap();
    mkfifo(&m.path("enc/fifo"));
    fs::create_dir(m.path("plain")).unwrap();
    mkfifo(&m.path("plain/p1"));
    mkfifo(&m.path("plain/p2"));
    fs::write(m.path("plain/reg"), b"regular").unwrap();
    m.stop();
    let b = m.backing.clone();
    let (code, out, err) = fsck(&[], &b);
    assert_eq!(code, 0, "clean volume:\n{out}{err}");
    assert!(out.contains("0 problems, 0 notes"), "{out}");
    // A clean volume: --repair repairs nothing, exit 0.
    let (code, out, err) = fsck(&["--repair"], &b);
    assert_eq!(code, 0, "clean volume, --repair:\n{out}{err}");
    assert!(out.contains("0 problems, 0 notes, 0 repaired"), "{out}");

    let enc = b.join("enc");
    let longs = backing_entries(&enc, |p, _| side_of(p).exists());
    assert_eq!(longs.len(), 2, "{longs:?}");
    let files = backing_entries(&enc, |p, md| md.is_file() && !side_of(p).exists());
    assert_eq!(files.len(), 1, "{files:?}");
    let extent_file = files[0].clone();
    let fifos = backing_entries(&enc, |_, md| md.file_type().is_fifo());
    assert_eq!(fifos.len(), 1, "{fifos:?}");

    // 1. An orphaned side file: the entry of one long name is gone, its side file stays.
    fs::remove_file(&longs[0]).unwrap();
    let orphan = side_of(&longs[0]);
    // 2. Special-file records of names that are gone: plain/p2 (plain keeps p1's record: the file
    //    is rewritten) and enc's only FIFO (the record file goes).
    fs::remove_file(b.join("plain/p2")).unwrap();
    fs::remove_file(&fifos[0]).unwrap();
    // 3. The inode counter behind the numbers in use.
    let conf = b.join(".fscryptfs.conf");
    let old_next = next_ino(&b);
    let text = fs::read_to_string(&conf)
        .unwrap()
        .replace(&format!("next-ino {old_next}"), "next-ino 16");
    fs::write(&conf, text).unwrap();
    let conf_mode = fs::metadata(&conf).unwrap().mode();
    // 4. Leftover temporary objects: a file, a directory of ours (an interrupted mkdir holding its
    //    metadata, a protector tree being set up), an older version's fixed temporary name.
    let tmp_file = enc.join(".fscryptfs.tmp.0123456789abcdef");
    fs::write(&tmp_file, b"half-created").unwrap();
    let tmp_dir = b.join(".fscryptfs.tmp.fedcba9876543210");
    fs::create_dir_all(tmp_dir.join(".fscryptfs.fscrypt/policies")).unwrap();
    fs::copy(b.join(".fscryptfs.dir"), tmp_dir.join(".fscryptfs.dir")).unwrap();
    let old_tmp = b.join("plain/.fscryptfs.special.new");
    fs::write(&old_tmp, b"old").unwrap();
    // 5. A torn tail: half a record after the last commit of the per-extent log.
    let len_before = fs::metadata(&extent_file).unwrap().len();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&extent_file)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xab; 5000]).unwrap();
    drop(f);

    // Without --repair: the counter is a problem (exit 1), the rest notes; nothing changes.
    let before = snapshot(&b);
    let (code, out, err) = fsck(&[], &b);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("is not below the config's next-ino 16"),
        "{out}"
    );
    for p in [&orphan, &tmp_file, &tmp_dir, &old_tmp, &extent_file] {
        assert!(
            out.contains(&format!("{}: note: ", p.display())),
            "{}: no note\n{out}",
            p.display()
        );
    }
    assert!(!out.contains("repaired:"), "{out}");
    assert_eq!(
        snapshot(&b),
        before,
        "fsck without --repair changed the volume"
    );

    // --repair: one `repaired:` line for each, exit 4.
    let (code, out, err) = fsck(&["--repair"], &b);
    assert_eq!(code, 4, "{out}{err}");
    let rep = repaired_lines(&out);
    let want = [
        orphan.clone(),
        b.join("plain/.fscryptfs.special"),
        enc.join(".fscryptfs.special"),
        conf.clone(),
        tmp_file.clone(),
        tmp_dir.clone(),
        old_tmp.clone(),
        extent_file.clone(),
    ];
    for p in &want {
        let lines = rep.get(&p.display().to_string());
        assert_eq!(
            lines.map(Vec::len),
            Some(1),
            "{}: expected one repaired line\n{out}",
            p.display()
        );
    }
    assert_eq!(rep.len(), want.len(), "{out}");
    assert!(
        rep[&conf.display().to_string()][0].contains("raised next-ino from 16 to"),
        "{out}"
    );
    assert!(
        rep[&extent_file.display().to_string()][0].contains("cut 5000 bytes"),
        "{out}"
    );
    assert!(out.contains("0 problems, 0 notes, 8 repaired"), "{out}");
    assert!(err.contains("8 repairs made"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // What each repair did.
    assert!(!orphan.exists() && !tmp_file.exists() && !tmp_dir.exists() && !old_tmp.exists());
    assert!(!enc.join(".fscryptfs.special").exists());
    let rec = fscryptfs::store::special::SpecialRecords::parse(
        &fs::read(b.join("plain/.fscryptfs.special")).unwrap(),
        "r",
    )
    .unwrap();
    assert!(rec.get(OsStr::new("p1")).is_some());
    assert!(rec.get(OsStr::new("p2")).is_none());
    assert_eq!(fs::metadata(&extent_file).unwrap().len(), len_before);
    let raised = next_ino(&b);
    assert!(raised > 16, "{raised}");
    assert_eq!(fs::metadata(&conf).unwrap().mode(), conf_mode);

    // A second check is clean.
    let (code, out, err) = fsck(&[], &b);
    assert_eq!(code, 0, "after repair:\n{out}{err}");
    assert!(out.contains("0 problems, 0 notes"), "{out}");
    let (code, out, err) = fsck(&["--repair"], &b);
    assert_eq!(code, 0, "repair again:\n{out}{err}");

    // The volume mounts and reads back; a new inode gets a number above every old one.
    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    assert_eq!(fs::read(m.path("enc/file")).unwrap(), data);
    let a = fs::read(m.path(&long_a)).ok();
    let bb = fs::read(m.path(&long_b)).ok();
    assert!(
        matches!((&a, &bb), (Some(x), None) if x == b"long a")
            || matches!((&a, &bb), (None, Some(y)) if y == b"long b"),
        "{a:?} {bb:?}"
    );
    assert!(fs::symlink_metadata(m.path("plain/p1"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(!m.path("plain/p2").exists() && !m.path("enc/fifo").exists());
    assert_eq!(fs::read(m.path("plain/reg")).unwrap(), b"regular");
    fs::write(m.path("plain/new"), b"new").unwrap();
    let mut more = fs::OpenOptions::new()
        .append(true)
        .open(m.path("enc/file"))
        .unwrap();
    std::io::Write::write_all(&mut more, b"appended").unwrap();
    drop(more);
    m.stop();
    let (code, out, err) = fsck(&[], &b);
    assert_eq!(code, 0, "after remount:\n{out}{err}");
    let ino_new = stable_ino(&b, "plain/new");
    assert!(
        ino_new >= raised,
        "new inode {ino_new} below the raised counter {raised}"
    );
    for p in ["plain", "plain/reg", "enc"] {
        assert_ne!(stable_ino(&b, p), ino_new, "{p}");
    }
}

#[test]
fn repair_changes_nothing_it_cannot_repair_without_guessing() {
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    fs::create_dir(m.path("enc/sub")).unwrap();
    fs::write(m.path("enc/sub/f"), b"data").unwrap();
    fs::create_dir(m.path("plain")).unwrap();
    mkfifo(&m.path("plain/p1"));
    m.stop();
    let b = m.backing.clone();
    // A FIFO renamed behind the daemon's back: its record names the old name (stale), the new
    // name has none. The stale record may be the number it had: kept.
    fs::rename(b.join("plain/p1"), b.join("plain/p9")).unwrap();
    let sub = backing_entries(&b.join("enc"), |_, md| md.is_dir())[0].clone();
    // A flipped byte in a directory's metadata (its checksum fails), and a temporary directory
    // holding what may be a user's file.
    let meta = sub.join(".fscryptfs.dir");
    let mut bytes = fs::read(&meta).unwrap();
    bytes[24 + 10] ^= 0x40;
    fs::write(&meta, &bytes).unwrap();
    let tmp_dir = b.join(".fscryptfs.tmp.0000000000000001");
    fs::create_dir(&tmp_dir).unwrap();
    fs::write(tmp_dir.join("keep.txt"), b"maybe a user's").unwrap();
    let before = snapshot(&b);

    let (code, out, err) = fsck(&["--repair"], &b);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{}: ", meta.display()))),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "{}: leftover temporary object not removed",
            tmp_dir.display()
        )) && l.contains("keep.txt")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: note: record (inode number",
            b.join("plain/.fscryptfs.special").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: special file without a record",
            b.join("plain/p9").display()
        )),
        "{out}"
    );
    assert!(!out.contains("repaired:"), "{out}");
    assert!(out.contains(", 0 repaired"), "{out}");
    assert!(err.contains("left unrepaired"), "{err}");
    assert_eq!(
        snapshot(&b),
        before,
        "fsck --repair changed what it could not repair"
    );
}

#[test]
fn repair_refuses_a_mounted_volume() {
    let Some(m) = mount_volume(&[], "") else {
        return;
    };
    fs::write(m.path("f"), b"x").unwrap();
    let (code, out, err) = fsck(&["--repair"], &m.backing);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "one line\n{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("in use") && err.contains("unmount"), "{err}");
    // --force cannot make a repair of a mounted volume: refused by the argument parser, whose
    // first line says why.
    let (code, out, err) = fsck(&["--repair", "--force"], &m.backing);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.starts_with("fscryptfs: ") && l.contains("cannot be used with")),
        "{err}"
    );
    // A read-only mount holds the lock too: refused as well.
    drop(m);
    let Some(m) = mount_volume(&[], "ro") else {
        return;
    };
    let (code, _, err) = fsck(&["--repair"], &m.backing);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Plain fsck still reads a read-only mount.
    assert_eq!(fsck(&[], &m.backing).0, 0);
}

#[test]
fn repair_never_follows_a_symlink() {
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    fs::create_dir(m.path("plain")).unwrap();
    mkfifo(&m.path("plain/p1"));
    mkfifo(&m.path("plain/p2"));
    fs::write(m.path(&format!("enc/{}", "L".repeat(200))), b"long").unwrap();
    m.stop();
    let b = m.backing.clone();
    let outside = tempfile::tempdir().unwrap();
    let canary_dir = outside.path().join("dir");
    fs::create_dir(&canary_dir).unwrap();
    fs::write(canary_dir.join("precious"), b"precious").unwrap();
    // Canaries that a followed repair would "work" on: a record file with a stale record, a
    // config with a low counter, a long name's side file.
    let rec_canary = outside.path().join("special");
    fs::copy(b.join("plain/.fscryptfs.special"), &rec_canary).unwrap();
    let conf_canary = outside.path().join("conf");
    let low = fs::read_to_string(b.join(".fscryptfs.conf"))
        .unwrap()
        .replace(&format!("next-ino {}", next_ino(&b)), "next-ino 16");
    fs::write(&conf_canary, low).unwrap();
    let long = backing_entries(&b.join("enc"), |p, _| side_of(p).exists())[0].clone();
    let side_canary = outside.path().join("side");
    fs::copy(side_of(&long), &side_canary).unwrap();

    let link = |target: &Path, at: &Path| {
        let _ = fs::remove_file(at);
        std::os::unix::fs::symlink(target, at).unwrap();
    };
    // Temporary names that are symlinks to a directory and a file outside: the links go.
    let tmp_to_dir = b.join("enc/.fscryptfs.tmp.1111111111111111");
    let tmp_to_file = b.join(".fscryptfs.tmp.2222222222222222");
    link(&canary_dir, &tmp_to_dir);
    link(&canary_dir.join("precious"), &tmp_to_file);
    // Symlinks where a record file, the config and an orphan side file belong: problems, left.
    fs::remove_file(b.join("plain/p2")).unwrap();
    link(&rec_canary, &b.join("plain/.fscryptfs.special"));
    link(&conf_canary, &b.join(".fscryptfs.conf"));
    fs::remove_file(&long).unwrap();
    link(&side_canary, &side_of(&long));
    let outside_before = snapshot(outside.path());

    let (code, out, err) = fsck(&["--repair"], &b);
    assert_eq!(code, 1, "{out}{err}");
    let rep = repaired_lines(&out);
    for p in [&tmp_to_dir, &tmp_to_file] {
        assert!(
            rep.get(&p.display().to_string())
                .is_some_and(|l| l.len() == 1 && l[0].contains("symlink (not followed)")),
            "{}: not repaired\n{out}",
            p.display()
        );
        assert!(
            fs::symlink_metadata(p).is_err(),
            "{} still there",
            p.display()
        );
    }
    for p in [
        b.join("plain/.fscryptfs.special"),
        b.join(".fscryptfs.conf"),
        side_of(&long),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{}: ", p.display())) && l.contains("a symlink")),
            "{}: not reported\n{out}",
            p.display()
        );
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
    }
    assert_eq!(rep.len(), 2, "{out}");
    assert_eq!(
        snapshot(outside.path()),
        outside_before,
        "a repair wrote outside the volume"
    );
}

#[test]
fn a_spinner_shows_on_a_terminal_once_a_check_takes_a_second() {
    let Some(mut m) = mount_volume(&[], "") else {
        return;
    };
    for f in ["f", "g", "h"] {
        fs::write(m.path(f), b"x").unwrap();
    }
    fs::create_dir(m.path("d")).unwrap();
    m.stop();
    let b = m.backing.clone();
    // The delay before the spinner is set per run (FSCRYPTFS_PROGRESS_AFTER_MS), so neither
    // assertion depends on how fast this machine checks.
    let run = |after_ms: &str| {
        let cmd = format!("exec '{}' fsck -q '{}' >/dev/null", bin(), b.display());
        pty::pty_run_with_timeout(
            "sh",
            &["-c", &cmd],
            &[("FSCRYPTFS_PROGRESS_AFTER_MS", after_ms)],
            &[],
            std::time::Duration::from_secs(120),
        )
    };
    // A check that ends before the delay: nothing but the findings (none) on the terminal.
    let out = run("60000");
    assert_eq!(out.code(), 0, "{}", out.transcript);
    assert!(!out.transcript.contains("fsck "), "{:?}", out.transcript);
    // Many hard links (no problem: each to the same backing inode as its file; under ext4's
    // 65000 links per inode): a check of a while, with the spinner shown from the start.
    for f in ["f", "g", "h"] {
        for i in 0..40_000 {
            fs::hard_link(b.join(f), b.join(format!("d/{f}{i}"))).unwrap();
        }
    }
    let out = run("0");
    assert_eq!(out.code(), 0, "{}", out.transcript);
    assert!(
        out.transcript.contains(" files, 0 symlinks"),
        "no spinner: {:?}",
        out.transcript
    );
    // Not a terminal: nothing on stderr, however long it takes.
    let (code, out, err) = fsck(&["-q"], &b);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

/// A create the daemon did not finish (it makes the name with O_EXCL, then writes the header: a
/// crash in between leaves a file shorter than a header): mounted, an entry that can be stat'ed
/// and deleted but whose open says EUCLEAN; fsck a problem naming the interrupted create;
/// `--repair` removes it (it holds no data) and the next check is clean.
#[test]
fn an_interrupted_create_is_a_damaged_entry_until_repair_removes_it() {
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    fs::write(m.path("enc/victim"), b"will be cut").unwrap();
    fs::create_dir(m.path("plain")).unwrap();
    fs::write(m.path("plain/kept"), b"kept").unwrap();
    m.stop();
    let b = m.backing.clone();
    let enc = b.join("enc");
    let victim = backing_entries(&enc, |_, md| md.is_file());
    assert_eq!(victim.len(), 1, "{victim:?}");
    let victim = victim[0].clone();
    // The name made, the header never written (the daemon was killed in between) ...
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&victim)
        .unwrap();
    // ... and a header cut short by a machine crash, in an unencrypted directory.
    let torn = b.join("plain/torn");
    fs::write(&torn, vec![0x46u8; 100]).unwrap();

    let (code, out, err) = fsck(&[], &b);
    assert_eq!(code, 1, "{out}{err}");
    for p in [&victim, &torn] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{}: ", p.display()))
                    && l.contains("a create interrupted by a crash")
                    && l.contains("--repair removes it")),
            "{}: not reported\n{out}",
            p.display()
        );
    }

    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    let names: Vec<_> = fs::read_dir(m.path("enc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.iter().any(|n| n == "victim"), "{names:?}");
    assert!(fs::symlink_metadata(m.path("plain/torn"))
        .unwrap()
        .is_file());
    let e = fs::File::open(m.path("plain/torn")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EUCLEAN), "{e}");
    fs::remove_file(m.path("plain/torn")).unwrap();
    assert_eq!(fs::read(m.path("plain/kept")).unwrap(), b"kept");
    m.stop();
    assert!(!torn.exists());

    let (code, out, err) = fsck(&["--repair"], &b);
    assert_eq!(code, 4, "{out}{err}");
    let rep = repaired_lines(&out);
    assert_eq!(rep.len(), 1, "{out}");
    assert!(
        rep[&victim.display().to_string()][0].contains("a create interrupted by a crash"),
        "{out}"
    );
    assert!(!victim.exists());
    let (code, out, err) = fsck(&[], &b);
    assert_eq!(code, 0, "after repair:\n{out}{err}");
    m.start_again("");
    add_key(&m.mnt, &KEY).unwrap();
    assert!(!m.path("enc/victim").exists());
    assert_eq!(fs::read(m.path("plain/kept")).unwrap(), b"kept");
}
