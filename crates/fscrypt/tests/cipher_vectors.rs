//! Known-answer and cross-check tests of the cipher primitives (`fscrypt::cipher::PreparedKey`).
//!
//! - HCTR2: the 350 google/hctr2 vectors (every tweak length); Adiantum: the 180 google/adiantum
//!   vectors and the 6 Linux-format ones (32-byte IV through `PreparedKey::encrypt`).
//! - AES-256-XTS: IEEE 1619 vectors 10-14 and randomized comparison against OpenSSL's own XTS
//!   (libcrypto, loaded at run time: `openssl enc` refuses XTS), on every backend this CPU has.
//! - CBC-CTS: RFC 3962 appendix B; the 16-byte case and other lengths against `openssl enc`.
//! - ESSIV against an `openssl` pipeline; SM4 against GB/T 32907 and the testmgr SM4-XTS vector, plus
//!   SM4-XTS built over `openssl enc -sm4-ecb`.
//! - Key and length validation (EINVAL, never a panic), and proptests over all modes.

use std::io::Write;
use std::process::{Command, Stdio};

use fscrypt::cipher::{PreparedKey, XtsBackend};
use fscrypt::{EncryptionMode, Errno, Iv};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// helpers

fn data_file(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hexf(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn iv_from(bytes: &[u8]) -> Iv {
    let mut iv = [0u8; 32];
    iv[..bytes.len()].copy_from_slice(bytes);
    Iv(iv)
}

/// Deterministic pseudo-random bytes (SplitMix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The AES-256-XTS backends this CPU can run (the portable one always).
fn xts_backends() -> Vec<XtsBackend> {
    let key: Vec<u8> = (0..64).collect();
    let mut out = vec![XtsBackend::Portable];
    for b in [XtsBackend::AesNi, XtsBackend::Vaes] {
        match PreparedKey::new_with_xts_backend(EncryptionMode::Aes256Xts, &key, b) {
            Ok(k) => {
                assert_eq!(k.xts_backend(), Some(b));
                out.push(b);
            }
            Err(e) => {
                assert_eq!(e.errno(), Errno::NOPKG);
                eprintln!("note: AES-256-XTS backend {b:?} not available on this CPU, not tested");
            }
        }
    }
    out
}

fn xts_key(backend: XtsBackend, key: &[u8]) -> PreparedKey {
    PreparedKey::new_with_xts_backend(EncryptionMode::Aes256Xts, key, backend).unwrap()
}

/// Runs `openssl ARGS...` with `input` on stdin and returns stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl command line tool is needed for these cross-checks");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl enc -CIPHER -nopad -K key [-iv iv]` over `data`.
fn openssl_enc(cipher: &str, key: &[u8], iv: Option<&[u8]>, data: &[u8], decrypt: bool) -> Vec<u8> {
    let key_hex = hex::encode(key);
    let iv_hex = iv.map(hex::encode);
    let flag = format!("-{cipher}");
    let mut args = vec!["enc", flag.as_str(), "-nopad", "-K", key_hex.as_str()];
    if let Some(iv_hex) = &iv_hex {
        args.extend(["-iv", iv_hex.as_str()]);
    }
    if decrypt {
        args.push("-d");
    }
    openssl(&args, data)
}

/// OpenSSL's libcrypto, loaded at run time, for AES-256-XTS (which `openssl enc` refuses).
mod libcrypto {
    use std::ffi::{c_int, c_void, CStr};

    type CtxNew = unsafe extern "C" fn() -> *mut c_void;
    type CtxFree = unsafe extern "C" fn(*mut c_void);
    type CipherGet = unsafe extern "C" fn() -> *const c_void;
    type CipherInit = unsafe extern "C" fn(
        *mut c_void,
        *const c_void,
        *mut c_void,
        *const u8,
        *const u8,
        c_int,
    ) -> c_int;
    type CipherUpdate =
        unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_int, *const u8, c_int) -> c_int;
    type CipherFinal = unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_int) -> c_int;

    pub struct Xts {
        ctx_new: CtxNew,
        ctx_free: CtxFree,
        xts: CipherGet,
        init: CipherInit,
        update: CipherUpdate,
        fin: CipherFinal,
    }

    fn sym(handle: *mut c_void, name: &CStr) -> *mut c_void {
        // SAFETY: handle came from dlopen; name is NUL-terminated.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        assert!(!p.is_null(), "libcrypto lacks {name:?}");
        p
    }

    impl Xts {
        pub fn load() -> Xts {
            // SAFETY: dlopen of a system library by name.
            let handle = unsafe { libc::dlopen(c"libcrypto.so.3".as_ptr(), libc::RTLD_NOW) };
            assert!(
                !handle.is_null(),
                "libcrypto.so.3 (OpenSSL 3) is needed for the XTS cross-check"
            );
            // SAFETY: the symbols have these C signatures in OpenSSL 3.
            unsafe {
                Xts {
                    ctx_new: std::mem::transmute::<*mut c_void, CtxNew>(sym(
                        handle,
                        c"EVP_CIPHER_CTX_new",
                    )),
                    ctx_free: std::mem::transmute::<*mut c_void, CtxFree>(sym(
                        handle,
                        c"EVP_CIPHER_CTX_free",
                    )),
                    xts: std::mem::transmute::<*mut c_void, CipherGet>(sym(
                        handle,
                        c"EVP_aes_256_xts",
                    )),
                    init: std::mem::transmute::<*mut c_void, CipherInit>(sym(
                        handle,
                        c"EVP_CipherInit_ex",
                    )),
                    update: std::mem::transmute::<*mut c_void, CipherUpdate>(sym(
                        handle,
                        c"EVP_CipherUpdate",
                    )),
                    fin: std::mem::transmute::<*mut c_void, CipherFinal>(sym(
                        handle,
                        c"EVP_CipherFinal_ex",
                    )),
                }
            }
        }

        /// AES-256-XTS of `data` with 64-byte `key` and 16-byte `tweak`.
        pub fn crypt(&self, key: &[u8], tweak: &[u8], data: &[u8], encrypt: bool) -> Vec<u8> {
            assert_eq!((key.len(), tweak.len()), (64, 16));
            let mut out = vec![0u8; data.len() + 32];
            let (mut n1, mut n2): (c_int, c_int) = (0, 0);
            // SAFETY: buffers are sized as OpenSSL requires (output = input length for XTS, plus slack);
            // the context is freed before returning.
            unsafe {
                let ctx = (self.ctx_new)();
                assert!(!ctx.is_null());
                let ok = (self.init)(
                    ctx,
                    (self.xts)(),
                    std::ptr::null_mut(),
                    key.as_ptr(),
                    tweak.as_ptr(),
                    encrypt as c_int,
                ) == 1
                    && (self.update)(
                        ctx,
                        out.as_mut_ptr(),
                        &mut n1,
                        data.as_ptr(),
                        data.len() as c_int,
                    ) == 1
                    && (self.fin)(ctx, out.as_mut_ptr().add(n1 as usize), &mut n2) == 1;
                (self.ctx_free)(ctx);
                assert!(ok, "OpenSSL AES-256-XTS failed");
            }
            out.truncate((n1 + n2) as usize);
            out
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HCTR2

#[test]
fn hctr2_all_published_vectors() {
    let vectors = data_file("HCTR2_AES256.json");
    let vectors = vectors.as_array().unwrap();
    let mut through_iv = 0;
    for v in vectors {
        let what = v["description"].as_str().unwrap();
        let key = hexf(&v["input"]["key_hex"]);
        let tweak = hexf(&v["input"]["tweak_hex"]);
        let pt = hexf(&v["plaintext_hex"]);
        let ct = hexf(&v["ciphertext_hex"]);
        let k = PreparedKey::new(EncryptionMode::Aes256Hctr2, &key).unwrap();
        let mut buf = pt.clone();
        k.encrypt_with_tweak(&tweak, &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), hex::encode(&ct), "HCTR2 encrypt {what}");
        k.decrypt_with_tweak(&tweak, &mut buf).unwrap();
        assert_eq!(buf, pt, "HCTR2 decrypt {what}");
        if tweak.len() == 32 {
            // The fscrypt path: the 32-byte IV.
            let iv = iv_from(&tweak);
            k.encrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, ct, "HCTR2 encrypt via Iv {what}");
            k.decrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, pt, "HCTR2 decrypt via Iv {what}");
            through_iv += 1;
        }
    }
    assert_eq!(vectors.len(), 350);
    assert_eq!(through_iv, 70);
}

