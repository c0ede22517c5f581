//! Per-inode metadata on the backing store: the directory metadata file, the regular-file header and
//! the backing form of symlink targets.
//!
//! Each carries the inode's stable number and, for encrypted inodes, its fscrypt context (28 or 40
//! bytes, the kernel's bytes), because the IV_INO_LBLK flags and the nonce-derived keys depend on them
//! and they must survive copies of the backing store. Binary structures end in a checksum, so a
//! damaged header is reported (EUCLEAN, naming the backing path) instead of decrypting garbage.
//!
//! Besides the parsers and encoders, this module owns the one reader (and writers) of each object on
//! the backing store, built on [`super::io`]: [`read_dir_meta_at`], [`write_dir_meta_new`] and
//! [`replace_dir_meta_at`] for directory metadata, [`read_file_header`] for a regular file's header
//! block and [`read_symlink_at`] for a backing symlink target.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use fscrypt::context::{Context, CONTEXT_V2_SIZE};
use fscrypt::nokey::{base64url_decode, base64url_encode};
use fscrypt::policy::FsParams;
use fscrypt::{Error, Result};

use super::config::{ContentsLayout, INO_LIMIT};
use super::io as store_io;
use super::{checksum, io_err, read_full_at, sys_err, BACKING_SYMLINK_MAX, FILE_HEADER_SIZE};

/// Name of the metadata file in every backing directory.
pub const DIR_META_NAME: &str = ".fscryptfs.dir";
/// Magic of the directory metadata file.
pub const DIR_MAGIC: &[u8; 8] = b"FSCRYPTD";
/// Size of the directory metadata file.
pub const DIR_META_SIZE: usize = 72;
/// Magic of a regular file's header.
pub const FILE_MAGIC: &[u8; 8] = b"FSCRYPTF";
/// The part of the 4096-byte header that is used (the rest is zero, reserved).
pub const FILE_HEADER_USED: usize = 80;
/// Version of the directory metadata and file header formats.
pub const META_VERSION: u8 = 1;
/// Layout byte: per-file keys, ciphertext in place. The layout bytes appear here only, in the
/// header's encoding and decoding; everywhere else a layout is a [`ContentsLayout`].
const LAYOUT_PER_FILE: u8 = 1;
/// Layout byte: per-extent keys, the file a log of extents (`store::extent`).
const LAYOUT_EXTENT: u8 = 2;

/// The header byte of a layout.
fn layout_byte(l: ContentsLayout) -> u8 {
    match l {
        ContentsLayout::PerFile => LAYOUT_PER_FILE,
        ContentsLayout::Extent => LAYOUT_EXTENT,
    }
}

fn parse_ctx(
    len: u8,
    bytes: &[u8],
    fs: &FsParams,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<Option<Context>> {
    match len {
        0 => {
            if bytes.iter().any(|&b| b != 0) {
                return Err(Error::corrupt(format!(
                    "{what}: unencrypted inode with nonzero context bytes"
                )));
            }
            Ok(None)
        }
        28 | 40 => Context::parse(&bytes[..usize::from(len)], fs)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("{what}: bad encryption context: {e}"))),
        n => Err(Error::corrupt(format!(
            "{what}: bad encryption context length {n}"
        ))),
    }
}

fn put_ctx(out: &mut [u8], ctx: Option<&Context>) -> u8 {
    match ctx {
        Some(c) => {
            let b = c.to_bytes();
            out[..b.len()].copy_from_slice(&b);
            b.len() as u8
        }
        None => 0,
    }
}

fn check_ino(ino: u64, what: &(impl std::fmt::Display + ?Sized)) -> Result<u64> {
    if ino == 0 || ino >= INO_LIMIT {
        return Err(Error::corrupt(format!("{what}: bad inode number {ino}")));
    }
    Ok(ino)
}

/// The metadata of one directory (`.fscryptfs.dir`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirMeta {
    /// Stable inode number.
    pub ino: u64,
    /// The fscrypt context, when the directory is encrypted.
    pub ctx: Option<Context>,
}

impl DirMeta {
    /// The 72-byte form.
    pub fn to_bytes(&self) -> [u8; DIR_META_SIZE] {
        let mut b = [0u8; DIR_META_SIZE];
        b[..8].copy_from_slice(DIR_MAGIC);
        b[8] = META_VERSION;
        b[9] = put_ctx(&mut b[24..24 + CONTEXT_V2_SIZE], self.ctx.as_ref());
        b[16..24].copy_from_slice(&self.ino.to_le_bytes());
        let sum = checksum(&b[..64]);
        b[64..72].copy_from_slice(&sum);
        b
    }

