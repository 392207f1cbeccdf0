//! The project's front door: `cargo xtask build | test | demo | bench`.
//!
//! This file only parses the command line and dispatches; each task is a module.

mod build;
mod demo;
mod elfcheck;
mod nix_check;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  build            build the release shim, verify it, leave it at target/dist/nix-ld
  test [--skip-nix-check]
                   run every test: unit and property tests, execve integration tests, Nix checks
  demo             run foreign programs in a NixOS-like chroot through the shim (needs root)
  bench [--compare PATH]
                   measure start-up cost against a plain ld.so start (and another shim)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build::run().map(|path| println!("{}", path.display())),
        Some("test") => test::run(args[1..].iter().any(|a| a == "--skip-nix-check")),
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

mod bench;
