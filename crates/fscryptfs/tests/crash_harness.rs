//! Crash harness (issue 5 item 6): a seeded random workload in an encrypted directory — writes,
//! overwrites, truncates, fsync/fdatasync, renames, copy_file_range, close and reopen — runs in a
//! thread against the mount while the test keeps a model; the daemon is killed with SIGKILL at a
//! random point, the dead mount is detached (`fusermount3 -uz`), `fscryptfs fsck` must pass on the
//! backing directory (exit 0; notes are fine), the same backing directory is mounted again, and
//! every file is checked against the model. One volume continues across all kills.
//!
//! The model, per file: the state at its last successful fsync (durable) and every state since
//! (one per modifying operation, including one in flight when the daemon died — it may have been
//! carried out or not). After a kill:
//! - a file with no modifying operation since its last fsync reads exactly its durable state;
//! - otherwise every data unit (4096 bytes, zero-extended past the end) equals that unit in one of
//!   the possible states — old or new per unit, never garbage — and the size is the size of one of
//!   the states or (extent layout) a record boundary: the writeout appends one extent per run of
//!   buffered units, in offset order, each growing the size to its run's unit-aligned end at most
//!   (FORMAT.md "Recovery and the ordering argument": a crash keeps a prefix of the records), so a
//!   unit-aligned size no larger than the largest possible size is allowed;
//! - every file exists under exactly one of its two names (the name after its last acknowledged
//!   rename, or either while a rename was in flight).
//!
//! After the check, every file is fsynced through the new mount, so what was read becomes the
//! durable state for the next round.
//!
//! `FSCRYPTFS_CRASH_KILLS` sets the number of kills (default 50 for the extent layout, 15 for the
//! per-file layout); `FSCRYPTFS_CRASH_SEED` replays a run (the seed is printed).
//!
//! The per-file layout has the weaker promise (DESIGN.md): fsynced, untouched files are intact and
//! other files undamaged; a unit being written may be torn. Its variant checks untouched files
//! exactly and only counts (and prints) units of touched files that match no state.

mod support;

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const DU: usize = 4096;
const NFILES: usize = 6;
const MAX_SIZE: usize = 128 * 1024;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// An offset: unit-aligned half of the time.
    fn offset(&mut self, max: usize) -> usize {
        let o = self.below(max + 1);
        if self.chance(50) {
            o / DU * DU
        } else {
            o
        }
    }
    /// A length: whole units half of the time.
    fn length(&mut self, max: usize) -> usize {
        let l = 1 + self.below(max);
        if self.chance(50) && l >= DU {
            l / DU * DU
        } else {
            l
        }
    }
}

/// One file of the model.
#[derive(Clone)]
struct FileModel {
    /// The two names it alternates between.
    names: [String; 2],
    /// Index of its current name.
    name: usize,
    /// A rename was in flight at the kill: either name is fine.
    rename_in_flight: bool,
    /// `states[0]` is the durable state; every later one a state since (the last possibly in
    /// flight).
    states: Vec<Vec<u8>>,
}

impl FileModel {
    fn cur(&self) -> &Vec<u8> {
        self.states.last().expect("a state")
    }
}

fn units(b: &[u8], u: usize) -> [u8; DU] {
    let mut out = [0u8; DU];
    let lo = (u * DU).min(b.len());
    let hi = ((u + 1) * DU).min(b.len());
    out[..hi - lo].copy_from_slice(&b[lo..hi]);
    out
}

