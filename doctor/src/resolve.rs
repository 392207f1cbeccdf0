//! The libraries an object needs, resolved as glibc's ld.so resolves them when the object is
//! loaded into a program started through the shim, without running anything.
//!
//! For each DT_NEEDED name of an object L, in ld.so's order (`_dl_map_object`): an object
//! already loaded under that name or soname; a name holding a `/` as a path; then, only when L
//! has no DT_RUNPATH, the DT_RPATH of L, of the object that loaded L, and so on up to the first
//! object; then the library path (what the shim hands ld.so: the user's LD_LIBRARY_PATH, then
//! the Nix directories); then L's DT_RUNPATH; then, unless L is marked DF_1_NODEFLIB, the
//! loader's cache and its system directories. `$ORIGIN` is the directory of the object whose
//! path it is in. A file of another class or machine is passed over, as ld.so passes over it.
//! Objects are loaded breadth first, as ld.so loads them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::ldso::Defaults;
use crate::object::{self, Object};
use nix_ld::target::{self, Platform};

/// What resolving one or more objects found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Every object loaded.
    pub loaded: BTreeSet<PathBuf>,
    /// Each library not found, and the objects that need it.
    pub missing: BTreeMap<String, BTreeSet<PathBuf>>,
    /// (version, library that lacks it, object that needs it from that library).
    pub missing_versions: BTreeSet<(String, PathBuf, PathBuf)>,
}

/// The search ld.so would make, with memory of the directories and files it has read.
pub struct Resolver {
    /// The library path the shim hands ld.so, in order.
    pub library_path: Vec<String>,
    pub defaults: Defaults,
    /// The loader's cache (soname → file).
    pub cache: HashMap<String, String>,
    /// The loader: libc names it (`ld-linux-x86-64.so.2`) and it is always there.
    pub loader: Option<PathBuf>,
    /// The platform of the loader: only its machine's and class's objects are loadable.
    pub platform: Platform,
    listings: HashMap<PathBuf, Option<HashSet<OsString>>>,
    objects: HashMap<PathBuf, Option<Rc<Object>>>,
}

struct Node {
    path: PathBuf,
    object: Rc<Object>,
    loader: Option<usize>,
}

/// `$ORIGIN` and `${ORIGIN}` replaced by `origin`, `$PLATFORM` by `cpu` (x86_64; i686 for a
/// 32-bit process, as the kernel's AT_PLATFORM says); None for a directory with another token
/// (`$LIB` depends on how that glibc was built: not guessed).
pub fn expand(dir: &str, origin: &Path, cpu: &str) -> Option<String> {
    let origin = origin.to_string_lossy();
    let text = dir
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin)
        .replace("${PLATFORM}", cpu)
        .replace("$PLATFORM", cpu);
    (!text.contains('$')).then_some(text)
}

impl Resolver {
    /// A resolver for a loader of `platform`.
    pub fn new_for(
        platform: Platform,
        library_path: Vec<String>,
        defaults: Defaults,
        loader: Option<PathBuf>,
    ) -> Resolver {
        let cache = match &defaults.cache {
            Some(file) => {
                std::fs::read(file).map(|b| crate::ldso::parse_cache(&b, platform.machine)).unwrap_or_default()
            }
            None => HashMap::new(),
        };
        Resolver { library_path, defaults, cache, loader, platform, listings: HashMap::new(), objects: HashMap::new() }
    }

