//! Tests of the per-extent engine with temporary files: random operations against an in-memory
//! model, (key, IV) uniqueness, decryption with the layer's `ExtentKey` alone, crash simulation by
//! cutting and damaging the log, the compaction bound, and context validation.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::keysetup::MasterSecret;
use fscrypt::policy::{Policy, PolicyV2};
use fscrypt::{EncryptionMode, Errno, Result};

use super::format::{encode_base_header, COMMIT_SLOTS};
use super::{ExtentFile, LogFile, COMPACT_SLACK};
use crate::store::read_full_at;

pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub(super) fn master(seed: u8) -> MasterSecret {
    MasterSecret::new_v2(&[seed; 64]).unwrap()
}

pub(super) fn policy_for(m: &MasterSecret, log2_du: u8, mode: EncryptionMode) -> Policy {
    let filenames = if mode == EncryptionMode::Adiantum {
        EncryptionMode::Adiantum
    } else {
        EncryptionMode::Aes256Cts
    };
    Policy::V2(PolicyV2 {
        contents_mode: mode,
        filenames_mode: filenames,
        flags: 2,
        log2_data_unit_size: log2_du,
        master_key_identifier: m.identifier().unwrap(),
    })
}

pub(super) fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

pub(super) fn create(path: &Path, policy: &Policy) -> ExtentFile {
    ExtentFile::create(open_rw(path), 100, &Context::new_random(*policy).unwrap()).unwrap()
}

/// A new, empty per-extent file `f` in a fresh temporary directory, under a policy of the master key
/// `master(seed)` with AES-256-XTS and data units of 4096 bytes: (key, directory, path, file).
pub(super) fn new_xts_file(seed: u8) -> (MasterSecret, tempfile::TempDir, PathBuf, ExtentFile) {
    let m = master(seed);
    let policy = policy_for(&m, 12, EncryptionMode::Aes256Xts);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let ef = create(&path, &policy);
    (m, dir, path, ef)
}

/// Flips one bit of the byte at `off` of the file at `path` (flipping it again restores it).
pub(super) fn flip(path: &Path, off: u64) {
    let f = open_rw(path);
    let mut x = [0u8; 1];
    f.read_exact_at(&mut x, off).unwrap();
    f.write_all_at(&[x[0] ^ 0x20], off).unwrap();
}

pub(super) fn reopen(ef: &ExtentFile) -> ExtentFile {
    ExtentFile::open(
        ef.file().unwrap().try_clone().unwrap(),
        &ef.policy,
        ef.du as usize,
    )
    .unwrap()
}

pub(super) fn write(ef: &mut ExtentFile, m: &MasterSecret, off: u64, data: &[u8]) {
    let ctx = ExtentContext::new_random(&ef.policy).unwrap();
    let key = ExtentKey::derive(m, &ctx).unwrap();
    ef.write_extent(off, data, &ctx, &key).unwrap();
}

pub(super) fn read_at(ef: &ExtentFile, m: &MasterSecret, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0xeeu8; len];
    let n = ef.read(off, &mut b, |c| ExtentKey::derive(m, c)).unwrap();
    b.truncate(n);
    b
}

pub(super) fn read_all(ef: &ExtentFile, m: &MasterSecret) -> Vec<u8> {
    read_at(ef, m, 0, ef.logical_size() as usize)
}

/// A log file to be opened at first use from an `O_PATH` descriptor of `path` (a recalled log).
pub(super) fn deferred_log(path: &Path) -> LogFile {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
    let st = rustix::fs::fstat(&fd).unwrap();
    LogFile::deferred(
        std::sync::Arc::new(fd),
        st,
        crate::store::io::Access::ReadWriteOrRead,
    )
}

