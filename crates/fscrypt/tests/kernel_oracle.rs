//! The kernel as oracle: the `fscrypt` crate must produce, and decrypt, exactly the bytes Linux does.
//!
//! Each test makes its own ext4 image (`-O encrypt,stable_inodes`) on a loop device, adds keys and
//! sets policies through the real ioctls, writes files, names and symlinks through the mount, then
//! reads the raw result back (FIEMAP and the image file for contents; `debugfs` on the unmounted image
//! for names, symlink targets and contexts) and requires the layer to match byte for byte:
//!
//! 1. key identifiers (FS_IOC_ADD_ENCRYPTION_KEY) == `key_identifier`;
//! 2. contents ciphertext for v1, v2, IV_INO_LBLK_64, IV_INO_LBLK_32, data units 512..4096 and a
//!    1 KiB-block filesystem; holes stay holes;
//! 3. filename ciphertext for every padding and IV layout, names of 1..255 bytes;
//! 4. symlink targets, fast and slow, up to the longest ext4 allows;
//! 5. no-key names listed by the kernel without the key, short and long (> 149 bytes) ciphertexts;
//! 6. policy validation: the same accept/reject and errno as FS_IOC_SET_ENCRYPTION_POLICY;
//! 7. stored contexts parse, round-trip, and carry the nonce FS_IOC_GET_ENCRYPTION_NONCE reports.
//!
//! They need root and loop devices; see `support::prerequisites` for how they skip or fail. The
//! kernel here (6.18) has AES-256-XTS and AES-256-CTS only, so every ciphertext test uses that pair.
//! Random data comes from a seeded generator whose seed each test prints
//! (`FSCRYPTFS_ORACLE_SEED` replays it).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirEntryExt;
use std::path::PathBuf;

use fscrypt::context::Context;
use fscrypt::keysetup::{key_identifier, InodeKey, InodeKind, InodeParams, MasterSecret};
use fscrypt::nokey::NokeyName;
use fscrypt::policy::{FsParams, Policy};

use support::ext4::{Ext4Config, Ext4Image};
use support::ioctl::{self, KeySpec};
use support::rng::Rng;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// AES-256-XTS, the only contents mode of the test kernel.
const XTS: u8 = 1;
/// AES-256-CTS, the only filenames mode of the test kernel.
const CTS: u8 = 4;

const FLAG_IV_INO_LBLK_64: u8 = 0x08;
const FLAG_IV_INO_LBLK_32: u8 = 0x10;

/// Which policy version and IV layout a directory uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// v1 policy, AES-128-ECB KDF, key added by descriptor.
    V1,
    /// v2 policy, per-file HKDF keys.
    V2,
    /// v2 with IV_INO_LBLK_64.
    Lblk64,
    /// v2 with IV_INO_LBLK_32.
    Lblk32,
}

impl Layout {
    fn iv_flag(self) -> u8 {
        match self {
            Layout::V1 | Layout::V2 => 0,
            Layout::Lblk64 => FLAG_IV_INO_LBLK_64,
            Layout::Lblk32 => FLAG_IV_INO_LBLK_32,
        }
    }
}

/// One v1 and one v2 master key, both added to the filesystem.
struct Keys {
    v1_raw: Vec<u8>,
    v1_descriptor: [u8; 8],
    v2_raw: Vec<u8>,
    v2_identifier: [u8; 16],
}

impl Keys {
    /// Adds a random 64-byte v2 key and a random 64-byte v1 key (by a random descriptor).
    fn add(fs: &Ext4Image, rng: &mut Rng) -> Keys {
        let root = fs.root();
        let v2_raw = rng.bytes(64);
        let v2_identifier = ioctl::add_key_v2(&root, &v2_raw).expect("add v2 key");
        let v1_raw = rng.bytes(64);
        let v1_descriptor: [u8; 8] = rng.array();
        ioctl::add_key_v1(&root, v1_descriptor, &v1_raw).expect("add v1 key by descriptor");
        Keys {
            v1_raw,
            v1_descriptor,
            v2_raw,
            v2_identifier,
        }
    }

    /// The layer's master secret for `layout`.
    fn master(&self, layout: Layout) -> MasterSecret {
        match layout {
            Layout::V1 => MasterSecret::new_v1(&self.v1_raw).expect("MasterSecret::new_v1"),
            _ => MasterSecret::new_v2(&self.v2_raw).expect("MasterSecret::new_v2"),
        }
    }

    /// The policy bytes for `layout` with filename padding `pad` (0..3) and `log2_dus` (v2 only).
    fn policy(&self, layout: Layout, pad: u8, log2_dus: u8) -> Vec<u8> {
        match layout {
            Layout::V1 => v1_policy(XTS, CTS, pad, self.v1_descriptor),
            _ => v2_policy(
                XTS,
                CTS,
                pad | layout.iv_flag(),
                log2_dus,
                self.v2_identifier,
            ),
        }
    }
}

/// `struct fscrypt_policy_v1`.
fn v1_policy(contents: u8, filenames: u8, flags: u8, descriptor: [u8; 8]) -> Vec<u8> {
    let mut b = vec![0, contents, filenames, flags];
    b.extend_from_slice(&descriptor);
    b
}

/// `struct fscrypt_policy_v2`.
fn v2_policy(contents: u8, filenames: u8, flags: u8, log2_dus: u8, id: [u8; 16]) -> Vec<u8> {
    let mut b = vec![2, contents, filenames, flags, log2_dus, 0, 0, 0];
    b.extend_from_slice(&id);
    b
}

/// The layer's view of the filesystem under test.
fn fs_params(fs: &Ext4Image, stable_inodes: bool) -> FsParams {
    FsParams::ext4(fs.block_bits(), stable_inodes)
}

/// An encrypted directory made through the mount.
struct EncDir {
    path: PathBuf,
    ino: u64,
    policy: Policy,
    policy_bytes: Vec<u8>,
    nonce: [u8; 16],
}

