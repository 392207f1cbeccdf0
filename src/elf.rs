//! Validating the real loader's ELF headers, and planning its mapping, as a pure function over bytes.
//!
//! Each rejection names one cause, in the order a reader would check them, so the user learns
//! what is wrong with the file (`it is AArch64`, `it is a program, not a loader`), not just that
//! something is. Nothing here trusts a number from the file before bounding it.
//!
//! One validator serves both ELF classes ([`Elf64`], [`Elf32`]: where the header and program header
//! fields lie) and every page size ([`Fixed4K`] where the architecture has only 4 KiB pages,
//! [`PageSize`] from AT_PAGESZ elsewhere); the shim uses its own build's pair (`crate::target`).

use crate::target;
use crate::text::{Message, Sink};

/// Page size of x86 Linux, and the smallest of any.
pub const PAGE: u64 = 4096;

/// How the page size is known: a constant, or the kernel's AT_PAGESZ.
pub trait Pages: Copy {
    fn size(self) -> u64;

    /// The page size for a process whose auxv holds `reported` as AT_PAGESZ (asked only where
    /// the size is not fixed).
    fn from_auxv(reported: impl FnOnce() -> Option<u64>) -> Self;

    #[inline(always)]
    fn down(self, v: u64) -> u64 {
        v & !(self.size() - 1)
    }

    /// `None` on overflow.
    #[inline(always)]
    fn up(self, v: u64) -> Option<u64> {
        Some(v.checked_add(self.size() - 1)? & !(self.size() - 1))
    }

    /// [`Pages::up`] for an address inside a validated segment: [`validate`] bounded every
    /// segment's end by [`SEGMENT_END_LIMIT`], a multiple of any page size, so this cannot overflow.
    #[inline(always)]
    fn segment_up(self, v: u64) -> u64 {
        v.wrapping_add(self.size() - 1) & !(self.size() - 1)
    }
}

/// 4 KiB pages, the only base page size of x86 and x86-64 Linux.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fixed4K;

impl Pages for Fixed4K {
    #[inline(always)]
    fn size(self) -> u64 {
        PAGE
    }
    #[inline(always)]
    fn from_auxv(_: impl FnOnce() -> Option<u64>) -> Fixed4K {
        Fixed4K
    }
}

/// A page size the kernel reported (AT_PAGESZ): a power of two of at least 4 KiB and at most
/// [`MAX_PAGE`] (aarch64 runs 4, 16 or 64 KiB pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(u64);

/// The largest page size accepted (aarch64's largest).
pub const MAX_PAGE: u64 = 64 * 1024;

impl PageSize {
    /// The kernel's AT_PAGESZ, or 4 KiB if it is absent or not a plausible page size.
    pub fn new(reported: Option<u64>) -> PageSize {
        match reported {
            Some(size) if size.is_power_of_two() && (PAGE..=MAX_PAGE).contains(&size) => PageSize(size),
            _ => PageSize(PAGE),
        }
    }
}

impl Default for PageSize {
    fn default() -> PageSize {
        PageSize(PAGE)
    }
}

impl Pages for PageSize {
    #[inline(always)]
    fn size(self) -> u64 {
        self.0
    }
    fn from_auxv(reported: impl FnOnce() -> Option<u64>) -> PageSize {
        PageSize::new(reported())
    }
}

/// Where an ELF class keeps the fields the shim reads.
pub trait Class: Copy {
    /// EI_CLASS: 1 for ELF32, 2 for ELF64.
    const CLASS: u8;
    const EHDR_LEN: usize;
    const PHDR_LEN: usize;
    /// One program header's bytes.
    type Phdr: Copy + core::fmt::Debug + PartialEq + Eq + 'static;
    /// The whole program headers in `bytes`.
    fn table(bytes: &[u8]) -> &[Self::Phdr];
    fn phdr_bytes(ph: &Self::Phdr) -> &[u8];
    fn entry(head: &[u8]) -> u64;
    fn phoff(head: &[u8]) -> u64;
    fn phentsize(head: &[u8]) -> u16;
    fn phnum(head: &[u8]) -> u16;
    fn segment_of(ph: &Self::Phdr) -> Segment;
    fn align(ph: &Self::Phdr) -> u64;
}

/// ELF64: x86-64, AArch64, RISC-V 64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elf64;

