//! XTS (IEEE 1619) over a 16-byte block cipher: the portable implementation of fscrypt's AES-256-XTS
//! and SM4-XTS contents modes, and the AES-256-XTS front that picks the x86_64 fast path when the CPU
//! has one.
//!
//! Owned here: the key split and the equal-halves check (as the kernel's `xts_verify_key`), the tweak
//! sequence T0 = E_K2(iv), T(i+1) = T(i)·x in GF(2^128) with IEEE 1619's little-endian convention, and
//! the data-unit rule (a nonzero multiple of 16 bytes: fscrypt never uses ciphertext stealing for
//! contents). The block cipher runs once per chunk of blocks through `encrypt_blocks`, never once per
//! block, so the `aes` crate's parallel AES-NI code does the work.

use aes::{Aes256, Aes256Enc};
use cipher::array::Array;
use cipher::consts::U16;
use cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::secret::LockedBox;

/// Blocks whose tweaks are computed before one `encrypt_blocks` call (512 bytes of data).
const CHUNK_BLOCKS: usize = 32;

/// Multiplies a tweak by x in GF(2^128) (IEEE 1619: little-endian bytes, reduction by x^7+x^2+x+1).
#[inline(always)]
pub(crate) fn mul_x(t: u128) -> u128 {
    (t << 1) ^ ((t >> 127) * 0x87)
}

/// Splits an XTS key into its halves after checking the length and that the halves differ.
pub(crate) fn split_xts_key(key: &[u8], expected: usize) -> Result<(&[u8], &[u8])> {
    if key.len() != expected {
        return Err(Error::invalid(format!(
            "XTS key must be {expected} bytes, got {}",
            key.len()
        )));
    }
    let (k1, k2) = key.split_at(expected / 2);
    // Constant-time comparison: the halves are secret.
    let diff = k1.iter().zip(k2).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        return Err(Error::invalid("XTS key halves are equal (weak key)"));
    }
    Ok((k1, k2))
}

/// Checks that `data` is a nonzero multiple of 16 bytes, as XTS contents encryption requires.
pub(crate) fn check_unit_len(data: &[u8], what: &str) -> Result<()> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return Err(Error::invalid(format!(
            "{what}: data length {} is not a nonzero multiple of 16",
            data.len()
        )));
    }
    Ok(())
}

#[inline(always)]
fn xor_block(block: &mut Block<Aes256Enc>, t: u128) {
    let mut b = [0u8; 16];
    b.copy_from_slice(block);
    block.copy_from_slice(&(u128::from_le_bytes(b) ^ t).to_le_bytes());
}

/// XTS with data cipher `D` (key K1) and tweak cipher `T` (key K2), kept in locked memory.
pub(crate) struct Xts<D, T> {
    data: D,
    tweak: T,
}

impl<D, T> Xts<D, T>
where
    D: BlockCipherEncrypt<BlockSize = U16> + BlockCipherDecrypt<BlockSize = U16> + KeyInit,
    T: BlockCipherEncrypt<BlockSize = U16> + KeyInit,
{
    /// Builds both key schedules in locked memory. `key` is K1 || K2, `2 * key size` bytes.
    pub(crate) fn new_locked(key: &[u8], expected_len: usize) -> Result<LockedBox<Self>> {
        let (k1, k2) = split_xts_key(key, expected_len)?;
        LockedBox::try_new_with(|slot| {
            let bad = |_| Error::invalid("XTS key has the wrong length");
            let data = D::new_from_slice(k1).map_err(bad)?;
            let tweak = T::new_from_slice(k2).map_err(bad)?;
            slot.write(Xts { data, tweak });
            Ok(())
        })
    }

    /// Encrypts one data unit in place; `data` must be a nonzero multiple of 16 bytes.
    pub(crate) fn encrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        self.crypt(iv, data, true)
    }

    /// Decrypts one data unit in place; `data` must be a nonzero multiple of 16 bytes.
    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        self.crypt(iv, data, false)
    }

    fn crypt(&self, iv: &[u8; 16], data: &mut [u8], encrypt: bool) -> Result<()> {
        check_unit_len(data, "XTS")?;
        let mut t0 = Array::from(*iv);
        self.tweak.encrypt_block(&mut t0);
        let mut b = [0u8; 16];
        b.copy_from_slice(&t0);
        let mut t = u128::from_le_bytes(b);
        b.zeroize();
        t0.as_mut_slice().zeroize();

        let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(data);
        let mut tweaks = [0u128; CHUNK_BLOCKS];
        for chunk in blocks.chunks_mut(CHUNK_BLOCKS) {
            for (block, tw) in chunk.iter_mut().zip(tweaks.iter_mut()) {
                *tw = t;
                xor_block(block, t);
                t = mul_x(t);
            }
            if encrypt {
                self.data.encrypt_blocks(chunk);
            } else {
                self.data.decrypt_blocks(chunk);
            }
            for (block, tw) in chunk.iter_mut().zip(tweaks.iter()) {
                xor_block(block, *tw);
            }
        }
        // The tweaks are E_K2(iv)·x^i: not to be left behind.
        tweaks.zeroize();
        t.zeroize();
        Ok(())
    }
}

