//! The kind of a backing object, one enum for the daemon (`fs`: a node's kind) and the offline
//! tools (`offline`: what `inspect` prints and `fsck` checks): a regular file (with its 4096-byte
//! header), a directory (with `.fscryptfs.dir`), a symlink (its target in our backing form), or a
//! FIFO, socket or device (never encrypted; its number in `.fscryptfs.special`). How fscrypt sees
//! each kind (`hook_type`, `inode_kind`) is here too, so the mapping is written once.

use std::fs::Metadata;
use std::os::unix::fs::FileTypeExt;

use fscrypt::keysetup::InodeKind;

/// What kind of object a backing entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// FIFO.
    Fifo,
    /// Socket.
    Socket,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
}

impl Kind {
    /// The name the offline tools print.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "regular",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDev => "char",
            Kind::BlockDev => "block",
        }
    }

    /// The kind of a backing file type; None for anything else.
    pub fn of_type(t: rustix::fs::FileType) -> Option<Kind> {
        use rustix::fs::FileType as T;
        Some(match t {
            T::RegularFile => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Fifo => Kind::Fifo,
            T::Socket => Kind::Socket,
            T::CharacterDevice => Kind::CharDev,
            T::BlockDevice => Kind::BlockDev,
            _ => return None,
        })
    }

    /// The kind of a backing object from its metadata; None for anything else.
    pub fn of(md: &Metadata) -> Option<Kind> {
        let t = md.file_type();
        Some(if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else if t.is_symlink() {
            Kind::Symlink
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_char_device() {
            Kind::CharDev
        } else if t.is_block_device() {
            Kind::BlockDev
        } else {
            return None;
        })
    }

    /// A FIFO, socket or device: never encrypted, no metadata of ours.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Kind::Fifo | Kind::Socket | Kind::CharDev | Kind::BlockDev
        )
    }

    /// The type fscrypt's hooks see.
    pub fn hook_type(self) -> fscrypt::hooks::FileType {
        match self {
            Kind::File => fscrypt::hooks::FileType::Regular,
            Kind::Dir => fscrypt::hooks::FileType::Directory,
            Kind::Symlink => fscrypt::hooks::FileType::Symlink,
            _ => fscrypt::hooks::FileType::Special,
        }
    }

    /// The kind of inode fscrypt's key setup sees (how its IVs and keys are chosen).
    pub fn inode_kind(self) -> InodeKind {
        match self {
            Kind::Dir => InodeKind::Directory,
            Kind::Symlink => InodeKind::Symlink,
            _ => InodeKind::Regular,
        }
    }
}
