//! The backing objects of a volume as the offline tools read them: what [`Kind`] an object is,
//! what the store keeps for it ([`Stored`]: directory metadata, file header, symlink target, or
//! nothing for a special file), and the readers that take one object from its directory's
//! descriptor — [`open_entry_md`], [`list_names`], [`read_regular_at`], [`read_object_at`], and
//! [`name_ciphertext_at`] for an entry's name without the key (no-key name or long-name side file).
//!
//! Every object is opened through `store::io`, relative to its directory's descriptor: never
//! through a symlink, never opening a FIFO or device (`O_PATH` and a type check first), and
//! metadata is read with its bound by the store's readers (`store::meta`).

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use fscrypt::context::Context;
use fscrypt::nokey::NokeyName;
use fscrypt::policy::FsParams;
use fscrypt::{Error, Result};

use crate::store::config::ContentsLayout;
use crate::store::io as store_io;
use crate::store::meta::{
    read_dir_meta_at, read_file_header, read_symlink_at, DirMeta, FileHeader, SymlinkTarget,
};
use crate::store::pending::{CacheEpoch, PendingSize};
use crate::store::{io_err, names, FILE_HEADER_SIZE};

pub use crate::store::kind::Kind;

/// What the store keeps for one backing object.
#[derive(Clone, Debug)]
pub enum Stored {
    /// A directory and its metadata.
    Dir(DirMeta),
    /// A regular file: its header and the backing file's length.
    File {
        /// The parsed header.
        header: FileHeader,
        /// A per-file file's pending size record, judged in this cache epoch (`store::pending`).
        pending: Option<PendingSize>,
        /// Length of the backing file (header included).
        backing_len: u64,
    },
    /// A symlink's decoded backing target.
    Symlink(SymlinkTarget),
    /// A FIFO, socket or device (no stored inode number, never encrypted).
    Special(Kind),
}

impl Stored {
    /// The stable inode number (None for special files, which have none).
    pub fn ino(&self) -> Option<u64> {
        match self {
            Stored::Dir(m) => Some(m.ino),
            Stored::File { header, .. } => Some(header.ino),
            Stored::Symlink(t) => Some(t.ino()),
            Stored::Special(_) => None,
        }
    }

    /// The fscrypt context, when encrypted.
    pub fn ctx(&self) -> Option<&Context> {
        match self {
            Stored::Dir(m) => m.ctx.as_ref(),
            Stored::File { header, .. } => header.ctx.as_ref(),
            Stored::Symlink(SymlinkTarget::Encrypted { ctx, .. }) => Some(ctx),
            Stored::Symlink(SymlinkTarget::Plain { .. }) | Stored::Special(_) => None,
        }
    }

    /// A per-file regular file's size: a pending size trusted here, else the committed size.
    pub fn per_file_size(&self) -> Option<u64> {
        match self {
            Stored::File {
                header, pending, ..
            } if header.layout == ContentsLayout::PerFile => Some(match pending {
                Some(PendingSize::Trusted(size)) => *size,
                _ => header.size,
            }),
            _ => None,
        }
    }

    /// Whether this is a per-extent regular file.
    pub fn is_per_extent(&self) -> bool {
        matches!(self, Stored::File { header, .. } if header.layout == ContentsLayout::Extent)
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Stored::Dir(_) => Kind::Dir,
            Stored::File { .. } => Kind::File,
            Stored::Symlink(_) => Kind::Symlink,
            Stored::Special(k) => *k,
        }
    }
}

/// Opens entry `name` of directory `dir` as an `O_PATH` descriptor of the object itself (never
/// following a symlink, never opening a FIFO or device: `store::io`), with its metadata.
pub fn open_entry_md(dir: impl AsFd, name: &OsStr, what: &str) -> Result<(OwnedFd, Metadata)> {
    let fd = store_io::open_entry(dir, name, what)?;
    let f = File::from(fd);
    let md = f.metadata().map_err(|e| io_err(what, e))?;
    Ok((OwnedFd::from(f), md))
}

/// The names in directory `dir` (any descriptor of it), sorted, without `.` and `..`.
pub fn list_names(dir: impl AsFd, what: &str) -> Result<Vec<OsString>> {
    let listing = store_io::open_listing(dir, what)?;
    let mut names = Vec::new();
    store_io::read_entries(&listing, what, |n, _| {
        names.push(n.to_os_string());
        true
    })?;
    names.sort();
    Ok(names)
}

