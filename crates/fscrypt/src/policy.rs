//! Encryption policies: parsing, serialising and validating `fscrypt_policy_v1` / `fscrypt_policy_v2`
//! exactly as the kernel's `fs/crypto/policy.c` does.
//!
//! A policy is what a user sets on an empty directory: the contents and filenames modes, the flags
//! (filename padding and one IV layout), the data-unit size, and which master key. Validation depends
//! on the filesystem (block size, stable 32-bit inode numbers, sub-block data units, per-extent
//! encryption), so those are inputs ([`FsParams`]), never constants. Every rejection is EINVAL, as in
//! the kernel, with a message naming the rule that failed.

use crate::error::{Error, Result};
use crate::mode::EncryptionMode;

/// `FSCRYPT_POLICY_V1`: the v1 *policy* version byte is 0.
pub const POLICY_V1_VERSION: u8 = 0;
/// `FSCRYPT_POLICY_V2`.
pub const POLICY_V2_VERSION: u8 = 2;
/// Size of `struct fscrypt_policy_v1`.
pub const POLICY_V1_SIZE: usize = 12;
/// Size of `struct fscrypt_policy_v2`.
pub const POLICY_V2_SIZE: usize = 24;
/// `FSCRYPT_KEY_DESCRIPTOR_SIZE`.
pub const KEY_DESCRIPTOR_SIZE: usize = 8;
/// `FSCRYPT_KEY_IDENTIFIER_SIZE`.
pub const KEY_IDENTIFIER_SIZE: usize = 16;

/// Policy flag bits.
pub mod flags {
    /// Mask of the filename padding field: padding = 4 << (flags & PAD_MASK).
    pub const PAD_MASK: u8 = 0x03;
    /// Names padded to a multiple of 4 bytes.
    pub const PAD_4: u8 = 0x00;
    /// ... of 8.
    pub const PAD_8: u8 = 0x01;
    /// ... of 16.
    pub const PAD_16: u8 = 0x02;
    /// ... of 32.
    pub const PAD_32: u8 = 0x03;
    /// No per-file keys; the nonce goes into the IV.
    pub const DIRECT_KEY: u8 = 0x04;
    /// Per-(mode, filesystem) key; IV = ino << 32 | index.
    pub const IV_INO_LBLK_64: u8 = 0x08;
    /// Per-(mode, filesystem) key; IV = hash(ino) + index mod 2^32.
    pub const IV_INO_LBLK_32: u8 = 0x10;
    /// Every flag a v1 policy may carry.
    pub const V1_VALID: u8 = PAD_MASK | DIRECT_KEY;
    /// Every flag a v2 policy may carry.
    pub const V2_VALID: u8 = PAD_MASK | DIRECT_KEY | IV_INO_LBLK_64 | IV_INO_LBLK_32;
}

/// `SECTOR_SHIFT`: the smallest data unit is 512 bytes.
pub const MIN_DATA_UNIT_BITS: u8 = 9;

/// What a policy's validity depends on: the filesystem's side of `struct fscrypt_operations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsParams {
    /// log2 of the block size (`i_blkbits`): the default data-unit size.
    pub block_bits: u8,
    /// `has_stable_inodes`: inode numbers never change (needed by the IV_INO_LBLK flags).
    pub has_stable_inodes: bool,
    /// `has_32bit_inodes`: inode numbers fit in 32 bits (needed by the IV_INO_LBLK flags).
    pub has_32bit_inodes: bool,
    /// `supports_subblock_data_units`: `log2_data_unit_size` below the block size is allowed.
    pub supports_subblock_data_units: bool,
    /// `s_maxbytes`: the largest file size, which bounds the data-unit index width.
    pub max_file_size: u64,
    /// `has_per_extent_encryption` (btrfs model): v1 policies and the IV flags are refused.
    pub per_extent_encryption: bool,
    /// The longest symlink target the filesystem stores, including fscrypt's 2-byte header and the
    /// trailing NUL (ext4: the block size).
    pub symlink_max_len: usize,
}

impl FsParams {
    /// ext4 with extents and the given block size; `stable_inodes` is the `stable_inodes` feature.
    pub fn ext4(block_bits: u8, stable_inodes: bool) -> Self {
        // ext4_max_size() for extent-mapped files: 2^32 - 1 blocks, below MAX_LFS_FILESIZE.
        let max_file_size = ((1u64 << 32) - 1) << block_bits;
        FsParams {
            block_bits,
            has_stable_inodes: stable_inodes,
            has_32bit_inodes: true,
            supports_subblock_data_units: true,
            max_file_size,
            per_extent_encryption: false,
            symlink_max_len: 1usize << block_bits,
        }
    }

