//! The search path ld.so receives: the user's `LD_LIBRARY_PATH`, then the Nix library directories.
//!
//! An empty component of `LD_LIBRARY_PATH` (leading, trailing or doubled `:`) means the current
//! directory to ld.so, which would let a library planted in the working directory be loaded. So the
//! merged path never contains one: empty components of either input are dropped, and an empty
//! `NIX_LD_LIBRARY_PATH` simply adds nothing.

/// The non-empty components of a colon-separated path.
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b':').filter(|c| !c.is_empty())
}

/// The length of [`write_merged`]'s output.
pub fn merged_len(user: Option<&[u8]>, nix: &[u8]) -> usize {
    let user = user.unwrap_or(&[]);
    let (count, bytes) = components(user)
        .chain(components(nix))
        .fold((0usize, 0usize), |(n, len), c| (n + 1, len + c.len()));
    bytes + count.saturating_sub(1)
}

/// Writes the merged path into `out` (which must hold [`merged_len`] bytes) and returns its length.
pub fn write_merged(user: Option<&[u8]>, nix: &[u8], out: &mut [u8]) -> usize {
    let user = user.unwrap_or(&[]);
    let mut len = 0;
    for component in components(user).chain(components(nix)) {
        if len > 0 {
            out[len] = b':';
            len += 1;
        }
        out[len..len + component.len()].copy_from_slice(component);
        len += component.len();
    }
    len
}

/// Whether ld.so would see a different search path than the user's own `LD_LIBRARY_PATH`, that
/// is, whether the environment needs an edit at all.
pub fn needs_edit(user: Option<&[u8]>, nix: &[u8]) -> bool {
    match user {
        // Nothing to add and nothing to clean: leave the environment alone.
        Some(user) => components(nix).next().is_some() || merged_len(Some(user), b"") != user.len(),
        None => components(nix).next().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn merged(user: Option<&[u8]>, nix: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; merged_len(user, nix)];
        let len = write_merged(user, nix, &mut out);
        assert_eq!(len, out.len());
        out
    }

    #[test]
    fn user_directories_come_first() {
        assert_eq!(merged(Some(b"/u1:/u2"), b"/n1:/n2"), b"/u1:/u2:/n1:/n2");
    }

    #[test]
    fn empty_components_are_dropped_from_both_sides() {
        assert_eq!(merged(Some(b":/u::"), b"::/n:"), b"/u:/n");
        assert_eq!(merged(Some(b"/a"), b""), b"/a");
        assert_eq!(merged(None, b""), b"");
        assert_eq!(merged(Some(b":::"), b":"), b"");
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

    fn path() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b':'), Just(b'/'), Just(b'a'), Just(b'b')], 0..40)
    }

    proptest! {
        #[test]
        fn merged_path_never_has_an_empty_component(user in proptest::option::of(path()), nix in path()) {
            let out = merged(user.as_deref(), &nix);
            prop_assert!(out.is_empty() || out.split(|&b| b == b':').all(|c| !c.is_empty()));
            // Every non-empty input component survives, in order: user's first.
            let expected: Vec<&[u8]> =
                components(user.as_deref().unwrap_or(b"")).chain(components(&nix)).collect();
            let got: Vec<&[u8]> = components(&out).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn no_edit_means_ld_so_sees_the_users_path_unchanged(user in proptest::option::of(path()), nix in path()) {
            if !needs_edit(user.as_deref(), &nix) {
                let out = merged(user.as_deref(), &nix);
                prop_assert_eq!(out, user.unwrap_or_default());
            }
        }
    }
}
