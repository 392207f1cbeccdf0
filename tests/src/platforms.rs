//! The shims for the other platforms: aarch64 and riscv64 under qemu-user (run explicitly, with
//! Debian's cross glibc; there is no binfmt_misc here), i686 natively (gcc -m32, libc6-i386).
//!
//! A program started through the shim must behave exactly as the same program started by the
//! real loader directly, under the same qemu with the same environment: qemu-user hands the guest
//! its environment in its own order, so the direct start is the reference, not the list given.
//! qemu-user never sets AT_SECURE, so the setuid rules are tested natively only (x86-64 in
//! `privilege`, i686 here).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

/// One platform: its shims and how to build and run its programs.
struct Platform {
    triple: &'static str,
    /// nixpkgs' system name, as in `NIX_LD_<system>`.
    system: &'static str,
    /// What the shim's messages call a loader of this platform.
    name: &'static str,
    cc: &'static str,
    cflags: &'static [&'static str],
    /// The emulator that runs its programs, or none (native).
    runner: Option<&'static str>,
    /// Its glibc loader and the directory of its libc.
    loader: &'static str,
    libdir: &'static str,
}

const AARCH64: Platform = Platform {
    triple: "aarch64-unknown-linux-gnu",
    system: "aarch64_linux",
    name: "a 64-bit AArch64 ELF file",
    cc: "aarch64-linux-gnu-gcc",
    cflags: &[],
    runner: Some("qemu-aarch64"),
    loader: "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1",
    libdir: "/usr/aarch64-linux-gnu/lib",
};
const RISCV64: Platform = Platform {
    triple: "riscv64gc-unknown-linux-gnu",
    system: "riscv64_linux",
    name: "a 64-bit RISC-V ELF file",
    cc: "riscv64-linux-gnu-gcc",
    cflags: &[],
    runner: Some("qemu-riscv64"),
    loader: "/usr/riscv64-linux-gnu/lib/ld-linux-riscv64-lp64d.so.1",
    libdir: "/usr/riscv64-linux-gnu/lib",
};
const I686: Platform = Platform {
    triple: "i686-unknown-linux-gnu",
    system: "i686_linux",
    name: "a 32-bit i386 ELF file",
    cc: "gcc",
    cflags: &["-m32"],
    runner: None,
    loader: "/lib/ld-linux.so.2",
    libdir: "/lib32",
};

/// The x86-64 loader: another platform's, for every shim here.
const HOST_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

impl Platform {
    fn key(&self) -> String {
        self.triple.to_uppercase().replace('-', "_")
    }

    /// The shim with NixOS's defaults (`cargo xtask test` passes it).
    fn shim(&self) -> PathBuf {
        env_path(&format!("NIX_LD_TEST_SHIM_{}", self.key()))
    }

    /// The shim whose compiled-in defaults are `defaults_dir()/ld.so` and `defaults_dir()/lib`.
    fn defaults_shim(&self) -> PathBuf {
        env_path(&format!("NIX_LD_TEST_DEFAULTS_SHIM_{}", self.key()))
    }

    fn defaults_dir(&self) -> PathBuf {
        env_path(&format!("NIX_LD_TEST_DEFAULTS_DIR_{}", self.key()))
    }

    /// Points the defaults at this platform's loader and at `lib`.
    fn install_defaults(&self, lib: &Path) {
        let dir = self.defaults_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(self.loader, dir.join("ld.so")).unwrap();
        std::os::unix::fs::symlink(lib, dir.join("lib")).unwrap();
    }

    fn tools_present(&self) {
        for tool in [Some(self.cc), self.runner].into_iter().flatten() {
            assert!(which(tool).is_some(), "{tool} is missing: .ci/run installs it ({})", self.triple);
        }
        assert!(Path::new(self.loader).exists(), "{} is missing: .ci/run installs this platform's glibc", self.loader);
    }