fn sys<T: Into<i64> + Copy>(r: T) -> std::io::Result<T> {
    if r.into() < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The workload: random operations until one fails (the daemon died) or `stop` is set. Returns
/// the model and the number of completed operations.
fn workload(
    dir: PathBuf,
    mut model: Vec<FileModel>,
    seed: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<FileModel>, usize) {
    let mut rng = Rng(seed);
    let mut handles: Vec<Option<File>> = (0..model.len()).map(|_| None).collect();
    let mut done = 0usize;
    let trace = std::env::var_os("FSCRYPTFS_CRASH_TRACE").is_some();
    let open = |m: &FileModel| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(&m.names[m.name]))
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let k = rng.below(model.len());
        if handles[k].is_none() {
            match open(&model[k]) {
                Ok(f) => handles[k] = Some(f),
                Err(_) => break,
            }
        }
        let op = rng.below(100);
        let r: std::io::Result<()> = if op < 45 {
            // write / overwrite
            let off = rng.offset(MAX_SIZE - 1);
            let len = rng.length((MAX_SIZE - off).min(48 * 1024));
            let data = rng.bytes(len);
            let mut next = model[k].cur().clone();
            if next.len() < off + len {
                next.resize(off + len, 0);
            }
            next[off..off + len].copy_from_slice(&data);
            model[k].states.push(next);
            handles[k].as_ref().unwrap().write_all_at(&data, off as u64)
        } else if op < 55 {
            // truncate (down or up)
            let new = if rng.chance(30) {
                rng.offset(MAX_SIZE)
            } else {
                rng.below(model[k].cur().len() + 1)
            };
            let mut next = model[k].cur().clone();
            next.resize(new, 0);
            model[k].states.push(next);
            handles[k].as_ref().unwrap().set_len(new as u64)
        } else if op < 65 {
            // fsync / fdatasync: on success, the current state is durable
            let f = handles[k].as_ref().unwrap();
            let r = if rng.chance(50) {
                f.sync_all()
            } else {
                f.sync_data()
            };
            if r.is_ok() {
                let cur = model[k].cur().clone();
                model[k].states = vec![cur];
            }
            r
        } else if op < 73 {
            // rename to the other name (the target never exists)
            let m = &mut model[k];
            let (from, to) = (dir.join(&m.names[m.name]), dir.join(&m.names[1 - m.name]));
            m.rename_in_flight = true;
            let r = fs::rename(from, to);
            if r.is_ok() {
                m.name = 1 - m.name;
                m.rename_in_flight = false;
            }
            r
        } else if op < 93 {
            // copy_file_range from another file (or the same one, non-overlapping)
            let s = rng.below(model.len());
            if handles[s].is_none() {
                match open(&model[s]) {
                    Ok(f) => handles[s] = Some(f),
                    Err(_) => break,
                }
            }
            let src = model[s].cur().clone();
            if src.is_empty() {
                continue;
            }
            if trace {
                eprintln!("copy from file {s} to file {k}");
            }
            let aligned = rng.chance(60);
            let mut off_in = rng.offset(src.len() - 1);
            let mut off_out = rng.offset(MAX_SIZE - 1);
            if aligned {
                off_in = off_in / DU * DU;
                off_out = off_out / DU * DU;
            }
            let mut len = rng.length((src.len() - off_in).min(MAX_SIZE - off_out).min(64 * 1024));
            if s == k && off_in < off_out + len && off_out < off_in + len {
                // overlapping ranges in one file are EINVAL: copy to right after the source
                off_out = off_in + len;
                if off_out >= MAX_SIZE {
                    continue;
                }
                len = len.min(MAX_SIZE - off_out);
            }
            let mut next = model[k].cur().clone();
            if next.len() < off_out + len {
                next.resize(off_out + len, 0);
            }
            next[off_out..off_out + len].copy_from_slice(&src[off_in..off_in + len]);
            model[k].states.push(next);
            let (mut i, mut o) = (off_in as i64, off_out as i64);
            let sf = handles[s].as_ref().unwrap().as_raw_fd();
            let df = handles[k].as_ref().unwrap().as_raw_fd();
            // SAFETY: valid descriptors and offset pointers.
            let r = sys(unsafe { libc::copy_file_range(sf, &mut i, df, &mut o, len, 0) } as i64);
            match r {
                Ok(n) if n as usize == len => Ok(()),
                Ok(n) => {
                    // A short copy: the state is what was copied.
                    let n = n as usize;
                    let mut next = model[k].states[model[k].states.len() - 2].clone();
                    if n > 0 {
                        if next.len() < off_out + n {
                            next.resize(off_out + n, 0);
                        }
                        next[off_out..off_out + n].copy_from_slice(&src[off_in..off_in + n]);
                    }
                    *model[k].states.last_mut().unwrap() = next;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            // close (FLUSH and RELEASE write the buffer out) and reopen later
            handles[k] = None;
            Ok(())
        };
        if trace {
            eprintln!(
                "op {done}: file {k} kind {op}: {r:?}; states {:?}",
                model[k].states.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
        if r.is_err() {
            break;
        }
        done += 1;
    }
    (model, done)
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `fscryptfs fsck BACKING`; panics unless it exits 0.
fn fsck(backing: &std::path::Path, when: &str) -> usize {
    let out = Command::new(bin())
        .arg("fsck")
        .arg(backing)
        .output()
        .expect("run fsck");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0),
        "fsck {when}: {:?}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let notes: Vec<&str> = text.lines().filter(|l| l.contains(": note: ")).collect();
    if std::env::var_os("FSCRYPTFS_CRASH_VERBOSE").is_some() {
        for n in &notes {
            eprintln!("fsck {when}: {n}");
        }
    }
    notes.len()
}

struct Outcome {
    kills: usize,
    ops: usize,
    torn_units: usize,
    odd_sizes: usize,
    notes: usize,
    touched: usize,
}

fn harness(init: &[&str], default_kills: u64, strict: bool) -> Option<Outcome> {
    let seed = env_num("FSCRYPTFS_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let kills = env_num("FSCRYPTFS_CRASH_KILLS").unwrap_or(default_kills) as usize;
    eprintln!("crash harness {init:?}: FSCRYPTFS_CRASH_SEED={seed} FSCRYPTFS_CRASH_KILLS={kills}");
    let mut m = mount_volume(init, "")?;
    let enc = m.path("enc");
    fs::create_dir(&enc).expect("mkdir enc");
    let id = add_key(&m.mnt, &KEY).expect("add key");
    set_policy(&enc, &policy_v2(&id)).expect("set policy");

    let mut rng = Rng(seed);
    let mut model: Vec<FileModel> = (0..NFILES)
        .map(|k| {
            // Every third file has a long second name (a side file in the backing store).
            let long = format!("long-{k}-{}", "x".repeat(180));
            let names = [
                format!("f{k}"),
                if k % 3 == 0 { long } else { format!("g{k}") },
            ];
            let len = rng.below(MAX_SIZE / 2);
            let data = rng.bytes(len);
            let f = File::create(enc.join(&names[0])).expect("create");
            f.write_all_at(&data, 0).expect("write");
            f.sync_all().expect("fsync");
            FileModel {
                names,
                name: 0,
                rename_in_flight: false,
                states: vec![data],
            }
        })
        .collect();
    File::open(&enc).unwrap().sync_all().unwrap();

    let start = Instant::now();
    let mut out = Outcome {
        kills: 0,
        ops: 0,
        torn_units: 0,
        odd_sizes: 0,
        notes: 0,
        touched: 0,
    };
    for round in 0..kills {
        let wseed = rng.next();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dir, mdl, st) = (enc.clone(), model.clone(), stop.clone());
        let worker = std::thread::spawn(move || workload(dir, mdl, wseed, st));
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(60_000) as u64));
        m.signal(libc::SIGKILL);
        let status = m.wait_exit(Duration::from_secs(10));
        assert!(status.is_some(), "round {round}: the daemon did not die");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (after, ops) = worker.join().expect("workload thread");
        model = after;
        out.ops += ops;
        out.kills += 1;
        let st = Command::new("fusermount3")
            .arg("-uz")
            .arg(&m.mnt)
            .status()
            .expect("fusermount3");
        assert!(st.success(), "round {round}: fusermount3 -uz");

        out.notes += fsck(&m.backing, &format!("after kill {round} (seed {seed})"));
        m.start_again("");
        add_key(&m.mnt, &KEY).expect("re-add key");

        for (k, f) in model.iter_mut().enumerate() {
            let ctx = format!("round {round} (seed {seed}), file {k}");
            let here: Vec<bool> = f.names.iter().map(|n| enc.join(n).exists()).collect();
            assert!(
                here[0] != here[1],
                "{ctx}: exists under {here:?} of {:?}",
                f.names
            );
            let at = usize::from(here[1]);
            assert!(
                at == f.name || f.rename_in_flight,
                "{ctx}: found under {} after an acknowledged rename to {}",
                f.names[at],
                f.names[f.name]
            );
            f.name = at;
            f.rename_in_flight = false;
            let p = enc.join(&f.names[at]);
            let got = fs::read(&p).unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
            if f.states.len() == 1 {
                let want = &f.states[0];
                assert_eq!(got.len(), want.len(), "{ctx}: size of an untouched file");
                if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                    let zeros = got[i..].iter().take_while(|&&b| b == 0).count();
                    panic!(
                        "{ctx}: untouched fsynced file (size {}) differs at byte {i}; {zeros} zero \
                         bytes read from there",
                        want.len()
                    );
                }
            } else {
                out.touched += 1;
                let sizes: Vec<usize> = f.states.iter().map(Vec::len).collect();
                let max = *sizes.iter().max().unwrap();
                if !sizes.contains(&got.len()) {
                    let boundary = got.len() % DU == 0 && got.len() <= max.div_ceil(DU) * DU;
                    assert!(
                        boundary || !strict,
                        "{ctx}: size {} is none of the possible sizes {sizes:?}",
                        got.len()
                    );
                    eprintln!(
                        "{ctx}: size {} is a record boundary, not one of {sizes:?}",
                        got.len()
                    );
                    out.odd_sizes += 1;
                }
                for u in 0..got.len().div_ceil(DU) {
                    let g = units(&got, u);
                    let hi = ((u + 1) * DU).min(got.len()) - u * DU;
                    if !f.states.iter().any(|s| units(s, u)[..hi] == g[..hi]) {
                        assert!(
                            !strict,
                            "{ctx}: data unit {u} (size {}) is none of its {} possible contents",
                            got.len(),
                            f.states.len()
                        );
                        out.torn_units += 1;
                    }
                }
            }
            // What was read becomes the durable state.
            OpenOptions::new()
                .write(true)
                .open(&p)
                .and_then(|h| h.sync_all())
                .unwrap_or_else(|e| panic!("{ctx}: fsync: {e}"));
            f.states = vec![got];
        }
    }
    m.stop();
    out.notes += fsck(&m.backing, &format!("at the end (seed {seed})"));
    eprintln!(
        "crash harness {init:?}: seed {seed}: {} kills, {} operations, {} files checked with unsynced changes, {} odd sizes, {} torn units, \
         {} fsck notes, {:.1} s",
        out.kills,
        out.ops,
        out.touched,
        out.odd_sizes,
        out.torn_units,
        out.notes,
        start.elapsed().as_secs_f64()
    );
    Some(out)
}

#[test]
fn extent_layout_survives_sigkill() {
    let Some(out) = harness(&["--contents-layout=extent"], 50, true) else {
        return;
    };
    assert_eq!(out.torn_units, 0);
    assert!(out.ops > 0, "the workload ran");
}

#[test]
fn per_file_layout_keeps_fsynced_files_across_sigkill() {
    let Some(out) = harness(&[], 15, false) else {
        return;
    };
    assert!(out.ops > 0, "the workload ran");
}
