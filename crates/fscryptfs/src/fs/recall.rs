//! What the mount knew of regular files whose nodes it evicted: a later lookup of the same backing
//! object, unchanged since (the same ctime, mtime, size, link count and mode), takes the header's
//! contents — the inode number, the encryption context, and the committed size of a per-file file
//! or the committed log of a per-extent one — from here instead of reading the file again. On a
//! network backing store those reads are round trips, and an `ls -lR`, `find` or `rm -rf` after the
//! kernel dropped its caches makes one lookup per file. Its own module because it is a cache with a
//! rule of its own (when an entry may be trusted), bounded by [`RECALL_MAX`], and knows nothing of
//! nodes.
//!
//! Why the signature is enough: while no node exists for the file, this mount writes nothing to it
//! (every change goes through a node, and a node is made by a lookup, which takes the entry), and
//! nobody else writes the volume while the mount holds its lock. Any other change — a restore, a
//! sync, a hostile rewrite — changes the ctime, which nobody but the kernel sets.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use fscrypt::context::Context;

use super::locks::lock;
use crate::store::extent::LogSnapshot;

/// At most this many files are remembered (about 150 bytes each); the oldest goes first.
pub(super) const RECALL_MAX: usize = 16_384;

/// At most this many parts of per-extent logs (`LogSnapshot::parts`: records, runs and map
/// pieces, each some tens of bytes; at most `store::extent::SNAPSHOT_MAX_PARTS` of each per
/// file) are remembered, a few MiB; the oldest entries go first.
pub(super) const RECALL_PARTS_MAX: usize = 32_768;

/// A file's header as the evicted node knew it, committed.
#[derive(Clone)]
pub(super) struct Recalled {
    /// The stable inode number (the header's).
    pub(super) ino: u64,
    /// The committed logical size (a per-file file's).
    pub(super) size: u64,
    /// The encryption context, when the file is encrypted.
    pub(super) ctx: Option<Context>,
    /// A per-extent file's log as the evicted node left it (written out and committed).
    pub(super) log: Option<Arc<LogSnapshot>>,
}

/// Whether two `fstat`s show one backing object (the same device and inode number), unchanged in
/// between: the same ctime, mtime, size, link count and mode.
pub(super) fn unchanged(a: &rustix::fs::Stat, b: &rustix::fs::Stat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) && Signature::of(a) == Signature::of(b)
}

/// What must be unchanged for an entry to hold.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Signature {
    ctime: (i64, i64),
    mtime: (i64, i64),
    size: i64,
    nlink: u64,
    mode: u32,
}

impl Signature {
    fn of(st: &rustix::fs::Stat) -> Signature {
        Signature {
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            size: st.st_size,
            nlink: st.st_nlink,
            mode: st.st_mode,
        }
    }
}

#[derive(Default)]
struct Entries {
    /// By backing identity (st_dev, st_ino): the signature, the header, the insertion number.
    map: HashMap<(u64, u64), (Signature, Recalled, u64)>,
    /// Insertion order (identity, insertion number); an item whose number no longer matches the
    /// map's was taken or replaced already.
    order: VecDeque<((u64, u64), u64)>,
    next: u64,
    /// The parts of the per-extent logs in `map`.
    parts: usize,
}

impl Entries {
    fn remove(&mut self, key: &(u64, u64)) -> Option<(Signature, Recalled, u64)> {
        let v = self.map.remove(key)?;
        self.parts -= parts_of(&v.1);
        Some(v)
    }
}

fn parts_of(r: &Recalled) -> usize {
    r.log.as_ref().map_or(0, |l| l.parts())
}

/// The evicted files' headers, by backing identity.
#[derive(Default)]
pub(super) struct Recall {
    entries: Mutex<Entries>,
}

impl Recall {
    /// Remembers `header` for the backing object whose `fstat` (taken after the node's last write)
    /// is `st`.
    pub(super) fn remember(&self, st: &rustix::fs::Stat, header: Recalled) {
        let key = (st.st_dev, st.st_ino);
        let mut e = lock(&self.entries);
        let n = e.next;
        e.next += 1;
        e.remove(&key);
        e.parts += parts_of(&header);
        e.map.insert(key, (Signature::of(st), header, n));
        e.order.push_back((key, n));
        while e.map.len() > RECALL_MAX
            || e.parts > RECALL_PARTS_MAX
            || e.order.len() > 2 * RECALL_MAX
        {
            let Some((old, m)) = e.order.pop_front() else {
                break;
            };
            if e.map.get(&old).is_some_and(|v| v.2 == m) {
                e.remove(&old);
            }
        }
    }

    /// The header remembered for the backing object whose `fstat` is `st`, if the object is
    /// unchanged since; the entry is gone afterwards either way (the node made from it knows it
    /// now, or it was stale).
    pub(super) fn take(&self, st: &rustix::fs::Stat) -> Option<Recalled> {
        let (sig, header, _) = lock(&self.entries).remove(&(st.st_dev, st.st_ino))?;
        (sig == Signature::of(st)).then_some(header)
    }

