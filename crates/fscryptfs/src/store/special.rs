//! `.fscryptfs.special`: the stable inode numbers of the FIFOs, sockets and devices of one directory
//! (docs/FORMAT.md, "Special files"). Special files are stored as themselves, so unlike regular
//! files, directories and symlinks they have no place of their own for a number; this per-directory
//! record keeps it, keyed by backing name.
//!
//! Layout: magic `FSCRYPTS`, version 1, then records `le64 ino ‖ u8 name length (1..=255) ‖ name`
//! (the backing name), then SHA-256 of everything before it, first 8 bytes. Replaced atomically
//! (a fresh temporary file, renamed over it); removed when it would be empty. [`read_special_at`]
//! is the one reader of the file on the backing store.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use fscrypt::{Error, Result};
use sha2::{Digest, Sha256};

/// The record's name in each directory that has special files.
pub const SPECIAL_NAME: &str = ".fscryptfs.special";
/// The largest record file read or written (docs/FORMAT.md): room for tens of thousands of
/// special files in one directory; a larger file is damage (EUCLEAN).
pub const SPECIAL_MAX: usize = 4 << 20;

const MAGIC: &[u8; 8] = b"FSCRYPTS";
const VERSION: u8 = 1;

/// The numbers of one directory's special files, by backing name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialRecords {
    entries: Vec<(OsString, u64)>,
}

impl SpecialRecords {
    /// Parses a record file; `what` names it in errors (EUCLEAN).
    pub fn parse(b: &[u8], what: &(impl std::fmt::Display + ?Sized)) -> Result<Self> {
        let bad = |why: &str| Error::corrupt(format!("{what}: {why}"));
        if b.len() < 17 || &b[..8] != MAGIC {
            return Err(bad("not a special-file record (bad magic or too short)"));
        }
        if b[8] != VERSION {
            return Err(bad(&format!("unknown version {}", b[8])));
        }
        let (body, sum) = b.split_at(b.len() - 8);
        if Sha256::digest(body)[..8] != *sum {
            return Err(bad("checksum mismatch"));
        }
        let mut entries = Vec::new();
        let mut rest = &body[9..];
        while !rest.is_empty() {
            if rest.len() < 9 {
                return Err(bad("truncated record"));
            }
            let ino = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            let len = usize::from(rest[8]);
            if len == 0 || rest.len() < 9 + len {
                return Err(bad("bad name length"));
            }
            entries.push((OsStr::from_bytes(&rest[9..9 + len]).to_os_string(), ino));
            rest = &rest[9 + len..];
        }
        Ok(SpecialRecords { entries })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(VERSION);
        for (name, ino) in &self.entries {
            b.extend_from_slice(&ino.to_le_bytes());
            b.push(name.len() as u8);
            b.extend_from_slice(name.as_bytes());
        }
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum[..8]);
        b
    }

    /// The number recorded for backing name `name`.
    pub fn get(&self, name: &OsStr) -> Option<u64> {
        self.entries.iter().find(|(n, _)| n == name).map(|e| e.1)
    }

    /// Records `name` → `ino` (replacing any record of `name`). Names are at most 255 bytes.
    pub fn set(&mut self, name: &OsStr, ino: u64) {
        debug_assert!(!name.is_empty() && name.len() <= 255);
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = ino,
            None => self.entries.push((name.to_os_string(), ino)),
        }
    }

    /// Forgets `name`; true if it was recorded.
    pub fn remove(&mut self, name: &OsStr) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        self.entries.len() != before
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every (backing name, inode number).
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, u64)> {
        self.entries.iter().map(|(n, i)| (n.as_os_str(), *i))
    }
}

/// Reads the special-file record of the backing directory open as `dirfd` (empty when it has
/// none) through `store::io`: a regular file of at most [`SPECIAL_MAX`] bytes, never through a
/// symlink. EUCLEAN naming `what` (the record file) when it is of the wrong type, too large or
/// malformed.
pub fn read_special_at(
    dirfd: impl AsFd,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<SpecialRecords> {
    match super::io::read_bounded(dirfd, OsStr::new(SPECIAL_NAME), SPECIAL_MAX, what)? {
        Some(b) => SpecialRecords::parse(&b, what),
        None => Ok(SpecialRecords::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut r = SpecialRecords::default();
        r.set(OsStr::new("fifo"), 17);
        r.set(OsStr::from_bytes(&[b'a'; 255]), 18);
        r.set(OsStr::new("fifo"), 19);
        let b = r.to_bytes();
        let p = SpecialRecords::parse(&b, "x").unwrap();
        assert_eq!(p, r);
        assert_eq!(p.get(OsStr::new("fifo")), Some(19));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(SpecialRecords::parse(&d, "x").is_err(), "byte {i}");
        }
        assert!(SpecialRecords::parse(&b[..b.len() - 1], "x").is_err());
        let mut e = r.clone();
        assert!(e.remove(OsStr::new("fifo")));
        assert!(!e.remove(OsStr::new("fifo")));
        assert_eq!(
            SpecialRecords::parse(&SpecialRecords::default().to_bytes(), "x").unwrap(),
            SpecialRecords::default()
        );
    }

    #[test]
    fn read_special_at_reads_through_store_io() {
        use rustix::fs::{Mode, OFlags};
        let t = tempfile::tempdir().unwrap();
        let d =
            rustix::fs::open(t.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        // None yet: empty.
        assert_eq!(read_special_at(&d, "r").unwrap(), SpecialRecords::default());
        // A symlink where the record belongs is damage, never followed.
        std::os::unix::fs::symlink("/etc/passwd", t.path().join(SPECIAL_NAME)).unwrap();
        let e = read_special_at(&d, "r").unwrap_err();
        assert_eq!(e.errno(), fscrypt::Errno::UCLEAN, "{e}");
    }
}
