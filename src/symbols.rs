//! Finding a symbol in an object ld.so has loaded, through the link map and each object's GNU hash
//! table: how the entry trampoline finds libc's `__environ`.
//!
//! Everything is read through [`Memory`], so the lookup is a plain function: the shim reads the
//! process's memory, the tests read ELF files. Every loop is bounded and every read is a value, not
//! trusted: a malformed table ends the lookup with `None`.

/// Reads of the memory the objects are loaded in. `None` means "not readable".
pub trait Memory {
    fn u64_at(&self, address: usize) -> Option<u64>;
    fn u32_at(&self, address: usize) -> Option<u32>;
    fn u8_at(&self, address: usize) -> Option<u8>;

    fn word_at(&self, address: usize) -> Option<usize> {
        self.u64_at(address).map(|w| w as usize)
    }
}

pub const DT_NULL: u64 = 0;
pub const DT_STRTAB: u64 = 5;
pub const DT_SYMTAB: u64 = 6;
pub const DT_DEBUG: u64 = 21;
pub const DT_GNU_HASH: u64 = 0x6fff_fef5;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_PHDR: u32 = 6;

/// Bytes of an address: the objects are this build's class (ELF64 or ELF32), and every layout
/// below follows from it.
const W: usize = core::mem::size_of::<usize>();
/// Bytes of a dynamic entry (tag, value).
const DYN: usize = 2 * W;
/// Bytes of a symbol (`Elf64_Sym` or `Elf32_Sym`), and where its value and its section index lie.
const SYM: usize = if W == 8 { 24 } else { 16 };
const SYM_VALUE: usize = if W == 8 { 8 } else { 4 };
/// The 4 bytes whose top half is `st_shndx`.
const SYM_SHNDX_WORD: usize = if W == 8 { 4 } else { 12 };
/// Bytes of a program header, and where its `p_vaddr` lies.
const PHDR: usize = if W == 8 { 56 } else { 32 };
const PHDR_VADDR: usize = if W == 8 { 16 } else { 8 };

/// More entries than any real dynamic section has; a longer one is not trusted.
const MAX_DYNAMIC: usize = 512;
/// More objects than a process loads in practice.
const MAX_OBJECTS: usize = 4096;
/// A hash chain longer than this is not a real one.
const MAX_CHAIN: usize = 1 << 16;

/// The GNU hash of `name` (the `DT_GNU_HASH` function: h = h * 33 + c, from 5381).
pub const fn gnu_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 5381;
    let mut i = 0;
    while i < name.len() {
        h = h.wrapping_mul(33).wrapping_add(name[i] as u32);
        i += 1;
    }
    h
}

/// A symbol name and its hash, computed at compile time.
#[derive(Clone, Copy)]
pub struct Name {
    pub bytes: &'static [u8],
    pub hash: u32,
}

impl Name {
    pub const fn new(bytes: &'static [u8]) -> Name {
        Name { bytes, hash: gnu_hash(bytes) }
    }
}

/// The tables of one object, as addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub gnu_hash: usize,
    pub symtab: usize,
    pub strtab: usize,
}

/// An address from the dynamic section: ld.so relocates most of them in place, but not those of an
/// object whose dynamic section is read-only (the vDSO, some linkers' output), which stay offsets
/// from the load bias. A relocated address is never below the bias.
fn absolute(value: usize, bias: usize) -> usize {
    if value < bias {
        value.wrapping_add(bias)
    } else {
        value
    }
}

/// Where the value of the entry with `tag` is in the dynamic section at `dynamic`.
pub fn dynamic_value(mem: &impl Memory, dynamic: usize, tag: u64) -> Option<usize> {
    let end = dynamic.wrapping_add(DYN * MAX_DYNAMIC);
    let mut at = dynamic;
    loop {
        let t = mem.word_at(at)?;
        at = at.wrapping_add(DYN);
        if t == tag as usize {
            return Some(at.wrapping_sub(W));
        }
        if t == DT_NULL as usize || at == end {
            return None;
        }
    }
}

