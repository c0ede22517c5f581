//! fscrypt's hooks: the rules a filesystem applies around its own operations on encrypted
//! directories (the kernel's `fs/crypto/hooks.c` and the checks of `policy.c`).
//!
//! Each function decides, from what the filesystem knows (the directory's key state, the policies
//! of the inodes involved, their file types, the operation's flags, the caller and the keyring),
//! whether an operation may go on and with which errno it fails otherwise. The filesystem calls them
//! the way ext4 calls `fscrypt_*`; it keeps everything about where names and inodes are stored.
//!
//! - [`DirKey`]: a directory's key state (`fscrypt_has_encryption_key`), and
//!   [`DirKey::require`] (`fscrypt_require_key`);
//! - [`has_permitted_context`] (`fscrypt_has_permitted_context`), [`prepare_link`]
//!   (`__fscrypt_prepare_link`), [`prepare_rename`] (`__fscrypt_prepare_rename`);
//! - [`setup_filename`] (`fscrypt_setup_filename`, and so `fscrypt_prepare_lookup`): what a name
//!   operation looks for in a directory, with and without its key;
//! - [`fname_disk_to_usr`] (`fscrypt_fname_disk_to_usr`): the name a directory entry shows;
//! - [`policy_to_inherit`] and [`prepare_new_inode`] (`fscrypt_policy_to_inherit`,
//!   `fscrypt_prepare_new_inode`): the context a new inode gets;
//! - [`set_policy_permission`] and [`prepare_set_policy`] (`fscrypt_ioctl_set_policy`,
//!   `set_encryption_policy`): who may set a policy, on what, and when it is already set.
//!
//! No function here does I/O or keeps state: a question only the filesystem can answer (is this
//! directory empty?) is asked through a closure, only when the rule reaches it.

use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::fname::NAME_MAX;
use crate::keyring::{Caller, Keyring};
use crate::keysetup::InodeKey;
use crate::nokey::NokeyName;
use crate::policy::{FsParams, Policy};
use crate::Errno;

/// The type of an inode, as far as fscrypt cares: regular files, directories and symlinks are
/// encrypted under their directory's policy; everything else (FIFOs, sockets, devices) never is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Special,
}

impl FileType {
    /// Whether inodes of this type are encrypted (`S_ISREG || S_ISDIR || S_ISLNK`).
    pub fn is_encryptable(self) -> bool {
        !matches!(self, FileType::Special)
    }
}

/// An inode as the hooks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inode {
    /// The filesystem's number for it (two inodes are the same one when their numbers are).
    pub ino: u64,
    /// Its type.
    pub file_type: FileType,
    /// Its policy (from its context) when it is encrypted (`IS_ENCRYPTED`).
    pub policy: Option<Policy>,
}

/// A directory's key state for a name operation.
#[derive(Clone)]
pub enum DirKey {
    /// The directory is not encrypted.
    Plain,
    /// Encrypted, with its key set up.
    Key(Arc<InodeKey>),
    /// Encrypted, and its key is not available.
    NoKey,
}

impl DirKey {
    /// The state from the result of setting up the directory's key (`fscrypt_get_encryption_info`):
    /// `Ok(None)` for an unencrypted directory, ENOKEY for a missing key (not an error here: a
    /// directory without its key still lists and looks up no-key names), any other error as it is.
    pub fn from_setup(setup: Result<Option<Arc<InodeKey>>>) -> Result<DirKey> {
        match setup {
            Ok(None) => Ok(DirKey::Plain),
            Ok(Some(k)) => Ok(DirKey::Key(k)),
            Err(e) if e.errno() == Errno::NOKEY => Ok(DirKey::NoKey),
            Err(e) => Err(e),
        }
    }

    /// `fscrypt_require_key`: the directory's key (None when it is not encrypted), or ENOKEY.
    pub fn require(&self) -> Result<Option<Arc<InodeKey>>> {
        match self {
            DirKey::Plain => Ok(None),
            DirKey::Key(k) => Ok(Some(Arc::clone(k))),
            DirKey::NoKey => Err(no_dir_key()),
        }
    }
}

/// ENOKEY for a name operation in a directory without its key.
fn no_dir_key() -> Error {
    Error::no_key("the directory's encryption key is not available")
}

