//! What this build is for: the machine and ELF class of the loaders it accepts, nixpkgs' name for
//! the system (in `NIX_LD_<system>`), and the words its messages use. Chosen by `target_arch` here
//! and nowhere else, so the rest of the library holds no architecture.
//!
//! | build     | system          | e_machine | class | the glibc loader it stands in for   |
//! |-----------|-----------------|-----------|-------|-------------------------------------|
//! | x86_64    | `x86_64_linux`  | 62        | ELF64 | `/lib64/ld-linux-x86-64.so.2`       |
//! | aarch64   | `aarch64_linux` | 183       | ELF64 | `/lib/ld-linux-aarch64.so.1`        |
//! | riscv64   | `riscv64_linux` | 243       | ELF64 | `/lib/ld-linux-riscv64-lp64d.so.1`  |
//! | x86 (i686)| `i686_linux`    | 3         | ELF32 | `/lib/ld-linux.so.2`                |

/// Expands to the one of its four values that is this build's architecture's.
macro_rules! per_arch {
    ($x86_64:expr, $aarch64:expr, $riscv64:expr, $x86:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let value = $x86_64;
        #[cfg(target_arch = "aarch64")]
        let value = $aarch64;
        #[cfg(target_arch = "riscv64")]
        let value = $riscv64;
        #[cfg(target_arch = "x86")]
        let value = $x86;
        value
    }};
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "x86")))]
compile_error!("nix-ld is built for x86_64, aarch64, riscv64 and x86 (i686) Linux only");

/// One platform's loader, names and defaults. Every platform's is here, for the doctor, which
/// examines 32-bit programs with the x86-64 build of this library; the shim reads its own
/// ([`THIS`]) through the constants below, all evaluated at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    /// nixpkgs' name for the system, as in `NIX_LD_<system>`.
    pub system: &'static str,
    /// `e_machine` of its loaders.
    pub machine: u16,
    /// EI_CLASS of its loaders: 2 for ELF64, 1 for ELF32.
    pub class: u8,
    /// The path of the glibc loader the shim stands in for (PT_INTERP of its programs).
    pub interpreter: &'static str,
    /// `NIX_LD_<system>`: the loader variable for this system alone.
    pub loader_system: &'static [u8],
    /// `NIX_LD_LIBRARY_PATH_<system>`.
    pub library_path_system: &'static [u8],
    /// Where the NixOS module puts the real loader and the library set (nix/module.nix): the
    /// defaults when the build names none.
    pub nixos_loader: &'static str,
    pub nixos_library_path: &'static str,
    /// See [`PLAIN_NAMES_MAY_BE_FOREIGN`].
    pub plain_names_may_be_foreign: bool,
    /// The start of the message for a loader built for another machine or class.
    pub not_native: &'static [u8],
    /// The hints of `problem::Problem::write_hint`, NUL-separated, in its order.
    pub hints: &'static [u8],
}

/// x86-64.
pub const X86_64: Platform = Platform {
    system: "x86_64_linux",
    machine: 62,
    class: 2,
    interpreter: "/lib64/ld-linux-x86-64.so.2",
    loader_system: b"NIX_LD_x86_64_linux",
    library_path_system: b"NIX_LD_LIBRARY_PATH_x86_64_linux",
    nixos_loader: "/run/current-system/sw/share/nix-ld/lib/ld.so",
    nixos_library_path: "/run/current-system/sw/share/nix-ld/lib",
    plain_names_may_be_foreign: false,
    not_native: b"is not an x86-64 ELF file (it is ",
    hints: b"this program is setuid, setgid or has file capabilities, so the NIX_LD variables are ignored and only the compiled-in loader is used\0\
point NIX_LD at the x86-64 glibc loader, ld-linux-x86-64.so.2 (on Nix: the file named in $(nix eval --raw nixpkgs#stdenv.cc)/nix-support/dynamic-linker)\0\
set NIX_LD to glibc's ld-linux-x86-64.so.2, or on NixOS enable programs.nix-ld-shim (or programs.nix-ld), which creates the default path\0\
NIX_LD_x86_64_linux overrides NIX_LD; fix it, or unset it to fall back to NIX_LD\0\
fix NIX_LD, or unset it to use the compiled-in default",
};

