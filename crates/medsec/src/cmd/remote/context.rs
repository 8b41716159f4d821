//! Contexts: the servers an operator works with, each with its address, the CA its certificate
//! must chain to (pinned at login), the operator token and the default output format, kept in
//! one file of the user's configuration directory that only its owner may read (0600), as
//! kubectl keeps its kubeconfig.
//!
//! The file is `$MEDSEC_CONFIG_DIR/contexts.json`, else `$XDG_CONFIG_HOME/medsec/contexts.json`,
//! else `~/.config/medsec/contexts.json`.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// One server and the credential used with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Its name (`medsec context use NAME`).
    pub name: String,
    /// The operator port's base URL, `https://HOST:PORT`.
    pub server: String,
    /// The PEM certificates the server's must chain to.
    pub ca_pem: String,
    /// The operator token.
    pub token: String,
    /// The operator the server resolved the token to at login.
    pub operator: String,
    /// Their roles at login.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Output format when `-o` is not given.
    #[serde(default = "default_output")]
    pub output: String,
}

fn default_output() -> String {
    "table".into()
}

/// The contexts file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    /// The context used when `--context` is not given.
    #[serde(default)]
    pub current: Option<String>,
    /// Every context, by name.
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// The directory of medsec's user configuration.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MEDSEC_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("medsec"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("neither MEDSEC_CONFIG_DIR, XDG_CONFIG_HOME nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".config").join("medsec"))
}

impl Contexts {
    /// The file's path.
    pub fn path() -> Result<PathBuf> {
        Ok(config_dir()?.join("contexts.json"))
    }

    /// Reads the file (no file: no contexts). A file that others may read is refused, since it
    /// holds tokens.
    pub fn load() -> Result<Self> {
        let path = Self::path()?;
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = medsec_util::read_secret(&path)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a contexts file", path.display()))
    }

    /// Writes the file, owner-only, atomically.
    pub fn save(&self) -> Result<()> {
        let path = Self::path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        medsec_util::write_atomic(&path, text.as_bytes(), medsec_util::Access::Private)?;
        Ok(())
    }

    /// The context named `name`, or the current one.
    pub fn pick(&self, name: Option<&str>) -> Result<&Context> {
        let path = Self::path()?;
        let wanted = match name.or(self.current.as_deref()) {
            Some(n) => n,
            None => bail!(
                "no server to talk to: no context is selected ({} holds none). Log in first: \
                 `medsec login https://HOST:8444 --ca chain.pem --token-file TOKEN`; on the \
                 server host, the admin commands (`medsec fleet …`, `medsec operator …`) take \
                 --data-dir DIR instead",
                path.display()
            ),
        };
        self.contexts
            .iter()
            .find(|c| c.name == wanted)
            .ok_or_else(|| {
                let known: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
                anyhow!(
                    "no context named {wanted:?} in {} (known: {}); `medsec login` adds one",
                    path.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })
    }

    /// Adds or replaces a context and makes it current.
    pub fn put(&mut self, context: Context) {
        self.current = Some(context.name.clone());
        self.contexts.retain(|c| c.name != context.name);
        self.contexts.push(context);
        self.contexts.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// The default context name for a server URL: its host and port.
pub fn name_for(server: &str) -> String {
    server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}
