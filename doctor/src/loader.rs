//! The loader the shim would use for this environment, where the choice came from, the library
//! path it would hand ld.so, and whether that loader is usable: the shim's own decisions and
//! messages (`nix_ld::plan`, `nix_ld::elf`, `nix_ld::problem`), so the answers match by
//! construction.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;

use nix_ld::envscan;
use nix_ld::plan::{self, Source};
use nix_ld::problem::{Problem, PATH_MAX};
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
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The shim's choice for `env` (`NAME=value` entries, as the kernel passes them).
pub fn choose(env: &[Vec<u8>]) -> Choice {
    let scan = envscan::scan(env.iter().map(Vec::as_slice));
    let choice = plan::choose(&scan, false);
    let mut search = plan::search_path(&scan, &choice);
    search.leave_out(|dir| std::path::Path::new(std::ffi::OsStr::from_bytes(dir)).is_dir());
    Choice {
        loader: text(choice.loader),
        loader_from: text(choice.loader_source.describe(true)),
        loader_source: choice.loader_source,
        library_path: text(choice.library_path),
        library_path_from: text(choice.library_path_source.describe(false)),
        library_path_source: choice.library_path_source,
        handed: search.dirs().map(text).collect(),
        directories: search.nix_dirs().map(text).collect(),
        left_out: search.left_out().map(text).collect(),
        user_path: search.user.map(text),
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
/// the pieces (`Problem`, `PATH_MAX`, `elf::validate`), so [`inspect`] repeats it: keep the two in
/// step.
pub fn check(path: &str, from: Source) -> Result<(), (String, String)> {
    let problem = match inspect(path) {
        Ok(()) => return Ok(()),
        Err(problem) => problem,
    };
    let mut cause = Message::new(Text(Vec::new()));
    problem.write_cause(&mut cause);
    let cause = finish(cause);
    let mut hint = Message::new(Text(Vec::new()));
    problem.write_hint(&mut hint, from, false);
    Err((cause, finish(hint)))
}

fn finish(mut m: Message<Text>) -> String {
    m.end();
    let Text(bytes) = m.into_sink();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

fn inspect(path: &str) -> Result<(), Problem> {
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
    let mut head = vec![0u8; nix_ld::elf::HEAD_LEN];
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(Problem::Read(errno(e))),
        }
    }
    nix_ld::elf::validate(&head[..len], meta.len()).map(|_| ()).map_err(Problem::Elf)
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
}
