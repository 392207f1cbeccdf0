//! The system calls whose number or argument shape differs between architectures, as the 64-bit
//! ones (x86_64, aarch64, riscv64) share them: `fstat`/`newfstatat` with the kernel's `struct
//! stat`, and `mmap`/`pread64` with a 64-bit offset in one register. `x86.rs` has its own.
//!
//! # Safety
//! Each function forwards its arguments to the architecture's `syscallN`; its contract is the
//! system call's, stated on each.
use linux_raw_sys::general as k;

pub const FSTAT: usize = k::__NR_fstat as usize;
pub const FSTATAT: usize = k::__NR_newfstatat as usize;
/// The `struct stat` those two fill in.
pub type Stat = k::stat;

/// `mmap(2)`, raw.
///
/// # Safety
/// As for `sys::mmap`.
#[inline(always)]
pub unsafe fn mmap(addr: usize, len: usize, prot: usize, flags: usize, fd: usize, offset: u64) -> isize {
    // SAFETY: forwarded to the caller.
    unsafe { super::syscall6(k::__NR_mmap as usize, addr, len, prot, flags, fd, offset as usize) }
}

/// `pread64(2)`, raw.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[inline(always)]
pub unsafe fn pread(fd: usize, buf: usize, len: usize, offset: u64) -> isize {
    // SAFETY: forwarded to the caller.
    unsafe { super::syscall4(k::__NR_pread64 as usize, fd, buf, len, offset as usize) }
}
