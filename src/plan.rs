//! Choosing the loader and the library path, and how the environment is edited to pass the path on.

use crate::defaults;
use crate::elf::ElfError;
use crate::envscan::{self, EnvScan, Found};
use crate::libpath::SearchPath;
use crate::problem::Problem;

/// Where a setting came from; printed by `NIX_LD_LOG=info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `NIX_LD_<system>` or `NIX_LD_LIBRARY_PATH_<system>` (`crate::target`).
    SystemSpecific,
    /// `NIX_LD` or `NIX_LD_LIBRARY_PATH`.
    Generic,
    /// Built into the shim; the only choice for a privileged (AT_SECURE) program.
    CompiledIn,
}

/// What the shim will use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice<'a> {
    pub loader: &'a [u8],
    pub loader_source: Source,
    pub library_path: &'a [u8],
    pub library_path_source: Source,
}

impl Source {
    /// The name of the variable (or "compiled-in default") for messages.
    ///
    /// A `match` over slices compiles to a table of pointers, which would need relocating. On x86-64
    /// it is enough that three of the names are prefixes of the longest (lengths rather than
    /// slices); LLVM builds a table for i386 and RISC-V even from the two slices left, so there every name
    /// is a range of one string and the `match` chooses between numbers only (on x86-64 that costs
    /// 84 bytes more).
    #[cfg(target_arch = "x86_64")]
    pub fn describe(self, loader: bool) -> &'static [u8] {
        const LONGEST: &[u8] = envscan::LIBRARY_PATH_SYSTEM;
        let len = match (self, loader) {
            (Source::SystemSpecific, true) => return envscan::LOADER_SYSTEM,
            (Source::CompiledIn, _) => return COMPILED_IN,
            (Source::Generic, true) => envscan::LOADER_GENERIC.len(),
            (Source::SystemSpecific, false) => LONGEST.len(),
            (Source::Generic, false) => envscan::LIBRARY_PATH_GENERIC.len(),
        };
        &LONGEST[..len]
    }

    /// The name of the variable (or "compiled-in default") for messages (see above).
    #[cfg(not(target_arch = "x86_64"))]
    pub fn describe(self, loader: bool) -> &'static [u8] {
        let (start, len) = match (self, loader) {
            (Source::SystemSpecific, true) => {
                (NAMES.len() - envscan::LOADER_SYSTEM.len(), envscan::LOADER_SYSTEM.len())
            }
            (Source::CompiledIn, _) => (envscan::LIBRARY_PATH_SYSTEM.len(), COMPILED_IN.len()),
            (Source::Generic, true) => (0, envscan::LOADER_GENERIC.len()),
            (Source::SystemSpecific, false) => (0, envscan::LIBRARY_PATH_SYSTEM.len()),
            (Source::Generic, false) => (0, envscan::LIBRARY_PATH_GENERIC.len()),
        };
        NAMES.get(start..start + len).unwrap_or(COMPILED_IN)
    }
}

const COMPILED_IN: &[u8] = b"the compiled-in default";
/// `NIX_LD_LIBRARY_PATH_<system>`, "the compiled-in default", `NIX_LD_<system>`, end to end.
#[allow(dead_code)]
const NAMES: &[u8] =
    &concat::<{ envscan::LIBRARY_PATH_SYSTEM.len() + COMPILED_IN.len() + envscan::LOADER_SYSTEM.len() }>([
        envscan::LIBRARY_PATH_SYSTEM,
        COMPILED_IN,
        envscan::LOADER_SYSTEM,
    ]);
const _: () = assert!(
    is_prefix(envscan::LOADER_GENERIC, envscan::LIBRARY_PATH_SYSTEM)
        && is_prefix(envscan::LIBRARY_PATH_GENERIC, envscan::LIBRARY_PATH_SYSTEM)
);

const fn concat<const N: usize>(parts: [&[u8]; 3]) -> [u8; N] {
    let mut out = [0; N];
    let (mut at, mut part) = (0, 0);
    while part < parts.len() {
        let mut i = 0;
        while i < parts[part].len() {
            out[at] = parts[part][i];
            at += 1;
            i += 1;
        }
        part += 1;
    }
    assert!(at == N, "the parts fill the array exactly");
    out
}

