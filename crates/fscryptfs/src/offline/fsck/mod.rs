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
//! The volume lock (`.fscryptfs.lock`) is held shared during the check (exclusive with `--repair`):
//! a volume mounted read-write is refused (exit 2) unless `--force`, and no read-write mount can
//! start while it runs. The lock
//! file itself must be a regular file with one link.
//!
//! Findings are *problems* (exit 1) or *notes* (exit 0): notes are what a crash legitimately leaves
//! behind and the daemon cleans up or ignores (temporary names, orphan side files, data beyond the
//! recorded size, special-file records of names that are gone or no longer special files).
//!
//! `--repair` fixes what can be fixed without guessing, under the volume lock held *exclusive*
//! (any mount, read-only or not, refuses it: exit 2; `--force` cannot be combined with it), each
//! fix one `repaired: PATH: what was done` line: an orphan side file is removed; the records of
//! names that are gone or no longer special files are dropped from `.fscryptfs.special` (rewritten,
//! or removed when empty; not when the record file has problems of its own, nor when a special
//! file of the directory has no record); a config `next-ino` at or below an inode number in use is
//! raised past the highest; temporary objects (`.fscryptfs.tmp.*`, the fixed names of older
//! versions) are removed (a directory only when all it holds is fscryptfs's own); so is a regular
//! file shorter than a header where an entry belongs (an interrupted create: the daemon makes the
//! name with `O_EXCL`, then writes the header; without `--repair` a problem); a torn tail of a
//! per-extent log (bytes beyond the last whole record, which recovery drops) is cut (the file is
//! reopened for writing only then). Everything else is reported as without `--repair` and left
//! alone. Every write goes through `store::io` (no symlink followed; rewrites are a fresh temporary
//! file renamed over the old one, keeping its mode and owner). Exit status: 0 nothing found (notes
//! allowed), 1 problems left, 4 everything found was repaired (notes allowed).
//!
//! On a terminal, a spinner with the counts so far shows on stderr once the check has run for a
//! second (`progress`).
//!
//! This file owns the command (its arguments, the walk over the tree, the summary and the exit
//! status); the checks are in `checker` (inode numbers and nonces across the volume, the
//! `next-ino` repair), `objects` (one backing object, the torn-tail repair) and `entries` (one
//! directory's names and special-file record, the leftover repairs), on top of the offline reader
//! ([`crate::offline::objects`]). [`report`] holds what was found, `progress` the spinner.

mod checker;
mod entries;
mod objects;
mod progress;
pub mod report;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use fscrypt::Errno;

use crate::error::CommandError;
use crate::offline::lock::{lock_for_reading, lock_for_repair};
use crate::store::config::{VolumeConfig, CONFIG_NAME};
use crate::store::fs_params;
use crate::store::io as store_io;
use crate::store::meta::{read_dir_meta_at, DIR_META_NAME};
use crate::store::pending::CacheEpoch;
pub use checker::valid_ct_len;
use checker::{strip, Checker, DirState};
use progress::Progress;
pub use report::{Finding, Report, Severity};

/// `fscryptfs fsck`.
#[derive(Args, Debug)]
#[command(
    about = "Check a volume's backing store offline (no keys needed)",
    long_about = "Check the backing directory of an unmounted (or read-only mounted) volume against \
its format (docs/FORMAT.md): config, directory metadata, file headers and checksums, contexts and \
policy inheritance, no-key names and long-name side files, inode-number and nonce uniqueness, \
symlink encodings, sizes, special-file records, and the type and size of every object where \
fscryptfs's own files belong (no symlink inside the volume is followed, no FIFO opened). Each \
finding is one line `BACKING_PATH: message` on stdout (`note:` before the message for what a crash \
legitimately leaves behind), then a summary line. On a terminal, a spinner with the counts so far \
shows on stderr once the check has run for a second.\n\n\
With --repair, what can be repaired without guessing is repaired, each repair one line \
`repaired: BACKING_PATH: what was done`: orphaned long-name side files and leftover temporary \
files and directories (.fscryptfs.tmp.*) are removed, so are files left shorter than a header by \
an interrupted create (they hold no data), records of names that are gone are dropped from \
.fscryptfs.special, a config next-ino behind the highest inode number in use is raised, and \
the torn tail of a per-extent log is cut at its last whole record. Everything else is reported and \
left as it is.\n\n\
A volume mounted read-write is refused unless --force (its lock is held). --repair takes the lock \
exclusively: it refuses any mounted volume, and cannot be combined with --force.\n\n\
Exit status: 0 no problems (notes allowed); 1 problems found (with --repair: problems left \
unrepaired); 4 everything found was repaired (--repair; notes it leaves allowed); 2 the check \
could not run (missing or unreadable backing directory, not a volume, mounted, bad arguments). \
Unlike e2fsck (1 errors corrected, 4 errors left), 1 keeps meaning what it means without \
--repair: problems remain."
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
    /// Repair what can be repaired without guessing (orphaned side files and special-file
    /// records, a next-ino behind the inode numbers in use, leftover temporary files, files of
    /// interrupted creates, torn per-extent log tails); report the rest. Exit 4 when everything found was repaired.
    #[arg(long, conflicts_with = "force")]
    repair: bool,
}

