//! One pass over the environment: find the variables the shim reads and the slots it may edit.
//!
//! The pass must stay cheap: a foreign process may carry thousands of variables, and every exec
//! pays for this loop. Most entries are rejected on their first byte, and no string is measured
//! unless its name matched.

/// One `NAME=value` entry of the environment, read lazily.
pub trait EnvString<'a>: Copy {
    /// Byte `index` of the entry, or 0 past its end. Callers ask for `index` only after bytes
    /// `0..index` were seen to be non-zero, so a C-string implementation never reads past its NUL.
    fn byte_at(self, index: usize) -> u8;
    /// The entry from byte `start` to its end (`start` is within the entry).
    fn tail(self, start: usize) -> &'a [u8];
}

impl<'a> EnvString<'a> for &'a [u8] {
    fn byte_at(self, index: usize) -> u8 {
        self.get(index).copied().unwrap_or(0)
    }
    fn tail(self, start: usize) -> &'a [u8] {
        self.get(start..).unwrap_or(&[])
    }
}

/// A variable found in the environment: where it is and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// Index of the entry in `envp`.
    pub index: usize,
    /// The bytes after `NAME=`.
    pub value: &'a [u8],
}

/// The variables of interest. `NIX_LD*` follow `getenv` (the first entry wins); `LD_LIBRARY_PATH`
/// follows glibc's ld.so, which reads every entry and keeps the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvScan<'a> {
    pub loader_system: Option<Found<'a>>,
    pub loader_generic: Option<Found<'a>>,
    pub library_path_system: Option<Found<'a>>,
    pub library_path_generic: Option<Found<'a>>,
    pub log: Option<Found<'a>>,
    pub ld_library_path: Option<Found<'a>>,
    /// How many entries the environment has.
    pub count: usize,
}

pub const LOADER_SYSTEM: &[u8] = b"NIX_LD_x86_64_linux";
pub const LOADER_GENERIC: &[u8] = b"NIX_LD";
pub const LIBRARY_PATH_SYSTEM: &[u8] = b"NIX_LD_LIBRARY_PATH_x86_64_linux";
pub const LIBRARY_PATH_GENERIC: &[u8] = b"NIX_LD_LIBRARY_PATH";
pub const LOG: &[u8] = b"NIX_LD_LOG";
pub const LD_LIBRARY_PATH: &[u8] = b"LD_LIBRARY_PATH";

