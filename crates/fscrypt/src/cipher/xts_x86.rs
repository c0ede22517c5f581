//! The x86_64 fast path for AES-256-XTS: AES-NI (8 blocks interleaved) and VAES on 256-bit vectors
//! (16 blocks interleaved), chosen by run-time CPU detection at key setup.
//!
//! It exists because the `aes` crate never selects its VAES code by run-time detection on CPUs that
//! have VAES without AVX-512 (see docs/rust-crates.md), and because XTS built over `encrypt_blocks`
//! pays two passes over the data for the tweaks. Here the tweak XOR is folded into the first and last
//! round keys, and the tweaks advance in SIMD registers (each 128-bit lane times x^16 per iteration).
//! The round-key reference goes through `black_box` once per 8- or 16-block group: otherwise LLVM
//! hoists all 15 round keys out of the loop, spills them to the stack (copies of key material outside
//! the locked page) and de-interleaves the lanes, which cost about a third of the throughput.
//!
//! Owned here: our own AES-256 key expansion (encryption round keys, and decryption round keys for the
//! Equivalent Inverse Cipher through `aesimc`), the layout of the key schedule in its locked page, and
//! the two data paths. Every `unsafe` is one small function with its `SAFETY:` reason: either a
//! pointer load or store on a reference of the exact size, or a call into a `#[target_feature]` path
//! whose features were detected when the key's `Level` was chosen.

use std::arch::x86_64::*;

use crate::error::{Error, Result};
use crate::secret::LockedBox;

use super::xts::{check_unit_len, split_xts_key};

/// Which instruction set a key's data path uses. A `Level` value exists only after its features were
/// detected on this CPU (`detect`, `available`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// AES-NI on 128-bit vectors.
    AesNi,
    /// VAES + AVX2 on 256-bit vectors (and AES-NI for the tweak and tails).
    Vaes,
}

impl Level {
    /// The best level this CPU supports, if any.
    pub(crate) fn detect() -> Option<Level> {
        [Level::Vaes, Level::AesNi]
            .into_iter()
            .find(|l| l.available())
    }

    /// True when this CPU has the features the level needs.
    pub(crate) fn available(self) -> bool {
        match self {
            Level::AesNi => is_x86_feature_detected!("aes"),
            Level::Vaes => {
                is_x86_feature_detected!("aes")
                    && is_x86_feature_detected!("vaes")
                    && is_x86_feature_detected!("avx2")
            }
        }
    }
}

/// An AES-256-XTS key schedule. Round keys of K1 are stored twice per 32-byte row so the VAES path
/// loads them as 256-bit vectors; the AES-NI path reads the low half. Lives in a `LockedBox`.
#[repr(C, align(32))]
pub(crate) struct Aes256XtsX86 {
    /// K1 encryption round keys, each duplicated into both 128-bit lanes.
    enc1: [[u8; 32]; 15],
    /// K1 decryption round keys (Equivalent Inverse Cipher order, `aesimc` applied), duplicated.
    dec1: [[u8; 32]; 15],
    /// K2 encryption round keys (the tweak key only ever encrypts).
    enc2: [[u8; 16]; 15],
    level: Level,
}

impl Aes256XtsX86 {
    /// Expands K1 || K2 (64 bytes) into a locked schedule for `level`, which the caller has checked
    /// with `Level::available`.
    pub(crate) fn new_locked(key: &[u8], level: Level) -> Result<LockedBox<Self>> {
        if !level.available() {
            return Err(Error::invalid(
                "AES-256-XTS: CPU lacks the requested instructions",
            ));
        }
        let (k1, k2) = split_xts_key(key, 64)?;
        let (Some((k1, _)), Some((k2, _))) =
            (k1.split_first_chunk::<32>(), k2.split_first_chunk::<32>())
        else {
            return Err(Error::invalid("AES-256-XTS key must be 64 bytes"));
        };
        LockedBox::try_new_with(|slot| {
            let keys = slot.write(Aes256XtsX86 {
                enc1: [[0; 32]; 15],
                dec1: [[0; 32]; 15],
                enc2: [[0; 16]; 15],
                level,
            });
            keys.expand(k1, k2);
            Ok(())
        })
    }

    /// The level chosen at setup.
    pub(crate) fn level(&self) -> Level {
        self.level
    }

    fn expand(&mut self, k1: &[u8; 32], k2: &[u8; 32]) {
        // SAFETY: a Level exists only once `aes` was detected (`new_locked` checked `available`).
        unsafe { expand_keys(self, k1, k2) }
    }

