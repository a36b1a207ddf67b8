//! bcrypt-pbkdf, OpenSSH's key derivation for private key files, with its independent
//! output blocks computed side by side, and the aes256-ctr private key encryption built on
//! it.
//!
//! bcrypt-pbkdf is PBKDF2 with a Blowfish-based PRF. Its output (48 bytes for aes256-ctr's
//! key and IV) comes from two 32-byte PBKDF2 blocks that do not depend on each other, and
//! that is nearly all the time `keyvault new` takes. The `bcrypt-pbkdf` crate, like
//! `ssh-keygen`, computes them one after the other; here they run in lockstep on one core
//! ([`keyvault_bcrypt`]: about 1.07× the time of one block), which leaves the other cores to the rest of
//! the command, and pairs of blocks spread over the cores when there are more. The result
//! is the same bytes (checked against the crate for random inputs), and an attacker's cost
//! is unchanged: they could always compute the blocks side by side.

use keyvault_bcrypt as eks;
use keyvault_bcrypt::Words;
use ssh_key::encoding::{Decode, Encode, Reader};
use ssh_key::private::KeypairData;
use ssh_key::sha2::{Digest, Sha512};
use ssh_key::{Cipher, Kdf, PrivateKey, public};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

/// Bytes of one bcrypt hash, and so of one PBKDF2 block.
const BLOCK: usize = eks::HASH;
/// The bytes after the private section, as OpenSSH writes them: 1, 2, 3, …
const PADDING: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// Why [`bcrypt_pbkdf`] refused its input (the same rules as OpenSSH's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidParams;

/// PBKDF2 blocks `indices` (from 1) with bcrypt's hash as the PRF, in lockstep; once
/// `stop` is set it returns early (after at most one hash) with blocks nobody will use.
fn pbkdf2_blocks<const N: usize>(
    sha_pass: &Words,
    salt: &[u8],
    rounds: u32,
    indices: [u32; N],
    stop: &AtomicBool,
) -> [Zeroizing<[u8; BLOCK]>; N] {
    let digest = |bytes: &[&[u8]]| {
        let mut h = Sha512::new();
        for b in bytes {
            h.update(b);
        }
        let mut out = Zeroizing::new([0u8; 64]);
        h.finalize_into((&mut *out).into());
        Zeroizing::new(eks::words::<16>(&*out))
    };
    let mut sha_salt = indices.map(|i| digest(&[salt, i.to_be_bytes().as_slice()]));
    let mut u = Zeroizing::new(eks::bhash(sha_pass, std::array::from_fn(|k| &*sha_salt[k])));
    let mut t = u.map(Zeroizing::new);
    for _ in 1..rounds {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        sha_salt = std::array::from_fn(|k| digest(&[u[k].as_slice()]));
        *u = eks::bhash(sha_pass, std::array::from_fn(|k| &*sha_salt[k]));
        for (t, u) in t.iter_mut().zip(u.iter()) {
            for (t, u) in t.iter_mut().zip(u) {
                *t ^= u;
            }
        }
    }
    t
}

/// bcrypt-pbkdf of `passphrase` and `salt` into `out` (at most 1,024 bytes), with its
/// blocks spread over the machine's cores.
pub(crate) fn bcrypt_pbkdf(
    passphrase: &[u8],
    salt: &[u8],
    rounds: u32,
    out: &mut [u8],
) -> Result<(), InvalidParams> {
    let derived = Derivation::start(passphrase, salt, rounds, out.len())?.finish();
    out.copy_from_slice(&derived);
    Ok(())
}

/// Each computed block with its index (from 0).
type Blocks = Vec<(usize, Zeroizing<[u8; BLOCK]>)>;

/// What [`Derivation::start`] shares with its threads.
struct Job {
    sha_pass: Zeroizing<Words>,
    salt: Vec<u8>,
    rounds: u32,
    blocks: usize,
    stop: AtomicBool,
}

