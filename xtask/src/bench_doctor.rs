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
//!
//! The directory row: `nix-ld-doctor DIR` on a tree of 1,000 ELF shared objects
//! (`target/bench/doctor-tree`, made once), each with 5 DT_NEEDED entries among 200 sonames: 150
//! the tree provides, 25 in entries of the same store (`libdirmiss0-1.0` ...), 25 nowhere; no
//! `nix` or `nix-locate` on PATH.

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

/// The directory row's tree: objects, DT_NEEDED entries each, sonames in all, of which the
/// tree provides the first [`TREE_PROVIDED`] and the store the next [`TREE_IN_STORE`].
const TREE_OBJECTS: usize = 1_000;
const TREE_NEEDS: usize = 5;
const TREE_SONAMES: usize = 200;
const TREE_PROVIDED: usize = 150;
const TREE_IN_STORE: usize = 25;
/// The directory row must answer in under this.
const TREE_TARGET_MS: f64 = 3_000.0;

fn tree_soname(i: usize) -> String {
    if i < TREE_PROVIDED {
        format!("libtree{i}.so")
    } else if i < TREE_PROVIDED + TREE_IN_STORE {
        format!("libdirmiss{}.so", i - TREE_PROVIDED)
    } else {
        format!("libgone{}.so", i - TREE_PROVIDED - TREE_IN_STORE)
    }
}

/// The sonames object `k` of the tree needs.
fn tree_needs(k: usize) -> Vec<usize> {
    (0..TREE_NEEDS).map(|m| (k * 7 + m * 37 + m * m) % TREE_SONAMES).collect()
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
    /// The directory of [`TREE_OBJECTS`] shared objects.
    pub tree: Answer,
}

