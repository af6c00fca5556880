//! A cursor over a window of a frame: varints, keys, fixed-width and length-delimited
//! fields.
//!
//! Nested messages are read as windows (index ranges) of the same frame, not as `Bytes`
//! sub-slices: a slice costs an atomic increment and decrement of the frame's shared
//! reference count, and the executors that drop decoded values hold that count's cache
//! line too. Only a decoded string or byte value takes a slice of the frame.

use bytes::Bytes;

use super::WireError;

pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// Reads protobuf fields from `frame[pos..end]`.
pub(crate) struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// The whole frame.
    pub(crate) fn new(frame: &'a Bytes) -> Self {
        Reader {
            frame,
            pos: 0,
            end: frame.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    fn window(&self) -> &'a [u8] {
        // `pos..end` lies within the frame: `end` only ever shrinks to checked bounds.
        self.frame.get(self.pos..self.end).unwrap_or_default()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let w = self.window();
        // One-byte varints (keys, small lengths and ids) are the common case.
        match w.first() {
            None => return Err(WireError::Truncated("varint")),
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                return Ok(u64::from(b));
            }
            Some(_) => {}
        }
        let mut value = 0u64;
        for (i, &b) in w.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if w.len() < 10 {
            Err(WireError::Truncated("varint"))
        } else {
            Err(WireError::Varint)
        }
    }

    /// The next field's number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError::Field)?;
        if field == 0 {
            return Err(WireError::Field);
        }
        Ok((field, (key & 7) as u8))
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let Some(bytes) = self.window().get(..8) else {
            return Err(WireError::Truncated("fixed64"));
        };
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        self.pos += 8;
        Ok(u64::from_le_bytes(a))
    }

    /// The extent of a length-delimited field, checked against this window.
    fn span(&mut self) -> Result<(usize, usize), WireError> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated("length"))?;
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= self.end)
            .ok_or(WireError::Truncated("length-delimited field"))?;
        self.pos = end;
        Ok((start, end))
    }

    /// A length-delimited field, as a reader of its own (a nested message).
    pub(crate) fn nested(&mut self) -> Result<Reader<'a>, WireError> {
        let (pos, end) = self.span()?;
        Ok(Reader {
            frame: self.frame,
            pos,
            end,
        })
    }

    /// A length-delimited field's bytes, borrowed.
    pub(crate) fn bytes_ref(&mut self) -> Result<&'a [u8], WireError> {
        let (start, end) = self.span()?;
        Ok(self.frame.get(start..end).unwrap_or_default())
    }

    /// A length-delimited field's bytes, sharing the frame (no copy).
    pub(crate) fn bytes(&mut self) -> Result<Bytes, WireError> {
        let (start, end) = self.span()?;
        Ok(self.frame.slice(start..end))
    }

    /// Skips a field this version does not know, for forward compatibility.
    pub(crate) fn skip(&mut self, message: &'static str, field: u32, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.span().map(drop),
            FIXED32 => {
                if self.window().len() < 4 {
                    return Err(WireError::Truncated("fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
            _ => Err(WireError::WireType {
                message,
                field,
                wire_type,
            }),
        }
    }

    /// Checks the wire type of a known field.
    pub(crate) fn expect(message: &'static str, field: u32, got: u8, want: u8) -> Result<(), WireError> {
        if got == want {
            Ok(())
        } else {
            Err(WireError::WireType {
                message,
                field,
                wire_type: got,
            })
        }
    }
}

pub(crate) fn zigzag64(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

pub(crate) fn zigzag32(n: u64) -> i32 {
    let n = n as u32;
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}