/// Compacts into a new file and renames it over `path`, as the filesystem would.
pub(super) fn compact(ef: &ExtentFile, path: &Path) -> ExtentFile {
    let tmp = path.with_extension("compact");
    let new = ef.compact_into(open_rw(&tmp)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    new
}

/// Every stored unit: (nonce, IV index) must never encrypt two different ciphertexts.
fn assert_no_key_iv_reuse(files: &[&ExtentFile]) {
    let mut seen: HashMap<([u8; 16], u64), Vec<u8>> = HashMap::new();
    for ef in files {
        for run in &ef.runs {
            let mut ct = vec![0u8; (run.nunits * ef.du) as usize];
            read_full_at(ef.file().unwrap(), &mut ct, run.data_off).unwrap();
            for (k, unit) in ct.chunks(ef.du as usize).enumerate() {
                let id = (run.ctx.nonce, run.first_unit + k as u64);
                if let Some(prev) = seen.insert(id, unit.to_vec()) {
                    assert_eq!(prev, unit, "(key, IV) {id:?} used for two different units");
                }
            }
        }
    }
}

/// Random write / overwrite / truncate / punch / clone / sync / reopen / compact sequences on two
/// files, compared with byte vectors after every step.
fn model_run(seed: u64, log2_du: u8, steps: usize) {
    let m = master(7);
    let policy = policy_for(&m, log2_du, EncryptionMode::Aes256Xts);
    let du = 1u64 << if log2_du == 0 { 12 } else { log2_du };
    let dir = tempfile::tempdir().unwrap();
    let paths = [dir.path().join("a"), dir.path().join("b")];
    let mut files = [create(&paths[0], &policy), create(&paths[1], &policy)];
    let mut models = [Vec::<u8>::new(), Vec::<u8>::new()];
    let mut rng = Rng(seed);
    let max_units = 48;
    let mut from_snapshots = 0;
    for step in 0..steps {
        let t = rng.below(2) as usize;
        let op = rng.below(12);
        let size = models[t].len() as u64;
        let what = match op {
            0..=3 => {
                let (off, len) = if rng.below(3) == 0 {
                    let off = size / du * du;
                    (off, size - off + 1 + rng.below(2 * du))
                } else {
                    (rng.below(max_units) * du, (1 + rng.below(8)) * du)
                };
                let data = rng.bytes(len as usize);
                write(&mut files[t], &m, off, &data);
                let end = (off + len) as usize;
                if models[t].len() < end {
                    models[t].resize(end, 0);
                }
                models[t][off as usize..end].copy_from_slice(&data);
                format!("write {off}+{len}")
            }
            4 => {
                let len = rng.below(max_units * du + du);
                files[t].truncate(len).unwrap();
                models[t].resize(len as usize, 0);
                format!("truncate {len}")
            }
            5 => {
                let off = rng.below(max_units) * du;
                let len = rng.below(8) * du;
                files[t].punch_hole(off, len).unwrap();
                let s = models[t].len();
                let (a, b) = ((off as usize).min(s), ((off + len) as usize).min(s));
                models[t][a..b].fill(0);
                format!("punch {off}+{len}")
            }
            6 | 7 => {
                let within = op == 7;
                let s = if within { t } else { 1 - t };
                let src_off = rng.below(max_units) * du;
                let dst_off = rng.below(max_units) * du;
                let len = (1 + rng.below(16)) * du;
                let src_model = models[s].clone();
                let res = if within {
                    files[t].clone_within(src_off, dst_off, len)
                } else {
                    let (x, y) = files.split_at_mut(1);
                    if t == 0 {
                        x[0].clone_range(&y[0], src_off, dst_off, len)
                    } else {
                        y[0].clone_range(&x[0], src_off, dst_off, len)
                    }
                };
                let n = if src_off >= src_model.len() as u64 {
                    0
                } else {
                    len.min(src_model.len() as u64 - src_off)
                };
                if n % du != 0 && dst_off + n < models[t].len() as u64 {
                    assert_eq!(res.unwrap_err().errno(), Errno::INVAL);
                } else {
                    assert_eq!(res.unwrap(), n);
                    if n > 0 {
                        let end = (dst_off + n) as usize;
                        if models[t].len() < end {
                            models[t].resize(end, 0);
                        }
                        models[t][dst_off as usize..end]
                            .copy_from_slice(&src_model[src_off as usize..(src_off + n) as usize]);
                    }
                }
                format!(
                    "clone{} {src_off}->{dst_off}+{len}",
                    if within { "-within" } else { "" }
                )
            }
            8 => {
                files[t].sync().unwrap();
                "sync".into()
            }
            9 => {
                // Every other reopen goes through a snapshot of a fresh replay, put back on the
                // unchanged file (what a lookup of an evicted file does): it must carry on exactly
                // as the replay would, on the file opened or (half of them) on an `O_PATH`
                // descriptor of it, opened at the first read or write.
                let g = reopen(&files[t]);
                match g.snapshot().filter(|_| rng.below(2) == 0) {
                    Some(snap) => {
                        let log = if rng.below(2) == 0 {
                            LogFile::opened(g.file().unwrap().try_clone().unwrap())
                        } else {
                            deferred_log(&paths[t])
                        };
                        files[t] = ExtentFile::from_snapshot(log, snap);
                        from_snapshots += 1;
                        "reopen from a snapshot".into()
                    }
                    None => {
                        files[t] = g;
                        "reopen".into()
                    }
                }
            }
            10 => {
                files[t] = compact(&files[t], &paths[t]);
                "compact".into()
            }
            _ => {
                let off = rng.below(size + 10);
                let len = rng.below(3 * du) as usize;
                let got = read_at(&files[t], &m, off, len);
                let end = (off as usize + len).min(models[t].len());
                let want = models[t].get(off as usize..end).unwrap_or(&[]);
                assert_eq!(
                    got, want,
                    "seed {seed} step {step}: partial read {off}+{len}"
                );
                "read".into()
            }
        };
        assert_eq!(
            files[t].logical_size(),
            models[t].len() as u64,
            "seed {seed} step {step}: {what}"
        );
        assert!(
            read_all(&files[t], &m) == models[t],
            "seed {seed} step {step}: contents differ after {what}"
        );
    }
    for (i, f) in files.iter().enumerate() {
        let g = reopen(f);
        assert!(read_all(&g, &m) == models[i], "seed {seed}: after reopen");
        let problems: Vec<_> = g.check().unwrap().into_iter().filter(|f| !f.note).collect();
        assert!(problems.is_empty(), "{problems:?}");
    }
    assert_no_key_iv_reuse(&[&files[0], &files[1]]);
    assert!(
        from_snapshots > 0,
        "seed {seed}: no reopen went through a snapshot"
    );
}

#[test]
fn random_operations_match_the_model_4096() {
    for seed in [1, 2, 3] {
        model_run(0x9e37_79b9_7f4a_7c15 ^ seed, 0, 150);
    }
}

#[test]
fn random_operations_match_the_model_512() {
    for seed in [4, 5, 6] {
        model_run(0x2545_f491_4f6c_dd1d ^ seed, 9, 150);
    }
}

#[test]
fn nonces_are_fresh_and_reuse_is_refused() {
    let m = master(1);
    let policy = policy_for(&m, 0, EncryptionMode::Aes256Xts);
    let dir = tempfile::tempdir().unwrap();
    let mut ef = create(&dir.path().join("f"), &policy);
    for i in 0..40u64 {
        write(&mut ef, &m, (i % 5) * 4096, &[i as u8; 4096]);
    }
    let nonces: HashSet<_> = ef.runs.iter().map(|r| r.ctx.nonce).collect();
    assert_eq!(nonces.len(), 40, "every write-out drew its own nonce");
    // Writing again with a context already in the file would reuse (key, IV 0..).
    let ctx = ef.runs[3].ctx;
    let key = ExtentKey::derive(&m, &ctx).unwrap();
    let e = ef.write_extent(0, &[1; 4096], &ctx, &key).unwrap_err();
    assert_eq!(e.errno(), Errno::INVAL);
    // A context of another master key is refused as well.
    let other = master(2);
    let octx =
        ExtentContext::new_random(&policy_for(&other, 0, EncryptionMode::Aes256Xts)).unwrap();
    let okey = ExtentKey::derive(&other, &octx).unwrap();
    assert_eq!(
        ef.write_extent(0, &[1; 4096], &octx, &okey)
            .unwrap_err()
            .errno(),
        Errno::INVAL
    );
    assert_no_key_iv_reuse(&[&ef]);
}

#[test]
fn stored_units_decrypt_with_the_layers_extent_key() {
    for (log2_du, mode) in [
        (0, EncryptionMode::Aes256Xts),
        (9, EncryptionMode::Aes256Xts),
        (0, EncryptionMode::Adiantum),
    ] {
        let m = master(3);
        let policy = policy_for(&m, log2_du, mode);
        let du = if log2_du == 0 { 4096 } else { 1 << log2_du };
        let dir = tempfile::tempdir().unwrap();
        let mut a = create(&dir.path().join("a"), &policy);
        let mut b = create(&dir.path().join("b"), &policy);
        let data: Vec<u8> = (0..3 * du).map(|i| (i * 7 + 1) as u8).collect();
        write(&mut a, &m, 2 * du as u64, &data);
        // Clone the second and third units to offset 0 of b: IVs still count from the extent start.
        assert_eq!(
            b.clone_range(&a, 3 * du as u64, 0, 2 * du as u64).unwrap(),
            2 * du as u64
        );
        for (ef, want, first) in [(&a, &data[..], 0u64), (&b, &data[du..], 1)] {
            let x = ef.extents();
            assert_eq!(x.len(), 1);
            assert_eq!(x[0].first_unit, first);
            // What `fscryptfs crypt --kdf=HKDF-SHA512 --extent-nonce N --data-unit-index first`
            // takes: the raw stored bytes, the extent nonce, the index.
            let mut raw = std::fs::read(ef.backing_path()).unwrap()[x[0].backing_offset as usize..]
                [..want.len()]
                .to_vec();
            let key = ExtentKey::derive(&m, &x[0].ctx).unwrap();
            key.decrypt_units(x[0].first_unit, du, &mut raw).unwrap();
            assert_eq!(raw, want, "{mode} du {du}");
        }
    }
}

#[test]
fn a_context_that_does_not_match_the_policy_is_euclean() {
    let m = master(4);
    let good = policy_for(&m, 0, EncryptionMode::Aes256Xts);
    let other_key = policy_for(&master(5), 0, EncryptionMode::Aes256Xts);
    let other_mode = policy_for(&m, 0, EncryptionMode::Adiantum);
    for wrong in [other_key, other_mode] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut ef = create(&path, &good);
        write(&mut ef, &m, 0, &[9; 5000]);
        ef.sync().unwrap();
        // The file header now claims `wrong`; the stored extent still carries `good`'s context.
        let hdr = encode_base_header(100, 0, &Context::new_random(wrong).unwrap());
        ef.file().unwrap().write_all_at(&hdr, 0).unwrap();
        let e = ExtentFile::open(open_rw(&path), &wrong, 4096)
            .err()
            .unwrap();
        assert_eq!(e.errno(), Errno::UCLEAN);
        assert!(e.message().contains("backing offset 4096"), "{e}");
        assert!(e.message().contains(&path.display().to_string()), "{e}");
    }
}