impl Class for Elf64 {
    const CLASS: u8 = 2;
    const EHDR_LEN: usize = 64;
    const PHDR_LEN: usize = 56;
    type Phdr = [u8; 56];
    #[inline(always)]
    fn table(bytes: &[u8]) -> &[[u8; 56]] {
        bytes.as_chunks::<56>().0
    }
    #[inline(always)]
    fn phdr_bytes(ph: &[u8; 56]) -> &[u8] {
        ph
    }
    #[inline(always)]
    fn entry(head: &[u8]) -> u64 {
        u64_at(head, 24)
    }
    #[inline(always)]
    fn phoff(head: &[u8]) -> u64 {
        u64_at(head, 32)
    }
    #[inline(always)]
    fn phentsize(head: &[u8]) -> u16 {
        u16_at(head, 54)
    }
    #[inline(always)]
    fn phnum(head: &[u8]) -> u16 {
        u16_at(head, 56)
    }
    #[inline(always)]
    fn segment_of(ph: &[u8; 56]) -> Segment {
        Segment {
            flags: u32_at(ph, 4) & (PF_R | PF_W | PF_X),
            offset: u64_at(ph, 8),
            vaddr: u64_at(ph, 16),
            filesz: u64_at(ph, 32),
            memsz: u64_at(ph, 40),
        }
    }
    #[inline(always)]
    fn align(ph: &[u8; 56]) -> u64 {
        u64_at(ph, 48)
    }
}

/// ELF32: i386. Every address and size is 4 bytes; program header fields lie in another order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elf32;

impl Class for Elf32 {
    const CLASS: u8 = 1;
    const EHDR_LEN: usize = 52;
    const PHDR_LEN: usize = 32;
    type Phdr = [u8; 32];
    #[inline(always)]
    fn table(bytes: &[u8]) -> &[[u8; 32]] {
        bytes.as_chunks::<32>().0
    }
    #[inline(always)]
    fn phdr_bytes(ph: &[u8; 32]) -> &[u8] {
        ph
    }
    #[inline(always)]
    fn entry(head: &[u8]) -> u64 {
        u32_at(head, 24) as u64
    }
    #[inline(always)]
    fn phoff(head: &[u8]) -> u64 {
        u32_at(head, 28) as u64
    }
    #[inline(always)]
    fn phentsize(head: &[u8]) -> u16 {
        u16_at(head, 42)
    }
    #[inline(always)]
    fn phnum(head: &[u8]) -> u16 {
        u16_at(head, 44)
    }
    #[inline(always)]
    fn segment_of(ph: &[u8; 32]) -> Segment {
        Segment {
            flags: u32_at(ph, 24) & (PF_R | PF_W | PF_X),
            offset: u32_at(ph, 4) as u64,
            vaddr: u32_at(ph, 8) as u64,
            filesz: u32_at(ph, 16) as u64,
            memsz: u32_at(ph, 20) as u64,
        }
    }
    #[inline(always)]
    fn align(ph: &[u8; 32]) -> u64 {
        u32_at(ph, 28) as u64
    }
}
/// More program headers than any loader has (glibc's ld.so has about a dozen).
pub const MAX_PHNUM: usize = 64;
// LoadPlan keeps one bit per program header.
const _: () = assert!(MAX_PHNUM <= 64);
/// How many bytes of the file the shim reads before validating; the program headers must be there.
pub const HEAD_LEN: usize = 4096;
/// Largest address span accepted for a loader (glibc's ld.so spans about 240 KiB).
pub const MAX_SPAN: u64 = 1 << 30;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Why a file cannot be used as the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    Empty,
    NotElf,
    Truncated,
    /// Not this build's class and machine: `class` is EI_CLASS (1 = 32-bit), `machine` is e_machine.
    WrongArchitecture {
        class: u8,
        machine: u16,
    },
    BigEndian,
    UnknownVersion,
    /// e_type is not ET_DYN (ET_EXEC is a fixed-address executable).
    NotPositionIndependent {
        e_type: u16,
    },
    BadProgramHeaderSize,
    NoProgramHeaders,
    TooManyProgramHeaders {
        count: u16,
    },
    ProgramHeadersOutsideFile,
    ProgramHeadersTooFar,
    /// The file has its own PT_INTERP: it is a program, not a loader.
    HasInterpreter,
    NoLoadableSegment,
    SegmentOutsideFile {
        index: usize,
    },
    SegmentFileSizeExceedsMemory {
        index: usize,
    },
    SegmentOutOfRange {
        index: usize,
    },
    SegmentMisaligned {
        index: usize,
    },
    SegmentsOverlap {
        index: usize,
    },
    SegmentWritableAndExecutable {
        index: usize,
    },
    SpanTooLarge,
    EntryNotExecutable,
}

/// One PT_LOAD segment, checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    /// PF_R | PF_W | PF_X bits.
    pub flags: u32,
}

/// Everything needed to map the loader: the entry point, the address span, and the program header
/// table, whose loadable segments [`LoadPlan::segments`] yields checked and in ascending order.
///
/// The plan borrows the header bytes instead of copying segments out: it stays a few words, so
/// handing it around costs nothing at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan<'h, C: Class = target::Class, P: Pages = target::Pages> {
    pub entry: u64,
    /// The page size the plan was checked with.
    pub pages: P,
    /// The program header table, as validated.
    table: &'h [C::Phdr],
    /// Bit `i` is set when program header `i` is a segment to map.
    loads: u64,
    /// Page-aligned start of the lowest segment.
    pub first_page: u64,
    /// Bytes from `first_page` to the page-aligned end of the highest segment.
    pub span: u64,
    /// File offset of the program header table.
    phoff: u64,
    pub phnum: u16,
    pub file_size: u64,
}

