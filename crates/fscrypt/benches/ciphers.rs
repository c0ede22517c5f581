//! Throughput of the cipher primitives, as fscrypt uses them.
//!
//! Contents modes: one 4096-byte data unit per call, encrypt and decrypt (AES-256-XTS on every backend
//! this CPU has, so the fast path can be compared with the portable one and with
//! `openssl speed -evp aes-256-xts -bytes 4096`). Filename modes: 32- and 255-byte names.
//!
//! Run: `cargo bench -j2 -p fscrypt --bench ciphers` (add `-- XTS` to filter).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fscrypt::cipher::{PreparedKey, XtsBackend};
use fscrypt::{EncryptionMode, Iv};

fn key_for(mode: EncryptionMode) -> Vec<u8> {
    (0..mode.key_size()).map(|i| (i * 7 + 1) as u8).collect()
}

fn bench_one(c: &mut Criterion, group: &str, name: &str, key: &PreparedKey, len: usize) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(len as u64));
    let iv = Iv::from_index(1234);
    let mut buf = vec![0x5au8; len];
    g.bench_with_input(
        BenchmarkId::new(format!("{name}/encrypt"), len),
        &len,
        |b, _| b.iter(|| key.encrypt(black_box(&iv), black_box(&mut buf))),
    );
    g.bench_with_input(
        BenchmarkId::new(format!("{name}/decrypt"), len),
        &len,
        |b, _| b.iter(|| key.decrypt(black_box(&iv), black_box(&mut buf))),
    );
    g.finish();
}

fn contents(c: &mut Criterion) {
    let xts_key = key_for(EncryptionMode::Aes256Xts);
    for backend in [
        XtsBackend::Auto,
        XtsBackend::Vaes,
        XtsBackend::AesNi,
        XtsBackend::Portable,
    ] {
        let Ok(k) = PreparedKey::new_with_xts_backend(EncryptionMode::Aes256Xts, &xts_key, backend)
        else {
            eprintln!("AES-256-XTS backend {backend:?} not available on this CPU");
            continue;
        };
        let name = format!("AES-256-XTS-{backend:?}");
        bench_one(c, "contents", &name, &k, 4096);
    }
    for mode in [
        EncryptionMode::Sm4Xts,
        EncryptionMode::Aes128CbcEssiv,
        EncryptionMode::Adiantum,
    ] {
        let k = PreparedKey::new(mode, &key_for(mode)).expect("key setup");
        bench_one(c, "contents", mode.friendly_name(), &k, 4096);
    }
}

fn filenames(c: &mut Criterion) {
    for mode in [
        EncryptionMode::Aes256Cts,
        EncryptionMode::Aes128Cts,
        EncryptionMode::Sm4Cts,
        EncryptionMode::Aes256Hctr2,
        EncryptionMode::Adiantum,
    ] {
        let k = PreparedKey::new(mode, &key_for(mode)).expect("key setup");
        for len in [32, 255] {
            bench_one(c, "filenames", mode.friendly_name(), &k, len);
        }
    }
}

fn key_setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_setup");
    for mode in EncryptionMode::ALL {
        let key = key_for(mode);
        g.bench_function(mode.friendly_name(), |b| {
            b.iter(|| PreparedKey::new(mode, black_box(&key)))
        });
    }
    g.finish();
}

criterion_group!(benches, contents, filenames, key_setup);
criterion_main!(benches);
