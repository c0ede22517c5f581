//! Promise 7 measured: once a key is fully removed, no copy of it or of anything derived from it is
//! left anywhere in the process's memory.
//!
//! The test adds a random v2 key, unlocks inodes under every kind of key the hierarchy has (per-file
//! contents and filenames keys, the DIRECT_KEY, IV_INO_LBLK_64 and IV_INO_LBLK_32 per-mode keys, the
//! inode-hash key) and derives per-extent keys, before and during removal. Then it locks everything,
//! lets the last active reference go, and reads every readable mapping of `/proc/self/maps` through
//! `/proc/self/mem`, looking for each 16-byte piece of the raw key, the PRK and every derived key.
//!
//! The expected bytes are only ever held masked (XORed with a random mask), so the search itself
//! keeps no copy; the scan buffer is skipped while scanning and zeroed afterwards. A first scan while
//! everything is alive doubles as the control: it must find the PRK (so the needles are right and
//! locked, no-dump pages are readable), and must not find the raw key, which the keyring wipes right
//! after HKDF-Extract. This is its own test binary so no other test's memory is scanned.
//!
//! `per_file_secret_dies_at_removal` measures the per-file layout's timing: with a per-file inode and
//! its directory still busy (`SecretNeed::SetupOnly`), the PRK and every per-mode key are gone right
//! after removal while the busy file's own key is still found; after it closes and a retry locks the
//! directory, that key is gone too.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;
use zeroize::Zeroize;

use fscrypt::context::{fill_random, Context};
use fscrypt::extent::ExtentContext;
use fscrypt::hkdf::{HkdfContext, HkdfKey};
use fscrypt::keyring::{Caller, InodeId, KeyStatus, Keyring, KeyringConfig, SecretNeed};
use fscrypt::keysetup::{InodeKey, InodeKind, InodeParams};
use fscrypt::policy::{flags, FsParams, KeySpec, Policy, PolicyV2};
use fscrypt::secret::{burn_stack, SecretBytes};
use fscrypt::EncryptionMode;

const PIECE: usize = 16;
const FS_UUID: [u8; 16] = [0xab; 16];

/// What to look for: 16-byte pieces of secrets, each stored XORed with the mask.
struct Needles {
    mask: [u8; PIECE],
    /// (name, masked piece)
    pieces: Vec<(String, [u8; PIECE])>,
    /// Which masked first-two-byte values start a piece: a cheap first filter.
    prefix: Vec<bool>,
}

impl Needles {
    fn new() -> Self {
        let mut mask = [0u8; PIECE];
        fill_random(&mut mask).unwrap();
        Needles {
            mask,
            pieces: Vec::new(),
            prefix: vec![false; 1 << 16],
        }
    }

    /// Records every 16-byte piece of `secret` (masked), then forgets the secret.
    fn add(&mut self, name: &str, secret: SecretBytes) {
        for (i, chunk) in secret.as_ref().chunks(PIECE).enumerate() {
            assert_eq!(chunk.len(), PIECE);
            let mut masked = [0u8; PIECE];
            for j in 0..PIECE {
                masked[j] = chunk[j] ^ self.mask[j];
            }
            self.prefix[(usize::from(masked[0]) << 8) | usize::from(masked[1])] = true;
            self.pieces.push((
                format!("{name}[{}..{}]", i * PIECE, (i + 1) * PIECE),
                masked,
            ));
        }
    }

    /// The names of the pieces at `window` (at least PIECE bytes), if any.
    fn matches(&self, window: &[u8]) -> Option<&str> {
        let first =
            (usize::from(window[0] ^ self.mask[0]) << 8) | usize::from(window[1] ^ self.mask[1]);
        if !self.prefix[first] {
            return None;
        }
        self.pieces
            .iter()
            .find(|(_, m)| (0..PIECE).all(|j| window[j] ^ self.mask[j] == m[j]))
            .map(|(n, _)| n.as_str())
    }
}

/// One hit: which piece, at which address, in which mapping.
#[derive(Debug)]
struct Hit {
    piece: String,
    addr: usize,
    mapping: String,
}

