//! The examination, in the order a user needs it: what the target is, the loader the shim would
//! choose, every library the loader would not find (for a directory, for every object under it),
//! where the store has each, and the fixes for all of them at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::cli::Target;
use crate::ldso;
use crate::loader::{self, Choice};
use crate::object;
use crate::program;
use crate::report::{Candidate, Foreign, Missing, Problem, Report, SCHEMA_VERSION};
use crate::resolve::{Resolution, Resolver};
use crate::status::{self, Installed};
use crate::{attributes, store};
use nix_ld::target::{self, Platform};

/// Rounds of "add what the store has, look again" before giving up: each finds what the
/// libraries added in the last one need and cannot find through their own RUNPATH.
const MAX_ROUNDS: usize = 8;

fn new_report(target: &str) -> Report {
    Report { schema_version: SCHEMA_VERSION, target: target.to_string(), ..Report::default() }
}

/// Examines a target; Err says, in one phrase, why it could not be examined at all.
pub fn examine(target: &Target, given: &str) -> Result<Report, String> {
    match target {
        Target::File(path) => file(path, given),
        Target::Directory(dir) => directory(dir, given),
    }
}

fn file(path: &Path, given: &str) -> Result<Report, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("it does not exist".into()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err("it is not readable (permission denied)".into())
        }
        Err(e) => return Err(format!("it cannot be read ({e})")),
    };
    let mut report = new_report(given);
    if let Some(interpreter) = program::shebang(&bytes) {
        report.mode = "script";
        script(&mut report, &interpreter);
        return Ok(report);
    }
    let Some(object) = object::parse(&bytes) else {
        return Err("it is neither an ELF program or library nor a #! script".into());
    };
    let absolute = program::absolute(path);
    report.examined.push(absolute.display().to_string());
    if object.is_static {
        report.mode = "static";
        report.kind = "a statically linked program".into();
        report.notes.push("it needs no loader and no libraries: nothing for nix-ld to do".into());
        return Ok(report);
    }
    let arch = program::machine_name(object.machine);
    match &object.interpreter {
        Some(interpreter) => {
            report.mode = "program";
            let class = if object.class64 { program::Class::Elf64 } else { program::Class::Elf32 };
            if let Some(shim) = dynamic(&mut report, class, object.machine, interpreter) {
                shim_case(&mut report, &[absolute], &HashMap::new(), &shim);
            }
        }
        None => {
            report.mode = "library";
            report.kind = format!("a shared library, plugin or extension module for {arch}");
            let shim32 = if object.is_for(target::I686) { Shim::i686_at(program::GLIBC_I386) } else { None };
            if let Some(shim) = shim32 {
                shim_case(&mut report, &[absolute], &HashMap::new(), &shim);
                return Ok(report);
            }
            if !object.is_x86_64() {
                report.problems.push(Problem {
                    kind: "not-covered",
                    summary: format!("a library for {arch}: the x86-64 loader cannot load it"),
                    fixes: vec!["get the x86-64 (x86_64, amd64) build of what it belongs to".into()],
                    ..Problem::default()
                });
                return Ok(report);
            }
            shim_case(&mut report, &[absolute], &HashMap::new(), &Shim::X86_64);
        }
    }
    Ok(report)
}

/// Every ELF object under `dir`: regular files only, links neither followed nor left through.
fn walk(dir: &Path, objects: &mut Vec<PathBuf>, links: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, objects, links);
        } else if kind.is_symlink() {
            links.push(path);
        } else if kind.is_file() && object::looks_like_elf(&path) {
            objects.push(path);
        }
    }
}

