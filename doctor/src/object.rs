//! What one ELF object says about its loading: its soname, the libraries it names (DT_NEEDED),
//! where it asks for them to be looked for (DT_RPATH, DT_RUNPATH, DF_1_NODEFLIB), the symbol
//! versions it needs from each and the ones it defines, read with goblin.

use goblin::elf::dynamic::{DF_1_NODEFLIB, DF_1_PIE, DT_FLAGS_1};
use goblin::elf::header::{ET_DYN, ET_EXEC};

/// The ELF facts of one object that loading depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Object {
    pub class64: bool,
    pub machine: u16,
    /// PT_INTERP, for a program.
    pub interpreter: Option<String>,
    /// Static (no PT_INTERP and nothing to load): an ET_EXEC without PT_INTERP, or a static PIE.
    pub is_static: bool,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// DT_RPATH, only when there is no DT_RUNPATH (ld.so ignores it then).
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub nodeflib: bool,
    /// (file the version is needed from, version), from the version-needed table.
    pub version_needs: Vec<(String, String)>,
    /// The versions it defines; empty when it has no version-definition table.
    pub version_defs: Vec<String>,
}

impl Object {
    /// Whether this is a program (it names a loader) rather than a library or a plugin.
    pub fn is_program(&self) -> bool {
        self.interpreter.is_some()
    }

    /// Whether the shim's loader can load it: x86-64, 64-bit.
    pub fn is_x86_64(&self) -> bool {
        self.is_for(nix_ld::target::X86_64)
    }

    /// Whether a loader of `platform` can load it: its machine and its class.
    pub fn is_for(&self, platform: nix_ld::target::Platform) -> bool {
        self.class64 == (platform.class == 2) && self.machine == platform.machine
    }
}

/// Reads `bytes` (a whole file) as an ELF program or shared object; None when it is not one (not
/// ELF, a relocatable `.o`, a core file, or headers goblin cannot read).
pub fn parse(bytes: &[u8]) -> Option<Object> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    if elf.header.e_type != ET_EXEC && elf.header.e_type != ET_DYN {
        return None;
    }
    let split = |paths: &[&str]| paths.iter().flat_map(|p| p.split(':')).map(str::to_string).collect::<Vec<_>>();
    let runpath = split(&elf.runpaths);
    let rpath = if runpath.is_empty() { split(&elf.rpaths) } else { Vec::new() };
    let flags_1 =
        elf.dynamic.as_ref().and_then(|d| d.dyns.iter().find(|d| d.d_tag == DT_FLAGS_1)).map_or(0, |d| d.d_val);
    let interpreter = elf.interpreter.map(str::to_string);
    let is_static = interpreter.is_none()
        && (elf.dynamic.is_none() || elf.header.e_type == ET_EXEC || flags_1 & DF_1_PIE != 0)
        && elf.libraries.is_empty();
    let mut version_needs = Vec::new();
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            let file = elf.dynstrtab.get_at(need.vn_file).unwrap_or_default().to_string();
            for aux in need.iter() {
                if let Some(name) = elf.dynstrtab.get_at(aux.vna_name) {
                    version_needs.push((file.clone(), name.to_string()));
                }
            }
        }
    }
    let mut version_defs = Vec::new();
    if let Some(verdef) = &elf.verdef {
        for def in verdef.iter() {
            if let Some(aux) = def.iter().next() {
                if let Some(name) = elf.dynstrtab.get_at(aux.vda_name) {
                    version_defs.push(name.to_string());
                }
            }
        }
    }
    Some(Object {
        class64: elf.is_64,
        machine: elf.header.e_machine,
        interpreter,
        is_static,
        soname: elf.soname.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath,
        runpath,
        nodeflib: flags_1 & DF_1_NODEFLIB != 0,
        version_needs,
        version_defs,
    })
}

/// Reads the ELF file at `path`; None when it cannot be read or is not an ELF object.
pub fn read(path: &std::path::Path) -> Option<Object> {
    parse(&std::fs::read(path).ok()?)
}

/// Whether the first bytes of a file are ELF's magic, without reading the rest.
pub fn looks_like_elf(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_an_elf_object_is_none() {
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(b""), None);
    }

    #[test]
    fn a_real_library_and_program_read_as_such() {
        // The doctor's own test binary is a PIE program; libm is a library (libc.so.6 names a loader: it runs).
        let me = read(&std::env::current_exe().unwrap()).unwrap();
        assert!(me.is_program() && !me.is_static && me.is_x86_64(), "{me:?}");
        assert!(me.needed.iter().any(|n| n.starts_with("libc.so")), "{me:?}");
        assert!(me.version_needs.iter().any(|(f, v)| f.starts_with("libc.so") && v.starts_with("GLIBC_2.")));
        let libc = ["/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
            .iter()
            .find_map(|p| read(std::path::Path::new(p)))
            .expect("the machine's libm.so.6");
        assert!(!libc.is_program() && !libc.is_static, "{libc:?}");
        assert_eq!(libc.soname.as_deref(), Some("libm.so.6"));
        assert!(libc.version_defs.iter().any(|v| v == "GLIBC_2.2.5"), "{:?}", libc.version_defs);
    }
}
