//! `cargo xtask build`: the release shim, verified, at `target/dist/nix-ld`.

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
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args(["build", "--release", "--quiet", "--package", "nix-ld"]);
    let mut built_dir = if let Some((loader, libs)) = defaults {
        cmd.env("DEFAULT_NIX_LD", loader).env("DEFAULT_NIX_LD_LIBRARY_PATH", libs);
        cmd.arg("--target-dir").arg(target_dir.join(variant_dir));
        target_dir.join(variant_dir)
    } else {
        cmd.env_remove("DEFAULT_NIX_LD").env_remove("DEFAULT_NIX_LD_LIBRARY_PATH");
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
    let path = cross_shim(&target, None, "nix-ld")?;
    verify_file_for(&path, &target)?;
    Ok(path)
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

pub fn run() -> Result<PathBuf> {
    let doctor = doctor()?;
    eprintln!("built {}", doctor.display());
    let path = shim(None, "nix-ld")?;
    verify_file(&path)?;
    Ok(path)
}

/// Builds nix-ld-doctor (release) and leaves it at `target/dist/nix-ld-doctor`.
pub fn doctor() -> Result<PathBuf> {
    let root = project_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args(["build", "--release", "--quiet", "--package", "nix-ld-doctor"]);
    util::run(&mut cmd)?;
    let built = root.join("target/release/nix-ld-doctor");
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
