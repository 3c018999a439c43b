//! Client replication packet and client ack, version 1 (see `docs/protocol.md`, "Client
//! replication, version 1"): the byte layout, [`PacketWriter`] that encodes into a caller's
//! buffer, and [`Packet::decode_into`], the validating decoder.
//!
//! The decoder checks syntax and ranges only (lengths, kind, version, varint sizes, reserved bits,
//! handle bounds, ascending order, offset and velocity ranges); whether the records make sense for
//! a given client mirror (known handles, baselines it holds) is checked by
//! [`super::mirror::ClientMirror::apply`] before it changes anything.

use thiserror::Error;

/// First byte of a replication packet (`'C'`).
pub const PACKET_KIND: u8 = 0x43;
/// First byte of a client ack (`'A'`).
pub const ACK_KIND: u8 = 0x41;
/// Format version of both messages.
pub const VERSION: u8 = 1;
/// Bytes of the fixed part of the packet header (kind, version, tick, seq, two counts); the
/// anchor's three varints follow.
pub const FIXED_HEADER_LEN: usize = 10;
/// Length of a client ack.
pub const ACK_LEN: usize = 8;
/// Most ticks an update's baseline may lie behind the packet's tick (5 bits of the control byte).
pub const MAX_AGE: u8 = 31;
/// Handles are below this bound (a client view tracks at most this many entities).
pub const MAX_HANDLES: usize = 4096;
/// Largest magnitude of an anchor-relative offset or a residual, millimetres (`2^25`, 33.5 km).
pub const MAX_OFFSET_MM: i64 = 1 << 25;
/// Largest magnitude of an anchor coordinate, millimetres (`2^44`, beyond `2^53` um).
pub const MAX_ANCHOR_MM: i64 = 1 << 44;
/// Largest magnitude of a quantised velocity or velocity delta, 1/256 mm per tick (`2^25`).
pub const MAX_VELOCITY_Q: i64 = 1 << 25;
/// Most bytes one record (enter or update) takes; writers reserve this much scratch.
pub const MAX_RECORD_LEN: usize = 48;
/// Most leave or enter records in one packet (their counts are one byte each).
pub const MAX_SECTION_RECORDS: usize = 255;

/// Why bytes are not a valid client replication packet or ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplWireError {
    /// The input ends inside a field.
    #[error("truncated inside {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The ack is not exactly [`ACK_LEN`] bytes.
    #[error("an ack is {ACK_LEN} bytes, got {got}")]
    AckLength {
        /// Bytes received.
        got: usize,
    },
    /// Wrong first byte.
    #[error("kind {got:#04x}, expected {expected:#04x}")]
    Kind {
        /// Byte received.
        got: u8,
        /// Byte expected.
        expected: u8,
    },
    /// Unknown version.
    #[error("version {got}, only {VERSION} is known")]
    Version {
        /// Version received.
        got: u8,
    },
    /// A varint longer than its field allows.
    #[error("varint too long in {what}")]
    Varint {
        /// The field being read.
        what: &'static str,
    },
    /// A value outside its documented range.
    #[error("{what} out of range: {value}")]
    Range {
        /// The field.
        what: &'static str,
        /// The value read.
        value: i64,
    },
    /// A handle at or above [`MAX_HANDLES`].
    #[error("handle {handle} is not below {MAX_HANDLES}")]
    Handle {
        /// The handle read.
        handle: u64,
    },
    /// Handles of a section are not strictly ascending.
    #[error("{what} handles not strictly ascending at {handle}")]
    Order {
        /// The section.
        what: &'static str,
        /// The offending handle.
        handle: u64,
    },
    /// The reserved position mode 3, or reserved bits set in a small residual byte.
    #[error("reserved bits set in {what}")]
    Reserved {
        /// The field.
        what: &'static str,
    },
}

/// The packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketHeader {
    /// Server tick the packet describes (low 32 bits).
    pub tick: u32,
    /// Packet sequence number (acks name it).
    pub seq: u16,
    /// The viewer's position when the packet was written, whole millimetres.
    pub anchor_mm: [i64; 3],
}

