//! `--status` (and no argument): what the installed shims are, read from their files (the
//! `.nix-ld.version` section: version and compiled-in defaults, not loaded by the kernel), and
//! the loader and library path each would choose in this environment, and why.

use serde::Serialize;

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
    let Some((version, default_loader, default_path)) = record(&bytes) else {
        let glibc = goblin::elf::Elf::parse(&bytes).ok().and_then(|e| e.soname.map(str::to_string));
        shim.what = match glibc {
            Some(soname) if soname.starts_with("ld-linux") => format!(
                "glibc's own loader{link}, not nix-ld: programs get this system's libraries, and NIX_LD is not read"
            ),
            _ => format!(
                "a loader with no nix-ld version record{link}: nixpkgs' nix-ld, or a build of this project before the record"
            ),
        };
        return Some(shim);
    };
    shim.what = format!("{version}{link}");
    shim.version = Some(version);
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
    let elf64 = bytes.get(4) == Some(&2);
    if elf64 {
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
    shim.compiled_in_loader = Some(default_loader);
    shim.compiled_in_library_path = Some(default_path);
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
