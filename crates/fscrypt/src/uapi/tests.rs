//! Unit tests of `uapi`: every argument round-trips, short buffers are EINVAL, and the bytes are
//! little-endian whatever the host.

use super::*;

const ID: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];
const DESC: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn errno_of<T: std::fmt::Debug>(r: Result<T>) -> Errno {
    r.expect_err("expected an error").errno()
}

#[test]
fn kernel_numbers_match_the_encoding() {
    assert_eq!(ioc(IOC_READ, b'f', 19, 12), FS_IOC_SET_ENCRYPTION_POLICY);
    assert_eq!(ioc(IOC_WRITE, b'f', 21, 12), FS_IOC_GET_ENCRYPTION_POLICY);
    assert_eq!(
        ioc(IOC_READ | IOC_WRITE, b'f', 22, 9),
        FS_IOC_GET_ENCRYPTION_POLICY_EX
    );
    assert_eq!(
        ioc(IOC_READ | IOC_WRITE, b'f', 23, 80),
        FS_IOC_ADD_ENCRYPTION_KEY
    );
    assert_eq!(
        ioc(IOC_READ | IOC_WRITE, b'f', 24, 64),
        FS_IOC_REMOVE_ENCRYPTION_KEY
    );
    assert_eq!(
        ioc(IOC_READ | IOC_WRITE, b'f', 25, 64),
        FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS
    );
    assert_eq!(
        ioc(IOC_READ | IOC_WRITE, b'f', 26, 128),
        FS_IOC_GET_ENCRYPTION_KEY_STATUS
    );
    assert_eq!(ioc(IOC_READ, b'f', 27, 16), FS_IOC_GET_ENCRYPTION_NONCE);
    assert_eq!(ioc(IOC_READ, b'f', 1, 8), FS_IOC_GETFLAGS);
    assert_eq!(ioc_size(FSCRYPTFS_IOC_ADD_KEY), 144);
    assert_eq!(ioc_size(FSCRYPTFS_IOC_SET_POLICY), 24);
    assert_eq!(ioc_size(FSCRYPTFS_IOC_GET_POLICY), 32);
    assert_eq!(ioc_size(FSCRYPTFS_IOC_BUSY_FILES), 4096);
    // fscryptfs' numbers, pinned: the daemon and older clients must agree.
    assert_eq!(FSCRYPTFS_IOC_ADD_KEY, 0xc090_66e0);
    assert_eq!(FSCRYPTFS_IOC_SET_POLICY, 0x4018_66e1);
    assert_eq!(FSCRYPTFS_IOC_GET_POLICY, 0xc020_66e2);
    assert_eq!(FSCRYPTFS_IOC_BUSY_FILES, 0xd000_66e3);
}

#[test]
fn extents_cover_what_the_kernel_touches() {
    assert_eq!(arg_extent(FS_IOC_ADD_ENCRYPTION_KEY), 144);
    assert_eq!(arg_extent(FS_IOC_SET_ENCRYPTION_POLICY), 24);
    assert_eq!(arg_extent(FS_IOC_GET_ENCRYPTION_POLICY_EX), 32);
    assert_eq!(arg_extent(FS_IOC_REMOVE_ENCRYPTION_KEY), 64);
    assert_eq!(arg_extent(FSCRYPTFS_IOC_BUSY_FILES), 4096);
}

