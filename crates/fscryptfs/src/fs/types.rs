//! What the FUSE adapter (`fuse.rs`) and the filesystem's rooms hand each other: who asks
//! ([`Creds`]), file types, attributes, times to set, directory entries, and the hook by which key
//! removal tells the kernel to forget cached entries ([`KernelCache`]). They are our own types so
//! that only the adapter (and the mount in `daemon.rs`) name `fuser`.

use std::ffi::{OsStr, OsString};
use std::time::{Duration, SystemTime};

use fscrypt::{Errno, Error};

use crate::store::kind::Kind;

/// Who sent a request: its fsuid, fsgid and thread-group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Creds {
    pub fn uid(&self) -> u32 {
        self.uid
    }
    pub fn gid(&self) -> u32 {
        self.gid
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// The type of a file as reported to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    RegularFile,
    Directory,
    Symlink,
    NamedPipe,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileType {
    /// The type of an object of kind `k`.
    pub fn of_kind(k: Kind) -> FileType {
        match k {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
            Kind::Symlink => FileType::Symlink,
            Kind::Fifo => FileType::NamedPipe,
            Kind::Socket => FileType::Socket,
            Kind::CharDev => FileType::CharDevice,
            Kind::BlockDev => FileType::BlockDevice,
        }
    }

    /// A backing object's type as ours (anything unknown as a regular file).
    pub fn from_backing(t: rustix::fs::FileType) -> FileType {
        match t {
            rustix::fs::FileType::Directory => FileType::Directory,
            rustix::fs::FileType::Symlink => FileType::Symlink,
            rustix::fs::FileType::Fifo => FileType::NamedPipe,
            rustix::fs::FileType::Socket => FileType::Socket,
            rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
            rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
            _ => FileType::RegularFile,
        }
    }
}

/// An inode's attributes as the kernel sees them.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub kind: FileType,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

/// A time SETATTR asks for.
#[derive(Clone, Copy, Debug)]
pub enum SetTime {
    Now,
    At(SystemTime),
}

/// The attribute changes of one SETATTR (`None`: unchanged).
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    /// The handle the change came through, if any.
    pub fh: Option<u64>,
}

/// One directory entry as listed.
#[derive(Clone, Debug)]
pub struct DirEnt {
    pub ino: u64,
    pub kind: FileType,
    pub name: OsString,
}

/// A new or looked-up entry: its attributes and how long the kernel may cache them and the name.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub attr: Attr,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
}

/// The kernel's caches, as key removal invalidates them (FUSE notifications).
pub trait KernelCache: Send + Sync {
    /// Forget the entry `name` in directory `parent`.
    fn inval_entry(&self, parent: u64, name: &OsStr) -> std::io::Result<()>;
    /// Forget the attributes and cached data of `ino`.
    fn inval_inode(&self, ino: u64) -> std::io::Result<()>;
    /// Forget the attributes of `ino`, keeping its cached data.
    fn inval_attrs(&self, ino: u64) -> std::io::Result<()>;
}

/// An error with errno `e` and a message.
pub fn errno(e: Errno, msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(e, msg)
}