fn directory(dir: &Path, given: &str) -> Result<Report, String> {
    let root = std::fs::canonicalize(dir).map_err(|e| format!("it cannot be read ({e})"))?;
    let mut report = new_report(given);
    report.mode = "directory";
    let (mut files, mut links) = (Vec::new(), Vec::new());
    walk(&root, &mut files, &mut links);
    let mut provided: HashMap<String, PathBuf> = HashMap::new();
    let mut examined = Vec::new();
    let (mut programs, mut libraries) = (0, 0);
    for path in files {
        let Some(object) = object::read(&path) else { continue };
        if !object.is_x86_64() {
            report.other_architectures.push(Foreign {
                path: path.strip_prefix(&root).unwrap_or(&path).display().to_string(),
                architecture: program::machine_name(object.machine),
            });
            continue;
        }
        if object.is_static {
            continue;
        }
        if object.is_program() {
            programs += 1;
        } else {
            libraries += 1;
        }
        // What the tree provides: each object's soname and its file name.
        if let Some(soname) = &object.soname {
            provided.entry(soname.clone()).or_insert_with(|| path.clone());
        }
        if let Some(name) = path.file_name() {
            provided.entry(name.to_string_lossy().into_owned()).or_insert_with(|| path.clone());
        }
        examined.push(path);
    }
    // A link inside the tree to one of its objects provides that object under the link's name.
    for link in links {
        let Ok(target) = std::fs::canonicalize(&link) else { continue };
        if target.starts_with(&root) && examined.contains(&target) {
            if let Some(name) = link.file_name() {
                provided.entry(name.to_string_lossy().into_owned()).or_insert(target);
            }
        }
    }
    report.kind = format!(
        "a directory of {} ELF object{} for x86-64 ({programs} program{}, {libraries} librar{})",
        examined.len(),
        if examined.len() == 1 { "" } else { "s" },
        if programs == 1 { "" } else { "s" },
        if libraries == 1 { "y" } else { "ies" },
    );
    report.examined = examined.iter().map(|p| p.display().to_string()).collect();
    if examined.is_empty() {
        report.notes.push("no ELF object of this architecture under it: nothing for nix-ld to do".into());
        return Ok(report);
    }
    report.directory = Some(root.display().to_string());
    shim_case(&mut report, &examined, &provided, &Shim::X86_64);
    for m in &mut report.missing {
        m.unshipped = m.candidates.is_empty() && m.likely_attribute.is_none() && own_family(&m.library, &provided);
    }
    Ok(report)
}

/// Whether `library` belongs to the family of a soname the tree provides: a common prefix of at
/// least six characters that holds a digit (`libQt6` of `libQt6Pdf.so.6` and `libQt6Core.so.6`;
/// not `libxcb-` or `libssl.so.`).
pub fn own_family(library: &str, provided: &HashMap<String, PathBuf>) -> bool {
    provided.keys().any(|p| {
        let common = library.bytes().zip(p.bytes()).take_while(|(a, b)| a == b).count();
        common >= 6 && library.as_bytes()[..common].iter().any(u8::is_ascii_digit)
    })
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
            "or, on NixOS, show what is on PATH in /bin and /usr/bin:\nservices.envfs.enable = true;".into(),
        ],
        ..Problem::default()
    });
}

/// The shim a program or library goes through: the x86-64 one, whose logic and defaults this
/// build of the library has, or the installed 32-bit one, with the defaults compiled into it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shim {
    X86_64,
    I686 { loader: String, library_path: String },
}

impl Shim {
    /// The installed 32-bit shim, if `path` is this project's.
    fn i686_at(path: &str) -> Option<Shim> {
        match status::installed(path) {
            Installed::Shim { loader, library_path, platform: Some(p), .. } if *p == target::I686 => {
                Some(Shim::I686 { loader, library_path })
            }
            _ => None,
        }
    }

    /// Its choice in this environment.
    fn choice(&self) -> Choice {
        match self {
            Shim::X86_64 => loader::choose(&loader::environment()),
            Shim::I686 { loader, library_path } => {
                loader::choose_as(target::I686, (loader, library_path), &loader::environment())
            }
        }
    }
}

