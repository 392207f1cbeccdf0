//! The program's entry, after ld.so and every library constructor ran: the Rust half of the entry
//! trampoline (`arch`), which gives the program back the environment it was started with.
//!
//! # Safety
//!
//! [`resume`] is called only by the trampoline, with the argument block the shim built for ld.so
//! (`handover`), the trampoline state that follows its auxv, and the auxv word that held the
//! trampoline's address. Their shapes are the shim's own; what constructors may have changed is
//! only what glibc lets them change: the pointers in the live part of `envp` (up to its first
//! NULL), and libc's `__environ`, which may point at a heap array of string pointers ending in a
//! NULL, or be NULL. Those are read as values and searched with bounds.
//!
//! The block stays where it is: ld.so, libc and the program's `__libc_stack_end` point into it. A
//! copy, when one is needed, is written below it, into room the trampoline left free above this
//! function's frames. The only other memory read is ld.so's link map and what it describes
//! (program headers, dynamic sections, symbol tables of loaded objects), through [`Process`]. A
//! word of a link map's private `l_info` is read through only if it points into that object's
//! dynamic section (`symbols::map_tables`), where glibc's `l_info` entries point.

use nix_ld::restore;
use nix_ld::symbols::{self, Memory, Name};

use crate::mem;
use crate::trampoline::tw;

/// libc's `environ`, by its strong name (`environ` is a weak alias of it, and a program that refers
/// to `environ` directly gets a copy of it, under both names, that ld.so binds libc to).
const ENVIRON: Name = Name::new(b"__environ");

/// Gives the program its environment back and returns the stack pointer it starts with.
///
/// # Safety
/// Only the trampoline calls this, with the block, its state and the AT_ENTRY word (module contract).
pub unsafe extern "C" fn resume(block: *mut usize, state: *const usize, at_entry: *mut usize) -> *mut usize {
    // SAFETY: the state's words and the AT_ENTRY word are the shim's own (module contract).
    let word = |i: usize| unsafe { state.add(i).read() };
    // SAFETY: as above; getauxval(AT_ENTRY) reads this auxv.
    unsafe { at_entry.write(word(tw::REAL_ENTRY)) };
    // SAFETY: the block starts with argc and argv, and envp follows them (module contract).
    let (argc, envp) = unsafe { (*block, block.add(*block + 2)) };
    let (ours, original, slot, env_words) = (word(tw::OURS), word(tw::ORIGINAL), word(tw::SLOT), word(tw::ENV_WORDS));
    if original != 0 {
        // The user's LD_LIBRARY_PATH was borrowed. The string written for ld.so now reads as the
        // user's entry too, for any copy of `environ` a constructor made with it.
        // SAFETY: `ours` has room for the entry (EnvEdit::string_room), and both are the shim's
        // or the kernel's strings, which nothing else writes.
        unsafe { mem::copy_bytes(ours as *mut u8, original as *const u8, word(tw::ORIGINAL_LEN)) };
        // SAFETY: envp holds `env_words` words, then its NULL (module contract).
        let stack_env = unsafe { core::slice::from_raw_parts_mut(envp, env_words) };
        restore::put_back(stack_env, slot, ours, original);
        return block;
    }
    // Appended: take it out of the block's envp (with its NULL) and of any copy libc now uses.
    // SAFETY: as above, with the NULL.
    let stack_env = unsafe { core::slice::from_raw_parts_mut(envp, env_words + 1) };
    restore::take_out(stack_env, slot, ours);
    let auxv = word(tw::AUXV) as *const usize;
    let environ = find_environ(word(tw::PHDR), word(tw::PHNUM));
    // Without a way to find `__environ`, it is taken to be the block's envp, as ld.so left it.
    let mut environ_is_stack = true;
    if let Some(var) = environ {
        // SAFETY: `var` is libc's `__environ`, found through ld.so's link map.
        let current = unsafe { var.read() };
        // NULL after `clearenv`.
        environ_is_stack = current == envp;
        if !current.is_null() && !environ_is_stack {
            // SAFETY: a live `environ` array ends in a NULL (module contract).
            let heap = unsafe { core::slice::from_raw_parts_mut(current, live_len(current) + 1) };
            restore::take_out(heap, usize::MAX, ours);
        }
    }
    if stack_env[env_words - 1] != 0 {
        // A constructor set LD_LIBRARY_PATH in the appended entry's place: the block's envp is full,
        // and its layout is already the kernel's.
        return block;
    }
    // The block's envp now ends in two NULLs where a direct start has one: the program starts on a
    // copy without the last, just below, where runtimes that walk the entry stack (Go) find auxv.
    let head = envp as usize - block as usize + core::mem::size_of::<usize>() * env_words;
    let tail = word_distance(auxv, state);
    let copy = ((block as usize - head - tail) & !15) as *mut usize;
    // SAFETY: the trampoline left `tw::RESERVE` bytes free below the block (handover sizes it as
    // the whole block plus alignment), above this function's frames; the copy's two parts come from
    // the block, disjoint from it.
    unsafe {
        mem::copy_bytes(copy as *mut u8, block as *const u8, head);
        mem::copy_bytes((copy as *mut u8).add(head), auxv as *const u8, tail);
    }
    if let (Some(var), true) = (environ, environ_is_stack) {
        // libc's environ moves with the program's envp, so that code walking past environ's NULL
        // finds auxv too.
        // SAFETY: as above; the copy lives as long as the process (it is above the program's stack).
        unsafe { var.write(copy.add(argc + 2)) };
    }
    copy
}

/// Entries of the NULL-terminated array at `array`.
fn live_len(array: *const usize) -> usize {
    let mut n = 0;
    // SAFETY: the array ends in a NULL (module contract of the caller).
    while unsafe { array.add(n).read() } != 0 {
        n += 1;
    }
    n
}

/// Bytes from `from` to `to`.
fn word_distance(from: *const usize, to: *const usize) -> usize {
    to as usize - from as usize
}

/// The process's memory as ld.so mapped it. Reads are not checked: they follow pointers the
/// kernel and ld.so wrote (program headers, dynamic sections, the link map, hash tables).
struct Process;

impl Memory for Process {
    fn u64_at(&self, address: usize) -> Option<u64> {
        // SAFETY: an address from the structures named above, all mapped and readable.
        Some(unsafe { (address as *const u64).read_unaligned() })
    }
    fn u32_at(&self, address: usize) -> Option<u32> {
        // SAFETY: as above.
        Some(unsafe { (address as *const u32).read_unaligned() })
    }
    fn u8_at(&self, address: usize) -> Option<u8> {
        // SAFETY: as above.
        Some(unsafe { (address as *const u8).read() })
    }
    fn word_at(&self, address: usize) -> Option<usize> {
        // SAFETY: as above.
        Some(unsafe { (address as *const usize).read_unaligned() })
    }
}

/// libc's `__environ`: the first definition in ld.so's link map, reached through the program's
/// `DT_DEBUG` (its program headers are at `phdr`). None if the program has no `DT_DEBUG` or no
/// object defines it in a GNU hash table.
fn find_environ(phdr: usize, phnum: usize) -> Option<*mut *mut usize> {
    let dynamic = symbols::program_dynamic(&Process, phdr, phnum)?;
    symbols::find_loaded(&Process, dynamic, ENVIRON).map(|a| a as *mut *mut usize)
}
