//! Key derivation costs: what opening an inode or writing out an extent pays before any data moves.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::keysetup::{key_identifier, InodeKey, InodeKind, InodeParams, MasterSecret};
use fscrypt::policy::{FsParams, Policy, PolicyV2};
use fscrypt::EncryptionMode;

fn bench(c: &mut Criterion) {
    let raw = [0x42u8; 64];
    let master = MasterSecret::new_v2(&raw).unwrap();
    let fs = FsParams::ext4(12, true);
    let policy = |flags| {
        Policy::V2(PolicyV2 {
            contents_mode: EncryptionMode::Aes256Xts,
            filenames_mode: EncryptionMode::Aes256Cts,
            flags,
            log2_data_unit_size: 0,
            master_key_identifier: master.identifier().unwrap(),
        })
    };
    let ctx = Context::new(policy(3), [7; 16]);
    let file = InodeParams {
        kind: InodeKind::Regular,
        ino: 12,
        fs_uuid: [1; 16],
    };
    let dir = InodeParams {
        kind: InodeKind::Directory,
        ..file
    };

    c.bench_function("master key add (HKDF-Extract + identifier)", |b| {
        b.iter(|| MasterSecret::new_v2(black_box(&raw)).unwrap())
    });
    c.bench_function("key identifier", |b| {
        b.iter(|| key_identifier(black_box(&raw)).unwrap())
    });
    c.bench_function("inode key setup: per-file AES-256-XTS", |b| {
        b.iter(|| InodeKey::setup(&master, black_box(&ctx), &file, &fs).unwrap())
    });
    c.bench_function("inode key setup: per-file AES-256-CTS (directory)", |b| {
        b.iter(|| InodeKey::setup(&master, black_box(&ctx), &dir, &fs).unwrap())
    });
    let lblk32 = Context::new(policy(0x13), [7; 16]);
    c.bench_function("inode key setup: IV_INO_LBLK_32 (cached mode key)", |b| {
        b.iter(|| InodeKey::setup(&master, black_box(&lblk32), &file, &fs).unwrap())
    });
    let ectx = ExtentContext::new_random(&policy(3)).unwrap();
    c.bench_function("extent key derive: AES-256-XTS", |b| {
        b.iter(|| ExtentKey::derive(&master, black_box(&ectx)).unwrap())
    });
    let key = InodeKey::setup(&master, &ctx, &dir, &fs).unwrap();
    c.bench_function("filename encrypt: 9 bytes PAD_32 AES-256-CTS", |b| {
        b.iter(|| key.encrypt_filename(black_box(b"hello.txt")).unwrap())
    });
    let long = [b'x'; 255];
    c.bench_function("filename encrypt: 255 bytes AES-256-CTS", |b| {
        b.iter(|| key.encrypt_filename(black_box(&long)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
