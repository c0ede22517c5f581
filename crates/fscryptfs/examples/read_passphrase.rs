//! Reads a passphrase (or a raw key file) the way the `fscryptfs` commands do and prints its length
//! and SHA-256, so tests can check what was read without the secret itself appearing anywhere.
//!
//! Usage: `read_passphrase [--passphrase-file FILE | --extpass ARG…] [--new] [--prompt TEXT]`
//! or `read_passphrase --raw-key FILE`. `--extpass` may be repeated: each one adds one argument
//! (the first is the program). Output: `len=N sha256=HEX`. On error: `read_passphrase: MESSAGE` on
//! stderr and the error's exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use fscryptfs::passphrase::{read_passphrase, read_raw_key_32, PassphraseSource};
use sha2::{Digest, Sha256};

fn usage(msg: &str) -> ExitCode {
    eprintln!("read_passphrase: {msg}");
    eprintln!(
        "usage: read_passphrase [--passphrase-file FILE | --extpass ARG...] [--new] [--prompt TEXT] | --raw-key FILE"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut file: Option<PathBuf> = None;
    let mut extpass: Vec<String> = Vec::new();
    let mut raw_key: Option<PathBuf> = None;
    let mut new = false;
    let mut prompt = String::from("passphrase");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let r = match arg.as_str() {
            "--passphrase-file" => value("--passphrase-file").map(|v| file = Some(v.into())),
            "--extpass" => value("--extpass").map(|v| extpass.push(v)),
            "--raw-key" => value("--raw-key").map(|v| raw_key = Some(v.into())),
            "--prompt" => value("--prompt").map(|v| prompt = v),
            "--new" => {
                new = true;
                Ok(())
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(msg) = r {
            return usage(&msg);
        }
    }
    let result = if let Some(path) = raw_key {
        read_raw_key_32(&path)
    } else {
        let source = match (file, extpass.is_empty()) {
            (Some(_), false) => return usage("--passphrase-file and --extpass exclude each other"),
            (Some(path), true) => PassphraseSource::File(path),
            (None, false) => PassphraseSource::Extpass(extpass),
            (None, true) => PassphraseSource::Prompt,
        };
        read_passphrase(&source, &prompt, new)
    };
    match result {
        Ok(secret) => {
            let digest = Sha256::digest(secret.as_ref());
            println!("len={} sha256={}", secret.len(), hex::encode(digest));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("read_passphrase: {e}");
            ExitCode::from(u8::try_from(e.exit_code).unwrap_or(1))
        }
    }
}
