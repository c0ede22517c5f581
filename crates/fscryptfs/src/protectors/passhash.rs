//! Passphrase to wrapping key: Argon2id (version 0x13, 32-byte output, no secret, no associated
//! data) with a protector's stored salt and costs, as the `fscrypt` tool's `PassphraseHash`; and
//! the tool's cost calibration for `setup --time`.
//!
//! The hash's working memory (up to 128 MiB at the default costs) is ours, not the crate's, so it
//! is zeroized after every hash; it is not locked (a 128 MiB mlock exceeds an ordinary user's
//! limit), which docs/SECURITY.md states. The output lives in locked memory.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use fscrypt::secret::SecretBytes;
use zeroize::Zeroize;

use super::proto::{HashingCosts, SALT_LEN};
use super::{Error, Result};

/// Memory is never calibrated above 128 MiB (the tool's cap).
pub const MAX_CALIBRATED_MEMORY_KIB: i64 = 128 * 1024;

/// Argon2id of `passphrase` under `salt` and `costs`: the 32-byte wrapping key.
pub fn hash(passphrase: &[u8], salt: &[u8], costs: &HashingCosts) -> Result<SecretBytes> {
    costs.check()?;
    if salt.len() != SALT_LEN {
        return Err(Error::Corrupt("protector: salt is not 16 bytes".into()));
    }
    let lanes = costs.lanes()?;
    let params = Params::new(costs.memory as u32, costs.time as u32, lanes, Some(32))
        .map_err(|e| Error::Corrupt(format!("hashing costs: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let blocks = argon.params().block_count();
    let mut memory = Vec::new();
    memory.try_reserve_exact(blocks).map_err(|_| {
        Error::Invalid(format!(
            "hashing costs: cannot allocate {} KiB",
            costs.memory
        ))
    })?;
    memory.resize(blocks, Block::default());
    let mut out = SecretBytes::zeroed(32);
    let result = argon.hash_password_into_with_memory(passphrase, salt, out.as_mut(), &mut memory);
    memory.iter_mut().for_each(Zeroize::zeroize);
    result.map_err(|e| Error::Invalid(format!("Argon2id: {e}")))?;
    Ok(out)
}

/// The number of CPUs this process may use (the tool's starting parallelism), at most 255.
pub fn cpu_count() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
        .clamp(1, 255)
}

/// Total RAM in KiB.
fn ram_kib() -> i64 {
    let info = rustix::system::sysinfo();
    (info.totalram as u128 * info.mem_unit.max(1) as u128 / 1024).min(i64::MAX as u128) as i64
}

fn time_hash(costs: &HashingCosts) -> Result<Duration> {
    let start = Instant::now();
    hash(b"correct horse battery staple", &[0x2a; SALT_LEN], costs)?;
    Ok(start.elapsed())
}

/// The tool's calibration: the costs whose hash takes about `target` on this machine. Start at
/// p = CPUs, t = 1, m = 8·p KiB; double memory up to min(RAM/8, 128 MiB), then double time; at the
/// first measurement ≥ target interpolate between the last two costs. Lanes run in parallel, so
/// the measured wall time is the tool's CPU time ÷ p.
pub fn calibrate(target: Duration) -> Result<HashingCosts> {
    let p = cpu_count();
    let mut cur = HashingCosts {
        time: 1,
        memory: 8 * p,
        parallelism: p,
        truncation_fixed: true,
    };
    let max_memory = (ram_kib() / 8).min(MAX_CALIBRATED_MEMORY_KIB).max(8 * p);
    let mut cur_time = time_hash(&cur)?;
    if cur_time >= target {
        return Ok(cur);
    }
    loop {
        let prev = cur.clone();
        let prev_time = cur_time;
        if cur.memory < max_memory {
            cur.memory = (cur.memory * 2).min(max_memory);
        } else if cur.time < u32::MAX as i64 / 2 {
            cur.time *= 2;
        } else {
            return Ok(cur);
        }
        cur_time = match time_hash(&cur) {
            Ok(t) => t,
            Err(_) => return Ok(prev),
        };
        if cur_time >= target {
            let span = (cur_time - prev_time).as_secs_f64();
            let f = if span > 0.0 {
                ((target - prev_time).as_secs_f64() / span).clamp(0.0, 1.0)
            } else {
                1.0
            };
            let lerp = |a: i64, b: i64| a + (f * (b - a) as f64).floor() as i64;
            return Ok(HashingCosts {
                time: lerp(prev.time, cur.time).max(1),
                memory: lerp(prev.memory, cur.memory).max(8 * p),
                parallelism: p,
                truncation_fixed: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(t: i64, m: i64, p: i64) -> HashingCosts {
        HashingCosts {
            time: t,
            memory: m,
            parallelism: p,
            truncation_fixed: false,
        }
    }

    /// Known answers from the reference implementation (argon2-cffi, Argon2id v0x13, 32 bytes).
    #[test]
    fn argon2id_known_answers() {
        let out = hash(b"password", b"somesaltsomesalt", &costs(2, 65536, 4)).unwrap();
        assert_eq!(
            hex::encode(out.as_ref()),
            "ef68e65f3629bffdbcc81c7488c3a1d194b768a32db1a28575a4d675dba0da0f"
        );
        let a = hash(b"correct horse", &[0x2a; 16], &costs(3, 1000, 3)).unwrap();
        assert_eq!(
            hex::encode(a.as_ref()),
            "44f74939306a19e8bbf95e907b2fb08714bd09536a621129bbde9b4212df6c3c"
        );
    }

    #[test]
    fn bad_costs_are_refused() {
        assert!(hash(b"x", &[0; 16], &costs(0, 64, 1)).is_err());
        assert!(hash(b"x", &[0; 15], &costs(1, 64, 1)).is_err());
        assert!(hash(b"x", &[0; 16], &costs(1, 7, 1)).is_err());
    }

    #[test]
    fn calibration_reaches_the_target() {
        let c = calibrate(Duration::from_millis(50)).unwrap();
        c.check().unwrap();
        assert!(c.memory >= 8 * c.parallelism);
        assert!(c.truncation_fixed);
    }
}
