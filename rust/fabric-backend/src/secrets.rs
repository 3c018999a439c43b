//! Generated credentials and their stored form. Secrets are 32 random bytes, base64url, with a
//! prefix that says what they are (`fak_` account API key, `fss_` shard secret); the store keeps
//! only their SHA-256 (hex), so a leaked database does not leak credentials.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use std::path::Path;

use crate::server::ServeError;

/// Prefix of account API keys.
pub const API_KEY_PREFIX: &str = "fak_";
/// Prefix of shard secrets.
pub const SHARD_SECRET_PREFIX: &str = "fss_";

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new account API key.
pub fn new_api_key() -> String {
    random_secret(API_KEY_PREFIX)
}

/// A new shard secret.
pub fn new_shard_secret() -> String {
    random_secret(SHARD_SECRET_PREFIX)
}

/// The stored form of a secret: lowercase hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signing seed others can read is a leaked seed: refuse to start (as ssh does with keys).
#[cfg(unix)]
pub(crate) fn refuse_shared_key_file(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(ServeError::Key(format!(
            "{path:?} is readable by others (mode {:o}): chmod 600 it",
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn refuse_shared_key_file(_path: &Path) -> Result<(), ServeError> {
    Ok(())
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), ServeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), ServeError> {
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_unique_and_hash_stably() {
        let a = new_api_key();
        let b = new_api_key();
        assert!(a.starts_with("fak_") && a.len() == 4 + 43, "shape of {a}");
        assert_ne!(a, b, "random");
        assert!(new_shard_secret().starts_with("fss_"));
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "SHA-256 test vector"
        );
    }
}
