//! `fscryptfs inspect`: read a volume's backing store offline, without any key.
//!
//! This is the debugfs of fscryptfs: it prints what fstests' `fscrypt-crypt-util` (our `fscryptfs
//! crypt`) needs to reproduce or decrypt the ciphertext by hand — the volume UUID, an inode's stable
//! number and context (policy fields, key identifier, nonce), the raw ciphertext of a name, of a
//! symlink target and of a file's data units in logical order with their indices.
//!
//! Paths are *no-key paths*, relative to the volume root: what `ls` shows on a mount without the
//! keys. In an encrypted directory a component is the entry's no-key name, which is also its backing
//! name; in an unencrypted directory it is the user's name (a name starting with `.fscryptfs` is
//! looked up under its escaped backing name `.fscryptfs.esc.<name>`). Inodes can also be found by
//! stable inode number (`--ino N`), which finds every hard link.
//!
//! While it reads it holds the volume lock shared (`store::lock`), so a read-write mount can
//! neither be running nor start; a read-write mounted volume is refused unless `--force`.
//!
//! The module only reads, through the store's public parsers ([`crate::store`]); it is also the
//! backing-tree reader of `fscryptfs fsck` ([`crate::fsck`]).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use fscrypt::context::Context;
use fscrypt::nokey::NokeyName;
use fscrypt::policy::{flags, FsParams, Policy};
use fscrypt::{EncryptionMode, Error, Result};

use crate::store::config::{VolumeConfig, ROOT_INO};
use crate::store::io as store_io;
use crate::store::meta::{
    DirMeta, FileHeader, SymlinkTarget, DIR_META_NAME, DIR_META_SIZE, FILE_HEADER_USED,
};
use crate::store::{fs_params, io_err, names, read_full_at, sys_err, FILE_HEADER_SIZE};

/// Exit status: the command failed (not found, corrupt, I/O error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: bad arguments, or (fsck) the check could not run.
pub const EXIT_USAGE: i32 = 2;

/// How an offline tool failed: exit status and one line.
#[derive(Debug)]
pub struct Failure {
    /// The process exit status.
    pub exit_code: i32,
    /// What went wrong (one line).
    pub message: String,
}

impl Failure {
    /// A failure of the operation (exit 1).
    pub fn op(m: impl std::fmt::Display) -> Self {
        Failure {
            exit_code: EXIT_FAILURE,
            message: m.to_string(),
        }
    }

    /// Bad arguments or a check that cannot run (exit 2).
    pub fn usage(m: impl std::fmt::Display) -> Self {
        Failure {
            exit_code: EXIT_USAGE,
            message: m.to_string(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::op(e.message())
    }
}

// ---- reading the backing tree ----

/// The kind of a backing object, as `inspect` and `fsck` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file.
    Regular,
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
    /// The name printed.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Regular => "regular",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDev => "char",
            Kind::BlockDev => "block",
        }
    }

    /// The kind of a backing file type; None for anything else.
    pub fn of(md: &Metadata) -> Option<Kind> {
        let t = md.file_type();
        Some(if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::Regular
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
}

/// What the store keeps for one backing object.
#[derive(Clone, Debug)]
pub enum Stored {
    /// A directory and its metadata.
    Dir(DirMeta),
    /// A regular file: its header and the backing file's length.
    File {
        /// The parsed header.
        header: FileHeader,
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

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Stored::Dir(_) => Kind::Dir,
            Stored::File { .. } => Kind::Regular,
            Stored::Symlink(_) => Kind::Symlink,
            Stored::Special(k) => *k,
        }
    }
}

