//! bcrypt's hash (Eksblowfish: Blowfish with an expensive key schedule) over several
//! independent inputs at once.
//!
//! Every Blowfish encryption in the key schedule waits for the one before it, and each of
//! its 16 rounds waits for four S-box loads: one input leaves most of a core's execution
//! units idle. Lanes of independent inputs advanced in one loop fill them: two lanes take
//! about 1.07× the time of one on the machine of BENCHMARKS.md, so the two blocks of an
//! aes256-ctr key's bcrypt-pbkdf need one core, not two. The arithmetic is OpenBSD's
//! `bcrypt_pbkdf.c` and `blf.c` (the states, the expansions, and the output's byte order);
//! keyvault-core's `kdf` tests check it against RustCrypto's `bcrypt-pbkdf` and OpenBSD's
//! test vector.
//!
//! A crate of its own so that debug builds optimize it (the workspace's `profile.dev`).

mod pi;

use zeroize::Zeroize;

/// Bytes of one bcrypt hash.
pub const HASH: usize = 32;
/// The text bcrypt encrypts, as in OpenBSD's `bcrypt_pbkdf.c`.
const SEED: &[u8; HASH] = b"OxychromaticBlowfishSwatDynamite";

/// A SHA-512 digest as Blowfish reads a key or data stream: 16 big-endian words.
pub type Words = [u32; 16];

/// The first `M` big-endian words of `bytes` (a 64-byte digest makes [`Words`]).
pub fn words<const M: usize>(bytes: &[u8]) -> [u32; M] {
    debug_assert_eq!(bytes.len(), 4 * M, "a whole number of words");
    let mut out = [0u32; M];
    for (word, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    out
}

/// One Blowfish state: the 18 subkeys and the four S-boxes. It holds what the passphrase
/// made of it, so it is wiped when dropped.
#[derive(Clone)]
struct State {
    p: [u32; 18],
    s: [[u32; 256]; 4],
}

impl Drop for State {
    fn drop(&mut self) {
        self.p.zeroize();
        for sbox in &mut self.s {
            sbox.zeroize();
        }
    }
}

impl State {
    fn initial() -> Self {
        let mut state = State {
            p: [0; 18],
            s: [[0; 256]; 4],
        };
        let (p, s) = pi::WORDS.split_at(18);
        state.p.copy_from_slice(p);
        for (sbox, words) in state.s.iter_mut().zip(s.chunks_exact(256)) {
            sbox.copy_from_slice(words);
        }
        state
    }

    /// Blowfish's round function, reading the second S-box's index with `second`.
    #[inline(always)]
    fn f(&self, x: u32, second: impl Fn(u32) -> usize) -> u32 {
        let a = (x >> 24) as usize;
        let c = ((x >> 8) & 0xff) as usize;
        let d = (x & 0xff) as usize;
        (self.s[0][a].wrapping_add(self.s[1][second(x)]) ^ self.s[2][c]).wrapping_add(self.s[3][d])
    }
}

/// `N` Eksblowfish states advanced in lockstep.
struct Lanes<const N: usize>([State; N]);

impl<const N: usize> Lanes<N> {
    fn initial() -> Self {
        Lanes(std::array::from_fn(|_| State::initial()))
    }

    /// One Blowfish encryption of block `(l[k], r[k])` under state `k`, for every lane.
    #[inline(always)]
    fn encrypt(&self, l: &mut [u32; N], r: &mut [u32; N], second: impl Fn(u32) -> usize + Copy) {
        let st = &self.0;
        for i in (0..16).step_by(2) {
            for k in 0..N {
                l[k] ^= st[k].p[i];
            }
            for k in 0..N {
                r[k] ^= st[k].f(l[k], second) ^ st[k].p[i + 1];
            }
            for k in 0..N {
                l[k] ^= st[k].f(r[k], second);
            }
        }
        for k in 0..N {
            let out_l = r[k] ^ st[k].p[17];
            r[k] = l[k] ^ st[k].p[16];
            l[k] = out_l;
        }
    }

    /// Blowfish's key schedule with bcrypt's extension (`Blowfish_expandstate`, or with
    /// `SALTED` false `Blowfish_expand0state`): the key's words are XORed into the
    /// subkeys, then every subkey and S-box entry is replaced, in order, by the running
    /// encryption of a block that starts at zero (and, if `SALTED`, first takes in the
    /// next two words of `data`).
    #[inline(always)]
    fn expand<const SALTED: bool>(
        &mut self,
        key: [&Words; N],
        data: [&Words; N],
        second: impl Fn(u32) -> usize + Copy,
    ) {
        for (state, key) in self.0.iter_mut().zip(key) {
            for (i, p) in state.p.iter_mut().enumerate() {
                *p ^= key[i % 16];
            }
        }
        let (mut l, mut r) = ([0u32; N], [0u32; N]);
        let mut j = 0;
        let mut next = |lanes: &Self, l: &mut [u32; N], r: &mut [u32; N]| {
            if SALTED {
                for k in 0..N {
                    l[k] ^= data[k][j];
                    r[k] ^= data[k][j + 1];
                }
                j = (j + 2) % 16;
            }
            lanes.encrypt(l, r, second);
        };
        for i in (0..18).step_by(2) {
            next(self, &mut l, &mut r);
            for k in 0..N {
                self.0[k].p[i] = l[k];
                self.0[k].p[i + 1] = r[k];
            }
        }
        for b in 0..4 {
            for i in (0..256).step_by(2) {
                next(self, &mut l, &mut r);
                for k in 0..N {
                    self.0[k].s[b][i] = l[k];
                    self.0[k].s[b][i + 1] = r[k];
                }
            }
        }
        l.zeroize();
        r.zeroize();
    }
}

/// bcrypt's hash of one SHA-512'd passphrase with `N` SHA-512'd salts, one per lane.
///
/// Every round of every encryption waits on the second S-box's index (bits 16 to 23 of a
/// word): a shift and a mask, two instructions, where x86's BMI1 `bextr` takes one. Where
/// the processor has BMI1 (every x86-64 processor since 2013), the hash is compiled with
/// it and takes about 9% less time (BENCHMARKS.md); elsewhere the portable code runs.
pub fn bhash<const N: usize>(sha_pass: &Words, sha_salt: [&Words; N]) -> [[u8; HASH]; N] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("bmi1") {
        // SAFETY: `bhash_bmi1` needs only BMI1, which the processor has (checked just above).
        #[allow(unsafe_code)]
        return unsafe { bhash_bmi1(sha_pass, sha_salt) };
    }
    bhash_portable(sha_pass, sha_salt)
}

