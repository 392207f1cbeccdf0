//! The examination, in the order a user needs it, and the report: text for people, JSON for tools.

use std::path::Path;

use crate::libraries::{self, Trace};
use crate::loader::{self, Choice};
use crate::program::{self, Class, Kind};
use crate::store::{self, Candidate};

/// JSON schema version of [`Report::json`]; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// One thing that stops the program, and what to do about it.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    /// A stable name for tools: `interpreter-missing`, `not-covered`, `loader-unusable`,
    /// `missing-library`, `missing-symbol-version`, `shim-not-installed`.
    pub kind: &'static str,
    pub summary: String,
    pub details: Vec<String>,
    pub fixes: Vec<String>,
    /// For `missing-library`, the library; for `missing-symbol-version`, the one without the
    /// version.
    pub library: Option<String>,
    /// For `missing-symbol-version` (`GLIBC_2.38`).
    pub version: Option<String>,
    /// The objects that need the library or the version.
    pub needed_by: Vec<String>,
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub program: String,
    /// What the file is, in words.
    pub kind: String,
    pub choice: Option<Choice>,
    pub glibc: Option<String>,
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
}

/// Examines `path`; Err says, in one phrase, why it could not be inspected at all.
pub fn examine(path: &Path) -> Result<Report, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("it does not exist".into()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err("it is not readable (permission denied)".into())
        }
        Err(_) if path.is_dir() => return Err("it is a directory".into()),
        Err(e) => return Err(format!("it cannot be read ({e})")),
    };
    let program = program::absolute(path);
    let mut report = Report { program: path.display().to_string(), ..Report::default() };
    match program::kind(&bytes) {
        Kind::NotAProgram => return Err("it is not a program (neither an ELF file nor a #! script)".into()),
        Kind::Script { interpreter } => script(&mut report, &interpreter),
        Kind::Static => {
            report.kind = "a statically linked program".into();
            report.notes.push("it needs no loader and no libraries: nothing for nix-ld to do".into());
        }
        Kind::Dynamic { class, machine, interpreter, .. } => {
            if dynamic(&mut report, class, machine, &interpreter) {
                shim_case(&mut report, &program);
            }
        }
    }
    Ok(report)
}

fn script(report: &mut Report, interpreter: &str) {
    report.kind = format!("a script for {interpreter}");
    if program::exists(interpreter) {
        return;
    }
    let name = interpreter.rsplit('/').next().unwrap_or(interpreter);
    report.problems.push(Problem {
        kind: "interpreter-missing",
        summary: format!("its interpreter {interpreter} does not exist here"),
        details: vec!["NixOS has /bin/sh and /usr/bin/env at fixed paths, and no other program".into()],
        fixes: vec![
            format!("start the script with #!/usr/bin/env {name}, which finds {name} on PATH"),
            "or, on NixOS: services.envfs.enable = true; (/bin and /usr/bin then show what is on PATH)".into(),
        ],
        ..Problem::default()
    });
}

/// Classifies a dynamically linked program by the loader it names; true for the shim's case.
fn dynamic(report: &mut Report, class: Class, machine: u16, interpreter: &str) -> bool {
    let arch = program::machine_name(machine);
    report.kind = format!("a dynamically linked {arch} program, loader {interpreter}");
    let not_covered =
        |summary: String, fixes: Vec<String>| Problem { kind: "not-covered", summary, fixes, ..Problem::default() };
    if machine == program::EM_X86_64 && class == Class::Elf64 {
        if interpreter == program::GLIBC_X86_64 || program::is_shim(interpreter) {
            if !program::exists(interpreter) {
                report.problems.push(Problem {
                    kind: "shim-not-installed",
                    summary: format!("nothing is installed at {interpreter}"),
                    fixes: vec![
                        "programs.nix-ld-shim.enable = true;   (this project's module)".into(),
                        "or programs.nix-ld.enable = true;     (nixpkgs' module)".into(),
                    ],
                    ..Problem::default()
                });
                return false;
            }
            return true;
        }
        if interpreter.contains("ld-musl") {
            report.problems.push(not_covered(
                format!("a musl program ({interpreter}): nix-ld serves glibc programs only"),
                vec![
                    "run it with musl's loader: $(nix build --no-link --print-out-paths nixpkgs#musl)/lib/ld-musl-x86_64.so.1 PROGRAM".into(),
                    "or set its interpreter once: patchelf --set-interpreter <that path> PROGRAM".into(),
                ],
            ));
            return false;
        }
        if program::exists(interpreter) {
            report.notes.push(format!("its loader {interpreter} exists here: it does not go through nix-ld"));
            return false;
        }
        report.problems.push(not_covered(
            format!("its loader {interpreter} does not exist here"),
            vec![format!("point it at the nix-ld shim: patchelf --set-interpreter {} PROGRAM", program::GLIBC_X86_64)],
        ));
        return false;
    }
    if machine == program::EM_386 && class == Class::Elf32 {
        let glibc = if interpreter == program::GLIBC_I386 { "glibc " } else { "" };
        report.problems.push(not_covered(
            format!("a 32-bit x86 {glibc}program ({interpreter}): the nix-ld shim runs x86-64 programs only"),
            vec![
                "run it in nixpkgs' FHS environment, which has 32-bit libraries: steam-run PROGRAM".into(),
                "or install a 32-bit nix-ld at /lib/ld-linux.so.2: environment.ldso32 = \"${pkgs.pkgsi686Linux.nix-ld}/libexec/nix-ld\"; and set NIX_LD_i686_linux to pkgsi686Linux.stdenv.cc.bintools.dynamicLinker".into(),
            ],
        ));
        return false;
    }
    report.problems.push(not_covered(
        format!("a program for {arch}: this machine runs x86-64 programs"),
        vec!["get a build of the program for x86-64 (x86_64 or amd64 in download names)".into()],
    ));
    false
}

