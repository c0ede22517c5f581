//! generic/399 (scaled down), 613 and 435 (scaled down) on a real mount: ciphertext is never
//! repeated, nonces are unique and random, and long names do not collide without the key.
//!
//! Each runs in both layouts (`_extent`: `init --contents-layout=extent`, where v1 policies are
//! refused with EINVAL, as btrfs does: that is checked, and v2 keys stand in for the v1 ones).
//!
//! - 399: the backing store sits on a small tmpfs (the "64 MiB device", here 12 MiB); 1 MiB files of
//!   zeros are written into an encrypted directory until ENOSPC; the whole backing store must not
//!   compress under xz below the bytes written. Two identical symlinks in different directories
//!   must have different no-key names and different no-key targets.
//! - 613: 50 v1 and 50 v2 policy directories, 50 files in one of each: 200 nonces, read with
//!   `fscryptfs get-nonce` and again offline from the backing store (FORMAT.md: directory metadata
//!   and file headers) after unmounting; all unique, and incompressible (xz ≥ raw + 55 bytes).
//! - 435: names differing only in their last 16-byte block (pad-16 policy; fstests' 32-byte prefix
//!   plus a number, and 255-byte names whose no-key form needs the SHA-256 digest), 2000 + 200 by
//!   default (`FSCRYPTFS_435_FILES` for the short ones, fstests uses 100000): before and after
//!   locking, every entry has its own inode, and `rm -rf` works.

mod encrypt_support;
mod support;

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use encrypt_support::*;
use support::*;

// ---------------------------------------------------------------------------------------------
// generic/399

/// Everything in the backing store, concatenated in a fixed order (the "device image").
fn backing_image(root: &Path) -> Vec<u8> {
    let mut paths: Vec<PathBuf> = walk(root).into_iter().map(|(p, _)| p).collect();
    paths.sort();
    let mut img = Vec::new();
    for p in paths {
        let md = fs::symlink_metadata(&p).unwrap();
        img.extend_from_slice(p.strip_prefix(root).unwrap().as_os_str().as_encoded_bytes());
        if md.file_type().is_symlink() {
            img.extend_from_slice(fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            img.extend(fs::read(&p).unwrap());
        }
    }
    img
}

fn generic_399_ciphertext_is_never_repeated_in(layout: Layout) {
    const FS_SIZE: u64 = 12 << 20;
    let Some(m) = mount_in(layout, "") else {
        return;
    };
    // Move the (fresh) volume onto a small tmpfs and mount it from there.
    let mut v = SmallVolume::move_onto_tmpfs(m, FS_SIZE, "");
    let backing = v.m.backing.clone();
    let m = &mut v.m;

    let edir = m.path("encrypted_dir");
    fs::create_dir(&edir).unwrap();
    let desc = key_for(layout, &edir, "abcdef0123456789", &pseudo_key(399));
    let desc = desc.as_str();
    set_encpolicy(None, &edir, desc, "").ok();
    add_k(m, desc, &pseudo_key(399));
    // The "same" symlink in two directories.
    for d in ["subdir1", "subdir2"] {
        fs::create_dir(edir.join(d)).unwrap();
        std::os::unix::fs::symlink("symlink_target", edir.join(d).join("symlink")).unwrap();
    }
    // 1 MiB files of zeros until ENOSPC.
    let zeros = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    let mut files = 0;
    for i in 1.. {
        let file = edir.join(format!("file{i}"));
        let r = fs::File::create(&file).and_then(|mut f| {
            f.write_all(&zeros)?;
            f.sync_all()
        });
        let len = fs::metadata(&file).map(|md| md.len()).unwrap_or(0);
        // Data acknowledged by write(2) but not yet stored (a per-extent file's daemon buffer, or
        // the kernel's page cache under the FUSE writeback cache) meets ENOSPC only at fsync: the
        // size still counts it (the kernel trusts its cached size), but the failed writeout stored
        // none of the file's data for certain, so the file adds nothing to what was written.
        let failed_writeout = r.is_err();
        if !failed_writeout {
            total += len;
        }
        assert!(
            total <= FS_SIZE,
            "wrote {total} bytes but should have only had space for {FS_SIZE} bytes at most"
        );
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("{}: {e} before the filesystem was full", file.display()),
            Ok(()) => {
                assert_eq!(len, 1 << 20, "size of {}", file.display());
                files += 1;
            }
        }
        assert!(i < 1000, "never ran out of space");
    }
    assert!(files >= 4, "only {files} files fit");

    // Unmount and compress the backing store: it must not be smaller than what was written.
    rm_enckey(None, &m.mnt, desc, "").ok();
    m.stop();
    let img = backing_image(&backing);
    let Some(compressed) = xz_size(&img) else {
        return;
    };
    eprintln!(
        "generic/399: {files} files, {total} bytes written; backing store {} bytes, xz {compressed}",
        img.len()
    );
    assert!(
        compressed as u64 >= total,
        "FAIL: filesystem was compressible ({total} bytes => {compressed} bytes)"
    );

    // Encrypted filenames and symlink targets were not reused.
    m.remount("");
    let links: Vec<PathBuf> = walk(&edir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| fs::symlink_metadata(p).unwrap().file_type().is_symlink())
        .collect();
    assert_eq!(links.len(), 2);
    assert_ne!(
        links[0].file_name(),
        links[1].file_name(),
        "Encrypted filenames were reused!"
    );
    assert_ne!(
        fs::read_link(&links[0]).unwrap(),
        fs::read_link(&links[1]).unwrap(),
        "Encrypted symlink targets were reused!"
    );
    // With the key, both read back as written.
    add_k(m, desc, &pseudo_key(399));
    for d in ["subdir1", "subdir2"] {
        assert_eq!(
            fs::read_link(edir.join(d).join("symlink")).unwrap(),
            Path::new("symlink_target")
        );
    }
    assert_eq!(fs::read(edir.join("file1")).unwrap(), zeros);
}

