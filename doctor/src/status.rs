//! `--status` (and no argument): what the installed shims are, read from their files (the
//! `.nix-ld.version` section: version and compiled-in defaults, not loaded by the kernel), and
//! the loader and library path each would choose in this environment, and why.

use serde::Serialize;

use nix_ld::target::{self, Platform};

use crate::loader;
use crate::report::wrap;

/// Where the shims are installed: x86-64's loader path, and 32-bit x86's.
const SHIMS: &[&str] = &["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux.so.2"];

/// What one installed loader path holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Shim {
    pub path: String,
    /// What the file is, in words.
    pub what: String,
    /// `nix-ld 0.1.0`, from the file; None when it is not this project's shim.
    pub version: Option<String>,
    pub compiled_in_loader: Option<String>,
    pub compiled_in_library_path: Option<String>,
    /// What it would choose here, and from where.
    pub loader: Option<String>,
    pub loader_from: Option<String>,
    pub library_path: Option<String>,
    pub library_path_from: Option<String>,
    /// The directories of the library path that exist (the shim leaves out the others).
    pub directories: Vec<String>,
    pub left_out: Vec<String>,
    /// Why the chosen loader would not work, in the shim's words, with its hint.
    pub loader_problem: Option<String>,
    /// The plain loader it passes over (built for another platform), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed_over: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema_version: u32,
    pub doctor: String,
    pub shims: Vec<Shim>,
}

/// The version record: `nix-ld VERSION`, the default loader and the default library path, each
/// followed by a NUL.
pub fn parse_record(bytes: &[u8]) -> Option<(String, String, String)> {
    let mut parts = bytes.split(|&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
    let version = parts.next().filter(|v| v.starts_with("nix-ld "))?;
    Some((version, parts.next()?, parts.next()?))
}

/// What is installed at a loader path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Nothing,
    /// This project's shim: its version, compiled-in loader and library path, and platform.
    Shim {
        version: String,
        loader: String,
        library_path: String,
        platform: Option<&'static Platform>,
    },
    /// glibc's own loader (its soname is `ld-linux…`).
    Glibc,
    /// Another loader: nixpkgs' nix-ld, or a build of this project before the record.
    Other,
}

/// What is at `path`, read from its file.
pub fn installed(path: &str) -> Installed {
    let Ok(bytes) = std::fs::read(path) else { return Installed::Nothing };
    identify(&bytes)
}

fn identify(bytes: &[u8]) -> Installed {
    if let Some((version, loader, library_path)) = record(bytes) {
        let (class, machine) = (bytes.get(4).copied(), bytes.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]])));
        let platform = [&target::X86_64, &target::I686, &target::AARCH64, &target::RISCV64]
            .into_iter()
            .find(|p| Some(p.class) == class && Some(p.machine) == machine);
        return Installed::Shim { version, loader, library_path, platform };
    }
    match goblin::elf::Elf::parse(bytes).ok().and_then(|e| e.soname.map(str::to_string)) {
        Some(soname) if soname.starts_with("ld-linux") => Installed::Glibc,
        _ => Installed::Other,
    }
}

/// The version record of the file at `path`, if it has one.
fn record(bytes: &[u8]) -> Option<(String, String, String)> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    let section = elf.section_headers.iter().find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".nix-ld.version"))?;
    let range = section.file_range()?;
    parse_record(bytes.get(range)?)
}

