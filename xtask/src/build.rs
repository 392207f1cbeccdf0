//! `cargo xtask build`: the release shim, verified, at `target/dist/nix-ld`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, project_root, Result};
use crate::{elfcheck, sections};

/// The linker a shim is built with. Both must give a shim that passes `verify`: nixpkgs' rustc
/// links through its cc wrapper with GNU ld (it is built with `--disable-lld`), rustup's links
/// x86_64 programs with its own rust-lld.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Linker {
    /// The toolchain's default (rust-lld with rustup's).
    Default,
    /// `cc` and GNU ld, the way nixpkgs' rustc links.
    GnuLd,
}

/// The flags that make rustup's rustc link the way nixpkgs' does: through `cc`, with the system's
/// GNU ld rather than its own rust-lld.
pub const GNU_LD_RUSTFLAGS: &str = "-C linker-features=-lld -C link-self-contained=-linker";

/// Builds the release shim with the given compiled-in defaults (None: the NixOS ones), verifies it
/// and returns its path, `target/dist/NAME`. A build with other defaults goes to
/// `target/variant`.
pub fn shim(defaults: Option<(&str, &str)>, name: &str) -> Result<PathBuf> {
    shim_in(defaults, name, "variant")
}

/// As [`shim`], with a build with other defaults in `target/VARIANT_DIR`: each set of defaults
/// keeps its own target directory, so that one does not rebuild over another.
pub fn shim_in(defaults: Option<(&str, &str)>, name: &str, variant_dir: &str) -> Result<PathBuf> {
    shim_linked(defaults, name, variant_dir, Linker::Default)
}