/// Opens the regular file `fd` (an `O_PATH` descriptor) for reading and reads its 4096-byte header
/// block (shorter when the file is): the open file, the block, and the parsed header. EUCLEAN
/// naming `what` for a damaged or truncated header.
pub fn read_regular_at(
    fd: &OwnedFd,
    md: &Metadata,
    what: &str,
    fsp: &FsParams,
) -> Result<(File, Vec<u8>, FileHeader)> {
    let f = store_io::reopen_file(fd, store_io::Access::Read, what)?;
    let (block, h) = read_file_header(&f, fsp, what)?;
    if md.len() < FILE_HEADER_SIZE {
        return Err(Error::corrupt(format!(
            "{what}: file header truncated to {} bytes (expected {FILE_HEADER_SIZE})",
            md.len()
        )));
    }
    Ok((f, block, h))
}

/// What the store keeps for a regular file whose header block is `block` (parsed: `header`),
/// with metadata `md`: its pending size judged in `epoch`.
pub fn stored_file(
    header: FileHeader,
    block: &[u8],
    md: &Metadata,
    epoch: Option<&CacheEpoch>,
    fsp: &FsParams,
) -> Stored {
    let pending = (header.layout == ContentsLayout::PerFile)
        .then(|| PendingSize::parse(block, epoch, md.dev(), fsp.max_file_size))
        .flatten();
    Stored::File {
        header,
        pending,
        backing_len: md.len(),
    }
}

/// Reads what the store keeps for the backing object open as `fd` (an `O_PATH` descriptor of the
/// object itself, from [`open_entry_md`]) at `path`; `epoch`: the backing store's cache epoch, by
/// which a pending size is judged.
pub fn read_object_at(
    fd: &OwnedFd,
    md: &Metadata,
    path: &Path,
    fsp: &FsParams,
    epoch: Option<&CacheEpoch>,
) -> Result<Stored> {
    let what = path.display().to_string();
    match Kind::of(md) {
        Some(Kind::Dir) => read_dir_meta_at(fd, fsp, path).map(Stored::Dir),
        Some(Kind::File) => {
            let (_, block, header) = read_regular_at(fd, md, &what, fsp)?;
            Ok(stored_file(header, &block, md, epoch, fsp))
        }
        // The link itself (an O_PATH descriptor of it): nothing is followed.
        Some(Kind::Symlink) => read_symlink_at(fd, fsp, &what).map(Stored::Symlink),
        Some(k) => Ok(Stored::Special(k)),
        None => Err(Error::corrupt(format!("{what}: unknown file type"))),
    }
}

/// The full ciphertext name of entry `bname` in the encrypted backing directory open as `dir`
/// (path `dir_path`): decoded from the no-key name, or read from the long-name side file (through
/// `store::io`: a regular file of at most 255 bytes) and checked against the name's hash.
pub fn name_ciphertext_at(dir: impl AsFd, dir_path: &Path, bname: &OsStr) -> Result<Vec<u8>> {
    let path = dir_path.join(bname);
    let what = path.display().to_string();
    let n = bname
        .to_str()
        .filter(|_| names::is_encrypted_entry(bname.as_bytes()))
        .and_then(|s| NokeyName::decode(s).ok())
        .ok_or_else(|| Error::corrupt(format!("{what}: not a valid no-key name")))?;
    if n.dirhash() != names::DIRHASH {
        return Err(Error::corrupt(format!(
            "{what}: no-key name has a nonzero dirhash"
        )));
    }
    if let Some(ct) = n.full_ciphertext() {
        return Ok(ct.to_vec());
    }
    let side = names::side_name(bname);
    let swhat = dir_path.join(&side).display().to_string();
    let Some(ct) = store_io::read_bounded(dir, &side, names::NAME_MAX, &swhat)? else {
        return Err(Error::corrupt(format!(
            "{what}: long name without its side file {}",
            side.to_string_lossy()
        )));
    };
    if !n.matches(&ct) {
        return Err(Error::corrupt(format!(
            "{swhat}: side file does not match its entry's name"
        )));
    }
    Ok(ct)
}
