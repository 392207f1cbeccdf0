//! What the chosen loader searches after the library path: its default directories and its
//! cache, as it states them itself (`ld.so --help`, glibc 2.33 and later: "Shared library search
//! path:"), and the cache file it names, read in glibc's format (`glibc-ld.so.cache1.1`).

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// The loader's own search after the library path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// The system search path, in order (`/lib/x86_64-linux-gnu`; a Nix glibc's own `lib`).
    pub directories: Vec<String>,
    /// The cache file it consults first, when it says it uses one.
    pub cache: Option<String>,
}

/// Reads the "Shared library search path:" block of `ld.so --help`.
pub fn parse_help(text: &str) -> Defaults {
    let mut defaults = Defaults::default();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("Shared library search path:") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        let Some(entry) = line.strip_prefix("  ") else { break };
        if let Some(cache) = entry.strip_prefix("(libraries located via ").and_then(|r| r.strip_suffix(')')) {
            defaults.cache = Some(cache.to_string());
        } else if let Some(dir) = entry.strip_suffix(" (system search path)") {
            defaults.directories.push(dir.to_string());
        }
    }
    defaults
}

/// The loader's defaults, from its `--help`; None when it does not say (glibc before 2.33).
pub fn defaults(loader: &str) -> Option<Defaults> {
    let out = Command::new(loader).arg("--help").env_remove("LD_LIBRARY_PATH").stdin(Stdio::inherit()).output().ok()?;
    let d = parse_help(&String::from_utf8_lossy(&out.stdout));
    (!d.directories.is_empty() || d.cache.is_some()).then_some(d)
}

const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
/// An x86-64 glibc library entry: FLAG_ELF_LIBC6 | FLAG_X8664_LIB64.
const X86_64_LIBC6: i32 = 0x0303;
/// A 32-bit x86 glibc library entry: FLAG_ELF_LIBC6 and no architecture flag.
const I386_LIBC6: i32 = 0x0003;

/// The entries of an ld.so.cache (soname → path) for the loader of `machine` (x86-64 or i386),
/// baseline ones only (no hwcaps subdirectories). Empty when the bytes are not a cache of a
/// known format, or the machine is another.
pub fn parse_cache(bytes: &[u8], machine: u16) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let wanted = match machine {
        62 => X86_64_LIBC6,
        3 => I386_LIBC6,
        _ => return out,
    };
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    // The old format, when present, comes first; the new one follows it, 8-byte aligned.
    let mut start = 0;
    if bytes.starts_with(OLD_MAGIC) {
        let Some(n) = u32_at(12) else { return out };
        start = (16 + n as usize * 12 + 7) & !7;
    }
    if bytes.get(start..start + MAGIC.len()) != Some(MAGIC) {
        return out;
    }
    let Some(count) = u32_at(start + 20) else { return out };
    let string = |offset: u32| {
        let from = start + offset as usize;
        let rest = bytes.get(from..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    };
    for i in 0..count as usize {
        let at = start + 48 + i * 24;
        let (Some(flags), Some(key), Some(value)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8)) else { break };
        let hwcap = bytes.get(at + 16..at + 24).map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap()));
        if flags as i32 != wanted || hwcap != 0 {
            continue;
        }
        if let (Some(k), Some(v)) = (string(key), string(value)) {
            // The first entry for a name wins, as ld.so's search of the sorted table finds it.
            out.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "You have invoked 'ld.so'...\n\nShared library search path:\n  (libraries located via /etc/ld.so.cache)\n  /lib/x86_64-linux-gnu (system search path)\n  /usr/lib (system search path)\n\nSubdirectories of glibc-hwcaps directories, in priority order:\n  x86-64-v3 (supported, searched)\n";

    #[test]
    fn the_help_gives_the_cache_and_the_system_directories() {
        let d = parse_help(HELP);
        assert_eq!(d.cache.as_deref(), Some("/etc/ld.so.cache"));
        assert_eq!(d.directories, ["/lib/x86_64-linux-gnu", "/usr/lib"]);
        assert_eq!(parse_help("nothing here"), Defaults::default());
    }

    fn cache(entries: &[(i32, &str, &str, u64)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let table = 48 + entries.len() * 24;
        let mut b = MAGIC.to_vec();
        b.extend((entries.len() as u32).to_le_bytes());
        b.resize(48, 0);
        let mut add = |s: &str| {
            let at = table + strings.len();
            strings.extend(s.as_bytes());
            strings.push(0);
            at as u32
        };
        let mut rows = Vec::new();
        for (flags, k, v, hwcap) in entries {
            rows.extend(flags.to_le_bytes());
            rows.extend(add(k).to_le_bytes());
            rows.extend(add(v).to_le_bytes());
            rows.extend(0u32.to_le_bytes());
            rows.extend(hwcap.to_le_bytes());
        }
        b.extend(rows);
        b.extend(strings);
        b
    }

    #[test]
    fn the_cache_gives_the_machines_baseline_entries_only() {
        let bytes = cache(&[
            (0x0303, "libz.so.1", "/usr/local/lib/libz.so.1", 0),
            (0x0303, "libz.so.1", "/lib/libz.so.1", 0),
            (0x0003, "libi386.so.1", "/lib32/libi386.so.1", 0),
            (0x0303, "libv3.so.1", "/lib/glibc-hwcaps/x86-64-v3/libv3.so.1", 1 << 62),
        ]);
        let c = parse_cache(&bytes, 62);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c["libz.so.1"], "/usr/local/lib/libz.so.1");
        let c = parse_cache(&bytes, 3);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["libi386.so.1"]);
        assert!(parse_cache(&bytes, 183).is_empty());
        assert!(parse_cache(b"not a cache", 62).is_empty());
        assert!(parse_cache(&bytes[..60], 62).is_empty() || parse_cache(&bytes[..60], 62).len() <= 1);
    }

    #[test]
    fn the_machines_cache_when_there_is_one_holds_its_libc() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("SKIP: no /etc/ld.so.cache on this machine");
            return;
        };
        assert!(parse_cache(&bytes, 62).contains_key("libc.so.6"));
    }
}
