//! The search path ld.so receives: the user's `LD_LIBRARY_PATH`, then the Nix library directories.
//!
//! An empty component of `LD_LIBRARY_PATH` (leading, trailing or doubled `:`) means the current
//! directory to ld.so, which would let a library planted in the working directory be loaded. So the
//! merged path never contains one: empty components of either input are dropped, and an empty
//! `NIX_LD_LIBRARY_PATH` simply adds nothing.
//!
//! Nix directories that do not exist can be left out ([`SearchPath::leave_out`]). ld.so would try
//! every library name in each of them (and in each `glibc-hwcaps` subdirectory) before noting that
//! the directory is absent, and it never looks again for the life of the process; leaving them out
//! up front gives the same result without the failed opens, and often no edit at all.

/// The non-empty components of a colon-separated path.
pub fn components(path: &[u8]) -> Components<'_> {
    Components { rest: path }
}

/// Iterator over the non-empty components of a colon-separated path.
#[derive(Clone)]
pub struct Components<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Components<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let end = colon_or_end(self.rest);
            let component = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
            if !component.is_empty() {
                return Some(component);
            }
        }
        None
    }
}

/// The index of the first `:` in `bytes`, or its length. Eight bytes are tested at a time: a long
/// `LD_LIBRARY_PATH` is measured and copied at every exec.
fn colon_or_end(bytes: &[u8]) -> usize {
    let len = bytes.len();
    if len < 8 {
        return bytes.iter().position(|&b| b == b':').unwrap_or(len);
    }
    // Whole words, then the last 8 bytes, which overlap words already tested (that hold no colon).
    let mut at = 0;
    loop {
        let word_at = at.min(len - 8);
        if let Some(word) = bytes.get(word_at..word_at + 8) {
            if let Some(i) = first_colon(word.try_into().unwrap_or(&[0; 8])) {
                return word_at + i;
            }
        }
        if word_at == len - 8 {
            return len;
        }
        at += 8;
    }
}

