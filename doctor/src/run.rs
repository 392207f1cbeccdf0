//! `--run`: runs the program through the shim and reports what the loader looked for and did
//! not find.
use crate::report::Report;

pub fn run(_command: &[std::ffi::OsString]) -> Result<Report, String> {
    Err("--run is not available yet".into())
}
