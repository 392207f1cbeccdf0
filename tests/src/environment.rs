//! The program and its children see exactly the environment they were started with.

use std::path::{Path, PathBuf};

use crate::support::*;

struct Setup {
    dir: PathBuf,
    printenv: PathBuf,
    launch: PathBuf,
    lib: PathBuf,
}

fn setup(test: &str, shim: &Path) -> Setup {
    setup_with(test, shim, &Glibc::host())
}

/// The programs, with printenv loading `glibc`'s libc.
fn setup_with(test: &str, shim: &Path, glibc: &Glibc) -> Setup {
    let dir = scratch(test);
    let mut link = vec!["-Wl,-e,fixture_entry".to_string()];
    link.extend(glibc.link_args());
    let link: Vec<&str> = link.iter().map(String::as_str).collect();
    let printenv = compile(&dir, "printenv.c", "printenv", shim, &link);
    let launch = compile(&dir, "launch.c", "launch", &system_loader(), &[]);
    let lib = greet_library(&dir);
    Setup { dir, printenv, launch, lib }
}

/// Runs printenv --spawn under exactly `env` (raw entries) and checks that the program and its
/// child both print exactly `env`.
fn assert_exact(s: &Setup, env: &[Vec<u8>], args: &[&str], walk_environ: bool) {
    let file = s.dir.join("env");
    let mut env = env.to_vec();
    if walk_environ {
        env.push(b"PRINTENV_WALK=1".to_vec());
    }
    env_file(&file, &env);
    let out =
        std::process::Command::new(&s.launch).arg(&file).arg(&s.printenv).arg("--spawn").args(args).output().unwrap();
    let (parent, child) = parent_and_child(&out);
    assert_eq!(parent.len(), env.len(), "the program saw a different number of variables");
    assert_eq!(parent, env, "the program saw a different environment");
    assert_eq!(child, env, "the child saw a different environment");
}