/// How [`check_with`] runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Repair what can be repaired without guessing (the caller holds the volume lock exclusive).
    pub repair: bool,
    /// Show a spinner on stderr when it is a terminal and the check takes more than a second.
    pub progress: bool,
}

/// Checks the volume in `backing`. Err (exit 2) when the check cannot run.
///
/// Every object is opened through `store::io`, relative to its directory's descriptor: never
/// through a symlink, never blocking on a FIFO or device (`O_PATH` and a type check first), and
/// metadata is read with the bound FORMAT.md gives (larger is a problem).
pub fn check(backing: &Path) -> Result<Report, CommandError> {
    check_with(backing, CheckOptions::default())
}

/// Checks the volume in `backing` like [`check`]; with `opts.repair` also repairs what can be
/// repaired without guessing (each repair a [`Severity::Repaired`] finding; the caller must hold
/// the volume lock exclusive, `offline::lock::lock_for_repair`).
pub fn check_with(backing: &Path, opts: CheckOptions) -> Result<Report, CommandError> {
    let md = fs::metadata(backing)
        .map_err(|e| CommandError::usage(format!("{}: {e}", backing.display())))?;
    if !md.is_dir() {
        return Err(CommandError::usage(format!(
            "{}: not a directory",
            backing.display()
        )));
    }
    let root =
        store_io::open_backing_root(backing).map_err(|e| CommandError::usage(e.message()))?;
    store_io::open_listing(&root, &backing.display().to_string())
        .map_err(|e| CommandError::usage(e.message()))?;
    let mut c = Checker {
        epoch: CacheEpoch::of(&root),
        root: backing.to_path_buf(),
        fsp: fs_params(),
        config: None,
        report: Report::default(),
        inos: HashMap::new(),
        nonces: HashMap::new(),
        repair: opts.repair,
        ino_behind: Vec::new(),
        progress: if opts.progress {
            Progress::on_stderr()
        } else {
            Progress::none()
        },
    };
    let conf = backing.join(CONFIG_NAME);
    let exists = |name: &str| {
        store_io::open_object(&root, OsStr::new(name), name).is_ok_and(|o| o.is_some())
    };
    match VolumeConfig::load(backing) {
        Ok(cfg) => c.config = Some(cfg),
        Err(e) if e.errno() == Errno::NOENT && !exists(CONFIG_NAME) => {
            if !exists(DIR_META_NAME) {
                return Err(CommandError::usage(e.message()));
            }
            c.problem(&conf, "volume config is missing");
        }
        Err(e) if e.errno() == Errno::PROTONOSUPPORT => {
            c.error(&conf, &e);
            return Ok(c.report);
        }
        Err(e) => c.error(&conf, &e),
    }
    let root_state = match read_dir_meta_at(&root, &c.fsp, backing) {
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
    c.raise_next_ino(&root);
    c.progress.finish();
    Ok(c.report)
}

/// Does `backing` look like a volume (a config or root metadata, of any type)? `--repair` takes the
/// lock, which may create the lock file, only then; anything else is left for the check to refuse.
fn looks_like_volume(backing: &Path) -> bool {
    let Ok(root) = store_io::open_backing_root(backing) else {
        return false;
    };
    [CONFIG_NAME, DIR_META_NAME]
        .iter()
        .any(|n| store_io::open_object(&root, OsStr::new(n), n).is_ok_and(|o| o.is_some()))
}

/// Runs `fscryptfs fsck`.
pub fn run(args: FsckArgs) -> Result<(), CommandError> {
    let b = &args.backing;
    let _lock = if args.repair {
        if looks_like_volume(b) {
            Some(lock_for_repair(b)?)
        } else {
            None
        }
    } else {
        lock_for_reading(b, args.force, CommandError::usage)?
    };
    let opts = CheckOptions {
        repair: args.repair,
        progress: true,
    };
    let report = check_with(b, opts)?;
    let mut out = String::new();
    for f in &report.findings {
        out.push_str(&format!("{f}\n"));
    }
    let (p, n, r) = (report.problems(), report.notes(), report.repaired());
    if !args.quiet {
        out.push_str(&format!(
            "{}: {} directories, {} files, {} symlinks, {} special files; {p} problem{}, {n} note{}{}\n",
            b.display(),
            report.dirs,
            report.files,
            report.symlinks,
            report.special,
            if p == 1 { "" } else { "s" },
            if n == 1 { "" } else { "s" },
            if args.repair {
                format!(", {r} repaired")
            } else {
                String::new()
            },
        ));
    }
    use std::io::Write;
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| CommandError::usage(format!("writing stdout: {e}")))?;
    if p > 0 {
        return Err(CommandError::op(format!(
            "{p} problem{} found in {}{}",
            if p == 1 { "" } else { "s" },
            b.display(),
            if args.repair {
                format!(" and left unrepaired ({r} repaired)")
            } else {
                String::new()
            }
        )));
    }
    if r > 0 {
        return Err(CommandError {
            exit_code: EXIT_REPAIRED,
            message: format!(
                "{r} repair{} made in {}",
                if r == 1 { "" } else { "s" },
                b.display()
            ),
        });
    }
    Ok(())
}

/// Exit status of `fsck --repair` when everything found was repaired (issue 11's "0 clean, 1
/// problems found, 4 repaired"; e2fsck itself uses 1 for corrected and 4 for left uncorrected).
pub const EXIT_REPAIRED: i32 = 4;