    /// Parses and checks the 72-byte form; `what` names the file in errors (EUCLEAN).
    pub fn parse(
        b: &[u8],
        fs: &FsParams,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<Self> {
        if b.len() != DIR_META_SIZE {
            return Err(Error::corrupt(format!(
                "{what}: directory metadata is {} bytes, expected {DIR_META_SIZE}",
                b.len()
            )));
        }
        if &b[..8] != DIR_MAGIC {
            return Err(Error::corrupt(format!(
                "{what}: bad directory metadata magic"
            )));
        }
        if b[8] != META_VERSION {
            return Err(Error::corrupt(format!(
                "{what}: unknown directory metadata version {}",
                b[8]
            )));
        }
        if checksum(&b[..64]) != b[64..72] {
            return Err(Error::corrupt(format!(
                "{what}: directory metadata checksum mismatch"
            )));
        }
        if b[10..16].iter().any(|&x| x != 0) {
            return Err(Error::corrupt(format!("{what}: nonzero reserved bytes")));
        }
        let ino = check_ino(
            u64::from_le_bytes(b[16..24].try_into().unwrap_or_default()),
            what,
        )?;
        let ctx = parse_ctx(b[9], &b[24..64], fs, what)?;
        Ok(DirMeta { ino, ctx })
    }
}

/// The used part of a regular file's 4096-byte header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Contents layout: `PerFile` (byte 1) or `Extent` (byte 2: encrypted v2 files only; the
    /// rest of such a file belongs to `store::extent`).
    pub layout: ContentsLayout,
    /// Stable inode number.
    pub ino: u64,
    /// Logical (plaintext) size in bytes (informational, 0, for the per-extent layout).
    pub size: u64,
    /// The fscrypt context, when the file is encrypted.
    pub ctx: Option<Context>,
}

impl FileHeader {
    /// The first [`FILE_HEADER_USED`] bytes of the header (the rest of the 4096 are zero).
    pub fn to_bytes(&self) -> [u8; FILE_HEADER_USED] {
        let mut b = [0u8; FILE_HEADER_USED];
        b[..8].copy_from_slice(FILE_MAGIC);
        b[8] = META_VERSION;
        b[9] = layout_byte(self.layout);
        b[10] = put_ctx(&mut b[32..32 + CONTEXT_V2_SIZE], self.ctx.as_ref());
        b[16..24].copy_from_slice(&self.ino.to_le_bytes());
        b[24..32].copy_from_slice(&self.size.to_le_bytes());
        let sum = checksum(&b[..72]);
        b[72..80].copy_from_slice(&sum);
        b
    }

    /// Parses and checks a header (at least [`FILE_HEADER_USED`] bytes); EUCLEAN naming `what`.
    pub fn parse(
        b: &[u8],
        fs: &FsParams,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<Self> {
        if b.len() < FILE_HEADER_USED {
            return Err(Error::corrupt(format!(
                "{what}: file header truncated to {} bytes",
                b.len()
            )));
        }
        if &b[..8] != FILE_MAGIC {
            return Err(Error::corrupt(format!("{what}: bad file header magic")));
        }
        if b[8] != META_VERSION {
            return Err(Error::corrupt(format!(
                "{what}: unknown file header version {}",
                b[8]
            )));
        }
        if checksum(&b[..72]) != b[72..80] {
            return Err(Error::corrupt(format!(
                "{what}: file header checksum mismatch"
            )));
        }
        let layout = match b[9] {
            LAYOUT_PER_FILE => ContentsLayout::PerFile,
            LAYOUT_EXTENT => ContentsLayout::Extent,
            other => {
                return Err(Error::corrupt(format!(
                    "{what}: unknown contents layout {other} (this fscryptfs knows 1, per-file, and 2, per-extent)"
                )));
            }
        };
        if b[11..16].iter().any(|&x| x != 0) {
            return Err(Error::corrupt(format!("{what}: nonzero reserved bytes")));
        }
        let ino = check_ino(
            u64::from_le_bytes(b[16..24].try_into().unwrap_or_default()),
            what,
        )?;
        let size = u64::from_le_bytes(b[24..32].try_into().unwrap_or_default());
        if size > fs.max_file_size {
            return Err(Error::corrupt(format!(
                "{what}: size {size} exceeds the maximum"
            )));
        }
        let ctx = parse_ctx(b[10], &b[32..72], fs, what)?;
        if layout == ContentsLayout::Extent
            && !matches!(&ctx, Some(c) if c.to_bytes().len() == CONTEXT_V2_SIZE)
        {
            return Err(Error::corrupt(format!(
                "{what}: per-extent file without a v2 encryption context"
            )));
        }
        Ok(FileHeader {
            layout,
            ino,
            size,
            ctx,
        })
    }
}

/// Prefix of an encrypted symlink's backing target.
pub const SYMLINK_ENC_PREFIX: &str = "fscryptfs:1:";
/// Prefix of an unencrypted symlink's backing target.
pub const SYMLINK_PLAIN_PREFIX: &str = "fscryptfs:0:";

/// What a backing symlink target holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymlinkTarget {
    /// An unencrypted symlink: its inode number and plaintext target.
    Plain {
        /// Stable inode number.
        ino: u64,
        /// The target.
        target: Vec<u8>,
    },
    /// An encrypted symlink: inode number, context and `fscrypt_symlink_data`.
    Encrypted {
        /// Stable inode number.
        ino: u64,
        /// The symlink's own context (its nonce keys the target).
        ctx: Context,
        /// `le16 length ‖ ciphertext`.
        data: Vec<u8>,
    },
}

