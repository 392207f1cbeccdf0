//! `nix-ld` run with no arguments: which loader and library path it would use, and why.

use nix_ld::plan::Choice;
use nix_ld::text::Message;

use crate::arch;
use crate::loader;
use crate::report::{self, Stderr, Stdout};

/// Prints the status screen and exits 0, or 127 when the loader is unusable.
///
/// # Safety
/// `choice` comes from `plan::choose` over the kernel's block: the byte after its loader path is
/// readable.
pub unsafe fn print(choice: &Choice<'_>) -> ! {
    let mut m = Message::new(Stdout);
    m.bytes(b"nix-ld ").bytes(env!("CARGO_PKG_VERSION").as_bytes());
    m.bytes(b": runs programs built for other Linux distributions on NixOS.");
    m.end();
    m.bytes(b"Install it as /lib64/ld-linux-x86-64.so.2; run as a command it behaves like ld.so (try --help).");
    m.end();
    report::settings(Stdout, b"loader:       ", b"library path: ", choice);
    // SAFETY: per the function's contract.
    match unsafe { loader::inspect(choice.loader, &mut [core::mem::MaybeUninit::uninit(); nix_ld::elf::HEAD_LEN]) } {
        Ok(_) => {
            m.bytes(b"The loader is a valid x86-64 ELF loader.");
            m.end();
            arch::exit_group(0)
        }
        Err(problem) => {
            let mut e = Message::new(Stderr);
            e.bytes(b"nix-ld: loader ").bytes(choice.loader).bytes(b" ");
            problem.write_cause(&mut e);
            e.end();
            arch::exit_group(nix_ld::problem::EXIT_CANNOT_RUN)
        }
    }
}
