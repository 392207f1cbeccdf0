//! Copying and filling memory with x86-64's string instructions: `memcpy`, `memmove`, `memset`,
//! `memcmp`, `bcmp` and `strlen`, which compiled Rust code may call and which no libc provides
//! here, and the direct forms the shim's own code calls (other architectures: `mem/portable.rs`).
//!
//! # Safety
//!
//! These are the C functions with their C contracts: callers pass valid, suitably sized regions.
//! Each body is a string instruction in inline assembly, so the compiler cannot recognise a copy
//! loop and turn it back into a call to the function itself. The direction flag is clear on entry
//! to any function, as the ABI requires; `memmove` sets it only around its backward copy.
//!
//! The shim's code calls [`copy_bytes`], [`copy_words`], [`fill_bytes`] and [`zero_bytes`] rather than relying on
//! compiler-emitted `memcpy` calls: those go through a GOT entry, which is writable data that
//! needs a relocation, and the shim has none (see `linker.ld`; `cargo xtask build` checks it).
//! LLVM knows the C names, so it could turn a direct call to `memcpy` into its own intrinsic and
//! back into such a call; these names it does not know.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest`.
///
/// # Safety
/// `dest` and `src` are valid for `n` bytes and do not overlap.
#[inline]
pub unsafe fn copy_bytes(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: per the function's contract. Words first, then the remaining bytes.
    unsafe {
        asm!(
            "rep movsq",
            "mov rcx, {rest}",
            "rep movsb",
            rest = in(reg) n % 8,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            inout("rcx") n / 8 => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copies `src` to the start of `dst`, as `nix_ld::copy::copy` does, with string instructions.
#[inline(never)]
pub fn copy_into(dst: &mut [u8], src: &[u8]) {
    // Never short: the callers reserve room for what they copy.
    let Some(to) = dst.get_mut(..src.len()) else { crate::arch::trap() };
    // SAFETY: `to` and `src` have the same length and, one being `&mut`, do not overlap.
    unsafe { copy_bytes(to.as_mut_ptr(), src.as_ptr(), src.len()) }
}

/// Writes a copy of `value` to `place`, word by word: at opt-level "z" LLVM copies a struct of
/// more than a few words with `rep movsb`, an instruction per byte, and every exec that edits the
/// environment copies its plan.
///
/// # Safety
/// `place` is valid for writes of a `T` and does not overlap `value`.
#[inline(always)]
pub unsafe fn put<T: Copy>(place: *mut T, value: &T) {
    let words = const {
        assert!(core::mem::size_of::<T>().is_multiple_of(8) && core::mem::align_of::<T>() == 8);
        core::mem::size_of::<T>() / 8
    };
    // SAFETY: per the function's contract; `T: Copy`, so a copy of its bytes is a valid `T`.
    unsafe { copy_words(place as *mut usize, value as *const T as *const usize, words) }
}

/// Copies `count` words from `src` to `dest`.
///
/// # Safety
/// `dest` and `src` are valid for `count` words and do not overlap.
#[inline]
pub unsafe fn copy_words(dest: *mut usize, src: *const usize, count: usize) {
    // SAFETY: per the function's contract.
    unsafe {
        asm!(
            "rep movsq",
            inout("rdi") dest => _,
            inout("rsi") src => _,
            inout("rcx") count => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Sets `n` bytes at `dest` to `byte`.
///
/// # Safety
/// `dest` is valid for writes of `n` bytes.
#[inline]
pub unsafe fn fill_bytes(dest: *mut u8, byte: u8, n: usize) {
    // SAFETY: per the function's contract. Words first, then the remaining bytes.
    unsafe {
        asm!(
            "rep stosq",
            "mov rcx, {rest}",
            "rep stosb",
            rest = in(reg) n % 8,
            inout("rdi") dest => _,
            inout("rcx") n / 8 => _,
            in("rax") byte as u64 * 0x0101_0101_0101_0101,
            options(nostack, preserves_flags),
        );
    }
}

/// Zeroes `n` bytes at `dest`: 256 bytes per round with SSE2 stores (part of the x86-64
/// baseline), the last round moved back to end exactly at `dest + n` (overlapping the one before).
/// Fewer than 256 bytes are zeroed as [`fill_bytes`] does. The loader's last data page needs a few
/// KiB zeroed at every exec; this takes about a fifth of the instructions `rep stosq` takes, which
/// counts one per word.
///
/// # Safety
/// `dest` is valid for writes of `n` bytes.
pub unsafe fn zero_bytes(dest: *mut u8, n: usize) {
    if n < 256 {
        // SAFETY: per the function's contract.
        unsafe { fill_bytes(dest, 0, n) };
        return;
    }
    // SAFETY: per the function's contract. `{at}` points 128 bytes into the round it zeroes (so
    // every store's offset fits in a byte), from `dest + 128` up to `last` = `dest + n - 128`: a
    // round runs only while it ends at or before `dest + n`, and the final one ends exactly there.
    unsafe {
        asm!(
            "xorps xmm0, xmm0",
            "lea {last}, [{at} + {n} - 128]",
            "add {at}, 128",
            "2:",
            "movups [{at} - 128], xmm0",
            "movups [{at} - 112], xmm0",
            "movups [{at} - 96], xmm0",
            "movups [{at} - 80], xmm0",
            "movups [{at} - 64], xmm0",
            "movups [{at} - 48], xmm0",
            "movups [{at} - 32], xmm0",
            "movups [{at} - 16], xmm0",
            "movups [{at}], xmm0",
            "movups [{at} + 16], xmm0",
            "movups [{at} + 32], xmm0",
            "movups [{at} + 48], xmm0",
            "movups [{at} + 64], xmm0",
            "movups [{at} + 80], xmm0",
            "movups [{at} + 96], xmm0",
            "movups [{at} + 112], xmm0",
            "add {at}, 256",
            "cmp {at}, {last}",
            "jbe 2b",
            // Zeroed up to `at - 128`; unless that is the end, zero the last 256 bytes.
            "sub {at}, 256",
            "cmp {at}, {last}",
            "je 3f",
            "mov {at}, {last}",
            "jmp 2b",
            "3:",
            at = inout(reg) dest => _,
            n = in(reg) n,
            last = out(reg) _,
            out("xmm0") _,
            options(nostack),
        );
    }
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
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: C contract as above; copying backwards from the last byte handles `dest > src`.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rdi") dest.add(n).wrapping_sub(1) => _,
            inout("rsi") src.add(n).wrapping_sub(1) => _,
            inout("rcx") n => _,
            options(nostack),
        );
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
#[inline(never)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let result: i32;
    // SAFETY: C contract: both regions are valid for `n` bytes. `repe cmpsb` stops after the first
    // differing byte, so the difference is read one byte back.
    unsafe {
        asm!(
            "xor eax, eax",
            "test rcx, rcx",
            "jz 2f",
            "repe cmpsb",
            "je 2f",
            "movzx eax, byte ptr [rsi - 1]",
            "movzx ecx, byte ptr [rdi - 1]",
            "sub eax, ecx",
            "2:",
            inout("rsi") a => _,
            inout("rdi") b => _,
            inout("rcx") n => _,
            out("eax") result,
            options(nostack, readonly),
        );
    }
    result
}

#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let end: *const u8;
    // SAFETY: C contract: `s` is NUL-terminated. `repne scasb` stops just past the NUL.
    unsafe {
        asm!(
            "repne scasb",
            inout("rdi") s => end,
            inout("rcx") usize::MAX => _,
            in("al") 0u8,
            options(nostack, readonly),
        );
    }
    end as usize - s as usize - 1
}
