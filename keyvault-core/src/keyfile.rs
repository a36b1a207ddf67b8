//! OpenSSH private key files: encryption with aes256-ctr + bcrypt-pbkdf, decryption with a
//! cap on the rounds a file may ask for, and reading with permission checks.

use crate::error::{KeyError, StoreError};
use crate::fsutil;
use crate::secret::Passphrase;
use ssh_key::rand_core::CryptoRng;
use ssh_key::{Cipher, Kdf, LineEnding, PrivateKey};
use std::path::Path;
use zeroize::Zeroizing;

/// bcrypt-pbkdf rounds used when none are asked for, as `ssh-keygen` does.
pub const DEFAULT_KDF_ROUNDS: u32 = 16;

/// The most bcrypt-pbkdf rounds keyvault writes or accepts when reading (about six seconds
/// on a 2-core machine); a hostile file asking for more is refused before any work is done.
pub const MAX_KDF_ROUNDS: u32 = 1000;

/// The largest private key file keyvault reads (an RSA-16384 key is about 13 KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Encrypts `key` with `passphrase` using aes256-ctr and `rounds` of bcrypt-pbkdf with a
/// fresh 16-byte salt.
///
/// # Errors
///
/// [`KeyError::Crypto`] if the key is already encrypted or the RNG fails.
pub fn encrypt<R: CryptoRng + ?Sized>(
    rng: &mut R,
    key: &PrivateKey,
    passphrase: &Passphrase,
    rounds: u32,
) -> Result<PrivateKey, KeyError> {
    let mut salt = vec![0u8; 16];
    rng.fill_bytes(&mut salt);
    let checkint = rng.next_u32();
    crate::kdf::encrypt(key, passphrase.expose().as_bytes(), salt, rounds, checkint).map_err(|e| {
        KeyError::Crypto {
            operation: "encrypt",
            reason: e.to_string(),
        }
    })
}

/// An aes256-ctr encryption whose bcrypt-pbkdf (nearly all of its time) already runs on
/// threads of its own; see [`start_encryption`].
pub(crate) struct PendingEncryption(crate::kdf::PendingEncryption);

/// Starts encrypting a key with `passphrase` as [`encrypt`] does (fresh salt and checkint,
/// `rounds` of bcrypt-pbkdf): the KDF runs meanwhile, and
/// [`PendingEncryption::finish`] encrypts the final key with what it derived, so the
/// caller can do its I/O while the KDF works.
///
/// # Errors
///
/// [`KeyError::Crypto`] for parameters bcrypt-pbkdf refuses.
pub(crate) fn start_encryption<R: CryptoRng + ?Sized>(
    rng: &mut R,
    passphrase: &Passphrase,
    rounds: u32,
) -> Result<PendingEncryption, KeyError> {
    let mut salt = vec![0u8; 16];
    rng.fill_bytes(&mut salt);
    let checkint = rng.next_u32();
    crate::kdf::PendingEncryption::start(passphrase.expose().as_bytes(), salt, rounds, checkint)
        .map(PendingEncryption)
        .map_err(|e| KeyError::Crypto {
            operation: "encrypt",
            reason: e.to_string(),
        })
}

impl PendingEncryption {
    /// Waits for the KDF and returns `key` encrypted.
    ///
    /// # Errors
    ///
    /// [`KeyError::Crypto`] if the key is already encrypted.
    pub(crate) fn finish(self, key: &PrivateKey) -> Result<PrivateKey, KeyError> {
        self.0.finish(key).map_err(|e| KeyError::Crypto {
            operation: "encrypt",
            reason: e.to_string(),
        })
    }
}

/// The bcrypt-pbkdf rounds of an encrypted key, `None` for an unencrypted one.
#[must_use]
pub fn kdf_rounds(key: &PrivateKey) -> Option<u32> {
    match key.kdf() {
        Kdf::Bcrypt { rounds, .. } => Some(*rounds),
        _ => None,
    }
}

