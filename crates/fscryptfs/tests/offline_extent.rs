//! `fscryptfs inspect … extents` and `extent-data` give what `fscryptfs crypt` alone needs to
//! decrypt a per-extent file: files are written through a mount of an `--contents-layout=extent`
//! volume (several writeouts, overwrites, a partial last unit, a hole, a clone, 4096- and 512-byte
//! data units), the volume is unmounted, and every mapping is decrypted with `crypt --decrypt
//! --kdf=HKDF-SHA512 --extent-nonce=NONCE --data-unit-index=FIRST-UNIT` and compared with what was
//! written; what no mapping covers must be zeros (holes).

mod support;

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use support::*;

fn inspect(backing: &Path, args: &[&str]) -> Vec<u8> {
    let mut a: Vec<&OsStr> = vec![OsStr::new("inspect"), backing.as_os_str()];
    a.extend(args.iter().map(OsStr::new));
    let out = run_fscryptfs(&a, None);
    assert!(
        out.status.success(),
        "inspect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ino_of(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().ino()
}

/// Decrypts `path` (a no-key path) from its mappings with `crypt` alone; returns the plaintext
/// (holes as zeros) and the number of mappings.
fn decrypt_offline(backing: &Path, path: &str, size: usize, du: usize) -> (Vec<u8>, usize) {
    let list = String::from_utf8(inspect(backing, &["extents", path])).unwrap();
    let mut plain = vec![0u8; size];
    let mut covered = vec![false; size];
    let key = hex::encode(KEY);
    let mut n = 0;
    for line in list.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 8, "extents line {line:?}");
        let (idx, logical, len) = (
            f[0],
            f[1].parse::<usize>().unwrap(),
            f[2].parse::<usize>().unwrap(),
        );
        let (cipher, _key_id, nonce, first_unit) = (f[3], f[4], f[5], f[6]);
        assert_eq!(cipher, "AES-256-XTS");
        assert_eq!(logical % du, 0, "{line}");
        let ct = inspect(backing, &["extent-data", path, "--index", idx, "--raw"]);
        assert_eq!(ct.len(), len.div_ceil(du) * du, "{line}");
        let nonce_arg = format!("--extent-nonce={nonce}");
        let unit_arg = format!("--data-unit-index={first_unit}");
        let du_arg = format!("--data-unit-size={du}");
        let out = run_fscryptfs(
            &[
                OsStr::new("crypt"),
                OsStr::new("--decrypt"),
                OsStr::new("--kdf=HKDF-SHA512"),
                OsStr::new(&nonce_arg),
                OsStr::new(&unit_arg),
                OsStr::new(&du_arg),
                OsStr::new(cipher),
                OsStr::new(&key),
            ],
            Some(&ct),
        );
        assert!(
            out.status.success(),
            "crypt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), ct.len());
        plain[logical..logical + len].copy_from_slice(&out.stdout[..len]);
        for c in &mut covered[logical..logical + len] {
            assert!(!*c, "{path}: mappings overlap at {logical}");
            *c = true;
        }
        n += 1;
    }
    (plain, n)
}

#[test]
fn every_extent_decrypts_with_crypt_alone() {
    let Some(mut m) = mount_volume(&["--contents-layout=extent"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).expect("add key");
    fs::create_dir(m.path("enc")).unwrap();
    set_policy(&m.path("enc"), &policy_v2(&id)).unwrap();
    fs::create_dir(m.path("enc512")).unwrap();
    let mut pol = policy_v2(&id).to_vec();
    pol[4] = 9; // fscrypt_policy_v2.log2_data_unit_size
    set_policy(&m.path("enc512"), &pol).unwrap();

    let mut files: Vec<(u64, usize, Vec<u8>)> = Vec::new();
    for (dir, du) in [("enc", 4096usize), ("enc512", 512)] {
        // Several writeouts and overwrites (each writeout a new extent), partial last unit.
        let p = m.path(&format!("{dir}/a"));
        let mut want = pattern(1, 3 * 1024 * 1024 + 1234);
        fs::write(&p, &want).unwrap();
        {
            let f = OpenOptions::new().write(true).open(&p).unwrap();
            for (i, off) in [5000usize, 1 << 20, 2_000_000, 100].into_iter().enumerate() {
                let patch = pattern(10 + i as u64, 7000);
                f.write_all_at(&patch, off as u64).unwrap();
                want[off..off + 7000].copy_from_slice(&patch);
                f.sync_all().unwrap();
            }
        }
        files.push((ino_of(&p), du, want.clone()));
        // A hole: a file extended by truncate, then written at its end.
        let q = m.path(&format!("{dir}/b"));
        let mut want_b = vec![0u8; 300_000];
        fs::write(&q, b"head").unwrap();
        want_b[..4].copy_from_slice(b"head");
        let f = OpenOptions::new().write(true).open(&q).unwrap();
        f.set_len(290_000).unwrap();
        let tail = pattern(20, 10_000);
        f.write_all_at(&tail, 290_000).unwrap();
        want_b[290_000..].copy_from_slice(&tail);
        drop(f);
        files.push((ino_of(&q), du, want_b));
        // A clone (copy_file_range: the source's extents, nonces and IVs).
        let c = m.path(&format!("{dir}/c"));
        let src = File::open(&p).unwrap();
        let dst = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&c)
            .unwrap();
        let mut off_in: i64 = 1 << 20;
        let mut off_out: i64 = 0;
        let len = 1 << 20;
        // SAFETY: both descriptors are open; the offsets are valid i64s.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                len,
                0,
            )
        };
        assert_eq!(n, len as isize);
        drop(dst);
        files.push((ino_of(&c), du, want[1 << 20..2 << 20].to_vec()));
    }
    m.stop();
    for (ino, du, want) in &files {
        let path = format!("--ino={ino}");
        let info = String::from_utf8(inspect(&m.backing, &["inode", &path])).unwrap();
        assert!(info.lines().any(|l| l == "layout per-extent"), "{info}");
        // No per-file key to suggest: the contents line points at the extents.
        let contents = info
            .lines()
            .find(|l| l.starts_with("crypt-contents "))
            .unwrap_or_else(|| panic!("no crypt-contents line:\n{info}"));
        assert!(contents.contains("inspect extents"), "{contents}");
        assert!(!contents.contains("--file-nonce"), "{contents}");
        assert!(
            info.lines().any(|l| l == format!("size {}", want.len())),
            "{info}"
        );
        let (plain, n) = decrypt_offline(&m.backing, &path, want.len(), *du);
        assert!(n >= 1);
        if let Some(i) = plain.iter().zip(want).position(|(a, b)| a != b) {
            panic!("{path}: first difference at byte {i}");
        }
    }
    // A per-file command on a per-extent file says what to use instead; a bad index fails.
    let out = run_fscryptfs(
        &[
            OsStr::new("inspect"),
            m.backing.as_os_str(),
            OsStr::new("extent-data"),
            OsStr::new("."),
            OsStr::new("--index"),
            OsStr::new("0"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
}
