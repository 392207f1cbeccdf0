//! The section table the shim file ends with: what debuggers and tracers read from the file that
//! programs name as their interpreter, written after linking.
//!
//! The kernel maps the shim from its program headers and never reads sections; gdb and ltrace read
//! only sections. Both find ld.so through the program's PT_INTERP, which names the shim's file,
//! and ld.so names its own link-map entry after PT_INTERP too, so they take the shim's file to be
//! ld.so and load it at ld.so's base (the entry's `l_addr`). What they read there must describe
//! ld.so truthfully or say nothing:
//!
//! - **`.text`, SHT_NOBITS, allocated and executable, from address 0 for [`LOADER_TEXT`] bytes.**
//!   gdb trusts the `r_brk` hook that ld.so writes into `r_debug` only if the address lies in a
//!   section of some object it knows (solib-svr4.c, `enable_break`); without one, attaching to a
//!   running program or opening a core file cannot follow `dlopen`. gdb also takes `.text` as the
//!   range of "dynamic linker code" that `step` goes through rather than stopping in (a first call
//!   through the PLT runs ld.so's resolver, then its lookup code). Placed at ld.so's base, this
//!   section covers all of ld.so's code and nothing else, because the shim keeps that much address
//!   space for ld.so. NOBITS: it claims no bytes of the file, so gdb reads the process's memory,
//!   which is ld.so's real code.
//! - **An empty `.dynsym` with its `.dynstr`, not allocated.** ltrace refuses to trace a process
//!   whose loader file has no dynamic symbol table (`Couldn't find .dynsym or .dynstr`); it finds
//!   its hook through the link map, never through symbols in this file.
//! - **No symbol table.** Placed at ld.so's base, the shim's own function names would name ld.so's
//!   code wrongly in gdb's backtraces, and `ltrace -x` would plant breakpoints at them, inside
//!   ld.so. No `_dl_debug_state` either: gdb looks for it in this file at `run`, relocated by the
//!   shim's own base (AT_BASE in the kernel's auxv), where ld.so is not.
//! - **`.nix-ld.hooks`, from the linker script**: the address where the shim jumps into ld.so
//!   (`nix_ld_enter_loader`), for gdb's helper, gdb/nix-ld.py. At `run`, gdb looks for ld.so's
//!   hook before ld.so exists; the helper stops there instead, finds ld.so's own
//!   `_dl_debug_state` in ld.so's file, and has gdb take up ld.so's hook from its first call.
//! - **`.nix-ld.version`, from the linker script**: the shim's version and the defaults compiled
//!   into it, each ending in a NUL, which `nix-ld-doctor --status` reads from the installed file.
//!   Not allocated, like the hooks: it costs no mapped byte.
//! - **`.dep-v0`, kept when present**: cargo-auditable's record of the crates built in, which
//!   nixpkgs adds to every Rust package for vulnerability scanners.

use crate::util::{u16_at, u32_at, u64_at, Result};

/// The span from ld.so's base that the `.text` section claims: all of ld.so's code, and no other
/// object's, because the shim keeps that much address space for ld.so
/// (`nix_ld::LOADER_RESERVATION`, src/loader.rs).
pub const LOADER_TEXT: u64 = nix_ld::LOADER_RESERVATION as u64;

const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_NOBITS: u32 = 8;
const SHT_DYNSYM: u32 = 11;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const SYM_SIZE: u64 = 24;
const SHDR_SIZE: usize = 64;

/// The section holding the address of `nix_ld_enter_loader`.
pub const HOOKS: &str = ".nix-ld.hooks";

/// The section holding the shim's version and compiled-in defaults (src/main.rs).
pub const VERSION: &str = ".nix-ld.version";

/// Sections kept from the linker's output, by name.
const KEPT: &[&str] = &[HOOKS, VERSION, ".dep-v0"];

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub align: u64,
    pub entsize: u64,
}