/// Reads every readable mapping through /proc/self/mem and reports each needle found.
fn scan(needles: &Needles) -> Vec<Hit> {
    const CHUNK: usize = 1 << 20;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = File::open("/proc/self/mem").unwrap();
    // The first PIECE-1 bytes carry the end of the previous chunk, for pieces spanning chunks.
    let mut buf = vec![0u8; PIECE - 1 + CHUNK];
    let own = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut hits = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = fields.nth(3).unwrap_or("").to_string();
        if !perms.starts_with('r') || name.starts_with("[vvar") || name == "[vsyscall]" {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let mut carry = 0;
        let mut addr = start;
        while addr < end {
            let len = CHUNK.min(end - addr);
            if own.start < addr + len && addr < own.end {
                // The scan buffer itself: skip it (it holds what it just read).
                carry = 0;
                addr += len;
                continue;
            }
            let dst = &mut buf[carry..carry + len];
            if mem.seek(SeekFrom::Start(addr as u64)).is_err() || mem.read_exact(dst).is_err() {
                break; // unreadable (e.g. a guard page): skip the rest of the mapping
            }
            let data = &buf[..carry + len];
            if data.len() >= PIECE {
                for i in 0..=data.len() - PIECE {
                    if let Some(piece) = needles.matches(&data[i..i + PIECE]) {
                        hits.push(Hit {
                            piece: piece.to_string(),
                            addr: addr - carry + i,
                            mapping: name.clone(),
                        });
                    }
                }
            }
            let keep = (PIECE - 1).min(data.len());
            let total = data.len();
            buf.copy_within(total - keep..total, 0);
            carry = keep;
            addr += len;
        }
    }
    buf.zeroize();
    hits
}

fn policy(id: [u8; 16], contents: EncryptionMode, filenames: EncryptionMode, f: u8) -> Policy {
    Policy::V2(PolicyV2 {
        contents_mode: contents,
        filenames_mode: filenames,
        flags: f | flags::PAD_32,
        log2_data_unit_size: 0,
        master_key_identifier: id,
    })
}

fn nonce(n: u8) -> [u8; 16] {
    [n; 16]
}

/// Computes the expected secrets from the raw key, on this thread, and burns the stack after.
fn expected(needles: &mut Needles, raw: &SecretBytes) {
    let mut prk = SecretBytes::zeroed(64);
    {
        let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(&[0u8; 64]).unwrap();
        mac.update(raw.as_ref());
        let mut out = mac.finalize().into_bytes();
        prk.as_mut().copy_from_slice(&out);
        out.zeroize();
    }
    let hkdf = HkdfKey::extract(raw.as_ref());
    let derive = |ctx: HkdfContext, info: &[u8], len: usize| hkdf.derive(ctx, info, len).unwrap();
    let uuid_info = |mode: u8| {
        let mut v = vec![mode];
        v.extend_from_slice(&FS_UUID);
        v
    };
    needles.add("raw key", raw.clone());
    needles.add("PRK", prk);
    needles.add(
        "file key",
        derive(HkdfContext::PerFileEncKey, &nonce(1), 64),
    );
    needles.add("dir key", derive(HkdfContext::PerFileEncKey, &nonce(2), 32));
    needles.add(
        "extent key 1",
        derive(HkdfContext::PerExtentEncKey, &nonce(11), 64),
    );
    needles.add(
        "extent key 2",
        derive(HkdfContext::PerExtentEncKey, &nonce(12), 64),
    );
    needles.add("DIRECT_KEY key", derive(HkdfContext::DirectKey, &[9], 32));
    needles.add(
        "IV_INO_LBLK_64 key",
        derive(HkdfContext::IvInoLblk64Key, &uuid_info(1), 64),
    );
    needles.add(
        "IV_INO_LBLK_32 key",
        derive(HkdfContext::IvInoLblk32Key, &uuid_info(1), 64),
    );
    needles.add("inode-hash key", derive(HkdfContext::InodeHashKey, &[], 16));
    drop(hkdf);
    burn_stack();
}