/// AArch64.
pub const AARCH64: Platform = Platform {
    system: "aarch64_linux",
    machine: 183,
    class: 2,
    interpreter: "/lib/ld-linux-aarch64.so.1",
    loader_system: b"NIX_LD_aarch64_linux",
    library_path_system: b"NIX_LD_LIBRARY_PATH_aarch64_linux",
    nixos_loader: "/run/current-system/sw/share/nix-ld/lib/ld.so",
    nixos_library_path: "/run/current-system/sw/share/nix-ld/lib",
    plain_names_may_be_foreign: true,
    not_native: b"is not a 64-bit AArch64 ELF file (it is ",
    hints: b"this program is setuid, setgid or has file capabilities, so the NIX_LD variables are ignored and only the compiled-in loader is used\0\
point NIX_LD_aarch64_linux at the AArch64 glibc loader, ld-linux-aarch64.so.1 (on Nix: the file named in $(nix eval --raw nixpkgs#stdenv.cc)/nix-support/dynamic-linker)\0\
set NIX_LD to glibc's ld-linux-aarch64.so.1, or on NixOS enable programs.nix-ld-shim (or programs.nix-ld), which creates the default path\0\
NIX_LD_aarch64_linux overrides NIX_LD; fix it, or unset it to fall back to NIX_LD\0\
fix NIX_LD, or unset it to use the compiled-in default",
};

/// 64-bit RISC-V.
pub const RISCV64: Platform = Platform {
    system: "riscv64_linux",
    machine: 243,
    class: 2,
    interpreter: "/lib/ld-linux-riscv64-lp64d.so.1",
    loader_system: b"NIX_LD_riscv64_linux",
    library_path_system: b"NIX_LD_LIBRARY_PATH_riscv64_linux",
    nixos_loader: "/run/current-system/sw/share/nix-ld/lib/ld.so",
    nixos_library_path: "/run/current-system/sw/share/nix-ld/lib",
    plain_names_may_be_foreign: true,
    not_native: b"is not a 64-bit RISC-V ELF file (it is ",
    hints: b"this program is setuid, setgid or has file capabilities, so the NIX_LD variables are ignored and only the compiled-in loader is used\0\
point NIX_LD_riscv64_linux at the RISC-V glibc loader, ld-linux-riscv64-lp64d.so.1 (on Nix: the file named in $(nix eval --raw nixpkgs#stdenv.cc)/nix-support/dynamic-linker)\0\
set NIX_LD to glibc's ld-linux-riscv64-lp64d.so.1, or on NixOS enable programs.nix-ld-shim (or programs.nix-ld), which creates the default path\0\
NIX_LD_riscv64_linux overrides NIX_LD; fix it, or unset it to fall back to NIX_LD\0\
fix NIX_LD, or unset it to use the compiled-in default",
};

/// 32-bit x86 (i686), beside the x86-64 shim on x86-64 NixOS.
pub const I686: Platform = Platform {
    system: "i686_linux",
    machine: 3,
    class: 1,
    interpreter: "/lib/ld-linux.so.2",
    loader_system: b"NIX_LD_i686_linux",
    library_path_system: b"NIX_LD_LIBRARY_PATH_i686_linux",
    nixos_loader: "/run/current-system/sw/share/nix-ld32/lib/ld.so",
    nixos_library_path: "/run/current-system/sw/share/nix-ld32/lib",
    plain_names_may_be_foreign: true,
    not_native: b"is not a 32-bit i386 ELF file (it is ",
    hints: b"this program is setuid, setgid or has file capabilities, so the NIX_LD variables are ignored and only the compiled-in loader is used\0\
point NIX_LD_i686_linux at the 32-bit glibc loader, ld-linux.so.2 (on Nix: the file named in $(nix eval --raw nixpkgs#pkgsi686Linux.stdenv.cc)/nix-support/dynamic-linker)\0\
set NIX_LD_i686_linux to glibc's 32-bit ld-linux.so.2, or on NixOS enable programs.nix-ld-shim, which installs the 32-bit shim and creates its default path\0\
NIX_LD_i686_linux overrides NIX_LD; fix it, or unset it to fall back to NIX_LD\0\
fix NIX_LD, or unset it to use the compiled-in default",
};

