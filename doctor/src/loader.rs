//! The loader the shim would use for this environment, where the choice came from, the library
//! path it would hand ld.so, and whether that loader is usable: the shim's own decisions and
//! messages (`nix_ld::plan`, `nix_ld::elf`, `nix_ld::problem`), so the answers match by
//! construction. The doctor's build of that library is the x86-64 shim's; the 32-bit shim's
//! choice is made with its platform's names and rule (`nix_ld::target::I686`) and the defaults
//! compiled into the installed file.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;

use nix_ld::elf::{self, Elf32, Elf64, Fixed4K};
use nix_ld::envscan;
use nix_ld::plan::{self, Source};
use nix_ld::problem::{Problem, PATH_MAX};
use nix_ld::target::{self, Platform};
use nix_ld::text::{Message, Sink};

/// A message sink for the shim's message code.
struct Text(Vec<u8>);

impl Sink for Text {
    fn write_all(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// What the shim would do in this environment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Choice {
    pub loader: String,
    pub loader_from: String,
    /// Where the loader came from, as the shim's hint takes it.
    #[serde(skip)]
    pub loader_source: Source,
    /// Where the library path came from.
    #[serde(skip)]
    pub library_path_source: Source,
    pub library_path: String,
    pub library_path_from: String,
    /// The directories of the library path that exist, in order (the shim leaves out the others).
    pub directories: Vec<String>,
    pub left_out: Vec<String>,
    /// The user's own LD_LIBRARY_PATH, which ld.so searches first.
    pub user_path: Option<String>,
    /// The directories the shim hands ld.so as its library path, in order.
    pub handed: Vec<String>,
    /// The plain loader the shim passes over (one built for another platform), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed_over: Option<String>,
    /// The platform of the shim that chooses.
    #[serde(skip)]
    pub platform: Platform,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The shim's choice for `env` (`NAME=value` entries, as the kernel passes them).
pub fn choose(env: &[Vec<u8>]) -> Choice {
    let scan = envscan::scan(env.iter().map(Vec::as_slice));
    finish(target::THIS, &scan, plan::choose(&scan, false), None)
}

/// The choice of the shim for `platform` whose compiled-in loader and library path are
/// `compiled_in`, as that shim makes it: `NIX_LD_<system>` before the plain names, and a plain
/// loader built for another machine or class passed over, with the plain library path, where the
/// platform's rule holds (`nix_ld::plan::passes_over_for`).
pub fn choose_as(platform: Platform, compiled_in: (&str, &str), env: &[Vec<u8>]) -> Choice {
    let scan = envscan::scan(env.iter().map(Vec::as_slice));
    // `getenv`'s rule, as the shim's scan: the first entry of a name wins.
    let first = |name: &[u8]| {
        env.iter().find_map(|e| e.strip_prefix(name).and_then(|rest| rest.strip_prefix(b"="))).map(plan::trim_newline)
    };
    let (loader, loader_source) =
        match (first(platform.loader_system), scan.loader_generic.map(|f| plan::trim_newline(f.value))) {
            (Some(v), _) if !v.is_empty() => (v, Source::SystemSpecific),
            (_, Some(v)) if !v.is_empty() => (v, Source::Generic),
            _ => (compiled_in.0.as_bytes(), Source::CompiledIn),
        };
    let (library_path, library_path_source) =
        match (first(platform.library_path_system), scan.library_path_generic.map(|f| plan::trim_newline(f.value))) {
            (Some(v), _) => (v, Source::SystemSpecific),
            (_, Some(v)) => (v, Source::Generic),
            _ => (compiled_in.1.as_bytes(), Source::CompiledIn),
        };
    let mut choice = plan::Choice { loader, loader_source, library_path, library_path_source };
    let mut passed_over = None;
    if let Err(problem) = inspect_as(platform, &text(loader)) {
        if plan::passes_over_for(platform.plain_names_may_be_foreign, &choice, &problem) {
            let (cause, _) = words(platform, &problem, loader_source);
            passed_over = Some(format!(
                "NIX_LD names {}, which {cause}: the shim passes it over for its compiled-in loader{}",
                text(loader),
                if library_path_source == Source::Generic { ", and NIX_LD_LIBRARY_PATH with it" } else { "" }
            ));
            let (library_path, library_path_source) = match library_path_source {
                Source::Generic => (compiled_in.1.as_bytes(), Source::CompiledIn),
                source => (library_path, source),
            };
            choice = plan::Choice {
                loader: compiled_in.0.as_bytes(),
                loader_source: Source::CompiledIn,
                library_path,
                library_path_source,
            };
        }
    }
    finish(platform, &scan, choice, passed_over)
}

/// Where a setting came from, in the words of the shim for `platform`.
fn describe(platform: Platform, source: Source, loader: bool) -> String {
    match (source, loader) {
        (Source::SystemSpecific, true) => text(platform.loader_system),
        (Source::SystemSpecific, false) => text(platform.library_path_system),
        _ => text(source.describe(loader)),
    }
}

fn finish(
    platform: Platform,
    scan: &envscan::EnvScan<'_>,
    choice: plan::Choice<'_>,
    passed_over: Option<String>,
) -> Choice {
    let mut search = plan::search_path(scan, &choice);
    search.leave_out(|dir| std::path::Path::new(std::ffi::OsStr::from_bytes(dir)).is_dir());
    Choice {
        loader: text(choice.loader),
        loader_from: describe(platform, choice.loader_source, true),
        loader_source: choice.loader_source,
        library_path: text(choice.library_path),
        library_path_from: describe(platform, choice.library_path_source, false),
        library_path_source: choice.library_path_source,
        handed: search.dirs().map(text).collect(),
        directories: search.nix_dirs().map(text).collect(),
        left_out: search.left_out().map(text).collect(),
        user_path: search.user.map(text),
        passed_over,
        platform,
    }
}

/// The environment this process was started with, as the kernel's `NAME=value` entries.
pub fn environment() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            entry
        })
        .collect()
}