    /// Compiles C `sources` into `dir/name` with `interpreter`; libc is found by RPATH, so every
    /// start finds it whatever its environment.
    fn compile(&self, dir: &Path, sources: &[PathBuf], name: &str, interpreter: &Path, extra: &[String]) -> PathBuf {
        let out = dir.join(name);
        let mut cmd = Command::new(self.cc);
        cmd.args(self.cflags).arg("-O1").arg("-o").arg(&out).args(sources);
        cmd.arg(format!("-Wl,--dynamic-linker={}", interpreter.display()));
        cmd.arg(format!("-Wl,-rpath,{}", self.libdir)).arg("-Wl,--disable-new-dtags");
        cmd.args(extra);
        let result = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cc));
        assert!(result.status.success(), "{cmd:?}:\n{}", String::from_utf8_lossy(&result.stderr));
        out
    }

    fn shared_library(&self, dir: &Path, source: &str, name: &str, defines: &[&str]) -> PathBuf {
        let out = dir.join(name);
        let mut cmd = Command::new(self.cc);
        cmd.args(self.cflags).args(["-shared", "-fPIC", "-O1"]).args(defines).arg("-o").arg(&out);
        cmd.arg(fixtures().join(source));
        let result = cmd.output().unwrap();
        assert!(result.status.success(), "{cmd:?}:\n{}", String::from_utf8_lossy(&result.stderr));
        out
    }

    /// The command that runs `program` on this platform.
    fn command(&self, program: &Path) -> Command {
        match self.runner {
            Some(runner) => {
                let mut cmd = Command::new(runner);
                cmd.arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// Runs `program` with exactly `env`.
    fn run(&self, program: &Path, args: &[impl AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(program);
        cmd.args(args).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// The `--child` arguments that start `program` again as a child (through the emulator, whose
    /// full path the program's `execve` needs).
    fn child_args(&self, program: &Path) -> Vec<PathBuf> {
        let mut args = vec![PathBuf::from("--child")];
        args.extend(self.runner.map(|runner| which(runner).expect("the emulator is on PATH")));
        args.push(program.to_path_buf());
        args
    }

    fn loader_variable(&self) -> String {
        format!("NIX_LD_{}", self.system)
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The `platform_env` program twice: through `shim`, and directly with the real loader.
fn env_programs(p: &Platform, dir: &Path, shim: &Path) -> (PathBuf, PathBuf) {
    let source = [fixtures().join("platform_env.c")];
    let through = p.compile(dir, &source, "env-shim", shim, &[]);
    let direct = p.compile(dir, &source, "env-direct", Path::new(p.loader), &[]);
    (through, direct)
}

/// Runs both with `env` (and a child each) and checks that they print the same.
fn assert_same(p: &Platform, through: &Path, direct: &Path, env: &[(&str, &str)]) {
    let shim_out = p.run(through, &p.child_args(through), env);
    let direct_out = p.run(direct, &p.child_args(direct), env);
    assert!(direct_out.status.success(), "{}: the direct start failed: {}", p.triple, stderr(&direct_out));
    assert!(shim_out.status.success(), "{} {env:?}: {:?}\n{}", p.triple, shim_out.status, stderr(&shim_out));
    let (shim_env, direct_env) =
        (String::from_utf8_lossy(&shim_out.stdout), String::from_utf8_lossy(&direct_out.stdout));
    assert!(direct_env.contains('\u{1}'), "{}: no child output: {direct_env:?}", p.triple);
    assert_eq!(shim_env, direct_env, "{} {env:?}: the program or its child saw another environment", p.triple);
}

fn environment_cases(p: &Platform) {
    p.tools_present();
    let dir = scratch(&format!("platform-env-{}", p.triple));
    let (through, direct) = env_programs(p, &dir, &p.shim());
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let lib = lib.to_str().unwrap();
    let system = p.loader_variable();
    let cases: [Vec<(&str, &str)>; 5] = [
        vec![("NIX_LD", p.loader), ("A", "1")],
        vec![("NIX_LD", p.loader), ("LD_LIBRARY_PATH", "/nonexistent"), ("A", "1")],
        vec![("NIX_LD", p.loader), ("NIX_LD_LIBRARY_PATH", lib), ("A", "1")],
        vec![("A", "1"), ("LD_LIBRARY_PATH", "/nonexistent"), ("NIX_LD", p.loader), ("NIX_LD_LIBRARY_PATH", lib)],
        vec![(system.as_str(), p.loader), ("NIX_PATH", "nixpkgs=/x"), ("NIX_LD_LIBRARY_PATH", lib), ("B", "2")],
    ];
    for env in &cases {
        assert_same(p, &through, &direct, env);
    }
    // The counterpart: ld.so does get the library path (debug says what it sees).
    let out =
        p.run(&through, &[] as &[&str], &[("NIX_LD", p.loader), ("NIX_LD_LIBRARY_PATH", lib), ("NIX_LD_LOG", "debug")]);
    let sees = format!("nix-ld: ld.so sees LD_LIBRARY_PATH={lib}");
    assert!(stderr(&out).lines().any(|l| l == sees), "{}: {}", p.triple, stderr(&out));
}

/// `env -i`: nothing to borrow, so the entry for ld.so is appended and taken out again; the
/// defaults supply loader and libraries.
fn env_i_with_defaults(p: &Platform) {
    p.tools_present();
    let dir = scratch(&format!("platform-env-i-{}", p.triple));
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let _guard = defaults_lock();
    // First without the defaults: the shim says what is missing.
    let _ = std::fs::remove_dir_all(p.defaults_dir());
    let (through, direct) = env_programs(p, &dir, &p.defaults_shim());
    let out = p.run(&through, &[] as &[&str], &[]);
    assert_eq!(out.status.code(), Some(127), "{}: {}", p.triple, stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}: {}", p.triple, stderr(&out));
    p.install_defaults(&lib);
    assert_same(p, &through, &direct, &[]);
    assert_same(p, &through, &direct, &[("A", "1"), ("B", "2")]);
    let out = p.run(&through, &[] as &[&str], &[("NIX_LD_LOG", "debug")]);
    assert!(stderr(&out).contains(&format!("ld.so sees LD_LIBRARY_PATH={}", p.defaults_dir().join("lib").display())));
}

/// Library constructors that edit the environment: the program sees what a direct start shows.
fn constructors_edit_the_environment(p: &Platform) {
    p.tools_present();
    let dir = scratch(&format!("platform-ctor-{}", p.triple));
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let _guard = defaults_lock();
    p.install_defaults(&lib);
    p.shared_library(&dir, "envedit.c", "libenvedit_a.so", &["-DENVEDIT_VAR=\"ENVEDIT_A\""]);
    let source = [fixtures().join("platform_env.c")];
    let link = [format!("-L{}", dir.display()), "-lenvedit_a".into(), format!("-Wl,-rpath,{}", dir.display())];
    let through = p.compile(&dir, &source, "ctor-shim", &p.defaults_shim(), &link);
    let direct = p.compile(&dir, &source, "ctor-direct", Path::new(p.loader), &link);
    let lib = lib.to_str().unwrap();
    for edits in ["u A", "s NEW=1", "u A;s NEW=1;p P=2", "r;s NEW=1", "u A;u B;s C=3"] {
        for base in [
            vec![("A", "1"), ("B", "2")],
            vec![("A", "1"), ("NIX_LD", p.loader), ("NIX_LD_LIBRARY_PATH", lib), ("B", "2")],
            vec![("LD_LIBRARY_PATH", "/nonexistent"), ("A", "1"), ("B", "2")],
        ] {
            let mut env = base.clone();
            env.push(("ENVEDIT_A", edits));
            assert_same(p, &through, &direct, &env);
        }
    }
}

/// `NIX_LD_<system>` wins over `NIX_LD`; a missing loader is one line and status 127.
fn system_variables_and_a_missing_loader(p: &Platform) {
    p.tools_present();
    let dir = scratch(&format!("platform-system-{}", p.triple));
    let (through, _) = env_programs(p, &dir, &p.shim());
    let system = p.loader_variable();
    let out = p.run(&through, &[] as &[&str], &[("NIX_LD", "/nonexistent/ld.so")]);
    assert_eq!(out.status.code(), Some(127), "{}: {}", p.triple, stderr(&out));
    let line = format!("nix-ld: cannot run {}: loader /nonexistent/ld.so does not exist", through.display());
    assert!(stderr(&out).lines().any(|l| l == line), "{}: {}", p.triple, stderr(&out));
    let out =
        p.run(&through, &[] as &[&str], &[("NIX_LD", "/nonexistent/ld.so"), (system.as_str(), p.loader), ("A", "1")]);
    assert!(out.status.success(), "{}: {}", p.triple, stderr(&out));
    assert!(stdout(&out).contains("A=1"), "{}", stdout(&out));
}

/// The plain-name rule: a loader named by the plain `NIX_LD` for another platform is passed over
/// for the compiled-in default, with the plain library path; the system-specific name is this
/// platform's own, so a wrong loader there is an error.
fn plain_names_for_another_platform_are_passed_over(p: &Platform) {
    p.tools_present();
    let dir = scratch(&format!("platform-plain-{}", p.triple));
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let _guard = defaults_lock();
    p.install_defaults(&lib);
    let (through, direct) = env_programs(p, &dir, &p.defaults_shim());
    let system = p.loader_variable();
    // The failure: the x86-64 loader under this platform's own name.
    let out = p.run(&through, &[] as &[&str], &[(system.as_str(), HOST_LOADER)]);
    assert_eq!(out.status.code(), Some(127), "{}: {}", p.triple, stderr(&out));
    let cause = format!("loader {HOST_LOADER} is not {} (it is x86-64)", p.name);
    assert!(stderr(&out).contains(&cause), "{}: {}", p.triple, stderr(&out));
    // Under the plain name it is passed over, and the plain library path with it.
    let env = [("NIX_LD", HOST_LOADER), ("NIX_LD_LIBRARY_PATH", "/x86_64-only/lib"), ("NIX_LD_LOG", "info")];
    let out = p.run(&through, &[] as &[&str], &env);
    let log = stderr(&out);
    assert!(out.status.success(), "{}: {log}", p.triple);
    assert!(
        log.contains(&format!("nix-ld: NIX_LD names a loader for another platform (it is not {} (it is x86-64)); using the compiled-in default", p.name)),
        "{}: {log}",
        p.triple
    );
    let defaults = p.defaults_dir();
    assert!(
        log.contains(&format!("nix-ld: loader {} (from the compiled-in default)", defaults.join("ld.so").display())),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "nix-ld: library path {} (from the compiled-in default)",
            defaults.join("lib").display()
        )),
        "{log}"
    );
    // And the program still sees its environment as it was.
    assert_same(p, &through, &direct, &env[..2]);
}

macro_rules! platform_tests {
    ($module:ident, $platform:expr) => {
        mod $module {
            #[test]
            fn the_environment_is_unchanged_in_every_case() {
                super::environment_cases(&$platform);
            }
            #[test]
            fn env_i_uses_the_defaults_and_leaves_the_environment_unchanged() {
                super::env_i_with_defaults(&$platform);
            }
            #[test]
            fn constructors_that_edit_the_environment_see_what_a_direct_start_shows() {
                super::constructors_edit_the_environment(&$platform);
            }
            #[test]
            fn the_system_variable_wins_and_a_missing_loader_is_one_line() {
                super::system_variables_and_a_missing_loader(&$platform);
            }
            #[test]
            fn a_plain_loader_for_another_platform_is_passed_over() {
                super::plain_names_for_another_platform_are_passed_over(&$platform);
            }
        }
    };
}

platform_tests!(aarch64, super::AARCH64);
platform_tests!(riscv64, super::RISCV64);
platform_tests!(i686, super::I686);

/// Setuid programs through the i686 shim, natively (qemu-user never sets AT_SECURE): `NIX_LD` and
/// `NIX_LD_i686_linux` from an unprivileged caller are ignored, and the compiled-in loader runs.
#[test]
fn root_i686_a_setuid_program_ignores_the_nix_ld_variables() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let p = &I686;
    p.tools_present();
    let dir = scratch("platform-setuid-i686");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = dir.join("fake-ld.so");
    let status = Command::new("gcc")
        .args(["-m32", "-static-pie", "-nostdlib", "-fno-stack-protector", "-O1", "-o"])
        .arg(&fake)
        .arg(fixtures().join("fake_loader.c"))
        .status()
        .unwrap();
    assert!(status.success(), "cannot build fake_loader.c for i386");
    let setuid_root = |path: &Path| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let as_nobody = |program: &Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(program).env_clear();
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let euid = [fixtures().join("euid.c")];
    // The danger: a loader the caller chooses runs with the program's privileges.
    let exposed = p.compile(&dir, &euid, "exposed", &fake, &[]);
    setuid_root(&exposed);
    let out = as_nobody(&exposed, &[]);
    assert_eq!(stdout(&out), "FAKE LOADER euid=0\n", "{}", stderr(&out));
    // Through the shim both variables are ignored; the compiled-in default is missing here.
    let prog = p.compile(&dir, &euid, "prog", &p.shim(), &[]);
    setuid_root(&prog);
    let fake = fake.to_str().unwrap();
    let out = as_nobody(&prog, &[("NIX_LD", fake), ("NIX_LD_i686_linux", fake)]);
    assert!(!stdout(&out).contains("FAKE"), "the fake loader ran: {}", stdout(&out));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("loader /run/current-system/sw/share/nix-ld32/lib/ld.so does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("setuid"), "{}", stderr(&out));
    // With the compiled-in loader present, the program runs, privileged, with it.
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let _guard = defaults_lock();
    p.install_defaults(&lib);
    std::fs::set_permissions(p.defaults_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = p.compile(&dir, &euid, "prog-defaults", &p.defaults_shim(), &[]);
    setuid_root(&prog);
    let out = as_nobody(&prog, &[("NIX_LD", fake), ("NIX_LD_i686_linux", fake), ("NIX_LD_LOG", "trace")]);
    assert_eq!(stdout(&out), "REAL PROGRAM euid=0\n", "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "NIX_LD_LOG is not honoured for a privileged program either");
}
