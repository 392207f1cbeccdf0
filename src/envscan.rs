//! One pass over the environment: find the variables the shim reads and the slots it may edit.
//!
//! The pass must stay cheap: a foreign process may carry thousands of variables, and every exec
//! pays for this loop. Most entries are rejected on their first byte, and no string is measured
//! unless its name matched.

/// One `NAME=value` entry of the environment, read lazily.
pub trait EnvString<'a>: Copy {
    /// The 8 bytes at `index`, little-endian: the entry's bytes, then its NUL terminator, then
    /// bytes of no meaning. Callers ask for `index` only after bytes `0..index` were seen to be
    /// non-zero, so the word starts at or before the terminator.
    fn word_at(self, index: usize) -> u64;
    /// The entry from byte `start` to its end (`start` is within the entry).
    fn tail(self, start: usize) -> &'a [u8];
}

impl<'a> EnvString<'a> for &'a [u8] {
    fn word_at(self, index: usize) -> u64 {
        let mut word = [0; 8];
        for (w, b) in word.iter_mut().zip(self.get(index..).unwrap_or(&[])) {
            *w = *b;
        }
        u64::from_le_bytes(word)
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

pub const LOADER_SYSTEM: &[u8] = crate::target::LOADER_SYSTEM;
pub const LOADER_GENERIC: &[u8] = b"NIX_LD";
pub const LIBRARY_PATH_SYSTEM: &[u8] = crate::target::LIBRARY_PATH_SYSTEM;
pub const LIBRARY_PATH_GENERIC: &[u8] = b"NIX_LD_LIBRARY_PATH";
pub const LOG: &[u8] = b"NIX_LD_LOG";
pub const LD_LIBRARY_PATH: &[u8] = b"LD_LIBRARY_PATH";

/// The first 8 bytes of `text` (zero-padded) as the word [`EnvString::word_at`] reads.
const fn word(text: &[u8]) -> u64 {
    let mut word = 0;
    let mut i = 0;
    while i < text.len() && i < 8 {
        word |= (text[i] as u64) << (8 * i);
        i += 1;
    }
    word
}

/// The 8 bytes of `name` at `at`, or `None` past its end.
fn name_word(name: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(name.get(at..at + 8)?.try_into().ok()?))
}

/// Whether `entry` is `name=…`, given that its first 8 bytes matched `name`'s (which has at least
/// 8 and no NUL). Names are compared a word at a time, the last word overlapping the one before:
/// every foreign process pays for this scan. Each word is read only after the bytes before it were
/// seen to be `name`'s, so non-zero, as [`EnvString::word_at`] requires.
#[inline(never)]
fn is_named<'a, S: EnvString<'a>>(entry: S, name: &[u8]) -> bool {
    let mut at = 8;
    while at < name.len() {
        let at_word = at.min(name.len() - 8);
        if name_word(name, at_word) != Some(entry.word_at(at_word)) {
            return false;
        }
        at += 8;
    }
    entry.word_at(name.len()) as u8 == b'='
}

