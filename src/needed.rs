//! At `NIX_LD_LOG=info` and above: name every library the program needs that ld.so will not find.
//!
//! ld.so stops at the first missing library; a user fixing a configuration wants the whole list
//! at once, with the directories that were searched.
//!
//! # Safety
//!
//! The program's headers and dynamic section are read from the memory where the kernel mapped
//! them (AT_PHDR), before anything else runs in the process: the kernel validated and mapped these
//! headers, and every string read is NUL-terminated within its string table. Reading stops after
//! [`MAX_NEEDED`] entries and at DT_NULL.

use linux_raw_sys::auxvec;
use nix_ld::libpath::{self, SearchPath};
use nix_ld::log::Level;

use crate::report;
use crate::stack::{CStr, InitialStack};
use crate::sys;

const MAX_NEEDED: usize = 64;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// Name prefixes of glibc's own libraries, which always come with the loader, from its built-in
/// search path; NUL-separated (see `plan::entries`).
const GLIBC_LIBRARIES: &[u8] = b"libc.so.\0libm.so.\0libpthread.so.\0libdl.so.\0librt.so.\0libresolv.so.\0libutil.so.\0ld-linux-x86-64.so.\0";

fn ships_with_glibc(name: &[u8]) -> bool {
    nix_ld::plan::entries(GLIBC_LIBRARIES).any(|prefix| name.starts_with(prefix))
}

/// Whether `dir/name` exists; `dir` may contain `$ORIGIN`, which is `origin`.
fn exists_in(dir: &[u8], name: &[u8], origin: &[u8]) -> bool {
    let (origin, dir) = match dir.strip_prefix(b"$ORIGIN") {
        Some(rest) => (origin, rest),
        None => (&b""[..], dir),
    };
    sys::with_c_string(&[origin, dir, b"/", name], sys::exists).unwrap_or(false)
}

/// Logs the program's missing libraries, if any; called only when info level is on.
pub fn report_missing(log: report::Log, stack: &InitialStack, program: &[u8], path: &SearchPath<'_>) {
    let (Some(phdr), Some(phnum)) = (stack.aux(auxvec::AT_PHDR), stack.aux(auxvec::AT_PHNUM)) else { return };
    // SAFETY: the kernel mapped `phnum` program headers at AT_PHDR (module contract).
    let headers = unsafe { core::slice::from_raw_parts(phdr as *const [u64; 7], phnum) };
    let field = |h: &[u64; 7], i: usize| h[i];
    let bias = match headers.iter().find(|h| field(h, 0) as u32 == 6) {
        Some(h) => phdr.wrapping_sub(field(h, 2) as usize),
        None => return,
    };
    let Some(dynamic) = headers.iter().find(|h| field(h, 0) as u32 == 2) else { return };
    let dynamic = bias.wrapping_add(field(dynamic, 2) as usize) as *const [u64; 2];
    let (mut strtab, mut needed, mut count, mut search) = (0usize, [0u64; MAX_NEEDED], 0, [0u64; 2]);
    let mut i = 0;
    loop {
        // SAFETY: the dynamic section ends with DT_NULL (module contract).
        let [tag, value] = unsafe { *dynamic.add(i) };
        match tag {
            0 => break,
            DT_NEEDED if count < MAX_NEEDED => {
                needed[count] = value;
                count += 1;
            }
            DT_STRTAB => strtab = bias.wrapping_add(value as usize),
            DT_RPATH => search[0] = value + 1,
            DT_RUNPATH => search[1] = value + 1,
            _ => {}
        }
        i += 1;
    }
    if strtab == 0 {
        return;
    }
    let string = |offset: u64| CStr((strtab + offset as usize) as *const u8).bytes();
    let origin = program.rsplit_once_slash();
    let mut missing: [&[u8]; MAX_NEEDED] = [&[]; MAX_NEEDED];
    let mut missing_count = 0;
    for &offset in &needed[..count] {
        let name = string(offset);
        let found = ships_with_glibc(name)
            || if name.contains(&b'/') {
                // ld.so opens a name with a slash as a path, as is.
                exists_in(b".", name, b"") || (name[0] == b'/' && exists_in(b"", &name[1..], b""))
            } else {
                let own = search.iter().filter(|&&s| s != 0).flat_map(|&s| libpath::components(string(s - 1)));
                path.dirs().chain(own).any(|dir| exists_in(dir, name, origin))
            };
        if !found {
            missing[missing_count] = name;
            missing_count += 1;
        }
    }
    if missing_count == 0 {
        return;
    }
    if let Some(mut m) = log.line(Level::Info) {
        m.bytes(b"missing libraries of ").bytes(program).bytes(b":");
        for name in &missing[..missing_count] {
            m.bytes(b" ").bytes(name);
        }
        m.bytes(b" (searched the library path ");
        m.bytes(if path.nix.is_empty() { b"(none)" } else { path.nix });
        m.bytes(b", LD_LIBRARY_PATH and the program's RUNPATH)");
        m.end();
    }
    if let Some(mut m) = log.line(Level::Info) {
        m.bytes(b"hint: add the packages that provide them to programs.nix-ld-rs.libraries, or their directories to NIX_LD_LIBRARY_PATH");
        m.end();
    }
}

trait DirName {
    fn rsplit_once_slash(&self) -> &[u8];
}

impl DirName for &[u8] {
    /// The directory part of a path, for `$ORIGIN`.
    fn rsplit_once_slash(&self) -> &[u8] {
        match self.iter().rposition(|&b| b == b'/') {
            Some(0) => b"/",
            Some(i) => &self[..i],
            None => b".",
        }
    }
}
