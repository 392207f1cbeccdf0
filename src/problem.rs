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

/// What each [`Problem`] says about the loader, NUL-separated, in the order of
/// [`Problem::cause_index`]; `#` stands for the errno value.
const CAUSES: &[u8] = b"is not configured (NIX_LD is unset and this build has no default)\0\
has a path longer than PATH_MAX (4096 bytes)\0\
does not exist\0\
is not readable (permission denied)\0\
does not exist (a component of its path is not a directory)\0\
cannot be opened (too many levels of symbolic links)\0\
has a path or path component that is too long\0\
cannot be opened (errno #)\0\
is a directory\0\
is not a regular file\0\
cannot be read (errno #)\0\
cannot be mapped into memory (errno #)";

impl Problem {
    /// The entry of [`CAUSES`] for this problem, and the errno it carries.
    fn cause_index(&self) -> (usize, i32) {
        match *self {
            Problem::NotConfigured => (0, 0),
            Problem::PathTooLong => (1, 0),
            Problem::Open(ENOENT) => (2, 0),
            Problem::Open(EACCES) => (3, 0),
            Problem::Open(ENOTDIR) => (4, 0),
            Problem::Open(ELOOP) => (5, 0),
            Problem::Open(ENAMETOOLONG) => (6, 0),
            Problem::Open(code) => (7, code),
            Problem::Directory => (8, 0),
            Problem::NotRegularFile => (9, 0),
            Problem::Read(code) => (10, code),
            Problem::Map(code) => (11, code),
            Problem::Elf(_) => (usize::MAX, 0),
        }
    }

    /// Writes what is wrong with the loader, after "loader PATH ".
    pub fn write_cause<S: Sink>(&self, m: &mut Message<S>) {
        if let Problem::Elf(e) = self {
            return e.write_cause(m);
        }
        let (index, code) = self.cause_index();
        m.entry(CAUSES, index, code as u64);
    }

    pub fn write_hint<S: Sink>(&self, m: &mut Message<S>, source: Source, secure: bool) -> bool {
        let index = match (self, source) {
            _ if secure => 0,
            (Problem::Elf(ElfError::WrongArchitecture { .. }), _) => 1,
            (_, Source::CompiledIn) => 2,
            (_, Source::SystemSpecific) => 3,
            (_, Source::Generic) => 4,
        };
        m.bytes(crate::text::nth(HINTS, index));
        true
    }
}

/// The hints of [`Problem::write_hint`], NUL-separated, in its order (they name this build's
/// loader and variables): one table and one lookup take less code than a call per hint.
const HINTS: &[u8] = crate::target::HINTS;

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
        assert_eq!(cause(Problem::Open(20)), "does not exist (a component of its path is not a directory)");
        assert_eq!(cause(Problem::Open(40)), "cannot be opened (too many levels of symbolic links)");
        assert_eq!(cause(Problem::Open(36)), "has a path or path component that is too long");
        assert_eq!(cause(Problem::NotRegularFile), "is not a regular file");
        assert_eq!(cause(Problem::Read(5)), "cannot be read (errno 5)");
        assert_eq!(cause(Problem::Map(12)), "cannot be mapped into memory (errno 12)");
        assert!(cause(Problem::NotConfigured).starts_with("is not configured (NIX_LD is unset"));
        assert_eq!(cause(Problem::PathTooLong), "has a path longer than PATH_MAX (4096 bytes)");
    }

    fn hint(p: Problem, source: Source, secure: bool) -> String {
        let mut out = Vec::new();
        let mut m = Message::new(&mut out);
        assert!(p.write_hint(&mut m, source, secure));
        m.end();
        String::from_utf8(out).unwrap().trim_end().to_owned()
    }

    #[test]
    fn each_case_gets_its_own_hint() {
        let arch = Problem::Elf(ElfError::WrongArchitecture { class: 2, machine: 183 });
        let hints = [
            hint(Problem::Open(2), Source::Generic, true),
            hint(arch, Source::Generic, false),
            hint(Problem::Open(2), Source::CompiledIn, false),
            hint(Problem::Open(2), Source::SystemSpecific, false),
            hint(Problem::Open(2), Source::Generic, false),
        ];
        assert!(
            hints[1].starts_with("point NIX_LD at the x86-64 glibc loader") && hints[1].contains("nixpkgs#stdenv.cc"),
            "{}",
            hints[1]
        );
        assert!(hints[2].starts_with("set NIX_LD to glibc's"), "{}", hints[2]);
        assert!(hints[3].starts_with("NIX_LD_x86_64_linux overrides NIX_LD"), "{}", hints[3]);
        assert_eq!(hints[4], "fix NIX_LD, or unset it to use the compiled-in default");
        for (i, h) in hints.iter().enumerate() {
            assert!(!h.is_empty() && !h.contains('\0'), "{i}: {h:?}");
            assert_eq!(hints.iter().filter(|other| *other == h).count(), 1, "{i}: {h}");
        }
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
