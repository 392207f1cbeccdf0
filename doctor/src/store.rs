//! Where a missing library is: nix-locate's attributes when it is installed, and the local Nix
//! store's directories that hold the file, with a package name read from the store path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A store directory holding a missing library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The directory holding the library (`/nix/store/<hash>-libxcrypt-4.4.36/lib`).
    pub directory: PathBuf,
    /// The nixpkgs attribute, as far as the store path tells (or nix-locate confirms).
    pub attribute: Option<String>,
    /// Whether nix-locate confirmed the attribute; otherwise it is read from the store path.
    pub confirmed: bool,
    /// The newest glibc symbol version the library requires (`2.38`).
    pub needs_glibc: Option<String>,
}

/// The store to search: `NIX_LD_DOCTOR_STORE` (for tests and unusual setups), else /nix/store.
pub fn root() -> PathBuf {
    std::env::var_os("NIX_LD_DOCTOR_STORE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nix/store"))
}

/// The outputs nixpkgs derivations name after their version (`-lib`, `-dev`, ...).
const OUTPUTS: &[&str] = &["lib", "dev", "bin", "out", "man", "doc", "info", "debug", "static"];

/// The attribute a store directory name most likely comes from: the hash and the version are
/// dropped (`0123…-libxcrypt-4.4.36` → `libxcrypt`), and GCC's runtime output is
/// `stdenv.cc.cc.lib`. None for what is no attribute (a `-minimal` build, a `-wrapper`).
pub fn attribute(store_name: &str) -> Option<String> {
    let (hash, rest) = store_name.split_once('-')?;
    if hash.len() != 32 {
        return None;
    }
    let parts: Vec<&str> = rest.split('-').collect();
    // The version starts at the first part beginning with a digit.
    let version_at = parts.iter().position(|p| p.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(parts.len());
    let name = parts[..version_at].join("-");
    let output = parts.last().filter(|p| version_at < parts.len() && OUTPUTS.contains(p));
    if name.is_empty() || name.ends_with("-minimal") || name.ends_with("-wrapper") || name.ends_with("-unwrapped") {
        return None;
    }
    if name == "gcc" && output == Some(&"lib") {
        return Some("stdenv.cc.cc.lib".into());
    }
    // The X.org libraries are one attribute set: xorg-libX11 is xorg.libX11.
    if let Some(library) = name.strip_prefix("xorg-") {
        return Some(format!("xorg.{library}"));
    }
    Some(name)
}

/// Store directories `<entry>/lib` that hold `library`, in name order.
pub fn search(store: &Path, library: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(store) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("lib"))
        .filter(|dir| dir.join(library).exists())
        .collect();
    found.sort();
    found
}

/// nix-locate's attributes for `/lib/<library>`, if nix-locate is on PATH and knows it.
pub fn nix_locate(library: &str) -> Option<Vec<String>> {
    let out = Command::new("nix-locate")
        .args(["--minimal", "--top-level", "--at-root", "--whole-name"])
        .arg(format!("/lib/{library}"))
        .stdin(std::process::Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `libxcrypt.out` → `libxcrypt`: the output is not part of what a user writes.
    let mut attributes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_suffix(".out").or_else(|| l.strip_suffix(".lib")).unwrap_or(l).to_string())
        .collect();
    attributes.dedup();
    Some(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdfghijklmnpqrsvwxyz";

    #[test]
    fn store_names_give_attributes() {
        assert_eq!(attribute(&format!("{H}-libxcrypt-4.4.36")), Some("libxcrypt".into()));
        assert_eq!(attribute(&format!("{H}-openssl-3.0.13-out")), Some("openssl".into()));
        assert_eq!(attribute(&format!("{H}-zlib-1.3.1")), Some("zlib".into()));
        assert_eq!(attribute(&format!("{H}-gcc-13.2.0-lib")), Some("stdenv.cc.cc.lib".into()));
        assert_eq!(attribute(&format!("{H}-xorg-libX11-1.8.7")), Some("xorg.libX11".into()));
        assert_eq!(attribute(&format!("{H}-systemd-minimal-255.4")), None);
        assert_eq!(attribute(&format!("{H}-gcc-wrapper-13.2.0")), None);
        assert_eq!(attribute("short-libfoo-1.0"), None);
        assert_eq!(attribute(&format!("{H}-libfoo")), Some("libfoo".into()));
    }
}
