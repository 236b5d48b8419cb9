//! Role keys on disk. A key file holds the 32-byte Ed25519 seed in base64 on
//! one line. It is created on first start with mode 0600 and refused later if
//! anyone but the owner can read it, the way ssh treats private keys.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

use crate::signing::PartnerKeyPair;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or write key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not a base64 32-byte key")]
    Malformed { path: String },
    #[error("key file {path} is readable by group or others (mode {mode:o}); run chmod 600")]
    TooOpen { path: String, mode: u32 },
}

/// Loads the key at `path`, creating it (and its folder) when missing.
/// Returns the key and whether it was created now.
pub fn load_or_create(path: &Path) -> Result<(PartnerKeyPair, bool), KeyFileError> {
    let (seed, created) = load_or_create_secret(path, || PartnerKeyPair::generate().seed())?;
    Ok((PartnerKeyPair::from_seed(&seed), created))
}

/// Loads the 32-byte secret at `path`, or creates it with `generate` when
/// missing. Returns the secret and whether it was created now.
pub fn load_or_create_secret(
    path: &Path,
    generate: impl FnOnce() -> Zeroizing<[u8; 32]>,
) -> Result<(Zeroizing<[u8; 32]>, bool), KeyFileError> {
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: shown.clone(),
        source,
    };
    if path.exists() {
        check_permissions(path)?;
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
        let seed = decode_secret(text.trim()).ok_or(KeyFileError::Malformed {
            path: shown.clone(),
        })?;
        return Ok((seed, false));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let seed = generate();
    let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(seed.as_slice()));
    write_private(path, format!("{}\n", text.as_str()).as_bytes()).map_err(io)?;
    Ok((seed, true))
}

/// A base64 32-byte secret (key files, `PAYBRIDGE_MASTER_KEY`).
pub fn decode_secret(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?,
    );
    let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KeyFileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pb-keyfile-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn created_once_then_loaded_with_0600() {
        let dir = temp_dir();
        let path = dir.join("keys/wallet.ed25519");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let path = dir.join("k.ed25519");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::TooOpen { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
