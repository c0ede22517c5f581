//! `/etc/fscrypt.conf`, the `fscrypt` tool's global configuration: the default protector source,
//! the Argon2id costs copied into every new passphrase protector, and the options copied into every
//! new policy. Stored as proto3 JSON; read leniently as the tool reads it (int64 as string or
//! number, enums by name or number, snake_case or lowerCamel keys, unknown keys ignored, zero values
//! replaced by defaults) and written in the tool's layout.
//!
//! `FSCRYPTFS_CONFIG` names another file (tests, and users who cannot write `/etc`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::proto::{mode_from_name, mode_name, EncryptionOptions, HashingCosts, SourceType};
use super::{Error, Result};

/// Where the tool keeps its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fscrypt.conf";
/// A configuration file larger than this is not one.
const MAX_CONFIG_LEN: u64 = 64 * 1024;

/// The configuration's path: `$FSCRYPTFS_CONFIG`, else `/etc/fscrypt.conf`.
pub fn config_path() -> PathBuf {
    std::env::var_os("FSCRYPTFS_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// The tool's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Default source of new protectors.
    pub source: SourceType,
    /// Costs of new passphrase protectors.
    pub hash_costs: HashingCosts,
    /// Options of new policies.
    pub options: EncryptionOptions,
    /// v1 keys in the filesystem keyring.
    pub use_fs_keyring_for_v1_policies: bool,
    /// Trust metadata owned by other users.
    pub allow_cross_user_metadata: bool,
}

impl Config {
    /// A configuration with the tool's defaults and the given costs.
    pub fn with_costs(hash_costs: HashingCosts) -> Self {
        Config {
            source: SourceType::CustomPassphrase,
            hash_costs,
            options: EncryptionOptions::default_v2(),
            use_fs_keyring_for_v1_policies: false,
            allow_cross_user_metadata: false,
        }
    }

    /// Reads the configuration at `path`; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Config>> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        let mut text = String::new();
        file.take(MAX_CONFIG_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|e| Error::io(path.display(), e))?;
        if text.len() as u64 > MAX_CONFIG_LEN {
            return Err(Error::Corrupt(format!("{}: too large", path.display())));
        }
        Config::parse(&text)
            .map(Some)
            .map_err(|m| Error::Corrupt(format!("{}: {m}", path.display())))
    }

    /// Parses the JSON text of a configuration.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let root = root.as_object().ok_or("not a JSON object")?;
        let source = match field(root, "source") {
            None => SourceType::CustomPassphrase,
            Some(v) => match enum_value(v, |n| SourceType::from_tool_name(n).map(|s| s as i32))? {
                0 => SourceType::CustomPassphrase,
                n => SourceType::try_from(n).map_err(|_| format!("unknown source {n}"))?,
            },
        };
        let empty = Map::new();
        let costs = field(root, "hash_costs")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let hash_costs = HashingCosts {
            time: int(costs, "time")?,
            memory: int(costs, "memory")?,
            parallelism: int(costs, "parallelism")?,
            truncation_fixed: field(costs, "truncation_fixed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        let opts = field(root, "options")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mode = |name: &str, default: i32| -> std::result::Result<i32, String> {
            match field(opts, name) {
                None => Ok(default),
                Some(v) => match enum_value(v, mode_from_name)? {
                    0 => Ok(default),
                    n => Ok(n),
                },
            }
        };
        let options = EncryptionOptions {
            padding: match int(opts, "padding")? {
                0 => 32,
                n => n,
            },
            contents: mode("contents", 1)?,
            filenames: mode("filenames", 4)?,
            policy_version: match int(opts, "policy_version")? {
                0 => 1,
                n => n,
            },
        };
        let flag = |name: &str| field(root, name).and_then(Value::as_bool).unwrap_or(false);
        let config = Config {
            source,
            hash_costs,
            use_fs_keyring_for_v1_policies: flag("use_fs_keyring_for_v1_policies"),
            allow_cross_user_metadata: flag("allow_cross_user_metadata"),
            options,
        };
        config.options.check().map_err(|e| e.to_string())?;
        if config.source.is_passphrase() {
            config.hash_costs.check().map_err(|e| e.to_string())?;
        }
        Ok(config)
    }

    /// The configuration as the tool writes it: tab-indented proto3 JSON, int64 as strings, in
    /// field order, with a trailing newline.
    pub fn to_json(&self) -> String {
        let c = &self.hash_costs;
        let o = &self.options;
        format!(
            "{{\n\t\"source\": \"{}\",\n\t\"hash_costs\": {{\n\t\t\"time\": \"{}\",\n\t\t\"memory\": \"{}\",\n\t\t\"parallelism\": \"{}\",\n\t\t\"truncation_fixed\": {}\n\t}},\n\t\"options\": {{\n\t\t\"padding\": \"{}\",\n\t\t\"contents\": \"{}\",\n\t\t\"filenames\": \"{}\",\n\t\t\"policy_version\": \"{}\"\n\t}},\n\t\"use_fs_keyring_for_v1_policies\": {},\n\t\"allow_cross_user_metadata\": {}\n}}\n",
            self.source.tool_name(),
            c.time,
            c.memory,
            c.parallelism,
            c.truncation_fixed,
            o.padding,
            mode_name(o.contents),
            mode_name(o.filenames),
            o.policy_version,
            self.use_fs_keyring_for_v1_policies,
            self.allow_cross_user_metadata,
        )
    }
}