// ---------------------------------------------------------------------------------------------
// Adiantum

#[test]
fn adiantum_all_published_vectors() {
    let vectors = data_file("Adiantum_XChaCha12_32_AES256.json");
    let vectors = vectors.as_array().unwrap();
    let (mut run, mut skipped) = (0, 0);
    for v in vectors {
        let what = v["description"].as_str().unwrap();
        let key = hexf(&v["input"]["key_hex"]);
        let tweak = hexf(&v["input"]["tweak_hex"]);
        let pt = hexf(&v["plaintext_hex"]);
        let ct = hexf(&v["ciphertext_hex"]);
        let k = PreparedKey::new(EncryptionMode::Adiantum, &key).unwrap();
        let mut buf = pt.clone();
        if pt.len() < 16 || pt.len() > 4112 || tweak.len() > 32 {
            // Outside what the wrapped crate supports: must be refused, not panic.
            assert_eq!(
                k.encrypt_with_tweak(&tweak, &mut buf).unwrap_err().errno(),
                Errno::INVAL
            );
            skipped += 1;
            continue;
        }
        k.encrypt_with_tweak(&tweak, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&ct),
            "Adiantum encrypt {what}"
        );
        k.decrypt_with_tweak(&tweak, &mut buf).unwrap();
        assert_eq!(buf, pt, "Adiantum decrypt {what}");
        if tweak.len() == 32 {
            let iv = iv_from(&tweak);
            k.encrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, ct, "Adiantum encrypt via Iv {what}");
            k.decrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, pt, "Adiantum decrypt via Iv {what}");
        }
        run += 1;
    }
    eprintln!(
        "Adiantum: {run} vectors run, {skipped} skipped (outside 16..=4112 bytes or tweak > 32)"
    );
    assert_eq!(vectors.len(), 180);
    assert_eq!((run, skipped), (180, 0));
}

