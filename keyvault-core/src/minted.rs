//! Handing a minted key over in files: the private key at a path the caller names and its
//! certificate beside it, checked before anything is minted and written the safe way
//! (never through a link, never over an existing file, private key 0600).

use crate::error::{InputError, StoreError};
use crate::fsutil::{self, Replace};
use std::path::{Path, PathBuf};

/// Where the certificate of a key written to `key` goes: `KEY-cert.pub`, where `ssh -i KEY`
/// looks for it.
#[must_use]
pub fn certificate_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// The files a minted key is handed over in: the private key and, with a certificate,
/// [`certificate_path`] beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedFiles {
    key: PathBuf,
    certificate: Option<PathBuf>,
}

impl MintedFiles {
    /// The private key at `key`, and its certificate beside it if `certificate`.
    #[must_use]
    pub fn new(key: &Path, certificate: bool) -> Self {
        MintedFiles {
            key: key.to_owned(),
            certificate: certificate.then(|| certificate_path(key)),
        }
    }

    /// The private key's file.
    #[must_use]
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The certificate's file, if one is written.
    #[must_use]
    pub fn certificate(&self) -> Option<&Path> {
        self.certificate.as_deref()
    }

    /// Checks, before anything is minted, that the files can be written: none of them
    /// exists (not even as a symlink), and their directory exists and takes a new file
    /// (a probe file is made exclusively and removed at once).
    ///
    /// # Errors
    ///
    /// [`InputError::OutputExists`], [`InputError::OutputNoDirectory`] or
    /// [`InputError::OutputNotCreatable`].
    pub fn check(&self) -> Result<(), InputError> {
        for path in std::iter::once(&self.key).chain(&self.certificate) {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(InputError::OutputExists { path: path.clone() });
            }
        }
        let dir = self
            .key
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(InputError::OutputNoDirectory {
                path: self.key.clone(),
                dir: dir.to_owned(),
            });
        }
        crate::keyfile::check_creatable_in(dir).map_err(|e| InputError::OutputNotCreatable {
            path: self.key.clone(),
            dir: dir.to_owned(),
            kind: e.kind(),
        })
    }

    /// Writes the private key (`private_key`, serialized, mode 0600), then the
    /// certificate line (`certificate`, mode 0644) if these files include one.
    ///
    /// # Errors
    ///
    /// The file that could not be written and why; the files before it are written.
    pub fn write(
        &self,
        private_key: &[u8],
        certificate: Option<&str>,
    ) -> Result<(), (PathBuf, StoreError)> {
        fsutil::write_atomic(&self.key, private_key, 0o600, Replace::No)
            .map_err(|e| (self.key.clone(), e))?;
        if let (Some(path), Some(line)) = (&self.certificate, certificate) {
            crate::keyfile::write_new_public(path, &format!("{line}\n"))
                .map_err(|e| (path.clone(), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn checks_then_writes_key_and_certificate_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = MintedFiles::new(&dir.path().join("id"), true);
        assert_eq!(files.certificate(), Some(&*dir.path().join("id-cert.pub")));
        files.check().expect("writable");
        files
            .write(b"PRIVATE\n", Some("ssh-ed25519-cert-v01@openssh.com AAAA"))
            .expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(files.key()), 0o600);
        assert_eq!(mode(&dir.path().join("id-cert.pub")), 0o644);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("id-cert.pub")).expect("read"),
            "ssh-ed25519-cert-v01@openssh.com AAAA\n"
        );
        // A directory no one can create a file in (not even root).
        assert!(matches!(
            MintedFiles::new(Path::new("/proc/k"), false).check(),
            Err(InputError::OutputNotCreatable { .. })
        ));
        // Now both exist: a second mint to the same place is refused before minting.
        assert!(matches!(
            files.check(),
            Err(InputError::OutputExists { path }) if path == files.key()
        ));
        assert!(files.write(b"other", None).is_err());
        assert_eq!(std::fs::read(files.key()).expect("read"), b"PRIVATE\n");
    }

    #[test]
    fn refuses_a_dangling_link_a_missing_directory_and_an_unwritable_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), certificate_path(&key))
            .expect("symlink");
        assert!(matches!(
            MintedFiles::new(&key, true).check(),
            Err(InputError::OutputExists { path }) if path == certificate_path(&key)
        ));
        let missing = dir.path().join("no/such/k");
        assert!(matches!(
            MintedFiles::new(&missing, false).check(),
            Err(InputError::OutputNoDirectory { dir: d, .. }) if d == dir.path().join("no/such")
        ));
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).expect("mkdir");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        let result = MintedFiles::new(&locked.join("k"), false).check();
        // root may create files anywhere; everyone else is refused.
        if std::fs::write(locked.join("probe"), "").is_err() {
            assert!(
                matches!(
                    result,
                    Err(InputError::OutputNotCreatable {
                        kind: std::io::ErrorKind::PermissionDenied,
                        ..
                    })
                ),
                "{result:?}"
            );
        }
    }
}
