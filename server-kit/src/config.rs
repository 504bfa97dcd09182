//! Layered daemon configuration: built-in defaults < TOML file (`--config`) <
//! `DFS_*` environment variables < command-line flags.
//!
//! Each daemon declares one struct that derives `clap::Parser` (flags, `env`,
//! defaults and `--help` text) and serde's traits (TOML keys are the field
//! names). [`load`] parses the flags, then lets the file fill in every field
//! that neither a flag nor a variable set.

use clap::parser::ValueSource;
use clap::Parser;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad flags, or `--help`/`--version` (print with `exit()`).
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Parses `args` into `T`, filling from the TOML file named by the `config`
/// field every value left at its default by flags and environment.
pub fn load<T, I>(args: I) -> Result<T, ConfigError>
where
    T: Parser + Serialize + DeserializeOwned,
    I: IntoIterator,
    I::Item: Into<OsString> + Clone,
{
    let command = T::command();
    let matches = command.clone().try_get_matches_from(args)?;
    let parsed = T::from_arg_matches(&matches)?;
    let Some(path) = matches.get_one::<PathBuf>("config").cloned() else {
        return Ok(parsed);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let file_err = |message: String| ConfigError::File { path: path.clone(), message };
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;

    let mut merged = serde_json::to_value(&parsed).map_err(|e| file_err(e.to_string()))?;
    let object = merged.as_object_mut().ok_or_else(|| file_err("config type is not a struct".into()))?;
    for (key, value) in table {
        let known = key != "config" && command.get_arguments().any(|a| a.get_id().as_str() == key);
        if !known {
            return Err(file_err(format!("unknown setting {key:?}")));
        }
        let set_elsewhere = matches!(matches.value_source(&key), Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable));
        if !set_elsewhere {
            let json = serde_json::to_value(&value).map_err(|e| file_err(format!("{key}: {e}")))?;
            object.insert(key, json);
        }
    }
    serde_json::from_value(merged).map_err(|e| file_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Parser, Serialize, Deserialize, Debug)]
    struct Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Lease duration in milliseconds.
        #[arg(long, env = "DFS_TEST_LEASE_MS", default_value_t = 60_000)]
        lease_ms: u64,
        #[arg(long, default_value = "a")]
        name: String,
    }

    fn file(text: &str) -> tempfile_free::Temp {
        tempfile_free::Temp::new(text)
    }

    /// A tiny temp-file helper, so `common` needs no dev-dependency.
    mod tempfile_free {
        pub struct Temp(pub std::path::PathBuf);
        impl Temp {
            pub fn new(text: &str) -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("dfs-config-test-{}-{n}.toml", std::process::id()));
                std::fs::write(&p, text).expect("write temp config");
                Temp(p)
            }
        }
        impl Drop for Temp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let d: Demo = load(["x"]).unwrap();
        assert_eq!((d.lease_ms, d.name.as_str()), (60_000, "a"));
        let f = file("lease_ms = 5\nname = \"b\"\n");
        let p = f.0.to_str().unwrap();
        let d: Demo = load(["x", "--config", p]).unwrap();
        assert_eq!((d.lease_ms, d.name.as_str()), (5, "b"));
        let d: Demo = load(["x", "--config", p, "--lease-ms", "7"]).unwrap();
        assert_eq!((d.lease_ms, d.name.as_str()), (7, "b"));
    }

    #[test]
    fn unknown_keys_and_bad_types_are_refused() {
        let f = file("lease_msec = 5\n");
        let err = load::<Demo, _>(["x", "--config", f.0.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("unknown setting \"lease_msec\""), "{err}");
        let f = file("lease_ms = \"soon\"\n");
        assert!(load::<Demo, _>(["x", "--config", f.0.to_str().unwrap()]).is_err());
    }
}