/// Opens the backing root given on the command line (its path may go through symlinks: it is the
/// administrator's) as the `O_PATH` directory descriptor every other access is relative to.
pub fn open_root(backing: &Path) -> Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        backing,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(backing.display(), e))
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
    let d = rustix::fs::Dir::new(listing).map_err(|e| sys_err(what, e))?;
    let mut names = Vec::new();
    for ent in d {
        let ent = ent.map_err(|e| sys_err(what, e))?;
        let b = ent.file_name().to_bytes();
        if b != b"." && b != b".." {
            names.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Reads the directory metadata of the backing directory open as `dir`, whose path is `dir_path`
/// (EUCLEAN naming the metadata file when it is missing, of the wrong type, too large or
/// malformed). `store::io` opens it: never through a symlink, never blocking, at most
/// [`DIR_META_SIZE`] bytes.
pub fn read_dir_meta_at(dir: impl AsFd, dir_path: &Path, fsp: &FsParams) -> Result<DirMeta> {
    let p = dir_path.join(DIR_META_NAME);
    let what = p.display().to_string();
    match store_io::read_bounded(dir, OsStr::new(DIR_META_NAME), DIR_META_SIZE, &what)? {
        None => Err(Error::corrupt(format!(
            "{}: directory has no {DIR_META_NAME}",
            dir_path.display()
        ))),
        Some(b) => DirMeta::parse(&b, fsp, &what),
    }
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
    let mut block = vec![0u8; FILE_HEADER_SIZE as usize];
    let n = read_full_at(&f, &mut block, 0).map_err(|e| io_err(what, e))?;
    block.truncate(n);
    let h = FileHeader::parse(&block[..n.min(FILE_HEADER_USED)], fsp, what)?;
    if md.len() < FILE_HEADER_SIZE {
        return Err(Error::corrupt(format!(
            "{what}: file header truncated to {} bytes (expected {FILE_HEADER_SIZE})",
            md.len()
        )));
    }
    Ok((f, block, h))
}

/// Reads what the store keeps for the backing object open as `fd` (an `O_PATH` descriptor of the
/// object itself, from [`open_entry_md`]) at `path`.
pub fn read_object_at(fd: &OwnedFd, md: &Metadata, path: &Path, fsp: &FsParams) -> Result<Stored> {
    let what = path.display().to_string();
    match Kind::of(md) {
        Some(Kind::Dir) => read_dir_meta_at(fd, path, fsp).map(Stored::Dir),
        Some(Kind::Regular) => Ok(Stored::File {
            header: read_regular_at(fd, md, &what, fsp)?.2,
            backing_len: md.len(),
        }),
        Some(Kind::Symlink) => {
            // The link itself (an O_PATH descriptor of it, empty path): nothing is followed.
            let t = rustix::fs::readlinkat(fd, "", Vec::new()).map_err(|e| sys_err(&what, e))?;
            SymlinkTarget::parse(t.as_bytes(), fsp, &what).map(Stored::Symlink)
        }
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

/// An opened volume.
pub struct Volume {
    /// The backing directory.
    pub root: PathBuf,
    /// The backing directory's `O_PATH` descriptor: everything is opened relative to it.
    root_fd: Arc<OwnedFd>,
    /// The volume's filesystem parameters.
    pub fsp: FsParams,
    /// The parsed config.
    pub config: VolumeConfig,
}

/// A directory entry whose backing object cannot be read.
#[derive(Debug)]
pub struct Damaged {
    /// Its shown (no-key) name.
    pub name: OsString,
    /// Its kind, when the backing object could be stat'ed.
    pub kind: Option<Kind>,
    /// What is wrong.
    pub error: Error,
}

/// Where a backing object is: the root, or a name in a directory (held open).
#[derive(Clone)]
enum Loc {
    Root(Arc<OwnedFd>),
    Child { dir: Arc<OwnedFd>, name: OsString },
}

/// One inode found by path or number.
pub struct Entry {
    /// Its no-key path relative to the volume root (`.` for the root).
    pub path: PathBuf,
    /// Its backing path.
    pub backing: PathBuf,
    /// What the store keeps for it.
    pub stored: Stored,
    /// The backing object's metadata.
    pub md: Metadata,
    /// The context of the directory holding this entry (None at the root or when unencrypted).
    pub parent_ctx: Option<Context>,
    /// The inode number of the directory holding this entry (None at the root).
    pub parent_ino: Option<u64>,
    loc: Loc,
}

impl Entry {
    /// Opens this directory again (`O_PATH`, never through a symlink: ENOTDIR when it is not one).
    fn open_dir(&self) -> Result<OwnedFd> {
        let what = self.backing.display().to_string();
        match &self.loc {
            Loc::Root(fd) => fd.try_clone().map_err(|e| io_err(&what, e)),
            Loc::Child { dir, name } => store_io::open_subdir(&**dir, name, &what),
        }
    }

    /// Opens this regular file again for reading (never through a symlink, type checked first).
    fn open_file(&self) -> Result<File> {
        let what = self.backing.display().to_string();
        match &self.loc {
            Loc::Root(_) => Err(Error::corrupt(format!("{what}: not a regular file"))),
            Loc::Child { dir, name } => {
                store_io::open_file(&**dir, name, store_io::Access::Read, &what)?.ok_or_else(|| {
                    Error::new(fscrypt::Errno::NOENT, format!("{what}: no longer exists"))
                })
            }
        }
    }
}

impl Volume {
    /// Opens the volume in `backing` (its config must parse).
    pub fn open(backing: &Path) -> std::result::Result<Volume, Failure> {
        let md = fs::metadata(backing)
            .map_err(|e| Failure::op(format!("{}: {e}", backing.display())))?;
        if !md.is_dir() {
            return Err(Failure::op(format!(
                "{}: not a directory",
                backing.display()
            )));
        }
        let config = VolumeConfig::load(backing)?;
        Ok(Volume {
            root: backing.to_path_buf(),
            root_fd: Arc::new(open_root(backing)?),
            fsp: fs_params(),
            config,
        })
    }

    fn root_entry(&self) -> Result<Entry> {
        let f = File::from(
            self.root_fd
                .try_clone()
                .map_err(|e| io_err(self.root.display(), e))?,
        );
        let md = f.metadata().map_err(|e| io_err(self.root.display(), e))?;
        Ok(Entry {
            path: PathBuf::from("."),
            backing: self.root.clone(),
            stored: Stored::Dir(read_dir_meta_at(&*self.root_fd, &self.root, &self.fsp)?),
            md,
            parent_ctx: None,
            parent_ino: None,
            loc: Loc::Root(self.root_fd.clone()),
        })
    }

    /// The backing name of the user-visible (no-key) name `name` in directory `dir`.
    fn backing_name(dir: &Entry, name: &OsStr) -> Result<OsString> {
        match dir.stored.ctx() {
            Some(_) => Ok(name.to_os_string()),
            None => names::plain_to_backing(name),
        }
    }

    /// The shown (no-key) name of backing name `bname` in `dir`; None for our own files and side
    /// files.
    fn shown_name(dir: &Entry, bname: &OsStr) -> Option<OsString> {
        match dir.stored.ctx() {
            Some(_) => names::is_encrypted_entry(bname.as_bytes()).then(|| bname.to_os_string()),
            None => names::backing_to_plain(bname),
        }
    }

    /// The entry `bname` (shown as `shown`) of directory `dir`, open as `dir_fd`.
    fn child(
        &self,
        dir: &Entry,
        dir_fd: &Arc<OwnedFd>,
        shown: &OsStr,
        bname: &OsStr,
    ) -> Result<Entry> {
        let backing = dir.backing.join(bname);
        let what = backing.display().to_string();
        let (fd, md) = open_entry_md(&**dir_fd, bname, &what)?;
        let stored = read_object_at(&fd, &md, &backing, &self.fsp)?;
        let path = if dir.path == Path::new(".") {
            PathBuf::from(shown)
        } else {
            dir.path.join(shown)
        };
        Ok(Entry {
            path,
            backing,
            stored,
            md,
            parent_ctx: dir.stored.ctx().copied(),
            parent_ino: dir.stored.ino(),
            loc: Loc::Child {
                dir: dir_fd.clone(),
                name: bname.to_os_string(),
            },
        })
    }

    /// Finds the inode at no-key path `path` (relative to the volume root; a leading `/` is allowed).
    pub fn resolve(&self, path: &Path) -> Result<Entry> {
        let mut cur = self.root_entry()?;
        for c in path.components() {
            let name = match c {
                Component::RootDir | Component::CurDir => continue,
                Component::Normal(n) => n,
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::invalid(format!(
                        "{}: `..` is not allowed in volume paths",
                        path.display()
                    )))
                }
            };
            if cur.stored.kind() != Kind::Dir {
                return Err(Error::new(
                    fscrypt::Errno::NOTDIR,
                    format!("{}: not a directory", cur.path.display()),
                ));
            }
            let bname = Self::backing_name(&cur, name)?;
            if Self::shown_name(&cur, &bname).is_none() {
                return Err(Error::new(
                    fscrypt::Errno::NOENT,
                    format!(
                        "{}: no such entry (in an encrypted directory, use the no-key name)",
                        cur.path.join(name).display()
                    ),
                ));
            }
            let dir_fd = Arc::new(cur.open_dir()?);
            cur = self.child(&cur, &dir_fd, name, &bname).map_err(|e| {
                if e.errno() == fscrypt::Errno::NOENT {
                    Error::new(
                        fscrypt::Errno::NOENT,
                        format!("{}: no such entry", cur.path.join(name).display()),
                    )
                } else {
                    e
                }
            })?;
        }
        Ok(cur)
    }

    /// The entries of directory `dir`, sorted by backing name; an entry whose backing object cannot
    /// be read is listed as [`Damaged`].
    pub fn list(&self, dir: &Entry) -> Result<Vec<std::result::Result<Entry, Damaged>>> {
        let dir_fd = Arc::new(dir.open_dir()?);
        let names = list_names(&*dir_fd, &dir.backing.display().to_string())?;
        let mut out = Vec::new();
        for bname in names {
            if let Some(shown) = Self::shown_name(dir, &bname) {
                out.push(self.child(dir, &dir_fd, &shown, &bname).map_err(|error| {
                    Damaged {
                        kind: open_entry_md(&*dir_fd, &bname, "")
                            .ok()
                            .and_then(|(_, md)| Kind::of(&md)),
                        name: shown,
                        error,
                    }
                }));
            }
        }
        Ok(out)
    }

    /// Every path of stable inode number `ino` (several for hard links), found by walking the tree.
    pub fn find_ino(&self, ino: u64) -> Result<Vec<Entry>> {
        let root = self.root_entry()?;
        if ino == ROOT_INO {
            return Ok(vec![root]);
        }
        let mut found: Vec<Entry> = Vec::new();
        let mut damaged = 0;
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for e in self.list(&dir)? {
                let Ok(e) = e else {
                    damaged += 1;
                    continue;
                };
                if e.stored.ino() == Some(ino) {
                    if let Some(f) = found.first() {
                        if !same_backing_inode(&f.md, &e.md) {
                            return Err(Error::corrupt(format!(
                                "inode number {ino} is used by {} and {} (run fscryptfs fsck)",
                                f.path.display(),
                                e.path.display()
                            )));
                        }
                    }
                    found.push(e);
                } else if e.stored.kind() == Kind::Dir {
                    stack.push(e);
                }
            }
        }
        if found.is_empty() {
            let also = if damaged > 0 {
                format!(" ({damaged} entries could not be read; run fscryptfs fsck)")
            } else {
                String::new()
            };
            return Err(Error::new(
                fscrypt::Errno::NOENT,
                format!("no inode numbered {ino} in this volume{also}"),
            ));
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// The data-unit size of a regular file with context `ctx` (4096 when unencrypted).
    pub fn data_unit_size(&self, ctx: Option<&Context>) -> u64 {
        ctx.map_or(4096, |c| 1u64 << c.policy().data_unit_bits(&self.fsp))
    }
}

/// Are two backing objects the same inode (hard links)?
pub fn same_backing_inode(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

// ---- fscrypt-crypt-util arguments ----

/// fscrypt-crypt-util's CIPHER name for a mode.
pub fn crypt_cipher_name(m: EncryptionMode) -> &'static str {
    match m {
        EncryptionMode::Aes256Xts => "AES-256-XTS",
        EncryptionMode::Aes256Cts => "AES-256-CTS-CBC",
        EncryptionMode::Aes128CbcEssiv => "AES-128-CBC-ESSIV",
        EncryptionMode::Aes128Cts => "AES-128-CTS-CBC",
        EncryptionMode::Adiantum => "Adiantum",
        EncryptionMode::Aes256Hctr2 => "AES-256-HCTR2",
        EncryptionMode::Sm4Xts => "SM4-XTS",
        EncryptionMode::Sm4Cts => "SM4-CTS-CBC",
    }
}

/// The `fscryptfs crypt` options (all but `--decrypt` and the master key) that en/decrypt this
/// inode's ciphertext with mode `mode`: `ino` is the inode whose key it is (the file for contents
/// and symlink targets, the directory for names).
pub fn crypt_args(ctx: &Context, mode: EncryptionMode, ino: u64, uuid: &[u8; 16]) -> Vec<String> {
    let p = ctx.policy();
    let nonce = hex::encode(ctx.nonce());
    let mut a = vec![crypt_cipher_name(mode).to_string()];
    match p {
        Policy::V1(_) if p.is_direct_key() => {
            a.push("--kdf=none".into());
            a.push("--direct-key".into());
            a.push(format!("--file-nonce={nonce}"));
        }
        Policy::V1(_) => {
            a.push("--kdf=AES-128-ECB".into());
            a.push(format!("--file-nonce={nonce}"));
        }
        Policy::V2(_) => {
            a.push("--kdf=HKDF-SHA512".into());
            let f = p.flags();
            if f & flags::DIRECT_KEY != 0 {
                a.push("--direct-key".into());
                a.push(format!("--file-nonce={nonce}"));
                a.push(format!("--mode-num={}", mode.number()));
            } else if f & (flags::IV_INO_LBLK_64 | flags::IV_INO_LBLK_32) != 0 {
                a.push(
                    if f & flags::IV_INO_LBLK_64 != 0 {
                        "--iv-ino-lblk-64"
                    } else {
                        "--iv-ino-lblk-32"
                    }
                    .into(),
                );
                a.push(format!("--inode-number={ino}"));
                a.push(format!("--fs-uuid={}", hex::encode(uuid)));
                a.push(format!("--mode-num={}", mode.number()));
            } else {
                a.push(format!("--file-nonce={nonce}"));
            }
        }
    }
    a
}

// ---- the command ----

/// `fscryptfs inspect`.
#[derive(Args, Debug)]
#[command(
    about = "Print a volume's stored bytes offline, without keys (ciphertext names, symlink targets, data units, contexts)",
    long_about = "Read the backing directory of an unmounted (or read-only mounted) volume and print \
what fscrypt-crypt-util (`fscryptfs crypt`) needs: the volume UUID, an inode's number and context, \
and the raw ciphertext of names, symlink targets and data units.\n\n\
PATH is a no-key path relative to the volume root: what `ls` shows on a mount without the keys \
(in encrypted directories the no-key names, which are also the backing names; elsewhere the user's \
names). `.` is the root. Instead of a PATH, `--ino N` finds an inode by its stable number.\n\n\
Byte output is lowercase hex by default, or binary with --raw.\n\n\
A volume mounted read-write is refused (its lock is held) unless --force.\n\n\
Exit status: 0 success, 1 failure (not found, corrupt, I/O), 2 bad arguments."
)]
pub struct InspectArgs {
    /// The volume's backing directory.
    backing: PathBuf,
    /// Read the volume even while it is mounted read-write (what is on disk may lag behind).
    #[arg(long, global = true)]
    force: bool,
    #[command(subcommand)]
    what: What,
}

/// Selects an inode: a no-key path or `--ino N`.
#[derive(Args, Debug)]
struct Target {
    /// No-key path relative to the volume root (`.` for the root).
    #[arg(required_unless_present = "ino", conflicts_with = "ino")]
    path: Option<PathBuf>,
    /// The stable inode number instead of a path.
    #[arg(long, value_name = "N")]
    ino: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum What {
    /// The volume config: format, UUID, layout, removal mode, next inode number.
    Volume,
    /// An inode: kind, stable number, size, context fields and the `crypt` options for its key.
    Inode {
        #[command(flatten)]
        target: Target,
    },
    /// A directory's entries: `INO KIND NAME` per line (NAME as in PATHs, bytes escaped).
    Ls {
        #[command(flatten)]
        target: Target,
    },
    /// The ciphertext of entry ENTRY's name in directory DIR (the user's name in unencrypted ones).
    Name {
        /// The directory (no-key path).
        dir: PathBuf,
        /// The entry's no-key name.
        entry: PathBuf,
        /// Binary output instead of hex.
        #[arg(long)]
        raw: bool,
    },
    /// A regular file's stored data units in logical order. Hex: one line `INDEX HEX` per unit;
    /// --raw: the units back to back. Holes are printed as all-zero units unless --skip-holes.
    Data {
        #[command(flatten)]
        target: Target,
        /// Binary output (unit i at offset i * data-unit size unless --skip-holes).
        #[arg(long)]
        raw: bool,
        /// Leave out hole units (all-zero backing units, which read as zeros).
        #[arg(long)]
        skip_holes: bool,
    },
    /// A per-extent file's live mappings in logical order, one line each: `INDEX LOGICAL LENGTH
    /// CIPHER KEY-IDENTIFIER NONCE FIRST-UNIT BACKING-OFFSET` (the extent context's mode as a
    /// `crypt` CIPHER, its master key identifier and nonce in hex; FIRST-UNIT is the IV index of
    /// the mapping's first unit: `crypt --data-unit-index`).
    Extents {
        #[command(flatten)]
        target: Target,
    },
    /// The ciphertext of one mapping of a per-extent file (`extents` INDEX): its whole data units
    /// from BACKING-OFFSET. Decrypt with `fscryptfs crypt --decrypt --kdf=HKDF-SHA512
    /// --extent-nonce=NONCE --data-unit-index=FIRST-UNIT [--data-unit-size=DU] CIPHER KEY`.
    ExtentData {
        #[command(flatten)]
        target: Target,
        /// The mapping's INDEX in `extents`.
        #[arg(long, value_name = "K")]
        index: usize,
        /// Binary output instead of hex.
        #[arg(long)]
        raw: bool,
    },
    /// A symlink's stored target: the ciphertext of its fscrypt_symlink_data (the plaintext target
    /// when unencrypted).
    Symlink {
        #[command(flatten)]
        target: Target,
        /// Binary output instead of hex.
        #[arg(long)]
        raw: bool,
        /// The whole fscrypt_symlink_data (le16 length, then the ciphertext).
        #[arg(long)]
        with_length: bool,
    },
}

/// Takes the volume lock shared for an offline tool (None: no lock file, or `force`). A volume
/// mounted read-write is refused with one line (`refused` gives the exit status) unless `force`,
/// which only warns. A lock file that cannot be used (damaged, unreadable) is said on stderr and
/// the tool goes on, as it would without one.
pub fn lock_for_reading(
    backing: &Path,
    force: bool,
    refused: fn(String) -> Failure,
) -> std::result::Result<Option<crate::store::lock::VolumeLock>, Failure> {
    if force {
        warn_if_mounted_rw(backing);
        return Ok(None);
    }
    // A missing or foreign backing directory is the tool's own error to give.
    if !backing.is_dir() {
        return Ok(None);
    }
    match crate::store::lock::VolumeLock::shared(backing) {
        Ok(Some(l)) => Ok(Some(l)),
        Ok(None) => {
            warn_if_mounted_rw(backing);
            Ok(None)
        }
        Err(e) if e.errno() == fscrypt::Errno::BUSY => Err(refused(format!(
            "{}; unmount it, or use --force to read it anyway",
            e.message()
        ))),
        Err(e) => {
            eprintln!(
                "fscryptfs: warning: {}; reading without the volume lock",
                e.message()
            );
            warn_if_mounted_rw(backing);
            Ok(None)
        }
    }
}

/// Warns on stderr when the volume is mounted read-write (what is on disk may lag behind).
pub fn warn_if_mounted_rw(backing: &Path) {
    if let Some(mnt) = mounted_rw(backing) {
        eprintln!(
            "fscryptfs: warning: {} is mounted read-write on {}; the backing store may change while it is read",
            backing.display(),
            mnt
        );
    }
}

/// The mountpoint of a read-write fscryptfs mount of `backing`, if any.
pub fn mounted_rw(backing: &Path) -> Option<String> {
    let canon = backing.canonicalize().ok()?;
    let want = canon.to_string_lossy().replace(' ', "\\040");
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, source) = (r.next()?, r.next()?);
        let mut lf = left.split(' ');
        let mnt = lf.nth(4)?;
        let opts = lf.next()?;
        ((fstype == "fuse.fscryptfs" || fstype == "fuse")
            && source == want
            && opts.split(',').any(|o| o == "rw"))
        .then(|| mnt.to_string())
    })
}

