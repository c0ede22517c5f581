//! AES-256-HCTR2 (eprint 2021/1441, Linux `hctr2(aes)`): fscrypt's filename mode 10.
//!
//! Written here over `aes` and `polyval` because the `hctr2` crate does not build on stable Rust.
//! HCTR2 is a length-preserving wide-block cipher: the first block M goes through AES once, the rest N
//! through XCTR, and two POLYVAL hashes of (tweak, N) bind them so every output bit depends on every
//! input bit. Owned here: the hash key h = E(0), the mask L = E(1), the tweak-length block, the
//! message padding for hashing, and XCTR. The tweak may have any length (fscrypt passes 32 bytes);
//! messages must be at least 16 bytes.

use aes::Aes256;
use cipher::array::Array;
use cipher::consts::U16;
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use polyval::universal_hash::UniversalHash;
use polyval::Polyval;
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::secret::LockedBox;

/// Keystream blocks computed per `encrypt_blocks` call in XCTR.
const XCTR_BATCH: usize = 16;

/// An HCTR2 key: the AES-256 schedule, L, and POLYVAL keyed with h. Kept in locked memory.
pub(crate) struct Hctr2 {
    aes: Aes256,
    l: u128,
    poly: Polyval,
}

fn to_u128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_le_bytes(a)
}

impl Hctr2 {
    /// Builds the key in locked memory from a 32-byte AES-256 key.
    pub(crate) fn new_locked(key: &[u8]) -> Result<LockedBox<Self>> {
        if key.len() != 32 {
            return Err(Error::invalid(format!(
                "AES-256-HCTR2 key must be 32 bytes, got {}",
                key.len()
            )));
        }
        LockedBox::try_new_with(|slot| {
            let aes = Aes256::new_from_slice(key)
                .map_err(|_| Error::invalid("AES-256-HCTR2 key has the wrong length"))?;
            let mut h = Array::<u8, U16>::default();
            aes.encrypt_block(&mut h);
            let mut l = Array::<u8, U16>::default();
            l[0] = 1;
            aes.encrypt_block(&mut l);
            let poly = Polyval::new(&h);
            let l_val = to_u128(&l);
            h.as_mut_slice().zeroize();
            l.as_mut_slice().zeroize();
            slot.write(Hctr2 {
                aes,
                l: l_val,
                poly,
            });
            Ok(())
        })
    }

    /// POLYVAL_h(bin(2·bits(T) + 2 or 3) || pad(T) || N or pad(N || 1)).
    fn hash(&self, tweak: &[u8], n: &[u8]) -> u128 {
        let mut p = self.poly.clone();
        let tweak_bits = (tweak.len() as u128) * 8;
        let remainder = !n.len().is_multiple_of(16);
        let len_block = 2 * tweak_bits + 2 + u128::from(remainder);
        p.update(&[Array::from(len_block.to_le_bytes())]);
        p.update_padded(tweak);
        let (full, rest) = Array::<u8, U16>::slice_as_chunks(n);
        p.update(full);
        if remainder {
            let mut last = Array::<u8, U16>::default();
            last[..rest.len()].copy_from_slice(rest);
            last[rest.len()] = 1;
            p.update(&[last]);
        }
        let tag = p.finalize();
        to_u128(&tag)
    }

    /// XORs `data` with XCTR_K(s): blocks E(s ^ le128(i)) for i = 1, 2, ...
    fn xctr(&self, s: u128, data: &mut [u8]) {
        let mut ks = [Array::<u8, U16>::default(); XCTR_BATCH];
        let mut counter: u128 = 1;
        for chunk in data.chunks_mut(16 * XCTR_BATCH) {
            let nblocks = chunk.len().div_ceil(16);
            for k in ks.iter_mut().take(nblocks) {
                *k = Array::from((s ^ counter).to_le_bytes());
                counter = counter.wrapping_add(1);
            }
            self.aes.encrypt_blocks(&mut ks[..nblocks]);
            for (d, k) in chunk.chunks_mut(16).zip(ks.iter()) {
                for (x, y) in d.iter_mut().zip(k.iter()) {
                    *x ^= y;
                }
            }
        }
        for k in ks.iter_mut() {
            k.as_mut_slice().zeroize();
        }
    }

    /// Encrypts `data` (at least 16 bytes) in place under `tweak`.
    pub(crate) fn encrypt(&self, tweak: &[u8], data: &mut [u8]) -> Result<()> {
        check_len(data)?;
        let (m, n) = data.split_at_mut(16);
        let mm = to_u128(m) ^ self.hash(tweak, n);
        let mut uu = Array::from(mm.to_le_bytes());
        self.aes.encrypt_block(&mut uu);
        let uu = to_u128(&uu);
        let s = mm ^ uu ^ self.l;
        self.xctr(s, n);
        let u = uu ^ self.hash(tweak, n);
        m.copy_from_slice(&u.to_le_bytes());
        Ok(())
    }

    /// Decrypts `data` (at least 16 bytes) in place under `tweak`.
    pub(crate) fn decrypt(&self, tweak: &[u8], data: &mut [u8]) -> Result<()> {
        check_len(data)?;
        let (u, v) = data.split_at_mut(16);
        let uu = to_u128(u) ^ self.hash(tweak, v);
        let mut mm = Array::from(uu.to_le_bytes());
        self.aes.decrypt_block(&mut mm);
        let mm = to_u128(&mm);
        let s = mm ^ uu ^ self.l;
        self.xctr(s, v);
        let m = mm ^ self.hash(tweak, v);
        u.copy_from_slice(&m.to_le_bytes());
        Ok(())
    }
}

fn check_len(data: &[u8]) -> Result<()> {
    if data.len() < 16 {
        return Err(Error::invalid(format!(
            "AES-256-HCTR2 needs at least 16 bytes, got {}",
            data.len()
        )));
    }
    Ok(())
}
