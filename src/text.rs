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

    pub fn dec(&mut self, value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut v = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&digits[at..])
    }

    pub fn hex(&mut self, value: u64) -> &mut Self {
        let mut digits = [0u8; 18];
        let mut at = digits.len();
        let mut v = value;
        loop {
            at -= 1;
            digits[at] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        at -= 2;
        digits[at] = b'0';
        digits[at + 1] = b'x';
        self.bytes(&digits[at..])
    }

    /// Writes entry `index` of `table`, a list of NUL-separated messages, with its `#` (if any)
    /// replaced by `number`. One table and one call take far less code than a call per message.
    pub fn entry(&mut self, table: &[u8], index: usize, number: u64) -> &mut Self {
        let text = table.split(|&b| b == 0).nth(index).unwrap_or(b"");
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
        Message::new(&mut out).bytes(b"a ").dec(0).bytes(b" ").dec(u64::MAX).bytes(b" ").hex(0).bytes(b" ").hex(0xdead_beef).end();
        assert_eq!(out, b"a 0 18446744073709551615 0x0 0xdeadbeef\n");
    }

    proptest! {
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