impl SymlinkTarget {
    /// The stable inode number.
    pub fn ino(&self) -> u64 {
        match self {
            SymlinkTarget::Plain { ino, .. } | SymlinkTarget::Encrypted { ino, .. } => *ino,
        }
    }

    /// The backing target bytes. ENAMETOOLONG past 4095 bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let out = match self {
            SymlinkTarget::Plain { ino, target } => {
                let mut v = format!("{SYMLINK_PLAIN_PREFIX}{ino}:").into_bytes();
                v.extend_from_slice(target);
                v
            }
            SymlinkTarget::Encrypted { ino, ctx, data } => {
                let c = ctx.to_bytes();
                let mut raw = Vec::with_capacity(9 + c.len() + data.len());
                raw.extend_from_slice(&ino.to_le_bytes());
                raw.push(c.len() as u8);
                raw.extend_from_slice(&c);
                raw.extend_from_slice(data);
                format!("{SYMLINK_ENC_PREFIX}{}", base64url_encode(&raw)).into_bytes()
            }
        };
        if out.len() > BACKING_SYMLINK_MAX {
            return Err(Error::new(
                fscrypt::Errno::NAMETOOLONG,
                "symlink target too long for the backing store",
            ));
        }
        Ok(out)
    }

    /// Parses a backing target; EUCLEAN naming `what` for anything not ours or malformed.
    pub fn parse(
        b: &[u8],
        fs: &FsParams,
        what: &(impl std::fmt::Display + ?Sized),
    ) -> Result<Self> {
        let bad = |m: &str| Error::corrupt(format!("{what}: {m}"));
        if let Some(rest) = b.strip_prefix(SYMLINK_PLAIN_PREFIX.as_bytes()) {
            let colon = rest
                .iter()
                .position(|&c| c == b':')
                .ok_or_else(|| bad("symlink target lacks its inode number"))?;
            let ino = std::str::from_utf8(&rest[..colon])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad("bad inode number in symlink target"))?;
            let target = rest[colon + 1..].to_vec();
            if target.is_empty() {
                return Err(bad("empty symlink target"));
            }
            return Ok(SymlinkTarget::Plain {
                ino: check_ino(ino, what)?,
                target,
            });
        }
        if let Some(rest) = b.strip_prefix(SYMLINK_ENC_PREFIX.as_bytes()) {
            let raw =
                base64url_decode(rest).ok_or_else(|| bad("bad base64url in symlink target"))?;
            if raw.len() < 9 {
                return Err(bad("symlink target too short"));
            }
            let ino = check_ino(
                u64::from_le_bytes(raw[..8].try_into().unwrap_or_default()),
                what,
            )?;
            let clen = usize::from(raw[8]);
            if clen != 28 && clen != 40 || raw.len() < 9 + clen + 3 {
                return Err(bad("bad context in symlink target"));
            }
            let ctx = Context::parse(&raw[9..9 + clen], fs)
                .map_err(|e| bad(&format!("bad encryption context: {e}")))?;
            return Ok(SymlinkTarget::Encrypted {
                ino,
                ctx,
                data: raw[9 + clen..].to_vec(),
            });
        }
        Err(bad("not an fscryptfs symlink"))
    }
}

// ---- reading and writing them on the backing store ----

/// The path of directory `dir`'s metadata file, as messages name it.
fn dir_meta_what(dir: &Path) -> String {
    dir.join(DIR_META_NAME).display().to_string()
}

