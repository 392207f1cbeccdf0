//! Handing the process to the real loader: the argument block it receives and the entry trampoline.
//!
//! # Safety
//!
//! When nothing but auxv values change, the kernel's block is edited in place (auxv words only,
//! never a string) and the loader starts on it. Otherwise a new block is built below the kernel's,
//! on the same process stack, with the strings it adds (writable, as the program may write into
//! them) between the two. The block must be written where no live frame is, so the building runs on
//! a stack below it ([`arch::run_on_stack`]) and takes its plan by value first. The kernel's block
//! and strings above it are never written. Everything the entry trampoline needs is stored in the
//! new block, just past auxv's AT_NULL pair (no reader of auxv looks past AT_NULL, and the shim
//! keeps no writable data of its own); the trampoline finds it from the AT_ENTRY pair that points
//! at it, so whatever constructors do to envp cannot mislead it (see `entry`).
//!
//! Layout, from high addresses to low:
//!
//! ```text
//!   kernel strings, kernel block (argc argv envp auxv)     untouched
//!   added strings ("LD_LIBRARY_PATH=..." or "--library-path" PATH)
//!   trampoline state (after an environment edit)
//!   new block: argc argv NULL envp NULL auxv               what ld.so gets; its pointers stay here
//!   ld.so's frames, then the program's
//! ```

use linux_raw_sys::auxvec;
use nix_ld::libpath::SearchPath;
use nix_ld::log::Level;
use nix_ld::plan::{EnvEdit, Slot};

use crate::arch;
use crate::loader::Mapped;
use crate::mem;
use crate::report::Log;
use crate::stack::InitialStack;
use crate::trampoline::{tw, TRAMPOLINE_WORDS};

/// How the process was started.
#[derive(Clone, Copy)]
pub enum Mode {
    /// By the kernel as a program's interpreter: ld.so gets `LD_LIBRARY_PATH` through `envp`, and
    /// the trampoline takes it back before the program starts.
    Interpreter { edit: Option<EnvEdit<'static>> },
    /// Run as a command (`nix-ld PROG`): ld.so runs as a command too, with `--library-path` added
    /// after argv[0], which it consumes itself.
    Command { library_path: Option<SearchPath<'static>> },
}

/// Everything the block builder needs, copied by value onto its own stack.
#[derive(Clone, Copy)]
struct Plan {
    /// The kernel's block.
    stack: InitialStack,
    loader: LoaderAt,
    mode: Mode,
    /// Bytes reserved for the strings added between the new block and the kernel's (room enough
    /// for them; the merged path is not measured first).
    strings_len: usize,
    strings_at: usize,
    block_at: usize,
    log: Log,
}

#[derive(Clone, Copy)]
struct LoaderAt {
    base: usize,
    entry: usize,
    phdr: Option<usize>,
    phnum: u16,
}

const LIBRARY_PATH_OPTION: &[u8] = b"--library-path\0";

/// Bytes of a word of the block.
const WORD: usize = core::mem::size_of::<usize>();

impl Mode {
    fn extra_args(&self) -> usize {
        match self {
            Mode::Command { library_path: Some(_) } => 2,
            _ => 0,
        }
    }

    fn appended_env(&self) -> usize {
        match self {
            Mode::Interpreter { edit: Some(EnvEdit { slot: Slot::Append, .. }) } => 1,
            _ => 0,
        }
    }

    fn edit(&self) -> Option<EnvEdit<'static>> {
        match *self {
            Mode::Interpreter { edit } => edit,
            Mode::Command { .. } => None,
        }
    }

    /// Words of the new block for the kernel's block `s`, with the trampoline's state after an
    /// environment edit.
    fn block_words(&self, s: &InitialStack) -> usize {
        let state = if self.edit().is_some() { TRAMPOLINE_WORDS } else { 0 };
        1 + s.argc + self.extra_args() + 1 + s.env_count + self.appended_env() + 1 + 2 * s.aux_count + state
    }

    fn strings_len(&self) -> usize {
        match self {
            Mode::Interpreter { edit: Some(edit) } => edit.string_room(),
            Mode::Command { library_path: Some(path) } => LIBRARY_PATH_OPTION.len() + path.room() + 1,
            _ => 0,
        }
    }
}

impl Plan {
    fn extra_args(&self) -> usize {
        self.mode.extra_args()
    }

    fn appended_env(&self) -> usize {
        self.mode.appended_env()
    }

    fn edit(&self) -> Option<EnvEdit<'static>> {
        self.mode.edit()
    }

    /// Edits a copy of the kernel's auxv at `auxv` (or the kernel's own).
    ///
    /// # Safety
    /// `auxv` must hold `stack.aux_count` writable pairs laid out as the kernel's.
    unsafe fn edit_auxv(&self, auxv: *mut usize, trampoline: bool) {
        // SAFETY: per the function's contract.
        unsafe { edit_auxv(&self.stack, &self.loader, &self.mode, auxv, trampoline) }
    }
}

