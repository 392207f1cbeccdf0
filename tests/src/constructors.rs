//! Library constructors that edit the environment: the program and its children end up with exactly
//! the environment a direct start gives them, and nothing crashes.
//!
//! Constructors of LD_PRELOAD and DT_NEEDED libraries run inside ld.so, before the shim's entry
//! trampoline, while ld.so's `LD_LIBRARY_PATH` entry is in place. Each scenario below runs the same
//! program twice, once through the shim and once through the real loader directly, with the same
//! environment and the same libraries, and compares everything the program and its child see.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

struct Setup {
    dir: PathBuf,
    through_shim: PathBuf,
    direct: PathBuf,
    preload: PathBuf,
    /// An existing directory for `LD_LIBRARY_PATH` and `NIX_LD_LIBRARY_PATH`.
    lib: PathBuf,
    user_lib: PathBuf,
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// Builds the two edit libraries and the program (linked against one of them, found by RUNPATH),
/// once with the shim as interpreter and once with the real loader. The shim is the one whose
/// compiled-in defaults point into `defaults_dir()`, so that a start with no variable at all
/// (`env -i`) still edits the environment.
fn setup(test: &str) -> Setup {
    let guard = defaults_lock();
    let dir = scratch(test);
    let lib = greet_library(&dir);
    let user_lib = dir.join("user-lib");
    std::fs::create_dir_all(&user_lib).unwrap();
    let build_lib = |name: &str, var: &str| {
        let out = dir.join(name);
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1"])
            .arg(format!("-DENVEDIT_VAR=\"{var}\""))
            .arg("-o")
            .arg(&out)
            .arg(fixtures().join("envedit.c"))
            .status()
            .unwrap();
        assert!(status.success(), "cannot build {name}");
        out
    };
    let preload = build_lib("libenvedit_a.so", "ENVEDIT_A");
    build_lib("libenvedit_b.so", "ENVEDIT_B");
    let link = [
        format!("-L{}", dir.display()),
        "-lenvedit_b".into(),
        format!("-Wl,-rpath,{}", dir.display()),
        "-Wl,-e,fixture_entry".into(),
    ];
    let link: Vec<&str> = link.iter().map(String::as_str).collect();
    let through_shim = compile(&dir, "envdump.c", "envdump-shim", &defaults_shim(), &link);
    let direct = compile(&dir, "envdump.c", "envdump-direct", &system_loader(), &link);
    let defaults = defaults_dir();
    let _ = std::fs::remove_dir_all(&defaults);
    std::fs::create_dir_all(&defaults).unwrap();
    std::os::unix::fs::symlink(system_loader(), defaults.join("ld.so")).unwrap();
    std::os::unix::fs::symlink(&lib, defaults.join("lib")).unwrap();
    Setup { dir, through_shim, direct, preload, lib, user_lib, _guard: guard }
}

/// The environments of the four library-variable cases and of a start with nothing to borrow.
fn cases(s: &Setup) -> Vec<(&'static str, Vec<(String, String)>)> {
    let loader = ("NIX_LD".to_string(), system_loader().display().to_string());
    let user = ("LD_LIBRARY_PATH".to_string(), s.user_lib.display().to_string());
    let nix = ("NIX_LD_LIBRARY_PATH".to_string(), s.lib.display().to_string());
    let a = ("A".to_string(), "1".to_string());
    vec![
        ("NIX_LD only (compiled-in library directory)", vec![loader.clone(), a.clone()]),
        ("NIX_LD and the user's LD_LIBRARY_PATH", vec![loader.clone(), user.clone(), a.clone()]),
        ("NIX_LD and NIX_LD_LIBRARY_PATH", vec![loader.clone(), nix.clone(), a.clone()]),
        ("both library variables", vec![a.clone(), user, loader, nix]),
        ("no variable of ours (env -i)", vec![a]),
    ]
}

/// Runs `program` with exactly `env` plus the preload and the edit lists.
fn run(s: &Setup, program: &Path, env: &[(String, String)], edits: (&str, &str)) -> Output {
    let mut cmd = Command::new(program);
    cmd.env_clear().current_dir(&s.dir);
    cmd.env("LD_PRELOAD", &s.preload);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("ENVEDIT_A", edits.0).env("ENVEDIT_B", edits.1);
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// What a run showed, readable in a failure message.
fn shown(out: &Output) -> String {
    let parts: Vec<String> = out
        .stdout
        .split(|&b| b == 1)
        .map(|part| {
            part.split(|&b| b == 0)
                .filter(|e| !e.is_empty())
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    format!(
        "status {:?}\n      environ: {}\n  entry stack: {}\n       layout: {}\n        child: {}\n       stderr: {}",
        out.status,
        parts.first().map_or("", String::as_str),
        parts.get(1).map_or("", String::as_str),
        parts.get(2).map_or("", String::as_str),
        parts.get(3).map_or("", String::as_str),
        stderr(out).trim()
    )
}

/// Every edit the contract covers: the program must end up as a direct start leaves it.
const EDITS: &[(&str, &str)] = &[
    ("u A", ""),
    ("u LD_PRELOAD", ""),
    ("u LD_LIBRARY_PATH", ""),
    ("u NIX_LD", ""),
    ("u ENVEDIT_A", ""),
    ("s NEW=1", ""),
    ("s A=2", ""),
    ("p NEW=2", ""),
    ("p A=3", ""),
    ("s NIX_LD_LIBRARY_PATH=/elsewhere", ""),
    ("c", ""),
    ("c;s X=1", ""),
    ("r;s NEW=1", ""),
    ("u A;s NEW=1;u LD_PRELOAD", ""),
    ("s NEW=1;u A;u LD_LIBRARY_PATH;s NEW2=2", ""),
    ("u A", "s NEW=1"),
    ("s NEW=1", "u LD_LIBRARY_PATH"),
    ("u LD_PRELOAD", "u A;p NEW=3"),
];

/// The starts among those above that README names as differing: with no `LD_LIBRARY_PATH` of the
/// user's, the shim borrows `NIX_LD_LIBRARY_PATH`'s entry for ld.so, and a constructor that edits
/// `LD_LIBRARY_PATH` or `NIX_LD_LIBRARY_PATH` then acts on ld.so's entry.
/// `what_a_constructor_that_edits_the_borrowed_variable_does_is_as_readme_says` shows what happens.
const BORROWED_DIFFERS: &[(&str, (&str, &str))] = &[
    ("NIX_LD and NIX_LD_LIBRARY_PATH", ("u LD_LIBRARY_PATH", "")),
    ("NIX_LD and NIX_LD_LIBRARY_PATH", ("s NIX_LD_LIBRARY_PATH=/elsewhere", "")),
    ("NIX_LD and NIX_LD_LIBRARY_PATH", ("s NEW=1;u A;u LD_LIBRARY_PATH;s NEW2=2", "")),
    // The program's constructor unset the user's LD_LIBRARY_PATH, so its child starts with
    // NIX_LD_LIBRARY_PATH alone, and the child's own constructor unsets LD_LIBRARY_PATH again.
    ("both library variables", ("u LD_LIBRARY_PATH", "")),
    ("both library variables", ("s NEW=1;u A;u LD_LIBRARY_PATH;s NEW2=2", "")),
];

#[test]
fn constructors_that_edit_the_environment_leave_it_as_a_direct_start_does() {
    let s = setup("constructors-edit");
    let mut failures = Vec::new();
    let mut compared = 0;
    for (case, env) in cases(&s) {
        for &edits in EDITS {
            let want = run(&s, &s.direct, &env, edits);
            assert!(want.status.success(), "{case}, {edits:?}: the direct start fails: {}", shown(&want));
            assert!(
                want.stdout.split(|&b| b == 1).count() == 5,
                "{case}, {edits:?}: incomplete output: {}",
                shown(&want)
            );
            let got = run(&s, &s.through_shim, &env, edits);
            compared += 1;
            let same = got.status.code() == want.status.code() && got.stdout == want.stdout;
            let named = BORROWED_DIFFERS.iter().any(|&(c, e)| case.starts_with(c) && e == edits);
            if same == named {
                let what = if named { "is named in README as differing, but does not" } else { "differs" };
                failures.push(format!(
                    "{case}, edits {edits:?} {what}:\n  direct:\n    {}\n  through the shim:\n    {}",
                    shown(&want),
                    shown(&got)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} starts are not as README says:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The `NIX_LD_LIBRARY_PATH=` entries of the program's environment, and of its child's.
fn nix_entries(out: &Output) -> (Vec<String>, Vec<String>) {
    let part = |i: usize| {
        let bytes = out.stdout.split(|&b| b == 1).nth(i).unwrap_or(&[]).to_vec();
        bytes
            .split(|&b| b == 0)
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .filter(|e| e.starts_with("NIX_LD_LIBRARY_PATH="))
            .collect::<Vec<_>>()
    };
    (part(0), part(3))
}

/// What README names as the one kind of edit that gives another result than a direct start: on
/// the NixOS path the shim borrows `NIX_LD_LIBRARY_PATH`'s entry for ld.so, so while constructors
/// run, that entry reads `LD_LIBRARY_PATH=` and `NIX_LD_LIBRARY_PATH` is not set. Everything
/// else in the environment is as a direct start leaves it; each check says exactly what differs.
#[test]
fn what_a_constructor_that_edits_the_borrowed_variable_does_is_as_readme_says() {
    let s = setup("constructors-borrowed");
    let cases = cases(&s);
    let nix = &cases[2].1;
    assert!(nix.iter().any(|(k, _)| k == "NIX_LD_LIBRARY_PATH") && !nix.iter().any(|(k, _)| k == "LD_LIBRARY_PATH"));
    let ours = format!("NIX_LD_LIBRARY_PATH={}", s.lib.display());
    let both = |edits: &str| {
        let (want, got) = (run(&s, &s.direct, nix, (edits, "")), run(&s, &s.through_shim, nix, (edits, "")));
        assert!(want.status.success() && got.status.success(), "{edits}: {}\n{}", shown(&want), shown(&got));
        (want, got)
    };
    let without = |entries: Vec<String>, gone: &str| entries.into_iter().filter(|e| e != gone).collect::<Vec<_>>();

    // unsetenv("LD_LIBRARY_PATH") takes ld.so's entry, and NIX_LD_LIBRARY_PATH with it: the program
    // and its child lack it, and nothing else differs. (The child, started through the shim in
    // turn, gets the compiled-in library directory instead, which on NixOS is the same set.)
    for edits in ["u LD_LIBRARY_PATH", "s NEW=1;u LD_LIBRARY_PATH"] {
        let (want, got) = both(edits);
        assert_eq!(nix_entries(&want), (vec![ours.clone()], vec![ours.clone()]), "{edits}");
        assert_eq!(nix_entries(&got), (vec![], vec![]), "{edits}");
        assert_eq!(without(program_environ(&want), &ours), program_environ(&got), "{edits}");
    }

    // setenv("NIX_LD_LIBRARY_PATH", ..., 1) finds no such variable and adds one: the program has
    // both, the original first (which getenv returns), where a direct start has the new value.
    let (want, got) = both("s NIX_LD_LIBRARY_PATH=/elsewhere");
    assert_eq!(nix_entries(&want).0, ["NIX_LD_LIBRARY_PATH=/elsewhere"]);
    assert_eq!(nix_entries(&got).0, [ours.clone(), "NIX_LD_LIBRARY_PATH=/elsewhere".into()]);

    // unsetenv("NIX_LD_LIBRARY_PATH") finds nothing to take: the program keeps it.
    let (want, got) = both("u NIX_LD_LIBRARY_PATH");
    assert_eq!(nix_entries(&want).0, Vec::<String>::new());
    assert_eq!(nix_entries(&got).0, std::slice::from_ref(&ours));
    assert_eq!(program_environ(&want), without(program_environ(&got), &ours));

    // A constructor that reads the variables sees ld.so's view: LD_LIBRARY_PATH holds the Nix
    // directories and NIX_LD_LIBRARY_PATH is unset.
    let seen = |program: &Path, var: &str| {
        let out = run(&s, program, nix, (&format!("g SEEN={var}"), ""));
        program_environ(&out).into_iter().find_map(|e| e.strip_prefix("SEEN=").map(str::to_string)).unwrap()
    };
    assert_eq!(seen(&s.direct, "NIX_LD_LIBRARY_PATH"), s.lib.display().to_string());
    assert_eq!(seen(&s.through_shim, "NIX_LD_LIBRARY_PATH"), "unset");
    assert_eq!(seen(&s.direct, "LD_LIBRARY_PATH"), "unset");
    assert_eq!(seen(&s.through_shim, "LD_LIBRARY_PATH"), s.lib.display().to_string());
}

/// The program's and its child's environment with FAKETIME_SHARED's value (which names the
/// process's own semaphore and shared memory) replaced by a placeholder.
fn normalised(out: &Output) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for entry in out.stdout.split(|&b| b == 0) {
        if let Some(at) = entry.windows(16).position(|w| w == b"FAKETIME_SHARED=") {
            let mut e = entry[..at + 16].to_vec();
            e.extend_from_slice(b"<normalised>");
            parts.push(e);
        } else {
            parts.push(entry.to_vec());
        }
    }
    parts.join(&0u8)
}

/// Debian's libfaketime, whose constructor sets FAKETIME_SHARED (a new variable, so glibc copies
/// `environ` to the heap) while ld.so's entry is in place: the leak nix-ld users report.
#[test]
fn host_libfaketime_leaves_the_environment_as_a_direct_start_does() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: apt-get install faketime (.ci/run does)");
    let s = setup("constructors-faketime");
    let mut failures = Vec::new();
    for (case, mut env) in cases(&s) {
        env.push(("FAKETIME".into(), "@2001-02-03 04:05:06".into()));
        let start = |program: &Path| {
            let mut cmd = Command::new(program);
            cmd.env_clear().current_dir(&s.dir).env("LD_PRELOAD", LIBFAKETIME).envs(env.iter().map(|(k, v)| (k, v)));
            cmd.output().unwrap()
        };
        let want = start(&s.direct);
        assert!(want.status.success(), "{case}: the direct start fails: {}", shown(&want));
        assert!(
            stdout(&want).contains("FAKETIME_SHARED="),
            "{case}: libfaketime's constructor did not run: {}",
            shown(&want)
        );
        let got = start(&s.through_shim);
        if got.status.code() != want.status.code() || normalised(&got) != normalised(&want) {
            failures.push(format!(
                "{case}:\n  direct:\n    {}\n  through the shim:\n    {}",
                shown(&want),
                shown(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "through libfaketime, the shim's start differs from a direct one:\n\n{}",
        failures.join("\n\n")
    );
}

/// The environment entries of the program (the first part of envdump's output).
fn program_environ(out: &Output) -> Vec<String> {
    let first = out.stdout.split(|&b| b == 1).next().unwrap_or(&[]);
    first.split(|&b| b == 0).filter(|e| !e.is_empty()).map(|e| String::from_utf8_lossy(e).into_owned()).collect()
}

/// What README names as the cases no shim can make match a direct start: a constructor acts on
/// what it reads while ld.so's `LD_LIBRARY_PATH` entry is in place. Each shows exactly what happens.
#[test]
fn what_a_constructor_reads_or_starts_sees_ld_so_s_entry_as_readme_says() {
    let s = setup("constructors-unavoidable");
    let cases = cases(&s);
    let (nix_only, user) = (&cases[0].1, &cases[1].1);
    let defaults_lib = defaults_dir().join("lib").display().to_string();
    let merged = format!("{}:{defaults_lib}", s.user_lib.display());

    // It reads LD_LIBRARY_PATH: it sees ld.so's value, the Nix directories (after the user's own).
    let seen = |env: &[(String, String)], program: &Path| {
        let out = run(&s, program, env, ("g SEEN=LD_LIBRARY_PATH", ""));
        assert!(out.status.success(), "{}", shown(&out));
        program_environ(&out).into_iter().find_map(|e| e.strip_prefix("SEEN=").map(str::to_string)).unwrap()
    };
    assert_eq!(seen(nix_only, &s.direct), "unset");
    assert_eq!(seen(nix_only, &s.through_shim), defaults_lib);
    assert_eq!(seen(user, &s.direct), s.user_lib.display().to_string());
    assert_eq!(seen(user, &s.through_shim), merged);

    // setenv(LD_LIBRARY_PATH, ..., 0) finds ld.so's entry and changes nothing; the entry is then
    // taken out, so the program has none, where a direct start has the constructor's.
    let kept = |program: &Path| {
        program_environ(&run(&s, program, nix_only, ("k LD_LIBRARY_PATH=/c", "")))
            .into_iter()
            .filter(|e| e.starts_with("LD_LIBRARY_PATH="))
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(&s.direct), ["LD_LIBRARY_PATH=/c"]);
    assert!(kept(&s.through_shim).is_empty());

    // It sets LD_LIBRARY_PATH itself after glibc copied environ to the heap: the program has the
    // constructor's value, but where ld.so's entry was rather than at the end.
    let set = |program: &Path| program_environ(&run(&s, program, nix_only, ("s NEW=1;s LD_LIBRARY_PATH=/c", "")));
    let (want, got) = (set(&s.direct), set(&s.through_shim));
    assert_eq!(want.iter().rev().take(2).collect::<Vec<_>>(), ["LD_LIBRARY_PATH=/c", "NEW=1"]);
    assert_eq!(got.iter().rev().take(2).collect::<Vec<_>>(), ["NEW=1", "LD_LIBRARY_PATH=/c"]);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(want), sorted(got), "the same entries, in another order");

    // It starts a child: the child inherits ld.so's entry, as it inherits whatever the constructor
    // sees.
    let child = |program: &Path| {
        let file = s.dir.join("child-env");
        let _ = std::fs::remove_file(&file);
        // `echo` is the shell's own: the Nix build has no printenv at a path sh would look in.
        let out = run(&s, program, nix_only, (&format!("x echo \"$LD_LIBRARY_PATH\" > {}", file.display()), ""));
        assert!(out.status.success(), "{}", shown(&out));
        std::fs::read_to_string(&file).unwrap()
    };
    assert_eq!(child(&s.direct), "\n");
    assert_eq!(child(&s.through_shim), format!("{defaults_lib}\n"));
}
