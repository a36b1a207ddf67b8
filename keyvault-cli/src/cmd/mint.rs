//! `keyvault mint`.

use crate::error::Failure;
use keyvault_core::{Error, StoreError};
use std::path::PathBuf;

/// Where `mint --private-key-out P --cert` writes the certificate: `P-cert.pub`.
pub(crate) fn cert_path_for(out: &std::path::Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// Checks `mint --private-key-out` before anything is minted: the files must not exist
/// (not even as a symlink) and their directory must.
pub(crate) fn check_mint_outputs(out: &std::path::Path, cert: bool) -> Result<(), Failure> {
    let mut paths = vec![out.to_owned()];
    if cert {
        paths.push(cert_path_for(out));
    }
    for path in &paths {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Failure::Usage(format!(
                "{} exists; keyvault will not overwrite it",
                path.display()
            )));
        }
    }
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Err(Failure::Usage(format!(
            "cannot write the private key to {}: {} is not a directory; nothing was minted",
            out.display(),
            dir.display()
        )));
    }
    if let Err(e) = keyvault_core::keyfile::check_creatable_in(dir) {
        return Err(Failure::Usage(format!(
            "cannot write the private key to {}: cannot create a file in {} ({}); nothing was minted",
            out.display(),
            dir.display(),
            e.kind()
        )));
    }
    Ok(())
}

/// A minted key whose file (or certificate) could not be written out: says what was
/// recorded and deployed, and how to undo it.
pub(crate) fn minted_but_not_written(
    record: &keyvault_core::KeyRecord,
    path: &std::path::Path,
    cause: StoreError,
) -> Failure {
    let targets = record.live_targets();
    let deployed = if targets.is_empty() {
        "deployed nowhere".to_owned()
    } else {
        format!("deployed to {}", targets.join(", "))
    };
    Failure::Core(Error::Incomplete {
        operation: format!("minting {}", record.id()),
        cause: Box::new(cause.into()),
        done: format!("{} recorded in the vault and {deployed}", record.id()),
        pending: format!("writing {}", path.display()),
        next: format!(
            "`keyvault revoke {}` removes the key everywhere; then mint again",
            record.id()
        ),
    })
}
