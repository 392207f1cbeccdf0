//! 32-bit x86 (i686) machine code: process entry, the final jumps, the entry trampoline, and the
//! raw `int 0x80` instruction.
//!
//! # Safety
//!
//! As for x86-64 (`arch/x86_64.rs`): the shim has nothing to relocate, so `_start` calls Rust code
//! at once; the jumps never return and hand the stack to code that owns it from then on.
//! System calls take their arguments in `ebx`, `ecx`, `edx`, `esi`, `edi` and `ebp` and return in
//! `eax`; the kernel preserves every other register. LLVM does not let inline assembly name `esi`
//! or `ebp` as operands, so the calls that need them save them on the stack, load them from
//! memory the helper owns for the call, and restore them: those helpers do use the stack. Code
//! addresses come from a `call`/`pop` pair (i386 has no pc-relative `lea`).

use core::arch::{asm, global_asm};

// Entry from the kernel: `esp` is the argument block. The call gets a 16-byte-aligned stack, as
// the i386 System V ABI expects at a call.
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "mov eax, esp",
    "and esp, -16",
    "sub esp, 12",
    "push eax",
    "call {start}",
    "ud2",
    ".size _start, . - _start",
    start = sym crate::start,
);

// The program's entry as ld.so sees it (AT_ENTRY): the trampoline `arch/x86_64.rs` describes, for
// i386. ld.so jumps here with `esp` at its argument block and its finaliser in `edx`, which must
// reach the program untouched; `ebx` and `ebp` (callee-saved) carry it and the real entry across
// the call to `entry::resume(block, state, at_entry)`, whose arguments go on the stack.
global_asm!(
    ".type nix_ld_trampoline,@function",
    "nix_ld_trampoline:",
    "mov ebx, edx",
    "mov ecx, [esp]",
    "lea edi, [esp + 4 * ecx + 8]",
    "call nix_ld_trampoline_address",
    "mov ecx, -1",
    "repne scasd",
    "lea edx, [edi - 4]",
    "3:",
    "mov eax, [edi]",
    "add edi, 8",
    "test eax, eax",
    "jnz 3b",
    "mov esi, edi",
    "mov ebp, [esi]",
    "mov eax, esp",
    "mov ecx, esp",
    "sub ecx, [esi + 4]",
    "and ecx, -16",
    "mov esp, ecx",
    "sub esp, 4",
    "push edx",
    "push esi",
    "push eax",
    "call {resume}",
    "mov esp, eax",
    "mov edx, ebx",
    "jmp ebp",
    ".size nix_ld_trampoline, . - nix_ld_trampoline",
    resume = sym crate::entry::resume,
);

// Addresses of the trampoline and of the image's end (`__nix_ld_end` in `linker.ld`), from the
// program counter: functions of their own, so each is one `call`. In AT&T syntax: LLVM's Intel
// syntax takes no difference of two labels as an immediate.
global_asm!(
    ".type nix_ld_trampoline_address,@function",
    "nix_ld_trampoline_address:",
    "call 2f",
    "2:",
    "popl %eax",
    "addl $nix_ld_trampoline - 2b, %eax",
    "ret",
    ".size nix_ld_trampoline_address, . - nix_ld_trampoline_address",
    ".type nix_ld_image_end,@function",
    "nix_ld_image_end:",
    "call 2f",
    "2:",
    "popl %eax",
    "addl $__nix_ld_end - 2b, %eax",
    "ret",
    ".size nix_ld_image_end, . - nix_ld_image_end",
    options(att_syntax),
);

/// Address of the entry trampoline (a stored address would need relocating).
pub fn trampoline_address() -> usize {
    let address: usize;
    // SAFETY: the helper only computes an address; it writes eax, the flags (`add`) and the stack
    // below `esp` (the return address).
    unsafe { asm!("call nix_ld_trampoline_address", out("eax") address, options(pure, nomem)) };
    address
}

/// The end of the shim's own image.
pub fn image_end() -> usize {
    let address: usize;
    // SAFETY: as for `trampoline_address`.
    unsafe { asm!("call nix_ld_image_end", out("eax") address, options(pure, nomem)) };
    address
}

// Where the shim leaves for ld.so (a global name, as on x86-64, for the linker script's
// `.nix-ld.hooks`): `esp` becomes the argument block, and `edx` = 0 tells ld.so there is no
// finaliser to register.
global_asm!(
    ".globl nix_ld_enter_loader",
    ".type nix_ld_enter_loader,@function",
    "nix_ld_enter_loader:",
    "mov esp, ecx",
    "xor ebp, ebp",
    "xor edx, edx",
    "jmp eax",
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
    unsafe { asm!("jmp nix_ld_enter_loader", in("eax") entry, in("ecx") sp, options(noreturn)) }
}

