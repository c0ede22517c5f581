//! HKDF-SHA512 exactly as fscrypt uses it (`fs/crypto/hkdf.c`).
//!
//! Extract runs once per master key with 64 zero bytes of salt (RFC 5869's "no salt"): the master key
//! is already a uniformly random key, so no salt is needed, and unsalted HKDF keeps every derived key a
//! pure function of the master key — which is what makes the identifier and the per-file keys stable.
//! Expand prefixes its info with `"fscrypt\0"` and a context byte, so keys for different purposes can
//! never collide. SHA-512 because fscrypt derives 64-byte AES-256-XTS keys in one block.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;

use crate::error::{Error, Result};
use crate::secret::SecretBytes;

type HmacSha512 = Hmac<Sha512>;

/// SHA-512's output size, and the PRK size.
pub const HKDF_HASHLEN: usize = 64;

/// The HKDF context bytes (`HKDF_CONTEXT_*` in `fscrypt_private.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HkdfContext {
    /// 1: the key identifier of a raw master key.
    KeyIdentifierForRawKey = 1,
    /// 2: a per-file contents or filenames key; info = the file nonce.
    PerFileEncKey = 2,
    /// 3: the per-mode key of DIRECT_KEY v2 policies; info = the mode number.
    DirectKey = 3,
    /// 4: the per-(mode, filesystem) key of IV_INO_LBLK_64; info = mode number ‖ fs UUID.
    IvInoLblk64Key = 4,
    /// 5: the SipHash key of a casefolded directory; info = the directory nonce.
    DirhashKey = 5,
    /// 6: the per-(mode, filesystem) key of IV_INO_LBLK_32; info = mode number ‖ fs UUID.
    IvInoLblk32Key = 6,
    /// 7: the SipHash key hashing inode numbers for IV_INO_LBLK_32.
    InodeHashKey = 7,
    /// 8: the key identifier of a hardware-wrapped key.
    KeyIdentifierForHwWrappedKey = 8,
    /// 9: a per-extent contents key (btrfs v6 series); info = the extent nonce.
    PerExtentEncKey = 9,
}

/// A master key after HKDF-Extract: the 64-byte PRK, in locked memory.
pub struct HkdfKey {
    prk: SecretBytes,
}

impl HkdfKey {
    /// HKDF-Extract with 64 zero bytes of salt. The caller wipes `master_key` afterwards.
    pub fn extract(master_key: &[u8]) -> Self {
        let mut prk = SecretBytes::zeroed(HKDF_HASHLEN);
        let salt = [0u8; HKDF_HASHLEN];
        // HMAC accepts keys of any length, so this cannot fail.
        if let Ok(mut mac) = <HmacSha512 as KeyInit>::new_from_slice(&salt) {
            mac.update(master_key);
            prk.as_mut().copy_from_slice(&mac.finalize().into_bytes());
        }
        HkdfKey { prk }
    }

    /// HKDF-Expand: fills `out` (at most 255 × 64 bytes) from `"fscrypt\0"` ‖ context ‖ info.
    pub fn expand(&self, context: HkdfContext, info: &[u8], out: &mut [u8]) -> Result<()> {
        if out.len() > 255 * HKDF_HASHLEN {
            return Err(Error::invalid("HKDF output too long"));
        }
        let mut prev: Option<[u8; HKDF_HASHLEN]> = None;
        for (i, chunk) in out.chunks_mut(HKDF_HASHLEN).enumerate() {
            let mut mac = <HmacSha512 as KeyInit>::new_from_slice(self.prk.as_ref())
                .map_err(|_| Error::invalid("HMAC key rejected"))?;
            if let Some(p) = &prev {
                mac.update(p);
            }
            mac.update(b"fscrypt\0");
            mac.update(&[context as u8]);
            mac.update(info);
            // i < 255 by the length check above.
            mac.update(&[(i + 1) as u8]);
            let block: [u8; HKDF_HASHLEN] = mac.finalize().into_bytes().into();
            chunk.copy_from_slice(&block[..chunk.len()]);
            prev = Some(block);
        }
        if let Some(mut p) = prev {
            zeroize::Zeroize::zeroize(&mut p);
        }
        Ok(())
    }

    /// HKDF-Expand into a new secret of `len` bytes.
    pub fn derive(&self, context: HkdfContext, info: &[u8], len: usize) -> Result<SecretBytes> {
        let mut out = SecretBytes::zeroed(len);
        self.expand(context, info, out.as_mut())?;
        Ok(out)
    }
}

impl std::fmt::Debug for HkdfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HkdfKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn kernel_verified_identifier() {
        // fscrypt-spec.md §3.1: verified on Linux 6.18.
        let key: Vec<u8> = (0u8..64).collect();
        let mut id = [0u8; 16];
        HkdfKey::extract(&key)
            .expand(HkdfContext::KeyIdentifierForRawKey, &[], &mut id)
            .unwrap();
        assert_eq!(hex(&id), "8699c2c53707405da5aba5ae4d8583c0");
    }

    #[test]
    fn fstests_test_key_identifier() {
        // fstests' TEST_RAW_KEY 01..40 → TEST_KEY_IDENTIFIER.
        let key: Vec<u8> = (1u8..=64).collect();
        let mut id = [0u8; 16];
        HkdfKey::extract(&key)
            .expand(HkdfContext::KeyIdentifierForRawKey, &[], &mut id)
            .unwrap();
        assert_eq!(hex(&id), "69b2f6edeee720cce0577937eb8a6751");
    }

    #[test]
    fn rfc4231_hmac_sha512_case2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <HmacSha512 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn multi_block_output_chains() {
        let k = HkdfKey::extract(&[1u8; 32]);
        let mut long = [0u8; 100];
        k.expand(HkdfContext::PerFileEncKey, &[2; 16], &mut long)
            .unwrap();
        let mut short = [0u8; 64];
        k.expand(HkdfContext::PerFileEncKey, &[2; 16], &mut short)
            .unwrap();
        assert_eq!(&long[..64], &short[..]);
        assert_ne!(&long[64..], &[0u8; 36][..]);
    }
}
