//! The command line, written once: what each form means is in [`USAGE`] (printed by `--help`)
//! and doctor/README.md, and [`parse`] accepts exactly those forms.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const USAGE: &str = "usage: nix-ld-doctor [--json] [--status]
       nix-ld-doctor [--json] TARGET
       nix-ld-doctor [--json] --run -- PROGRAM [ARGS...]

Says why a program built for another Linux distribution would not start through the nix-ld
shim here, and what to set or install, for every missing library at once.

TARGET is one of:
  a path (it holds a /):   that file: a program, a shared library, a plugin or an extension
                           module, or a directory, examined as it is
  an existing directory:   every ELF object under it (links out of it are not followed)
  a bare name:             the program of that name on PATH, found as `which` finds it

Nothing but --run runs code of the program: TARGET is read, and its libraries are looked for
as the loader the shim chooses would look for them.

options:
  --run -- PROGRAM ARGS   run PROGRAM through the shim and report the libraries the loader
                          looked for and did not find, including those opened with dlopen
                          (this RUNS the program, with its arguments)
  --status                what the installed shims are, and the loader and library path
                          they would choose here (the default with no TARGET)
  --json                  one JSON object instead of text (schema: doctor/README.md)
  -h, --help              this text
  -V, --version           the doctor's version

exit status: 0 nothing stops it, 1 problems found, 2 could not examine (one line on stderr)";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Help,
    Version,
    Status,
    Examine(String),
    Run(Vec<OsString>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub mode: Mode,
    pub json: bool,
}

/// Parses the arguments after the program name; Err is one line saying what is wrong.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let (mut json, mut status, mut target) = (false, false, None::<OsString>);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Args { mode: Mode::Help, json }),
            Short('V') | Long("version") => return Ok(Args { mode: Mode::Version, json }),
            Long("json") => json = true,
            Long("status") => status = true,
            Long("run") => {
                // Everything after `--` (or after --run) is the program and its arguments.
                let rest: Vec<OsString> = parser.raw_args().map_err(|e| e.to_string())?.collect();
                let rest = match rest.first() {
                    Some(first) if first == "--" => rest[1..].to_vec(),
                    _ => rest,
                };
                if rest.is_empty() {
                    return Err("--run needs a program: nix-ld-doctor --run -- PROGRAM [ARGS...]".into());
                }
                return finish(json, status, target, Some(rest));
            }
            Value(value) if target.is_none() => target = Some(value),
            Value(value) => {
                return Err(format!(
                "unexpected argument {:?}: give one TARGET (to run a program with arguments: --run -- PROGRAM ARGS...)",
                value.to_string_lossy()
            ))
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    finish(json, status, target, None)
}

fn finish(json: bool, status: bool, target: Option<OsString>, run: Option<Vec<OsString>>) -> Result<Args, String> {
    let mode = match (status, target, run) {
        (true, Some(_), _) | (true, _, Some(_)) => {
            return Err("--status takes no TARGET and no --run".into());
        }
        (_, Some(_), Some(_)) => return Err("give either a TARGET or --run -- PROGRAM, not both".into()),
        (_, None, Some(program)) => Mode::Run(program),
        (_, Some(target), None) => Mode::Examine(target.to_string_lossy().into_owned()),
        (_, None, None) => Mode::Status,
    };
    Ok(Args { mode, json })
}

/// What a TARGET names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Directory(PathBuf),
}

/// A TARGET as the user meant it: a path (it holds a `/`) or an existing directory as it is, a
/// bare name on `path` (the value of PATH) as `which` finds it: the first entry holding an
/// executable file of that name.
pub fn locate(target: &str, path: Option<&str>) -> Result<Target, String> {
    let given = Path::new(target);
    if target.contains('/') || given.is_dir() {
        return Ok(if given.is_dir() { Target::Directory(given.into()) } else { Target::File(given.into()) });
    }
    for dir in path.unwrap_or_default().split(':') {
        // An empty entry is the current directory, as the shell takes it.
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(target);
        if is_executable_file(&candidate) {
            return Ok(Target::File(candidate));
        }
    }
    let hint = if given.exists() { format!("; to examine the file here, write ./{target}") } else { String::new() };
    Err(format!("{target} is not a program on PATH{hint}"))
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn each_form_of_the_grammar() {
        assert_eq!(parse_str(&[]).unwrap().mode, Mode::Status);
        assert_eq!(parse_str(&["--status"]).unwrap().mode, Mode::Status);
        assert_eq!(parse_str(&["--help"]).unwrap().mode, Mode::Help);
        assert_eq!(parse_str(&["-V"]).unwrap().mode, Mode::Version);
        let a = parse_str(&["--json", "prog"]).unwrap();
        assert_eq!((a.mode, a.json), (Mode::Examine("prog".into()), true));
        let a = parse_str(&["--run", "--", "prog", "--json", "x"]).unwrap();
        assert_eq!(a.mode, Mode::Run(["prog", "--json", "x"].map(OsString::from).into()));
        assert!(!a.json, "the program's own arguments are not the doctor's");
        assert_eq!(parse_str(&["--json", "--run", "prog"]).unwrap().mode, Mode::Run(vec!["prog".into()]));
    }

    #[test]
    fn what_it_does_not_use_is_refused_with_one_line() {
        for bad in [&["--frobnicate"][..], &["a", "b"], &["--status", "a"], &["--run"], &["--run", "--"], &["-x"]] {
            let err = parse_str(bad).unwrap_err();
            assert!(!err.contains('\n') && !err.is_empty(), "{bad:?}: {err}");
        }
        assert!(parse_str(&["--frobnicate"]).unwrap_err().contains("--frobnicate"));
    }

    #[test]
    fn a_bare_name_is_looked_up_on_path_and_a_path_is_taken_as_it_is() {
        let dir = std::env::temp_dir().join(format!("doctor-which-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(a.join("tool"), "").unwrap(); // not executable: which passes over it
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(locate("tool", Some(&path)), Ok(Target::File(b.join("tool"))));
        assert!(locate("tool", Some(a.to_str().unwrap())).is_err());
        assert_eq!(locate(b.to_str().unwrap(), None), Ok(Target::Directory(b.clone())));
        let file = a.join("tool");
        assert_eq!(locate(file.to_str().unwrap(), None), Ok(Target::File(file)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