/// An entity entering the client's view (reliable: resent until acked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnterRecord {
    /// The client-view handle the updates will name.
    pub handle: u16,
    /// Global entity id.
    pub global_id: u32,
    /// `payload[0]` (class in the top byte).
    pub class_word: u32,
    /// Owning zone.
    pub zone: u8,
    /// Position minus the anchor, millimetres.
    pub offset_mm: [i64; 3],
    /// Velocity, 1/256 mm per tick.
    pub velocity_q: [i32; 3],
}

/// How an update codes its position against the prediction from its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionCode {
    /// The prediction itself (no bytes).
    Predicted,
    /// A residual of -2..=1 mm per axis (one byte).
    Small([i8; 3]),
    /// Any residual, millimetres (three zigzag varints).
    Residual([i64; 3]),
}

/// A state update of an entity the client already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateRecord {
    /// Client-view handle.
    pub handle: u16,
    /// Ticks between the baseline and the packet (1..=31); 0: the baseline is the anchor at rest.
    pub age: u8,
    /// The position, relative to the prediction.
    pub position: PositionCode,
    /// New velocity minus the baseline's, 1/256 mm per tick; `None` when unchanged.
    pub velocity_delta: Option<[i32; 3]>,
    /// New owning zone, when it changed.
    pub zone: Option<u8>,
}

/// A decoded packet. Reuse one value with [`Packet::decode_into`] to decode without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    /// Header.
    pub header: PacketHeader,
    /// Handles leaving the view, ascending.
    pub leaves: Vec<u16>,
    /// Entities entering, ascending handles.
    pub enters: Vec<EnterRecord>,
    /// Updates, ascending handles.
    pub updates: Vec<UpdateRecord>,
}

/// Zigzag-maps a signed value onto an unsigned one (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...).
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Writes `v` as an unsigned LEB128 varint at the start of `out`; returns the bytes written.
/// `out` must hold 10 bytes.
#[inline]
fn put_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// A cursor over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ReplWireError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or(ReplWireError::Truncated { what })?;
        self.at += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ReplWireError> {
        let s = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or(ReplWireError::Truncated { what })?;
        self.at += N;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A varint of at most `max_bytes` bytes (10 for a full u64).
    fn varint(&mut self, what: &'static str, max_bytes: usize) -> Result<u64, ReplWireError> {
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let b = self.u8(what)?;
            let bits = u64::from(b & 0x7F);
            if i == 9 && bits > 1 {
                return Err(ReplWireError::Varint { what });
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ReplWireError::Varint { what })
    }

    /// A zigzag varint whose magnitude is at most `max`.
    fn signed(&mut self, what: &'static str, max: i64) -> Result<i64, ReplWireError> {
        let v = unzigzag(self.varint(what, 10)?);
        if v.unsigned_abs() > max.unsigned_abs() {
            return Err(ReplWireError::Range { what, value: v });
        }
        Ok(v)
    }

    fn signed3(&mut self, what: &'static str, max: i64) -> Result<[i64; 3], ReplWireError> {
        Ok([
            self.signed(what, max)?,
            self.signed(what, max)?,
            self.signed(what, max)?,
        ])
    }

    fn velocity3(&mut self, what: &'static str) -> Result<[i32; 3], ReplWireError> {
        // MAX_VELOCITY_Q < 2^31: the cast is exact.
        Ok(self.signed3(what, MAX_VELOCITY_Q)?.map(|v| v as i32))
    }

    fn handle(&mut self, what: &'static str) -> Result<u16, ReplWireError> {
        let h = self.varint(what, 2)?;
        if h as usize >= MAX_HANDLES {
            return Err(ReplWireError::Handle { handle: h });
        }
        Ok(h as u16)
    }
}

/// Control byte of an update: bits 0-1 position mode, bit 2 velocity follows, bits 3-7 age.
const MODE_PREDICTED: u8 = 0;
const MODE_SMALL: u8 = 1;
const MODE_RESIDUAL: u8 = 2;
const CTRL_VELOCITY: u8 = 1 << 2;

