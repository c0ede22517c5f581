//! The checker's state and its cross-object checks: the [`Checker`] (the findings so far, and the
//! stable inode numbers and nonces seen, each with its first path and backing inode), how a finding
//! is recorded (a store error keeps the path it names), and the uniqueness and range checks of
//! inode numbers and nonces, where hard links are the one allowed repetition, and (`--repair`)
//! raising the config's inode-number counter past the highest number in use. The checks of one
//! object are in `objects`, of one directory's entries in `entries`.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fscrypt::context::Context;
use fscrypt::policy::FsParams;
use fscrypt::Error;

use super::progress::Progress;
use super::report::{Finding, Report, Severity};
use crate::store::config::{VolumeConfig, CONFIG_MAX, CONFIG_NAME, FIRST_INO, INO_LIMIT, ROOT_INO};
use crate::store::io as store_io;
use crate::store::pending::CacheEpoch;

/// Whether a directory is encrypted, as far as the check knows.
#[derive(Clone, Copy)]
pub(super) enum DirState {
    /// Metadata is valid: its context, if any.
    Known(Option<Context>),
    /// Metadata is damaged: names and policies of its children are not checked.
    Unknown,
}

/// The state of one check.
pub(super) struct Checker {
    pub(super) root: PathBuf,
    pub(super) fsp: FsParams,
    /// The backing store's cache epoch (`store::pending`), by which pending sizes are judged.
    pub(super) epoch: Option<CacheEpoch>,
    pub(super) config: Option<VolumeConfig>,
    pub(super) report: Report,
    /// Stable inode number → (first path, backing dev, backing ino).
    pub(super) inos: HashMap<u64, (PathBuf, u64, u64)>,
    /// Nonce → (first path, backing dev, backing ino).
    pub(super) nonces: HashMap<[u8; 16], (PathBuf, u64, u64)>,
    /// `--repair`: fix what can be fixed without guessing (see `mod.rs`).
    pub(super) repair: bool,
    /// Indices in the findings of the problems "inode number not below next-ino".
    pub(super) ino_behind: Vec<usize>,
    /// The progress bar on a terminal.
    pub(super) progress: Progress,
}

/// Strips the `what: ` prefix the store's messages carry.
pub(super) fn strip<'a>(msg: &'a str, path: &Path) -> &'a str {
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
    pub(super) fn add(&mut self, severity: Severity, path: &Path, message: impl Into<String>) {
        self.report.findings.push(Finding {
            severity,
            path: path.to_path_buf(),
            message: message.into(),
        });
    }

    pub(super) fn problem(&mut self, path: &Path, message: impl Into<String>) {
        self.add(Severity::Problem, path, message);
    }

    pub(super) fn note(&mut self, path: &Path, message: impl Into<String>) {
        self.add(Severity::Note, path, message);
    }

    /// Records a repair: `message` says what was done.
    pub(super) fn repaired(&mut self, path: &Path, message: impl Into<String>) {
        self.add(Severity::Repaired, path, message);
    }

    /// Records an error from the store's parsers (which name the path themselves). The error may
    /// name another path (a side file, a directory's metadata file): it is used as is.
    pub(super) fn error(&mut self, path: &Path, e: &Error) {
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
    pub(super) fn check_ino(&mut self, path: &Path, ino: u64, md: &Metadata, is_root: bool) {
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
                self.ino_behind.push(self.report.findings.len());
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

    /// `--repair`, after the walk: when inode numbers in use are not below the config's
    /// `next-ino`, raises it to one past the highest in use (the config rewritten atomically and
    /// durably through `store::io`, keeping its owner and mode) and replaces those problems by one
    /// repair. Raising the counter only skips numbers, so it is safe whatever the walk missed.
    pub(super) fn raise_next_ino(&mut self, root: &std::os::fd::OwnedFd) {
        if !self.repair || self.ino_behind.is_empty() {
            return;
        }
        let Some(cfg) = self.config.clone() else {
            return;
        };
        let Some(&max) = self.inos.keys().max() else {
            return;
        };
        let conf = self.root.join(CONFIG_NAME);
        if max >= INO_LIMIT {
            // Numbers stop below 2^32: no counter can cover this one (reported as it is).
            return;
        }
        let new = VolumeConfig {
            next_ino: max + 1,
            ..cfg.clone()
        };
        let text = new.to_text();
        let what = conf.display().to_string();
        let r = if text.len() > CONFIG_MAX {
            Err(fscrypt::Error::invalid("config too large"))
        } else {
            store_io::replace_keeping_owner(
                root,
                std::ffi::OsStr::new(CONFIG_NAME),
                text.as_bytes(),
                true,
                &what,
            )
        };
        match r {
            Ok(()) => {
                for i in std::mem::take(&mut self.ino_behind).into_iter().rev() {
                    self.report.findings.remove(i);
                }
                self.config = Some(new);
                self.repaired(
                    &conf,
                    format!(
                        "raised next-ino from {} to {} (the highest inode number in use is {max})",
                        cfg.next_ino,
                        max + 1,
                    ),
                );
            }
            Err(e) => {
                let m = format!(
                    "could not raise next-ino to {}: {}",
                    max + 1,
                    strip(e.message(), &conf)
                );
                self.problem(&conf, m);
            }
        }
    }

    pub(super) fn check_nonce(&mut self, path: &Path, ctx: &Context, md: &Metadata) {
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