/// Checks the loader at `path` as the shim does before mapping it, in the same order, and says
/// what is wrong in the shim's words, with its hint.
///
/// The order itself (empty, too long, open, file type, headers) is the shim's `inspect` in
/// `src/loader.rs`, in the binary, where it makes its own system calls; the library offers only
/// the pieces (`Problem`, `PATH_MAX`, `elf::validate_for`), so `inspect_as` repeats it: keep the two in
/// step.
pub fn check(path: &str, from: Source) -> Result<(), (String, String)> {
    check_as(target::THIS, path, from)
}

/// [`check`] for the shim of `platform`.
pub fn check_as(platform: Platform, path: &str, from: Source) -> Result<(), (String, String)> {
    inspect_as(platform, path).map_err(|problem| words(platform, &problem, from))
}

/// The shim's cause and hint for `problem`, in the words of the shim for `platform`: the library
/// writes this build's (x86-64's), and each platform's table holds the same sentences in the same
/// order.
fn words(platform: Platform, problem: &Problem, from: Source) -> (String, String) {
    let mut cause = Message::new(Text(Vec::new()));
    problem.write_cause(&mut cause);
    let mut cause = end(cause);
    let mut hint = Message::new(Text(Vec::new()));
    problem.write_hint(&mut hint, from, false);
    let mut hint = end(hint);
    if platform != target::THIS {
        cause = cause.replacen(&text(target::THIS.not_native), &text(platform.not_native), 1);
        let ours = target::THIS.hints.split(|&b| b == 0).position(|h| h == hint.as_bytes());
        if let Some(theirs) = ours.and_then(|at| platform.hints.split(|&b| b == 0).nth(at)) {
            hint = text(theirs);
        }
    }
    (cause, hint)
}

