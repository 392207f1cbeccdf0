//! nix-ld-doctor on whole applications: an extension module examined as the library it is, a
//! directory tree (a program, a plugin it loads with dlopen, a library the tree provides, a
//! dependency of a dependency, an object of another architecture), `--run` seeing a dlopen of
//! a library missing everywhere, X.org store names, ten missing libraries fixed in one round,
//! and the one-off line taken from the text and run by `sh -c` (a long store path; the library
//! variable unset, and the system-specific one set), `--status` on a built shim. Each first
//! shows the program failing, then the doctor's lines making it start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn doctor() -> PathBuf {
    env_path("NIX_LD_TEST_DOCTOR")
}

/// A store entry `<hash>-NAME/lib`, made.
fn entry(store: &Path, name: &str) -> PathBuf {
    let d = store.join(format!("{HASH}-{name}/lib"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles an empty shared library `dir/file` (soname `file`) that needs each of `needs`
/// (libraries as files, linked by path so no search path is recorded), with `extra` link flags.
fn library(dir: &Path, file: &str, needs: &[&Path], extra: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let source = dir.join(format!("{file}.c"));
    let symbol: String = file.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    std::fs::write(&source, format!("void {symbol}(void) {{}}\n")).unwrap();
    let out = dir.join(file);
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-o"]).arg(&out).arg(&source).arg(format!("-Wl,-soname,{file}"));
    // DT_RPATH unless `extra` asks for DT_RUNPATH: a compiler wrapper that adds an -rpath of its
    // own (nixpkgs' does) must not give a library a DT_RUNPATH, which would change its search.
    cmd.args(["-Wl,--no-as-needed", "-Wl,--disable-new-dtags"]);
    for need in needs {
        cmd.arg(format!("-L{}", need.parent().unwrap().display()));
        cmd.arg(format!("-l:{}", need.file_name().unwrap().to_string_lossy()));
    }
    cmd.args(extra);
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}");
    std::fs::remove_file(source).unwrap();
    out
}

/// The dlopen host, through the shim, needing `needs` too.
fn host(dir: &Path, name: &str, needs: &[&Path], extra: &[&str]) -> PathBuf {
    let mut args: Vec<String> = vec!["-Wl,--no-as-needed".into()];
    for need in needs {
        args.push(format!("-L{}", need.parent().unwrap().display()));
        args.push(format!("-l:{}", need.file_name().unwrap().to_string_lossy()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    std::fs::create_dir_all(dir).unwrap();
    compile(dir, "dlopen_each.c", name, &shim(), &args)
}

/// The doctor with exactly `env` and the store `store`, nothing on PATH.
fn run_doctor(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(doctor());
    cmd.args(args).env_clear().env("NIX_LD_DOCTOR_STORE", store).env("PATH", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `sh -c LINE` with exactly `env`.
fn shell(line: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(line).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting {prefix:?}:\n{text}"))
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn an_extension_module_is_examined_as_a_library_and_its_export_line_lets_it_load() {
    let dir = scratch("doctor-extension-module");
    let (store, set) = (dir.join("store"), dir.join("set"));
    std::fs::create_dir_all(&set).unwrap();
    let crypt = library(&entry(&store, "libxcrypt-4.4.36"), "libcrypt-like.so.1", &[], &[]);
    let module = library(&dir.join("lib-dynload"), "_crypt.cpython-311-x86_64-linux-gnu.so", &[crypt.as_path()], &[]);
    let python = host(&dir.join("bin"), "python3.11", &[], &[]);
    let loader = system_loader();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", set.to_str().unwrap())];
    // `import crypt` fails: the module's library is in the store, not in the set.
    let before = run_with(&python, &[module.to_str().unwrap()], &env);
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));
    assert!(stderr(&before).contains("libcrypt-like.so.1: cannot open shared object file"), "{}", stderr(&before));

    let out = run_doctor(&store, &[module.to_str().unwrap()], &env);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "a library is not an all-clear:\n{text}");
    assert!(text.contains("what: a shared library, plugin or extension module for x86-64"), "{text}");
    assert!(flat(&text).contains(&format!("libcrypt-like.so.1 (needed by {})", module.display())), "{text}");
    assert!(text.contains(&format!("  libxcrypt: {}\n", crypt.parent().unwrap().display())), "{text}");
    let export = line_starting(&text, "export NIX_LD_LIBRARY_PATH=");
    let after = shell(&format!("{export}; {} {}", python.display(), module.display()), &env);
    assert_eq!(after.status.code(), Some(0), "{}{}", stdout(&after), stderr(&after));
    assert_eq!(stdout(&after), format!("loaded {}\n", module.display()));
    let json: serde_json::Value =
        serde_json::from_slice(&run_doctor(&store, &["--json", module.to_str().unwrap()], &env).stdout).unwrap();
    assert_eq!(json["mode"], "library", "{json}");
}

#[test]
fn a_directory_is_examined_whole_and_its_own_libraries_are_not_missing() {
    let dir = scratch("doctor-directory");
    let (store, set) = (dir.join("store"), dir.join("set"));
    std::fs::create_dir_all(&set).unwrap();
    let greet = library(&entry(&store, "libgreet-1.2"), "libgreet.so.1", &[], &[]);
    // libwave needs libgreet and says nowhere where it is: found only once libgreet's directory
    // is on the path too (a dependency of a dependency).
    let wave = library(&entry(&store, "libwave-0.3"), "libwave.so.0", &[greet.as_path()], &[]);
    // An X.org store name (the machine may have a real libX11.so.6, so another file name).
    let x11 = library(&entry(&store, "libX11-1.8.7"), "libX11-doctor-test.so.6", &[], &[]);
    let app = dir.join("app");
    let core = library(&app.join("lib"), "libcore.so.1", &[wave.as_path()], &[]);
    // The plugin names libcore without a path: the program has loaded it by then.
    let plugin = library(&app.join("plugins/platforms"), "libqxcb.so", &[core.as_path(), x11.as_path()], &[]);
    let program = host(&app.join("bin"), "app", &[core.as_path()], &["-Wl,-rpath,$ORIGIN/../lib"]);
    // An object of another architecture: counted and named, not examined.
    let mut arm = std::fs::read(&core).unwrap();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::create_dir_all(app.join("lib/aarch64")).unwrap();
    std::fs::write(app.join("lib/aarch64/libcore.so.1"), arm).unwrap();
    // A link out of the tree (to the directory holding the store) is not followed.
    std::os::unix::fs::symlink("../..", app.join("lib/outside")).unwrap();

    let loader = system_loader();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", set.to_str().unwrap())];
    let before = run_with(&program, &[plugin.to_str().unwrap()], &env);
    assert_eq!(before.status.code(), Some(127), "{}", stderr(&before));

    let out = run_doctor(&store, &[app.to_str().unwrap()], &env);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("a directory of 3 ELF objects for x86-64 (1 program, 2 libraries)"), "{text}");
    assert!(
        flat(&text).contains("not examined: 1 of another architecture: lib/aarch64/libcore.so.1 (AArch64 (arm64))"),
        "{text}"
    );
    assert!(flat(&text).contains("problem: 3 missing libraries; the store has 3, in 3 directories:"), "{text}");
    assert!(!text.contains("libcore.so.1 (needed"), "the tree provides libcore.so.1:\n{text}");
    assert!(flat(&text).contains("libwave.so.0 (needed by lib/libcore.so.1)"), "{text}");
    assert!(
        flat(&text).contains(&format!("libgreet.so.1 (needed by {}, once the others are there)", wave.display())),
        "{text}"
    );
    assert!(flat(&text).contains("libX11-doctor-test.so.6 (needed by plugins/platforms/libqxcb.so)"), "{text}");
    assert!(text.contains(&format!("  xorg.libX11: {}\n", x11.parent().unwrap().display())), "{text}");
    assert!(
        text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ libgreet libwave xorg.libX11 ];"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run_doctor(&store, &["--json", app.to_str().unwrap()], &env).stdout).unwrap();
    assert_eq!(json["examined"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(json["other_architectures"][0]["architecture"], "AArch64 (arm64)", "{json}");

    // One round: the export line, then the program and its plugin start.
    let export = line_starting(&text, "export NIX_LD_LIBRARY_PATH=");
    let after = shell(&format!("{export}; {} {}", program.display(), plugin.display()), &env);
    assert_eq!(after.status.code(), Some(0), "{}{}", stdout(&after), stderr(&after));
    let value = export.strip_prefix("export NIX_LD_LIBRARY_PATH=").unwrap();
    let again = run_doctor(&store, &[app.to_str().unwrap()], &[env[0], ("NIX_LD_LIBRARY_PATH", value)]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn run_mode_sees_a_dlopen_of_a_library_missing_everywhere() {
    let dir = scratch("doctor-run");
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let program = host(&dir, "plugin-host", &[], &[]);
    let loader = system_loader();
    let env = [("NIX_LD", loader.to_str().unwrap())];
    let examined = run_doctor(&store, &[program.to_str().unwrap()], &env);
    assert_eq!(examined.status.code(), Some(0), "reading the file cannot see it:\n{}", stdout(&examined));

    let p = program.to_str().unwrap();
    // A library a Qt plugin might open, which this machine must not have for the test to mean
    // anything.
    let absent = run_with(&program, &["libxcb-icccm.so.4"], &env);
    assert_eq!(absent.status.code(), Some(1), "this machine has libxcb-icccm.so.4: the test needs one without it");
    let out = run_doctor(&store, &["--run", "--", p, "libxcb-icccm.so.4", "libm.so.6"], &env);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("loaded libm.so.6"), "the program ran, its output is its own:\n{text}");
    assert!(flat(&text).contains("problem: 1 missing library; the store has 0, in 0 directories:"), "{text}");
    assert!(
        flat(&text).contains(&format!(
            "libxcb-icccm.so.4 (needed by {p}); likely xorg.xcbutilwm (from the doctor's table, not checked here)"
        )),
        "{text}"
    );
    assert!(!text.contains("libm.so.6 ("), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ xorg.xcbutilwm ];"), "{text}");
}

#[test]
fn ten_missing_libraries_are_fixed_in_one_round_by_the_one_off_line() {
    let dir = scratch("doctor-ten");
    let (store, set) = (dir.join("store"), dir.join("set"));
    std::fs::create_dir_all(&set).unwrap();
    let libs: Vec<PathBuf> = (0..10)
        .map(|i| library(&entry(&store, &format!("libten{i}-1.{i}")), &format!("libten{i}.so.{i}"), &[], &[]))
        .collect();
    let needs: Vec<&Path> = libs.iter().map(PathBuf::as_path).collect();
    let program = host(&dir, "needs-ten", &needs, &[]);
    let loader = system_loader();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", set.to_str().unwrap())];
    assert_eq!(run_with(&program, &[], &env).status.code(), Some(127));
    let text = stdout(&run_doctor(&store, &[program.to_str().unwrap()], &env));
    assert!(flat(&text).contains("problem: 10 missing libraries; the store has 10, in 10 directories:"), "{text}");
    let line = line_starting(&text, "NIX_LD_LIBRARY_PATH=");
    let after = shell(line, &env);
    assert_eq!(after.status.code(), Some(0), "{line}\n{}", stderr(&after));
    let list: Vec<String> = (0..10).map(|i| format!("libten{i}")).collect();
    assert!(text.contains(&format!("[ {} ]", list.join(" "))), "{text}");
}

#[test]
fn the_one_off_line_is_whole_at_any_length_and_sets_the_variable_the_shim_reads() {
    let dir = scratch("doctor-one-off");
    let store = dir.join("store");
    let long = format!("libgreet-built-with-a-rather-long-package-name-{}-1.2", "x".repeat(60));
    let greet = library(&entry(&store, &long), "libgreet.so.1", &[], &[]);
    let program = host(&dir, "needs-greet", &[greet.as_path()], &[]);
    let loader = system_loader();
    let loader = loader.to_str().unwrap();

    // Neither library variable set: the shim's compiled-in default, written out, is kept. (The
    // default as the shim's file records it, which --status reads.)
    let status = Command::new(doctor())
        .args(["--status", "--json"])
        .env_clear()
        .env("NIX_LD_DOCTOR_SHIMS", shim())
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let default = status["shims"][0]["compiled_in_library_path"].as_str().unwrap().to_string();
    assert_eq!(run_with(&program, &[], &[("NIX_LD", loader)]).status.code(), Some(127));
    let text = stdout(&run_doctor(&store, &[program.to_str().unwrap()], &[("NIX_LD", loader), ("COLUMNS", "80")]));
    let line = line_starting(&text, "NIX_LD_LIBRARY_PATH=");
    assert!(line.len() > 160, "{line}");
    assert_eq!(
        line,
        format!("NIX_LD_LIBRARY_PATH={default}:{} {}", greet.parent().unwrap().display(), program.display())
    );
    let after = shell(line, &[("NIX_LD", loader)]);
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));

    // The system-specific variable set: it wins, so it is the one the line sets, keeping its value.
    let set = dir.join("set");
    std::fs::create_dir_all(&set).unwrap();
    let env = [
        ("NIX_LD", loader),
        ("NIX_LD_LIBRARY_PATH_x86_64_linux", set.to_str().unwrap()),
        ("NIX_LD_LIBRARY_PATH", "/ignored"),
    ];
    assert_eq!(run_with(&program, &[], &env).status.code(), Some(127));
    let text = stdout(&run_doctor(&store, &[program.to_str().unwrap()], &env));
    let line = line_starting(&text, "NIX_LD_LIBRARY_PATH_x86_64_linux=");
    assert!(
        line.starts_with(&format!(
            "NIX_LD_LIBRARY_PATH_x86_64_linux={}:{}",
            set.display(),
            greet.parent().unwrap().display()
        )),
        "{line}"
    );
    let after = shell(line, &env);
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
}

#[test]
fn the_status_reads_the_shims_version_and_defaults_from_its_file() {
    let out = Command::new(doctor())
        .env_clear()
        .env("NIX_LD_DOCTOR_SHIMS", shim())
        .env("NIX_LD_LIBRARY_PATH", "/nonexistent-dir")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with(&format!("{}: nix-ld 0.1.0\n", shim().display())), "{text}");
    assert!(flat(&text).contains("compiled in: loader /run/current-system/sw/share/nix-ld/lib/ld.so, library path /run/current-system/sw/share/nix-ld/lib"), "{text}");
    assert!(flat(&text).contains("and library path: /nonexistent-dir (from NIX_LD_LIBRARY_PATH)"), "{text}");
    // The test shim with other defaults says so: the record is the file's, not the doctor's.
    let out = Command::new(doctor())
        .args(["--status", "--json"])
        .env_clear()
        .env("NIX_LD_DOCTOR_SHIMS", defaults_shim())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["shims"][0]["compiled_in_loader"], defaults_dir().join("ld.so").to_str().unwrap(), "{json}");
    // Glibc's own loader has no record.
    let out = Command::new(doctor()).env_clear().env("NIX_LD_DOCTOR_SHIMS", system_loader()).output().unwrap();
    assert!(stdout(&out).contains("glibc's own loader"), "{}", stdout(&out));
}

#[test]
fn the_command_line_refuses_what_it_does_not_use_and_finds_bare_names_on_path() {
    let out = Command::new(doctor()).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("--frobnicate"), "{}", stderr(&out));
    let out = Command::new(doctor()).arg("--version").output().unwrap();
    assert_eq!(stdout(&out), "nix-ld-doctor 0.1.0\n");
    let help = stdout(&Command::new(doctor()).arg("--help").output().unwrap());
    assert!(help.contains("Nothing but --run runs code of the program"), "{help}");
    let dir = scratch("doctor-bare-name");
    let program = host(&dir.join("bin"), "some-tool", &[], &[]);
    let out = Command::new(doctor())
        .arg("some-tool")
        .env_clear()
        .env("PATH", dir.join("bin"))
        .env("NIX_LD", system_loader())
        .output()
        .unwrap();
    assert!(stdout(&out).starts_with(&format!("nix-ld-doctor: {}\n", program.display())), "{}", stdout(&out));
    let out = Command::new(doctor()).arg("some-tool").env_clear().env("PATH", "/nonexistent").output().unwrap();
    assert_eq!(stderr(&out), "nix-ld-doctor: some-tool is not a program on PATH\n");
}

#[test]
fn a_local_nixpkgs_confirms_attributes_by_store_path_offline_and_a_slow_one_is_given_up() {
    let dir = scratch("doctor-local-nixpkgs");
    let (store, set, bin, nixpkgs) = (dir.join("store"), dir.join("set"), dir.join("bin"), dir.join("nixpkgs"));
    for d in [&set, &bin, &nixpkgs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let greet = library(&entry(&store, "libgreet-1.2"), "libgreet.so.1", &[], &[]);
    let foo = library(&entry(&store, "libfoo-2.0"), "libfoo.so.2", &[], &[]);
    let program = host(&dir, "needs-two", &[greet.as_path(), foo.as_path()], &[]);
    let greet_entry = greet.parent().unwrap().parent().unwrap();
    // A stand-in for nix: it refuses to go online, and answers for libfoo (none) and libgreet.
    let nix = bin.join("nix");
    std::fs::write(
        &nix,
        format!(
            "#!/bin/sh\ncase \"$*\" in *' eval '*'--offline'*) ;; *) echo \"not offline: $*\" >&2; exit 3 ;; esac\n[ -n \"$SLOW\" ] && while :; do :; done\necho '[null, \"{}\"]'\n",
            greet_entry.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&nix, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let loader = system_loader();
    let nix_path = format!("nixpkgs={}", nixpkgs.display());
    let base = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", set.to_str().unwrap())];
    let p = program.to_str().unwrap();

    // Without nix, the attributes are read from the store paths alone.
    let text = stdout(&run_doctor(&store, &[p], &base));
    assert!(text.contains(&format!("  libgreet: {}\n", greet.parent().unwrap().display())), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ libfoo libgreet ];"), "{text}");

    let env = [base[0], base[1], ("PATH", bin.to_str().unwrap()), ("NIX_PATH", &nix_path)];
    let text = stdout(&run_doctor(&store, &[p], &env));
    let greet_dir = greet.parent().unwrap().display();
    assert!(text.contains(&format!("  libgreet (confirmed by the local nixpkgs): {greet_dir}\n")), "{text}");
    assert!(text.contains("  libfoo? (no such attribute in the local nixpkgs): "), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ libgreet ];"), "{text}");

    // A nixpkgs named by URL is no local one: nix is not asked.
    let remote =
        [base[0], base[1], ("PATH", bin.to_str().unwrap()), ("NIX_PATH", "nixpkgs=https://example.org/n.tar.gz")];
    let text = stdout(&run_doctor(&store, &[p], &remote));
    assert!(!text.contains("local nixpkgs"), "{text}");

    // Too slow: given up at the time limit, said in a note.
    let slow = [env[0], env[1], env[2], env[3], ("SLOW", "1"), ("NIX_LD_DOCTOR_EVAL_TIMEOUT_MS", "300")];
    let started = std::time::Instant::now();
    let text = stdout(&run_doctor(&store, &[p], &slow));
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(
        flat(&text).contains("could not be confirmed in the local nixpkgs: nix eval took longer than 0.3 s"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ libfoo libgreet ];"), "{text}");
}

#[test]
fn host_the_lines_to_paste_parse_as_nix() {
    let dir = scratch("doctor-nix-parse");
    let (store, set) = (dir.join("store"), dir.join("set"));
    std::fs::create_dir_all(&set).unwrap();
    let x11 = library(&entry(&store, "libX11-1.8.7"), "libX11-doctor-test.so.6", &[], &[]);
    let crypt = library(&entry(&store, "libxcrypt-4.4.36"), "libcrypt-doctor-test.so.1", &[], &[]);
    let program = host(&dir, "needs-two", &[x11.as_path(), crypt.as_path()], &[]);
    let loader = system_loader();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", set.to_str().unwrap())];
    let text = stdout(&run_doctor(&store, &[program.to_str().unwrap()], &env));
    let module = line_starting(&text, "programs.nix-ld.libraries = ");
    assert_eq!(module, "programs.nix-ld.libraries = with pkgs; [ libxcrypt xorg.libX11 ];");
    let shim_module = line_starting(&text, "programs.nix-ld-shim.libraries = ");
    let shell = line_starting(&text, "shellHook = ");
    for (what, expression) in [
        ("module", format!("{{ pkgs, ... }}: {{ {module} {shim_module} }}")),
        ("mkShell", format!("{{ pkgs }}: pkgs.mkShell {{ {shell} }}")),
    ] {
        let out = Command::new("nix-instantiate")
            .args(["--parse", "-E", &expression])
            .output()
            .expect("nix-instantiate (Nix) is needed for this test; .ci/run installs it");
        assert!(out.status.success(), "{what}: {expression}\n{}", stderr(&out));
    }
}

/// A search-order case: name, what the program needs, its link flags, a library and where it is
/// found (None: not found).
type Case<'a> = (&'a str, Vec<&'a Path>, [String; 2], (&'a str, Option<String>));

/// The libraries ld.so's own trace mode lists for `program` started through the shim with `env`:
/// (name, path or None when not found).
fn loader_trace(program: &Path, env: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
    let mut with_trace = env.to_vec();
    with_trace.push(("LD_TRACE_LOADED_OBJECTS", "1"));
    let out = run_with(program, &[], &with_trace);
    let mut found: Vec<(String, Option<String>)> = stdout(&out)
        .lines()
        .filter_map(|l| l.trim().split_once(" => "))
        .map(|(name, rest)| {
            let path = rest.split(" (0x").next().unwrap().trim();
            (name.to_string(), (path != "not found").then(|| path.to_string()))
        })
        .filter(|(name, _)| !name.starts_with("libc.so") && !name.starts_with("ld-linux"))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The same, as the doctor resolves it: the objects it examined and the libraries it misses.
fn doctor_trace(program: &Path, env: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
    let out = run_doctor(Path::new("/nonexistent-store"), &["--json", program.to_str().unwrap()], env);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found: Vec<(String, Option<String>)> = json["examined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .filter(|p| Path::new(p) != program)
        .map(|p| (Path::new(&p).file_name().unwrap().to_string_lossy().into_owned(), Some(p)))
        .filter(|(name, _)| !name.starts_with("libc.so") && !name.starts_with("ld-linux"))
        .collect();
    for m in json["missing"].as_array().into_iter().flatten() {
        found.push((m["library"].as_str().unwrap().to_string(), None));
    }
    found.sort();
    found
}

#[test]
fn the_doctors_search_order_is_the_loaders_rpath_library_path_runpath_and_origin() {
    let dir = scratch("doctor-search-order");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let libx_a = library(&a, "libx.so.1", &[], &[]);
    library(&b, "libx.so.1", &[], &[]);
    let libz = library(&c, "libz-order.so.1", &[], &[]);
    // liby names no path of its own that holds libz: libz is found through the DT_RPATH of what
    // loaded it.
    let liby = library(&dir.join("o"), "liby.so.1", &[libz.as_path()], &[]);
    // The same with a DT_RUNPATH of its own: the loader's DT_RPATH no longer counts.
    let liby_runpath =
        library(&dir.join("r"), "liby.so.1", &[libz.as_path()], &["-Wl,--enable-new-dtags", "-Wl,-rpath,/nonexistent"]);
    let loader = system_loader();
    let library_path = b.to_str().unwrap().to_string();
    let env = [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", library_path.as_str())];
    let rpath = |dirs: &str| ["-Wl,--disable-new-dtags".to_string(), format!("-Wl,-rpath,{dirs}")];
    let runpath = |dirs: &str| ["-Wl,--enable-new-dtags".to_string(), format!("-Wl,-rpath,{dirs}")];
    let at = |d: &Path, f: &str| Some(d.join(f).display().to_string());
    let cases: Vec<Case> = vec![
        // DT_RPATH before the library path: a's libx.
        ("rpath", vec![libx_a.as_path()], rpath(a.to_str().unwrap()), ("libx.so.1", at(&a, "libx.so.1"))),
        // DT_RUNPATH after it: b's libx.
        ("runpath", vec![libx_a.as_path()], runpath(a.to_str().unwrap()), ("libx.so.1", at(&b, "libx.so.1"))),
        // $ORIGIN, and a dependency found through its loader's DT_RPATH.
        (
            "origin",
            vec![liby.as_path()],
            rpath(&format!("$ORIGIN/o:{}", c.display())),
            ("libz-order.so.1", at(&c, "libz-order.so.1")),
        ),
        // A dependency with a DT_RUNPATH of its own does not get it: libz is missing.
        (
            "own-runpath",
            vec![liby_runpath.as_path()],
            rpath(&format!("$ORIGIN/r:{}", c.display())),
            ("libz-order.so.1", None),
        ),
    ];
    for (name, needs, flags, (library, expected)) in cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let program = host(&dir, name, &needs, &flags);
        let (by_loader, by_doctor) = (loader_trace(&program, &env), doctor_trace(&program, &env));
        assert!(by_loader.contains(&(library.to_string(), expected.clone())), "{name}: {by_loader:?}");
        assert_eq!(by_doctor, by_loader, "{name}: the doctor and ld.so disagree");
    }
}

/// Every ELF file under `dir`.
fn elf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let (path, kind) = (entry.path(), entry.file_type().unwrap());
        if kind.is_dir() {
            elf_files(&path, out);
        } else if kind.is_file() && std::fs::read(&path).unwrap_or_default().starts_with(b"\x7fELF") {
            out.push(path);
        }
    }
}

#[test]
fn root_a_python_build_with_its_lib_dynload_starts_after_one_round_in_a_nixos_root() {
    require_root();
    let dir = scratch("doctor-python-root");
    // The machine's own Python and its extension modules: software nobody here wrote.
    // (`python3` on PATH may be a wrapper script: the interpreter says where it really is.)
    let where_ =
        "import os, sys, sysconfig; print(os.path.realpath(sys.executable)); print(sysconfig.get_paths()['stdlib'])";
    let answer = Command::new(on_path("python3")).args(["-c", where_]).output().unwrap();
    let answer = stdout(&answer);
    let mut lines = answer.lines();
    let (python, stdlib) = (PathBuf::from(lines.next().unwrap()), PathBuf::from(lines.next().unwrap()));
    let version = stdlib.file_name().unwrap().to_string_lossy().into_owned();
    let sh = on_path("dash");
    let mut objects = vec![doctor(), python.clone(), sh.clone()];
    // The extension modules of lib-dynload and of whatever else this Python has installed.
    elf_files(&stdlib, &mut objects);
    let root = crate::nixos_root::NixosRoot::build(&dir.join("root"), &objects, &[]).unwrap();
    // The library set holds glibc alone: every other library is in the store only.
    for entry in std::fs::read_dir(root.host_path(&root.set)).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let glibc = ["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "ld.so"];
        if !glibc.iter().any(|g| name.starts_with(g)) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    root.install_shim(&shim()).unwrap();
    root.install(&sh, "/bin/sh").unwrap();
    root.install(&python, "/opt/python/bin/python3").unwrap();
    let lib = root.host_path(Path::new("/opt/python/lib"));
    std::fs::create_dir_all(&lib).unwrap();
    let copied = Command::new("cp").arg("-a").arg(&stdlib).arg(lib.join(&version)).status().unwrap();
    assert!(copied.success());
    root.install_from_the_store(&doctor(), "/opt/doctor/bin/nix-ld-doctor").unwrap();
    let check = "import ssl, sqlite3, ctypes, lzma, bz2, zlib, decimal, hashlib; print('python works')";

    let before = root.chroot(&["/opt/python/bin/python3", "-c", check], &[]).unwrap();
    assert_eq!(before.status.code(), Some(127), "{}", stderr(&before));

    let out = root.chroot(&["/opt/doctor/bin/nix-ld-doctor", "/opt/python"], &[]).unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("what: a directory of "), "{text}");
    let export = line_starting(&text, "export NIX_LD_LIBRARY_PATH=");
    let value = export.strip_prefix("export NIX_LD_LIBRARY_PATH=").unwrap();
    let after = root
        .chroot(&["/bin/sh", "-c", &format!("{export}; exec /opt/python/bin/python3 -c \"{check}\"")], &[])
        .unwrap();
    assert_eq!(stdout(&after), "python works\n", "{}", stderr(&after));
    // One round: with that path the doctor finds nothing more.
    let again =
        root.chroot(&["/opt/doctor/bin/nix-ld-doctor", "/opt/python"], &[("NIX_LD_LIBRARY_PATH", value)]).unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
