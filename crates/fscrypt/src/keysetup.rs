//! Key setup: from (master key, inode context) to the key and IVs that encrypt that inode
//! (`fs/crypto/keysetup.c`).
//!
//! [`MasterSecret`] is a master key's secret as the keyring holds it: for v2 the HKDF PRK (the raw key
//! is wiped right after Extract, as in the kernel), for v1 the raw bytes. It caches the keys shared by
//! many inodes (DIRECT_KEY and IV_INO_LBLK per-mode keys, the inode-hash key), like the kernel's
//! `mk_direct_keys` / `mk_iv_ino_lblk_*_keys`, so they die with the secret.
//!
//! [`InodeKey`] is the kernel's `fscrypt_inode_info`: the prepared key of one inode plus everything its
//! IVs need (flags, nonce, inode number or its hash, data-unit size). Once set up it no longer needs
//! the master key — which is why open files keep working after the master key is removed.

use std::sync::{Arc, Mutex, OnceLock};

use siphasher::sip::SipHasher24;
use std::hash::Hasher;

use crate::cipher::PreparedKey;
use crate::contents::{crypt_units, Direction};
use crate::context::{Context, Nonce};
use crate::error::{Error, Result};
use crate::fname;
use crate::hkdf::{HkdfContext, HkdfKey};
use crate::keysetup_v1;
use crate::mode::{EncryptionMode, Iv};
use crate::policy::{flags, FsParams, KeySpec, Policy, KEY_IDENTIFIER_SIZE};
use crate::secret::{burn_stack, SecretBytes};

/// `FSCRYPT_MIN_KEY_SIZE`.
pub const MIN_KEY_SIZE: usize = 16;
/// `FSCRYPT_MAX_KEY_SIZE` (raw keys).
pub const MAX_KEY_SIZE: usize = 64;

/// The v2 key identifier of a raw master key: HKDF-Expand(context 1, no info, 16 bytes).
pub fn key_identifier(raw: &[u8]) -> Result<[u8; KEY_IDENTIFIER_SIZE]> {
    check_raw_size(raw)?;
    let hkdf = HkdfKey::extract(raw);
    let mut id = [0u8; KEY_IDENTIFIER_SIZE];
    hkdf.expand(HkdfContext::KeyIdentifierForRawKey, &[], &mut id)?;
    Ok(id)
}

fn check_raw_size(raw: &[u8]) -> Result<()> {
    if !(MIN_KEY_SIZE..=MAX_KEY_SIZE).contains(&raw.len()) {
        return Err(Error::invalid(format!(
            "master key must be {MIN_KEY_SIZE} to {MAX_KEY_SIZE} bytes, got {}",
            raw.len()
        )));
    }
    Ok(())
}

/// What a cached per-mode key was derived for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ModeKeyKind {
    DirectKey,
    IvInoLblk64,
    IvInoLblk32,
}

/// Which per-mode key a cache entry holds: (purpose, mode, filesystem UUID or zeros).
type ModeKeySlot = (ModeKeyKind, EncryptionMode, [u8; 16]);

enum SecretKind {
    V1 {
        raw: SecretBytes,
    },
    V2 {
        hkdf: HkdfKey,
        identifier: [u8; KEY_IDENTIFIER_SIZE],
    },
}

/// The secret of one master key, and the keys it shares among inodes.
pub struct MasterSecret {
    kind: SecretKind,
    raw_size: usize,
    mode_keys: Mutex<Vec<(ModeKeySlot, Arc<PreparedKey>)>>,
    ino_hash_key: OnceLock<(u64, u64)>,
}

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MasterSecret({}, [REDACTED; {}])",
            self.spec(),
            self.raw_size
        )
    }
}

impl MasterSecret {
    /// A v2 master key from its raw bytes (16..=64, else EINVAL). The identifier is computed, never
    /// taken from the caller. The caller wipes its copy of `raw`.
    pub fn new_v2(raw: &[u8]) -> Result<Self> {
        check_raw_size(raw)?;
        let hkdf = HkdfKey::extract(raw);
        let mut identifier = [0u8; KEY_IDENTIFIER_SIZE];
        hkdf.expand(HkdfContext::KeyIdentifierForRawKey, &[], &mut identifier)?;
        burn_stack();
        Ok(Self::from_kind(
            SecretKind::V2 { hkdf, identifier },
            raw.len(),
        ))
    }

