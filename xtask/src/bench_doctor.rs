//! `cargo xtask bench`'s nix-ld-doctor rows: how long the doctor takes to answer for a program
//! missing one library and for one missing ten, with 30,000 entries in its store (a desktop
//! system's /nix/store; warm cache), next to the same answer with an empty store.
//!
//! The store is made once under `target/bench/doctor-store` and kept (a marker file next to it
//! says it is complete): `<32-character hash>-<name>-<version>` entries, most of them directories
//! that are empty or hold a few files, some with a `lib/` of shared objects, some `.drv` files, and
//! `libmiss0-1.0` ... `libmiss9-1.0`, whose `lib/libmiss0.so` ... are what the programs miss. The doctor
//! reads it through `NIX_LD_DOCTOR_STORE`. The first run of each store is not counted: it fills
//! the page and directory caches.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use execve_tests::nixos_root::store_hash;

use crate::bench::{json_string, thousands};
use crate::build;
use crate::util::{self, Result};

/// Entries of the measured store: the desktop system.
pub const STORE_ENTRIES: usize = 30_000;
const RUNS: usize = 20;
/// The answer must come in under this (the issue: "well under a second").
const TARGET_MS: f64 = 1_000.0;
/// Names the entries take turns with, as a store has them.
const PACKAGES: &[&str] = &[
    "python3.11-requests",
    "perl5.38.2-Test-Simple",
    "source",
    "hook",
    "gnome-shell",
    "libxml2",
    "openssl",
    "zlib",
    "rust-lib-serde",
    "texlive-combined",
    "node-lodash",
    "glib",
    "gtk+3",
    "ffmpeg",
    "xorg-libX11",
    "mesa",
    "llvm",
];
/// The libraries the measured programs miss, `libmiss0.so` ... : each in a store entry of its own
/// (`<hash>-libmiss0-1.0/lib`), none in the library set. One program misses the first, the other
/// all of them (a downloaded GUI program on a fresh system misses about that many).
const MISSED: usize = 10;

fn missed(i: usize) -> String {
    format!("libmiss{i}.so")
}

/// Wall times of the doctor's answer, in milliseconds.
pub struct Answer {
    pub median_ms: f64,
    pub worst_ms: f64,
}

/// What the doctor bench measured.
pub struct DoctorBench {
    pub store: PathBuf,
    pub entries: usize,
    /// A program missing one library, and one missing [`MISSED`].
    pub one: Answer,
    pub many: Answer,
    /// The program missing one library, with an empty store: what the store search adds is the
    /// difference.
    pub empty: Answer,
}

/// Measures nix-ld-doctor on programs missing libraries, with `loader` as NIX_LD and `set` as the
/// library set; `dir` is the bench's directory.
pub fn measure(dir: &Path, loader: &Path, set: &Path) -> Result<DoctorBench> {
    let doctor = build::doctor()?;
    let store = dir.join("doctor-store");
    let holders = fake_store(&store)?;
    let empty = dir.join("doctor-store-empty");
    mkdir(&empty)?;
    let one = program(dir, "doctor-misses-one", &holders[..1])?;
    let many = program(dir, "doctor-misses-many", &holders)?;
    let run = |program: &Path, store: &Path| {
        let mut cmd = Command::new(&doctor);
        cmd.arg(program).env_clear().env("PATH", "/usr/bin:/bin").env("NIX_LD", loader).env("NIX_LD_LIBRARY_PATH", set);
        cmd.env("NIX_LD_DOCTOR_STORE", store);
        cmd
    };
    let found = |holders: &[PathBuf]| holders.iter().map(|h| format!("found in {}", h.display())).collect::<Vec<_>>();
    eprintln!("timing: nix-ld-doctor, {RUNS} answers each, with {STORE_ENTRIES} store entries and with none");
    Ok(DoctorBench {
        one: answers(run(&one, &store), 1, &found(&holders[..1]))?,
        many: answers(run(&many, &store), MISSED, &found(&holders))?,
        empty: answers(run(&one, &empty), 1, &[format!("not in {}", empty.display())])?,
        store,
        entries: STORE_ENTRIES,
    })
}

/// A program that needs the library in each of `holders` (directories of the store), linked
/// without a search path of its own.
fn program(dir: &Path, name: &str, holders: &[PathBuf]) -> Result<PathBuf> {
    let source = dir.join(format!("{name}.c"));
    let calls: String = (0..holders.len()).map(|i| format!("void miss{i}(void);\n")).collect();
    let body: String = (0..holders.len()).map(|i| format!("miss{i}(); ")).collect();
    fs::write(&source, format!("{calls}int main(void) {{ {body}return 0; }}\n"))
        .map_err(|e| format!("{}: {e}", source.display()))?;
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.arg("-o").arg(&out).arg(&source);
    for (i, holder) in holders.iter().enumerate() {
        cmd.arg(format!("-L{}", holder.display())).arg(format!("-lmiss{i}"));
    }
    util::run(&mut cmd)?;
    Ok(out)
}

