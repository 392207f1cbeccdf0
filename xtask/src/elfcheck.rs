//! Checks on the built shim: the properties `cargo xtask build` promises, read from the ELF file.

use crate::util::{u16_at, u32_at, u64_at, Result};

/// The most the shim may map: it stays mapped in every foreign process, and each page of it is a
/// page fault at each exec.
pub const MAX_MAPPED: u64 = 16 * 1024;

/// A platform the shim is built for: what `verify` expects of its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Rust's target triple.
    pub triple: &'static str,
    /// nixpkgs' system name.
    pub system: &'static str,
    pub machine: u16,
    /// EI_CLASS: 2 for ELF64, 1 for ELF32.
    pub class: u8,
    pub name: &'static str,
    /// The most this build may map. x86-64's 16 KiB is the budget every change is held to; the
    /// others have no string instructions for `mem` and longer instruction encodings (AArch64's
    /// fixed 4 bytes, i386's stack-passed arguments), and are held to what they map now, rounded
    /// up to the next KiB.
    pub max_mapped: u64,
    /// The C cross compiler that links it (and compiles the test fixtures).
    pub cc: &'static str,
}

pub const X86_64: Target = Target {
    triple: "x86_64-unknown-linux-gnu",
    system: "x86_64-linux",
    machine: 62,
    class: 2,
    name: "ELF64 x86-64",
    max_mapped: MAX_MAPPED,
    cc: "cc",
};
pub const AARCH64: Target = Target {
    triple: "aarch64-unknown-linux-gnu",
    system: "aarch64-linux",
    machine: 183,
    class: 2,
    name: "ELF64 AArch64",
    max_mapped: 17 * 1024,
    cc: "aarch64-linux-gnu-gcc",
};
pub const RISCV64: Target = Target {
    triple: "riscv64gc-unknown-linux-gnu",
    system: "riscv64-linux",
    machine: 243,
    class: 2,
    name: "ELF64 RISC-V",
    max_mapped: 18 * 1024,
    cc: "riscv64-linux-gnu-gcc",
};
pub const I686: Target = Target {
    triple: "i686-unknown-linux-gnu",
    system: "i686-linux",
    machine: 3,
    class: 1,
    name: "ELF32 i386",
    max_mapped: 20 * 1024,
    cc: "gcc",
};
pub const TARGETS: [Target; 4] = [X86_64, AARCH64, RISCV64, I686];

/// The platform this program (xtask) runs on: the one a native build is for, as nixpkgs builds.
pub fn native() -> Target {
    if cfg!(target_arch = "aarch64") {
        AARCH64
    } else if cfg!(target_arch = "riscv64") {
        RISCV64
    } else if cfg!(target_arch = "x86") {
        I686
    } else {
        X86_64
    }
}

/// The target named by a Rust triple.
pub fn target(triple: &str) -> Result<Target> {
    TARGETS.iter().copied().find(|t| t.triple == triple).ok_or_else(|| {
        let known: Vec<&str> = TARGETS.iter().map(|t| t.triple).collect();
        format!("unknown target '{triple}' (known: {})", known.join(", "))
    })
}

/// The compiled-in defaults the limit is measured with: NixOS's (src/lib.rs, nix/package.nix).
/// A build with other defaults holds them in its read-only data; it may map the difference more.
pub const NIXOS_DEFAULTS: (&str, &str) =
    ("/run/current-system/sw/share/nix-ld/lib/ld.so", "/run/current-system/sw/share/nix-ld/lib");

/// How much more than [`MAX_MAPPED`] a build with `defaults` compiled in may map.
pub fn allowance(defaults: Option<(&str, &str)>) -> u64 {
    let len = |(loader, libs): (&str, &str)| (loader.len() + libs.len()) as u64;
    defaults.map_or(0, |d| len(d).saturating_sub(len(NIXOS_DEFAULTS)))
}

/// Facts about the shim, also used by the benchmark.
#[derive(Debug, Default)]
pub struct ShimFacts {
    /// Sum of the PT_LOAD memory sizes.
    pub mapped: u64,
    pub file_size: u64,
}

