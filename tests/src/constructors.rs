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
    /// The loader: the direct start's interpreter, the shim's `NIX_LD` and compiled-in default.
    loader: PathBuf,
    /// An existing directory for `LD_LIBRARY_PATH` and `NIX_LD_LIBRARY_PATH`.
    lib: PathBuf,
    user_lib: PathBuf,
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// Builds the two edit libraries and the program (linked against one of them, found by its
/// run path), once with the shim as interpreter and once with `glibc`'s loader. The shim is the
/// one whose compiled-in defaults point into `defaults_dir()`, so that a start with no variable at
/// all (`env -i`) still edits the environment.
fn setup(test: &str, glibc: &Glibc) -> Setup {
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
    // cc may pass --as-needed (Debian's does), which would drop a library the program calls
    // nothing in.
    let mut link = vec![
        format!("-L{}", dir.display()),
        "-Wl,--no-as-needed".into(),
        "-lenvedit_b".into(),
        format!("-Wl,-rpath,{}", dir.display()),
        "-Wl,-e,fixture_entry".into(),
    ];
    link.extend(glibc.link_args());
    let link: Vec<&str> = link.iter().map(String::as_str).collect();
    let through_shim = compile(&dir, "envdump.c", "envdump-shim", &defaults_shim(), &link);
    let direct = compile(&dir, "envdump.c", "envdump-direct", &glibc.loader, &link);
    let defaults = defaults_dir();
    let _ = std::fs::remove_dir_all(&defaults);
    std::fs::create_dir_all(&defaults).unwrap();
    std::os::unix::fs::symlink(&glibc.loader, defaults.join("ld.so")).unwrap();
    std::os::unix::fs::symlink(&lib, defaults.join("lib")).unwrap();
    let s = Setup { dir, through_shim, direct, preload, loader: glibc.loader.clone(), lib, user_lib, _guard: guard };
    // Both constructors run, in both programs: the preloaded library's and the dependency's.
    for program in [&s.direct, &s.through_shim] {
        let out = run(&s, program, &cases(&s)[2].1, ("s PRELOAD_RAN=1", "s DEPENDENCY_RAN=1"));
        let seen = program_environ(&out);
        assert!(
            seen.iter().any(|e| e == "PRELOAD_RAN=1") && seen.iter().any(|e| e == "DEPENDENCY_RAN=1"),
            "{}: a constructor did not run: {}",
            program.display(),
            shown(&out)
        );
    }
    s
}

/// The environments of the four library-variable cases and of a start with nothing to borrow.
fn cases(s: &Setup) -> Vec<(&'static str, Vec<(String, String)>)> {
    let loader = ("NIX_LD".to_string(), s.loader.display().to_string());
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
    ("u NIX_LD_LIBRARY_PATH", ""),
    ("u ENVEDIT_A", ""),
    ("s NEW=1", ""),
    ("s A=2", ""),
    ("p NEW=2", ""),
    ("p A=3", ""),
    ("s NIX_LD_LIBRARY_PATH=/elsewhere", ""),
    ("k NIX_LD_LIBRARY_PATH=/kept", ""),
    ("p NIX_LD_LIBRARY_PATH=/put", ""),
    ("g SEEN=NIX_LD_LIBRARY_PATH", ""),
    ("c", ""),
    ("c;s X=1", ""),
    ("r;s NEW=1", ""),
    ("u A;s NEW=1;u LD_PRELOAD", ""),
    ("s NEW=1;u A;u LD_LIBRARY_PATH;s NEW2=2", ""),
    ("s NEW=1;u NIX_LD_LIBRARY_PATH;s NIX_LD_LIBRARY_PATH=/again", ""),
    ("u A", "s NEW=1"),
    ("s NEW=1", "u LD_LIBRARY_PATH"),
    ("u NIX_LD_LIBRARY_PATH", "s NEW=1"),
    ("u LD_PRELOAD", "u A;p NEW=3"),
];

/// Runs every case with every edit, through the shim and directly, and lists the starts that differ.
fn differences(s: &Setup) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (case, env) in cases(s) {
        for &edits in EDITS {
            let want = run(s, &s.direct, &env, edits);
            assert!(want.status.success(), "{case}, {edits:?}: the direct start fails: {}", shown(&want));
            assert!(
                want.stdout.split(|&b| b == 1).count() == 5,
                "{case}, {edits:?}: incomplete output: {}",
                shown(&want)
            );
            let got = run(s, &s.through_shim, &env, edits);
            compared += 1;
            if got.status.code() != want.status.code() || got.stdout != want.stdout {
                failures.push(format!(
                    "{case}, edits {edits:?} differs:\n  direct:\n    {}\n  through the shim:\n    {}",
                    shown(&want),
                    shown(&got)
                ));
            }
        }
    }
    (compared, failures)
}