/// Sets AT_BASE to the loader's base (and AT_ENTRY to the trampoline, with `trampoline`), or, run
/// as a command, describes ld.so as the program (AT_ENTRY, AT_PHDR, AT_PHNUM), in the auxv at
/// `auxv`.
///
/// # Safety
/// `auxv` must hold `stack.aux_count` writable pairs laid out as the kernel's.
unsafe fn edit_auxv(stack: &InitialStack, loader: &LoaderAt, mode: &Mode, auxv: *mut usize, trampoline: bool) {
    // SAFETY (each call): per the function's contract.
    unsafe {
        match mode {
            Mode::Interpreter { .. } => {
                set_aux(stack, auxv, auxvec::AT_BASE, loader.base);
                if trampoline {
                    set_aux(stack, auxv, auxvec::AT_ENTRY, arch::trampoline_address());
                }
            }
            Mode::Command { .. } => {
                set_aux(stack, auxv, auxvec::AT_ENTRY, loader.entry);
                if let Some(phdr) = loader.phdr {
                    set_aux(stack, auxv, auxvec::AT_PHDR, phdr);
                }
                set_aux(stack, auxv, auxvec::AT_PHNUM, loader.phnum as usize);
            }
        }
    }
}

/// Sets auxv entry `key`, if the kernel passed one, to `value`.
///
/// # Safety
/// As for [`edit_auxv`].
#[inline(never)]
unsafe fn set_aux(stack: &InitialStack, auxv: *mut usize, key: u32, value: usize) {
    if let Some(word) = stack.aux_value_word(key) {
        // SAFETY: `word` indexes a word of auxv (measured by `InitialStack::read`).
        unsafe { auxv.add(word).write(value) };
    }
}

/// Starts `loader` for the process whose kernel block is `stack`. Never returns.
pub fn run(stack: &InitialStack, loader: &Mapped, mode: Mode, log: Log) -> ! {
    let loader = LoaderAt { base: loader.base, entry: loader.entry, phdr: loader.phdr, phnum: loader.phnum };
    let strings_len = mode.strings_len();
    if strings_len == 0 {
        // SAFETY: the kernel's own auxv; ld.so is its only reader from here on.
        unsafe { edit_auxv(stack, &loader, &mode, stack.auxv_ptr(), false) };
        // SAFETY: the kernel's block, unchanged but for auxv values; the loader is mapped.
        unsafe { arch::jump(loader.entry, stack.sp) }
    }
    let mut plan = core::mem::MaybeUninit::<Plan>::uninit();
    let p = plan.as_mut_ptr();
    // SAFETY: each field of the plan is written once, in place (see `mem::put`), before it is read.
    let plan = unsafe {
        mem::put(&raw mut (*p).stack, stack);
        mem::put(&raw mut (*p).mode, &mode);
        (&raw mut (*p).loader).write(loader);
        (&raw mut (*p).strings_len).write(strings_len);
        (&raw mut (*p).log).write(log);
        let strings_at = (stack.sp as usize - strings_len) & !15;
        (&raw mut (*p).strings_at).write(strings_at);
        (&raw mut (*p).block_at).write((strings_at - mode.block_words(stack) * WORD) & !15);
        plan.assume_init_ref()
    };
    // SAFETY: below the block there is only dead stack (this function's callers' frames, which
    // `build_and_jump` no longer needs once it has copied the plan); its own frames go below both
    // the block and this frame (see `run_on_stack`).
    unsafe { arch::run_on_stack(plan.block_at, build_and_jump, plan as *const Plan as usize) }
}

/// Sequential writer of words into the new block.
struct Words {
    at: *mut usize,
}

impl Words {
    /// Copies `count` words from `from`; returns where they went.
    ///
    /// # Safety
    /// As for `push`, for `count` words, and `from` must be readable for them.
    unsafe fn copy(&mut self, from: *const usize, count: usize) -> *mut usize {
        let here = self.at;
        // SAFETY: per the function's contract; the source (kernel block) and the new block are
        // disjoint.
        unsafe {
            mem::copy_words(here, from, count);
            self.at = here.add(count);
        }
        here
    }

    /// # Safety
    /// The block has room for every word written (sized by `Mode::block_words`).
    unsafe fn push(&mut self, word: usize) -> *mut usize {
        let here = self.at;
        // SAFETY: per the function's contract.
        unsafe {
            here.write(word);
            self.at = here.add(1);
        }
        here
    }
}

