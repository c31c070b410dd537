//! The live credential the filter injects: a static token or basic auth, a token file re-read
//! every 50 s (client-go's 60 s period minus 10 s leeway), or an exec plugin cached until its
//! `expirationTimestamp` and refreshed after a 401. The current value is published as JSON
//! (`{"token":…}`, `{"basic":{…}}` or `{}`) into the plugin's shared data under
//! [`Credentials::SHARED_DATA_KEY`], which the filter reads per request.
//!
//! It never logs credential values. Client certificates are TLS material and live in
//! `kubeconfig` (re-read on file change there); exec plugins that return certificates are not
//! supported (their token, if any, is used).

mod exec;
mod time;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

pub use time::Clock;

use crate::kubeconfig::{CredentialSource, ExecConfig};

/// Receives the credential JSON (implemented by the wasm host's plugin; tests use a fake).
pub trait SharedDataSink: Send + Sync {
    /// Stores `value` under `key`, replacing any previous value.
    fn set_shared_data(&self, key: &str, value: &[u8]);
}

impl SharedDataSink for crate::host::Plugin {
    fn set_shared_data(&self, key: &str, value: &[u8]) {
        crate::host::Plugin::set_shared_data(self, key, value);
    }
}

/// Errors obtaining a credential; the text is what kubectl reports for a failed request.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CredentialsError {
    /// The exec plugin failed or returned something unusable.
    #[error("getting credentials: {0}")]
    Exec(String),
}

/// The credential value currently in force.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    None,
    Token(String),
    Basic { username: String, password: String },
}

impl Value {
    fn to_json(&self) -> Vec<u8> {
        let json = match self {
            Self::None => serde_json::json!({}),
            Self::Token(token) => serde_json::json!({ "token": token }),
            Self::Basic { username, password } => {
                serde_json::json!({ "basic": { "username": username, "password": password } })
            }
        };
        json.to_string().into_bytes()
    }
}

/// How often a token file is re-read: client-go's 60 s cache period minus its 10 s leeway.
pub const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(50);

#[derive(Debug)]
struct State {
    value: Value,
    /// Token file: when to re-read. Exec: when the cached token expires (`None` = never).
    next_refresh: Option<Instant>,
    /// Exec: a token has been obtained.
    exec_cached: bool,
    exec_expiry: Option<SystemTime>,
}

/// The credential source plus its cached value and the sinks it is published to.
pub struct Credentials {
    source: CredentialSource,
    clock: Clock,
    token_file_refresh: Duration,
    state: Mutex<State>,
    /// Serializes exec plugin runs (held across the await).
    exec_lock: tokio::sync::Mutex<()>,
    sinks: Mutex<Vec<Arc<dyn SharedDataSink>>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.source {
            CredentialSource::None => "none",
            CredentialSource::Token(_) => "token",
            CredentialSource::TokenFile { .. } => "token-file",
            CredentialSource::Basic { .. } => "basic",
            CredentialSource::Exec(_) => "exec",
        };
        f.debug_struct("Credentials")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

// === impl Credentials ===

impl Credentials {
    /// The shared-data key the filter reads (`credentials.shared_data_key` in the plugin JSON).
    pub const SHARED_DATA_KEY: &'static str = "kproxy.credentials";

    /// Credentials from `source` with the system clock.
    pub fn new(source: CredentialSource) -> Self {
        Self::with_clock(source, Clock::system(), TOKEN_FILE_REFRESH)
    }

    /// No credentials (plain `http` servers, third-party filters).
    pub fn none() -> Self {
        Self::new(CredentialSource::None)
    }

