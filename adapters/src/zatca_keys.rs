//! Where an EGS unit keeps its ZATCA secrets: its signing key and the credentials ZATCA issued
//! (the compliance and the production CSID), each a file in one directory, readable by the
//! service's user alone (mode 0600; the directory 0700).
//!
//! These never enter the event store or the database, so no backup of either, no route and no
//! log line can show them: a leaked database leaks no way to sign in the seller's name. A file
//! is written whole (to a temporary name, synced, then renamed), so a crash leaves the old file
//! or the new one, never half of one. `revledger config check` reports only whether each file
//! is there and when the production certificate expires.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use k256::ecdsa::SigningKey;
use k256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};

use crate::fatoora::{Credentials, RequestId};
use crate::webhooks::Secret;

/// The signing key's file.
pub const KEY_FILE: &str = "egs-signing-key.pem";
/// The compliance CSID's file.
pub const COMPLIANCE_FILE: &str = "compliance-csid.json";
/// The production CSID's file.
pub const PRODUCTION_FILE: &str = "production-csid.json";

/// Why the key store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not what the key store wrote: {reason}")]
    Malformed { path: String, reason: String },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A CSID as kept on disk: what [`Credentials`] holds, in plain JSON, in a file only the
/// service's user can read.
#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    request_id: String,
    binary_security_token: String,
    secret: String,
}

/// One EGS unit's key store: a directory.
#[derive(Clone, Debug)]
pub struct KeyStore {
    dir: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> KeyStoreError {
    KeyStoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The signing key, made (from the operating system's randomness) and kept on first use.
    pub fn signing_key(&self) -> Result<SigningKey, KeyStoreError> {
        if let Some(key) = self.existing_key()? {
            return Ok(key);
        }
        let mut bytes = [0u8; 32];
        // A scalar of 32 random bytes is below the curve's order but with negligible chance;
        // draw again until it is a valid key.
        let key = loop {
            getrandom::fill(&mut bytes)
                .map_err(|error| KeyStoreError::Random(error.to_string()))?;
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                break key;
            }
        };
        bytes.fill(0);
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| KeyStoreError::Malformed {
                path: self.path(KEY_FILE).display().to_string(),
                reason: error.to_string(),
            })?;
        self.write_private(KEY_FILE, pem.as_bytes())?;
        Ok(key)
    }

    /// The signing key, if one was made.
    pub fn existing_key(&self) -> Result<Option<SigningKey>, KeyStoreError> {
        let path = self.path(KEY_FILE);
        let pem = match fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(&path, error)),
        };
        SigningKey::from_pkcs8_pem(&pem)
            .map(Some)
            .map_err(|error| KeyStoreError::Malformed {
                path: path.display().to_string(),
                reason: error.to_string(),
            })
    }

    /// The compliance or production CSID kept in `file`, if any.
    pub fn credentials(&self, file: &str) -> Result<Option<Credentials>, KeyStoreError> {
        let path = self.path(file);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(&path, error)),
        };
        // The reason names where the file stops making sense, never what is there: a serde
        // message may quote a value, and the values here are the CSID and its secret.
        let stored: StoredCredentials =
            serde_json::from_str(&text).map_err(|error| KeyStoreError::Malformed {
                path: path.display().to_string(),
                reason: format!(
                    "not the JSON the key store writes ({:?} at line {} column {})",
                    error.classify(),
                    error.line(),
                    error.column()
                ),
            })?;
        Ok(Some(Credentials {
            request_id: RequestId::new(stored.request_id),
            binary_security_token: stored.binary_security_token,
            secret: Secret::new(stored.secret),
        }))
    }

    /// Keeps a CSID in `file` (replacing the one there).
    pub fn save_credentials(
        &self,
        file: &str,
        credentials: &Credentials,
    ) -> Result<(), KeyStoreError> {
        let stored = StoredCredentials {
            request_id: credentials.request_id.as_str().to_owned(),
            binary_security_token: credentials.binary_security_token.clone(),
            secret: credentials.secret.expose().to_owned(),
        };
        let text =
            serde_json::to_vec_pretty(&stored).map_err(|error| KeyStoreError::Malformed {
                path: self.path(file).display().to_string(),
                reason: error.to_string(),
            })?;
        self.write_private(file, &text)
    }

    /// Writes `bytes` to `name` whole: a temporary file of mode 0600, synced, then renamed.
    fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), KeyStoreError> {
        create_private_dir(&self.dir)?;
        let path = self.path(name);
        let temporary = self.path(&format!(".{name}.tmp"));
        let mut file = open_private(&temporary)?;
        file.write_all(bytes).map_err(|e| io(&temporary, e))?;
        file.sync_all().map_err(|e| io(&temporary, e))?;
        drop(file);
        fs::rename(&temporary, &path).map_err(|e| io(&path, e))?;
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), KeyStoreError> {
    fs::create_dir_all(dir).map_err(|e| io(dir, e))
}

#[cfg(unix)]
fn open_private(path: &Path) -> Result<fs::File, KeyStoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> Result<fs::File, KeyStoreError> {
    fs::File::create(path).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        let dir = std::env::temp_dir().join(format!("revledger-keys-{}", uuid::Uuid::now_v7()));
        KeyStore::new(dir.join("egs"))
    }

    #[test]
    fn the_key_is_made_once_kept_private_and_read_back_the_same() {
        let store = store();
        assert!(store.existing_key().unwrap().is_none());
        let key = store.signing_key().unwrap();
        assert_eq!(store.signing_key().unwrap(), key, "made once");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&store.dir().join(KEY_FILE)), 0o600);
            assert_eq!(mode(store.dir()), 0o700);
        }
        let _ = fs::remove_dir_all(store.dir().parent().unwrap());
    }

    #[test]
    fn credentials_are_kept_whole_and_never_printed() {
        let store = store();
        assert!(store.credentials(PRODUCTION_FILE).unwrap().is_none());
        let credentials = Credentials {
            request_id: RequestId::new("1234567890123"),
            binary_security_token: "TUlJ-token".into(),
            secret: Secret::new("s3cret"),
        };
        store
            .save_credentials(PRODUCTION_FILE, &credentials)
            .unwrap();
        let read = store.credentials(PRODUCTION_FILE).unwrap().unwrap();
        assert_eq!(read.binary_security_token, "TUlJ-token");
        assert_eq!(read, credentials);
        let printed = format!("{read:?}");
        assert!(
            !printed.contains("s3cret") && !printed.contains("TUlJ"),
            "{printed}"
        );
        let _ = fs::remove_dir_all(store.dir().parent().unwrap());
    }

    #[test]
    fn a_malformed_credentials_file_is_named_without_quoting_its_content() {
        let store = store();
        let written =
            br#"{"request_id": "1", "binary_security_token": "TUlJ-token", "secret": 42424242}"#;
        store.write_private(PRODUCTION_FILE, written).unwrap();
        let error = store.credentials(PRODUCTION_FILE).unwrap_err().to_string();
        assert!(error.contains(PRODUCTION_FILE), "{error}");
        assert!(!error.contains("42424242"), "{error}");
        let _ = fs::remove_dir_all(store.dir().parent().unwrap());
    }
}
