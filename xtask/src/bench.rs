//! `cargo xtask bench [--compare PATH]`: what the shim adds to a program's start, next to a plain
//! ld.so start, on the path every NixOS start takes and on the paths without an environment edit.
//!
//! The bench makes a library set like the module's `share/nix-ld/lib` (symbolic links to a dozen
//! common libraries, not glibc's own) and builds the shim with compiled-in defaults pointing at it
//! and at this machine's loader, in its own target directory. Every measurement is a pair of
//! environments: the one the shim's programs start with, and the one of the direct start, which
//! is the same plus `LD_LIBRARY_PATH` naming the same directories, so that ld.so searches the same
//! and the difference is the shim's. Measured side by side in one run:
//!
//! 1. user-space instructions (callgrind, run as `valgrind.bin` where Debian's wrapper would add
//!    `LD_LIBRARY_PATH` of its own) of the hello fixture, for each scenario of [`scenarios`];
//! 2. wall time of spawn+wait of hello and of `python3 -c pass` on the NixOS path, the builds
//!    alternating;
//! 3. the file system calls (strace) of one start: how many ld.so makes because of the library
//!    set, and how many the shim adds;
//! 4. the shim's mapped and on-disk size, linked with rust-lld (rustup's default) and with `cc`
//!    and GNU ld (nixpkgs' way);
//! 5. how long nix-ld-doctor takes to answer with 30,000 store entries (`bench_doctor.rs`; only
//!    that with `--doctor`).
//!
//! It prints a table with the targets, writes `target/bench/bench.json` and prints that path last.
//! A missed target is reported, not an error; a program that fails to run is an error, except
//! that a `--compare` shim that cannot start with no variable at all shows `-` in that row.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::bench_doctor;
use crate::build;
use crate::elfcheck;
use crate::util::{self, project_root, Result};

const HELLO_RUNS: usize = 2_000;
const PYTHON_RUNS: usize = 300;
/// Rounds run before recording: they fill the page cache and let the CPU clock settle.
const WARMUP_ROUNDS: usize = 30;
const EXTRA_VARS: usize = 1_000;
const PYTHON: &str = "/usr/bin/python3";
const HELLO_OUTPUT: &[u8] = b"hello from a foreign binary\n";
/// The interpreter every program here was linked with; a patched copy must replace exactly this.
const SYSTEM_INTERP: &[u8] = b"/lib64/ld-linux-x86-64.so.2";
/// Libraries of the bench's library set, as many as this machine has (glibc's own are left out:
/// a set must not shadow the glibc of the loader `NIX_LD` names).
const SET_LIBRARIES: &[&str] = &[
    "libz.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
    "libffi.so.8",
    "libexpat.so.1",
    "liblzma.so.5",
    "libbz2.so.1.0",
    "libsqlite3.so.0",
    "libuuid.so.1",
    "libncursesw.so.6",
    "libtinfo.so.6",
    "libcurl.so.4",
    "libxml2.so.2",
    "libreadline.so.8",
];
const LIBRARY_DIR: &str = "/usr/lib/x86_64-linux-gnu";

/// An appended entry for ld.so (the NixOS path, `env -i`): the trampoline's lookup of libc's
/// `environ` and the copy of the block the program starts on.
const MAX_OVERHEAD_APPENDED: f64 = 3_500.0;
const MAX_OVERHEAD_MANY_VARS: f64 = 18_000.0;
/// The user's own `LD_LIBRARY_PATH`, borrowed for ld.so's entry.
const MAX_OVERHEAD_BORROWED: f64 = 3_000.0;
const MAX_OVERHEAD_NO_EDIT: f64 = 2_000.0;
const MAX_SPAWN_P10_RATIO: f64 = 1.03;
const MAX_MAPPED: f64 = elfcheck::MAX_MAPPED as f64;

