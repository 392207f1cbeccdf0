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
use nix_ld::problem::Problem;

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

/// `path` as open(2) takes it. `path` holds no NUL: it comes from the environment or from the
/// defaults, checked at build time.
fn c_path<'b>(path: &[u8], buf: &'b mut sys::PathBuf) -> Result<&'b [u8], Problem> {
    if path.is_empty() {
        return Err(Problem::NotConfigured);
    }
    sys::c_string(path, b"", buf).ok_or(Problem::PathTooLong)
}

/// The first bytes of the loader's file, where its headers are.
pub type Head = MaybeUninit<[u8; elf::HEAD_LEN]>;

/// Opens `path` and checks that it is a loader the shim can map. The plan points into `head`.
pub fn inspect<'h>(path: &[u8], head: &'h mut Head) -> Result<(Fd, LoadPlan<'h>), Problem> {
    let fd = sys::open_read(c_path(path, &mut sys::PathBuf::uninit())?).map_err(|Errno(e)| Problem::Open(e))?;
    let info = sys::fstat(&fd).map_err(|Errno(e)| Problem::Read(e))?;
    match info.mode & k::S_IFMT {
        k::S_IFREG => {}
        k::S_IFDIR => return Err(Problem::Directory),
        _ => return Err(Problem::NotRegularFile),
    }
    let head = sys::pread_into(&fd, head, 0).map_err(|Errno(e)| Problem::Read(e))?;
    let plan = elf::validate(head, info.size).map_err(Problem::Elf)?;
    Ok((fd, plan))
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
    let mut head = Head::uninit();
    let (fd, plan) = inspect(path, &mut head)?;
    let span = plan.span as usize;
    // SAFETY: a fresh anonymous reservation, not MAP_FIXED: it takes nothing from anyone.
    let reservation = unsafe {
        sys::mmap(0, span, k::PROT_NONE, k::MAP_PRIVATE | k::MAP_ANONYMOUS, -1, 0)
    }
    .map_err(|Errno(e)| Problem::Map(e))?;
    let bias = reservation.wrapping_sub(plan.first_page as usize);
    for segment in plan.segments() {
        if let Err(Errno(e)) = map_segment(&fd, bias, &segment) {
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

/// Maps one segment at `bias`. Whole pages of file content are mapped from the file. A last page
/// that is part file, part bss is an anonymous page with the file's bytes read into it: the rest of
/// it must be zero, and reading is cheaper than mapping the file page and clearing its tail.
fn map_segment(fd: &Fd, bias: usize, s: &elf::Segment) -> Result<(), Errno> {
    let prot = prot(s.flags);
    let start = elf::page_down(s.vaddr);
    let file_end = s.vaddr + s.filesz;
    // validate() bounded vaddr + memsz, so these cannot overflow.
    let mem_end = elf::page_up(s.vaddr + s.memsz).unwrap_or(u64::MAX);
    let partial_page = s.filesz > 0 && s.memsz > s.filesz && !file_end.is_multiple_of(PAGE);
    let file_pages_end = if partial_page { elf::page_down(file_end) } else { elf::page_up(file_end).unwrap_or(u64::MAX) };
    if s.filesz > 0 && file_pages_end > start {
        let len = (file_pages_end - start) as usize;
        // SAFETY: inside the reservation made by `load`.
        unsafe {
            sys::mmap(bias + start as usize, len, prot, k::MAP_PRIVATE | k::MAP_FIXED, fd.raw(), elf::page_down(s.offset))?;
        }
        trace(b"mapped file ", bias + start as usize, len, prot);
    }
    let anon_start = file_pages_end.max(start);
    if mem_end > anon_start {
        let len = (mem_end - anon_start) as usize;
        let at = bias + anon_start as usize;
        let flags = k::MAP_PRIVATE | k::MAP_FIXED | k::MAP_ANONYMOUS;
        let first_prot = if partial_page { prot | k::PROT_WRITE } else { prot };
        // SAFETY: inside the reservation made by `load`.
        unsafe { sys::mmap(at, len, first_prot, flags, -1, 0)? };
        trace(b"mapped zero ", at, len, prot);
        if partial_page {
            let want = (file_end - anon_start) as usize;
            // The page holds file bytes from its start, as a file mapping of it would.
            let offset = elf::page_down(s.offset) + (anon_start - start);
            // SAFETY: the page was just mapped writable and is ours alone; `want` < PAGE.
            if unsafe { sys::pread(fd, at as *mut u8, want, offset)? } != want {
                // The file shrank since it was checked.
                return Err(Errno(linux_raw_sys::errno::EIO as i32));
            }
            trace(b"read file ", at, want, prot);
            if first_prot != prot {
                // SAFETY: our own fresh mapping; nothing depends on its permissions yet.
                unsafe { sys::mprotect(at, len, prot)? };
            }
        }
    }
    Ok(())
}

/// Logs a mapping at trace level. The level test is inlined at each call, so logging that is off
/// costs a comparison.
#[inline(always)]
fn trace(what: &[u8], addr: usize, len: usize, prot: u32) {
    if report::enabled(Level::Trace) {
        trace_mapping(what, addr, len, prot);
    }
}

#[inline(never)]
fn trace_mapping(what: &[u8], addr: usize, len: usize, prot: u32) {
    if let Some(mut m) = report::line(Level::Trace) {
        m.bytes(what).hex(addr as u64).bytes(b"+").hex(len as u64).bytes(b" prot ").dec(prot as u64);
        m.end();
    }
}