    /// Credentials with an injectable clock and token-file refresh period (tests).
    pub fn with_clock(
        source: CredentialSource,
        clock: Clock,
        token_file_refresh: Duration,
    ) -> Self {
        let (value, next_refresh) = match &source {
            CredentialSource::None | CredentialSource::Exec(_) => (Value::None, None),
            CredentialSource::Token(token) => (Value::Token(token.clone()), None),
            CredentialSource::Basic { username, password } => (
                Value::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                None,
            ),
            CredentialSource::TokenFile { initial, .. } => (
                Value::Token(initial.clone()),
                Some(clock.now() + token_file_refresh),
            ),
        };
        Self {
            source,
            clock,
            token_file_refresh,
            state: Mutex::new(State {
                value,
                next_refresh,
                exec_cached: false,
                exec_expiry: None,
            }),
            exec_lock: tokio::sync::Mutex::new(()),
            sinks: Mutex::new(Vec::new()),
        }
    }

    /// True when the shim manages a credential, i.e. the plugin JSON must carry
    /// `"credentials": {"shared_data_key": …}`.
    pub fn is_managed(&self) -> bool {
        !matches!(self.source, CredentialSource::None)
    }

    /// The current credential as the JSON written to shared data.
    pub fn current_json(&self) -> Vec<u8> {
        self.lock().value.to_json()
    }

    /// Publishes the credential into `plugin`'s shared data now and after every change.
    pub fn attach<S: SharedDataSink + 'static>(&self, plugin: Arc<S>) {
        plugin.set_shared_data(Self::SHARED_DATA_KEY, &self.current_json());
        self.sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(plugin);
    }

    /// Makes sure the published credential is current: re-reads a token file when due, runs
    /// the exec plugin when there is no token yet or it expired. Cheap when fresh.
    pub async fn ensure_fresh(&self) -> Result<(), CredentialsError> {
        match &self.source {
            CredentialSource::TokenFile { path, .. } => {
                self.refresh_token_file(path);
                Ok(())
            }
            CredentialSource::Exec(config) => {
                if self.exec_is_fresh() {
                    return Ok(());
                }
                let _guard = self.exec_lock.lock().await;
                if self.exec_is_fresh() {
                    return Ok(());
                }
                self.run_exec(config).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Called after the API server answered 401: re-runs the exec plugin. Returns true when
    /// the credential changed (an idempotent request may then be retried once).
    pub async fn unauthorized(&self) -> bool {
        let CredentialSource::Exec(config) = &self.source else {
            return false;
        };
        let _guard = self.exec_lock.lock().await;
        let before = self.lock().value.clone();
        match self.run_exec(config).await {
            Ok(after) => after != before,
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, value: &Value) {
        let json = value.to_json();
        for sink in self
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            sink.set_shared_data(Self::SHARED_DATA_KEY, &json);
        }
    }

    fn refresh_token_file(&self, path: &std::path::Path) {
        let now = self.clock.now();
        {
            let state = self.lock();
            if state.next_refresh.is_some_and(|due| now < due) {
                return;
            }
        }
        let read = std::fs::read_to_string(path);
        let mut state = self.lock();
        state.next_refresh = Some(now + self.token_file_refresh);
        match read {
            Ok(text) => {
                let fresh = Value::Token(text.trim().to_owned());
                if fresh != state.value {
                    state.value = fresh.clone();
                    drop(state);
                    self.publish(&fresh);
                }
            }
            Err(e) => {
                tracing::error!(
                    "Unable to rotate token: {}",
                    crate::kubeconfig::go_os_error("open", path, &e)
                );
            }
        }
    }

    fn exec_is_fresh(&self) -> bool {
        let state = self.lock();
        state.exec_cached
            && state
                .exec_expiry
                .is_none_or(|expiry| self.clock.system_now() < expiry)
    }

    async fn run_exec(&self, config: &ExecConfig) -> Result<Value, CredentialsError> {
        let output = exec::run(config).await.map_err(CredentialsError::Exec)?;
        let value = Value::Token(output.token);
        let mut state = self.lock();
        state.exec_cached = true;
        state.exec_expiry = output.expiry;
        let changed = state.value != value;
        state.value = value.clone();
        drop(state);
        if changed {
            self.publish(&value);
        }
        Ok(value)
    }
}
