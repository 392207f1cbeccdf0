//! The shim's pure logic: every decision it makes, as plain functions over bytes with no syscalls.
//!
//! The binary (`src/main.rs`) is the imperative shell around this library: it reads the process
//! stack, makes the syscalls and jumps. Everything here is `no_std`, allocation-free and tested on
//! the host, including property tests over random environments and random ELF bytes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod copy;
pub mod elf;
pub mod envscan;
pub mod libpath;
pub mod log;
pub mod plan;
pub mod problem;
pub mod restore;
pub mod symbols;
pub mod target;
pub mod text;

/// How much address space from ld.so's base the shim keeps for ld.so, at least: its file tells
/// debuggers that ld.so's code lies in that much from ld.so's base (xtask/src/sections.rs), so no
/// other object may be mapped there. More than any x86-64 glibc loader's code (about 150 KiB);
/// what ld.so's own segments do not use stays reserved, costing address space only.
pub const LOADER_RESERVATION: usize = 512 * 1024;

/// The defaults compiled into this build (see `build.rs`: `DEFAULT_NIX_LD`, `DEFAULT_NIX_LD_LIBRARY_PATH`).
pub mod defaults {
    const LOADER_TEXT: &str = env_or(option_env!("DEFAULT_NIX_LD"), crate::target::NIXOS_LOADER);
    const LIBRARY_PATH_TEXT: &str =
        env_or(option_env!("DEFAULT_NIX_LD_LIBRARY_PATH"), crate::target::NIXOS_LIBRARY_PATH);

    /// The defaults are stored followed by a NUL, so the shim can hand them to the kernel in place.
    const LOADER_NUL: [u8; LOADER_TEXT.len() + 1] = with_nul(LOADER_TEXT.as_bytes());
    const LIBRARY_PATH_NUL: [u8; LIBRARY_PATH_TEXT.len() + 1] = with_nul(LIBRARY_PATH_TEXT.as_bytes());

    /// The real loader used when neither `NIX_LD_<system>` nor `NIX_LD` is set. The byte after
    /// it is a NUL.
    pub const LOADER: &[u8] = without_last(&LOADER_NUL);
    /// The library directories used when neither library variable is set. The byte after them is a
    /// NUL.
    pub const LIBRARY_PATH: &[u8] = without_last(&LIBRARY_PATH_NUL);

    const fn env_or(value: Option<&'static str>, fallback: &'static str) -> &'static str {
        match value {
            Some(v) => v,
            None => fallback,
        }
    }

    const fn with_nul<const N: usize>(text: &[u8]) -> [u8; N] {
        let mut out = [0; N];
        let mut i = 0;
        while i < text.len() {
            out[i] = text[i];
            i += 1;
        }
        out
    }

    /// All of `bytes` but the last: a view of the path inside the allocation that holds its NUL.
    const fn without_last(bytes: &'static [u8]) -> &'static [u8] {
        match bytes.split_last() {
            Some((_, rest)) => rest,
            None => bytes,
        }
    }

    const fn has_nul(bytes: &[u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == 0 {
                return true;
            }
            i += 1;
        }
        false
    }

    // Paths from the environment cannot hold a NUL; with these, no path the shim opens can, so
    // nothing needs to look for one at run time.
    const _: () = assert!(!has_nul(LOADER) && !has_nul(LIBRARY_PATH), "a default path contains a NUL byte");

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn defaults_are_followed_by_a_nul_in_their_own_storage() {
            for (path, stored) in [(LOADER, &LOADER_NUL[..]), (LIBRARY_PATH, &LIBRARY_PATH_NUL[..])] {
                assert_eq!(stored.last(), Some(&0));
                assert_eq!(&stored[..stored.len() - 1], path);
                assert!(!path.is_empty());
            }
        }
    }
}
