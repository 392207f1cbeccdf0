//! Why the loader cannot be used, and what to tell the user about it.
//!
//! Every failure reaches the user as one line, `nix-ld: cannot run PROG: loader PATH CAUSE`, and
//! where it helps a second line, `nix-ld: hint: …`, then exit status 127.

use crate::elf::ElfError;
use crate::plan::Source;
use crate::text::{Message, Sink};

/// The longest path the kernel accepts, including its NUL.
pub const PATH_MAX: usize = 4096;

/// Exit status for "cannot execute", as a shell uses it.
pub const EXIT_CANNOT_RUN: i32 = 127;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No variable set and this build has no default.
    NotConfigured,
    PathTooLong,
    /// `open` failed with this errno.
    Open(i32),
    Directory,
    NotRegularFile,
    Read(i32),
    Elf(ElfError),
    Map(i32),
}

const ENOENT: i32 = 2;
const EACCES: i32 = 13;
const ENOTDIR: i32 = 20;
const ELOOP: i32 = 40;
const ENAMETOOLONG: i32 = 36;

fn errno<S: Sink>(m: &mut Message<S>, what: &[u8], code: i32) {
    m.bytes(what).bytes(b" (errno ").dec(code as u64).bytes(b")");
}

impl Problem {
    /// Writes what follows "loader PATH " (or replaces it, for `NotConfigured`).
    pub fn write_cause<S: Sink>(&self, m: &mut Message<S>) {
        match *self {
            Problem::NotConfigured => {
                m.bytes(b"is not configured (NIX_LD is unset and this build has no default)");
            }
            Problem::PathTooLong => {
                m.bytes(b"has a path longer than PATH_MAX (4096 bytes)");
            }
            Problem::Open(ENOENT) => {
                m.bytes(b"does not exist");
            }
            Problem::Open(EACCES) => {
                m.bytes(b"is not readable (permission denied)");
            }
            Problem::Open(ENOTDIR) => {
                m.bytes(b"does not exist (a component of its path is not a directory)");
            }
            Problem::Open(ELOOP) => {
                m.bytes(b"cannot be opened (too many levels of symbolic links)");
            }
            Problem::Open(ENAMETOOLONG) => {
                m.bytes(b"has a path or path component that is too long");
            }
            Problem::Open(code) => errno(m, b"cannot be opened", code),
            Problem::Directory => {
                m.bytes(b"is a directory");
            }
            Problem::NotRegularFile => {
                m.bytes(b"is not a regular file");
            }
            Problem::Read(code) => errno(m, b"cannot be read", code),
            Problem::Elf(e) => e.write_cause(m),
            Problem::Map(code) => errno(m, b"cannot be mapped into memory", code),
        }
    }

    /// Writes a hint for the user, if one helps; returns whether it wrote anything.
    pub fn write_hint<S: Sink>(&self, m: &mut Message<S>, source: Source, secure: bool) -> bool {
        if secure {
            m.bytes(b"this program is setuid, setgid or has file capabilities, so the NIX_LD variables are ignored and only the compiled-in loader is used");
            return true;
        }
        match (self, source) {
            (Problem::Elf(ElfError::WrongArchitecture { .. }), _) => {
                m.bytes(b"point NIX_LD at the x86-64 glibc loader, ld-linux-x86-64.so.2 (on Nix: the file named in $(nix eval --raw nixpkgs#stdenv.cc)/nix-support/dynamic-linker)");
            }
            (_, Source::CompiledIn) => {
                m.bytes(b"set NIX_LD to glibc's ld-linux-x86-64.so.2, or on NixOS enable programs.nix-ld-rs (or programs.nix-ld), which creates the default path");
            }
            (_, Source::SystemSpecific) => {
                m.bytes(b"NIX_LD_x86_64_linux overrides NIX_LD; fix it, or unset it to fall back to NIX_LD");
            }
            (_, Source::Generic) => {
                m.bytes(b"fix NIX_LD, or unset it to use the compiled-in default");
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(p: Problem) -> String {
        let mut out = Vec::new();
        let mut m = Message::new(&mut out);
        p.write_cause(&mut m);
        m.end();
        String::from_utf8(out).unwrap().trim_end().to_owned()
    }

    #[test]
    fn common_errors_read_as_plain_english() {
        assert_eq!(cause(Problem::Open(2)), "does not exist");
        assert_eq!(cause(Problem::Open(13)), "is not readable (permission denied)");
        assert_eq!(cause(Problem::Directory), "is a directory");
        assert_eq!(cause(Problem::Open(99)), "cannot be opened (errno 99)");
        assert_eq!(cause(Problem::Elf(ElfError::NotElf)), "is not an ELF file");
    }

    #[test]
    fn privileged_programs_are_told_why_the_variables_were_ignored() {
        let mut out = Vec::new();
        let mut m = Message::new(&mut out);
        assert!(Problem::Open(2).write_hint(&mut m, Source::CompiledIn, true));
        m.end();
        assert!(String::from_utf8(out).unwrap().contains("setuid"));
    }
}