    /// `$PLATFORM` for this resolver's processes.
    fn cpu(&self) -> &'static str {
        if self.platform == target::I686 {
            "i686"
        } else {
            "x86_64"
        }
    }

    /// The object at `path`, read once.
    pub fn object(&mut self, path: &Path) -> Option<Rc<Object>> {
        if let Some(known) = self.objects.get(path) {
            return known.clone();
        }
        let read = object::read(path).map(Rc::new);
        self.objects.insert(path.to_path_buf(), read.clone());
        read
    }

    fn listed(&mut self, dir: &Path, name: &str) -> bool {
        let listing = self.listings.entry(dir.to_path_buf()).or_insert_with(|| {
            std::fs::read_dir(dir).ok().map(|entries| entries.filter_map(Result::ok).map(|e| e.file_name()).collect())
        });
        listing.as_ref().is_some_and(|names| names.contains(std::ffi::OsStr::new(name)))
    }

    /// `dir/name` if it is there and loadable (an ELF object of the loader's platform).
    fn try_dir(&mut self, dir: &str, name: &str) -> Option<PathBuf> {
        // An empty directory name is the current directory, for ld.so as for a shell.
        let dir = Path::new(if dir.is_empty() { "." } else { dir });
        if !self.listed(dir, name) {
            return None;
        }
        self.loadable(&dir.join(name))
    }

    fn loadable(&mut self, path: &Path) -> Option<PathBuf> {
        let platform = self.platform;
        self.object(path).filter(|o| o.is_for(platform)).map(|_| path.to_path_buf())
    }

    /// Where ld.so would find `name` for `nodes[at]`.
    fn find(&mut self, nodes: &[Node], at: usize, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            return self.loadable(Path::new(name));
        }
        let origin_of = |i: usize| nodes[i].path.parent().map(Path::to_path_buf).unwrap_or_default();
        let requester = &nodes[at].object;
        if requester.runpath.is_empty() {
            let mut link = Some(at);
            while let Some(i) = link {
                for dir in nodes[i].object.rpath.clone() {
                    if let Some(found) = expand(&dir, &origin_of(i), self.cpu()).and_then(|d| self.try_dir(&d, name)) {
                        return Some(found);
                    }
                }
                link = nodes[i].loader;
            }
        }
        for dir in self.library_path.clone() {
            if let Some(found) = self.try_dir(&dir, name) {
                return Some(found);
            }
        }
        for dir in requester.runpath.clone() {
            if let Some(found) = expand(&dir, &origin_of(at), self.cpu()).and_then(|d| self.try_dir(&d, name)) {
                return Some(found);
            }
        }
        if requester.nodeflib {
            return None;
        }
        if let Some(file) = self.cache.get(name).cloned() {
            if let Some(found) = self.loadable(Path::new(&file)) {
                return Some(found);
            }
        }
        for dir in self.defaults.directories.clone() {
            if let Some(found) = self.try_dir(&dir, name) {
                return Some(found);
            }
        }
        None
    }

    /// Resolves everything `root` needs, as if it were loaded first (a program, or a library
    /// opened by a program that names no search path of its own). `provided` maps sonames to
    /// objects taken as already loaded (a tree's own libraries). Adds to `out`.
    pub fn resolve(&mut self, root: &Path, provided: &HashMap<String, PathBuf>, out: &mut Resolution) {
        let Some(object) = self.object(root) else { return };
        let mut nodes = vec![Node { path: root.to_path_buf(), object, loader: None }];
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
        by_path.insert(root.to_path_buf(), 0);
        if let Some(soname) = &nodes[0].object.soname {
            names.insert(soname.clone(), 0);
        }
        let mut i = 0;
        while i < nodes.len() {
            for name in nodes[i].object.needed.clone() {
                if names.contains_key(&name) || provided.contains_key(&name) {
                    continue;
                }
                if name.starts_with("ld-linux") && self.loader.is_some() {
                    continue;
                }
                match self.find(&nodes, i, &name) {
                    Some(path) => {
                        // The same file under another name is one object, as ld.so sees it.
                        let at = match by_path.get(&path) {
                            Some(&at) => at,
                            None => {
                                let Some(object) = self.object(&path) else { continue };
                                let soname = object.soname.clone();
                                nodes.push(Node { path: path.clone(), object, loader: Some(i) });
                                let at = nodes.len() - 1;
                                by_path.insert(path, at);
                                if let Some(soname) = soname {
                                    names.entry(soname).or_insert(at);
                                }
                                at
                            }
                        };
                        names.insert(name, at);
                    }
                    None => {
                        out.missing.entry(name).or_default().insert(nodes[i].path.clone());
                    }
                }
            }
            i += 1;
        }
        for node in &nodes {
            for (file, version) in &node.object.version_needs {
                let Some(&at) = names.get(file) else { continue };
                let defs = &nodes[at].object.version_defs;
                // A library without version definitions satisfies any (ld.so only warns).
                if !defs.is_empty() && !defs.contains(version) {
                    out.missing_versions.insert((version.clone(), nodes[at].path.clone(), node.path.clone()));
                }
            }
        }
        out.loaded.extend(nodes.into_iter().map(|n| n.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_expanded_and_other_tokens_are_not_guessed() {
        let o = Path::new("/opt/app/lib");
        assert_eq!(expand("$ORIGIN/../lib", o, "x86_64").as_deref(), Some("/opt/app/lib/../lib"));
        assert_eq!(expand("${ORIGIN}/x:$PLATFORM", o, "x86_64").as_deref(), Some("/opt/app/lib/x:x86_64"));
        assert_eq!(expand("$PLATFORM", o, "i686").as_deref(), Some("i686"));
        assert_eq!(expand("/usr/$LIB", o, "x86_64"), None);
        assert_eq!(expand("/plain", o, "x86_64").as_deref(), Some("/plain"));
    }
}
