//! `fscryptfs inspect` gives what fscrypt-crypt-util needs, and `fscryptfs crypt` alone then
//! reproduces the plaintext: files, names and symlinks are written through a real mount, the volume
//! is unmounted, and everything is read back offline with `inspect` and decrypted with
//! `crypt --decrypt`, with options built here from the inode fields `inspect` prints — for every
//! filename padding, the default IVs, IV_INO_LBLK_64, IV_INO_LBLK_32, DIRECT_KEY (Adiantum) and
//! 512-byte data units. A second test decrypts a whole small tree (nested encrypted directories,
//! unencrypted files, escaped names, hard links, holes) and compares it with what was written.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use fscrypt::nokey::NokeyName;
use support::*;

// ---- running the command ----

/// `fscryptfs inspect BACKING ARGS...`: stdout, asserting success.
fn inspect(backing: &Path, args: &[&OsStr]) -> Vec<u8> {
    let mut a: Vec<&OsStr> = vec![OsStr::new("inspect"), backing.as_os_str()];
    a.extend_from_slice(args);
    let out = run_fscryptfs(&a, None);
    assert!(
        out.status.success(),
        "inspect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `fscryptfs crypt --decrypt ARGS... KEY` on `input`.
fn decrypt(args: &[String], input: &[u8]) -> Vec<u8> {
    crypt(args, input, true)
}

fn crypt(args: &[String], input: &[u8], dec: bool) -> Vec<u8> {
    let key = hex::encode(KEY);
    let mut a: Vec<&OsStr> = vec![OsStr::new("crypt")];
    if dec {
        a.push(OsStr::new("--decrypt"));
    }
    // CIPHER first in `args`; options after.
    a.extend(args[1..].iter().map(OsStr::new));
    a.push(OsStr::new(&args[0]));
    a.push(OsStr::new(&key));
    let out = run_fscryptfs(&a, Some(input));
    assert!(
        out.status.success(),
        "crypt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn strip_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

// ---- what `inspect inode` prints ----

/// An inode as `inspect inode` describes it.
#[derive(Debug)]
struct Inode {
    kv: HashMap<String, String>,
    paths: Vec<String>,
}

impl Inode {
    fn get(&self, k: &str) -> &str {
        self.kv
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in {:?}", self.kv))
    }
    fn num(&self, k: &str) -> u64 {
        self.get(k).split(' ').next().unwrap().parse().unwrap()
    }
    fn encrypted(&self) -> bool {
        self.get("encrypted") == "yes"
    }
    fn flags(&self) -> u8 {
        let f = self.get("flags").split(' ').next().unwrap();
        u8::from_str_radix(f.trim_start_matches("0x"), 16).unwrap()
    }
    fn padding(&self) -> usize {
        4 << (self.flags() & 3)
    }
    fn mode(&self, k: &str) -> u8 {
        self.num(k) as u8
    }
}

fn inode(backing: &Path, target: &[&OsStr]) -> Inode {
    let mut a = vec![OsStr::new("inode")];
    a.extend_from_slice(target);
    let out = String::from_utf8(inspect(backing, &a)).unwrap();
    let mut kv = HashMap::new();
    let mut paths = Vec::new();
    for l in out.lines() {
        let (k, v) = l.split_once(' ').unwrap_or((l, ""));
        if k == "path" {
            paths.push(v.to_string());
        }
        kv.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    Inode { kv, paths }
}

/// fscrypt-crypt-util's cipher name for a mode number (independent of the command's own table).
fn cipher(mode: u8) -> &'static str {
    match mode {
        1 => "AES-256-XTS",
        4 => "AES-256-CTS-CBC",
        5 => "AES-128-CBC-ESSIV",
        6 => "AES-128-CTS-CBC",
        9 => "Adiantum",
        10 => "AES-256-HCTR2",
        m => panic!("mode {m}"),
    }
}

/// The crypt options (CIPHER first) for the key of inode `i` with mode `mode`, built from the
/// fields `inspect` printed (v2 policies).
fn key_args(i: &Inode, mode: u8) -> Vec<String> {
    let mut a = vec![cipher(mode).to_string(), "--kdf=HKDF-SHA512".to_string()];
    let f = i.flags();
    if f & 0x04 != 0 {
        a.push("--direct-key".into());
        a.push(format!("--file-nonce={}", i.get("nonce")));
        a.push(format!("--mode-num={mode}"));
    } else if f & 0x18 != 0 {
        a.push(
            if f & 0x08 != 0 {
                "--iv-ino-lblk-64"
            } else {
                "--iv-ino-lblk-32"
            }
            .into(),
        );
        a.push(format!("--inode-number={}", i.num("ino")));
        a.push(format!("--fs-uuid={}", i.get("fs-uuid")));
        a.push(format!("--mode-num={mode}"));
    } else {
        a.push(format!("--file-nonce={}", i.get("nonce")));
    }
    a
}

fn contents_args(i: &Inode) -> Vec<String> {
    let mut a = key_args(i, i.mode("contents-mode"));
    a.push(format!("--data-unit-size={}", i.num("data-unit-size")));
    a
}

fn names_args(dir: &Inode) -> Vec<String> {
    let mut a = key_args(dir, dir.mode("filenames-mode"));
    a.push(format!("--padding={}", dir.padding()));
    a.push("--data-unit-size=255".into());
    a
}

fn target_args(link: &Inode) -> Vec<String> {
    let mut a = key_args(link, link.mode("filenames-mode"));
    a.push(format!("--padding={}", link.padding()));
    a.push("--data-unit-size=4096".into());
    a
}

/// The `crypt-*` line `inspect` suggests must be the options built here (as a set).
fn assert_suggested(i: &Inode, line: &str, ours: &[String]) {
    let theirs: BTreeSet<&str> = i.get(line).split(' ').collect();
    let ours: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
    assert_eq!(theirs, ours, "{line} differs");
}

// ---- decrypting one object ----

fn decrypt_name(backing: &Path, dir: &Path, dir_inode: &Inode, entry: &OsStr) -> Vec<u8> {
    let ct = inspect(
        backing,
        &[
            OsStr::new("name"),
            dir.as_os_str(),
            entry,
            OsStr::new("--raw"),
        ],
    );
    let hexed = inspect(backing, &[OsStr::new("name"), dir.as_os_str(), entry]);
    assert_eq!(String::from_utf8(hexed).unwrap().trim(), hex::encode(&ct));
    assert_eq!(
        NokeyName::encode([0; 8], &ct),
        entry.to_str().unwrap(),
        "the no-key name is the ciphertext's"
    );
    strip_nuls(decrypt(&names_args(dir_inode), &ct))
}

fn decrypt_file(backing: &Path, path: &Path) -> Vec<u8> {
    let i = inode(backing, &[path.as_os_str()]);
    let size = i.num("size") as usize;
    let du = i.num("data-unit-size") as usize;
    let raw = inspect(
        backing,
        &[OsStr::new("data"), path.as_os_str(), OsStr::new("--raw")],
    );
    assert_eq!(
        raw.len(),
        size.div_ceil(du) * du,
        "whole units, holes as zeros"
    );
    if !i.encrypted() {
        return raw[..size].to_vec();
    }
    assert_suggested(&i, "crypt-contents", &contents_args(&i));
    // Unit by unit, with their indices, leaving holes out (they read as zeros).
    let hexed = String::from_utf8(inspect(
        backing,
        &[
            OsStr::new("data"),
            path.as_os_str(),
            OsStr::new("--skip-holes"),
        ],
    ))
    .unwrap();
    let mut plain = vec![0u8; raw.len()];
    let mut units = 0;
    for l in hexed.lines() {
        let (idx, h) = l.split_once(' ').unwrap();
        let idx: usize = idx.parse().unwrap();
        let unit = hex::decode(h).unwrap();
        assert_eq!(unit, raw[idx * du..(idx + 1) * du], "hex and raw agree");
        let mut a = contents_args(&i);
        a.push(format!("--data-unit-index={idx}"));
        plain[idx * du..(idx + 1) * du].copy_from_slice(&decrypt(&a, &unit));
        units += 1;
    }
    // Without holes, the whole stream at once decrypts too.
    if units == size.div_ceil(du) {
        assert_eq!(decrypt(&contents_args(&i), &raw), plain);
    }
    plain.truncate(size);
    plain
}

fn decrypt_symlink(backing: &Path, path: &Path) -> Vec<u8> {
    let i = inode(backing, &[path.as_os_str()]);
    let raw = inspect(
        backing,
        &[OsStr::new("symlink"), path.as_os_str(), OsStr::new("--raw")],
    );
    if !i.encrypted() {
        return raw;
    }
    let with_len = inspect(
        backing,
        &[
            OsStr::new("symlink"),
            path.as_os_str(),
            OsStr::new("--raw"),
            OsStr::new("--with-length"),
        ],
    );
    assert_eq!(&with_len[..2], &(raw.len() as u16).to_le_bytes());
    assert_eq!(&with_len[2..], &raw[..]);
    assert_eq!(i.num("target-ciphertext-length") as usize, raw.len());
    assert_suggested(&i, "crypt-target", &target_args(&i));
    strip_nuls(decrypt(&target_args(&i), &raw))
}

// ---- test 1: every padding and IV flag ----

struct Variant {
    name: &'static str,
    modes: (u8, u8),
    flags: u8,
    log2_du: u8,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "pad4",
        modes: (1, 4),
        flags: 0x00,
        log2_du: 0,
    },
    Variant {
        name: "pad8",
        modes: (1, 4),
        flags: 0x01,
        log2_du: 0,
    },
    Variant {
        name: "pad16",
        modes: (1, 4),
        flags: 0x02,
        log2_du: 0,
    },
    Variant {
        name: "pad32",
        modes: (1, 4),
        flags: 0x03,
        log2_du: 0,
    },
    Variant {
        name: "lblk64",
        modes: (1, 4),
        flags: 0x02 | 0x08,
        log2_du: 0,
    },
    Variant {
        name: "lblk32",
        modes: (1, 4),
        flags: 0x10,
        log2_du: 0,
    },
    Variant {
        name: "du512",
        modes: (1, 4),
        flags: 0x03,
        log2_du: 9,
    },
    Variant {
        name: "direct",
        modes: (9, 9),
        flags: 0x01 | 0x04,
        log2_du: 0,
    },
];

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

#[test]
fn inspect_output_decrypts_with_crypt_for_every_padding_and_iv_flag() {
    let Some(mut m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).unwrap();
    let long_name = "L".repeat(180);
    let long_target = "t/".repeat(150);
    for v in VARIANTS {
        let mut p = policy_v2(&id);
        p[1] = v.modes.0;
        p[2] = v.modes.1;
        p[3] = v.flags;
        p[4] = v.log2_du;
        fs::create_dir(m.path(v.name)).unwrap();
        set_policy(&m.path(v.name), &p).unwrap();
        let d = m.path(v.name);
        fs::write(d.join("file"), pattern(10_000, 1)).unwrap();
        fs::write(d.join(&long_name), pattern(700, 2)).unwrap();
        fs::write(d.join("empty"), b"").unwrap();
        let du = if v.log2_du == 0 { 4096 } else { 1 << v.log2_du };
        let mut f = fs::File::create(d.join("sparse")).unwrap();
        f.seek(SeekFrom::Start(3 * du + 7)).unwrap();
        f.write_all(&pattern(100, 3)).unwrap();
        drop(f);
        std::os::unix::fs::symlink("some/target", d.join("link")).unwrap();
        std::os::unix::fs::symlink(&long_target, d.join("longlink")).unwrap();
    }
    m.stop();
    let b = m.backing.clone();

    let uuid = String::from_utf8(inspect(&b, &[OsStr::new("volume")])).unwrap();
    let uuid = uuid
        .lines()
        .find_map(|l| l.strip_prefix("uuid "))
        .expect("uuid line")
        .to_string();
    for v in VARIANTS {
        let dir = Path::new(v.name);
        let di = inode(&b, &[dir.as_os_str()]);
        assert!(di.encrypted(), "{}", v.name);
        assert_eq!(di.get("fs-uuid"), uuid);
        assert_eq!(di.flags(), v.flags, "{}", v.name);
        assert_eq!(di.padding(), 4 << (v.flags & 3));
        assert_eq!(di.get("key-identifier"), hex::encode(id));
        assert_suggested(&di, "crypt-names", &names_args(&di));
        // The same inode by number.
        let by_ino = inode(
            &b,
            &[OsStr::new("--ino"), OsStr::new(&di.num("ino").to_string())],
        );
        assert_eq!(by_ino.paths, vec![v.name.to_string()]);
        assert_eq!(by_ino.get("nonce"), di.get("nonce"));

        // Names: every entry decrypts, and encrypting a name gives its no-key (backing) name.
        let ls = String::from_utf8(inspect(&b, &[OsStr::new("ls"), dir.as_os_str()])).unwrap();
        let mut names = BTreeMap::new();
        for l in ls.lines() {
            let mut it = l.splitn(3, ' ');
            let (_ino, kind, name) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let plain = decrypt_name(&b, dir, &di, OsStr::new(name));
            names.insert(
                String::from_utf8(plain).unwrap(),
                (kind.to_string(), name.to_string()),
            );
        }
        let want: BTreeSet<String> = ["file", "empty", "sparse", "link", "longlink", &long_name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            names.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "{}",
            v.name
        );
        let ct = crypt(&names_args(&di), b"file", false);
        assert_eq!(ct.len(), 16usize.next_multiple_of(di.padding()));
        assert_eq!(NokeyName::encode([0; 8], &ct), names["file"].1);
        let nk = |n: &str| dir.join(&names[n].1);

        // Contents.
        assert_eq!(
            decrypt_file(&b, &nk("file")),
            pattern(10_000, 1),
            "{}",
            v.name
        );
        assert_eq!(
            decrypt_file(&b, &nk(&long_name)),
            pattern(700, 2),
            "{}",
            v.name
        );
        assert_eq!(decrypt_file(&b, &nk("empty")), b"", "{}", v.name);
        let du = if v.log2_du == 0 {
            4096
        } else {
            1usize << v.log2_du
        };
        let mut sparse = vec![0u8; 3 * du + 7];
        sparse.extend_from_slice(&pattern(100, 3));
        assert_eq!(decrypt_file(&b, &nk("sparse")), sparse, "{}", v.name);
        let si = inode(&b, &[nk("sparse").as_os_str()]);
        assert_eq!(si.num("data-unit-size") as usize, du);

        // Symlink targets (the symlink's own key).
        assert_eq!(
            decrypt_symlink(&b, &nk("link")),
            b"some/target",
            "{}",
            v.name
        );
        assert_eq!(decrypt_symlink(&b, &nk("longlink")), long_target.as_bytes());
    }
    let out = run_fscryptfs(&[OsStr::new("fsck"), b.as_os_str()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "fsck: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---- test 2: a whole tree ----

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Dir,
    File(Vec<u8>),
    Link(Vec<u8>),
    Special,
}

/// Decrypts the tree under no-key path `rel` (plaintext path `plain`) with `inspect` and `crypt`.
fn walk(b: &Path, rel: &Path, plain: &Path, out: &mut BTreeMap<PathBuf, Item>) {
    let di = inode(b, &[rel.as_os_str()]);
    let ls = inspect(b, &[OsStr::new("ls"), rel.as_os_str()]);
    for l in ls.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let mut it = l.splitn(3, |&c| c == b' ');
        let (_ino, kind, name) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let name = OsStr::from_bytes(name);
        let child = rel.join(name);
        let pname = if di.encrypted() {
            OsString::from_vec(decrypt_name(b, rel, &di, name))
        } else {
            name.to_os_string()
        };
        let ppath = plain.join(&pname);
        match kind {
            b"dir" => {
                out.insert(ppath.clone(), Item::Dir);
                walk(b, &child, &ppath, out);
            }
            b"regular" => {
                out.insert(ppath, Item::File(decrypt_file(b, &child)));
            }
            b"symlink" => {
                out.insert(ppath, Item::Link(decrypt_symlink(b, &child)));
            }
            _ => {
                out.insert(ppath, Item::Special);
            }
        }
    }
}

#[test]
fn whole_tree_decrypts_with_crypt_alone() {
    let Some(mut m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let id = add_key(&m.mnt, &KEY).unwrap();
    let mut want = BTreeMap::new();
    let mut file = |rel: &str, data: Vec<u8>| {
        fs::write(m.path(rel), &data).unwrap();
        want.insert(PathBuf::from(rel), Item::File(data));
    };
    file("plain.txt", b"not encrypted\n".to_vec());
    file(".fscryptfs-user", b"escaped name".to_vec());
    for (d, flags) in [("enc", 0x02u8), ("lb", 0x10)] {
        fs::create_dir(m.path(d)).unwrap();
        let mut p = policy_v2(&id);
        p[3] = flags;
        set_policy(&m.path(d), &p).unwrap();
    }
    fs::create_dir(m.path("enc/sub")).unwrap();
    fs::create_dir(m.path("enc/sub/deeper")).unwrap();
    let mut file = |rel: &str, data: Vec<u8>| {
        fs::write(m.path(rel), &data).unwrap();
        want.insert(PathBuf::from(rel), Item::File(data));
    };
    file("enc/a.txt", b"hello, world\n".to_vec());
    file("enc/sub/deep.bin", pattern(9000, 7));
    file("enc/sub/deeper/x", pattern(4096, 8));
    file("lb/x", pattern(5000, 9));
    file(&format!("enc/{}", "é".repeat(100)), pattern(33, 10));
    fs::hard_link(m.path("enc/a.txt"), m.path("enc/hard")).unwrap();
    want.insert("enc/hard".into(), Item::File(b"hello, world\n".to_vec()));
    std::os::unix::fs::symlink("../a.txt", m.path("enc/sub/link")).unwrap();
    want.insert("enc/sub/link".into(), Item::Link(b"../a.txt".to_vec()));
    std::os::unix::fs::symlink("plain.txt", m.path("plainlink")).unwrap();
    want.insert("plainlink".into(), Item::Link(b"plain.txt".to_vec()));
    let st = Command::new("mkfifo")
        .arg(m.path("enc/fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    want.insert("enc/fifo".into(), Item::Special);
    for d in ["enc", "lb", "enc/sub", "enc/sub/deeper"] {
        want.insert(d.into(), Item::Dir);
    }
    m.stop();

    let mut got = BTreeMap::new();
    walk(&m.backing, Path::new("."), Path::new(""), &mut got);
    assert_eq!(got, want);

    // The hard link: one inode number, both paths.
    let a = inode(&m.backing, &[OsStr::new("enc")]);
    let ls =
        String::from_utf8(inspect(&m.backing, &[OsStr::new("ls"), OsStr::new("enc")])).unwrap();
    let hard = ls
        .lines()
        .map(|l| l.splitn(3, ' ').collect::<Vec<_>>())
        .find(|f| {
            f[1] == "regular"
                && decrypt_name(&m.backing, Path::new("enc"), &a, OsStr::new(f[2])) == b"hard"
        })
        .unwrap();
    let by_ino = inode(&m.backing, &[OsStr::new("--ino"), OsStr::new(hard[0])]);
    assert_eq!(by_ino.paths.len(), 2, "{by_ino:?}");
    assert_eq!(by_ino.num("links"), 2);

    // Mounted read-only: the tools run quietly (they share the volume lock with the daemon).
    let b = m.backing.clone();
    let quiet = |args: &[&OsStr]| {
        let out = run_fscryptfs(args, None);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    m.remount("ro");
    assert_eq!(quiet(&[OsStr::new("fsck"), b.as_os_str()]), "");
    assert_eq!(
        quiet(&[OsStr::new("inspect"), b.as_os_str(), OsStr::new("volume")]),
        ""
    );
    // Mounted read-write: refused (the volume lock), unless --force, which warns.
    m.remount("");
    let out = run_fscryptfs(
        &[OsStr::new("inspect"), b.as_os_str(), OsStr::new("volume")],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let err = quiet(&[
        OsStr::new("inspect"),
        OsStr::new("--force"),
        b.as_os_str(),
        OsStr::new("volume"),
    ]);
    assert!(err.contains("mounted read-write"), "{err}");
}

#[test]
fn bad_requests_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_fscryptfs(
        &[
            OsStr::new("inspect"),
            tmp.path().join("nope").as_os_str(),
            OsStr::new("volume"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    let vol = tmp.path().join("vol");
    assert!(Command::new(bin())
        .arg("init")
        .arg(&vol)
        .status()
        .unwrap()
        .success());
    for (args, code) in [
        (vec!["inode", "missing"], 1),
        (vec!["data", "."], 1),
        (vec!["symlink", "."], 1),
        (vec!["inode", "--ino", "99"], 1),
        (vec!["inode", "..", "--ino", "1"], 2),
        (vec!["bogus"], 2),
    ] {
        let mut a = vec![OsStr::new("inspect"), vol.as_os_str()];
        a.extend(args.iter().map(OsStr::new));
        let out = run_fscryptfs(&a, None);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("fscryptfs: "), "{err}");
    }
    let out = run_fscryptfs(&[OsStr::new("inspect"), OsStr::new("--help")], None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no-key path"));
}

/// `inspect` on a backing tree with hostile objects where fscryptfs's own files belong (issue 8):
/// a clear error (exit 1) naming the object, never a hang, a huge read or a followed symlink.
#[test]
fn hostile_metadata_objects_give_clear_errors() {
    use std::os::unix::fs::MetadataExt;
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    fs::create_dir(m.path("enc/sub")).unwrap();
    fs::write(m.path("enc/sub/f"), b"x").unwrap();
    let long = "L".repeat(200);
    fs::write(m.path(&format!("enc/{long}")), b"long").unwrap();
    m.stop();
    let clean = m.backing.clone();
    let tmp = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let dst = tmp.path().join(name);
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&clean)
            .arg(&dst)
            .status()
            .unwrap()
            .success());
        dst
    };
    let ls = String::from_utf8(inspect(&clean, &[OsStr::new("ls"), OsStr::new("enc")])).unwrap();
    let nokey = |kind: &str| -> String {
        ls.lines()
            .filter(|l| l.split(' ').nth(1) == Some(kind))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .max_by_key(String::len)
            .unwrap()
    };
    let (sub, long_nokey) = (nokey("dir"), nokey("regular"));
    assert!(long_nokey.len() > 100, "{ls}");
    let fifo = |p: &Path| {
        fs::remove_file(p).unwrap();
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    };
    let run = |b: &Path, args: &[&str], msg: &str| {
        let mut a: Vec<&OsStr> = vec![OsStr::new("inspect"), b.as_os_str()];
        a.extend(args.iter().map(OsStr::new));
        let r = run_bounded(&a, std::time::Duration::from_secs(60));
        assert!(r.code.is_some(), "inspect {args:?} hung:\n{r:?}");
        assert_eq!(r.code, Some(1), "inspect {args:?}:\n{r:?}");
        assert!(
            r.stderr.contains(msg),
            "inspect {args:?}: no {msg:?} in\n{r:?}"
        );
        r
    };

    // A FIFO at the root's metadata: every command that reads it fails at once.
    let b = copy("fifo-root");
    fifo(&b.join(".fscryptfs.dir"));
    run(&b, &["ls", "."], "a FIFO where a regular file belongs");
    run(&b, &["inode", "enc"], ".fscryptfs.dir: a FIFO");
    // In a subdirectory: that directory fails, its listing shows it damaged.
    let b = copy("fifo-sub");
    fifo(&b.join("enc").join(&sub).join(".fscryptfs.dir"));
    run(&b, &["inode", &format!("enc/{sub}")], "a FIFO");
    run(&b, &["ls", "enc"], "could not be read");
    // At a side file.
    let b = copy("fifo-side");
    fifo(&b.join("enc").join(format!("{long_nokey}.n")));
    run(&b, &["name", "enc", &long_nokey], "a FIFO");

    // A symlink to a canary at the config: refused, the canary never opened.
    let b = copy("symlink-conf");
    let canary = tmp.path().join("canary");
    fs::copy(b.join(".fscryptfs.conf"), &canary).unwrap();
    let c = std::ffi::CString::new(canary.as_os_str().as_bytes()).unwrap();
    let ts = [libc::timespec {
        tv_sec: 1_000_000,
        tv_nsec: 0,
    }; 2];
    // SAFETY: a valid path and two timespecs.
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) },
        0
    );
    fs::remove_file(b.join(".fscryptfs.conf")).unwrap();
    std::os::unix::fs::symlink(&canary, b.join(".fscryptfs.conf")).unwrap();
    run(&b, &["volume"], "a symlink where a regular file belongs");
    assert_eq!(
        fs::metadata(&canary).unwrap().atime(),
        1_000_000,
        "canary read"
    );

    // An 8 GiB sparse metadata file: refused from its size, never read.
    let b = copy("huge");
    let meta = b.join("enc").join(&sub).join(".fscryptfs.dir");
    fs::remove_file(&meta).unwrap();
    fs::File::create(&meta).unwrap().set_len(8 << 30).unwrap();
    let r = run(&b, &["inode", &format!("enc/{sub}")], "more than the 72");
    assert!(
        r.max_rss_kib < 200 * 1024,
        "inspect used {} KiB",
        r.max_rss_kib
    );
}
