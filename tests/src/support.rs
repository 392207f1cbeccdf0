//! Helpers for the execve tests: building fixtures, running them with an exact environment.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A path `cargo xtask test` passes in. Without it (a plain `cargo test --workspace`) the whole
/// run stops at the first test that asks, with one line, instead of failing every test alike.
pub fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) => PathBuf::from(v),
        None => {
            // Straight to stderr: the test harness captures `eprintln!`.
            use std::io::Write;
            let line = format!("\nerror: {name} is not set: run the execve tests with `cargo xtask test`, which builds the shims and the doctor\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            std::process::exit(2)
        }
    }
}

/// The release shim (NixOS defaults compiled in).
pub fn shim() -> PathBuf {
    env_path("NIX_LD_TEST_SHIM")
}

/// A shim whose compiled-in defaults are `defaults_dir()/ld.so` and `defaults_dir()/lib`.
pub fn defaults_shim() -> PathBuf {
    env_path("NIX_LD_TEST_DEFAULTS_SHIM")
}

/// Tests that create or remove the compiled-in default paths hold this while they run.
pub fn defaults_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn defaults_dir() -> PathBuf {
    env_path("NIX_LD_TEST_DEFAULTS_DIR")
}

/// This machine's real glibc loader: `NIX_LD` when set, else the interpreter `cc` gives the
/// programs it links (the Nix build sandbox has no /lib64; its cc names a store path).
pub fn system_loader() -> PathBuf {
    let path = match std::env::var_os("NIX_LD") {
        Some(loader) => PathBuf::from(loader),
        None => toolchain_loader(),
    };
    path.canonicalize().unwrap_or_else(|e| panic!("no glibc loader at {}: {e}", path.display()))
}

/// The PT_INTERP that `cc` writes into a program, read from one it links.
fn toolchain_loader() -> PathBuf {
    static LOADER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LOADER
        .get_or_init(|| {
            let dir = scratch("toolchain-loader");
            let out = dir.join("probe");
            check(Command::new("cc").arg("-o").arg(&out).arg(fixtures().join("hello.c")));
            let bytes = std::fs::read(&out).unwrap();
            let interp = interpreter_range(&bytes).expect("cc links dynamically linked programs");
            let path = bytes[interp].split(|&b| b == 0).next().unwrap().to_vec();
            PathBuf::from(std::ffi::OsString::from_vec(path))
        })
        .clone()
}

/// Where a program's PT_INTERP string lies in its file.
fn interpreter_range(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phnum) = (u64_at(32), u16_at(56));
    let interp =
        (0..phnum).map(|i| phoff + i * 56).find(|&p| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) == 3)?;
    let (offset, size) = (u64_at(interp + 8), u64_at(interp + 32));
    Some(offset..offset + size)
}

/// A program found on `PATH`, as a shell would find it: the Nix build has bash and coreutils only
/// there, not under /bin or /usr/bin. A missing one fails the test with the package to install.
pub fn on_path(name: &str) -> PathBuf {
    let paths = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{}", crate::nixos_root::not_on_path(name)))
        .canonicalize()
        .unwrap()
}

