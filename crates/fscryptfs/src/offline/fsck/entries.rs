//! `fsck`'s checks of one directory's entries: the names (no-key names and their ciphertext
//! lengths, long-name side files and orphans, escaped names, names reserved by fscryptfs and the
//! leftovers of interrupted updates), the special-file record against the directory's special
//! files, and each object in turn (`objects`); returns the subdirectories to descend into.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fscrypt::nokey::NokeyName;

use super::checker::{strip, valid_ct_len, Checker, DirState};
use crate::offline::objects::{list_names, name_ciphertext_at, open_entry_md, Kind};
use crate::store::config::CONFIG_NAME;
use crate::store::io as store_io;
use crate::store::meta::DIR_META_NAME;
use crate::store::names::{self, ESCAPE_PREFIX, RESERVED_PREFIX, SIDE_SUFFIX, TMP_PREFIX};
use crate::store::special::{read_special_at, SpecialRecords, SPECIAL_NAME};

impl Checker {
    /// Checks the entries of directory `dir`, open as `dirfd`; returns the subdirectories to
    /// descend into (by name: they are opened again, relative to `dirfd`, when their turn comes,
    /// so a wide tree never holds many descriptors).
    pub(super) fn check_dir(
        &mut self,
        dirfd: &OwnedFd,
        dir: &Path,
        state: DirState,
    ) -> Vec<(OsString, PathBuf, DirState)> {
        let names = match list_names(dirfd, &dir.display().to_string()) {
            Ok(v) => v,
            Err(e) => {
                self.problem(dir, format!("cannot list: {}", strip(e.message(), dir)));
                return Vec::new();
            }
        };
        let set: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        let is_root = dir == self.root;
        let specials = self.read_specials(dirfd, dir, &set);
        // Backing names of this directory's special files and of its other objects.
        let mut special_names: HashSet<&[u8]> = HashSet::new();
        let mut sub = Vec::new();
        for name in &names {
            let b = name.as_bytes();
            let path = dir.join(name);
            if b.starts_with(RESERVED_PREFIX) && !b.starts_with(ESCAPE_PREFIX) {
                self.check_reserved(&path, b, is_root);
                continue;
            }
            let encrypted = matches!(state, DirState::Known(Some(_)));
            if encrypted {
                if names::is_encrypted_entry(b) {
                    self.check_encrypted_name(dirfd, dir, name, state);
                } else if let Some(stem) = b.strip_suffix(SIDE_SUFFIX.as_bytes()) {
                    self.check_side_file(dirfd, &path, name, stem, &set);
                    continue;
                } else {
                    self.problem(&path, "not a valid no-key name in an encrypted directory");
                    continue;
                }
            } else if let (DirState::Known(None), Some(rest)) =
                (state, b.strip_prefix(ESCAPE_PREFIX))
            {
                if !rest.starts_with(RESERVED_PREFIX) {
                    self.problem(
                        &path,
                        "escaped name whose user name does not start with .fscryptfs (unreachable)",
                    );
                }
            }
            let what = path.display().to_string();
            let (fd, md) = match open_entry_md(dirfd, name, &what) {
                Ok(x) => x,
                Err(e) => {
                    self.problem(&path, format!("cannot open: {}", strip(e.message(), &path)));
                    continue;
                }
            };
            let is_special = matches!(
                Kind::of(&md),
                Some(Kind::Fifo | Kind::Socket | Kind::CharDev | Kind::BlockDev)
            );
            if is_special {
                special_names.insert(b);
                match specials.as_ref().map(|r| r.get(name)) {
                    Some(Some(ino)) => self.check_ino(&path, ino, &md, false),
                    Some(None) => self.problem(
                        &path,
                        format!(
                            "special file without a record in {SPECIAL_NAME} (its inode number \
                             changes at every mount)"
                        ),
                    ),
                    // The record is damaged: reported once, on the record.
                    None => {}
                }
            }
            if let Some(s) = self.check_object(&fd, &path, &md, state) {
                sub.push((name.clone(), path, s));
            }
        }
        if let Some(r) = &specials {
            let rpath = dir.join(SPECIAL_NAME);
            let mut seen: HashSet<&OsStr> = HashSet::new();
            for (name, ino) in r.iter() {
                let b = name.as_bytes();
                let shown = b.escape_ascii();
                if !seen.insert(name) {
                    self.problem(&rpath, format!("two records for {shown}"));
                } else if b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
                    self.problem(&rpath, format!("record for an impossible name {shown}"));
                } else if !set.contains(b) {
                    // Unlink forgets the name after removing the entry (FORMAT.md): a crash in
                    // between leaves the record, never consulted.
                    self.note(
                        &rpath,
                        format!(
                            "record (inode number {ino}) for {shown}, which does not exist (left \
                             by a crash, ignored)"
                        ),
                    );
                } else if !special_names.contains(b) {
                    // A rename over a special file forgets the target's record after renaming.
                    self.note(
                        &rpath,
                        format!(
                            "record (inode number {ino}) for {shown}, which is not a special file \
                             (left by a crash, ignored)"
                        ),
                    );
                }
            }
        }
        sub
    }

    /// The special-file records of directory `dir` (empty when it has none); None, after
    /// reporting the problem, when `.fscryptfs.special` is not a regular file, is larger than
    /// FORMAT.md allows, or does not parse.
    fn read_specials(
        &mut self,
        dirfd: &OwnedFd,
        dir: &Path,
        set: &HashSet<&[u8]>,
    ) -> Option<SpecialRecords> {
        if !set.contains(SPECIAL_NAME.as_bytes()) {
            return Some(SpecialRecords::default());
        }
        let path = dir.join(SPECIAL_NAME);
        let what = path.display().to_string();
        match read_special_at(dirfd, &what) {
            Ok(r) => Some(r),
            Err(e) => {
                self.error(&path, &e);
                None
            }
        }
    }

    fn check_reserved(&mut self, path: &Path, b: &[u8], is_root: bool) {
        let n = String::from_utf8_lossy(b);
        match n.as_ref() {
            // Checked with its directory (`read_dir_meta_at`) and by `read_specials`.
            DIR_META_NAME | SPECIAL_NAME => {}
            CONFIG_NAME if is_root => {}
            crate::store::lock::LOCK_NAME if is_root => match fs::symlink_metadata(path) {
                Ok(md) if md.len() > crate::store::lock::LOCK_MAX as u64 => self.problem(
                    path,
                    format!(
                        "lock file of {} bytes, more than the {} its format allows",
                        md.len(),
                        crate::store::lock::LOCK_MAX
                    ),
                ),
                Ok(md) if md.file_type().is_file() && md.nlink() == 1 => {}
                Ok(md) if md.file_type().is_file() => self.problem(
                    path,
                    format!("lock file with {} hard links (not one)", md.nlink()),
                ),
                Ok(_) => self.problem(path, "lock file is not a regular file"),
                Err(e) => self.problem(path, format!("cannot stat: {e}")),
            },
            CONFIG_NAME => {
                self.problem(path, "volume config outside the backing root");
            }
            crate::store::config::VOLUME_TREE_NAME if is_root => match fs::symlink_metadata(path) {
                Ok(md) if md.file_type().is_dir() => {}
                Ok(_) => self.problem(path, "protector metadata is not a directory"),
                Err(e) => self.problem(path, format!("cannot stat: {e}")),
            },
            // The fixed temporary names of versions before the hardened store (which writes every
            // replacement under a fresh random temporary name instead).
            ".fscryptfs.conf.tmp" | ".fscryptfs.dir.new" | ".fscryptfs.special.new" => {
                self.note(
                    path,
                    "leftover of an interrupted update by an older version",
                );
            }
            _ if n.starts_with(TMP_PREFIX) => {
                self.note(
                    path,
                    "leftover temporary object of an interrupted create or remove (never shown)",
                );
            }
            _ => self.problem(path, "unknown name reserved by fscryptfs"),
        }
    }

    fn check_encrypted_name(
        &mut self,
        dirfd: &OwnedFd,
        dir: &Path,
        name: &OsString,
        state: DirState,
    ) {
        let DirState::Known(Some(ctx)) = state else {
            return;
        };
        let path = dir.join(name);
        match name_ciphertext_at(dirfd, dir, name) {
            Err(e) => self.error(&path, &e),
            Ok(ct) => {
                let pad = ctx.policy().padding();
                if !valid_ct_len(ct.len(), pad, names::NAME_MAX) {
                    self.problem(
                        &path,
                        format!(
                            "name ciphertext length {} is not a valid length for padding {pad}",
                            ct.len()
                        ),
                    );
                }
            }
        }
    }

    fn check_side_file(
        &mut self,
        dirfd: &OwnedFd,
        path: &Path,
        name: &OsStr,
        stem: &[u8],
        set: &HashSet<&[u8]>,
    ) {
        let long = names::is_encrypted_entry(stem)
            && std::str::from_utf8(stem)
                .ok()
                .and_then(|s| NokeyName::decode(s).ok())
                .is_some_and(|n| n.full_ciphertext().is_none());
        if !long {
            self.problem(
                path,
                "not a valid no-key name or side file in an encrypted directory",
            );
        } else if !set.contains(stem) {
            // The side file of an entry is checked with the entry (`name_ciphertext_at`); an
            // orphan only for its type and size here.
            let what = path.display().to_string();
            match store_io::read_bounded(dirfd, name, names::NAME_MAX, &what) {
                Err(e) => self.error(path, &e),
                // The side file is written before its entry and deleted after it (FORMAT.md): a
                // crash in between leaves it behind, unused, and the next entry of the name
                // rewrites it.
                Ok(_) => self.note(
                    path,
                    "orphan side file (no entry of that name; left by a crash, ignored)",
                ),
            }
        }
    }
}
