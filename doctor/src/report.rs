//! The report: its types (serialised as the JSON schema with serde), and its text for people,
//! grouped by store directory so that many missing libraries stay short. Lines meant to be
//! pasted are printed whole, never wrapped; everything else wraps at 80 columns (textwrap).

use serde::Serialize;

use crate::loader::Choice;

/// JSON schema version of the report; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// One thing that stops the program other than a missing library, and what to do about it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Problem {
    /// `interpreter-missing`, `not-covered`, `shim-not-installed`, `loader-unusable`,
    /// `missing-symbol-version`.
    pub kind: &'static str,
    pub summary: String,
    pub details: Vec<String>,
    /// What to do, one entry each: a line of prose (wrapped), then any lines to paste (after a
    /// `\n`, each printed whole).
    pub fixes: Vec<String>,
    /// For `missing-symbol-version`: the version (`GLIBC_2.38`), the library that lacks it.
    pub version: Option<String>,
    pub library: Option<String>,
    pub needed_by: Vec<String>,
}

/// A store directory holding a missing library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub directory: String,
    /// The nixpkgs attribute, as far as the store path tells (or nix-locate confirms).
    pub attribute: Option<String>,
    /// `store-name` (read from the store path, with the doctor's table), `nix-locate`, `nixpkgs`
    /// (the local nixpkgs evaluates it to this store path), `nixpkgs-other-build` (to another),
    /// `not-in-nixpkgs` (the local nixpkgs has no such attribute).
    pub attribute_from: Option<&'static str>,
    pub confirmed: bool,
    /// The newest glibc symbol version the library requires (`2.38`).
    pub needs_glibc: Option<String>,
}

/// A library the loader would not find.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub library: String,
    /// The objects that need it (for `--run`, the ones that asked for it).
    pub needed_by: Vec<String>,
    /// Every store directory that holds it; the first is the one the fixes use.
    pub candidates: Vec<Candidate>,
    /// For a library no local store path holds: the likely attribute, from nix-locate or the
    /// doctor's table (`likely_from`: `nix-locate`, `table`).
    pub likely_attribute: Option<String>,
    pub likely_from: Option<&'static str>,
    /// Whether it comes with the graphics or compute driver (hardware.graphics), not a package.
    pub driver: bool,
    /// Whether it was only found missing once the others were added (a store library's need).
    pub found_later: bool,
    /// For a directory: a library of the application's own family (`libQt6…` in a tree that ships
    /// `libQt6Core.so.6`) that it does not ship and no store path has: the plugins needing it
    /// cannot load on any system. Not counted as a problem.
    pub unshipped: bool,
}

/// The lines to paste, each whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fixes {
    /// The variable the shim reads here (`NIX_LD_LIBRARY_PATH_x86_64_linux` when it is set).
    pub variable: String,
    /// The one-off: `VAR=… PROGRAM`, or `export VAR=…` for a library or a directory.
    pub one_off: Option<String>,
    pub nixpkgs_module: Option<String>,
    pub shim_module: Option<String>,
    pub mk_shell: Option<String>,
    /// For driver libraries.
    pub drivers: Vec<String>,
}

/// An ELF object of another architecture, counted and named, not examined.
#[derive(Debug, Clone, Serialize)]
pub struct Foreign {
    pub path: String,
    pub architecture: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// The target as given (or the program of `--run`).
    pub target: String,
    /// `program`, `library`, `directory`, `script`, `static`, `run`.
    pub mode: &'static str,
    /// What the target is, in words.
    pub kind: String,
    /// For a directory, its canonical path: the objects under it are named relative to it in the
    /// text.
    pub directory: Option<String>,
    pub choice: Option<Choice>,
    pub glibc: Option<String>,
    /// The ELF objects examined (for a directory, every one under it of this architecture).
    pub examined: Vec<String>,
    pub other_architectures: Vec<Foreign>,
    pub problems: Vec<Problem>,
    pub missing: Vec<Missing>,
    pub fixes: Option<Fixes>,
    pub notes: Vec<String>,
}

const WIDTH: usize = 80;

/// `text` wrapped at 80 columns: `first` before the first line, `indent` before the others.
pub fn wrap(first: &str, text: &str, indent: &str) -> String {
    let options = textwrap::Options::new(WIDTH)
        .initial_indent(first)
        .subsequent_indent(indent)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    let mut out = textwrap::fill(text, options);
    out.push('\n');
    out
}

