//! Diagnostics on stderr: the `NIX_LD_LOG` level and the fatal "cannot run" path.
//!
//! A message is only built when its level is enabled, so logging that is off costs one comparison.
//! The level travels as a value ([`Log`]), not in a static: the shim has no writable data, so
//! the kernel maps one segment and no page is copied on write at each exec.

use nix_ld::envscan::EnvScan;
use nix_ld::libpath::SearchPath;
use nix_ld::log::{self, Level};
use nix_ld::plan::{Choice, Source};
use nix_ld::problem::{Problem, EXIT_CANNOT_RUN};
use nix_ld::text::{Message, Sink};

use crate::arch;
use crate::sys;

/// A file descriptor to print to.
pub struct Output(pub i32);

/// Standard error.
#[allow(non_upper_case_globals)]
pub const Stderr: Output = Output(2);

impl Sink for Output {
    fn write_all(&mut self, bytes: &[u8]) {
        sys::write_all(self.0, bytes);
    }
}

/// The configured verbosity: which diagnostics to print.
#[derive(Clone, Copy)]
pub struct Log(Level);

impl Log {
    /// The level from `NIX_LD_LOG`. A privileged program keeps the default: its environment
    /// belongs to whoever started it.
    pub fn configure(scan: &EnvScan<'_>, secure: bool) -> Log {
        let default = Log(log::DEFAULT);
        let Some(found) = scan.log.filter(|f| !secure && !f.value.is_empty()) else { return default };
        match log::parse(found.value) {
            Ok(level) => Log(level),
            Err(()) => {
                if let Some(mut m) = default.line(Level::Warn) {
                    m.bytes(b"unknown NIX_LD_LOG level '")
                        .value(found.value)
                        .bytes(b"' (use error, warn, info, debug or trace); using warn");
                    m.end();
                }
                default
            }
        }
    }

    #[inline(always)]
    pub fn enabled(self, level: Level) -> bool {
        level <= self.0
    }

    /// A new `nix-ld: ` line at `level`, or `None` when that level is off. The level test is
    /// inlined at each call, so a message that is off costs a comparison.
    #[inline(always)]
    pub fn line(self, level: Level) -> Option<Message<Output>> {
        if !self.enabled(level) {
            return None;
        }
        Some(new_line())
    }
}

#[inline(never)]
fn new_line() -> Message<Output> {
    let mut m = Message::new(Stderr);
    m.bytes(b"nix-ld: ");
    m
}

/// Logs the choice of loader and library path at info level.
pub fn choice(log: Log, choice: &Choice<'_>) {
    if log.enabled(Level::Info) {
        settings(Stderr, b"nix-ld: loader ", b"nix-ld: library path ", choice);
    }
}

/// Writes the loader and the library path, each on a line after its label, with where it came
/// from, for `NIX_LD_LOG=info`.
#[inline(never)]
#[cold]
pub fn settings(out: Output, loader_label: &[u8], path_label: &[u8], choice: &Choice<'_>) {
    let mut m = Message::new(out);
    setting(&mut m, loader_label, choice.loader, choice.loader_source.describe(true));
    setting(&mut m, path_label, choice.library_path, choice.library_path_source.describe(false));
}

/// One line of [`settings`]: `label`, `value`, and where it came from. A function called twice
/// maps 80 bytes less than a loop over an array of the two lines.
#[inline(never)]
fn setting(m: &mut Message<Output>, label: &[u8], value: &[u8], source: &[u8]) {
    m.bytes(label).value(if value.is_empty() { b"(none)" } else { value });
    m.bytes(b" (from ").bytes(source).bytes(b")");
    m.end();
}

/// Says, at info level, that the loader the plain `NIX_LD` named was passed over for `problem`
/// (`plan::passes_over`), and what is used instead (`choice`).
#[cold]
#[inline(never)]
pub fn passed_over(log: Log, problem: &Problem, choice: &Choice<'_>) {
    if let Some(mut m) = log.line(Level::Info) {
        m.bytes(b"NIX_LD names a loader for another platform (it ");
        problem.write_cause(&mut m);
        m.bytes(b"); using the compiled-in default");
        m.end();
        settings(Stderr, b"nix-ld: loader ", b"nix-ld: library path ", choice);
    }
}

/// Logs, at info level, the Nix library directories left out because they do not exist.
pub fn left_out(log: Log, search: &SearchPath<'_>) {
    if !log.enabled(Level::Info) {
        return;
    }
    for dir in search.left_out() {
        if let Some(mut m) = log.line(Level::Info) {
            m.bytes(b"library directory ").value(dir).bytes(b" does not exist; ld.so will not search it");
            m.end();
        }
    }
}

/// Reports that `program` cannot run because of `problem` with the loader, and exits with 127.
pub fn cannot_run(program: &[u8], loader: &[u8], source: Source, secure: bool, problem: Problem) -> ! {
    let mut m = Message::new(Stderr);
    m.bytes(b"nix-ld: cannot run ").value(program).bytes(b": loader ");
    if problem != Problem::NotConfigured {
        m.value(loader).bytes(b" ");
    }
    problem.write_cause(&mut m);
    m.end();
    let mut m = Message::new(Stderr);
    m.bytes(b"nix-ld: hint: ");
    if problem.write_hint(&mut m, source, secure) {
        m.end();
    }
    arch::exit_group(EXIT_CANNOT_RUN)
}
