//! Encrypted symlink targets (`fs/crypto/hooks.c`: `fscrypt_encrypt_symlink`, `fscrypt_get_symlink`).
//!
//! The stored form is `struct fscrypt_symlink_data`: a le16 ciphertext length, then the target
//! encrypted like a filename with the *symlink's own* key and IV, padded per policy. The kernel also
//! counts one trailing NUL in the stored size; the limit passed in (`max_len`) includes that NUL and
//! the 2-byte header, as ext4's block size does.

use crate::cipher::PreparedKey;
use crate::error::{Error, Result};
use crate::fname;
use crate::mode::Iv;

/// `sizeof(struct fscrypt_symlink_data)` without its flexible array.
pub const SYMLINK_HEADER_SIZE: usize = 2;

/// The longest plaintext target a filesystem with this symlink limit stores.
pub fn max_target_len(max_len: usize) -> usize {
    max_len.saturating_sub(SYMLINK_HEADER_SIZE + 1)
}

/// Encrypts `target` to `le16 len ‖ ciphertext`. ENAMETOOLONG past the limit; EINVAL when empty.
pub fn encrypt(
    key: &PreparedKey,
    iv: &Iv,
    target: &[u8],
    padding: usize,
    max_len: usize,
) -> Result<Vec<u8>> {
    let ct = fname::encrypt(key, iv, target, padding, max_target_len(max_len))?;
    let len = u16::try_from(ct.len())
        .map_err(|_| Error::new(crate::Errno::NAMETOOLONG, "symlink target too long"))?;
    let mut out = Vec::with_capacity(SYMLINK_HEADER_SIZE + ct.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Splits stored symlink data into its ciphertext (EUCLEAN when the length is zero or overruns the
/// data). A trailing NUL after the ciphertext is allowed.
pub fn ciphertext(disk: &[u8]) -> Result<&[u8]> {
    if disk.len() < SYMLINK_HEADER_SIZE {
        return Err(Error::corrupt(format!(
            "encrypted symlink data of {} bytes is too short",
            disk.len()
        )));
    }
    let len = usize::from(u16::from_le_bytes([disk[0], disk[1]]));
    if len == 0 {
        return Err(Error::corrupt("encrypted symlink has a zero length"));
    }
    if SYMLINK_HEADER_SIZE + len > disk.len() {
        return Err(Error::corrupt(format!(
            "encrypted symlink length {len} overruns its {} bytes of data",
            disk.len()
        )));
    }
    Ok(&disk[SYMLINK_HEADER_SIZE..SYMLINK_HEADER_SIZE + len])
}

/// Decrypts stored symlink data. EUCLEAN when malformed or when the target decrypts to nothing.
pub fn decrypt(key: &PreparedKey, iv: &Iv, disk: &[u8]) -> Result<Vec<u8>> {
    let ct = ciphertext(disk)?;
    let target = fname::decrypt_bounded(key, iv, ct, u16::MAX as usize)?;
    if target.is_empty() {
        return Err(Error::corrupt(
            "encrypted symlink target decrypts to an empty string",
        ));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_symlink_data_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(ct) = ciphertext(&bytes) {
                prop_assert!(!ct.is_empty());
                prop_assert!(ct.len() + 2 <= bytes.len());
            }
        }
    }
}