/// Paths inside `base` written relative to it, to keep lists short.
fn short<'a>(path: &'a str, base: Option<&str>) -> &'a str {
    base.and_then(|b| path.strip_prefix(b)).and_then(|p| p.strip_prefix('/')).filter(|p| !p.is_empty()).unwrap_or(path)
}

/// `a`, `a, b`, or `a and 3 more` (the JSON report has them all).
fn some_of(items: &[String], base: Option<&str>) -> String {
    let shown: Vec<&str> = items.iter().map(|i| short(i, base)).collect();
    match shown.len() {
        0..=2 => shown.join(", "),
        n => format!("{} and {} more", shown[0], n - 1),
    }
}

impl Report {
    /// Whether a missing library stops it (those the application itself does not ship do not
    /// count: nothing here can provide them).
    pub fn stops_on_missing(&self) -> bool {
        self.missing.iter().any(|m| !m.unshipped)
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = format!("nix-ld-doctor: {}\n", self.target);
        out += &wrap("  what: ", &self.kind, "    ");
        if !self.other_architectures.is_empty() {
            let names: Vec<String> =
                self.other_architectures.iter().map(|f| format!("{} ({})", f.path, f.architecture)).collect();
            out += &wrap(
                "  not examined: ",
                &format!("{} of another architecture: {}", names.len(), names.join(", ")),
                "    ",
            );
        }
        if let Some(c) = &self.choice {
            let glibc = self.glibc.as_deref().map_or(String::new(), |g| format!(", glibc {g}"));
            out += &wrap("  loader: ", &format!("{} (from {}){glibc}", c.loader, c.loader_from), "    ");
            let dirs: Vec<&str> = c.library_path.split(':').filter(|d| !d.is_empty()).collect();
            // A long path (after a one-off line added many directories) is shortened here; the
            // JSON report has it whole.
            let path = match dirs.len() {
                0 => "(none)".to_string(),
                1..=4 => c.library_path.clone(),
                n => format!("{}:{}: … ({n} directories)", dirs[0], dirs[1]),
            };
            out += &wrap("  library path: ", &format!("{path} (from {})", c.library_path_from), "    ");
            for dir in c.left_out.iter().take(4) {
                out += &wrap("    ", &format!("{dir} does not exist; the shim leaves it out"), "    ");
            }
            if c.left_out.len() > 4 {
                out += &format!("    and {} more that do not exist\n", c.left_out.len() - 4);
            }
        }
        for p in &self.problems {
            out += &wrap("\nproblem: ", &p.summary, "  ");
            for d in &p.details {
                out += &wrap("  ", d, "    ");
            }
            for (i, f) in p.fixes.iter().enumerate() {
                // A fix's first line is prose; each line after it is to paste, never wrapped.
                let mut lines = f.split('\n');
                out += &wrap(if i == 0 { "  fix: " } else { "       " }, lines.next().unwrap_or(""), "         ");
                for paste in lines {
                    out += &format!("         {paste}\n");
                }
            }
        }
        out += &self.missing_text();
        if let Some(f) = &self.fixes {
            out += &fixes_text(f);
        }
        for n in &self.notes {
            out += &wrap("\nnote: ", n, "  ");
        }
        let count = self.problems.len() + usize::from(self.stops_on_missing());
        out += &match count {
            0 => "\nNothing found that stops it.\n".to_string(),
            1 => "\n1 problem found.\n".to_string(),
            n => format!("\n{n} problems found.\n"),
        };
        out
    }

