//! nix-ld: the program interpreter that lets NixOS run binaries built for other Linux distributions.
//!
//! The kernel starts this shim in place of the system's glibc loader (`/lib64/ld-linux-x86-64.so.2`
//! on x86-64; `nix_ld::target` names each platform's). It chooses the real loader and the library
//! path (`nix_ld::plan`), maps the loader (`loader`), and hands the process over (`handover`), so
//! that ld.so sees the Nix library directories and the program does not.
//!
//! `arch`'s `_start` calls [`start`] at once: the shim has no writable data and so nothing to
//! relocate (see `linker.ld`). From there on, everything is ordinary Rust with errors as values,
//! and a failure ends as one line on stderr and exit status 127, never as a panic or a signal.
// The shim is a freestanding program; as a test target (`cargo clippy --all-targets`) it would
// clash with std's panic handler and entry point, and its logic is tested in the library.
#![cfg(not(test))]
#![no_std]
#![no_main]

#[cfg_attr(target_arch = "x86_64", path = "arch/x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "arch/aarch64.rs")]
#[cfg_attr(target_arch = "riscv64", path = "arch/riscv64.rs")]
#[cfg_attr(target_arch = "x86", path = "arch/x86.rs")]
mod arch;
mod entry;
mod handover;
mod loader;
#[cfg_attr(not(target_arch = "x86_64"), path = "mem/portable.rs")]
mod mem;
mod report;
mod stack;
mod sys;
mod trampoline;

use linux_raw_sys::auxvec;
use nix_ld::elf::Pages as _;
use nix_ld::plan;
use nix_ld::target::Pages;

use handover::Mode;
use stack::{CStr, InitialStack};

/// Called by `_start` with the kernel's stack pointer.
///
/// # Safety
/// `sp` must be the stack pointer the kernel passed to `_start`; only `_start` calls this.
#[no_mangle]
pub unsafe extern "C" fn start(sp: *mut usize) -> ! {
    // SAFETY: per the function's contract, `sp` is the kernel's initial stack pointer.
    let (stack, scan) = unsafe { InitialStack::read(sp) };
    let secure = stack.secure;
    let log = report::Log::configure(&scan, secure);
    let mut choice = plan::choose(&scan, secure);
    let interpreter = stack.interpreter;
    report::choice(log, &choice);
    let pages = Pages::from_auxv(|| stack.aux(auxvec::AT_PAGESZ).map(|size| size as u64));
    // At most twice: the second choice is the compiled-in loader, which is never passed over.
    let loader = loop {
        // SAFETY: `choice.loader` is an environment value from the kernel's block or a compiled-in
        // default, so the byte after it is readable (plan::choose).
        match unsafe { loader::load(choice.loader, log, !interpreter, pages) } {
            Ok(loader) => break loader,
            Err(problem) if plan::passes_over(&choice, &problem) => {
                choice = plan::without_plain_names(choice);
                report::passed_over(log, &problem, &choice);
            }
            Err(problem) => {
                report::cannot_run(program_name(&stack), choice.loader, choice.loader_source, secure, problem)
            }
        }
    };
    let mut search = plan::search_path(&scan, &choice);
    if !secure {
        // SAFETY: each directory is a component of `choice.library_path` (as above, the byte after
        // that path is readable), so the byte after it is a ':' or that byte.
        search.leave_out(|dir| unsafe { sys::is_directory(dir) });
        report::left_out(log, &search);
    }
    let mode = if interpreter {
        Mode::Interpreter { edit: plan::env_edit(&scan, search, secure) }
    } else {
        let args = stack.argv()[1..].iter().map(|a| a.bytes());
        let wanted = search.needs_edit() && !plan::sets_library_path(args);
        Mode::Command { library_path: wanted.then_some(search) }
    };
    handover::run(&stack, &loader, mode, log)
}

/// The program's name, for messages only (so it is measured only for them).
#[cold]
#[inline(never)]
fn program_name(stack: &InitialStack) -> &'static [u8] {
    let argv = stack.argv();
    let name = if stack.interpreter {
        stack.aux(auxvec::AT_EXECFN).map(|p| CStr(p as *const u8)).or(argv.first().copied())
    } else {
        argv.get(1).copied()
    };
    name.map(CStr::bytes).unwrap_or(b"the program")
}

/// What `nix-ld-doctor --status` reads from the installed shim's file: its version and the
/// defaults compiled into it, each followed by a NUL. The section is not loaded (linker.ld), so
/// this costs no mapped byte; the code never refers to it (`#[used]` keeps it).
#[used]
#[link_section = ".nix-ld.version"]
static VERSION: [u8; VERSION_LEN] = version();

const VERSION_TEXT: &[u8] = concat!("nix-ld ", env!("CARGO_PKG_VERSION")).as_bytes();
const VERSION_LEN: usize =
    VERSION_TEXT.len() + nix_ld::defaults::LOADER.len() + nix_ld::defaults::LIBRARY_PATH.len() + 3;

const fn version() -> [u8; VERSION_LEN] {
    let mut out = [0; VERSION_LEN];
    let parts = [VERSION_TEXT, nix_ld::defaults::LOADER, nix_ld::defaults::LIBRARY_PATH];
    let (mut at, mut p) = (0, 0);
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            out[at] = parts[p][i];
            at += 1;
            i += 1;
        }
        at += 1; // the NUL
        p += 1;
    }
    out
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Unreachable by design (errors are values); if it ever happens, say so and stop cleanly.
    sys::write_all(2, b"nix-ld: internal error\n");
    arch::exit_group(nix_ld::problem::EXIT_CANNOT_RUN)
}