impl Job {
    /// The pairs of blocks `first, first + step, …` (a last block without a partner alone),
    /// until `stop` is set.
    fn run(&self, first: usize, step: usize) -> Blocks {
        let pairs: Vec<usize> = (first..self.blocks.div_ceil(2)).step_by(step).collect();
        let mut out = Vec::with_capacity(2 * pairs.len());
        // At most 32 blocks, so an index fits.
        let index = |n: usize| u32::try_from(n + 1).unwrap_or(u32::MAX);
        for pair in pairs {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let (a, (sha, salt, rounds)) = (2 * pair, (&self.sha_pass, &self.salt, self.rounds));
            if a + 1 < self.blocks {
                let [x, y] = pbkdf2_blocks(sha, salt, rounds, [index(a), index(a + 1)], &self.stop);
                out.extend([(a, x), (a + 1, y)]);
            } else {
                let [x] = pbkdf2_blocks(sha, salt, rounds, [index(a)], &self.stop);
                out.push((a, x));
            }
        }
        out
    }
}

/// One thread's share of a [`Derivation`]: running, or computed on the caller's thread
/// because no thread could be started.
enum Lane {
    Thread(std::thread::JoinHandle<Blocks>),
    Done(Blocks),
}

/// A bcrypt-pbkdf running on threads of its own (pairs of blocks in lockstep, one thread
/// per core at most), so that the caller can do other work meanwhile;
/// [`Derivation::finish`] waits for it. Dropped unfinished, it tells its threads to stop
/// after their current round (they wipe what they made) and does not wait for them.
pub(crate) struct Derivation {
    len: usize,
    blocks: usize,
    lanes: Vec<Lane>,
    job: Arc<Job>,
}

impl Drop for Derivation {
    fn drop(&mut self) {
        self.job.stop.store(true, Ordering::Relaxed);
    }
}

impl Derivation {
    /// Starts bcrypt-pbkdf of `passphrase` and `salt` into `len` bytes (at most 1,024).
    /// Only the SHA-512 of the passphrase reaches the threads.
    pub(crate) fn start(
        passphrase: &[u8],
        salt: &[u8],
        rounds: u32,
        len: usize,
    ) -> Result<Self, InvalidParams> {
        Self::start_on(passphrase, salt, rounds, len, None)
    }

    /// As [`Self::start`], on `threads` threads if given (tests), else one per core, and
    /// never more than there are pairs of blocks.
    fn start_on(
        passphrase: &[u8],
        salt: &[u8],
        rounds: u32,
        len: usize,
        threads: Option<usize>,
    ) -> Result<Self, InvalidParams> {
        // OpenBSD's limits, the salt's included.
        if passphrase.is_empty()
            || salt.is_empty()
            || salt.len() > 1 << 20
            || rounds == 0
            || len == 0
            || len > BLOCK * BLOCK
        {
            return Err(InvalidParams);
        }
        let blocks = len.div_ceil(BLOCK);
        let digest = Zeroizing::new(Sha512::digest(passphrase));
        let job = Arc::new(Job {
            sha_pass: Zeroizing::new(eks::words::<16>(&digest)),
            salt: salt.to_vec(),
            rounds,
            blocks,
            stop: AtomicBool::new(false),
        });
        let pairs = blocks.div_ceil(2);
        // One pair (an aes256-ctr key's 48 bytes) needs one thread: no need to ask how
        // many cores there are (which reads the cgroup's files).
        let threads = match threads {
            Some(n) => n.clamp(1, pairs),
            None if pairs == 1 => 1,
            None => std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .min(pairs),
        };
        // Thread t computes the pairs t, t + threads, …
        let lanes = (0..threads)
            .map(|thread| {
                let shared = job.clone();
                match std::thread::Builder::new().spawn(move || shared.run(thread, threads)) {
                    Ok(handle) => Lane::Thread(handle),
                    // No thread to be had (a container's limit): compute it here.
                    Err(_) => Lane::Done(job.run(thread, threads)),
                }
            })
            .collect();
        Ok(Derivation {
            len,
            blocks,
            lanes,
            job,
        })
    }