impl<'h, C: Class, P: Pages> LoadPlan<'h, C, P> {
    /// The segments to map, lowest first; every one passed [`validate`]'s checks.
    pub fn segments(&self) -> Segments<'h, C> {
        Segments { table: self.table, loads: self.loads }
    }

    /// Where the program headers are in memory (relative to the load bias), if they are mapped:
    /// what AT_PHDR says when ld.so runs as the program itself. PT_PHDR says so; without one, the
    /// segment whose file bytes hold the table does. Worked out only when asked: only a shim run
    /// as a command needs it.
    pub fn phdr_vaddr(&self) -> Option<u64> {
        if let Some(ph) = self.table.iter().find(|ph| u32_at(C::phdr_bytes(ph), 0) == PT_PHDR) {
            return Some(C::segment_of(ph).vaddr);
        }
        let table_end = self.phoff + (self.table.len() * C::PHDR_LEN) as u64;
        let holder = self.segments().find(|s| self.phoff >= s.offset && table_end - s.offset <= s.filesz)?;
        Some(holder.vaddr + (self.phoff - holder.offset))
    }

    /// How many segments [`LoadPlan::segments`] yields.
    pub fn count(&self) -> usize {
        self.loads.count_ones() as usize
    }

    /// Bytes of file data that a mapping of `segment` shows in its last file page after the
    /// segment's own data, where its bss begins: they must be zeroed. A mapping reads as zero past
    /// the end of the file, so the count stops there (for glibc's ld.so, the file's section headers
    /// follow its data, and the file ends well before the page does).
    #[inline(always)]
    pub fn stale_tail(&self, segment: &Segment) -> u64 {
        if segment.filesz == 0 || segment.memsz == segment.filesz {
            return 0;
        }
        let file_end = segment.vaddr + segment.filesz;
        let page_rest = self.pages.segment_up(file_end) - file_end;
        // validate() checked offset + filesz <= file_size.
        page_rest.min(self.file_size - (segment.offset + segment.filesz))
    }
}

/// The iterator [`LoadPlan::segments`] returns.
pub struct Segments<'h, C: Class> {
    table: &'h [C::Phdr],
    loads: u64,
}

impl<C: Class> Iterator for Segments<'_, C> {
    type Item = Segment;

    #[inline(always)]
    fn next(&mut self) -> Option<Segment> {
        if self.loads == 0 {
            return None;
        }
        let index = self.loads.trailing_zeros() as usize;
        self.loads &= self.loads - 1;
        self.table.get(index).map(C::segment_of)
    }
}

/// Where a segment may end at the highest: [`MAX_SPAN`] × 4, page-aligned and below 2^32.
const SEGMENT_END_LIMIT: u64 = MAX_SPAN * 4;
const _: () = assert!(SEGMENT_END_LIMIT.is_multiple_of(MAX_PAGE) && SEGMENT_END_LIMIT <= 1 << 32);

/// The `N` bytes at `at`, or zeros where `b` ends first (callers check lengths beforehand).
#[inline(always)]
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    match b.get(at..at + N) {
        Some(field) => field.try_into().unwrap_or([0; N]),
        None => [0; N],
    }
}

#[inline(always)]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes_at(b, at))
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, at))
}

#[inline(always)]
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, at))
}

/// Checks that `head` (the first bytes of a file of `file_size` bytes) is a loader for this build's
/// machine that the shim can map with 4 KiB pages, and plans the mapping.
pub fn validate(head: &[u8], file_size: u64) -> Result<LoadPlan<'_>, ElfError> {
    validate_for(head, file_size, target::MACHINE, target::Pages::default())
}

