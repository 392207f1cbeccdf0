//! Undoing the environment edit at the program's entry, as plain functions over the words of an
//! `envp` array (pointers, then a NULL).
//!
//! Library constructors run before the program's entry, on ld.so's view of the environment, and
//! edit it the way glibc does: `unsetenv` shifts later entries down in place (leaving an extra
//! NULL), `setenv` of an existing name replaces its pointer in place, `setenv` of a new name copies
//! every pointer to a heap array, `clearenv` drops the array. So the entry the shim added for ld.so
//! may be anywhere before the first NULL of the array it was put in, or in a copy of it, or gone;
//! it is found by its value; where it was put is only the first place looked at.

/// Points the entry that points at `ours` back at `original`, the entry borrowed for ld.so (the
/// user's `LD_LIBRARY_PATH`). Only the live part (up to the first NULL) is searched, and `hint`
/// (where the entry was put) first. Returns whether it was there.
pub fn put_back(entries: &mut [usize], hint: usize, ours: usize, original: usize) -> bool {
    if let Some(slot) = entries.get_mut(hint) {
        if *slot == ours {
            *slot = original;
            return true;
        }
    }
    match position(entries, ours) {
        Some(i) => {
            entries[i] = original;
            true
        }
        None => false,
    }
}

/// Removes the entry `ours` from the live part of `entries` as `unsetenv` would: later entries
/// move down and the array ends with one more NULL. Returns whether it was there. `hint` is where
/// the entry was put: an `unsetenv` of an entry before it moves it down, and nothing moves it
/// back, so finding it there means the array is as the shim built it, live up to there.
pub fn take_out(entries: &mut [usize], hint: usize, ours: usize) -> bool {
    let mut at = match entries.get(hint) {
        Some(&e) if e == ours => hint,
        _ => match position(entries, ours) {
            Some(at) => at,
            None => return false,
        },
    };
    // unsetenv's own loop: each entry takes the next one's value, up to and including a NULL.
    loop {
        let next = entries.get(at + 1).copied().unwrap_or(0);
        entries[at] = next;
        if next == 0 {
            return true;
        }
        at += 1;
    }
}

/// Where `ours` is in the live part of `entries`.
fn position(entries: &[usize], ours: usize) -> Option<usize> {
    entries.iter().take_while(|&&e| e != 0).position(|&e| e == ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OURS: usize = 0xAAAA;
    const ORIGINAL: usize = 0xBBBB;

    /// glibc's `unsetenv` on pointers: every entry for which `named` holds is removed, later ones
    /// shifted down.
    fn unset(entries: &mut [usize], named: impl Fn(usize) -> bool) {
        let mut i = 0;
        while entries[i] != 0 {
            if named(entries[i]) {
                let mut d = i;
                loop {
                    entries[d] = entries[d + 1];
                    d += 1;
                    if entries[d - 1] == 0 {
                        break;
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    fn live(entries: &[usize]) -> Vec<usize> {
        entries.iter().copied().take_while(|&e| e != 0).collect()
    }

    proptest! {
        /// A constructor unsets any of the entries, in any order: the program sees the direct
        /// start's array, NULLs included.
        #[test]
        fn an_appended_entry_leaves_what_unsetenv_leaves(n in 0usize..12, unset_mask in any::<u16>(), also_ours: bool) {
            let env: Vec<usize> = (1..=n).collect();
            // Direct: the kernel's array. Through the shim: the same with ours appended.
            let mut direct: Vec<usize> = env.iter().copied().chain([0]).collect();
            let mut shim: Vec<usize> = env.iter().copied().chain([OURS, 0]).collect();
            let gone = |e: usize| e <= 16 && unset_mask & (1 << e) != 0;
            unset(&mut direct, gone);
            unset(&mut shim, gone);
            if also_ours {
                // unsetenv("LD_LIBRARY_PATH") takes ours (the direct start has none to take).
                unset(&mut shim, |e| e == OURS);
            }
            let was_there = take_out(&mut shim, n, OURS);
            prop_assert_eq!(was_there, !also_ours);
            prop_assert_eq!(live(&shim), live(&direct));
            // One word more than the direct array, and it is a NULL: the trampoline drops it.
            prop_assert_eq!(shim.len(), direct.len() + 1);
            prop_assert_eq!(shim[n], 0);
            prop_assert_eq!(&shim[..n + 1], &direct[..]);
        }

        #[test]
        fn a_borrowed_entry_is_put_back_wherever_it_moved(n in 1usize..12, at in 0usize..12, unset_mask in any::<u16>()) {
            let at = at % n;
            let mut env: Vec<usize> = (1..=n).chain([0]).collect();
            let mut direct = env.clone();
            direct[at] = ORIGINAL;
            env[at] = OURS;
            let gone = |e: usize| e <= 16 && unset_mask & (1 << e) != 0;
            unset(&mut direct, gone);
            unset(&mut env, gone);
            prop_assert!(put_back(&mut env, at, OURS, ORIGINAL));
            prop_assert_eq!(env, direct);
        }
    }

    #[test]
    fn an_entry_that_is_gone_is_not_invented() {
        let mut env = vec![1, 2, 0, 0];
        assert!(!put_back(&mut env, 1, OURS, ORIGINAL));
        assert!(!take_out(&mut env, 2, OURS));
        assert_eq!(env, [1, 2, 0, 0]);
        // A stale copy past the first NULL is not live.
        let mut env = vec![1, 0, OURS, 0];
        assert!(!take_out(&mut env, 7, OURS));
        assert!(!put_back(&mut env, 7, OURS, ORIGINAL));
        assert_eq!(env, [1, 0, OURS, 0]);
    }

    #[test]
    fn a_heap_copy_loses_the_appended_entry_in_the_middle() {
        // setenv of a new name copied the array with ours, then appended.
        let mut heap = vec![1, 2, OURS, 7, 0];
        assert!(take_out(&mut heap, usize::MAX, OURS));
        assert_eq!(heap, [1, 2, 7, 0, 0]);
    }
}