/// Measures nix-ld-doctor on programs missing libraries, with `loader` as NIX_LD and `set` as the
/// library set; `dir` is the bench's directory.
pub fn measure(dir: &Path, loader: &Path, set: &Path) -> Result<DoctorBench> {
    let doctor = build::doctor()?;
    let store = dir.join("doctor-store");
    let holders = fake_store(&store)?;
    let tree = fake_tree(&dir.join("doctor-tree"))?;
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
    let found = |holders: &[PathBuf]| {
        let mut expected = vec![format!("the store has {}", holders.len())];
        for (i, h) in holders.iter().enumerate() {
            expected.push(format!("libmiss{i}: {}", h.display()));
            expected.push(format!("{} (needed by", missed(i)));
        }
        expected
    };
    let tree_expected = vec![
        format!("a directory of {TREE_OBJECTS} ELF objects"),
        format!(
            "problem: {} missing libraries; the store has {TREE_IN_STORE}, in {TREE_IN_STORE} directories:",
            TREE_SONAMES - TREE_PROVIDED
        ),
    ];
    eprintln!("timing: nix-ld-doctor, {RUNS} answers each, with {STORE_ENTRIES} store entries and with none");
    Ok(DoctorBench {
        one: answers(run(&one, &store), &found(&holders[..1]))?,
        many: answers(run(&many, &store), &found(&holders))?,
        empty: answers(run(&one, &empty), &["the store has 0, in 0 directories".to_string()])?,
        tree: answers(run(&tree, &store), &tree_expected)?,
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

/// Times [`RUNS`] answers of `cmd` after one uncounted run, which must contain each of
/// `expected` (a doctor that silently found nothing would look fast).
fn answers(mut cmd: Command, expected: &[String]) -> Result<Answer> {
    let mut ms = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let start = Instant::now();
        let out = cmd.output().map_err(|e| format!("{}: {e}", util::show(&cmd)))?;
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        if run == 0 {
            check_answer(&cmd, &out, expected)?;
        } else {
            ms.push(elapsed);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(Answer { median_ms: ms[ms.len() / 2], worst_ms: ms[ms.len() - 1] })
}

fn check_answer(cmd: &Command, out: &Output, expected: &[String]) -> Result<()> {
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let absent: Vec<String> = expected.iter().filter(|want| !text.contains(want.as_str())).cloned().collect();
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
    // The tree's libraries in the store, in entries of their own among the same 30,000.
    let tree_holders: Vec<(PathBuf, String)> = (0..TREE_IN_STORE)
        .map(|j| {
            let name = tree_soname(TREE_PROVIDED + j);
            (store.join(format!("{}-libdirmiss{j}-1.0/lib", store_hash(&name))), name)
        })
        .collect();
    let marker = store.with_extension("complete");
    let complete = fs::read_to_string(&marker).is_ok_and(|m| m.trim() == STORE_ENTRIES.to_string());
    if complete
        && holders.iter().enumerate().all(|(i, h)| h.join(missed(i)).exists())
        && tree_holders.iter().all(|(h, name)| h.join(name).exists())
    {
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
    for (holder, name) in &tree_holders {
        mkdir(holder)?;
        fs::hard_link(&object, holder.join(name)).map_err(|e| format!("{}: {e}", holder.display()))?;
    }
    for i in MISSED + TREE_IN_STORE..STORE_ENTRIES {
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

/// Makes the directory row's tree at `tree` unless a complete one is there: [`TREE_OBJECTS`]
/// shared objects linked with `ld` (faster than `cc` a thousand times) against stand-ins of all
/// [`TREE_SONAMES`] sonames, which stay outside the tree.
fn fake_tree(tree: &Path) -> Result<PathBuf> {
    let marker = tree.with_extension("complete");
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == TREE_OBJECTS.to_string()) {
        return Ok(tree.to_path_buf());
    }
    eprintln!("making a tree of {TREE_OBJECTS} shared objects at {}", tree.display());
    let stubs = tree.with_extension("link-stubs");
    for dir in [tree, stubs.as_path()] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    mkdir(&stubs)?;
    let source = stubs.join("empty.c");
    fs::write(&source, "int nix_ld_bench_tree;\n").map_err(|e| format!("{}: {e}", source.display()))?;
    let empty = stubs.join("empty.o");
    util::run(Command::new("cc").args(["-c", "-fPIC", "-o"]).arg(&empty).arg(&source))?;
    let link = |out: &Path, soname: Option<&str>, needs: &[usize]| {
        let mut cmd = Command::new("ld");
        cmd.args(["-shared", "-o"]).arg(out).arg(&empty);
        if let Some(soname) = soname {
            cmd.arg("-soname").arg(soname);
        }
        cmd.arg("--no-as-needed").arg("-L").arg(&stubs);
        for &n in needs {
            cmd.arg(format!("-l:{}", tree_soname(n)));
        }
        util::run(&mut cmd)
    };
    for i in 0..TREE_SONAMES {
        let name = tree_soname(i);
        link(&stubs.join(&name), Some(&name), &[])?;
    }
    let (lib, plugins) = (tree.join("lib"), tree.join("plugins"));
    mkdir(&lib)?;
    mkdir(&plugins)?;
    for k in 0..TREE_OBJECTS {
        let needs: Vec<usize> = tree_needs(k).into_iter().filter(|&n| n != k).collect();
        if k < TREE_PROVIDED {
            let name = tree_soname(k);
            link(&lib.join(&name), Some(&name), &needs)?;
        } else {
            link(&plugins.join(format!("plugin{k}.so")), None, &needs)?;
        }
    }
    fs::write(&marker, TREE_OBJECTS.to_string()).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(tree.to_path_buf())
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
            format!(
                "doctor DIR, {} shared objects, {entries} store entries: median (ms)",
                thousands(TREE_OBJECTS as i64)
            ),
            ms(bench.tree.median_ms),
            "< 3 s".into(),
            if bench.tree.median_ms < TREE_TARGET_MS { "ok" } else { "MISSED" }.into(),
        ],
        vec![
            format!("  worst of {RUNS} (ms)"),
            ms(bench.tree.worst_ms),
            "< 3 s".into(),
            if bench.tree.worst_ms < TREE_TARGET_MS { "ok" } else { "MISSED" }.into(),
        ],
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
        "{{\"store\": {}, \"store_entries\": {}, \"runs\": {RUNS}, \"target_ms\": {TARGET_MS}, \"many_missing_libraries\": {MISSED}, \"one_missing\": {}, \"many_missing\": {}, \"one_missing_empty_store\": {{{}}}, \"directory\": {{\"objects\": {TREE_OBJECTS}, \"target_ms\": {TREE_TARGET_MS}, {}, \"target_met\": {}}}}}",
        json_string(&bench.store.display().to_string()),
        bench.entries,
        judged(&bench.one),
        judged(&bench.many),
        answer(&bench.empty),
        answer(&bench.tree),
        bench.tree.worst_ms < TREE_TARGET_MS
    )
}
