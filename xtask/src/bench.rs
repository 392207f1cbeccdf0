//! `cargo xtask bench [--compare PATH]`: what the shim adds to a program's start, next to a plain ld.so start.
//!
//! Every program is started with the same small environment (`PATH`, `NIX_LD`) and measured side by
//! side in one run, so that machine noise hits all columns alike:
//!
//! 1. user-space instructions (callgrind) of the hello fixture, with and without 1,000 extra variables,
//!    and with an empty `NIX_LD_LIBRARY_PATH` (the shim's own cost, without ld.so searching more);
//! 2. wall time of spawn+wait of the hello fixture, the builds alternating;
//! 3. the shim's mapped and on-disk size;
//! 4. instructions and wall time of `python3 -c pass`, a real program with several libraries.
//!
//! It prints a table with the targets, writes `target/bench/bench.json` and prints that path last.
//! A missed target is reported, not an error; a program that fails to run is an error.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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

const MAX_OVERHEAD_SMALL_ENV: f64 = 2_000.0;
const MAX_OVERHEAD_MANY_VARS: f64 = 20_000.0;
const MAX_SPAWN_P10_RATIO: f64 = 1.03;
const MAX_MAPPED: f64 = 16.0 * 1024.0;

pub fn run(args: &[String]) -> Result<()> {
    let compare = parse_args(args)?;
    require_valgrind()?;
    let loader = util::system_loader()?;
    let dir = project_root().join("target/bench");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut shims = vec![("nix-ld".to_string(), build::shim(None, "nix-ld")?)];
    if let Some(path) = compare {
        let path = path.canonicalize().map_err(|e| format!("--compare {}: {e}", path.display()))?;
        shims.push(("compare".to_string(), path));
    }
    // Dropped at the end of `run`, which removes the short interpreter links.
    let (builds, _links) = prepare(&dir, &shims)?;

    let env = small_env(&loader);
    let mut results = Vec::new();
    for b in &builds {
        eprintln!("callgrind: {}", b.name);
        results.push(count_instructions(&dir, b, &env)?);
    }
    time_starts(&builds, &env, &mut results)?;

    let rows = rows(&results);
    print_table(&builds, &rows);
    let json = dir.join("bench.json");
    let text = to_json(&builds, &results, &rows, &env);
    fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    println!("{}", json.display());
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Option<PathBuf>> {
    match args {
        [] => Ok(None),
        [flag, path] if flag == "--compare" => Ok(Some(PathBuf::from(path))),
        _ => Err("usage: cargo xtask bench [--compare PATH]".into()),
    }
}

fn require_valgrind() -> Result<()> {
    let ok = Command::new("valgrind").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err("valgrind is needed to count instructions: apt-get install valgrind".into())
    }
}

/// The environment of every measured start: nothing that changes how ld.so searches libraries,
/// and `NIX_LD` so that a shim need not fall back to a compiled-in loader path.
fn small_env(loader: &Path) -> Vec<(String, String)> {
    vec![("PATH".into(), "/usr/bin:/bin".into()), ("NIX_LD".into(), loader.display().to_string())]
}

