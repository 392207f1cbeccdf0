//! Copying bytes without a call to `memcpy`.
//!
//! The shim has no writable data (see `linker.ld`), and a call to `memcpy` that the compiler
//! emits for a copy of unknown length goes through a GOT entry, which is writable data that needs
//! a relocation at every start. So the library copies with plain word loads and stores, and an
//! empty optimisation barrier keeps LLVM from recognising the loop and calling `memcpy` after all.

/// Copies `src` to the start of `dst`. Panics if `dst` is shorter, like `copy_from_slice`.
pub fn copy(dst: &mut [u8], src: &[u8]) {
    let dst = &mut dst[..src.len()];
    let len = src.len();
    if len < 8 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
            core::hint::black_box(&mut *d);
        }
        return;
    }
    // Whole words, then one last word that may overlap the previous one.
    let mut at = 0;
    while at + 8 < len {
        dst[at..at + 8].copy_from_slice(&src[at..at + 8]);
        core::hint::black_box(&mut dst[at]);
        at += 8;
    }
    dst[len - 8..].copy_from_slice(&src[len - 8..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn copies_exactly_the_source_and_nothing_after_it(src in proptest::collection::vec(any::<u8>(), 0..80), extra in 0usize..20) {
            let mut dst = vec![0xAAu8; src.len() + extra];
            copy(&mut dst, &src);
            prop_assert_eq!(&dst[..src.len()], &src[..]);
            prop_assert!(dst[src.len()..].iter().all(|&b| b == 0xAA));
        }
    }

    #[test]
    #[should_panic]
    fn a_short_destination_panics() {
        copy(&mut [0u8; 3], b"abcd");
    }
}
