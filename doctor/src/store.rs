//! Where a missing library is: nix-locate's attributes when it is installed, and the local Nix
//! store's directories that hold the file, with a package name read from the store path.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The store to search: `NIX_LD_DOCTOR_STORE` (for tests and unusual setups), else /nix/store.
pub fn root() -> PathBuf {
    std::env::var_os("NIX_LD_DOCTOR_STORE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nix/store"))
}

/// The outputs nixpkgs derivations name after their version (`-lib`, `-dev`, ...).
const OUTPUTS: &[&str] = &["lib", "dev", "bin", "out", "man", "doc", "info", "debug", "static"];

/// The attribute a store directory name most likely comes from: the hash and the version are
/// dropped (`0123…-libxcrypt-4.4.36` → `libxcrypt`), and names the table in
/// [`crate::attributes`] knows are written as nixpkgs spells them (`libX11-1.8.7` →
/// `xorg.libX11`). None for what is no attribute (a `-minimal` build, a `-wrapper`).
pub fn attribute(store_name: &str) -> Option<String> {
    let (hash, rest) = store_name.split_once('-')?;
    if hash.len() != 32 {
        return None;
    }
    let parts: Vec<&str> = rest.split('-').collect();
    // The version starts at the first part beginning with a digit.
    let version_at = parts.iter().position(|p| p.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(parts.len());
    let name = parts[..version_at].join("-");
    let output = parts.last().filter(|p| version_at < parts.len() && OUTPUTS.contains(p)).copied();
    if name.is_empty() || name.ends_with("-minimal") || name.ends_with("-wrapper") || name.ends_with("-unwrapped") {
        return None;
    }
    Some(crate::attributes::for_package(&name, output).unwrap_or(name))
}

/// Every file in the `lib` directory of every store entry, by name: the store read once, for
/// all the libraries of all the rounds.
///
/// Only the `lib` directories of its entries are looked into: a desktop system has 30,000
/// entries, and a look-up of every library in every entry took 0.7 s there. Files (`.drv`,
/// `.patch`) are passed over by the type readdir reports, without a stat; an entry without `lib`
/// costs one failed open.
#[derive(Debug, Default)]
pub struct Index {
    files: HashMap<OsString, Vec<PathBuf>>,
}

impl Index {
    pub fn read(store: &Path) -> Index {
        let mut files: HashMap<OsString, Vec<PathBuf>> = HashMap::new();
        let Ok(entries) = std::fs::read_dir(store) else { return Index { files } };
        for entry in entries.filter_map(Result::ok) {
            // A symbolic link may lead to a directory; anything else that is not one has no `lib`.
            if entry.file_type().is_ok_and(|t| !t.is_dir() && !t.is_symlink()) {
                continue;
            }
            let lib = entry.path().join("lib");
            let Ok(listing) = std::fs::read_dir(&lib) else { continue };
            for file in listing.filter_map(Result::ok) {
                files.entry(file.file_name()).or_default().push(lib.clone());
            }
        }
        Index { files }
    }

    /// The store's `lib` directories that hold `library`, in name order; a link must lead to a
    /// file, since ld.so opens the name.
    pub fn holders(&self, library: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .files
            .get(std::ffi::OsStr::new(library))
            .into_iter()
            .flatten()
            .filter(|dir| dir.join(library).is_file())
            .cloned()
            .collect();
        dirs.sort();
        dirs
    }
}

/// nix-locate's attributes for each of `libraries` (as `/lib/<library>` at a package's root), in
/// one run for all of them (each run reads nix-index's whole database), if nix-locate is on PATH.
pub fn nix_locate(libraries: &[String]) -> Option<HashMap<String, Vec<String>>> {
    if libraries.is_empty() {
        return None;
    }
    let escaped: Vec<String> = libraries.iter().map(|l| regex_escape(l)).collect();
    let out = Command::new("nix-locate")
        .args(["--top-level", "--at-root", "--regex"])
        .arg(format!("/lib/({})$", escaped.join("|")))
        .stdin(std::process::Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse_nix_locate(&String::from_utf8_lossy(&out.stdout)))
}

/// nix-locate's lines (`libxcrypt.out  84,024 x /nix/store/…-libxcrypt-4.4.36/lib/libcrypt.so.1`)
/// as attributes by file name; `libxcrypt.out` → `libxcrypt`, since the output is not part of
/// what a user writes.
pub fn parse_nix_locate(text: &str) -> HashMap<String, Vec<String>> {
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(attribute), Some(path)) = (words.next(), words.next_back()) else { continue };
        let Some(name) = path.rsplit('/').next() else { continue };
        let attribute = attribute.strip_suffix(".out").or_else(|| attribute.strip_suffix(".lib")).unwrap_or(attribute);
        let list = found.entry(name.to_string()).or_default();
        if !list.iter().any(|a| a == attribute) {
            list.push(attribute.to_string());
        }
    }
    found
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdfghijklmnpqrsvwxyz";

    #[test]
    fn nix_locates_lines_give_attributes_by_file_name() {
        let text = "libxcrypt.out      84,024 x /nix/store/8q4k-libxcrypt-4.4.36/lib/libcrypt.so.1\nxorg.libX11.out 1,000 s /nix/store/x-libX11-1.8.7/lib/libX11.so.6\nlibxcrypt.lib 84,024 r /nix/store/y-libxcrypt-4.4.36-lib/lib/libcrypt.so.1\n";
        let found = parse_nix_locate(text);
        assert_eq!(found["libcrypt.so.1"], ["libxcrypt"]);
        assert_eq!(found["libX11.so.6"], ["xorg.libX11"]);
        assert_eq!(regex_escape("libstdc++.so.6"), "libstdc\\+\\+\\.so\\.6");
    }

    #[test]
    fn store_names_give_attributes() {
        assert_eq!(attribute(&format!("{H}-libxcrypt-4.4.36")), Some("libxcrypt".into()));
        assert_eq!(attribute(&format!("{H}-openssl-3.0.13-out")), Some("openssl".into()));
        assert_eq!(attribute(&format!("{H}-zlib-1.3.1")), Some("zlib".into()));
        assert_eq!(attribute(&format!("{H}-gcc-13.2.0-lib")), Some("stdenv.cc.cc.lib".into()));
        assert_eq!(attribute(&format!("{H}-xorg-libX11-1.8.7")), Some("xorg.libX11".into()));
        assert_eq!(attribute(&format!("{H}-libX11-1.8.7")), Some("xorg.libX11".into()));
        assert_eq!(attribute(&format!("{H}-libx11-1.8.12")), Some("xorg.libX11".into()));
        assert_eq!(attribute(&format!("{H}-libxcb-cursor-0.1.5")), Some("xorg.xcbutilcursor".into()));
        assert_eq!(attribute(&format!("{H}-libglvnd-1.7.0")), Some("libGL".into()));
        assert_eq!(attribute(&format!("{H}-systemd-minimal-255.4")), None);
        assert_eq!(attribute(&format!("{H}-gcc-wrapper-13.2.0")), None);
        assert_eq!(attribute("short-libfoo-1.0"), None);
        assert_eq!(attribute(&format!("{H}-libfoo")), Some("libfoo".into()));
    }

    #[test]
    fn one_search_finds_every_library_in_the_lib_directories_only() {
        let store = std::env::temp_dir().join(format!("nix-ld-doctor-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let dir = |name: &str| {
            let d = store.join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let (a, b) = (dir(&format!("{H}-liba-1/lib")), dir(&format!("{H}-libab-2/lib")));
        for (d, name) in [(&a, "liba.so.1"), (&b, "liba.so.1"), (&b, "libb.so.2")] {
            std::fs::write(d.join(name), "").unwrap();
        }
        // Not where ld.so would look, or nothing it could open.
        std::fs::write(dir(&format!("{H}-libc-3/share")).join("libc.so.3"), "").unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir(&format!("{H}-libd-4/lib")).join("libd.so.4")).unwrap();
        std::fs::write(store.join(format!("{H}-liba-1.drv")), "").unwrap();
        let index = Index::read(&store);
        assert_eq!(index.holders("liba.so.1"), [a, b.clone()]);
        assert_eq!(index.holders("libb.so.2"), [b]);
        assert!(index.holders("libc.so.3").is_empty() && index.holders("libd.so.4").is_empty());
        std::fs::remove_dir_all(&store).unwrap();
        assert!(Index::read(&store).holders("liba.so.1").is_empty(), "a store that does not exist holds nothing");
    }
}
