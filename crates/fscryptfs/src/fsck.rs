//! `fscryptfs fsck`: check a volume's backing store against docs/FORMAT.md, offline and without keys.
//!
//! Checked: the config parses (a newer format version stops the check); every directory has valid
//! metadata (size, magic, version, checksum, context) and the root is inode 1; file headers are valid
//! (magic, version, layout, checksum, context, reserved bytes) and whole; contexts parse, and every
//! child of an encrypted directory (but FIFOs, sockets and devices) is encrypted with the directory's
//! policy; names in encrypted directories are canonical no-key names with a zero dirhash whose
//! ciphertext length is a valid padded length, long names have their side file with matching
//! contents (an orphaned side file is a note); escaped names in unencrypted directories are canonical;
//! no unknown `.fscryptfs*` names; stable inode numbers are unique except for hard links, in range
//! and below the config's `next-ino`; nonces are unique except for hard links; symlink encodings
//! are valid; a file's backing length covers its recorded size; `.fscryptfs.special` parses, names
//! each name once, and every special file of the directory has a record (checked like every other
//! inode number); every object where fscryptfs's own files belong (config, directory metadata,
//! special-file record, side files) is a regular file within FORMAT.md's bound.
//!
//! The tree is walked with directory descriptors and every object is opened through `store::io`
//! relative to its directory: no symlink is followed, no FIFO or device is opened (type checked on an
//! `O_PATH` descriptor first), metadata is read with its bound. A planted object is a problem, never
//! a hang, a huge read or a read outside the volume.
//!
//! The volume lock (`.fscryptfs.lock`) is held shared during the check: a volume mounted read-write
//! is refused (exit 2) unless `--force`, and no read-write mount can start while it runs. The lock
//! file itself must be a regular file with one link.
//!
//! Findings are *problems* (exit 1) or *notes* (exit 0): notes are what a crash legitimately leaves
//! behind and the daemon cleans up or ignores (temporary names, orphan side files, data beyond the
//! recorded size, special-file records of names that are gone or no longer special files).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use fscrypt::context::Context;
use fscrypt::nokey::NokeyName;
use fscrypt::policy::FsParams;
use fscrypt::{Errno, Error};

use crate::inspect::{
    list_names, lock_for_reading, name_ciphertext_at, open_entry_md, open_root, read_dir_meta_at,
    read_object_at, read_regular_at, Failure, Kind, Stored,
};
use crate::store::config::{VolumeConfig, CONFIG_NAME, FIRST_INO, ROOT_INO};
use crate::store::io as store_io;
use crate::store::meta::{SymlinkTarget, DIR_META_NAME, FILE_HEADER_USED};
use crate::store::names::{self, ESCAPE_PREFIX, RESERVED_PREFIX, SIDE_SUFFIX, TMP_PREFIX};
use crate::store::special::{SpecialRecords, SPECIAL_MAX, SPECIAL_NAME};
use crate::store::{fs_params, FILE_HEADER_SIZE, SYMLINK_CIPHERTEXT_MAX};

/// `fscryptfs fsck`.
#[derive(Args, Debug)]
#[command(
    about = "Check a volume's backing store offline (no keys needed)",
    long_about = "Check the backing directory of an unmounted (or read-only mounted) volume against \
its format (docs/FORMAT.md): config, directory metadata, file headers and checksums, contexts and \
policy inheritance, no-key names and long-name side files, inode-number and nonce uniqueness, \
symlink encodings, sizes, special-file records, and the type and size of every object where \
fscryptfs's own files belong (no symlink inside the volume is followed, no FIFO opened). Each finding is one line `BACKING_PATH: message` on stdout (`note:` \
before the message for what a crash legitimately leaves behind), then a summary line.\n\n\
A volume mounted read-write is refused unless --force (its lock is held).\n\n\
Exit status: 0 no problems (notes allowed), 1 problems found, 2 the check could not run \
(missing or unreadable backing directory, not a volume, mounted read-write, bad arguments)."
)]
pub struct FsckArgs {
    /// The volume's backing directory.
    backing: PathBuf,
    /// Print only problems and notes, no summary line.
    #[arg(short, long)]
    quiet: bool,
    /// Check even while the volume is mounted read-write (what is on disk may lag behind, and
    /// the check may report what a running daemon is changing).
    #[arg(long)]
    force: bool,
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A violated invariant (exit 1).
    Problem,
    /// A crash leftover the daemon handles (exit 0).
    Note,
}

