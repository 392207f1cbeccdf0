//! The libraries as ld.so will resolve them: the chosen loader's own trace mode
//! (`LD_TRACE_LOADED_OBJECTS=1 ld.so PROGRAM`, what `ldd` runs: it loads the libraries but runs
//! nothing of the program, and unlike `--list` it goes on past a missing one), with the library
//! path the shim would give it, and the DT_NEEDED graph of what it found, to say which object
//! needs each missing library.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::program;

/// What ld.so's trace says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Library name and the file ld.so found for it.
    pub found: Vec<(String, String)>,
    pub missing: Vec<String>,
    /// (version, library that lacks it, object that requires it)
    pub missing_versions: Vec<(String, String, String)>,
}

/// Parses `ld.so --list` output (stdout) and its version errors (stderr).
pub fn parse(stdout: &str, stderr: &str) -> Trace {
    let mut trace = Trace::default();
    for line in stdout.lines() {
        let line = line.trim();
        let Some((name, rest)) = line.split_once(" => ") else { continue };
        let rest = rest.trim();
        if rest == "not found" {
            if !trace.missing.iter().any(|m| m == name) {
                trace.missing.push(name.to_string());
            }
        } else if let Some(path) = rest.split(" (0x").next() {
            trace.found.push((name.to_string(), path.to_string()));
        }
    }
    // PROGRAM: /path/libc.so.6: version `GLIBC_2.38' not found (required by PROGRAM)
    for line in stderr.lines() {
        let Some(at) = line.find(": version `") else { continue };
        let before = &line[..at];
        let library = before.rsplit(": ").next().unwrap_or(before).to_string();
        let rest = &line[at + ": version `".len()..];
        let Some((version, rest)) = rest.split_once('\'') else { continue };
        let required_by =
            rest.split("(required by ").nth(1).map(|r| r.trim_end_matches(')').to_string()).unwrap_or_default();
        trace.missing_versions.push((version.to_string(), library, required_by));
    }
    trace
}

/// Runs `loader --library-path PATH PROGRAM` in trace mode, with the search path the shim would
/// give ld.so and this process's environment otherwise (the option overrides LD_LIBRARY_PATH).
pub fn trace(loader: &str, library_path: &str, program: &Path) -> Result<Trace, String> {
    let mut cmd = Command::new(loader);
    if !library_path.is_empty() {
        cmd.arg("--library-path").arg(library_path);
    }
    // Standard input is inherited, not /dev/null: nothing reads it, and a chroot may have no /dev.
    cmd.arg(program).env("LD_TRACE_LOADED_OBJECTS", "1").stdin(std::process::Stdio::inherit());
    let out = cmd.output().map_err(|e| format!("cannot run {loader}: {e}"))?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Version errors may come on either stream.
    Ok(parse(&stdout, &format!("{stderr}\n{stdout}")))
}

/// For each missing library, the objects that need it: the program, or a library ld.so found.
pub fn needers(program: &Path, trace: &Trace) -> BTreeMap<String, Vec<String>> {
    let mut by_name: BTreeMap<String, Vec<String>> = trace.missing.iter().map(|m| (m.clone(), Vec::new())).collect();
    let objects =
        std::iter::once(program.display().to_string()).chain(trace.found.iter().map(|(_, path)| path.clone()));
    for object in objects {
        let Ok(bytes) = std::fs::read(&object) else { continue };
        let (needed, _) = program::needs(&bytes);
        for name in needed {
            if let Some(list) = by_name.get_mut(&name) {
                if !list.contains(&object) {
                    list.push(object.clone());
                }
            }
        }
    }
    by_name
}

/// The glibc version of a loader, from `ld.so --version` ("... release version 2.36.").
pub fn glibc_of(loader: &str) -> Option<String> {
    let out = Command::new(loader).arg("--version").stdin(std::process::Stdio::inherit()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    let version = first.rsplit("version ").next()?.trim().trim_end_matches('.');
    program::glibc_version(version).map(|(a, b)| format!("{a}.{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_gives_found_and_missing_libraries() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibcrypt.so.1 => not found\n\tlibc.so.6 => /nix/store/x-glibc/lib/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibcrypt.so.1 => not found\n";
        let t = parse(out, "");
        assert_eq!(t.missing, ["libcrypt.so.1"]);
        assert_eq!(t.found, [("libc.so.6".to_string(), "/nix/store/x-glibc/lib/libc.so.6".to_string())]);
    }

    #[test]
    fn version_errors_name_the_version_the_library_and_who_needs_it() {
        let err = "./prog: /nix/store/x-glibc/lib/libc.so.6: version `GLIBC_2.38' not found (required by ./prog)\n";
        let t = parse("", err);
        assert_eq!(
            t.missing_versions,
            [("GLIBC_2.38".into(), "/nix/store/x-glibc/lib/libc.so.6".into(), "./prog".into())]
        );
    }
}