/// A key by its proto name or its lowerCamel JSON name.
fn field<'a>(obj: &'a Map<String, Value>, snake: &str) -> Option<&'a Value> {
    obj.get(snake).or_else(|| {
        let mut camel = String::new();
        let mut up = false;
        for ch in snake.chars() {
            if ch == '_' {
                up = true;
            } else if up {
                camel.extend(ch.to_uppercase());
                up = false;
            } else {
                camel.push(ch);
            }
        }
        obj.get(&camel)
    })
}

/// An int64: a JSON number or a string of digits; absent is 0.
fn int(obj: &Map<String, Value>, name: &str) -> std::result::Result<i64, String> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or(format!("{name}: not an integer")),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{name}: not an integer")),
        Some(_) => Err(format!("{name}: not an integer")),
    }
}

/// An enum: a name (via `by_name`) or a number.
fn enum_value(
    v: &Value,
    by_name: impl Fn(&str) -> Option<i32>,
) -> std::result::Result<i32, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("bad enum value {n}")),
        Value::String(s) => by_name(s).ok_or_else(|| format!("unknown name {s:?}")),
        _ => Err("bad enum value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file the real tool (v0.3.3) wrote, as recorded in docs/FORMAT.md.
    const TOOL_CONF: &str = "{\n\t\"source\": \"custom_passphrase\",\n\t\"hash_costs\": {\n\t\t\"time\": \"24\",\n\t\t\"memory\": \"131072\",\n\t\t\"parallelism\": \"2\"\n\t},\n\t\"options\": {\n\t\t\"padding\": \"32\",\n\t\t\"contents\": \"AES_256_XTS\",\n\t\t\"filenames\": \"AES_256_CTS\",\n\t\t\"policy_version\": \"2\"\n\t},\n\t\"use_fs_keyring_for_v1_policies\": false,\n\t\"allow_cross_user_metadata\": false\n}\n";

    #[test]
    fn reads_the_tools_file_and_writes_it_back() {
        let c = Config::parse(TOOL_CONF).unwrap();
        assert_eq!(c.hash_costs.time, 24);
        assert_eq!(c.hash_costs.memory, 131072);
        assert_eq!(c.hash_costs.parallelism, 2);
        assert_eq!(c.options, EncryptionOptions::default_v2());
        let again = Config::parse(&c.to_json()).unwrap();
        assert_eq!(again.options, c.options);
        assert_eq!(again.hash_costs.time, 24);
        // Ours adds only HEAD's truncation_fixed line.
        let ours: String = c
            .to_json()
            .lines()
            .filter(|l| !l.contains("truncation_fixed"))
            .map(|l| {
                format!(
                    "{}\n",
                    l.replace("\"parallelism\": \"2\",", "\"parallelism\": \"2\"")
                )
            })
            .collect();
        assert_eq!(ours, TOOL_CONF);
    }

    #[test]
    fn lenient_forms_and_defaults() {
        let c = Config::parse(
            r#"{"hashCosts":{"time":3,"memory":"64","parallelism":1},"options":{"contents":1,"policyVersion":0},"future":1}"#,
        )
        .unwrap();
        assert_eq!(c.source, SourceType::CustomPassphrase);
        assert_eq!(c.hash_costs.time, 3);
        assert_eq!(c.options.padding, 32);
        assert_eq!(c.options.filenames, 4);
        assert_eq!(c.options.policy_version, 1);
        assert!(Config::parse(r#"{"hash_costs":{"time":"x"}}"#).is_err());
        assert!(Config::parse("[]").is_err());
        assert!(Config::parse(r#"{"hash_costs":{"time":1,"memory":1,"parallelism":1}}"#).is_err());
    }
}
