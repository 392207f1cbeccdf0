//! AArch64 machine code: process entry, the final jumps, the entry trampoline, and the raw `svc`
//! instruction.
//!
//! # Safety
//!
//! As for x86-64 (`arch/x86_64.rs`): the shim has nothing to relocate, so `_start` calls Rust code
//! at once; the jumps never return and hand the stack to code that owns it from then on. The
//! system-call helpers name exactly the registers the kernel reads (`x8` and `x0`..`x5`) and
//! writes (`x0`); `svc` clobbers nothing else and leaves the flags alone.

use core::arch::{asm, global_asm};

// Entry from the kernel: `sp` is the argument block, 16-byte aligned. `x29`/`x30` are zeroed so
// that a backtrace ends here.
global_asm!(
    ".globl _start",
    ".type _start,%function",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "bl {start}",
    "udf #0",
    ".size _start, . - _start",
    start = sym crate::start,
);

// The program's entry as ld.so sees it (AT_ENTRY): the trampoline `arch/x86_64.rs` describes, for
// AArch64. ld.so jumps here with `sp` at its argument block and its finaliser in `x0`, which must
// reach the program untouched; `x19` and `x20` (callee-saved) carry it and the real entry across
// the call to `entry::resume(block, state, at_entry)`.
global_asm!(
    ".type nix_ld_trampoline,%function",
    "nix_ld_trampoline:",
    "mov x19, x0",
    "mov x0, sp",
    "ldr x9, [sp]",
    "add x1, x0, x9, lsl #3",
    "add x1, x1, #16",
    "adr x10, nix_ld_trampoline",
    // The AT_ENTRY value that points here; x2 is its word.
    "2:",
    "ldr x11, [x1], #8",
    "cmp x11, x10",
    "b.ne 2b",
    "sub x2, x1, #8",
    // Pair by pair to AT_NULL: the state follows it.
    "3:",
    "ldr x11, [x1], #16",
    "cbnz x11, 3b",
    "ldr x20, [x1]",
    "ldr x9, [x1, #8]",
    "sub x9, x0, x9",
    "and x9, x9, #-16",
    "mov sp, x9",
    "bl {resume}",
    "mov sp, x0",
    "mov x0, x19",
    "br x20",
    ".size nix_ld_trampoline, . - nix_ld_trampoline",
    resume = sym crate::entry::resume,
);

/// Address of the entry trampoline, computed from the program counter (a stored address would
/// need relocating).
pub fn trampoline_address() -> usize {
    let address: usize;
    // SAFETY: `adr` only computes an address.
    unsafe { asm!("adr {}, nix_ld_trampoline", out(reg) address, options(pure, nomem, nostack, preserves_flags)) };
    address
}

/// The end of the shim's own image (`__nix_ld_end` in `linker.ld`).
pub fn image_end() -> usize {
    let address: usize;
    // SAFETY: `adrp`/`add` only compute an address.
    unsafe {
        asm!(
            "adrp {0}, __nix_ld_end",
            "add {0}, {0}, :lo12:__nix_ld_end",
            out(reg) address,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    address
}

// Where the shim leaves for ld.so (a global name, as on x86-64, for the linker script's
// `.nix-ld.hooks`): `sp` becomes the argument block, and `x0` = 0 tells ld.so there is no
// finaliser to register.
global_asm!(
    ".globl nix_ld_enter_loader",
    ".type nix_ld_enter_loader,%function",
    "nix_ld_enter_loader:",
    "mov sp, x1",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, #0",
    "br x9",
    ".size nix_ld_enter_loader, . - nix_ld_enter_loader",
);

/// Starts the loader at `entry` on the argument block at `sp`, as the kernel would have.
///
/// # Safety
/// As on x86-64: `sp` is a 16-byte-aligned argument block that stays valid for the life of the
/// process, and `entry` the entry point of a mapped loader.
#[inline(always)]
pub unsafe fn jump(entry: usize, sp: *const usize) -> ! {
    // SAFETY: per the caller's guarantees; `nix_ld_enter_loader` only switches stacks and jumps.
    unsafe { asm!("b nix_ld_enter_loader", in("x9") entry, in("x1") sp, options(noreturn)) }
}

/// Calls `f(arg)` on a stack that starts at `stack_top`, or at the current stack pointer if that
/// is lower, never returning (see x86-64's for why the lower).
///
/// # Safety
/// As on x86-64.
pub unsafe fn run_on_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: per the caller's guarantees; the stack pointer is 16-byte aligned after the `and`.
    unsafe {
        asm!(
            "mov x9, sp",
            "cmp {top}, x9",
            "csel {top}, x9, {top}, hi",
            "and {top}, {top}, #-16",
            "mov sp, {top}",
            "mov x29, #0",
            "blr {f}",
            "udf #0",
            top = in(reg) stack_top,
            f = in(reg) f,
            in("x9") 0usize,
            in("x0") arg,
            options(noreturn),
        )
    }
}

/// `svc #0` with up to three arguments.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the instruction writes only x0; memory effects are the caller's.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c, options(nostack, preserves_flags))
    };
    ret
}

/// `svc #0` with four arguments.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: as for `syscall3`.
    unsafe {
        asm!(
            "svc #0",
            in("x8") nr,
            inlateout("x0") a as isize => ret,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            options(nostack, preserves_flags)
        )
    };
    ret
}

/// `svc #0` with up to six arguments; returns the raw result (negative errno on failure).
///
/// # Safety
/// The caller must pass arguments that are valid for the system call `nr`, in particular pointers
/// to memory of the size the call reads or writes.
#[inline(always)]
pub unsafe fn syscall6(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: as for `syscall3`.
    unsafe {
        asm!(
            "svc #0",
            in("x8") nr,
            inlateout("x0") a as isize => ret,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            in("x4") e,
            in("x5") f,
            options(nostack, preserves_flags)
        )
    };
    ret
}

/// Ends the process without returning.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group takes no pointer and does not return.
    unsafe {
        asm!("svc #0", in("x8") linux_raw_sys::general::__NR_exit_group as usize, in("x0") status as isize, options(noreturn, nostack));
    }
}

/// Stops the process with SIGILL: for states that no input can produce.
pub fn trap() -> ! {
    // SAFETY: `udf` raises SIGILL and never falls through.
    unsafe { asm!("udf #0", options(noreturn, nomem, nostack)) }
}

/// The system calls whose number or argument shape differs between architectures.
#[path = "calls64.rs"]
pub mod calls;
