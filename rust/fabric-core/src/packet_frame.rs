//! Binary frame that carries one `MultiplayerPeer` packet inside a session datagram or stream.
//!
//! Layout (version 1, little-endian, documented in `docs/session-protocol.md`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | kind, [`FRAME_PACKET`] (`0x01`) |
//! | 1 | 1 | transfer mode: 0 unreliable, 1 unreliable-ordered, 2 reliable |
//! | 2 | 1 | channel (0..=255) |
//! | 3 | 4 | peer (i32): the target when a client sends, the source when the server sends |
//! | 7 | 4 | sequence (u32) per channel for unreliable-ordered, otherwise 0 |
//! | 11 | .. | payload |
//!
//! A first byte of `{` marks a JSON control message instead ([`crate::session_control`]).

use thiserror::Error;

/// Frame kind byte of a packet frame.
pub const FRAME_PACKET: u8 = 0x01;
/// Size of the packet frame header in bytes.
pub const HEADER_LEN: usize = 11;

/// How a packet is delivered (mirrors Godot's `MultiplayerPeer.TransferMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransferMode {
    /// May be lost, duplicated or reordered.
    Unreliable = 0,
    /// May be lost; anything older than the newest seen on its channel is dropped.
    UnreliableOrdered = 1,
    /// Delivered once, in order per channel.
    Reliable = 2,
}

impl TryFrom<u8> for TransferMode {
    type Error = FrameError;
    fn try_from(v: u8) -> Result<Self, FrameError> {
        match v {
            0 => Ok(Self::Unreliable),
            1 => Ok(Self::UnreliableOrdered),
            2 => Ok(Self::Reliable),
            other => Err(FrameError::Mode(other)),
        }
    }
}

/// Why bytes are not a valid packet frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Fewer bytes than the header.
    #[error("packet frame is {0} bytes, shorter than its {HEADER_LEN}-byte header")]
    Short(usize),
    /// The first byte is not [`FRAME_PACKET`].
    #[error("unknown frame kind 0x{0:02x}")]
    Kind(u8),
    /// The transfer mode byte is out of range.
    #[error("unknown transfer mode {0}")]
    Mode(u8),
}

/// The decoded header of a packet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// Transfer mode.
    pub mode: TransferMode,
    /// Channel.
    pub channel: u8,
    /// Target (client to server) or source (server to client) peer id.
    pub peer: i32,
    /// Per-channel sequence for unreliable-ordered packets.
    pub seq: u32,
}

impl PacketHeader {
    /// Writes the header followed by `payload` into `out` (cleared first).
    pub fn encode_into(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(HEADER_LEN + payload.len());
        out.push(FRAME_PACKET);
        out.push(self.mode as u8);
        out.push(self.channel);
        out.extend_from_slice(&self.peer.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(payload);
    }

    /// Decodes a frame, returning the header and the payload slice.
    pub fn decode(frame: &[u8]) -> Result<(Self, &[u8]), FrameError> {
        if frame.len() < HEADER_LEN {
            return Err(FrameError::Short(frame.len()));
        }
        if frame[0] != FRAME_PACKET {
            return Err(FrameError::Kind(frame[0]));
        }
        let mode = TransferMode::try_from(frame[1])?;
        let peer = i32::from_le_bytes(frame[3..7].try_into().expect("4 bytes"));
        let seq = u32::from_le_bytes(frame[7..11].try_into().expect("4 bytes"));
        Ok((
            Self {
                mode,
                channel: frame[2],
                peer,
                seq,
            },
            &frame[HEADER_LEN..],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_are_pinned() {
        let h = PacketHeader {
            mode: TransferMode::UnreliableOrdered,
            channel: 7,
            peer: -2,
            seq: 0x0403_0201,
        };
        let mut out = Vec::new();
        h.encode_into(b"hi", &mut out);
        assert_eq!(
            out,
            [
                0x01, 1, 7, 0xfe, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04, b'h', b'i'
            ],
            "byte layout of a packet frame"
        );
        assert_eq!(PacketHeader::decode(&out), Ok((h, &b"hi"[..])));
    }

    #[test]
    fn bad_frames_are_refused() {
        assert_eq!(PacketHeader::decode(&[1, 0]), Err(FrameError::Short(2)));
        assert_eq!(PacketHeader::decode(&[9; 11]), Err(FrameError::Kind(9)));
        let mut f = [0u8; 11];
        f[0] = FRAME_PACKET;
        f[1] = 3;
        assert_eq!(PacketHeader::decode(&f), Err(FrameError::Mode(3)));
    }

    proptest! {
        #[test]
        fn round_trip(mode in 0u8..3, channel in any::<u8>(), peer in any::<i32>(), seq in any::<u32>(),
                      payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = PacketHeader { mode: TransferMode::try_from(mode).unwrap(), channel, peer, seq };
            let mut out = Vec::new();
            h.encode_into(&payload, &mut out);
            prop_assert_eq!(PacketHeader::decode(&out), Ok((h, &payload[..])));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = PacketHeader::decode(&data);
        }
    }
}