/// The section headers of an ELF64 file, with their names.
pub fn read(b: &[u8]) -> Result<Vec<Section>> {
    let (shoff, shnum, shstrndx) = (u64_at(b, 40)? as usize, u16_at(b, 60)? as usize, u16_at(b, 62)? as usize);
    let header = |i: usize| shoff + i * SHDR_SIZE;
    let names_at = if shnum > shstrndx { u64_at(b, header(shstrndx) + 24)? as usize } else { 0 };
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let name_at = names_at + u32_at(b, h)? as usize;
            let name =
                b.get(name_at..).and_then(|s| s.split(|&c| c == 0).next()).ok_or("section name outside the file")?;
            Ok(Section {
                name: String::from_utf8_lossy(name).into_owned(),
                kind: u32_at(b, h + 4)?,
                flags: u64_at(b, h + 8)?,
                addr: u64_at(b, h + 16)?,
                offset: u64_at(b, h + 24)?,
                size: u64_at(b, h + 32)?,
                link: u32_at(b, h + 40)?,
                info: u32_at(b, h + 44)?,
                align: u64_at(b, h + 48)?,
                entsize: u64_at(b, h + 56)?,
            })
        })
        .collect()
}

/// The end of the last byte the program headers map from the file.
fn loaded_end(b: &[u8]) -> Result<usize> {
    let (phoff, phnum) = (u64_at(b, 32)? as usize, u16_at(b, 56)? as usize);
    let mut end = 0;
    for i in 0..phnum {
        let p = phoff + 56 * i;
        if u32_at(b, p)? == 1 {
            end = end.max(u64_at(b, p + 8)? + u64_at(b, p + 32)?);
        }
    }
    Ok(end as usize)
}

