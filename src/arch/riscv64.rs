//! RISC-V 64 machine code: process entry, the final jumps, the entry trampoline, and the raw
//! `ecall` instruction.
//!
//! # Safety
//!
//! As for x86-64 (`arch/x86_64.rs`): the shim has nothing to relocate, so `_start` calls Rust code
//! at once; the jumps never return and hand the stack to code that owns it from then on. The
//! system-call helpers name exactly the registers the kernel reads (`a7` and `a0`..`a5`) and
//! writes (`a0`). Addresses are computed with `lla` (pc-relative), never loaded from a GOT.

use core::arch::{asm, global_asm};

// Entry from the kernel: `sp` is the argument block, 16-byte aligned. `gp` is left alone: linker.ld
// defines no `__global_pointer$`, so the linker relaxes no access to be gp-relative and nothing
// reads it.
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "li fp, 0",
    "li ra, 0",
    "mv a0, sp",
    "call {start}",
    "unimp",
    ".size _start, . - _start",
    start = sym crate::start,
);

// The program's entry as ld.so sees it (AT_ENTRY): the trampoline `arch/x86_64.rs` describes, for
// RISC-V. ld.so jumps here with `sp` at its argument block and its finaliser in `a0`, which must
// reach the program untouched; `s1` and `s2` (callee-saved) carry it and the real entry across
// the call to `entry::resume(block, state, at_entry)`.
global_asm!(
    ".type nix_ld_trampoline,@function",
    "nix_ld_trampoline:",
    "mv s1, a0",
    "mv a0, sp",
    "ld t0, 0(sp)",
    "slli t0, t0, 3",
    "add a1, a0, t0",
    "addi a1, a1, 16",
    "lla t1, nix_ld_trampoline",
    // The AT_ENTRY value that points here; a2 is its word.
    "2:",
    "ld t2, 0(a1)",
    "addi a1, a1, 8",
    "bne t2, t1, 2b",
    "addi a2, a1, -8",
    // Pair by pair to AT_NULL: the state follows it.
    "3:",
    "ld t2, 0(a1)",
    "addi a1, a1, 16",
    "bnez t2, 3b",
    "ld s2, 0(a1)",
    "ld t0, 8(a1)",
    "sub t0, a0, t0",
    "andi sp, t0, -16",
    "call {resume}",
    "mv sp, a0",
    "mv a0, s1",
    "jr s2",
    ".size nix_ld_trampoline, . - nix_ld_trampoline",
    resume = sym crate::entry::resume,
);

/// Address of the entry trampoline, computed from the program counter (a stored address would
/// need relocating).
pub fn trampoline_address() -> usize {
    let address: usize;
    // SAFETY: `lla` only computes an address.
    unsafe { asm!("lla {}, nix_ld_trampoline", out(reg) address, options(pure, nomem, nostack, preserves_flags)) };
    address
}

/// The end of the shim's own image (`__nix_ld_end` in `linker.ld`).
pub fn image_end() -> usize {
    let address: usize;
    // SAFETY: `lla` only computes an address.
    unsafe { asm!("lla {}, __nix_ld_end", out(reg) address, options(pure, nomem, nostack, preserves_flags)) };
    address
}

// Where the shim leaves for ld.so (a global name, as on x86-64, for the linker script's
// `.nix-ld.hooks`): `sp` becomes the argument block, and `a0` = 0 tells ld.so there is no
// finaliser to register.
global_asm!(
    ".globl nix_ld_enter_loader",
    ".type nix_ld_enter_loader,@function",
    "nix_ld_enter_loader:",
    "mv sp, a1",
    "li fp, 0",
    "li ra, 0",
    "li a0, 0",
    "jr t0",
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
    unsafe { asm!("j nix_ld_enter_loader", in("t0") entry, in("a1") sp, options(noreturn)) }
}

/// Calls `f(arg)` on a stack that starts at `stack_top`, or at the current stack pointer if that
/// is lower, never returning (see x86-64's for why the lower).
///
/// # Safety
/// As on x86-64.
pub unsafe fn run_on_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: per the caller's guarantees; the stack pointer is 16-byte aligned after the `andi`.
    unsafe {
        asm!(
            "bleu {top}, sp, 2f",
            "mv {top}, sp",
            "2:",
            "andi sp, {top}, -16",
            "li fp, 0",
            "jalr {f}",
            "unimp",
            top = in(reg) stack_top,
            f = in(reg) f,
            in("a0") arg,
            options(noreturn),
        )
    }
}

/// `ecall` with up to three arguments.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the instruction writes only a0; memory effects are the caller's.
    unsafe {
        asm!("ecall", in("a7") nr, inlateout("a0") a as isize => ret, in("a1") b, in("a2") c, options(nostack, preserves_flags))
    };
    ret
}

/// `ecall` with four arguments.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: as for `syscall3`.
    unsafe {
        asm!(
            "ecall",
            in("a7") nr,
            inlateout("a0") a as isize => ret,
            in("a1") b,
            in("a2") c,
            in("a3") d,
            options(nostack, preserves_flags)
        )
    };
    ret
}

/// `ecall` with up to six arguments; returns the raw result (negative errno on failure).
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
            "ecall",
            in("a7") nr,
            inlateout("a0") a as isize => ret,
            in("a1") b,
            in("a2") c,
            in("a3") d,
            in("a4") e,
            in("a5") f,
            options(nostack, preserves_flags)
        )
    };
    ret
}

/// Ends the process without returning.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group takes no pointer and does not return.
    unsafe {
        asm!("ecall", in("a7") linux_raw_sys::general::__NR_exit_group as usize, in("a0") status as isize, options(noreturn, nostack));
    }
}

/// Stops the process with SIGILL: for states that no input can produce.
pub fn trap() -> ! {
    // SAFETY: `unimp` raises SIGILL and never falls through.
    unsafe { asm!("unimp", options(noreturn, nomem, nostack)) }
}

/// The system calls whose number or argument shape differs between architectures.
#[path = "calls64.rs"]
pub mod calls;
