//! The system calls the shim makes, as small typed wrappers over `arch::syscall3`, `syscall4` and
//! `arch::calls` (the calls whose shape differs between architectures).
//!
//! # Safety
//!
//! Each wrapper passes the kernel only pointers derived from Rust references of the right size,
//! so the safe signatures hold; `mmap`-family calls, which change the address space, stay `unsafe`
//! and state what the caller must guarantee.

use linux_raw_sys::errno::EINTR;
use linux_raw_sys::general as k;

use nix_ld::problem::PATH_MAX;

use crate::arch::calls::{self, Stat};
use crate::arch::{syscall3, syscall4};
use crate::mem;

use core::marker::PhantomData;
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
        unsafe { syscall3(k::__NR_close as usize, self.0 as usize, 0, 0) };
    }
}

/// A path followed by its NUL, as the kernel takes it, borrowed for `'a`. Only [`with_c_path`]
/// makes one.
#[derive(Clone, Copy)]
pub struct CPath<'a>(*const u8, PhantomData<&'a [u8]>);

/// Opens `path` read-only. `O_NONBLOCK` keeps a FIFO from hanging the open. `None` if the path
/// does not fit in PATH_MAX.
///
/// # Safety
/// As for [`with_c_path`]: the byte after `path` must be readable.
pub unsafe fn open_read(path: &[u8]) -> Option<Result<Fd, Errno>> {
    // SAFETY: forwarded to the caller.
    unsafe { with_c_path(path, openat_read) }.map(|ret| result(ret).map(|fd| Fd(fd as i32)))
}

fn openat_read(path: CPath<'_>) -> isize {
    let flags = k::O_RDONLY | k::O_CLOEXEC | k::O_NOCTTY | k::O_NONBLOCK;
    // SAFETY: `path` is NUL-terminated (CPath).
    unsafe { syscall3(k::__NR_openat as usize, k::AT_FDCWD as isize as usize, path.0 as usize, flags as usize) }
}

/// The type bits and size of an open file.
pub struct FileInfo {
    pub mode: u32,
    pub size: u64,
}

pub fn fstat(fd: &Fd) -> Result<FileInfo, Errno> {
    // Left uninitialised: zeroing it first costs more than the call's own user-space work.
    let mut st = core::mem::MaybeUninit::<Stat>::uninit();
    // SAFETY: `st` is a writable `struct stat`, the size fstat writes.
    let ret = unsafe { syscall3(calls::FSTAT, fd.0 as usize, st.as_mut_ptr() as usize, 0) };
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
        let ret = unsafe { calls::pread(fd.0 as usize, buf.add(done) as usize, len - done, at + done as u64) };
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
        let ret = unsafe { syscall3(k::__NR_write as usize, fd as usize, bytes.as_ptr() as usize, bytes.len()) };
        match result(ret) {
            Ok(n) if n > 0 => bytes = &bytes[n..],
            Err(Errno(e)) if e == EINTR as i32 => {}
            _ => return,
        }
    }
}

/// Paths shorter than this are copied to a buffer of this size; longer ones to one of PATH_MAX.
/// Each 4 KiB of stack the shim touches below the kernel's argument block is a page fault that
/// ld.so might not have taken (about 4 us on the CI machine), and real paths are short.
const SHORT_PATH: usize = 256;

