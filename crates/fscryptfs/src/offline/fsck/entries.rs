//! `fsck`'s checks of one directory's entries: the names (no-key names and their ciphertext
//! lengths, long-name side files and orphans, escaped names, names reserved by fscryptfs and the
//! leftovers of interrupted updates), the special-file record against the directory's special
//! files, and each object in turn (`objects`); returns the subdirectories to descend into. With
//! `--repair`, the crash leftovers found here go: orphan side files and temporary objects are
//! removed, the records of names that are gone (or no longer special files) are dropped from
//! `.fscryptfs.special`.

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
use crate::store::io::{self as store_io, Want};
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
        // A special file of this directory has no record (stale records are then kept: one may
        // be the number it had before a rename).
        let mut unrecorded = false;
        let mut sub = Vec::new();
        for name in &names {
            self.progress.tick(&self.report);
            let b = name.as_bytes();
            let path = dir.join(name);
            if b.starts_with(RESERVED_PREFIX) && !b.starts_with(ESCAPE_PREFIX) {
                self.check_reserved(dirfd, &path, name, is_root);
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
                    Some(None) => {
                        unrecorded = true;
                        self.problem(
                            &path,
                            format!(
                                "special file without a record in {SPECIAL_NAME} (its inode \
                                 number changes at every mount)"
                            ),
                        );
                    }
                    // The record is damaged: reported once, on the record.
                    None => {}
                }
            }
            if md.is_file() && md.len() < crate::store::FILE_HEADER_SIZE {
                self.interrupted_create(dirfd, &path, name);
                continue;
            }
            if let Some(s) = self.check_object(&fd, &path, &md, state) {
                sub.push((name.clone(), path, s));
            }
        }
        if let Some(r) = &specials {
            self.check_special_records(dirfd, dir, r, &set, &special_names, unrecorded);
        }
        sub
    }

    /// Checks the special-file record `r` of directory `dir` against its names (`set`) and its
    /// special files (`special_names`). A record for a name that is gone, or that is no longer a
    /// special file, is a note (never consulted); with `--repair` the record file is rewritten
    /// without them (removed when none is left) unless it also has problems, or `unrecorded`: a
    /// special file of the directory has no record (a stale one may be the number it had).
    fn check_special_records(
        &mut self,
        dirfd: &OwnedFd,
        dir: &Path,
        r: &SpecialRecords,
        set: &HashSet<&[u8]>,
        special_names: &HashSet<&[u8]>,
        unrecorded: bool,
    ) {
        let rpath = dir.join(SPECIAL_NAME);
        let mut seen: HashSet<&OsStr> = HashSet::new();
        let mut bad = unrecorded;
        // Records never consulted: (name, the note).
        let mut stale: Vec<(&OsStr, String)> = Vec::new();
        for (name, ino) in r.iter() {
            let b = name.as_bytes();
            let shown = b.escape_ascii();
            if !seen.insert(name) {
                bad = true;
                self.problem(&rpath, format!("two records for {shown}"));
            } else if b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
                bad = true;
                self.problem(&rpath, format!("record for an impossible name {shown}"));
            } else if !set.contains(b) {
                // Unlink forgets the name after removing the entry (FORMAT.md): a crash in
                // between leaves the record, never consulted.
                stale.push((
                    name,
                    format!(
                        "record (inode number {ino}) for {shown}, which does not exist (left by a \
                         crash, ignored)"
                    ),
                ));
            } else if !special_names.contains(b) {
                // A rename over a special file forgets the target's record after renaming.
                stale.push((
                    name,
                    format!(
                        "record (inode number {ino}) for {shown}, which is not a special file \
                         (left by a crash, ignored)"
                    ),
                ));
            }
        }
        if stale.is_empty() {
            return;
        }
        if self.repair && !bad {
            let mut kept = r.clone();
            for (name, _) in &stale {
                kept.remove(name);
            }
            let what = rpath.display().to_string();
            let n = OsStr::new(SPECIAL_NAME);
            let done = if kept.is_empty() {
                store_io::remove_object(dirfd, n, Some(Want::File), &what).map(|_| "removed it")
            } else {
                store_io::replace_keeping_owner(dirfd, n, &kept.to_bytes(), true, &what)
                    .map(|()| "rewrote it without them")
            };
            let names = stale
                .iter()
                .map(|(n, _)| n.as_bytes().escape_ascii().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let count = stale.len();
            let records = if count == 1 { "record" } else { "records" };
            match done {
                Ok(how) => {
                    return self.repaired(
                        &rpath,
                        format!(
                            "dropped {count} {records} of names that are gone or no longer \
                             special files ({names}); {how}"
                        ),
                    );
                }
                Err(e) => self.problem(
                    &rpath,
                    format!(
                        "could not drop {count} stale {records} ({names}): {}",
                        strip(e.message(), &rpath)
                    ),
                ),
            }
        }
        for (_, m) in stale {
            self.note(&rpath, m);
        }
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

    fn check_reserved(&mut self, dirfd: &OwnedFd, path: &Path, name: &OsStr, is_root: bool) {
        let n = String::from_utf8_lossy(name.as_bytes());
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
                if !self.remove_leftover(dirfd, path, name) {
                    self.note(
                        path,
                        "leftover of an interrupted update by an older version",
                    );
                }
            }
            _ if n.starts_with(TMP_PREFIX) => {
                if !self.remove_leftover(dirfd, path, name) {
                    self.note(
                        path,
                        "leftover temporary object of an interrupted create or remove (never shown)",
                    );
                }
            }
            _ => self.problem(path, "unknown name reserved by fscryptfs"),
        }
    }

    /// A regular file shorter than a file header where an entry belongs: a create interrupted by a
    /// crash (the daemon makes the name with `O_EXCL`, then writes the header; FORMAT.md). It holds
    /// no data (data starts after the header): a problem, which `--repair` removes.
    fn interrupted_create(&mut self, dirfd: &OwnedFd, path: &Path, name: &OsStr) {
        const WHY: &str = "shorter than a file header: a create interrupted by a crash (no data)";
        if !self.repair {
            self.problem(path, format!("{WHY}; --repair removes it"));
            return;
        }
        let what = path.display().to_string();
        match store_io::remove_object(dirfd, name, Some(Want::File), &what) {
            Ok(_) => self.repaired(path, format!("removed: {WHY}")),
            Err(e) => self.problem(
                path,
                format!("{WHY}; not removed: {}", strip(e.message(), path)),
            ),
        }
    }

    /// `--repair`: removes the temporary object `name` of `dirfd` (a crash leftover nothing refers
    /// to): anything but a directory is unlinked (never opened, a symlink never followed), a
    /// directory only when all it holds is fscryptfs's own (`store::io::remove_dir_of_ours`: an
    /// interrupted mkdir, a directory moved aside to be removed, a protector tree being set up).
    /// True when it was repaired, or could not be and a problem says so; false without `--repair`.
    fn remove_leftover(&mut self, dirfd: &OwnedFd, path: &Path, name: &OsStr) -> bool {
        if !self.repair {
            return false;
        }
        let what = path.display().to_string();
        let r = match store_io::remove_object(dirfd, name, None, &what) {
            Err(e) if e.errno() == fscrypt::Errno::ISDIR => {
                store_io::remove_dir_of_ours(dirfd, name, &what).map(|()| "directory")
            }
            r => r.map(|ft| match ft {
                rustix::fs::FileType::RegularFile => "file",
                rustix::fs::FileType::Symlink => "symlink (not followed)",
                _ => "object",
            }),
        };
        match r {
            Ok(kind) => self.repaired(path, format!("removed the leftover temporary {kind}")),
            Err(e) => self.problem(
                path,
                format!(
                    "leftover temporary object not removed: {}",
                    strip(e.message(), path)
                ),
            ),
        }
        true
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
                Ok(_) if self.repair => {
                    let what = path.display().to_string();
                    match store_io::remove_object(dirfd, name, Some(Want::File), &what) {
                        Ok(_) => self
                            .repaired(path, "removed the orphan side file (no entry of that name)"),
                        Err(e) => self.problem(
                            path,
                            format!("orphan side file not removed: {}", strip(e.message(), path)),
                        ),
                    }
                }
                Ok(_) => self.note(
                    path,
                    "orphan side file (no entry of that name; left by a crash, ignored)",
                ),
            }
        }
    }
}