/// Reads and checks the metadata of the backing directory open as `dirfd` (any descriptor of it,
/// `O_PATH` included), which messages call `dir`. Through `store::io`: never through a symlink,
/// never blocking, at most [`DIR_META_SIZE`] bytes. EUCLEAN naming the metadata file when it is of
/// the wrong type, too large or malformed, naming `dir` when it is missing.
pub fn read_dir_meta_at(
    dirfd: impl AsFd,
    fsp: &FsParams,
    dir: impl AsRef<Path>,
) -> Result<DirMeta> {
    let dir = dir.as_ref();
    let what = dir_meta_what(dir);
    match store_io::read_bounded(dirfd, OsStr::new(DIR_META_NAME), DIR_META_SIZE, &what)? {
        None => Err(Error::corrupt(format!(
            "{}: directory has no {DIR_META_NAME}",
            dir.display()
        ))),
        Some(b) => DirMeta::parse(&b, fsp, &what),
    }
}

/// Writes the metadata file of a new backing directory open as `dirfd` (called `dir` in
/// messages): `EEXIST` when anything is already at its name.
pub fn write_dir_meta_new(dirfd: impl AsFd, meta: &DirMeta, dir: impl AsRef<Path>) -> Result<()> {
    let what = dir_meta_what(dir.as_ref());
    store_io::write_new(
        dirfd,
        OsStr::new(DIR_META_NAME),
        &meta.to_bytes(),
        0o644,
        &what,
    )
}

/// Replaces the metadata of the backing directory open as `dirfd` (called `dir` in messages)
/// atomically and durably: a fresh temporary file, synced, renamed over it, the directory synced.
pub fn replace_dir_meta_at(dirfd: impl AsFd, meta: &DirMeta, dir: impl AsRef<Path>) -> Result<()> {
    let what = dir_meta_what(dir.as_ref());
    store_io::replace(
        dirfd,
        OsStr::new(DIR_META_NAME),
        &meta.to_bytes(),
        0o644,
        true,
        &what,
    )
}

