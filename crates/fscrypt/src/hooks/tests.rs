//! Unit tests of `hooks`: each rule against a table of cases (key states, policies, file types,
//! flags, callers), the errno the kernel gives for each, and that a filesystem question (is the
//! directory empty?) is asked only when the rule reaches it.

use super::*;
use crate::keysetup::{InodeKind, InodeParams, MasterSecret};
use crate::policy::{PolicyV1, PolicyV2};
use crate::secret::SecretBytes;
use crate::EncryptionMode;
use std::cell::Cell;

/// The result of a directory's key setup.
type KeySetup = Result<Option<Arc<InodeKey>>>;
/// (dir key, dir policy, inode type, inode policy, expected errno)
type LinkCase = (
    DirKey,
    Option<Policy>,
    FileType,
    Option<Policy>,
    Option<Errno>,
);
/// (dir policy, dummy policy, type, expected policy of the new inode)
type InheritCase = (Option<Policy>, Option<Policy>, FileType, Option<Policy>);

const RAW: [u8; 64] = [0x42; 64];
const ALICE: u32 = 1000;
const BOB: u32 = 1001;

fn fsp() -> FsParams {
    FsParams::ext4(12, true)
}

fn v2(identifier: [u8; 16], flags: u8) -> Policy {
    Policy::V2(PolicyV2 {
        contents_mode: EncryptionMode::Aes256Xts,
        filenames_mode: EncryptionMode::Aes256Cts,
        flags,
        log2_data_unit_size: 0,
        master_key_identifier: identifier,
    })
}

fn v1() -> Policy {
    Policy::V1(PolicyV1 {
        contents_mode: EncryptionMode::Aes256Xts,
        filenames_mode: EncryptionMode::Aes256Cts,
        flags: 0,
        master_key_descriptor: [5; 8],
    })
}

/// Two distinct policies.
fn p1() -> Policy {
    v2([1; 16], 0)
}
fn p2() -> Policy {
    v2([2; 16], 0)
}

fn inode(ino: u64, file_type: FileType, policy: Option<Policy>) -> Inode {
    Inode {
        ino,
        file_type,
        policy,
    }
}

/// A directory key under a v2 policy of `RAW`, PAD_32.
fn dir_key() -> Arc<InodeKey> {
    let master = MasterSecret::new_v2(&RAW).unwrap();
    let policy = v2(master.identifier().unwrap(), 3);
    let ctx = Context::new(policy, [7; 16]);
    let params = InodeParams {
        kind: InodeKind::Directory,
        ino: 2,
        fs_uuid: [1; 16],
    };
    Arc::new(InodeKey::setup(&master, &ctx, &params, &fsp()).unwrap())
}

fn errno_of<T: std::fmt::Debug>(r: Result<T>) -> Option<Errno> {
    r.err().map(|e| e.errno())
}

use FileType::{Directory as D, Regular as R, Special as S, Symlink as L};

#[test]
fn has_permitted_context_table() {
    // (parent policy, child type, child policy, permitted)
    let cases: &[(Option<Policy>, FileType, Option<Policy>, bool)] = &[
        // An unencrypted parent permits everything.
        (None, R, None, true),
        (None, D, Some(p1()), true),
        (None, L, Some(p2()), true),
        (None, S, None, true),
        // An encrypted parent: the same policy only...
        (Some(p1()), R, Some(p1()), true),
        (Some(p1()), D, Some(p1()), true),
        (Some(p1()), L, Some(p1()), true),
        (Some(p1()), R, Some(p2()), false),
        (Some(p1()), D, Some(p2()), false),
        (Some(p1()), L, Some(v1()), false),
        (Some(p1()), R, None, false),
        (Some(p1()), D, None, false),
        (Some(p1()), L, None, false),
        // ...except for special files, never encrypted.
        (Some(p1()), S, None, true),
        // Same keys, different flags: different policies.
        (Some(p1()), R, Some(v2([1; 16], 3)), false),
    ];
    for (i, (pp, ft, cp, want)) in cases.iter().enumerate() {
        let got = has_permitted_context(&inode(1, D, *pp), &inode(2, *ft, *cp));
        assert_eq!(got, *want, "case {i}");
    }
}

