//! At `NIX_LD_LOG=info` and above: name every library the program needs that ld.so will not find.
//!
//! ld.so stops at the first missing library; a user fixing a configuration wants the whole list
//! at once, with the directories that were searched.
//!
//! # Safety
//!
//! The program's headers and dynamic section are read from the memory where the kernel mapped
//! them (AT_PHDR), before anything else runs in the process: the kernel validated and mapped these
//! headers, and every string read is NUL-terminated within its string table. Reading stops at
//! DT_NULL, or after [`MAX_DYNAMIC`] entries in a malformed program.

use linux_raw_sys::auxvec;
use nix_ld::libpath::{self, SearchPath};
use nix_ld::log::Level;
use nix_ld::plan;
use nix_ld::text::Message;

use crate::report::{Log, Output};
use crate::stack::{CStr, InitialStack};
use crate::sys;

const MAX_DYNAMIC: usize = 4096;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const PT_DYNAMIC: u64 = 2;
const PT_PHDR: u64 = 6;

/// Name prefixes of glibc's own libraries, which always come with the loader, from its built-in
/// search path; NUL-separated (see `plan::entries`).
const GLIBC_LIBRARIES: &[u8] = b"libc.so.\0libm.so.\0libpthread.so.\0libdl.so.\0librt.so.\0libresolv.so.\0libutil.so.\0ld-linux-x86-64.so.\0";

/// The program's dynamic section: its entries, and where its strings are.
struct Dynamic {
    entries: *const [u64; 2],
    strings: usize,
}

impl Dynamic {
    /// Finds the dynamic section through the program headers the kernel passed.
    fn of(stack: &InitialStack) -> Option<Dynamic> {
        let (phdr, phnum) = (stack.aux(auxvec::AT_PHDR)?, stack.aux(auxvec::AT_PHNUM)?);
        // SAFETY: the kernel mapped `phnum` program headers at AT_PHDR (module contract).
        let headers = unsafe { core::slice::from_raw_parts(phdr as *const [u64; 7], phnum) };
        let (mut bias, mut dynamic) = (None, None);
        for h in headers {
            match h[0] & 0xffff_ffff {
                PT_PHDR => bias = Some(phdr.wrapping_sub(h[2] as usize)),
                PT_DYNAMIC => dynamic = Some(h[2] as usize),
                _ => {}
            }
        }
        let (bias, dynamic) = (bias?, dynamic?);
        let mut found = Dynamic { entries: bias.wrapping_add(dynamic) as *const [u64; 2], strings: 0 };
        let mut strings = 0;
        found.each(|tag, value| {
            if tag == DT_STRTAB {
                strings = bias.wrapping_add(value as usize);
            }
        });
        found.strings = strings;
        (strings != 0).then_some(found)
    }

    /// Calls `f(tag, value)` for each entry before DT_NULL.
    fn each(&self, mut f: impl FnMut(u64, u64)) {
        for i in 0..MAX_DYNAMIC {
            // SAFETY: the dynamic section ends with DT_NULL (module contract).
            let [tag, value] = unsafe { *self.entries.add(i) };
            if tag == 0 {
                return;
            }
            f(tag, value);
        }
    }

    fn string(&self, offset: u64) -> &'static [u8] {
        CStr((self.strings + offset as usize) as *const u8).bytes()
    }
}

/// Whether `dir/name` exists; `dir` may start with `$ORIGIN`, which is `origin`.
fn exists_in(dir: &[u8], name: &[u8], origin: &[u8]) -> bool {
    let (origin, dir) = match dir.strip_prefix(b"$ORIGIN") {
        Some(rest) => (origin, rest),
        None => (&b""[..], dir),
    };
    sys::with_c_string(&[origin, dir, b"/", name], sys::exists).unwrap_or(false)
}

/// Whether ld.so will find `name`: a glibc library, a path, or a file in one of the directories.
fn found(name: &[u8], path: &SearchPath<'_>, own: [&[u8]; 2], origin: &[u8]) -> bool {
    if plan::entries(GLIBC_LIBRARIES).any(|prefix| name.starts_with(prefix)) {
        return true;
    }
    if name.contains(&b'/') {
        // ld.so opens a name with a slash as a path, as is.
        return sys::with_c_string(&[name], sys::exists).unwrap_or(false);
    }
    if path.dirs().any(|dir| exists_in(dir, name, origin)) {
        return true;
    }
    own.iter().any(|list| libpath::components(list).any(|dir| exists_in(dir, name, origin)))
}

/// Logs the program's missing libraries, if any; called only when info level is on.
pub fn report_missing(log: Log, stack: &InitialStack, program: &[u8], path: &SearchPath<'_>) {
    let Some(dynamic) = Dynamic::of(stack) else { return };
    let mut own: [&[u8]; 2] = [b"", b""];
    dynamic.each(|tag, value| match tag {
        DT_RPATH => own[0] = dynamic.string(value),
        DT_RUNPATH => own[1] = dynamic.string(value),
        _ => {}
    });
    let origin = match program.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &program[..i],
        None => b".",
    };
    let mut line: Option<Message<Output>> = None;
    dynamic.each(|tag, value| {
        if tag != DT_NEEDED {
            return;
        }
        let name = dynamic.string(value);
        if found(name, path, own, origin) {
            return;
        }
        if line.is_none() {
            line = log.line(Level::Info);
            if let Some(m) = &mut line {
                m.bytes(b"missing libraries of ").bytes(program).bytes(b":");
            }
        }
        if let Some(m) = &mut line {
            m.bytes(b" ").bytes(name);
        }
    });
    let Some(mut m) = line else { return };
    m.bytes(b" (searched the library path ");
    m.bytes(if path.nix.is_empty() { b"(none)" } else { path.nix });
    m.bytes(b", LD_LIBRARY_PATH and the program's RUNPATH)");
    m.end();
    if let Some(mut m) = log.line(Level::Info) {
        m.bytes(b"hint: add the packages that provide them to programs.nix-ld-rs.libraries, or their directories to NIX_LD_LIBRARY_PATH");
        m.end();
    }
}