    /// Encrypts one data unit (a nonzero multiple of 16 bytes) with tweak `iv`.
    pub(crate) fn encrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        check_unit_len(data, "AES-256-XTS")?;
        match self.level {
            // SAFETY: Level::Vaes is only constructed after aes, vaes and avx2 were detected.
            Level::Vaes => unsafe { xts_vaes::<false>(self, iv, data) },
            // SAFETY: Level::AesNi is only constructed after aes was detected.
            Level::AesNi => unsafe { xts_aesni::<false>(self, iv, data) },
        }
        Ok(())
    }

    /// Decrypts one data unit (a nonzero multiple of 16 bytes) with tweak `iv`.
    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
        check_unit_len(data, "AES-256-XTS")?;
        match self.level {
            // SAFETY: Level::Vaes is only constructed after aes, vaes and avx2 were detected.
            Level::Vaes => unsafe { xts_vaes::<true>(self, iv, data) },
            // SAFETY: Level::AesNi is only constructed after aes was detected.
            Level::AesNi => unsafe { xts_aesni::<true>(self, iv, data) },
        }
        Ok(())
    }
}

// ---- loads and stores: the only pointer operations ----

#[inline(always)]
fn load128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement; SSE2 is baseline on
    // x86_64.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline(always)]
fn load128_lo(b: &[u8; 32]) -> __m128i {
    // SAFETY: `b` is 32 readable bytes, of which the first 16 are read; unaligned load; SSE2 baseline.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline(always)]
fn store128(b: &mut [u8; 16], v: __m128i) {
    // SAFETY: `b` is 16 writable bytes, exclusively borrowed; unaligned store; SSE2 baseline.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

#[inline(always)]
fn store128_both(b: &mut [u8; 32], v: __m128i) {
    // SAFETY: `b` is 32 writable bytes, exclusively borrowed; two unaligned 16-byte stores at offsets
    // 0 and 16 stay inside it; SSE2 baseline.
    unsafe {
        _mm_storeu_si128(b.as_mut_ptr().cast(), v);
        _mm_storeu_si128(b.as_mut_ptr().add(16).cast(), v);
    }
}

#[inline]
#[target_feature(enable = "avx")]
fn load256(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; unaligned load; AVX is enabled for this function, so callers
    // need it too.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx")]
fn store256(b: &mut [u8; 32], v: __m256i) {
    // SAFETY: `b` is 32 writable bytes, exclusively borrowed; unaligned store; AVX enabled here.
    unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
}

// ---- key expansion ----

#[inline]
#[target_feature(enable = "sse2")]
fn expand_step(prev: __m128i, t: __m128i) -> __m128i {
    let mut a = prev;
    a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
    a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
    a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
    _mm_xor_si128(a, t)
}

/// AES-256 encryption round keys of `key`.
#[target_feature(enable = "aes")]
fn aes256_round_keys(key: &[u8; 32]) -> [__m128i; 15] {
    macro_rules! even {
        ($a:expr, $b:expr, $rcon:literal) => {
            expand_step(
                $a,
                _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($b)),
            )
        };
    }
    macro_rules! odd {
        ($a:expr, $b:expr) => {
            expand_step(
                $a,
                _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>($b)),
            )
        };
    }
    let mut halves = [[0u8; 16]; 2];
    halves[0].copy_from_slice(&key[..16]);
    halves[1].copy_from_slice(&key[16..]);
    let k0 = load128(&halves[0]);
    let k1 = load128(&halves[1]);
    halves = [[0; 16]; 2];
    std::hint::black_box(&halves);
    let k2 = even!(k0, k1, 0x01);
    let k3 = odd!(k1, k2);
    let k4 = even!(k2, k3, 0x02);
    let k5 = odd!(k3, k4);
    let k6 = even!(k4, k5, 0x04);
    let k7 = odd!(k5, k6);
    let k8 = even!(k6, k7, 0x08);
    let k9 = odd!(k7, k8);
    let k10 = even!(k8, k9, 0x10);
    let k11 = odd!(k9, k10);
    let k12 = even!(k10, k11, 0x20);
    let k13 = odd!(k11, k12);
    let k14 = even!(k12, k13, 0x40);
    [
        k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14,
    ]
}

/// Fills `keys` from K1 and K2.
///
/// # Safety
/// The CPU must support AES-NI.
#[target_feature(enable = "aes")]
unsafe fn expand_keys(keys: &mut Aes256XtsX86, k1: &[u8; 32], k2: &[u8; 32]) {
    let mut rk = aes256_round_keys(k1);
    for (row, k) in keys.enc1.iter_mut().zip(rk.iter()) {
        store128_both(row, *k);
    }
    store128_both(&mut keys.dec1[0], rk[14]);
    for i in 1..14 {
        store128_both(&mut keys.dec1[i], _mm_aesimc_si128(rk[14 - i]));
    }
    store128_both(&mut keys.dec1[14], rk[0]);
    rk = aes256_round_keys(k2);
    for (row, k) in keys.enc2.iter_mut().zip(rk.iter()) {
        store128(row, *k);
    }
    rk = [_mm_setzero_si128(); 15];
    std::hint::black_box(&rk);
}

// ---- tweak arithmetic ----

/// T·x in GF(2^128), IEEE 1619 little-endian (one 128-bit lane).
#[inline]
#[target_feature(enable = "sse2")]
fn mul_x_128(t: __m128i) -> __m128i {
    // Broadcast bit 127 into dword 0 and bit 63 into dword 2, then keep 0x87 and 1 respectively.
    let carries = _mm_srai_epi32::<31>(_mm_shuffle_epi32::<0x13>(t));
    let carries = _mm_and_si128(carries, _mm_set_epi32(0, 1, 0, 0x87));
    _mm_xor_si128(_mm_add_epi64(t, t), carries)
}

/// Each 128-bit lane times x^16 in GF(2^128): shift left 16, carry bits 63..48 of the low qword into
/// the high one, and fold the 16 bits shifted out of the top back in as (bits)·(x^7+x^2+x+1).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_x16_256(t: __m256i) -> __m256i {
    let spill = _mm256_srli_epi64::<48>(t);
    let shifted = _mm256_slli_epi64::<16>(t);
    let into_high = _mm256_slli_si256::<8>(spill);
    let top = _mm256_srli_si256::<8>(spill);
    let reduced = _mm256_xor_si256(
        _mm256_xor_si256(top, _mm256_slli_epi64::<1>(top)),
        _mm256_xor_si256(_mm256_slli_epi64::<2>(top), _mm256_slli_epi64::<7>(top)),
    );
    _mm256_xor_si256(_mm256_xor_si256(shifted, into_high), reduced)
}

