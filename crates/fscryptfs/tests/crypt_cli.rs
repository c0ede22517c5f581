//! `fscryptfs crypt` end to end: the binary's output equals the layer's (which the kernel-oracle tests
//! tie to the kernel), equals OpenSSL where OpenSSL has the algorithm, round-trips, and rejects bad
//! arguments with one line and exit status 2.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::keysetup::{InodeKey, InodeKind, InodeParams, MasterSecret};
use fscrypt::policy::{FsParams, Policy, PolicyV2};
use fscrypt::EncryptionMode;

fn crypt(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fscryptfs"))
        .arg("crypt")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fscryptfs");
    // The command may exit before reading stdin (bad arguments): a broken pipe is not a failure.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    child.wait_with_output().expect("wait fscryptfs")
}

fn crypt_ok(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = crypt(args, stdin);
    assert!(
        out.status.success(),
        "fscryptfs crypt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

const MASTER_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

fn master_raw() -> Vec<u8> {
    hex::decode(MASTER_HEX).unwrap()
}

fn v2_policy(flags: u8, du_bits: u8) -> Policy {
    let master = MasterSecret::new_v2(&master_raw()).unwrap();
    Policy::V2(PolicyV2 {
        contents_mode: EncryptionMode::Aes256Xts,
        filenames_mode: EncryptionMode::Aes256Cts,
        flags,
        log2_data_unit_size: du_bits,
        master_key_identifier: master.identifier().unwrap(),
    })
}

fn layer_key(
    policy: Policy,
    nonce: [u8; 16],
    kind: InodeKind,
    ino: u64,
    uuid: [u8; 16],
) -> InodeKey {
    let master = MasterSecret::new_v2(&master_raw()).unwrap();
    let ctx = Context::new(policy, nonce);
    let params = InodeParams {
        kind,
        ino,
        fs_uuid: uuid,
    };
    InodeKey::setup(&master, &ctx, &params, &FsParams::ext4(12, true)).unwrap()
}

/// The layer's contents encryption of `plain`, final unit zero-padded.
fn layer_contents(key: &InodeKey, plain: &[u8]) -> Vec<u8> {
    let du = key.data_unit_size();
    let mut buf = plain.to_vec();
    buf.resize(plain.len().div_ceil(du) * du, 0);
    key.encrypt_data_units(0, &mut buf).unwrap();
    buf
}

#[test]
fn dump_key_identifier_matches_known_values() {
    let out = crypt_ok(
        &["--dump-key-identifier", "--kdf=HKDF-SHA512", MASTER_HEX],
        b"",
    );
    assert_eq!(out, b"8699c2c53707405da5aba5ae4d8583c0\n");
    let fstests_key: String = (1u8..=64).map(|b| format!("{b:02x}")).collect();
    let out = crypt_ok(&["--dump-key-identifier", &fstests_key], b"");
    assert_eq!(out, b"69b2f6edeee720cce0577937eb8a6751\n");
}

#[test]
fn per_file_contents_match_the_layer_and_round_trip() {
    let nonce = [0x5a; 16];
    for du_bits in [0u8, 9, 10, 11] {
        let key = layer_key(
            v2_policy(3, du_bits),
            nonce,
            InodeKind::Regular,
            12,
            [0; 16],
        );
        let du = key.data_unit_size().to_string();
        let plain = pseudo_random(3 * 4096 + 100, du_bits);
        let args = [
            "--kdf=HKDF-SHA512",
            "--file-nonce=5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
            "--data-unit-size",
            du.as_str(),
            "AES-256-XTS",
            MASTER_HEX,
        ];
        let ct = crypt_ok(&args, &plain);
        assert_eq!(ct, layer_contents(&key, &plain), "du_bits {du_bits}");
        let mut dec_args = vec!["--decrypt"];
        dec_args.extend_from_slice(&args);
        let back = crypt_ok(&dec_args, &ct);
        assert_eq!(&back[..plain.len()], &plain[..]);
        assert!(back[plain.len()..].iter().all(|&b| b == 0));
    }
}

#[test]
fn iv_ino_lblk_modes_match_the_layer() {
    let uuid = [0x11; 16];
    let nonce = [0x22; 16];
    let plain = pseudo_random(5 * 4096, 7);
    for (flag, arg) in [(0x08u8, "--iv-ino-lblk-64"), (0x10, "--iv-ino-lblk-32")] {
        let key = layer_key(
            v2_policy(flag | 3, 0),
            nonce,
            InodeKind::Regular,
            4321,
            uuid,
        );
        let ct = crypt_ok(
            &[
                "--kdf=HKDF-SHA512",
                arg,
                "--inode-number=4321",
                "--fs-uuid=11111111111111111111111111111111",
                "--mode-num=1",
                "AES-256-XTS",
                MASTER_HEX,
            ],
            &plain,
        );
        assert_eq!(ct, layer_contents(&key, &plain), "{arg}");
    }
}

#[test]
fn filenames_match_the_layer_for_every_padding() {
    let nonce = [0x33; 16];
    for pad_flag in 0u8..4 {
        let key = layer_key(
            v2_policy(pad_flag, 0),
            nonce,
            InodeKind::Directory,
            2,
            [0; 16],
        );
        let padding = (4usize << pad_flag).to_string();
        for len in [1usize, 15, 16, 17, 31, 32, 100, 149, 150, 254, 255] {
            let name: Vec<u8> = pseudo_random(len, len as u8)
                .into_iter()
                .map(|b| b'a' + b % 26)
                .collect();
            let ct = crypt_ok(
                &[
                    "--kdf=HKDF-SHA512",
                    "--file-nonce=33333333333333333333333333333333",
                    "--padding",
                    &padding,
                    "--data-unit-size=255",
                    "AES-256-CTS-CBC",
                    MASTER_HEX,
                ],
                &name,
            );
            assert_eq!(
                ct,
                key.encrypt_filename(&name).unwrap(),
                "pad {padding} len {len}"
            );
        }
    }
}

#[test]
fn extent_nonce_matches_the_layers_extent_key() {
    let master = MasterSecret::new_v2(&master_raw()).unwrap();
    let ectx = ExtentContext {
        mode: EncryptionMode::Aes256Xts,
        master_key_identifier: master.identifier().unwrap(),
        nonce: [0x44; 16],
    };
    let key = ExtentKey::derive(&master, &ectx).unwrap();
    let plain = pseudo_random(4 * 4096, 9);
    let mut expect = plain.clone();
    key.encrypt_units(2, 4096, &mut expect).unwrap();
    let ct = crypt_ok(
        &[
            "--kdf=HKDF-SHA512",
            "--extent-nonce=44444444444444444444444444444444",
            "--data-unit-index=2",
            "AES-256-XTS",
            MASTER_HEX,
        ],
        &plain,
    );
    assert_eq!(ct, expect);
}

/// AES-256-XTS of `data` per 4096-byte unit from an independent implementation: OpenSSL's EVP
/// through Python's `cryptography` package (the `openssl enc` command has no XTS).
fn reference_xts(key_hex: &str, first_index: u64, data: &[u8]) -> Vec<u8> {
    const SCRIPT: &str = r#"
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
key = bytes.fromhex(sys.argv[1]); index = int(sys.argv[2]); data = sys.stdin.buffer.read()
out = b""
for off in range(0, len(data), 4096):
    iv = (index + off // 4096).to_bytes(16, "little")
    enc = Cipher(algorithms.AES(key), modes.XTS(iv)).encryptor()
    out += enc.update(data[off:off + 4096]) + enc.finalize()
sys.stdout.buffer.write(out)
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, key_hex, &first_index.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the XTS cross-check");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference XTS failed (pip install cryptography): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn kdf_none_xts_matches_an_independent_implementation() {
    let plain = pseudo_random(3 * 4096, 3);
    let ct = crypt_ok(&["--data-unit-index=7", "AES-256-XTS", MASTER_HEX], &plain);
    assert_eq!(ct, reference_xts(MASTER_HEX, 7, &plain));
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: &[&[&str]] = &[
        &["NOT-A-CIPHER", MASTER_HEX],
        &["AES-256-XTS", "zz"],
        &["--kdf=HKDF-SHA512", "AES-256-XTS", MASTER_HEX],
        &["--kdf=bogus", "AES-256-XTS", MASTER_HEX],
        &[
            "--direct-key",
            "--iv-ino-lblk-64",
            "AES-256-XTS",
            MASTER_HEX,
        ],
        &[
            "--file-nonce=00",
            "--kdf=HKDF-SHA512",
            "AES-256-XTS",
            MASTER_HEX,
        ],
        &["--data-unit-size=5", "AES-256-XTS", MASTER_HEX],
        &["--no-such-option", "AES-256-XTS", MASTER_HEX],
        &["AES-256-XTS", "00112233"],
        &["--dump-key-identifier", "00"],
        &[],
    ];
    for args in cases {
        let out = crypt(args, b"data");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        // One line of ours, or clap's first line in our form followed by its details.
        assert!(
            err.trim_end().lines().count() == 1 || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
        assert!(err.starts_with("fscryptfs: "), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}
