//! The system calls the shim makes, as small typed wrappers over `arch::syscall6`.
//!
//! # Safety
//!
//! Each wrapper passes the kernel only pointers derived from Rust references of the right size,
//! so the safe signatures hold; `mmap`-family calls, which change the address space, stay `unsafe`
//! and state what the caller must guarantee.

use linux_raw_sys::errno::{EINTR, EINVAL};
use linux_raw_sys::general as k;

use nix_ld::problem::PATH_MAX;

use crate::arch::syscall6;
use crate::mem;

use core::mem::MaybeUninit;

/// A failed system call: the kernel's errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

fn result(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// An open file descriptor, closed when dropped.
pub struct Fd(i32);

impl Fd {
    pub fn raw(&self) -> i32 {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: close takes no pointer; the descriptor is ours and closed exactly once.
        unsafe { syscall6(k::__NR_close as usize, self.0 as usize, 0, 0, 0, 0, 0) };
    }
}

/// Opens `path` (NUL-terminated) read-only. `O_NONBLOCK` keeps a FIFO from hanging the open.
pub fn open_read(path: &[u8]) -> Result<Fd, Errno> {
    if path.last() != Some(&0) {
        return Err(Errno(EINVAL as i32));
    }
    let flags = k::O_RDONLY | k::O_CLOEXEC | k::O_NOCTTY | k::O_NONBLOCK;
    // SAFETY: `path` is NUL-terminated, checked above.
    let ret = unsafe { syscall6(k::__NR_openat as usize, k::AT_FDCWD as isize as usize, path.as_ptr() as usize, flags as usize, 0, 0, 0) };
    result(ret).map(|fd| Fd(fd as i32))
}

/// The type bits and size of an open file.
pub struct FileInfo {
    pub mode: u32,
    pub size: u64,
}

pub fn fstat(fd: &Fd) -> Result<FileInfo, Errno> {
    // Left uninitialised: zeroing it first costs more than the call's own user-space work.
    let mut st = core::mem::MaybeUninit::<k::stat>::uninit();
    // SAFETY: `st` is a writable `struct stat`, the size fstat writes.
    let ret = unsafe { syscall6(k::__NR_fstat as usize, fd.0 as usize, st.as_mut_ptr() as usize, 0, 0, 0, 0) };
    result(ret)?;
    // SAFETY: fstat succeeded, so the kernel filled in the whole struct.
    let st = unsafe { st.assume_init_ref() };
    Ok(FileInfo { mode: st.st_mode, size: st.st_size as u64 })
}

/// Reads from offset `at` into `buf` until it is full or the file ends, and returns the part read.
/// The rest of `buf` stays uninitialised: nothing needs it zeroed.
pub fn pread_into<'b>(fd: &Fd, buf: &'b mut [MaybeUninit<u8>], at: u64) -> Result<&'b [u8], Errno> {
    let start = buf.as_mut_ptr() as *mut u8;
    // SAFETY: the buffer is writable for its length; the first `done` bytes are then initialised.
    unsafe {
        let done = pread(fd, start, buf.len(), at)?;
        Ok(core::slice::from_raw_parts(start, done))
    }
}

/// Reads from offset `at` into the `len` bytes at `buf` until they are full or the file ends, and
/// returns how many were read.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
pub unsafe fn pread(fd: &Fd, buf: *mut u8, len: usize, at: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < len {
        // SAFETY: the kernel writes at most `len - done` bytes at `buf + done`, inside the buffer.
        let ret = unsafe { syscall6(k::__NR_pread64 as usize, fd.0 as usize, buf.add(done) as usize, len - done, (at + done as u64) as usize, 0, 0) };
        match result(ret) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno(e)) if e == EINTR as i32 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `bytes` to `fd`, giving up silently on error: there is nowhere to report it.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for its length.
        let ret = unsafe { syscall6(k::__NR_write as usize, fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0) };
        match result(ret) {
            Ok(n) if n > 0 => bytes = &bytes[n..],
            Err(Errno(e)) if e == EINTR as i32 => {}
            _ => return,
        }
    }
}