/// One block with 128-bit AES-NI, round keys in `rk` (rows of 16 or the low half of 32 bytes).
#[inline]
#[target_feature(enable = "aes")]
fn aes_enc_block(rk: &[[u8; 16]; 15], b: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(b, load128(&rk[0]));
    for k in &rk[1..14] {
        x = _mm_aesenc_si128(x, load128(k));
    }
    _mm_aesenclast_si128(x, load128(&rk[14]))
}

/// One block of the data cipher with tweak `t` folded into the whitening keys.
#[inline]
#[target_feature(enable = "aes")]
fn xts_block<const DEC: bool>(rk: &[[u8; 32]; 15], b: __m128i, t: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(b, _mm_xor_si128(t, load128_lo(&rk[0])));
    for k in &rk[1..14] {
        x = if DEC {
            _mm_aesdec_si128(x, load128_lo(k))
        } else {
            _mm_aesenc_si128(x, load128_lo(k))
        };
    }
    let last = _mm_xor_si128(t, load128_lo(&rk[14]));
    if DEC {
        _mm_aesdeclast_si128(x, last)
    } else {
        _mm_aesenclast_si128(x, last)
    }
}

// ---- data paths ----

/// XTS over `data` (whole 16-byte blocks) with AES-NI, 8 blocks in flight.
///
/// # Safety
/// The CPU must support AES-NI.
#[target_feature(enable = "aes")]
unsafe fn xts_aesni<const DEC: bool>(keys: &Aes256XtsX86, iv: &[u8; 16], data: &mut [u8]) {
    let rk = if DEC { &keys.dec1 } else { &keys.enc1 };
    let mut t = aes_enc_block(&keys.enc2, load128(iv));
    let (blocks, _) = data.as_chunks_mut::<16>();
    let (groups, rest) = blocks.as_chunks_mut::<8>();
    for g in groups {
        // Opaque per iteration, so the round keys are read from the locked schedule each time
        // instead of being hoisted into registers and spilled (copied) onto the stack.
        let rk = std::hint::black_box(rk);
        let mut tw = [t; 8];
        for j in 1..8 {
            tw[j] = mul_x_128(tw[j - 1]);
        }
        t = mul_x_128(tw[7]);
        let k0 = load128_lo(&rk[0]);
        let mut x = [_mm_setzero_si128(); 8];
        for j in 0..8 {
            x[j] = _mm_xor_si128(load128(&g[j]), _mm_xor_si128(tw[j], k0));
        }
        for k in &rk[1..14] {
            let k = load128_lo(k);
            for xj in x.iter_mut() {
                *xj = if DEC {
                    _mm_aesdec_si128(*xj, k)
                } else {
                    _mm_aesenc_si128(*xj, k)
                };
            }
        }
        let kl = load128_lo(&rk[14]);
        for j in 0..8 {
            let last = _mm_xor_si128(kl, tw[j]);
            let y = if DEC {
                _mm_aesdeclast_si128(x[j], last)
            } else {
                _mm_aesenclast_si128(x[j], last)
            };
            store128(&mut g[j], y);
        }
    }
    let rk = std::hint::black_box(rk);
    for b in rest {
        store128(b, xts_block::<DEC>(rk, load128(b), t));
        t = mul_x_128(t);
    }
}