/// Calls `f` with `path` NUL-terminated: in place when the byte after it is already a NUL (a value
/// from the kernel's block or a compiled-in default, see `plan::choose`), else a copy. `None`
/// (without calling `f`) if a copy is needed and does not fit in PATH_MAX. `f` is a plain function
/// returning a raw result, so that every caller shares one [`with_long_c_path`].
///
/// # Safety
/// The byte just after `path` must be readable: part of the same allocation.
#[inline(always)]
unsafe fn with_c_path(path: &[u8], f: fn(CPath<'_>) -> isize) -> Option<isize> {
    // SAFETY: per the function's contract, the byte after `path` is part of its allocation.
    if unsafe { path.as_ptr().add(path.len()).read() } == 0 {
        // `path` and the NUL after it are a C string already.
        return Some(f(CPath(path.as_ptr(), PhantomData)));
    }
    with_copied_c_path(path, f)
}

/// The copying half of [`with_c_path`], out of line: only a path without a NUL after it (a
/// component of a search path with several directories, a loader with a trailing newline) needs
/// it, and one copy of it serves every system call.
#[inline(never)]
fn with_copied_c_path(path: &[u8], f: fn(CPath<'_>) -> isize) -> Option<isize> {
    if path.len() < SHORT_PATH {
        Some(f(terminated::<SHORT_PATH>(path, &mut MaybeUninit::uninit())))
    } else if path.len() < PATH_MAX {
        with_long_c_path(path, f)
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn with_long_c_path(path: &[u8], f: fn(CPath<'_>) -> isize) -> Option<isize> {
    Some(f(terminated::<PATH_MAX>(path, &mut MaybeUninit::uninit())))
}

/// Copies `path` (shorter than `N`) and a NUL into `buf`. The rest of the buffer stays
/// uninitialised: zeroing it would cost more than the system call it is for.
#[inline(always)]
fn terminated<'b, const N: usize>(path: &[u8], buf: &'b mut MaybeUninit<[u8; N]>) -> CPath<'b> {
    assert!(path.len() < N);
    let start = buf.as_mut_ptr() as *mut u8;
    // SAFETY: `path.len() < N`, so the copy and its NUL stay inside the buffer.
    unsafe {
        mem::copy_bytes(start, path.as_ptr(), path.len());
        start.add(path.len()).write(0);
    }
    CPath(start, PhantomData)
}

/// Whether `dir` names a directory (or a symbolic link to one); a path too long to ask about counts
/// as absent, as it would for ld.so.
///
/// # Safety
/// As for [`with_c_path`]: the byte after `dir` must be readable.
pub unsafe fn is_directory(dir: &[u8]) -> bool {
    // SAFETY: forwarded to the caller.
    unsafe { with_c_path(dir, stat_is_directory) }.is_some_and(|is| is != 0)
}

/// 1 if `path` names a directory, else 0.
fn stat_is_directory(path: CPath<'_>) -> isize {
    // Left uninitialised, as in `fstat`.
    let mut st = MaybeUninit::<Stat>::uninit();
    // SAFETY: `path` is NUL-terminated (CPath) and `st` is a writable `struct stat`.
    let ret = unsafe {
        syscall4(calls::FSTATAT, k::AT_FDCWD as isize as usize, path.0 as usize, st.as_mut_ptr() as usize, 0)
    };
    // SAFETY: on success the kernel filled in the whole struct.
    (result(ret).is_ok() && unsafe { st.assume_init_ref() }.st_mode & k::S_IFMT == k::S_IFDIR) as isize
}

/// `mmap(2)`.
///
/// # Safety
/// With `MAP_FIXED`, the range must not hold anything still in use.
pub unsafe fn mmap(addr: usize, len: usize, prot: u32, flags: u32, fd: i32, offset: u64) -> Result<usize, Errno> {
    // SAFETY: forwarded to the caller.
    result(unsafe { calls::mmap(addr, len, prot as usize, flags as usize, fd as isize as usize, offset) })
}

/// `mprotect(2)`.
///
/// # Safety
/// Nothing may rely on the old protection of the range.
pub unsafe fn mprotect(addr: usize, len: usize, prot: u32) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    result(unsafe { syscall3(k::__NR_mprotect as usize, addr, len, prot as usize) }).map(|_| ())
}

/// `munmap(2)`.
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(addr: usize, len: usize) {
    // SAFETY: forwarded to the caller.
    unsafe { syscall3(k::__NR_munmap as usize, addr, len, 0) };
}
