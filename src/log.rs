//! `NIX_LD_LOG`: which diagnostics the shim prints on stderr.

/// Verbosity, from quietest to loudest. A message is printed when its level is at most the
/// configured one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// The level used when `NIX_LD_LOG` is unset, empty or not understood.
pub const DEFAULT: Level = Level::Warn;

/// Parses a `NIX_LD_LOG` value (case-insensitive). `Err(())` means "not a level": the caller warns
/// and keeps the default.
#[allow(clippy::result_unit_err)]
pub fn parse(value: &[u8]) -> Result<Level, ()> {
    // One pass over the names, comparing as it goes: smaller than splitting and comparing slices.
    const NAMES: &[u8] = b"error\0warn\0info\0debug\0trace\0";
    const LEVELS: [Level; 5] = [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace];
    let value = crate::plan::trim_newline(value);
    let (mut index, mut at, mut matching) = (0, 0, true);
    for &b in NAMES {
        if b == 0 {
            if matching && at == value.len() {
                return LEVELS.get(index).copied().ok_or(());
            }
            (index, at, matching) = (index + 1, 0, true);
        } else {
            matching &= value.get(at).map(u8::to_ascii_lowercase) == Some(b);
            at += 1;
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_any_case_and_order_by_verbosity() {
        assert_eq!(parse(b"error"), Ok(Level::Error));
        assert_eq!(parse(b"WARN"), Ok(Level::Warn));
        assert_eq!(parse(b"Info\n"), Ok(Level::Info));
        assert_eq!(parse(b"debug"), Ok(Level::Debug));
        assert_eq!(parse(b"trace"), Ok(Level::Trace));
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug && Level::Debug < Level::Trace);
    }

    #[test]
    fn anything_else_is_rejected() {
        for bad in [&b""[..], b"verbose", b"3", b"info ", b"in"] {
            assert_eq!(parse(bad), Err(()), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