#[test]
fn key_specifiers_are_little_endian_and_round_trip() {
    let id = KeySpecifier::from(KeySpec::Identifier(ID));
    let b = id.encode();
    let mut want = [0u8; 40];
    want[0] = 2; // type 2, little-endian
    want[8..24].copy_from_slice(&ID);
    assert_eq!(b, want);
    assert_eq!(KeySpecifier::decode(&b).unwrap(), id);
    assert_eq!(id.key_spec().unwrap(), KeySpec::Identifier(ID));

    let d = KeySpecifier::from(KeySpec::Descriptor(DESC));
    let b = d.encode();
    assert_eq!(&b[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b[8..16], &DESC);
    assert_eq!(
        KeySpecifier::decode(&b).unwrap().key_spec().unwrap(),
        KeySpec::Descriptor(DESC)
    );

    // valid_key_spec: the reserved word and the type, EINVAL.
    let mut bad = b;
    bad[4] = 1;
    assert_eq!(
        errno_of(KeySpecifier::decode(&bad).unwrap().key_spec()),
        Errno::INVAL
    );
    let mut bad = b;
    bad[0] = 3;
    assert_eq!(
        errno_of(KeySpecifier::decode(&bad).unwrap().key_spec()),
        Errno::INVAL
    );
    // A type in the wrong byte order is an unknown type, not an identifier.
    let mut be = b;
    be[..4].copy_from_slice(&KEY_SPEC_TYPE_IDENTIFIER.to_be_bytes());
    assert_eq!(
        errno_of(KeySpecifier::decode(&be).unwrap().key_spec()),
        Errno::INVAL
    );
}

#[test]
fn add_key_args_round_trip() {
    let mut a = AddKeyArg::new(KeySpec::Identifier([0; 16]), 0x0102_0304);
    a.key_id = 0x0a0b_0c0d;
    let b = a.encode();
    assert_eq!(&b[40..48], &[4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]);
    assert_eq!(AddKeyArg::decode(&b).unwrap(), a);
    assert!(a.reserved_is_zero());
    let mut r = b;
    r[79] = 1;
    assert!(!AddKeyArg::decode(&r).unwrap().reserved_is_zero());

    // The raw key is a view of the buffer after the header, bounded by raw_size.
    let mut buf = vec![0u8; FSCRYPTFS_ADD_KEY_ARG_SIZE];
    let a = AddKeyArg::new(KeySpec::Identifier([0; 16]), 32);
    buf[..80].copy_from_slice(&a.encode());
    buf[80..112].fill(7);
    assert_eq!(a.raw_key(&buf).unwrap(), &[7u8; 32][..]);
    let long = AddKeyArg::new(KeySpec::Identifier([0; 16]), 65);
    assert_eq!(errno_of(long.raw_key(&buf)), Errno::INVAL);
    let huge = AddKeyArg::new(KeySpec::Identifier([0; 16]), u32::MAX);
    assert_eq!(errno_of(huge.raw_key(&buf)), Errno::INVAL);

    // The reply: header with the identifier, the raw key's room zeroed.
    let reply = AddKeyArg {
        key_spec: KeySpec::Identifier(ID).into(),
        ..a
    }
    .encode_reply();
    assert_eq!(reply.len(), 144);
    assert_eq!(&reply[8..24], &ID);
    assert!(reply[80..].iter().all(|&x| x == 0));
}

#[test]
fn remove_key_args_round_trip() {
    let mut a = RemoveKeyArg::new(KeySpec::Descriptor(DESC));
    a.removal_status_flags = KEY_REMOVAL_STATUS_FLAG_FILES_BUSY | 0x0100;
    let b = a.encode();
    assert_eq!(&b[40..44], &[0x01, 0x01, 0, 0]);
    assert_eq!(RemoveKeyArg::decode(&b).unwrap(), a);
    assert!(a.reserved_is_zero());
    let mut r = b;
    r[63] = 9;
    assert!(!RemoveKeyArg::decode(&r).unwrap().reserved_is_zero());
}

#[test]
fn key_status_args_round_trip() {
    let a = GetKeyStatusArg::new(KeySpec::Identifier(ID)).with_status(
        KEY_STATUS_PRESENT,
        KEY_STATUS_FLAG_ADDED_BY_SELF,
        0x0102_0304,
    );
    let b = a.encode();
    assert_eq!(&b[64..76], &[2, 0, 0, 0, 1, 0, 0, 0, 4, 3, 2, 1]);
    assert_eq!(GetKeyStatusArg::decode(&b).unwrap(), a);
    let mut r = b;
    r[50] = 1;
    assert!(!GetKeyStatusArg::decode(&r).unwrap().reserved_is_zero());
    // The answer zeroes __out_reserved and keeps the rest of the caller's argument.
    let mut junk = b;
    junk[100] = 5;
    let answered = GetKeyStatusArg::decode(&junk).unwrap().with_status(1, 0, 0);
    assert!(answered.encode()[76..].iter().all(|&x| x == 0));
    assert_eq!(&answered.encode()[..64], &junk[..64]);
}

#[test]
fn get_policy_ex_args_round_trip() {
    let req = GetPolicyExArg::request();
    let b = req.encode();
    assert_eq!(b.len(), 32);
    assert_eq!(&b[..8], &[24, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(GetPolicyExArg::decode(&b).unwrap(), req);
    // A request is only the size.
    assert_eq!(GetPolicyExArg::decode(&b[..8]).unwrap().policy_size, 24);

    let v1 = [0u8, 1, 4, 2, 1, 2, 3, 4, 5, 6, 7, 8];
    let ans = GetPolicyExArg::with_policy(&v1).unwrap();
    let b = ans.encode_reply();
    assert_eq!(b.len(), 20);
    assert_eq!(&b[..8], &[12, 0, 0, 0, 0, 0, 0, 0]);
    let back = GetPolicyExArg::decode(&b).unwrap();
    assert_eq!(back, ans);
    assert_eq!(back.policy(), &v1);
    assert_eq!(GetPolicyExArg::decode(&ans.encode()).unwrap(), ans);
    assert_eq!(
        errno_of(GetPolicyExArg::with_policy(&[0; 25])),
        Errno::INVAL
    );
    // A size beyond the room is cut to it, never read past.
    let mut big = GetPolicyExArg::request().encode();
    big[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(GetPolicyExArg::decode(&big).unwrap().policy().len(), 24);
}

#[test]
fn set_policy_args_pick_their_size_by_version() {
    let mut v2 = [0u8; 24];
    v2[0] = 2;
    let b = encode_set_policy(&v2).unwrap();
    assert_eq!(decode_set_policy(&b).unwrap(), &v2);
    let v1 = [0u8; 12];
    let b = encode_set_policy(&v1).unwrap();
    assert_eq!(decode_set_policy(&b).unwrap().len(), 12);
    assert_eq!(errno_of(decode_set_policy(&[])), Errno::INVAL);
    assert_eq!(errno_of(decode_set_policy(&[1; 24])), Errno::INVAL);
    assert_eq!(errno_of(decode_set_policy(&v2[..23])), Errno::INVAL);
    assert_eq!(errno_of(encode_set_policy(&[0; 25])), Errno::INVAL);
}

#[test]
fn short_buffers_are_einval() {
    assert_eq!(errno_of(KeySpecifier::decode(&[0; 39])), Errno::INVAL);
    assert_eq!(errno_of(AddKeyArg::decode(&[0; 79])), Errno::INVAL);
    assert_eq!(errno_of(RemoveKeyArg::decode(&[0; 63])), Errno::INVAL);
    assert_eq!(errno_of(GetKeyStatusArg::decode(&[0; 127])), Errno::INVAL);
    assert_eq!(errno_of(GetPolicyExArg::decode(&[0; 7])), Errno::INVAL);
    assert_eq!(errno_of(decode_nonce(&[0; 15])), Errno::INVAL);
    for n in 0..200 {
        let b = vec![0xa5u8; n];
        let _ = KeySpecifier::decode(&b);
        let _ = AddKeyArg::decode(&b).map(|a| a.raw_key(&b));
        let _ = RemoveKeyArg::decode(&b);
        let _ = GetKeyStatusArg::decode(&b);
        let _ = GetPolicyExArg::decode(&b).map(|a| a.policy().len());
        let _ = decode_set_policy(&b);
        let _ = decode_nonce(&b);
        let _ = decode_busy_files_reply(&b);
    }
}

#[test]
fn nonce_getflags_and_busy_files() {
    let n: Vec<u8> = (0..16).collect();
    assert_eq!(decode_nonce(&n).unwrap().to_vec(), n);
    assert_eq!(encode_getflags(FS_ENCRYPT_FL), [0x00, 0x08, 0, 0]);
    let req = encode_busy_files_request(KeySpec::Identifier(ID));
    assert_eq!(req.len(), 4096);
    assert_eq!(
        KeySpecifier::decode(&req).unwrap().key_spec().unwrap(),
        KeySpec::Identifier(ID)
    );
    let reply = encode_busy_files_reply("hidden 1 0\n");
    assert_eq!(decode_busy_files_reply(&reply), "hidden 1 0\n");
    let mut room = vec![0u8; 4096];
    room[..reply.len()].copy_from_slice(&reply);
    assert_eq!(decode_busy_files_reply(&room), "hidden 1 0\n");
    assert_eq!(decode_busy_files_reply(b"no nul"), "no nul");
}
