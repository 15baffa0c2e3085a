//! `[app.NAME.config]`: an app's configuration values and secrets.
//!
//! ```toml
//! [app.shortener.config]
//! base_url = "https://sho.rt"
//! page_size = 20                          # numbers and booleans become text
//! api_token = { env = "SHORTENER_TOKEN" } # a secret, from the environment
//! signing_key = { file = "secrets/key" }  # a secret, from a file (one trailing newline dropped)
//! ```
//!
//! Secrets are read once, at load; their values are never printed: not by
//! `Debug`, not in an error, not in the log.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest value accepted, secrets included.
const MAX_VALUE: usize = 64 << 10;

/// The shortest cookie secret both SDKs sign with (`cookie_secret`,
/// `cookie_secret_2`, ...): one shorter fails every signed cookie, so it is
/// refused at load rather than found request by request.
const MIN_COOKIE_SECRET: usize = 16;

/// One value as written.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSetting {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Secret(SecretSource),
}

/// Where a secret comes from: exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretSource {
    env: Option<String>,
    file: Option<PathBuf>,
}

/// An app's values, shared by its stores.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings(Arc<BTreeMap<String, Setting>>);

#[derive(Clone, PartialEq, Eq)]
struct Setting {
    value: String,
    secret: bool,
}

impl Settings {
    /// Read every value of `raw`, secrets included, but those `given` over
    /// the manifest (a test's own: its secret's variable need not be set);
    /// the error names the key.
    pub(super) fn resolve(
        raw: BTreeMap<String, RawSetting>,
        base: &Path,
        given: &[String],
    ) -> Result<Settings, (String, String)> {
        let mut settings = BTreeMap::new();
        for (key, raw) in raw {
            if given.contains(&key) {
                continue;
            }
            let fail = |why: String| (key.clone(), why);
            let setting = match raw {
                RawSetting::Text(value) => Setting {
                    value,
                    secret: false,
                },
                RawSetting::Integer(value) => Setting {
                    value: value.to_string(),
                    secret: false,
                },
                RawSetting::Float(value) => Setting {
                    value: value.to_string(),
                    secret: false,
                },
                RawSetting::Bool(value) => Setting {
                    value: value.to_string(),
                    secret: false,
                },
                RawSetting::Secret(source) => Setting {
                    value: source.read(base).map_err(fail)?,
                    secret: true,
                },
            };
            if setting.value.len() > MAX_VALUE {
                return Err(fail(format!("the value is over {MAX_VALUE} bytes")));
            }
            if is_cookie_secret(&key) && setting.value.len() < MIN_COOKIE_SECRET {
                return Err(fail(format!(
                    "a cookie secret must be at least {MIN_COOKIE_SECRET} bytes \
                     (this one has {}): signed cookies would fail at every request",
                    setting.value.len()
                )));
            }
            settings.insert(key, setting);
        }
        Ok(Settings(Arc::new(settings)))
    }

    /// These values with `key` set to `value` unless it is set already.
    pub(crate) fn with_default(&self, key: &str, value: &str) -> Settings {
        if self.get(key).is_some() {
            return self.clone();
        }
        self.with(key, value, false)
    }

    /// These values with `key` set to `value` (a secret: never shown).
    pub(crate) fn with(&self, key: &str, value: &str, secret: bool) -> Settings {
        let mut settings = (*self.0).clone();
        let value = value.to_owned();
        settings.insert(key.to_owned(), Setting { value, secret });
        Settings(Arc::new(settings))
    }

    /// How many values there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|setting| setting.value.as_str())
    }

    /// Every key and value, secrets included (for wasi:config's `get-all`).
    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, setting)| (key.as_str(), setting.value.as_str()))
    }

    /// The secret values, so that output can be scrubbed of them.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.0
            .values()
            .filter(|setting| setting.secret && !setting.value.is_empty())
            .map(|setting| setting.value.as_str())
    }
}

/// `cookie_secret`, or a later key's `cookie_secret_2` ... `cookie_secret_9`.
fn is_cookie_secret(key: &str) -> bool {
    match key.strip_prefix("cookie_secret") {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('_')
            .is_some_and(|version| matches!(version.as_bytes(), [b'2'..=b'9'])),
        None => false,
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, setting)| {
                let shown = if setting.secret {
                    "<secret>"
                } else {
                    setting.value.as_str()
                };
                (key, shown)
            }))
            .finish()
    }
}