    /// Waits for the threads and returns the derived bytes.
    pub(crate) fn finish(mut self) -> Zeroizing<Vec<u8>> {
        let lanes = std::mem::take(&mut self.lanes);
        let mut generated: Vec<Zeroizing<[u8; BLOCK]>> = (0..self.blocks)
            .map(|_| Zeroizing::new([0; BLOCK]))
            .collect();
        for lane in lanes {
            let blocks = match lane {
                // A thread that panicked would have panicked here too: propagate it.
                Lane::Thread(handle) => handle
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
                Lane::Done(blocks) => blocks,
            };
            for (n, block) in blocks {
                generated[n] = block;
            }
        }
        // The bcrypt-pbkdf interleave: byte i comes from block i % blocks.
        let mut out = Zeroizing::new(vec![0u8; self.len]);
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = generated[i % self.blocks][i / self.blocks];
        }
        out
    }
}

/// An aes256-ctr encryption whose bcrypt-pbkdf is running ([`Derivation`]): the KDF,
/// which is nearly all of the time, does not need the key, so it can start before the key
/// is final (its comment names the id the vault picks meanwhile).
pub(crate) struct PendingEncryption {
    salt: Vec<u8>,
    rounds: u32,
    checkint: u32,
    derivation: Derivation,
}

impl PendingEncryption {
    /// Starts the KDF for an aes256-ctr encryption under `rounds` with `salt`.
    pub(crate) fn start(
        passphrase: &[u8],
        salt: Vec<u8>,
        rounds: u32,
        checkint: u32,
    ) -> Result<Self, ssh_key::Error> {
        let (key_len, iv_len) = Cipher::Aes256Ctr
            .key_and_iv_size()
            .ok_or(ssh_key::Error::Crypto)?;
        let derivation = Derivation::start(passphrase, &salt, rounds, key_len + iv_len)
            .map_err(|InvalidParams| ssh_key::Error::Crypto)?;
        Ok(PendingEncryption {
            salt,
            rounds,
            checkint,
            derivation,
        })
    }

    /// Waits for the KDF and encrypts `key` as [`encrypt`] does.
    pub(crate) fn finish(self, key: &PrivateKey) -> Result<PrivateKey, ssh_key::Error> {
        if key.is_encrypted() {
            return Err(ssh_key::Error::Encrypted);
        }
        let okm = self.derivation.finish();
        encrypt_with(key, &okm, self.salt, self.rounds, self.checkint)
    }
}

/// `key` encrypted with aes256-ctr under `rounds` of bcrypt-pbkdf: the same file
/// `PrivateKey::encrypt_with` writes, with the KDF's blocks computed in parallel.
pub(crate) fn encrypt(
    key: &PrivateKey,
    passphrase: &[u8],
    salt: Vec<u8>,
    rounds: u32,
    checkint: u32,
) -> Result<PrivateKey, ssh_key::Error> {
    if key.is_encrypted() {
        return Err(ssh_key::Error::Encrypted);
    }
    PendingEncryption::start(passphrase, salt, rounds, checkint)?.finish(key)
}

/// `key` encrypted with aes256-ctr under the key and IV `okm` that bcrypt-pbkdf derived
/// from `salt` in `rounds`.
fn encrypt_with(
    key: &PrivateKey,
    okm: &[u8],
    salt: Vec<u8>,
    rounds: u32,
    checkint: u32,
) -> Result<PrivateKey, ssh_key::Error> {
    let cipher = Cipher::Aes256Ctr;
    let (key_len, _) = cipher.key_and_iv_size().ok_or(ssh_key::Error::Crypto)?;
    let (aes_key, iv) = okm.split_at(key_len);

    // The private section (PROTOCOL.key): checkint twice, the key pair, the comment, and
    // padding to the cipher's block size.
    let mut section = Zeroizing::new(Vec::with_capacity(256));
    checkint.encode(&mut *section)?;
    checkint.encode(&mut *section)?;
    key.key_data().encode(&mut *section)?;
    key.comment().encode(&mut *section)?;
    let pad = cipher.padding_len(section.len());
    section.extend_from_slice(&PADDING[..pad]);
    let tag = cipher.encrypt(aes_key, iv, &mut section)?;

    let mut file = Vec::with_capacity(section.len() + 256);
    file.extend_from_slice(b"openssh-key-v1\0");
    cipher.encode(&mut file)?;
    Kdf::Bcrypt { salt, rounds }.encode(&mut file)?;
    1u32.encode(&mut file)?;
    key.public_key().key_data().encode_prefixed(&mut file)?;
    section.as_slice().encode(&mut file)?;
    if let Some(tag) = tag {
        file.extend_from_slice(&tag);
    }
    PrivateKey::from_bytes(&file)
}

