//! Names: user names to backing names (plaintext, or encrypted with the directory's key, long
//! ones with their side file) and back (`display_name`: the plaintext, or the no-key name without
//! the key), and the descriptions of nodes used in error messages.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use fscrypt::hooks::{self, DiskName, FilenameLookup, UsrName};
use fscrypt::nokey::NokeyName;
use fscrypt::{Errno, Result};
use rustix::fs::AtFlags;

use super::keys::DirKey;
use super::mount::Fs;
use super::node::Node;
use super::types::errno;
use crate::store::io as store_io;
use crate::store::names;

impl Fs {
    /// A human description of a backing object, for error messages.
    pub(super) fn describe(&self, node: &Node) -> String {
        node.describe(&self.backing)
    }

    /// The backing path of `node`, for messages: resolved only if it is shown.
    pub(super) fn describe_lazy<'a>(&'a self, node: &'a Node) -> ChildPath<'a> {
        ChildPath {
            backing: &self.backing,
            dir: node,
            bname: OsStr::new(""),
        }
    }

    /// The backing path of `bname` in `dir`, for messages: resolved only if it is shown (an
    /// error), so the common path pays no `readlink` for it.
    pub(super) fn describe_child<'a>(&'a self, dir: &'a Node, bname: &'a OsStr) -> ChildPath<'a> {
        ChildPath {
            backing: &self.backing,
            dir,
            bname,
        }
    }

    /// `fscrypt_setup_filename` for `name` in `dir` (a lookup when `lookup`, else a creation).
    /// The length is checked before the directory's key is looked at: ENAMETOOLONG comes first.
    fn setup_filename(&self, dir: &Node, name: &OsStr, lookup: bool) -> Result<FilenameLookup> {
        if name.len() > names::NAME_MAX {
            return Err(errno(Errno::NAMETOOLONG, "name longer than 255 bytes"));
        }
        hooks::setup_filename(&self.dir_key(dir)?, name.as_bytes(), lookup)
    }

    /// The backing name of `name` in `dir`, and the ciphertext name when encrypted (the caller
    /// needs it for a side file). ENOENT for a name that cannot exist without the key.
    pub(super) fn backing_name(
        &self,
        dir: &Node,
        name: &OsStr,
    ) -> Result<(OsString, Option<Vec<u8>>)> {
        match self.setup_filename(dir, name, true)? {
            FilenameLookup::Plain => Ok((names::plain_to_backing(name)?, None)),
            FilenameLookup::Ciphertext(ct) => Ok((names::ct_to_backing(&ct), Some(ct))),
            FilenameLookup::NoKey(n) => {
                if n.dirhash() != names::DIRHASH || !names::is_encrypted_entry(name.as_bytes()) {
                    return Err(errno(Errno::NOENT, "not a no-key name of this volume"));
                }
                Ok((name.to_os_string(), None))
            }
        }
    }

    /// The backing name for creating `name` in `dir`: needs the directory's key.
    pub(super) fn new_backing_name(
        &self,
        dir: &Node,
        name: &OsStr,
    ) -> Result<(OsString, Option<Vec<u8>>)> {
        match self.setup_filename(dir, name, false)? {
            FilenameLookup::Ciphertext(ct) => Ok((names::ct_to_backing(&ct), Some(ct))),
            _ => Ok((names::plain_to_backing(name)?, None)),
        }
    }

    /// Writes the long-name side file of an entry (before the entry exists).
    pub(super) fn write_side_file(&self, dir: &Node, bname: &OsStr, ct: &[u8]) -> Result<()> {
        if !names::needs_side_file(ct) {
            return Ok(());
        }
        let side = names::side_name(bname);
        let what = self.describe_child(dir, &side);
        // Replaced, not created: a side file left by a crash between its write and the entry's
        // creation may be there.
        store_io::replace(&*dir.fd_dir()?, &side, ct, 0o644, false, &what)
    }

    pub(super) fn remove_side_file(&self, dirfd: &OwnedFd, bname: &OsStr) {
        // Only a hashed name has one: no backing call for the others.
        if names::has_side_file(bname.as_bytes()) {
            let _ = rustix::fs::unlinkat(dirfd, names::side_name(bname), AtFlags::empty());
        }
    }

    /// The user-visible name of backing entry `bname` in `dir` given the key state.
    pub(super) fn display_name(
        &self,
        dirfd: &OwnedFd,
        dk: &DirKey,
        bname: &OsStr,
    ) -> Option<OsString> {
        use std::os::unix::ffi::OsStringExt;
        let plain;
        let ct;
        let disk = match dk {
            DirKey::Plain => {
                plain = names::backing_to_plain(bname)?;
                DiskName::Plain(plain.as_bytes())
            }
            _ if !names::is_encrypted_entry(bname.as_bytes()) => return None,
            DirKey::NoKey => DiskName::Encrypted(None),
            DirKey::Key(_) => {
                // The full ciphertext: in the name, or in the side file of a long one (None:
                // the side file cannot be trusted, the no-key name is shown).
                let n = NokeyName::decode(bname.to_str()?).ok()?;
                ct = match n.full_ciphertext() {
                    Some(ct) => Some(ct.to_vec()),
                    None => {
                        let side = names::side_name(bname);
                        let what = format!("side file {}", side.to_string_lossy());
                        match store_io::read_bounded(dirfd, &side, names::NAME_MAX, &what) {
                            Ok(Some(buf)) if n.matches(&buf) => Some(buf),
                            Ok(Some(_)) => {
                                tracing::warn!(
                                    "side file of {} does not match its name; showing the no-key name",
                                    bname.to_string_lossy()
                                );
                                None
                            }
                            Ok(None) => return None,
                            Err(e) => {
                                tracing::error!("{e}; showing the no-key name");
                                None
                            }
                        }
                    }
                };
                DiskName::Encrypted(ct.as_deref())
            }
        };
        match hooks::fname_disk_to_usr(dk, disk) {
            UsrName::Name(n) => Some(OsString::from_vec(n)),
            UsrName::NoKeyName => Some(bname.to_os_string()),
            UsrName::Undecryptable => {
                tracing::warn!(
                    "cannot decrypt the name {}; showing the no-key name",
                    bname.to_string_lossy()
                );
                Some(bname.to_os_string())
            }
        }
    }
}

/// A backing object, or a name in a backing directory, described when displayed
/// ([`Fs::describe_lazy`], [`Fs::describe_child`]).
pub(super) struct ChildPath<'a> {
    backing: &'a std::path::Path,
    dir: &'a Node,
    bname: &'a OsStr,
}

impl std::fmt::Display for ChildPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.dir.describe(self.backing);
        if self.bname.is_empty() {
            return f.write_str(&dir);
        }
        write!(f, "{dir}/{}", self.bname.to_string_lossy())
    }
}
