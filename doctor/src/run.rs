//! `--run -- PROGRAM ARGS`: runs the program through the shim (this runs its code) and reports
//! the libraries the loader looked for and did not find, including those opened with `dlopen`,
//! with the object that asked. It observes through the loader's own debug output
//! (`LD_DEBUG=libs,files`, written to files by `LD_DEBUG_OUTPUT`, one per process, so the
//! program's own output is left alone): a `file=NAME [ns];  needed by OBJECT` or
//! `dynamically loaded by OBJECT` line says a library was asked for, a `file=NAME [ns];
//! generating link map` line that it was found.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::cli::{self, Target};
use crate::findings::{self, Pick};
use crate::fixes::quote;
use crate::report::{Report, SCHEMA_VERSION};
use crate::store;

/// What the loader's debug output says: the libraries asked for and not found, each with the
/// objects that asked.
pub fn parse(text: &str, out: &mut BTreeMap<String, BTreeSet<PathBuf>>) {
    let mut asked: Vec<(String, String)> = Vec::new();
    let mut found: HashSet<String> = HashSet::new();
    for line in text.lines() {
        // "     12345:\tfile=libfoo.so.1 [0];  needed by ./prog [0]"
        let body = line.split_once(":\t").map_or(line, |(_, b)| b);
        let Some(rest) = body.strip_prefix("file=") else { continue };
        let Some((name, rest)) = rest.split_once(" [") else { continue };
        let Some((_, what)) = rest.split_once("];  ") else { continue };
        if what.starts_with("generating link map") {
            found.insert(name.to_string());
        } else if let Some(by) = what.strip_prefix("needed by ").or_else(|| what.strip_prefix("dynamically loaded by "))
        {
            let by = by.rsplit_once(" [").map_or(by, |(b, _)| b);
            asked.push((name.to_string(), by.to_string()));
        }
    }
    for (name, by) in asked {
        // A name with a `/` is a path the program chose: the loader searches nothing for it (and
        // one already loaded under another name is mapped again without a link map), so no library
        // path can change it.
        if !found.contains(&name) && !name.contains('/') {
            out.entry(name).or_default().insert(PathBuf::from(by));
        }
    }
}

/// Runs `command` and reports what its loader did not find; Err when it cannot be started.
pub fn run(command: &[OsString]) -> Result<Report, String> {
    let given = command[0].to_string_lossy().into_owned();
    let path = std::env::var("PATH").ok();
    let program = match cli::locate(&given, path.as_deref())? {
        Target::File(p) => p,
        Target::Directory(d) => return Err(format!("{} is a directory, not a program to run", d.display())),
    };
    if !program.is_file() {
        return Err(format!("cannot run {given}: it does not exist or is not a file"));
    }
    let words: Vec<String> = command.iter().map(|w| quote(&w.to_string_lossy())).collect();
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        target: words.join(" "),
        mode: "run",
        kind: "what the loader looked for while the program ran".into(),
        ..Report::default()
    };
    let Some(choice) = findings::choose_loader(&mut report) else { return Ok(report) };
    let dir = std::env::temp_dir().join(format!("nix-ld-doctor-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let status = Command::new(&program)
        .args(&command[1..])
        .env("LD_DEBUG", "libs,files")
        .env("LD_DEBUG_OUTPUT", dir.join("debug"))
        .status();
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().filter_map(Result::ok) {
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            parse(&text, &mut all);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Ok(status) => report.notes.push(format!("{given} ran and ended with {status}")),
        Err(e) => return Err(format!("cannot run {given}: {e}")),
    }
    report.examined.push(program.display().to_string());
    if !all.is_empty() {
        let index = store::Index::read(&store::root());
        let mut pick = Pick::default();
        pick.add(&index, &all, choice.platform);
        let start = Some(report.target.clone());
        findings::conclude(&mut report, &choice, &index, &all, &all, &pick, start);
    }
    report.notes.push(
        "only what this run asked for is seen: other arguments or actions may load other libraries (a privileged program shows nothing)".into(),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_for_and_never_mapped_is_missing_with_who_asked() {
        let text = "     7:\t\n     7:\tfile=libc.so.6 [0];  needed by ./dl [0]\n     7:\tfind library=libc.so.6 [0]; searching\n     7:\tfile=libc.so.6 [0];  generating link map\n     7:\tfile=libnowhere.so.3 [0];  dynamically loaded by /opt/app/lib/libplugin.so [0]\n     7:\tfile=libgone.so.1 [0];  needed by ./dl [0]\n";
        let mut out = BTreeMap::new();
        parse(text, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out["libnowhere.so.3"], BTreeSet::from([PathBuf::from("/opt/app/lib/libplugin.so")]));
        assert_eq!(out["libgone.so.1"], BTreeSet::from([PathBuf::from("./dl")]));
    }
}