impl SecretSource {
    fn read(self, base: &Path) -> Result<String, String> {
        match (self.env, self.file) {
            (Some(name), None) => std::env::var(&name).map_err(|err| match err {
                std::env::VarError::NotPresent => {
                    format!("the environment variable {name} is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("the environment variable {name} is not UTF-8")
                }
            }),
            (None, Some(file)) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
            }
            _ => {
                Err("a secret is { env = \"NAME\" } or { file = \"path\" }, one of the two".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Settings, (String, String)> {
        let raw: BTreeMap<String, RawSetting> = toml::from_str(text).expect("valid toml");
        Settings::resolve(raw, Path::new("/nonexistent"), &[])
    }

    #[test]
    fn values_of_every_kind_become_text() {
        let settings = resolve("a = \"x\"\nb = 20\nc = true\nd = 1.5\n").expect("valid");
        assert_eq!(settings.get("a"), Some("x"));
        assert_eq!(settings.get("b"), Some("20"));
        assert_eq!(settings.get("c"), Some("true"));
        assert_eq!(settings.get("d"), Some("1.5"));
        assert_eq!(settings.get("e"), None);
    }

    #[test]
    fn secrets_are_read_and_never_shown() {
        let dir = tempfile::tempdir().expect("a directory");
        std::fs::write(dir.path().join("key"), "hunter2\n").expect("write");
        let raw: BTreeMap<String, RawSetting> =
            toml::from_str("key = { file = \"key\" }\nplain = \"p\"\n").expect("valid toml");
        let settings = Settings::resolve(raw, dir.path(), &[]).expect("valid");
        assert_eq!(settings.get("key"), Some("hunter2"));
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<secret>"),
            "{shown}"
        );
        assert_eq!(settings.secrets().collect::<Vec<_>>(), ["hunter2"]);
    }

    #[test]
    fn a_cookie_secret_too_short_is_refused_at_load_naming_its_key() {
        let (key, why) = resolve("cookie_secret = \"short\"\n").expect_err("too short");
        assert_eq!(key, "cookie_secret");
        assert!(
            why.contains("at least 16 bytes") && !why.contains("short\""),
            "{why}"
        );
        let (key, _) = resolve("cookie_secret_2 = \"abc\"\n").expect_err("too short");
        assert_eq!(key, "cookie_secret_2");
        let long = "cookie_secret = \"0123456789abcdef\"\ncookie_secretive = \"x\"\n";
        assert!(
            resolve(long).is_ok(),
            "16 bytes, and a key that only looks like one"
        );
    }

    #[test]
    fn a_value_set_over_the_manifest_replaces_it_and_a_secret_stays_hidden() {
        let settings = resolve("base_url = \"http://a\"\n").expect("valid");
        let set = settings
            .with("base_url", "http://b", false)
            .with("token", "hunter2", true);
        assert_eq!(set.get("base_url"), Some("http://b"));
        assert_eq!(set.secrets().collect::<Vec<_>>(), ["hunter2"]);
        assert!(!format!("{set:?}").contains("hunter2"));
        assert_eq!(
            settings.get("base_url"),
            Some("http://a"),
            "the original is unchanged"
        );
        let defaulted = set
            .with_default("base_url", "http://c")
            .with_default("debug", "true");
        assert_eq!(defaulted.get("base_url"), Some("http://b"));
        assert_eq!(defaulted.get("debug"), Some("true"));
    }

    #[test]
    fn a_secret_given_over_the_manifest_is_not_read() {
        let raw = toml::from_str("token = { env = \"SQUALL_TEST_SURELY_UNSET\" }\n")
            .expect("a config table");
        let settings = Settings::resolve(raw, Path::new("/nonexistent"), &["token".to_owned()])
            .expect("the variable is not needed");
        assert_eq!(
            settings.with("token", "given", true).get("token"),
            Some("given")
        );
    }

    #[test]
    fn a_missing_secret_names_its_key_and_source() {
        let (key, why) =
            resolve("token = { env = \"SQUALL_TEST_SURELY_UNSET\" }\n").expect_err("unset");
        assert_eq!(key, "token");
        assert!(why.contains("SQUALL_TEST_SURELY_UNSET"), "{why}");
        let (_, why) = resolve("token = { env = \"A\", file = \"b\" }\n").expect_err("both");
        assert!(why.contains("one of the two"), "{why}");
    }
}