    /// `fscrypt_max_file_dun_bits`: how many bits the largest data-unit index of a file needs.
    pub fn max_file_dun_bits(&self, du_bits: u8) -> u32 {
        let fls = 64 - (self.max_file_size.saturating_sub(1)).leading_zeros();
        fls.saturating_sub(u32::from(du_bits))
    }
}

/// `struct fscrypt_policy_v1` (12 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyV1 {
    /// Contents mode.
    pub contents_mode: EncryptionMode,
    /// Filenames mode.
    pub filenames_mode: EncryptionMode,
    /// Flags (see [`flags`]).
    pub flags: u8,
    /// The 8-byte master key descriptor.
    pub master_key_descriptor: [u8; KEY_DESCRIPTOR_SIZE],
}

/// `struct fscrypt_policy_v2` (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyV2 {
    /// Contents mode.
    pub contents_mode: EncryptionMode,
    /// Filenames mode.
    pub filenames_mode: EncryptionMode,
    /// Flags (see [`flags`]).
    pub flags: u8,
    /// 0 for the block size, else log2 of the data-unit size (9..=block_bits).
    pub log2_data_unit_size: u8,
    /// The 16-byte master key identifier.
    pub master_key_identifier: [u8; KEY_IDENTIFIER_SIZE],
}

/// A validated encryption policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Version 1 (deprecated; keys by descriptor, AES-128-ECB KDF).
    V1(PolicyV1),
    /// Version 2 (HKDF-SHA512, keys by identifier).
    V2(PolicyV2),
}

