//! `cargo xtask test`: every test of the project, in one command; `--nix-sandbox`: the part that
//! the Nix package's check phase runs inside the Nix build sandbox.

use crate::build;
use crate::elfcheck;
use crate::nix_check;
use crate::util::{self, project_root, Result};

/// Which tests run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything; the root_* tests when root.
    All,
    /// Everything but the Nix file checks (`--skip-nix-check`).
    SkipNixCheck,
    /// What the Nix build sandbox allows (`--nix-sandbox`): an unprivileged build user, no
    /// nix-instantiate, no /bin but /bin/sh, no /usr, no /lib64. The suite itself takes its tools
    /// from PATH and its loader from NIX_LD or from what `cc` links (a test checks that no test it
    /// runs names a host-only path).
    NixSandbox,
}

/// The other glibc releases the execve tests named `PREFIX*` run against: each one's directory
/// under `target/glibc` (where `.ci/fetch-glibc` unpacks it), the tests' prefix, and what it is.
const OTHER_GLIBCS: &[(&str, &str, &str)] = &[
    ("debian-13", "glibc_2_41_", "Debian 13's glibc 2.41"),
    ("debian-unstable", "glibc_2_43_", "Debian unstable's glibc 2.43"),
];

/// Tests of xtask itself that need nix-instantiate, which the Nix build sandbox does not have.
const NEEDS_NIX_INSTANTIATE: &[&str] = &["nix_check::tests::a_syntax_error_is_reported_with_its_file_and_nix_message"];

