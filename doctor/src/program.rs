//! What a program asks for: a script's interpreter, an ELF program's loader and architecture,
//! and glibc versions compared as numbers.

use std::path::{Path, PathBuf};

/// The loader that programs built for x86-64 glibc distributions name: the shim's case.
pub const GLIBC_X86_64: &str = "/lib64/ld-linux-x86-64.so.2";
/// The loader of 32-bit x86 glibc programs.
pub const GLIBC_I386: &str = "/lib/ld-linux.so.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

pub const EM_386: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

/// The interpreter of a `#!` line: its first word, if the bytes start with `#!`.
pub fn shebang(bytes: &[u8]) -> Option<String> {
    let line = bytes.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let text = String::from_utf8_lossy(line);
    text.split_whitespace().next().map(str::to_string)
}

/// A glibc version as numbers, for comparing `GLIBC_2.38` with a loader's `2.36`.
pub fn glibc_version(text: &str) -> Option<(u32, u32)> {
    let text = text.strip_prefix("GLIBC_").unwrap_or(text);
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())?;
    Some((major, minor))
}

/// The name of an architecture, for messages.
pub fn machine_name(machine: u16) -> String {
    match machine {
        EM_386 => "32-bit x86 (i386)".into(),
        EM_X86_64 => "x86-64".into(),
        EM_AARCH64 => "AArch64 (arm64)".into(),
        40 => "32-bit ARM".into(),
        243 => "RISC-V".into(),
        21 => "64-bit PowerPC".into(),
        22 => "IBM S/390".into(),
        other => format!("an architecture with ELF machine number {other}"),
    }
}

/// Whether `interpreter` is the nix-ld shim itself, named directly (`…/libexec/nix-ld`, as a
/// program patched with patchelf names it) or through links.
pub fn is_shim(interpreter: &str) -> bool {
    std::fs::canonicalize(interpreter).is_ok_and(|p| p.file_name().is_some_and(|n| n == "nix-ld"))
}

/// Whether a path a script or program names exists on this machine.
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// The file's path made absolute, for messages and for ld.so.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shebang_names_its_first_word() {
        assert_eq!(shebang(b"#!/bin/bash -e\necho"), Some("/bin/bash".into()));
        assert_eq!(shebang(b"#! /usr/bin/env python3\n"), Some("/usr/bin/env".into()));
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b"\x7fELF"), None);
    }

    #[test]
    fn glibc_versions_compare_as_numbers() {
        assert_eq!(glibc_version("GLIBC_2.38"), Some((2, 38)));
        assert_eq!(glibc_version("2.36"), Some((2, 36)));
        assert_eq!(glibc_version("2.36."), Some((2, 36)));
        assert!(glibc_version("GLIBC_2.9") < glibc_version("GLIBC_2.10"));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
    }
}
