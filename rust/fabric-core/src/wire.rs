//! Shared pieces of the zone wire codecs: the typed decode error and little-endian field access.
//!
//! Each codec (entity row, player command, migration intent, zone control) lives in its own file
//! and is documented byte by byte in `docs/protocol.md`. Every decoder first converts the input to
//! a fixed-size array (checking the length), so field reads below are bounds-checked at compile
//! time and cannot panic on any input.

use thiserror::Error;

/// Why bytes are not a valid zone packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// The input is not the size the layout requires.
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// Which layout.
        what: &'static str,
        /// Required size (or the minimum, for batches).
        expected: usize,
        /// Size received.
        got: usize,
    },
    /// The kind byte or magic does not name this layout.
    #[error("{what}: unknown kind/magic 0x{got:08x}")]
    Kind {
        /// Which layout.
        what: &'static str,
        /// The value found.
        got: u32,
    },
    /// The version is not one this side speaks.
    #[error("{what}: unsupported version {got} (this side speaks {supported})")]
    Version {
        /// Which layout.
        what: &'static str,
        /// Version found.
        got: u8,
        /// Version spoken.
        supported: u8,
    },
    /// The opcode (player command) is not known.
    #[error("unknown player command opcode {0}")]
    Opcode(u8),
    /// A field holds a value outside its range.
    #[error("field `{field}` out of range: {value}")]
    Range {
        /// The field name.
        field: &'static str,
        /// The offending value, widened (floats are given as their bit pattern).
        value: u64,
    },
    /// A reserved byte is not zero.
    #[error("reserved byte at offset {offset} is not zero")]
    Reserved {
        /// Byte offset of the first non-zero reserved byte.
        offset: usize,
    },
}

/// Reads a `u16` at `off`.
#[inline]
pub(crate) fn u16_at<const N: usize>(b: &[u8; N], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads an `i16` at `off`.
#[inline]
pub(crate) fn i16_at<const N: usize>(b: &[u8; N], off: usize) -> i16 {
    i16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a `u32` at `off`.
#[inline]
pub(crate) fn u32_at<const N: usize>(b: &[u8; N], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Reads a `u64` at `off`.
#[inline]
pub(crate) fn u64_at<const N: usize>(b: &[u8; N], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Reads an `f64` at `off`.
#[inline]
pub(crate) fn f64_at<const N: usize>(b: &[u8; N], off: usize) -> f64 {
    f64::from_bits(u64_at(b, off))
}

/// Reads an `i128` at `off`.
#[inline]
pub(crate) fn i128_at<const N: usize>(b: &[u8; N], off: usize) -> i128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    i128::from_le_bytes(a)
}

/// Writes `v` at `off`.
#[inline]
pub(crate) fn put<const N: usize, const M: usize>(b: &mut [u8; N], off: usize, v: [u8; M]) {
    b[off..off + M].copy_from_slice(&v);
}

/// Converts `input` to a fixed-size array or reports its length.
#[inline]
pub(crate) fn exact<'a, const N: usize>(
    what: &'static str,
    input: &'a [u8],
) -> Result<&'a [u8; N], WireError> {
    input.try_into().map_err(|_| WireError::Length {
        what,
        expected: N,
        got: input.len(),
    })
}

/// Checks that `b[range]` is all zero.
#[inline]
pub(crate) fn zeroed<const N: usize>(
    b: &[u8; N],
    range: core::ops::Range<usize>,
) -> Result<(), WireError> {
    let start = range.start;
    match b[range].iter().position(|&x| x != 0) {
        Some(i) => Err(WireError::Reserved { offset: start + i }),
        None => Ok(()),
    }
}