/// Copies the first `len` bytes of `bytes` into `path` and opens it; the content or the error.
fn open_prefix(path: &Path, bytes: &[u8], policy: &Policy, m: &MasterSecret) -> Result<Vec<u8>> {
    std::fs::write(path, bytes).unwrap();
    let du = 1usize << policy.data_unit_bits(&crate::store::fs_params());
    let ef = ExtentFile::open(open_rw(path), policy, du)?;
    let mut b = vec![0u8; ef.logical_size() as usize];
    ef.read(0, &mut b, |c| ExtentKey::derive(m, c))?;
    Ok(b)
}

/// Per data unit, `got` equals `old` or `new` (beyond either's size reads as zeros).
fn per_unit_old_or_new(got: &[u8], old: &[u8], new: &[u8], du: usize, what: &str) {
    let at = |v: &[u8], i: usize| -> Vec<u8> {
        (i..i + du)
            .map(|j| v.get(j).copied().unwrap_or(0))
            .collect()
    };
    let n = got.len().max(old.len()).max(new.len());
    for i in (0..n).step_by(du) {
        let g = at(got, i);
        assert!(
            g == at(old, i) || g == at(new, i),
            "{what}: unit at {i} is neither old nor new data"
        );
    }
}

#[test]
fn crash_at_every_byte_of_the_last_write_recovers_old_or_new() {
    let m = master(6);
    let policy = policy_for(&m, 9, EncryptionMode::Aes256Xts);
    let du = 512usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut ef = create(&path, &policy);
    write(&mut ef, &m, 0, &[1; 4 * 512]);
    write(&mut ef, &m, 4 * 512, &[2; 3 * 512 + 100]);
    ef.sync().unwrap();
    let old = read_all(&ef, &m);
    let before = std::fs::read(&path).unwrap();
    // The last write: an overwrite of units 1..3 (not yet fsynced).
    write(&mut ef, &m, 512, &[3; 2 * 512]);
    let new = read_all(&ef, &m);
    let after = std::fs::read(&path).unwrap();
    assert!(after.len() > before.len());
    let crash = dir.path().join("crash");
    let mut seen_new = 0;
    for cut in before.len()..=after.len() {
        let got = open_prefix(&crash, &after[..cut], &policy, &m).unwrap();
        assert!(got == old || got == new, "cut at {cut}");
        seen_new += usize::from(got == new);
    }
    assert!(seen_new >= 1, "the complete record must be kept");
    // Damage: one flipped byte anywhere in the new record (header block, payload, padding).
    let mut flipped_new = 0;
    for pos in (before.len()..after.len()).step_by(7) {
        let mut bad = after.clone();
        bad[pos] ^= 0x40;
        let got = open_prefix(&crash, &bad, &policy, &m).unwrap();
        per_unit_old_or_new(&got, &old, &new, du, &format!("flip at {pos}"));
        assert!(got == old || got == new);
        flipped_new += usize::from(got == new);
    }
    eprintln!(
        "crash: {} cuts, {flipped_new} flips landed in unchecked padding",
        after.len() - before.len() + 1
    );
    // After recovery from a torn tail, new writes go where the tail was and survive a reopen.
    std::fs::write(&crash, &after[..after.len() - 100]).unwrap();
    let mut rec = ExtentFile::open(open_rw(&crash), &policy, du).unwrap();
    assert_eq!(read_all(&rec, &m), old);
    write(&mut rec, &m, 0, &[4; 512]);
    rec.sync().unwrap();
    let mut want = old.clone();
    want[..512].fill(4);
    assert_eq!(read_all(&reopen(&rec), &m), want);
    assert!(rec.check().unwrap().is_empty());
}

