//! `fsck`'s checks of one backing object: it reads (directory metadata, file header, symlink
//! target), its inode number and nonce (through the checker), its policy against its directory's,
//! a per-file file's length against its size and its header's reserved bytes, a per-extent file's
//! log (`ExtentFile::check`; with `--repair` a torn tail is cut first), an encrypted symlink's
//! ciphertext length.

use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::path::Path;

use super::checker::{strip, valid_ct_len, Checker, DirState};
use crate::offline::objects::{read_object_at, read_regular_at, stored_file, Kind, Stored};
use crate::store::config::ContentsLayout;
use crate::store::extent::ExtentFile;
use crate::store::io::{self as store_io, Access};
use crate::store::meta::{FileHeader, SymlinkTarget};
use crate::store::pending::{PendingSize, PENDING_END};
use crate::store::{FILE_HEADER_SIZE, SYMLINK_CIPHERTEXT_MAX};

impl Checker {
    /// Checks one backing object, open as `fd` (`O_PATH`, from `open_entry_md`); returns the
    /// state of a directory to descend into.
    pub(super) fn check_object(
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
                let stored = stored_file(header, &block, md, self.epoch.as_ref(), &self.fsp);
                opened = Some((f, block));
                stored
            })
        } else {
            read_object_at(fd, md, path, &self.fsp, self.epoch.as_ref())
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
            Kind::File => self.report.files += 1,
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
            Stored::File { header, .. } if header.layout == ContentsLayout::Extent => {
                if let Some((f, _)) = opened {
                    self.check_extent_file(fd, path, header, f);
                }
            }
            Stored::File {
                header,
                pending,
                backing_len,
            } => {
                let size = stored.per_file_size().unwrap_or(header.size);
                self.check_pending_size(path, header.size, *pending);
                let du = header
                    .ctx
                    .map_or(4096, |c| 1u64 << c.policy().data_unit_bits(&self.fsp));
                // Encrypted files hold whole units; unencrypted ones may end mid-block.
                let want = FILE_HEADER_SIZE + size.div_ceil(du) * du;
                let need = if header.ctx.is_some() {
                    want
                } else {
                    FILE_HEADER_SIZE + size
                };
                if *backing_len < need {
                    self.problem(
                        path,
                        format!("backing file is {backing_len} bytes; size {size} needs {need}"),
                    );
                } else if *backing_len > want {
                    self.note(
                        path,
                        format!(
                            "{} bytes beyond the recorded size {size} (left by a crash; cut at the next change)",
                            backing_len - want,
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
    /// With `--repair` the file is reopened for writing (through `store::io`, from its `O_PATH`
    /// descriptor `fd`) and a torn tail beyond the log recovery keeps is cut first
    /// (`ExtentFile::cut_torn_tail`, what the engine does before its next append).
    fn check_extent_file(&mut self, fd: &OwnedFd, path: &Path, header: &FileHeader, file: File) {
        let Some(ctx) = header.ctx else {
            self.problem(path, "per-extent file without an encryption context");
            return;
        };
        let policy = *ctx.policy();
        let du = 1usize << policy.data_unit_bits(&self.fsp);
        let r = ExtentFile::open(file, &policy, du).and_then(|ef| {
            let ef = if self.repair {
                self.cut_torn_tail(fd, path, ef, &policy, du)
            } else {
                ef
            };
            ef.check()
        });
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

    /// `--repair`: when the per-extent file `ef` (opened read-only) has bytes beyond the end of
    /// its log, reopens it for writing (through `store::io`, from its `O_PATH` descriptor `fd`),
    /// recovers it again and cuts them (`ExtentFile::cut_torn_tail`). Returns the file to check:
    /// the reopened one, or `ef` as it was when nothing was cut (a failure is a problem).
    fn cut_torn_tail(
        &mut self,
        fd: &OwnedFd,
        path: &Path,
        ef: ExtentFile,
        policy: &fscrypt::policy::Policy,
        du: usize,
    ) -> ExtentFile {
        let what = path.display().to_string();
        let len = match rustix::fs::fstat(fd) {
            Ok(st) => st.st_size as u64,
            Err(_) => return ef,
        };
        if len <= ef.backing_len() {
            return ef;
        }
        let cut = store_io::reopen_file(fd, Access::ReadWrite, &what)
            .and_then(|f| ExtentFile::open(f, policy, du))
            .and_then(|mut rw| {
                let end = rw.backing_len();
                rw.cut_torn_tail().map(|n| (rw, n, end))
            });
        match cut {
            Ok((rw, n, end)) => {
                self.repaired(
                    path,
                    format!(
                        "cut {n} bytes of an incomplete record beyond the end of the log \
                         (backing offset {end}; last commit at {})",
                        rw.committed_end()
                    ),
                );
                rw
            }
            Err(e) => {
                self.problem(
                    path,
                    format!("torn tail not cut: {}", strip(e.message(), path)),
                );
                ef
            }
        }
    }

    /// The reserved bytes of a per-file header (after the pending size record: 120..4096) must
    /// be zero.
    fn check_header_reserved(&mut self, path: &Path, block: &[u8]) {
        if block
            .get(PENDING_END..)
            .is_some_and(|r| r.iter().any(|&b| b != 0))
        {
            self.problem(
                path,
                format!("nonzero reserved bytes in the file header ({PENDING_END}..4096)"),
            );
        }
    }

    /// A per-file file's pending size record (`store::pending`) against its committed size.
    fn check_pending_size(&mut self, path: &Path, committed: u64, pending: Option<PendingSize>) {
        match pending {
            Some(PendingSize::Trusted(size)) if size != committed => self.note(
                path,
                format!(
                    "size {size} recorded at close, not yet committed (committed: {committed}); \
                     the next mount commits it"
                ),
            ),
            Some(PendingSize::Stale(size)) if size != committed => self.note(
                path,
                format!(
                    "a size change to {size} recorded at close was lost with the backing store's \
                     cache (a crash, reboot or remount before its commit); the committed size \
                     {committed} holds"
                ),
            ),
            Some(PendingSize::Damaged) => {
                self.problem(path, "damaged pending size record (header bytes 80..120)");
            }
            _ => {}
        }
    }
}
