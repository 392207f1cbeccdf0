//! Opening, checking and mapping the real loader (glibc's ld.so).
//!
//! # Safety
//!
//! The kernel picks the address: one `mmap` reserves the loader's whole span, mapping the first
//! segment's file pages at its start. The rest of the span is unmapped again at once, and every
//! other segment is mapped there with `MAP_FIXED`, into address space this module owns and has just
//! emptied while the process has one thread: nothing else can be there, so nothing is replaced.
//! (Mapping over a reservation instead costs about 1 us more per segment on the CI machine: the
//! kernel must take the reserved pages apart first. The kernel's own ELF loader also unmaps first.)
//! Holes between segments stay unmapped, so no page keeps the reservation's view of the file. A
//! segment that ends in a partial page of bss is mapped writable just long enough to zero that
//! page, and never writable and executable at once.

use core::mem::MaybeUninit;

use nix_ld::elf::{self, LoadPlan, Pages as _, PF_R, PF_W, PF_X};
use nix_ld::log::Level;
use nix_ld::problem::{Problem, PATH_MAX};
use nix_ld::target::{self, Pages};

use linux_raw_sys::general as k;

use crate::mem;
use crate::report::Log;
use crate::sys::{self, Errno, Fd};

/// The loader, mapped.
pub struct Mapped {
    /// Load bias: what AT_BASE tells the loader.
    pub base: usize,
    pub entry: usize,
    /// Address of its program headers, for AT_PHDR when it runs as the program itself (found only
    /// then).
    pub phdr: Option<usize>,
    pub phnum: u16,
}

/// How much of the loader's file is read for its headers at first: glibc's loader has its program
/// headers in its first 700 bytes. Only when they lie further are the [`elf::HEAD_LEN`] bytes that
/// `validate` accepts read. Each 4 KiB of stack touched is a page fault.
const SHORT_HEAD: usize = 1024;

/// Opens `path` and checks that it is a loader the shim can map, reading its headers into `head`
/// (up to its length). The plan points into `head`.
///
/// # Safety
/// The byte after `path` must be readable (see `sys::open_read`).
pub unsafe fn inspect<'h>(
    path: &[u8],
    head: &'h mut [MaybeUninit<u8>],
    pages: Pages,
) -> Result<(Fd, LoadPlan<'h>), Problem> {
    if path.is_empty() {
        return Err(Problem::NotConfigured);
    }
    // The kernel would refuse it too, but less clearly (ENAMETOOLONG also means a long component).
    if path.len() >= PATH_MAX {
        return Err(Problem::PathTooLong);
    }
    // SAFETY: per the function's contract.
    let fd = unsafe { sys::open_read(path) }.ok_or(Problem::PathTooLong)?.map_err(|Errno(e)| Problem::Open(e))?;
    let info = sys::fstat(&fd).map_err(|Errno(e)| Problem::Read(e))?;
    match info.mode & k::S_IFMT {
        k::S_IFREG => {}
        k::S_IFDIR => return Err(Problem::Directory),
        _ => return Err(Problem::NotRegularFile),
    }
    let head = sys::pread_into(&fd, head, 0).map_err(|Errno(e)| Problem::Read(e))?;
    let plan = elf::validate_for(head, info.size, target::MACHINE, pages).map_err(Problem::Elf)?;
    Ok((fd, plan))
}

/// The mmap protection for ELF segment flags (`Segment::flags` holds only PF_R, PF_W and PF_X), by
/// table: a load, where reversing the three bits takes seven instructions at every use.
#[inline(always)]
fn prot(flags: u32) -> u32 {
    const PROT_OF_FLAGS: [u8; 8] = {
        let mut table = [0u8; 8];
        let mut flags = 0;
        while flags < 8 {
            let mut prot = 0;
            if flags & PF_R != 0 {
                prot |= k::PROT_READ;
            }
            if flags & PF_W != 0 {
                prot |= k::PROT_WRITE;
            }
            if flags & PF_X != 0 {
                prot |= k::PROT_EXEC;
            }
            table[flags as usize] = prot as u8;
            flags += 1;
        }
        table
    };
    PROT_OF_FLAGS[(flags & 7) as usize] as u32
}

/// Opens, checks and maps the loader at `path`. The file is closed again before this returns.
/// `as_program`: ld.so will run as the program itself, so it needs to know where its program
/// headers are ([`Mapped::phdr`]).
///
/// # Safety
/// The byte after `path` must be readable (see `sys::open_read`).
pub unsafe fn load(path: &[u8], log: Log, as_program: bool, pages: Pages) -> Result<Mapped, Problem> {
    // SAFETY (both calls): per the function's contract.
    match unsafe { inspect(path, &mut [MaybeUninit::uninit(); SHORT_HEAD], pages) } {
        Ok((fd, plan)) => map(&fd, &plan, log, as_program),
        Err(Problem::Elf(elf::ElfError::ProgramHeadersTooFar)) => unsafe {
            load_with_long_head(path, log, as_program, pages)
        },
        Err(problem) => Err(problem),
    }
}

/// # Safety
/// As for [`load`].
#[cold]
#[inline(never)]
unsafe fn load_with_long_head(path: &[u8], log: Log, as_program: bool, pages: Pages) -> Result<Mapped, Problem> {
    let mut head = [MaybeUninit::uninit(); elf::HEAD_LEN];
    // SAFETY: per the function's contract.
    let (fd, plan) = unsafe { inspect(path, &mut head, pages) }?;
    map(&fd, &plan, log, as_program)
}

