//! Issue 8 row 5 (docs/SEMANTICS.md §5): once a key is removed and everything is closed, no copy of
//! the raw key or of anything derived from it is left in any readable mapping of the daemon.
//!
//! In each contents layout the test adds a random key through the mount (FSCRYPTFS_IOC_ADD_KEY, so
//! the raw key travels through FUSE's request buffer), makes an encrypted directory tree, writes,
//! syncs, overwrites and reads a file, then scans `/proc/PID/mem` of the daemon (via
//! `support::scan_process`) for every 16-byte piece of: the raw key, the PRK, the per-file keys of
//! both directories (filenames) and of the file (computed here from the nonces the mount's
//! GET_NONCE returns) and, in the per-extent layout, every extent key (from the nonces
//! `fscryptfs inspect extents` prints).
//!
//! Right after ADD_KEY returns, before any other request could overwrite the request buffer, the
//! raw key must already be gone (the keyring wipes its copy after HKDF-Extract, and the patched
//! `fuser` wipes the request buffer after every ioctl): with the unpatched `fuser` it is found
//! there every time and this test fails. The scan while the key is present and the file open is the
//! control: it must find the PRK and the keys in use (so the needles are right and the scan reads
//! locked memory). After the file is closed and the key removed, nothing may be found (this also
//! catches key schedules left on worker stacks by name encryption: `fscrypt::fname` burns them).

mod support;

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use fscrypt::hkdf::{HkdfContext, HkdfKey};
use support::*;

const FILES_BUSY: u32 = 1;
const ABSENT: u32 = 1;

/// The nonces of every live mapping of the per-extent file `ino` (`inspect extents`).
fn extent_nonces(backing: &Path, ino: u64) -> Vec<[u8; 16]> {
    let ino_arg = format!("--ino={ino}");
    let out = run_fscryptfs(
        &[
            OsStr::new("inspect"),
            // The volume is mounted: inspect reads it anyway (its writeout was synced).
            OsStr::new("--force"),
            backing.as_os_str(),
            OsStr::new("extents"),
            OsStr::new(&ino_arg),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "inspect extents failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("inspect prints text");
    let mut nonces: Vec<[u8; 16]> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 8, "extents line {l:?}");
            let mut n = [0u8; 16];
            hex::decode_to_slice(f[5], &mut n).expect("a hex nonce");
            n
        })
        .collect();
    nonces.sort_unstable();
    nonces.dedup();
    nonces
}

