//! Copying and filling memory on architectures without x86's string instructions: `memcpy`,
//! `memmove`, `memset`, `memcmp`, `bcmp` and `strlen`, which compiled Rust code may call and which
//! no libc provides here, and the direct forms the shim's own code calls (as `src/mem.rs` does for
//! x86-64).
//!
//! # Safety
//!
//! These are the C functions with their C contracts: callers pass valid, suitably sized regions.
//! Every store is volatile, so the compiler cannot recognise a copy or fill loop and turn it back
//! into a call to the function itself. Word-sized accesses are used only where both addresses are
//! word-aligned. None of this is on a measured path: the instruction budgets are x86-64's.

use core::ptr::{read_volatile, write_volatile};

const WORD: usize = core::mem::size_of::<usize>();

/// Copies `n` bytes from `src` to `dest`, front to back.
///
/// # Safety
/// `dest` and `src` are valid for `n` bytes, and `dest` is not above `src` within an overlap.
#[inline(never)]
pub unsafe fn copy_bytes(dest: *mut u8, src: *const u8, n: usize) {
    let mut i = 0;
    // SAFETY (every access): inside the `n` bytes of the contract.
    unsafe {
        if (dest as usize | src as usize) % WORD == 0 {
            while i + WORD <= n {
                write_volatile(dest.add(i) as *mut usize, read_volatile(src.add(i) as *const usize));
                i += WORD;
            }
        }
        while i < n {
            write_volatile(dest.add(i), read_volatile(src.add(i)));
            i += 1;
        }
    }
}

/// Copies `src` to the start of `dst`, as `nix_ld::copy::copy` does.
#[inline(never)]
pub fn copy_into(dst: &mut [u8], src: &[u8]) {
    // Never short: the callers reserve room for what they copy.
    let Some(to) = dst.get_mut(..src.len()) else { crate::arch::trap() };
    // SAFETY: `to` and `src` have the same length and, one being `&mut`, do not overlap.
    unsafe { copy_bytes(to.as_mut_ptr(), src.as_ptr(), src.len()) }
}

/// Writes a copy of `value` to `place`, word by word.
///
/// # Safety
/// `place` is valid for writes of a `T` and does not overlap `value`.
#[inline(always)]
pub unsafe fn put<T: Copy>(place: *mut T, value: &T) {
    let words = const {
        assert!(core::mem::size_of::<T>().is_multiple_of(WORD) && core::mem::align_of::<T>() >= WORD);
        core::mem::size_of::<T>() / WORD
    };
    // SAFETY: per the function's contract; `T: Copy`, so a copy of its bytes is a valid `T`.
    unsafe { copy_words(place as *mut usize, value as *const T as *const usize, words) }
}

/// Copies `count` words from `src` to `dest`.
///
/// # Safety
/// `dest` and `src` are valid for `count` words and do not overlap.
#[inline(never)]
pub unsafe fn copy_words(dest: *mut usize, src: *const usize, count: usize) {
    for i in 0..count {
        // SAFETY: inside the `count` words of the contract.
        unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
    }
}

/// Sets `n` bytes at `dest` to `byte`.
///
/// # Safety
/// `dest` is valid for writes of `n` bytes.
#[inline(never)]
pub unsafe fn fill_bytes(dest: *mut u8, byte: u8, n: usize) {
    let mut i = 0;
    // SAFETY (every store): inside the `n` bytes of the contract.
    unsafe {
        if (dest as usize).is_multiple_of(WORD) {
            let word = usize::from_ne_bytes([byte; WORD]);
            while i + WORD <= n {
                write_volatile(dest.add(i) as *mut usize, word);
                i += WORD;
            }
        }
        while i < n {
            write_volatile(dest.add(i), byte);
            i += 1;
        }
    }
}

/// Zeroes `n` bytes at `dest`.
///
/// # Safety
/// `dest` is valid for writes of `n` bytes.
pub unsafe fn zero_bytes(dest: *mut u8, n: usize) {
    // SAFETY: per the function's contract.
    unsafe { fill_bytes(dest, 0, n) }
}

#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: C contract: `dest` and `src` are valid for `n` bytes and do not overlap.
    unsafe { copy_bytes(dest, src, n) };
    dest
}

#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // No harmful overlap: a forward copy never reads a byte it already wrote.
        // SAFETY: C contract: both regions are valid for `n` bytes.
        unsafe { copy_bytes(dest, src, n) };
        return dest;
    }
    let mut i = n;
    while i > 0 {
        i -= 1;
        // SAFETY: C contract as above; backwards, for `dest > src`.
        unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
    }
    dest
}

#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: C contract: `dest` is valid for `n` bytes.
    unsafe { fill_bytes(dest, c as u8, n) };
    dest
}

#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: C contract: both regions are valid for `n` bytes.
        let (x, y) = unsafe { (read_volatile(a.add(i)), read_volatile(b.add(i))) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: C contract: `s` is NUL-terminated.
    while unsafe { read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}