const fn is_prefix(prefix: &[u8], of: &[u8]) -> bool {
    let mut i = 0;
    while i < prefix.len() {
        if i >= of.len() || prefix[i] != of[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A value as pasted by a user: one trailing newline (as in `nix-support/dynamic-linker`) is dropped.
pub fn trim_newline(value: &[u8]) -> &[u8] {
    // Not `strip_suffix`: at opt-level "z" that compiles to a call to `bcmp`, at every exec.
    match value.split_last() {
        Some((b'\n', rest)) => rest,
        _ => value,
    }
}

/// Picks the loader and library path. A privileged program ignores the environment entirely.
///
/// Each path chosen is either a value of an environment entry from `scan`, or a compiled-in
/// default, which is stored followed by a NUL. So when the environment is the kernel's block, the
/// byte after each path is readable (its NUL, or the newline [`trim_newline`] dropped), and when
/// that byte is a NUL the shim hands the path to the kernel in place.
pub fn choose<'a>(scan: &EnvScan<'a>, secure: bool) -> Choice<'a> {
    let value = |f: Option<Found<'a>>| f.map(|f| trim_newline(f.value));
    let (loader, loader_source) = if secure {
        (defaults::LOADER, Source::CompiledIn)
    } else {
        // An empty loader counts as unset: it can only be a mistake.
        match (value(scan.loader_system), value(scan.loader_generic)) {
            (Some(v), _) if !v.is_empty() => (v, Source::SystemSpecific),
            (_, Some(v)) if !v.is_empty() => (v, Source::Generic),
            _ => (defaults::LOADER, Source::CompiledIn),
        }
    };
    // A library path that is set but empty means "no extra directories".
    let (library_path, library_path_source) = match secure {
        true => (defaults::LIBRARY_PATH, Source::CompiledIn),
        false => match (value(scan.library_path_system), value(scan.library_path_generic)) {
            (Some(v), _) => (v, Source::SystemSpecific),
            (_, Some(v)) => (v, Source::Generic),
            _ => (defaults::LIBRARY_PATH, Source::CompiledIn),
        },
    };
    Choice { loader, loader_source, library_path, library_path_source }
}

/// The plain-name rule: the plain `NIX_LD` may belong to another platform's shim (the 64-bit
/// loader, seen by the 32-bit shim beside the 64-bit one; the host's loader, seen by an emulated
/// system's shim), so a loader it names that is built for another machine or class is passed
/// over for the compiled-in default rather than refused. The system-specific name is this
/// system's alone: a wrong loader there stays an error. Not in the x86-64 shim
/// (`target::PLAIN_NAMES_MAY_BE_FOREIGN`).
pub fn passes_over(choice: &Choice<'_>, problem: &Problem) -> bool {
    passes_over_for(crate::target::PLAIN_NAMES_MAY_BE_FOREIGN, choice, problem)
}

/// [`passes_over`] for a build where the rule holds (`rule`) or not.
#[inline(always)]
pub fn passes_over_for(rule: bool, choice: &Choice<'_>, problem: &Problem) -> bool {
    rule && choice.loader_source == Source::Generic
        && matches!(problem, Problem::Elf(ElfError::WrongArchitecture { .. }))
}

/// The choice once the plain loader is passed over: the compiled-in loader, and the compiled-in
/// library path in place of the plain `NIX_LD_LIBRARY_PATH` (which belongs with that loader).
pub fn without_plain_names(choice: Choice<'_>) -> Choice<'_> {
    let (library_path, library_path_source) = match choice.library_path_source {
        Source::Generic => (defaults::LIBRARY_PATH, Source::CompiledIn),
        source => (choice.library_path, source),
    };
    Choice { loader: defaults::LOADER, loader_source: Source::CompiledIn, library_path, library_path_source }
}

/// Where the `LD_LIBRARY_PATH=` entry that ld.so reads goes.
///
/// Only the user's own `LD_LIBRARY_PATH` is borrowed. Whatever a library constructor then does to
/// that entry (unset it, set it, copy `environ` to the heap with it) it would have done to the
/// user's entry in a direct start too, so putting the original back at the program's entry gives
/// the direct start's result. Any other entry is one a constructor may read, set or unset by its
/// own name (`NIX_LD_LIBRARY_PATH` on the NixOS path), so without an `LD_LIBRARY_PATH` the entry
/// is appended instead, which costs the entry trampoline a lookup of libc's `environ` and a copy
/// of the argument block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Point entry `index` of `envp` (the user's `LD_LIBRARY_PATH`) at the new string for ld.so, and
    /// back at its original string at the program's entry.
    Replace { index: usize },
    /// No `LD_LIBRARY_PATH` to borrow: add one at the end of `envp`, and take it out again at the
    /// program's entry.
    Append,
}

/// How the environment handed to ld.so differs from the program's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvEdit<'a> {
    pub slot: Slot,
    /// What the new `LD_LIBRARY_PATH` holds.
    pub path: SearchPath<'a>,
    /// `path.room()`, measured once.
    path_room: usize,
}