#[test]
fn crash_inside_a_clone_or_truncate_is_old_or_new_per_unit() {
    let m = master(8);
    let policy = policy_for(&m, 9, EncryptionMode::Aes256Xts);
    let du = 512usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut src = create(&dir.path().join("src"), &policy);
    write(&mut src, &m, 0, &[5; 2 * 512]);
    write(&mut src, &m, 4 * 512, &[6; 2 * 512]);
    let mut ef = create(&path, &policy);
    write(&mut ef, &m, 0, &[1; 10 * 512]);
    ef.sync().unwrap();
    let old = read_all(&ef, &m);
    let before = std::fs::read(&path).unwrap();
    // Extent, hole, extent: several records.
    ef.clone_range(&src, 0, 2 * 512, 6 * 512).unwrap();
    ef.truncate(9 * 512 + 17).unwrap();
    let new = read_all(&ef, &m);
    let after = std::fs::read(&path).unwrap();
    let mid_clone = {
        let mut v = old.clone();
        v[2 * 512..8 * 512].copy_from_slice(&read_all(&src, &m)[..6 * 512]);
        v
    };
    let crash = dir.path().join("crash");
    for cut in (before.len()..=after.len())
        .step_by(61)
        .chain([after.len()])
    {
        let got = open_prefix(&crash, &after[..cut], &policy, &m).unwrap();
        // Units are old or cloned data; the size is old or truncated.
        if got != new {
            assert_eq!(got.len(), old.len(), "cut at {cut}");
            per_unit_old_or_new(&got, &old, &mid_clone, du, &format!("cut at {cut}"));
        }
    }
}