pub fn run(args: &[String]) -> Result<()> {
    let (compare, only_doctor) = parse_args(args)?;
    let loader = util::system_loader()?;
    let dir = project_root().join("target/bench");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let set = library_set(&dir)?;
    if only_doctor {
        let doctor = bench_doctor::measure(&dir, &loader, &set)?;
        println!();
        print_aligned(&bench_doctor::lines(&doctor));
        return Ok(());
    }
    let valgrind = valgrind()?;
    require("strace", "apt-get install strace")?;
    let user_lib = dir.join("user-lib");
    fs::create_dir_all(&user_lib).map_err(|e| format!("{}: {e}", user_lib.display()))?;

    // The shim with this machine's loader and the bench's set compiled in, so that a start with no
    // variable at all takes the NixOS path too. Its own target directory keeps the test suite's
    // variant from being rebuilt back and forth.
    let defaults = (loader.to_str().ok_or("loader path is not UTF-8")?, set.to_str().ok_or("set path is not UTF-8")?);
    let mut shims = vec![("nix-ld".to_string(), build::shim_in(Some(defaults), "nix-ld-bench", "bench-variant")?)];
    if let Some(path) = compare {
        let path = path.canonicalize().map_err(|e| format!("--compare {}: {e}", path.display()))?;
        shims.push(("compare".to_string(), path));
    }
    // Dropped at the end of `run`, which removes the short interpreter links.
    let (builds, _links) = prepare(&dir, &shims)?;

    let scenarios = scenarios(&loader, &set, &user_lib);
    // The size that counts is that of the shim as NixOS gets it: the bench's build differs only in
    // its compiled-in paths.
    let nixos_build = build::shim(None, "nix-ld")?;
    let sized = |b: &Build| match b.name.as_str() {
        "nix-ld" => Some(nixos_build.clone()),
        _ => b.shim.clone(),
    };
    let gnu_ld_build = build::shim_linked(None, "nix-ld-gnu-ld", "variant", build::Linker::GnuLd)?;
    let mut results: Vec<Results> = builds
        .iter()
        .map(|b| Results {
            size: sized(b).map(|p| size_of(&p)).transpose().ok().flatten(),
            gnu_ld_size: if b.name == "nix-ld" { size_of(&gnu_ld_build).ok() } else { None },
            ..Default::default()
        })
        .collect();
    for (b, r) in builds.iter().zip(&mut results) {
        eprintln!("callgrind: {}", b.name);
        for sc in &scenarios {
            let env = if b.shim.is_some() { &sc.shim_env } else { &sc.direct_env };
            let ir = hello_instructions(&valgrind, &dir, b, sc.key, env);
            r.ir.push(match (ir, b.name.as_str()) {
                (Ok(ir), _) => Some(ir),
                // Another shim need not know this machine's loader without NIX_LD.
                (Err(e), "compare") if sc.key == "env_i" => {
                    eprintln!("  {}: {e}", sc.key);
                    None
                }
                (Err(e), _) => return Err(e),
            });
        }
        let nixos = &scenarios[0];
        let mut python_env = if b.shim.is_some() { nixos.shim_env.clone() } else { nixos.direct_env.clone() };
        // Python randomizes its string hashes per start, which moves its instruction count by tens
        // of thousands; a fixed seed (the same for every build) makes the count repeatable.
        python_env.push(("PYTHONHASHSEED".into(), "0".into()));
        r.python_ir = python_instructions(&valgrind, &dir, b, &python_env)?;
    }
    syscalls(&dir, &builds, &scenarios[0], &mut results)?;
    time_starts(&builds, &scenarios[0], &mut results)?;
    let doctor = bench_doctor::measure(&dir, &loader, &set)?;

    let rows = rows(&scenarios, &results);
    print_table(&builds, &rows, &set);
    print_aligned(&bench_doctor::lines(&doctor));
    println!();
    let json = dir.join("bench.json");
    let text = to_json(&builds, &results, &rows, &scenarios, &bench_doctor::json(&doctor));
    fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    println!("{}", json.display());
    Ok(())
}

/// The shim to compare with, and whether only the doctor is measured (`--doctor`).
fn parse_args(args: &[String]) -> Result<(Option<PathBuf>, bool)> {
    match args {
        [] => Ok((None, false)),
        [flag, path] if flag == "--compare" => Ok((Some(PathBuf::from(path)), false)),
        [flag] if flag == "--doctor" => Ok((None, true)),
        _ => Err("usage: cargo xtask bench [--compare PATH | --doctor]".into()),
    }
}

fn require(tool: &str, install: &str) -> Result<()> {
    let ok = Command::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("{tool} is needed: {install}"))
    }
}

/// The valgrind to run. Debian's `valgrind` is a script that adds `LD_LIBRARY_PATH=/usr/lib/debug`
/// (and two C++ variables) to the program's environment before it runs `valgrind.bin`: that would
/// give every start a search path of its own, so the real binary is run where it exists.
fn valgrind() -> Result<PathBuf> {
    require("valgrind", "apt-get install valgrind")?;
    let script = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("valgrind")).find(|p| p.exists()))
        .ok_or("valgrind is not on PATH")?;
    let real = script.with_file_name("valgrind.bin");
    Ok(if real.exists() { real } else { script })
}

