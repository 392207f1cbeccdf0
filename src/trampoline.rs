//! The entry trampoline's state: the words `handover` stores after auxv's AT_NULL pair for the
//! trampoline (`src/arch/`) and `entry::resume`.

/// Words of trampoline state. They follow auxv's AT_NULL pair in the block ld.so gets (see
/// `handover`); each architecture's trampoline (`src/arch/`) reads the first two, `entry::resume`
/// the rest.
pub const TRAMPOLINE_WORDS: usize = 10;
/// Index of each word in [`TRAMPOLINE_WORDS`].
pub mod tw {
    /// The program's own entry point.
    pub const REAL_ENTRY: usize = 0;
    /// Bytes to leave free below the block for a copy of it, before calling `entry::resume`.
    pub const RESERVE: usize = 1;
    /// The `LD_LIBRARY_PATH=` string written for ld.so.
    pub const OURS: usize = 2;
    /// The entry it replaced (the borrowed one: see `plan::Slot`), or 0 if it was appended.
    pub const ORIGINAL: usize = 3;
    /// Bytes of that entry with its NUL.
    pub const ORIGINAL_LEN: usize = 4;
    /// Where in `envp` it was put.
    pub const SLOT: usize = 5;
    /// Words of `envp` in the block, without its NULL.
    pub const ENV_WORDS: usize = 6;
    /// Where auxv is in the block.
    pub const AUXV: usize = 7;
    /// The program's program headers and their number (AT_PHDR, AT_PHNUM), when appended.
    pub const PHDR: usize = 8;
    pub const PHNUM: usize = 9;
}