/// `fscrypt_has_permitted_context(parent, child)`: may `child` be an entry of `parent`? Yes when
/// the parent is not encrypted or the child is a special file (never encrypted); otherwise only
/// when the child is encrypted under the very same policy.
pub fn has_permitted_context(parent: &Inode, child: &Inode) -> bool {
    let Some(pp) = &parent.policy else {
        return true;
    };
    if !child.file_type.is_encryptable() {
        return true;
    }
    child.policy.as_ref() == Some(pp)
}

/// `__fscrypt_prepare_link`: may `inode` get a new name in `dir`? ENOKEY when the directory is
/// encrypted and `dir_key` is [`DirKey::NoKey`]; EXDEV when the inode's policy is not the
/// directory's ([`has_permitted_context`]).
pub fn prepare_link(dir_key: &DirKey, dir: &Inode, inode: &Inode) -> Result<()> {
    dir_key.require()?;
    if !has_permitted_context(dir, inode) {
        return Err(Error::new(Errno::XDEV, "link across encryption policies"));
    }
    Ok(())
}

/// `__fscrypt_prepare_rename`: may `source` (an entry of `old_dir`) move to `new_dir`, where
/// `target` is the entry it replaces or, with `exchange` (RENAME_EXCHANGE), swaps with? Both
/// directories need their keys (ENOKEY); across directories the moved inode must be permitted in
/// its new directory, and with `exchange` the target in the old one (EXDEV). Within one directory
/// policies cannot differ, so nothing more is checked.
pub fn prepare_rename(
    old_key: &DirKey,
    old_dir: &Inode,
    new_key: &DirKey,
    new_dir: &Inode,
    source: &Inode,
    target: Option<&Inode>,
    exchange: bool,
) -> Result<()> {
    old_key.require()?;
    new_key.require()?;
    if old_dir.ino == new_dir.ino {
        return Ok(());
    }
    if !has_permitted_context(new_dir, source) {
        return Err(Error::new(Errno::XDEV, "rename across encryption policies"));
    }
    if exchange {
        if let Some(t) = target {
            if !has_permitted_context(old_dir, t) {
                return Err(Error::new(
                    Errno::XDEV,
                    "exchange across encryption policies",
                ));
            }
        }
    }
    Ok(())
}

/// What a name operation looks for in a directory ([`setup_filename`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilenameLookup {
    /// An unencrypted directory: the name as given.
    Plain,
    /// With the directory's key: the name's ciphertext.
    Ciphertext(Vec<u8>),
    /// Without the key (lookups only): the no-key name given, decoded.
    NoKey(NokeyName),
}

/// `fscrypt_setup_filename`: how `name` is looked for in a directory in state `dir`. `lookup`
/// says whether the operation only finds an existing entry (lookup, unlink, rename's source): then
/// a directory without its key accepts no-key names (ENOENT for anything that cannot be one);
/// creating a name needs the key (ENOKEY). ENAMETOOLONG for a name longer than `NAME_MAX`.
pub fn setup_filename(dir: &DirKey, name: &[u8], lookup: bool) -> Result<FilenameLookup> {
    if name.len() > NAME_MAX {
        return Err(Error::new(Errno::NAMETOOLONG, "name longer than 255 bytes"));
    }
    match dir {
        DirKey::Plain => Ok(FilenameLookup::Plain),
        DirKey::Key(k) => Ok(FilenameLookup::Ciphertext(k.encrypt_filename(name)?)),
        DirKey::NoKey if !lookup => Err(no_dir_key()),
        DirKey::NoKey => {
            let s = std::str::from_utf8(name)
                .map_err(|_| Error::new(Errno::NOENT, "not a no-key name"))?;
            Ok(FilenameLookup::NoKey(NokeyName::decode(s)?))
        }
    }
}

/// A directory entry's name as stored, for [`fname_disk_to_usr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskName<'a> {
    /// An entry of an unencrypted directory: its name.
    Plain(&'a [u8]),
    /// An entry of an encrypted directory: its full ciphertext, or None when the filesystem does
    /// not have it (it needs it only with the key, and may fail to recover it).
    Encrypted(Option<&'a [u8]>),
}

/// The name a directory entry shows ([`fname_disk_to_usr`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsrName {
    /// This name: an unencrypted entry's, or an encrypted one's decrypted.
    Name(Vec<u8>),
    /// The entry's no-key name (`NokeyName::encode` of its ciphertext): the key is not there, or
    /// the ciphertext is not known.
    NoKeyName,
    /// The entry's no-key name, because its ciphertext does not decrypt to a valid name (empty,
    /// or containing `/` or NUL): the filesystem may say so.
    Undecryptable,
}