/// One finding, named by backing path.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Problem or note.
    pub severity: Severity,
    /// The backing path at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let note = if self.severity == Severity::Note {
            "note: "
        } else {
            ""
        };
        write!(f, "{}: {note}{}", self.path.display(), self.message)
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems and notes, in walk order.
    pub findings: Vec<Finding>,
    /// Directories checked.
    pub dirs: u64,
    /// Regular files checked.
    pub files: u64,
    /// Symlinks checked.
    pub symlinks: u64,
    /// FIFOs, sockets and devices seen.
    pub special: u64,
}

impl Report {
    /// The number of problems.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .count()
    }

    /// The number of notes.
    pub fn notes(&self) -> usize {
        self.findings.len() - self.problems()
    }
}

/// Whether a directory is encrypted, as far as the check knows.
#[derive(Clone, Copy)]
enum DirState {
    /// Metadata is valid: its context, if any.
    Known(Option<Context>),
    /// Metadata is damaged: names and policies of its children are not checked.
    Unknown,
}

struct Checker {
    root: PathBuf,
    fsp: FsParams,
    config: Option<VolumeConfig>,
    report: Report,
    /// Stable inode number → (first path, backing dev, backing ino).
    inos: HashMap<u64, (PathBuf, u64, u64)>,
    /// Nonce → (first path, backing dev, backing ino).
    nonces: HashMap<[u8; 16], (PathBuf, u64, u64)>,
}

/// Strips the `what: ` prefix the store's messages carry.
fn strip<'a>(msg: &'a str, path: &Path) -> &'a str {
    let p = path.display().to_string();
    msg.strip_prefix(p.as_str())
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(msg)
}

/// Is `len` a ciphertext length fscrypt produces with `pad`-byte padding and limit `max`?
pub fn valid_ct_len(len: usize, pad: usize, max: usize) -> bool {
    let min = 16usize.next_multiple_of(pad).min(max);
    len >= min && len <= max && (len.is_multiple_of(pad) || len == max)
}

impl Checker {
    fn add(&mut self, severity: Severity, path: &Path, message: impl Into<String>) {
        self.report.findings.push(Finding {
            severity,
            path: path.to_path_buf(),
            message: message.into(),
        });
    }

    fn problem(&mut self, path: &Path, message: impl Into<String>) {
        self.add(Severity::Problem, path, message);
    }

    fn note(&mut self, path: &Path, message: impl Into<String>) {
        self.add(Severity::Note, path, message);
    }

    /// Records an error from the store's parsers (which name the path themselves). The error may
    /// name another path (a side file, a directory's metadata file): it is used as is.
    fn error(&mut self, path: &Path, e: &Error) {
        let msg = e.message();
        let stripped = strip(msg, path);
        if stripped.len() == msg.len() {
            if let Some((p, m)) = msg.split_once(": ") {
                if Path::new(p).starts_with(&self.root) {
                    let (p, m) = (PathBuf::from(p), m.to_string());
                    self.problem(&p, m);
                    return;
                }
            }
        }
        let m = stripped.to_string();
        self.problem(path, m);
    }

    /// Checks a stable inode number: range, `next-ino`, uniqueness.
    fn check_ino(&mut self, path: &Path, ino: u64, md: &Metadata, is_root: bool) {
        if is_root {
            if ino != ROOT_INO {
                self.problem(
                    path,
                    format!("root directory has inode number {ino}, expected {ROOT_INO}"),
                );
            }
        } else if ino < FIRST_INO {
            self.problem(
                path,
                format!("inode number {ino} is reserved (numbers start at {FIRST_INO})"),
            );
        } else if let Some(next) = self.config.as_ref().map(|c| c.next_ino) {
            if ino >= next {
                self.problem(
                    path,
                    format!("inode number {ino} is not below the config's next-ino {next} (it would be handed out again)"),
                );
            }
        }
        match self.inos.get(&ino) {
            Some((first, dev, bino)) if (*dev, *bino) != (md.dev(), md.ino()) => {
                let m = format!(
                    "inode number {ino} is also used by {} (not a hard link)",
                    first.display()
                );
                self.problem(path, m);
            }
            Some(_) => {}
            None => {
                self.inos
                    .insert(ino, (path.to_path_buf(), md.dev(), md.ino()));
            }
        }
    }