fn examine_one(path: &str) -> Option<Shim> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut shim = Shim { path: path.to_string(), ..Shim::default() };
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            shim.what = format!("cannot be read ({e})");
            return Some(shim);
        }
    };
    let link = if meta.file_type().is_symlink() { format!(" (a link to {})", real.display()) } else { String::new() };
    let (version, default_loader, default_path, platform) = match identify(&bytes) {
        Installed::Shim { version, loader, library_path, platform } => (version, loader, library_path, platform),
        Installed::Glibc => {
            shim.what = format!(
                "glibc's own loader{link}, not nix-ld: programs get this system's libraries, and NIX_LD is not read"
            );
            return Some(shim);
        }
        Installed::Other | Installed::Nothing => {
            shim.what = format!(
                "a loader with no nix-ld version record{link}: nixpkgs' nix-ld, or a build of this project before the record"
            );
            return Some(shim);
        }
    };
    shim.what = format!("{version}{link}");
    shim.version = Some(version);
    shim.compiled_in_loader = Some(default_loader.clone());
    shim.compiled_in_library_path = Some(default_path.clone());
    if platform == Some(&target::I686) {
        // The 32-bit shim's own choice: its names, its plain-name rule, its compiled-in defaults.
        let choice = loader::choose_as(target::I686, (&default_loader, &default_path), &loader::environment());
        if let Err((cause, hint)) = loader::check_as(target::I686, &choice.loader, choice.loader_source) {
            shim.loader_problem = Some(format!("{} {cause}: {hint}", choice.loader));
        }
        shim.directories = choice.directories;
        shim.left_out = choice.left_out;
        shim.passed_over = choice.passed_over;
        shim.loader = Some(choice.loader);
        shim.loader_from = Some(choice.loader_from);
        shim.library_path = Some(choice.library_path);
        shim.library_path_from = Some(choice.library_path_from);
        return Some(shim);
    }
    let choice = loader::choose(&loader::environment());
    let compiled_in = "the compiled-in default".to_string();
    // The choice as this doctor's build of the shim logic makes it, with the installed shim's
    // own defaults where it would use them.
    let (loader, loader_from) = if choice.loader_from == compiled_in {
        (default_loader.clone(), compiled_in.clone())
    } else {
        (choice.loader.clone(), choice.loader_from.clone())
    };
    let (library_path, library_path_from) = if choice.library_path_from == compiled_in {
        (default_path.clone(), compiled_in)
    } else {
        (choice.library_path.clone(), choice.library_path_from.clone())
    };
    if platform == Some(&target::X86_64) {
        for dir in library_path.split(':').filter(|d| !d.is_empty()) {
            if std::path::Path::new(dir).is_dir() {
                shim.directories.push(dir.to_string());
            } else {
                shim.left_out.push(dir.to_string());
            }
        }
        if let Err((cause, hint)) = loader::check(&loader, choice.loader_source) {
            shim.loader_problem = Some(format!("{loader} {cause}: {hint}"));
        }
        shim.loader = Some(loader);
        shim.loader_from = Some(loader_from);
        shim.library_path = Some(library_path);
        shim.library_path_from = Some(library_path_from);
    }
    Some(shim)
}

/// The installed shims (`NIX_LD_DOCTOR_SHIMS`, a `:`-separated list, replaces the two paths, for
/// tests and unusual setups).
pub fn examine() -> Status {
    let paths: Vec<String> = match std::env::var("NIX_LD_DOCTOR_SHIMS") {
        Ok(list) => list.split(':').filter(|p| !p.is_empty()).map(str::to_string).collect(),
        Err(_) => SHIMS.iter().map(|s| s.to_string()).collect(),
    };
    let mut shims: Vec<Shim> = paths.iter().filter_map(|p| examine_one(p)).collect();
    if shims.is_empty() {
        shims.push(Shim {
            path: paths.first().cloned().unwrap_or_default(),
            what:
                "nothing is installed there: programs.nix-ld-shim.enable = true; (or nixpkgs' programs.nix-ld.enable)"
                    .into(),
            ..Shim::default()
        });
    }
    Status {
        schema_version: crate::report::SCHEMA_VERSION,
        doctor: format!("nix-ld-doctor {}", env!("CARGO_PKG_VERSION")),
        shims,
    }
}

impl Status {
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.shims {
            out += &wrap(&format!("{}: ", s.path), &s.what, "  ");
            if let (Some(l), Some(p)) = (&s.compiled_in_loader, &s.compiled_in_library_path) {
                out += &wrap("  compiled in: ", &format!("loader {l}, library path {p}"), "    ");
            }
            if let Some(why) = &s.passed_over {
                out += &wrap("  passed over: ", why, "    ");
            }
            if let (Some(l), Some(from)) = (&s.loader, &s.loader_from) {
                out += &wrap("  here it would use: ", &format!("loader {l} (from {from})"), "    ");
            }
            if let (Some(p), Some(from)) = (&s.library_path, &s.library_path_from) {
                let p = if p.is_empty() { "(none)" } else { p };
                out += &wrap("  and library path: ", &format!("{p} (from {from})"), "    ");
            }
            for dir in &s.left_out {
                out += &wrap("    ", &format!("{dir} does not exist; the shim leaves it out"), "    ");
            }
            if let Some(problem) = &s.loader_problem {
                out += &wrap("  problem: ", problem, "    ");
            }
        }
        out += "Examine a program, library or directory: nix-ld-doctor TARGET (see --help)\n";
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_gives_version_and_defaults() {
        let r = parse_record(b"nix-ld 0.1.0\0/l/ld.so\0/l/lib\0").unwrap();
        assert_eq!(r, ("nix-ld 0.1.0".into(), "/l/ld.so".into(), "/l/lib".into()));
        assert_eq!(parse_record(b"something else\0a\0b\0"), None);
        assert_eq!(parse_record(b"nix-ld 0.1.0\0"), None);
    }
}