#[test]
fn a_torn_commit_slot_falls_back_and_damaged_committed_data_is_euclean() {
    let m = master(9);
    let policy = policy_for(&m, 0, EncryptionMode::Aes256Xts);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut ef = create(&path, &policy);
    write(&mut ef, &m, 0, &[1; 8192]);
    ef.sync().unwrap();
    write(&mut ef, &m, 4096, &[2; 4096]);
    ef.sync().unwrap();
    let want = read_all(&ef, &m);
    let good = std::fs::read(&path).unwrap();
    let crash = dir.path().join("crash");
    // The slot of the latest commit torn (as if that write had not completed): the other slot holds
    // the previous commit and the later record is verified as a tail.
    let latest = COMMIT_SLOTS[(ef.gen % 2) as usize] as usize;
    let mut torn = good.clone();
    torn[latest + 20] ^= 1;
    assert_eq!(open_prefix(&crash, &torn, &policy, &m).unwrap(), want);
    // Both slots gone: everything is verified as a tail.
    let mut none = good.clone();
    none[128..256].fill(0);
    assert_eq!(open_prefix(&crash, &none, &policy, &m).unwrap(), want);
    // A committed record header damaged: EUCLEAN naming its offset, not silent loss.
    let mut bad = good.clone();
    bad[4096 + 30] ^= 1;
    let e = open_prefix(&crash, &bad, &policy, &m).unwrap_err();
    assert_eq!(e.errno(), Errno::UCLEAN);
    assert!(e.message().contains("backing offset 4096"), "{e}");
    // Committed ciphertext damaged: open trusts it, fsck's check finds it.
    let mut rot = good.clone();
    rot[4096 + 4096 + 10] ^= 1;
    std::fs::write(&crash, &rot).unwrap();
    let c = ExtentFile::open(open_rw(&crash), &policy, 4096).unwrap();
    let f = c.check().unwrap();
    assert!(
        f.iter().any(|x| !x.note && x.message.contains("checksum")),
        "{f:?}"
    );
    // The log cut before its last commit: EUCLEAN.
    let e = open_prefix(&crash, &good[..good.len() - 4096], &policy, &m).unwrap_err();
    assert_eq!(e.errno(), Errno::UCLEAN);
}