impl EncDir {
    /// mkdir + FS_IOC_SET_ENCRYPTION_POLICY (must succeed) + the nonce and inode number.
    fn create(fs: &Ext4Image, name: &str, policy_bytes: Vec<u8>, fsp: &FsParams) -> EncDir {
        let path = fs.path(name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let dir = ioctl::open_dir(&path).expect("open dir");
        ioctl::set_policy(&dir, &policy_bytes).unwrap_or_else(|errno| {
            panic!(
                "FS_IOC_SET_ENCRYPTION_POLICY {} on {name}: errno {errno}",
                hex::encode(&policy_bytes)
            )
        });
        assert_eq!(
            ioctl::get_policy_ex(&dir).expect("get policy ex"),
            policy_bytes,
            "GET_ENCRYPTION_POLICY_EX of {name} differs from what was set"
        );
        let nonce = ioctl::get_nonce(&dir).expect("get dir nonce");
        let policy = Policy::parse(&policy_bytes, fsp).unwrap_or_else(|e| {
            panic!(
                "Policy::parse rejects {} that the kernel accepted: {e}",
                hex::encode(&policy_bytes)
            )
        });
        EncDir {
            ino: ioctl::inode_number(&path),
            path,
            policy,
            policy_bytes,
            nonce,
        }
    }

    /// The directory's own (filenames) key.
    fn key(&self, master: &MasterSecret, fs: &Ext4Image, fsp: &FsParams) -> InodeKey {
        inode_key(
            master,
            self.policy,
            self.nonce,
            InodeKind::Directory,
            self.ino,
            fs,
            fsp,
        )
    }
}

/// `InodeKey::setup` for an inode with `policy` and `nonce`.
fn inode_key(
    master: &MasterSecret,
    policy: Policy,
    nonce: [u8; 16],
    kind: InodeKind,
    ino: u64,
    fs: &Ext4Image,
    fsp: &FsParams,
) -> InodeKey {
    let ctx = Context::new(policy, nonce);
    let params = InodeParams {
        kind,
        ino,
        fs_uuid: fs.uuid(),
    };
    InodeKey::setup(master, &ctx, &params, fsp)
        .unwrap_or_else(|e| panic!("InodeKey::setup({kind:?}, ino {ino}, {policy:?}): {e}"))
}

/// Collects mismatches so one run reports all of them, not only the first.
struct Failures {
    test: &'static str,
    list: Vec<String>,
}

impl Failures {
    fn new(test: &'static str) -> Self {
        Failures {
            test,
            list: Vec::new(),
        }
    }

    fn push(&mut self, msg: String) {
        self.list.push(msg);
    }

    fn check_eq(&mut self, what: impl FnOnce() -> String, got: &[u8], want: &[u8]) {
        if got != want {
            self.push(format!("{}: {}", what(), diff(got, want)));
        }
    }

