//! Names: user names to backing names (plaintext, or encrypted with the directory's key, long
//! ones with their side file) and back (`display_name`: the plaintext, or the no-key name without
//! the key), and the descriptions of nodes used in error messages.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

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
        rustix::fs::readlink(node.proc_path(), Vec::new())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{} (inode {})", self.backing.display(), node.ino))
    }

    pub(super) fn describe_child(&self, dir: &Node, bname: &OsStr) -> String {
        format!("{}/{}", self.describe(dir), bname.to_string_lossy())
    }

    /// The backing name of `name` in `dir`, and the ciphertext name when encrypted (the caller
    /// needs it for a side file). ENOENT for a name that cannot exist without the key.
    pub(super) fn backing_name(
        &self,
        dir: &Node,
        name: &OsStr,
    ) -> Result<(OsString, Option<Vec<u8>>)> {
        if name.len() > names::NAME_MAX {
            return Err(errno(Errno::NAMETOOLONG, "name longer than 255 bytes"));
        }
        match self.dir_key(dir)? {
            DirKey::Plain => Ok((names::plain_to_backing(name)?, None)),
            DirKey::Key(k) => {
                let ct = k.encrypt_filename(name.as_bytes())?;
                Ok((names::ct_to_backing(&ct), Some(ct)))
            }
            DirKey::NoKey => {
                let s = name
                    .to_str()
                    .ok_or_else(|| errno(Errno::NOENT, "not a no-key name"))?;
                let n = NokeyName::decode(s)?;
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
        if name.len() > names::NAME_MAX {
            return Err(errno(Errno::NAMETOOLONG, "name longer than 255 bytes"));
        }
        match self.require_dir_key(dir)? {
            None => Ok((names::plain_to_backing(name)?, None)),
            Some(k) => {
                let ct = k.encrypt_filename(name.as_bytes())?;
                Ok((names::ct_to_backing(&ct), Some(ct)))
            }
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
        if names::is_encrypted_entry(bname.as_bytes()) {
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
        match dk {
            DirKey::Plain => names::backing_to_plain(bname),
            DirKey::NoKey => {
                names::is_encrypted_entry(bname.as_bytes()).then(|| bname.to_os_string())
            }
            DirKey::Key(k) => {
                if !names::is_encrypted_entry(bname.as_bytes()) {
                    return None;
                }
                let n = NokeyName::decode(bname.to_str()?).ok()?;
                let ct = match n.full_ciphertext() {
                    Some(ct) => ct.to_vec(),
                    None => {
                        let side = names::side_name(bname);
                        let what = format!("side file {}", side.to_string_lossy());
                        let buf = match store_io::read_bounded(dirfd, &side, names::NAME_MAX, &what)
                        {
                            Ok(Some(b)) => b,
                            Ok(None) => return None,
                            Err(e) => {
                                tracing::error!("{e}; showing the no-key name");
                                return Some(bname.to_os_string());
                            }
                        };
                        if !n.matches(&buf) {
                            tracing::warn!(
                                "side file of {} does not match its name; showing the no-key name",
                                bname.to_string_lossy()
                            );
                            return Some(bname.to_os_string());
                        }
                        buf
                    }
                };
                match k.decrypt_filename(&ct) {
                    Ok(p) if !p.is_empty() && !p.contains(&b'/') && !p.contains(&0) => {
                        Some(OsString::from_vec(p))
                    }
                    _ => {
                        tracing::warn!(
                            "cannot decrypt the name {}; showing the no-key name",
                            bname.to_string_lossy()
                        );
                        Some(bname.to_os_string())
                    }
                }
            }
        }
    }
}