/// [`validate`] for loaders of class `C` and machine `machine`, mapped with pages of `pages`.
#[inline(always)]
pub fn validate_for<C: Class, P: Pages>(
    head: &[u8],
    file_size: u64,
    machine: u16,
    pages: P,
) -> Result<LoadPlan<'_, C, P>, ElfError> {
    if file_size == 0 || head.is_empty() {
        return Err(ElfError::Empty);
    }
    let magic = b"\x7fELF";
    if head.len() < magic.len() {
        return Err(if magic.starts_with(head) { ElfError::Truncated } else { ElfError::NotElf });
    }
    if &head[..4] != magic {
        return Err(ElfError::NotElf);
    }
    if head.len() < C::EHDR_LEN {
        // e_machine sits at the same place in both classes; name the architecture if we can.
        if head.len() >= 20 && (head[4] != C::CLASS || u16_at(head, 18) != machine) {
            return Err(ElfError::WrongArchitecture { class: head[4], machine: u16_at(head, 18) });
        }
        return Err(ElfError::Truncated);
    }
    let (class, found) = (head[4], u16_at(head, 18));
    if (class, found) != (C::CLASS, machine) {
        return Err(ElfError::WrongArchitecture { class, machine: found });
    }
    if head[5] != 1 {
        return Err(ElfError::BigEndian);
    }
    if head[6] != 1 {
        return Err(ElfError::UnknownVersion);
    }
    let e_type = u16_at(head, 16);
    if e_type != 3 {
        return Err(ElfError::NotPositionIndependent { e_type });
    }
    if C::phentsize(head) as usize != C::PHDR_LEN {
        return Err(ElfError::BadProgramHeaderSize);
    }
    let phnum = C::phnum(head);
    if phnum == 0 {
        return Err(ElfError::NoProgramHeaders);
    }
    if phnum as usize > MAX_PHNUM {
        return Err(ElfError::TooManyProgramHeaders { count: phnum });
    }
    let phoff = C::phoff(head);
    let table_end = phoff.checked_add(phnum as u64 * C::PHDR_LEN as u64).ok_or(ElfError::ProgramHeadersOutsideFile)?;
    if table_end > file_size {
        return Err(ElfError::ProgramHeadersOutsideFile);
    }
    if table_end > head.len() as u64 {
        return Err(ElfError::ProgramHeadersTooFar);
    }
    let entry = C::entry(head);
    // Whole entries only: `table_end - phoff` is a multiple of PHDR_LEN.
    let table = C::table(&head[phoff as usize..table_end as usize]);

    let mut loads = 0u64;
    let mut previous_end = 0u64;
    let mut executable = false;
    for (index, ph) in table.iter().enumerate() {
        match u32_at(C::phdr_bytes(ph), 0) {
            PT_LOAD => {}
            PT_INTERP => return Err(ElfError::HasInterpreter),
            _ => continue,
        }
        let segment = C::segment_of(ph);
        if segment.memsz == 0 {
            continue;
        }
        if segment.filesz > segment.memsz {
            return Err(ElfError::SegmentFileSizeExceedsMemory { index });
        }
        if segment.offset.checked_add(segment.filesz).is_none_or(|end| end > file_size) {
            return Err(ElfError::SegmentOutsideFile { index });
        }
        // With both below 2^32, their sum cannot overflow; SEGMENT_END_LIMIT is page-aligned, so
        // the page-aligned end is within it too.
        if (segment.vaddr | segment.memsz) >> 32 != 0 || segment.vaddr + segment.memsz > SEGMENT_END_LIMIT {
            return Err(ElfError::SegmentOutOfRange { index });
        }
        let end = pages.segment_up(segment.vaddr + segment.memsz);
        // 0 and 1 mean no alignment; any other value must be a power of two.
        let align = C::align(ph);
        if !(segment.vaddr ^ segment.offset).is_multiple_of(pages.size()) || align & align.wrapping_sub(1) != 0 {
            return Err(ElfError::SegmentMisaligned { index });
        }
        if segment.flags & (PF_W | PF_X) == PF_W | PF_X {
            return Err(ElfError::SegmentWritableAndExecutable { index });
        }
        // The first segment passes: nothing ends above 0.
        if pages.down(segment.vaddr) < previous_end {
            return Err(ElfError::SegmentsOverlap { index });
        }
        previous_end = end;
        // index < MAX_PHNUM = 64.
        loads |= 1 << index;
        // An entry below the segment wraps around to far above its size.
        executable |= segment.flags & PF_X != 0 && entry.wrapping_sub(segment.vaddr) < segment.filesz;
    }
    let Some(first) = (Segments::<C> { table, loads }).next() else {
        return Err(ElfError::NoLoadableSegment);
    };
    let first_page = pages.down(first.vaddr);
    let span = previous_end - first_page;
    if span > MAX_SPAN {
        return Err(ElfError::SpanTooLarge);
    }
    if !executable {
        return Err(ElfError::EntryNotExecutable);
    }
    Ok(LoadPlan { entry, pages, table, loads, first_page, span, phoff, phnum, file_size })
}

/// Machine numbers (`e_machine`) a loader might be built for, and their names in that order.
const MACHINES: [u16; 12] = [2, 3, 8, 20, 21, 22, 40, 43, 62, 183, 243, 258];
const MACHINE_NAMES: &[u8] = b"SPARC\0i386\0MIPS\0PowerPC\0PowerPC64\0S/390\0ARM\0SPARC64\0x86-64\0AArch64\0RISC-V\0LoongArch\0an unknown machine";

