//! Fuzzing of every on-disk parser of the backing store (issue 8), with `proptest` on stable (no
//! nightly compiler here for coverage-guided fuzzing): the volume config, directory metadata, file
//! headers, symlink targets, special-file records, per-extent logs (`ExtentFile::open` over the
//! bytes of a temporary file, which parses the base header, the commit slots, record headers and
//! checkpoint tables) and no-key names against side files.
//!
//! For each: generated valid values round-trip (`parse(to_bytes(x)) == x`), and valid encodings
//! mutated (bit flips, random 64-bit fields, truncation, extension) or arbitrary bytes either parse
//! to a value that round-trips itself or fail with the errno of damage (EUCLEAN; EINVAL or EIO
//! where documented) — never a panic, never a huge allocation (the sparse-file regression below).
//!
//! Cases per property: `FSCRYPTFS_FUZZ_CASES` (default 1000, a CI run of a few seconds in a debug
//! build; the long run recorded in docs/SECURITY.md used 100,000).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::keyring::RemovalMode;
use fscrypt::keysetup::MasterSecret;
use fscrypt::nokey::NokeyName;
use fscrypt::policy::{FsParams, Policy, PolicyV1, PolicyV2};
use fscrypt::{EncryptionMode, Errno};
use fscryptfs::store::config::{ContentsLayout, VolumeConfig, FIRST_INO, INO_LIMIT};
use fscryptfs::store::extent::ExtentFile;
use fscryptfs::store::meta::{DirMeta, FileHeader, SymlinkTarget};
use fscryptfs::store::special::SpecialRecords;
use fscryptfs::store::{fs_params, FILE_HEADER_SIZE};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn cases() -> u32 {
    std::env::var("FSCRYPTFS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn cfg() -> Config {
    Config {
        cases: cases(),
        // Failures are kept as explicit regression tests in this file instead.
        failure_persistence: None,
        ..Config::default()
    }
}

fn fsp() -> FsParams {
    fs_params()
}

// ---- generators ----

fn mode_pair() -> impl Strategy<Value = (EncryptionMode, EncryptionMode)> {
    prop_oneof![
        Just((EncryptionMode::Aes256Xts, EncryptionMode::Aes256Cts)),
        Just((EncryptionMode::Aes128CbcEssiv, EncryptionMode::Aes128Cts)),
        Just((EncryptionMode::Adiantum, EncryptionMode::Adiantum)),
    ]
}

fn policy_v2() -> impl Strategy<Value = Policy> {
    (mode_pair(), 0u8..4, any::<[u8; 16]>()).prop_map(|((c, f), pad, id)| {
        Policy::V2(PolicyV2 {
            contents_mode: c,
            filenames_mode: f,
            flags: pad,
            log2_data_unit_size: 0,
            master_key_identifier: id,
        })
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        policy_v2(),
        (mode_pair(), 0u8..4, any::<[u8; 8]>()).prop_map(|((c, f), pad, d)| {
            Policy::V1(PolicyV1 {
                contents_mode: c,
                filenames_mode: f,
                flags: pad,
                master_key_descriptor: d,
            })
        }),
    ]
}

fn context(p: impl Strategy<Value = Policy>) -> impl Strategy<Value = Context> {
    (p, any::<[u8; 16]>()).prop_map(|(p, n)| Context::new(p, n))
}

fn ino() -> impl Strategy<Value = u64> {
    1u64..INO_LIMIT
}

/// One change to an encoding.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte at (position modulo length).
    Flip(usize, u8),
    /// Overwrite 8 bytes at (position modulo length) with a little-endian number: length and
    /// offset fields get extreme values.
    Word(usize, u64),
    /// Cut to (length modulo current length + 1).
    Truncate(usize),
    /// Append bytes.
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..).prop_map(|(p, x)| Mutation::Flip(p, x)),
        2 => (any::<usize>(), prop_oneof![any::<u64>(), Just(u64::MAX), Just(1 << 32), Just(1 << 40), 0u64..8192])
            .prop_map(|(p, v)| Mutation::Word(p, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

fn apply(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        match m {
            Mutation::Flip(p, x) if !b.is_empty() => {
                let i = p % b.len();
                b[i] ^= x;
            }
            Mutation::Word(p, v) if b.len() >= 8 => {
                let i = (p % (b.len() - 7)) & !7;
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            Mutation::Truncate(n) => {
                let n = n % (b.len() + 1);
                b.truncate(n);
            }
            Mutation::Extend(x) => b.extend_from_slice(x),
            _ => {}
        }
    }
    b
}

/// The errno of stored damage.
#[track_caller]
fn assert_damage(e: &fscrypt::Error) {
    assert_eq!(e.errno(), Errno::UCLEAN, "{e}");
    assert!(!e.message().is_empty());
}

// ---- the volume config ----

fn config() -> impl Strategy<Value = VolumeConfig> {
    (
        any::<[u8; 16]>(),
        any::<bool>(),
        any::<bool>(),
        FIRST_INO..=INO_LIMIT,
        any::<Option<[u8; 16]>>(),
    )
        .prop_map(|(uuid, extent, soft, next_ino, pw_salt)| VolumeConfig {
            format: 1,
            uuid,
            layout: if extent {
                ContentsLayout::Extent
            } else {
                ContentsLayout::PerFile
            },
            removal: if soft {
                RemovalMode::Soft
            } else {
                RemovalMode::DenyWrites
            },
            next_ino,
            pw_salt,
        })
}

fn check_config(text: &str) {
    match VolumeConfig::parse(text, "c") {
        Ok(c) => assert_eq!(VolumeConfig::parse(&c.to_text(), "c").unwrap(), c),
        Err(e) => assert!(
            e.errno() == Errno::UCLEAN || e.errno() == Errno::PROTONOSUPPORT,
            "{e}"
        ),
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn config_round_trips(c in config()) {
        prop_assert_eq!(VolumeConfig::parse(&c.to_text(), "c").unwrap(), c);
    }

    #[test]
    fn config_mutated(c in config(), ms in mutations()) {
        let b = apply(c.to_text().into_bytes(), &ms);
        check_config(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn config_arbitrary(s in "(format|uuid|next-ino|removal|contents-layout| |[0-9a-f]{1,40}|\n|#|[^\n]{0,8}){0,40}") {
        check_config(&s);
    }
}

// ---- directory metadata and file headers ----

fn dir_meta() -> impl Strategy<Value = DirMeta> {
    (ino(), proptest::option::of(context(policy()))).prop_map(|(ino, ctx)| DirMeta { ino, ctx })
}

fn file_header() -> impl Strategy<Value = FileHeader> {
    let max = fs_params().max_file_size;
    prop_oneof![
        (ino(), 0..=max, proptest::option::of(context(policy()))).prop_map(|(ino, size, ctx)| {
            FileHeader {
                layout: ContentsLayout::PerFile,
                ino,
                size,
                ctx,
            }
        }),
        (ino(), 0..=max, context(policy_v2())).prop_map(|(ino, size, c)| FileHeader {
            layout: ContentsLayout::Extent,
            ino,
            size,
            ctx: Some(c),
        }),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn dir_meta_round_trips(d in dir_meta()) {
        prop_assert_eq!(DirMeta::parse(&d.to_bytes(), &fsp(), "d").unwrap(), d);
    }

    #[test]
    fn dir_meta_mutated(d in dir_meta(), ms in mutations()) {
        let b = apply(d.to_bytes().to_vec(), &ms);
        match DirMeta::parse(&b, &fsp(), "d") {
            Ok(x) => prop_assert_eq!(DirMeta::parse(&x.to_bytes(), &fsp(), "d").unwrap(), x),
            Err(e) => assert_damage(&e),
        }
    }

    #[test]
    fn dir_meta_arbitrary(b in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Err(e) = DirMeta::parse(&b, &fsp(), "d") {
            assert_damage(&e);
        }
    }

    #[test]
    fn file_header_round_trips(h in file_header()) {
        prop_assert_eq!(FileHeader::parse(&h.to_bytes(), &fsp(), "f").unwrap(), h);
    }

    #[test]
    fn file_header_mutated(h in file_header(), ms in mutations()) {
        let b = apply(h.to_bytes().to_vec(), &ms);
        match FileHeader::parse(&b, &fsp(), "f") {
            Ok(x) => prop_assert_eq!(FileHeader::parse(&x.to_bytes(), &fsp(), "f").unwrap(), x),
            Err(e) => assert_damage(&e),
        }
    }

    #[test]
    fn file_header_arbitrary(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = FileHeader::parse(&b, &fsp(), "f") {
            assert_damage(&e);
        }
    }
}

// ---- symlink targets ----

fn symlink_target() -> impl Strategy<Value = SymlinkTarget> {
    prop_oneof![
        (ino(), proptest::collection::vec(any::<u8>(), 1..1000))
            .prop_map(|(ino, target)| SymlinkTarget::Plain { ino, target }),
        (
            ino(),
            context(policy()),
            proptest::collection::vec(any::<u8>(), 3..2000)
        )
            .prop_map(|(ino, ctx, data)| SymlinkTarget::Encrypted { ino, ctx, data }),
    ]
}

fn check_symlink(b: &[u8]) {
    match SymlinkTarget::parse(b, &fsp(), "s") {
        Ok(x) => {
            let again = x.encode().expect("a parsed target encodes");
            assert_eq!(SymlinkTarget::parse(&again, &fsp(), "s").unwrap(), x);
        }
        Err(e) => assert_damage(&e),
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn symlink_round_trips(t in symlink_target()) {
        let b = t.encode().unwrap();
        prop_assert_eq!(SymlinkTarget::parse(&b, &fsp(), "s").unwrap(), t);
    }

    #[test]
    fn symlink_mutated(t in symlink_target(), ms in mutations()) {
        check_symlink(&apply(t.encode().unwrap(), &ms));
    }

    #[test]
    fn symlink_arbitrary(
        prefix in prop_oneof![Just(&b"fscryptfs:0:"[..]), Just(&b"fscryptfs:1:"[..]), Just(&b""[..])],
        rest in proptest::collection::vec(any::<u8>(), 0..300),
        b64 in "[A-Za-z0-9_-]{0,400}",
    ) {
        let mut b = prefix.to_vec();
        b.extend_from_slice(&rest);
        check_symlink(&b);
        let mut b = prefix.to_vec();
        b.extend_from_slice(b64.as_bytes());
        check_symlink(&b);
    }
}

// ---- special-file records ----

fn special_records() -> impl Strategy<Value = SpecialRecords> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<u8>(), 1..=255),
            any::<u64>(),
        ),
        0..20,
    )
    .prop_map(|v| {
        let mut r = SpecialRecords::default();
        for (n, i) in v {
            r.set(std::os::unix::ffi::OsStrExt::from_bytes(&n[..]), i);
        }
        r
    })
}

fn check_special(b: &[u8]) {
    match SpecialRecords::parse(b, "r") {
        Ok(x) => {
            // Names parse as recorded (duplicates included); the encoding is canonical.
            assert_eq!(x.to_bytes(), b);
        }
        Err(e) => assert_damage(&e),
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn special_round_trips(r in special_records()) {
        prop_assert_eq!(SpecialRecords::parse(&r.to_bytes(), "r").unwrap(), r);
    }

    #[test]
    fn special_mutated(r in special_records(), ms in mutations()) {
        check_special(&apply(r.to_bytes(), &ms));
    }

    #[test]
    fn special_arbitrary(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_special(&b);
        // With a valid magic, version and checksum, the record walk sees arbitrary bytes.
        let mut v = b"FSCRYPTS\x01".to_vec();
        v.extend_from_slice(&b);
        let sum = fscryptfs::store::checksum(&v);
        v.extend_from_slice(&sum);
        check_special(&v);
    }
}

// ---- no-key names and side files ----

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn nokey_round_trips_and_side_files_match(
        dirhash in any::<[u8; 8]>(),
        ct in proptest::collection::vec(any::<u8>(), 1..=255),
        flip in any::<(usize, u8)>(),
    ) {
        let name = NokeyName::encode(dirhash, &ct);
        let n = NokeyName::decode(&name).unwrap();
        prop_assert_eq!(n.dirhash(), dirhash);
        prop_assert!(n.matches(&ct));
        match n.full_ciphertext() {
            Some(full) => prop_assert_eq!(full, &ct[..]),
            None => prop_assert!(ct.len() > 149),
        }
        // A side file with any byte changed, or cut, does not match its name.
        let mut bad = ct.clone();
        let i = flip.0 % bad.len();
        bad[i] ^= flip.1 | 1;
        prop_assert!(!n.matches(&bad));
        prop_assert!(!n.matches(&ct[..ct.len() - 1]));
    }

    #[test]
    fn nokey_arbitrary(name in "[A-Za-z0-9_+/=.-]{0,300}", side in proptest::collection::vec(any::<u8>(), 0..300)) {
        match NokeyName::decode(&name) {
            Ok(n) => {
                let _ = n.matches(&side);
                let _ = n.full_ciphertext();
            }
            Err(e) => prop_assert_eq!(e.errno(), Errno::NOENT),
        }
    }

    #[test]
    fn nokey_mutated(ct in proptest::collection::vec(any::<u8>(), 1..=255), ms in mutations()) {
        let name = apply(NokeyName::encode([0; 8], &ct).into_bytes(), &ms);
        if let Ok(s) = std::str::from_utf8(&name) {
            match NokeyName::decode(s) {
                Ok(n) => {
                    let _ = n.matches(&ct);
                }
                Err(e) => prop_assert_eq!(e.errno(), Errno::NOENT),
            }
        }
    }
}

// ---- per-extent logs ----

fn master() -> MasterSecret {
    MasterSecret::new_v2(&[7; 64]).unwrap()
}

fn extent_policy() -> Policy {
    Policy::V2(PolicyV2 {
        contents_mode: EncryptionMode::Aes256Xts,
        filenames_mode: EncryptionMode::Aes256Cts,
        flags: 2,
        log2_data_unit_size: 0,
        master_key_identifier: master().identifier().unwrap(),
    })
}

/// Valid per-extent files to mutate: a log of extent, punch and truncate records with commits,
/// and a compacted file (a checkpoint record) with records after it.
fn extent_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let m = master();
        let p = extent_policy();
        let ctx = Context::new(p, [3; 16]);
        let write = |ef: &mut ExtentFile, off: u64, len: usize| {
            let c = ExtentContext::new_random(&p).unwrap();
            let k = ExtentKey::derive(&m, &c).unwrap();
            ef.write_extent(off, &vec![0x5a; len], &c, &k).unwrap();
        };
        let bytes = |f: &File| {
            let mut v = vec![0u8; f.metadata().unwrap().len() as usize];
            f.read_exact_at(&mut v, 0).unwrap();
            v
        };
        let f = tempfile::tempfile().unwrap();
        let mut ef = ExtentFile::create(f.try_clone().unwrap(), 100, &ctx).unwrap();
        write(&mut ef, 0, 5000);
        ef.sync().unwrap();
        write(&mut ef, 8192, 100);
        ef.punch_hole(0, 4096).unwrap();
        ef.sync().unwrap();
        ef.truncate(9000).unwrap();
        let log = bytes(&f);
        let g = tempfile::tempfile().unwrap();
        let mut cf = ef.compact_into(g.try_clone().unwrap()).unwrap();
        write(&mut cf, 20480, 3000);
        cf.sync().unwrap();
        let compacted = bytes(&g);
        vec![log, compacted]
    })
}

/// Opens `b` as a per-extent file and uses everything the offline tools and the daemon use.
fn check_extent_bytes(b: &[u8]) {
    let f = tempfile::tempfile().unwrap();
    f.write_all_at(b, 0).unwrap();
    let p = extent_policy();
    let m = master();
    match ExtentFile::open(f, &p, 4096) {
        Ok(ef) => {
            let _ = ef.records();
            let _ = ef.extents();
            if let Err(e) = ef.check() {
                assert!(e.errno() == Errno::UCLEAN || e.errno() == Errno::IO, "{e}");
            }
            let size = ef.logical_size().min(1 << 20) as usize;
            let mut buf = vec![0u8; size];
            if let Err(e) = ef.read(0, &mut buf, |c| ExtentKey::derive(&m, c)) {
                assert!(e.errno() == Errno::UCLEAN || e.errno() == Errno::IO, "{e}");
            }
        }
        Err(e) => assert!(
            e.errno() == Errno::UCLEAN || e.errno() == Errno::INVAL || e.errno() == Errno::IO,
            "{e}"
        ),
    }
}

/// Mutations of a log, concentrated where its fields are (the header block's first 256 bytes and
/// the first 160 bytes of every 4096-byte block, where record headers and checkpoint tables are).
fn extent_mutation(len: usize) -> impl Strategy<Value = Mutation> {
    let blocks = len.div_ceil(4096).max(1);
    let field = (0..blocks, 0usize..160).prop_map(|(b, o)| b * 4096 + o);
    prop_oneof![
        3 => (field.clone(), 1u8..).prop_map(|(p, x)| Mutation::Flip(p, x)),
        3 => (field, prop_oneof![any::<u64>(), Just(u64::MAX), Just(1 << 32), 0u64..65536])
            .prop_map(|(p, v)| Mutation::Word(p, v)),
        1 => mutation(),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn extent_log_mutated(
        (seed, ms) in (0usize..2).prop_flat_map(|s| {
            let len = extent_seeds()[s].len();
            (Just(s), proptest::collection::vec(extent_mutation(len), 1..4))
        })
    ) {
        check_extent_bytes(&apply(extent_seeds()[seed].clone(), &ms));
    }

    #[test]
    fn extent_log_arbitrary(b in proptest::collection::vec(any::<u8>(), 0..10000)) {
        // Arbitrary bytes after a valid base header (the log itself is arbitrary).
        let mut v = extent_seeds()[0][..FILE_HEADER_SIZE as usize].to_vec();
        v.extend_from_slice(&b);
        check_extent_bytes(&v);
        check_extent_bytes(&b);
    }
}

/// Regression: a checkpoint record claiming a table of a gigabyte in a sparse file was read into
/// one buffer of that size before its checksum was checked (a huge allocation and read from one
/// length field). Now the table is checked and read in bounded pieces: the open fails quickly and
/// small.
#[test]
fn huge_checkpoint_table_in_a_sparse_file_is_not_allocated() {
    let seed = &extent_seeds()[1];
    let mut b = seed[..8192].to_vec();
    // The checkpoint record header at 4096: b (entries) and payload_len claim 1 GiB, checked_len
    // the table's bytes; recompute the header checksum (FORMAT.md layout).
    let h = 4096;
    let entries: u64 = (1u64 << 30) / 80;
    let table = entries * 80;
    let payload = table.next_multiple_of(4096);
    b[h + 32..h + 40].copy_from_slice(&entries.to_le_bytes());
    b[h + 48..h + 56].copy_from_slice(&payload.to_le_bytes());
    b[h + 56..h + 64].copy_from_slice(&table.to_le_bytes());
    let sum = fscryptfs::store::checksum(&b[h..h + 112]);
    b[h + 112..h + 120].copy_from_slice(&sum);
    // No commit: the record is checked as an untrusted one; with a commit it is trusted.
    for commit in [false, true] {
        let mut v = b.clone();
        if !commit {
            v[128..256].fill(0);
        } else {
            // Keep the seed's commit slots, which cover the checkpoint (the log's end moves).
            for slot in [128usize, 192] {
                if &v[slot..slot + 8] == b"FSCXCMT1" {
                    v[slot + 16..slot + 24].copy_from_slice(&(4096 + 4096 + payload).to_le_bytes());
                    let s = fscryptfs::store::checksum(&v[slot..slot + 56]);
                    v[slot + 56..slot + 64].copy_from_slice(&s);
                }
            }
        }
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&v, 0).unwrap();
        f.set_len(4096 + 4096 + payload).unwrap();
        let before = max_rss_kib();
        let t = std::time::Instant::now();
        let r = ExtentFile::open(f, &extent_policy(), 4096);
        let grown = max_rss_kib() - before;
        assert!(
            grown < 128 * 1024,
            "opening grew the peak RSS by {grown} KiB"
        );
        match r {
            // Uncommitted, it is a torn tail (its payload checksum fails): dropped.
            Ok(ef) if !commit => assert!(ef.records().is_empty()),
            Ok(ef) => panic!("opened with {} records", ef.records().len()),
            Err(e) => assert_eq!(e.errno(), Errno::UCLEAN, "{e}"),
        }
        eprintln!("commit {commit}: refused in {:?}", t.elapsed());
    }
}

fn max_rss_kib() -> i64 {
    // SAFETY: rusage is plain data that getrusage fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid for writes.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    ru.ru_maxrss
}
