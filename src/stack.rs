//! Reading the argument block the kernel put on the initial stack: argc, argv, envp and auxv.
//!
//! # Safety
//!
//! [`InitialStack::read`] trusts the kernel's layout at the process entry: argc, then argc argv
//! pointers and a NULL, then envp pointers up to a NULL, then auxv pairs up to AT_NULL, every string
//! NUL-terminated. All later accesses stay within the counts measured here.
//!
//! [`CStr`] reads a string 8 bytes at a time (4 on 32-bit builds), so its last read may go up to 7
//! (3) bytes past the NUL. That stays inside the block: the kernel copies the strings to the top of
//! the new stack below a zero end marker of a pointer's size (`bprm->p = vm_end - sizeof(void *)`
//! in fs/exec.c), so at least that many bytes of the mapped, initialised block follow every
//! terminator. Those bytes are only read, never trusted:
//! the first zero byte ends the string. Only strings of the kernel's block (argv, envp, AT_EXECFN)
//! are read this way.

use linux_raw_sys::auxvec;
use nix_ld::envscan::{self, EnvScan, EnvString};

/// A NUL-terminated string from the kernel (argv, envp, or a path in auxv).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct CStr(pub *const u8);

impl CStr {
    /// The bytes before the NUL.
    pub fn bytes(self) -> &'static [u8] {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
        let mut len = 0;
        loop {
            let word = self.word_at(len);
            // The lowest high bit set here marks the first zero byte.
            let zero_bytes = word.wrapping_sub(ONES) & !word & HIGH_BITS;
            if zero_bytes != 0 {
                len += zero_bytes.trailing_zeros() as usize / 8;
                break;
            }
            len += 8;
        }
        // SAFETY: bytes `..len` precede the NUL; the string lives as long as the process (module
        // contract).
        unsafe { core::slice::from_raw_parts(self.0, len) }
    }
}

impl EnvString<'static> for CStr {
    #[cfg(target_pointer_width = "64")]
    fn word_at(self, index: usize) -> u64 {
        // SAFETY: bytes `..index` are non-zero (the trait's contract), so the word starts at or
        // before the NUL, and at least 8 bytes of the block follow every NUL (module contract).
        u64::from_le(unsafe { (self.0.add(index) as *const u64).read_unaligned() })
    }
    /// Two 4-byte reads, the second only if the first holds no NUL: only 4 bytes of the block
    /// follow the last string (the end marker is a 4-byte NULL), so no read may go further past a
    /// NUL than 3 bytes.
    #[cfg(target_pointer_width = "32")]
    fn word_at(self, index: usize) -> u64 {
        // SAFETY: as above, with the 32-bit end marker: each read starts at or before the NUL.
        let half = |at: usize| u32::from_le(unsafe { (self.0.add(at) as *const u32).read_unaligned() });
        let low = half(index);
        if low.wrapping_sub(0x0101_0101) & !low & 0x8080_8080 != 0 {
            return low as u64;
        }
        low as u64 | (half(index + 4) as u64) << 32
    }
    fn tail(self, start: usize) -> &'static [u8] {
        // SAFETY: `start` is within the string (trait contract), so the rest is NUL-terminated too.
        CStr(unsafe { self.0.add(start) }).bytes()
    }
}

/// The strings of a NULL-terminated pointer array (the kernel's `envp`).
struct NullTerminated {
    at: *const CStr,
}

impl Iterator for NullTerminated {
    type Item = CStr;

    fn next(&mut self) -> Option<CStr> {
        // SAFETY: `at` points into the array, at or before its NULL (module contract); it only
        // advances past non-NULL entries.
        unsafe {
            let entry = *self.at;
            if entry.0.is_null() {
                return None;
            }
            self.at = self.at.add(1);
            Some(entry)
        }
    }
}

/// Auxv keys below this are indexed by [`InitialStack::read`]; every key the shim reads or edits is.
const INDEXED_KEYS: usize = 32;