/// A 32-bit x86 program: the 32-bit shim's case when `/lib/ld-linux.so.2` (or the loader it
/// names) is this project's 32-bit shim; otherwise what installs it.
fn thirty_two_bit(report: &mut Report, interpreter: &str) -> Option<Shim> {
    if interpreter != program::GLIBC_I386 && !program::is_shim(interpreter) {
        if program::exists(interpreter) {
            report.notes.push(format!("its loader {interpreter} exists here: it does not go through nix-ld"));
        } else {
            report.problems.push(Problem {
                kind: "not-covered",
                summary: format!("its loader {interpreter} does not exist here"),
                fixes: vec![format!(
                    "point it at the 32-bit nix-ld shim:\npatchelf --set-interpreter {} PROGRAM",
                    program::GLIBC_I386
                )],
                ..Problem::default()
            });
        }
        return None;
    }
    let installed = status::installed(interpreter);
    if let Some(shim) = Shim::i686_at(interpreter) {
        if let Installed::Shim { version, .. } = installed {
            report.notes.push(format!("its loader {interpreter} is the 32-bit nix-ld shim ({version})"));
        }
        return Some(shim);
    }
    let (kind, what) = match &installed {
        Installed::Nothing => ("shim-not-installed", "nothing is installed there".to_string()),
        Installed::Glibc => (
            "not-covered",
            "it is glibc's own 32-bit loader, not nix-ld: the program gets this system's libraries, and no NIX_LD variable is read".into(),
        ),
        Installed::Shim { version, .. } => ("not-covered", format!("it is {version}, but not its 32-bit x86 build")),
        Installed::Other => (
            "not-covered",
            "it is a loader with no nix-ld version record (nixpkgs' nix-ld set by hand as environment.ldso32, or an older build of this project), so what it would load cannot be told".into(),
        ),
    };
    let mut fixes = vec![
        "this project's module, which on x86_64 installs its 32-bit shim at /lib/ld-linux.so.2 too (programs.nix-ld-shim.package32):\nprograms.nix-ld-shim.enable = true;".into(),
        "with the program's 32-bit libraries (directories of your own go in programs.nix-ld-shim.libraryDirectories32):\nprograms.nix-ld-shim.libraries32 = with pkgs.pkgsi686Linux; [ ... ];".into(),
    ];
    if matches!(installed, Installed::Other) {
        fixes.push("remove your own environment.ldso32 setting: the module's assertion says where it is".into());
    }
    fixes.push("or run it in nixpkgs' FHS environment, which has 32-bit libraries:\nsteam-run PROGRAM".into());
    report.problems.push(Problem {
        kind,
        summary: format!("a 32-bit x86 program, and at its loader {interpreter} {what}"),
        fixes,
        ..Problem::default()
    });
    None
}

/// Classifies a dynamically linked program by the loader it names; the shim it goes through, for
/// the shim's case.
fn dynamic(report: &mut Report, class: program::Class, machine: u16, interpreter: &str) -> Option<Shim> {
    let arch = program::machine_name(machine);
    report.kind = format!("a dynamically linked {arch} program, loader {interpreter}");
    let not_covered =
        |summary: String, fixes: Vec<String>| Problem { kind: "not-covered", summary, fixes, ..Problem::default() };
    if machine == program::EM_X86_64 && class == program::Class::Elf64 {
        if interpreter == program::GLIBC_X86_64 || program::is_shim(interpreter) {
            if !program::exists(interpreter) {
                report.problems.push(Problem {
                    kind: "shim-not-installed",
                    summary: format!("nothing is installed at {interpreter}"),
                    fixes: vec![
                        "with this project's module:\nprograms.nix-ld-shim.enable = true;".into(),
                        "or with nixpkgs' module:\nprograms.nix-ld.enable = true;".into(),
                    ],
                    ..Problem::default()
                });
                return None;
            }
            return Some(Shim::X86_64);
        }
        if interpreter.contains("ld-musl") {
            report.problems.push(not_covered(
                format!("a musl program ({interpreter}): nix-ld serves glibc programs only"),
                vec![
                    "run it with musl's loader:\n$(nix build --no-link --print-out-paths nixpkgs#musl)/lib/ld-musl-x86_64.so.1 PROGRAM".into(),
                    "or set its interpreter once, to that path:\npatchelf --set-interpreter \"$(nix build --no-link --print-out-paths nixpkgs#musl)/lib/ld-musl-x86_64.so.1\" PROGRAM".into(),
                ],
            ));
            return None;
        }
        if program::exists(interpreter) {
            report.notes.push(format!("its loader {interpreter} exists here: it does not go through nix-ld"));
            return None;
        }
        report.problems.push(not_covered(
            format!("its loader {interpreter} does not exist here"),
            vec![format!("point it at the nix-ld shim:\npatchelf --set-interpreter {} PROGRAM", program::GLIBC_X86_64)],
        ));
        return None;
    }
    if machine == program::EM_386 && class == program::Class::Elf32 {
        return thirty_two_bit(report, interpreter);
    }
    report.problems.push(not_covered(
        format!("a program for {arch}: this machine runs x86-64 programs"),
        vec!["get a build of the program for x86-64 (x86_64 or amd64 in download names)".into()],
    ));
    None
}

