//! A small seeded generator (SplitMix64), so a failing run can be replayed with its seed.
//!
//! The seed comes from `FSCRYPTFS_ORACLE_SEED` (decimal or 0x-hex) if set, else from the OS; each
//! test prints the seed it used.

/// The environment variable that fixes the seed of every test.
pub const SEED_ENV: &str = "FSCRYPTFS_ORACLE_SEED";

/// SplitMix64: not cryptographic, only reproducible.
pub struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    /// A generator seeded from `FSCRYPTFS_ORACLE_SEED` or from the OS; prints the seed for `test`.
    pub fn for_test(test: &str) -> Rng {
        let seed = match std::env::var(SEED_ENV) {
            Ok(s) => parse_seed(&s).unwrap_or_else(|| panic!("{SEED_ENV}={s:?} is not a number")),
            Err(_) => {
                let mut b = [0u8; 8];
                let mut f = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
                std::io::Read::read_exact(&mut f, &mut b).expect("read /dev/urandom");
                u64::from_le_bytes(b)
            }
        };
        eprintln!("{test}: random seed {seed:#x} (replay with {SEED_ENV}={seed:#x})");
        Rng::new(seed)
    }

    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed, seed }
    }

    /// The seed this generator started from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + self.next_u64() % (span + 1)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }

    /// A fixed-size array of random bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.fill(&mut a);
        a
    }

    /// A random `[a-zA-Z0-9]` string of `len` characters (as fstests' names are).
    pub fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| CHARS[(self.next_u64() % CHARS.len() as u64) as usize] as char)
            .collect()
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
