//! The backing store holds the kernel's bytes: a file's data area is exactly what
//! `InodeKey::encrypt_data_unit` gives for the file's own context (read from its header), names are
//! the kernel's no-key names of the layer's ciphertext, symlink targets decrypt with the symlink's own
//! key — for the default IVs, IV_INO_LBLK_64 (stable inode numbers) and 512-byte data units. Bad input
//! gets a clear error: a corrupted header gives EUCLEAN with a log line and other files still work; a
//! missing, foreign or newer volume is refused by `mount` with one line and exit status 1.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use fscrypt::keysetup::{InodeKey, InodeKind, InodeParams, MasterSecret};
use fscrypt::nokey::NokeyName;
use fscryptfs::store::config::VolumeConfig;
use fscryptfs::store::meta::{DirMeta, FileHeader, SymlinkTarget};
use fscryptfs::store::pending::{CacheEpoch, PendingSize};
use support::*;

fn key_for(ctx: &fscrypt::context::Context, kind: InodeKind, ino: u64, uuid: [u8; 16]) -> InodeKey {
    let master = MasterSecret::new_v2(&KEY).unwrap();
    let fsp = fscryptfs::store::fs_params();
    InodeKey::setup(
        &master,
        ctx,
        &InodeParams {
            kind,
            ino,
            fs_uuid: uuid,
        },
        &fsp,
    )
    .unwrap()
}

fn check_dir(m: &Mounted, dir: &str, policy: &[u8]) {
    let fsp = fscryptfs::store::fs_params();
    let uuid = VolumeConfig::load(&m.backing).unwrap().uuid;
    fs::create_dir(m.path(dir)).unwrap();
    set_policy(&m.path(dir), policy).unwrap();
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(m.path(&format!("{dir}/file")), &data).unwrap();
    std::os::unix::fs::symlink("some/target", m.path(&format!("{dir}/link"))).unwrap();

    let bdir = m.backing.join(dir);
    let dmeta = DirMeta::parse(&fs::read(bdir.join(".fscryptfs.dir")).unwrap(), &fsp, "d").unwrap();
    let dctx = dmeta.ctx.expect("directory has a context");
    assert_eq!(&dctx.policy().to_bytes()[..], policy);
    assert_eq!(get_nonce(&m.path(dir)).unwrap(), *dctx.nonce());
    let dkey = key_for(&dctx, InodeKind::Directory, dmeta.ino, uuid);
    let bname = NokeyName::encode([0; 8], &dkey.encrypt_filename(b"file").unwrap());
    let backing = fs::read(bdir.join(&bname)).expect("backing name is the no-key name");
    let h = FileHeader::parse(&backing, &fsp, "f").unwrap();
    // Just closed: the size is pending (trusted in this boot and backing mount) or committed.
    let epoch = CacheEpoch::of(&fs::File::open(&m.backing).unwrap());
    let dev = fs::metadata(bdir.join(&bname)).unwrap().dev();
    let size = match PendingSize::parse(&backing, epoch.as_ref(), dev, fsp.max_file_size) {
        Some(PendingSize::Trusted(s)) => s,
        _ => h.size,
    };
    assert_eq!(size, data.len() as u64);
    assert_eq!(
        h.ino,
        fs::metadata(m.path(&format!("{dir}/file"))).unwrap().ino()
    );
    let fctx = h.ctx.expect("file has a context");
    assert_eq!(
        get_nonce(&m.path(&format!("{dir}/file"))).unwrap(),
        *fctx.nonce()
    );
    let fkey = key_for(&fctx, InodeKind::Regular, h.ino, uuid);
    let du = fkey.data_unit_size();
    let mut expect = data.clone();
    expect.resize(data.len().div_ceil(du) * du, 0);
    for (i, unit) in expect.chunks_mut(du).enumerate() {
        fkey.encrypt_data_unit(i as u64, unit).unwrap();
    }
    assert_eq!(
        &backing[4096..],
        &expect[..],
        "data area differs from the layer's ciphertext"
    );

    let lname = NokeyName::encode([0; 8], &dkey.encrypt_filename(b"link").unwrap());
    let t = fs::read_link(bdir.join(lname)).unwrap();
    let SymlinkTarget::Encrypted {
        ino,
        ctx,
        data: sdata,
    } = SymlinkTarget::parse(t.as_os_str().as_encoded_bytes(), &fsp, "s").unwrap()
    else {
        panic!("symlink target not encrypted")
    };
    let skey = key_for(&ctx, InodeKind::Symlink, ino, uuid);
    assert_eq!(skey.decrypt_symlink(&sdata).unwrap(), b"some/target");
}

