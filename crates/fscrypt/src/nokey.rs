//! No-key names: how a locked directory lists and looks up its entries (`fs/crypto/fname.c`).
//!
//! Without the directory key a name is shown as base64url (no padding) of `struct fscrypt_nokey_name`:
//! the 8-byte dirhash, then the ciphertext if it is at most 149 bytes, else its first 149 bytes and the
//! SHA-256 of the rest. That is at most 189 bytes, i.e. 252 characters — under NAME_MAX, and the 149
//! keeps the common case reversible so lookups compare the full ciphertext. Decoding is strict, as in
//! the kernel: only the URL-safe alphabet, and leftover bits must be zero.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Size of the dirhash field.
pub const DIRHASH_SIZE: usize = 8;
/// Size of `fscrypt_nokey_name.bytes`: the longest ciphertext kept whole.
pub const NOKEY_BYTES: usize = 149;
/// `offsetof(struct fscrypt_nokey_name, sha256)`.
pub const NOKEY_SHA256_OFFSET: usize = DIRHASH_SIZE + NOKEY_BYTES;
/// `FSCRYPT_NOKEY_NAME_MAX`: 189 bytes.
pub const NOKEY_NAME_MAX: usize = NOKEY_SHA256_OFFSET + 32;
/// `FSCRYPT_NOKEY_NAME_MAX_ENCODED`: 252 characters.
pub const NOKEY_NAME_MAX_ENCODED: usize = (NOKEY_NAME_MAX * 4).div_ceil(3);

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `fscrypt_base64url_encode`: RFC 4648 §5 without padding.
pub fn base64url_encode(src: &[u8]) -> String {
    let mut out = String::with_capacity((src.len() * 4).div_ceil(3));
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in src {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    out
}

/// `fscrypt_base64url_decode`: None for a character outside the alphabet or nonzero leftover bits.
pub fn base64url_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in src {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if acc != 0 {
        return None;
    }
    Some(out)
}

/// A decoded no-key name: the dirhash and either the full ciphertext or its prefix and tail hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NokeyName {
    dirhash: [u8; DIRHASH_SIZE],
    bytes: Vec<u8>,
    sha256: Option<[u8; 32]>,
}

impl NokeyName {
    /// The no-key name of a ciphertext name, with the filesystem's dirhash (hash, minor_hash in CPU
    /// byte order, or zeros when the filesystem has none).
    pub fn encode(dirhash: [u8; DIRHASH_SIZE], ciphertext: &[u8]) -> String {
        let mut raw = Vec::with_capacity(NOKEY_NAME_MAX);
        raw.extend_from_slice(&dirhash);
        if ciphertext.len() <= NOKEY_BYTES {
            raw.extend_from_slice(ciphertext);
        } else {
            raw.extend_from_slice(&ciphertext[..NOKEY_BYTES]);
            raw.extend_from_slice(&Sha256::digest(&ciphertext[NOKEY_BYTES..]));
        }
        base64url_encode(&raw)
    }

    /// Parses a name looked up in a locked directory (`fscrypt_setup_filename` without the key).
    /// ENOENT for anything that cannot be a no-key name: too long, bad characters or bits, or a
    /// decoded length outside 9..=157 and not 189.
    pub fn decode(name: &str) -> Result<NokeyName> {
        let not_found = || Error::new(crate::Errno::NOENT, "not a valid no-key name");
        if name.len() > NOKEY_NAME_MAX_ENCODED {
            return Err(not_found());
        }
        let raw = base64url_decode(name.as_bytes()).ok_or_else(not_found)?;
        if raw.len() < DIRHASH_SIZE + 1
            || (raw.len() > NOKEY_SHA256_OFFSET && raw.len() != NOKEY_NAME_MAX)
        {
            return Err(not_found());
        }
        let mut dirhash = [0u8; DIRHASH_SIZE];
        dirhash.copy_from_slice(&raw[..DIRHASH_SIZE]);
        if raw.len() == NOKEY_NAME_MAX {
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&raw[NOKEY_SHA256_OFFSET..]);
            Ok(NokeyName {
                dirhash,
                bytes: raw[DIRHASH_SIZE..NOKEY_SHA256_OFFSET].to_vec(),
                sha256: Some(sha),
            })
        } else {
            Ok(NokeyName {
                dirhash,
                bytes: raw[DIRHASH_SIZE..].to_vec(),
                sha256: None,
            })
        }
    }

    /// The dirhash field.
    pub fn dirhash(&self) -> [u8; DIRHASH_SIZE] {
        self.dirhash
    }

    /// The full ciphertext, when the name carries it (ciphertexts of at most 149 bytes... and
    /// ones that decoded to less than 189 bytes).
    pub fn full_ciphertext(&self) -> Option<&[u8]> {
        match self.sha256 {
            None => Some(&self.bytes),
            Some(_) => None,
        }
    }

    /// `fscrypt_match_name`: does this no-key name denote the entry with ciphertext `disk_name`?
    pub fn matches(&self, disk_name: &[u8]) -> bool {
        match &self.sha256 {
            None => disk_name == self.bytes.as_slice(),
            Some(sha) => {
                disk_name.len() > NOKEY_BYTES
                    && disk_name[..NOKEY_BYTES] == self.bytes[..]
                    && Sha256::digest(&disk_name[NOKEY_BYTES..]).as_slice() == sha
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_match_the_kernel() {
        assert_eq!(NOKEY_NAME_MAX, 189);
        assert_eq!(NOKEY_NAME_MAX_ENCODED, 252);
        // 32-byte ciphertext → 54 characters (fscrypt-spec.md §5.5).
        assert_eq!(NokeyName::encode([1; 8], &[7; 32]).len(), 54);
        assert_eq!(NokeyName::encode([1; 8], &[7; 255]).len(), 252);
    }

    #[test]
    fn long_names_match_by_hash() {
        let ct: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let n = NokeyName::decode(&NokeyName::encode([3; 8], &ct)).unwrap();
        assert!(n.matches(&ct));
        assert!(n.full_ciphertext().is_none());
        let mut other = ct.clone();
        other[199] ^= 1;
        assert!(!n.matches(&other));
        assert!(!n.matches(&ct[..149]));
    }

    #[test]
    fn strict_decoding() {
        assert!(base64url_decode(b"AB=").is_none());
        assert!(base64url_decode(b"A+").is_none());
        assert!(base64url_decode(b"AB").is_none()); // leftover bits nonzero
        assert_eq!(base64url_decode(b"AA").unwrap(), vec![0]);
        assert!(NokeyName::decode("AAAA").is_err()); // 3 bytes: too short
        assert!(NokeyName::decode(&"A".repeat(253)).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(dirhash in any::<[u8; 8]>(), ct in proptest::collection::vec(any::<u8>(), 1..=255)) {
            let s = NokeyName::encode(dirhash, &ct);
            prop_assert!(s.len() <= NOKEY_NAME_MAX_ENCODED);
            let n = NokeyName::decode(&s).unwrap();
            prop_assert_eq!(n.dirhash(), dirhash);
            prop_assert!(n.matches(&ct));
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,300}") {
            let _ = NokeyName::decode(&s);
        }

        #[test]
        fn base64_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            use base64::Engine;
            let reference = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(&base64url_encode(&bytes), &reference);
            prop_assert_eq!(base64url_decode(reference.as_bytes()).unwrap(), bytes);
        }
    }
}