#[test]
fn adiantum_linux_vectors_through_iv() {
    let file = data_file("adiantum_linux.json");
    let vectors = file["adiantum_xchacha12_aes_tv_template"]
        .as_array()
        .unwrap();
    for (i, v) in vectors.iter().enumerate() {
        let key = hexf(&v["key"]);
        let iv = hexf(&v["iv"]);
        let pt = hexf(&v["ptext"]);
        let ct = hexf(&v["ctext"]);
        assert_eq!(iv.len(), 32);
        assert_eq!(pt.len() as u64, v["len"].as_u64().unwrap());
        let k = PreparedKey::new(EncryptionMode::Adiantum, &key).unwrap();
        let iv = iv_from(&iv);
        let mut buf = pt.clone();
        k.encrypt(&iv, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&ct),
            "Linux Adiantum vector {i}"
        );
        k.decrypt(&iv, &mut buf).unwrap();
        assert_eq!(buf, pt, "Linux Adiantum vector {i} decrypt");
    }
    assert_eq!(vectors.len(), 6);
}

// ---------------------------------------------------------------------------------------------
// AES-256-XTS

#[test]
fn xts_ieee1619_vectors_every_backend() {
    let file = data_file("xts_aes256_ieee1619.json");
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 5);
    for backend in xts_backends() {
        for v in vectors {
            let what = v["name"].as_str().unwrap();
            let k = xts_key(backend, &hexf(&v["key"]));
            let iv = iv_from(&hexf(&v["tweak"]));
            let pt = hexf(&v["ptext"]);
            let ct = hexf(&v["ctext"]);
            let mut buf = pt.clone();
            k.encrypt(&iv, &mut buf).unwrap();
            assert_eq!(hex::encode(&buf), hex::encode(&ct), "{backend:?}: {what}");
            k.decrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, pt, "{backend:?}: {what} decrypt");
        }
    }
}