/// Reads the header block of the open regular file `f`: its first [`FILE_HEADER_SIZE`] bytes
/// (fewer when the file is shorter) and the header parsed from them. EUCLEAN naming `what` for a
/// damaged header or one cut short of [`FILE_HEADER_USED`] bytes. (Whether the whole block is
/// there is the caller's question: the file's length says.)
pub fn read_file_header(
    f: &File,
    fsp: &FsParams,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<(Vec<u8>, FileHeader)> {
    let mut block = vec![0u8; FILE_HEADER_SIZE as usize];
    let n = read_full_at(f, &mut block, 0).map_err(|e| io_err(what, e))?;
    block.truncate(n);
    let h = FileHeader::parse(&block[..n.min(FILE_HEADER_USED)], fsp, what)?;
    Ok((block, h))
}

/// Reads and parses the backing symlink open as `fd` (an `O_PATH` descriptor of the link itself:
/// nothing is followed). EUCLEAN naming `what` for a target that is not ours or malformed.
pub fn read_symlink_at(
    fd: impl AsFd,
    fsp: &FsParams,
    what: &(impl std::fmt::Display + ?Sized),
) -> Result<SymlinkTarget> {
    let t = rustix::fs::readlinkat(fd, "", Vec::new()).map_err(|e| sys_err(what, e))?;
    SymlinkTarget::parse(t.as_bytes(), fsp, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fscrypt::policy::{Policy, PolicyV2};
    use fscrypt::EncryptionMode;
    use std::os::unix::ffi::OsStrExt;

    fn ctx() -> Context {
        let p = Policy::V2(PolicyV2 {
            contents_mode: EncryptionMode::Aes256Xts,
            filenames_mode: EncryptionMode::Aes256Cts,
            flags: 2,
            log2_data_unit_size: 0,
            master_key_identifier: [7; 16],
        });
        Context::new_random(p).unwrap()
    }

    #[test]
    fn roundtrips_and_corruption() {
        let fs = super::super::fs_params();
        let d = DirMeta {
            ino: 99,
            ctx: Some(ctx()),
        };
        let mut b = d.to_bytes();
        assert_eq!(DirMeta::parse(&b, &fs, "d").unwrap(), d);
        b[20] ^= 1;
        assert_eq!(
            DirMeta::parse(&b, &fs, "d").unwrap_err().errno(),
            fscrypt::Errno::UCLEAN
        );
        let h = FileHeader {
            layout: ContentsLayout::PerFile,
            ino: 5000,
            size: 1 << 33,
            ctx: None,
        };
        assert_eq!(FileHeader::parse(&h.to_bytes(), &fs, "f").unwrap(), h);
        // Layout 2 needs a v2 context.
        let e = FileHeader {
            layout: ContentsLayout::Extent,
            ctx: Some(ctx()),
            ..h.clone()
        };
        assert_eq!(FileHeader::parse(&e.to_bytes(), &fs, "f").unwrap(), e);
        let bad = FileHeader {
            layout: ContentsLayout::Extent,
            ..h.clone()
        };
        assert_eq!(
            FileHeader::parse(&bad.to_bytes(), &fs, "f")
                .unwrap_err()
                .errno(),
            fscrypt::Errno::UCLEAN
        );
        let s = SymlinkTarget::Encrypted {
            ino: 17,
            ctx: ctx(),
            data: vec![16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
        };
        assert_eq!(
            SymlinkTarget::parse(&s.encode().unwrap(), &fs, "s").unwrap(),
            s
        );
        let p = SymlinkTarget::Plain {
            ino: 17,
            target: b"a:b/c".to_vec(),
        };
        assert_eq!(
            SymlinkTarget::parse(&p.encode().unwrap(), &fs, "s").unwrap(),
            p
        );
        assert!(SymlinkTarget::parse(b"/etc/passwd", &fs, "s").is_err());
    }

    #[test]
    fn longest_symlink_fits() {
        let data = vec![1u8; 2 + super::super::SYMLINK_CIPHERTEXT_MAX];
        let s = SymlinkTarget::Encrypted {
            ino: u32::MAX as u64,
            ctx: ctx(),
            data,
        };
        assert!(s.encode().unwrap().len() <= BACKING_SYMLINK_MAX);
    }

    #[test]
    fn dir_meta_is_read_and_written_through_store_io() {
        use rustix::fs::{Mode, OFlags};
        let fs = super::super::fs_params();
        let t = tempfile::tempdir().unwrap();
        let d =
            rustix::fs::open(t.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let e = read_dir_meta_at(&d, &fs, t.path()).unwrap_err();
        assert_eq!(e.errno(), fscrypt::Errno::UCLEAN, "{e}");
        assert!(
            e.message().ends_with("directory has no .fscryptfs.dir"),
            "{e}"
        );
        let m = DirMeta { ino: 7, ctx: None };
        write_dir_meta_new(&d, &m, t.path()).unwrap();
        assert_eq!(
            write_dir_meta_new(&d, &m, t.path()).unwrap_err().errno(),
            fscrypt::Errno::EXIST
        );
        assert_eq!(read_dir_meta_at(&d, &fs, t.path()).unwrap(), m);
        let m2 = DirMeta {
            ino: 7,
            ctx: Some(ctx()),
        };
        replace_dir_meta_at(&d, &m2, t.path()).unwrap();
        assert_eq!(read_dir_meta_at(&d, &fs, t.path()).unwrap(), m2);
        // Anything but a regular file of at most 72 bytes is damage, never followed or blocked on.
        std::fs::remove_file(t.path().join(DIR_META_NAME)).unwrap();
        rustix::fs::mkfifoat(&d, DIR_META_NAME, Mode::from_raw_mode(0o644)).unwrap();
        let e = read_dir_meta_at(&d, &fs, t.path()).unwrap_err();
        assert_eq!(e.errno(), fscrypt::Errno::UCLEAN, "{e}");
        assert!(e.message().contains(DIR_META_NAME), "{e}");
    }

    #[test]
    fn file_headers_and_symlinks_are_read_whole_and_checked() {
        use rustix::fs::{Mode, OFlags};
        let fs = super::super::fs_params();
        let t = tempfile::tempdir().unwrap();
        let h = FileHeader {
            layout: ContentsLayout::PerFile,
            ino: 20,
            size: 0,
            ctx: None,
        };
        let p = t.path().join("f");
        std::fs::write(&p, h.to_bytes()).unwrap();
        let (block, got) = read_file_header(&File::open(&p).unwrap(), &fs, "f").unwrap();
        assert_eq!((block.len(), got), (FILE_HEADER_USED, h.clone()));
        std::fs::write(&p, &h.to_bytes()[..40]).unwrap();
        let e = read_file_header(&File::open(&p).unwrap(), &fs, "f").unwrap_err();
        assert_eq!(e.errno(), fscrypt::Errno::UCLEAN, "{e}");
        let target = SymlinkTarget::Plain {
            ino: 21,
            target: b"x".to_vec(),
        };
        let l = t.path().join("l");
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target.encode().unwrap()), &l)
            .unwrap();
        let fd = rustix::fs::open(&l, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty()).unwrap();
        assert_eq!(read_symlink_at(&fd, &fs, "l").unwrap(), target);
    }
}
