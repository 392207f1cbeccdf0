//! The project's front door: `cargo xtask build | test | verify | finish | demo | bench`.
//!
//! This file only parses the command line and dispatches; each task is a module.

mod bench;
mod bench_doctor;
mod build;
mod demo;
mod elfcheck;
mod nix_check;
mod sections;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  build [--target TRIPLE]
                   build the release shim, verify it, leave it at target/dist/nix-ld (and
                   nix-ld-doctor at target/dist/nix-ld-doctor); with --target
                   aarch64-unknown-linux-gnu, riscv64gc-unknown-linux-gnu or i686-unknown-linux-gnu,
                   the shim for that platform at target/dist/TRIPLE/nix-ld (Debian's rustc-web);
                   DEFAULT_NIX_LD and DEFAULT_NIX_LD_LIBRARY_PATH, when set, replace the NixOS
                   defaults compiled in
  test [--skip-nix-check | --nix-sandbox]
                   run every test: unit and property tests, execve integration tests, Nix checks;
                   --nix-sandbox: only what the Nix build sandbox allows (the package's check phase)
  verify [--target TRIPLE] FILE
                   check an installed shim as `build` checks the one it builds (its machine and
                   class too: x86-64 unless --target says otherwise)
  finish FILE      give a linked shim (cargo build's) the section table debuggers and tracers
                   read (xtask/src/sections.rs), in place; `build` does this itself
  nix-check        only the Nix file checks of `test` (with NIXPKGS_LIB=DIR, a checkout of
                   nix-community/nixpkgs.lib, also the module through lib.evalModules)
  demo             run foreign programs in a NixOS-like chroot through the shim (needs root)
  bench [--compare PATH | --doctor]
                   measure start-up cost against a plain ld.so start (and another shim), and
                   nix-ld-doctor's answer time with 30,000 store entries (--doctor: only that)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => match &args[1..] {
            [] => build::run(),
            [flag, triple] if flag == "--target" => build::run_for(triple),
            _ => Err(format!("usage: cargo xtask build [--target TRIPLE]\n{USAGE}")),
        }
        .map(|path| println!("{}", path.display())),
        Some("test") => test_mode(&args[1..]).and_then(test::run),
        Some("verify") => match &args[1..] {
            [file] => build::verify_file(std::path::Path::new(file)),
            [flag, triple, file] if flag == "--target" => {
                elfcheck::target(triple).and_then(|t| build::verify_file_for(std::path::Path::new(file), &t))
            }
            _ => Err("usage: cargo xtask verify [--target TRIPLE] FILE".into()),
        },
        Some("finish") => match &args[1..] {
            [file] => build::finish_file(std::path::Path::new(file)),
            _ => Err("usage: cargo xtask finish FILE".into()),
        },
        Some("nix-check") => {
            let lib = std::env::var_os(nix_check::NIXPKGS_LIB).map(std::path::PathBuf::from);
            nix_check::run_with(&util::project_root(), lib.as_deref()).map(|n| println!("nix: {n} passed, 0 failed"))
        }
        Some("demo") => demo::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test_mode(args: &[String]) -> Result<test::Mode, String> {
    match args {
        [] => Ok(test::Mode::All),
        [a] if a == "--skip-nix-check" => Ok(test::Mode::SkipNixCheck),
        [a] if a == "--nix-sandbox" => Ok(test::Mode::NixSandbox),
        _ => Err(format!("usage: cargo xtask test [--skip-nix-check | --nix-sandbox]\n{USAGE}")),
    }
}