#[test]
fn dir_key_from_setup_and_require() {
    let k = dir_key();
    let cases: Vec<(KeySetup, Option<Errno>, &str)> = vec![
        (Ok(None), None, "plain"),
        (Ok(Some(Arc::clone(&k))), None, "key"),
        (Err(Error::no_key("absent")), None, "nokey"),
        (Err(Error::new(Errno::IO, "x")), Some(Errno::IO), ""),
        (Err(Error::corrupt("x")), Some(Errno::UCLEAN), ""),
    ];
    for (setup, err, state) in cases {
        match DirKey::from_setup(setup) {
            Err(e) => assert_eq!(Some(e.errno()), err),
            Ok(dk) => {
                assert_eq!(err, None);
                match (state, &dk) {
                    ("plain", DirKey::Plain) => assert!(dk.require().unwrap().is_none()),
                    ("key", DirKey::Key(_)) => assert!(dk.require().unwrap().is_some()),
                    ("nokey", DirKey::NoKey) => {
                        assert_eq!(errno_of(dk.require()), Some(Errno::NOKEY))
                    }
                    _ => panic!("unexpected state for {state}"),
                }
            }
        }
    }
}

#[test]
fn prepare_link_table() {
    let k = DirKey::Key(dir_key());
    // (dir key, dir policy, inode type, inode policy, expected errno)
    let cases: Vec<LinkCase> = vec![
        (DirKey::Plain, None, R, None, None),
        (DirKey::Plain, None, R, Some(p1()), None),
        (DirKey::Plain, None, S, None, None),
        (k.clone(), Some(p1()), R, Some(p1()), None),
        (k.clone(), Some(p1()), L, Some(p1()), None),
        (k.clone(), Some(p1()), S, None, None),
        (k.clone(), Some(p1()), R, Some(p2()), Some(Errno::XDEV)),
        (k.clone(), Some(p1()), R, None, Some(Errno::XDEV)),
        (k.clone(), Some(p1()), L, None, Some(Errno::XDEV)),
        // The key comes first: ENOKEY even where the contexts would not be permitted.
        (DirKey::NoKey, Some(p1()), R, Some(p1()), Some(Errno::NOKEY)),
        (DirKey::NoKey, Some(p1()), R, None, Some(Errno::NOKEY)),
        (DirKey::NoKey, Some(p1()), S, None, Some(Errno::NOKEY)),
    ];
    for (i, (dk, dp, ft, ip, want)) in cases.into_iter().enumerate() {
        let r = prepare_link(&dk, &inode(1, D, dp), &inode(2, ft, ip));
        assert_eq!(errno_of(r), want, "case {i}");
    }
}

