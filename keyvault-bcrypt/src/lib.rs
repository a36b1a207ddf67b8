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

    /// Blowfish's round function.
    #[inline(always)]
    fn f(&self, x: u32) -> u32 {
        let [a, b, c, d] = x.to_be_bytes();
        (self.s[0][usize::from(a)].wrapping_add(self.s[1][usize::from(b)])
            ^ self.s[2][usize::from(c)])
        .wrapping_add(self.s[3][usize::from(d)])
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
    fn encrypt(&self, l: &mut [u32; N], r: &mut [u32; N]) {
        let st = &self.0;
        for i in (0..16).step_by(2) {
            for k in 0..N {
                l[k] ^= st[k].p[i];
            }
            for k in 0..N {
                r[k] ^= st[k].f(l[k]) ^ st[k].p[i + 1];
            }
            for k in 0..N {
                l[k] ^= st[k].f(r[k]);
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
    fn expand<const SALTED: bool>(&mut self, key: [&Words; N], data: [&Words; N]) {
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
            lanes.encrypt(l, r);
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
pub fn bhash<const N: usize>(sha_pass: &Words, sha_salt: [&Words; N]) -> [[u8; HASH]; N] {
    let pass = [sha_pass; N];
    let mut lanes = Lanes::<N>::initial();
    lanes.expand::<true>(pass, sha_salt);
    for _ in 0..64 {
        lanes.expand::<false>(sha_salt, sha_salt);
        lanes.expand::<false>(pass, pass);
    }
    let mut cdata = [words::<{ HASH / 4 }>(SEED); N];
    for _ in 0..64 {
        for pair in (0..HASH / 4).step_by(2) {
            let mut l = std::array::from_fn(|k| cdata[k][pair]);
            let mut r = std::array::from_fn(|k| cdata[k][pair + 1]);
            lanes.encrypt(&mut l, &mut r);
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
