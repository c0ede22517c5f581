//! CBC with ciphertext stealing, variant CS3, exactly as Linux's `cts(cbc(...))`: fscrypt's
//! AES-256-CTS, AES-128-CTS and SM4-CTS filename modes. Also the plain CBC helpers ESSIV uses.
//!
//! Owned here because the `cts` crate differs from Linux for exactly one block (it encrypts twice,
//! Linux does plain CBC), which would make every short name unreadable by the kernel. The rules:
//! fewer than 16 bytes is EINVAL; exactly 16 is plain CBC; otherwise CBC over the input zero-padded to
//! whole blocks, then the last two ciphertext blocks are swapped and the output truncated to the input
//! length (the swap happens even when the length is a multiple of 16).

use cipher::array::Array;
use cipher::consts::U16;
use cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
    IvState, KeyInit,
};

use crate::error::{Error, Result};
use crate::secret::LockedBox;

/// CBC-encrypts the whole blocks of `data` in place, chaining from `iv`; returns the last
/// ciphertext block (the IV for what follows), or `iv` when `data` is empty.
pub(crate) fn cbc_encrypt<C>(cipher: &C, iv: &[u8; 16], data: &mut [u8]) -> [u8; 16]
where
    C: BlockCipherEncrypt<BlockSize = U16>,
{
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(data);
    let mut mode = cbc::Encryptor::<&C>::inner_iv_init(cipher, &Array::from(*iv));
    mode.encrypt_blocks(blocks);
    mode.iv_state().into()
}

/// CBC-decrypts the whole blocks of `data` in place, chaining from `iv`; returns the last ciphertext
/// block as it was before decryption, or `iv` when `data` is empty.
pub(crate) fn cbc_decrypt<C>(cipher: &C, iv: &[u8; 16], data: &mut [u8]) -> [u8; 16]
where
    C: BlockCipherDecrypt<BlockSize = U16>,
{
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(data);
    let mut mode = cbc::Decryptor::<&C>::inner_iv_init(cipher, &Array::from(*iv));
    mode.decrypt_blocks(blocks);
    mode.iv_state().into()
}

#[inline]
fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// A CBC-CS3 key over block cipher `C`, kept in locked memory.
pub(crate) struct Cts<C> {
    cipher: C,
}

impl<C> Cts<C>
where
    C: BlockCipherEncrypt<BlockSize = U16> + BlockCipherDecrypt<BlockSize = U16> + KeyInit,
{
    /// Builds the key schedule in locked memory; EINVAL unless `key` is the cipher's key size.
    pub(crate) fn new_locked(key: &[u8]) -> Result<LockedBox<Self>> {
        LockedBox::try_new_with(|slot| {
            let cipher = C::new_from_slice(key).map_err(|_| {
                Error::invalid(format!("CTS key has the wrong length {}", key.len()))
            })?;
            slot.write(Cts { cipher });
            Ok(())
        })
    }

    /// Encrypts `data` (at least 16 bytes) in place.
    pub(crate) fn encrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        let n = check_len(data)?;
        if n == 16 {
            cbc_encrypt(&self.cipher, iv, data);
            return Ok(());
        }
        let nblocks = n.div_ceil(16);
        let last_len = n - 16 * (nblocks - 1);
        let head = 16 * (nblocks - 2);
        let (front, tail) = data.split_at_mut(head);
        let chain = cbc_encrypt(&self.cipher, iv, front);
        let (penult, last) = tail.split_at_mut(16);

        // CBC over P(n-1) || pad(P(n)) gives C(n-1)' || C(n)'; emit C(n)' then C(n-1)' truncated.
        let mut buf = [0u8; 32];
        buf[..16].copy_from_slice(penult);
        buf[16..16 + last_len].copy_from_slice(last);
        cbc_encrypt(&self.cipher, &chain, &mut buf);
        penult.copy_from_slice(&buf[16..]);
        last.copy_from_slice(&buf[..last_len]);
        Ok(())
    }

    /// Decrypts `data` (at least 16 bytes) in place.
    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        let n = check_len(data)?;
        if n == 16 {
            cbc_decrypt(&self.cipher, iv, data);
            return Ok(());
        }
        let nblocks = n.div_ceil(16);
        let last_len = n - 16 * (nblocks - 1);
        let head = 16 * (nblocks - 2);
        let (front, tail) = data.split_at_mut(head);
        let chain = cbc_decrypt(&self.cipher, iv, front);
        let (penult, last) = tail.split_at_mut(16);

        // D(C(n)') = pad(P(n)) ^ C(n-1)', whose bytes past last_len are those of C(n-1)'.
        let mut x = [0u8; 16];
        x.copy_from_slice(penult);
        cbc_decrypt(&self.cipher, &[0; 16], &mut x);
        let mut a = x;
        a[..last_len].copy_from_slice(last);
        // P(n) = the first last_len bytes of x ^ C(n-1)'.
        let mut pn = [0u8; 16];
        pn[..last_len].copy_from_slice(&x[..last_len]);
        xor_into(&mut pn[..last_len], &a[..last_len]);
        // P(n-1) = D(C(n-1)') ^ chain.
        cbc_decrypt(&self.cipher, &chain, &mut a);

        penult.copy_from_slice(&a);
        last.copy_from_slice(&pn[..last_len]);
        Ok(())
    }
}

fn check_len(data: &[u8]) -> Result<usize> {
    if data.len() < 16 {
        return Err(Error::invalid(format!(
            "CBC-CTS needs at least 16 bytes, got {}",
            data.len()
        )));
    }
    Ok(data.len())
}
