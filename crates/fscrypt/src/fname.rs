//! Filename encryption (`fs/crypto/fname.c`, the encryption half; no-key names are in `nokey`).
//!
//! A name is NUL-padded to at least 16 bytes, then to the policy's padding (4, 8, 16 or 32), capped at
//! the maximum length, and encrypted whole with the directory's key and its index-0 IV. NUL cannot occur
//! in a name, so decryption strips it again. Padding hides name lengths; the cap keeps a 255-byte name
//! at 255 bytes (CTS and the wide-block modes accept any length from 16 bytes).

use crate::cipher::PreparedKey;
use crate::error::{Error, Result};
use crate::mode::Iv;
use crate::secret::burn_stack;

/// `NAME_MAX`.
pub const NAME_MAX: usize = 255;
/// `FSCRYPT_FNAME_MIN_MSG_LEN`: every encrypted name is at least one cipher block.
pub const FNAME_MIN_MSG_LEN: usize = 16;

/// `__fscrypt_fname_encrypted_size`: the ciphertext length of a `len`-byte name, or None when
/// `len > max_len`.
pub fn encrypted_len(len: usize, padding: usize, max_len: usize) -> Option<usize> {
    if len > max_len {
        return None;
    }
    let padded = len.max(FNAME_MIN_MSG_LEN).div_ceil(padding) * padding;
    Some(padded.min(max_len))
}

/// Encrypts `name` (`fscrypt_fname_encrypt`). ENAMETOOLONG when it is longer than `max_len`,
/// EINVAL when it is empty.
pub fn encrypt(
    key: &PreparedKey,
    iv: &Iv,
    name: &[u8],
    padding: usize,
    max_len: usize,
) -> Result<Vec<u8>> {
    if name.is_empty() {
        return Err(Error::invalid("empty name"));
    }
    let Some(len) = encrypted_len(name.len(), padding, max_len) else {
        return Err(Error::new(
            crate::Errno::NAMETOOLONG,
            format!("name of {} bytes is longer than {max_len}", name.len()),
        ));
    };
    let mut out = vec![0u8; len];
    out[..name.len()].copy_from_slice(name);
    let r = key.encrypt(iv, &mut out);
    // The block cipher's backend (e.g. `aes`' VAES path) copies the key schedule into dead stack
    // slots on every call; a name is short, so wiping them costs more than the encryption but
    // little (about a microsecond).
    burn_stack();
    r?;
    Ok(out)
}

/// Decrypts an on-disk name (`fname_decrypt`): EUCLEAN below 16 bytes or above NAME_MAX; the NUL
/// padding is stripped (`strnlen`).
pub fn decrypt(key: &PreparedKey, iv: &Iv, ciphertext: &[u8]) -> Result<Vec<u8>> {
    decrypt_bounded(key, iv, ciphertext, NAME_MAX)
}

/// As [`decrypt`], with another maximum ciphertext length (symlink targets).
pub fn decrypt_bounded(
    key: &PreparedKey,
    iv: &Iv,
    ciphertext: &[u8],
    max_len: usize,
) -> Result<Vec<u8>> {
    if ciphertext.len() < FNAME_MIN_MSG_LEN {
        return Err(Error::corrupt(format!(
            "encrypted name of {} bytes is shorter than {FNAME_MIN_MSG_LEN}",
            ciphertext.len()
        )));
    }
    if ciphertext.len() > max_len {
        return Err(Error::corrupt(format!(
            "encrypted name of {} bytes is longer than {max_len}",
            ciphertext.len()
        )));
    }
    let mut out = ciphertext.to_vec();
    let r = key.decrypt(iv, &mut out);
    burn_stack(); // as in `encrypt`
    r?;
    let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
    out.truncate(end);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rule() {
        // fscrypt-spec.md §11: PAD_32: 9 → 32, 16 → 32, 200 → 224; capped at 255.
        assert_eq!(encrypted_len(9, 32, 255), Some(32));
        assert_eq!(encrypted_len(16, 32, 255), Some(32));
        assert_eq!(encrypted_len(200, 32, 255), Some(224));
        assert_eq!(encrypted_len(240, 32, 255), Some(255));
        assert_eq!(encrypted_len(1, 4, 255), Some(16));
        assert_eq!(encrypted_len(17, 4, 255), Some(20));
        assert_eq!(encrypted_len(255, 16, 255), Some(255));
        assert_eq!(encrypted_len(256, 16, 255), None);
    }
}