fn target_entries(vol: &Volume, t: &Target) -> Result<Vec<Entry>> {
    match (&t.path, t.ino) {
        (_, Some(ino)) => vol.find_ino(ino),
        (Some(p), None) => Ok(vec![vol.resolve(p)?]),
        (None, None) => Err(Error::invalid("a PATH or --ino is required")),
    }
}

fn target_entry(vol: &Volume, t: &Target) -> Result<Entry> {
    let mut v = target_entries(vol, t)?;
    Ok(v.swap_remove(0))
}

fn write_bytes(out: &mut impl Write, bytes: &[u8], raw: bool) -> io::Result<()> {
    if raw {
        out.write_all(bytes)
    } else {
        writeln!(out, "{}", hex::encode(bytes))
    }
}

/// Runs `fscryptfs inspect`.
pub fn run(args: InspectArgs) -> std::result::Result<(), Failure> {
    let _lock = lock_for_reading(&args.backing, args.force, Failure::op)?;
    let vol = Volume::open(&args.backing)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let wr = |e: io::Error| Failure::op(format!("writing stdout: {e}"));
    match &args.what {
        What::Volume => print_volume(&vol, &mut out).map_err(wr)?,
        What::Inode { target } => {
            let entries = target_entries(&vol, target)?;
            print_inode(&vol, &entries, &mut out).map_err(wr)?;
        }
        What::Ls { target } => {
            let dir = target_entry(&vol, target)?;
            if dir.stored.kind() != Kind::Dir {
                return Err(Failure::op(format!(
                    "{}: not a directory",
                    dir.path.display()
                )));
            }
            let mut damaged = 0;
            for e in vol.list(&dir)? {
                let (ino, kind, name) = match &e {
                    Ok(e) => (
                        e.stored.ino().map_or("-".to_string(), |i| i.to_string()),
                        e.stored.kind().name(),
                        e.path.file_name().unwrap_or_default(),
                    ),
                    Err(d) => {
                        eprintln!("fscryptfs: {}", d.error.message());
                        damaged += 1;
                        (
                            "?".to_string(),
                            d.kind.map_or("?", Kind::name),
                            d.name.as_os_str(),
                        )
                    }
                };
                writeln!(out, "{ino} {kind} {}", name.as_bytes().escape_ascii()).map_err(wr)?;
            }
            if damaged > 0 {
                out.flush().map_err(wr)?;
                return Err(Failure::op(format!(
                    "{damaged} entries of {} could not be read (run fscryptfs fsck)",
                    dir.path.display()
                )));
            }
        }
        What::Name { dir, entry, raw } => {
            let d = vol.resolve(dir)?;
            if d.stored.kind() != Kind::Dir {
                return Err(Failure::op(format!("{}: not a directory", dir.display())));
            }
            let name = entry.as_os_str();
            if name.is_empty() || name.as_bytes().contains(&b'/') {
                return Err(Failure::usage("ENTRY must be a single name"));
            }
            let bname = Volume::backing_name(&d, name)?;
            // The entry must exist (and be one of the directory's entries, not one of our files).
            let full = d.path.join(name);
            vol.resolve(&full)?;
            let bytes = match d.stored.ctx() {
                Some(_) => name_ciphertext_at(d.open_dir()?, &d.backing, &bname)?,
                None => name.as_bytes().to_vec(),
            };
            write_bytes(&mut out, &bytes, *raw).map_err(wr)?;
        }
        What::Data {
            target,
            raw,
            skip_holes,
        } => {
            let e = target_entry(&vol, target)?;
            print_data(&vol, &e, *raw, *skip_holes, &mut out)?;
        }
        What::Extents { target } => {
            let e = target_entry(&vol, target)?;
            let ef = open_extent_file(&vol, &e)?;
            for (i, x) in ef.extents().iter().enumerate() {
                writeln!(
                    out,
                    "{i} {} {} {} {} {} {} {}",
                    x.logical,
                    x.len,
                    crypt_cipher_name(x.ctx.mode),
                    hex::encode(x.ctx.master_key_identifier),
                    hex::encode(x.ctx.nonce),
                    x.first_unit,
                    x.backing_offset
                )
                .map_err(wr)?;
            }
        }
        What::ExtentData { target, index, raw } => {
            let e = target_entry(&vol, target)?;
            let ef = open_extent_file(&vol, &e)?;
            let list = ef.extents();
            let x = list.get(*index).ok_or_else(|| {
                Failure::op(format!(
                    "{}: no mapping {index} (it has {})",
                    e.path.display(),
                    list.len()
                ))
            })?;
            let du = ef.data_unit_size() as u64;
            let what = e.backing.display().to_string();
            let f = e.open_file()?;
            let mut buf = vec![0u8; (x.len.div_ceil(du) * du) as usize];
            let n = read_full_at(&f, &mut buf, x.backing_offset)
                .map_err(|err| Failure::from(io_err(&what, err)))?;
            if n != buf.len() {
                return Err(Failure::op(format!(
                    "{what}: backing offset {}: short read",
                    x.backing_offset + n as u64
                )));
            }
            write_bytes(&mut out, &buf, *raw).map_err(wr)?;
        }
        What::Symlink {
            target,
            raw,
            with_length,
        } => {
            let e = target_entry(&vol, target)?;
            let bytes = match &e.stored {
                Stored::Symlink(SymlinkTarget::Plain { target, .. }) => target.clone(),
                Stored::Symlink(SymlinkTarget::Encrypted { data, .. }) => {
                    let what = e.backing.display().to_string();
                    let ct = fscrypt::symlink::ciphertext(data)
                        .map_err(|err| Failure::op(format!("{what}: {}", err.message())))?;
                    if *with_length {
                        data[..2 + ct.len()].to_vec()
                    } else {
                        ct.to_vec()
                    }
                }
                _ => return Err(Failure::op(format!("{}: not a symlink", e.path.display()))),
            };
            write_bytes(&mut out, &bytes, *raw).map_err(wr)?;
        }
    }
    out.flush().map_err(wr)
}