// Which names an entry can have is decided by its first word; these are the first words.
const NIX_LD_EQUALS: u64 = word(b"NIX_LD=");
const NIX_LD_X: u64 = word(LOADER_SYSTEM);
const NIX_LD_L: u64 = word(LOG);
const LD_LIBRA: u64 = word(LD_LIBRARY_PATH);
const _: () = assert!(word(LIBRARY_PATH_GENERIC) == NIX_LD_L && word(LIBRARY_PATH_SYSTEM) == NIX_LD_L);
const _: () = assert!(LOG.len() >= 8 && LD_LIBRARY_PATH.len() >= 8 && LOADER_SYSTEM.len() >= 8);

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
        let head = entry.word_at(0);
        // 'L' (0x4C) and 'N' (0x4E) differ only in bit 1: one test rejects nearly every entry.
        if head as u8 & !0x02 != b'L' {
            continue;
        }
        let index = index - 1;
        let found = |name: &[u8]| Found { index, value: entry.tail(name.len() + 1) };
        let named = |name: &[u8]| is_named(entry, name);
        if head & 0x00ff_ffff_ffff_ffff == NIX_LD_EQUALS {
            keep_first(&mut out.loader_generic, found(LOADER_GENERIC));
        } else if head == LD_LIBRA {
            if named(LD_LIBRARY_PATH) {
                out.ld_library_path = Some(found(LD_LIBRARY_PATH));
            }
        } else if head == NIX_LD_X {
            if named(LOADER_SYSTEM) {
                keep_first(&mut out.loader_system, found(LOADER_SYSTEM));
            }
        } else if head == NIX_LD_L {
            if named(LIBRARY_PATH_GENERIC) {
                keep_first(&mut out.library_path_generic, found(LIBRARY_PATH_GENERIC));
            } else if named(LIBRARY_PATH_SYSTEM) {
                keep_first(&mut out.library_path_system, found(LIBRARY_PATH_SYSTEM));
            } else if named(LOG) {
                keep_first(&mut out.log, found(LOG));
            }
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
        let env: &[&[u8]] = &[b"NIX_LD=/first", b"LD_LIBRARY_PATH=/one", b"NIX_LD=/second", b"LD_LIBRARY_PATH=/two"];
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

    /// An entry as the kernel's block holds it: its bytes, a NUL, then bytes of another string.
    #[derive(Clone, Copy)]
    struct Terminated<'a> {
        entry: &'a [u8],
        after: u8,
    }

    impl<'a> EnvString<'a> for Terminated<'a> {
        fn word_at(self, index: usize) -> u64 {
            assert!(index <= self.entry.len(), "read at {index}, past the NUL of a {}-byte entry", self.entry.len());
            let mut word = [self.after; 8];
            for (i, w) in word.iter_mut().enumerate() {
                match (index + i).cmp(&self.entry.len()) {
                    std::cmp::Ordering::Less => *w = self.entry[index + i],
                    std::cmp::Ordering::Equal => *w = 0,
                    std::cmp::Ordering::Greater => {}
                }
            }
            u64::from_le_bytes(word)
        }
        fn tail(self, start: usize) -> &'a [u8] {
            &self.entry[start..]
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn bytes_after_the_terminator_change_nothing(env in proptest::collection::vec(entry(), 0..12), after: u8) {
            let entries: Vec<&[u8]> = env.iter().map(|e| e.as_slice()).collect();
            let terminated = entries.iter().map(|&entry| Terminated { entry, after });
            proptest::prop_assert_eq!(scan(terminated), reference(&entries));
        }
    }

    fn entry() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let names = [
            LOADER_GENERIC,
            LOADER_SYSTEM,
            LIBRARY_PATH_GENERIC,
            LIBRARY_PATH_SYSTEM,
            LOG,
            LD_LIBRARY_PATH,
            b"NIX_LD_",
            b"LD_",
            b"M",
            b"O",
            b"J",
            b"NIX_PATH",
        ];
        let name = prop_oneof![
            proptest::sample::select(names.to_vec()).prop_map(|n| n.to_vec()),
            // A known name with one byte changed or cut short.
            (proptest::sample::select(names.to_vec()), any::<usize>(), any::<u8>()).prop_map(|(n, at, b)| {
                let mut n = n.to_vec();
                let at = at % n.len();
                if b % 2 == 0 {
                    n.truncate(at)
                } else {
                    n[at] = b.max(1)
                }
                n
            }),
        ];
        (name, proptest::option::of(proptest::collection::vec(prop_oneof![Just(b'='), Just(b'/'), Just(b'x')], 0..6)))
            .prop_map(|(mut n, v)| {
                if let Some(v) = v {
                    n.push(b'=');
                    n.extend(v);
                }
                n
            })
    }
}