impl PacketHeader {
    /// Decodes the header from the start of `bytes`, returning it and the two section counts.
    fn read(r: &mut Reader<'_>) -> Result<(Self, u8, u8), ReplWireError> {
        let kind = r.u8("kind")?;
        if kind != PACKET_KIND {
            return Err(ReplWireError::Kind {
                got: kind,
                expected: PACKET_KIND,
            });
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(ReplWireError::Version { got: version });
        }
        let tick = u32::from_le_bytes(r.array("tick")?);
        let seq = u16::from_le_bytes(r.array("seq")?);
        let leaves = r.u8("leave count")?;
        let enters = r.u8("enter count")?;
        let anchor_mm = r.signed3("anchor", MAX_ANCHOR_MM)?;
        Ok((
            Self {
                tick,
                seq,
                anchor_mm,
            },
            leaves,
            enters,
        ))
    }
}

impl Packet {
    /// An empty packet whose record lists can hold a packet of `mtu` bytes without growing.
    pub fn with_capacity(mtu: usize) -> Self {
        Self {
            header: PacketHeader::default(),
            leaves: Vec::with_capacity(MAX_SECTION_RECORDS),
            enters: Vec::with_capacity(MAX_SECTION_RECORDS),
            updates: Vec::with_capacity(mtu / 2 + 1),
        }
    }

    /// Decodes `bytes` into `self`, replacing its contents. On error `self` holds a partial
    /// decode and must not be used.
    pub fn decode_into(&mut self, bytes: &[u8]) -> Result<(), ReplWireError> {
        self.leaves.clear();
        self.enters.clear();
        self.updates.clear();
        let mut r = Reader { bytes, at: 0 };
        let (header, leaves, enters) = PacketHeader::read(&mut r)?;
        self.header = header;
        let mut prev: Option<u16> = None;
        for _ in 0..leaves {
            let h = r.handle("leave")?;
            check_ascending("leave", prev, h)?;
            prev = Some(h);
            self.leaves.push(h);
        }
        prev = None;
        for _ in 0..enters {
            let handle = r.handle("enter handle")?;
            check_ascending("enter", prev, handle)?;
            prev = Some(handle);
            let global_id = r.varint("enter id", 5)?;
            let global_id = u32::try_from(global_id).map_err(|_| ReplWireError::Range {
                what: "enter id",
                value: global_id as i64,
            })?;
            let class_word = u32::from_le_bytes(r.array("enter class")?);
            let zone = r.u8("enter zone")?;
            let offset_mm = r.signed3("enter offset", MAX_OFFSET_MM)?;
            let velocity_q = r.velocity3("enter velocity")?;
            self.enters.push(EnterRecord {
                handle,
                global_id,
                class_word,
                zone,
                offset_mm,
                velocity_q,
            });
        }
        let mut next: u64 = 0;
        while !r.done() {
            let key = r.varint("update key", 3)?;
            let handle = next + (key >> 1);
            if handle as usize >= MAX_HANDLES {
                return Err(ReplWireError::Handle { handle });
            }
            next = handle + 1;
            let ctrl = r.u8("update control")?;
            let position = match ctrl & 3 {
                MODE_PREDICTED => PositionCode::Predicted,
                MODE_SMALL => {
                    let b = r.u8("small residual")?;
                    if b & 0xC0 != 0 {
                        return Err(ReplWireError::Reserved {
                            what: "small residual",
                        });
                    }
                    PositionCode::Small([0, 2, 4].map(|s| ((b >> s) & 3) as i8 - 2))
                }
                MODE_RESIDUAL => PositionCode::Residual(r.signed3("residual", MAX_OFFSET_MM)?),
                _ => {
                    return Err(ReplWireError::Reserved {
                        what: "position mode",
                    });
                }
            };
            let velocity_delta = if ctrl & CTRL_VELOCITY != 0 {
                Some(r.velocity3("velocity delta")?)
            } else {
                None
            };
            let zone = if key & 1 != 0 {
                Some(r.u8("zone")?)
            } else {
                None
            };
            self.updates.push(UpdateRecord {
                handle: handle as u16,
                age: ctrl >> 3,
                position,
                velocity_delta,
                zone,
            });
        }
        Ok(())
    }