    /// The missing libraries, grouped by the store directory that has them.
    fn missing_text(&self) -> String {
        if self.missing.is_empty() {
            return String::new();
        }
        let base = self.directory.as_deref();
        let in_store: Vec<&Missing> = self.missing.iter().filter(|m| !m.candidates.is_empty()).collect();
        let mut dirs: Vec<&str> = in_store.iter().map(|m| m.candidates[0].directory.as_str()).collect();
        dirs.sort();
        dirs.dedup();
        let n = self.missing.len();
        let mut out = wrap(
            if self.stops_on_missing() { "\nproblem: " } else { "\nnote: " },
            &format!(
                "{n} missing librar{}; the store has {}, in {} director{}:",
                if n == 1 { "y" } else { "ies" },
                in_store.len(),
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" }
            ),
            "  ",
        );
        let item = |m: &Missing| {
            let later = if m.found_later { ", once the others are there" } else { "" };
            format!("{} (needed by {}{later})", m.library, some_of(&m.needed_by, base))
        };
        for dir in &dirs {
            let group: Vec<&&Missing> = in_store.iter().filter(|m| m.candidates[0].directory == *dir).collect();
            let c = &group[0].candidates[0];
            let what = match (&c.attribute, c.attribute_from) {
                (Some(a), Some("nix-locate")) => format!("{a} (confirmed by nix-locate)"),
                (Some(a), Some("nixpkgs")) => format!("{a} (confirmed by the local nixpkgs)"),
                (Some(a), Some("nixpkgs-other-build")) => format!("{a} (the local nixpkgs has another build)"),
                (Some(a), Some("not-in-nixpkgs")) => format!("{a}? (no such attribute in the local nixpkgs)"),
                (Some(a), _) => a.clone(),
                (None, _) => "(no nixpkgs attribute by that name)".into(),
            };
            out += &format!("  {what}: {dir}\n");
            // The libraries of one directory on one line, with the objects that need any of them.
            let mut needers: Vec<String> = group.iter().flat_map(|m| m.needed_by.iter().cloned()).collect();
            needers.sort();
            needers.dedup();
            let names: Vec<&str> = group.iter().map(|m| m.library.as_str()).collect();
            let later = if group.iter().all(|m| m.found_later) { ", once the others are there" } else { "" };
            out += &wrap(
                "    ",
                &format!("{} (needed by {}{later})", names.join(", "), some_of(&needers, base)),
                "      ",
            );
            if let Some(needs) = &c.needs_glibc {
                if let (Some(n), Some(have)) = (
                    crate::program::glibc_version(needs),
                    self.glibc.as_deref().and_then(crate::program::glibc_version),
                ) {
                    if n > have {
                        out +=
                            &wrap("    ", &format!("that build needs glibc {needs}, newer than the loader's"), "    ");
                    }
                }
            }
        }
        let elsewhere: Vec<&Missing> =
            self.missing.iter().filter(|m| m.candidates.is_empty() && !m.driver && !m.unshipped).collect();
        if !elsewhere.is_empty() {
            out += "  in no local store path:\n";
            for m in elsewhere {
                let likely = match (&m.likely_attribute, m.likely_from) {
                    (Some(a), Some("nix-locate")) => format!("; in {a}, says nix-locate"),
                    (Some(a), _) => format!("; likely {a} (from the doctor's table, not checked here)"),
                    (None, _) => String::new(),
                };
                out += &wrap("    ", &format!("{}{likely}; look it up with:", item(m)), "      ");
                // A command to paste: on a line of its own, never wrapped.
                out += &format!("      nix-locate --top-level /lib/{}\n", m.library);
            }
        }
        let unshipped: Vec<&Missing> = self.missing.iter().filter(|m| m.unshipped).collect();
        if !unshipped.is_empty() {
            out += "  the application's own, not shipped with it (what needs them cannot load anywhere):\n";
            let items: Vec<String> = unshipped.iter().map(|m| item(m)).collect();
            out += &wrap("    ", &items.join("; "), "    ");
        }
        let drivers: Vec<&Missing> = self.missing.iter().filter(|m| m.driver).collect();
        if !drivers.is_empty() {
            out += "  from the graphics or compute driver, not a package:\n";
            let items: Vec<String> = drivers.iter().map(|m| item(m)).collect();
            out += &wrap("    ", &items.join("; "), "    ");
        }
        out
    }
}