/// Times [`RUNS`] answers of `cmd` after one uncounted run, which must name `missing` libraries
/// and contain each of `expected` (a doctor that silently found nothing would look fast).
fn answers(mut cmd: Command, missing: usize, expected: &[String]) -> Result<Answer> {
    let mut ms = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let start = Instant::now();
        let out = cmd.output().map_err(|e| format!("{}: {e}", util::show(&cmd)))?;
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        if run == 0 {
            check_answer(&cmd, &out, missing, expected)?;
        } else {
            ms.push(elapsed);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(Answer { median_ms: ms[ms.len() / 2], worst_ms: ms[ms.len() - 1] })
}

fn check_answer(cmd: &Command, out: &Output, missing: usize, expected: &[String]) -> Result<()> {
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let named = (0..missing).map(|i| format!("problem: {} is not found", missed(i)));
    let absent: Vec<String> =
        named.chain(expected.iter().cloned()).filter(|want| !text.contains(want.as_str())).collect();
    if out.status.code() != Some(1) || !absent.is_empty() {
        return Err(format!(
            "{} should say {absent:?} (exit status 1), and said ({}):\n{text}",
            util::show(cmd),
            out.status
        ));
    }
    Ok(())
}

/// Makes the bench's store at `store` unless a complete one is there, and returns the `lib`
/// directories that hold the missed libraries, in order.
fn fake_store(store: &Path) -> Result<Vec<PathBuf>> {
    let holders: Vec<PathBuf> =
        (0..MISSED).map(|i| store.join(format!("{}-libmiss{i}-1.0/lib", store_hash(&missed(i))))).collect();
    let marker = store.with_extension("complete");
    let complete = fs::read_to_string(&marker).is_ok_and(|m| m.trim() == STORE_ENTRIES.to_string());
    if complete && holders.iter().enumerate().all(|(i, h)| h.join(missed(i)).exists()) {
        return Ok(holders);
    }
    eprintln!("making a store of {STORE_ENTRIES} entries at {}", store.display());
    let _ = fs::remove_file(&marker);
    if store.exists() {
        fs::remove_dir_all(store).map_err(|e| format!("{}: {e}", store.display()))?;
    }
    for (i, holder) in holders.iter().enumerate() {
        mkdir(holder)?;
        let source = holder.join(format!("miss{i}.c"));
        fs::write(&source, format!("void miss{i}(void) {{}}\n")).map_err(|e| format!("{}: {e}", source.display()))?;
        util::run(Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(holder.join(missed(i))).arg(&source))?;
    }
    // The shared objects of the other entries with a `lib/` are links to one file: their names
    // matter to the search, not their contents.
    let object = holders[0].join(missed(0));
    for i in MISSED..STORE_ENTRIES {
        let package = PACKAGES[i % PACKAGES.len()];
        let name = format!("{}-{package}-{}.{}.{}", store_hash(&i.to_string()), 1 + i % 9, i / 9 % 40, i % 7);
        let entry = store.join(&name);
        let write = |path: &Path, text: &str| fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()));
        match i % 20 {
            // Derivations are files in the store.
            0 => write(&entry.with_extension("drv"), "Derive([])")?,
            // An output with libraries.
            1 | 11 => {
                let lib = entry.join("lib");
                mkdir(&lib)?;
                let base = package.replace(['.', '+'], "");
                for so in [format!("lib{base}.so"), format!("lib{base}.so.1"), format!("lib{base}-extra.so.1")] {
                    fs::hard_link(&object, lib.join(&so)).map_err(|e| format!("{}: {e}", lib.join(so).display()))?;
                }
            }
            // Sources, hooks, documentation: a few files.
            2..=7 => {
                mkdir(&entry)?;
                write(&entry.join("README"), package)?;
                write(&entry.join("setup-hook.sh"), "")?;
            }
            _ => mkdir(&entry)?,
        }
    }
    fs::write(&marker, STORE_ENTRIES.to_string()).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(holders)
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The doctor's rows, as the main table prints them: label, value, target, whether it is met.
pub fn lines(bench: &DoctorBench) -> Vec<Vec<String>> {
    let ms = |v: f64| format!("{v:.1}");
    let judged = |v: f64| if v < TARGET_MS { "ok" } else { "MISSED" }.to_string();
    let row = |label: String, v: f64| vec![label, ms(v), "< 1 s".into(), judged(v)];
    let entries = thousands(bench.entries as i64);
    vec![
        vec!["measurement".into(), "nix-ld-doctor".into(), "target".into(), "ok?".into()],
        row(format!("doctor, {entries} store entries, 1 library missing: median (ms)"), bench.one.median_ms),
        row(format!("  worst of {RUNS} (ms)"), bench.one.worst_ms),
        row(format!("doctor, {entries} store entries, {MISSED} libraries missing: median (ms)"), bench.many.median_ms),
        row(format!("  worst of {RUNS} (ms)"), bench.many.worst_ms),
        vec![
            "doctor, empty store, 1 library missing: median (ms)".into(),
            ms(bench.empty.median_ms),
            String::new(),
            String::new(),
        ],
    ]
}

/// The doctor's measurements for `bench.json`, as one JSON object.
pub fn json(bench: &DoctorBench) -> String {
    let answer = |a: &Answer| format!("\"median_ms\": {:.1}, \"worst_ms\": {:.1}", a.median_ms, a.worst_ms);
    let judged = |a: &Answer| format!("{{{}, \"target_met\": {}}}", answer(a), a.worst_ms < TARGET_MS);
    format!(
        "{{\"store\": {}, \"store_entries\": {}, \"runs\": {RUNS}, \"target_ms\": {TARGET_MS}, \"many_missing_libraries\": {MISSED}, \"one_missing\": {}, \"many_missing\": {}, \"one_missing_empty_store\": {{{}}}}}",
        json_string(&bench.store.display().to_string()),
        bench.entries,
        judged(&bench.one),
        judged(&bench.many),
        answer(&bench.empty)
    )
}