impl EnvEdit<'_> {
    /// Room enough for the `LD_LIBRARY_PATH=…` string, without its NUL.
    pub fn entry_room(&self) -> usize {
        envscan::LD_LIBRARY_PATH.len() + 1 + self.path_room
    }

    /// Bytes to keep for the string written for ld.so, with its NUL. The borrowed entry (the
    /// user's `LD_LIBRARY_PATH=` and value, whose value the path's room counts) overwrites it at the
    /// program's entry, so it fits too.
    pub fn string_room(&self) -> usize {
        self.entry_room() + 1
    }

    /// The length of the borrowed entry (`LD_LIBRARY_PATH=` and the user's value) with its NUL, or
    /// 0 when the entry is appended.
    pub fn original_len(&self) -> usize {
        match (self.slot, self.path.user) {
            (Slot::Replace { .. }, Some(user)) => envscan::LD_LIBRARY_PATH.len() + 2 + user.len(),
            _ => 0,
        }
    }

    /// Writes `LD_LIBRARY_PATH=…` plus a NUL into `out`, which holds `entry_room() + 1` bytes, and
    /// returns the string's length without the NUL.
    pub fn write_entry(&self, out: &mut [u8]) -> usize {
        self.write_entry_with(out, crate::copy::copy)
    }

    /// [`EnvEdit::write_entry`], copying with `copy` (see `SearchPath::write_with`).
    pub fn write_entry_with(&self, out: &mut [u8], copy: fn(&mut [u8], &[u8])) -> usize {
        let name = envscan::LD_LIBRARY_PATH.len();
        copy(out, envscan::LD_LIBRARY_PATH);
        out[name] = b'=';
        let len = name + 1 + self.path.write_with(&mut out[name + 1..], copy);
        out[len] = 0;
        len
    }
}

/// The search path ld.so should get for this environment and choice, before any directory is
/// left out.
pub fn search_path<'a>(scan: &EnvScan<'a>, choice: &Choice<'a>) -> SearchPath<'a> {
    SearchPath::new(scan.ld_library_path.map(|f| f.value), choice.library_path)
}

/// Decides whether ld.so needs a different `LD_LIBRARY_PATH` than the program has, and where it goes.
/// `None` means the environment is handed over untouched. A privileged program gets no edit: ld.so
/// ignores `LD_LIBRARY_PATH` for it anyway.
pub fn env_edit<'a>(scan: &EnvScan<'a>, path: SearchPath<'a>, secure: bool) -> Option<EnvEdit<'a>> {
    if secure || !path.needs_edit() {
        return None;
    }
    let slot = match scan.ld_library_path {
        Some(found) => Slot::Replace { index: found.index },
        None => Slot::Append,
    };
    Some(EnvEdit { slot, path, path_room: path.room() })
}

/// ld.so's options that take a value, each followed by a NUL. One string, not a table of slices: a
/// table of pointers would need relocating at every start.
const VALUE_OPTIONS: &[u8] =
    b"--inhibit-rpath\0--audit\0--preload\0--argv0\0--glibc-hwcaps-prepend\0--glibc-hwcaps-mask\0";

/// The entries of a NUL-separated list.
pub fn entries(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == 0).filter(|entry| !entry.is_empty())
}

/// Whether `word` is one of the NUL-terminated entries of `list`.
pub fn is_listed(list: &[u8], word: &[u8]) -> bool {
    entries(list).any(|entry| entry == word)
}