/// [`bhash`] in portable code.
fn bhash_portable<const N: usize>(sha_pass: &Words, sha_salt: [&Words; N]) -> [[u8; HASH]; N] {
    bhash_with(sha_pass, sha_salt, |x| ((x >> 16) & 0xff) as usize)
}

/// [`bhash`] compiled with BMI1: its `bextr` reads the second S-box index in one
/// instruction (the closure inherits the target feature, so the intrinsic is safe to call;
/// the mask is known to be a no-op and lets the compiler drop the bounds check).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1")]
fn bhash_bmi1<const N: usize>(sha_pass: &Words, sha_salt: [&Words; N]) -> [[u8; HASH]; N] {
    bhash_with(sha_pass, sha_salt, |x| {
        std::arch::x86_64::_bextr_u32(x, 16, 8) as usize & 0xff
    })
}

/// The hash, with every function of the key schedule inlined so that it is compiled with
/// the caller's target features; `second` reads bits 16 to 23 of a word.
#[inline(always)]
fn bhash_with<const N: usize>(
    sha_pass: &Words,
    sha_salt: [&Words; N],
    second: impl Fn(u32) -> usize + Copy,
) -> [[u8; HASH]; N] {
    let pass = [sha_pass; N];
    let mut lanes = Lanes::<N>::initial();
    lanes.expand::<true>(pass, sha_salt, second);
    for _ in 0..64 {
        lanes.expand::<false>(sha_salt, sha_salt, second);
        lanes.expand::<false>(pass, pass, second);
    }
    let mut cdata = [words::<{ HASH / 4 }>(SEED); N];
    for _ in 0..64 {
        for pair in (0..HASH / 4).step_by(2) {
            let mut l = std::array::from_fn(|k| cdata[k][pair]);
            let mut r = std::array::from_fn(|k| cdata[k][pair + 1]);
            lanes.encrypt(&mut l, &mut r, second);
            for k in 0..N {
                cdata[k][pair] = l[k];
                cdata[k][pair + 1] = r[k];
            }
            l.zeroize();
            r.zeroize();
        }
    }
    // OpenBSD writes the words out little-endian, and bcrypt-pbkdf keeps that.
    let mut out = [[0u8; HASH]; N];
    for (bytes, block) in out.iter_mut().zip(&mut cdata) {
        for (b, w) in bytes.chunks_exact_mut(4).zip(block.iter()) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        block.zeroize();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs from a fixed xorshift sequence: the same on every run.
    fn words_from(state: &mut u64) -> Words {
        std::array::from_fn(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u32
        })
    }

    #[test]
    fn the_processor_specific_hash_is_the_portable_one() {
        // Where the processor has no BMI1 both sides run the portable code; keyvault-core's
        // kdf tests check the dispatched hash against RustCrypto's bcrypt-pbkdf either way.
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..8 {
            let pass = words_from(&mut state);
            let salts: [Words; 3] = std::array::from_fn(|_| words_from(&mut state));
            assert_eq!(
                bhash::<3>(&pass, [&salts[0], &salts[1], &salts[2]]),
                bhash_portable::<3>(&pass, [&salts[0], &salts[1], &salts[2]])
            );
            assert_eq!(
                bhash::<1>(&pass, [&salts[0]]),
                bhash_portable::<1>(&pass, [&salts[0]])
            );
        }
    }

    #[test]
    fn lanes_are_independent() {
        let mut state = 42;
        let pass = words_from(&mut state);
        let (a, b) = (words_from(&mut state), words_from(&mut state));
        let both = bhash::<2>(&pass, [&a, &b]);
        assert_eq!(both[0], bhash::<1>(&pass, [&a])[0]);
        assert_eq!(both[1], bhash::<1>(&pass, [&b])[0]);
        assert_ne!(both[0], both[1]);
    }
}