/// As [`shim_in`], linked by `linker`; a GNU ld build keeps its own target directory,
/// `target/gnu-ld`, with the NixOS defaults.
pub fn shim_linked(defaults: Option<(&str, &str)>, name: &str, variant_dir: &str, linker: Linker) -> Result<PathBuf> {
    let root = project_root();
    let target_dir = root.join("target");
    let mut cmd = cargo_with(defaults);
    cmd.current_dir(&root).args(["build", "--release", "--quiet", "--package", "nix-ld"]);
    let mut built_dir = if defaults.is_some() {
        cmd.arg("--target-dir").arg(target_dir.join(variant_dir));
        target_dir.join(variant_dir)
    } else {
        target_dir.clone()
    };
    if linker == Linker::GnuLd {
        // An explicit --target keeps the flags off build scripts, and its own directory keeps this
        // build from rebuilding over the default one.
        built_dir = target_dir.join("gnu-ld");
        cmd.arg("--target-dir").arg(&built_dir).args(["--target", "x86_64-unknown-linux-gnu"]);
        cmd.env("CARGO_ENCODED_RUSTFLAGS", GNU_LD_RUSTFLAGS.replace(' ', "\x1f"));
        built_dir = built_dir.join("x86_64-unknown-linux-gnu");
    }
    util::run(&mut cmd)?;
    let built = built_dir.join("release/nix-ld");
    let linked = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    // The debugger section table is x86-64's only (a native build on another platform keeps the
    // linker's).
    let x86_64 = elfcheck::native() == elfcheck::X86_64;
    let bytes =
        if x86_64 { sections::finish(&linked).map_err(|e| format!("{}: {e}", built.display()))? } else { linked };
    elfcheck::verify_with(&bytes, elfcheck::allowance(defaults)).map_err(|e| format!("{}: {e}", built.display()))?;
    if x86_64 {
        sections::verify(&bytes).map_err(|e| format!("{}: {e}", built.display()))?;
    }
    let dist = target_dir.join("dist");
    std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;
    let out = dist.join(name);
    // Copy to a temporary name and rename, so a running test never sees a half-written file.
    let tmp = dist.join(format!(".{name}.tmp"));
    util::write_executable(&tmp, &bytes)?;
    std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Debian's Rust (`rustc-web`, `cargo-web`, `rust-web-src`), which builds `core` for the other
/// platforms' targets (rustup here has x86-64's standard library only). Called by path, for cross
/// builds only: every x86-64 build uses the toolchain on PATH.
pub const CROSS_RUSTC: &str = "/usr/bin/rustc";
pub const CROSS_CARGO: &str = "/usr/bin/cargo";

/// Builds the release shim for `target` (not x86-64) with Debian's Rust and `-Zbuild-std=core`,
/// linked by the target's C cross compiler, verifies it for that platform, and returns its path,
/// `target/dist/TRIPLE/NAME`. `defaults` as for [`shim`]. The debugger section table
/// (`cargo xtask finish`) is x86-64's only.
pub fn cross_shim(target: &elfcheck::Target, defaults: Option<(&str, &str)>, name: &str) -> Result<PathBuf> {
    for tool in [CROSS_RUSTC, CROSS_CARGO] {
        if !Path::new(tool).exists() {
            return Err(format!(
                "{tool} is missing: cross builds use Debian's rustc-web, cargo-web and rust-web-src (apt-get install rustc-web cargo-web rust-web-src)"
            ));
        }
    }
    let version = Command::new(CROSS_RUSTC).arg("--version").output().map_err(|e| format!("{CROSS_RUSTC}: {e}"))?;
    check_cross_rustc(&String::from_utf8_lossy(&version.stdout))?;
    if which(target.cc).is_none() {
        return Err(format!("{} is missing: it links the {} shim (.ci/run installs it)", target.cc, target.triple));
    }
    let root = project_root();
    let target_dir = root.join("target").join(if defaults.is_some() { "cross-variant" } else { "cross" });
    let mut cmd = Command::new(CROSS_CARGO);
    cmd.current_dir(&root)
        .args(["build", "--release", "--quiet", "--package", "nix-ld", "-Zbuild-std=core", "--target", target.triple])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", CROSS_RUSTC)
        // Unstable -Zbuild-std, for this build only: nixpkgs builds natively on each platform.
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    let upper = target.triple.to_uppercase().replace('-', "_");
    cmd.env(format!("CARGO_TARGET_{upper}_LINKER"), target.cc);
    if target.class == 1 {
        cmd.env(format!("CARGO_TARGET_{upper}_RUSTFLAGS"), "-C link-arg=-m32");
    }
    match defaults {
        Some((loader, libs)) => cmd.env("DEFAULT_NIX_LD", loader).env("DEFAULT_NIX_LD_LIBRARY_PATH", libs),
        None => cmd.env_remove("DEFAULT_NIX_LD").env_remove("DEFAULT_NIX_LD_LIBRARY_PATH"),
    };
    util::run(&mut cmd)?;
    let built = target_dir.join(target.triple).join("release/nix-ld");
    let bytes = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    elfcheck::verify_for(&bytes, target, elfcheck::allowance(defaults))
        .map_err(|e| format!("{}: {e}", built.display()))?;
    let dist = root.join("target/dist").join(target.triple);
    std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;
    let out = dist.join(name);
    let tmp = dist.join(format!(".{name}.tmp"));
    util::write_executable(&tmp, &bytes)?;
    std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The oldest Debian rustc the shim builds with: the stable release it is written for.
const CROSS_RUSTC_MINOR: u32 = 95;

/// Errs, saying where a new enough one is, unless `rustc --version` (its output) is at least
/// 1.[`CROSS_RUSTC_MINOR`]: bookworm's own rustc-web is 1.85, and its updates come through
/// bookworm-security, which a minimal root may not have in its apt sources.
fn check_cross_rustc(version: &str) -> Result<()> {
    let minor = version.strip_prefix("rustc 1.").and_then(|rest| rest.split('.').next()?.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= CROSS_RUSTC_MINOR => Ok(()),
        _ => Err(format!(
            "{CROSS_RUSTC} is '{}', older than the Rust 1.{CROSS_RUSTC_MINOR} the shim is written for: install \
             Debian's newer rustc-web, cargo-web and rust-web-src from bookworm-security (add it to the apt \
             sources, then apt-get install rustc-web cargo-web rust-web-src)",
            version.trim()
        )),
    }
}

/// `program` as found on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// `cargo xtask build --target TRIPLE`.
pub fn run_for(triple: &str) -> Result<PathBuf> {
    let target = elfcheck::target(triple)?;
    if target == elfcheck::native() {
        return run();
    }
    let defaults = Defaults::from_lookup(|name| std::env::var_os(name), nixos_defaults(&target))?;
    let path = cross_shim(&target, defaults.custom(), "nix-ld")?;
    verify_file_for(&path, &target)?;
    eprintln!("{}", defaults.describe());
    Ok(path)
}

/// The defaults the NixOS module's paths give `target`'s shim (src/target.rs): x86_64 NixOS keeps
/// the 32-bit shim's loader and libraries apart, under share/nix-ld32.
fn nixos_defaults(target: &elfcheck::Target) -> (&'static str, &'static str) {
    if target.class == 1 {
        ("/run/current-system/sw/share/nix-ld32/lib/ld.so", "/run/current-system/sw/share/nix-ld32/lib")
    } else {
        elfcheck::NIXOS_DEFAULTS
    }
}

/// `cargo xtask finish FILE`: the Nix package's install step, on the file cargo linked.
pub fn finish_file(path: &Path) -> Result<()> {
    let linked = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if elfcheck::native() != elfcheck::X86_64 {
        eprintln!("{}: left as linked: the debugger section table is x86-64's only", path.display());
        return Ok(());
    }
    let bytes = sections::finish(&linked).map_err(|e| format!("{}: {e}", path.display()))?;
    let tmp = path.with_extension("finishing");
    util::write_executable(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("finished {}: section table for debuggers and tracers written", path.display());
    Ok(())
}

/// The variables that set the defaults compiled into the shim and the doctor (read with
/// `option_env!` in src/lib.rs).
pub const DEFAULT_VARS: [&str; 2] = ["DEFAULT_NIX_LD", "DEFAULT_NIX_LD_LIBRARY_PATH"];

/// Where a build with the caller's own defaults keeps its objects, apart from the NixOS build's.
const CALLER_DEFAULTS_DIR: &str = "caller-defaults";

/// `cargo` with the compiled-in defaults set to `defaults`, or, for None, removed from its
/// environment, so that a build never picks up whatever the caller's environment holds.
pub fn cargo_with(defaults: Option<(&str, &str)>) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    match defaults {
        Some((loader, libs)) => cmd.env(DEFAULT_VARS[0], loader).env(DEFAULT_VARS[1], libs),
        None => cmd.env_remove(DEFAULT_VARS[0]).env_remove(DEFAULT_VARS[1]),
    };
    cmd
}

/// The defaults `cargo xtask build` compiles in: the caller's `DEFAULT_NIX_LD` and
/// `DEFAULT_NIX_LD_LIBRARY_PATH`, each in place of the NixOS one when set and not empty.
#[derive(Debug, PartialEq, Eq)]
pub struct Defaults {
    pub loader: String,
    pub library_path: String,
    /// Whether the loader and the library path came from the caller's environment.
    pub from_env: [bool; 2],
}

impl Defaults {
    /// Reads the two variables through `lookup` (`std::env::var_os`), each unset one taking its
    /// value from `nixos`; errs, naming the variable, on a value the shim must not have compiled in.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>, nixos: (&str, &str)) -> Result<Defaults> {
        let value = |name: &str| -> Result<Option<String>> {
            match lookup(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => v.into_string().map(Some).map_err(|_| format!("{name} is not UTF-8")),
            }
        };
        let (loader, library_path) = (value(DEFAULT_VARS[0])?, value(DEFAULT_VARS[1])?);
        if let Some(loader) = &loader {
            if !loader.starts_with('/') {
                return Err(format!(
                    "DEFAULT_NIX_LD must be the absolute path of the glibc loader, such as {} (it is '{loader}')",
                    elfcheck::NIXOS_DEFAULTS.0
                ));
            }
        }
        if let Some(path) = &library_path {
            if let Some(bad) = path.split(':').find(|d| !d.starts_with('/')) {
                return Err(format!(
                    "DEFAULT_NIX_LD_LIBRARY_PATH must be absolute directories separated by ':' (it has '{bad}': \
                     ld.so would search a relative or empty entry in each program's working directory)"
                ));
            }
        }
        Ok(Defaults {
            from_env: [loader.is_some(), library_path.is_some()],
            loader: loader.unwrap_or_else(|| nixos.0.into()),
            library_path: library_path.unwrap_or_else(|| nixos.1.into()),
        })
    }

    /// What a build is given: None for the NixOS defaults.
    pub fn custom(&self) -> Option<(&str, &str)> {
        self.from_env.contains(&true).then_some((self.loader.as_str(), self.library_path.as_str()))
    }

    /// One line for the build's output: each default and where it came from.
    pub fn describe(&self) -> String {
        let origin =
            |set: bool, name: &str| if set { format!("from {name}") } else { format!("NixOS default; {name} not set") };
        format!(
            "compiled-in defaults: loader {} ({}), library path {} ({})",
            self.loader,
            origin(self.from_env[0], DEFAULT_VARS[0]),
            self.library_path,
            origin(self.from_env[1], DEFAULT_VARS[1])
        )
    }
}

pub fn run() -> Result<PathBuf> {
    let defaults = Defaults::from_lookup(|name| std::env::var_os(name), elfcheck::NIXOS_DEFAULTS)?;
    let doctor = doctor_in(defaults.custom(), CALLER_DEFAULTS_DIR)?;
    eprintln!("built {}", doctor.display());
    let path = shim_in(defaults.custom(), "nix-ld", CALLER_DEFAULTS_DIR)?;
    verify_file(&path)?;
    eprintln!("{}", defaults.describe());
    Ok(path)
}

/// Builds nix-ld-doctor (release) with the NixOS defaults and leaves it at
/// `target/dist/nix-ld-doctor`.
pub fn doctor() -> Result<PathBuf> {
    doctor_in(None, "variant")
}

/// As [`doctor`], with `defaults` compiled in (the shim's own logic tells the doctor which loader
/// the shim would choose), built in `target/VARIANT_DIR` when not the NixOS ones.
pub fn doctor_in(defaults: Option<(&str, &str)>, variant_dir: &str) -> Result<PathBuf> {
    let root = project_root();
    let mut cmd = cargo_with(defaults);
    cmd.current_dir(&root).args(["build", "--release", "--quiet", "--package", "nix-ld-doctor"]);
    let built_dir = if defaults.is_some() {
        cmd.arg("--target-dir").arg(root.join("target").join(variant_dir));
        root.join("target").join(variant_dir)
    } else {
        root.join("target")
    };
    util::run(&mut cmd)?;
    let built = built_dir.join("release/nix-ld-doctor");
    let dist = root.join("target/dist");
    std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;
    let out = dist.join("nix-ld-doctor");
    let tmp = dist.join(".nix-ld-doctor.tmp");
    std::fs::copy(&built, &tmp).map_err(|e| format!("{}: {e}", built.display()))?;
    std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Checks a shim file built for `target` (x86-64: [`verify_file`]) and says what holds.
pub fn verify_file_for(path: &Path, target: &elfcheck::Target) -> Result<()> {
    if *target == elfcheck::X86_64 {
        return verify_x86_64_file(path);
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let facts = elfcheck::verify_for(&bytes, target, 0).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "verified {}: {} position-independent, one read-only executable segment, no PT_INTERP, no PT_DYNAMIC, no relocations, at most {} bytes mapped; {} bytes mapped, {} bytes on disk (no debugger section table: that is x86-64's only)",
        path.display(),
        target.name,
        target.max_mapped,
        facts.mapped,
        facts.file_size
    );
    Ok(())
}

/// Checks a shim file (the one just built, or one installed by the Nix package) for the platform
/// xtask runs on, and says what holds.
pub fn verify_file(path: &Path) -> Result<()> {
    verify_file_for(path, &elfcheck::native())
}

/// [`verify_file`] for an x86-64 shim, with its debugger section table.
fn verify_x86_64_file(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let facts = elfcheck::verify_for(&bytes, &elfcheck::X86_64, 0).map_err(|e| format!("{}: {e}", path.display()))?;
    sections::verify(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "verified {}: ELF64 x86-64 position-independent, one read-only executable segment, no PT_INTERP, no PT_DYNAMIC, no relocations, no symbols, the sections debuggers read, at most {} bytes mapped; {} bytes mapped, {} bytes on disk",
        path.display(),
        elfcheck::MAX_MAPPED,
        facts.mapped,
        facts.file_size
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn without_the_variables_the_nixos_defaults_are_compiled_in() {
        for vars in [&[][..], &[("DEFAULT_NIX_LD", ""), ("DEFAULT_NIX_LD_LIBRARY_PATH", "")][..]] {
            let defaults = Defaults::from_lookup(lookup(vars), elfcheck::NIXOS_DEFAULTS).unwrap();
            assert_eq!(defaults.custom(), None);
            assert_eq!((defaults.loader.as_str(), defaults.library_path.as_str()), elfcheck::NIXOS_DEFAULTS);
            assert!(defaults.describe().contains("(NixOS default; DEFAULT_NIX_LD not set)"), "{}", defaults.describe());
        }
    }

    #[test]
    fn each_variable_replaces_its_own_default() {
        let defaults =
            Defaults::from_lookup(lookup(&[("DEFAULT_NIX_LD", "/x/ld.so")]), elfcheck::NIXOS_DEFAULTS).unwrap();
        assert_eq!(defaults.custom(), Some(("/x/ld.so", elfcheck::NIXOS_DEFAULTS.1)));
        assert_eq!(
            defaults.describe(),
            "compiled-in defaults: loader /x/ld.so (from DEFAULT_NIX_LD), library path \
             /run/current-system/sw/share/nix-ld/lib (NixOS default; DEFAULT_NIX_LD_LIBRARY_PATH not set)"
        );

        let defaults =
            Defaults::from_lookup(lookup(&[("DEFAULT_NIX_LD_LIBRARY_PATH", "/a:/b")]), elfcheck::NIXOS_DEFAULTS)
                .unwrap();
        assert_eq!(defaults.custom(), Some((elfcheck::NIXOS_DEFAULTS.0, "/a:/b")));

        // The 32-bit shim's other half keeps its own NixOS default, not x86-64's.
        let i686 = elfcheck::TARGETS.iter().find(|t| t.class == 1).unwrap();
        let defaults = Defaults::from_lookup(lookup(&[("DEFAULT_NIX_LD", "/x/ld.so")]), nixos_defaults(i686)).unwrap();
        assert_eq!(defaults.custom(), Some(("/x/ld.so", "/run/current-system/sw/share/nix-ld32/lib")));
    }

    #[test]
    fn an_old_debian_rustc_is_refused_with_where_a_new_one_is() {
        let err = check_cross_rustc("rustc 1.85.0 (4d91de4e4 2025-02-17) (built from a source tarball)\n").unwrap_err();
        assert!(
            err.contains("is 'rustc 1.85.0 (4d91de4e4 2025-02-17) (built from a source tarball)', older than"),
            "{err}"
        );
        assert!(err.contains("bookworm-security"), "{err}");
        assert!(check_cross_rustc("not rustc").is_err());
        check_cross_rustc("rustc 1.96.0 (c57af11f6 2026-05-20) (built from a source tarball)").unwrap();
        check_cross_rustc("rustc 1.95.0").unwrap();
    }

    #[test]
    fn relative_or_empty_entries_are_refused_with_the_variable_named() {
        let err = Defaults::from_lookup(lookup(&[("DEFAULT_NIX_LD", "ld.so")]), elfcheck::NIXOS_DEFAULTS).unwrap_err();
        assert!(err.starts_with("DEFAULT_NIX_LD must be the absolute path"), "{err}");
        for path in ["lib", "/a:", "/a::/b", ":/a"] {
            let err = Defaults::from_lookup(lookup(&[("DEFAULT_NIX_LD_LIBRARY_PATH", path)]), elfcheck::NIXOS_DEFAULTS)
                .unwrap_err();
            assert!(err.starts_with("DEFAULT_NIX_LD_LIBRARY_PATH must be absolute directories"), "{path}: {err}");
        }
    }

    #[test]
    fn builds_without_defaults_remove_the_callers_variables() {
        let removed: Vec<_> =
            cargo_with(None).get_envs().filter(|(_, v)| v.is_none()).map(|(k, _)| k.to_owned()).collect();
        assert_eq!(removed, DEFAULT_VARS);
        let set: Vec<_> = cargo_with(Some(("/x/ld.so", "/x/lib")))
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        assert_eq!(
            set,
            [
                ("DEFAULT_NIX_LD".into(), Some("/x/ld.so".into())),
                ("DEFAULT_NIX_LD_LIBRARY_PATH".into(), Some("/x/lib".into()))
            ]
        );
    }
}
