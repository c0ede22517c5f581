//! Reading a per-extent file: the map's pieces over the range, each extent's ciphertext read a chunk
//! at a time and decrypted with the key the caller derives for its context (IVs counted from the
//! extent's start); holes and the bytes of a unit beyond a piece's end read as zeros.

use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::{Errno, Error, Result};

use super::ciphertext::read_exact_at;
use super::{corrupt_at, ExtentFile, CHUNK};

impl ExtentFile {
    /// Reads up to `buf.len()` bytes at `offset`; holes read as zeros, nothing beyond the size.
    /// `key_for` gives the key of each extent met (called once per extent per call; owned or
    /// shared, e.g. `Arc<ExtentKey>` from the caller's cache). EIO when a unit does not decrypt or
    /// the backing file is short.
    pub fn read<F, K>(&self, offset: u64, buf: &mut [u8], key_for: F) -> Result<usize>
    where
        F: Fn(&ExtentContext) -> Result<K>,
        K: std::borrow::Borrow<ExtentKey>,
    {
        let size = self.map.size();
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - offset);
        let buf = &mut buf[..n as usize];
        buf.fill(0);
        let du = self.du;
        let mut keys: Vec<([u8; 16], K)> = Vec::new();
        let mut ct = Vec::new();
        for (s, p) in self.map.overlapping(offset, offset + n) {
            let run = self.runs[p.run];
            let ki = match keys.iter().position(|(nonce, _)| *nonce == run.ctx.nonce) {
                Some(i) => i,
                None => {
                    keys.push((run.ctx.nonce, key_for(&run.ctx)?));
                    keys.len() - 1
                }
            };
            let lo = s.max(offset);
            let hi = p.end.min(offset + n);
            // Units [u, u_end) of the piece, processed in chunks.
            let mut u = (lo - s) / du;
            let u_end = (hi - s).div_ceil(du);
            while u < u_end {
                let cnt = (u_end - u).min((CHUNK / du).max(1));
                let unit_in_run = p.unit + u;
                if unit_in_run + cnt > run.nunits {
                    return Err(corrupt_at(&self.what, run.record_off, "map beyond its run"));
                }
                let at = run.data_off + unit_in_run * du;
                ct.resize((cnt * du) as usize, 0);
                read_exact_at(&self.file, &mut ct, at, &self.what)?;
                keys[ki]
                    .1
                    .borrow()
                    .decrypt_units(run.first_unit + unit_in_run, du as usize, &mut ct)
                    .map_err(|e| {
                        Error::new(
                            Errno::IO,
                            format!("{}: backing offset {at}: decrypting: {e}", self.what),
                        )
                    })?;
                let chunk_lo = s + u * du;
                let from = lo.max(chunk_lo);
                let to = hi.min(chunk_lo + cnt * du);
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&ct[(from - chunk_lo) as usize..(to - chunk_lo) as usize]);
                u += cnt;
            }
        }
        Ok(n as usize)
    }
}