/// Whether `entry` starts with `prefix`, given that its first `checked` bytes already matched.
fn has_prefix<'a, S: EnvString<'a>>(entry: S, prefix: &[u8], checked: usize) -> bool {
    let mut i = checked;
    while i < prefix.len() {
        if entry.byte_at(i) != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// If `entry` is `name=…`, the length of `name=`; the first `checked` bytes already matched.
fn name_len<'a, S: EnvString<'a>>(entry: S, name: &[u8], checked: usize) -> Option<usize> {
    if has_prefix(entry, name, checked) && entry.byte_at(name.len()) == b'=' {
        Some(name.len() + 1)
    } else {
        None
    }
}

fn keep_first<'a>(slot: &mut Option<Found<'a>>, found: Found<'a>) {
    if slot.is_none() {
        *slot = Some(found);
    }
}

/// Scans `env` once and reports the variables the shim reads, and how many entries there are (the
/// shim measures `envp` with this same pass).
pub fn scan<'a, S: EnvString<'a>>(env: impl IntoIterator<Item = S>) -> EnvScan<'a> {
    let mut out = EnvScan::default();
    let mut index = 0;
    for entry in env {
        index += 1;
        let first = entry.byte_at(0);
        // 'L' (0x4C) and 'N' (0x4E) differ only in bit 1: one test rejects nearly every entry.
        if first & !0x02 != b'L' {
            continue;
        }
        let index = index - 1;
        match first {
            b'N' => {
                let found = |len: usize| Found { index, value: entry.tail(len) };
                if let Some(len) = name_len(entry, LOADER_GENERIC, 1) {
                    keep_first(&mut out.loader_generic, found(len));
                    continue;
                }
                // Every other name of ours starts with "NIX_LD_"; most `N…` variables stop here.
                if !has_prefix(entry, b"NIX_LD_", 1) {
                    continue;
                }
                if let Some(len) = name_len(entry, LOADER_SYSTEM, 7) {
                    keep_first(&mut out.loader_system, found(len));
                } else if let Some(len) = name_len(entry, LIBRARY_PATH_GENERIC, 7) {
                    keep_first(&mut out.library_path_generic, found(len));
                } else if let Some(len) = name_len(entry, LIBRARY_PATH_SYSTEM, 7) {
                    keep_first(&mut out.library_path_system, found(len));
                } else if let Some(len) = name_len(entry, LOG, 7) {
                    keep_first(&mut out.log, found(len));
                }
            }
            b'L' => {
                if let Some(len) = name_len(entry, LD_LIBRARY_PATH, 1) {
                    out.ld_library_path = Some(Found { index, value: entry.tail(len) });
                }
            }
            _ => {}
        }
    }
    out.count = index;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_of<'a>(env: &'a [&'a [u8]]) -> EnvScan<'a> {
        let s = scan(env.iter().copied());
        assert_eq!(s.count, env.len());
        s
    }

    #[test]
    fn finds_each_variable_by_exact_name() {
        let env: &[&[u8]] = &[
            b"PATH=/bin",
            b"NIX_LD=/a",
            b"NIX_LD_x86_64_linux=/b",
            b"NIX_LD_LIBRARY_PATH=/c",
            b"NIX_LD_LIBRARY_PATH_x86_64_linux=/d",
            b"NIX_LD_LOG=info",
            b"LD_LIBRARY_PATH=/e",
        ];
        let s = scan_of(env);
        assert_eq!(s.loader_generic, Some(Found { index: 1, value: b"/a" }));
        assert_eq!(s.loader_system, Some(Found { index: 2, value: b"/b" }));
        assert_eq!(s.library_path_generic, Some(Found { index: 3, value: b"/c" }));
        assert_eq!(s.library_path_system, Some(Found { index: 4, value: b"/d" }));
        assert_eq!(s.log, Some(Found { index: 5, value: b"info" }));
        assert_eq!(s.ld_library_path, Some(Found { index: 6, value: b"/e" }));
    }

    #[test]
    fn near_miss_names_are_ignored() {
        let env: &[&[u8]] = &[
            b"NIX_LDX=/a",
            b"NIX_LD",
            b"NIX_LD_x86_64_linuxx=/b",
            b"NIX_LD_LIBRARY_PATH_x86_64=/c",
            b"NIX_LD_LIBRARY_PATHS=/c",
            b"XNIX_LD=/d",
            b"LD_LIBRARY_PATH",
            b"LD_LIBRARY_PATH_X=/e",
            b"NIX_PATH=nixpkgs=/f",
            b"",
            b"N",
            b"L",
        ];
        assert_eq!(scan_of(env), EnvScan { count: env.len(), ..EnvScan::default() });
    }

    #[test]
    fn nix_variables_keep_the_first_and_ld_library_path_the_last() {
        let env: &[&[u8]] = &[
            b"NIX_LD=/first",
            b"LD_LIBRARY_PATH=/one",
            b"NIX_LD=/second",
            b"LD_LIBRARY_PATH=/two",
        ];
        let s = scan_of(env);
        assert_eq!(s.loader_generic.unwrap().value, b"/first");
        assert_eq!(s.ld_library_path, Some(Found { index: 3, value: b"/two" }));
    }

    #[test]
    fn values_may_contain_equals_signs_and_be_empty() {
        let env: &[&[u8]] = &[b"NIX_LD=", b"LD_LIBRARY_PATH=a=b"];
        let s = scan_of(env);
        assert_eq!(s.loader_generic.unwrap().value, b"");
        assert_eq!(s.ld_library_path.unwrap().value, b"a=b");
    }

    /// The scan, written the obvious way: split at the first '=', compare whole names.
    fn reference<'a>(env: &[&'a [u8]]) -> EnvScan<'a> {
        let mut out = EnvScan { count: env.len(), ..EnvScan::default() };
        for (index, entry) in env.iter().enumerate() {
            let Some(eq) = entry.iter().position(|&b| b == b'=') else { continue };
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            let found = Some(Found { index, value });
            let first = |slot: &mut Option<Found<'a>>| {
                if slot.is_none() {
                    *slot = found;
                }
            };
            match name {
                LOADER_GENERIC => first(&mut out.loader_generic),
                LOADER_SYSTEM => first(&mut out.loader_system),
                LIBRARY_PATH_GENERIC => first(&mut out.library_path_generic),
                LIBRARY_PATH_SYSTEM => first(&mut out.library_path_system),
                LOG => first(&mut out.log),
                LD_LIBRARY_PATH => out.ld_library_path = found,
                _ => {}
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn the_scan_agrees_with_the_obvious_one(env in proptest::collection::vec(entry(), 0..12)) {
            let env: Vec<&[u8]> = env.iter().map(|e| e.as_slice()).collect();
            proptest::prop_assert_eq!(scan(env.iter().copied()), reference(&env));
        }
    }

    fn entry() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let names = [LOADER_GENERIC, LOADER_SYSTEM, LIBRARY_PATH_GENERIC, LIBRARY_PATH_SYSTEM, LOG, LD_LIBRARY_PATH, b"NIX_LD_", b"LD_", b"M", b"O", b"J", b"NIX_PATH"];
        let name = prop_oneof![
            proptest::sample::select(names.to_vec()).prop_map(|n| n.to_vec()),
            // A known name with one byte changed or cut short.
            (proptest::sample::select(names.to_vec()), any::<usize>(), any::<u8>()).prop_map(|(n, at, b)| {
                let mut n = n.to_vec();
                let at = at % n.len();
                if b % 2 == 0 { n.truncate(at) } else { n[at] = b.max(1) }
                n
            }),
        ];
        (name, proptest::option::of(proptest::collection::vec(prop_oneof![Just(b'='), Just(b'/'), Just(b'x')], 0..6))).prop_map(|(mut n, v)| {
            if let Some(v) = v {
                n.push(b'=');
                n.extend(v);
            }
            n
        })
    }
}