fn end(mut m: Message<Text>) -> String {
    m.end();
    let Text(bytes) = m.into_sink();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

fn inspect_as(platform: Platform, path: &str) -> Result<(), Problem> {
    if path.is_empty() {
        return Err(Problem::NotConfigured);
    }
    if path.len() >= PATH_MAX {
        return Err(Problem::PathTooLong);
    }
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(0);
    let mut file = std::fs::File::open(path).map_err(|e| Problem::Open(errno(e)))?;
    let meta = file.metadata().map_err(|e| Problem::Read(errno(e)))?;
    if meta.is_dir() {
        return Err(Problem::Directory);
    }
    if !meta.is_file() || meta.file_type().is_fifo() {
        return Err(Problem::NotRegularFile);
    }
    let mut head = vec![0u8; elf::HEAD_LEN];
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(Problem::Read(errno(e))),
        }
    }
    let (head, size) = (&head[..len], meta.len());
    let checked = match platform.class {
        2 => elf::validate_for::<Elf64, _>(head, size, platform.machine, Fixed4K).map(|_| ()),
        _ => elf::validate_for::<Elf32, _>(head, size, platform.machine, Fixed4K).map(|_| ()),
    };
    checked.map_err(Problem::Elf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(entries: &[&str]) -> Vec<Vec<u8>> {
        entries.iter().map(|e| e.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_choice_is_the_shims() {
        let c = choose(&env(&["NIX_LD=/x/ld.so", "NIX_LD_LIBRARY_PATH=/nonexistent/a:/tmp", "LD_LIBRARY_PATH=/u"]));
        assert_eq!((c.loader.as_str(), c.loader_from.as_str()), ("/x/ld.so", "NIX_LD"));
        assert_eq!(
            (c.library_path.as_str(), c.library_path_from.as_str()),
            ("/nonexistent/a:/tmp", "NIX_LD_LIBRARY_PATH")
        );
        assert_eq!(c.directories, ["/tmp"]);
        assert_eq!(c.left_out, ["/nonexistent/a"]);
        assert_eq!(c.user_path.as_deref(), Some("/u"));
        let c = choose(&env(&[]));
        assert_eq!(c.loader_from, "the compiled-in default");
    }

    #[test]
    fn a_bad_loader_gets_the_shims_message_and_hint() {
        let (cause, hint) = check("/nonexistent/ld.so", Source::Generic).unwrap_err();
        assert_eq!(cause, "does not exist");
        assert_eq!(hint, "fix NIX_LD, or unset it to use the compiled-in default");
        let (cause, _) = check("/", Source::Generic).unwrap_err();
        assert_eq!(cause, "is a directory");
        let (cause, _) = check("", Source::CompiledIn).unwrap_err();
        assert!(cause.starts_with("is not configured"), "{cause}");
    }

    const DEFAULTS32: (&str, &str) = ("/d32/ld.so", "/d32/lib");

    #[test]
    fn the_32_bit_shim_reads_its_own_names_first() {
        let c = choose_as(
            target::I686,
            DEFAULTS32,
            &env(&["NIX_LD_i686_linux=/32/ld.so", "NIX_LD_LIBRARY_PATH_i686_linux=/32/lib", "NIX_LD_LIBRARY_PATH=/64"]),
        );
        assert_eq!((c.loader.as_str(), c.loader_from.as_str()), ("/32/ld.so", "NIX_LD_i686_linux"));
        assert_eq!(
            (c.library_path.as_str(), c.library_path_from.as_str()),
            ("/32/lib", "NIX_LD_LIBRARY_PATH_i686_linux")
        );
        let c = choose_as(target::I686, DEFAULTS32, &env(&[]));
        assert_eq!((c.loader.as_str(), c.library_path.as_str()), DEFAULTS32);
        assert_eq!(c.loader_from, "the compiled-in default");
    }

    #[test]
    fn the_32_bit_shim_passes_over_a_plain_64_bit_loader_with_its_library_path() {
        let loader64 = "/lib64/ld-linux-x86-64.so.2";
        if !std::path::Path::new(loader64).exists() {
            eprintln!("SKIP: no {loader64} on this machine");
            return;
        }
        let plain = [format!("NIX_LD={loader64}"), "NIX_LD_LIBRARY_PATH=/64/lib".into()];
        let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
        let c = choose_as(target::I686, DEFAULTS32, &env(&plain));
        assert_eq!((c.loader.as_str(), c.library_path.as_str()), DEFAULTS32);
        let why = c.passed_over.unwrap();
        assert!(why.contains("is not a 32-bit i386 ELF file (it is x86-64)"), "{why}");
        // The 64-bit shim takes it as it is, and a system-specific loader is never passed over.
        assert_eq!(choose(&env(&plain)).loader, loader64);
        let c = choose_as(target::I686, DEFAULTS32, &env(&[&format!("NIX_LD_i686_linux={loader64}")]));
        assert_eq!((c.loader.as_str(), c.passed_over.as_deref()), (loader64, None));
        let (cause, hint) = check_as(target::I686, loader64, c.loader_source).unwrap_err();
        assert!(cause.starts_with("is not a 32-bit i386 ELF file"), "{cause}");
        assert!(hint.contains("NIX_LD_i686_linux at the 32-bit glibc loader"), "{hint}");
    }
}