/// What each [`ElfError`] says about the loader, NUL-separated, in the order of
/// [`ElfError::cause_index`]; `#` stands for the number the error carries.
const CAUSES: &[u8] = b"is empty\0\
is not an ELF file\0\
is truncated (shorter than an ELF header)\0\
is a big-endian ELF file\0\
has an unknown ELF version\0\
is a fixed-address executable (ET_EXEC), not a position-independent loader\0\
is a relocatable object file, not a loader\0\
is a core dump, not a loader\0\
has an unknown ELF type #\0\
has a malformed program header table (wrong entry size)\0\
has no program headers\0\
has an absurd number of program headers (#)\0\
is truncated (its program headers lie outside the file)\0\
has its program headers beyond its first 4 KiB, unlike any loader\0\
is a program, not a loader (it has its own interpreter); point NIX_LD at ld.so itself\0\
has no loadable segment\0\
is truncated (program header # points past the end of the file)\0\
has a malformed segment (program header #: file size larger than memory size)\0\
has a segment out of range (program header #)\0\
has a misaligned segment (program header #)\0\
has overlapping or unordered segments (program header #)\0\
has a segment that is both writable and executable (program header #)\0\
spans more than 1 GiB of address space\0\
has its entry point outside its executable code";

impl ElfError {
    /// The entry of [`CAUSES`] for this error, and the number it carries. Not for
    /// `WrongArchitecture`, which names the machine.
    fn cause_index(&self) -> (usize, u64) {
        let index = match *self {
            ElfError::Empty => 0,
            ElfError::NotElf => 1,
            ElfError::Truncated => 2,
            ElfError::BigEndian => 3,
            ElfError::UnknownVersion => 4,
            ElfError::NotPositionIndependent { e_type: 2 } => 5,
            ElfError::NotPositionIndependent { e_type: 1 } => 6,
            ElfError::NotPositionIndependent { e_type: 4 } => 7,
            ElfError::NotPositionIndependent { .. } => 8,
            ElfError::BadProgramHeaderSize => 9,
            ElfError::NoProgramHeaders => 10,
            ElfError::TooManyProgramHeaders { .. } => 11,
            ElfError::ProgramHeadersOutsideFile => 12,
            ElfError::ProgramHeadersTooFar => 13,
            ElfError::HasInterpreter => 14,
            ElfError::NoLoadableSegment => 15,
            ElfError::SegmentOutsideFile { .. } => 16,
            ElfError::SegmentFileSizeExceedsMemory { .. } => 17,
            ElfError::SegmentOutOfRange { .. } => 18,
            ElfError::SegmentMisaligned { .. } => 19,
            ElfError::SegmentsOverlap { .. } => 20,
            ElfError::SegmentWritableAndExecutable { .. } => 21,
            ElfError::SpanTooLarge => 22,
            ElfError::EntryNotExecutable => 23,
            ElfError::WrongArchitecture { .. } => usize::MAX,
        };
        let number = match *self {
            ElfError::NotPositionIndependent { e_type: n } | ElfError::TooManyProgramHeaders { count: n } => n as u64,
            ElfError::SegmentOutsideFile { index }
            | ElfError::SegmentFileSizeExceedsMemory { index }
            | ElfError::SegmentOutOfRange { index }
            | ElfError::SegmentMisaligned { index }
            | ElfError::SegmentsOverlap { index }
            | ElfError::SegmentWritableAndExecutable { index } => index as u64,
            _ => 0,
        };
        (index, number)
    }

