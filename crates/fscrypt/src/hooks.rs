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
mod tests {
    use super::*;
    use crate::keysetup::{InodeKind, InodeParams, MasterSecret};
    use crate::policy::{PolicyV1, PolicyV2};
    use crate::secret::SecretBytes;
    use crate::EncryptionMode;
    use std::cell::Cell;

    /// The result of a directory's key setup.
    type KeySetup = Result<Option<Arc<InodeKey>>>;
    /// (dir key, dir policy, inode type, inode policy, expected errno)
    type LinkCase = (
        DirKey,
        Option<Policy>,
        FileType,
        Option<Policy>,
        Option<Errno>,
    );
    /// (dir policy, dummy policy, type, expected policy of the new inode)
    type InheritCase = (Option<Policy>, Option<Policy>, FileType, Option<Policy>);

    const RAW: [u8; 64] = [0x42; 64];
    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;

    fn fsp() -> FsParams {
        FsParams::ext4(12, true)
    }

    fn v2(identifier: [u8; 16], flags: u8) -> Policy {
        Policy::V2(PolicyV2 {
            contents_mode: EncryptionMode::Aes256Xts,
            filenames_mode: EncryptionMode::Aes256Cts,
            flags,
            log2_data_unit_size: 0,
            master_key_identifier: identifier,
        })
    }

    fn v1() -> Policy {
        Policy::V1(PolicyV1 {
            contents_mode: EncryptionMode::Aes256Xts,
            filenames_mode: EncryptionMode::Aes256Cts,
            flags: 0,
            master_key_descriptor: [5; 8],
        })
    }

    /// Two distinct policies.
    fn p1() -> Policy {
        v2([1; 16], 0)
    }
    fn p2() -> Policy {
        v2([2; 16], 0)
    }

    fn inode(ino: u64, file_type: FileType, policy: Option<Policy>) -> Inode {
        Inode {
            ino,
            file_type,
            policy,
        }
    }

    /// A directory key under a v2 policy of `RAW`, PAD_32.
    fn dir_key() -> Arc<InodeKey> {
        let master = MasterSecret::new_v2(&RAW).unwrap();
        let policy = v2(master.identifier().unwrap(), 3);
        let ctx = Context::new(policy, [7; 16]);
        let params = InodeParams {
            kind: InodeKind::Directory,
            ino: 2,
            fs_uuid: [1; 16],
        };
        Arc::new(InodeKey::setup(&master, &ctx, &params, &fsp()).unwrap())
    }

    fn errno_of<T: std::fmt::Debug>(r: Result<T>) -> Option<Errno> {
        r.err().map(|e| e.errno())
    }

    use FileType::{Directory as D, Regular as R, Special as S, Symlink as L};

    #[test]
    fn has_permitted_context_table() {
        // (parent policy, child type, child policy, permitted)
        let cases: &[(Option<Policy>, FileType, Option<Policy>, bool)] = &[
            // An unencrypted parent permits everything.
            (None, R, None, true),
            (None, D, Some(p1()), true),
            (None, L, Some(p2()), true),
            (None, S, None, true),
            // An encrypted parent: the same policy only...
            (Some(p1()), R, Some(p1()), true),
            (Some(p1()), D, Some(p1()), true),
            (Some(p1()), L, Some(p1()), true),
            (Some(p1()), R, Some(p2()), false),
            (Some(p1()), D, Some(p2()), false),
            (Some(p1()), L, Some(v1()), false),
            (Some(p1()), R, None, false),
            (Some(p1()), D, None, false),
            (Some(p1()), L, None, false),
            // ...except for special files, never encrypted.
            (Some(p1()), S, None, true),
            // Same keys, different flags: different policies.
            (Some(p1()), R, Some(v2([1; 16], 3)), false),
        ];
        for (i, (pp, ft, cp, want)) in cases.iter().enumerate() {
            let got = has_permitted_context(&inode(1, D, *pp), &inode(2, *ft, *cp));
            assert_eq!(got, *want, "case {i}");
        }
    }

