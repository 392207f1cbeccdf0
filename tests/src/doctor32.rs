//! nix-ld-doctor on 32-bit x86 programs with the 32-bit shim installed at `/lib/ld-linux.so.2`:
//! the built i686 shim bind-mounted over that path (over the file it links to) in a mount
//! namespace of each command's own, so nothing outside it changes. Root only (`root_*`).
//! Each case runs the program through the shim too, so the doctor's answer is held against the
//! shim's behaviour, and its one-off line is run as printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

const HASH64: &str = "0123456789abcdfghijklmnpqrsvwxyz";
const HASH32: &str = "1123456789abcdfghijklmnpqrsvwxyz";
const LD_LINUX_SO_2: &str = "/lib/ld-linux.so.2";

/// The i686 shim with NixOS's defaults (`cargo xtask test` builds it).
fn shim32() -> PathBuf {
    env_path("NIX_LD_TEST_SHIM_I686_UNKNOWN_LINUX_GNU")
}

/// Runs `args` with exactly `env`, in a mount namespace of its own where `/lib/ld-linux.so.2`
/// is `over`.
fn with_ld_linux_so_2(over: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mount = on_path("mount");
    let script =
        format!("{m} --make-rprivate / && {m} --bind \"$0\" {LD_LINUX_SO_2} && exec \"$@\"", m = mount.display());
    let mut cmd = Command::new(on_path("unshare"));
    cmd.args(["--mount", "/bin/sh", "-c", &script]).arg(over).args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
    assert!(!stderr(&out).contains("mount:"), "the bind mount failed: {}", stderr(&out));
    out
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Case {
    dir: PathBuf,
    store: PathBuf,
    /// The 32-bit store directory with libgreet.
    greet32: PathBuf,
    /// A 32-bit program that needs libgreet.so, with no RUNPATH, loader /lib/ld-linux.so.2.
    program: PathBuf,
    /// glibc's 32-bit loader, copied out from under the bind mount.
    loader32: PathBuf,
    set64: PathBuf,
    set32: PathBuf,
}

/// A store with libgreet built for x86-64 and for i386 (same name and version: only the machine
/// tells them apart), a 32-bit program that needs it, and empty library sets.
fn case(test: &str) -> Case {
    assert!(Path::new(LD_LINUX_SO_2).exists(), "{LD_LINUX_SO_2} is missing: .ci/run installs libc6-i386");
    let dir = scratch(test);
    let store = dir.join("store");
    let greet64 = store.join(format!("{HASH64}-libgreet-1.2/lib"));
    let greet32 = store.join(format!("{HASH32}-libgreet-1.2/lib"));
    let (set64, set32) = (dir.join("set"), dir.join("set32"));
    for d in [&greet64, &greet32, &set64, &set32] {
        std::fs::create_dir_all(d).unwrap();
    }
    let cc = |args: &[&str]| {
        let out = Command::new("cc").args(args).output().unwrap();
        assert!(out.status.success(), "cc {args:?}: {} (cc -m32 needs gcc-multilib)", stderr(&out));
    };
    let greet = fixtures().join("greet.c");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    cc(&["-shared", "-fPIC", "-o", &s(&greet64.join("libgreet.so")), &s(&greet)]);
    cc(&["-m32", "-shared", "-fPIC", "-o", &s(&greet32.join("libgreet.so")), &s(&greet)]);
    let program = dir.join("greet32");
    let l = format!("-L{}", greet32.display());
    cc(&["-m32", "-o", &s(&program), &s(&fixtures().join("needs_greet.c")), &l, "-lgreet"]);
    let loader32 = dir.join("ld-linux.so.2");
    std::fs::copy(LD_LINUX_SO_2, &loader32).unwrap();
    Case { dir, store, greet32, program, loader32, set64, set32 }
}

impl Case {
    /// The environment of an x86-64 NixOS with this project's module, as far as these tests
    /// need: the plain names for the 64-bit shim, the i686 ones for the 32-bit shim.
    fn root_nixos_env(&self) -> Vec<(&str, String)> {
        vec![
            ("NIX_LD", "/lib64/ld-linux-x86-64.so.2".into()),
            ("NIX_LD_LIBRARY_PATH", self.set64.display().to_string()),
            ("NIX_LD_i686_linux", self.loader32.display().to_string()),
            ("NIX_LD_LIBRARY_PATH_i686_linux", self.set32.display().to_string()),
            ("NIX_LD_DOCTOR_STORE", self.store.display().to_string()),
            ("PATH", self.dir.join("bin").display().to_string()),
        ]
    }
}

fn borrow<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn root_a_32_bit_program_through_the_32_bit_shim_is_examined_for_its_loader_and_the_fix_makes_it_run() {
    require_root();
    let c = case("doctor32-covered");
    let env = c.root_nixos_env();
    let env = borrow(&env);
    let prog = c.program.to_str().unwrap();

    // Through the 32-bit shim, the program does not start as things are.
    let before = with_ld_linux_so_2(&shim32(), &[prog], &env);
    assert_eq!(before.status.code(), Some(127), "{}", stderr(&before));
    assert!(stderr(&before).contains("libgreet.so: cannot open shared object file"), "{}", stderr(&before));

    let doctor = env_path("NIX_LD_TEST_DOCTOR");
    let out = with_ld_linux_so_2(&shim32(), &[doctor.to_str().unwrap(), prog], &env);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let flat = flat(&text);
    assert!(!flat.contains("x86-64 programs only"), "{text}");
    assert!(flat.contains("its loader /lib/ld-linux.so.2 is the 32-bit nix-ld shim (nix-ld "), "{text}");
    assert!(flat.contains(&format!("loader: {} (from NIX_LD_i686_linux)", c.loader32.display())), "{text}");
    assert!(flat.contains(&format!("library path: {} (from NIX_LD_LIBRARY_PATH_i686_linux)", c.set32.display())));
    // The 32-bit build of libgreet, not the x86-64 one of the same name and version.
    assert!(text.contains(&format!("  libgreet: {}\n", c.greet32.display())), "{text}");
    assert!(
        text.lines().any(|l| l == "programs.nix-ld-shim.libraries32 = with pkgs.pkgsi686Linux; [ libgreet ];"),
        "{text}"
    );
    assert!(!text.contains("programs.nix-ld.libraries"), "nixpkgs' module has no 32-bit set:\n{text}");
    let one_off = format!("NIX_LD_LIBRARY_PATH_i686_linux={}:{} {prog}", c.set32.display(), c.greet32.display());
    assert!(text.lines().any(|l| l == one_off), "{text}");

    // The one-off line, as printed, run by a shell: the program starts through the 32-bit shim.
    let after = with_ld_linux_so_2(&shim32(), &["/bin/sh", "-c", &one_off], &env);
    assert_eq!(stdout(&after), "greetings from libgreet\n", "{}", stderr(&after));
    // And the doctor now finds nothing.
    let fixed = format!("{}:{}", c.set32.display(), c.greet32.display());
    let mut env2 = env.clone();
    env2.retain(|(k, _)| *k != "NIX_LD_LIBRARY_PATH_i686_linux");
    env2.push(("NIX_LD_LIBRARY_PATH_i686_linux", &fixed));
    let out = with_ld_linux_so_2(&shim32(), &[doctor.to_str().unwrap(), prog], &env2);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn root_the_doctor_and_its_status_say_the_32_bit_shim_passes_over_a_plain_64_bit_loader() {
    require_root();
    let c = case("doctor32-passed-over");
    let env = c.root_nixos_env();
    let mut env = borrow(&env);
    // Only the plain names, which name the 64-bit loader.
    env.retain(|(k, _)| !k.ends_with("_i686_linux"));
    let prog = c.program.to_str().unwrap();
    let default32 = "/run/current-system/sw/share/nix-ld32/lib/ld.so";

    // The shim passes NIX_LD over and tries its compiled-in loader, which is not here.
    let run = with_ld_linux_so_2(&shim32(), &[prog], &env);
    assert!(stderr(&run).contains(&format!("loader {default32} does not exist")), "{}", stderr(&run));

    let doctor = env_path("NIX_LD_TEST_DOCTOR");
    let out = with_ld_linux_so_2(&shim32(), &[doctor.to_str().unwrap(), prog], &env);
    let flat_text = flat(&stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{flat_text}");
    assert!(
        flat_text.contains("NIX_LD names /lib64/ld-linux-x86-64.so.2, which is not a 32-bit i386 ELF file (it is x86-64): the shim passes it over"),
        "{flat_text}"
    );
    assert!(
        flat_text.contains(&format!(
            "loader the shim would use, {default32} (from the compiled-in default), does not exist"
        )),
        "{flat_text}"
    );
    assert!(flat_text.contains("set NIX_LD_i686_linux to glibc's 32-bit ld-linux.so.2"), "{flat_text}");

    let status = with_ld_linux_so_2(&shim32(), &[doctor.to_str().unwrap(), "--status"], &env);
    let flat_status = flat(&stdout(&status));
    assert!(flat_status.contains("/lib/ld-linux.so.2: nix-ld "), "{flat_status}");
    assert!(flat_status.contains("passed over: NIX_LD names /lib64/ld-linux-x86-64.so.2"), "{flat_status}");
    assert!(
        flat_status.contains(&format!("here it would use: loader {default32} (from the compiled-in default)")),
        "{flat_status}"
    );

    // With its own names set, --status gives them.
    let own = [
        ("NIX_LD_i686_linux", c.loader32.to_str().unwrap()),
        ("NIX_LD_LIBRARY_PATH_i686_linux", c.set32.to_str().unwrap()),
    ];
    env.extend(own);
    let status = with_ld_linux_so_2(&shim32(), &[doctor.to_str().unwrap(), "--status"], &env);
    let flat_status = flat(&stdout(&status));
    assert!(
        flat_status.contains(&format!("here it would use: loader {} (from NIX_LD_i686_linux)", c.loader32.display())),
        "{flat_status}"
    );
    assert!(
        flat_status.contains(&format!("and library path: {} (from NIX_LD_LIBRARY_PATH_i686_linux)", c.set32.display())),
        "{flat_status}"
    );
    assert!(!flat_status.contains("passed over"), "{flat_status}");
}

#[test]
fn root_a_loader_with_no_version_record_at_ld_linux_so_2_gets_the_modules_options() {
    require_root();
    let c = case("doctor32-other");
    let env = c.root_nixos_env();
    let env = borrow(&env);
    // A 32-bit ELF program with no version record stands in for nixpkgs' nix-ld.
    let doctor = env_path("NIX_LD_TEST_DOCTOR");
    let out = with_ld_linux_so_2(&c.program, &[doctor.to_str().unwrap(), c.program.to_str().unwrap()], &env);
    let text = flat(&stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("it is a loader with no nix-ld version record"), "{text}");
    for option in [
        "programs.nix-ld-shim.package32",
        "programs.nix-ld-shim.libraries32",
        "libraryDirectories32",
        "environment.ldso32",
        "steam-run PROGRAM",
    ] {
        assert!(text.contains(option), "{option}: {text}");
    }
}