    /// A v1 master key from its raw bytes (16..=64, else EINVAL).
    pub fn new_v1(raw: &[u8]) -> Result<Self> {
        check_raw_size(raw)?;
        Ok(Self::from_kind(
            SecretKind::V1 {
                raw: SecretBytes::copy_from(raw),
            },
            raw.len(),
        ))
    }

    fn from_kind(kind: SecretKind, raw_size: usize) -> Self {
        MasterSecret {
            kind,
            raw_size,
            mode_keys: Mutex::new(Vec::new()),
            ino_hash_key: OnceLock::new(),
        }
    }

    /// The v2 identifier, or None for a v1 key.
    pub fn identifier(&self) -> Option<[u8; KEY_IDENTIFIER_SIZE]> {
        match &self.kind {
            SecretKind::V2 { identifier, .. } => Some(*identifier),
            SecretKind::V1 { .. } => None,
        }
    }

    /// The raw key's size in bytes.
    pub fn raw_size(&self) -> usize {
        self.raw_size
    }

    /// The key specifier: the identifier for v2; for v1 the conventional descriptor (the keyring
    /// records the descriptor a v1 key was added under separately).
    pub fn spec(&self) -> KeySpec {
        match &self.kind {
            SecretKind::V2 { identifier, .. } => KeySpec::Identifier(*identifier),
            SecretKind::V1 { raw } => {
                KeySpec::Descriptor(keysetup_v1::conventional_descriptor(raw.as_ref()))
            }
        }
    }

    /// The HKDF state of a v2 key (EINVAL for v1 keys).
    pub fn hkdf(&self) -> Result<&HkdfKey> {
        match &self.kind {
            SecretKind::V2 { hkdf, .. } => Ok(hkdf),
            SecretKind::V1 { .. } => Err(Error::invalid("v1 master keys have no HKDF key")),
        }
    }

    /// `fscrypt_valid_master_key_size`: ENOKEY when the key is too short for the mode.
    fn check_size_for(&self, policy: &Policy, mode: EncryptionMode) -> Result<()> {
        let need = match policy {
            Policy::V1(_) => mode.key_size(),
            Policy::V2(_) => mode.security_strength(),
        };
        if self.raw_size < need {
            return Err(Error::no_key(format!(
                "master key {} is too short ({} bytes) for {mode}, which needs {need}",
                self.spec(),
                self.raw_size
            )));
        }
        Ok(())
    }

    /// A per-mode key shared by all inodes using it, derived once and cached.
    fn mode_key(
        &self,
        kind: ModeKeyKind,
        mode: EncryptionMode,
        fs_uuid: &[u8; 16],
    ) -> Result<Arc<PreparedKey>> {
        let uuid = if kind == ModeKeyKind::DirectKey {
            [0u8; 16]
        } else {
            *fs_uuid
        };
        let slot = (kind, mode, uuid);
        let mut cache = self
            .mode_keys
            .lock()
            .map_err(|_| Error::invalid("mode key cache poisoned"))?;
        if let Some((_, k)) = cache.iter().find(|(s, _)| *s == slot) {
            return Ok(Arc::clone(k));
        }
        let hkdf = self.hkdf()?;
        let mut info = vec![mode.number()];
        let context = match kind {
            ModeKeyKind::DirectKey => HkdfContext::DirectKey,
            ModeKeyKind::IvInoLblk64 => {
                info.extend_from_slice(&uuid);
                HkdfContext::IvInoLblk64Key
            }
            ModeKeyKind::IvInoLblk32 => {
                info.extend_from_slice(&uuid);
                HkdfContext::IvInoLblk32Key
            }
        };
        let raw = hkdf.derive(context, &info, mode.key_size())?;
        let key = Arc::new(PreparedKey::new(mode, raw.as_ref())?);
        cache.push((slot, Arc::clone(&key)));
        Ok(key)
    }

    /// The SipHash key hashing inode numbers (HKDF context 7), derived once.
    fn ino_hash_key(&self) -> Result<(u64, u64)> {
        if let Some(k) = self.ino_hash_key.get() {
            return Ok(*k);
        }
        let raw = self.hkdf()?.derive(HkdfContext::InodeHashKey, &[], 16)?;
        let key = split_siphash_key(raw.as_ref());
        Ok(*self.ino_hash_key.get_or_init(|| key))
    }

    /// `fscrypt_hash_inode_number`: the low 32 bits of SipHash-2-4(k, le64(ino)).
    pub fn hash_inode_number(&self, ino: u64) -> Result<u32> {
        let (k0, k1) = self.ino_hash_key()?;
        Ok(siphash_u64(k0, k1, ino) as u32)
    }