/// Where `l_info` starts in glibc's `struct link_map`: after `l_addr`, `l_name`, `l_ld`, `l_next`,
/// `l_prev` (the public part) and `l_real`, `l_ns`, `l_libname`, which every glibc since 2.3 has.
const L_INFO: usize = 8 * W;
/// `l_info`'s index for `DT_GNU_HASH`: DT_NUM + 41, DT_NUM being 38 since glibc 2.36 (which added
/// the DT_RELR tags) and 35 before. `l_info[5]` and `l_info[6]` are DT_STRTAB and DT_SYMTAB in all.
const GNU_HASH_INDICES: [usize; 2] = [38 + 41, 35 + 41];

/// The value of the dynamic entry that the link map `map` (dynamic section at `ld`) keeps at
/// `l_info[index]`, if that word points into the section, at an entry with tag `tag`. Nothing else
/// is believed: a word that points elsewhere (another glibc's layout, or no such entry) gives
/// `None` and is never read through.
#[inline(always)]
fn info_value(mem: &impl Memory, map: usize, ld: usize, index: usize, tag: u64) -> Option<usize> {
    let entry = mem.word_at(map.wrapping_add(L_INFO + W * index))?;
    let offset = entry.wrapping_sub(ld);
    if offset >= DYN * MAX_DYNAMIC || mem.word_at(entry)? != tag as usize {
        return None;
    }
    mem.word_at(entry + W)
}

/// The tables of the object that link map `map` describes (loaded at `bias`, its dynamic section
/// at `ld`), from the entries ld.so already found for it. A glibc whose `l_info` has another
/// length than those known has the hash table looked up in the dynamic section instead.
pub fn map_tables(mem: &impl Memory, map: usize, bias: usize, ld: usize) -> Option<Tables> {
    let symtab = info_value(mem, map, ld, DT_SYMTAB as usize, DT_SYMTAB)?;
    let strtab = info_value(mem, map, ld, DT_STRTAB as usize, DT_STRTAB)?;
    let from_map = GNU_HASH_INDICES.iter().find_map(|&index| info_value(mem, map, ld, index, DT_GNU_HASH));
    let gnu_hash = match from_map {
        Some(value) => value,
        None => mem.word_at(dynamic_value(mem, ld, DT_GNU_HASH)?)?,
    };
    Some(Tables { gnu_hash: absolute(gnu_hash, bias), symtab: absolute(symtab, bias), strtab: absolute(strtab, bias) })
}

/// The address of `name` if the object defines it (a defined symbol whose GNU hash and name match).
#[inline]
pub fn lookup(mem: &impl Memory, bias: usize, t: &Tables, name: Name) -> Option<usize> {
    let h = name.hash;
    let nbuckets = mem.u32_at(t.gnu_hash)? as usize;
    let symoffset = mem.u32_at(t.gnu_hash + 4)? as usize;
    let bloom_size = mem.u32_at(t.gnu_hash + 8)? as usize;
    if nbuckets == 0 {
        return None;
    }
    // The bloom filter is skipped: on the few objects of a process start, it saves less than its
    // code costs in the shim's size.
    let bloom = t.gnu_hash + 16;
    let buckets = bloom + W * bloom_size;
    let chains = buckets + 4 * nbuckets;
    let first = mem.u32_at(buckets + 4 * (h as usize % nbuckets))? as usize;
    if first < symoffset {
        return None;
    }
    for index in first..first + MAX_CHAIN {
        let chain = mem.u32_at(chains + 4 * (index - symoffset))?;
        if chain | 1 == h | 1 {
            let sym = t.symtab + SYM * index;
            let shndx = mem.u32_at(sym + SYM_SHNDX_WORD)? >> 16;
            if shndx != 0 && names_match(mem, t.strtab + mem.u32_at(sym)? as usize, name.bytes) {
                return Some(bias.wrapping_add(mem.word_at(sym + SYM_VALUE)?));
            }
        }
        if chain & 1 != 0 {
            return None;
        }
    }
    None
}