/// The linked shim with its section table replaced by the one described above: the file up to
/// the end of what is mapped, unchanged, then the kept sections' bytes, the dynamic symbol table
/// and its strings, the section names and the new section headers. Finishing a finished file
/// gives the same file.
pub fn finish(linked: &[u8]) -> Result<Vec<u8>> {
    if linked.len() < 64 || &linked[..4] != b"\x7fELF" || linked[4] != 2 {
        return Err("not an ELF64 file".into());
    }
    let old = read(linked)?;
    let mut out = linked.get(..loaded_end(linked)?).ok_or("program headers map past the end of the file")?.to_vec();
    let align = |out: &mut Vec<u8>, to: usize| out.resize(out.len().div_ceil(to) * to, 0);

    let mut names = vec![0u8];
    let mut name = |n: &str| {
        let at = names.len() as u32;
        names.extend_from_slice(n.as_bytes());
        names.push(0);
        at
    };
    let mut headers: Vec<(u32, Section)> = vec![(
        0,
        Section {
            name: String::new(),
            kind: 0,
            flags: 0,
            addr: 0,
            offset: 0,
            size: 0,
            link: 0,
            info: 0,
            align: 0,
            entsize: 0,
        },
    )];
    let text = Section {
        name: ".text".into(),
        kind: SHT_NOBITS,
        flags: SHF_ALLOC | SHF_EXECINSTR,
        addr: 0,
        offset: 0,
        size: LOADER_TEXT,
        link: 0,
        info: 0,
        align: 16,
        entsize: 0,
    };
    headers.push((name(".text"), text));
    align(&mut out, 8);
    let dynsym_at = out.len() as u64;
    out.extend_from_slice(&[0; SYM_SIZE as usize]);
    let dynstr_at = out.len() as u64;
    out.push(0);
    let dynstr_index = headers.len() as u32 + 1;
    // info: one past the last local symbol, the null symbol.
    let dynsym = Section {
        name: ".dynsym".into(),
        kind: SHT_DYNSYM,
        flags: 0,
        addr: 0,
        offset: dynsym_at,
        size: SYM_SIZE,
        link: dynstr_index,
        info: 1,
        align: 8,
        entsize: SYM_SIZE,
    };
    headers.push((name(".dynsym"), dynsym));
    let dynstr = Section {
        name: ".dynstr".into(),
        kind: SHT_STRTAB,
        flags: 0,
        addr: 0,
        offset: dynstr_at,
        size: 1,
        link: 0,
        info: 0,
        align: 1,
        entsize: 0,
    };
    headers.push((name(".dynstr"), dynstr));
    for s in
        old.iter().filter(|s| KEPT.contains(&s.name.as_str()) && s.kind == SHT_PROGBITS && s.flags & SHF_ALLOC == 0)
    {
        let bytes = linked
            .get(s.offset as usize..(s.offset + s.size) as usize)
            .ok_or_else(|| format!("section {} lies outside the file", s.name))?;
        align(&mut out, s.align.max(1) as usize);
        let kept = Section { offset: out.len() as u64, ..s.clone() };
        out.extend_from_slice(bytes);
        headers.push((name(&s.name), kept));
    }
    let shstrndx = headers.len();
    let names_name = name(".shstrtab");
    let names_at = out.len() as u64;
    out.extend_from_slice(&names);
    headers.push((
        names_name,
        Section {
            name: ".shstrtab".into(),
            kind: SHT_STRTAB,
            flags: 0,
            addr: 0,
            offset: names_at,
            size: names.len() as u64,
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
    ));

    align(&mut out, 8);
    let shoff = out.len() as u64;
    for (name_at, s) in &headers {
        out.extend_from_slice(&name_at.to_le_bytes());
        out.extend_from_slice(&s.kind.to_le_bytes());
        for v in [s.flags, s.addr, s.offset, s.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&s.link.to_le_bytes());
        out.extend_from_slice(&s.info.to_le_bytes());
        out.extend_from_slice(&s.align.to_le_bytes());
        out.extend_from_slice(&s.entsize.to_le_bytes());
    }
    out[40..48].copy_from_slice(&shoff.to_le_bytes());
    out[58..60].copy_from_slice(&(SHDR_SIZE as u16).to_le_bytes());
    out[60..62].copy_from_slice(&(headers.len() as u16).to_le_bytes());
    out[62..64].copy_from_slice(&(shstrndx as u16).to_le_bytes());
    Ok(out)
}

/// Checks a finished section table: exactly the sections [`finish`] writes (and the kept ones),
/// so no symbol table, note or dynamic section has crept in, and nothing claims more of ld.so's
/// addresses than [`LOADER_TEXT`].
pub fn verify(b: &[u8]) -> Result<()> {
    let sections = read(b)?;
    let names: Vec<&str> = sections.iter().map(|s| s.name.as_str()).filter(|n| !n.is_empty()).collect();
    let expected = [".text", ".dynsym", ".dynstr", HOOKS, VERSION];
    let unexpected: Vec<&&str> =
        names.iter().filter(|n| !expected.contains(n) && !KEPT.contains(n) && **n != ".shstrtab").collect();
    if !unexpected.is_empty() || !expected.iter().all(|e| names.contains(e)) {
        return Err(format!(
            "sections {names:?}: a finished shim has exactly .text (NOBITS), an empty .dynsym and .dynstr, .nix-ld.hooks, .nix-ld.version, .shstrtab and optionally .dep-v0 (xtask/src/sections.rs says why)"
        ));
    }
    for s in &sections {
        let ok = match s.name.as_str() {
            ".text" => {
                s.kind == SHT_NOBITS && s.addr == 0 && s.size == LOADER_TEXT && s.flags == SHF_ALLOC | SHF_EXECINSTR
            }
            ".dynsym" => {
                s.kind == SHT_DYNSYM
                    && s.flags & SHF_ALLOC == 0
                    && s.size == SYM_SIZE
                    && b.get(s.offset as usize..(s.offset + s.size) as usize)
                        .is_some_and(|sym| sym.iter().all(|&x| x == 0))
            }
            HOOKS => s.size == 8 && s.flags & SHF_ALLOC == 0 && hook_in_code(b, s),
            VERSION => {
                s.flags & SHF_ALLOC == 0
                    && b.get(s.offset as usize..(s.offset + s.size) as usize).is_some_and(|v| {
                        v.starts_with(b"nix-ld ") && v.ends_with(&[0]) && v.iter().filter(|&&c| c == 0).count() == 3
                    })
            }
            _ => s.flags & SHF_ALLOC == 0,
        };
        if !ok {
            return Err(format!("section {} is not as xtask/src/sections.rs writes it: {s:?}", s.name));
        }
    }
    Ok(())
}

/// Whether the hook section's address lies in what the program headers map.
fn hook_in_code(b: &[u8], hooks: &Section) -> bool {
    let at = u64_at(b, hooks.offset as usize).ok();
    matches!((at, loaded_end(b)), (Some(at), Ok(end)) if at > 0 && (at as usize) < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal linked file: an ELF header, one PT_LOAD of `code` bytes, a `.symtab`, the hook
    /// section pointing into the code and, with `audit`, a `.dep-v0` section.
    fn linked(code: usize, audit: bool) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&(code as u64).to_le_bytes());
        b.resize(code, 0xcc);
        let mut contents: Vec<(&str, u32, Vec<u8>)> =
            vec![(".symtab", 2, vec![7; 48]), (HOOKS, SHT_PROGBITS, 150u64.to_le_bytes().to_vec())];
        contents.push((VERSION, SHT_PROGBITS, b"nix-ld 0.1.0\0/l/ld.so\0/l\0".to_vec()));
        if audit {
            contents.push((".dep-v0", SHT_PROGBITS, b"audit-data".to_vec()));
        }
        let mut names = vec![0u8];
        let mut placed = Vec::new();
        for (name, kind, bytes) in &contents {
            placed.push((names.len() as u32, *kind, b.len() as u64, bytes.len() as u64));
            names.extend_from_slice(name.as_bytes());
            names.push(0);
            b.extend_from_slice(bytes);
        }
        let names_name = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");
        placed.push((names_name, SHT_STRTAB, b.len() as u64, names.len() as u64));
        b.extend_from_slice(&names);
        let shoff = b.len() as u64;
        b.extend_from_slice(&[0; 64]);
        for (name, kind, offset, size) in &placed {
            let mut h = [0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&offset.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[48..56].copy_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&h);
        }
        b[40..48].copy_from_slice(&shoff.to_le_bytes());
        b[60..62].copy_from_slice(&(placed.len() as u16 + 1).to_le_bytes());
        b[62..64].copy_from_slice(&(placed.len() as u16).to_le_bytes());
        b
    }

    #[test]
    fn the_mapped_bytes_stay_and_the_symbols_go() {
        let before = linked(300, false);
        let after = finish(&before).unwrap();
        assert_eq!(after[64..300], before[64..300]);
        let names: Vec<String> = read(&after).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["", ".text", ".dynsym", ".dynstr", HOOKS, VERSION, ".shstrtab"]);
        verify(&after).unwrap();
        assert!(verify(&before).is_err(), "a .symtab must be refused");
    }

    #[test]
    fn the_dynamic_symbol_table_links_its_strings_and_text_covers_the_loaders_code() {
        let after = finish(&linked(200, false)).unwrap();
        let s = read(&after).unwrap();
        assert_eq!(s[2].kind, SHT_DYNSYM);
        assert_eq!(s[s[2].link as usize].name, ".dynstr");
        assert_eq!((s[1].kind, s[1].addr, s[1].size), (SHT_NOBITS, 0, LOADER_TEXT));
    }

    #[test]
    fn cargo_auditables_section_is_kept_and_finishing_twice_changes_nothing() {
        let once = finish(&linked(256, true)).unwrap();
        let audit = read(&once).unwrap().into_iter().find(|s| s.name == ".dep-v0").unwrap();
        assert_eq!(&once[audit.offset as usize..][..10], b"audit-data");
        verify(&once).unwrap();
        assert_eq!(finish(&once).unwrap(), once);
    }
}