    fn check_nonce(&mut self, path: &Path, ctx: &Context, md: &Metadata) {
        match self.nonces.get(ctx.nonce()) {
            Some((first, dev, bino)) if (*dev, *bino) != (md.dev(), md.ino()) => {
                let m = format!(
                    "nonce {} is also used by {}",
                    hex::encode(ctx.nonce()),
                    first.display()
                );
                self.problem(path, m);
            }
            Some(_) => {}
            None => {
                self.nonces
                    .insert(*ctx.nonce(), (path.to_path_buf(), md.dev(), md.ino()));
            }
        }
    }

    /// Checks one backing object, open as `fd` (`O_PATH`, from [`open_entry_md`]); returns the
    /// state of a directory to descend into.
    fn check_object(
        &mut self,
        fd: &OwnedFd,
        path: &Path,
        md: &Metadata,
        parent: DirState,
    ) -> Option<DirState> {
        // A regular file is opened once: its header block and descriptor serve every check.
        let mut opened: Option<(File, Vec<u8>)> = None;
        let read = if md.is_file() {
            let what = path.display().to_string();
            read_regular_at(fd, md, &what, &self.fsp).map(|(f, block, header)| {
                opened = Some((f, block));
                Stored::File {
                    header,
                    backing_len: md.len(),
                }
            })
        } else {
            read_object_at(fd, md, path, &self.fsp)
        };
        let stored = match read {
            Ok(s) => s,
            Err(e) => {
                self.error(path, &e);
                return md.is_dir().then_some(DirState::Unknown);
            }
        };
        match stored.kind() {
            Kind::Dir => self.report.dirs += 1,
            Kind::Regular => self.report.files += 1,
            Kind::Symlink => self.report.symlinks += 1,
            _ => self.report.special += 1,
        }
        if let Some(ino) = stored.ino() {
            self.check_ino(path, ino, md, false);
        }
        if let DirState::Known(Some(pctx)) = parent {
            if !matches!(stored, Stored::Special(_)) {
                match stored.ctx() {
                    None => self.problem(
                        path,
                        format!(
                            "unencrypted {} in an encrypted directory",
                            stored.kind().name()
                        ),
                    ),
                    Some(c) if c.policy() != pctx.policy() => self.problem(
                        path,
                        format!(
                            "encryption policy differs from its directory's ({} vs {})",
                            hex::encode(c.policy().to_bytes()),
                            hex::encode(pctx.policy().to_bytes())
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        if let Some(c) = stored.ctx() {
            let c = *c;
            self.check_nonce(path, &c, md);
        }
        match &stored {
            Stored::Dir(m) => return Some(DirState::Known(m.ctx)),
            Stored::File { header, .. } if header.layout == crate::store::meta::LAYOUT_EXTENT => {
                if let Some((f, _)) = opened {
                    self.check_extent_file(path, header, f);
                }
            }
            Stored::File {
                header,
                backing_len,
            } => {
                let du = header
                    .ctx
                    .map_or(4096, |c| 1u64 << c.policy().data_unit_bits(&self.fsp));
                // Encrypted files hold whole units; unencrypted ones may end mid-block.
                let want = FILE_HEADER_SIZE + header.size.div_ceil(du) * du;
                let need = if header.ctx.is_some() {
                    want
                } else {
                    FILE_HEADER_SIZE + header.size
                };
                if *backing_len < need {
                    self.problem(
                        path,
                        format!(
                            "backing file is {backing_len} bytes; size {} needs {need}",
                            header.size
                        ),
                    );
                } else if *backing_len > want {
                    self.note(
                        path,
                        format!(
                            "{} bytes beyond the recorded size {} (left by a crash; cut at the next change)",
                            backing_len - want,
                            header.size
                        ),
                    );
                }
                if let Some((_, block)) = &opened {
                    self.check_header_reserved(path, block);
                }
            }
            Stored::Symlink(SymlinkTarget::Encrypted { data, ctx, .. }) => {
                match fscrypt::symlink::ciphertext(data) {
                    Err(e) => self.problem(path, format!("bad symlink data: {}", e.message())),
                    Ok(ct) => {
                        let pad = ctx.policy().padding();
                        if data.len() != 2 + ct.len() {
                            self.problem(
                                path,
                                format!(
                                    "symlink data has {} bytes after its ciphertext",
                                    data.len() - 2 - ct.len()
                                ),
                            );
                        }
                        if !valid_ct_len(ct.len(), pad, SYMLINK_CIPHERTEXT_MAX) {
                            self.problem(
                                path,
                                format!(
                                    "symlink ciphertext length {} is not a valid length for padding {pad}",
                                    ct.len()
                                ),
                            );
                        }
                    }
                }
            }
            Stored::Symlink(SymlinkTarget::Plain { .. }) | Stored::Special(_) => {}
        }
        None
    }

    /// A per-extent file: its log recovers (`ExtentFile::open`) and passes `ExtentFile::check`
    /// (every stored run against its checksum, the map's invariants; crash leftovers are notes).
    fn check_extent_file(
        &mut self,
        path: &Path,
        header: &crate::store::meta::FileHeader,
        file: File,
    ) {
        let Some(ctx) = header.ctx else {
            self.problem(path, "per-extent file without an encryption context");
            return;
        };
        let policy = *ctx.policy();
        let du = 1usize << policy.data_unit_bits(&self.fsp);
        let r = crate::store::extent::ExtentFile::open(file, &policy, du).and_then(|ef| ef.check());
        match r {
            Err(e) => self.error(path, &e),
            Ok(findings) => {
                for f in findings {
                    let m = match f.offset {
                        Some(o) => format!("backing offset {o}: {}", f.message),
                        None => f.message,
                    };
                    if f.note {
                        self.note(path, m);
                    } else {
                        self.problem(path, m);
                    }
                }
            }
        }
    }

    /// The reserved bytes of a file header (80..4096) must be zero.
    fn check_header_reserved(&mut self, path: &Path, block: &[u8]) {
        if block
            .get(FILE_HEADER_USED..)
            .is_some_and(|r| r.iter().any(|&b| b != 0))
        {
            self.problem(path, "nonzero reserved bytes in the file header (80..4096)");
        }
    }

    /// Checks the entries of directory `dir`, open as `dirfd`; returns the subdirectories to
    /// descend into (by name: they are opened again, relative to `dirfd`, when their turn comes,
    /// so a wide tree never holds many descriptors).
    fn check_dir(
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
        let r = store_io::read_bounded(dirfd, OsStr::new(SPECIAL_NAME), SPECIAL_MAX, &what)
            .and_then(|b| match b {
                Some(b) => SpecialRecords::parse(&b, &what),
                None => Ok(SpecialRecords::default()),
            });
        match r {
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

/// Checks the volume in `backing`. Err (exit 2) when the check cannot run.
///
/// Every object is opened through `store::io`, relative to its directory's descriptor: never
/// through a symlink, never blocking on a FIFO or device (`O_PATH` and a type check first), and
/// metadata is read with the bound FORMAT.md gives (larger is a problem).
pub fn check(backing: &Path) -> Result<Report, Failure> {
    let md =
        fs::metadata(backing).map_err(|e| Failure::usage(format!("{}: {e}", backing.display())))?;
    if !md.is_dir() {
        return Err(Failure::usage(format!(
            "{}: not a directory",
            backing.display()
        )));
    }
    let root = open_root(backing).map_err(|e| Failure::usage(e.message()))?;
    store_io::open_listing(&root, &backing.display().to_string())
        .map_err(|e| Failure::usage(e.message()))?;
    let mut c = Checker {
        root: backing.to_path_buf(),
        fsp: fs_params(),
        config: None,
        report: Report::default(),
        inos: HashMap::new(),
        nonces: HashMap::new(),
    };
    let conf = backing.join(CONFIG_NAME);
    let exists = |name: &str| {
        store_io::open_object(&root, OsStr::new(name), name).is_ok_and(|o| o.is_some())
    };
    match VolumeConfig::load(backing) {
        Ok(cfg) => c.config = Some(cfg),
        Err(e) if e.errno() == Errno::NOENT && !exists(CONFIG_NAME) => {
            if !exists(DIR_META_NAME) {
                return Err(Failure::usage(e.message()));
            }
            c.problem(&conf, "volume config is missing");
        }
        Err(e) if e.errno() == Errno::PROTONOSUPPORT => {
            c.error(&conf, &e);
            return Ok(c.report);
        }
        Err(e) => c.error(&conf, &e),
    }
    let root_state = match read_dir_meta_at(&root, backing, &c.fsp) {
        Ok(m) => {
            c.report.dirs += 1;
            c.check_ino(backing, m.ino, &md, true);
            if let Some(ctx) = &m.ctx {
                c.check_nonce(backing, ctx, &md);
            }
            DirState::Known(m.ctx)
        }
        Err(e) => {
            c.error(backing, &e);
            DirState::Unknown
        }
    };
    // Directories still to check: the parent's descriptor (None: the root itself) and the name.
    type Pending = (Option<(Arc<OwnedFd>, OsString)>, PathBuf, DirState);
    let mut stack: Vec<Pending> = vec![(None, backing.to_path_buf(), root_state)];
    let root = Arc::new(root);
    while let Some((loc, dir, state)) = stack.pop() {
        let fd = match &loc {
            None => root
                .try_clone()
                .map_err(|e| crate::store::io_err(dir.display(), e)),
            Some((parent, name)) => {
                store_io::open_subdir(&**parent, name, &dir.display().to_string())
            }
        };
        let fd = match fd {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                c.problem(&dir, format!("cannot open: {}", strip(e.message(), &dir)));
                continue;
            }
        };
        let mut sub = c.check_dir(&fd, &dir, state);
        sub.reverse();
        stack.extend(
            sub.into_iter()
                .map(|(name, path, s)| (Some((fd.clone(), name)), path, s)),
        );
    }
    Ok(c.report)
}

/// Runs `fscryptfs fsck`.
pub fn run(args: FsckArgs) -> Result<(), Failure> {
    let b = &args.backing;
    let _lock = lock_for_reading(b, args.force, Failure::usage)?;
    let report = check(b)?;
    let mut out = String::new();
    for f in &report.findings {
        out.push_str(&format!("{f}\n"));
    }
    let (p, n) = (report.problems(), report.notes());
    if !args.quiet {
        out.push_str(&format!(
            "{}: {} directories, {} files, {} symlinks, {} special files; {p} problem{}, {n} note{}\n",
            b.display(),
            report.dirs,
            report.files,
            report.symlinks,
            report.special,
            if p == 1 { "" } else { "s" },
            if n == 1 { "" } else { "s" },
        ));
    }
    use std::io::Write;
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| Failure::usage(format!("writing stdout: {e}")))?;
    if p > 0 {
        return Err(Failure::op(format!(
            "{p} problem{} found in {}",
            if p == 1 { "" } else { "s" },
            b.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_lengths() {
        for pad in [4, 8, 16, 32] {
            for len in 1..=255usize {
                let ct = len.max(16).next_multiple_of(pad).min(255);
                assert!(valid_ct_len(ct, pad, 255), "pad {pad} len {len}");
            }
        }
        assert!(!valid_ct_len(15, 4, 255));
        assert!(!valid_ct_len(16, 32, 255));
        assert!(!valid_ct_len(20, 8, 255));
        assert!(!valid_ct_len(256, 4, 255));
        assert!(valid_ct_len(3011, 32, 3011));
    }
}