#[test]
fn xts_random_against_openssl_every_backend() {
    let ossl = libcrypto::Xts::load();
    let backends = xts_backends();
    let mut rng = Rng(0x5eed_0001);
    // Every block count 1..=40 (all tail shapes of the 8- and 16-block paths), then random sizes up to
    // 64 KiB, each with a fresh random key and tweak.
    let mut lengths: Vec<usize> = (1..=40).map(|b| 16 * b).collect();
    lengths.extend([512, 1024, 4096, 4096 + 16, 8192, 65536]);
    lengths.extend((0..150).map(|_| 16 * (1 + rng.below(600))));
    for (case, &len) in lengths.iter().enumerate() {
        let mut key = rng.bytes(64);
        if key[..32] == key[32..] {
            key[0] ^= 1;
        }
        let tweak = rng.bytes(16);
        let pt = rng.bytes(len);
        let want = ossl.crypt(&key, &tweak, &pt, true);
        assert_eq!(ossl.crypt(&key, &tweak, &want, false), pt);
        let iv = iv_from(&tweak);
        for &backend in &backends {
            let k = xts_key(backend, &key);
            let mut buf = pt.clone();
            k.encrypt(&iv, &mut buf).unwrap();
            assert!(
                buf == want,
                "{backend:?} case {case}: {len} bytes differ from OpenSSL"
            );
            k.decrypt(&iv, &mut buf).unwrap();
            assert!(buf == pt, "{backend:?} case {case}: {len} bytes decrypt");
        }
    }
    eprintln!(
        "AES-256-XTS: {} random cases x {:?} matched OpenSSL",
        lengths.len(),
        backends
    );
}

#[test]
fn xts_fscrypt_ivs_every_backend_agree() {
    // The IVs fscrypt actually produces (le64 index), including ones that carry into the high half.
    let key: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let backends = xts_backends();
    let mut rng = Rng(7);
    for index in [0u64, 1, 2, 255, 0x1234_5678, u64::MAX] {
        let iv = Iv::from_index(index);
        let pt = rng.bytes(4096);
        let mut reference = pt.clone();
        xts_key(XtsBackend::Portable, &key)
            .encrypt(&iv, &mut reference)
            .unwrap();
        for &b in &backends {
            let mut buf = pt.clone();
            xts_key(b, &key).encrypt(&iv, &mut buf).unwrap();
            assert!(buf == reference, "{b:?} index {index}");
        }
    }
}

#[test]
fn xts_equal_halves_rejected() {
    let mut key = vec![0x42u8; 64];
    for backend in xts_backends() {
        let e = PreparedKey::new_with_xts_backend(EncryptionMode::Aes256Xts, &key, backend)
            .unwrap_err();
        assert_eq!(e.errno(), Errno::INVAL, "{backend:?}");
    }
    assert_eq!(
        PreparedKey::new(EncryptionMode::Sm4Xts, &[9u8; 32])
            .unwrap_err()
            .errno(),
        Errno::INVAL
    );
    key[63] ^= 1;
    assert!(PreparedKey::new(EncryptionMode::Aes256Xts, &key).is_ok());
    let mut sm4_key = [9u8; 32];
    sm4_key[0] = 0;
    assert!(PreparedKey::new(EncryptionMode::Sm4Xts, &sm4_key).is_ok());
}

// ---------------------------------------------------------------------------------------------
// CBC-CTS

#[test]
fn cts_rfc3962_vectors() {
    let file = data_file("cts_aes128_rfc3962.json");
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 6);
    for v in vectors {
        let len = v["len"].as_u64().unwrap() as usize;
        let k = PreparedKey::new(EncryptionMode::Aes128Cts, &hexf(&v["key"])).unwrap();
        let iv = iv_from(&hexf(&v["iv"]));
        let pt = hexf(&v["ptext"]);
        let ct = hexf(&v["ctext"]);
        assert_eq!(pt.len(), len);
        let mut buf = pt.clone();
        k.encrypt(&iv, &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), hex::encode(&ct), "RFC 3962 length {len}");
        k.decrypt(&iv, &mut buf).unwrap();
        assert_eq!(buf, pt, "RFC 3962 length {len} decrypt");
    }
}

