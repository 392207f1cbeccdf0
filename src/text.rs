//! Building messages without `core::fmt`: a small buffered writer with decimal and hex numbers.
//!
//! `core::fmt` would add kilobytes of code and relocations to every exec; the shim only ever prints
//! byte strings and integers.

/// Where finished bytes go (stderr in the shim, a `Vec` in tests).
pub trait Sink {
    fn write_all(&mut self, bytes: &[u8]);
}

impl<T: Sink + ?Sized> Sink for &mut T {
    fn write_all(&mut self, bytes: &[u8]) {
        (**self).write_all(bytes)
    }
}

/// Values longer than this are shortened in messages ([`Message::value`]).
pub const LONG_VALUE: usize = 300;
/// How much of each end of a shortened value a message keeps.
pub const KEPT_ENDS: usize = 120;

/// A message under construction. Bytes are buffered and handed to the sink in as few writes as
/// possible; a message longer than the buffer is written in pieces rather than cut.
pub struct Message<S: Sink> {
    sink: S,
    buf: [u8; 512],
    len: usize,
}

impl<S: Sink> Message<S> {
    // One copy of the buffer's zeroing, not one at every message.
    #[inline(never)]
    pub fn new(sink: S) -> Self {
        Message { sink, buf: [0; 512], len: 0 }
    }