#[test]
fn prepare_rename_table() {
    let k = DirKey::Key(dir_key());
    struct Case {
        old: (DirKey, u64, Option<Policy>),
        new: (DirKey, u64, Option<Policy>),
        source: (FileType, Option<Policy>),
        target: Option<(FileType, Option<Policy>)>,
        exchange: bool,
        want: Option<Errno>,
    }
    let plain = |ino| (DirKey::Plain, ino, None);
    let enc = |ino, p| (k.clone(), ino, Some(p));
    let locked = |ino, p| (DirKey::NoKey, ino, Some(p));
    let cases = vec![
        // Unencrypted to unencrypted: anything goes.
        Case {
            old: plain(1),
            new: plain(2),
            source: (R, Some(p1())),
            target: None,
            exchange: false,
            want: None,
        },
        // Out of an encrypted directory into an unencrypted one: allowed (the kernel's rule
        // checks the new directory only).
        Case {
            old: enc(1, p1()),
            new: plain(2),
            source: (R, Some(p1())),
            target: None,
            exchange: false,
            want: None,
        },
        // Into an encrypted directory: the source's policy must be the directory's.
        Case {
            old: plain(1),
            new: enc(2, p1()),
            source: (R, None),
            target: None,
            exchange: false,
            want: Some(Errno::XDEV),
        },
        Case {
            old: enc(1, p2()),
            new: enc(2, p1()),
            source: (D, Some(p2())),
            target: None,
            exchange: false,
            want: Some(Errno::XDEV),
        },
        Case {
            old: enc(1, p1()),
            new: enc(2, p1()),
            source: (L, Some(p1())),
            target: None,
            exchange: false,
            want: None,
        },
        // Special files move anywhere.
        Case {
            old: plain(1),
            new: enc(2, p1()),
            source: (S, None),
            target: None,
            exchange: false,
            want: None,
        },
        // A replaced target is not checked without RENAME_EXCHANGE...
        Case {
            old: enc(1, p1()),
            new: plain(2),
            source: (R, Some(p1())),
            target: Some((R, None)),
            exchange: false,
            want: None,
        },
        // ...with it, the target must be permitted in the old directory.
        Case {
            old: enc(1, p1()),
            new: plain(2),
            source: (R, Some(p1())),
            target: Some((R, None)),
            exchange: true,
            want: Some(Errno::XDEV),
        },
        Case {
            old: enc(1, p1()),
            new: plain(2),
            source: (R, Some(p1())),
            target: Some((S, None)),
            exchange: true,
            want: None,
        },
        Case {
            old: enc(1, p1()),
            new: enc(2, p1()),
            source: (R, Some(p1())),
            target: Some((D, Some(p1()))),
            exchange: true,
            want: None,
        },
        Case {
            old: plain(1),
            new: enc(2, p1()),
            source: (R, Some(p1())),
            target: Some((R, None)),
            exchange: true,
            want: None,
        },
        // The source is checked before the target.
        Case {
            old: enc(1, p2()),
            new: enc(2, p1()),
            source: (R, Some(p2())),
            target: Some((R, Some(p1()))),
            exchange: true,
            want: Some(Errno::XDEV),
        },
        // An exchange without a target is not this hook's to refuse.
        Case {
            old: enc(1, p1()),
            new: plain(2),
            source: (R, Some(p1())),
            target: None,
            exchange: true,
            want: None,
        },
        // Within one directory nothing but the key is checked.
        Case {
            old: enc(1, p1()),
            new: enc(1, p1()),
            source: (R, Some(p2())),
            target: Some((R, None)),
            exchange: true,
            want: None,
        },
        // Both keys, old first, before any policy.
        Case {
            old: locked(1, p1()),
            new: enc(2, p2()),
            source: (R, Some(p1())),
            target: None,
            exchange: false,
            want: Some(Errno::NOKEY),
        },
        Case {
            old: enc(1, p1()),
            new: locked(2, p2()),
            source: (R, Some(p1())),
            target: None,
            exchange: false,
            want: Some(Errno::NOKEY),
        },
        Case {
            old: locked(1, p1()),
            new: locked(1, p1()),
            source: (R, Some(p1())),
            target: None,
            exchange: false,
            want: Some(Errno::NOKEY),
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let od = inode(c.old.1, D, c.old.2);
        let nd = inode(c.new.1, D, c.new.2);
        let src = inode(10, c.source.0, c.source.1);
        let dst = c.target.map(|(t, p)| inode(11, t, p));
        let r = prepare_rename(&c.old.0, &od, &c.new.0, &nd, &src, dst.as_ref(), c.exchange);
        assert_eq!(errno_of(r), c.want, "case {i}");
    }
}

#[test]
fn setup_filename_table() {
    let key = dir_key();
    let k = DirKey::Key(Arc::clone(&key));
    let ct = key.encrypt_filename(b"hello").unwrap();
    let nokey = NokeyName::encode([0; 8], &ct);
    let long_ct = key.encrypt_filename(&[b'x'; 200]).unwrap();
    let long_nokey = NokeyName::encode([0; 8], &long_ct);
    let too_long = vec![b'a'; 256];
    // (state, name, lookup, expected)
    let cases: Vec<(&DirKey, &[u8], bool, Result<FilenameLookup>)> = vec![
        (&DirKey::Plain, b"hello", true, Ok(FilenameLookup::Plain)),
        (&DirKey::Plain, b"hello", false, Ok(FilenameLookup::Plain)),
        (
            &DirKey::Plain,
            &too_long,
            false,
            Err(Errno::NAMETOOLONG.into_err()),
        ),
        (
            &k,
            b"hello",
            true,
            Ok(FilenameLookup::Ciphertext(ct.clone())),
        ),
        (
            &k,
            b"hello",
            false,
            Ok(FilenameLookup::Ciphertext(ct.clone())),
        ),
        (&k, &too_long, true, Err(Errno::NAMETOOLONG.into_err())),
        // With the key, a no-key name is just a name.
        (
            &k,
            nokey.as_bytes(),
            true,
            Ok(FilenameLookup::Ciphertext(
                key.encrypt_filename(nokey.as_bytes()).unwrap(),
            )),
        ),
        // Without it, creating needs the key...
        (
            &DirKey::NoKey,
            b"hello",
            false,
            Err(Errno::NOKEY.into_err()),
        ),
        (
            &DirKey::NoKey,
            nokey.as_bytes(),
            false,
            Err(Errno::NOKEY.into_err()),
        ),
        // ...and a lookup takes no-key names only.
        (
            &DirKey::NoKey,
            nokey.as_bytes(),
            true,
            Ok(FilenameLookup::NoKey(NokeyName::decode(&nokey).unwrap())),
        ),
        (
            &DirKey::NoKey,
            long_nokey.as_bytes(),
            true,
            Ok(FilenameLookup::NoKey(
                NokeyName::decode(&long_nokey).unwrap(),
            )),
        ),
        (
            &DirKey::NoKey,
            b"hello.txt",
            true,
            Err(Errno::NOENT.into_err()),
        ),
        (&DirKey::NoKey, b"AAAA", true, Err(Errno::NOENT.into_err())),
        (
            &DirKey::NoKey,
            b"\xff\xfe",
            true,
            Err(Errno::NOENT.into_err()),
        ),
        (
            &DirKey::NoKey,
            &too_long,
            true,
            Err(Errno::NAMETOOLONG.into_err()),
        ),
    ];
    for (i, (dk, name, lookup, want)) in cases.into_iter().enumerate() {
        let got = setup_filename(dk, name, lookup);
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "case {i}"),
            (Err(g), Err(w)) => assert_eq!(g.errno(), w.errno(), "case {i}"),
            (g, w) => panic!("case {i}: got {g:?}, want {w:?}"),
        }
    }
    // The no-key lookup finds the entry it names.
    match setup_filename(&DirKey::NoKey, long_nokey.as_bytes(), true) {
        Ok(FilenameLookup::NoKey(n)) => assert!(n.matches(&long_ct)),
        other => panic!("{other:?}"),
    }
}

