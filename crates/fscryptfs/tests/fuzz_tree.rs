//! Fuzzing of a whole backing tree loaded by the mount (issue 8): a small real volume is built
//! through a mount (encrypted and unencrypted directories, regular files of both layouts, long
//! names with side files, symlinks, FIFOs and their special-file records), unmounted and kept; then
//! for each seeded round a copy of it has its metadata bytes damaged (bytes flipped, cut or
//! appended in directory metadata, file headers, extent logs, side files and special-file
//! records; symlink targets changed), is mounted, and the whole tree is walked (stat, readdir,
//! read of every file, readlink) with a deadline on every operation. Errors (EUCLEAN, EIO, ...)
//! are fine; a hang, a daemon that died, or a panic in its log fail the round.
//!
//! Rounds: `FSCRYPTFS_FUZZ_TREE_ROUNDS` (default 4, about 10 s); seed `FSCRYPTFS_FUZZ_SEED`.

mod support;

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

/// The objects of a backing tree whose bytes fscryptfs parses (the config and the root's
/// metadata excepted: damage there makes the mount refuse to start, which is tested elsewhere).
fn targets(dir: &Path, root: bool, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().as_bytes().to_vec();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            targets(&p, false, out);
            continue;
        }
        if root && (name == b".fscryptfs.dir" || name == b".fscryptfs.conf") {
            continue;
        }
        if md.is_file() || md.file_type().is_symlink() {
            out.push(p);
        }
    }
}

/// Damages one object: a symlink gets a changed target; a file a flipped byte (mostly where
/// headers and record headers are), a cut, or appended bytes.
fn damage(p: &Path, rng: &mut Rng) -> String {
    let md = fs::symlink_metadata(p).unwrap();
    if md.file_type().is_symlink() {
        let mut t = fs::read_link(p).unwrap().into_os_string().into_vec();
        match rng.below(3) {
            0 => {
                let i = rng.below(t.len() as u64) as usize;
                t[i] = b"AZaz09-_:/."[rng.below(11) as usize];
            }
            1 => t.truncate(rng.below(t.len() as u64).max(1) as usize),
            _ => t.extend_from_slice(b"AAAA"),
        }
        fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&t), p).unwrap();
        return format!("symlink target of {}", p.display());
    }
    let mut b = fs::read(p).unwrap();
    let what = match rng.below(5) {
        0..=2 if !b.is_empty() => {
            // Within the first 256 bytes of some 4096-byte block: headers and record headers.
            let blocks = b.len().div_ceil(4096) as u64;
            let i = ((rng.below(blocks) * 4096 + rng.below(256)) as usize).min(b.len() - 1);
            b[i] ^= (rng.below(255) + 1) as u8;
            format!("byte {i} of {}", p.display())
        }
        3 => {
            let n = rng.below(b.len() as u64 + 1) as usize;
            b.truncate(n);
            format!("{} cut to {n}", p.display())
        }
        _ => {
            let n = rng.below(5000) as usize + 1;
            b.extend((0..n).map(|_| rng.next() as u8));
            format!("{n} bytes appended to {}", p.display())
        }
    };
    fs::write(p, &b).unwrap();
    what
}

use std::os::unix::ffi::OsStringExt;

/// Walks the mounted tree: stat, readdir, reads of (at most 1 MiB of) every file, readlink; one
/// message per operation, so the caller can put a deadline on each.
fn walk(dir: &Path, tx: &mpsc::Sender<String>) {
    let _ = tx.send(format!("readdir {}", dir.display()));
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let Ok(e) = e else { continue };
        let p = e.path();
        let _ = tx.send(format!("stat {}", p.display()));
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            walk(&p, tx);
        } else if md.file_type().is_symlink() {
            let _ = tx.send(format!("readlink {}", p.display()));
            let _ = fs::read_link(&p);
        } else if md.is_file() {
            let _ = tx.send(format!("read {}", p.display()));
            if let Ok(f) = fs::File::open(&p) {
                let mut buf = Vec::new();
                let _ = f.take(1 << 20).read_to_end(&mut buf);
            }
        }
    }
}