/// CBC-CS3 built from `openssl enc -CIPHER -nopad` (CBC over the zero-padded input, swap the last two
/// blocks, truncate), as the kernel's cts(cbc(...)) defines it.
fn openssl_cs3(cipher: &str, key: &[u8], iv: &[u8], pt: &[u8]) -> Vec<u8> {
    let mut padded = pt.to_vec();
    padded.resize(pt.len().div_ceil(16) * 16, 0);
    let c = openssl_enc(cipher, key, Some(iv), &padded, false);
    if pt.len() == 16 {
        return c;
    }
    let nb = c.len() / 16;
    let last = pt.len() - 16 * (nb - 1);
    let mut out = c[..16 * (nb - 2)].to_vec();
    out.extend_from_slice(&c[16 * (nb - 1)..]);
    out.extend_from_slice(&c[16 * (nb - 2)..16 * (nb - 2) + last]);
    out
}

#[test]
fn cts_against_openssl_cbc_all_modes() {
    let mut rng = Rng(0xc75);
    let mut lengths: Vec<usize> = (16..=50).collect();
    lengths.extend([63, 64, 65, 100, 127, 128, 129, 200, 254, 255]);
    for (mode, cipher) in [
        (EncryptionMode::Aes128Cts, "aes-128-cbc"),
        (EncryptionMode::Aes256Cts, "aes-256-cbc"),
        (EncryptionMode::Sm4Cts, "sm4-cbc"),
    ] {
        for &len in &lengths {
            let key = rng.bytes(mode.key_size());
            // Names use the zero IV by default; DIRECT_KEY puts the nonce in bytes 8..24.
            let iv16 = if len % 2 == 0 {
                vec![0u8; 16]
            } else {
                rng.bytes(16)
            };
            let pt = rng.bytes(len);
            let want = openssl_cs3(cipher, &key, &iv16, &pt);
            let k = PreparedKey::new(mode, &key).unwrap();
            let iv = iv_from(&iv16);
            let mut buf = pt.clone();
            k.encrypt(&iv, &mut buf).unwrap();
            assert_eq!(hex::encode(&buf), hex::encode(&want), "{mode} length {len}");
            k.decrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, pt, "{mode} length {len} decrypt");
        }
    }
}

