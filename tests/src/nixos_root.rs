//! A NixOS-like root file system to run programs in with chroot: every library the given programs
//! need, copied into `/nix/store/<hash>-<name>/lib`, the NixOS module's library set (links into the
//! store, but for the packages left out of it), and nothing a foreign binary expects: no `/lib`,
//! no `/usr/lib`, no `/lib64` loader, no `ld.so.cache`. `cargo xtask demo` and the root_* tests
//! that run programs in it build theirs here, so both show the same machine.
//!
//! Errors are values (one line each), for xtask; a test unwraps them.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub type Result<T> = std::result::Result<T, String>;

/// The library set, where the NixOS module puts it (relative to the root).
const SET: &str = "run/current-system/sw/share/nix-ld/lib";
/// The package that has `libcrypt.so.1` in nixpkgs: the demo's and the tests' missing library.
pub const LIBXCRYPT: &str = "libxcrypt-4.4.33";
/// The package name glibc's own libraries get.
const GLIBC: &str = "glibc-2.36";

/// A NixOS-like root on this machine.
pub struct NixosRoot {
    /// Where it is on this machine.
    pub dir: PathBuf,
    /// The library set, as a path inside the root.
    pub set: PathBuf,
    /// The store's glibc loader, as a path inside the root (the set's `ld.so` links to it).
    pub loader: PathBuf,
    /// The store directory (`/nix/store/<hash>-<package>/lib`, inside the root) of each library,
    /// by file name.
    pub library_dirs: BTreeMap<String, PathBuf>,
}

impl NixosRoot {
    /// Builds the root at `dir` (emptied first) with every library `objects` need, as this
    /// machine's ldd resolves them; the libraries of the packages in `outside_set` are in the store
    /// but not in the library set.
    pub fn build(dir: &Path, objects: &[PathBuf], outside_set: &[&str]) -> Result<NixosRoot> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let set = Path::new("/").join(SET);
        let set_dir = dir.join(SET);
        mkdir(&set_dir)?;
        let mut library_dirs = BTreeMap::new();
        for lib in shared_libraries(objects)? {
            let name = lib.file_name().unwrap().to_string_lossy().into_owned();
            let package = package_of(&name);
            let store_lib = store_dir(&package);
            let host_dir = dir.join(store_lib.strip_prefix("/").unwrap());
            mkdir(&host_dir)?;
            copy(&lib, &host_dir.join(&name))?;
            // The module's buildEnv links every library of the configured packages here.
            if !outside_set.contains(&package.as_str()) {
                symlink(store_lib.join(&name), set_dir.join(&name))
                    .map_err(|e| format!("{}: {e}", set_dir.display()))?;
            }
            library_dirs.insert(name, store_lib);
        }
        let loader_name = library_dirs
            .keys()
            .find(|n| n.starts_with("ld-linux-x86-64"))
            .ok_or("no ld-linux-x86-64.so.2 among the libraries")?
            .clone();
        let loader = library_dirs[&loader_name].join(&loader_name);
        symlink(&loader, set_dir.join("ld.so")).map_err(|e| format!("{}: {e}", set_dir.display()))?;
        mkdir(&dir.join("tmp"))?;
        for absent in ["lib", "usr/lib", "lib64/ld-linux-x86-64.so.2", "etc/ld.so.cache"] {
            if dir.join(absent).exists() {
                return Err(format!("{absent} must not exist in the NixOS-like root {}", dir.display()));
            }
        }
        Ok(NixosRoot { dir: dir.to_path_buf(), set, loader, library_dirs })
    }

    /// Where a path inside the root is on this machine.
    pub fn host_path(&self, inside: &Path) -> PathBuf {
        self.dir.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// Copies `program` to `inside` (a path inside the root, with or without its leading `/`)
    /// unchanged: a foreign program.
    pub fn install(&self, program: &Path, inside: &str) -> Result<PathBuf> {
        let to = self.host_path(Path::new(inside));
        mkdir(to.parent().unwrap())?;
        copy(program, &to)?;
        Ok(to)
    }

    /// Installs the shim where foreign programs look for their loader.
    pub fn install_shim(&self, shim: &Path) -> Result<()> {
        self.install(shim, "lib64/ld-linux-x86-64.so.2").map(|_| ())
    }

    /// Copies `program` to `inside` as Nix installs a program: the store's loader as its
    /// interpreter and the store directories of its libraries as its RUNPATH (patchelf), so it
    /// starts without the shim.
    pub fn install_from_the_store(&self, program: &Path, inside: &str) -> Result<PathBuf> {
        let to = self.install(program, inside)?;
        let mut dirs = BTreeSet::new();
        for lib in shared_libraries(&[program.to_path_buf()])? {
            let name = lib.file_name().unwrap().to_string_lossy().into_owned();
            dirs.insert(
                self.library_dirs
                    .get(&name)
                    .ok_or_else(|| format!("{name} is not in the root's store"))?
                    .display()
                    .to_string(),
            );
        }
        let runpath = dirs.into_iter().collect::<Vec<_>>().join(":");
        run(Command::new("patchelf")
            .arg("--set-interpreter")
            .arg(&self.loader)
            .arg("--set-rpath")
            .arg(runpath)
            .arg(&to))?;
        Ok(to)
    }

    /// Runs `argv` in the root with exactly `env`.
    pub fn chroot(&self, argv: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        let mut cmd = Command::new("/usr/sbin/chroot");
        cmd.arg(&self.dir).args(argv).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().map_err(|e| format!("chroot: {e}"))
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => not_on_path(&cmd.get_program().to_string_lossy()),
        _ => format!("cannot start {cmd:?}: {e}"),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim_end()))
    }
}

