//! The bytes waiting to be written to a child's stdin: tuples in order, with messages
//! the child is blocked on (task ids, heartbeats, commands) put ahead of every tuple not
//! yet started. Written with as few `write` calls as the pipe allows, so the child reads
//! many messages per `read`.

use std::collections::VecDeque;
use std::io::{self, Write};

/// Messages queued for the child.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    done: usize,
    /// Start of the first message in `ends`.
    front_start: usize,
    /// End offset of each message not completely written, and whether it is a tuple.
    ends: VecDeque<(usize, bool)>,
    tuples: usize,
}

impl OutBuf {
    /// Appends a tuple message that `encode` writes (complete, framed).
    pub fn push_tuple(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.buf);
        self.ends.push_back((self.buf.len(), true));
        self.tuples += 1;
    }

    /// Queues a framed message ahead of every tuple not yet started (after a message
    /// being written, which cannot be split, and after earlier priority messages).
    pub fn push_priority(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut idx = usize::from(self.done > self.front_start);
        while self.ends.get(idx).is_some_and(|(_, tuple)| !tuple) {
            idx += 1;
        }
        let at = match idx {
            0 => self.front_start,
            i => self.ends.get(i - 1).map_or(self.buf.len(), |(end, _)| *end),
        };
        if at == self.buf.len() {
            encode(&mut self.buf);
            self.ends.push_back((self.buf.len(), false));
            return;
        }
        let mut msg = Vec::new();
        encode(&mut msg);
        let n = msg.len();
        self.buf.splice(at..at, msg);
        for e in self.ends.iter_mut().skip(idx) {
            e.0 += n;
        }
        self.ends.insert(idx, (at + n, false));
    }

    /// Tuple messages not completely written.
    pub fn tuples(&self) -> usize {
        self.tuples
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.done == self.buf.len()
    }

    /// Writes as much as `w` takes without blocking; returns the bytes written. A
    /// `WouldBlock` ends the attempt quietly; other errors are returned.
    pub fn write_to(&mut self, mut w: impl Write) -> io::Result<usize> {
        let mut written = 0;
        while self.done < self.buf.len() {
            match w.write(&self.buf[self.done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.done += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        while let Some(&(end, tuple)) = self.ends.front() {
            if end > self.done {
                break;
            }
            self.ends.pop_front();
            self.front_start = end;
            self.tuples -= usize::from(tuple);
        }
        if self.is_empty() {
            self.buf.clear();
            self.done = 0;
            self.front_start = 0;
        } else if self.front_start > 64 * 1024 && self.front_start * 2 > self.buf.len() {
            // Keep the buffer from creeping forward when it is never completely written;
            // cut at a message boundary, which `push_priority` relies on.
            let d = self.front_start;
            self.buf.drain(..d);
            self.done -= d;
            self.front_start = 0;
            for e in &mut self.ends {
                e.0 -= d;
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Takes at most `room` bytes, then would block.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for &mut Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.room);
            self.got.extend_from_slice(&b[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn t(s: &str) -> impl FnOnce(&mut Vec<u8>) + '_ {
        move |o: &mut Vec<u8>| o.extend_from_slice(s.as_bytes())
    }

    #[test]
    fn tuples_go_in_order_and_are_counted_until_fully_written() {
        let mut b = OutBuf::default();
        b.push_tuple(t("aaaa"));
        b.push_tuple(t("bbbb"));
        assert_eq!(b.tuples(), 2);
        let mut p = Pipe { got: vec![], room: 6 };
        assert_eq!(b.write_to(&mut p).unwrap(), 6);
        assert_eq!(b.tuples(), 1, "the second is half written");
        p.room = 100;
        b.write_to(&mut p).unwrap();
        assert_eq!(p.got, b"aaaabbbb");
        assert_eq!(b.tuples(), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn priority_messages_overtake_tuples_not_started_but_never_split_one() {
        let mut b = OutBuf::default();
        b.push_tuple(t("aaaa"));
        b.push_tuple(t("bbbb"));
        b.push_tuple(t("cccc"));
        let mut p = Pipe { got: vec![], room: 2 };
        b.write_to(&mut p).unwrap();
        b.push_priority(t("P1"));
        b.push_priority(t("P2"));
        p.room = 1000;
        b.write_to(&mut p).unwrap();
        assert_eq!(p.got, b"aaaaP1P2bbbbcccc");
        assert_eq!(b.tuples(), 0);
        // At a message boundary, the priority message goes first.
        b.push_tuple(t("dd"));
        b.push_priority(t("Q"));
        b.write_to(&mut p).unwrap();
        assert_eq!(&p.got[16..], b"Qdd");
    }

    #[test]
    fn a_buffer_never_fully_written_is_compacted_without_losing_order() {
        let mut b = OutBuf::default();
        let mut p = Pipe { got: vec![], room: 0 };
        // Each round queues 9 bytes and writes 8: never empty, so only compaction bounds it.
        for i in 0..10_000u32 {
            let msg = format!("{i:08}\n");
            b.push_tuple(|o| o.extend_from_slice(msg.as_bytes()));
            p.room = 8;
            b.write_to(&mut p).unwrap();
            if i % 2000 == 0 {
                b.push_priority(|o| o.extend_from_slice(b"HB\n"));
            }
            assert!(b.buf.len() < 100 * 1024, "compacted");
        }
        p.room = usize::MAX;
        b.write_to(&mut p).unwrap();
        assert_eq!(b.tuples(), 0);
        let text = String::from_utf8(p.got).unwrap();
        let tuples: Vec<u32> = text
            .lines()
            .filter(|l| *l != "HB")
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(
            tuples,
            (0..10_000).collect::<Vec<_>>(),
            "order kept, nothing lost or split"
        );
        assert_eq!(text.lines().filter(|l| *l == "HB").count(), 5);
    }
}