#[test]
fn backing_bytes_are_the_kernels() {
    let Some(m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).unwrap();
    check_dir(&m, "default", &policy_v2(&id));
    let mut lblk = policy_v2(&id);
    lblk[3] |= 0x08; // IV_INO_LBLK_64
    check_dir(&m, "lblk64", &lblk);
    let mut du = policy_v2(&id);
    du[4] = 9; // 512-byte data units
    check_dir(&m, "du512", &du);
}

#[test]
fn corrupted_header_is_reported_and_contained() {
    let Some((mut m, _id)) = encrypted_per_file_volume() else {
        return;
    };
    fs::write(m.path("enc/bad"), b"will be damaged").unwrap();
    fs::write(m.path("enc/good"), vec![7u8; 5000]).unwrap();
    fs::write(m.path("plainbad"), b"also damaged").unwrap();
    m.stop();
    // Flip a byte of the context in each header (checksum mismatch).
    let mut damaged = 0;
    for dir in [m.backing.join("enc"), m.backing.clone()] {
        for ent in fs::read_dir(&dir).unwrap() {
            let p = ent.unwrap().path();
            if !p.is_file()
                || p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".fscryptfs")
            {
                continue;
            }
            let b = fs::read(&p).unwrap();
            if b.len() == 8192 || p.ends_with("plainbad") {
                let mut b = b;
                b[40] ^= 0x55;
                fs::write(&p, b).unwrap();
                damaged += 1;
            }
        }
    }
    assert_eq!(damaged, 2);
    m.remount("");
    add_key(&m.mnt, &KEY).unwrap();
    let e = fs::read(m.path("enc/bad")).unwrap_err();
    assert!(
        [libc::EUCLEAN, libc::EIO].contains(&errno_of(&e)),
        "expected EUCLEAN or EIO, got {e}"
    );
    // Lookup needs no valid header: the entry can be stat'ed (a regular file) and deleted; open
    // and truncate give EUCLEAN, with a log line naming the backing path.
    let md = fs::metadata(m.path("plainbad")).unwrap();
    assert!(md.is_file());
    assert_errno(fs::read(m.path("plainbad")), libc::EUCLEAN);
    assert_errno(
        fs::OpenOptions::new().write(true).open(m.path("plainbad")),
        libc::EUCLEAN,
    );
    assert_errno(
        fs::OpenOptions::new().write(true).open(m.path("enc/bad")),
        libc::EUCLEAN,
    );
    assert_eq!(fs::read(m.path("enc/good")).unwrap(), vec![7u8; 5000]);
    let log = m.log_text();
    assert!(
        log.contains("checksum mismatch"),
        "no log line naming the damage:\n{log}"
    );
    let backing_path = m.backing.join("plainbad").display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&backing_path)),
        "no error line naming {backing_path}:\n{log}"
    );
    // The same inode number on every stat in this mount.
    assert_eq!(
        fs::metadata(m.path("plainbad")).unwrap().ino(),
        md.ino(),
        "unstable inode number"
    );
    let listed: Vec<_> = fs::read_dir(m.path("enc"))
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    fs::remove_file(m.path("plainbad")).unwrap();
    fs::remove_file(m.path("enc/bad")).unwrap();
    assert_errno(fs::metadata(m.path("plainbad")), libc::ENOENT);
    assert!(!m.backing.join("plainbad").exists());
    // Without the key too: a corrupt file is deleted by its no-key name.
    fs::write(m.path("enc/bad2"), b"x").unwrap();
    m.stop();
    let mut found = 0;
    for ent in fs::read_dir(m.backing.join("enc")).unwrap() {
        let p = ent.unwrap().path();
        if p.is_file() && fs::metadata(&p).unwrap().len() == 8192 {
            let mut b = fs::read(&p).unwrap();
            if b[..8] == *b"FSCRYPTF" && u64::from_le_bytes(b[24..32].try_into().unwrap()) == 1 {
                b[40] ^= 0x55;
                fs::write(&p, b).unwrap();
                found += 1;
            }
        }
    }
    assert_eq!(found, 1);
    m.remount("");
    let names: Vec<_> = fs::read_dir(m.path("enc"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    for p in names {
        fs::remove_file(&p).unwrap();
    }
    assert_eq!(fs::read_dir(m.path("enc")).unwrap().count(), 0);
}

fn mount_fails(backing: &Path, mnt: &Path) -> String {
    let out = Command::new(bin())
        .arg("mount")
        .arg(backing)
        .arg(mnt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    err
}

#[test]
fn bad_volumes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let err = mount_fails(&tmp.path().join("missing"), &mnt);
    assert!(err.contains("missing"), "{err}");
    let foreign = tmp.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("x"), b"x").unwrap();
    assert!(mount_fails(&foreign, &mnt).contains("not an fscryptfs volume"));
    // init refuses a non-empty directory and an existing volume.
    let out = Command::new(bin())
        .arg("init")
        .arg(&foreign)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let vol = tmp.path().join("vol");
    assert!(Command::new(bin())
        .arg("init")
        .arg(&vol)
        .status()
        .unwrap()
        .success());
    let out = Command::new(bin()).arg("init").arg(&vol).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already"));
    // A newer format version.
    let conf = vol.join(".fscryptfs.conf");
    let text = fs::read_to_string(&conf)
        .unwrap()
        .replace("format 1", "format 9");
    fs::write(&conf, text).unwrap();
    assert!(mount_fails(&vol, &mnt).contains("newer"));
}