fn var(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn unchanged_in_all_four_cases(test: &str, glibc: &Glibc) {
    let s = setup_with(test, &shim(), glibc);
    let loader = format!("NIX_LD={}", glibc.loader.display());
    let nix = format!("NIX_LD_LIBRARY_PATH={}", s.lib.display());
    let cases: [Vec<Vec<u8>>; 4] = [
        vec![var(&loader), var("A=1")],
        vec![var(&loader), var("LD_LIBRARY_PATH=/nonexistent"), var("A=1")],
        vec![var(&loader), var(&nix), var("A=1")],
        vec![var("A=1"), var("LD_LIBRARY_PATH=/nonexistent"), var(&loader), var(&nix)],
    ];
    for env in &cases {
        assert_exact(&s, env, &[], true);
    }
}

#[test]
fn the_environment_is_unchanged_in_all_four_cases() {
    unchanged_in_all_four_cases("env-four", &Glibc::host());
}

/// env -i: no variable at all, so the shim appends LD_LIBRARY_PATH for ld.so and removes it at the
/// program's entry (the compiled-in defaults supply loader and libraries).
fn unchanged_with_nothing_to_borrow(test: &str, glibc: &Glibc) {
    let _guard = defaults_lock();
    let defaults = defaults_dir();
    let s = setup_with(test, &defaults_shim(), glibc);
    let _ = std::fs::remove_dir_all(&defaults);
    std::fs::create_dir_all(&defaults).unwrap();
    std::os::unix::fs::symlink(&glibc.loader, defaults.join("ld.so")).unwrap();
    std::os::unix::fs::symlink(&s.lib, defaults.join("lib")).unwrap();
    assert_exact(&s, &[], &[], false);
    assert_exact(&s, &[var("A=1"), var("B=2")], &[], false);
}

#[test]
fn with_nothing_to_borrow_the_environment_is_still_unchanged() {
    unchanged_with_nothing_to_borrow("env-append", &Glibc::host());
}

fn with_another_glibc(release: (&str, &str)) {
    let glibc = Glibc::other(release.0, release.1);
    unchanged_in_all_four_cases(&format!("env-four-{}", release.0), &glibc);
    unchanged_with_nothing_to_borrow(&format!("env-append-{}", release.0), &glibc);
}

#[test]
fn glibc_2_41_the_environment_is_unchanged_in_all_four_cases_and_with_nothing_to_borrow() {
    with_another_glibc(DEBIAN_13);
}

#[test]
fn glibc_2_43_the_environment_is_unchanged_in_all_four_cases_and_with_nothing_to_borrow() {
    with_another_glibc(DEBIAN_UNSTABLE);
}

#[test]
fn ld_so_does_see_the_library_path() {
    // The counterpart of the tests above: the directories do reach ld.so.
    let s = setup("env-reaches-ld-so", &shim());
    let prog = needs_greet(&s.dir, &s.lib, &shim());
    let loader = system_loader();
    let user_dir = s.dir.join("user-lib");
    std::fs::create_dir_all(&user_dir).unwrap();
    for user in [None, Some(user_dir.to_str().unwrap())] {
        let mut env = vec![("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", s.lib.to_str().unwrap())];
        if let Some(user) = user {
            env.push(("LD_LIBRARY_PATH", user));
        }
        let out = run_with(&prog, &[], &env);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn nix_ld_library_path_followed_by_nix_path_is_not_corrupted() {
    // nix-ld 1.x renamed NIX_LD_LIBRARY_PATH in place and overran into the next variable.
    let s = setup("env-nix-path", &shim());
    let env = vec![
        var(&format!("NIX_LD={}", system_loader().display())),
        var(&format!("NIX_LD_LIBRARY_PATH={}", s.lib.display())),
        var("NIX_PATH=nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixpkgs"),
        var("PATH=/nix/var/nix/profiles/default/bin:/run/wrappers/bin"),
    ];
    assert_exact(&s, &env, &[], true);
}

/// A small deterministic generator, so a failure can be reproduced from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_env(rng: &mut Rng, loader: &str, lib: &str) -> Vec<Vec<u8>> {
    let names = [
        "NIX_LD",
        "NIX_LD_x86_64_linux",
        "NIX_LD_LIBRARY_PATH",
        "NIX_LD_LIBRARY_PATH_x86_64_linux",
        "LD_LIBRARY_PATH",
        "NIX_PATH",
        "PATH",
        "A",
        "NIX_LDX",
        "LD_LIBRARY_PATHS",
    ];
    let mut env = Vec::new();
    for _ in 0..rng.below(12) {
        let name = names[rng.below(names.len() as u64) as usize];
        let value: String = match name {
            "NIX_LD" | "NIX_LD_x86_64_linux" => loader.to_string(),
            "NIX_LD_LIBRARY_PATH" | "NIX_LD_LIBRARY_PATH_x86_64_linux" | "LD_LIBRARY_PATH" => {
                [lib, "", ":", "/nonexistent", "/nonexistent/too"][rng.below(5) as usize].to_string()
            }
            _ => (0..rng.below(20)).map(|_| (b'a' + rng.below(26) as u8) as char).collect(),
        };
        match rng.below(10) {
            0 => env.push(name.as_bytes().to_vec()), // no '='
            _ => env.push(format!("{name}={value}").into_bytes()),
        }
    }
    // The loader must be findable for the program to run at all.
    env.insert(rng.below(env.len() as u64 + 1) as usize, format!("NIX_LD={loader}").into_bytes());
    env
}

#[test]
fn random_environments_are_unchanged() {
    let s = setup("env-random", &shim());
    let loader = system_loader();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60 {
        let env = random_env(&mut rng, loader.to_str().unwrap(), s.lib.to_str().unwrap());
        // A NIX_LD_x86_64_linux without '=' is not a variable; one with a bad value would win over
        // NIX_LD, which is fine: all values here are the real loader.
        let file = s.dir.join("env");
        env_file(&file, &env);
        let out = std::process::Command::new(&s.launch).arg(&file).arg(&s.printenv).arg("--spawn").output().unwrap();
        let (parent, child) = parent_and_child(&out);
        assert_eq!(parent, env, "round {round}: the program saw a different environment");
        assert_eq!(child, env, "round {round}: the child saw a different environment");
    }
}

/// Every size of environment from none to 400 variables, on the path that edits it, and with the
/// user's LD_LIBRARY_PATH too. Where the new argument block lands relative to the shim's own
/// frames depends on its size: with 140 to 230 variables the shim once built the block on top of
/// the plan it was building it from, and crashed.
#[test]
fn every_environment_size_starts_and_is_unchanged() {
    let s = setup("env-every-size", &shim());
    let loader = var(&format!("NIX_LD={}", system_loader().display()));
    let nix = var(&format!("NIX_LD_LIBRARY_PATH={}", s.lib.display()));
    for user_path in [false, true] {
        for n in 0..=400 {
            let mut env = vec![loader.clone(), nix.clone()];
            if user_path {
                env.push(var("LD_LIBRARY_PATH=/nonexistent"));
            }
            env.extend((0..n).map(|i| format!("V{i}=x").into_bytes()));
            let file = s.dir.join("env");
            env_file(&file, &env);
            let out = std::process::Command::new(&s.launch).arg(&file).arg(&s.printenv).output().unwrap();
            assert!(
                out.status.success(),
                "{n} variables (user's LD_LIBRARY_PATH: {user_path}): {:?}\n{}",
                out.status,
                stderr(&out)
            );
            assert_eq!(entries(&out.stdout), env, "{n} variables: the program saw a different environment");
        }
    }
}

#[test]
fn large_environments_and_argument_lists_are_unchanged() {
    let s = setup("env-large", &shim());
    let mut env = vec![
        var(&format!("NIX_LD={}", system_loader().display())),
        var(&format!("NIX_LD_LIBRARY_PATH={}", s.lib.display())),
    ];
    for i in 0..10_000 {
        env.push(format!("VAR_{i}=value-{i}").into_bytes());
    }
    // The kernel's limit for one string is 128 KiB including its NUL.
    env.push(format!("BIG={}", "x".repeat(128 * 1024 - 5)).into_bytes());
    env.push(var("DUP=1"));
    env.push(var("DUP=2"));
    env.push(var("NO_EQUALS_SIGN"));
    let args: Vec<String> = (0..1000).map(|i| format!("arg{i}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_exact(&s, &env, &args, true);
}

#[test]
fn bash_writes_into_its_environment_in_all_four_cases() {
    // bash modifies its environment strings at start-up; a read-only string there crashes it.
    let dir = scratch("bash");
    let bash = with_interpreter(&on_path("bash"), &shim(), &dir, "bash");
    let lib = greet_library(&dir);
    let loader = format!("{}", system_loader().display());
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![("NIX_LD", &loader)],
        vec![("NIX_LD", &loader), ("LD_LIBRARY_PATH", "/nonexistent")],
        vec![("NIX_LD", &loader), ("NIX_LD_LIBRARY_PATH", lib.to_str().unwrap())],
        vec![("NIX_LD", &loader), ("NIX_LD_LIBRARY_PATH", lib.to_str().unwrap()), ("LD_LIBRARY_PATH", "/nonexistent")],
    ];
    for env in &cases {
        let out = run_with(&bash, &["-c", "echo hi; echo \"${LD_LIBRARY_PATH-unset}\""], env);
        assert!(out.status.success(), "{env:?}: {}", stderr(&out));
        let user = env.iter().find(|(k, _)| *k == "LD_LIBRARY_PATH").map_or("unset", |(_, v)| *v);
        assert_eq!(stdout(&out), format!("hi\n{user}\n"), "{env:?}");
    }
}

#[test]
fn a_library_in_the_working_directory_is_never_loaded() {
    let dir = scratch("cwd-injection");
    let lib = greet_library(&dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    planted_greet_library(&work);
    let loader = system_loader();
    // What a shim that joins "/x" with an empty NIX_LD_LIBRARY_PATH as "/x:" hands ld.so:
    let direct = needs_greet(&dir, &lib, &loader);
    let out = std::process::Command::new(&direct)
        .current_dir(&work)
        .env_clear()
        .env("LD_LIBRARY_PATH", "/nonexistent:")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "INJECTED library from the working directory\n", "the attack works against ld.so");
    // Through the shim, with every combination that could produce an empty component:
    let prog = needs_greet(&dir, &lib, &shim());
    for (user, nix) in [
        (Some("/nonexistent"), Some("")),
        (Some("/nonexistent:"), None),
        (None, Some(":")),
        (Some(""), Some(":/nonexistent")),
    ] {
        let mut cmd = std::process::Command::new(&prog);
        cmd.current_dir(&work).env_clear().env("NIX_LD", &loader);
        if let Some(u) = user {
            cmd.env("LD_LIBRARY_PATH", u);
        }
        if let Some(n) = nix {
            cmd.env("NIX_LD_LIBRARY_PATH", n);
        }
        let out = cmd.output().unwrap();
        assert!(!stdout(&out).contains("INJECTED"), "{user:?} {nix:?}: the planted library was loaded");
        assert_eq!(out.status.code(), Some(127), "{user:?} {nix:?}: libgreet must simply not be found");
    }
}

#[test]
fn absent_library_directories_are_left_out() {
    // ld.so would try every library in a missing directory (and its glibc-hwcaps subdirectories)
    // before giving up on it; the shim drops such directories, and anything that is not a directory.
    let s = setup("env-absent-dirs", &shim());
    let prog = needs_greet(&s.dir, &s.lib, &shim());
    let missing = s.dir.join("no-such-dir");
    let file = s.dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let nix = format!("{}:{}:{}", missing.display(), s.lib.display(), file.display());
    let loader = system_loader();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", nix.as_str()), ("NIX_LD_LOG", "debug")];
    let out = run_with(&prog, &[], &env);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(stdout(&out), "greetings from libgreet\n");
    for gone in [&missing, &file] {
        let line = format!("nix-ld: library directory {} does not exist; ld.so will not search it", gone.display());
        assert!(log.lines().any(|l| l == line), "no line saying {} is left out in:\n{log}", gone.display());
    }
    let sees = format!("nix-ld: ld.so sees LD_LIBRARY_PATH={}", s.lib.display());
    assert!(log.lines().any(|l| l == sees), "ld.so should see only the existing directory:\n{log}");
}

#[test]
fn with_every_library_directory_absent_the_environment_is_not_edited() {
    let s = setup("env-all-absent", &shim());
    let missing = s.dir.join("no-such-dir");
    let loader = system_loader();
    let nix = missing.to_str().unwrap();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", nix), ("NIX_LD_LOG", "debug")];
    let out = run_with(&s.printenv, &[], &env);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("does not exist; ld.so will not search it"), "{log}");
    assert!(!log.contains("ld.so sees"), "the environment was edited for nothing:\n{log}");
    // With an existing directory, the same run does edit it: the check above can fail.
    let env = [
        ("NIX_LD", loader.to_str().unwrap()),
        ("NIX_LD_LIBRARY_PATH", s.lib.to_str().unwrap()),
        ("NIX_LD_LOG", "debug"),
    ];
    let log = stderr(&run_with(&s.printenv, &[], &env));
    assert!(log.contains("ld.so sees"), "{log}");
}

#[test]
fn a_symbolic_link_to_a_library_directory_is_kept() {
    // NixOS's library directory is reached through links; the shim's check follows them. The path
    // is checked in place (it ends the variable) and as a copy (followed by a ':').
    let s = setup("env-linked-dir", &shim());
    let prog = needs_greet(&s.dir, &s.lib, &shim());
    let link = s.dir.join("linked-lib");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&s.lib, &link).unwrap();
    let loader = system_loader();
    let missing = s.dir.join("no-such-dir");
    for nix in [link.display().to_string(), format!("{}:{}", link.display(), missing.display())] {
        let env =
            [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", nix.as_str()), ("NIX_LD_LOG", "debug")];
        let out = run_with(&prog, &[], &env);
        let log = stderr(&out);
        assert_eq!(stdout(&out), "greetings from libgreet\n", "{nix}: {log}");
        let sees = format!("nix-ld: ld.so sees LD_LIBRARY_PATH={}", link.display());
        assert!(log.lines().any(|l| l == sees), "{nix}: the link should be kept:\n{log}");
    }
}