    /// Appends `bytes`, a byte at a time: messages are printed only on failures and when logging,
    /// so this is kept small rather than fast.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            if self.len == self.buf.len() {
                self.flush();
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
            // Keeps LLVM from turning the loop back into a call to `memcpy` (see `copy`).
            core::hint::black_box(&mut self.len);
        }
        self
    }

    /// Appends a value the user gave (a path, a search path, a variable's value). One longer than
    /// [`LONG_VALUE`] bytes keeps its first and last [`KEPT_ENDS`] bytes, with its length between
    /// them: a 5,000-byte `NIX_LD` must not make a 5,000-byte line.
    #[inline(never)]
    pub fn value(&mut self, value: &[u8]) -> &mut Self {
        let n = value.len();
        if n <= LONG_VALUE {
            return self.bytes(value);
        }
        // In bounds: n > LONG_VALUE > 2 * KEPT_ENDS.
        self.bytes(&value[..KEPT_ENDS]).entry(b"...(# bytes in all)...", 0, n as u64).bytes(&value[n - KEPT_ENDS..])
    }

    pub fn dec(&mut self, value: u64) -> &mut Self {
        self.number(value, 10, b"")
    }

    pub fn hex(&mut self, value: u64) -> &mut Self {
        self.number(value, 16, b"0x")
    }

    /// `value` in `base` (at most 16), after `prefix`. One function for both bases: messages are
    /// rare, and every copy of the digit loop is mapped by every process.
    #[inline(never)]
    fn number(&mut self, value: u64, base: u64, prefix: &[u8]) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut v = value;
        for slot in digits.iter_mut().rev() {
            // `& 15` changes nothing (base <= 16) but lets the lookup go without a bounds check.
            *slot = b"0123456789abcdef"[(v % base) as usize & 15];
            len += 1;
            v /= base;
            if v == 0 {
                break;
            }
        }
        let (_, used) = digits.split_at(digits.len() - len);
        self.bytes(prefix).bytes(used)
    }

    /// Writes entry `index` of `table`, a list of NUL-separated messages, with its `#` (if any)
    /// replaced by `number`. One table and one call take far less code than a call per message.
    pub fn entry(&mut self, table: &[u8], index: usize, number: u64) -> &mut Self {
        let text = nth(table, index);
        match text.iter().position(|&b| b == b'#') {
            Some(at) => self.bytes(&text[..at]).dec(number).bytes(&text[at + 1..]),
            None => self.bytes(text),
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.sink.write_all(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Ends the line and writes it out.
    pub fn end(&mut self) {
        self.bytes(b"\n");
        self.flush();
    }

    /// The sink, with everything written so far (for the doctor, which keeps messages as text).
    pub fn into_sink(mut self) -> S {
        self.flush();
        self.sink
    }
}

/// Entry `index` of `table`, a list of NUL-separated texts; empty past the last. A plain loop:
/// `table.split(..).nth(index)` maps about 100 bytes more.
pub fn nth(table: &[u8], index: usize) -> &[u8] {
    let mut rest = table;
    let mut left = index;
    loop {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let (text, after) = rest.split_at(end);
        if left == 0 {
            return text;
        }
        let [_, next @ ..] = after else { return b"" };
        rest = next;
        left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Sink for Vec<u8> {
        fn write_all(&mut self, bytes: &[u8]) {
            self.extend_from_slice(bytes);
        }
    }

    #[test]
    fn table_entries_have_their_number_filled_in() {
        let table = b"first\0second #!\0#\0";
        let written = |index, number| {
            let mut out = Vec::new();
            Message::new(&mut out).entry(table, index, number).end();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(written(0, 7), "first\n");
        assert_eq!(written(1, 42), "second 42!\n");
        assert_eq!(written(2, 0), "0\n");
        assert_eq!(written(9, 1), "\n");
    }

    #[test]
    fn numbers_and_bytes() {
        let mut out = Vec::new();
        Message::new(&mut out)
            .bytes(b"a ")
            .dec(0)
            .bytes(b" ")
            .dec(u64::MAX)
            .bytes(b" ")
            .hex(0)
            .bytes(b" ")
            .hex(0xdead_beef)
            .end();
        assert_eq!(out, b"a 0 18446744073709551615 0x0 0xdeadbeef\n");
    }

    /// `value` between markers, as a message writes it.
    fn valued(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Message::new(&mut out).bytes(b"<").value(value).bytes(b">").end();
        out
    }

    #[test]
    fn a_value_is_shortened_only_past_its_limit() {
        let at_limit = vec![b'v'; LONG_VALUE];
        assert_eq!(valued(&at_limit), [&b"<"[..], &at_limit, b">\n"].concat());
        let mut over = vec![b'h'; KEPT_ENDS];
        over.extend([b'm'; LONG_VALUE + 1 - 2 * KEPT_ENDS]);
        over.extend([b't'; KEPT_ENDS]);
        let want = format!("<{}...(301 bytes in all)...{}>\n", "h".repeat(KEPT_ENDS), "t".repeat(KEPT_ENDS));
        assert_eq!(String::from_utf8(valued(&over)).unwrap(), want);
    }

    proptest! {
        #[test]
        fn values_up_to_the_limit_are_written_whole(value in proptest::collection::vec(any::<u8>(), 0..=LONG_VALUE)) {
            prop_assert_eq!(valued(&value), [&b"<"[..], &value, b">\n"].concat());
        }

        #[test]
        fn longer_values_keep_their_ends_and_name_their_length(value in proptest::collection::vec(any::<u8>(), LONG_VALUE + 1..20_000)) {
            let n = value.len();
            let middle = format!("...({n} bytes in all)...");
            let want = [&b"<"[..], &value[..KEPT_ENDS], middle.as_bytes(), &value[n - KEPT_ENDS..], b">\n"].concat();
            let out = valued(&value);
            prop_assert_eq!(&out, &want);
            prop_assert!(out.len() < LONG_VALUE, "{} bytes", out.len());
        }

        #[test]
        fn long_messages_are_written_whole(text in proptest::collection::vec(any::<u8>(), 0..3000), n in any::<u64>()) {
            let mut out = Vec::new();
            Message::new(&mut out).bytes(&text).dec(n).hex(n).end();
            let mut want = text.clone();
            want.extend(n.to_string().bytes());
            want.extend(format!("{n:#x}").bytes());
            want.push(b'\n');
            prop_assert_eq!(out, want);
        }
    }
}
