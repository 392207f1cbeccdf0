//! `cargo xtask test`: every test of the project, in one command.

use std::process::Command;

use crate::build;
use crate::nix_check;
use crate::util::{self, project_root, Result};

/// `skip_nix`: the Nix package's check phase runs inside the Nix sandbox, where the Nix files
/// cannot be evaluated again (`--skip-nix-check`).
pub fn run(skip_nix: bool) -> Result<()> {
    let root = project_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    eprintln!("== unit and property tests of the shim's pure logic");
    util::run(Command::new(&cargo).current_dir(&root).args(["test", "--package", "nix-ld", "--lib"]))?;

    eprintln!("== building the shims");
    let shim = build::shim(None, "nix-ld")?;
    let defaults_dir = root.join("target/execve-tests-defaults");
    let loader = defaults_dir.join("ld.so");
    let libs = defaults_dir.join("lib");
    let defaults_shim = build::shim(Some((loader.to_str().unwrap(), libs.to_str().unwrap())), "nix-ld-test-defaults")?;

    eprintln!("== execve integration tests");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args(["test", "--package", "execve-tests"])
        .env("NIX_LD_TEST_SHIM", &shim)
        .env("NIX_LD_TEST_DEFAULTS_SHIM", &defaults_shim)
        .env("NIX_LD_TEST_DEFAULTS_DIR", &defaults_dir);
    cmd.arg("--");
    if !util::is_root() {
        eprintln!("SKIPPING the root_* tests (setuid, mount namespaces, chroot): not running as root. CI runs them as root.");
        cmd.args(["--skip", "root_"]);
    }
    util::run(&mut cmd)?;

    eprintln!("== xtask's own tests");
    util::run(Command::new(&cargo).current_dir(&root).args(["test", "--package", "xtask"]))?;

    if skip_nix {
        eprintln!("SKIPPING the Nix file checks (--skip-nix-check)");
    } else {
        eprintln!("== Nix files");
        let checks = nix_check::run(&root)?;
        println!("nix: {checks} passed, 0 failed");
    }
    Ok(())
}