/// Removes the key until it is fully gone (RELEASE reaches the daemon asynchronously).
fn remove_completely(mnt: &Path, id: &[u8; 16]) {
    for _ in 0..100 {
        let flags = remove_key(mnt, id, false).expect("remove key");
        if flags & FILES_BUSY == 0 && key_status(mnt, id).expect("key status").0 == ABSENT {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the key stayed busy after every file was closed");
}

fn key_leaves_no_trace_in_the_daemon(init_args: &[&str], per_extent: bool) {
    let Some(m) = mount_volume(init_args, "") else {
        return;
    };
    let pid = m.daemon_pid().expect("daemon pid");
    let mut raw = [0u8; 64];
    fscrypt::context::fill_random(&mut raw).expect("random key");
    let id = add_key(&m.mnt, &raw).expect("add key");
    // Right after ADD_KEY, before any other request could overwrite the request buffer: the raw
    // key is already gone (the patched fuser wipes after the reply is sent, so allow it a moment).
    let raw_only = [("raw key", &raw[..])];
    for attempt in 0.. {
        let hits = scan_process_hits(pid, &raw_only);
        if hits.is_empty() {
            break;
        }
        assert!(
            attempt < 3,
            "the raw key lingers in the daemon after ADD_KEY returned: {hits:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Use it: an encrypted directory, a subdirectory (filenames), a file written in several
    // writeouts (several extents), overwritten and read back.
    let e = m.path("enc");
    fs::create_dir(&e).expect("mkdir enc");
    set_policy(&e, &policy_v2(&id)).expect("set policy");
    let sub = e.join("a subdirectory");
    fs::create_dir(&sub).expect("mkdir sub");
    let p = sub.join("a file");
    let mut want = pattern(1, 300_000);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&p)
        .expect("create the file");
    f.write_all(&want).expect("write");
    f.sync_all().expect("fsync");
    f.seek(SeekFrom::Start(5000)).expect("seek");
    let patch = pattern(2, 9000);
    f.write_all(&patch).expect("overwrite");
    want[5000..14000].copy_from_slice(&patch);
    f.sync_all().expect("fsync");
    let mut got = Vec::new();
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_to_end(&mut got).expect("read");
    assert!(got == want, "read back differs");
    assert_eq!(
        fs::read_dir(&e).expect("list enc").count(),
        1,
        "one entry in enc"
    );

    // What is derived from the raw key, computed here.
    let hkdf = HkdfKey::extract(&raw);
    let derive = |ctx: HkdfContext, nonce: &[u8; 16], len: usize| {
        hkdf.derive(ctx, nonce, len).expect("HKDF-Expand")
    };
    let prk = prk_of(&raw);
    let enc_key = derive(
        HkdfContext::PerFileEncKey,
        &get_nonce(&e).expect("nonce of enc"),
        32,
    );
    let sub_key = derive(
        HkdfContext::PerFileEncKey,
        &get_nonce(&sub).expect("nonce of sub"),
        32,
    );
    let file_key = derive(
        HkdfContext::PerFileEncKey,
        &get_nonce(&p).expect("nonce of the file"),
        64,
    );
    let extent_keys: Vec<_> = if per_extent {
        let ino = fs::metadata(&p).expect("stat the file").ino();
        let nonces = extent_nonces(&m.backing, ino);
        assert!(!nonces.is_empty(), "no extents listed");
        nonces
            .iter()
            .map(|n| derive(HkdfContext::PerExtentEncKey, n, 64))
            .collect()
    } else {
        Vec::new()
    };
    let mut needles: Vec<(&str, &[u8])> = vec![
        ("raw key", &raw),
        ("PRK", &prk),
        ("enc dir key", enc_key.as_ref()),
        ("sub dir key", sub_key.as_ref()),
        ("file key", file_key.as_ref()),
    ];
    for k in &extent_keys {
        needles.push(("extent key", k.as_ref()));
    }

    // Control: key present, file open.
    let alive = scan_process(pid, &needles);
    let mut in_use = vec!["PRK", "sub dir key"];
    in_use.push(if per_extent { "extent key" } else { "file key" });
    for n in in_use {
        assert!(
            alive.iter().any(|a| a == n),
            "control: {n} not found while in use (found {alive:?})"
        );
    }
    if alive.iter().any(|a| a == "raw key") {
        panic!(
            "the raw key lingers in the daemon after ADD_KEY returned: {:#?}",
            scan_process_hits(pid, &raw_only)
        );
    }

    // Close everything, remove the key: nothing may be left.
    drop(f);
    remove_completely(&m.mnt, &id);
    assert!(
        fs::read_dir(&e)
            .expect("list enc")
            .all(|d| d.is_ok_and(|d| d.file_name() != "a subdirectory")),
        "names are shown in plaintext after removal"
    );
    let after = scan_process(pid, &needles);
    assert!(
        after.is_empty(),
        "left in the daemon after removal: {after:?}\n{:#?}",
        scan_process_hits(pid, &needles)
    );
}

#[test]
fn no_key_material_left_in_the_daemon_per_extent() {
    key_leaves_no_trace_in_the_daemon(&["--contents-layout=extent"], true);
}

#[test]
fn no_key_material_left_in_the_daemon_per_file() {
    key_leaves_no_trace_in_the_daemon(&["--contents-layout=per-file"], false);
}