/// Whether `path` (NUL-terminated) names an existing file.
pub fn exists(path: &[u8]) -> bool {
    if path.last() != Some(&0) {
        return false;
    }
    // SAFETY: `path` is NUL-terminated, checked above.
    let ret = unsafe { syscall6(k::__NR_faccessat as usize, k::AT_FDCWD as isize as usize, path.as_ptr() as usize, k::F_OK as usize, 0, 0, 0) };
    ret == 0
}

/// Paths shorter than this are joined in a buffer of this size; longer ones in one of PATH_MAX.
/// Each 4 KiB of stack the shim touches below the kernel's argument block is a page fault that
/// ld.so might not have taken (about 4 us on the CI machine), and real paths are short.
const SHORT_PATH: usize = 256;

/// Calls `f` with `parts` joined and NUL-terminated, as the kernel takes a path; `None` (without
/// calling `f`) if that does not fit in PATH_MAX.
#[inline(always)]
pub fn with_c_string<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let len = parts.iter().fold(0usize, |sum, part| sum.saturating_add(part.len()));
    if len < SHORT_PATH {
        Some(f(join::<SHORT_PATH>(parts, len, &mut MaybeUninit::uninit())))
    } else if len < PATH_MAX {
        with_long_c_string(parts, len, f)
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn with_long_c_string<R>(parts: &[&[u8]], len: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    Some(f(join::<PATH_MAX>(parts, len, &mut MaybeUninit::uninit())))
}

/// Joins `parts`, `len` bytes in all (`len < N`), and a NUL into `buf`. The rest of the buffer
/// stays uninitialised: zeroing it would cost more than the system call it is for.
#[inline(always)]
fn join<'b, const N: usize>(parts: &[&[u8]], len: usize, buf: &'b mut MaybeUninit<[u8; N]>) -> &'b [u8] {
    assert!(len < N);
    let start = buf.as_mut_ptr() as *mut u8;
    let mut at = 0;
    for part in parts {
        // SAFETY: the parts add up to `len < N` bytes, so every copy stays inside the buffer.
        unsafe { mem::copy_bytes(start.add(at), part.as_ptr(), part.len()) };
        at += part.len();
    }
    // SAFETY: `at == len < N`; bytes `..=len` have been written, and exactly those are viewed as
    // initialised.
    unsafe {
        start.add(at).write(0);
        core::slice::from_raw_parts(start, at + 1)
    }
}

/// Whether `dir` names a directory (or a symbolic link to one). The check asks for `dir/`, which
/// only a directory satisfies; a path too long to ask about counts as absent, as it would for ld.so.
pub fn is_directory(dir: &[u8]) -> bool {
    with_c_string(&[dir, b"/"], exists).unwrap_or(false)
}

/// `mmap(2)`.
///
/// # Safety
/// With `MAP_FIXED`, the range must not hold anything still in use.
pub unsafe fn mmap(addr: usize, len: usize, prot: u32, flags: u32, fd: i32, offset: u64) -> Result<usize, Errno> {
    // SAFETY: forwarded to the caller.
    result(unsafe { syscall6(k::__NR_mmap as usize, addr, len, prot as usize, flags as usize, fd as isize as usize, offset as usize) })
}

/// `mprotect(2)`.
///
/// # Safety
/// Nothing may rely on the old protection of the range.
pub unsafe fn mprotect(addr: usize, len: usize, prot: u32) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    result(unsafe { syscall6(k::__NR_mprotect as usize, addr, len, prot as usize, 0, 0, 0) }).map(|_| ())
}

/// `munmap(2)`.
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(addr: usize, len: usize) {
    // SAFETY: forwarded to the caller.
    unsafe { syscall6(k::__NR_munmap as usize, addr, len, 0, 0, 0, 0) };
}