/// The shim's case: the loader it would use, then the libraries ld.so would not find.
fn shim_case(report: &mut Report, program: &Path) {
    let choice = loader::choose(&loader::environment());
    report.choice = Some(choice.clone());
    if let Err((cause, hint)) = loader::check(&choice.loader, choice.loader_source) {
        report.problems.push(Problem {
            kind: "loader-unusable",
            summary: format!("the loader the shim would use, {} (from {}), {cause}", choice.loader, choice.loader_from),
            fixes: vec![hint],
            ..Problem::default()
        });
        return;
    }
    report.glibc = libraries::glibc_of(&choice.loader);
    let path = search_path(&choice);
    let trace = match libraries::trace(&choice.loader, &path, program) {
        Ok(trace) => trace,
        Err(why) => {
            report.notes.push(format!("the libraries could not be listed: {why}"));
            return;
        }
    };
    versions(report, &trace);
    missing(report, program, &trace, &choice.directories.join(":"));
    report.notes.push(
        "libraries the program opens later with dlopen are not checked: run it with LD_DEBUG=libs to see them".into(),
    );
}

/// The path the shim hands ld.so: the user's LD_LIBRARY_PATH, then the Nix directories that exist.
fn search_path(choice: &Choice) -> String {
    let user = choice.user_path.iter().flat_map(|p| p.split(':')).filter(|d| !d.is_empty()).map(str::to_string);
    user.chain(choice.directories.iter().cloned()).collect::<Vec<_>>().join(":")
}

fn versions(report: &mut Report, trace: &Trace) {
    for (version, library, required_by) in &trace.missing_versions {
        // In ld.so's words ("version `GLIBC_2.38' not found"), so that its message can be matched.
        let glibc = report.glibc.as_deref().map_or(String::new(), |g| format!("; the loader's glibc is {g}"));
        report.problems.push(Problem {
            kind: "missing-symbol-version",
            summary: format!("{version} is not found in {library} (needed by {required_by}){glibc}"),
            fixes: vec![
                "use the loader of a newer glibc: NIX_LD from a newer nixpkgs (stdenv.cc.bintools.dynamicLinker)"
                    .into(),
                "or get a build of the program made for an older glibc".into(),
            ],
            library: Some(library.clone()),
            version: Some(version.clone()),
            needed_by: vec![required_by.clone()],
            ..Problem::default()
        });
    }
}