/// `target/bench/libset`: links to the libraries of [`SET_LIBRARIES`] this machine has.
fn library_set(dir: &Path) -> Result<PathBuf> {
    let set = dir.join("libset");
    let _ = fs::remove_dir_all(&set);
    fs::create_dir_all(&set).map_err(|e| format!("{}: {e}", set.display()))?;
    let mut linked = 0;
    for name in SET_LIBRARIES {
        let target = Path::new(LIBRARY_DIR).join(name);
        if target.exists() {
            std::os::unix::fs::symlink(&target, set.join(name)).map_err(|e| format!("{}: {e}", set.display()))?;
            linked += 1;
        }
    }
    if linked < 8 {
        return Err(format!(
            "only {linked} of the set's libraries are in {LIBRARY_DIR}: the set would not be like NixOS's"
        ));
    }
    Ok(set)
}

type Env = Vec<(String, String)>;

/// One row group of the table: how the programs are started.
struct Scenario {
    key: &'static str,
    label: &'static str,
    shim_env: Env,
    direct_env: Env,
    limit: f64,
}

fn var(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// The measured starts. The first is the NixOS path, also used for wall time and system calls.
fn scenarios(loader: &Path, set: &Path, user_lib: &Path) -> Vec<Scenario> {
    let set = set.display().to_string();
    let base = vec![var("PATH", "/usr/bin:/bin"), var("NIX_LD", loader.display().to_string())];
    let with = |env: &Env, extra: &[(String, String)]| env.iter().chain(extra).cloned().collect::<Env>();
    let nixos = with(&base, &[var("NIX_LD_LIBRARY_PATH", set.clone())]);
    let many: Env = (0..EXTRA_VARS).map(|i| var(&format!("BENCH_VAR_{i:04}"), "abcdefghijklmnopqrst")).collect();
    let user = user_lib.display().to_string();
    let empty = with(&base, &[var("NIX_LD_LIBRARY_PATH", "")]);
    let absent = with(&base, &[var("NIX_LD_LIBRARY_PATH", "/nonexistent/nix-ld/lib")]);
    let llp = |v: String| var("LD_LIBRARY_PATH", v);
    vec![
        Scenario {
            key: "nixos",
            label: "NixOS path: NIX_LD_LIBRARY_PATH = the set",
            direct_env: with(&nixos, &[llp(set.clone())]),
            shim_env: nixos.clone(),
            limit: MAX_OVERHEAD_APPENDED,
        },
        Scenario {
            key: "nixos_many_vars",
            label: "NixOS path, +1,000 variables",
            direct_env: with(&with(&nixos, &many), &[llp(set.clone())]),
            shim_env: with(&nixos, &many),
            limit: MAX_OVERHEAD_MANY_VARS,
        },
        Scenario {
            key: "env_i",
            label: "NixOS path, no variables (env -i, compiled-in)",
            direct_env: vec![llp(set.clone())],
            shim_env: Vec::new(),
            limit: MAX_OVERHEAD_APPENDED,
        },
        Scenario {
            key: "user_ld_library_path",
            label: "NixOS path and the user's LD_LIBRARY_PATH",
            direct_env: with(&nixos, &[llp(format!("{user}:{set}"))]),
            shim_env: with(&nixos, &[llp(user)]),
            limit: MAX_OVERHEAD_BORROWED,
        },
        Scenario {
            key: "no_edit_empty",
            label: "no edit: NIX_LD_LIBRARY_PATH=''",
            direct_env: empty.clone(),
            shim_env: empty,
            limit: MAX_OVERHEAD_NO_EDIT,
        },
        Scenario {
            key: "no_edit_absent",
            label: "no edit: library directory absent",
            direct_env: absent.clone(),
            shim_env: absent,
            limit: MAX_OVERHEAD_NO_EDIT,
        },
    ]
}

/// One column of the table: the programs started through one interpreter.
struct Build {
    name: String,
    /// The shim, or None for the plain system loader.
    shim: Option<PathBuf>,
    hello: PathBuf,
    python: PathBuf,
}

/// Builds the hello fixture and a python3 copy for the direct start and for each shim.
fn prepare(dir: &Path, shims: &[(String, PathBuf)]) -> Result<(Vec<Build>, Vec<ShortLink>)> {
    let source = project_root().join("tests/fixtures/hello.c");
    let python = Path::new(PYTHON).canonicalize().map_err(|e| format!("{PYTHON}: {e} (apt-get install python3)"))?;
    let hello = dir.join("hello-direct");
    util::run(Command::new("gcc").args(["-O2", "-o"]).arg(&hello).arg(&source))?;
    // The direct python3 is a byte-identical copy next to the patched ones: python looks for its
    // prefix relative to its own path, so the original in /usr/bin would take a different route.
    let direct_python = dir.join("python3-direct");
    util::write_executable(&direct_python, &fs::read(&python).map_err(|e| format!("{}: {e}", python.display()))?)?;
    let mut builds = vec![Build { name: "direct".into(), shim: None, hello, python: direct_python }];
    let mut links = Vec::new();
    for (i, (name, shim)) in shims.iter().enumerate() {
        let hello = dir.join(format!("hello-{name}"));
        let mut linker = std::ffi::OsString::from("-Wl,--dynamic-linker=");
        linker.push(shim);
        util::run(Command::new("gcc").args(["-O2", "-o"]).arg(&hello).arg(&source).arg(linker))?;
        let link = ShortLink::new(i, shim)?;
        let patched = dir.join(format!("python3-{name}"));
        copy_with_interpreter(&python, &patched, &link.0)?;
        links.push(link);
        builds.push(Build { name: name.clone(), shim: Some(shim.clone()), hello, python: patched });
    }
    Ok((builds, links))
}

/// A symlink to a shim with a path short enough for a program's existing PT_INTERP (28 bytes),
/// so that an installed binary can be pointed at the shim without root and without patchelf.
struct ShortLink(PathBuf);

impl ShortLink {
    fn new(index: usize, target: &Path) -> Result<ShortLink> {
        let path = PathBuf::from(format!("/tmp/nlb-{}-{index}", std::process::id()));
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ShortLink(path))
    }
}

