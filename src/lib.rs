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
pub mod text;

/// The defaults compiled into this build (see `build.rs`: `DEFAULT_NIX_LD`, `DEFAULT_NIX_LD_LIBRARY_PATH`).
pub mod defaults {
    /// The real loader used when neither `NIX_LD_x86_64_linux` nor `NIX_LD` is set.
    pub const LOADER: &[u8] = env_or(option_env!("DEFAULT_NIX_LD"), "/run/current-system/sw/share/nix-ld/lib/ld.so").as_bytes();
    /// The library directories used when neither library variable is set.
    pub const LIBRARY_PATH: &[u8] =
        env_or(option_env!("DEFAULT_NIX_LD_LIBRARY_PATH"), "/run/current-system/sw/share/nix-ld/lib").as_bytes();

    const fn env_or(value: Option<&'static str>, fallback: &'static str) -> &'static str {
        match value {
            Some(v) => v,
            None => fallback,
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
}