/// This build's platform.
pub const THIS: Platform = per_arch!(X86_64, AARCH64, RISCV64, I686);

/// `e_machine` of the loaders this build maps.
pub const MACHINE: u16 = THIS.machine;
/// EI_CLASS of the loaders this build maps: 2 for ELF64, 1 for ELF32.
pub const CLASS: u8 = THIS.class;

/// The ELF layout of this build's loaders (see `elf::Class`).
#[cfg(target_pointer_width = "64")]
pub type Class = crate::elf::Elf64;
#[cfg(target_pointer_width = "32")]
pub type Class = crate::elf::Elf32;

/// How this build learns the page size (see `elf::Pages`): x86 has 4 KiB base pages only; aarch64
/// runs 4, 16 or 64 KiB pages, and the shim takes AT_PAGESZ there and on riscv64.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub type Pages = crate::elf::Fixed4K;
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
pub type Pages = crate::elf::PageSize;

/// Whether the plain `NIX_LD` may name another platform's loader, so that one built for another
/// machine or class is passed over for the compiled-in default (`plan::passes_over`). True for the
/// shims that run beside another (the 32-bit one beside the 64-bit one on x86-64) or under
/// emulation on another platform's host. Not for x86-64: the NixOS module sets
/// `NIX_LD_x86_64_linux` wherever that shim is not the host's own (aarch64 hosts emulating
/// x86-64), and the rule's 400 bytes of code do not fit the x86-64 shim's 16 KiB.
pub const PLAIN_NAMES_MAY_BE_FOREIGN: bool = THIS.plain_names_may_be_foreign;

/// Where the NixOS module puts the real loader and the library set (nix/module.nix), the defaults
/// when the build names none: x86_64 NixOS keeps the 32-bit shim's beside the 64-bit one's.
pub const NIXOS_LOADER: &str = THIS.nixos_loader;
pub const NIXOS_LIBRARY_PATH: &str = THIS.nixos_library_path;

/// `NIX_LD_<system>`: the loader variable for this system alone.
pub const LOADER_SYSTEM: &[u8] = THIS.loader_system;
/// `NIX_LD_LIBRARY_PATH_<system>`.
pub const LIBRARY_PATH_SYSTEM: &[u8] = THIS.library_path_system;

/// The start of the message for a loader built for another machine or class.
pub const NOT_NATIVE: &[u8] = THIS.not_native;

/// The hints of `problem::Problem::write_hint`, NUL-separated, in its order.
pub const HINTS: &[u8] = THIS.hints;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_variables_name_this_builds_system() {
        let system = per_arch!("x86_64_linux", "aarch64_linux", "riscv64_linux", "i686_linux");
        assert_eq!(LOADER_SYSTEM, format!("NIX_LD_{system}").as_bytes());
        assert_eq!(LIBRARY_PATH_SYSTEM, format!("NIX_LD_LIBRARY_PATH_{system}").as_bytes());
        assert!(core::str::from_utf8(HINTS).unwrap().contains(core::str::from_utf8(LOADER_SYSTEM).unwrap()));
    }

    #[test]
    fn every_platform_names_its_own_system_and_loader() {
        for p in [X86_64, AARCH64, RISCV64, I686] {
            assert_eq!(p.loader_system, format!("NIX_LD_{}", p.system).as_bytes());
            assert_eq!(p.library_path_system, format!("NIX_LD_LIBRARY_PATH_{}", p.system).as_bytes());
            let hints = core::str::from_utf8(p.hints).unwrap();
            assert_eq!(hints.split('\0').count(), 5, "{}", p.system);
            let loader = p.interpreter.rsplit('/').next().unwrap();
            assert!(hints.contains(loader), "{}: {hints}", p.system);
            assert!(p.nixos_loader.starts_with(p.nixos_library_path));
        }
        assert_eq!((I686.machine, I686.class), (3, 1));
    }
}