/// The shim's choice and its loader, checked as the shim checks it; None (with a problem in
/// the report) when that loader is unusable.
pub fn choose_loader(report: &mut Report) -> Option<Choice> {
    check_choice(report, Shim::X86_64.choice())
}

fn check_choice(report: &mut Report, choice: Choice) -> Option<Choice> {
    report.choice = Some(choice.clone());
    if let Some(why) = &choice.passed_over {
        report.notes.push(why.clone());
    }
    if let Err((cause, hint)) = loader::check_as(choice.platform, &choice.loader, choice.loader_source) {
        report.problems.push(Problem {
            kind: "loader-unusable",
            summary: format!("the loader the shim would use, {} (from {}), {cause}", choice.loader, choice.loader_from),
            fixes: vec![hint],
            ..Problem::default()
        });
        return None;
    }
    report.glibc = glibc_of(&choice.loader);
    Some(choice)
}

/// The shim's case for `roots` (one program or library, or every object of a directory):
/// resolve, then look in the store for what is missing, add it, and look again, until nothing
/// more is found; then write the fixes for all of it.
fn shim_case(report: &mut Report, roots: &[PathBuf], provided: &HashMap<String, PathBuf>, shim: &Shim) {
    let Some(choice) = check_choice(report, shim.choice()) else { return };
    let defaults = ldso::defaults(&choice.loader).unwrap_or_else(|| {
        report.notes.push(
            "the loader does not state its default directories (glibc before 2.33): only the library path and RUNPATHs were searched".into(),
        );
        ldso::Defaults::default()
    });
    let mut resolver =
        Resolver::new_for(choice.platform, choice.handed.clone(), defaults, Some(PathBuf::from(&choice.loader)));
    let mut resolution = Resolution::default();
    for root in roots {
        resolver.resolve(root, provided, &mut resolution);
    }
    versions(report, &resolution);
    let first: BTreeMap<String, BTreeSet<PathBuf>> = resolution.missing.clone();
    let mut all = first.clone();
    if !all.is_empty() {
        let index = store::Index::read(&store::root());
        let mut pick = Pick::default();
        for _ in 0..MAX_ROUNDS {
            if !pick.add(&index, &all, choice.platform) {
                break;
            }
            resolver.library_path = choice.handed.iter().cloned().chain(pick.added.iter().cloned()).collect();
            let mut again = Resolution::default();
            for root in roots {
                resolver.resolve(root, provided, &mut again);
            }
            for (library, needers) in again.missing {
                all.entry(library).or_default().extend(needers);
            }
        }
        let start = (report.mode == "program").then(|| crate::fixes::quote(&report.target));
        conclude(report, &choice, &index, &all, &first, &pick, start);
    }
    report.examined.sort();
    for path in &resolution.loaded {
        let path = path.display().to_string();
        if !report.examined.contains(&path) && report.mode != "directory" {
            report.examined.push(path);
        }
    }
    report.notes.push(
        "libraries opened later with dlopen are not seen without running it: nix-ld-doctor --run -- PROGRAM ARGS runs it and reports them".into(),
    );
}