    #[test]
    fn dir_key_from_setup_and_require() {
        let k = dir_key();
        let cases: Vec<(KeySetup, Option<Errno>, &str)> = vec![
            (Ok(None), None, "plain"),
            (Ok(Some(Arc::clone(&k))), None, "key"),
            (Err(Error::no_key("absent")), None, "nokey"),
            (Err(Error::new(Errno::IO, "x")), Some(Errno::IO), ""),
            (Err(Error::corrupt("x")), Some(Errno::UCLEAN), ""),
        ];
        for (setup, err, state) in cases {
            match DirKey::from_setup(setup) {
                Err(e) => assert_eq!(Some(e.errno()), err),
                Ok(dk) => {
                    assert_eq!(err, None);
                    match (state, &dk) {
                        ("plain", DirKey::Plain) => assert!(dk.require().unwrap().is_none()),
                        ("key", DirKey::Key(_)) => assert!(dk.require().unwrap().is_some()),
                        ("nokey", DirKey::NoKey) => {
                            assert_eq!(errno_of(dk.require()), Some(Errno::NOKEY))
                        }
                        _ => panic!("unexpected state for {state}"),
                    }
                }
            }
        }
    }

    #[test]
    fn prepare_link_table() {
        let k = DirKey::Key(dir_key());
        // (dir key, dir policy, inode type, inode policy, expected errno)
        let cases: Vec<LinkCase> = vec![
            (DirKey::Plain, None, R, None, None),
            (DirKey::Plain, None, R, Some(p1()), None),
            (DirKey::Plain, None, S, None, None),
            (k.clone(), Some(p1()), R, Some(p1()), None),
            (k.clone(), Some(p1()), L, Some(p1()), None),
            (k.clone(), Some(p1()), S, None, None),
            (k.clone(), Some(p1()), R, Some(p2()), Some(Errno::XDEV)),
            (k.clone(), Some(p1()), R, None, Some(Errno::XDEV)),
            (k.clone(), Some(p1()), L, None, Some(Errno::XDEV)),
            // The key comes first: ENOKEY even where the contexts would not be permitted.
            (DirKey::NoKey, Some(p1()), R, Some(p1()), Some(Errno::NOKEY)),
            (DirKey::NoKey, Some(p1()), R, None, Some(Errno::NOKEY)),
            (DirKey::NoKey, Some(p1()), S, None, Some(Errno::NOKEY)),
        ];
        for (i, (dk, dp, ft, ip, want)) in cases.into_iter().enumerate() {
            let r = prepare_link(&dk, &inode(1, D, dp), &inode(2, ft, ip));
            assert_eq!(errno_of(r), want, "case {i}");
        }
    }

