//! The backing store is ordinary files: a `cp -a` copy taken while the volume is mounted and
//! unlocked, or while it is locked, mounts again and decrypts to the same tree — including
//! IV_INO_LBLK_64 and IV_INO_LBLK_32 files, whose ciphertext depends on the stable inode number and
//! the volume UUID, which must travel with the copy.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use support::*;

/// The tree written into the volume: relative path → (contents or symlink target, stable ino).
type Tree = BTreeMap<String, (Vec<u8>, u64)>;

fn write_tree(mnt: &Path, id: &[u8; 16]) -> Tree {
    let mut tree = Tree::new();
    for (dir, flags) in [("default", 0x03u8), ("lblk64", 0x0b), ("lblk32", 0x13)] {
        let d = mnt.join(dir);
        fs::create_dir(&d).expect("mkdir");
        let mut policy = policy_v2(id);
        policy[3] = flags;
        set_policy(&d, &policy).expect("set policy");
        let long = "L".repeat(200);
        for (name, len) in [("small", 5usize), ("units", 10_000), (long.as_str(), 4097)] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + name.len()) as u8).collect();
            fs::write(d.join(name), &data).expect("write");
        }
        fs::create_dir(d.join("sub")).expect("mkdir sub");
        fs::write(d.join("sub/nested"), b"nested").expect("write nested");
        std::os::unix::fs::symlink("../units", d.join("sub/link")).expect("symlink");
        fs::hard_link(d.join("small"), d.join("sub/hardlink")).expect("link");
    }
    collect(mnt, mnt, &mut tree);
    tree
}

fn collect(root: &Path, dir: &Path, tree: &mut Tree) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let meta = fs::symlink_metadata(&p).expect("lstat");
        let rel = p
            .strip_prefix(root)
            .expect("prefix")
            .to_string_lossy()
            .into_owned();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&p).expect("readlink");
            tree.insert(
                rel,
                (target.into_os_string().into_encoded_bytes(), meta.ino()),
            );
        } else if meta.is_dir() {
            tree.insert(rel.clone(), (Vec::new(), meta.ino()));
            collect(root, &p, tree);
        } else {
            tree.insert(rel, (fs::read(&p).expect("read"), meta.ino()));
        }
    }
}

fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

#[test]
fn copies_of_the_backing_store_mount_and_decrypt() {
    let Some(mut m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).expect("add key");
    let want = write_tree(&m.mnt, &id);
    assert!(want.len() > 20, "tree too small: {want:?}");

    // A copy while mounted and unlocked (after the writes were flushed by close), and one while
    // mounted and locked.
    let unlocked_copy = m.tmp.path().join("copy-unlocked");
    cp_a(&m.backing, &unlocked_copy);
    remove_key(&m.mnt, &id, false).expect("remove key");
    assert_eq!(
        key_status(&m.mnt, &id).expect("status").0,
        1,
        "key should be absent"
    );
    let locked_copy = m.tmp.path().join("copy-locked");
    cp_a(&m.backing, &locked_copy);
    m.stop();

    for copy in [&unlocked_copy, &locked_copy] {
        fs::remove_dir_all(&m.backing).expect("rm backing");
        cp_a(copy, &m.backing);
        m.remount("");
        add_key(&m.mnt, &KEY).expect("add key to the copy");
        let mut got = Tree::new();
        collect(&m.mnt, &m.mnt, &mut got);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "names differ in {}",
            copy.display()
        );
        for (path, (data, ino)) in &want {
            let (got_data, got_ino) = &got[path];
            assert_eq!(got_data, data, "{path} differs in {}", copy.display());
            assert_eq!(
                got_ino,
                ino,
                "{path}: stable inode number changed in {}",
                copy.display()
            );
        }
        m.stop();
    }
}