/// Which master key a policy names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySpec {
    /// A v1 descriptor (`FSCRYPT_KEY_SPEC_TYPE_DESCRIPTOR`).
    Descriptor([u8; KEY_DESCRIPTOR_SIZE]),
    /// A v2 identifier (`FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER`).
    Identifier([u8; KEY_IDENTIFIER_SIZE]),
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: &[u8] = match self {
            KeySpec::Descriptor(d) => d,
            KeySpec::Identifier(i) => i,
        };
        for b in bytes {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// `fscrypt_policy_size`: the struct size for a version byte, or None for an unknown version.
pub fn policy_size(version: u8) -> Option<usize> {
    match version {
        POLICY_V1_VERSION => Some(POLICY_V1_SIZE),
        POLICY_V2_VERSION => Some(POLICY_V2_SIZE),
        _ => None,
    }
}

fn mode_pair(contents: u8, filenames: u8) -> Result<(EncryptionMode, EncryptionMode)> {
    match (
        EncryptionMode::from_number(contents),
        EncryptionMode::from_number(filenames),
    ) {
        (Some(c), Some(f)) => Ok((c, f)),
        _ => Err(unsupported_modes(contents, filenames)),
    }
}

fn unsupported_modes(contents: u8, filenames: u8) -> Error {
    Error::invalid(format!(
        "unsupported encryption modes (contents {contents}, filenames {filenames})"
    ))
}

/// `fscrypt_valid_enc_modes_v1`.
fn valid_modes_v1(c: EncryptionMode, f: EncryptionMode) -> bool {
    use EncryptionMode::*;
    matches!(
        (c, f),
        (Aes256Xts, Aes256Cts) | (Aes128CbcEssiv, Aes128Cts) | (Adiantum, Adiantum)
    )
}

/// `fscrypt_valid_enc_modes_v2`.
fn valid_modes_v2(c: EncryptionMode, f: EncryptionMode) -> bool {
    use EncryptionMode::*;
    matches!((c, f), (Aes256Xts, Aes256Hctr2) | (Sm4Xts, Sm4Cts)) || valid_modes_v1(c, f)
}

/// `supported_direct_key_modes`: one mode for both, with an IV long enough to hold the nonce.
fn check_direct_key_modes(c: EncryptionMode, f: EncryptionMode) -> Result<()> {
    if c != f {
        return Err(Error::invalid(
            "DIRECT_KEY not allowed with different contents and filenames modes",
        ));
    }
    // offsetofend(union fscrypt_iv, nonce) = 8 + 16.
    if c.iv_size() < 24 {
        return Err(Error::invalid(format!("DIRECT_KEY not allowed with {c}")));
    }
    Ok(())
}

impl PolicyV2 {
    /// `supported_iv_ino_lblk_policy`.
    fn check_iv_ino_lblk(&self, fs: &FsParams) -> Result<()> {
        let name = if self.flags & flags::IV_INO_LBLK_64 != 0 {
            "IV_INO_LBLK_64"
        } else {
            "IV_INO_LBLK_32"
        };
        if self.contents_mode != EncryptionMode::Aes256Xts {
            return Err(Error::invalid(format!(
                "{name} policies require AES-256-XTS contents"
            )));
        }
        if !fs.has_stable_inodes {
            return Err(Error::invalid(format!(
                "{name} policies need a filesystem with stable inode numbers"
            )));
        }
        if !fs.has_32bit_inodes {
            return Err(Error::invalid(format!(
                "{name} policies need a filesystem with 32-bit inode numbers"
            )));
        }
        if fs.max_file_dun_bits(self.data_unit_bits(fs)) > 32 {
            return Err(Error::invalid(format!(
                "{name} policies need 32-bit data unit indices; this data unit size allows larger files"
            )));
        }
        Ok(())
    }

    /// log2 of the data-unit size for contents (`fscrypt_policy_v2_du_bits`).
    pub fn data_unit_bits(&self, fs: &FsParams) -> u8 {
        if self.log2_data_unit_size != 0 {
            self.log2_data_unit_size
        } else {
            fs.block_bits
        }
    }
}

impl Policy {
    /// Parses and validates a policy as `FS_IOC_SET_ENCRYPTION_POLICY` does: the version byte picks
    /// the size (unknown version: EINVAL), then `fscrypt_supported_policy` (EINVAL).
    /// `bytes` must be exactly the struct for that version.
    pub fn parse(bytes: &[u8], fs: &FsParams) -> Result<Policy> {
        let Some(&version) = bytes.first() else {
            return Err(Error::invalid("empty encryption policy"));
        };
        let Some(size) = policy_size(version) else {
            return Err(Error::invalid(format!(
                "unknown encryption policy version {version}"
            )));
        };
        if bytes.len() != size {
            return Err(Error::invalid(format!(
                "encryption policy version {version} must be {size} bytes, got {}",
                bytes.len()
            )));
        }
        let policy = if version == POLICY_V1_VERSION {
            let (contents_mode, filenames_mode) = mode_pair(bytes[1], bytes[2])?;
            let mut master_key_descriptor = [0u8; KEY_DESCRIPTOR_SIZE];
            master_key_descriptor.copy_from_slice(&bytes[4..12]);
            Policy::V1(PolicyV1 {
                contents_mode,
                filenames_mode,
                flags: bytes[3],
                master_key_descriptor,
            })
        } else {
            let (contents_mode, filenames_mode) = mode_pair(bytes[1], bytes[2])?;
            if bytes[5..8].iter().any(|&b| b != 0) {
                // The kernel checks the reserved bytes last; the result (EINVAL) is the same.
                return Err(Error::invalid(
                    "reserved bytes of the encryption policy are not zero",
                ));
            }
            let mut master_key_identifier = [0u8; KEY_IDENTIFIER_SIZE];
            master_key_identifier.copy_from_slice(&bytes[8..24]);
            Policy::V2(PolicyV2 {
                contents_mode,
                filenames_mode,
                flags: bytes[3],
                log2_data_unit_size: bytes[4],
                master_key_identifier,
            })
        };
        policy.validate(fs)?;
        Ok(policy)
    }

    /// `fscrypt_supported_policy`: every rule the kernel applies, with EINVAL on failure.
    pub fn validate(&self, fs: &FsParams) -> Result<()> {
        match self {
            Policy::V1(p) => {
                if fs.per_extent_encryption {
                    return Err(Error::invalid(
                        "v1 encryption policies aren't supported with per-extent encryption",
                    ));
                }
                if !valid_modes_v1(p.contents_mode, p.filenames_mode) {
                    return Err(unsupported_modes(
                        p.contents_mode.number(),
                        p.filenames_mode.number(),
                    ));
                }
                if p.flags & !flags::V1_VALID != 0 {
                    return Err(Error::invalid(format!(
                        "unsupported encryption flags {:#04x} for a v1 policy",
                        p.flags
                    )));
                }
                if p.flags & flags::DIRECT_KEY != 0 {
                    check_direct_key_modes(p.contents_mode, p.filenames_mode)?;
                }
                Ok(())
            }
            Policy::V2(p) => {
                if !valid_modes_v2(p.contents_mode, p.filenames_mode) {
                    return Err(unsupported_modes(
                        p.contents_mode.number(),
                        p.filenames_mode.number(),
                    ));
                }
                if p.flags & !flags::V2_VALID != 0 {
                    return Err(Error::invalid(format!(
                        "unsupported encryption flags {:#04x}",
                        p.flags
                    )));
                }
                let iv_flags =
                    p.flags & (flags::DIRECT_KEY | flags::IV_INO_LBLK_64 | flags::IV_INO_LBLK_32);
                if iv_flags.count_ones() > 1 {
                    return Err(Error::invalid("mutually exclusive encryption flags"));
                }
                if fs.per_extent_encryption && iv_flags != 0 {
                    return Err(Error::invalid(
                        "DIRECT_KEY and IV_INO_LBLK flags aren't supported with per-extent encryption",
                    ));
                }
                if p.log2_data_unit_size != 0 {
                    if !fs.supports_subblock_data_units {
                        return Err(Error::invalid(
                            "this filesystem does not support setting log2_data_unit_size",
                        ));
                    }
                    if p.log2_data_unit_size < MIN_DATA_UNIT_BITS
                        || p.log2_data_unit_size > fs.block_bits
                    {
                        return Err(Error::invalid(format!(
                            "unsupported log2_data_unit_size {} (must be {}..={})",
                            p.log2_data_unit_size, MIN_DATA_UNIT_BITS, fs.block_bits
                        )));
                    }
                    if p.flags & flags::IV_INO_LBLK_32 != 0
                        && p.log2_data_unit_size != fs.block_bits
                    {
                        return Err(Error::invalid(
                            "IV_INO_LBLK_32 with log2_data_unit_size below the block size is not supported",
                        ));
                    }
                }
                if p.flags & flags::DIRECT_KEY != 0 {
                    check_direct_key_modes(p.contents_mode, p.filenames_mode)?;
                }
                if p.flags & (flags::IV_INO_LBLK_64 | flags::IV_INO_LBLK_32) != 0 {
                    p.check_iv_ino_lblk(fs)?;
                }
                Ok(())
            }
        }
    }

    /// The struct bytes (12 or 24), as `FS_IOC_GET_ENCRYPTION_POLICY_EX` returns them.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Policy::V1(p) => {
                let mut b = Vec::with_capacity(POLICY_V1_SIZE);
                b.extend_from_slice(&[
                    POLICY_V1_VERSION,
                    p.contents_mode.number(),
                    p.filenames_mode.number(),
                    p.flags,
                ]);
                b.extend_from_slice(&p.master_key_descriptor);
                b
            }
            Policy::V2(p) => {
                let mut b = Vec::with_capacity(POLICY_V2_SIZE);
                b.extend_from_slice(&[
                    POLICY_V2_VERSION,
                    p.contents_mode.number(),
                    p.filenames_mode.number(),
                    p.flags,
                    p.log2_data_unit_size,
                    0,
                    0,
                    0,
                ]);
                b.extend_from_slice(&p.master_key_identifier);
                b
            }
        }
    }

    /// The policy version byte (0 for v1, 2 for v2).
    pub fn version_byte(&self) -> u8 {
        match self {
            Policy::V1(_) => POLICY_V1_VERSION,
            Policy::V2(_) => POLICY_V2_VERSION,
        }
    }

    /// The contents mode.
    pub fn contents_mode(&self) -> EncryptionMode {
        match self {
            Policy::V1(p) => p.contents_mode,
            Policy::V2(p) => p.contents_mode,
        }
    }

    /// The filenames mode.
    pub fn filenames_mode(&self) -> EncryptionMode {
        match self {
            Policy::V1(p) => p.filenames_mode,
            Policy::V2(p) => p.filenames_mode,
        }
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        match self {
            Policy::V1(p) => p.flags,
            Policy::V2(p) => p.flags,
        }
    }

    /// Filename padding in bytes: 4, 8, 16 or 32.
    pub fn padding(&self) -> usize {
        4 << (self.flags() & flags::PAD_MASK)
    }

    /// log2 of the contents data-unit size (v1 always uses the block size).
    pub fn data_unit_bits(&self, fs: &FsParams) -> u8 {
        match self {
            Policy::V1(_) => fs.block_bits,
            Policy::V2(p) => p.data_unit_bits(fs),
        }
    }

    /// Which master key this policy needs.
    pub fn key_spec(&self) -> KeySpec {
        match self {
            Policy::V1(p) => KeySpec::Descriptor(p.master_key_descriptor),
            Policy::V2(p) => KeySpec::Identifier(p.master_key_identifier),
        }
    }

    /// True when the policy has the DIRECT_KEY flag.
    pub fn is_direct_key(&self) -> bool {
        self.flags() & flags::DIRECT_KEY != 0
    }

    /// The flags named as fscryptctl prints them, e.g. `PAD_32|IV_INO_LBLK_64`.
    pub fn flags_description(&self) -> String {
        let f = self.flags();
        let mut parts = vec![format!("PAD_{}", self.padding())];
        for (bit, name) in [
            (flags::DIRECT_KEY, "DIRECT_KEY"),
            (flags::IV_INO_LBLK_64, "IV_INO_LBLK_64"),
            (flags::IV_INO_LBLK_32, "IV_INO_LBLK_32"),
        ] {
            if f & bit != 0 {
                parts.push(name.to_string());
            }
        }
        parts.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fs() -> FsParams {
        FsParams::ext4(12, true)
    }

    fn v2(c: u8, f: u8, fl: u8, du: u8) -> Vec<u8> {
        let mut b = vec![2, c, f, fl, du, 0, 0, 0];
        b.extend_from_slice(&[0xab; 16]);
        b
    }

    #[test]
    fn accepts_the_kernels_mode_pairs() {
        for (c, f) in [(1, 4), (5, 6), (9, 9), (1, 10), (7, 8)] {
            let p = Policy::parse(&v2(c, f, 3, 0), &fs()).unwrap();
            assert_eq!(p.to_bytes(), v2(c, f, 3, 0));
        }
        let mut v1 = vec![0, 1, 4, 3];
        v1.extend_from_slice(&[1; 8]);
        assert_eq!(Policy::parse(&v1, &fs()).unwrap().to_bytes(), v1);
        let mut v1_hctr2 = vec![0, 1, 10, 3];
        v1_hctr2.extend_from_slice(&[1; 8]);
        assert_eq!(
            Policy::parse(&v1_hctr2, &fs()).unwrap_err().errno(),
            crate::Errno::INVAL
        );
    }

    #[test]
    fn flag_rules() {
        let e = |b: Vec<u8>, fs: FsParams| Policy::parse(&b, &fs).map(|_| ());
        assert!(e(v2(1, 4, 0x0c, 0), fs()).is_err()); // mutually exclusive
        assert!(e(v2(1, 4, 0x04, 0), fs()).is_err()); // DIRECT_KEY needs a 32-byte IV
        assert!(e(v2(9, 9, 0x04, 0), fs()).is_ok());
        assert!(e(v2(1, 4, 0x08, 0), fs()).is_ok());
        assert!(e(v2(1, 4, 0x08, 0), FsParams::ext4(12, false)).is_err());
        assert!(e(v2(1, 4, 0x08, 9), fs()).is_err()); // indices exceed 32 bits
        assert!(e(v2(1, 4, 0x10, 9), fs()).is_err()); // LBLK_32 with sub-block units
        assert!(e(v2(1, 4, 0x10, 12), fs()).is_ok());
        assert!(e(v2(5, 6, 0x08, 0), fs()).is_err()); // LBLK needs XTS
        assert!(e(v2(1, 4, 0x20, 0), fs()).is_err());
        assert!(e(v2(1, 4, 0, 8), fs()).is_err());
        assert!(e(v2(1, 4, 0, 13), fs()).is_err());
        let mut reserved = v2(1, 4, 0, 0);
        reserved[6] = 1;
        assert!(e(reserved, fs()).is_err());
        let extent_fs = FsParams {
            per_extent_encryption: true,
            ..fs()
        };
        assert!(e(v2(1, 4, 0x08, 0), extent_fs).is_err());
        assert!(e(v2(1, 4, 0x03, 9), extent_fs).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Policy::parse(&bytes, &fs()) {
                prop_assert_eq!(p.to_bytes(), bytes);
            }
        }
    }
}