    /// Writes what is wrong with the loader, after "loader PATH ".
    pub fn write_cause<S: Sink>(&self, m: &mut Message<S>) {
        if let ElfError::WrongArchitecture { class, machine } = *self {
            m.bytes(target::NOT_NATIVE);
            match class {
                1 => m.bytes(b"32-bit "),
                2 => m,
                _ => m.bytes(b"of unknown class, "),
            };
            let known = MACHINES.iter().position(|&k| k == machine).unwrap_or(MACHINES.len());
            m.entry(MACHINE_NAMES, known, 0).bytes(b")");
            return;
        }
        let (index, number) = self.cause_index();
        m.entry(CAUSES, index, number);
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal valid loader image: headers, a read-only segment, code, and data with bss.
    pub fn sample() -> Vec<u8> {
        let mut f = vec![0u8; 0x3000];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&3u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[24..32].copy_from_slice(&0x1010u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        let segs: [(u32, u32, u64, u64, u64, u64); 4] = [
            (6, PF_R, 64, 64, 4 * 56, 4 * 56),
            (PT_LOAD, PF_R, 0, 0, 0x800, 0x800),
            (PT_LOAD, PF_R | PF_X, 0x1000, 0x1000, 0x800, 0x800),
            (PT_LOAD, PF_R | PF_W, 0x2000, 0x3000, 0x100, 0x2000),
        ];
        f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (t, flags, off, vaddr, filesz, memsz)) in segs.iter().enumerate() {
            let p = 64 + i * 56;
            f[p..p + 4].copy_from_slice(&t.to_le_bytes());
            f[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            f[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[p + 24..p + 32].copy_from_slice(&vaddr.to_le_bytes());
            f[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            f[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
            f[p + 48..p + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        f
    }

    /// [`sample`] as an i386 loader: the same segments in ELF32's layout.
    pub fn sample32() -> Vec<u8> {
        let wide = sample();
        let mut f = vec![0u8; 0x3000];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&3u16.to_le_bytes());
        f[18..20].copy_from_slice(&3u16.to_le_bytes());
        f[24..28].copy_from_slice(&0x1010u32.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&4u16.to_le_bytes());
        for i in 0..4 {
            let (w, n) = (64 + i * 56, 52 + i * 32);
            let field = |at: usize| u64::from_le_bytes(wide[w + at..w + at + 8].try_into().unwrap()) as u32;
            f[n..n + 4].copy_from_slice(&wide[w..w + 4]);
            f[n + 24..n + 28].copy_from_slice(&wide[w + 4..w + 8]);
            for (to, from) in [(4, 8), (8, 16), (12, 24), (16, 32), (20, 40), (28, 48)] {
                f[n + to..n + to + 4].copy_from_slice(&field(from).to_le_bytes());
            }
        }
        f[0x1000..].copy_from_slice(&wide[0x1000..]);
        f
    }

    #[test]
    fn an_elf32_loader_is_planned_as_its_elf64_twin() {
        let (wide, narrow) = (sample(), sample32());
        let plan64 = validate_for::<Elf64, Fixed4K>(&wide, wide.len() as u64, 62, Fixed4K).unwrap();
        let plan32 = validate_for::<Elf32, Fixed4K>(&narrow, narrow.len() as u64, 3, Fixed4K).unwrap();
        assert!(plan32.segments().eq(plan64.segments()));
        assert_eq!((plan32.entry, plan32.span, plan32.first_page), (plan64.entry, plan64.span, plan64.first_page));
        assert_eq!(plan32.phdr_vaddr(), plan64.phdr_vaddr());
        // Each class refuses the other, and names it.
        assert_eq!(
            validate_for::<Elf32, Fixed4K>(&wide, wide.len() as u64, 3, Fixed4K),
            Err(ElfError::WrongArchitecture { class: 2, machine: 62 })
        );
        assert_eq!(
            validate_for::<Elf64, Fixed4K>(&narrow, narrow.len() as u64, 62, Fixed4K),
            Err(ElfError::WrongArchitecture { class: 1, machine: 3 })
        );
        // An ELF32 program header size is checked as ELF32's.
        let mut bad = narrow.clone();
        bad[42] = 56;
        assert_eq!(
            validate_for::<Elf32, Fixed4K>(&bad, bad.len() as u64, 3, Fixed4K),
            Err(ElfError::BadProgramHeaderSize)
        );
    }

    #[test]
    fn the_page_size_is_the_kernels_and_decides_what_overlaps() {
        assert_eq!(PageSize::new(Some(65536)).size(), 65536);
        assert_eq!(PageSize::new(Some(16384)).size(), 16384);
        // Absent or implausible: 4 KiB.
        for reported in [None, Some(0), Some(3000), Some(1 << 20), Some(4097)] {
            assert_eq!(PageSize::new(reported).size(), PAGE, "{reported:?}");
        }
        let image = sample();
        let size = image.len() as u64;
        let plan = validate_for::<Elf64, PageSize>(&image, size, 62, PageSize::new(Some(4096))).unwrap();
        assert_eq!(plan.span, 0x5000);
        // With 64 KiB pages the sample's segments share a page: a loader for such a kernel is linked
        // with its segments 64 KiB apart.
        assert_eq!(
            validate_for::<Elf64, PageSize>(&image, size, 62, PageSize::new(Some(65536))),
            Err(ElfError::SegmentsOverlap { index: 2 })
        );
        let p = PageSize::new(Some(65536));
        assert_eq!((p.down(0x12345), p.up(0x12345), p.segment_up(0x10000)), (0x10000, Some(0x20000), 0x10000));
        assert_eq!(p.up(u64::MAX - 5), None);
    }

    fn check(f: &[u8]) -> Result<LoadPlan<'_>, ElfError> {
        validate(&f[..f.len().min(HEAD_LEN)], f.len() as u64)
    }

    fn set_phdr_field(f: &mut [u8], index: usize, at: usize, value: u64) {
        let p = 64 + index * 56 + at;
        if at == 4 || at == 0 {
            f[p..p + 4].copy_from_slice(&(value as u32).to_le_bytes());
        } else {
            f[p..p + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    fn cause(e: ElfError) -> String {
        let mut out = Vec::new();
        let mut m = Message::new(&mut out);
        e.write_cause(&mut m);
        m.end();
        String::from_utf8(out).unwrap().trim_end().to_string()
    }

    #[test]
    fn a_well_formed_loader_is_planned() {
        let image = sample();
        let plan = check(&image).unwrap();
        assert_eq!(plan.count(), 3);
        assert_eq!(plan.first_page, 0);
        assert_eq!(plan.span, 0x5000);
        assert_eq!(plan.entry, 0x1010);
        assert_eq!(plan.phdr_vaddr(), Some(64));
        assert_eq!(
            plan.segments().nth(2).unwrap(),
            Segment { vaddr: 0x3000, memsz: 0x2000, offset: 0x2000, filesz: 0x100, flags: PF_R | PF_W }
        );
    }

    #[test]
    fn every_error_has_its_own_complete_message() {
        let all = [
            ElfError::Empty,
            ElfError::NotElf,
            ElfError::Truncated,
            ElfError::WrongArchitecture { class: 1, machine: 3 },
            ElfError::BigEndian,
            ElfError::UnknownVersion,
            ElfError::NotPositionIndependent { e_type: 2 },
            ElfError::NotPositionIndependent { e_type: 1 },
            ElfError::NotPositionIndependent { e_type: 4 },
            ElfError::NotPositionIndependent { e_type: 77 },
            ElfError::BadProgramHeaderSize,
            ElfError::NoProgramHeaders,
            ElfError::TooManyProgramHeaders { count: 999 },
            ElfError::ProgramHeadersOutsideFile,
            ElfError::ProgramHeadersTooFar,
            ElfError::HasInterpreter,
            ElfError::NoLoadableSegment,
            ElfError::SegmentOutsideFile { index: 61 },
            ElfError::SegmentFileSizeExceedsMemory { index: 62 },
            ElfError::SegmentOutOfRange { index: 63 },
            ElfError::SegmentMisaligned { index: 64 },
            ElfError::SegmentsOverlap { index: 65 },
            ElfError::SegmentWritableAndExecutable { index: 66 },
            ElfError::SpanTooLarge,
            ElfError::EntryNotExecutable,
        ];
        let messages: Vec<String> = all.iter().map(|&e| cause(e)).collect();
        for (e, m) in all.iter().zip(&messages) {
            assert!(m.starts_with("is ") || m.starts_with("has ") || m.starts_with("spans "), "{e:?}: {m}");
            assert!(!m.contains('#') && !m.contains('\0'), "{e:?}: {m}");
            assert_eq!(messages.iter().filter(|other| *other == m).count(), 1, "{e:?}: {m}");
        }
        assert_eq!(cause(ElfError::NotPositionIndependent { e_type: 77 }), "has an unknown ELF type 77");
        assert_eq!(
            cause(ElfError::TooManyProgramHeaders { count: 999 }),
            "has an absurd number of program headers (999)"
        );
        assert_eq!(
            cause(ElfError::SegmentFileSizeExceedsMemory { index: 62 }),
            "has a malformed segment (program header 62: file size larger than memory size)"
        );
        assert_eq!(
            cause(ElfError::WrongArchitecture { class: 7, machine: 9999 }),
            "is not an x86-64 ELF file (it is of unknown class, an unknown machine)"
        );
        assert_eq!(cause(ElfError::EntryNotExecutable), "has its entry point outside its executable code");
    }

    #[test]
    fn the_stale_tail_is_the_file_data_after_a_segment_in_its_last_page() {
        // The sample's data segment: 0x100 bytes of file data at 0x3000, bss up to 0x5000.
        let image = sample();
        let plan = check(&image).unwrap();
        let data = plan.segments().nth(2).unwrap();
        // The file (0x3000 bytes) ends 0xf00 bytes after the segment's data: all of that shows.
        assert_eq!(plan.stale_tail(&data), 0x1000 - 0x100);
        // A file that ends 0x40 bytes after the data shows only those; the rest reads as zero.
        let short = &image[..0x2140];
        let plan = validate(short, short.len() as u64).unwrap();
        assert_eq!(plan.stale_tail(&data), 0x40);
        // Data that ends the file, a segment without bss and one without file data show nothing.
        let exact = &image[..0x2100];
        assert_eq!(validate(exact, exact.len() as u64).unwrap().stale_tail(&data), 0);
        let code = plan.segments().nth(1).unwrap();
        assert_eq!(plan.stale_tail(&code), 0);
        assert_eq!(plan.stale_tail(&Segment { filesz: 0, ..data }), 0);
    }

    #[test]
    fn file_level_problems_are_named() {
        assert_eq!(check(&[]), Err(ElfError::Empty));
        assert_eq!(check(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(check(b"\x7fEL"), Err(ElfError::Truncated));
        assert_eq!(check(&sample()[..40]), Err(ElfError::Truncated));
        let mut f = sample();
        f[4] = 1;
        f[18] = 3;
        assert_eq!(check(&f), Err(ElfError::WrongArchitecture { class: 1, machine: 3 }));
        assert_eq!(cause(check(&f).unwrap_err()), "is not an x86-64 ELF file (it is 32-bit i386)");
        let mut f = sample();
        f[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(cause(check(&f).unwrap_err()), "is not an x86-64 ELF file (it is AArch64)");
        let mut f = sample();
        f[16] = 2;
        assert_eq!(check(&f), Err(ElfError::NotPositionIndependent { e_type: 2 }));
        assert!(cause(check(&f).unwrap_err()).contains("ET_EXEC"));
        let mut f = sample();
        f[5] = 2;
        assert_eq!(check(&f), Err(ElfError::BigEndian));
    }

    #[test]
    fn program_header_problems_are_named() {
        let mut f = sample();
        f[56] = 0;
        assert_eq!(check(&f), Err(ElfError::NoProgramHeaders));
        let mut f = sample();
        f[56..58].copy_from_slice(&5000u16.to_le_bytes());
        assert_eq!(check(&f), Err(ElfError::TooManyProgramHeaders { count: 5000 }));
        let mut f = sample();
        f[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert_eq!(check(&f), Err(ElfError::ProgramHeadersOutsideFile));
        let mut f = sample();
        f[32..40].copy_from_slice(&0x2f80u64.to_le_bytes());
        assert_eq!(check(&f), Err(ElfError::ProgramHeadersOutsideFile));
        let mut f = sample();
        f[54] = 32;
        assert_eq!(check(&f), Err(ElfError::BadProgramHeaderSize));
        let mut f = sample();
        set_phdr_field(&mut f, 0, 0, PT_INTERP as u64);
        assert_eq!(check(&f), Err(ElfError::HasInterpreter));
    }

    #[test]
    fn segment_problems_are_named() {
        let mut f = sample();
        set_phdr_field(&mut f, 3, 8, 0x2f80); // offset + filesz past the end
        set_phdr_field(&mut f, 3, 16, 0x3f80);
        assert_eq!(check(&f), Err(ElfError::SegmentOutsideFile { index: 3 }));
        let mut f = sample();
        set_phdr_field(&mut f, 3, 32, 0x3000); // filesz > memsz
        assert_eq!(check(&f), Err(ElfError::SegmentFileSizeExceedsMemory { index: 3 }));
        let mut f = sample();
        set_phdr_field(&mut f, 3, 16, 0x3010); // vaddr and offset disagree modulo the page
        assert_eq!(check(&f), Err(ElfError::SegmentMisaligned { index: 3 }));
        let mut f = sample();
        set_phdr_field(&mut f, 3, 16, u64::MAX - 0x1000);
        assert_eq!(check(&f), Err(ElfError::SegmentOutOfRange { index: 3 }));
        let mut f = sample();
        set_phdr_field(&mut f, 3, 16, 0x1000); // on top of the code
        assert_eq!(check(&f), Err(ElfError::SegmentsOverlap { index: 3 }));
        let mut f = sample();
        set_phdr_field(&mut f, 2, 4, (PF_R | PF_W | PF_X) as u64);
        assert_eq!(check(&f), Err(ElfError::SegmentWritableAndExecutable { index: 2 }));
        let mut f = sample();
        f[24..32].copy_from_slice(&0x3000u64.to_le_bytes());
        assert_eq!(check(&f), Err(ElfError::EntryNotExecutable));
        let mut f = sample();
        for i in 1..4 {
            set_phdr_field(&mut f, i, 0, 0);
        }
        assert_eq!(check(&f), Err(ElfError::NoLoadableSegment));
        let mut f = sample();
        set_phdr_field(&mut f, 3, 40, MAX_SPAN * 2);
        assert_eq!(check(&f), Err(ElfError::SpanTooLarge));
    }

    fn assert_plan_is_sound(plan: &LoadPlan, file_size: u64) {
        let mut previous_end = 0;
        assert_eq!(plan.segments().count(), plan.count());
        for (i, s) in plan.segments().enumerate() {
            assert!(s.filesz <= s.memsz);
            assert!(s.offset + s.filesz <= file_size);
            assert_eq!(s.vaddr % PAGE, s.offset % PAGE);
            assert!(!(s.flags & PF_W != 0 && s.flags & PF_X != 0));
            if i > 0 {
                assert!(Fixed4K.down(s.vaddr) >= previous_end);
            }
            previous_end = Fixed4K.up(s.vaddr + s.memsz).unwrap();
            assert!(previous_end - plan.first_page <= plan.span);
            // Zeroing the stale tail stays inside the segment's memory and the page.
            let tail = plan.stale_tail(&s);
            assert!((s.vaddr + s.filesz) % PAGE + tail <= PAGE);
        }
        assert!(plan.span <= MAX_SPAN);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), extra in 0u64..10000) {
            let size = bytes.len() as u64 + extra;
            if let Ok(plan) = validate(&bytes, size) {
                assert_plan_is_sound(&plan, size);
            }
        }

        #[test]
        fn mutated_loaders_never_panic_and_plans_stay_sound(edits in proptest::collection::vec((0usize..64 + 4 * 56, any::<u8>()), 1..6), cut in 0usize..0x3000) {
            let mut f = sample();
            for (at, value) in edits {
                f[at] = value;
            }
            let f = &f[..f.len() - cut.min(f.len())];
            if let Ok(plan) = check(f) {
                assert_plan_is_sound(&plan, f.len() as u64);
            }
        }
    }
}