/// Whether ld.so, run as a command with `args` (after argv[0]), is already given `--library-path`
/// among its leading options. The user's explicit choice then stands.
pub fn sets_library_path<'a>(args: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        if arg == b"--library-path" {
            return true;
        }
        if !arg.starts_with(b"--") {
            return false;
        }
        // ld.so's options that take a value; the others take none.
        skip_value = is_listed(VALUE_OPTIONS, arg);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envscan::scan;
    use crate::libpath::components;
    use proptest::prelude::*;

    fn choice_of(env: &[&[u8]], secure: bool) -> (Vec<u8>, Source, Vec<u8>, Source) {
        let s = scan(env.iter().copied());
        let c = choose(&s, secure);
        (c.loader.to_vec(), c.loader_source, c.library_path.to_vec(), c.library_path_source)
    }

    #[test]
    fn a_plain_loader_for_another_platform_is_passed_over_with_the_plain_library_path() {
        let wrong = Problem::Elf(ElfError::WrongArchitecture { class: 2, machine: 62 });
        let env: &[&[u8]] = &[b"NIX_LD=/64/ld.so", b"NIX_LD_LIBRARY_PATH=/64/lib"];
        let s = scan(env.iter().copied());
        let c = choose(&s, false);
        assert!(passes_over_for(true, &c, &wrong));
        // Only for a wrong machine or class, and never where the rule does not hold.
        assert!(!passes_over_for(true, &c, &Problem::Open(2)));
        assert!(!passes_over_for(false, &c, &wrong));
        let after = without_plain_names(c);
        assert_eq!((after.loader, after.loader_source), (defaults::LOADER, Source::CompiledIn));
        assert_eq!((after.library_path, after.library_path_source), (defaults::LIBRARY_PATH, Source::CompiledIn));
        // The compiled-in loader is never passed over: the shim tries at most two.
        assert!(!passes_over_for(true, &after, &wrong));
        // A system-specific loader is this system's own: a wrong one stays an error. A
        // system-specific library path stays with the compiled-in loader.
        let system_loader = [crate::target::LOADER_SYSTEM, b"=/x/ld.so"].concat();
        let system_path = [crate::target::LIBRARY_PATH_SYSTEM, b"=/sys/lib"].concat();
        let env: &[&[u8]] = &[&system_loader, b"NIX_LD_LIBRARY_PATH=/64/lib"];
        assert!(!passes_over_for(true, &choose(&scan(env.iter().copied()), false), &wrong));
        let env: &[&[u8]] = &[b"NIX_LD=/64/ld.so", &system_path];
        let after = without_plain_names(choose(&scan(env.iter().copied()), false));
        assert_eq!((after.library_path, after.library_path_source), (&b"/sys/lib"[..], Source::SystemSpecific));
    }

    #[test]
    fn listed_words_match_whole_entries_only() {
        assert!(is_listed(VALUE_OPTIONS, b"--audit"));
        assert!(is_listed(VALUE_OPTIONS, b"--glibc-hwcaps-mask"));
        assert!(!is_listed(VALUE_OPTIONS, b"--aud"));
        assert!(!is_listed(VALUE_OPTIONS, b""));
        assert!(!is_listed(VALUE_OPTIONS, b"--audit\0--preload"));
    }

    #[test]
    fn library_path_option_is_found_only_among_leading_options() {
        let yes: &[&[u8]] = &[b"--list", b"--library-path", b"/x", b"prog"];
        assert!(sets_library_path(yes.iter().copied()));
        let after_program: &[&[u8]] = &[b"prog", b"--library-path", b"/x"];
        assert!(!sets_library_path(after_program.iter().copied()));
        let as_value: &[&[u8]] = &[b"--argv0", b"--library-path", b"prog"];
        assert!(!sets_library_path(as_value.iter().copied()));
    }

    #[test]
    fn system_specific_variables_win_over_generic_ones() {
        let env: &[&[u8]] = &[
            b"NIX_LD=/generic/ld.so",
            b"NIX_LD_x86_64_linux=/system/ld.so",
            b"NIX_LD_LIBRARY_PATH=/generic/lib",
            b"NIX_LD_LIBRARY_PATH_x86_64_linux=/system/lib",
        ];
        let (l, ls, p, ps) = choice_of(env, false);
        assert_eq!((l.as_slice(), ls), (&b"/system/ld.so"[..], Source::SystemSpecific));
        assert_eq!((p.as_slice(), ps), (&b"/system/lib"[..], Source::SystemSpecific));
    }

    #[test]
    fn generic_variables_are_used_alone() {
        let env: &[&[u8]] = &[b"NIX_LD=/g/ld.so", b"NIX_LD_LIBRARY_PATH=/g/lib"];
        let (l, ls, p, ps) = choice_of(env, false);
        assert_eq!((l.as_slice(), ls), (&b"/g/ld.so"[..], Source::Generic));
        assert_eq!((p.as_slice(), ps), (&b"/g/lib"[..], Source::Generic));
    }

    #[test]
    fn defaults_apply_when_unset_and_an_empty_loader_counts_as_unset() {
        let env: &[&[u8]] = &[b"NIX_LD_x86_64_linux=", b"NIX_LD=\n"];
        let (l, ls, p, ps) = choice_of(env, false);
        assert_eq!((l.as_slice(), ls), (defaults::LOADER, Source::CompiledIn));
        assert_eq!((p.as_slice(), ps), (defaults::LIBRARY_PATH, Source::CompiledIn));
    }

    #[test]
    fn an_empty_library_path_means_no_directories() {
        let env: &[&[u8]] = &[b"NIX_LD_LIBRARY_PATH="];
        let (_, _, p, ps) = choice_of(env, false);
        assert_eq!((p.as_slice(), ps), (&b""[..], Source::Generic));
    }

    #[test]
    fn one_trailing_newline_is_dropped_and_only_one() {
        let env: &[&[u8]] = &[b"NIX_LD=/nix/store/x/ld.so\n", b"NIX_LD_LIBRARY_PATH=/lib\n\n"];
        let (l, _, p, _) = choice_of(env, false);
        assert_eq!(l, b"/nix/store/x/ld.so");
        assert_eq!(p, b"/lib\n");
    }

    #[test]
    fn a_privileged_program_ignores_the_environment() {
        let env: &[&[u8]] = &[b"NIX_LD=/tmp/evil", b"NIX_LD_LIBRARY_PATH=/tmp", b"LD_LIBRARY_PATH=/x"];
        let (l, ls, p, ps) = choice_of(env, true);
        assert_eq!((l.as_slice(), ls), (defaults::LOADER, Source::CompiledIn));
        assert_eq!((p.as_slice(), ps), (defaults::LIBRARY_PATH, Source::CompiledIn));
        let s = scan(env.iter().copied());
        let c = choose(&s, true);
        assert_eq!(env_edit(&s, search_path(&s, &c), true), None);
    }

    fn edit_of(env: &[&[u8]]) -> Option<(Slot, Vec<u8>)> {
        let s = scan(env.iter().copied());
        let c = choose(&s, false);
        env_edit(&s, search_path(&s, &c), false).map(|e| {
            let mut out = vec![0xAAu8; e.entry_room() + 1];
            let len = e.write_entry(&mut out);
            assert_eq!(out[len], 0);
            out.truncate(len);
            (e.slot, out)
        })
    }

    /// Where the edit for `env` puts ld.so's entry.
    fn slot_of(env: &[&[u8]]) -> Slot {
        edit_of(env).unwrap().0
    }

    #[test]
    fn the_users_entry_is_replaced_with_the_merged_path() {
        let env: &[&[u8]] = &[b"A=1", b"LD_LIBRARY_PATH=/u", b"NIX_LD_LIBRARY_PATH=/n"];
        assert_eq!(edit_of(env), Some((Slot::Replace { index: 1 }, b"LD_LIBRARY_PATH=/u:/n".to_vec())));
    }

    #[test]
    fn without_ld_library_path_no_nix_variable_is_borrowed() {
        // A constructor may read, set or unset NIX_LD_LIBRARY_PATH* by name: a borrowed entry would
        // read LD_LIBRARY_PATH= then, and an appended one it never names.
        let env: &[&[u8]] = &[b"A=1", b"NIX_LD=/l", b"NIX_LD_LIBRARY_PATH=/n"];
        assert_eq!(edit_of(env), Some((Slot::Append, b"LD_LIBRARY_PATH=/n".to_vec())));
        let env: &[&[u8]] = &[b"NIX_LD_LIBRARY_PATH=/g", b"NIX_LD_LIBRARY_PATH_x86_64_linux=/s\n"];
        assert_eq!(edit_of(env), Some((Slot::Append, b"LD_LIBRARY_PATH=/s".to_vec())));
        let env: &[&[u8]] = &[b"A=1", b"NIX_LD=/l"];
        assert_eq!(slot_of(env), Slot::Append);
    }

    #[test]
    fn the_borrowed_entry_fits_where_the_string_for_ld_so_was() {
        let cases: [&[&[u8]]; 4] = [
            &[b"LD_LIBRARY_PATH=/u::", b"NIX_LD_LIBRARY_PATH="],
            &[b"LD_LIBRARY_PATH=/a", b"NIX_LD_LIBRARY_PATH=/n\n"],
            &[b"LD_LIBRARY_PATH=::::/a::", b"NIX_LD_LIBRARY_PATH_x86_64_linux=/n"],
            &[b"NIX_LD_LIBRARY_PATH=/a:/b::::::::/c", b"LD_LIBRARY_PATH="],
        ];
        for env in cases {
            let s = scan(env.iter().copied());
            let c = choose(&s, false);
            let e = env_edit(&s, search_path(&s, &c), false).unwrap();
            let Slot::Replace { index } = e.slot else { panic!("{env:?}: nothing borrowed") };
            assert_eq!(e.original_len(), env[index].len() + 1, "{env:?}");
            assert!(e.original_len() <= e.string_room() && e.entry_room() < e.string_room(), "{env:?}");
        }
    }

    #[test]
    fn with_nothing_to_borrow_an_entry_is_appended() {
        let env: &[&[u8]] = &[b"A=1"];
        assert_eq!(edit_of(env).unwrap().0, Slot::Append);
        assert_eq!(edit_of(&[]).unwrap().0, Slot::Append);
    }

    #[test]
    fn nothing_to_add_means_no_edit() {
        let env: &[&[u8]] = &[b"NIX_LD_LIBRARY_PATH=", b"LD_LIBRARY_PATH=/u"];
        assert_eq!(edit_of(env), None);
        let env: &[&[u8]] = &[b"NIX_LD_LIBRARY_PATH=:"];
        assert_eq!(edit_of(env), None);
    }

    #[test]
    fn a_users_path_with_empty_components_is_cleaned() {
        let env: &[&[u8]] = &[b"NIX_LD_LIBRARY_PATH=", b"LD_LIBRARY_PATH=/u::"];
        assert_eq!(edit_of(env), Some((Slot::Replace { index: 1 }, b"LD_LIBRARY_PATH=/u".to_vec())));
    }

    fn var() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            Just(b"NIX_LD".to_vec()),
            Just(b"NIX_LD_x86_64_linux".to_vec()),
            Just(b"NIX_LD_LIBRARY_PATH".to_vec()),
            Just(b"NIX_LD_LIBRARY_PATH_x86_64_linux".to_vec()),
            Just(b"LD_LIBRARY_PATH".to_vec()),
            Just(b"NIX_PATH".to_vec()),
            proptest::collection::vec(
                proptest::num::u8::ANY.prop_filter("no NUL or =", |b| *b != 0 && *b != b'='),
                0..8
            ),
        ];
        let value = proptest::collection::vec(prop_oneof![Just(b':'), Just(b'/'), Just(b'x'), Just(b'\n')], 0..12);
        (name, proptest::option::of(value)).prop_map(|(mut n, v)| {
            if let Some(v) = v {
                n.push(b'=');
                n.extend(v);
            }
            n
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_edit_gives_ld_so_exactly_the_merged_path(env in proptest::collection::vec(var(), 0..12)) {
            let env: Vec<&[u8]> = env.iter().map(|v| v.as_slice()).collect();
            let s = scan(env.iter().copied());
            let c = choose(&s, false);
            // What ld.so would read: the last LD_LIBRARY_PATH after the edit.
            let mut seen = env.iter().map(|v| v.to_vec()).collect::<Vec<_>>();
            match edit_of(&env) {
                Some((Slot::Replace { index }, entry)) => {
                    // Only the user's LD_LIBRARY_PATH may be borrowed.
                    prop_assert!(seen[index].starts_with(b"LD_LIBRARY_PATH="));
                    let e = env_edit(&s, search_path(&s, &c), false).unwrap();
                    prop_assert_eq!(e.original_len(), seen[index].len() + 1);
                    prop_assert!(e.original_len() <= e.string_room());
                    seen[index] = entry;
                }
                Some((Slot::Append, entry)) => {
                    prop_assert!(s.ld_library_path.is_none());
                    seen.push(entry);
                }
                None => {}
            }
            let ld_sees = seen.iter().rev().find_map(|v| v.strip_prefix(b"LD_LIBRARY_PATH=")).map(|v| v.to_vec());
            let user = s.ld_library_path.map(|f| f.value);
            let want: Vec<&[u8]> = components(user.unwrap_or(b"")).chain(components(c.library_path)).collect();
            match ld_sees {
                Some(path) => {
                    prop_assert!(path.is_empty() || path.split(|&b| b == b':').all(|c| !c.is_empty()));
                    prop_assert_eq!(components(&path).collect::<Vec<_>>(), want);
                }
                None => prop_assert!(want.is_empty()),
            }
        }
    }
}