/// Whether the string at `at` is `name`. Eight bytes are compared at a time, and never a byte
/// past `name`'s NUL, so nothing beyond the string table's entry is read.
fn names_match(mem: &impl Memory, at: usize, name: &[u8]) -> bool {
    let mut i = 0;
    while i + 8 <= name.len() {
        let Ok(word) = name[i..i + 8].try_into() else { return false };
        if mem.u64_at(at + i) != Some(u64::from_le_bytes(word)) {
            return false;
        }
        i += 8;
    }
    name[i..].iter().enumerate().all(|(j, &b)| mem.u8_at(at + i + j) == Some(b))
        && mem.u8_at(at + name.len()) == Some(0)
}

/// The program's dynamic section, from its program headers (AT_PHDR, AT_PHNUM).
pub fn program_dynamic(mem: &impl Memory, phdr: usize, phnum: usize) -> Option<usize> {
    // PT_PHDR comes first when there is one (the ELF specification says so); the scan stops at
    // PT_DYNAMIC.
    let mut bias = None;
    let end = phdr + PHDR * phnum.min(MAX_DYNAMIC);
    let mut at = phdr;
    while at != end {
        match mem.u32_at(at)? {
            PT_PHDR => bias = Some(phdr.wrapping_sub(mem.word_at(at + PHDR_VADDR)?)),
            PT_DYNAMIC => return Some(bias?.wrapping_add(mem.word_at(at + PHDR_VADDR)?)),
            _ => {}
        }
        at += PHDR;
    }
    None
}