/// Maps the loader `plan` describes from `fd`.
fn map(fd: &Fd, plan: &LoadPlan<'_>, log: Log, as_program: bool) -> Result<Mapped, Problem> {
    let span = plan.span as usize;
    // What follows ld.so's span, up to LOADER_RESERVATION, stays mapped and unused, so that what
    // the shim's file tells debuggers about ld.so's range covers no other object.
    let reserved = span.max(nix_ld::LOADER_RESERVATION);
    let first = plan.segments().next().ok_or(Problem::Elf(elf::ElfError::NoLoadableSegment))?;
    // One call reserves the whole span and maps the first segment's file pages at its start (as
    // glibc does): every mmap costs microseconds, and every process pays for these.
    // Not when the first segment is executable (loaders linked without separate code): the part of
    // the reservation past ld.so's span would map the file's remaining bytes executable.
    let reserve_with_file = first.filesz > 0 && plan.stale_tail(&first) == 0 && first.flags & PF_X == 0;
    // Asked for just above the shim's own image, where the kernel's layout leaves room: then the
    // range the shim's file describes as ld.so's code holds it whether a debugger places that file
    // at the shim's base (the kernel's AT_BASE, at `run`) or at ld.so's (the link map's, once
    // ld.so runs). Only a hint: the kernel takes any other free range if that one is not.
    let pages = plan.pages;
    let hint = pages.segment_up(crate::arch::image_end() as u64) as usize;
    // SAFETY: a fresh mapping, not MAP_FIXED: it takes nothing from anyone.
    let reservation = unsafe {
        if reserve_with_file {
            sys::mmap(hint, reserved, prot(first.flags), k::MAP_PRIVATE, fd.raw(), pages.down(first.offset))
        } else {
            sys::mmap(hint, reserved, k::PROT_NONE, k::MAP_PRIVATE | k::MAP_ANONYMOUS, -1, 0)
        }
    }
    .map_err(|Errno(e)| Problem::Map(e))?;
    let bias = reservation.wrapping_sub(plan.first_page as usize);
    // Keep what the reservation maps as it should stay: the first segment's file pages, or nothing.
    let kept =
        if reserve_with_file { (pages.segment_up(first.vaddr + first.filesz) - plan.first_page) as usize } else { 0 };
    if kept < span {
        // SAFETY: the end of our own fresh reservation, not yet used. Should this fail, the later
        // MAP_FIXED calls replace reservation pages, which are ours too.
        unsafe { sys::munmap(reservation + kept, span - kept) };
    }
    let mut file_mapped = reserve_with_file;
    for segment in plan.segments() {
        if let Err(Errno(e)) = map_segment(fd, bias, &segment, plan.stale_tail(&segment), file_mapped, pages) {
            // SAFETY: the reservation is ours, and nothing in it has been used.
            unsafe { sys::munmap(reservation, reserved) };
            return Err(Problem::Map(e));
        }
        file_mapped = false;
    }
    let mapped = Mapped {
        base: bias,
        entry: bias.wrapping_add(plan.entry as usize),
        phdr: if as_program { plan.phdr_vaddr().map(|v| bias.wrapping_add(v as usize)) } else { None },
        phnum: plan.phnum,
    };
    // Each system call is better seen with strace; this line says what the loader will be told.
    if let Some(mut m) = log.line(Level::Trace) {
        m.bytes(b"ld.so mapped at ").hex(mapped.base as u64).bytes(b", entry ").hex(mapped.entry as u64);
        m.end();
    }
    Ok(mapped)
}

/// Maps one segment at `bias`: its file pages from the file, then anonymous pages for the rest of
/// its bss. `stale_tail` bytes of file data that follow the segment's data in its last file page
/// are zeroed in place, as the kernel does for a program: that costs a few hundred instructions,
/// where mapping that page anonymously and reading the file's bytes into it costs two more system
/// calls, which take longer. `file_mapped`: the reservation already mapped this segment's file
/// pages.
fn map_segment(
    fd: &Fd,
    bias: usize,
    s: &elf::Segment,
    stale_tail: u64,
    file_mapped: bool,
    pages: Pages,
) -> Result<(), Errno> {
    let prot = prot(s.flags);
    let start = pages.down(s.vaddr);
    let file_end = s.vaddr + s.filesz;
    // validate() bounded vaddr + memsz, so these cannot overflow.
    let mem_end = pages.segment_up(s.vaddr + s.memsz);
    let mut anon_start = start;
    if s.filesz > 0 {
        let file_page_end = pages.segment_up(file_end);
        let first_prot = if stale_tail > 0 { prot | k::PROT_WRITE } else { prot };
        let len = (file_page_end - start) as usize;
        if !file_mapped {
            // SAFETY: inside the span `map` owns and emptied.
            unsafe {
                sys::mmap(
                    bias + start as usize,
                    len,
                    first_prot,
                    k::MAP_PRIVATE | k::MAP_FIXED,
                    fd.raw(),
                    pages.down(s.offset),
                )?;
            }
        }
        if stale_tail > 0 {
            // SAFETY: the page was just mapped writable, and is ours alone; `stale_tail` ends
            // within it.
            unsafe { mem::zero_bytes((bias + file_end as usize) as *mut u8, stale_tail as usize) };
            if first_prot != prot {
                // SAFETY: our own fresh mapping; nothing depends on its permissions yet.
                unsafe { sys::mprotect(bias + start as usize, len, prot)? };
            }
        }
        anon_start = file_page_end;
    }
    if mem_end > anon_start {
        let len = (mem_end - anon_start) as usize;
        let flags = k::MAP_PRIVATE | k::MAP_FIXED | k::MAP_ANONYMOUS;
        // SAFETY: inside the span `map` owns and emptied.
        unsafe { sys::mmap(bias + anon_start as usize, len, prot, flags, -1, 0)? };
    }
    Ok(())
}
