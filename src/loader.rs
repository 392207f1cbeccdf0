//! Opening, checking and mapping the real loader (glibc's ld.so).
//!
//! # Safety
//!
//! Mapping uses `MAP_FIXED` only inside a reservation this module has just made with `mmap`, so it
//! never replaces memory anything else uses. Segments are mapped with their own permissions; one
//! that ends in a partial page of bss is mapped writable just long enough to zero that page, and
//! never writable and executable at once.

use core::mem::MaybeUninit;

use nix_ld::elf::{self, LoadPlan, PF_R, PF_W, PF_X, PAGE};
use nix_ld::log::Level;
use nix_ld::problem::{Problem, PATH_MAX};

use linux_raw_sys::general as k;

use crate::report;
use crate::sys::{self, Errno, Fd};

/// The loader, mapped.
pub struct Mapped {
    /// Load bias: what AT_BASE tells the loader.
    pub base: usize,
    pub entry: usize,
    /// Address of its program headers, for AT_PHDR when it runs as the program itself.
    pub phdr: Option<usize>,
    pub phnum: u16,
}

/// Copies `path` into `buf` with a NUL, as open(2) needs. The buffer is left uninitialised
/// beyond the path: zeroing 4 KiB would cost more than everything else the shim does.
pub fn c_path<'b>(path: &[u8], buf: &'b mut MaybeUninit<[u8; PATH_MAX]>) -> Result<&'b [u8], Problem> {
    if path.is_empty() {
        return Err(Problem::NotConfigured);
    }
    if path.len() >= PATH_MAX || path.contains(&0) {
        return Err(Problem::PathTooLong);
    }
    let start = buf.as_mut_ptr() as *mut u8;
    // SAFETY: `path.len() + 1 <= PATH_MAX` bytes of the buffer are written, then exactly those are
    // viewed as initialised.
    unsafe {
        core::ptr::copy_nonoverlapping(path.as_ptr(), start, path.len());
        start.add(path.len()).write(0);
        Ok(core::slice::from_raw_parts(start, path.len() + 1))
    }
}

/// Opens `path` and checks that it is a loader the shim can map.
pub fn inspect(path: &[u8], plan: &mut LoadPlan) -> Result<Fd, Problem> {
    let mut buf = MaybeUninit::uninit();
    let fd = sys::open_read(c_path(path, &mut buf)?).map_err(|Errno(e)| Problem::Open(e))?;
    let info = sys::fstat(&fd).map_err(|Errno(e)| Problem::Read(e))?;
    match info.mode & k::S_IFMT {
        k::S_IFREG => {}
        k::S_IFDIR => return Err(Problem::Directory),
        _ => return Err(Problem::NotRegularFile),
    }
    let mut head = MaybeUninit::<[u8; elf::HEAD_LEN]>::uninit();
    let head = sys::pread_into(&fd, &mut head, 0).map_err(|Errno(e)| Problem::Read(e))?;
    *plan = elf::validate(head, info.size).map_err(Problem::Elf)?;
    Ok(fd)
}

fn prot(flags: u32) -> u32 {
    let mut prot = k::PROT_NONE;
    if flags & PF_R != 0 {
        prot |= k::PROT_READ;
    }
    if flags & PF_W != 0 {
        prot |= k::PROT_WRITE;
    }
    if flags & PF_X != 0 {
        prot |= k::PROT_EXEC;
    }
    prot
}

/// Opens, checks and maps the loader at `path`. The file is closed again before this returns.
pub fn load(path: &[u8]) -> Result<Mapped, Problem> {
    let mut plan = LoadPlan::EMPTY;
    let fd = inspect(path, &mut plan)?;
    let span = plan.span as usize;
    // SAFETY: a fresh anonymous reservation, not MAP_FIXED: it takes nothing from anyone.
    let reservation = unsafe {
        sys::mmap(0, span, k::PROT_NONE, k::MAP_PRIVATE | k::MAP_ANONYMOUS, -1, 0)
    }
    .map_err(|Errno(e)| Problem::Map(e))?;
    let bias = reservation.wrapping_sub(plan.first_page as usize);
    for segment in plan.segments() {
        if let Err(Errno(e)) = map_segment(&fd, bias, segment) {
            // SAFETY: the reservation is ours and nothing in it has been used.
            unsafe { sys::munmap(reservation, span) };
            return Err(Problem::Map(e));
        }
    }
    Ok(Mapped {
        base: bias,
        entry: bias.wrapping_add(plan.entry as usize),
        phdr: plan.phdr_vaddr.map(|v| bias.wrapping_add(v as usize)),
        phnum: plan.phnum,
    })
}

fn map_segment(fd: &Fd, bias: usize, s: &elf::Segment) -> Result<(), Errno> {
    let prot = prot(s.flags);
    let start = elf::page_down(s.vaddr);
    let file_end = s.vaddr + s.filesz;
    // validate() bounded vaddr + memsz, so these cannot overflow.
    let mem_end = elf::page_up(s.vaddr + s.memsz).unwrap_or(u64::MAX);
    let mut anon_start = start;
    if s.filesz > 0 {
        let file_page_end = elf::page_up(file_end).unwrap_or(u64::MAX);
        let partial_bss = s.memsz > s.filesz && !file_end.is_multiple_of(PAGE);
        let first_prot = if partial_bss { k::PROT_READ | k::PROT_WRITE } else { prot };
        let len = (file_page_end - start) as usize;
        // SAFETY: inside the reservation made by `load`.
        unsafe {
            sys::mmap(bias + start as usize, len, first_prot, k::MAP_PRIVATE | k::MAP_FIXED, fd.raw(), elf::page_down(s.offset))?;
        }
        if partial_bss {
            // The rest of the last file page holds whatever follows in the file; bss must be zero.
            let zero_len = (file_page_end - file_end) as usize;
            // SAFETY: the page was just mapped readable and writable, and is ours alone.
            unsafe { core::ptr::write_bytes((bias + file_end as usize) as *mut u8, 0, zero_len) };
            if first_prot != prot {
                // SAFETY: our own fresh mapping; nothing depends on its permissions yet.
                unsafe { sys::mprotect(bias + start as usize, len, prot)? };
            }
        }
        anon_start = file_page_end;
        trace(b"mapped file ", bias + start as usize, len, prot);
    }
    if mem_end > anon_start {
        let len = (mem_end - anon_start) as usize;
        let flags = k::MAP_PRIVATE | k::MAP_FIXED | k::MAP_ANONYMOUS;
        // SAFETY: inside the reservation made by `load`.
        unsafe { sys::mmap(bias + anon_start as usize, len, prot, flags, -1, 0)? };
        trace(b"mapped zero ", bias + anon_start as usize, len, prot);
    }
    Ok(())
}

fn trace(what: &[u8], addr: usize, len: usize, prot: u32) {
    if let Some(mut m) = report::line(Level::Trace) {
        m.bytes(what).hex(addr as u64).bytes(b"+").hex(len as u64).bytes(b" prot ").dec(prot as u64);
        m.end();
    }
}