/// An `Error` carrying `errno`, for expected results.
trait IntoErr {
    fn into_err(self) -> Error;
}
impl IntoErr for Errno {
    fn into_err(self) -> Error {
        Error::new(self, "expected")
    }
}

#[test]
fn fname_disk_to_usr_table() {
    let key = dir_key();
    let k = DirKey::Key(Arc::clone(&key));
    let ct = key.encrypt_filename(b"hello").unwrap();
    let long_name = [b'y'; 255];
    let long_ct = key.encrypt_filename(&long_name).unwrap();
    let slash = key.encrypt_filename(b"a/b").unwrap();
    let cases: Vec<(&DirKey, DiskName<'_>, UsrName)> = vec![
        (
            &DirKey::Plain,
            DiskName::Plain(b"hello"),
            UsrName::Name(b"hello".to_vec()),
        ),
        // With the key: the plaintext, of any length.
        (
            &k,
            DiskName::Encrypted(Some(&ct)),
            UsrName::Name(b"hello".to_vec()),
        ),
        (
            &k,
            DiskName::Encrypted(Some(&long_ct)),
            UsrName::Name(long_name.to_vec()),
        ),
        // Without it, or without the ciphertext: the no-key name.
        (
            &DirKey::NoKey,
            DiskName::Encrypted(Some(&ct)),
            UsrName::NoKeyName,
        ),
        (
            &DirKey::NoKey,
            DiskName::Encrypted(None),
            UsrName::NoKeyName,
        ),
        (&k, DiskName::Encrypted(None), UsrName::NoKeyName),
        // A ciphertext that is no valid name: the no-key name, said so.
        (
            &k,
            DiskName::Encrypted(Some(&slash)),
            UsrName::Undecryptable,
        ),
        (
            &k,
            DiskName::Encrypted(Some(&[0u8; 16])),
            UsrName::Undecryptable,
        ),
        (
            &k,
            DiskName::Encrypted(Some(&[9u8; 15])),
            UsrName::Undecryptable,
        ),
        (
            &k,
            DiskName::Encrypted(Some(&[9u8; 256])),
            UsrName::Undecryptable,
        ),
    ];
    for (i, (dk, disk, want)) in cases.into_iter().enumerate() {
        let got = fname_disk_to_usr(dk, disk);
        // A zero ciphertext may decrypt to anything; only a valid name is shown as such.
        if let (UsrName::Name(n), UsrName::Undecryptable) = (&got, &want) {
            assert!(
                !n.is_empty() && !n.contains(&b'/') && !n.contains(&0),
                "case {i}"
            );
            continue;
        }
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn new_inodes_inherit_the_directory_policy_else_the_dummy() {
    // (dir policy, dummy policy, type, expected policy of the new inode)
    let cases: &[InheritCase] = &[
        (None, None, R, None),
        (None, None, D, None),
        (Some(p1()), None, R, Some(p1())),
        (Some(p1()), None, D, Some(p1())),
        (Some(p1()), None, L, Some(p1())),
        (Some(p1()), None, S, None),
        (None, Some(p2()), R, Some(p2())),
        (None, Some(p2()), L, Some(p2())),
        (None, Some(p2()), S, None),
        // The directory's own policy wins over the dummy.
        (Some(p1()), Some(p2()), D, Some(p1())),
    ];
    for (i, (dp, dummy, ft, want)) in cases.iter().enumerate() {
        assert_eq!(
            policy_to_inherit(dp.as_ref(), dummy.as_ref()).filter(|_| ft.is_encryptable()),
            *want,
            "case {i}"
        );
        let ctx = prepare_new_inode(dp.as_ref(), dummy.as_ref(), *ft).unwrap();
        assert_eq!(ctx.map(|c| *c.policy()), *want, "case {i}");
    }
    // Every new inode gets its own nonce.
    let a = prepare_new_inode(Some(&p1()), None, R).unwrap().unwrap();
    let b = prepare_new_inode(Some(&p1()), None, R).unwrap().unwrap();
    assert_ne!(a.nonce(), b.nonce());
}

#[test]
fn set_policy_permission_table() {
    let cases = [
        (Caller::user(ALICE), ALICE, None),
        (Caller::user(BOB), ALICE, Some(Errno::ACCESS)),
        (Caller::root(), ALICE, None),
        (
            Caller {
                uid: BOB,
                privileged: true,
            },
            ALICE,
            None,
        ),
    ];
    for (i, (caller, owner, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            errno_of(set_policy_permission(caller, owner)),
            want,
            "case {i}"
        );
    }
}

#[test]
fn prepare_set_policy_table() {
    let keyring = Keyring::new(Default::default());
    let id = keyring
        .add_v2(Caller::user(ALICE), SecretBytes::copy_from(&RAW))
        .unwrap();
    let ours = v2(id, 0);
    let absent = v2([0xAB; 16], 0);
    let bad = {
        // DIRECT_KEY with AES-256-XTS: unsupported (EINVAL).
        let mut b = v2(id, 0).to_bytes();
        b[3] = crate::policy::flags::DIRECT_KEY;
        b
    };
    struct Case {
        inode: (FileType, Option<Policy>),
        bytes: Vec<u8>,
        empty: Result<bool>,
        caller: Caller,
        want: std::result::Result<SetPolicy, Errno>,
        asks_empty: bool,
    }
    let alice = Caller::user(ALICE);
    let cases = vec![
        // Set on an empty directory by the key's adder, by root, or as v1.
        Case {
            inode: (D, None),
            bytes: ours.to_bytes(),
            empty: Ok(true),
            caller: alice,
            want: Ok(SetPolicy::Set(ours)),
            asks_empty: true,
        },
        Case {
            inode: (D, None),
            bytes: absent.to_bytes(),
            empty: Ok(true),
            caller: Caller::root(),
            want: Ok(SetPolicy::Set(absent)),
            asks_empty: true,
        },
        Case {
            inode: (D, None),
            bytes: v1().to_bytes(),
            empty: Ok(true),
            caller: Caller::user(BOB),
            want: Ok(SetPolicy::Set(v1())),
            asks_empty: true,
        },
        // A v2 policy whose key the caller has not added: ENOKEY.
        Case {
            inode: (D, None),
            bytes: ours.to_bytes(),
            empty: Ok(true),
            caller: Caller::user(BOB),
            want: Err(Errno::NOKEY),
            asks_empty: true,
        },
        Case {
            inode: (D, None),
            bytes: absent.to_bytes(),
            empty: Ok(true),
            caller: alice,
            want: Err(Errno::NOKEY),
            asks_empty: true,
        },
        // Already set: nothing to do when identical, EEXIST otherwise — before any other check.
        Case {
            inode: (D, Some(ours)),
            bytes: ours.to_bytes(),
            empty: Ok(false),
            caller: Caller::user(BOB),
            want: Ok(SetPolicy::Unchanged),
            asks_empty: false,
        },
        Case {
            inode: (R, Some(ours)),
            bytes: ours.to_bytes(),
            empty: Ok(false),
            caller: alice,
            want: Ok(SetPolicy::Unchanged),
            asks_empty: false,
        },
        Case {
            inode: (D, Some(ours)),
            bytes: absent.to_bytes(),
            empty: Ok(true),
            caller: alice,
            want: Err(Errno::EXIST),
            asks_empty: false,
        },
        Case {
            inode: (D, Some(ours)),
            bytes: bad.clone(),
            empty: Ok(true),
            caller: alice,
            want: Err(Errno::EXIST),
            asks_empty: false,
        },
        // Not a directory.
        Case {
            inode: (R, None),
            bytes: ours.to_bytes(),
            empty: Ok(true),
            caller: alice,
            want: Err(Errno::NOTDIR),
            asks_empty: false,
        },
        Case {
            inode: (L, None),
            bytes: ours.to_bytes(),
            empty: Ok(true),
            caller: alice,
            want: Err(Errno::NOTDIR),
            asks_empty: false,
        },
        Case {
            inode: (S, None),
            bytes: ours.to_bytes(),
            empty: Ok(true),
            caller: alice,
            want: Err(Errno::NOTDIR),
            asks_empty: false,
        },
        // Not empty (before the policy is even parsed), or the question fails.
        Case {
            inode: (D, None),
            bytes: bad.clone(),
            empty: Ok(false),
            caller: alice,
            want: Err(Errno::NOTEMPTY),
            asks_empty: true,
        },
        Case {
            inode: (D, None),
            bytes: ours.to_bytes(),
            empty: Err(Error::new(Errno::IO, "x")),
            caller: alice,
            want: Err(Errno::IO),
            asks_empty: true,
        },
        // A policy the filesystem cannot use: EINVAL, before the key check.
        Case {
            inode: (D, None),
            bytes: bad,
            empty: Ok(true),
            caller: Caller::user(BOB),
            want: Err(Errno::INVAL),
            asks_empty: true,
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let asked = Cell::new(false);
        let empty = c.empty;
        let r = prepare_set_policy(
            &inode(5, c.inode.0, c.inode.1),
            &c.bytes,
            &fsp(),
            || {
                asked.set(true);
                empty
            },
            &keyring,
            c.caller,
        );
        assert_eq!(r.map_err(|e| e.errno()), c.want, "case {i}");
        assert_eq!(asked.get(), c.asks_empty, "case {i}: emptiness asked");
    }
}