#[test]
fn cts_single_block_is_plain_cbc() {
    // The case the `cts` crate gets wrong: exactly 16 bytes is one CBC block, no swap.
    let mut rng = Rng(16);
    for (mode, cipher) in [
        (EncryptionMode::Aes128Cts, "aes-128-cbc"),
        (EncryptionMode::Aes256Cts, "aes-256-cbc"),
        (EncryptionMode::Sm4Cts, "sm4-cbc"),
    ] {
        for zero_iv in [true, false] {
            let key = rng.bytes(mode.key_size());
            let iv16 = if zero_iv {
                vec![0u8; 16]
            } else {
                rng.bytes(16)
            };
            let pt = rng.bytes(16);
            let want = openssl_enc(cipher, &key, Some(&iv16), &pt, false);
            let k = PreparedKey::new(mode, &key).unwrap();
            let mut buf = pt.clone();
            k.encrypt(&iv_from(&iv16), &mut buf).unwrap();
            assert_eq!(buf, want, "{mode}: 16 bytes must be plain CBC");
            k.decrypt(&iv_from(&iv16), &mut buf).unwrap();
            assert_eq!(buf, pt);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ESSIV

#[test]
fn essiv_against_openssl_pipeline() {
    let mut rng = Rng(0xe551);
    for len in [16usize, 32, 512, 1024, 4096] {
        let key = rng.bytes(16);
        let iv16 = match len {
            16 => vec![0u8; 16],
            32 => Iv::from_index(1).first16().to_vec(),
            _ => rng.bytes(16),
        };
        let pt = rng.bytes(len);
        // ESSIV key = SHA-256(key); CBC IV = AES-256-ECB(ESSIV key, iv); then AES-128-CBC.
        let essiv_key = openssl(&["dgst", "-sha256", "-binary"], &key);
        assert_eq!(essiv_key.len(), 32);
        let cbc_iv = openssl_enc("aes-256-ecb", &essiv_key, None, &iv16, false);
        let want = openssl_enc("aes-128-cbc", &key, Some(&cbc_iv), &pt, false);
        let k = PreparedKey::new(EncryptionMode::Aes128CbcEssiv, &key).unwrap();
        let iv = iv_from(&iv16);
        let mut buf = pt.clone();
        k.encrypt(&iv, &mut buf).unwrap();
        assert!(buf == want, "ESSIV {len} bytes differs from openssl");
        k.decrypt(&iv, &mut buf).unwrap();
        assert!(buf == pt, "ESSIV {len} bytes decrypt");
        assert_eq!(
            openssl_enc("aes-128-cbc", &key, Some(&cbc_iv), &want, true),
            pt
        );
    }
}

// ---------------------------------------------------------------------------------------------
// SM4

#[test]
fn sm4_standard_block_vector() {
    use cipher::{BlockCipherEncrypt, KeyInit};
    let file = data_file("sm4.json");
    for v in file["block"].as_array().unwrap() {
        let key = hexf(&v["key"]);
        let pt = hexf(&v["ptext"]);
        let ct = hexf(&v["ctext"]);
        // The block cipher itself.
        let c = sm4::Sm4::new_from_slice(&key).unwrap();
        let mut block = cipher::Array::try_from(pt.as_slice()).unwrap();
        c.encrypt_block(&mut block);
        assert_eq!(block.as_slice(), ct.as_slice());
        // Through SM4-CTS: 16 bytes with the zero IV is one SM4 block.
        let k = PreparedKey::new(EncryptionMode::Sm4Cts, &key).unwrap();
        let mut buf = pt.clone();
        k.encrypt(&Iv::default(), &mut buf).unwrap();
        assert_eq!(buf, ct);
        k.decrypt(&Iv::default(), &mut buf).unwrap();
        assert_eq!(buf, pt);
    }
    assert!(
        openssl_enc(
            "sm4-ecb",
            &hexf(&file["block"][0]["key"]),
            None,
            &hexf(&file["block"][0]["ptext"]),
            false
        ) == hexf(&file["block"][0]["ctext"])
    );
}

#[test]
fn sm4_xts_testmgr_vector() {
    let file = data_file("sm4.json");
    for v in file["xts"].as_array().unwrap() {
        let k = PreparedKey::new(EncryptionMode::Sm4Xts, &hexf(&v["key"])).unwrap();
        let iv = iv_from(&hexf(&v["iv"]));
        let pt = hexf(&v["ptext"]);
        let mut buf = pt.clone();
        k.encrypt(&iv, &mut buf).unwrap();
        assert_eq!(hex::encode(&buf), v["ctext"].as_str().unwrap());
        k.decrypt(&iv, &mut buf).unwrap();
        assert_eq!(buf, pt);
    }
}

#[test]
fn sm4_xts_against_openssl_sm4_ecb() {
    // This OpenSSL (3.0) has no SM4-XTS; build XTS over its SM4-ECB: T0 = E_K2(iv), T(i+1) = T(i)*x.
    let mut rng = Rng(0x5a4);
    for len in [16usize, 32, 48, 256, 4096] {
        let key = rng.bytes(32);
        let iv16 = rng.bytes(16);
        let pt = rng.bytes(len);
        let t0 = openssl_enc("sm4-ecb", &key[16..], None, &iv16, false);
        let mut t = u128::from_le_bytes(t0.try_into().unwrap());
        let mut tweaks = Vec::with_capacity(len);
        let mut xored = pt.clone();
        for block in xored.chunks_mut(16) {
            let tb = t.to_le_bytes();
            block.iter_mut().zip(tb).for_each(|(b, t)| *b ^= t);
            tweaks.extend_from_slice(&tb);
            t = (t << 1) ^ ((t >> 127) * 0x87);
        }
        let mut want = openssl_enc("sm4-ecb", &key[..16], None, &xored, false);
        want.iter_mut().zip(&tweaks).for_each(|(b, t)| *b ^= t);

        let k = PreparedKey::new(EncryptionMode::Sm4Xts, &key).unwrap();
        let iv = iv_from(&iv16);
        let mut buf = pt.clone();
        k.encrypt(&iv, &mut buf).unwrap();
        assert!(buf == want, "SM4-XTS {len} bytes");
        k.decrypt(&iv, &mut buf).unwrap();
        assert!(buf == pt);
    }
}

// ---------------------------------------------------------------------------------------------
// validation

/// Whether `mode` accepts a message of `len` bytes.
fn len_ok(mode: EncryptionMode, len: usize) -> bool {
    match mode {
        EncryptionMode::Aes256Xts | EncryptionMode::Sm4Xts | EncryptionMode::Aes128CbcEssiv => {
            len > 0 && len.is_multiple_of(16)
        }
        EncryptionMode::Aes256Cts | EncryptionMode::Aes128Cts | EncryptionMode::Sm4Cts => len >= 16,
        EncryptionMode::Aes256Hctr2 => len >= 16,
        EncryptionMode::Adiantum => (16..=4112).contains(&len),
    }
}

fn test_key(mode: EncryptionMode) -> Vec<u8> {
    (0..mode.key_size() as u8)
        .map(|i| i.wrapping_mul(29).wrapping_add(3))
        .collect()
}

#[test]
fn wrong_key_lengths_are_einval() {
    for mode in EncryptionMode::ALL {
        for len in [
            0,
            1,
            mode.key_size() - 1,
            mode.key_size() + 1,
            16,
            32,
            64,
            65,
        ] {
            if len == mode.key_size() {
                continue;
            }
            let key = vec![0x5au8; len];
            let e = PreparedKey::new(mode, &key).unwrap_err();
            assert_eq!(e.errno(), Errno::INVAL, "{mode} key of {len} bytes");
            let e = PreparedKey::new_portable(mode, &key).unwrap_err();
            assert_eq!(
                e.errno(),
                Errno::INVAL,
                "{mode} key of {len} bytes (portable)"
            );
        }
        let k = PreparedKey::new(mode, &test_key(mode)).unwrap();
        assert_eq!(k.mode(), mode);
    }
}

#[test]
fn bad_lengths_are_einval_at_the_edges() {
    for mode in EncryptionMode::ALL {
        let k = PreparedKey::new(mode, &test_key(mode)).unwrap();
        for len in [
            0usize, 1, 15, 16, 17, 31, 32, 33, 4095, 4096, 4097, 4112, 4113, 4128, 8192,
        ] {
            let mut buf = vec![0xa5u8; len];
            let iv = Iv::from_index(3);
            let r = k.encrypt(&iv, &mut buf);
            assert_eq!(r.is_ok(), len_ok(mode, len), "{mode} encrypt {len}");
            if let Err(e) = r {
                assert_eq!(e.errno(), Errno::INVAL);
                assert!(
                    buf.iter().all(|&b| b == 0xa5),
                    "{mode}: a refused buffer must be untouched"
                );
            }
            let r = k.decrypt(&iv, &mut buf);
            assert_eq!(r.is_ok(), len_ok(mode, len), "{mode} decrypt {len}");
        }
    }
}

#[test]
fn variable_tweak_limits() {
    let k = PreparedKey::new(
        EncryptionMode::Adiantum,
        &test_key(EncryptionMode::Adiantum),
    )
    .unwrap();
    let mut buf = vec![0u8; 64];
    assert!(k.encrypt_with_tweak(&[1u8; 32], &mut buf).is_ok());
    assert_eq!(
        k.encrypt_with_tweak(&[1u8; 33], &mut buf)
            .unwrap_err()
            .errno(),
        Errno::INVAL
    );
    let h = PreparedKey::new(
        EncryptionMode::Aes256Hctr2,
        &test_key(EncryptionMode::Aes256Hctr2),
    )
    .unwrap();
    buf = vec![0u8; 64];
    assert!(h.encrypt_with_tweak(&[1u8; 100], &mut buf).is_ok());
    assert!(h.decrypt_with_tweak(&[1u8; 100], &mut buf).is_ok());
    assert_eq!(buf, vec![0u8; 64]);
    let x = PreparedKey::new(
        EncryptionMode::Aes256Xts,
        &test_key(EncryptionMode::Aes256Xts),
    )
    .unwrap();
    assert_eq!(
        x.encrypt_with_tweak(&[0u8; 16], &mut buf)
            .unwrap_err()
            .errno(),
        Errno::INVAL
    );
}

#[test]
fn debug_shows_only_the_mode() {
    let k = PreparedKey::new(
        EncryptionMode::Aes256Xts,
        &test_key(EncryptionMode::Aes256Xts),
    )
    .unwrap();
    assert_eq!(format!("{k:?}"), "PreparedKey(AES-256-XTS)");
    for mode in EncryptionMode::ALL {
        let k = PreparedKey::new(mode, &test_key(mode)).unwrap();
        assert_eq!(
            format!("{k:?}"),
            format!("PreparedKey({})", mode.friendly_name())
        );
    }
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PreparedKey>();
}

#[test]
fn prepared_key_shared_across_threads() {
    let key = test_key(EncryptionMode::Aes256Xts);
    let k = std::sync::Arc::new(PreparedKey::new(EncryptionMode::Aes256Xts, &key).unwrap());
    let mut want = vec![3u8; 4096];
    k.encrypt(&Iv::from_index(9), &mut want).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let k = k.clone();
            std::thread::spawn(move || {
                let mut buf = vec![3u8; 4096];
                k.encrypt(&Iv::from_index(9), &mut buf).unwrap();
                buf
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() == want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Any length 0..5000 on any mode: Ok exactly when the mode takes that length (never a panic),
    /// and then decrypt(encrypt(x)) = x and the ciphertext differs from the plaintext.
    #[test]
    fn roundtrip_or_einval_every_mode(
        mode_index in 0usize..8,
        len in 0usize..5000,
        seed in any::<u64>(),
        portable in any::<bool>(),
    ) {
        let mode = EncryptionMode::ALL[mode_index];
        let mut rng = Rng(seed);
        let mut key = rng.bytes(mode.key_size());
        let half = key.len() / 2;
        if key[..half] == key[half..] { key[0] ^= 1; }
        let k = if portable { PreparedKey::new_portable(mode, &key) } else { PreparedKey::new(mode, &key) }.unwrap();
        let mut ivb = [0u8; 32];
        ivb.copy_from_slice(&rng.bytes(32));
        let iv = Iv(ivb);
        let pt = rng.bytes(len);
        let mut buf = pt.clone();
        match k.encrypt(&iv, &mut buf) {
            Ok(()) => {
                prop_assert!(len_ok(mode, len), "{} accepted {} bytes", mode, len);
                prop_assert!(buf != pt);
                k.decrypt(&iv, &mut buf).unwrap();
                prop_assert!(buf == pt, "{} roundtrip {} bytes", mode, len);
            }
            Err(e) => {
                prop_assert!(!len_ok(mode, len), "{} refused {} bytes: {}", mode, len, e);
                prop_assert_eq!(e.errno(), Errno::INVAL);
                prop_assert_eq!(k.decrypt(&iv, &mut buf).unwrap_err().errno(), Errno::INVAL);
            }
        }
    }

    /// Every AES-256-XTS backend gives the portable path's bytes.
    #[test]
    fn xts_backends_agree(blocks in 1usize..300, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let mut key = rng.bytes(64);
        if key[..32] == key[32..] { key[0] ^= 1; }
        let iv = Iv::from_index(rng.next());
        let pt = rng.bytes(16 * blocks);
        let mut want = pt.clone();
        xts_key(XtsBackend::Portable, &key).encrypt(&iv, &mut want).unwrap();
        for b in [XtsBackend::AesNi, XtsBackend::Vaes] {
            let Ok(k) = PreparedKey::new_with_xts_backend(EncryptionMode::Aes256Xts, &key, b) else { continue };
            let mut buf = pt.clone();
            k.encrypt(&iv, &mut buf).unwrap();
            prop_assert!(buf == want, "{:?} {} blocks", b, blocks);
            k.decrypt(&iv, &mut buf).unwrap();
            prop_assert!(buf == pt);
        }
    }
}