    /// The SipHash-2-4 key of a casefolded directory (`fscrypt_derive_dirhash_key`): HKDF context 5
    /// with the directory's nonce, as two little-endian words.
    pub fn derive_dirhash_key(&self, dir_nonce: &Nonce) -> Result<(u64, u64)> {
        let raw = self
            .hkdf()?
            .derive(HkdfContext::DirhashKey, dir_nonce, 16)?;
        Ok(split_siphash_key(raw.as_ref()))
    }

    /// A per-extent contents key: HKDF(context 9, extent nonce) for `mode` (btrfs v6 model).
    pub fn derive_extent_key(
        &self,
        mode: EncryptionMode,
        extent_nonce: &Nonce,
    ) -> Result<PreparedKey> {
        let raw =
            self.hkdf()?
                .derive(HkdfContext::PerExtentEncKey, extent_nonce, mode.key_size())?;
        let key = PreparedKey::new(mode, raw.as_ref());
        burn_stack();
        key
    }
}

impl Drop for MasterSecret {
    fn drop(&mut self) {
        // SecretBytes and PreparedKey wipe themselves; the inode-hash key is plain u64s here.
        if let Some(k) = self.ino_hash_key.get_mut() {
            zeroize::Zeroize::zeroize(&mut k.0);
            zeroize::Zeroize::zeroize(&mut k.1);
        }
    }
}

/// Splits 16 derived bytes into a SipHash key: k0 = le64(bytes 0..8), k1 = le64(bytes 8..16), as the
/// kernel does so the hash is the same on every CPU. Shorter input gives zero words (never happens:
/// callers derive exactly 16 bytes).
pub fn split_siphash_key(bytes: &[u8]) -> (u64, u64) {
    let word = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    };
    (word(0..8), word(8..16))
}

/// `fscrypt_fname_siphash`: the dirhash of a (casefolded) plaintext name.
pub fn fname_siphash(key: (u64, u64), name: &[u8]) -> u64 {
    let mut h = SipHasher24::new_with_keys(key.0, key.1);
    h.write(name);
    h.finish()
}

/// SipHash-2-4 of one little-endian u64 (`siphash_1u64`).
pub fn siphash_u64(k0: u64, k1: u64, value: u64) -> u64 {
    let mut h = SipHasher24::new_with_keys(k0, k1);
    h.write(&value.to_le_bytes());
    h.finish()
}

/// The kind of inode a key is set up for: it picks the contents or the filenames mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeKind {
    /// A regular file: contents mode.
    Regular,
    /// A directory: filenames mode (its entries' names).
    Directory,
    /// A symlink: filenames mode (its target).
    Symlink,
}

/// The inode facts key setup needs beyond the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeParams {
    /// Regular file, directory or symlink.
    pub kind: InodeKind,
    /// The (stable) inode number: in the IV for IV_INO_LBLK_64, hashed for IV_INO_LBLK_32.
    pub ino: u64,
    /// The filesystem UUID: in the per-mode key info for the IV_INO_LBLK flags.
    pub fs_uuid: [u8; 16],
}

/// How an inode's IVs are built (`fscrypt_generate_iv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvLayout {
    /// le64(index): default policies (and per-extent keys, counting from the extent's start).
    Default,
    /// le64(index) ‖ the file nonce: DIRECT_KEY.
    DirectKey {
        /// The inode's nonce.
        nonce: Nonce,
    },
    /// le64(ino << 32 | index): IV_INO_LBLK_64; index must fit in 32 bits.
    InoLblk64 {
        /// The inode number.
        ino: u32,
    },
    /// le64((hashed_ino + index) mod 2^32): IV_INO_LBLK_32.
    InoLblk32 {
        /// SipHash of the inode number (`fscrypt_hash_inode_number`).
        hashed_ino: u32,
    },
}

impl IvLayout {
    /// The IV of data unit `index` (0 for names and symlinks). EINVAL when IV_INO_LBLK_64's index
    /// does not fit in 32 bits.
    pub fn iv(&self, index: u64) -> Result<Iv> {
        let value = match *self {
            IvLayout::Default | IvLayout::DirectKey { .. } => index,
            IvLayout::InoLblk64 { ino } => {
                let index = u32::try_from(index).map_err(|_| {
                    Error::invalid(format!(
                        "data unit index {index} does not fit the 32 bits IV_INO_LBLK_64 allows"
                    ))
                })?;
                (u64::from(ino) << 32) | u64::from(index)
            }
            IvLayout::InoLblk32 { hashed_ino } => u64::from(hashed_ino.wrapping_add(index as u32)),
        };
        let mut iv = Iv::from_index(value);
        if let IvLayout::DirectKey { nonce } = self {
            iv.0[8..24].copy_from_slice(nonce);
        }
        Ok(iv)
    }
}