#[test]
fn damaged_backing_trees_never_hang_or_crash_the_daemon() {
    let Some((mut m, _id)) = encrypted_volume_made_with(&["--contents-layout=extent"]) else {
        return;
    };
    // Encrypted: per-extent files (one overwritten), a long name, a symlink, a FIFO, a subdir.
    fs::write(m.path("enc/f"), pattern(1, 9000)).unwrap();
    fs::write(m.path("enc/f2"), pattern(2, 100)).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(m.path("enc/f"))
            .unwrap();
        f.write_all_at(&pattern(3, 5000), 4096).unwrap();
    }
    fs::write(m.path(&format!("enc/{}", "L".repeat(220))), b"long").unwrap();
    std::os::unix::fs::symlink("some/target", m.path("enc/link")).unwrap();
    mkfifo(&m.path("enc/fifo"));
    fs::create_dir(m.path("enc/sub")).unwrap();
    fs::write(m.path("enc/sub/inner"), b"inner").unwrap();
    // Unencrypted: per-file layout, an escaped name, a symlink, a FIFO.
    fs::create_dir(m.path("plain")).unwrap();
    fs::write(m.path("plain/p"), pattern(4, 7000)).unwrap();
    fs::write(m.path("plain/.fscryptfs-user"), b"escaped").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", m.path("plain/link")).unwrap();
    mkfifo(&m.path("plain/fifo"));
    m.stop();

    let rounds = env_u64("FSCRYPTFS_FUZZ_TREE_ROUNDS", 4);
    let seed = env_u64("FSCRYPTFS_FUZZ_SEED", 0x5eed_f00d);
    let pristine = m.backing.clone();
    let work = m.tmp.path().join("work");
    let mnt = m.tmp.path().join("fuzzmnt");
    fs::create_dir(&mnt).unwrap();
    let start = Instant::now();
    let (mut ops, mut errors) = (0u64, 0u64);
    for round in 0..rounds {
        let mut rng = Rng(seed.wrapping_add(round).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let _ = fs::remove_dir_all(&work);
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&pristine)
            .arg(&work)
            .status()
            .unwrap()
            .success());
        let mut t = Vec::new();
        targets(&work, true, &mut t);
        t.sort();
        let mut done = Vec::new();
        for _ in 0..=rng.below(4) {
            let p = t[rng.below(t.len() as u64) as usize].clone();
            done.push(damage(&p, &mut rng));
        }
        let ctx = format!("round {round} (seed {seed}): {done:?}");
        let mut fm = mount_backing(&work, &mnt, "");
        // With the key, encrypted contents and names are read too (it may fail on a damaged
        // root; the walk then sees no-key names).
        let _ = add_key(&mnt, &KEY);
        let (tx, rx) = mpsc::channel();
        let root = mnt.clone();
        let walker = std::thread::spawn(move || walk(&root, &tx));
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(_) => ops += 1,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Unmounts (lazily) and kills the daemon, which unblocks the walker.
                    fm.stop();
                    panic!(
                        "an operation hung for 10 s: {ctx}\n{}",
                        tail(&fm.log_text(), 50)
                    );
                }
            }
        }
        walker.join().unwrap();
        assert!(
            fm.wait_exit(Duration::ZERO).is_none(),
            "the daemon died: {ctx}\n{}",
            tail(&fm.log_text(), 50)
        );
        assert!(
            fs::metadata(&mnt).is_ok(),
            "the mount stopped answering: {ctx}"
        );
        let log = fm.log_text();
        errors += log.lines().filter(|l| l.contains(" ERROR ")).count() as u64;
        assert!(
            !log.contains("panicked"),
            "the daemon panicked: {ctx}\n{}",
            tail(&log, 50)
        );
        fm.stop();
    }
    eprintln!(
        "fuzz_tree: {rounds} rounds, {ops} operations, {errors} daemon error lines, {:?}",
        start.elapsed()
    );
}