    /// Drops what is remembered of the backing object `st` (it is being deleted: its number may
    /// be reused).
    pub(super) fn drop_entry(&self, st: &rustix::fs::Stat) {
        lock(&self.entries).remove(&(st.st_dev, st.st_ino));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory holding a one-byte file `f`, and that file's path.
    fn one_byte_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").expect("write");
        (dir, p)
    }

    fn stat_of(path: &std::path::Path) -> rustix::fs::Stat {
        rustix::fs::stat(path).expect("stat")
    }

    fn header(ino: u64) -> Recalled {
        Recalled {
            ino,
            size: 5000,
            ctx: None,
            log: None,
        }
    }

    fn ino_of(r: Option<Recalled>) -> Option<u64> {
        r.map(|r| r.ino)
    }

    #[test]
    fn an_unchanged_file_is_recalled_once() {
        let (_dir, p) = one_byte_file();
        let r = Recall::default();
        r.remember(&stat_of(&p), header(7));
        assert_eq!(ino_of(r.take(&stat_of(&p))), Some(7));
        assert_eq!(ino_of(r.take(&stat_of(&p))), None, "taken: gone");
    }

    #[test]
    fn a_changed_file_is_not_recalled() {
        let (_dir, p) = one_byte_file();
        let r = Recall::default();
        // Changed in place, size and all unchanged but the ctime (a chmod to the same mode).
        r.remember(&stat_of(&p), header(7));
        let mode = stat_of(&p).st_mode & 0o7777;
        rustix::fs::chmod(&p, rustix::fs::Mode::from_raw_mode(mode)).expect("chmod");
        assert_eq!(ino_of(r.take(&stat_of(&p))), None);
        // Rewritten: a different size.
        r.remember(&stat_of(&p), header(7));
        std::fs::write(&p, b"xy").expect("write");
        assert_eq!(ino_of(r.take(&stat_of(&p))), None);
        // Deleted.
        r.remember(&stat_of(&p), header(7));
        r.drop_entry(&stat_of(&p));
        assert_eq!(ino_of(r.take(&stat_of(&p))), None);
    }

    /// A snapshot of a per-extent log of `n` one-unit extents (`n` records, runs and pieces).
    fn log_of(dir: &std::path::Path, n: u64) -> Arc<LogSnapshot> {
        use fscrypt::extent::{ExtentContext, ExtentKey};
        use fscrypt::keysetup::MasterSecret;
        use fscrypt::policy::{Policy, PolicyV2};
        use fscrypt::EncryptionMode;
        let m = MasterSecret::new_v2(&[9; 64]).expect("master");
        let policy = Policy::V2(PolicyV2 {
            contents_mode: EncryptionMode::Aes256Xts,
            filenames_mode: EncryptionMode::Aes256Cts,
            flags: 2,
            log2_data_unit_size: 0,
            master_key_identifier: m.identifier().expect("identifier"),
        });
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join(format!("log{n}")))
            .expect("create");
        let ctx = Context::new_random(policy).expect("context");
        let mut ef = crate::store::extent::ExtentFile::create(file, 1, &ctx).expect("log");
        for i in 0..n {
            let c = ExtentContext::new_random(&policy).expect("extent context");
            let key = ExtentKey::derive(&m, &c).expect("key");
            ef.write_extent(2 * i * 4096, &[7u8; 4096], &c, &key)
                .expect("write");
        }
        Arc::new(ef.snapshot().expect("a short log"))
    }

    #[test]
    fn logs_are_bounded_by_their_parts() {
        let (dir, p) = one_byte_file();
        let mut st = stat_of(&p);
        let log = log_of(dir.path(), 20);
        let per = log.parts();
        assert_eq!(per, 60, "20 records, runs and pieces");
        let r = Recall::default();
        let fits = RECALL_PARTS_MAX / per;
        for i in 0..(fits as u64 + 3) {
            st.st_ino = 2_000_000 + i;
            r.remember(
                &st,
                Recalled {
                    log: Some(Arc::clone(&log)),
                    ..header(i)
                },
            );
        }
        assert_eq!(r.len(), fits);
        assert!(lock(&r.entries).parts <= RECALL_PARTS_MAX);
        st.st_ino = 2_000_000;
        assert_eq!(ino_of(r.take(&st)), None, "the oldest went first");
        st.st_ino = 2_000_000 + fits as u64 + 2;
        assert_eq!(ino_of(r.take(&st)), Some(fits as u64 + 2));
        assert_eq!(
            lock(&r.entries).parts,
            per * (fits - 1),
            "taken: its parts gone"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let (_dir, p) = one_byte_file();
        let mut st = stat_of(&p);
        let r = Recall::default();
        for i in 0..(RECALL_MAX as u64 + 10) {
            st.st_ino = 1_000_000 + i;
            r.remember(&st, header(i));
        }
        assert_eq!(r.len(), RECALL_MAX);
        st.st_ino = 1_000_000;
        assert_eq!(ino_of(r.take(&st)), None, "the oldest went first");
        st.st_ino = 1_000_000 + RECALL_MAX as u64 + 9;
        assert_eq!(ino_of(r.take(&st)), Some(RECALL_MAX as u64 + 9));
    }
}