fn edits_leave_what_a_direct_start_leaves(test: &str, glibc: &Glibc) {
    let s = setup(test, glibc);
    let (compared, failures) = differences(&s);
    assert!(
        failures.is_empty(),
        "{} of {compared} starts differ from a direct start:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn constructors_that_edit_the_environment_leave_it_as_a_direct_start_does() {
    edits_leave_what_a_direct_start_leaves("constructors-edit", &Glibc::host());
}

/// The value a variable has in the program's environment.
fn value_of(out: &Output, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    program_environ(out).into_iter().find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
}

/// On the NixOS path (`NIX_LD_LIBRARY_PATH` set, no `LD_LIBRARY_PATH`), constructors that read,
/// set or unset `NIX_LD_LIBRARY_PATH`, or unset `LD_LIBRARY_PATH`, see and leave what a direct
/// start gives them, alone and next to libfaketime (whose constructor copies `environ` to the
/// heap). Each edit is first shown to take effect in the direct start, so that a shim that hid the
/// variable from constructors, or lost it, would differ.
fn nixos_path_edits_leave_what_a_direct_start_leaves(test: &str, glibc: &Glibc) {
    let s = setup(test, glibc);
    let cases = cases(&s);
    let (case, env) = &cases[2];
    assert!(env.iter().any(|(k, _)| k == "NIX_LD_LIBRARY_PATH") && !env.iter().any(|(k, _)| k == "LD_LIBRARY_PATH"));
    let lib = s.lib.display().to_string();
    let nix = "NIX_LD_LIBRARY_PATH";
    // Each edit, and what it leaves in the direct start's NIX_LD_LIBRARY_PATH (and SEEN).
    let edits: [(&str, Option<&str>, Option<&str>); 6] = [
        ("u LD_LIBRARY_PATH", Some(&lib), None),
        ("s NEW=1;u LD_LIBRARY_PATH", Some(&lib), None),
        ("u NIX_LD_LIBRARY_PATH", None, None),
        ("s NIX_LD_LIBRARY_PATH=/elsewhere", Some("/elsewhere"), None),
        ("k NIX_LD_LIBRARY_PATH=/kept", Some(&lib), None),
        ("g SEEN=NIX_LD_LIBRARY_PATH", Some(&lib), Some(&lib)),
    ];
    let faketime = host_libfaketime();
    let mut failures = Vec::new();
    for (edits, nix_left, seen) in edits {
        for with_faketime in [false, true] {
            let start = |program: &Path| {
                let mut cmd = Command::new(program);
                cmd.env_clear().current_dir(&s.dir).envs(env.iter().map(|(k, v)| (k, v)));
                let mut preload = s.preload.display().to_string();
                if with_faketime {
                    preload = format!("{}:{preload}", faketime.display());
                    cmd.env("FAKETIME", "@2001-02-03 04:05:06");
                }
                cmd.env("LD_PRELOAD", preload).env("ENVEDIT_A", edits).env("ENVEDIT_B", "");
                cmd.output().unwrap()
            };
            let what = format!("{case}, edits {edits:?}{}", if with_faketime { ", with libfaketime" } else { "" });
            let want = start(&s.direct);
            assert!(want.status.success(), "{what}: the direct start fails: {}", shown(&want));
            assert_eq!(value_of(&want, nix).as_deref(), nix_left, "{what}: the edit in the direct start");
            assert_eq!(value_of(&want, "SEEN").as_deref(), seen, "{what}: what the constructor read directly");
            assert_eq!(with_faketime, stdout(&want).contains("FAKETIME_SHARED="), "{what}: libfaketime's constructor");
            let got = start(&s.through_shim);
            if got.status.code() != want.status.code() || normalised(&got) != normalised(&want) {
                failures.push(format!(
                    "{what}:\n  direct:\n    {}\n  through the shim:\n    {}",
                    shown(&want),
                    shown(&got)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "on the NixOS path, the shim's start differs:\n\n{}", failures.join("\n\n"));
}

#[test]
fn host_constructors_that_edit_or_read_nix_ld_library_path_see_and_leave_what_a_direct_start_does() {
    nixos_path_edits_leave_what_a_direct_start_leaves("constructors-nixos-path", &Glibc::host());
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

/// Debian's libfaketime: a real preload library nobody here wrote.
fn host_libfaketime() -> PathBuf {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: apt-get install faketime (.ci/run does)");
    PathBuf::from(LIBFAKETIME)
}

/// libfaketime's constructor sets FAKETIME_SHARED (a new variable, so glibc copies `environ` to
/// the heap) while ld.so's entry is in place: the leak nix-ld users report.
fn libfaketime_leaves_what_a_direct_start_leaves(test: &str, glibc: &Glibc) {
    let libfaketime = host_libfaketime();
    let s = setup(test, glibc);
    let mut failures = Vec::new();
    for (case, mut env) in cases(&s) {
        env.push(("FAKETIME".into(), "@2001-02-03 04:05:06".into()));
        let start = |program: &Path| {
            let mut cmd = Command::new(program);
            cmd.env_clear().current_dir(&s.dir).env("LD_PRELOAD", &libfaketime).envs(env.iter().map(|(k, v)| (k, v)));
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

#[test]
fn host_libfaketime_leaves_the_environment_as_a_direct_start_does() {
    libfaketime_leaves_what_a_direct_start_leaves("constructors-faketime", &Glibc::host());
}

/// Every scenario above with another glibc release as the loader and libc.
fn with_another_glibc(release: (&str, &str)) {
    let glibc = Glibc::other(release.0, release.1);
    edits_leave_what_a_direct_start_leaves(&format!("constructors-edit-{}", release.0), &glibc);
    nixos_path_edits_leave_what_a_direct_start_leaves(&format!("constructors-nixos-path-{}", release.0), &glibc);
    libfaketime_leaves_what_a_direct_start_leaves(&format!("constructors-faketime-{}", release.0), &glibc);
}

#[test]
fn glibc_2_41_constructors_and_libfaketime_leave_the_environment_as_a_direct_start_does() {
    with_another_glibc(DEBIAN_13);
}

#[test]
fn glibc_2_43_constructors_and_libfaketime_leave_the_environment_as_a_direct_start_does() {
    with_another_glibc(DEBIAN_UNSTABLE);
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
    let s = setup("constructors-unavoidable", &Glibc::host());
    let cases = cases(&s);
    let (nix_only, user, nixos) = (&cases[0].1, &cases[1].1, &cases[2].1);
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
    assert_eq!(seen(nixos, &s.direct), "unset");
    assert_eq!(seen(nixos, &s.through_shim), s.lib.display().to_string());
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