impl Drop for ShortLink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Copies the ELF program `src` to `dst` with its interpreter replaced by `interp`.
fn copy_with_interpreter(src: &Path, dst: &Path, interp: &Path) -> Result<()> {
    let mut bytes = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    set_interpreter(&mut bytes, interp.as_os_str().as_bytes()).map_err(|e| format!("{}: {e}", src.display()))?;
    util::write_executable(dst, &bytes)
}

/// Rewrites the PT_INTERP string in place, NUL-padded: nothing else in the file moves, so no
/// offset needs fixing, but the new path must fit where the system loader's path was.
fn set_interpreter(bytes: &mut [u8], interp: &[u8]) -> Result<()> {
    let header = program_headers(bytes)?.into_iter().find(|h| h.kind == PT_INTERP).ok_or("no PT_INTERP")?;
    let field = &mut bytes[header.offset..header.offset + header.file_size];
    if field.split(|&b| b == 0).next() != Some(SYSTEM_INTERP) {
        return Err(format!("interpreter is not {}", String::from_utf8_lossy(SYSTEM_INTERP)));
    }
    if interp.len() >= field.len() {
        return Err(format!(
            "{} is longer than the {} bytes PT_INTERP holds",
            String::from_utf8_lossy(interp),
            field.len() - 1
        ));
    }
    field.fill(0);
    field[..interp.len()].copy_from_slice(interp);
    Ok(())
}

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;

struct ProgramHeader {
    kind: u32,
    offset: usize,
    file_size: usize,
    mem_size: u64,
}

/// The program headers of an ELF64 little-endian file, bounds-checked (unlike elfcheck, this also
/// reads other shims and ordinary programs).
fn program_headers(b: &[u8]) -> Result<Vec<ProgramHeader>> {
    let word = |at: usize, n: usize| -> Result<u64> {
        let bytes = at.checked_add(n).and_then(|end| b.get(at..end)).ok_or("truncated ELF file")?;
        Ok(bytes.iter().rev().fold(0, |v, &x| v << 8 | x as u64))
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err("not an ELF64 little-endian file".into());
    }
    let (phoff, phentsize, phnum) = (word(32, 8)? as usize, word(54, 2)? as usize, word(56, 2)? as usize);
    let mut headers = Vec::with_capacity(phnum);
    for i in 0..phnum {
        let at = i.checked_mul(phentsize).and_then(|x| x.checked_add(phoff)).ok_or("truncated ELF file")?;
        let header = ProgramHeader {
            kind: word(at, 4)? as u32,
            offset: word(at + 8, 8)? as usize,
            file_size: word(at + 32, 8)? as usize,
            mem_size: word(at + 40, 8)?,
        };
        if header.offset.checked_add(header.file_size).is_none_or(|end| end > b.len()) {
            return Err(format!("program header {i} points past the end of the file"));
        }
        headers.push(header);
    }
    Ok(headers)
}

struct Size {
    mapped: u64,
    file: u64,
    /// Whether elfcheck accepted it (another shim may be built differently and still work).
    verified: bool,
}