/// XTS over `data` (whole 16-byte blocks) with VAES on 256-bit vectors, 16 blocks in flight.
///
/// # Safety
/// The CPU must support AES-NI, VAES and AVX2.
#[target_feature(enable = "aes,vaes,avx2")]
unsafe fn xts_vaes<const DEC: bool>(keys: &Aes256XtsX86, iv: &[u8; 16], data: &mut [u8]) {
    let rk = if DEC { &keys.dec1 } else { &keys.enc1 };

    // Tweaks of the first 16 blocks, two per 256-bit vector: tw[j] = (T(2j), T(2j+1)).
    let mut t = aes_enc_block(&keys.enc2, load128(iv));
    let mut tw = [_mm256_setzero_si256(); 8];
    for twj in tw.iter_mut() {
        let next = mul_x_128(t);
        *twj = _mm256_set_m128i(next, t);
        t = mul_x_128(next);
    }

    let (pairs, tail) = data.as_chunks_mut::<32>();
    let (groups, rest) = pairs.as_chunks_mut::<8>();
    for g in groups {
        // As in xts_aesni: keep the round keys in their locked page, not in stack spill slots.
        let rk = std::hint::black_box(rk);
        let k0 = load256(&rk[0]);
        let mut x = [_mm256_setzero_si256(); 8];
        for j in 0..8 {
            x[j] = _mm256_xor_si256(load256(&g[j]), _mm256_xor_si256(tw[j], k0));
        }
        for k in &rk[1..14] {
            let k = load256(k);
            for xj in x.iter_mut() {
                *xj = if DEC {
                    _mm256_aesdec_epi128(*xj, k)
                } else {
                    _mm256_aesenc_epi128(*xj, k)
                };
            }
        }
        let kl = load256(&rk[14]);
        for j in 0..8 {
            let last = _mm256_xor_si256(kl, tw[j]);
            let y = if DEC {
                _mm256_aesdeclast_epi128(x[j], last)
            } else {
                _mm256_aesenclast_epi128(x[j], last)
            };
            store256(&mut g[j], y);
            tw[j] = mul_x16_256(tw[j]);
        }
    }

    // Fewer than 16 blocks left: pairs on 256-bit vectors, then at most one 128-bit block. The
    // tweaks for them are already in tw[0..], in order.
    let rk = std::hint::black_box(rk);
    for (p, twj) in rest.iter_mut().zip(tw.iter()) {
        let mut x = _mm256_xor_si256(load256(p), _mm256_xor_si256(*twj, load256(&rk[0])));
        for k in &rk[1..14] {
            x = if DEC {
                _mm256_aesdec_epi128(x, load256(k))
            } else {
                _mm256_aesenc_epi128(x, load256(k))
            };
        }
        let last = _mm256_xor_si256(*twj, load256(&rk[14]));
        x = if DEC {
            _mm256_aesdeclast_epi128(x, last)
        } else {
            _mm256_aesenclast_epi128(x, last)
        };
        store256(p, x);
    }
    let (singles, _) = tail.as_chunks_mut::<16>();
    if let (Some(b), Some(twj)) = (singles.first_mut(), tw.get(rest.len())) {
        let t = _mm256_castsi256_si128(*twj);
        store128(b, xts_block::<DEC>(rk, load128(b), t));
    }
    tw = [_mm256_setzero_si256(); 8];
    std::hint::black_box(&tw);
}
