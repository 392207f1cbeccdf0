//! Checks on the built shim: the properties `cargo xtask build` promises, read from the ELF file.

use crate::util::Result;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Facts about the shim, also used by the benchmark.
#[derive(Debug, Default)]
pub struct ShimFacts {
    /// Sum of the PT_LOAD memory sizes.
    pub mapped: u64,
    pub file_size: u64,
}

/// Verifies: ELF64 x86-64, ET_DYN static-pie, no PT_INTERP, no DT_NEEDED, no TEXTREL, only
/// R_X86_64_RELATIVE relocations, no segment both writable and executable, a non-executable stack.
pub fn verify(bytes: &[u8]) -> Result<ShimFacts> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || u16_at(bytes, 18) != 62 {
        return Err("not ELF64 x86-64".into());
    }
    if u16_at(bytes, 16) != 3 {
        return Err("not ET_DYN (a static-pie is ET_DYN)".into());
    }
    let phoff = u64_at(bytes, 32) as usize;
    let phnum = u16_at(bytes, 56) as usize;
    let mut facts = ShimFacts { file_size: bytes.len() as u64, ..Default::default() };
    let mut dynamic = None;
    let mut stack_seen = false;
    for i in 0..phnum {
        let p = &bytes[phoff + i * 56..phoff + (i + 1) * 56];
        let (ty, flags) = (u32_at(p, 0), u32_at(p, 4));
        match ty {
            1 => {
                facts.mapped += u64_at(p, 40);
                if flags & 2 != 0 && flags & 1 != 0 {
                    return Err(format!("program header {i} is both writable and executable"));
                }
            }
            2 => dynamic = Some((u64_at(p, 8) as usize, u64_at(p, 32) as usize)),
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
    if !stack_seen {
        return Err("no PT_GNU_STACK: the kernel would make the stack executable".into());
    }
    let (dyn_off, dyn_size) = dynamic.ok_or("no PT_DYNAMIC: cannot relocate itself")?;
    let (mut rela, mut relasz) = (None, 0);
    for entry in bytes[dyn_off..dyn_off + dyn_size].chunks_exact(16) {
        let (tag, val) = (u64_at(entry, 0), u64_at(entry, 8));
        match tag {
            0 => break,
            1 => return Err("has DT_NEEDED: it links a shared library".into()),
            22 => return Err("has DT_TEXTREL".into()),
            30 if val & 4 != 0 => return Err("has DF_TEXTREL".into()),
            17 | 36 => return Err("has DT_REL or DT_RELR relocations, which _start does not apply".into()),
            23 => return Err("has PLT relocations (DT_JMPREL)".into()),
            7 => rela = Some(val as usize),
            8 => relasz = val as usize,
            _ => {}
        }
    }
    if let Some(rela) = rela {
        // In this layout the first segment maps file offset 0 at address 0, where .rela.dyn lives.
        for r in bytes[rela..rela + relasz].chunks_exact(24) {
            if u64_at(r, 8) & 0xffff_ffff != 8 {
                return Err(format!("relocation of type {} (only R_X86_64_RELATIVE is applied)", u64_at(r, 8) & 0xffff_ffff));
            }
        }
    }
    Ok(facts)
}