/// A statically linked program that needs no C library (`static_exit.c`), position-independent
/// or not.
pub fn static_program(dir: &Path, name: &str, pie: bool) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args(["-static", "-nostdlib", "-fno-stack-protector", "-O1"]);
    cmd.arg(if pie { "-static-pie" } else { "-no-pie" });
    check(cmd.arg("-o").arg(&out).arg(fixtures().join("static_exit.c")));
    out
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/execve-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn check(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Compiles fixture `source` into `dir/name` with `interpreter` as its ELF interpreter.
pub fn compile(dir: &Path, source: &str, name: &str, interpreter: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.arg("-O1").arg("-o").arg(&out).arg(fixtures().join(source));
    cmd.arg(format!("-Wl,--dynamic-linker={}", interpreter.display()));
    cmd.args(extra);
    check(&mut cmd);
    out
}

/// Builds `dir/lib/libgreet.so` (and, if `planted`, the impostor in `dir/planted/`).
pub fn greet_library(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    check(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(lib.join("libgreet.so"))
            .arg(fixtures().join("greet.c")),
    );
    lib
}

pub fn planted_greet_library(dir: &Path) {
    check(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-DPLANTED", "-o"])
            .arg(dir.join("libgreet.so"))
            .arg(fixtures().join("greet.c")),
    );
}

/// Compiles the program that needs libgreet.so (linked without RUNPATH).
pub fn needs_greet(dir: &Path, lib: &Path, interpreter: &Path) -> PathBuf {
    let l = format!("-L{}", lib.display());
    compile(dir, "needs_greet.c", "needs_greet", interpreter, &[&l, "-lgreet"])
}

/// Runs `program` with exactly `env` (nothing inherited).
pub fn run_with(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `entries` NUL-separated, for the `launch` fixture.
pub fn env_file(path: &Path, entries: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    for e in entries {
        bytes.extend_from_slice(e);
        bytes.push(0);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Splits NUL-terminated entries.
pub fn entries(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(|s| s.to_vec()).collect();
    assert_eq!(out.pop(), Some(Vec::new()), "output must end with a NUL");
    out
}

/// The `printenv` output: the program's entries and its child's.
pub fn parent_and_child(out: &Output) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    assert!(out.status.success(), "printenv failed: {}", stderr(out));
    let at = out.stdout.iter().position(|&b| b == 1).expect("child marker");
    let (parent, child) = (&out.stdout[..at], &out.stdout[at + 1..]);
    let parse = |b: &[u8]| if b.is_empty() { Vec::new() } else { entries(b) };
    (parse(parent), parse(child))
}

/// A copy of `binary` whose PT_INTERP names `interpreter` (through a short symlink, so the path
/// fits in the existing PT_INTERP): a distribution program that goes through the shim.
pub fn with_interpreter(binary: &Path, interpreter: &Path, dir: &Path, name: &str) -> PathBuf {
    let mut bytes = std::fs::read(binary).unwrap();
    let link = PathBuf::from(format!("/tmp/nxl{}", std::process::id() % 100000));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(interpreter, &link).unwrap();
    let interp = interpreter_range(&bytes).expect("a dynamically linked program");
    let path = link.as_os_str().as_bytes();
    assert!(path.len() < interp.len(), "symlink path too long for PT_INTERP");
    bytes[interp.clone()].fill(0);
    bytes[interp.start..interp.start + path.len()].copy_from_slice(path);
    let out = dir.join(name);
    std::fs::write(&out, bytes).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    out
}

pub fn is_root() -> bool {
    // The effective uid, as the kernel reports it for this process.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Tests that need root are named `root_*`; `cargo xtask test` skips them by name, and says so,
/// when it is not root. Run anyway without root, they fail rather than pass.
pub fn require_root() {
    assert!(is_root(), "this test needs root (run `sudo cargo xtask test`)");
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Builds a freestanding static-pie from `fixture` (a stand-in "loader" that needs no libc).
pub fn freestanding(dir: &Path, fixture: &str, name: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(["-static-pie", "-nostdlib", "-fno-stack-protector", "-O1", "-o"])
        .arg(&out)
        .arg(fixtures().join(fixture))
        .status()
        .unwrap();
    assert!(status.success(), "cannot build {fixture}");
    out
}

/// A glibc to start the programs of a test with: its loader (the direct start's interpreter and
/// the shim's `NIX_LD`) and the directory of its own `libc.so.6`, for a release other than the one
/// `cc` links against.
#[derive(Clone)]
pub struct Glibc {
    pub loader: PathBuf,
    pub libc_dir: Option<PathBuf>,
}

impl Glibc {
    /// This machine's glibc: the loader `cc`'s programs name, and the libc it finds itself.
    pub fn host() -> Glibc {
        Glibc { loader: system_loader(), libc_dir: None }
    }

    /// Another release of glibc, unpacked by `.ci/fetch-glibc` into `NIX_LD_TEST_GLIBC_DIR/<name>`
    /// (`ld.so`, and `lib`, the directory of its libc). `cargo xtask test` skips the tests that
    /// ask for one it has not got, and says so; run anyway, they fail here.
    pub fn other(name: &str, what: &str) -> Glibc {
        let dir = env_path("NIX_LD_TEST_GLIBC_DIR").join(name);
        let (loader, lib) = (dir.join("ld.so"), dir.join("lib"));
        assert!(
            loader.exists() && lib.join("libc.so.6").exists(),
            "{what}'s loader is missing: no {} (run `bash .ci/fetch-glibc {}`)",
            loader.display(),
            dir.parent().unwrap().display()
        );
        Glibc { loader: loader.canonicalize().unwrap(), libc_dir: Some(lib.canonicalize().unwrap()) }
    }

    /// Link flags that make a program load this glibc's own libc.so.6, ahead of the host's, for its
    /// preloads' dependencies too (a DT_RPATH, unlike a DT_RUNPATH, applies to every object the
    /// program loads).
    pub fn link_args(&self) -> Vec<String> {
        match &self.libc_dir {
            Some(dir) => vec!["-Wl,--disable-new-dtags".into(), format!("-Wl,-rpath,{}", dir.display())],
            None => Vec::new(),
        }
    }
}

/// The glibc releases the environment and constructor tests also run against (the tests named
/// `glibc_2_41_*` and `glibc_2_43_*`): NixOS ships 2.40 and newer, and ld.so's and libc's internals
/// (link map, `l_info`) change between releases. `.ci/fetch-glibc` fetches them.
pub const DEBIAN_13: (&str, &str) = ("debian-13", "Debian 13's glibc 2.41");
pub const DEBIAN_UNSTABLE: (&str, &str) = ("debian-unstable", "Debian unstable's glibc 2.43");