fn size_of(shim: &Path) -> Result<Size> {
    let bytes = fs::read(shim).map_err(|e| format!("{}: {e}", shim.display()))?;
    if let Ok(facts) = elfcheck::verify_with(&bytes, u64::MAX / 2) {
        return Ok(Size { mapped: facts.mapped, file: facts.file_size, verified: true });
    }
    let headers = program_headers(&bytes).map_err(|e| format!("{}: {e}", shim.display()))?;
    let mapped = headers.iter().filter(|h| h.kind == PT_LOAD).map(|h| h.mem_size).sum();
    Ok(Size { mapped, file: bytes.len() as u64, verified: false })
}

/// What was measured for one build.
#[derive(Default)]
struct Results {
    /// Hello's instructions per scenario, in [`scenarios`] order; None where it could not start.
    ir: Vec<Option<u64>>,
    python_ir: u64,
    hello_time: Timing,
    python_time: Timing,
    /// File system calls of one NixOS-path start (strace).
    file_calls: u64,
    /// Direct start only: the same, without the library set in `LD_LIBRARY_PATH`.
    file_calls_without_set: Option<u64>,
    size: Option<Size>,
    /// This project's shim only: its size linked with GNU ld, as nixpkgs links it (`size` is
    /// the toolchain's default linker's).
    gnu_ld_size: Option<Size>,
}

fn hello_instructions(valgrind: &Path, dir: &Path, b: &Build, label: &str, env: &[(String, String)]) -> Result<u64> {
    let out = dir.join(format!("callgrind.{}.hello-{label}.out", b.name));
    let (ir, stdout) = instructions(valgrind, &b.hello, &[], env, &out)?;
    // A shim that silently ran nothing would look very cheap.
    if stdout != HELLO_OUTPUT {
        return Err(format!("{} printed {:?} under callgrind", b.hello.display(), String::from_utf8_lossy(&stdout)));
    }
    Ok(ir)
}

fn python_instructions(valgrind: &Path, dir: &Path, b: &Build, env: &[(String, String)]) -> Result<u64> {
    let out = dir.join(format!("callgrind.{}.python3.out", b.name));
    Ok(instructions(valgrind, &b.python, &["-c", "pass"], env, &out)?.0)
}

/// Counts the user-space instructions of one start with callgrind. Valgrind reads PT_INTERP and
/// loads the interpreter itself, so the shim's own instructions are counted too. The out file is
/// kept for `callgrind_annotate`.
fn instructions(
    valgrind: &Path,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    out: &Path,
) -> Result<(u64, Vec<u8>)> {
    let mut cmd = Command::new(valgrind);
    cmd.args(["-q", "--tool=callgrind"]).arg(format!("--callgrind-out-file={}", out.display()));
    cmd.arg(program).args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    let output = cmd.output().map_err(|e| format!("cannot start valgrind: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("valgrind {} failed ({}): {stderr}", program.display(), output.status));
    }
    let text = fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok((total_ir(&text).ok_or_else(|| format!("{}: no summary or totals line", out.display()))?, output.stdout))
}

/// Counts the file system calls (strace's `%file` class: opens, stats, access checks) of one start
/// of each build on the NixOS path, and of a direct start without the library set.
fn syscalls(dir: &Path, builds: &[Build], nixos: &Scenario, results: &mut [Results]) -> Result<()> {
    for (b, r) in builds.iter().zip(results.iter_mut()) {
        let env = if b.shim.is_some() { &nixos.shim_env } else { &nixos.direct_env };
        r.file_calls = file_calls(dir, &b.hello, env, &b.name)?;
    }
    let without: Env = nixos.direct_env.iter().filter(|(k, _)| k != "LD_LIBRARY_PATH").cloned().collect();
    results[0].file_calls_without_set = Some(file_calls(dir, &builds[0].hello, &without, "direct-without-set")?);
    Ok(())
}

fn file_calls(dir: &Path, program: &Path, env: &[(String, String)], name: &str) -> Result<u64> {
    let log = dir.join(format!("strace.{name}.txt"));
    let mut cmd = Command::new("strace");
    cmd.args(["-qq", "-e", "trace=%file", "-o"])
        .arg(&log)
        .arg(program)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdout(Stdio::null());
    let status = cmd.status().map_err(|e| format!("cannot start strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace {} failed ({status})", program.display()));
    }
    let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    Ok(count_calls(&text))
}

/// System calls in an strace log: one a line, but for the exit line.
fn count_calls(log: &str) -> u64 {
    log.lines().filter(|l| !l.starts_with("+++") && !l.starts_with("---") && !l.trim().is_empty()).count() as u64
}

