//! The volume config (`.fscryptfs.conf` in the backing root) and the inode-number counter it holds.
//!
//! A small, strictly parsed text file: the format version first, then one `key value` per line, every
//! key exactly once. A newer format version is refused (an older fscryptfs must not guess at a layout
//! it does not know); unknown keys and malformed values are refused too. Inode numbers are handed out
//! from a counter that is reserved in batches: the reservation is persisted (write a temporary file,
//! fsync, rename over, fsync the directory) *before* any number of the batch is used, so after a crash
//! the rest of the batch is skipped and no number is ever handed out twice.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fscrypt::keyring::RemovalMode;
use fscrypt::{Errno, Error, Result};

/// The config file's name in the backing root.
pub const CONFIG_NAME: &str = ".fscryptfs.conf";
/// In the backing root of a volume encrypted from its root: the protector and policy records of
/// its root policy, in the `fscrypt` tool's layout (`policies/`, `protectors/`; docs/FORMAT.md).
/// The daemon never opens it (the command line does, before mounting).
pub const VOLUME_TREE_NAME: &str = ".fscryptfs.fscrypt";
/// The largest config file read (docs/FORMAT.md); a larger one is damage (EUCLEAN).
pub const CONFIG_MAX: usize = 4096;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The root directory's inode number (as on ext4... which uses 2; FUSE's root is 1).
pub const ROOT_INO: u64 = 1;
/// The first inode number handed out to files (numbers below are reserved).
pub const FIRST_INO: u64 = 16;
/// How many inode numbers one reservation covers.
pub const INO_BATCH: u64 = 1024;
/// Inode numbers stay below 2^32 (IV_INO_LBLK_64/32 need 32-bit numbers).
pub const INO_LIMIT: u64 = 1 << 32;

/// How contents are laid out in regular files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContentsLayout {
    /// Per-file keys, ciphertext in place (the ext4/f2fs model). The default of new volumes.
    #[default]
    PerFile,
    /// Encrypted regular files are logs of per-extent-keyed extents (the btrfs v6 model;
    /// docs/FORMAT.md "Per-extent layout"). Unencrypted files stay in the per-file layout.
    Extent,
}

impl ContentsLayout {
    /// The config (and `init --contents-layout`) spelling.
    pub fn name(self) -> &'static str {
        match self {
            ContentsLayout::PerFile => "per-file",
            ContentsLayout::Extent => "extent",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "per-file" => Some(ContentsLayout::PerFile),
            "extent" => Some(ContentsLayout::Extent),
            _ => None,
        }
    }
}

/// Parses a removal mode as the config and `-o removal=` spell it.
pub fn parse_removal(s: &str) -> Option<RemovalMode> {
    match s {
        "soft" => Some(RemovalMode::Soft),
        "deny-writes" => Some(RemovalMode::DenyWrites),
        _ => None,
    }
}

/// The config spelling of a removal mode.
pub fn removal_name(m: RemovalMode) -> &'static str {
    match m {
        RemovalMode::Soft => "soft",
        RemovalMode::DenyWrites => "deny-writes",
    }
}

/// The parsed volume config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeConfig {
    /// Format version (always [`FORMAT_VERSION`] once parsed).
    pub format: u32,
    /// The volume UUID (the "filesystem UUID" of the IV_INO_LBLK key derivations).
    pub uuid: [u8; 16],
    /// The contents layout of regular files.
    pub layout: ContentsLayout,
    /// The default key-removal mode.
    pub removal: RemovalMode,
    /// The first inode number not yet reserved.
    pub next_ino: u64,
    /// The passphrase salt `FS_IOC_GET_ENCRYPTION_PWSALT` answers (ext4's `s_encrypt_pw_salt`):
    /// made and stored the first time it is asked for.
    pub pw_salt: Option<[u8; 16]>,
}

