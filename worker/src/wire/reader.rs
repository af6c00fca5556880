//! A cursor over a frame: varints, keys, fixed-width and length-delimited fields.

use bytes::Bytes;

use super::WireError;

pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// Reads protobuf fields from a shared buffer; length-delimited fields come out as
/// sub-slices of the same buffer (no copy).
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated("varint"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::Varint)
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
        let end = self.pos + 8;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            return Err(WireError::Truncated("fixed64"));
        };
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        self.pos = end;
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited field's bytes.
    pub(crate) fn bytes(&mut self) -> Result<Bytes, WireError> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated("length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or(WireError::Truncated("length-delimited field"))?;
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    /// Skips a field this version does not know, for forward compatibility.
    pub(crate) fn skip(&mut self, message: &'static str, field: u32, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => {
                if self.pos + 4 > self.buf.len() {
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