/// The index of the first `:` in `word`.
#[inline(always)]
fn first_colon(word: &[u8; 8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // Bytes equal to ':' become zero; the lowest high bit set below marks the first of them.
    let x = u64::from_le_bytes(*word) ^ (ONES * b':' as u64);
    let zero_bytes = x.wrapping_sub(ONES) & !x & HIGH_BITS;
    (zero_bytes != 0).then(|| zero_bytes.trailing_zeros() as usize / 8)
}

/// `out` from `at` on, or nothing when `at` is past its end (the copy that follows then fails as a
/// short destination). Not `&mut out[at..]`: that is a second copy of the slicing code (beside
/// the shared-slice one), which GNU ld, unlike lld's `--icf`, does not fold.
fn tail(out: &mut [u8], at: usize) -> &mut [u8] {
    out.get_mut(at..).unwrap_or_default()
}

/// Whether ld.so reads `path` as it is: no empty component, or no component at all (ld.so ignores
/// an empty `LD_LIBRARY_PATH`).
fn is_clean(path: &[u8]) -> bool {
    let mut rest = path;
    while !rest.is_empty() {
        let end = colon_or_end(rest);
        if end == 0 || end + 1 == rest.len() {
            // A leading or doubled colon, or a trailing one.
            return false;
        }
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    true
}

/// How many Nix directories [`SearchPath::leave_out`] can drop; later ones are always kept.
pub const MAX_CHECKED: usize = 64;

/// The path ld.so searches: the user's `LD_LIBRARY_PATH` first, then the Nix directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchPath<'a> {
    /// The user's `LD_LIBRARY_PATH` value, if set.
    pub user: Option<&'a [u8]>,
    /// The Nix library directories (`NIX_LD_LIBRARY_PATH` or the compiled-in default).
    pub nix: &'a [u8],
    /// Bit `i` set: the `i`-th component of `nix` is left out.
    left_out: u64,
    /// Every component of `nix` is left out (the common case on a machine without the directory),
    /// so nothing needs to walk `nix` again.
    none_kept: bool,
    /// `nix` is one directory, without a colon, and it is kept (NixOS's case).
    one_kept: bool,
}

impl<'a> SearchPath<'a> {
    pub fn new(user: Option<&'a [u8]>, nix: &'a [u8]) -> Self {
        SearchPath { user, nix, left_out: 0, none_kept: false, one_kept: false }
    }

    /// Leaves out the Nix directories for which `keep` is false (only the first
    /// [`MAX_CHECKED`] are asked about).
    pub fn leave_out(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        // One directory (NixOS's default) needs no splitting.
        if !self.nix.is_empty() && colon_or_end(self.nix) == self.nix.len() {
            let kept = keep(self.nix);
            (self.left_out, self.none_kept, self.one_kept) = (!kept as u64, !kept, kept);
            return;
        }
        let mut dirs = components(self.nix);
        let mut kept = false;
        for (i, dir) in dirs.by_ref().take(MAX_CHECKED).enumerate() {
            if keep(dir) {
                kept = true;
            } else {
                self.left_out |= 1 << i;
            }
        }
        self.none_kept = !kept && dirs.next().is_none();
    }

    /// The Nix directories left out, in order.
    pub fn left_out(&self) -> impl Iterator<Item = &'a [u8]> {
        let mask = self.left_out;
        components(self.nix).enumerate().filter(move |&(i, _)| i < MAX_CHECKED && mask & (1 << i) != 0).map(|(_, c)| c)
    }

    /// The Nix directories kept, in order.
    pub fn nix_dirs(&self) -> impl Iterator<Item = &'a [u8]> {
        let mask = self.left_out;
        components(if self.none_kept { &[] } else { self.nix })
            .enumerate()
            .filter(move |&(i, _)| i >= MAX_CHECKED || mask & (1 << i) == 0)
            .map(|(_, c)| c)
    }

    /// Every directory of the merged path, in order.
    pub fn dirs(&self) -> impl Iterator<Item = &'a [u8]> {
        components(self.user.unwrap_or(&[])).chain(self.nix_dirs())
    }

    /// Room enough for [`SearchPath::write`]'s output: both inputs and a colon. The block builder
    /// reserves this much rather than measure the merged path first.
    pub fn room(&self) -> usize {
        self.user.map_or(0, <[u8]>::len) + 1 + self.nix.len()
    }

    /// The length of [`SearchPath::write`]'s output.
    pub fn len(&self) -> usize {
        let (count, bytes) = self.dirs().fold((0usize, 0usize), |(n, len), c| (n + 1, len + c.len()));
        bytes + count.saturating_sub(1)
    }

    /// Whether the merged path has no directory.
    pub fn is_empty(&self) -> bool {
        self.dirs().next().is_none()
    }

    /// Writes the merged path into `out` (which must hold [`SearchPath::len`] bytes, as
    /// [`SearchPath::room`] does) and returns its length.
    pub fn write(&self, out: &mut [u8]) -> usize {
        self.write_with(out, crate::copy::copy)
    }

    /// [`SearchPath::write`], copying with `copy`, which has the contract of `copy::copy`: the shim
    /// passes one made of string instructions, a fraction of the instructions of a safe loop. A
    /// function pointer rather than a generic, so the shim holds one copy of this code.
    pub fn write_with(&self, out: &mut [u8], copy: fn(&mut [u8], &[u8])) -> usize {
        // The common case, whole inputs, without walking them component by component.
        if let Some((user, nix)) = self.joined() {
            let mut len = 0;
            if let Some(user) = user {
                copy(out, user);
                out[user.len()] = b':';
                len = user.len() + 1;
            }
            copy(tail(out, len), nix);
            return len + nix.len();
        }
        let mut len = 0;
        for dir in self.dirs() {
            if len > 0 {
                out[len] = b':';
                len += 1;
            }
            copy(tail(out, len), dir);
            len += dir.len();
        }
        len
    }

    /// The merged path as whole inputs, when nothing in them needs dropping: the user's clean path
    /// (or nothing), then the one kept Nix directory. [`SearchPath::write`] copies these without
    /// splitting them.
    pub fn joined(&self) -> Option<(Option<&'a [u8]>, &'a [u8])> {
        if !self.one_kept {
            return None;
        }
        match self.user {
            None => Some((None, self.nix)),
            Some(user) if !user.is_empty() && is_clean(user) => Some((Some(user), self.nix)),
            Some(_) => None,
        }
    }

    /// Whether ld.so would see a different search path than the user's own `LD_LIBRARY_PATH`, that
    /// is, whether the environment needs an edit at all.
    pub fn needs_edit(&self) -> bool {
        // NixOS's case, known from `leave_out` without walking the path again.
        if self.one_kept || (!self.none_kept && self.nix_dirs().next().is_some()) {
            return true;
        }
        // Nothing to add; the user's path still needs cleaning if it has an empty component.
        self.user.is_some_and(|user| !is_clean(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn merged(path: &SearchPath) -> Vec<u8> {
        let mut out = vec![0u8; path.len()];
        let len = path.write(&mut out);
        assert_eq!(len, out.len());
        assert!(path.room() >= len, "room {} for {len} bytes", path.room());
        out
    }

    fn merge(user: Option<&[u8]>, nix: &[u8]) -> Vec<u8> {
        merged(&SearchPath::new(user, nix))
    }

    fn needs_edit(user: Option<&[u8]>, nix: &[u8]) -> bool {
        SearchPath::new(user, nix).needs_edit()
    }

    #[test]
    fn user_directories_come_first() {
        assert_eq!(merge(Some(b"/u1:/u2"), b"/n1:/n2"), b"/u1:/u2:/n1:/n2");
    }

    #[test]
    fn empty_components_are_dropped_from_both_sides() {
        assert_eq!(merge(Some(b":/u::"), b"::/n:"), b"/u:/n");
        assert_eq!(merge(Some(b"/a"), b""), b"/a");
        assert_eq!(merge(None, b""), b"");
        assert_eq!(merge(Some(b":::"), b":"), b"");
    }

    #[test]
    fn edit_is_needed_only_when_ld_so_would_see_a_change() {
        assert!(!needs_edit(None, b""));
        assert!(!needs_edit(None, b":"));
        assert!(!needs_edit(Some(b"/a:/b"), b""));
        assert!(needs_edit(Some(b"/a:"), b""));
        assert!(needs_edit(Some(b""), b"/n"));
        assert!(needs_edit(None, b"/n"));
    }

    #[test]
    fn directories_left_out_are_not_searched_and_the_rest_keep_their_order() {
        let mut path = SearchPath::new(Some(b"/u"), b"/gone:/here::/gone-too:/also-here");
        path.leave_out(|dir| dir.starts_with(b"/here") || dir.starts_with(b"/also"));
        assert_eq!(merged(&path), b"/u:/here:/also-here");
        assert_eq!(path.left_out().collect::<Vec<_>>(), [&b"/gone"[..], b"/gone-too"]);
    }

    #[test]
    fn with_every_nix_directory_left_out_there_is_nothing_to_edit() {
        let mut path = SearchPath::new(None, b"/gone:/gone-too");
        path.leave_out(|_| false);
        assert!(!path.needs_edit());
        assert!(path.is_empty());
        let mut path = SearchPath::new(Some(b"/u"), b"/gone");
        path.leave_out(|_| false);
        assert!(!path.needs_edit());
    }

    #[test]
    fn directories_past_the_checked_ones_are_kept() {
        let nix: Vec<u8> = (0..MAX_CHECKED + 2).map(|i| format!("/d{i}")).collect::<Vec<_>>().join(":").into_bytes();
        let mut asked = 0;
        let mut path = SearchPath::new(None, &nix);
        path.leave_out(|_| {
            asked += 1;
            false
        });
        assert_eq!(asked, MAX_CHECKED);
        let kept = format!("/d{}:/d{}", MAX_CHECKED, MAX_CHECKED + 1).into_bytes();
        assert_eq!(merged(&path), kept);
    }

    #[test]
    fn whole_inputs_are_joined_only_when_nothing_is_dropped() {
        let kept = |user: Option<&'static [u8]>, nix: &'static [u8]| {
            let mut p = SearchPath::new(user, nix);
            p.leave_out(|_| true);
            p
        };
        assert_eq!(kept(None, b"/n").joined(), Some((None, &b"/n"[..])));
        assert_eq!(kept(Some(b"/u:/v"), b"/n").joined(), Some((Some(&b"/u:/v"[..]), &b"/n"[..])));
        assert_eq!(kept(Some(b"/u:"), b"/n").joined(), None);
        assert_eq!(kept(Some(b""), b"/n").joined(), None);
        assert_eq!(kept(None, b"/n:/m").joined(), None);
        assert_eq!(SearchPath::new(None, b"/n").joined(), None, "not checked yet");
        let mut gone = SearchPath::new(None, b"/n");
        gone.leave_out(|_| false);
        assert_eq!(gone.joined(), None);
    }

    fn path() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b':'), Just(b'/'), Just(b'a'), Just(b'b')], 0..40)
    }

    proptest! {
        #[test]
        fn merged_path_never_has_an_empty_component(user in proptest::option::of(path()), nix in path(), keep in any::<u64>()) {
            let mut search = SearchPath::new(user.as_deref(), &nix);
            let mut i = 0;
            search.leave_out(|_| {
                i += 1;
                keep & (1 << (i - 1)) != 0
            });
            let out = merged(&search);
            prop_assert!(out.is_empty() || out.split(|&b| b == b':').all(|c| !c.is_empty()));
            // Every kept non-empty input component survives, in order: user's first.
            let nix_kept = nix.split(|&b| b == b':').filter(|c| !c.is_empty()).enumerate().filter(|(i, _)| keep & (1 << i) != 0).map(|(_, c)| c);
            let user_parts = user.as_deref().unwrap_or(b"").split(|&b| b == b':').filter(|c| !c.is_empty());
            let expected: Vec<&[u8]> = user_parts.chain(nix_kept).collect();
            let got: Vec<&[u8]> = out.split(|&b| b == b':').filter(|c| !c.is_empty()).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(search.is_empty(), out.is_empty());
            let nix_dropped: Vec<&[u8]> = nix.split(|&b| b == b':').filter(|c| !c.is_empty()).enumerate().filter(|(i, _)| keep & (1 << i) == 0).map(|(_, c)| c).collect();
            prop_assert_eq!(search.left_out().collect::<Vec<_>>(), nix_dropped);
        }

        #[test]
        fn joined_inputs_are_the_merged_path(user in proptest::option::of(path()), nix in path(), keep: bool) {
            let mut search = SearchPath::new(user.as_deref(), &nix);
            search.leave_out(|_| keep);
            if let Some((user, nix)) = search.joined() {
                let mut joined = user.map(|u| [u, b":"].concat()).unwrap_or_default();
                joined.extend_from_slice(nix);
                prop_assert_eq!(joined, merged(&search));
            }
        }

        #[test]
        fn colon_search_matches_a_plain_search(bytes in proptest::collection::vec(prop_oneof![Just(b':'), any::<u8>()], 0..70)) {
            prop_assert_eq!(colon_or_end(&bytes), bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len()));
        }

        #[test]
        fn a_clean_path_is_one_that_merging_leaves_alone(p in path()) {
            prop_assert_eq!(is_clean(&p), merge(Some(&p), b"") == p);
        }

        #[test]
        fn components_match_a_plain_split(p in path()) {
            let plain: Vec<&[u8]> = p.split(|&b| b == b':').filter(|c| !c.is_empty()).collect();
            prop_assert_eq!(components(&p).collect::<Vec<_>>(), plain);
        }

        #[test]
        fn no_edit_means_ld_so_sees_the_users_path_unchanged(user in proptest::option::of(path()), nix in path()) {
            if !needs_edit(user.as_deref(), &nix) {
                prop_assert_eq!(merge(user.as_deref(), &nix), user.unwrap_or_default());
            }
        }
    }
}