fn extra_vars() -> impl Iterator<Item = (String, String)> {
    (0..EXTRA_VARS).map(|i| (format!("BENCH_VAR_{i:04}"), "abcdefghijklmnopqrst".to_string()))
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
    let python = Path::new(PYTHON).canonicalize().map_err(|e| format!("{PYTHON}: {e}"))?;
    let hello = dir.join("hello-direct");
    util::run(Command::new("gcc").args(["-O2", "-o"]).arg(&hello).arg(&source))?;
    // The direct python3 is a byte-identical copy next to the patched ones: python looks for its
    // prefix relative to its own path, so the original in /usr/bin would take a different route.
    let direct_python = dir.join("python3-direct");
    write_executable(&direct_python, &fs::read(&python).map_err(|e| format!("{}: {e}", python.display()))?)?;
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

fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    // Remove first: overwriting a file that is still mapped by a running program fails (ETXTBSY).
    let _ = fs::remove_file(path);
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Copies the ELF program `src` to `dst` with its interpreter replaced by `interp`.
fn copy_with_interpreter(src: &Path, dst: &Path, interp: &Path) -> Result<()> {
    let mut bytes = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    set_interpreter(&mut bytes, interp.as_os_str().as_bytes()).map_err(|e| format!("{}: {e}", src.display()))?;
    write_executable(dst, &bytes)
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
        return Err(format!("{} is longer than the {} bytes PT_INTERP holds", String::from_utf8_lossy(interp), field.len() - 1));
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
    if let Ok(facts) = elfcheck::verify(&bytes) {
        return Ok(Size { mapped: facts.mapped, file: facts.file_size, verified: true });
    }
    let headers = program_headers(&bytes).map_err(|e| format!("{}: {e}", shim.display()))?;
    let mapped = headers.iter().filter(|h| h.kind == PT_LOAD).map(|h| h.mem_size).sum();
    Ok(Size { mapped, file: bytes.len() as u64, verified: false })
}

/// What was measured for one build.
struct Results {
    hello_ir: u64,
    hello_ir_many: u64,
    hello_ir_no_libs: u64,
    python_ir: u64,
    hello_time: Timing,
    python_time: Timing,
    size: Option<Size>,
}

fn hello_instructions(dir: &Path, b: &Build, label: &str, env: &[(String, String)]) -> Result<u64> {
    let out = dir.join(format!("callgrind.{}.hello-{label}.out", b.name));
    let (ir, stdout) = instructions(&b.hello, &[], env, &out)?;
    // A shim that silently ran nothing would look very cheap.
    if stdout != HELLO_OUTPUT {
        return Err(format!("{} printed {:?} under callgrind", b.hello.display(), String::from_utf8_lossy(&stdout)));
    }
    Ok(ir)
}

/// The callgrind measurements of one build, and its size; timings come later.
fn count_instructions(dir: &Path, b: &Build, env: &[(String, String)]) -> Result<Results> {
    let mut many = env.to_vec();
    many.extend(extra_vars());
    // Diagnostic: an empty library path tells a shim to add no directory, which separates the
    // shim's own cost from ld.so searching the directories it adds.
    let mut no_libs = env.to_vec();
    no_libs.push(("NIX_LD_LIBRARY_PATH".into(), String::new()));
    // Python randomizes its string hashes per start, which moves its instruction count by tens of
    // thousands; a fixed seed (the same for every build) makes the count repeatable.
    let mut python_env = env.to_vec();
    python_env.push(("PYTHONHASHSEED".into(), "0".into()));
    Ok(Results {
        hello_ir: hello_instructions(dir, b, "small", env)?,
        hello_ir_many: hello_instructions(dir, b, "many", &many)?,
        hello_ir_no_libs: hello_instructions(dir, b, "no-libs", &no_libs)?,
        python_ir: python_instructions(dir, b, &python_env)?,
        hello_time: Timing::default(),
        python_time: Timing::default(),
        size: b.shim.as_deref().map(size_of).transpose()?,
    })
}

fn python_instructions(dir: &Path, b: &Build, env: &[(String, String)]) -> Result<u64> {
    let out = dir.join(format!("callgrind.{}.python3.out", b.name));
    Ok(instructions(&b.python, &["-c", "pass"], env, &out)?.0)
}

/// Counts the user-space instructions of one start with callgrind. Valgrind reads PT_INTERP and
/// loads the interpreter itself, so the shim's own instructions are counted too. The out file is
/// kept for `callgrind_annotate`.
fn instructions(program: &Path, args: &[&str], env: &[(String, String)], out: &Path) -> Result<(u64, Vec<u8>)> {
    let mut cmd = Command::new("valgrind");
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

fn time_starts(builds: &[Build], env: &[(String, String)], results: &mut [Results]) -> Result<()> {
    eprintln!("timing: hello, {HELLO_RUNS} runs per build");
    let hello = alternate(builds, |b| timed_command(&b.hello, &[], env), HELLO_RUNS)?;
    eprintln!("timing: python3 -c pass, {PYTHON_RUNS} runs per build");
    let python = alternate(builds, |b| timed_command(&b.python, &["-c", "pass"], env), PYTHON_RUNS)?;
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
    key: &'static str,
    label: &'static str,
    unit: Unit,
    values: Vec<Option<f64>>,
    /// The limit for a shim's value, met when the value is at most this.
    limit: Option<f64>,
}

fn rows(r: &[Results]) -> Vec<Row> {
    type Field = fn(&Results) -> u64;
    let direct = &r[0];
    // A value for every build, or for the shims only (the direct start is the reference).
    let all = |f: Field, scale: f64| r.iter().map(|x| Some(f(x) as f64 / scale)).collect::<Vec<_>>();
    let shims = |f: &dyn Fn(&Results) -> f64| {
        std::iter::once(None).chain(r[1..].iter().map(|x| Some(f(x)))).collect::<Vec<_>>()
    };
    let count = |f: Field| all(f, 1.0);
    let micros = |f: Field| all(f, 1000.0);
    let overhead = |f: Field| shims(&|x| f(x) as f64 - f(direct) as f64);
    let ratio = |f: Field| shims(&|x| f(x) as f64 / f(direct) as f64);
    let size = |f: fn(&Size) -> u64| shims(&|x| x.size.as_ref().map_or(0.0, |s| f(s) as f64));
    let row = |key, label, unit, values, limit| Row { key, label, unit, values, limit };
    use Unit::*;
    vec![
        row("hello_ir", "hello: instructions, small env", Count, count(|x| x.hello_ir), None),
        row("hello_ir_overhead", "  shim overhead", Delta, overhead(|x| x.hello_ir), Some(MAX_OVERHEAD_SMALL_ENV)),
        row("hello_ir_many_vars", "hello: instructions, +1,000 vars", Count, count(|x| x.hello_ir_many), None),
        row("hello_ir_many_vars_overhead", "  shim overhead", Delta, overhead(|x| x.hello_ir_many), Some(MAX_OVERHEAD_MANY_VARS)),
        row("hello_ir_no_libs_overhead", "  shim overhead, NIX_LD_LIBRARY_PATH=''", Delta, overhead(|x| x.hello_ir_no_libs), None),
        row("hello_median_us", "hello: spawn+wait median (us)", Micros, micros(|x| x.hello_time.median_ns), None),
        row("hello_p10_us", "hello: spawn+wait p10 (us)", Micros, micros(|x| x.hello_time.p10_ns), None),
        row("hello_median_ratio", "  median ratio to direct", Ratio, ratio(|x| x.hello_time.median_ns), None),
        row("hello_p10_ratio", "  p10 ratio to direct", Ratio, ratio(|x| x.hello_time.p10_ns), Some(MAX_SPAWN_P10_RATIO)),
        row("python3_ir", "python3 -c pass: instructions", Count, count(|x| x.python_ir), None),
        row("python3_ir_overhead", "  shim overhead", Delta, overhead(|x| x.python_ir), None),
        row("python3_median_us", "python3 -c pass: median (us)", Micros, micros(|x| x.python_time.median_ns), None),
        row("python3_p10_us", "python3 -c pass: p10 (us)", Micros, micros(|x| x.python_time.p10_ns), None),
        row("python3_median_ratio", "  median ratio to direct", Ratio, ratio(|x| x.python_time.median_ns), None),
        row("python3_p10_ratio", "  p10 ratio to direct", Ratio, ratio(|x| x.python_time.p10_ns), None),
        row("mapped_bytes", "shim: mapped (PT_LOAD memsz)", Bytes, size(|s| s.mapped), Some(MAX_MAPPED)),
        row("file_bytes", "shim: file size", Bytes, size(|s| s.file), None),
    ]
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

fn thousands(n: i64) -> String {
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

fn print_table(builds: &[Build], rows: &[Row]) {
    let mut header: Vec<String> = vec!["measurement".into()];
    header.extend(builds.iter().map(|b| b.name.clone()));
    header.push("target".into());
    header.extend(builds[1..].iter().map(|b| format!("{} ok?", b.name)));
    let mut lines = vec![header];
    for row in rows {
        let mut line = vec![row.label.to_string()];
        line.extend(row.values.iter().map(|v| v.map_or("-".into(), |v| format_value(row.unit, v))));
        line.push(row.limit.map_or(String::new(), |l| format!("<= {}", format_value(row.unit, l).trim_start_matches('+'))));
        for v in &row.values[1..] {
            line.push(match (row.limit, v) {
                (Some(limit), Some(v)) => if *v <= limit { "ok" } else { "MISSED" }.into(),
                _ => String::new(),
            });
        }
        lines.push(line);
    }
    let widths: Vec<usize> =
        (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    println!();
    for b in &builds[1..] {
        println!("{}: {}", b.name, b.shim.as_ref().map_or(String::new(), |p| p.display().to_string()));
    }
    println!("hello: {HELLO_RUNS} starts per build, python3: {PYTHON_RUNS}, alternating");
    println!("env: PATH, NIX_LD only (python3 instructions: also PYTHONHASHSEED=0)\n");
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            // Labels align left, numbers right.
            .map(|(c, (s, w))| if c == 0 { format!("{s:<w$}") } else { format!("{s:>w$}") })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    println!();
}

fn json_string(s: &str) -> String {
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

/// The JSON report: per build its measurements (the table's rows) and, for shims, each target met.
fn to_json(builds: &[Build], results: &[Results], rows: &[Row], env: &[(String, String)]) -> String {
    let env = env.iter().map(|(k, v)| format!("{}: {}", json_string(k), json_string(v))).collect::<Vec<_>>();
    let mut builds_json = Vec::new();
    for (i, b) in builds.iter().enumerate() {
        let mut fields = vec![
            format!("\"interpreter\": {}", b.shim.as_ref().map_or("null".into(), |p| json_string(&p.display().to_string()))),
        ];
        for row in rows {
            if let Some(v) = row.values[i] {
                fields.push(format!("{}: {}", json_string(row.key), json_number(v)));
            }
        }
        if let Some(size) = &results[i].size {
            fields.push(format!("\"verified_by_elfcheck\": {}", size.verified));
        }
        if b.shim.is_some() {
            let met = rows
                .iter()
                .filter_map(|r| Some(format!("{}: {}", json_string(r.key), r.values[i]? <= r.limit?)))
                .collect::<Vec<_>>();
            fields.push(format!("\"targets_met\": {{{}}}", met.join(", ")));
        }
        builds_json.push(format!("    {}: {{\n      {}\n    }}", json_string(&b.name), fields.join(",\n      ")));
    }
    let targets = rows
        .iter()
        .filter_map(|r| Some(format!("{}: {}", json_string(r.key), json_number(r.limit?))))
        .collect::<Vec<_>>();
    format!(
        "{{\n  \"env\": {{{}}},\n  \"extra_vars\": {EXTRA_VARS},\n  \"runs\": {{\"hello\": {HELLO_RUNS}, \"python3\": {PYTHON_RUNS}}},\n  \"targets\": {{{}}},\n  \"builds\": {{\n{}\n  }}\n}}\n",
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