/// Calls `f(arg)` on a stack that starts at `stack_top`, or at the current stack pointer if that
/// is lower, never returning (see x86-64's for why the lower).
///
/// # Safety
/// As on x86-64.
pub unsafe fn run_on_stack(stack_top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: per the caller's guarantees; `esp` is 16-byte aligned at the call.
    unsafe {
        asm!(
            "cmp {top}, esp",
            "cmova {top}, esp",
            "and {top}, -16",
            "mov esp, {top}",
            "xor ebp, ebp",
            "sub esp, 12",
            "push {arg}",
            "call {f}",
            "ud2",
            top = in(reg) stack_top,
            f = in(reg) f,
            arg = in(reg) arg,
            options(noreturn),
        )
    }
}

/// `int 0x80` with up to three arguments.
///
/// # Safety
/// The caller must pass arguments that are valid for the system call `nr`, in particular pointers
/// to memory of the size the call reads or writes.
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the instruction writes only eax; memory effects are the caller's.
    unsafe {
        asm!("int 0x80", inlateout("eax") nr as isize => ret, in("ebx") a, in("ecx") b, in("edx") c, options(nostack, preserves_flags))
    };
    ret
}

/// `int 0x80` with four arguments: the fourth goes in `esi`, swapped in and out around the call.
///
/// # Safety
/// As for [`syscall3`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: as for `syscall3`; `esi` holds its own value again afterwards.
    unsafe {
        asm!(
            "xchg esi, edi",
            "int 0x80",
            "xchg esi, edi",
            inlateout("eax") nr as isize => ret,
            in("ebx") a,
            in("ecx") b,
            in("edx") c,
            in("edi") d,
            options(nostack, preserves_flags)
        )
    };
    ret
}

/// Ends the process without returning.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group takes no pointer and does not return.
    unsafe {
        asm!("int 0x80", in("eax") linux_raw_sys::general::__NR_exit_group as usize, in("ebx") status as isize, options(noreturn, nostack));
    }
}

/// Stops the process with SIGILL: for states that no input can produce.
pub fn trap() -> ! {
    // SAFETY: ud2 raises SIGILL and never falls through.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}

/// The system calls whose number or argument shape differs between architectures: i386 has the
/// 64-bit-size `stat64` calls, `mmap2` (offset in 4 KiB units) and a `pread64` whose offset
/// takes two registers.
pub mod calls {
    use core::arch::asm;
    use linux_raw_sys::general as k;

    pub const FSTAT: usize = k::__NR_fstat64 as usize;
    pub const FSTATAT: usize = k::__NR_fstatat64 as usize;
    /// The `struct stat64` those two fill in.
    pub type Stat = k::stat64;

    /// `mmap2(2)`, raw (`offset` is page-aligned).
    ///
    /// # Safety
    /// As for `sys::mmap`.
    #[inline(always)]
    pub unsafe fn mmap(addr: usize, len: usize, prot: usize, flags: usize, fd: usize, offset: u64) -> isize {
        // esi, edi and ebp, from memory: see the module's Safety.
        let rest = [flags, fd, (offset / 4096) as usize];
        let ret: isize;
        // SAFETY: per the caller; `rest` lives across the call, and esi and ebp are restored.
        unsafe {
            asm!(
                "push ebp",
                "push esi",
                "mov esi, [edi]",
                "mov ebp, [edi + 8]",
                "mov edi, [edi + 4]",
                "int 0x80",
                "pop esi",
                "pop ebp",
                inlateout("eax") k::__NR_mmap2 as isize => ret,
                in("ebx") addr,
                in("ecx") len,
                in("edx") prot,
                inout("edi") rest.as_ptr() => _,
                options(preserves_flags)
            )
        };
        ret
    }

    /// `pread64(2)`, raw.
    ///
    /// # Safety
    /// `buf` must be writable for `len` bytes.
    #[inline(always)]
    pub unsafe fn pread(fd: usize, buf: usize, len: usize, offset: u64) -> isize {
        let halves = [offset as usize, (offset >> 32) as usize];
        let ret: isize;
        // SAFETY: per the caller; `halves` lives across the call, and esi is restored.
        unsafe {
            asm!(
                "push esi",
                "mov esi, [edi]",
                "mov edi, [edi + 4]",
                "int 0x80",
                "pop esi",
                inlateout("eax") k::__NR_pread64 as isize => ret,
                in("ebx") fd,
                in("ecx") buf,
                in("edx") len,
                inout("edi") halves.as_ptr() => _,
                options(preserves_flags)
            )
        };
        ret
    }
}
