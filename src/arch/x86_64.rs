//! x86-64 machine code: process entry, the final jumps, the entry trampoline, and the raw `syscall`
//! instruction.
//!
//! # Safety
//!
//! The architecture files (`src/arch/`) and `mem` are the only files with assembly. The shim is position-independent and has
//! nothing to relocate (no writable data, no stored pointers; `linker.ld` and `cargo xtask build`
//! enforce it), so `_start` can call Rust code at once. The jumps never return and hand the stack
//! to code that owns it from then on. The syscall helpers declare exactly what the instruction clobbers (`rcx`, `r11`).

use core::arch::{asm, global_asm};

// Entry from the kernel. The stack holds argc, argv, envp and auxv; `rsp` is 16-byte aligned.
// A static-pie normally relocates itself here before any code reads a pointer stored in data. This
// one has no data to relocate: `linker.ld` fails the link if any writable section (where
// relocations would land) appears, and `cargo xtask build` checks that the file has no
// relocations at all. So Rust code runs straight away.
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "call {start}",
    "ud2",
    ".size _start, . - _start",
    start = sym crate::start,
);

// The program's entry as ld.so sees it (AT_ENTRY), used when the environment was edited for ld.so.
// ld.so jumps here after running every library constructor, with `rsp` at the argument block it was
// given and `rdx` holding its finaliser, which must reach the program untouched.
//
// Constructors may have edited envp in any way glibc allows (shifted it, left extra NULLs, copied
// it to the heap), so the state is not found by walking envp to its NULL: the AT_ENTRY value that
// points here is searched for instead (no envp entry can hold it: they point at strings), and the
// state follows the AT_NULL pair after it. `entry::resume` then puts the program's environment
// back and says where the program starts: on this block, or on a copy of it just below (when an
// appended entry left one word too many between envp and auxv). It runs on a stack below the room
// that copy needs; `rbx` and `r12` (callee-saved) carry the finaliser and the real entry across.
global_asm!(
    ".type nix_ld_trampoline,@function",
    "nix_ld_trampoline:",
    "mov rbx, rdx",
    "mov rcx, [rsp]",
    "lea rdi, [rsp + 8 * rcx + 16]",
    "lea rax, [rip + nix_ld_trampoline]",
    "mov rcx, -1",
    "repne scasq",
    "lea rdx, [rdi - 8]",
    "2:",
    "mov rax, [rdi]",
    "add rdi, 16",
    "test rax, rax",
    "jnz 2b",
    "mov rsi, rdi",
    "mov r12, [rsi]",
    "mov rdi, rsp",
    "sub rsp, [rsi + 8]",
    "and rsp, -16",
    "call {resume}",
    "mov rsp, rax",
    "mov rdx, rbx",
    "jmp r12",
    ".size nix_ld_trampoline, . - nix_ld_trampoline",
    resume = sym crate::entry::resume,
);

/// Address of the entry trampoline, computed from `rip`: taking a function's address in Rust
/// would store it in data, to be relocated at run time.
pub fn trampoline_address() -> usize {
    let address: usize;
    // SAFETY: `lea` only computes an address; it reads and writes nothing.
    unsafe {
        asm!("lea {}, [rip + nix_ld_trampoline]", out(reg) address, options(pure, nomem, nostack, preserves_flags))
    };
    address
}

/// The end of the shim's own image, where `linker.ld` puts `__nix_ld_end`, computed from `rip`.
pub fn image_end() -> usize {
    let address: usize;
    // SAFETY: `lea` only computes an address; it reads and writes nothing.
    unsafe { asm!("lea {}, [rip + __nix_ld_end]", out(reg) address, options(pure, nomem, nostack, preserves_flags)) };
    address
}

// Where the shim leaves for ld.so: `rsp` becomes the argument block, and `rdx` = 0 tells ld.so
// there is no finaliser to register, as from the kernel. A function of its own, with a global
// name, because the linker script records its address in the file's `.nix-ld.hooks` section:
// gdb's helper (gdb/nix-ld.py) stops here, before ld.so runs, to learn where ld.so is from the
// block's auxv (`rsi`), and so can follow ld.so's library events from the first.
global_asm!(
    ".globl nix_ld_enter_loader",
    ".type nix_ld_enter_loader,@function",
    "nix_ld_enter_loader:",
    "mov rsp, rsi",
    "xor ebp, ebp",
    "xor edx, edx",
    "jmp rdi",
    ".size nix_ld_enter_loader, . - nix_ld_enter_loader",
);

/// Starts the loader at `entry` on the argument block at `sp`, as the kernel would have.
///
/// # Safety
/// `sp` must be a 16-byte-aligned argument block (argc, argv, envp, auxv) that stays valid for the
/// life of the process, and `entry` the entry point of a mapped loader.
#[inline(always)]
pub unsafe fn jump(entry: usize, sp: *const usize) -> ! {
    // SAFETY: the caller guarantees the block and the entry; `nix_ld_enter_loader` only switches
    // to that stack and jumps. Reached by a direct jump: a call to an external function would go
    // through a GOT entry, which the shim cannot have.
    unsafe { asm!("jmp nix_ld_enter_loader", in("rdi") entry, in("rsi") sp, options(noreturn)) }
}

/// Calls `f(arg)` on a stack that starts at `stack_top`, or at the current stack pointer if that
/// is lower, never returning.
///
/// The lower of the two: `f`'s frames then lie below both the memory above `stack_top` that `f`
/// is to fill and everything its caller still holds (`arg` may point into the caller's frame).
/// Starting at `stack_top` alone put `f`'s frames on top of its caller's whenever `stack_top` was
/// above them: with 140 to 230 environment variables, `f` overwrote the plan it was passed.
///
/// # Safety
/// `stack_top` must be 16-byte aligned, inside the process stack, with room below the lower of it
/// and the stack pointer for `f`'s frames.
pub unsafe fn run_on_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: per the caller's guarantees; the stack pointer is 16-byte aligned after the `and`,
    // so `call` leaves it aligned as the ABI expects.
    unsafe {
        asm!(
            "cmp {top}, rsp",
            "cmova {top}, rsp",
            "and {top}, -16",
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = in(reg) stack_top,
            f = in(reg) f,
            in("rdi") arg,
            options(noreturn),
        )
    }
}

/// `syscall` with up to three arguments: the others' registers are left as they are, which the
/// kernel ignores for calls that take fewer.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the instruction itself only clobbers rcx and r11; memory effects are the caller's.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, preserves_flags),
        );
    }
    ret
}

/// `syscall` with four arguments.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the instruction itself only clobbers rcx and r11; memory effects are the caller's.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, preserves_flags),
        );
    }
    ret
}

/// `syscall` with up to six arguments; returns the raw result (negative errno on failure).
///
/// # Safety
/// The caller must pass arguments that are valid for the system call `nr`, in particular pointers
/// to memory of the size the call reads or writes.
#[inline(always)]
pub unsafe fn syscall6(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: the instruction itself only clobbers rcx and r11; memory effects are the caller's.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            in("r8") e,
            in("r9") f,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, preserves_flags),
        );
    }
    ret
}

/// Ends the process without returning.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group takes no pointer and does not return.
    unsafe {
        asm!("syscall", in("rax") linux_raw_sys::general::__NR_exit_group as usize, in("rdi") status as isize, options(noreturn, nostack));
    }
}

/// Stops the process with SIGILL: for states that no input can produce.
pub fn trap() -> ! {
    // SAFETY: ud2 raises SIGILL and never falls through.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}

/// The system calls whose number or argument shape differs between architectures.
#[path = "calls64.rs"]
pub mod calls;