    /// Encodes the packet with [`PacketWriter`] (tests and tools; the client view writes its
    /// records straight into the buffer). Returns the length, or `None` when it does not fit.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let limit = buf.len();
        let mut w = PacketWriter::new(buf, limit, &self.header)?;
        for &h in &self.leaves {
            w.push_leave(h).then_some(())?;
        }
        for e in &self.enters {
            w.push_enter(e).then_some(())?;
        }
        for u in &self.updates {
            w.push_update(u).then_some(())?;
        }
        Some(w.finish())
    }
}

fn check_ascending(what: &'static str, prev: Option<u16>, h: u16) -> Result<(), ReplWireError> {
    match prev {
        Some(p) if h <= p => Err(ReplWireError::Order {
            what,
            handle: u64::from(h),
        }),
        _ => Ok(()),
    }
}

/// Encodes a packet into a caller's buffer, record by record, never past a byte limit.
///
/// Records must come in section order (leaves, then enters, then updates), each section in
/// strictly ascending handle order, at most [`MAX_SECTION_RECORDS`] leaves and enters; a push
/// that would break the limit writes nothing and returns `false`.
pub struct PacketWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
    leaves: u8,
    enters: u8,
    next_update: u16,
}

impl<'a> PacketWriter<'a> {
    /// Starts a packet in `buf` with at most `limit` bytes; `None` when the header does not fit.
    pub fn new(buf: &'a mut [u8], limit: usize, header: &PacketHeader) -> Option<Self> {
        let limit = limit.min(buf.len());
        let mut head = [0u8; FIXED_HEADER_LEN + 30];
        head[0] = PACKET_KIND;
        head[1] = VERSION;
        head[2..6].copy_from_slice(&header.tick.to_le_bytes());
        head[6..8].copy_from_slice(&header.seq.to_le_bytes());
        let mut n = FIXED_HEADER_LEN;
        for a in header.anchor_mm {
            n += put_varint(&mut head[n..], zigzag(a));
        }
        if n > limit {
            return None;
        }
        buf[..n].copy_from_slice(&head[..n]);
        Some(Self {
            buf,
            len: n,
            limit,
            leaves: 0,
            enters: 0,
            next_update: 0,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether only the header is written.
    pub fn is_empty(&self) -> bool {
        self.leaves == 0 && self.enters == 0 && self.next_update == 0
    }

    /// Bytes still free under the limit.
    pub fn remaining(&self) -> usize {
        self.limit - self.len
    }

    fn put(&mut self, rec: &[u8]) -> bool {
        if rec.len() > self.remaining() {
            return false;
        }
        self.buf[self.len..self.len + rec.len()].copy_from_slice(rec);
        self.len += rec.len();
        true
    }

    /// Appends a leave record.
    pub fn push_leave(&mut self, handle: u16) -> bool {
        if usize::from(self.leaves) == MAX_SECTION_RECORDS {
            return false;
        }
        let mut rec = [0u8; 10];
        let n = put_varint(&mut rec, u64::from(handle));
        let ok = self.put(&rec[..n]);
        self.leaves += u8::from(ok);
        ok
    }

    /// Appends an enter record.
    pub fn push_enter(&mut self, e: &EnterRecord) -> bool {
        if usize::from(self.enters) == MAX_SECTION_RECORDS {
            return false;
        }
        let mut rec = [0u8; MAX_RECORD_LEN + 32];
        let mut n = put_varint(&mut rec, u64::from(e.handle));
        n += put_varint(&mut rec[n..], u64::from(e.global_id));
        rec[n..n + 4].copy_from_slice(&e.class_word.to_le_bytes());
        n += 4;
        rec[n] = e.zone;
        n += 1;
        for o in e.offset_mm {
            n += put_varint(&mut rec[n..], zigzag(o));
        }
        for v in e.velocity_q {
            n += put_varint(&mut rec[n..], zigzag(i64::from(v)));
        }
        let ok = self.put(&rec[..n]);
        self.enters += u8::from(ok);
        ok
    }

    /// Appends an update record.
    pub fn push_update(&mut self, u: &UpdateRecord) -> bool {
        let mut rec = [0u8; MAX_RECORD_LEN + 32];
        let n = encode_update(u, self.next_update, &mut rec);
        let ok = self.put(&rec[..n]);
        if ok {
            self.next_update = u.handle + 1;
        }
        ok
    }

    /// Writes the section counts and returns the packet's length.
    pub fn finish(self) -> usize {
        self.buf[8] = self.leaves;
        self.buf[9] = self.enters;
        self.len
    }
}

/// Encodes an update whose handle follows handle `next - 1` into `out`; returns its length.
/// (`out` must hold `MAX_RECORD_LEN + 32` bytes.)
pub fn encode_update(u: &UpdateRecord, next: u16, out: &mut [u8]) -> usize {
    let gap = u64::from(u.handle.saturating_sub(next));
    let mut n = put_varint(out, gap << 1 | u64::from(u.zone.is_some()));
    let mode = match u.position {
        PositionCode::Predicted => MODE_PREDICTED,
        PositionCode::Small(_) => MODE_SMALL,
        PositionCode::Residual(_) => MODE_RESIDUAL,
    };
    let vel = if u.velocity_delta.is_some() {
        CTRL_VELOCITY
    } else {
        0
    };
    out[n] = mode | vel | (u.age.min(MAX_AGE) << 3);
    n += 1;
    match u.position {
        PositionCode::Predicted => {}
        PositionCode::Small(r) => {
            out[n] = r
                .iter()
                .zip([0, 2, 4])
                .fold(0u8, |b, (&v, s)| b | (((v + 2) as u8 & 3) << s));
            n += 1;
        }
        PositionCode::Residual(r) => {
            for v in r {
                n += put_varint(&mut out[n..], zigzag(v));
            }
        }
    }
    if let Some(d) = u.velocity_delta {
        for v in d {
            n += put_varint(&mut out[n..], zigzag(i64::from(v)));
        }
    }
    if let Some(z) = u.zone {
        out[n] = z;
        n += 1;
    }
    n
}

/// The client's acknowledgement: the newest packet it applied and which of the 32 before it it
/// applied too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Sequence number of the newest applied packet.
    pub newest: u16,
    /// Bit `i` set: packet `newest - 1 - i` was applied.
    pub bits: u32,
}

impl Ack {
    /// The 8 bytes: kind, version, newest (u16 LE), bits (u32 LE).
    pub fn encode(&self) -> [u8; ACK_LEN] {
        let mut out = [0u8; ACK_LEN];
        out[0] = ACK_KIND;
        out[1] = VERSION;
        out[2..4].copy_from_slice(&self.newest.to_le_bytes());
        out[4..8].copy_from_slice(&self.bits.to_le_bytes());
        out
    }

    /// Decodes and validates an ack.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReplWireError> {
        if bytes.len() != ACK_LEN {
            return Err(ReplWireError::AckLength { got: bytes.len() });
        }
        if bytes[0] != ACK_KIND {
            return Err(ReplWireError::Kind {
                got: bytes[0],
                expected: ACK_KIND,
            });
        }
        if bytes[1] != VERSION {
            return Err(ReplWireError::Version { got: bytes[1] });
        }
        Ok(Self {
            newest: u16::from_le_bytes([bytes[2], bytes[3]]),
            bits: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        })
    }

    /// Every sequence number this ack names, newest first.
    pub fn acked(&self) -> impl Iterator<Item = u16> + '_ {
        std::iter::once(self.newest).chain(
            (0..32u16)
                .filter(|i| self.bits & (1 << i) != 0)
                .map(|i| self.newest.wrapping_sub(i + 1)),
        )
    }
}