/// One inode's prepared key and IV parameters (the kernel's `fscrypt_inode_info`).
#[derive(Debug)]
pub struct InodeKey {
    key: Arc<PreparedKey>,
    iv_layout: IvLayout,
    data_unit_bits: u8,
    padding: usize,
    symlink_max_len: usize,
}

impl InodeKey {
    /// Sets up the key of an inode (`fscrypt_setup_encryption_info`): checks the master key fits the
    /// policy (ENOKEY: wrong key or too short), derives the per-file key or fetches the per-mode key,
    /// and records the IV parameters. EINVAL for an inode number that the IV layout cannot hold.
    pub fn setup(
        master: &MasterSecret,
        ctx: &Context,
        inode: &InodeParams,
        fs: &FsParams,
    ) -> Result<InodeKey> {
        let policy = ctx.policy();
        let mode = match inode.kind {
            InodeKind::Regular => policy.contents_mode(),
            InodeKind::Directory | InodeKind::Symlink => policy.filenames_mode(),
        };
        match (policy, &master.kind) {
            (Policy::V2(p), SecretKind::V2 { identifier, .. }) => {
                if p.master_key_identifier != *identifier {
                    return Err(Error::no_key(format!(
                        "master key {} does not match the policy's key {}",
                        master.spec(),
                        policy.key_spec()
                    )));
                }
            }
            (Policy::V1(_), SecretKind::V1 { .. }) => {}
            _ => {
                return Err(Error::no_key(
                    "master key version does not match the policy version",
                ))
            }
        }
        master.check_size_for(policy, mode)?;
        let f = policy.flags();
        let mut iv_layout = IvLayout::Default;
        let key = match &master.kind {
            SecretKind::V1 { raw } => {
                let derived = if f & flags::DIRECT_KEY != 0 {
                    iv_layout = IvLayout::DirectKey {
                        nonce: *ctx.nonce(),
                    };
                    keysetup_v1::v1_direct_key(raw.as_ref(), mode.key_size())?
                } else {
                    keysetup_v1::derive_v1_file_key(raw.as_ref(), ctx.nonce(), mode.key_size())?
                };
                Arc::new(PreparedKey::new(mode, derived.as_ref())?)
            }
            SecretKind::V2 { hkdf, .. } => {
                if f & flags::DIRECT_KEY != 0 {
                    iv_layout = IvLayout::DirectKey {
                        nonce: *ctx.nonce(),
                    };
                    master.mode_key(ModeKeyKind::DirectKey, mode, &inode.fs_uuid)?
                } else if f & flags::IV_INO_LBLK_64 != 0 {
                    let ino = u32::try_from(inode.ino).map_err(|_| {
                        Error::invalid(format!(
                            "inode number {} does not fit the 32 bits IV_INO_LBLK_64 needs",
                            inode.ino
                        ))
                    })?;
                    iv_layout = IvLayout::InoLblk64 { ino };
                    master.mode_key(ModeKeyKind::IvInoLblk64, mode, &inode.fs_uuid)?
                } else if f & flags::IV_INO_LBLK_32 != 0 {
                    iv_layout = IvLayout::InoLblk32 {
                        hashed_ino: master.hash_inode_number(inode.ino)?,
                    };
                    master.mode_key(ModeKeyKind::IvInoLblk32, mode, &inode.fs_uuid)?
                } else {
                    let raw =
                        hkdf.derive(HkdfContext::PerFileEncKey, ctx.nonce(), mode.key_size())?;
                    Arc::new(PreparedKey::new(mode, raw.as_ref())?)
                }
            }
        };
        burn_stack();
        Ok(InodeKey {
            key,
            iv_layout,
            data_unit_bits: policy.data_unit_bits(fs),
            padding: policy.padding(),
            symlink_max_len: fs.symlink_max_len,
        })
    }

    /// The mode this key encrypts with.
    pub fn mode(&self) -> EncryptionMode {
        self.key.mode()
    }

    /// The contents data-unit size in bytes.
    pub fn data_unit_size(&self) -> usize {
        1usize << self.data_unit_bits
    }