/// Each missing library, where the store has it, and what to set; `nix_path` is the Nix library
/// directories the shim keeps, which a one-off `NIX_LD_LIBRARY_PATH` extends.
fn missing(report: &mut Report, program: &Path, trace: &Trace, nix_path: &str) {
    let needers = libraries::needers(program, trace);
    let store = store::root();
    let loader_glibc = report.glibc.as_deref().and_then(program::glibc_version);
    let mut attributes = Vec::new();
    let mut in_store = store::search(&store, &trace.missing);
    for library in &trace.missing {
        let located = store::nix_locate(library);
        let mut candidates: Vec<Candidate> = in_store
            .remove(library)
            .unwrap_or_default()
            .into_iter()
            .map(|directory| {
                let name = directory
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let guessed = store::attribute(&name);
                let confirmed = located.as_ref().is_some_and(|l| guessed.as_ref().is_some_and(|g| l.contains(g)));
                let needs_glibc = std::fs::read(directory.join(library))
                    .ok()
                    .map(|b| program::needs(&b).1)
                    .and_then(|v| v.into_iter().filter_map(|s| program::glibc_version(&s)).max())
                    .map(|(a, b)| format!("{a}.{b}"));
                Candidate { directory, attribute: guessed, confirmed, needs_glibc }
            })
            .collect();
        candidates.sort_by_key(|c| c.attribute.is_none());
        let mut problem = Problem {
            kind: "missing-library",
            summary: format!("{library} is not found"),
            library: Some(library.clone()),
            needed_by: needers.get(library).cloned().unwrap_or_default(),
            ..Problem::default()
        };
        if !problem.needed_by.is_empty() {
            problem.summary = format!("{library} is not found (needed by {})", problem.needed_by.join(", "));
        }
        for c in &candidates {
            let what = match (&c.attribute, c.confirmed) {
                (Some(a), true) => format!("{a}, confirmed by nix-locate"),
                (Some(a), false) => format!("{a}, a guess from the store path"),
                (None, _) => "no nixpkgs attribute by that name".into(),
            };
            problem.details.push(format!("found in {} ({what})", c.directory.display()));
            if let (Some(needs), Some(have)) = (c.needs_glibc.as_deref().and_then(program::glibc_version), loader_glibc)
            {
                if needs > have {
                    problem.details.push(format!(
                        "  that build needs glibc {}.{}, newer than the loader's {}.{}",
                        needs.0, needs.1, have.0, have.1
                    ));
                }
            }
        }
        let attribute = located
            .as_ref()
            .and_then(|l| l.first().cloned())
            .or_else(|| candidates.iter().find_map(|c| c.attribute.clone()));
        match (&attribute, candidates.first()) {
            (Some(a), _) => attributes.push(a.clone()),
            (None, None) => problem.details.push(format!(
                "not in {}: look it up with nix-locate --top-level /lib/{library} (nix-index)",
                store.display()
            )),
            (None, Some(_)) => {}
        }
        if let Some(c) = candidates.first() {
            let joined = if nix_path.is_empty() {
                c.directory.display().to_string()
            } else {
                format!("{nix_path}:{}", c.directory.display())
            };
            problem.fixes.push("for one run (until the garbage collector removes that store path):".into());
            problem.fixes.push(format!("  NIX_LD_LIBRARY_PATH={joined} {}", report.program));
        }
        problem.candidates = candidates;
        report.problems.push(problem);
    }
    attributes.dedup();
    if !attributes.is_empty() {
        let list = attributes.join(" ");
        if let Some(first) = report.problems.iter_mut().find(|p| p.kind == "missing-library") {
            // Each line to paste on a line of its own, after what it is for.
            let lines = [
                "with nixpkgs' module:".to_string(),
                format!("  programs.nix-ld.libraries = with pkgs; [ {list} ];"),
                "or with this project's:".to_string(),
                format!("  programs.nix-ld-shim.libraries = with pkgs; [ {list} ];"),
            ];
            for (i, line) in lines.into_iter().enumerate() {
                first.fixes.insert(i, line);
            }
        }
    }
}

impl Report {
    /// The report for people: short, grouped by problem, each with its fix, in 80 columns (a path
    /// longer than a line keeps its own line).
    pub fn text(&self) -> String {
        let mut out = format!("nix-ld-doctor: {}\n  program: {}\n", self.program, self.kind);
        if let Some(c) = &self.choice {
            let glibc = self.glibc.as_deref().map_or(String::new(), |g| format!(", glibc {g}"));
            out += &format!("  loader: {} (from {}){glibc}\n", c.loader, c.loader_from);
            let path = if c.library_path.is_empty() { "(none)" } else { &c.library_path };
            out += &format!("  library path: {path} (from {})\n", c.library_path_from);
            for dir in &c.left_out {
                out += &format!("    {dir} does not exist; the shim leaves it out\n");
            }
        }
        for p in &self.problems {
            out += &wrap("\nproblem: ", &p.summary, "  ");
            for d in &p.details {
                out += &wrap("  ", d, "    ");
            }
            for (i, f) in p.fixes.iter().enumerate() {
                out += &wrap(if i == 0 { "  fix: " } else { "       " }, f, "         ");
            }
        }
        for n in &self.notes {
            out += &wrap("\nnote: ", n, "  ");
        }
        out += &match self.problems.len() {
            0 => "\nNothing found that stops the program.\n".to_string(),
            1 => "\n1 problem found.\n".to_string(),
            n => format!("\n{n} problems found.\n"),
        };
        out
    }