/// `key` (encrypted with bcrypt-pbkdf and aes256-ctr) decrypted with `passphrase`, with the
/// KDF's blocks computed in parallel. Other ciphers go to `PrivateKey::decrypt`.
pub(crate) fn decrypt(key: &PrivateKey, passphrase: &[u8]) -> Result<PrivateKey, ssh_key::Error> {
    let cipher = key.cipher();
    let (Kdf::Bcrypt { salt, rounds }, Cipher::Aes256Ctr) = (key.kdf(), cipher) else {
        return key.decrypt(passphrase);
    };
    let ciphertext = key
        .key_data()
        .encrypted()
        .ok_or(ssh_key::Error::Decrypted)?;
    let (key_len, iv_len) = cipher.key_and_iv_size().ok_or(ssh_key::Error::Crypto)?;
    let mut okm = Zeroizing::new(vec![0u8; key_len + iv_len]);
    bcrypt_pbkdf(passphrase, salt, *rounds, &mut okm)
        .map_err(|InvalidParams| ssh_key::Error::Crypto)?;
    let (aes_key, iv) = okm.split_at(key_len);
    let block = cipher.block_size();
    if ciphertext.len() % block != 0 {
        return Err(ssh_key::encoding::Error::Length.into());
    }
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    cipher.decrypt(aes_key, iv, &mut plain, None)?;

    let reader = &mut plain.as_slice();
    let check1 = u32::decode(reader)?;
    let check2 = u32::decode(reader)?;
    // Different checkints: a wrong passphrase (or a damaged file).
    if check1 != check2 {
        return Err(ssh_key::Error::Crypto);
    }
    let pair = KeypairData::decode(reader)?;
    if key.public_key().key_data() != &public::KeyData::try_from(&pair)? {
        return Err(ssh_key::Error::PublicKey);
    }
    let comment = String::decode(reader)?;
    let padding = reader.remaining_len();
    if padding >= block || reader[..] != PADDING[..padding] {
        return Err(ssh_key::Error::FormatEncoding);
    }
    PrivateKey::new(pair, comment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The `bcrypt-pbkdf` crate, through ssh-key.
    fn reference(pass: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        Kdf::Bcrypt {
            salt: salt.to_vec(),
            rounds,
        }
        .derive(pass, &mut out)
        .expect("reference derives");
        out
    }

    #[test]
    fn openbsd_test_vector() {
        // From OpenBSD's regress/lib/libutil/bcrypt_pbkdf: "password", "salt", 4 rounds.
        let mut out = [0u8; 32];
        bcrypt_pbkdf(b"password", b"salt", 4, &mut out).expect("derives");
        assert_eq!(
            out,
            [
                0x5b, 0xbf, 0x0c, 0xc2, 0x93, 0x58, 0x7f, 0x1c, 0x36, 0x35, 0x55, 0x5c, 0x27, 0x79,
                0x65, 0x98, 0xd4, 0x7e, 0x57, 0x90, 0x71, 0xbf, 0x42, 0x7e, 0x9d, 0x8f, 0xbe, 0x84,
                0x2a, 0xba, 0x34, 0xd9
            ]
        );
    }

    #[test]
    fn refuses_what_openssh_refuses() {
        let mut out = [0u8; 48];
        assert!(bcrypt_pbkdf(b"", b"salt", 4, &mut out).is_err());
        assert!(bcrypt_pbkdf(b"p", b"", 4, &mut out).is_err());
        assert!(bcrypt_pbkdf(b"p", b"salt", 0, &mut out).is_err());
        assert!(bcrypt_pbkdf(b"p", b"salt", 4, &mut []).is_err());
        assert!(bcrypt_pbkdf(b"p", b"salt", 1, &mut [0u8; 1025]).is_err());
        assert!(bcrypt_pbkdf(b"p", &vec![1u8; (1 << 20) + 1], 1, &mut out).is_err());
        assert!(bcrypt_pbkdf(b"p", &vec![1u8; 1 << 20], 1, &mut out).is_ok());
    }

    /// Every way the blocks can be shared out: one thread doing all the pairs, a thread
    /// per pair, and some threads doing several; lengths at the edges of a block, odd block
    /// counts (a block without a partner) and the largest output.
    #[test]
    fn same_output_as_the_crate_however_the_blocks_are_shared() {
        for len in [1, 31, 32, 33, 48, 64, 65, 97, 200, 1023, 1024] {
            let expected = reference(b"pass phrase", b"salty", 1, len);
            for threads in [1, 3, 32] {
                let got = Derivation::start_on(b"pass phrase", b"salty", 1, len, Some(threads))
                    .expect("starts")
                    .finish();
                assert_eq!(*got, expected, "{len} bytes on {threads} threads");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The same bytes as the bcrypt-pbkdf crate, for any length (one block, the 48
        /// bytes of aes256-ctr, many blocks) and passphrase.
        #[test]
        fn same_output_as_the_crate(
            pass in proptest::collection::vec(any::<u8>(), 1..80),
            salt in proptest::collection::vec(any::<u8>(), 1..40),
            rounds in 1u32..4,
            len in prop_oneof![Just(48usize), 1usize..200],
        ) {
            let mut ours = vec![0u8; len];
            bcrypt_pbkdf(&pass, &salt, rounds, &mut ours).expect("derives");
            prop_assert_eq!(ours, reference(&pass, &salt, rounds, len));
        }
    }

    fn keys() -> Vec<PrivateKey> {
        use ssh_key::rand_core::UnwrapErr;
        let mut rng = UnwrapErr(ssh_key::getrandom::SysRng);
        [
            ssh_key::Algorithm::Ed25519,
            ssh_key::Algorithm::new("ecdsa-sha2-nistp256").expect("alg"),
        ]
        .into_iter()
        .map(|alg| {
            let mut k = PrivateKey::random(&mut rng, alg).expect("generates");
            k.set_comment("kv:test-1");
            k
        })
        .collect()
    }

    #[test]
    fn encrypt_writes_what_ssh_key_writes() {
        for key in keys() {
            let salt = vec![9u8; 16];
            let ours = encrypt(&key, b"pass phrase", salt.clone(), 2, 0x1234_5678).expect("ours");
            let theirs = key
                .encrypt_with(
                    Cipher::Aes256Ctr,
                    Kdf::Bcrypt { salt, rounds: 2 },
                    0x1234_5678,
                    b"pass phrase",
                )
                .expect("theirs");
            assert_eq!(
                ours.to_bytes().expect("bytes").as_slice(),
                theirs.to_bytes().expect("bytes").as_slice()
            );
        }
    }

    #[test]
    fn decrypt_matches_ssh_key_and_refuses_a_wrong_passphrase() {
        for key in keys() {
            let enc = encrypt(&key, b"pass phrase", vec![3u8; 16], 2, 77).expect("encrypts");
            let ours = decrypt(&enc, b"pass phrase").expect("decrypts");
            let theirs = enc.decrypt(b"pass phrase").expect("ssh-key decrypts");
            assert_eq!(ours.key_data(), theirs.key_data());
            assert_eq!(ours.comment(), key.comment());
            assert_eq!(ours.key_data(), key.key_data());
            assert!(matches!(
                decrypt(&enc, b"wrong"),
                Err(ssh_key::Error::Crypto)
            ));
        }
    }
}