/// Decrypts `key`, refusing files that ask for more than [`MAX_KDF_ROUNDS`] rounds before
/// doing any work. Unencrypted keys are returned as they are.
///
/// # Errors
///
/// [`KeyError::Decrypt`] for a wrong passphrase or a corrupt file (one error on purpose),
/// [`KeyError::TooManyRounds`], [`KeyError::UnsupportedEncryption`].
pub fn decrypt(
    key: &PrivateKey,
    passphrase: &Passphrase,
    subject: &str,
) -> Result<PrivateKey, KeyError> {
    decrypt_capped(key, passphrase, subject, MAX_KDF_ROUNDS)
}

/// [`decrypt`] with a lower rounds cap (fuzzing uses a handful so no input stalls a run).
///
/// # Errors
///
/// As [`decrypt`], with [`KeyError::TooManyRounds`] above `max_rounds`.
pub fn decrypt_capped(
    key: &PrivateKey,
    passphrase: &Passphrase,
    subject: &str,
    max_rounds: u32,
) -> Result<PrivateKey, KeyError> {
    if !key.is_encrypted() {
        return Ok(key.clone());
    }
    check_encryption(key, subject)?;
    if let Kdf::Bcrypt { rounds, .. } = key.kdf()
        && *rounds > max_rounds
    {
        return Err(KeyError::TooManyRounds {
            subject: subject.to_owned(),
            rounds: *rounds,
            max: max_rounds,
        });
    }
    crate::kdf::decrypt(key, passphrase.expose().as_bytes()).map_err(|_| KeyError::Decrypt {
        subject: subject.to_owned(),
    })
}

/// Checks an encrypted key's cipher and KDF before any work is spent on it.
fn check_encryption(key: &PrivateKey, subject: &str) -> Result<(), KeyError> {
    match key.kdf() {
        Kdf::Bcrypt { rounds, .. } if *rounds > MAX_KDF_ROUNDS => Err(KeyError::TooManyRounds {
            subject: subject.to_owned(),
            rounds: *rounds,
            max: MAX_KDF_ROUNDS,
        }),
        Kdf::Bcrypt { rounds, .. } if *rounds == 0 => Err(KeyError::Decrypt {
            subject: subject.to_owned(),
        }),
        Kdf::Bcrypt { .. } if key.cipher() != Cipher::None => Ok(()),
        _ => Err(KeyError::UnsupportedEncryption {
            subject: subject.to_owned(),
        }),
    }
}

/// Parses an OpenSSH private key (encrypted or not) from text.
///
/// # Errors
///
/// [`KeyError::Parse`] naming `path` when the text is not an OpenSSH private key.
pub fn parse(text: &[u8], path: &Path) -> Result<PrivateKey, KeyError> {
    let key = PrivateKey::from_openssh(text).map_err(|e| KeyError::Parse {
        path: path.to_owned(),
        reason: parse_reason(&e),
    })?;
    if key.is_encrypted() {
        check_encryption(&key, &path.display().to_string())?;
    }
    Ok(key)
}

/// A short reason for a parse failure that never echoes input bytes.
fn parse_reason(e: &ssh_key::Error) -> String {
    match e {
        ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => {
            "unsupported key algorithm".to_owned()
        }
        ssh_key::Error::Encoding(_) | ssh_key::Error::FormatEncoding => {
            "not in OpenSSH private key format (-----BEGIN OPENSSH PRIVATE KEY-----)".to_owned()
        }
        _ => "malformed key data".to_owned(),
    }
}

/// Reads and parses a private key file, refusing one that others can access (mode not
/// `0600`/`0400`), that is not a regular file, or that is larger than
/// [`MAX_KEY_FILE_BYTES`]. Returns the parsed key and the file's exact bytes.
///
/// # Errors
///
/// [`StoreError`] for access problems (wrapped in [`crate::Error`]), [`KeyError::Parse`].
pub fn read(path: &Path) -> crate::Result<(PrivateKey, Zeroizing<Vec<u8>>)> {
    let bytes = fsutil::read_private(path, MAX_KEY_FILE_BYTES)?;
    let key = parse(&bytes, path)?;
    Ok((key, bytes))
}