/// Random overwrites with compaction whenever `needs_compaction` says so: the backing file stays
/// within 2 × compacted size + slack, and the content survives every compaction.
fn amplification_run(log2_du: u8, logical_units: u64, max_write_units: u64, writes: usize) {
    let m = master(10);
    let policy = policy_for(&m, log2_du, EncryptionMode::Aes256Xts);
    let du = 1u64 << if log2_du == 0 { 12 } else { log2_du };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut ef = create(&path, &policy);
    let logical = logical_units * du;
    let mut model = vec![0u8; logical as usize];
    let mut rng = Rng(0xdead_beef ^ logical);
    rng.next();
    let data = rng.bytes(logical as usize);
    write(&mut ef, &m, 0, &data);
    model.copy_from_slice(&data);
    let (mut peak, mut peak_after, mut compactions, mut sum_ratio) = (0f64, 0f64, 0, 0f64);
    for i in 0..writes {
        let units = 1 + rng.below(max_write_units);
        let off = rng.below(logical_units - units + 1) * du;
        let d = rng.bytes((units * du) as usize);
        write(&mut ef, &m, off, &d);
        model[off as usize..(off + units * du) as usize].copy_from_slice(&d);
        peak = peak.max(ef.backing_len() as f64 / logical as f64);
        if ef.needs_compaction() {
            ef.sync().unwrap();
            ef = compact(&ef, &path);
            compactions += 1;
        }
        let bound = 2 * ef.compacted_len() + COMPACT_SLACK;
        assert!(
            ef.backing_len() <= bound,
            "write {i}: {} > {bound}",
            ef.backing_len()
        );
        let on_disk = std::fs::metadata(&path).unwrap().len();
        assert_eq!(on_disk, ef.backing_len());
        let r = ef.backing_len() as f64 / logical as f64;
        peak_after = peak_after.max(r);
        sum_ratio += r;
        if i % 97 == 0 {
            assert!(read_all(&ef, &m) == model);
        }
    }
    assert!(read_all(&ef, &m) == model);
    let compacted = compact(&ef, &path);
    assert!(read_all(&compacted, &m) == model);
    eprintln!(
        "amplification du={du} logical={logical} writes={writes}x1..{max_write_units} units: \
         {compactions} compactions, peak backing/logical {peak:.2} (before compaction), \
         {peak_after:.2} (after the decision), mean {:.2}; fully compacted {:.3} with {} extents",
        sum_ratio / writes as f64,
        compacted.backing_len() as f64 / logical as f64,
        compacted.extents().len()
    );
}

#[test]
fn compaction_bounds_space_under_random_overwrites() {
    amplification_run(0, 512, 16, 3000);
    amplification_run(0, 512, 1, 3000);
    amplification_run(9, 2048, 8, 2000);
}

#[test]
fn reflink_when_the_backing_filesystem_shares_blocks() {
    // Content is right whichever path copy_ciphertext took; on btrfs/XFS the blocks are shared.
    let m = master(11);
    let policy = policy_for(&m, 0, EncryptionMode::Aes256Xts);
    let dir = tempfile::tempdir().unwrap();
    let mut a = create(&dir.path().join("a"), &policy);
    let mut b = create(&dir.path().join("b"), &policy);
    let data: Vec<u8> = (0..64 * 4096).map(|i| (i % 251) as u8).collect();
    write(&mut a, &m, 0, &data);
    assert_eq!(b.clone_range(&a, 4096, 0, 1 << 30).unwrap(), 63 * 4096);
    assert!(read_all(&b, &m) == data[4096..]);
    b.sync().unwrap();
    assert!(read_all(&reopen(&b), &m) == data[4096..]);
}