/// The first definition of `name` in the objects ld.so has loaded, in the order of its link map
/// (the program first), which is the order it binds symbols in. The program's dynamic section (at
/// `program_dynamic`) leads there: its `DT_DEBUG` holds ld.so's `r_debug`, which holds the link map.
pub fn find_loaded(mem: &impl Memory, program_dynamic: usize, name: Name) -> Option<usize> {
    // struct r_debug { int r_version; struct link_map *r_map; ... }
    let r_debug = mem.word_at(dynamic_value(mem, program_dynamic, DT_DEBUG)?)?;
    let mut map = mem.word_at(r_debug.checked_add(W)?)?;
    for _ in 0..MAX_OBJECTS {
        if map == 0 {
            return None;
        }
        // struct link_map { l_addr, l_name, l_ld, l_next, l_prev, ... }
        let (bias, ld) = (mem.word_at(map)?, mem.word_at(map + 2 * W)?);
        if let Some(found) = map_tables(mem, map, bias, ld).and_then(|t| lookup(mem, bias, &t, name)) {
            return Some(found);
        }
        map = mem.word_at(map + 3 * W)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF file's bytes seen at the addresses its PT_LOAD segments give them, loaded at `bias`.
    struct Loaded {
        file: Vec<u8>,
        bias: usize,
        /// (vaddr, offset, filesz, memsz)
        segments: Vec<(usize, usize, usize, usize)>,
        /// Where the dynamic section is.
        dynamic: usize,
    }

    impl Loaded {
        fn new(path: &str, bias: usize) -> Loaded {
            let file = std::fs::read(path).unwrap();
            let u = |at: usize, n: usize| file[at..at + n].iter().rev().fold(0usize, |v, &b| v << 8 | b as usize);
            let (phoff, phnum) = (u(32, 8), u(56, 2));
            let mut segments = Vec::new();
            let mut dynamic = 0;
            for i in 0..phnum {
                let at = phoff + 56 * i;
                let (kind, offset, vaddr, filesz, memsz) =
                    (u(at, 4), u(at + 8, 8), u(at + 16, 8), u(at + 32, 8), u(at + 40, 8));
                if kind == 1 {
                    segments.push((vaddr, offset, filesz, memsz));
                }
                if kind == 2 {
                    dynamic = vaddr + bias;
                }
            }
            Loaded { file, bias, segments, dynamic }
        }

        fn bytes(&self, address: usize, n: usize) -> Option<&[u8]> {
            let vaddr = address.checked_sub(self.bias)?;
            let &(start, offset, filesz, _) =
                self.segments.iter().find(|&&(v, _, _, m)| vaddr >= v && vaddr + n <= v + m)?;
            let at = vaddr - start;
            (at + n <= filesz).then(|| &self.file[offset + at..offset + at + n])
        }
    }

    impl Memory for Loaded {
        fn u64_at(&self, a: usize) -> Option<u64> {
            self.bytes(a, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        }
        fn u32_at(&self, a: usize) -> Option<u32> {
            self.bytes(a, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        }
        fn u8_at(&self, a: usize) -> Option<u8> {
            self.bytes(a, 1).map(|b| b[0])
        }
    }

    fn libc() -> Option<String> {
        // The test machine's libc; the Nix build gives its own glibc's path in NIX_LD's directory.
        let dirs = ["/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64"];
        let from_loader = std::env::var("NIX_LD")
            .ok()
            .and_then(|l| std::path::Path::new(&l).parent().map(|d| d.display().to_string()));
        from_loader
            .into_iter()
            .chain(dirs.iter().map(|d| d.to_string()))
            .map(|d| format!("{d}/libc.so.6"))
            .find(|p| std::path::Path::new(p).exists())
    }

    /// The dynamic symbols `nm -D` lists as defined in `path`, with their values.
    fn nm_defined(path: &str) -> Vec<(String, usize)> {
        let out = std::process::Command::new("nm")
            .args(["-D", "--defined-only", path])
            .output()
            .expect("nm (binutils) is needed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let value = usize::from_str_radix(f.next()?, 16).ok()?;
                let name = f.nth(1)?.split('@').next()?.to_string();
                Some((name, value))
            })
            .collect()
    }

    /// An object's tables, each looked up in its dynamic section.
    fn tables(mem: &impl Memory, dynamic: usize, bias: usize) -> Option<Tables> {
        let value = |tag| dynamic_value(mem, dynamic, tag).and_then(|at| mem.word_at(at)).map(|v| absolute(v, bias));
        Some(Tables { gnu_hash: value(DT_GNU_HASH)?, symtab: value(DT_SYMTAB)?, strtab: value(DT_STRTAB)? })
    }

    #[test]
    fn the_hash_is_the_gnu_one() {
        // 5381 for the empty name, as the function is defined; the others are known values.
        assert_eq!(gnu_hash(b""), 0x0000_1505);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(gnu_hash(b"exit"), 0x7c96_7e3f);
        assert_eq!(gnu_hash(b"syscall"), 0xbac2_12a0);
    }

    #[test]
    fn every_symbol_of_libc_is_found_where_nm_says_and_others_are_not() {
        let Some(path) = libc() else { panic!("no libc.so.6 found to read") };
        let bias = 0x7f00_0000_0000;
        let loaded = Loaded::new(&path, bias);
        let t = tables(&loaded, loaded.dynamic, bias).expect("libc's dynamic section");
        let defined = nm_defined(&path);
        assert!(defined.len() > 1000, "nm listed {} symbols", defined.len());
        for (name, value) in &defined {
            let bytes: &'static [u8] = Box::leak(name.clone().into_bytes().into_boxed_slice());
            let found = lookup(&loaded, bias, &t, Name::new(bytes));
            // Several versions of one name (memcpy@GLIBC_2.2.5 and @GLIBC_2.14) share the name:
            // any of their values is a right answer.
            let values: Vec<usize> = defined.iter().filter(|(n, _)| n == name).map(|(_, v)| bias + v).collect();
            assert!(found.is_some_and(|f| values.contains(&f)), "{name}: found {found:x?}, nm says {value:x}");
        }
        for missing in [&b"no_such_symbol"[..], b"environ_", b"__enviro", b"main"] {
            assert_eq!(lookup(&loaded, bias, &t, Name::new(missing)), None);
        }
        let environ = defined.iter().find(|(n, _)| n == "__environ").expect("libc defines __environ").1;
        assert_eq!(lookup(&loaded, bias, &t, Name::new(b"__environ")), Some(bias + environ));
    }

    #[test]
    fn unrelocated_table_addresses_are_taken_from_the_bias() {
        assert_eq!(absolute(0x1000, 0x7f00_0000_0000), 0x7f00_0000_1000);
        assert_eq!(absolute(0x7f00_0000_1000, 0x7f00_0000_0000), 0x7f00_0000_1000);
        assert_eq!(absolute(0x1000, 0), 0x1000);
    }

    /// Memory that reads as a fixed pattern everywhere: a lookup over garbage must end.
    struct Garbage(u64);
    impl Memory for Garbage {
        fn u64_at(&self, a: usize) -> Option<u64> {
            Some(self.0 ^ a as u64)
        }
        fn u32_at(&self, a: usize) -> Option<u32> {
            Some((self.0 ^ a as u64) as u32)
        }
        fn u8_at(&self, a: usize) -> Option<u8> {
            Some((self.0 ^ a as u64) as u8)
        }
    }

    #[test]
    fn garbage_tables_end_the_lookup() {
        for seed in [0, 1, 0xffff_ffff, 0x1234_5678_9abc_def0, u64::MAX] {
            let mem = Garbage(seed);
            let t = Tables { gnu_hash: 0x1000, symtab: 0x2000, strtab: 0x3000 };
            let _ = lookup(&mem, 0, &t, Name::new(b"__environ"));
            let _ = dynamic_value(&mem, 0x5000, DT_DEBUG);
            let _ = map_tables(&mem, 0x7000, 0, 0x5000);
            let _ = find_loaded(&mem, 0x5000, Name::new(b"__environ"));
            let _ = program_dynamic(&mem, 0x6000, 13);
        }
    }

    /// A loaded file, with a glibc link map for it written at `map`, whose `l_info` words are
    /// `info` (index, value).
    struct WithMap<'a> {
        loaded: &'a Loaded,
        map: usize,
        words: Vec<u64>,
    }

    impl<'a> WithMap<'a> {
        fn new(loaded: &'a Loaded, map: usize, info: &[(usize, usize)]) -> WithMap<'a> {
            let mut words = vec![0u64; 8 + 100];
            words[0] = loaded.bias as u64;
            words[2] = loaded.dynamic as u64;
            for &(index, value) in info {
                words[8 + index] = value as u64;
            }
            WithMap { loaded, map, words }
        }

        fn word(&self, a: usize) -> Option<u64> {
            let i = a.checked_sub(self.map)?;
            (i % 8 == 0 && i / 8 < self.words.len()).then(|| self.words[i / 8])
        }
    }

    impl Memory for WithMap<'_> {
        fn u64_at(&self, a: usize) -> Option<u64> {
            self.word(a).or_else(|| self.loaded.u64_at(a))
        }
        fn u32_at(&self, a: usize) -> Option<u32> {
            self.loaded.u32_at(a)
        }
        fn u8_at(&self, a: usize) -> Option<u8> {
            self.loaded.u8_at(a)
        }
    }

    /// Where the dynamic entry with `tag` is in the loaded file.
    fn entry_of(loaded: &Loaded, tag: u64) -> usize {
        (0..).map(|i| loaded.dynamic + 16 * i).find(|&at| loaded.u64_at(at) == Some(tag)).unwrap()
    }

    #[test]
    fn the_link_map_s_entries_are_used_in_either_glibc_layout_and_only_when_they_check_out() {
        let Some(path) = libc() else { panic!("no libc.so.6 found to read") };
        let bias = 0x7f00_0000_0000;
        let loaded = Loaded::new(&path, bias);
        let walked = tables(&loaded, loaded.dynamic, bias).unwrap();
        let map = 0x5555_0000_0000;
        let (sym, str_, gnu) =
            (entry_of(&loaded, DT_SYMTAB), entry_of(&loaded, DT_STRTAB), entry_of(&loaded, DT_GNU_HASH));
        // Where `map_tables` read them from: a map whose words are wrong, but that checks out,
        // would give other tables than the walk.
        let [newer, older] = GNU_HASH_INDICES;
        for gnu_index in [newer, older] {
            let mem = WithMap::new(&loaded, map, &[(5, str_), (6, sym), (gnu_index, gnu)]);
            assert_eq!(map_tables(&mem, map, bias, loaded.dynamic), Some(walked), "l_info[{gnu_index}]");
            let environ = map_tables(&mem, map, bias, loaded.dynamic)
                .and_then(|t| lookup(&mem, bias, &t, Name::new(b"__environ")));
            assert!(environ.is_some());
        }
        // A wrong word (a pointer outside the section, one between entries, one at an entry with
        // another tag, a small number as an older glibc has past l_info) is never believed: for the
        // hash table the section is searched instead, which gives the right tables; without the
        // symbol or string table (which every glibc keeps at l_info[6] and [5]) there are none.
        for wrong in [0, 0x1000, sym + 8, sym + 1, str_, 0x0022_000d, loaded.dynamic + 16 * MAX_DYNAMIC] {
            for slot in [5, 6, newer] {
                let mut info = vec![(5, str_), (6, sym), (newer, gnu)];
                let word = &mut info.iter_mut().find(|(i, _)| *i == slot).unwrap().1;
                if *word == wrong {
                    continue;
                }
                *word = wrong;
                let mem = WithMap::new(&loaded, map, &info);
                let want = if slot == newer { Some(walked) } else { None };
                assert_eq!(map_tables(&mem, map, bias, loaded.dynamic), want, "l_info[{slot}] = {wrong:#x}");
            }
        }
    }

    #[test]
    fn the_lookup_follows_r_debug_from_the_program_through_the_link_map() {
        let Some(path) = libc() else { panic!("no libc.so.6 found to read") };
        let bias = 0x7f00_0000_0000;
        let loaded = Loaded::new(&path, bias);
        // A program's dynamic section (DT_DEBUG second) and r_debug, and a link map for libc with
        // an older glibc's l_info.
        let program_dynamic = 0x5555_0001_0000usize;
        let r_debug = 0x5555_0002_0000usize;
        let map = 0x5555_0000_0000usize;
        struct Process<'a> {
            libc: WithMap<'a>,
            words: std::collections::BTreeMap<usize, u64>,
        }
        impl Memory for Process<'_> {
            fn u64_at(&self, a: usize) -> Option<u64> {
                self.words.get(&a).copied().or_else(|| self.libc.u64_at(a))
            }
            fn u32_at(&self, a: usize) -> Option<u32> {
                self.libc.u32_at(a)
            }
            fn u8_at(&self, a: usize) -> Option<u8> {
                self.libc.u8_at(a)
            }
        }
        let words = [
            (program_dynamic, DT_STRTAB),
            (program_dynamic + 8, 0x1000),
            (program_dynamic + 16, DT_DEBUG),
            (program_dynamic + 24, r_debug as u64),
            (r_debug + 8, map as u64),
        ];
        let info = [
            (5, entry_of(&loaded, DT_STRTAB)),
            (6, entry_of(&loaded, DT_SYMTAB)),
            (GNU_HASH_INDICES[1], entry_of(&loaded, DT_GNU_HASH)),
        ];
        let mem = Process { libc: WithMap::new(&loaded, map, &info), words: words.into_iter().collect() };
        let defined = nm_defined(&path);
        let environ = defined.iter().find(|(n, _)| n == "__environ").unwrap().1;
        assert_eq!(find_loaded(&mem, program_dynamic, Name::new(b"__environ")), Some(bias + environ));
        assert_eq!(find_loaded(&mem, program_dynamic, Name::new(b"no_such_symbol")), None);
        // No DT_DEBUG: no link map to follow.
        assert_eq!(find_loaded(&mem, program_dynamic + 32, Name::new(b"__environ")), None);
    }
}