// ---------------------------------------------------------------------------------------------
// generic/613

/// The nonce of every encrypted inode in the backing store (directory metadata and file headers,
/// docs/FORMAT.md), read with the filesystem unmounted.
fn offline_nonces(backing: &Path) -> Vec<[u8; 16]> {
    let mut out = Vec::new();
    let mut dirs = vec![backing.to_path_buf()];
    dirs.extend(
        walk(backing)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| fs::symlink_metadata(p).unwrap().is_dir()),
    );
    let nonce_of = |ctx: &[u8]| -> [u8; 16] { ctx[ctx.len() - 16..].try_into().unwrap() };
    for d in dirs {
        let meta = fs::read(d.join(".fscryptfs.dir")).unwrap();
        assert_eq!(&meta[..8], b"FSCRYPTD", "{}", d.display());
        let len = meta[9] as usize;
        if len != 0 {
            out.push(nonce_of(&meta[24..24 + len]));
        }
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if !md.is_file()
                || p.file_name()
                    .unwrap()
                    .as_encoded_bytes()
                    .starts_with(b".fscryptfs")
            {
                continue;
            }
            let hdr = fs::read(&p).unwrap();
            if hdr.len() >= 72 && &hdr[..8] == b"FSCRYPTF" {
                let len = hdr[10] as usize;
                if len != 0 {
                    out.push(nonce_of(&hdr[32..32 + len]));
                }
            }
        }
    }
    out
}

/// The key a case uses: a v1 descriptor in a per-file volume (as fstests); in a per-extent volume,
/// which refuses v1 policies (checked first on `dir`, an empty unencrypted directory), the v2
/// identifier of `raw`.
fn key_for(layout: Layout, dir: &Path, desc: &str, raw: &[u8]) -> String {
    if layout.is_extent() {
        assert_extent_refuses_v1_and_iv_flags(None, dir, &test_key_id());
        identifier_of(raw)
    } else {
        desc.to_string()
    }
}