/// `fscrypt_fname_disk_to_usr`: the name an entry shows in a directory in state `dir`. An
/// unencrypted entry shows its name; an encrypted one its plaintext with the key and its no-key
/// name without. A ciphertext that does not decrypt to a valid name shows the no-key name too, so
/// the entry can still be found and removed.
pub fn fname_disk_to_usr(dir: &DirKey, disk: DiskName<'_>) -> UsrName {
    let ct = match (dir, disk) {
        (_, DiskName::Plain(n)) => return UsrName::Name(n.to_vec()),
        (DirKey::Key(k), DiskName::Encrypted(Some(ct))) => (k, ct),
        (_, DiskName::Encrypted(_)) => return UsrName::NoKeyName,
    };
    match ct.0.decrypt_filename(ct.1) {
        Ok(p) if !p.is_empty() && !p.contains(&b'/') && !p.contains(&0) => UsrName::Name(p),
        _ => UsrName::Undecryptable,
    }
}

/// `fscrypt_policy_to_inherit`: the policy of new inodes in a directory with policy `dir` — its
/// own, else the `test_dummy_encryption` policy when the filesystem is mounted with one.
pub fn policy_to_inherit(dir: Option<&Policy>, dummy: Option<&Policy>) -> Option<Policy> {
    dir.or(dummy).copied()
}

/// `fscrypt_prepare_new_inode`: the context of a new inode of type `file_type` in a directory
/// with policy `dir` (a fresh random nonce), or None when it is not encrypted (no policy to
/// inherit, or a special file). The caller has required the directory's key already (the new
/// name's encryption needs it) and sets up the new inode's own key from this context.
pub fn prepare_new_inode(
    dir: Option<&Policy>,
    dummy: Option<&Policy>,
    file_type: FileType,
) -> Result<Option<Context>> {
    match policy_to_inherit(dir, dummy) {
        Some(p) if file_type.is_encryptable() => Context::new_random(p).map(Some),
        _ => Ok(None),
    }
}

/// The first check of `fscrypt_ioctl_set_policy` (`inode_owner_or_capable`): only the inode's
/// owner, or a privileged caller, may set its policy (EACCES).
pub fn set_policy_permission(caller: Caller, owner: u32) -> Result<()> {
    if caller.privileged || caller.uid == owner {
        return Ok(());
    }
    Err(Error::new(Errno::ACCESS, "only the owner may set a policy"))
}

/// What [`prepare_set_policy`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetPolicy {
    /// The inode already has this very policy: nothing to do.
    Unchanged,
    /// Give the (empty directory) inode this policy, with a new context.
    Set(Policy),
}

/// The checks of `fscrypt_ioctl_set_policy` and `set_encryption_policy`, in the kernel's order,
/// once the caller may change the inode ([`set_policy_permission`]) and holds its lock:
/// - an inode with a policy: [`SetPolicy::Unchanged`] when `bytes` are that policy's, else EEXIST;
/// - otherwise ENOTDIR for anything but a directory, ENOTEMPTY when `is_empty` says it has
///   entries (asked only then), EINVAL for a policy the filesystem cannot use
///   (`fscrypt_supported_policy`), and for a v2 policy ENOKEY unless `caller` added its key
///   (`fscrypt_verify_key_added`; privileged callers are exempt).
pub fn prepare_set_policy(
    inode: &Inode,
    bytes: &[u8],
    fs: &FsParams,
    is_empty: impl FnOnce() -> Result<bool>,
    keyring: &Keyring,
    caller: Caller,
) -> Result<SetPolicy> {
    if let Some(existing) = &inode.policy {
        if existing.to_bytes() == bytes {
            return Ok(SetPolicy::Unchanged);
        }
        return Err(Error::new(
            Errno::EXIST,
            "a different policy is already set",
        ));
    }
    if inode.file_type != FileType::Directory {
        return Err(Error::new(Errno::NOTDIR, "policies are set on directories"));
    }
    if !is_empty()? {
        return Err(Error::new(Errno::NOTEMPTY, "the directory is not empty"));
    }
    let policy = Policy::parse(bytes, fs)?;
    if let Policy::V2(p) = &policy {
        keyring.verify_key_added(caller, &p.master_key_identifier)?;
    }
    Ok(SetPolicy::Set(policy))
}

#[cfg(test)]
mod tests;