/// The lines to paste, each on a line of its own after what it is for.
fn fixes_text(f: &Fixes) -> String {
    let mut out = String::new();
    if let Some(line) = &f.one_off {
        out += "\nfix, for one run (until the garbage collector removes those store paths):\n";
        out += line;
        out.push('\n');
    }
    match (&f.nixpkgs_module, &f.shim_module) {
        (Some(nixpkgs), Some(shim)) => {
            out += "fix, for good, with nixpkgs' module:\n";
            out += &format!("{nixpkgs}\nor with this project's module:\n{shim}\n");
        }
        // A 32-bit program's: nixpkgs' module has no 32-bit library set.
        (None, Some(shim)) => out += &format!("fix, for good, with this project's module:\n{shim}\n"),
        _ => {}
    }
    if let Some(shell) = &f.mk_shell {
        out += "or in a project's mkShell, adding to the system's library path:\n";
        out += &format!("{shell}\n");
    }
    if !f.drivers.is_empty() {
        let dir =
            if f.variable.ends_with("_i686_linux") { crate::fixes::DRIVER_DIR32 } else { crate::fixes::DRIVER_DIR };
        out += &format!("for the driver's libraries (NixOS puts them in {dir}):\n");
        for line in &f.drivers {
            out += &format!("{line}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_wraps_at_80_columns_and_a_long_path_keeps_its_own_line() {
        let long = "word ".repeat(30);
        let out = wrap("note: ", long.trim_end(), "  ");
        assert!(out.lines().all(|l| l.len() <= 80), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("  word")), "{out}");
        let path = format!("/{}", "p".repeat(100));
        let out = wrap("  ", &format!("found in {path} (x)"), "    ");
        assert_eq!(out, format!("  found in\n    {path}\n    (x)\n"));
    }

    #[test]
    fn paste_lines_are_never_wrapped() {
        let line = format!("NIX_LD_LIBRARY_PATH=/{}:/b /prog", "x".repeat(300));
        let f = Fixes { one_off: Some(line.clone()), ..Fixes::default() };
        let text = fixes_text(&f);
        assert!(text.lines().any(|l| l == line), "{text}");
    }

    #[test]
    fn a_problems_lines_to_paste_are_whole_and_its_prose_wraps() {
        let paste = format!("programs.nix-ld-shim.libraries32 = with pkgs.pkgsi686Linux; [ {} ];", "pkg ".repeat(20));
        let prose = "the program's 32-bit libraries, and directories of your own in the option for them, which is long";
        let problem = Problem {
            kind: "not-covered",
            summary: "s".into(),
            fixes: vec![format!("{prose}:\n{paste}")],
            ..Problem::default()
        };
        let r = Report { target: "/p".into(), mode: "program", problems: vec![problem], ..Report::default() };
        let text = r.text();
        assert!(text.lines().any(|l| l.trim_start() == paste), "{text}");
        assert!(text.lines().all(|l| l.len() <= 80 || l.trim_start() == paste), "{text}");
    }

    #[test]
    fn the_lookup_command_for_a_library_in_no_store_path_is_a_whole_line() {
        let library = format!("lib{}.so.1", "long".repeat(20));
        let missing = vec![Missing {
            library: library.clone(),
            needed_by: vec!["/opt/app/bin/app".into()],
            candidates: vec![],
            likely_attribute: None,
            likely_from: None,
            driver: false,
            found_later: false,
            unshipped: false,
        }];
        let r = Report { target: "/opt/app/bin/app".into(), mode: "program", missing, ..Report::default() };
        let text = r.text();
        let command = format!("nix-locate --top-level /lib/{library}");
        assert!(text.lines().any(|l| l.trim_start() == command), "{text}");
    }

    #[test]
    fn twenty_seven_missing_libraries_from_twenty_directories_fit_in_sixty_lines() {
        let store = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz";
        let missing: Vec<Missing> = (0..27)
            .map(|i| Missing {
                library: format!("libthing{i}.so.{i}"),
                needed_by: vec![format!("/opt/app/lib/plugin{i}.so"), "/opt/app/bin/app".into(), "/opt/app/x".into()],
                candidates: vec![Candidate {
                    directory: format!("{store}-pkg{}-1.0/lib", i % 20),
                    attribute: Some(format!("pkg{}", i % 20)),
                    attribute_from: Some("store-name"),
                    confirmed: false,
                    needs_glibc: None,
                }],
                likely_attribute: None,
                likely_from: None,
                driver: false,
                found_later: false,
                unshipped: false,
            })
            .collect();
        let list: Vec<String> = (0..20).map(|i| format!("pkg{i}")).collect();
        let fixes = Fixes {
            variable: "NIX_LD_LIBRARY_PATH".into(),
            one_off: Some(format!("NIX_LD_LIBRARY_PATH={} /opt/app/bin/app", "/d:".repeat(20))),
            nixpkgs_module: Some(format!("programs.nix-ld.libraries = with pkgs; [ {} ];", list.join(" "))),
            shim_module: Some(format!("programs.nix-ld-shim.libraries = with pkgs; [ {} ];", list.join(" "))),
            mk_shell: Some("shellHook = ...;".into()),
            drivers: vec![],
        };
        let r = Report {
            target: "/opt/app".into(),
            directory: Some("/opt/app".into()),
            mode: "directory",
            kind: "a directory of 40 ELF objects".into(),
            missing,
            fixes: Some(fixes),
            ..Report::default()
        };
        let text = r.text();
        assert!(text.lines().count() <= 60, "{} lines:\n{text}", text.lines().count());
        assert_eq!(text.matches("0123456789abcdfghijklmnpqrsvwxyz-pkg3-1.0/lib").count(), 1, "{text}");
    }
}