/// The portable AES-256-XTS key: `aes` for both halves (K2 only ever encrypts).
pub(crate) type PortableAes256Xts = Xts<Aes256, Aes256Enc>;

/// The portable SM4-XTS key.
pub(crate) type Sm4Xts = Xts<sm4::Sm4, sm4::Sm4>;

/// Which AES-256-XTS implementation a key uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XtsBackend {
    /// Pick the fastest available at key setup.
    Auto,
    /// The pure-Rust path over the `aes` crate (always available).
    Portable,
    /// x86_64 AES-NI, 8 blocks interleaved.
    AesNi,
    /// x86_64 VAES on 256-bit vectors (AVX2), 16 blocks interleaved.
    Vaes,
}

/// An AES-256-XTS key on whichever implementation was chosen at setup.
pub(crate) enum Aes256Xts {
    Portable(LockedBox<PortableAes256Xts>),
    #[cfg(target_arch = "x86_64")]
    X86(LockedBox<super::xts_x86::Aes256XtsX86>),
}

impl Aes256Xts {
    /// Sets up a 64-byte key on `backend`; ENOPKG if that backend is not available on this CPU.
    pub(crate) fn new(key: &[u8], backend: XtsBackend) -> Result<Self> {
        match backend {
            XtsBackend::Portable => {
                Ok(Aes256Xts::Portable(PortableAes256Xts::new_locked(key, 64)?))
            }
            #[cfg(target_arch = "x86_64")]
            XtsBackend::Auto => match super::xts_x86::Level::detect() {
                Some(level) => Ok(Aes256Xts::X86(super::xts_x86::Aes256XtsX86::new_locked(
                    key, level,
                )?)),
                None => Ok(Aes256Xts::Portable(PortableAes256Xts::new_locked(key, 64)?)),
            },
            #[cfg(not(target_arch = "x86_64"))]
            XtsBackend::Auto => Ok(Aes256Xts::Portable(PortableAes256Xts::new_locked(key, 64)?)),
            #[cfg(target_arch = "x86_64")]
            XtsBackend::AesNi | XtsBackend::Vaes => {
                let want = if backend == XtsBackend::Vaes {
                    super::xts_x86::Level::Vaes
                } else {
                    super::xts_x86::Level::AesNi
                };
                if !want.available() {
                    return Err(unavailable(backend));
                }
                Ok(Aes256Xts::X86(super::xts_x86::Aes256XtsX86::new_locked(
                    key, want,
                )?))
            }
            #[cfg(not(target_arch = "x86_64"))]
            XtsBackend::AesNi | XtsBackend::Vaes => Err(unavailable(backend)),
        }
    }

    /// The implementation in use.
    pub(crate) fn backend(&self) -> XtsBackend {
        match self {
            Aes256Xts::Portable(_) => XtsBackend::Portable,
            #[cfg(target_arch = "x86_64")]
            Aes256Xts::X86(k) => match k.level() {
                super::xts_x86::Level::AesNi => XtsBackend::AesNi,
                super::xts_x86::Level::Vaes => XtsBackend::Vaes,
            },
        }
    }

    pub(crate) fn encrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        match self {
            Aes256Xts::Portable(k) => k.encrypt(iv, data),
            #[cfg(target_arch = "x86_64")]
            Aes256Xts::X86(k) => k.encrypt(iv, data),
        }
    }

    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        match self {
            Aes256Xts::Portable(k) => k.decrypt(iv, data),
            #[cfg(target_arch = "x86_64")]
            Aes256Xts::X86(k) => k.decrypt(iv, data),
        }
    }
}

fn unavailable(backend: XtsBackend) -> Error {
    Error::new(
        crate::error::Errno::NOPKG,
        format!("AES-256-XTS backend {backend:?} is not available on this CPU"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_x_reduces() {
        assert_eq!(mul_x(1), 2);
        assert_eq!(mul_x(1 << 127), 0x87);
        assert_eq!(mul_x((1 << 127) | 1), 0x85);
    }

    #[test]
    fn equal_halves_rejected() {
        let key = [7u8; 64];
        assert!(split_xts_key(&key, 64).is_err());
        let mut key2 = key;
        key2[63] = 8;
        assert!(split_xts_key(&key2, 64).is_ok());
    }
}