/// The store directories chosen so far, and for which library each.
#[derive(Default)]
pub struct Pick {
    pub chosen: BTreeMap<String, Candidate>,
    pub added: Vec<String>,
}

impl Pick {
    /// Chooses a store directory for each library of `all` that has none yet; true when that
    /// added a directory.
    pub fn add(&mut self, index: &store::Index, all: &BTreeMap<String, BTreeSet<PathBuf>>, platform: Platform) -> bool {
        let before = self.added.len();
        for library in all.keys() {
            if self.chosen.contains_key(library) || attributes::is_driver(library) {
                continue;
            }
            if let Some(c) = best(index, library, &self.added, platform) {
                if !self.added.contains(&c.directory) {
                    self.added.push(c.directory.clone());
                }
                self.chosen.insert(library.clone(), c);
            }
        }
        self.added.len() > before
    }
}

/// Writes the missing libraries and their fixes into `report`; `first` are those missing
/// before anything was added, `start` the shell words that start the program (None: an
/// `export` line).
pub fn conclude(
    report: &mut Report,
    choice: &Choice,
    index: &store::Index,
    all: &BTreeMap<String, BTreeSet<PathBuf>>,
    first: &BTreeMap<String, BTreeSet<PathBuf>>,
    pick: &Pick,
    start: Option<String>,
) {
    let names: Vec<String> = all.keys().cloned().collect();
    let located = store::nix_locate(&names).unwrap_or_default();
    report.missing = all
        .iter()
        .map(|(library, needers)| {
            missing(
                index,
                library,
                needers,
                &pick.chosen,
                !first.contains_key(library),
                located.get(library),
                choice.platform,
            )
        })
        .collect();
    confirm(report);
    report.fixes = Some(crate::fixes::write(report, choice, &pick.added, start));
}

/// Confirms the attributes of the store directories chosen against the local nixpkgs, if there
/// is one: the same store path is "confirmed", another build says the attribute evaluates, no
/// value says it is none of that nixpkgs (and it is left out of the lines to paste).
fn confirm(report: &mut Report) {
    let mut attributes: Vec<String> = Vec::new();
    for m in &report.missing {
        if let Some(a) = m.candidates.first().filter(|c| !c.confirmed).and_then(|c| c.attribute.clone()) {
            if !attributes.contains(&a) {
                attributes.push(a);
            }
        }
    }
    if attributes.is_empty() {
        return;
    }
    let values = match crate::nixeval::evaluate(&attributes) {
        Ok(values) => values,
        Err(why) => {
            if crate::nixeval::local_nixpkgs().is_some() {
                report.notes.push(format!("the attributes could not be confirmed in the local nixpkgs: {why}"));
            }
            return;
        }
    };
    for m in &mut report.missing {
        let Some(c) = m.candidates.first_mut() else { continue };
        let Some(at) = c.attribute.as_ref().and_then(|a| attributes.iter().position(|x| x == a)) else { continue };
        let entry = Path::new(&c.directory).parent().map(|p| p.display().to_string());
        match &values[at] {
            Some(path) if Some(path) == entry.as_ref() => {
                c.confirmed = true;
                c.attribute_from = Some("nixpkgs");
            }
            Some(_) => c.attribute_from = Some("nixpkgs-other-build"),
            None => c.attribute_from = Some("not-in-nixpkgs"),
        }
    }
}

/// The store directory to use for `library`: one already chosen for another library if it has
/// it (fewer directories), else one with an attribute, else the first.
fn best(index: &store::Index, library: &str, added: &[String], platform: Platform) -> Option<Candidate> {
    let mut candidates = candidates(index, library, platform);
    candidates.sort_by_key(|c| (!added.contains(&c.directory), c.attribute.is_none()));
    candidates.into_iter().next()
}