    fn finish(self) {
        if self.list.is_empty() {
            return;
        }
        let shown: Vec<&str> = self.list.iter().take(40).map(|s| s.as_str()).collect();
        panic!(
            "{}: {} mismatch(es) between the layer and the kernel:\n  {}{}",
            self.test,
            self.list.len(),
            shown.join("\n  "),
            if self.list.len() > shown.len() {
                format!("\n  ... and {} more", self.list.len() - shown.len())
            } else {
                String::new()
            }
        );
    }
}

/// A short description of how two byte strings differ.
fn diff(got: &[u8], want: &[u8]) -> String {
    if got.len() != want.len() {
        return format!(
            "length {} (layer) != {} (kernel); layer {}..., kernel {}...",
            got.len(),
            want.len(),
            hex::encode(&got[..got.len().min(24)]),
            hex::encode(&want[..want.len().min(24)])
        );
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
    let end = (first + 16).min(got.len());
    format!(
        "first difference at byte {first} of {}: layer {} kernel {}",
        got.len(),
        hex::encode(&got[first..end]),
        hex::encode(&want[first..end])
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Key identifiers
// ---------------------------------------------------------------------------------------------

/// The identifier the kernel computes for a v2 key (HKDF context 1) equals `key_identifier`, for
/// every legal key size; sizes 15 and 65 are refused by both with EINVAL.
#[test]
fn key_identifiers_match_kernel() {
    const TEST: &str = "key_identifiers_match_kernel";
    if !support::prerequisites(TEST) {
        return;
    }
    let mut rng = Rng::for_test(TEST);
    let fs = Ext4Image::create(TEST, Ext4Config::default());
    let root = fs.root();
    let mut failures = Failures::new(TEST);

    // The published value (fscrypt-spec.md §3.1).
    let known: Vec<u8> = (0u8..64).collect();
    let kernel = ioctl::add_key_v2(&root, &known).expect("add key 00..3f");
    assert_eq!(hex::encode(kernel), "8699c2c53707405da5aba5ae4d8583c0");
    assert_eq!(
        hex::encode(key_identifier(&known).expect("key_identifier")),
        "8699c2c53707405da5aba5ae4d8583c0"
    );

    let mut sizes: Vec<usize> = vec![16, 17, 31, 32, 33, 47, 48, 63, 64];
    sizes.extend((0..16).map(|_| rng.range(16, 64) as usize));
    for size in sizes {
        let raw = rng.bytes(size);
        let kernel = ioctl::add_key_v2(&root, &raw)
            .unwrap_or_else(|e| panic!("add {size}-byte key {}: {e}", hex::encode(&raw)));
        let layer = key_identifier(&raw).expect("key_identifier");
        failures.check_eq(
            || format!("identifier of {size}-byte key {}", hex::encode(&raw)),
            &layer,
            &kernel,
        );
        let master = MasterSecret::new_v2(&raw).expect("MasterSecret::new_v2");
        assert_eq!(master.identifier(), Some(kernel));
        let status = ioctl::key_status(&root, KeySpec::Identifier(kernel)).expect("key status");
        assert_eq!(status.status, ioctl::KEY_STATUS_PRESENT, "{status:?}");
    }

    for size in [0usize, 1, 15, 65, 100] {
        let raw = rng.bytes(size);
        let kernel = ioctl::add_key_v2(&root, &raw)
            .map(|_| ())
            .map_err(|e| e.raw_os_error().unwrap_or(-1));
        let layer = key_identifier(&raw)
            .map(|_| ())
            .map_err(|e| e.raw_os_error());
        if kernel != layer {
            failures.push(format!(
                "{size}-byte key: kernel {kernel:?}, key_identifier {layer:?}"
            ));
        }
        let layer = MasterSecret::new_v2(&raw)
            .map(|_| ())
            .map_err(|e| e.raw_os_error());
        if kernel != layer {
            failures.push(format!(
                "{size}-byte key: kernel {kernel:?}, MasterSecret::new_v2 {layer:?}"
            ));
        }
    }
    failures.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. Contents
// ---------------------------------------------------------------------------------------------

/// One directory of contents test files: a policy configuration.
#[derive(Clone, Copy, Debug)]
struct ContentsConfig {
    label: &'static str,
    layout: Layout,
    log2_dus: u8,
}

/// A file written through the mount, and what FIEMAP said about it.
struct WrittenFile {
    label: String,
    ino: u64,
    nonce: [u8; 16],
    policy: Policy,
    layout: Layout,
    /// The logical contents (holes as zeros), exactly `size` bytes.
    plaintext: Vec<u8>,
    /// The byte ranges actually written (start, len).
    written: Vec<(u64, u64)>,
    extents: Vec<ioctl::Extent>,
}

/// Writes the contents test files of one configuration into a fresh encrypted directory.
fn write_contents_files(
    fs: &Ext4Image,
    keys: &Keys,
    cfg: ContentsConfig,
    fsp: &FsParams,
    rng: &mut Rng,
) -> Vec<WrittenFile> {
    let bs = fs.block_size() as u64;
    let dir = EncDir::create(fs, cfg.label, keys.policy(cfg.layout, 3, cfg.log2_dus), fsp);
    // (name, [(offset, len)]): sizes from fstests and around block and data-unit boundaries, a
    // multi-block file, and a file with a hole in the middle made by seeking.
    let specs: Vec<(String, Vec<(u64, u64)>)> = vec![
        ("empty".into(), vec![]),
        ("one".into(), vec![(0, 1)]),
        ("s511".into(), vec![(0, 511)]),
        ("s4095".into(), vec![(0, 4095)]),
        ("s4096".into(), vec![(0, 4096)]),
        ("s4097".into(), vec![(0, 4097)]),
        ("s8292".into(), vec![(0, 8292)]),
        ("multi".into(), vec![(0, 24 * bs + 1234)]),
        (
            "hole".into(),
            vec![(0, bs + 100), (5 * bs + 17, 2 * bs + 3)],
        ),
        ("big".into(), vec![(0, (4 << 20) + 777)]),
    ];
    let mut out = Vec::new();
    for (name, ranges) in specs {
        let path = dir.path.join(&name);
        let size = ranges.iter().map(|&(o, l)| o + l).max().unwrap_or(0);
        let mut plaintext = vec![0u8; size as usize];
        let mut f = File::create(&path).unwrap_or_else(|e| panic!("create {name}: {e}"));
        for &(off, len) in &ranges {
            let data = rng.bytes(len as usize);
            plaintext[off as usize..(off + len) as usize].copy_from_slice(&data);
            f.seek(SeekFrom::Start(off)).expect("seek");
            f.write_all(&data).expect("write");
        }
        f.sync_all().expect("fsync");
        let extents = ioctl::fiemap(&f).expect("FIEMAP");
        let nonce = ioctl::get_nonce(&f).expect("file nonce");
        drop(f);
        out.push(WrittenFile {
            label: format!("{}/{name} ({size} bytes)", cfg.label),
            ino: ioctl::inode_number(&path),
            nonce,
            policy: dir.policy,
            layout: cfg.layout,
            plaintext,
            written: ranges,
            extents,
        });
    }
    out
}

/// Checks one file's raw blocks (read from the unmounted image) against the layer.
fn verify_contents(
    fs: &Ext4Image,
    keys: &Keys,
    fsp: &FsParams,
    file: &WrittenFile,
    failures: &mut Failures,
) {
    let bs = fs.block_size() as u64;
    let master = keys.master(file.layout);
    let key = inode_key(
        &master,
        file.policy,
        file.nonce,
        InodeKind::Regular,
        file.ino,
        fs,
        fsp,
    );
    let du = key.data_unit_size() as u64;
    let expected_du = 1u64 << file.policy.data_unit_bits(fsp);
    if du != expected_du {
        failures.push(format!(
            "{}: data_unit_size() {du}, policy says {expected_du}",
            file.label
        ));
        return;
    }

    // Logical block -> physical block, from FIEMAP.
    let mut map = BTreeMap::new();
    for e in &file.extents {
        let bad = ioctl::FIEMAP_EXTENT_UNKNOWN
            | ioctl::FIEMAP_EXTENT_DELALLOC
            | ioctl::FIEMAP_EXTENT_UNWRITTEN
            | ioctl::FIEMAP_EXTENT_DATA_INLINE
            | ioctl::FIEMAP_EXTENT_NOT_ALIGNED;
        assert_eq!(e.flags & bad, 0, "{}: unexpected extent {e:?}", file.label);
        assert!(
            e.logical % bs == 0 && e.physical % bs == 0 && e.length % bs == 0,
            "{}: unaligned extent {e:?}",
            file.label
        );
        for i in 0..e.length / bs {
            map.insert(e.logical / bs + i, e.physical / bs + i);
        }
    }
    let mut expected_blocks = BTreeSet::new();
    for &(off, len) in &file.written {
        if len > 0 {
            expected_blocks.extend(off / bs..=(off + len - 1) / bs);
        }
    }
    let allocated: BTreeSet<u64> = map.keys().copied().collect();
    if allocated != expected_blocks {
        failures.push(format!(
            "{}: kernel allocated blocks {allocated:?}, expected {expected_blocks:?} (holes must \
             stay holes)",
            file.label
        ));
    }

    // The harness's two ways of finding the blocks must agree: FIEMAP through the mount and
    // `debugfs blocks` on the unmounted image.
    let debugfs_blocks = fs.blocks(file.ino);
    let fiemap_blocks: Vec<u64> = map.values().copied().collect();
    assert_eq!(
        fiemap_blocks, debugfs_blocks,
        "{}: FIEMAP and debugfs disagree on the file's blocks",
        file.label
    );

    for e in &file.extents {
        let raw_extent = fs.read_image(e.physical, e.length as usize);
        for (k, raw) in raw_extent.chunks(du as usize).enumerate() {
            let off = e.logical + k as u64 * du;
            let index = off / du;
            let mut plain = vec![0u8; du as usize];
            let start = (off as usize).min(file.plaintext.len());
            let end = ((off + du) as usize).min(file.plaintext.len());
            plain[..end - start].copy_from_slice(&file.plaintext[start..end]);

            let mut enc = plain.clone();
            match key.encrypt_data_unit(index, &mut enc) {
                Ok(()) => failures.check_eq(
                    || format!("{}: encrypt data unit {index} (du {du})", file.label),
                    &enc,
                    raw,
                ),
                Err(e) => failures.push(format!(
                    "{}: encrypt_data_unit({index}) failed: {e}",
                    file.label
                )),
            }
            let mut dec = raw.to_vec();
            match key.decrypt_data_unit(index, &mut dec) {
                Ok(()) => failures.check_eq(
                    || format!("{}: decrypt data unit {index} (du {du})", file.label),
                    &dec,
                    &plain,
                ),
                Err(e) => failures.push(format!(
                    "{}: decrypt_data_unit({index}) failed: {e}",
                    file.label
                )),
            }
        }
    }
}

/// Makes a filesystem, writes the files of every configuration, unmounts, and checks them all.
fn contents_test(test: &'static str, block_size: u32, configs: &[ContentsConfig]) {
    if !support::prerequisites(test) {
        return;
    }
    let mut rng = Rng::for_test(test);
    let mut fs = Ext4Image::create(test, Ext4Config::with_block_size(block_size));
    let fsp = fs_params(&fs, true);
    let keys = Keys::add(&fs, &mut rng);
    let mut files = Vec::new();
    for &cfg in configs {
        files.extend(write_contents_files(&fs, &keys, cfg, &fsp, &mut rng));
    }
    // Everything is on disk after the unmount; read the image file only then.
    fs.unmount();
    let mut failures = Failures::new(test);
    for file in &files {
        verify_contents(&fs, &keys, &fsp, file, &mut failures);
    }
    failures.finish();
}

#[test]
fn contents_v2_default() {
    contents_test(
        "contents_v2_default",
        4096,
        &[ContentsConfig {
            label: "v2",
            layout: Layout::V2,
            log2_dus: 0,
        }],
    );
}

#[test]
fn contents_v2_iv_ino_lblk_64() {
    contents_test(
        "contents_v2_iv_ino_lblk_64",
        4096,
        &[ContentsConfig {
            label: "lblk64",
            layout: Layout::Lblk64,
            log2_dus: 0,
        }],
    );
}

#[test]
fn contents_v2_iv_ino_lblk_32() {
    contents_test(
        "contents_v2_iv_ino_lblk_32",
        4096,
        &[ContentsConfig {
            label: "lblk32",
            layout: Layout::Lblk32,
            log2_dus: 0,
        }],
    );
}

#[test]
fn contents_v1() {
    contents_test(
        "contents_v1",
        4096,
        &[ContentsConfig {
            label: "v1",
            layout: Layout::V1,
            log2_dus: 0,
        }],
    );
}

/// `log2_data_unit_size` 9, 10, 11 and 12 on a 4 KiB-block filesystem.
#[test]
fn contents_v2_data_unit_sizes() {
    contents_test(
        "contents_v2_data_unit_sizes",
        4096,
        &[
            ContentsConfig {
                label: "du512",
                layout: Layout::V2,
                log2_dus: 9,
            },
            ContentsConfig {
                label: "du1024",
                layout: Layout::V2,
                log2_dus: 10,
            },
            ContentsConfig {
                label: "du2048",
                layout: Layout::V2,
                log2_dus: 11,
            },
            ContentsConfig {
                label: "du4096",
                layout: Layout::V2,
                log2_dus: 12,
            },
        ],
    );
}

/// A 1 KiB-block filesystem: default data units (1024), 512-byte units, and IV_INO_LBLK_64.
#[test]
fn contents_1k_block_filesystem() {
    contents_test(
        "contents_1k_block_filesystem",
        1024,
        &[
            ContentsConfig {
                label: "v2",
                layout: Layout::V2,
                log2_dus: 0,
            },
            ContentsConfig {
                label: "du512",
                layout: Layout::V2,
                log2_dus: 9,
            },
            ContentsConfig {
                label: "lblk64",
                layout: Layout::Lblk64,
                log2_dus: 0,
            },
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// 3. File names
// ---------------------------------------------------------------------------------------------

/// Name lengths from fstests plus the boundaries of padding, 16 bytes, 149 bytes and NAME_MAX.
const NAME_LENGTHS: &[usize] = &[
    1, 3, 15, 16, 17, 31, 32, 33, 100, 148, 149, 150, 200, 254, 255,
];

/// For every padding (flags 0..3) of `layout`: names of [`NAME_LENGTHS`] created through the mount;
/// their on-disk ciphertext must equal `encrypt_filename` and decrypt back.
fn filenames_test(test: &'static str, layout: Layout) {
    if !support::prerequisites(test) {
        return;
    }
    let mut rng = Rng::for_test(test);
    let mut fs = Ext4Image::create(test, Ext4Config::default());
    let fsp = fs_params(&fs, true);
    let keys = Keys::add(&fs, &mut rng);
    let mut dirs = Vec::new();
    for pad in 0u8..4 {
        let dir = EncDir::create(&fs, &format!("pad{pad}"), keys.policy(layout, pad, 0), &fsp);
        let mut names = BTreeMap::new();
        for &len in NAME_LENGTHS {
            let name = rng.alnum(len);
            let path = dir.path.join(&name);
            File::create(&path).unwrap_or_else(|e| panic!("create {len}-byte name: {e}"));
            names.insert(ioctl::inode_number(&path), name);
        }
        dirs.push((pad, dir, names));
    }
    fs.unmount();

    let master = keys.master(layout);
    let mut failures = Failures::new(test);
    for (pad, dir, names) in &dirs {
        let key = dir.key(&master, &fs, &fsp);
        let on_disk: BTreeMap<u64, Vec<u8>> = fs
            .dir_entries(dir.ino)
            .into_iter()
            .map(|e| (e.ino, e.name))
            .collect();
        assert_eq!(
            on_disk.keys().collect::<Vec<_>>(),
            names.keys().collect::<Vec<_>>(),
            "{test}: pad{pad}: debugfs lists other inodes than were created"
        );
        for (ino, name) in names {
            let disk = &on_disk[ino];
            let what = || format!("{layout:?} pad{pad}: {}-byte name {name}", name.len());
            match key.encrypt_filename(name.as_bytes()) {
                Ok(ct) => failures.check_eq(|| format!("{} encrypt", what()), &ct, disk),
                Err(e) => failures.push(format!("{}: encrypt_filename failed: {e}", what())),
            }
            match key.decrypt_filename(disk) {
                Ok(pt) => failures.check_eq(|| format!("{} decrypt", what()), &pt, name.as_bytes()),
                Err(e) => failures.push(format!("{}: decrypt_filename failed: {e}", what())),
            }
        }
    }
    failures.finish();
}

#[test]
fn filenames_v1() {
    filenames_test("filenames_v1", Layout::V1);
}

#[test]
fn filenames_v2() {
    filenames_test("filenames_v2", Layout::V2);
}

#[test]
fn filenames_v2_iv_ino_lblk_64() {
    filenames_test("filenames_v2_iv_ino_lblk_64", Layout::Lblk64);
}

#[test]
fn filenames_v2_iv_ino_lblk_32() {
    filenames_test("filenames_v2_iv_ino_lblk_32", Layout::Lblk32);
}

// ---------------------------------------------------------------------------------------------
// 4. Symlinks
// ---------------------------------------------------------------------------------------------

/// Symlink targets, fast (inside the inode) and slow (in a block), in every IV layout and two
/// paddings, up to 4093 bytes (the longest an encrypted symlink can be on 4 KiB ext4; 4080 bytes
/// pads to 4096 and is capped at 4093). The stored `fscrypt_symlink_data` (le16 length ||
/// ciphertext, then a NUL that ext4 does not count in i_size) must equal `encrypt_symlink` and
/// decrypt back; a 4094-byte target fails with ENAMETOOLONG in both.
#[test]
fn symlinks_match_kernel() {
    const TEST: &str = "symlinks_match_kernel";
    if !support::prerequisites(TEST) {
        return;
    }
    let mut rng = Rng::for_test(TEST);
    let mut fs = Ext4Image::create(TEST, Ext4Config::default());
    let fsp = fs_params(&fs, true);
    let keys = Keys::add(&fs, &mut rng);
    let lengths = [1usize, 12, 16, 17, 40, 41, 57, 100, 1000, 3000, 4080, 4093];
    let configs = [
        (Layout::V2, 0u8),
        (Layout::V2, 3),
        (Layout::V1, 0),
        (Layout::Lblk64, 2),
        (Layout::Lblk32, 1),
    ];
    let mut links = Vec::new();
    let mut failures = Failures::new(TEST);
    for (i, &(layout, pad)) in configs.iter().enumerate() {
        let dir = EncDir::create(&fs, &format!("d{i}"), keys.policy(layout, pad, 0), &fsp);
        for &len in &lengths {
            // Random path-like targets: [a-zA-Z0-9] with a few slashes.
            let mut target = rng.alnum(len).into_bytes();
            for _ in 0..len / 20 {
                let at = rng.range(0, len as u64 - 1) as usize;
                target[at] = b'/';
            }
            let path = dir.path.join(format!("link{len}"));
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)
                .unwrap_or_else(|e| panic!("symlink of {len} bytes: {e}"));
            assert_eq!(
                fs::read_link(&path)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes(),
                &target[..]
            );
            links.push((
                layout,
                pad,
                dir.policy,
                dir.policy_bytes.clone(),
                ioctl::inode_number(&path),
                target,
            ));
        }
        // One byte over the limit: the kernel says ENAMETOOLONG; so must the layer.
        let too_long = rng.alnum(4094);
        let kernel = std::os::unix::fs::symlink(&too_long, dir.path.join("toolong"))
            .map_err(|e| e.raw_os_error().unwrap_or(-1));
        if kernel != Err(libc::ENAMETOOLONG) {
            failures.push(format!(
                "{layout:?}: kernel gave {kernel:?} for a 4094-byte target"
            ));
        }
        let master = keys.master(layout);
        // Any inode number will do for an error check; use the directory's.
        let key = inode_key(
            &master,
            dir.policy,
            [0; 16],
            InodeKind::Symlink,
            dir.ino,
            &fs,
            &fsp,
        );
        match key.encrypt_symlink(too_long.as_bytes()) {
            Err(e) if e.raw_os_error() == libc::ENAMETOOLONG => {}
            other => failures.push(format!(
                "{layout:?} pad{pad}: encrypt_symlink of 4094 bytes gave {:?}, kernel ENAMETOOLONG",
                other.map(|v| v.len())
            )),
        }
    }
    fs.unmount();

    for (layout, pad, policy, policy_bytes, ino, target) in &links {
        let what = || format!("{layout:?} pad{pad}: {}-byte target", target.len());
        // The symlink's nonce: the last 16 bytes of its stored context (a symlink cannot be opened
        // for FS_IOC_GET_ENCRYPTION_NONCE). The rest of the context is the inherited policy.
        let ctx = fs.encryption_context(*ino);
        let nonce: [u8; 16] = ctx[ctx.len() - 16..].try_into().unwrap();
        assert_eq!(&ctx[1..ctx.len() - 16], &policy_bytes[1..], "{}", what());
        let master = keys.master(*layout);
        let key = inode_key(&master, *policy, nonce, InodeKind::Symlink, *ino, &fs, &fsp);
        let stored = fs.symlink_data(*ino);
        let kind = if stored.fast { "fast" } else { "slow" };
        if stored.terminator != Some(0) {
            failures.push(format!(
                "{} ({kind}): ext4 did not store a NUL after the data ({:?})",
                what(),
                stored.terminator
            ));
        }
        match key.encrypt_symlink(target) {
            Ok(disk) => failures.check_eq(
                || format!("{} ({kind}) encrypt", what()),
                &disk,
                &stored.data,
            ),
            Err(e) => failures.push(format!("{}: encrypt_symlink failed: {e}", what())),
        }
        match key.decrypt_symlink(&stored.data) {
            Ok(pt) => failures.check_eq(|| format!("{} ({kind}) decrypt", what()), &pt, target),
            Err(e) => failures.push(format!("{}: decrypt_symlink failed: {e}", what())),
        }
    }
    failures.finish();
}

// ---------------------------------------------------------------------------------------------
// 5. No-key names
// ---------------------------------------------------------------------------------------------

/// After the keys are removed (and the dentry cache dropped), listing through the mount gives the
/// kernel's no-key names. For each: decoding it gives the dirhash, and `NokeyName::encode(dirhash,
/// on-disk ciphertext)` must reproduce it exactly, `decode(..).matches(ciphertext)` must hold, and
/// it must not match another entry's ciphertext. Ciphertexts from 16 to 255 bytes, both sides of 149.
/// readlink of a locked symlink gives `encode([0; 8], its ciphertext)`.
#[test]
fn nokey_names_match_kernel() {
    const TEST: &str = "nokey_names_match_kernel";
    if !support::prerequisites(TEST) {
        return;
    }
    let mut rng = Rng::for_test(TEST);
    let mut fs = Ext4Image::create(TEST, Ext4Config::default());
    let fsp = fs_params(&fs, true);
    let keys = Keys::add(&fs, &mut rng);

    // (layout, pad, name lengths). PAD_4 gives ciphertexts of 148 and 152 bytes around the 149
    // boundary; PAD_32 gives 128, 160, 224 and 255.
    let configs: [(Layout, u8, &[usize]); 4] = [
        (Layout::V2, 3, &[1, 16, 100, 128, 129, 149, 150, 200, 255]),
        (Layout::V2, 0, &[16, 145, 148, 149, 152, 153, 254]),
        (Layout::V1, 1, &[1, 40, 140, 150, 255]),
        (Layout::Lblk64, 2, &[5, 149, 150, 255]),
    ];
    // (dir index, ino) -> what was created there.
    let mut dirs = Vec::new();
    let mut symlinks = Vec::new();
    for (i, &(layout, pad, lengths)) in configs.iter().enumerate() {
        let dir = EncDir::create(&fs, &format!("d{i}"), keys.policy(layout, pad, 0), &fsp);
        let mut created = BTreeSet::new();
        for &len in lengths {
            let path = dir.path.join(rng.alnum(len));
            fs::write(&path, b"x").expect("create file");
            created.insert(ioctl::inode_number(&path));
        }
        let sub = dir.path.join(rng.alnum(30));
        fs::create_dir(&sub).expect("mkdir in encrypted dir");
        created.insert(ioctl::inode_number(&sub));
        for len in [10usize, 1000] {
            let path = dir.path.join(format!("link{len}"));
            std::os::unix::fs::symlink(rng.alnum(len), &path).expect("symlink");
            let ino = ioctl::inode_number(&path);
            created.insert(ino);
            symlinks.push((i, ino));
        }
        dirs.push((layout, pad, dir, created));
    }

    // Remove both keys; nothing is open, so removal is complete.
    let root = fs.root();
    for spec in [
        KeySpec::Identifier(keys.v2_identifier),
        KeySpec::Descriptor(keys.v1_descriptor),
    ] {
        let flags = ioctl::remove_key(&root, spec, false).expect("remove key");
        assert_eq!(
            flags, 0,
            "removal of {spec:?} reported status flags {flags:#x}"
        );
        let status = ioctl::key_status(&root, spec).expect("key status");
        assert_eq!(
            status.status,
            ioctl::KEY_STATUS_ABSENT,
            "{spec:?}: {status:?}"
        );
    }
    drop(root);
    ioctl::drop_caches(2);

    // List every directory without the key: ino -> no-key name; readlink the symlinks.
    let mut listed: Vec<BTreeMap<u64, String>> = Vec::new();
    for (_, _, dir, created) in &dirs {
        let mut names = BTreeMap::new();
        for entry in fs::read_dir(&dir.path).expect("read_dir without key") {
            let entry = entry.expect("dir entry");
            let name = entry.file_name();
            let name = std::str::from_utf8(name.as_bytes())
                .unwrap_or_else(|_| panic!("no-key name is not ASCII: {name:?}"))
                .to_string();
            names.insert(entry.ino(), name);
        }
        assert_eq!(
            names.keys().copied().collect::<BTreeSet<_>>(),
            *created,
            "listing {} without the key shows other inodes",
            dir.path.display()
        );
        listed.push(names);
    }
    let mut link_targets = BTreeMap::new();
    for &(i, ino) in &symlinks {
        let name = &listed[i][&ino];
        let target = fs::read_link(dirs[i].2.path.join(name)).expect("readlink without key");
        link_targets.insert(ino, target.into_os_string().into_string().expect("ASCII"));
    }
    fs.unmount();

    let mut failures = Failures::new(TEST);
    let mut lengths_seen = BTreeSet::new();
    for ((layout, pad, dir, _), names) in dirs.iter().zip(&listed) {
        let disk: BTreeMap<u64, Vec<u8>> = fs
            .dir_entries(dir.ino)
            .into_iter()
            .map(|e| (e.ino, e.name))
            .collect();
        for (ino, kernel_name) in names {
            let ct = &disk[ino];
            lengths_seen.insert(ct.len());
            let what = format!("{layout:?} pad{pad}: {}-byte ciphertext", ct.len());
            let decoded = match NokeyName::decode(kernel_name) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{what}: decode({kernel_name}) failed: {e}"));
                    continue;
                }
            };
            let encoded = NokeyName::encode(decoded.dirhash(), ct);
            if encoded != *kernel_name {
                failures.push(format!(
                    "{what}: encode gave {encoded}, kernel listed {kernel_name}"
                ));
            }
            if !decoded.matches(ct) {
                failures.push(format!(
                    "{what}: decode({kernel_name}) does not match its entry"
                ));
            }
            for (other, other_ct) in &disk {
                if other != ino && decoded.matches(other_ct) {
                    failures.push(format!(
                        "{what}: no-key name of inode {ino} also matches inode {other}"
                    ));
                }
            }
        }
    }
    for (ino, kernel_target) in &link_targets {
        let stored = fs.symlink_data(*ino);
        let ct = &stored.data[2..];
        let encoded = NokeyName::encode([0; 8], ct);
        if encoded != *kernel_target {
            failures.push(format!(
                "locked symlink {ino} ({}-byte ciphertext): encode([0; 8], ct) = {encoded}, \
                 readlink gave {kernel_target}",
                ct.len()
            ));
        }
    }
    assert!(
        lengths_seen.iter().any(|&l| l <= 149) && lengths_seen.iter().any(|&l| l > 149),
        "{TEST}: ciphertext lengths {lengths_seen:?} do not cover both sides of 149"
    );
    failures.finish();
}

// ---------------------------------------------------------------------------------------------
// 6. Policy validation
// ---------------------------------------------------------------------------------------------

/// The policies to try: every mode pair, every flag byte with every data-unit size, reserved bytes,
/// unknown versions. v2 ones name `id`, a key the caller has added (so the kernel's answer is about
/// the policy, not ENOKEY).
fn policy_cases(id: [u8; 16], descriptor: [u8; 8]) -> Vec<(String, Vec<u8>)> {
    let mut cases = Vec::new();
    let extra_flags = [0x20u8, 0x40, 0x80, 0xff];
    let all_flags: Vec<u8> = (0u8..0x20).chain(extra_flags).collect();
    for c in 0u8..12 {
        for f in 0u8..12 {
            cases.push((
                format!("v1 modes ({c},{f})"),
                v1_policy(c, f, 0, descriptor),
            ));
            cases.push((format!("v2 modes ({c},{f})"), v2_policy(c, f, 3, 0, id)));
        }
    }
    for (c, f) in [(1u8, 4u8), (9, 9), (5, 6)] {
        for &fl in &all_flags {
            cases.push((
                format!("v1 ({c},{f}) flags {fl:#04x}"),
                v1_policy(c, f, fl, descriptor),
            ));
        }
    }
    for du in [0u8, 1, 8, 9, 10, 11, 12, 13, 16, 255] {
        for &fl in &all_flags {
            cases.push((
                format!("v2 (1,4) flags {fl:#04x} log2_dus {du}"),
                v2_policy(1, 4, fl, du, id),
            ));
        }
    }
    for (c, f) in [(9u8, 9u8), (5, 6), (7, 8), (1, 10)] {
        for &fl in &all_flags {
            cases.push((
                format!("v2 ({c},{f}) flags {fl:#04x}"),
                v2_policy(c, f, fl, 0, id),
            ));
        }
        for du in [9u8, 12] {
            for fl in [0x03u8, 0x07, 0x0b, 0x13] {
                cases.push((
                    format!("v2 ({c},{f}) flags {fl:#04x} log2_dus {du}"),
                    v2_policy(c, f, fl, du, id),
                ));
            }
        }
    }
    for byte in 5..8 {
        for value in [1u8, 0x80] {
            let mut p = v2_policy(1, 4, 3, 0, id);
            p[byte] = value;
            cases.push((format!("v2 reserved byte {byte} = {value:#x}"), p));
        }
    }
    for version in [1u8, 3, 4, 0x80, 255] {
        let mut p = v2_policy(1, 4, 3, 0, id);
        p[0] = version;
        cases.push((format!("version {version} (24 bytes)"), p));
        let mut p = v1_policy(1, 4, 3, descriptor);
        p[0] = version;
        cases.push((format!("version {version} (12 bytes)"), p));
    }
    cases
}

/// Every case through FS_IOC_SET_ENCRYPTION_POLICY on a fresh empty directory and through
/// `Policy::parse`: the same accept/reject and the same errno.
///
/// `anchors` are (case label, expected kernel result) pairs that keep the comparison from being
/// vacuous: the kernel must really accept or refuse them on this filesystem.
fn policy_validation_test(
    test: &'static str,
    cfg: Ext4Config,
    anchors: &[(&str, Result<(), i32>)],
) {
    if !support::prerequisites(test) {
        return;
    }
    let mut rng = Rng::for_test(test);
    let stable = cfg.stable_inodes;
    let fs = Ext4Image::create(test, cfg);
    let fsp = fs_params(&fs, stable);
    let root = fs.root();
    let id = ioctl::add_key_v2(&root, &rng.bytes(64)).expect("add v2 key");
    let descriptor: [u8; 8] = rng.array();

    let mut failures = Failures::new(test);
    let cases = policy_cases(id, descriptor);
    let mut accepted = 0;
    let mut kernel_results = BTreeMap::new();
    for (i, (label, bytes)) in cases.iter().enumerate() {
        let path = fs.path(format!("p{i}"));
        fs::create_dir(&path).expect("mkdir");
        let dir = ioctl::open_dir(&path).expect("open dir");
        let kernel = ioctl::set_policy(&dir, bytes);
        kernel_results.insert(label.as_str(), kernel);
        let layer = Policy::parse(bytes, &fsp);
        match (&kernel, &layer) {
            (Ok(()), Ok(p)) => {
                accepted += 1;
                if p.to_bytes() != *bytes {
                    failures.push(format!(
                        "{label}: to_bytes {} != {}",
                        hex::encode(p.to_bytes()),
                        hex::encode(bytes)
                    ));
                }
            }
            (Err(k), Err(l)) if *k == l.raw_os_error() => {}
            _ => failures.push(format!(
                "{label} ({}): kernel {}, layer {}",
                hex::encode(bytes),
                match kernel {
                    Ok(()) => "accepts".to_string(),
                    Err(e) => format!("errno {e} ({})", std::io::Error::from_raw_os_error(e)),
                },
                match &layer {
                    Ok(_) => "accepts".to_string(),
                    Err(e) => format!("{e} [errno {}]", e.raw_os_error()),
                }
            )),
        }
    }
    eprintln!(
        "{test}: {} policies, {accepted} accepted by both",
        cases.len()
    );
    for (label, want) in anchors {
        let got = kernel_results
            .get(label)
            .unwrap_or_else(|| panic!("no case {label:?}"));
        assert_eq!(
            got, want,
            "{test}: the kernel's answer to {label} is not what this test expects"
        );
    }

    // Layer only (the ioctl always reads the full struct): truncated buffers are EINVAL.
    for full in [v1_policy(1, 4, 3, descriptor), v2_policy(1, 4, 3, 0, id)] {
        for n in 0..full.len() {
            match Policy::parse(&full[..n], &fsp) {
                Err(e) if e.raw_os_error() == libc::EINVAL => {}
                other => failures.push(format!(
                    "Policy::parse of {n} of {} bytes: {:?}, want EINVAL",
                    full.len(),
                    other.map(|p| p.to_bytes())
                )),
            }
        }
    }
    failures.finish();
}

#[test]
fn policy_validation_matches_kernel() {
    policy_validation_test(
        "policy_validation_matches_kernel",
        Ext4Config::default(),
        &[
            ("v2 (1,4) flags 0x03 log2_dus 0", Ok(())),
            ("v2 (1,4) flags 0x08 log2_dus 0", Ok(())),
            ("v2 (1,4) flags 0x10 log2_dus 0", Ok(())),
            ("v2 (1,4) flags 0x03 log2_dus 9", Ok(())),
            ("v2 (1,4) flags 0x08 log2_dus 9", Err(libc::EINVAL)),
            ("v2 (1,4) flags 0x03 log2_dus 13", Err(libc::EINVAL)),
            ("v1 (1,4) flags 0x03", Ok(())),
            ("v2 (9,9) flags 0x07", Ok(())),
            ("v2 modes (1,1)", Err(libc::EINVAL)),
        ],
    );
}

/// `-O encrypt` without `stable_inodes`: both IV_INO_LBLK flags are refused by both sides.
#[test]
fn policy_validation_without_stable_inodes() {
    policy_validation_test(
        "policy_validation_without_stable_inodes",
        Ext4Config {
            stable_inodes: false,
            ..Ext4Config::default()
        },
        &[
            ("v2 (1,4) flags 0x03 log2_dus 0", Ok(())),
            ("v2 (1,4) flags 0x08 log2_dus 0", Err(libc::EINVAL)),
            ("v2 (1,4) flags 0x10 log2_dus 0", Err(libc::EINVAL)),
        ],
    );
}

/// A 1 KiB-block filesystem: data-unit sizes above 1024 are refused.
#[test]
fn policy_validation_1k_blocks() {
    policy_validation_test(
        "policy_validation_1k_blocks",
        Ext4Config::with_block_size(1024),
        &[
            ("v2 (1,4) flags 0x03 log2_dus 10", Ok(())),
            ("v2 (1,4) flags 0x03 log2_dus 9", Ok(())),
            ("v2 (1,4) flags 0x03 log2_dus 11", Err(libc::EINVAL)),
            ("v2 (1,4) flags 0x08 log2_dus 0", Ok(())),
            ("v2 (1,4) flags 0x10 log2_dus 9", Err(libc::EINVAL)),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Contexts
// ---------------------------------------------------------------------------------------------

/// One inode whose stored context is checked.
struct ContextCase {
    label: String,
    ino: u64,
    /// From FS_IOC_GET_ENCRYPTION_NONCE (None for symlinks, which cannot be opened).
    nonce: Option<[u8; 16]>,
    /// The policy of its directory, as set.
    policy_bytes: Vec<u8>,
    /// 28 (v1) or 40 (v2).
    size: usize,
}

/// The 28- or 40-byte context ext4 stores (xattr "c") for files, directories and symlinks parses
/// with `Context::parse`, carries the nonce FS_IOC_GET_ENCRYPTION_NONCE reports and the policy
/// FS_IOC_GET_ENCRYPTION_POLICY_EX reports, and `to_bytes` reproduces it exactly.
#[test]
fn contexts_match_kernel() {
    const TEST: &str = "contexts_match_kernel";
    if !support::prerequisites(TEST) {
        return;
    }
    let mut rng = Rng::for_test(TEST);
    let mut fs = Ext4Image::create(TEST, Ext4Config::default());
    let fsp = fs_params(&fs, true);
    let keys = Keys::add(&fs, &mut rng);
    let configs = [
        (Layout::V1, 0u8, 0u8),
        (Layout::V2, 3, 0),
        (Layout::V2, 1, 9),
        (Layout::Lblk64, 3, 0),
        (Layout::Lblk32, 2, 12),
    ];
    let mut inodes: Vec<ContextCase> = Vec::new();
    for (i, &(layout, pad, du)) in configs.iter().enumerate() {
        let dir = EncDir::create(&fs, &format!("d{i}"), keys.policy(layout, pad, du), &fsp);
        let size = if layout == Layout::V1 { 28 } else { 40 };
        let label = format!("{layout:?} pad{pad} du{du}");
        inodes.push(ContextCase {
            label: format!("{label} dir"),
            ino: dir.ino,
            nonce: Some(dir.nonce),
            policy_bytes: dir.policy_bytes.clone(),
            size,
        });
        let file = dir.path.join("file");
        fs::write(&file, rng.bytes(100)).expect("write file");
        let f = File::open(&file).expect("open file");
        assert_eq!(ioctl::get_policy_ex(&f).expect("policy"), dir.policy_bytes);
        inodes.push(ContextCase {
            label: format!("{label} file"),
            ino: ioctl::inode_number(&file),
            nonce: Some(ioctl::get_nonce(&f).expect("nonce")),
            policy_bytes: dir.policy_bytes.clone(),
            size,
        });
        drop(f);
        let sub = dir.path.join("sub");
        fs::create_dir(&sub).expect("mkdir");
        inodes.push(ContextCase {
            label: format!("{label} subdir"),
            ino: ioctl::inode_number(&sub),
            nonce: Some(ioctl::nonce_of(&sub).expect("nonce")),
            policy_bytes: dir.policy_bytes.clone(),
            size,
        });
        let link = dir.path.join("link");
        std::os::unix::fs::symlink("target", &link).expect("symlink");
        inodes.push(ContextCase {
            label: format!("{label} symlink"),
            ino: ioctl::inode_number(&link),
            nonce: None,
            policy_bytes: dir.policy_bytes.clone(),
            size,
        });
    }
    fs.unmount();

    let mut failures = Failures::new(TEST);
    let mut nonces = BTreeSet::new();
    for ContextCase {
        label,
        ino,
        nonce,
        policy_bytes,
        size,
    } in &inodes
    {
        let stored = fs.encryption_context(*ino);
        if stored.len() != *size {
            failures.push(format!(
                "{label}: stored context has {} bytes, expected {size}",
                stored.len()
            ));
            continue;
        }
        let ctx = match Context::parse(&stored, &fsp) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!(
                    "{label}: Context::parse({}) failed: {e}",
                    hex::encode(&stored)
                ));
                continue;
            }
        };
        failures.check_eq(|| format!("{label}: to_bytes"), &ctx.to_bytes(), &stored);
        failures.check_eq(
            || format!("{label}: nonce vs stored bytes"),
            ctx.nonce(),
            &stored[stored.len() - 16..],
        );
        if let Some(nonce) = nonce {
            failures.check_eq(
                || format!("{label}: nonce vs FS_IOC_GET_ENCRYPTION_NONCE"),
                ctx.nonce(),
                nonce,
            );
        }
        failures.check_eq(
            || format!("{label}: policy vs FS_IOC_GET_ENCRYPTION_POLICY_EX"),
            &ctx.policy().to_bytes(),
            policy_bytes,
        );
        let rebuilt = Context::new(*ctx.policy(), *ctx.nonce());
        failures.check_eq(
            || format!("{label}: Context::new"),
            &rebuilt.to_bytes(),
            &stored,
        );
        nonces.insert(*ctx.nonce());
    }
    assert_eq!(nonces.len(), inodes.len(), "{TEST}: nonces are not unique");
    failures.finish();
}