/// Adds `raw` under `spec` (a v1 descriptor, or the v2 identifier it must have); returns `spec`.
fn add_k(m: &Mounted, spec: &str, raw: &[u8]) -> String {
    if spec.len() == 16 {
        add_enckey(None, &m.mnt, raw, &format!("-d {spec}")).ok();
    } else {
        assert_eq!(
            add_enckey(None, &m.mnt, raw, "").ok(),
            format!("Added encryption key with identifier {spec}\n")
        );
    }
    spec.to_string()
}

/// The nonce through `fscryptfs get-nonce`: fstests reads nonces with per-filesystem tools
/// (debugfs, `btrfs inspect-internal`), not xfs_io, so our command stands in for them.
fn cli_nonce(p: &Path) -> [u8; 16] {
    let out = fscryptfs(&[Path::new("get-nonce"), p]);
    let s = out.ok().trim_end().to_string();
    assert!(
        s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "Expected nonce to be 16 bytes (32 hex characters), but got {s:?}"
    );
    unhex16(&s)
}

fn generic_613_nonces_are_unique_and_random_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    // Adding encryption keys
    assert_eq!(
        add_enckey(None, &m.mnt, &TEST_RAW_KEY, "").ok(),
        format!("Added encryption key with identifier {TEST_KEY_IDENTIFIER}\n")
    );
    // In a per-extent volume v1 policies are refused (as btrfs): the "v1" half uses a second v2
    // key instead.
    let first = m.path("first");
    fs::create_dir(&first).unwrap();
    let other = key_for(layout, &first, TEST_KEY_DESCRIPTOR, &pseudo_key(613));
    fs::remove_dir(&first).unwrap();
    let other_raw = if layout.is_extent() {
        pseudo_key(613)
    } else {
        TEST_RAW_KEY
    };
    let other = add_k(&m, &other, &other_raw);
    // Creating encrypted files and directories
    let mut inodes: Vec<PathBuf> = Vec::new();
    for i in 1..=50 {
        for (kind, key) in [("v1", other.as_str()), ("v2", TEST_KEY_IDENTIFIER)] {
            let dir = m.path(&format!("{kind}_policy_dir_{i}"));
            fs::create_dir(&dir).unwrap();
            set_encpolicy(None, &dir, key, "").ok();
            inodes.push(dir);
        }
    }
    for i in 1..=50 {
        for kind in ["v1", "v2"] {
            let file = m.path(&format!("{kind}_policy_dir_1/{i}"));
            fs::write(&file, b"").unwrap();
            inodes.push(file);
        }
    }
    assert_eq!(inodes.len(), 200);
    // Getting encryption nonces from inodes (the command, then the raw ioctl agrees).
    let online: Vec<[u8; 16]> = inodes.iter().map(|p| cli_nonce(p)).collect();
    for (p, n) in inodes.iter().zip(&online).step_by(17) {
        assert_eq!(&get_nonce(p).unwrap(), n);
    }
    // ... and offline, from the backing store with the filesystem unmounted.
    m.stop();
    let offline = offline_nonces(&m.backing);
    let a: BTreeSet<[u8; 16]> = online.iter().copied().collect();
    let b: BTreeSet<[u8; 16]> = offline.iter().copied().collect();
    assert_eq!(offline.len(), 200, "encrypted inodes in the backing store");
    assert_eq!(a, b, "nonces online and in the backing store differ");

    // Verifying uniqueness of nonces
    let mut seen = HashSet::new();
    let dups: Vec<String> = online
        .iter()
        .filter(|n| !seen.insert(**n))
        .map(|n| hex(n))
        .collect();
    assert!(dups.is_empty(), "non-unique nonces: {dups:?}");
    // Verifying randomness of nonces
    let bin: Vec<u8> = online.iter().flatten().copied().collect();
    assert_eq!(bin.len(), 3200);
    let Some(compressed) = xz_size(&bin) else {
        return;
    };
    // The xz format has 60 bytes of overhead; fstests allows 55.
    assert!(
        compressed >= bin.len() + 55,
        "Nonces are compressible (non-random); compressed {} => {compressed} bytes!",
        bin.len()
    );
}