    /// log2 of the data-unit size.
    pub fn data_unit_bits(&self) -> u8 {
        self.data_unit_bits
    }

    /// Filename padding (4, 8, 16 or 32).
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// The prepared key itself.
    pub fn prepared_key(&self) -> &PreparedKey {
        &self.key
    }

    /// `fscrypt_generate_iv` for data unit `index` (0 for names and symlinks).
    pub fn iv(&self, index: u64) -> Result<Iv> {
        self.iv_layout.iv(index)
    }

    /// How this inode's IVs are built.
    pub fn iv_layout(&self) -> IvLayout {
        self.iv_layout
    }

    fn check_unit(&self, buf: &[u8]) -> Result<()> {
        if buf.len() != self.data_unit_size() {
            return Err(Error::invalid(format!(
                "data unit must be {} bytes, got {}",
                self.data_unit_size(),
                buf.len()
            )));
        }
        Ok(())
    }

    /// Encrypts one whole data unit in place (a final partial unit is zero-padded by the caller).
    pub fn encrypt_data_unit(&self, index: u64, buf: &mut [u8]) -> Result<()> {
        self.check_unit(buf)?;
        self.crypt_units(Direction::Encrypt, index, buf)
    }

    /// Decrypts one whole data unit in place.
    pub fn decrypt_data_unit(&self, index: u64, buf: &mut [u8]) -> Result<()> {
        self.check_unit(buf)?;
        self.crypt_units(Direction::Decrypt, index, buf)
    }

    /// Encrypts consecutive whole data units starting at unit `first_index`.
    pub fn encrypt_data_units(&self, first_index: u64, buf: &mut [u8]) -> Result<()> {
        self.crypt_units(Direction::Encrypt, first_index, buf)
    }

    /// Decrypts consecutive whole data units starting at unit `first_index`.
    pub fn decrypt_data_units(&self, first_index: u64, buf: &mut [u8]) -> Result<()> {
        self.crypt_units(Direction::Decrypt, first_index, buf)
    }

    fn crypt_units(&self, direction: Direction, first_index: u64, buf: &mut [u8]) -> Result<()> {
        let du = self.data_unit_size();
        crypt_units(&self.key, direction, du, first_index, buf, |i| self.iv(i))
    }

    /// Encrypts a directory entry name (`fscrypt_fname_encrypt`): padded per policy, capped at
    /// NAME_MAX. ENAMETOOLONG above 255 bytes, EINVAL for an empty name.
    pub fn encrypt_filename(&self, name: &[u8]) -> Result<Vec<u8>> {
        fname::encrypt(&self.key, &self.iv(0)?, name, self.padding, fname::NAME_MAX)
    }

    /// Decrypts a directory entry name (`fname_decrypt`): EUCLEAN below 16 bytes; NULs stripped.
    pub fn decrypt_filename(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        fname::decrypt(&self.key, &self.iv(0)?, ciphertext)
    }

    /// Encrypts a symlink target into `fscrypt_symlink_data` (le16 length ‖ ciphertext, without the
    /// trailing NUL the kernel counts in i_size). ENAMETOOLONG when it exceeds the filesystem limit.
    pub fn encrypt_symlink(&self, target: &[u8]) -> Result<Vec<u8>> {
        crate::symlink::encrypt(
            &self.key,
            &self.iv(0)?,
            target,
            self.padding,
            self.symlink_max_len,
        )
    }

    /// Decrypts stored `fscrypt_symlink_data` (`fscrypt_get_symlink`); EUCLEAN when malformed.
    pub fn decrypt_symlink(&self, disk: &[u8]) -> Result<Vec<u8>> {
        crate::symlink::decrypt(&self.key, &self.iv(0)?, disk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vectors() {
        // SipHash-2-4 reference: key 00..0f, message 00..07.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(siphash_u64(k0, k1, msg), 0x93f5f5799a932462);
        let mut h = SipHasher24::new_with_keys(k0, k1);
        h.write(&[]);
        assert_eq!(h.finish(), 0x726fdb47dd0e0e31);
    }

    #[test]
    fn raw_key_size_limits() {
        assert_eq!(
            MasterSecret::new_v2(&[1; 15]).unwrap_err().errno(),
            crate::Errno::INVAL
        );
        assert_eq!(
            MasterSecret::new_v2(&[1; 65]).unwrap_err().errno(),
            crate::Errno::INVAL
        );
        assert!(MasterSecret::new_v2(&[1; 16]).is_ok());
    }
}