/// What to say when a program the tests or the demo run is missing: its name and the Debian
/// package that has it (`.ci/run` installs them).
pub fn not_on_path(program: &str) -> String {
    let package = match program {
        "cc" | "gcc" => "gcc",
        "c++" | "g++" => "g++",
        "musl-gcc" => "musl-tools",
        "nix-instantiate" => "nix-bin",
        "nm" | "readelf" => "binutils",
        "python3" => "python3",
        "perl" => "perl",
        "git" => "git",
        other => other,
    };
    format!("{program} is not on PATH: apt-get install {package}")
}

pub fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

/// Every shared library the objects need, as resolved by this machine's ldd.
fn shared_libraries(objects: &[PathBuf]) -> Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for object in objects {
        let out = Command::new("ldd").arg(object).output().map_err(|e| format!("ldd: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=> ") {
                Some((_, rest)) => rest.split(" (").next().unwrap_or("").trim().to_string(),
                // A warning ("…/libpq.so.5: no version information available"), not a library.
                None if line.contains(": ") => continue,
                None => line.trim().split(" (").next().unwrap_or("").to_string(),
            };
            if path.starts_with('/') {
                let real = Path::new(&path).canonicalize().map_err(|e| format!("{path}: {e}"))?;
                libs.insert(real.with_file_name(Path::new(&path).file_name().unwrap()));
            }
        }
    }
    Ok(libs)
}

/// The package a library goes into: glibc's own, libxcrypt's, or one named after it.
fn package_of(name: &str) -> String {
    let glibc = [
        "libc.so",
        "libm.so",
        "libpthread.so",
        "libdl.so",
        "librt.so",
        "libutil.so",
        "libresolv.so",
        "libnsl.so",
        "ld-linux",
    ];
    if glibc.iter().any(|p| name.starts_with(p)) {
        GLIBC.to_string()
    } else if name.starts_with("libcrypt.so") {
        LIBXCRYPT.to_string()
    } else {
        // "libssl.so.3" -> "libssl-3", standing in for a Nix package name.
        let (base, version) = name.split_once(".so").unwrap_or((name, ""));
        format!("{base}{}", version.replace('.', "-"))
    }
}

/// The `lib` directory of `package` in the store (a path inside the root).
pub fn store_dir(package: &str) -> PathBuf {
    Path::new("/nix/store").join(format!("{}-{package}", store_hash(package))).join("lib")
}

/// A stable stand-in for a Nix store hash: 32 characters of Nix's base-32 alphabet, the same for
/// the same `name`.
pub fn store_hash(name: &str) -> String {
    let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    (0..32)
        .map(|i| {
            for b in name.bytes().chain([i as u8]) {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
            alphabet[(h >> 59) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_named_with_its_package() {
        let err = run(&mut Command::new("patchelf-not-installed-here")).unwrap_err();
        assert_eq!(err, "patchelf-not-installed-here is not on PATH: apt-get install patchelf-not-installed-here");
        assert_eq!(not_on_path("musl-gcc"), "musl-gcc is not on PATH: apt-get install musl-tools");
        assert_eq!(not_on_path("patchelf"), "patchelf is not on PATH: apt-get install patchelf");
    }
}