pub fn run(mode: Mode) -> Result<()> {
    let root = project_root();
    // Every build here has the NixOS defaults or the tests' own compiled in, whatever the caller's
    // DEFAULT_NIX_LD and DEFAULT_NIX_LD_LIBRARY_PATH say (the Nix package's build sets both).
    let cargo = || build::cargo_with(None);
    let mut left_out = Vec::new();

    eprintln!("== unit and property tests of the shim's pure logic");
    util::run(cargo().current_dir(&root).args(["test", "--package", "nix-ld", "--lib"]))?;

    eprintln!("== unit tests of nix-ld-doctor");
    util::run(cargo().current_dir(&root).args(["test", "--package", "nix-ld-doctor"]))?;

    eprintln!("== building the shims");
    let shim = build::shim(None, "nix-ld")?;
    let defaults_dir = root.join("target/execve-tests-defaults");
    let loader = defaults_dir.join("ld.so");
    let libs = defaults_dir.join("lib");
    let defaults_shim = build::shim(Some((loader.to_str().unwrap(), libs.to_str().unwrap())), "nix-ld-test-defaults")?;
    let doctor = build::doctor()?;
    // nixpkgs links with cc and GNU ld, not rust-lld: the shim must pass `verify` both ways.
    let gnu_ld = build::shim_linked(None, "nix-ld-gnu-ld", "variant", build::Linker::GnuLd)?;
    eprintln!("built and verified {}, linked with cc and GNU ld", gnu_ld.display());

    // The other platforms' shims (aarch64 and riscv64 run under qemu-user, i686 natively).
    let mut platforms = Vec::new();
    if mode != Mode::NixSandbox {
        for target in &elfcheck::TARGETS[1..] {
            let key = target.triple.to_uppercase().replace('-', "_");
            let dir = root.join(format!("target/execve-tests-defaults-{}", target.triple));
            let (loader, libs) = (dir.join("ld.so"), dir.join("lib"));
            let plain = build::cross_shim(target, None, "nix-ld")?;
            let defaults = build::cross_shim(
                target,
                Some((loader.to_str().unwrap(), libs.to_str().unwrap())),
                "nix-ld-test-defaults",
            )?;
            eprintln!("built and verified {} and {}", plain.display(), defaults.display());
            platforms.push((format!("NIX_LD_TEST_SHIM_{key}"), plain));
            platforms.push((format!("NIX_LD_TEST_DEFAULTS_SHIM_{key}"), defaults));
            platforms.push((format!("NIX_LD_TEST_DEFAULTS_DIR_{key}"), dir));
        }
    }

    eprintln!("== execve integration tests");
    let mut cmd = cargo();
    cmd.envs(platforms);
    cmd.current_dir(&root)
        .args(["test", "--package", "execve-tests"])
        .env("NIX_LD_TEST_SHIM", &shim)
        .env("NIX_LD_TEST_DEFAULTS_SHIM", &defaults_shim)
        .env("NIX_LD_TEST_DEFAULTS_DIR", &defaults_dir)
        .env("NIX_LD_TEST_DOCTOR", &doctor);
    let glibc_dir = root.join("target/glibc");
    cmd.env("NIX_LD_TEST_GLIBC_DIR", &glibc_dir);
    cmd.arg("--");
    if mode == Mode::NixSandbox {
        left_out.push("the glibc_* execve tests (other glibc releases as NIX_LD): the sandbox cannot fetch them");
    }
    // Said before the tests run and again at the end, where it is not lost in their output.
    let mut skipped = Vec::new();
    for (dir, prefix, what) in OTHER_GLIBCS {
        if mode == Mode::NixSandbox {
            cmd.args(["--skip", prefix]);
        } else if !glibc_dir.join(dir).join("ld.so").exists() {
            let line = format!(
                "SKIPPING the {prefix}* tests: {what}'s loader is missing ({} not found; `bash .ci/fetch-glibc` fetches it, as CI does)",
                glibc_dir.join(dir).join("ld.so").display()
            );
            eprintln!("{line}");
            skipped.push(line);
            cmd.args(["--skip", prefix]);
        }
    }
    if mode == Mode::NixSandbox {
        left_out
            .push("the root_* execve tests (setuid programs, mount namespaces, chroot): the build user is not root");
        left_out.push("the platforms::* execve tests (aarch64, riscv64, i686 shims): the sandbox has no cross compilers, qemu or Debian's rustc-web");
        cmd.args(["--skip", "platforms::"]);
        left_out.push("the host_* execve tests (libfaketime at Debian's path; gdb, ltrace and valgrind; 32-bit and musl programs): the sandbox has no /usr, debuggers, gcc-multilib or musl-gcc");
        cmd.args(["--skip", "root_", "--skip", "host_"]);
    } else if !util::is_root() {
        eprintln!(
            "SKIPPING the root_* tests (setuid, mount namespaces, chroot): not running as root. CI runs them as root."
        );
        cmd.args(["--skip", "root_"]);
    }
    util::run(&mut cmd)?;

    eprintln!("== xtask's own tests");
    let mut cmd = cargo();
    cmd.current_dir(&root).args(["test", "--package", "xtask", "--"]);
    if mode == Mode::NixSandbox {
        left_out.push("xtask's test of nix-instantiate's error messages: the sandbox has no nix-instantiate");
        for name in NEEDS_NIX_INSTANTIATE {
            cmd.args(["--skip", name]);
        }
    }
    util::run(&mut cmd)?;

    match mode {
        Mode::All => {
            eprintln!("== Nix files");
            let lib = std::env::var_os(nix_check::NIXPKGS_LIB).map(std::path::PathBuf::from);
            let checks = nix_check::run_with(&root, lib.as_deref())?;
            println!("nix: {checks} passed, 0 failed");
        }
        Mode::SkipNixCheck => eprintln!("SKIPPING the Nix file checks (--skip-nix-check)"),
        Mode::NixSandbox => left_out.push(
            "the Nix file checks: the sandbox has no nix-instantiate, and these files are the build's own recipe",
        ),
    }
    for line in &skipped {
        eprintln!("{line}");
    }
    for what in &left_out {
        eprintln!("LEFT OUT in --nix-sandbox mode: {what}");
    }
    Ok(())
}