extern "C" fn build_and_jump(plan: usize) -> ! {
    // SAFETY: `run` passed the address of its plan, which no write has touched yet; it is copied
    // before anything is written below the kernel's block. Word by word: a plain `read` of it
    // compiles to a byte-at-a-time copy.
    let plan: Plan = unsafe {
        let mut copy = core::mem::MaybeUninit::<Plan>::uninit();
        mem::put(copy.as_mut_ptr(), &*(plan as *const Plan));
        copy.assume_init()
    };
    let strings = plan.strings_at as *mut u8;
    // SAFETY: [strings_at, strings_at + strings_len) lies between the new block and the kernel's.
    let string_bytes = unsafe { core::slice::from_raw_parts_mut(strings, plan.strings_len) };
    let source = &plan.stack;
    let mut out = Words { at: plan.block_at as *mut usize };
    let argv = source.argv();
    let env = source.env();
    // SAFETY (for every `push` and `copy` below): the block has exactly `block_words` words of
    // room, and the kernel's block it copies from lies above the strings, untouched.
    unsafe {
        out.push(source.argc + plan.extra_args());
        // argv may be empty: execve allows it.
        let (first, rest) = argv.split_at(argv.len().min(1));
        out.copy(first.as_ptr() as *const usize, first.len());
        if let Mode::Command { library_path: Some(search) } = plan.mode {
            let (option, path) = string_bytes.split_at_mut(LIBRARY_PATH_OPTION.len());
            mem::copy_into(option, LIBRARY_PATH_OPTION);
            let len = search.write_with(path, mem::copy_into);
            path[len] = 0;
            out.push(option.as_ptr() as usize);
            out.push(path.as_ptr() as usize);
            log_path(plan.log, b"ld.so runs with --library-path ", &path[..len]);
        }
        out.copy(rest.as_ptr() as *const usize, rest.len());
        out.push(0);
    }
    let edit = plan.edit();
    let entry_len = edit.map_or(0, |edit| edit.write_entry_with(string_bytes, mem::copy_into));
    // SAFETY: see above.
    let env_copy = unsafe { out.copy(env.as_ptr() as *const usize, env.len()) };
    let (mut slot, mut original) = (env.len(), 0);
    if let Some(EnvEdit { slot: Slot::Replace { index }, .. }) = edit {
        // SAFETY: `index` is an index into `envp` (from the scan), so inside the copy.
        unsafe {
            original = *env_copy.add(index);
            *env_copy.add(index) = strings as usize;
        }
        slot = index;
    }
    if plan.appended_env() == 1 {
        // SAFETY: see above.
        unsafe { out.push(strings as usize) };
    }
    if edit.is_some() {
        log_path(plan.log, b"ld.so sees ", &string_bytes[..entry_len]);
    }
    // SAFETY: see above.
    unsafe { out.push(0) };
    // SAFETY: see above.
    let auxv_copy = unsafe { out.copy(source.auxv_ptr(), 2 * source.aux_count) };
    // SAFETY: the copy holds the kernel's pairs.
    unsafe { plan.edit_auxv(auxv_copy, edit.is_some()) };
    if let Some(edit) = edit {
        // The kernel always passes AT_ENTRY; without it there is no program to return to.
        let Some(word) = source.aux_value_word(auxvec::AT_ENTRY) else { arch::trap() };
        let env_words = source.env_count + plan.appended_env();
        let mut state = [0; TRAMPOLINE_WORDS];
        state[tw::REAL_ENTRY] = source.auxv()[word];
        // An appended entry makes the trampoline start the program on a copy of the block (argc,
        // argv, envp and auxv), below it, and call `entry::resume` below that copy.
        // It also looks for libc's `__environ` through the program's headers, then.
        if plan.appended_env() == 1 {
            state[tw::RESERVE] = WORD * (1 + source.argc + 1 + env_words + 1 + 2 * source.aux_count) + 16;
            state[tw::PHDR] = source.aux(auxvec::AT_PHDR).unwrap_or(0);
            state[tw::PHNUM] = source.aux(auxvec::AT_PHNUM).unwrap_or(0);
        }
        state[tw::OURS] = strings as usize;
        state[tw::ORIGINAL] = original;
        state[tw::ORIGINAL_LEN] = edit.original_len();
        state[tw::SLOT] = slot;
        state[tw::ENV_WORDS] = env_words;
        state[tw::AUXV] = auxv_copy as usize;
        // SAFETY: see above; the state's words are the last of the block.
        unsafe { out.copy(state.as_ptr(), TRAMPOLINE_WORDS) };
    }
    // SAFETY: the block is complete and lies above everything ld.so will push.
    unsafe { arch::jump(plan.loader.entry, plan.block_at as *const usize) }
}

fn log_path(log: Log, what: &[u8], path: &[u8]) {
    if let Some(mut m) = log.line(Level::Debug) {
        m.bytes(what).value(path);
        m.end();
    }
}