/// The store directories that hold `library` built for `platform`'s loader.
fn candidates(index: &store::Index, library: &str, platform: Platform) -> Vec<Candidate> {
    index
        .holders(library)
        .into_iter()
        .filter(|directory| object::read(&directory.join(library)).is_some_and(|o| o.is_for(platform)))
        .map(|directory| {
            let name = directory
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let needs_glibc = object::read(&directory.join(library))
                .map(|o| o.version_needs.into_iter().filter_map(|(_, v)| program::glibc_version(&v)).max())
                .and_then(|v| v.map(|(a, b)| format!("{a}.{b}")));
            let attribute = store::attribute(&name);
            Candidate {
                directory: directory.display().to_string(),
                attribute_from: attribute.as_ref().map(|_| "store-name"),
                attribute,
                confirmed: false,
                needs_glibc,
            }
        })
        .collect()
}

fn missing(
    index: &store::Index,
    library: &str,
    needers: &BTreeSet<PathBuf>,
    chosen: &BTreeMap<String, Candidate>,
    found_later: bool,
    located: Option<&Vec<String>>,
    platform: Platform,
) -> Missing {
    let mut all = candidates(index, library, platform);
    if let Some(c) = chosen.get(library) {
        all.retain(|x| x.directory != c.directory);
        all.insert(0, c.clone());
    }
    if let Some(located) = located {
        for c in &mut all {
            if c.attribute.as_ref().is_some_and(|a| located.contains(a)) {
                c.confirmed = true;
                c.attribute_from = Some("nix-locate");
            }
        }
    }
    let driver = attributes::is_driver(library);
    Missing {
        library: library.to_string(),
        needed_by: needers.iter().map(|p| p.display().to_string()).collect(),
        // nix-index knows what is in no local store path; the table is the fallback.
        likely_from: if all.is_empty() && !driver {
            match located.and_then(|l| l.first()) {
                Some(_) => Some("nix-locate"),
                None => attributes::for_soname(library).map(|_| "table"),
            }
        } else {
            None
        },
        likely_attribute: if all.is_empty() && !driver {
            located.and_then(|l| l.first().cloned()).or_else(|| attributes::for_soname(library))
        } else {
            None
        },
        candidates: all,
        driver,
        found_later,
        unshipped: false,
    }
}

fn versions(report: &mut Report, resolution: &Resolution) {
    for (version, library, required_by) in &resolution.missing_versions {
        // In ld.so's words ("version `GLIBC_2.38' not found"), so that its message can be matched.
        let glibc = report.glibc.as_deref().map_or(String::new(), |g| format!("; the loader's glibc is {g}"));
        let (library, required_by) = (library.display().to_string(), required_by.display().to_string());
        report.problems.push(Problem {
            kind: "missing-symbol-version",
            summary: format!("{version} is not found in {library} (needed by {required_by}){glibc}"),
            fixes: vec![
                "use the loader of a newer glibc: NIX_LD from a newer nixpkgs (stdenv.cc.bintools.dynamicLinker)"
                    .into(),
                "or get a build made for an older glibc".into(),
            ],
            library: Some(library),
            version: Some(version.clone()),
            needed_by: vec![required_by],
            ..Problem::default()
        });
    }
}

/// The glibc version of a loader, from `ld.so --version` ("... release version 2.36.").
pub fn glibc_of(loader: &str) -> Option<String> {
    let out =
        std::process::Command::new(loader).arg("--version").stdin(std::process::Stdio::inherit()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    let version = first.rsplit("version ").next()?.trim().trim_end_matches('.');
    program::glibc_version(version).map(|(a, b)| format!("{a}.{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_of_the_trees_own_family_is_told_apart() {
        let provided: HashMap<String, PathBuf> = ["libQt6Core.so.6", "libssl.so.1.1", "libxcb-foo.so.0"]
            .iter()
            .map(|s| (s.to_string(), PathBuf::new()))
            .collect();
        assert!(own_family("libQt6Pdf.so.6", &provided));
        assert!(own_family("libQt63DCore.so.6", &provided));
        assert!(!own_family("libssl.so.3", &provided));
        assert!(!own_family("libxcb-icccm.so.4", &provided));
        assert!(!own_family("libgtk-3.so.0", &provided));
    }
}