/// Verifies, for the platform xtask runs on ([`native`]): its ELF class and machine, ET_DYN (position-independent), no PT_INTERP, no PT_DYNAMIC (so no
/// DT_NEEDED and no relocations), exactly one PT_LOAD and it is read-only and executable (no
/// writable data: nothing to relocate, no page copied on write), a non-executable stack, and no
/// relocation sections at all.
#[cfg(test)]
pub fn verify(bytes: &[u8]) -> Result<ShimFacts> {
    verify_with(bytes, 0)
}

/// [`verify`], for a build whose compiled-in defaults take `allowance` bytes more than NixOS's.
pub fn verify_with(bytes: &[u8], allowance: u64) -> Result<ShimFacts> {
    verify_for(bytes, &native(), allowance)
}

/// The ELF fields `verify_for` reads, at their places in the file's class.
struct Layout {
    wide: bool,
}

impl Layout {
    fn word(&self, b: &[u8], at64: usize, at32: usize) -> Result<u64> {
        if self.wide {
            u64_at(b, at64)
        } else {
            u32_at(b, at32).map(u64::from)
        }
    }
}

/// [`verify_with`] for a shim built for `target`.
pub fn verify_for(bytes: &[u8], target: &Target, allowance: u64) -> Result<ShimFacts> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != target.class || u16_at(bytes, 18)? != target.machine {
        return Err(format!(
            "not {} (EI_CLASS {}, e_machine {}): built for another platform than {}",
            target.name,
            bytes[4],
            u16_at(bytes, 18)?,
            target.triple
        ));
    }
    let l = Layout { wide: target.class == 2 };
    let phsize = if l.wide { 56 } else { 32 };
    if u16_at(bytes, 16)? != 3 {
        return Err("not ET_DYN (a position-independent executable is ET_DYN)".into());
    }
    let phoff = l.word(bytes, 32, 28)? as usize;
    let phnum = u16_at(bytes, if l.wide { 56 } else { 44 })? as usize;
    let mut facts = ShimFacts { file_size: bytes.len() as u64, ..Default::default() };
    let mut loads = 0;
    let mut stack_seen = false;
    let entry = l.word(bytes, 24, 24)?;
    let mut entry_mapped = false;
    for i in 0..phnum {
        let p = phoff + i * phsize;
        let (ty, flags) = (u32_at(bytes, p)?, u32_at(bytes, p + if l.wide { 4 } else { 24 })?);
        match ty {
            1 => {
                loads += 1;
                facts.mapped += l.word(bytes, p + 40, p + 20)?;
                let (vaddr, filesz) = (l.word(bytes, p + 16, p + 8)?, l.word(bytes, p + 32, p + 16)?);
                entry_mapped |= flags & 1 != 0 && (vaddr..vaddr + filesz).contains(&entry);
                if flags & 2 != 0 {
                    return Err(format!(
                        "program header {i} is writable: the shim must have no writable data (a static, a GOT entry, \
                         a table of pointers), which would need relocating at every start"
                    ));
                }
            }
            2 => return Err("has PT_DYNAMIC: the shim must need no dynamic linking, not even relocations".into()),
            3 => return Err("has PT_INTERP: it would need a loader itself".into()),
            0x6474e551 => {
                stack_seen = true;
                if flags & 1 != 0 {
                    return Err("executable stack".into());
                }
            }
            _ => {}
        }
    }
    if loads != 1 {
        return Err(format!("{loads} PT_LOAD segments: the shim is laid out as one (see linker.ld)"));
    }
    if facts.mapped > target.max_mapped + allowance {
        return Err(format!(
            "maps {} bytes, more than the {} the shim may with NixOS's compiled-in paths (README: performance){}",
            facts.mapped,
            target.max_mapped,
            if allowance > 0 { format!(", plus the {allowance} of this build's longer ones") } else { String::new() }
        ));
    }
    if !entry_mapped {
        return Err(format!(
            "its entry point {entry:#x} is not in its executable segment's file bytes (a tool such as strip rebuilt the file from its sections?)"
        ));
    }
    if !stack_seen {
        return Err("no PT_GNU_STACK: the kernel would make the stack executable".into());
    }
    let (shoff, shnum) = (l.word(bytes, 40, 32)? as usize, u16_at(bytes, if l.wide { 60 } else { 48 })? as usize);
    let shsize = if l.wide { 64 } else { 40 };
    for i in 0..shnum {
        // SHT_RELA, SHT_REL, SHT_RELR
        if matches!(u32_at(bytes, shoff + i * shsize + 4)?, 4 | 9 | 19) {
            return Err(format!("section {i} holds relocations, which nothing would apply"));
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header and the given program headers (type, flags, memsz); no sections.
    fn elf(headers: &[(u32, u32, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * headers.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[16..18].copy_from_slice(&3u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[56..58].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        b[24..32].copy_from_slice(&ENTRY.to_le_bytes());
        for (i, &(ty, flags, memsz)) in headers.iter().enumerate() {
            let p = 64 + 56 * i;
            b[p..p + 4].copy_from_slice(&ty.to_le_bytes());
            b[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            b[p + 32..p + 40].copy_from_slice(&memsz.to_le_bytes());
            b[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        b
    }

    const STACK: (u32, u32, u64) = (0x6474e551, 6, 0);
    const ENTRY: u64 = 0x100;

    #[test]
    fn one_read_only_executable_segment_passes() {
        let facts = verify(&elf(&[(1, 5, 12_345), STACK])).unwrap();
        assert_eq!(facts.mapped, 12_345);
    }

    #[test]
    fn writable_data_dynamic_sections_and_extra_segments_are_refused() {
        let refused = |headers: &[(u32, u32, u64)], why: &str| {
            let err = verify(&elf(headers)).unwrap_err();
            assert!(err.contains(why), "{err}");
        };
        refused(&[(1, 5, 4096), (1, 6, 8), STACK], "writable");
        refused(&[(1, 5, 4096), (2, 6, 0), STACK], "PT_DYNAMIC");
        refused(&[(1, 5, 4096), (3, 4, 0), STACK], "PT_INTERP");
        refused(&[(1, 5, 4096), (1, 4, 4096), STACK], "2 PT_LOAD");
        refused(&[(1, 5, 4096)], "PT_GNU_STACK");
        // Program headers past the end of the file: an error, not a panic.
        let mut truncated = elf(&[(1, 5, 4096), STACK]);
        truncated.truncate(64 + 56);
        assert!(verify(&truncated).unwrap_err().contains("truncated"));
        refused(&[(1, 5, 4096), (0x6474e551, 7, 0)], "executable stack");
        refused(&[(1, 5, MAX_MAPPED + 1), STACK], "more than the 16384");
        // What strip leaves of a finished shim: the segment cut down to the headers.
        refused(&[(1, 5, 0xb0), STACK], "entry point 0x100 is not in");
        assert!(verify(&elf(&[(1, 5, MAX_MAPPED), STACK])).is_ok());
        // A build with longer compiled-in paths may map exactly their extra length more.
        let longer = Some((
            "/a/much/longer/path/to/the/loader/than/nixos/has/ld.so/x/y/z",
            "/run/current-system/sw/share/nix-ld/lib",
        ));
        let extra = allowance(longer);
        assert_eq!(extra, 60 - 45);
        assert!(verify_with(&elf(&[(1, 5, MAX_MAPPED + extra), STACK]), extra).is_ok());
        assert!(verify_with(&elf(&[(1, 5, MAX_MAPPED + extra + 1), STACK]), extra).is_err());
        assert_eq!(allowance(None), 0);
        // A file built for another platform than the one asked about.
        let err = verify_for(&elf(&[(1, 5, 4096), STACK]), &AARCH64, 0).unwrap_err();
        assert!(err.contains("not ELF64 AArch64") && err.contains("e_machine 62"), "{err}");
        assert!(verify_for(&elf(&[(1, 5, 4096), STACK]), &I686, 0).unwrap_err().contains("EI_CLASS 2"));
        assert_eq!(allowance(Some(("/x", "/y"))), 0);
    }
}