    #[test]
    fn prepare_rename_table() {
        let k = DirKey::Key(dir_key());
        struct Case {
            old: (DirKey, u64, Option<Policy>),
            new: (DirKey, u64, Option<Policy>),
            source: (FileType, Option<Policy>),
            target: Option<(FileType, Option<Policy>)>,
            exchange: bool,
            want: Option<Errno>,
        }
        let plain = |ino| (DirKey::Plain, ino, None);
        let enc = |ino, p| (k.clone(), ino, Some(p));
        let locked = |ino, p| (DirKey::NoKey, ino, Some(p));
        let cases = vec![
            // Unencrypted to unencrypted: anything goes.
            Case {
                old: plain(1),
                new: plain(2),
                source: (R, Some(p1())),
                target: None,
                exchange: false,
                want: None,
            },
            // Out of an encrypted directory into an unencrypted one: allowed (the kernel's rule
            // checks the new directory only).
            Case {
                old: enc(1, p1()),
                new: plain(2),
                source: (R, Some(p1())),
                target: None,
                exchange: false,
                want: None,
            },
            // Into an encrypted directory: the source's policy must be the directory's.
            Case {
                old: plain(1),
                new: enc(2, p1()),
                source: (R, None),
                target: None,
                exchange: false,
                want: Some(Errno::XDEV),
            },
            Case {
                old: enc(1, p2()),
                new: enc(2, p1()),
                source: (D, Some(p2())),
                target: None,
                exchange: false,
                want: Some(Errno::XDEV),
            },
            Case {
                old: enc(1, p1()),
                new: enc(2, p1()),
                source: (L, Some(p1())),
                target: None,
                exchange: false,
                want: None,
            },
            // Special files move anywhere.
            Case {
                old: plain(1),
                new: enc(2, p1()),
                source: (S, None),
                target: None,
                exchange: false,
                want: None,
            },
            // A replaced target is not checked without RENAME_EXCHANGE...
            Case {
                old: enc(1, p1()),
                new: plain(2),
                source: (R, Some(p1())),
                target: Some((R, None)),
                exchange: false,
                want: None,
            },
            // ...with it, the target must be permitted in the old directory.
            Case {
                old: enc(1, p1()),
                new: plain(2),
                source: (R, Some(p1())),
                target: Some((R, None)),
                exchange: true,
                want: Some(Errno::XDEV),
            },
            Case {
                old: enc(1, p1()),
                new: plain(2),
                source: (R, Some(p1())),
                target: Some((S, None)),
                exchange: true,
                want: None,
            },
            Case {
                old: enc(1, p1()),
                new: enc(2, p1()),
                source: (R, Some(p1())),
                target: Some((D, Some(p1()))),
                exchange: true,
                want: None,
            },
            Case {
                old: plain(1),
                new: enc(2, p1()),
                source: (R, Some(p1())),
                target: Some((R, None)),
                exchange: true,
                want: None,
            },
            // The source is checked before the target.
            Case {
                old: enc(1, p2()),
                new: enc(2, p1()),
                source: (R, Some(p2())),
                target: Some((R, Some(p1()))),
                exchange: true,
                want: Some(Errno::XDEV),
            },
            // An exchange without a target is not this hook's to refuse.
            Case {
                old: enc(1, p1()),
                new: plain(2),
                source: (R, Some(p1())),
                target: None,
                exchange: true,
                want: None,
            },
            // Within one directory nothing but the key is checked.
            Case {
                old: enc(1, p1()),
                new: enc(1, p1()),
                source: (R, Some(p2())),
                target: Some((R, None)),
                exchange: true,
                want: None,
            },
            // Both keys, old first, before any policy.
            Case {
                old: locked(1, p1()),
                new: enc(2, p2()),
                source: (R, Some(p1())),
                target: None,
                exchange: false,
                want: Some(Errno::NOKEY),
            },
            Case {
                old: enc(1, p1()),
                new: locked(2, p2()),
                source: (R, Some(p1())),
                target: None,
                exchange: false,
                want: Some(Errno::NOKEY),
            },
            Case {
                old: locked(1, p1()),
                new: locked(1, p1()),
                source: (R, Some(p1())),
                target: None,
                exchange: false,
                want: Some(Errno::NOKEY),
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let od = inode(c.old.1, D, c.old.2);
            let nd = inode(c.new.1, D, c.new.2);
            let src = inode(10, c.source.0, c.source.1);
            let dst = c.target.map(|(t, p)| inode(11, t, p));
            let r = prepare_rename(&c.old.0, &od, &c.new.0, &nd, &src, dst.as_ref(), c.exchange);
            assert_eq!(errno_of(r), c.want, "case {i}");
        }
    }

    #[test]
    fn setup_filename_table() {
        let key = dir_key();
        let k = DirKey::Key(Arc::clone(&key));
        let ct = key.encrypt_filename(b"hello").unwrap();
        let nokey = NokeyName::encode([0; 8], &ct);
        let long_ct = key.encrypt_filename(&[b'x'; 200]).unwrap();
        let long_nokey = NokeyName::encode([0; 8], &long_ct);
        let too_long = vec![b'a'; 256];
        // (state, name, lookup, expected)
        let cases: Vec<(&DirKey, &[u8], bool, Result<FilenameLookup>)> = vec![
            (&DirKey::Plain, b"hello", true, Ok(FilenameLookup::Plain)),
            (&DirKey::Plain, b"hello", false, Ok(FilenameLookup::Plain)),
            (
                &DirKey::Plain,
                &too_long,
                false,
                Err(Errno::NAMETOOLONG.into_err()),
            ),
            (
                &k,
                b"hello",
                true,
                Ok(FilenameLookup::Ciphertext(ct.clone())),
            ),
            (
                &k,
                b"hello",
                false,
                Ok(FilenameLookup::Ciphertext(ct.clone())),
            ),
            (&k, &too_long, true, Err(Errno::NAMETOOLONG.into_err())),
            // With the key, a no-key name is just a name.
            (
                &k,
                nokey.as_bytes(),
                true,
                Ok(FilenameLookup::Ciphertext(
                    key.encrypt_filename(nokey.as_bytes()).unwrap(),
                )),
            ),
            // Without it, creating needs the key...
            (
                &DirKey::NoKey,
                b"hello",
                false,
                Err(Errno::NOKEY.into_err()),
            ),
            (
                &DirKey::NoKey,
                nokey.as_bytes(),
                false,
                Err(Errno::NOKEY.into_err()),
            ),
            // ...and a lookup takes no-key names only.
            (
                &DirKey::NoKey,
                nokey.as_bytes(),
                true,
                Ok(FilenameLookup::NoKey(NokeyName::decode(&nokey).unwrap())),
            ),
            (
                &DirKey::NoKey,
                long_nokey.as_bytes(),
                true,
                Ok(FilenameLookup::NoKey(
                    NokeyName::decode(&long_nokey).unwrap(),
                )),
            ),
            (
                &DirKey::NoKey,
                b"hello.txt",
                true,
                Err(Errno::NOENT.into_err()),
            ),
            (&DirKey::NoKey, b"AAAA", true, Err(Errno::NOENT.into_err())),
            (
                &DirKey::NoKey,
                b"\xff\xfe",
                true,
                Err(Errno::NOENT.into_err()),
            ),
            (
                &DirKey::NoKey,
                &too_long,
                true,
                Err(Errno::NAMETOOLONG.into_err()),
            ),
        ];
        for (i, (dk, name, lookup, want)) in cases.into_iter().enumerate() {
            let got = setup_filename(dk, name, lookup);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "case {i}"),
                (Err(g), Err(w)) => assert_eq!(g.errno(), w.errno(), "case {i}"),
                (g, w) => panic!("case {i}: got {g:?}, want {w:?}"),
            }
        }
        // The no-key lookup finds the entry it names.
        match setup_filename(&DirKey::NoKey, long_nokey.as_bytes(), true) {
            Ok(FilenameLookup::NoKey(n)) => assert!(n.matches(&long_ct)),
            other => panic!("{other:?}"),
        }
    }

    /// An `Error` carrying `errno`, for expected results.
    trait IntoErr {
        fn into_err(self) -> Error;
    }
    impl IntoErr for Errno {
        fn into_err(self) -> Error {
            Error::new(self, "expected")
        }
    }

    #[test]
    fn fname_disk_to_usr_table() {
        let key = dir_key();
        let k = DirKey::Key(Arc::clone(&key));
        let ct = key.encrypt_filename(b"hello").unwrap();
        let long_name = [b'y'; 255];
        let long_ct = key.encrypt_filename(&long_name).unwrap();
        let slash = key.encrypt_filename(b"a/b").unwrap();
        let cases: Vec<(&DirKey, DiskName<'_>, UsrName)> = vec![
            (
                &DirKey::Plain,
                DiskName::Plain(b"hello"),
                UsrName::Name(b"hello".to_vec()),
            ),
            // With the key: the plaintext, of any length.
            (
                &k,
                DiskName::Encrypted(Some(&ct)),
                UsrName::Name(b"hello".to_vec()),
            ),
            (
                &k,
                DiskName::Encrypted(Some(&long_ct)),
                UsrName::Name(long_name.to_vec()),
            ),
            // Without it, or without the ciphertext: the no-key name.
            (
                &DirKey::NoKey,
                DiskName::Encrypted(Some(&ct)),
                UsrName::NoKeyName,
            ),
            (
                &DirKey::NoKey,
                DiskName::Encrypted(None),
                UsrName::NoKeyName,
            ),
            (&k, DiskName::Encrypted(None), UsrName::NoKeyName),
            // A ciphertext that is no valid name: the no-key name, said so.
            (
                &k,
                DiskName::Encrypted(Some(&slash)),
                UsrName::Undecryptable,
            ),
            (
                &k,
                DiskName::Encrypted(Some(&[0u8; 16])),
                UsrName::Undecryptable,
            ),
            (
                &k,
                DiskName::Encrypted(Some(&[9u8; 15])),
                UsrName::Undecryptable,
            ),
            (
                &k,
                DiskName::Encrypted(Some(&[9u8; 256])),
                UsrName::Undecryptable,
            ),
        ];
        for (i, (dk, disk, want)) in cases.into_iter().enumerate() {
            let got = fname_disk_to_usr(dk, disk);
            // A zero ciphertext may decrypt to anything; only a valid name is shown as such.
            if let (UsrName::Name(n), UsrName::Undecryptable) = (&got, &want) {
                assert!(
                    !n.is_empty() && !n.contains(&b'/') && !n.contains(&0),
                    "case {i}"
                );
                continue;
            }
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn new_inodes_inherit_the_directory_policy_else_the_dummy() {
        // (dir policy, dummy policy, type, expected policy of the new inode)
        let cases: &[InheritCase] = &[
            (None, None, R, None),
            (None, None, D, None),
            (Some(p1()), None, R, Some(p1())),
            (Some(p1()), None, D, Some(p1())),
            (Some(p1()), None, L, Some(p1())),
            (Some(p1()), None, S, None),
            (None, Some(p2()), R, Some(p2())),
            (None, Some(p2()), L, Some(p2())),
            (None, Some(p2()), S, None),
            // The directory's own policy wins over the dummy.
            (Some(p1()), Some(p2()), D, Some(p1())),
        ];
        for (i, (dp, dummy, ft, want)) in cases.iter().enumerate() {
            assert_eq!(
                policy_to_inherit(dp.as_ref(), dummy.as_ref()).filter(|_| ft.is_encryptable()),
                *want,
                "case {i}"
            );
            let ctx = prepare_new_inode(dp.as_ref(), dummy.as_ref(), *ft).unwrap();
            assert_eq!(ctx.map(|c| *c.policy()), *want, "case {i}");
        }
        // Every new inode gets its own nonce.
        let a = prepare_new_inode(Some(&p1()), None, R).unwrap().unwrap();
        let b = prepare_new_inode(Some(&p1()), None, R).unwrap().unwrap();
        assert_ne!(a.nonce(), b.nonce());
    }

    #[test]
    fn set_policy_permission_table() {
        let cases = [
            (Caller::user(ALICE), ALICE, None),
            (Caller::user(BOB), ALICE, Some(Errno::ACCESS)),
            (Caller::root(), ALICE, None),
            (
                Caller {
                    uid: BOB,
                    privileged: true,
                },
                ALICE,
                None,
            ),
        ];
        for (i, (caller, owner, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                errno_of(set_policy_permission(caller, owner)),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn prepare_set_policy_table() {
        let keyring = Keyring::new(Default::default());
        let id = keyring
            .add_v2(Caller::user(ALICE), SecretBytes::copy_from(&RAW))
            .unwrap();
        let ours = v2(id, 0);
        let absent = v2([0xAB; 16], 0);
        let bad = {
            // DIRECT_KEY with AES-256-XTS: unsupported (EINVAL).
            let mut b = v2(id, 0).to_bytes();
            b[3] = crate::policy::flags::DIRECT_KEY;
            b
        };
        struct Case {
            inode: (FileType, Option<Policy>),
            bytes: Vec<u8>,
            empty: Result<bool>,
            caller: Caller,
            want: std::result::Result<SetPolicy, Errno>,
            asks_empty: bool,
        }
        let alice = Caller::user(ALICE);
        let cases = vec![
            // Set on an empty directory by the key's adder, by root, or as v1.
            Case {
                inode: (D, None),
                bytes: ours.to_bytes(),
                empty: Ok(true),
                caller: alice,
                want: Ok(SetPolicy::Set(ours)),
                asks_empty: true,
            },
            Case {
                inode: (D, None),
                bytes: absent.to_bytes(),
                empty: Ok(true),
                caller: Caller::root(),
                want: Ok(SetPolicy::Set(absent)),
                asks_empty: true,
            },
            Case {
                inode: (D, None),
                bytes: v1().to_bytes(),
                empty: Ok(true),
                caller: Caller::user(BOB),
                want: Ok(SetPolicy::Set(v1())),
                asks_empty: true,
            },
            // A v2 policy whose key the caller has not added: ENOKEY.
            Case {
                inode: (D, None),
                bytes: ours.to_bytes(),
                empty: Ok(true),
                caller: Caller::user(BOB),
                want: Err(Errno::NOKEY),
                asks_empty: true,
            },
            Case {
                inode: (D, None),
                bytes: absent.to_bytes(),
                empty: Ok(true),
                caller: alice,
                want: Err(Errno::NOKEY),
                asks_empty: true,
            },
            // Already set: nothing to do when identical, EEXIST otherwise — before any other check.
            Case {
                inode: (D, Some(ours)),
                bytes: ours.to_bytes(),
                empty: Ok(false),
                caller: Caller::user(BOB),
                want: Ok(SetPolicy::Unchanged),
                asks_empty: false,
            },
            Case {
                inode: (R, Some(ours)),
                bytes: ours.to_bytes(),
                empty: Ok(false),
                caller: alice,
                want: Ok(SetPolicy::Unchanged),
                asks_empty: false,
            },
            Case {
                inode: (D, Some(ours)),
                bytes: absent.to_bytes(),
                empty: Ok(true),
                caller: alice,
                want: Err(Errno::EXIST),
                asks_empty: false,
            },
            Case {
                inode: (D, Some(ours)),
                bytes: bad.clone(),
                empty: Ok(true),
                caller: alice,
                want: Err(Errno::EXIST),
                asks_empty: false,
            },
            // Not a directory.
            Case {
                inode: (R, None),
                bytes: ours.to_bytes(),
                empty: Ok(true),
                caller: alice,
                want: Err(Errno::NOTDIR),
                asks_empty: false,
            },
            Case {
                inode: (L, None),
                bytes: ours.to_bytes(),
                empty: Ok(true),
                caller: alice,
                want: Err(Errno::NOTDIR),
                asks_empty: false,
            },
            Case {
                inode: (S, None),
                bytes: ours.to_bytes(),
                empty: Ok(true),
                caller: alice,
                want: Err(Errno::NOTDIR),
                asks_empty: false,
            },
            // Not empty (before the policy is even parsed), or the question fails.
            Case {
                inode: (D, None),
                bytes: bad.clone(),
                empty: Ok(false),
                caller: alice,
                want: Err(Errno::NOTEMPTY),
                asks_empty: true,
            },
            Case {
                inode: (D, None),
                bytes: ours.to_bytes(),
                empty: Err(Error::new(Errno::IO, "x")),
                caller: alice,
                want: Err(Errno::IO),
                asks_empty: true,
            },
            // A policy the filesystem cannot use: EINVAL, before the key check.
            Case {
                inode: (D, None),
                bytes: bad,
                empty: Ok(true),
                caller: Caller::user(BOB),
                want: Err(Errno::INVAL),
                asks_empty: true,
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let asked = Cell::new(false);
            let empty = c.empty;
            let r = prepare_set_policy(
                &inode(5, c.inode.0, c.inode.1),
                &c.bytes,
                &fsp(),
                || {
                    asked.set(true);
                    empty
                },
                &keyring,
                c.caller,
            );
            assert_eq!(r.map_err(|e| e.errno()), c.want, "case {i}");
            assert_eq!(asked.get(), c.asks_empty, "case {i}: emptiness asked");
        }
    }
}
