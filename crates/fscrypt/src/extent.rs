//! Per-extent encryption (the btrfs v6 model, `fscrypt: add per-extent encryption support`).
//!
//! Copy-on-write and reflinks share extents between files and offsets, so an extent cannot be keyed
//! by its inode. Each extent instead stores a 34-byte context — version, contents mode, master key
//! identifier, and its own random nonce — and its key is HKDF(master, context 9, extent nonce). The IV
//! is the data-unit index relative to the start of the extent as written, with no inode number and no
//! file nonce, so any file and offset that references the extent decrypts it the same way. Names,
//! directories and symlinks stay per-inode.

use crate::cipher::PreparedKey;
use crate::contents::{crypt_units, Direction};
use crate::context::{random_nonce, Nonce, FILE_NONCE_SIZE};
use crate::error::{Error, Result};
use crate::keysetup::MasterSecret;
use crate::mode::{EncryptionMode, Iv};
use crate::policy::{flags, Policy, PolicyV2, KEY_IDENTIFIER_SIZE};

/// `FSCRYPT_EXTENT_CONTEXT_V1`.
pub const EXTENT_CONTEXT_V1: u8 = 1;
/// Size of `struct fscrypt_extent_context`.
pub const EXTENT_CONTEXT_SIZE: usize = 2 + KEY_IDENTIFIER_SIZE + FILE_NONCE_SIZE;

/// The on-disk context of one extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtentContext {
    /// The contents mode (must equal the inode's).
    pub mode: EncryptionMode,
    /// The master key identifier (must equal the inode's).
    pub master_key_identifier: [u8; KEY_IDENTIFIER_SIZE],
    /// The extent's nonce.
    pub nonce: Nonce,
}

/// The inode's policy as extent encryption needs it: v2 with no IV flags (EINVAL otherwise).
pub fn extent_policy(policy: &Policy) -> Result<&PolicyV2> {
    match policy {
        Policy::V2(p)
            if p.flags & (flags::DIRECT_KEY | flags::IV_INO_LBLK_64 | flags::IV_INO_LBLK_32)
                == 0 =>
        {
            Ok(p)
        }
        Policy::V2(_) => Err(Error::invalid(
            "DIRECT_KEY and IV_INO_LBLK policies aren't supported with per-extent encryption",
        )),
        Policy::V1(_) => Err(Error::invalid(
            "v1 policies aren't supported with per-extent encryption",
        )),
    }
}

impl ExtentContext {
    /// A context for a new extent of a file under `policy`, with a fresh random nonce
    /// (`fscrypt_prepare_new_extent`).
    pub fn new_random(policy: &Policy) -> Result<Self> {
        let p = extent_policy(policy)?;
        Ok(ExtentContext {
            mode: p.contents_mode,
            master_key_identifier: p.master_key_identifier,
            nonce: random_nonce()?,
        })
    }

    /// Parses the 34 stored bytes. EUCLEAN for a wrong size, version or mode number.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != EXTENT_CONTEXT_SIZE {
            return Err(Error::corrupt(format!(
                "extent context must be {EXTENT_CONTEXT_SIZE} bytes, got {}",
                bytes.len()
            )));
        }
        if bytes[0] != EXTENT_CONTEXT_V1 {
            return Err(Error::corrupt(format!(
                "unknown extent context version {}",
                bytes[0]
            )));
        }
        let mode = EncryptionMode::from_number(bytes[1])
            .filter(|m| m.is_contents_mode())
            .ok_or_else(|| Error::corrupt(format!("bad extent contents mode {}", bytes[1])))?;
        let mut master_key_identifier = [0u8; KEY_IDENTIFIER_SIZE];
        master_key_identifier.copy_from_slice(&bytes[2..18]);
        let mut nonce = [0u8; FILE_NONCE_SIZE];
        nonce.copy_from_slice(&bytes[18..34]);
        Ok(ExtentContext {
            mode,
            master_key_identifier,
            nonce,
        })
    }

    /// The 34 stored bytes.
    pub fn to_bytes(&self) -> [u8; EXTENT_CONTEXT_SIZE] {
        let mut b = [0u8; EXTENT_CONTEXT_SIZE];
        b[0] = EXTENT_CONTEXT_V1;
        b[1] = self.mode.number();
        b[2..18].copy_from_slice(&self.master_key_identifier);
        b[18..34].copy_from_slice(&self.nonce);
        b
    }

    /// `fscrypt_load_extent_info`'s check: the extent must match its inode's policy (mode and
    /// master key identifier), and the policy must allow extents. EUCLEAN on a mismatch (the extent
    /// on disk is inconsistent with its file); EINVAL when the policy cannot have extents.
    pub fn validate_against(&self, policy: &Policy) -> Result<()> {
        let p = extent_policy(policy)?;
        if self.mode != p.contents_mode || self.master_key_identifier != p.master_key_identifier {
            return Err(Error::corrupt(format!(
                "extent context (mode {}, key {}) does not match its inode's policy (mode {}, key {})",
                self.mode,
                hex16(&self.master_key_identifier),
                p.contents_mode,
                hex16(&p.master_key_identifier)
            )));
        }
        Ok(())
    }
}

fn hex16(b: &[u8; 16]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A prepared per-extent key: encrypts data units with IVs counted from the extent's start.
#[derive(Debug)]
pub struct ExtentKey {
    key: PreparedKey,
}

impl ExtentKey {
    /// Derives the key of the extent described by `ctx` from `master`. ENOKEY when `master` is not
    /// the extent's master key.
    pub fn derive(master: &MasterSecret, ctx: &ExtentContext) -> Result<Self> {
        if master.identifier() != Some(ctx.master_key_identifier) {
            return Err(Error::no_key(format!(
                "master key {} is not the extent's key {}",
                master.spec(),
                hex16(&ctx.master_key_identifier)
            )));
        }
        Ok(ExtentKey {
            key: master.derive_extent_key(ctx.mode, &ctx.nonce)?,
        })
    }

    /// The IV of data unit `index_in_extent` (counted from the start of the extent as written).
    pub fn iv(index_in_extent: u64) -> Iv {
        Iv::from_index(index_in_extent)
    }

    /// Encrypts whole data units of `du_size` bytes, the first being unit `first_index` of the extent.
    pub fn encrypt_units(&self, first_index: u64, du_size: usize, buf: &mut [u8]) -> Result<()> {
        crypt_units(
            &self.key,
            Direction::Encrypt,
            du_size,
            first_index,
            buf,
            |i| Ok(Self::iv(i)),
        )
    }

    /// Decrypts whole data units, as [`encrypt_units`](Self::encrypt_units).
    pub fn decrypt_units(&self, first_index: u64, du_size: usize, buf: &mut [u8]) -> Result<()> {
        crypt_units(
            &self.key,
            Direction::Decrypt,
            du_size,
            first_index,
            buf,
            |i| Ok(Self::iv(i)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(c) = ExtentContext::parse(&bytes) {
                prop_assert_eq!(&c.to_bytes()[..], &bytes[..]);
            }
        }
    }
}