    /// The same findings for tools (schema: doctor/README.md).
    pub fn json(&self) -> String {
        let s = |v: &str| json_string(v);
        let list = |v: &[String]| format!("[{}]", v.iter().map(|x| s(x)).collect::<Vec<_>>().join(", "));
        let opt = |v: &Option<String>| v.as_deref().map_or("null".into(), s);
        let choice = self.choice.as_ref().map_or("null".into(), |c| {
            format!(
                "{{\"loader\": {}, \"loader_from\": {}, \"library_path\": {}, \"library_path_from\": {}, \"directories\": {}, \"left_out\": {}}}",
                s(&c.loader),
                s(&c.loader_from),
                s(&c.library_path),
                s(&c.library_path_from),
                list(&c.directories),
                list(&c.left_out)
            )
        });
        let problems: Vec<String> = self
            .problems
            .iter()
            .map(|p| {
                let candidates: Vec<String> = p
                    .candidates
                    .iter()
                    .map(|c| {
                        format!(
                            "{{\"directory\": {}, \"attribute\": {}, \"confirmed\": {}, \"needs_glibc\": {}}}",
                            s(&c.directory.display().to_string()),
                            opt(&c.attribute),
                            c.confirmed,
                            opt(&c.needs_glibc)
                        )
                    })
                    .collect();
                format!(
                    "{{\"kind\": {}, \"summary\": {}, \"details\": {}, \"fixes\": {}, \"library\": {}, \"version\": {}, \"needed_by\": {}, \"candidates\": [{}]}}",
                    s(p.kind),
                    s(&p.summary),
                    list(&p.details),
                    list(&p.fixes),
                    opt(&p.library),
                    opt(&p.version),
                    list(&p.needed_by),
                    candidates.join(", ")
                )
            })
            .collect();
        format!(
            "{{\"schema_version\": {SCHEMA_VERSION}, \"program\": {}, \"kind\": {}, \"choice\": {choice}, \"glibc\": {}, \"problems\": [{}], \"notes\": {}}}",
            s(&self.program),
            s(&self.kind),
            opt(&self.glibc),
            problems.join(", "),
            list(&self.notes)
        )
    }
}

/// `first` then `text`, broken at spaces into lines of at most 80 columns, the later ones starting
/// with `indent`; a word longer than a line (a path) stands alone on its line.
fn wrap(first: &str, text: &str, indent: &str) -> String {
    const WIDTH: usize = 80;
    let mut out = String::new();
    // Leading spaces belong to the line (an indented line to paste), not between words.
    let body = text.trim_start_matches(' ');
    let mut line = format!("{first}{}", &text[..text.len() - body.len()]);
    let mut empty = true;
    for word in body.split(' ') {
        let width = line.trim_start_matches('\n').chars().count();
        if !empty && width + 1 + word.chars().count() > WIDTH {
            out += &line;
            out.push('\n');
            line = indent.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line += word;
        empty = false;
    }
    out += &line;
    out.push('\n');
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_wrapped_at_80_columns_and_paths_stand_alone() {
        let long = "word ".repeat(30);
        let out = wrap("note: ", long.trim_end(), "  ");
        assert!(out.lines().all(|l| l.len() <= 80), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("  word")), "{out}");
        let path = format!("/{}", "p".repeat(100));
        let out = wrap("  ", &format!("found in {path} (x)"), "    ");
        assert_eq!(out, format!("  found in\n    {path}\n    (x)\n"));
        assert_eq!(wrap("  fix: ", "  code;", "    "), "  fix:   code;\n");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn the_search_path_is_the_users_then_the_existing_nix_directories() {
        let c = Choice {
            loader: String::new(),
            loader_from: String::new(),
            loader_source: nix_ld::plan::Source::Generic,
            library_path: String::new(),
            library_path_from: String::new(),
            directories: vec!["/n".into()],
            left_out: vec![],
            user_path: Some("/u::/v".into()),
        };
        assert_eq!(search_path(&c), "/u:/v:/n");
    }
}