fn print_volume(vol: &Volume, out: &mut impl Write) -> io::Result<()> {
    let c = &vol.config;
    writeln!(out, "backing {}", vol.root.display())?;
    writeln!(out, "format {}", c.format)?;
    writeln!(out, "uuid {}", hex::encode(c.uuid))?;
    writeln!(out, "contents-layout {}", c.layout.name())?;
    writeln!(
        out,
        "removal {}",
        crate::store::config::removal_name(c.removal)
    )?;
    writeln!(out, "next-ino {}", c.next_ino)?;
    writeln!(out, "root-ino {ROOT_INO}")?;
    writeln!(out, "block-size {}", 1u32 << vol.fsp.block_bits)
}

fn print_inode(vol: &Volume, entries: &[Entry], out: &mut impl Write) -> io::Result<()> {
    for e in entries {
        writeln!(out, "path {}", e.path.as_os_str().as_bytes().escape_ascii())?;
    }
    let e = &entries[0];
    for x in entries {
        writeln!(out, "backing {}", x.backing.display())?;
    }
    let kind = e.stored.kind();
    writeln!(out, "kind {}", kind.name())?;
    match e.stored.ino() {
        Some(i) => writeln!(out, "ino {i}")?,
        None => writeln!(out, "ino - (special files have no stored inode number)")?,
    }
    if let Some(p) = e.parent_ino {
        writeln!(out, "parent-ino {p}")?;
    }
    writeln!(out, "mode {:o}", e.md.mode() & 0o7777)?;
    writeln!(out, "uid {}", e.md.uid())?;
    writeln!(out, "gid {}", e.md.gid())?;
    writeln!(out, "links {}", e.md.nlink())?;
    let ctx = e.stored.ctx();
    match &e.stored {
        Stored::File {
            header,
            backing_len,
        } => {
            let du = vol.data_unit_size(ctx);
            if header.layout == crate::store::meta::LAYOUT_EXTENT {
                // The logical size lives in the log, not in the header.
                let ef = entries.first().and_then(|e| open_extent_file(vol, e).ok());
                let size = ef.as_ref().map_or(header.size, |f| f.logical_size());
                writeln!(out, "layout per-extent")?;
                writeln!(out, "size {size}")?;
                writeln!(out, "data-unit-size {du}")?;
                writeln!(out, "data-units {}", size.div_ceil(du))?;
                writeln!(out, "backing-size {backing_len}")?;
                if let Some(f) = ef {
                    writeln!(out, "extents {}", f.extents().len())?;
                }
            } else {
                writeln!(out, "size {}", header.size)?;
                writeln!(out, "data-unit-size {du}")?;
                writeln!(out, "data-units {}", header.size.div_ceil(du))?;
                writeln!(out, "backing-size {backing_len}")?;
            }
        }
        Stored::Symlink(SymlinkTarget::Encrypted { data, .. }) => {
            if let Ok(ct) = fscrypt::symlink::ciphertext(data) {
                writeln!(out, "target-ciphertext-length {}", ct.len())?;
            }
        }
        Stored::Symlink(SymlinkTarget::Plain { target, .. }) => {
            writeln!(out, "target {}", target.escape_ascii())?;
        }
        _ => {}
    }
    let Some(ctx) = ctx else {
        return writeln!(out, "encrypted no");
    };
    let p = ctx.policy();
    writeln!(out, "encrypted yes")?;
    writeln!(out, "context {}", hex::encode(ctx.to_bytes()))?;
    writeln!(
        out,
        "policy-version {}",
        if matches!(p, Policy::V1(_)) { 1 } else { 2 }
    )?;
    let (cm, fm) = (p.contents_mode(), p.filenames_mode());
    writeln!(
        out,
        "contents-mode {} ({})",
        cm.number(),
        cm.friendly_name()
    )?;
    writeln!(
        out,
        "filenames-mode {} ({})",
        fm.number(),
        fm.friendly_name()
    )?;
    writeln!(out, "flags 0x{:02x} ({})", p.flags(), p.flags_description())?;
    writeln!(out, "padding {}", p.padding())?;
    if let Policy::V2(v2) = p {
        writeln!(out, "log2-data-unit-size {}", v2.log2_data_unit_size)?;
    }
    match p.key_spec() {
        fscrypt::policy::KeySpec::Identifier(id) => {
            writeln!(out, "key-identifier {}", hex::encode(id))?
        }
        fscrypt::policy::KeySpec::Descriptor(d) => {
            writeln!(out, "key-descriptor {}", hex::encode(d))?
        }
    }
    writeln!(out, "nonce {}", hex::encode(ctx.nonce()))?;
    writeln!(out, "fs-uuid {}", hex::encode(vol.config.uuid))?;
    let ino = e.stored.ino().unwrap_or(0);
    let uuid = &vol.config.uuid;
    match kind {
        Kind::Regular if is_extent_file(&e.stored) => {
            // No per-file key: every extent has its own (HKDF context 9 over its nonce).
            writeln!(
                out,
                "crypt-contents per extent: `fscryptfs inspect extents {}` prints each extent's \
                 options",
                e.path.as_os_str().as_bytes().escape_ascii()
            )?;
        }
        Kind::Regular => {
            let mut a = crypt_args(ctx, cm, ino, uuid);
            a.push(format!(
                "--data-unit-size={}",
                vol.data_unit_size(Some(ctx))
            ));
            writeln!(out, "crypt-contents {}", a.join(" "))?;
        }
        Kind::Dir => {
            let mut a = crypt_args(ctx, fm, ino, uuid);
            a.push(format!("--padding={}", p.padding()));
            a.push("--data-unit-size=255".into());
            writeln!(out, "crypt-names {}", a.join(" "))?;
        }
        Kind::Symlink => {
            let mut a = crypt_args(ctx, fm, ino, uuid);
            a.push(format!("--padding={}", p.padding()));
            a.push(format!("--data-unit-size={}", symlink_unit_size(&e.stored)));
            writeln!(out, "crypt-target {}", a.join(" "))?;
        }
        _ => {}
    }
    Ok(())
}