/// Serializes a private key in OpenSSH format with LF line endings.
///
/// # Errors
///
/// [`KeyError::Crypto`] if the key cannot be encoded.
pub fn to_openssh(key: &PrivateKey) -> Result<Zeroizing<String>, KeyError> {
    key.to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::Crypto {
            operation: "encode",
            reason: e.to_string(),
        })
}

/// Whether [`write_new`] could create a file in `dir` at all: checked before anything is
/// minted, with a probe file made exclusively (never through a link) and removed at once.
///
/// # Errors
///
/// The I/O error creating the probe.
pub fn check_creatable_in(dir: &Path) -> std::io::Result<()> {
    crate::fsutil::probe_creatable(dir)
}

/// Writes a serialized private key to a new file `path` with mode 0600 (atomically, never
/// through a symlink, never over an existing file).
///
/// # Errors
///
/// [`StoreError`] on I/O failure or when the file already exists.
pub fn write_new(path: &Path, text: &str) -> Result<(), StoreError> {
    fsutil::write_atomic(path, text.as_bytes(), 0o600, fsutil::Replace::No)
}

/// Writes a new public file (a public key or certificate) at `path`, mode 0644 whatever
/// the umask, the same way as [`write_new`]: never through a symlink, never over an
/// existing file.
///
/// # Errors
///
/// [`StoreError`] on I/O failure or when the file already exists.
pub fn write_new_public(path: &Path, text: &str) -> Result<(), StoreError> {
    fsutil::write_atomic(path, text.as_bytes(), 0o644, fsutil::Replace::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygen::{Algorithm, generate};

    fn rng() -> ssh_key::rand_core::UnwrapErr<ssh_key::getrandom::SysRng> {
        ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng)
    }

    #[test]
    fn encrypt_decrypt_round_trip_and_wrong_passphrase() {
        let key = generate(&mut rng(), Algorithm::Ed25519, "t").expect("generate");
        let pass = Passphrase::new("a long and unusual passphrase".into());
        let enc = encrypt(&mut rng(), &key, &pass, 16).expect("encrypt");
        assert_eq!(kdf_rounds(&enc), Some(16));
        let text = to_openssh(&enc).expect("encode");
        let parsed = parse(text.as_bytes(), Path::new("k")).expect("parse");
        let dec = decrypt(&parsed, &pass, "k").expect("decrypt");
        assert_eq!(dec.public_key(), key.public_key());
        let wrong = decrypt(&parsed, &Passphrase::new("nope".into()), "k").expect_err("wrong");
        assert!(matches!(wrong, KeyError::Decrypt { .. }));
    }

    #[test]
    fn refuses_absurd_rounds_before_working() {
        let key = generate(&mut rng(), Algorithm::Ed25519, "t").expect("generate");
        let pass = Passphrase::new("x".into());
        // Encrypting with many rounds is slow, so forge the header: encrypt with 1 round and
        // patch the rounds field in the binary body.
        let enc = key
            .encrypt_with(
                Cipher::Aes256Ctr,
                Kdf::Bcrypt {
                    salt: vec![7; 16],
                    rounds: 1,
                },
                1,
                pass.expose(),
            )
            .expect("encrypt");
        let mut bytes = enc.to_bytes().expect("bytes").to_vec();
        // kdfoptions: string(salt=16 bytes) then uint32 rounds; find the salt and patch after it.
        let pos = bytes
            .windows(16)
            .position(|w| w == [7u8; 16])
            .expect("salt");
        bytes[pos + 16..pos + 20].copy_from_slice(&u32::MAX.to_be_bytes());
        let hostile = PrivateKey::from_bytes(&bytes).expect("parses");
        let err = decrypt(&hostile, &pass, "hostile").expect_err("refused");
        assert!(
            matches!(
                err,
                KeyError::TooManyRounds {
                    rounds: u32::MAX,
                    ..
                }
            ),
            "{err}"
        );
    }
}