#[test]
fn no_secret_survives_full_removal() {
    let mut raw = SecretBytes::zeroed(64);
    fill_random(raw.as_mut()).unwrap();
    let mut needles = Needles::new();
    expected(&mut needles, &raw);
    // Positive controls: a canary in a plain Vec and one in locked, no-dump memory, both alive
    // during both scans.
    let mut canary = vec![0u8; PIECE];
    fill_random(&mut canary).unwrap();
    needles.add("canary", SecretBytes::copy_from(&canary));
    let mut locked_canary = SecretBytes::zeroed(PIECE);
    fill_random(locked_canary.as_mut()).unwrap();
    needles.add("locked canary", locked_canary.clone());
    let mut stack_canary = [0u8; PIECE];
    fill_random(&mut stack_canary).unwrap();
    needles.add("stack canary", SecretBytes::copy_from(&stack_canary));

    let fs = FsParams::ext4(12, true);
    let kr = Keyring::new(KeyringConfig::default());
    let id = kr.add_v2(Caller::user(1000), raw).unwrap();
    let spec = KeySpec::Identifier(id);
    let xts = EncryptionMode::Aes256Xts;
    let cts = EncryptionMode::Aes256Cts;
    let adiantum = EncryptionMode::Adiantum;
    let inodes: [(InodeId, Policy, u8, InodeKind); 6] = [
        (1, policy(id, xts, cts, 0), 1, InodeKind::Regular),
        (2, policy(id, xts, cts, 0), 2, InodeKind::Directory),
        (
            3,
            policy(id, adiantum, adiantum, flags::DIRECT_KEY),
            3,
            InodeKind::Regular,
        ),
        (
            4,
            policy(id, xts, cts, flags::IV_INO_LBLK_64),
            4,
            InodeKind::Regular,
        ),
        (
            5,
            policy(id, xts, cts, flags::IV_INO_LBLK_32),
            5,
            InodeKind::Regular,
        ),
        (6, policy(id, xts, cts, 0), 6, InodeKind::Regular),
    ];
    let mut open = Vec::new();
    for (ino, p, n, kind) in inodes {
        let ctx = Context::new(p, nonce(n));
        let params = InodeParams {
            kind,
            ino,
            fs_uuid: FS_UUID,
        };
        let (active, key) = kr
            .unlock(&spec, ino, |s| InodeKey::setup(s, &ctx, &params, &fs))
            .unwrap();
        if kind == InodeKind::Directory {
            key.encrypt_filename(b"a secret name").unwrap();
        } else {
            let mut unit = vec![0x55u8; key.data_unit_size()];
            key.encrypt_data_unit(0, &mut unit).unwrap();
        }
        open.push((active, key));
    }
    let extent = |n: u8| ExtentContext {
        mode: xts,
        master_key_identifier: id,
        nonce: nonce(n),
    };
    let mut extent_keys = vec![open[0].0.derive_extent_key(&extent(11)).unwrap()];
    burn_stack();

    let alive = scan(&needles);
    let found = |hits: &[Hit], what: &str| hits.iter().any(|h| h.piece.starts_with(what));
    for name in ["canary", "locked canary", "stack canary", "PRK"] {
        assert!(
            found(&alive, name),
            "control: {name} not found while alive: {alive:#?}"
        );
    }
    let raw_hits: Vec<&Hit> = alive
        .iter()
        .filter(|h| h.piece.starts_with("raw key"))
        .collect();
    assert!(
        raw_hits.is_empty(),
        "raw key not wiped after HKDF-Extract: {raw_hits:#?}"
    );
    let mut seen: Vec<&str> = alive.iter().map(|h| h.piece.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    eprintln!("while alive, found: {seen:?}");

    // Remove with inode 1 busy: everything else is locked; inode 1 derives one more extent key.
    let locker = |_: &KeySpec, inodes: &[InodeId]| {
        inodes
            .iter()
            .filter(|i| **i == 1)
            .map(|i| fscrypt::keyring::BusyInode {
                ino: *i,
                ..Default::default()
            })
            .collect()
    };
    let busy_ref = open.remove(0);
    let locked: Vec<_> = std::mem::take(&mut open);
    let r = kr.remove(Caller::user(1000), spec, false, &locker).unwrap();
    assert!(r.files_busy);
    drop(locked); // what the locker would have done: drop keys and references
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    extent_keys.push(busy_ref.0.derive_extent_key(&extent(12)).unwrap());
    // The last user closes: its inode key and extent keys go, then its active reference.
    extent_keys.clear();
    drop(busy_ref);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    burn_stack();

    let hits = scan(&needles);
    let leaked: Vec<String> = hits
        .iter()
        .filter(|h| !h.piece.contains("canary"))
        .map(|h| format!("{} at {:#x} in {:?}", h.piece, h.addr, h.mapping))
        .collect();
    for name in ["canary", "locked canary", "stack canary"] {
        assert!(found(&hits, name), "control: {name} not found: {hits:#?}");
    }
    assert!(
        leaked.is_empty(),
        "secrets left after full removal: {leaked:#?}"
    );
    canary.zeroize();
    std::hint::black_box(&mut stack_canary).zeroize();
    drop(kr);
}

#[test]
fn per_file_secret_dies_at_removal() {
    let mut raw = SecretBytes::zeroed(64);
    fill_random(raw.as_mut()).unwrap();
    let mut needles = Needles::new();
    expected(&mut needles, &raw);
    let mut locked_canary = SecretBytes::zeroed(PIECE);
    fill_random(locked_canary.as_mut()).unwrap();
    needles.add("locked canary", locked_canary.clone());

    let fs = FsParams::ext4(12, true);
    let kr = Keyring::new(KeyringConfig::default());
    let id = kr.add_v2(Caller::user(1000), raw).unwrap();
    let spec = KeySpec::Identifier(id);
    let xts = EncryptionMode::Aes256Xts;
    let cts = EncryptionMode::Aes256Cts;
    // The file (nonce 1) in its directory (nonce 2), plus an idle IV_INO_LBLK_64 file whose
    // per-mode key sits in the master key's cache.
    let unlock = |ino: InodeId, p: Policy, n: u8, kind: InodeKind| {
        let ctx = Context::new(p, nonce(n));
        let params = InodeParams {
            kind,
            ino,
            fs_uuid: FS_UUID,
        };
        kr.unlock_with(&spec, ino, SecretNeed::SetupOnly, |s| {
            InodeKey::setup(s, &ctx, &params, &fs)
        })
        .unwrap()
    };
    let file = unlock(1, policy(id, xts, cts, 0), 1, InodeKind::Regular);
    let dir = unlock(2, policy(id, xts, cts, 0), 2, InodeKind::Directory);
    let idle = unlock(
        4,
        policy(id, xts, cts, flags::IV_INO_LBLK_64),
        4,
        InodeKind::Regular,
    );
    let mut unit = vec![0x55u8; file.1.data_unit_size()];
    file.1.encrypt_data_unit(0, &mut unit).unwrap();
    dir.1.encrypt_filename(b"a secret name").unwrap();
    burn_stack();

    let found = |hits: &[Hit], what: &str| hits.iter().any(|h| h.piece.starts_with(what));
    let alive = scan(&needles);
    for name in ["locked canary", "PRK", "file key", "IV_INO_LBLK_64 key"] {
        assert!(found(&alive, name), "control: {name} not found while alive");
    }

    // Remove with the file and its directory busy; the idle inode is locked.
    let idle_cell = std::sync::Mutex::new(Some(idle));
    let locker = |_: &KeySpec, inodes: &[InodeId]| {
        idle_cell.lock().unwrap().take();
        inodes
            .iter()
            .filter(|i| **i != 4)
            .map(|i| fscrypt::keyring::BusyInode {
                ino: *i,
                ..Default::default()
            })
            .collect()
    };
    let r = kr.remove(Caller::user(1000), spec, false, &locker).unwrap();
    assert!(r.files_busy);
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    assert!(!kr.secret_retained(&spec));
    burn_stack();
    let busy = scan(&needles);
    let leaked: Vec<String> = busy
        .iter()
        .filter(|h| {
            [
                "PRK",
                "raw key",
                "IV_INO_LBLK",
                "DIRECT_KEY",
                "inode-hash",
                "extent",
            ]
            .iter()
            .any(|n| h.piece.starts_with(n))
        })
        .map(|h| format!("{} at {:#x} in {:?}", h.piece, h.addr, h.mapping))
        .collect();
    assert!(
        leaked.is_empty(),
        "master secret left while only per-file inodes are busy: {leaked:#?}"
    );
    assert!(
        found(&busy, "file key"),
        "the busy file's own key must live on"
    );

    // The file closes (status stays incompletely removed); a retry locks the directory.
    drop(file);
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    let dir_cell = std::sync::Mutex::new(Some(dir));
    let lock_dir = |_: &KeySpec, _: &[InodeId]| {
        dir_cell.lock().unwrap().take();
        Vec::new()
    };
    let r = kr
        .remove(Caller::user(1000), spec, false, &lock_dir)
        .unwrap();
    assert!(!r.files_busy);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    burn_stack();
    let hits = scan(&needles);
    assert!(found(&hits, "locked canary"), "control: canary not found");
    let leaked: Vec<String> = hits
        .iter()
        .filter(|h| !h.piece.contains("canary"))
        .map(|h| format!("{} at {:#x} in {:?}", h.piece, h.addr, h.mapping))
        .collect();
    assert!(
        leaked.is_empty(),
        "secrets left after close and retry: {leaked:#?}"
    );
    drop(kr);
}
