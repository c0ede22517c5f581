//! File contents: data units and the loop that encrypts them (`fs/crypto/crypto.c`).
//!
//! Contents are split into data units of 2^du_bits bytes (512 up to the block size); each unit is
//! encrypted independently with the IV of its index, so any unit can be read or rewritten alone. The
//! final partial unit is zero-padded and encrypted whole (the kernel has no ciphertext stealing for
//! contents; the plaintext size bounds what readers see). Per-inode keys ([`crate::keysetup`]) and
//! per-extent keys ([`crate::extent`]) differ only in how a unit's index becomes an IV, so both use
//! [`crypt_units`].

use crate::cipher::PreparedKey;
use crate::error::{Error, Result};
use crate::mode::Iv;

/// Which way [`crypt_units`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Plaintext to ciphertext.
    Encrypt,
    /// Ciphertext to plaintext.
    Decrypt,
}

/// Encrypts or decrypts `buf` in place as consecutive whole data units of `du_size` bytes, the first
/// being unit `first_index`; `iv_of(index)` gives each unit's IV. EINVAL when `buf` is not a whole
/// number of units.
pub fn crypt_units(
    key: &PreparedKey,
    direction: Direction,
    du_size: usize,
    first_index: u64,
    buf: &mut [u8],
    iv_of: impl Fn(u64) -> Result<Iv>,
) -> Result<()> {
    if du_size == 0 || !buf.len().is_multiple_of(du_size) {
        return Err(Error::invalid(format!(
            "{} bytes is not a whole number of {du_size}-byte data units",
            buf.len()
        )));
    }
    for (i, unit) in buf.chunks_exact_mut(du_size).enumerate() {
        let iv = iv_of(first_index.wrapping_add(i as u64))?;
        match direction {
            Direction::Encrypt => key.encrypt(&iv, unit)?,
            Direction::Decrypt => key.decrypt(&iv, unit)?,
        }
    }
    Ok(())
}