impl VolumeConfig {
    /// A fresh config with a random UUID.
    pub fn new(removal: RemovalMode) -> Result<Self> {
        let mut uuid = [0u8; 16];
        fscrypt::context::fill_random(&mut uuid)?;
        // RFC 4122 version 4, variant 1.
        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        Ok(VolumeConfig {
            format: FORMAT_VERSION,
            uuid,
            layout: ContentsLayout::PerFile,
            removal,
            next_ino: FIRST_INO,
            pw_salt: None,
        })
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "# fscryptfs volume configuration (docs/FORMAT.md); do not edit while mounted\n\
             format {}\nuuid {}\ncontents-layout {}\nremoval {}\nnext-ino {}\n",
            self.format,
            hex::encode(self.uuid),
            self.layout.name(),
            removal_name(self.removal),
            self.next_ino
        );
        if let Some(salt) = self.pw_salt {
            text.push_str(&format!("pw-salt {}\n", hex::encode(salt)));
        }
        text
    }

    /// Parses the text form strictly. `what` names the file in errors. EUCLEAN for anything
    /// malformed; EPROTONOSUPPORT-like refusal (EINVAL) for a newer format version.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let bad = |m: String| Error::corrupt(format!("{what}: {m}"));
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (_, first) = lines
            .next()
            .ok_or_else(|| bad("empty volume config".into()))?;
        let format: u32 = match first.split_once(' ') {
            Some(("format", v)) => v
                .parse()
                .map_err(|_| bad(format!("bad format version {v:?}")))?,
            _ => return Err(bad("first line must be \"format N\"".into())),
        };
        if format > FORMAT_VERSION {
            return Err(Error::new(
                Errno::PROTONOSUPPORT,
                format!(
                    "{what}: volume format version {format} is newer than this fscryptfs supports ({FORMAT_VERSION})"
                ),
            ));
        }
        if format == 0 {
            return Err(bad("format version 0 does not exist".into()));
        }
        let (mut uuid, mut layout, mut removal, mut next_ino) = (None, None, None, None);
        let mut pw_salt = None;
        for (n, line) in lines {
            let lineno = n + 1;
            let (k, v) = line
                .split_once(' ')
                .ok_or_else(|| bad(format!("line {lineno}: expected \"key value\"")))?;
            let dup = || bad(format!("line {lineno}: duplicate key {k}"));
            match k {
                "uuid" | "pw-salt" => {
                    let bytes = hex::decode(v)
                        .ok()
                        .and_then(|b| <[u8; 16]>::try_from(b).ok())
                        .ok_or_else(|| bad(format!("line {lineno}: bad {k} {v:?}")))?;
                    let slot = if k == "uuid" { &mut uuid } else { &mut pw_salt };
                    if slot.replace(bytes).is_some() {
                        return Err(dup());
                    }
                }
                "contents-layout" => {
                    let l = ContentsLayout::parse(v).ok_or_else(|| {
                        bad(format!("line {lineno}: unknown contents layout {v:?}"))
                    })?;
                    if layout.replace(l).is_some() {
                        return Err(dup());
                    }
                }
                "removal" => {
                    let m = parse_removal(v)
                        .ok_or_else(|| bad(format!("line {lineno}: unknown removal mode {v:?}")))?;
                    if removal.replace(m).is_some() {
                        return Err(dup());
                    }
                }
                "next-ino" => {
                    let x: u64 = v
                        .parse()
                        .ok()
                        .filter(|x| (FIRST_INO..=INO_LIMIT).contains(x))
                        .ok_or_else(|| bad(format!("line {lineno}: bad next-ino {v:?}")))?;
                    if next_ino.replace(x).is_some() {
                        return Err(dup());
                    }
                }
                _ => return Err(bad(format!("line {lineno}: unknown key {k:?}"))),
            }
        }
        let missing = |k: &str| bad(format!("missing key {k}"));
        Ok(VolumeConfig {
            format,
            uuid: uuid.ok_or_else(|| missing("uuid"))?,
            layout: layout.ok_or_else(|| missing("contents-layout"))?,
            removal: removal.ok_or_else(|| missing("removal"))?,
            next_ino: next_ino.ok_or_else(|| missing("next-ino"))?,
            pw_salt,
        })
    }

    /// Reads the config of the volume in `backing`. ENOENT (with a message saying it is not a
    /// volume) when there is none.
    pub fn load(backing: &Path) -> Result<Self> {
        let path = backing.join(CONFIG_NAME);
        let what = path.display().to_string();
        let root = super::io::open_backing_root(backing)?;
        let Some(text) =
            super::io::read_bounded(&root, OsStr::new(CONFIG_NAME), CONFIG_MAX, &what)?
        else {
            return Err(Error::new(
                Errno::NOENT,
                format!(
                    "{} is not an fscryptfs volume (no {CONFIG_NAME}; create one with `fscryptfs init`)",
                    backing.display()
                ),
            ));
        };
        let text = String::from_utf8(text)
            .map_err(|_| Error::corrupt(format!("{}: not UTF-8 text", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Writes the config into `backing` atomically and durably: a fresh temporary file, fsync,
    /// rename, fsync of the directory (`store::io::replace`).
    pub fn store(&self, backing: &Path) -> Result<()> {
        let what = backing.join(CONFIG_NAME).display().to_string();
        let root = super::io::open_backing_root(backing)?;
        // An explicit mode: the daemon runs with umask 0 (the kernel already masked users' modes).
        super::io::replace(
            &root,
            OsStr::new(CONFIG_NAME),
            self.to_text().as_bytes(),
            0o644,
            true,
            &what,
        )
    }
}

/// Hands out stable inode numbers, reserving them in batches in the config.
#[derive(Debug)]
pub struct InoAllocator {
    backing: PathBuf,
    state: Mutex<AllocState>,
}

#[derive(Debug)]
struct AllocState {
    config: VolumeConfig,
    /// Next number to hand out.
    next: u64,
    /// First number not covered by the persisted reservation.
    limit: u64,
    /// Read-only mount: never reserve.
    read_only: bool,
}

impl InoAllocator {
    /// An allocator over the volume in `backing`, whose config is `config`.
    pub fn new(backing: &Path, config: VolumeConfig, read_only: bool) -> Self {
        let next = config.next_ino;
        InoAllocator {
            backing: backing.to_path_buf(),
            state: Mutex::new(AllocState {
                config,
                next,
                limit: next,
                read_only,
            }),
        }
    }

    /// A new inode number. The reservation covering it is on stable storage before it is returned.
    ///
    /// # Errors
    /// ENOSPC when 2^32 is reached; EROFS on a read-only mount; the config's I/O errors.
    pub fn alloc(&self) -> Result<u64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.read_only {
            return Err(Error::new(Errno::ROFS, "read-only mount"));
        }
        if st.next >= st.limit {
            let limit = (st.next + INO_BATCH).min(INO_LIMIT);
            if limit <= st.next {
                return Err(Error::new(
                    Errno::NOSPC,
                    "the volume has used every inode number below 2^32",
                ));
            }
            let mut cfg = st.config.clone();
            cfg.next_ino = limit;
            cfg.store(&self.backing)?;
            st.config = cfg;
            st.limit = limit;
        }
        let ino = st.next;
        st.next += 1;
        Ok(ino)
    }

    /// The volume's passphrase salt (`FS_IOC_GET_ENCRYPTION_PWSALT`), made at random and stored
    /// durably in the config the first time it is asked for, as ext4 does in its superblock.
    ///
    /// # Errors
    /// EROFS on a read-only mount of a volume without one, or when `may_make` is false (the
    /// caller's own mount is read-only); the config's I/O errors.
    pub fn pw_salt(&self, may_make: bool) -> Result<[u8; 16]> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(salt) = st.config.pw_salt {
            return Ok(salt);
        }
        if st.read_only || !may_make {
            return Err(Error::new(Errno::ROFS, "read-only mount"));
        }
        let mut salt = [0u8; 16];
        fscrypt::context::fill_random(&mut salt)?;
        let mut cfg = st.config.clone();
        cfg.pw_salt = Some(salt);
        cfg.store(&self.backing)?;
        st.config = cfg;
        Ok(salt)
    }

    /// At a clean unmount: gives the unused rest of the reservation back (persists `next`).
    pub fn release_unused(&self) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.read_only || st.next == st.config.next_ino {
            return Ok(());
        }
        let mut cfg = st.config.clone();
        cfg.next_ino = st.next;
        cfg.store(&self.backing)?;
        st.limit = st.next;
        st.config = cfg;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_strictness() {
        let c = VolumeConfig::new(RemovalMode::DenyWrites).unwrap();
        let t = c.to_text();
        assert_eq!(VolumeConfig::parse(&t, "x").unwrap(), c);
        assert_eq!(
            VolumeConfig::parse(&t.replace("format 1", "format 2"), "x")
                .unwrap_err()
                .errno(),
            Errno::PROTONOSUPPORT
        );
        assert!(VolumeConfig::parse(&format!("{t}extra 1\n"), "x").is_err());
        assert!(VolumeConfig::parse(&format!("{t}removal soft\n"), "x").is_err());
        assert!(VolumeConfig::parse(&t.replace("next-ino 16", "next-ino x"), "x").is_err());
        assert!(VolumeConfig::parse("", "x").is_err());
    }

    #[test]
    fn reservation_is_persisted_before_use() {
        let d = tempfile::tempdir().unwrap();
        let c = VolumeConfig::new(RemovalMode::Soft).unwrap();
        c.store(d.path()).unwrap();
        let a = InoAllocator::new(d.path(), c, false);
        assert_eq!(a.alloc().unwrap(), FIRST_INO);
        let on_disk = VolumeConfig::load(d.path()).unwrap();
        assert_eq!(on_disk.next_ino, FIRST_INO + INO_BATCH);
        // A crash now: the next mount starts after the whole batch.
        let b = InoAllocator::new(d.path(), on_disk, false);
        assert_eq!(b.alloc().unwrap(), FIRST_INO + INO_BATCH);
    }
}