/// The kernel's argument block, measured.
#[derive(Clone, Copy)]
pub struct InitialStack {
    pub sp: *mut usize,
    pub argc: usize,
    pub env_count: usize,
    /// Number of auxv pairs, including the final AT_NULL.
    pub aux_count: usize,
    /// AT_SECURE is set: the program is privileged (setuid, setgid or with capabilities).
    pub secure: bool,
    /// AT_BASE is set: the kernel started the shim as a program's interpreter (run as a command,
    /// it passes 0 or nothing).
    pub interpreter: bool,
    /// For each key below [`INDEXED_KEYS`], the index in auxv of the word holding its value (odd,
    /// so never 0), or 0 if absent: one walk over auxv serves every lookup. The kernel writes each
    /// key once, in a vector of a few dozen pairs.
    value_word: [u16; INDEXED_KEYS],
}

impl InitialStack {
    /// Measures the block at `sp`, scanning the environment on the way: one pass over `envp`
    /// both finds the variables the shim reads and counts the entries.
    ///
    /// # Safety
    /// `sp` must be the stack pointer the kernel passed at process entry.
    pub unsafe fn read(sp: *mut usize) -> (InitialStack, EnvScan<'static>) {
        // SAFETY: the kernel's layout, per the module contract.
        unsafe {
            let argc = *sp;
            let envp = sp.add(argc + 2);
            let scan = envscan::scan(NullTerminated { at: envp as *const CStr });
            let env_count = scan.count;
            let auxv = envp.add(env_count + 1);
            let mut value_word = [0u16; INDEXED_KEYS];
            // Two pairs per round: every exec walks the kernel's two dozen pairs.
            let mut value = 1;
            loop {
                let key = *auxv.add(value - 1);
                if key == auxvec::AT_NULL as usize {
                    break;
                }
                if key < INDEXED_KEYS {
                    value_word[key] = value as u16;
                }
                value += 2;
                let key = *auxv.add(value - 1);
                if key == auxvec::AT_NULL as usize {
                    break;
                }
                if key < INDEXED_KEYS {
                    value_word[key] = value as u16;
                }
                value += 2;
            }
            // The two values every start needs, read here rather than by lookups. A recorded index
            // is the value word of a pair before AT_NULL, so inside the vector.
            let is_set = |key: u32| match value_word[key as usize] {
                0 => false,
                word => *auxv.add(word as usize) != 0,
            };
            let (secure, interpreter) = (is_set(auxvec::AT_SECURE), is_set(auxvec::AT_BASE));
            // `value` is AT_NULL's value word: 2 × its pair index + 1.
            (InitialStack { sp, argc, env_count, aux_count: value.div_ceil(2), secure, interpreter, value_word }, scan)
        }
    }

    pub fn argv(&self) -> &'static [CStr] {
        // SAFETY: argc pointers follow argc (measured in `read`); CStr is a transparent pointer.
        unsafe { core::slice::from_raw_parts(self.sp.add(1) as *const CStr, self.argc) }
    }

    pub fn envp_ptr(&self) -> *mut usize {
        // SAFETY: within the block measured in `read`.
        unsafe { self.sp.add(self.argc + 2) }
    }

    pub fn env(&self) -> &'static [CStr] {
        // SAFETY: env_count pointers start at envp (measured in `read`).
        unsafe { core::slice::from_raw_parts(self.envp_ptr() as *const CStr, self.env_count) }
    }

    pub fn auxv_ptr(&self) -> *mut usize {
        // SAFETY: within the block measured in `read`.
        unsafe { self.envp_ptr().add(self.env_count + 1) }
    }

    /// The auxv words: key, value, key, value, ..., AT_NULL, 0.
    pub fn auxv(&self) -> &'static [usize] {
        // SAFETY: aux_count pairs start at auxv (measured in `read`).
        unsafe { core::slice::from_raw_parts(self.auxv_ptr(), 2 * self.aux_count) }
    }

    /// The index in [`InitialStack::auxv`] of the word holding `key`'s value.
    pub fn aux_value_word(&self, key: u32) -> Option<usize> {
        match self.value_word.get(key as usize) {
            Some(&i) if i > 0 => Some(i as usize),
            _ => None,
        }
    }

    pub fn aux(&self, key: u32) -> Option<usize> {
        self.aux_value_word(key).map(|i| self.auxv()[i])
    }
}
