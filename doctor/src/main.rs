//! nix-ld-doctor: says why a program built for another Linux distribution will not start here,
//! and exactly what to add. It never runs the program's code: it reads the file, asks the shim's
//! own logic which loader and library path it would use, and runs that loader's trace mode.
//!
//! Exit status: 0 when nothing stops the program, 1 when problems were found, 2 when the file
//! could not be inspected.

mod findings;
mod libraries;
mod loader;
mod program;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: nix-ld-doctor [--json] PROGRAM [ARGS...]

Says why PROGRAM, built for another Linux distribution, would not start through the nix-ld
shim, and what to set or install. The program itself is not run.";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    let mut json = false;
    while let Some(arg) = args.peek() {
        match arg.to_str() {
            Some("--json") => json = true,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => break,
        }
        args.next();
    }
    let Some(program) = args.next().map(PathBuf::from) else {
        eprintln!("nix-ld-doctor: no program given\n{USAGE}");
        return ExitCode::from(2);
    };
    let report = match findings::examine(&program) {
        Ok(report) => report,
        Err(why) => {
            eprintln!("nix-ld-doctor: cannot inspect {}: {why}", program.display());
            return ExitCode::from(2);
        }
    };
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    ExitCode::from(if report.problems.is_empty() { 0 } else { 1 })
}