fn total_ir(callgrind_out: &str) -> Option<u64> {
    callgrind_out
        .lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[derive(Default, Clone, Copy)]
struct Timing {
    median_ns: u64,
    p10_ns: u64,
}

fn time_starts(builds: &[Build], nixos: &Scenario, results: &mut [Results]) -> Result<()> {
    let env = |b: &Build| if b.shim.is_some() { nixos.shim_env.clone() } else { nixos.direct_env.clone() };
    eprintln!("timing: hello, {HELLO_RUNS} runs per build");
    let hello = alternate(builds, |b| timed_command(&b.hello, &[], &env(b)), HELLO_RUNS)?;
    eprintln!("timing: python3 -c pass, {PYTHON_RUNS} runs per build");
    let python = alternate(builds, |b| timed_command(&b.python, &["-c", "pass"], &env(b)), PYTHON_RUNS)?;
    for ((r, h), p) in results.iter_mut().zip(hello).zip(python) {
        r.hello_time = h;
        r.python_time = p;
    }
    Ok(())
}

fn timed_command(program: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    // No pipes: reading them would be part of the measured time.
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Times spawn..wait of each build's command `runs` times, taking turns, so that slow phases of
/// the machine fall on every build alike.
fn alternate(builds: &[Build], command: impl Fn(&Build) -> Command, runs: usize) -> Result<Vec<Timing>> {
    let mut commands: Vec<Command> = builds.iter().map(command).collect();
    let mut samples = vec![Vec::with_capacity(runs); commands.len()];
    for round in 0..WARMUP_ROUNDS + runs {
        for k in 0..commands.len() {
            // Rotate who starts the round, so that no build always runs right after another.
            let i = (round + k) % commands.len();
            let ns = time_once(&mut commands[i])?;
            if round >= WARMUP_ROUNDS {
                samples[i].push(ns);
            }
        }
    }
    Ok(samples.into_iter().map(timing).collect())
}

fn time_once(cmd: &mut Command) -> Result<u64> {
    let start = Instant::now();
    let status = cmd.spawn().and_then(|mut child| child.wait()).map_err(|e| format!("{}: {e}", util::show(cmd)))?;
    let ns = start.elapsed().as_nanos() as u64;
    if !status.success() {
        // Run it again with output captured, to say why.
        let out = cmd.stderr(Stdio::piped()).output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        return Err(format!("{} failed ({status}): {}", util::show(cmd), out.unwrap_or_default()));
    }
    Ok(ns)
}

fn timing(mut ns: Vec<u64>) -> Timing {
    ns.sort_unstable();
    Timing { median_ns: ns[ns.len() / 2], p10_ns: ns[ns.len() / 10] }
}

// --- Report -----------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Unit {
    Count,
    /// Signed count: an overhead over the direct start.
    Delta,
    Micros,
    Ratio,
    Bytes,
}

/// One line of the table (and one entry of the JSON): a value per build, None where it does not
/// apply (the direct start has no overhead and no shim size).
struct Row {
    key: String,
    label: String,
    unit: Unit,
    values: Vec<Option<f64>>,
    /// The limit for a shim's value, met when the value is at most this.
    limit: Option<f64>,
}

fn rows(scenarios: &[Scenario], r: &[Results]) -> Vec<Row> {
    type Field = fn(&Results) -> u64;
    let direct = &r[0];
    // A value for every build, or for the shims only (the direct start is the reference).
    let all = |f: &dyn Fn(&Results) -> Option<f64>| r.iter().map(f).collect::<Vec<_>>();
    let shims =
        |f: &dyn Fn(&Results) -> Option<f64>| std::iter::once(None).chain(r[1..].iter().map(f)).collect::<Vec<_>>();
    let micros = |f: Field| all(&|x| Some(f(x) as f64 / 1000.0));
    let ratio = |f: Field| shims(&|x| Some(f(x) as f64 / f(direct) as f64));
    let size = |f: fn(&Size) -> u64| shims(&|x| x.size.as_ref().map(|s| f(s) as f64));
    let row = |key: String, label: String, unit, values, limit| Row { key, label, unit, values, limit };
    use Unit::*;
    let mut rows = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        rows.push(row(
            format!("{}_ir", sc.key),
            format!("hello: instructions, {}", sc.label),
            Count,
            all(&|x| x.ir[i].map(|v| v as f64)),
            None,
        ));
        let overhead = shims(&|x| Some(x.ir[i]? as f64 - direct.ir[i]? as f64));
        rows.push(row(
            format!("{}_ir_overhead", sc.key),
            "  over the direct start".into(),
            Delta,
            overhead,
            Some(sc.limit),
        ));
    }
    let s = |k: &str| k.to_string();
    rows.extend([
        row(
            s("file_calls"),
            s("NixOS path: file system calls (strace)"),
            Count,
            all(&|x| Some(x.file_calls as f64)),
            None,
        ),
        row(
            s("file_calls_from_the_set"),
            s("  of them ld.so's, for the set"),
            Delta,
            all(&|x| Some(x.file_calls as f64 - x.file_calls_without_set? as f64)),
            None,
        ),
        row(
            s("file_calls_overhead"),
            s("  added by the shim"),
            Delta,
            shims(&|x| Some(x.file_calls as f64 - direct.file_calls as f64)),
            None,
        ),
        row(
            s("hello_median_us"),
            s("NixOS path: hello spawn+wait median (us)"),
            Micros,
            micros(|x| x.hello_time.median_ns),
            None,
        ),
        row(
            s("hello_p10_us"),
            s("NixOS path: hello spawn+wait p10 (us)"),
            Micros,
            micros(|x| x.hello_time.p10_ns),
            None,
        ),
        row(s("hello_median_ratio"), s("  median ratio to direct"), Ratio, ratio(|x| x.hello_time.median_ns), None),
        row(
            s("hello_p10_ratio"),
            s("  p10 ratio to direct"),
            Ratio,
            ratio(|x| x.hello_time.p10_ns),
            Some(MAX_SPAWN_P10_RATIO),
        ),
        row(
            s("python3_ir"),
            s("NixOS path: python3 -c pass, instructions"),
            Count,
            all(&|x| Some(x.python_ir as f64)),
            None,
        ),
        row(
            s("python3_ir_overhead"),
            s("  over the direct start"),
            Delta,
            shims(&|x| Some(x.python_ir as f64 - direct.python_ir as f64)),
            None,
        ),
        row(
            s("python3_median_us"),
            s("NixOS path: python3 -c pass median (us)"),
            Micros,
            micros(|x| x.python_time.median_ns),
            None,
        ),
        row(
            s("python3_p10_us"),
            s("NixOS path: python3 -c pass p10 (us)"),
            Micros,
            micros(|x| x.python_time.p10_ns),
            None,
        ),
        row(s("python3_p10_ratio"), s("  p10 ratio to direct"), Ratio, ratio(|x| x.python_time.p10_ns), None),
        row(
            s("mapped_bytes"),
            s("shim: mapped (PT_LOAD memsz), NixOS's paths compiled in, rust-lld"),
            Bytes,
            size(|s| s.mapped),
            Some(MAX_MAPPED),
        ),
        row(
            s("mapped_bytes_gnu_ld"),
            s("  the same linked with cc and GNU ld (as nixpkgs)"),
            Bytes,
            shims(&|x| x.gnu_ld_size.as_ref().map(|s| s.mapped as f64)),
            Some(MAX_MAPPED),
        ),
        row(s("file_bytes"), s("shim: file size"), Bytes, size(|s| s.file), None),
    ]);
    rows
}

fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count | Unit::Bytes => thousands(v.round() as i64),
        Unit::Delta => format!("{}{}", if v >= 0.0 { "+" } else { "" }, thousands(v.round() as i64)),
        Unit::Micros => {
            let tenths = (v * 10.0).round() as i64;
            format!("{}.{}", thousands(tenths / 10), tenths % 10)
        }
        Unit::Ratio => format!("{v:.3}"),
    }
}

pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn print_table(builds: &[Build], rows: &[Row], set: &Path) {
    let mut header: Vec<String> = vec!["measurement".into()];
    header.extend(builds.iter().map(|b| b.name.clone()));
    header.push("target".into());
    header.extend(builds[1..].iter().map(|b| format!("{} ok?", b.name)));
    let mut lines = vec![header];
    for row in rows {
        let mut line = vec![row.label.to_string()];
        line.extend(row.values.iter().map(|v| v.map_or("-".into(), |v| format_value(row.unit, v))));
        line.push(
            row.limit.map_or(String::new(), |l| format!("<= {}", format_value(row.unit, l).trim_start_matches('+'))),
        );
        for v in &row.values[1..] {
            line.push(match (row.limit, v) {
                (Some(limit), Some(v)) => if *v <= limit { "ok" } else { "MISSED" }.into(),
                _ => String::new(),
            });
        }
        lines.push(line);
    }
    println!();
    for b in &builds[1..] {
        println!("{}: {}", b.name, b.shim.as_ref().map_or(String::new(), |p| p.display().to_string()));
    }
    println!("hello: {HELLO_RUNS} starts per build, python3: {PYTHON_RUNS}, alternating");
    let libraries = fs::read_dir(set).map(|d| d.count()).unwrap_or(0);
    println!("library set: {} ({libraries} libraries)", set.display());
    println!("env: PATH, NIX_LD, then per row; the direct start also gets LD_LIBRARY_PATH = the same directories");
    println!("(python3 instructions: also PYTHONHASHSEED=0); JSON has every environment\n");
    print_aligned(&lines);
    println!();
}