#[test]
fn damaged_directories_and_symlinks_are_contained_and_deletable() {
    // A directory whose `.fscryptfs.dir` is damaged and a symlink whose backing target is: both
    // still look up, stat and delete; listing or creating inside the directory and reading the
    // link give EUCLEAN, with a log line naming the backing path; their neighbours are fine.
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    fs::create_dir(m.path("empty")).unwrap();
    fs::create_dir(m.path("full")).unwrap();
    fs::write(m.path("full/inside"), b"x").unwrap();
    std::os::unix::fs::symlink("target", m.path("link")).unwrap();
    fs::write(m.path("fine"), b"fine").unwrap();
    m.stop();
    for d in ["empty", "full"] {
        let meta = m.backing.join(d).join(".fscryptfs.dir");
        let mut b = fs::read(&meta).unwrap();
        b[8] ^= 0x55;
        fs::write(&meta, b).unwrap();
    }
    let blink = m.backing.join("link");
    fs::remove_file(&blink).unwrap();
    std::os::unix::fs::symlink("not a target of ours", &blink).unwrap();
    m.remount("");

    for d in ["empty", "full"] {
        assert!(fs::metadata(m.path(d)).unwrap().is_dir(), "{d}");
        assert_errno(fs::read_dir(m.path(d)), libc::EUCLEAN);
        assert_errno(fs::write(m.path(&format!("{d}/new")), b"n"), libc::EUCLEAN);
    }
    assert_errno(fs::remove_dir(m.path("full")), libc::ENOTEMPTY);
    fs::remove_dir(m.path("empty")).unwrap();
    assert!(fs::symlink_metadata(m.path("link")).unwrap().is_symlink());
    assert_errno(fs::read_link(m.path("link")), libc::EUCLEAN);
    fs::remove_file(m.path("link")).unwrap();
    assert_eq!(fs::read(m.path("fine")).unwrap(), b"fine");
    let names: Vec<_> = fs::read_dir(m.mnt.clone())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n == "empty" || n == "link"),
        "{names:?}"
    );
    let log = m.log_text();
    for what in ["full", "link"] {
        let p = m.backing.join(what).display().to_string();
        assert!(
            log.lines().any(|l| l.contains("ERROR") && l.contains(&p)),
            "no error line naming {p}:\n{log}"
        );
    }
}