// ---------------------------------------------------------------------------------------------
// generic/435

fn files_435() -> usize {
    std::env::var("FSCRYPTFS_435_FILES")
        .ok()
        .map(|s| s.parse().expect("FSCRYPTFS_435_FILES is a number"))
        .unwrap_or(2000)
}

fn generic_435_long_names_do_not_collide_without_the_key_in(layout: Layout) {
    let Some(mut m) = mount_in(layout, "") else {
        return;
    };
    let edir = m.path("edir");
    fs::create_dir(&edir).unwrap();
    let desc = key_for(layout, &edir, "4350435043504350", &pseudo_key(435));
    let desc = desc.as_str();
    add_k(&m, desc, &pseudo_key(435));
    // -f 0x2: zero-pad to a 16-byte boundary (the encryption block).
    set_encpolicy(None, &edir, desc, "-f 0x2").ok();
    let n_short = files_435();
    let n_long = 200;
    let mut names: Vec<String> = (1..=n_short)
        .map(|i| format!("abcdefghijklmnopqrstuvwxyz012345{i}"))
        .collect();
    // 255-byte names, differing only in the last 16 bytes: beyond 149 bytes of ciphertext, so the
    // no-key name carries a digest of the tail (and CTS swaps the last two blocks).
    names.extend((1..=n_long).map(|i| format!("{}{:016}", "L".repeat(239), i)));
    for n in &names {
        fs::File::create(edir.join(n)).unwrap();
    }
    let inodes = |edir: &Path| -> Vec<u64> {
        fs::read_dir(edir)
            .unwrap()
            .map(|e| fs::symlink_metadata(e.unwrap().path()).unwrap().ino())
            .collect()
    };
    let with_key: BTreeSet<u64> = inodes(&edir).into_iter().collect();
    assert_eq!(with_key.len(), names.len(), "distinct inodes with the key");

    rm_enckey(None, &m.mnt, desc, "").ok();
    m.remount("");
    // Without the key: as many distinct names and inodes (the same ones), all removable.
    let nokey = listing(&edir);
    assert_eq!(nokey.len(), names.len(), "entries without the key");
    assert_eq!(
        nokey.iter().collect::<BTreeSet<_>>().len(),
        names.len(),
        "distinct no-key names"
    );
    assert!(
        nokey.iter().all(|n| n.len() <= 252),
        "no-key names are at most 252 bytes"
    );
    let locked: Vec<u64> = inodes(&edir);
    let locked_set: BTreeSet<u64> = locked.iter().copied().collect();
    assert_eq!(
        locked_set.len(),
        names.len(),
        "distinct inodes without the key"
    );
    assert_eq!(
        locked_set, with_key,
        "the same inodes with and without the key"
    );
    fs::remove_dir_all(&edir).unwrap();
    assert_errno(fs::symlink_metadata(&edir), libc::ENOENT);
    assert!(!m.backing.join("edir").exists());
}

in_both_layouts! {
    generic_399_ciphertext_is_never_repeated, generic_399_ciphertext_is_never_repeated_extent => generic_399_ciphertext_is_never_repeated_in;
    generic_613_nonces_are_unique_and_random, generic_613_nonces_are_unique_and_random_extent => generic_613_nonces_are_unique_and_random_in;
    generic_435_long_names_do_not_collide_without_the_key, generic_435_long_names_do_not_collide_without_the_key_extent => generic_435_long_names_do_not_collide_without_the_key_in;
}
