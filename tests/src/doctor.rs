//! nix-ld-doctor on real programs: a library in a store directory but not in the set (then the
//! setting it suggests, applied), a missing dependency of a dependency, a glibc symbol version
//! the loader's glibc lacks, a static program, a script with a missing interpreter, a missing
//! file, a bad NIX_LD, a fake nix-locate.
//! The store is a directory of `<hash>-<name>-<version>` entries made here (NIX_LD_DOCTOR_STORE).
//! As root, the libcrypt case also runs in a NixOS-like root (chroot), the doctor started by the
//! store's loader as the Nix package installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::nixos_root::{self, NixosRoot, LIBXCRYPT};
use crate::support::*;

const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn doctor() -> PathBuf {
    env_path("NIX_LD_TEST_DOCTOR")
}

struct Store {
    dir: PathBuf,
    store: PathBuf,
    set: PathBuf,
}

/// A store with `libgreet` (greet.c) and `libwave` (a library that needs libgreet), and an empty
/// library set.
fn store(test: &str) -> Store {
    let dir = scratch(test);
    let store = dir.join("store");
    let set = dir.join("set");
    std::fs::create_dir_all(&set).unwrap();
    let lib = |name: &str, version: &str| {
        let d = store.join(format!("{HASH}-{name}-{version}/lib"));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let greet = lib("libgreet", "1.2");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(greet.join("libgreet.so"))
        .arg(fixtures().join("greet.c"))
        .status()
        .unwrap();
    assert!(status.success());
    // Not an attribute: a -minimal build of the same library.
    let minimal = lib("libgreet-minimal", "1.2");
    std::fs::copy(greet.join("libgreet.so"), minimal.join("libgreet.so")).unwrap();
    let wave = lib("libwave", "0.3");
    std::fs::write(dir.join("wave.c"), "extern void greet(void); void wave(void) { greet(); }\n").unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(wave.join("libwave.so"))
        .arg(dir.join("wave.c"))
        .arg(format!("-L{}", greet.display()))
        .arg("-lgreet")
        .status()
        .unwrap();
    assert!(status.success());
    Store { dir, store, set }
}

/// The doctor's text with its line breaks and indentation taken out: it wraps at 80 columns.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run_doctor(s: &Store, args: &[&str], env: &[(&str, &str)]) -> Output {
    let loader = system_loader();
    let mut cmd = Command::new(doctor());
    cmd.args(args)
        .env_clear()
        .env("NIX_LD", &loader)
        .env("NIX_LD_LIBRARY_PATH", &s.set)
        .env("NIX_LD_DOCTOR_STORE", &s.store);
    // PATH holds no nix-locate unless a test puts one there.
    cmd.env("PATH", s.dir.join("bin"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Compiles C `source` into `dir/name`, a program whose interpreter is the shim, with `link`'s
/// arguments.
fn through_the_shim(dir: &Path, name: &str, source: &str, link: &[String]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let prog = dir.join(name);
    let status = Command::new("cc")
        .arg("-o")
        .arg(&prog)
        .arg(&c)
        .args(link)
        .arg(format!("-Wl,--dynamic-linker={}", shim().display()))
        .status()
        .unwrap();
    assert!(status.success(), "cc {name}.c failed");
    prog
}

#[test]
fn a_library_in_the_store_but_not_in_the_set_is_named_with_its_fix_and_the_fix_works() {
    let s = store("doctor-missing");
    let greet_dir = s.store.join(format!("{HASH}-libgreet-1.2/lib"));
    let prog = needs_greet(&s.dir, &greet_dir, &shim());
    // The program does not start through the shim as things are.
    let loader = system_loader();
    let before =
        run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", s.set.to_str().unwrap())]);
    assert_eq!(before.status.code(), Some(127), "{}", stderr(&before));

    let out = run_doctor(&s, &[prog.to_str().unwrap()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let flat = flat(&text);
    assert!(flat.contains("problem: 1 missing library; the store has 1, in 1 directory:"), "{text}");
    assert!(text.contains(&format!("  libgreet: {}\n", greet_dir.display())), "{text}");
    assert!(flat.contains(&format!("libgreet.so (needed by {})", prog.display())), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ libgreet ];"), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld-shim.libraries = with pkgs; [ libgreet ];"), "{text}");
    let one_run = format!("NIX_LD_LIBRARY_PATH={}:{} {}", s.set.display(), greet_dir.display(), prog.display());
    assert!(text.lines().any(|l| l == one_run), "{text}");
    assert!(text.lines().all(|l| l.len() <= 80 || l.contains('/')), "lines fit 80 columns but for paths:\n{text}");

    // The suggested setting, applied: the doctor finds nothing and the program runs.
    let nix = format!("{}:{}", s.set.display(), greet_dir.display());
    let out = run_doctor(&s, &[prog.to_str().unwrap()], &[("NIX_LD_LIBRARY_PATH", &nix)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("Nothing found that stops it."));
    let after = run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", &nix)]);
    assert_eq!(stdout(&after), "greetings from libgreet\n", "{}", stderr(&after));
}

#[test]
fn a_missing_dependency_of_a_dependency_names_the_library_that_needs_it() {
    let s = store("doctor-dependency");
    let wave_dir = s.store.join(format!("{HASH}-libwave-0.3/lib"));
    let greet_dir = s.store.join(format!("{HASH}-libgreet-1.2/lib"));
    let source = "extern void wave(void); int main(void) { wave(); return 0; }\n";
    let link =
        [format!("-L{}", wave_dir.display()), "-lwave".into(), format!("-Wl,-rpath-link,{}", greet_dir.display())];
    let prog = through_the_shim(&s.dir, "prog", source, &link);
    let nix = format!("{}:{}", s.set.display(), wave_dir.display());
    let out = run_doctor(&s, &[prog.to_str().unwrap()], &[("NIX_LD_LIBRARY_PATH", &nix)]);
    let text = flat(&stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("libgreet.so (needed by {})", wave_dir.join("libwave.so").display())), "{text}");
    let json = stdout(&run_doctor(&s, &["--json", prog.to_str().unwrap()], &[("NIX_LD_LIBRARY_PATH", &nix)]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(json["schema_version"], 2, "{json}");
    assert_eq!(json["missing"][0]["library"], "libgreet.so", "{json}");
    assert_eq!(json["missing"][0]["needed_by"], serde_json::json!([wave_dir.join("libwave.so")]), "{json}");
    assert!(json["examined"].as_array().unwrap().iter().any(|o| o == prog.to_str().unwrap()), "{json}");
}

/// What the C runtime's start files call, and one function at a glibc version no glibc has: a
/// stand-in for a newer glibc's libc.so.6 at link time.
const NEWER_GLIBC: &str =
    "void __libc_start_main(void) {}\nvoid __cxa_finalize(void) {}\nvoid nix_ld_from_the_future(void) {}\n";
const NEWER_GLIBC_VERSIONS: &str = "GLIBC_2.2.5 { global: __cxa_finalize; local: *; };\nGLIBC_2.34 { global: __libc_start_main; };\nGLIBC_2.99 { global: nix_ld_from_the_future; };\n";

/// The glibc version of a loader, from its own `--version` line ("... release version 2.36.").
fn glibc_version_of(loader: &Path) -> String {
    let out = Command::new(loader).arg("--version").output().unwrap();
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    let version = first.split("release version ").nth(1).unwrap_or_else(|| panic!("no version in {first:?}"));
    version.trim_end_matches('.').to_string()
}

#[test]
fn a_glibc_symbol_version_the_loader_lacks_is_named_with_the_glibc_it_has() {
    let s = store("doctor-symbol-version");
    // Linked against a libc.so.6 that has GLIBC_2.99, then run with the machine's real one.
    let newer = s.dir.join("newer-glibc");
    std::fs::create_dir_all(&newer).unwrap();
    std::fs::write(newer.join("libc.c"), NEWER_GLIBC).unwrap();
    std::fs::write(newer.join("libc.map"), NEWER_GLIBC_VERSIONS).unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libc.so.6", "-o"])
        .arg(newer.join("libc.so"))
        .arg(newer.join("libc.c"))
        .arg(format!("-Wl,--version-script={}", newer.join("libc.map").display()))
        .status()
        .unwrap();
    assert!(status.success());
    let source = "void nix_ld_from_the_future(void);\nint main(void) { nix_ld_from_the_future(); return 0; }\n";
    let prog = through_the_shim(&s.dir, "future", source, &[format!("-L{}", newer.display())]);
    // Started through the shim, ld.so refuses it.
    let loader = system_loader();
    let started = run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap())]);
    assert!(stderr(&started).contains("version `GLIBC_2.99' not found"), "{}", stderr(&started));

    let out = run_doctor(&s, &[prog.to_str().unwrap()], &[]);
    let text = flat(&stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let glibc = glibc_version_of(&loader);
    assert!(text.contains("problem: GLIBC_2.99 is not found in /"), "{text}");
    assert!(
        text.contains(&format!("libc.so.6 (needed by {}); the loader's glibc is {glibc}", prog.display())),
        "{text}"
    );
    assert_eq!(text.matches("problem:").count(), 1, "only GLIBC_2.99 is missing:\n{text}");
    let json = stdout(&run_doctor(&s, &["--json", prog.to_str().unwrap()], &[]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(json["glibc"], glibc.as_str(), "{json}");
    assert_eq!(json["problems"][0]["kind"], "missing-symbol-version", "{json}");
    assert_eq!(json["problems"][0]["version"], "GLIBC_2.99", "{json}");
}

#[test]
fn nix_locate_confirms_the_attribute() {
    let s = store("doctor-nix-locate");
    let greet_dir = s.store.join(format!("{HASH}-libgreet-1.2/lib"));
    let prog = needs_greet(&s.dir, &greet_dir, &shim());
    let bin = s.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // A stand-in for nix-index's nix-locate, asked once for every missing library with a regex:
    // nix-locate's line for the file (attribute and output, size, type, path).
    let line = format!("libgreet.out 16,000 r {}", greet_dir.join("libgreet.so").display());
    std::fs::write(
        bin.join("nix-locate"),
        format!("#!/bin/sh\ncase \"$*\" in *--regex*'/lib/(libgreet\\.so)$'*) echo '{line}' ;; esac\n"),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("nix-locate"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let text = stdout(&run_doctor(&s, &[prog.to_str().unwrap()], &[]));
    let flat = flat(&text);
    assert!(flat.contains(&format!("libgreet (confirmed by nix-locate): {}", greet_dir.display())), "{text}");
}

#[test]
fn what_is_not_the_shims_case_is_said_in_words() {
    let s = store("doctor-kinds");
    // A static program needs no loader.
    let stat = static_program(&s.dir, "static", false);
    let out = run_doctor(&s, &[stat.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("it needs no loader and no libraries"), "{}", stdout(&out));
    // A script whose interpreter does not exist.
    let script = s.dir.join("script");
    std::fs::write(&script, "#!/nonexistent/bin/bash -e\necho hi\n").unwrap();
    let out = run_doctor(&s, &[script.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = flat(&stdout(&out));
    assert!(text.contains("problem: its interpreter /nonexistent/bin/bash does not exist here"), "{text}");
    assert!(text.contains("fix: start the script with #!/usr/bin/env bash"), "{text}");
    // A missing file, and one that is no program: the doctor cannot inspect them.
    let out = run_doctor(&s, &[s.dir.join("nothing-here").to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("nix-ld-doctor: cannot examine {}: it does not exist\n", s.dir.join("nothing-here").display())
    );
    std::fs::write(s.dir.join("text"), "just text\n").unwrap();
    let out = run_doctor(&s, &[s.dir.join("text").to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("it is neither an ELF program or library nor a #! script"), "{}", stderr(&out));
}

#[test]
fn a_bad_nix_ld_gets_the_shims_own_message_and_hint() {
    let s = store("doctor-bad-loader");
    let prog = compile(&s.dir, "hello.c", "hello", &shim(), &[]);
    let out = run_doctor(&s, &[prog.to_str().unwrap()], &[("NIX_LD", "/nonexistent/ld.so")]);
    let text = flat(&stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("problem: the loader the shim would use, /nonexistent/ld.so (from NIX_LD), does not exist"),
        "{text}"
    );
    assert!(text.contains("fix: fix NIX_LD, or unset it to use the compiled-in default"), "{text}");
    // And the shim says the same when the program is started.
    let started = run_with(&prog, &[], &[("NIX_LD", "/nonexistent/ld.so")]);
    assert!(stderr(&started).contains("loader /nonexistent/ld.so does not exist"), "{}", stderr(&started));
}

#[test]
fn host_32_bit_and_musl_programs_are_explained() {
    let s = store("doctor-foreign");
    let m32 = s.dir.join("hello32");
    let status = Command::new("cc").args(["-m32", "-o"]).arg(&m32).arg(fixtures().join("hello.c")).status().unwrap();
    assert!(status.success(), "cc -m32 needs gcc-multilib (.ci/run installs it)");
    let text = flat(&stdout(&run_doctor(&s, &[m32.to_str().unwrap()], &[])));
    // Here /lib/ld-linux.so.2 is glibc's own (libc6-i386): the advice installs the 32-bit shim
    // (doctor32.rs has the programs that go through it).
    assert!(
        text.contains("problem: a 32-bit x86 program, and at its loader /lib/ld-linux.so.2 it is glibc's own 32-bit loader, not nix-ld"),
        "{text}"
    );
    for option in [
        "programs.nix-ld-shim.enable = true;",
        "programs.nix-ld-shim.package32",
        "programs.nix-ld-shim.libraries32 = with pkgs.pkgsi686Linux;",
        "libraryDirectories32",
        "steam-run PROGRAM",
    ] {
        assert!(text.contains(option), "{option}: {text}");
    }
    let musl = s.dir.join("hello-musl");
    let status = Command::new(on_path("musl-gcc"))
        .arg("-o")
        .arg(&musl)
        .arg(fixtures().join("hello.c"))
        .arg("-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1")
        .status()
        .unwrap();
    assert!(status.success(), "musl-gcc needs musl-tools (.ci/run installs it)");
    let text = flat(&stdout(&run_doctor(&s, &[musl.to_str().unwrap()], &[])));
    assert!(
        text.contains("problem: a musl program (/lib/ld-musl-x86_64.so.1): nix-ld serves glibc programs only"),
        "{text}"
    );
}

#[test]
fn root_in_a_nixos_root_the_doctor_names_libxcrypt_and_its_one_off_line_makes_the_program_run() {
    require_root();
    let dir = scratch("doctor-nixos-root");
    let needs_crypt = dir.join("needs-crypt");
    let status = Command::new("cc")
        .arg("-o")
        .arg(&needs_crypt)
        .arg(fixtures().join("needs_crypt.c"))
        .arg("-lcrypt")
        .status()
        .unwrap();
    assert!(status.success(), "cc -lcrypt needs libcrypt-dev");
    let sh = PathBuf::from("/bin/dash");
    let root = NixosRoot::build(&dir.join("root"), &[doctor(), needs_crypt.clone(), sh.clone()], &[LIBXCRYPT]).unwrap();
    root.install_shim(&shim()).unwrap();
    // NixOS has /bin/sh; here a foreign one, started through the shim.
    root.install(&sh, "/bin/sh").unwrap();
    root.install(&needs_crypt, "/opt/foreign/bin/needs-crypt").unwrap();
    let installed =
        root.install_from_the_store(&doctor(), "/opt/doctor/bin/nix-ld-doctor").unwrap_or_else(|e| panic!("{e}"));
    let interpreter = Command::new(on_path("patchelf")).arg("--print-interpreter").arg(&installed).output().unwrap();
    assert_eq!(stdout(&interpreter).trim_end(), root.loader.to_str().unwrap(), "the doctor starts without the shim");
    assert!(root.loader.starts_with("/nix/store"), "{}", root.loader.display());
    let env = [("PATH", "/opt/foreign/bin")];

    // The program does not start: libcrypt.so.1 is in the store, not in the library set.
    let before = root.chroot(&["/opt/foreign/bin/needs-crypt"], &env).unwrap();
    assert_eq!(before.status.code(), Some(127), "{}", stderr(&before));
    assert!(stderr(&before).contains("libcrypt.so.1: cannot open shared object file"), "{}", stderr(&before));

    let out = root.chroot(&["/opt/doctor/bin/nix-ld-doctor", "/opt/foreign/bin/needs-crypt"], &env).unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let flat = flat(&text);
    let store_dir = nixos_root::store_dir(LIBXCRYPT);
    assert!(store_dir.display().to_string().ends_with("-libxcrypt-4.4.33/lib"), "{}", store_dir.display());
    assert!(
        flat.contains("loader: /run/current-system/sw/share/nix-ld/lib/ld.so (from the compiled-in default), glibc"),
        "{text}"
    );
    assert!(flat.contains("libcrypt.so.1 (needed by /opt/foreign/bin/needs-crypt)"), "{text}");
    assert!(text.contains(&format!("  libxcrypt: {}\n", store_dir.display())), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld.libraries = with pkgs; [ libxcrypt ];"), "{text}");
    assert!(text.lines().any(|l| l == "programs.nix-ld-shim.libraries = with pkgs; [ libxcrypt ];"), "{text}");

    // The one-off line, as printed, run by a shell in the root.
    let line = text.lines().find(|l| l.starts_with("NIX_LD_LIBRARY_PATH=")).unwrap_or_else(|| panic!("{text}"));
    let (setting, program) = line.split_once(' ').unwrap();
    let value = setting.strip_prefix("NIX_LD_LIBRARY_PATH=").unwrap();
    assert_eq!(value, format!("/run/current-system/sw/share/nix-ld/lib:{}", store_dir.display()), "{text}");
    assert_eq!(program, "/opt/foreign/bin/needs-crypt");
    let after = root.chroot(&["/bin/sh", "-c", line], &env).unwrap();
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
    assert!(stdout(&after).starts_with("crypt works: $6$salt$"), "{}", stdout(&after));
}
