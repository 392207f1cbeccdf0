//! nix-ld-doctor: says why a program, a library or a whole application built for another Linux
//! distribution will not start here through the nix-ld shim, and exactly what to add, for every
//! missing library at once. Only `--run` runs code of the program; everything else reads files
//! and asks the shim's own logic (`nix_ld`) what it would do.
//!
//! Exit status: 0 when nothing stops it, 1 when problems were found, 2 when the target could not
//! be examined or the command line is wrong.

mod attributes;
mod cli;
mod findings;
mod fixes;
mod ldso;
mod loader;
mod nixeval;
mod object;
mod program;
mod report;
mod resolve;
mod run;
mod status;
mod store;

use std::process::ExitCode;

use cli::Mode;

/// Writes to standard output; a reader that went away (`| head`) ends the output, not the doctor
/// with a panic.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn fail(message: &str) -> ExitCode {
    eprintln!("nix-ld-doctor: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(why) => return fail(&format!("{why} (see nix-ld-doctor --help)")),
    };
    let report = match args.mode {
        Mode::Help => {
            emit(&format!("{}\n", cli::USAGE));
            return ExitCode::SUCCESS;
        }
        Mode::Version => {
            emit(&format!("nix-ld-doctor {}\n", env!("CARGO_PKG_VERSION")));
            return ExitCode::SUCCESS;
        }
        Mode::Status => {
            let status = status::examine();
            if args.json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&status).unwrap_or_default()));
            } else {
                emit(&status.text());
            }
            return ExitCode::SUCCESS;
        }
        Mode::Examine(given) => {
            let path = std::env::var("PATH").ok();
            let target = match cli::locate(&given, path.as_deref()) {
                Ok(target) => target,
                Err(why) => return fail(&why),
            };
            // A bare name is reported as the program PATH gave.
            let given = match &target {
                cli::Target::File(path) if !given.contains('/') => path.display().to_string(),
                _ => given,
            };
            match findings::examine(&target, &given) {
                Ok(report) => report,
                Err(why) => return fail(&format!("cannot examine {given}: {why}")),
            }
        }
        Mode::Run(command) => match run::run(&command) {
            Ok(report) => report,
            Err(why) => return fail(&why),
        },
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => emit(&format!("{json}\n")),
            Err(e) => return fail(&format!("cannot write the JSON report: {e}")),
        }
    } else {
        emit(&report.text());
    }
    let stops = !report.problems.is_empty() || report.stops_on_missing();
    ExitCode::from(u8::from(stops))
}