/// Prints a table given as rows of cells, each column as wide as its widest cell.
pub(crate) fn print_aligned(lines: &[Vec<String>]) {
    let widths: Vec<usize> =
        (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            // Labels align left, numbers right.
            .map(|(c, (s, w))| if c == 0 { format!("{s:<w$}") } else { format!("{s:>w$}") })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
    }
}

/// The JSON report: per build its measurements (the table's rows) and, for shims, each target met;
/// `doctor` is the doctor's object.
fn to_json(builds: &[Build], results: &[Results], rows: &[Row], scenarios: &[Scenario], doctor: &str) -> String {
    let env_json = |env: &Env| {
        format!(
            "{{{}}}",
            env.iter()
                .filter(|(k, _)| !k.starts_with("BENCH_VAR_"))
                .map(|(k, v)| format!("{}: {}", json_string(k), json_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let env = scenarios
        .iter()
        .map(|sc| {
            format!(
                "{}: {{\"shim\": {}, \"direct\": {}}}",
                json_string(sc.key),
                env_json(&sc.shim_env),
                env_json(&sc.direct_env)
            )
        })
        .collect::<Vec<_>>();
    let mut builds_json = Vec::new();
    for (i, b) in builds.iter().enumerate() {
        let mut fields = vec![format!(
            "\"interpreter\": {}",
            b.shim.as_ref().map_or("null".into(), |p| json_string(&p.display().to_string()))
        )];
        for row in rows {
            if let Some(v) = row.values[i] {
                fields.push(format!("{}: {}", json_string(&row.key), json_number(v)));
            }
        }
        if let Some(size) = &results[i].size {
            fields.push(format!("\"verified_by_elfcheck\": {}", size.verified));
        }
        if b.shim.is_some() {
            let met = rows
                .iter()
                .filter_map(|r| Some(format!("{}: {}", json_string(&r.key), r.values[i]? <= r.limit?)))
                .collect::<Vec<_>>();
            fields.push(format!("\"targets_met\": {{{}}}", met.join(", ")));
        }
        builds_json.push(format!("    {}: {{\n      {}\n    }}", json_string(&b.name), fields.join(",\n      ")));
    }
    let targets = rows
        .iter()
        .filter_map(|r| Some(format!("{}: {}", json_string(&r.key), json_number(r.limit?))))
        .collect::<Vec<_>>();
    format!(
        "{{\n  \"environments\": {{{}}},\n  \"extra_vars\": {EXTRA_VARS},\n  \"runs\": {{\"hello\": {HELLO_RUNS}, \"python3\": {PYTHON_RUNS}}},\n  \"targets\": {{{}}},\n  \"builds\": {{\n{}\n  }},\n  \"doctor\": {doctor}\n}}\n",
        env.join(", "),
        targets.join(", "),
        builds_json.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line() {
        assert_eq!(total_ir("events: Ir\nsummary: 134800\ntotals: 1\n"), Some(134800));
        assert_eq!(total_ir("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(total_ir("events: Ir\n"), None);
    }

    /// A minimal ELF64 header with one PT_INTERP program header right after it.
    fn elf_with_interp(interp: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        b[64 + 8..64 + 16].copy_from_slice(&(64u64 + 56).to_le_bytes()); // p_offset
        b[64 + 32..64 + 40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes()); // p_filesz
        b.extend_from_slice(interp);
        b.push(0);
        b
    }

    #[test]
    fn rewrites_the_interpreter_in_place() {
        let mut b = elf_with_interp(SYSTEM_INTERP);
        let len = b.len();
        set_interpreter(&mut b, b"/tmp/nlb-1-0").unwrap();
        assert_eq!(b.len(), len);
        assert!(b.ends_with(b"/tmp/nlb-1-0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"));
        // Now it is no longer the system loader, and too long a path never fits.
        assert!(set_interpreter(&mut b, b"/x").is_err());
        assert!(set_interpreter(&mut elf_with_interp(SYSTEM_INTERP), &[b'a'; 28]).is_err());
        assert!(set_interpreter(&mut elf_with_interp(SYSTEM_INTERP), &[b'a'; 27]).is_ok());
    }

    #[test]
    fn rejects_headers_past_the_end() {
        let mut b = elf_with_interp(SYSTEM_INTERP);
        b.truncate(b.len() - 1);
        assert!(program_headers(&b).is_err());
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-26641), "-26,641");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