/// Whether `s` is a per-extent regular file.
fn is_extent_file(s: &Stored) -> bool {
    matches!(s, Stored::File { header, .. } if header.layout == crate::store::meta::LAYOUT_EXTENT)
}

/// The `--data-unit-size` that makes `crypt` treat a symlink's ciphertext as one message: 4096, or
/// the ciphertext's length when it was cut at the limit (not a multiple of the padding).
fn symlink_unit_size(s: &Stored) -> usize {
    if let Stored::Symlink(SymlinkTarget::Encrypted { data, ctx, .. }) = s {
        if let Ok(ct) = fscrypt::symlink::ciphertext(data) {
            if !ct.len().is_multiple_of(ctx.policy().padding()) {
                return ct.len().max(16);
            }
        }
    }
    4096
}

/// Opens a per-extent file's log read-only (its map recovered as the daemon would; nothing is
/// written).
fn open_extent_file(
    vol: &Volume,
    e: &Entry,
) -> std::result::Result<crate::store::extent::ExtentFile, Failure> {
    let Stored::File { header, .. } = &e.stored else {
        return Err(Failure::op(format!(
            "{}: not a regular file",
            e.path.display()
        )));
    };
    let ctx = match (&header.ctx, header.layout) {
        (Some(c), crate::store::meta::LAYOUT_EXTENT) => c,
        _ => {
            return Err(Failure::op(format!(
                "{}: not a per-extent file (use `data`)",
                e.path.display()
            )))
        }
    };
    let f = e.open_file()?;
    let du = vol.data_unit_size(Some(ctx)) as usize;
    Ok(crate::store::extent::ExtentFile::open(f, ctx.policy(), du)?)
}

fn print_data(
    vol: &Volume,
    e: &Entry,
    raw: bool,
    skip_holes: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let Stored::File { header, .. } = &e.stored else {
        return Err(Failure::op(format!(
            "{}: not a regular file",
            e.path.display()
        )));
    };
    if header.layout == crate::store::meta::LAYOUT_EXTENT {
        return Err(Failure::op(format!(
            "{}: a per-extent file: use `extents` and `extent-data`",
            e.path.display()
        )));
    }
    let what = e.backing.display().to_string();
    let du = vol.data_unit_size(header.ctx.as_ref());
    let f = e.open_file()?;
    let mut buf = vec![0u8; du as usize];
    let wr = |err: io::Error| Failure::op(format!("writing stdout: {err}"));
    for i in 0..header.size.div_ceil(du) {
        buf.fill(0);
        read_full_at(&f, &mut buf, FILE_HEADER_SIZE + i * du)
            .map_err(|err| Failure::from(io_err(&what, err)))?;
        if skip_holes && buf.iter().all(|&b| b == 0) {
            continue;
        }
        if raw {
            out.write_all(&buf).map_err(wr)?;
        } else {
            writeln!(out, "{i} {}", hex::encode(&buf)).map_err(wr)?;
        }
    }
    Ok(())
}
