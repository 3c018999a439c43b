//! The original fabric's replication for the sessions that ask for it (`original_scheme`,
//! `docs/session-protocol.md`): every entity of the zone as a 100-byte row every frame that
//! ran ticks ([`fabric_core::original_scheme`]), the baseline the replication benchmark
//! measures ours against in the same run. A zone serves at most `--original-scheme-sessions`
//! sessions (0 by default: every request is refused), since each costs megabytes a second.
//!
//! The datagrams are encoded once per frame and sent to each session; nothing is allocated
//! per tick once the buffer has held a full zone.

use fabric_core::original_scheme::OriginalScheme;
use fabric_core::zone::Zone;

/// Why a request is refused (the reply's error text).
pub(crate) const NOT_ALLOWED: &str = "original_scheme_refused: this zone serves the original scheme to no more sessions \
     (--original-scheme-sessions)";

/// The sessions served the original scheme, and what they were sent.
#[derive(Debug, Default)]
pub(crate) struct OriginalSchemeSessions {
    allowed: usize,
    sessions: Vec<u64>,
    scheme: OriginalScheme,
    /// Datagram payload bytes sent (all sessions).
    bytes: u64,
    /// Rows sent (all sessions).
    rows: u64,
    /// Datagrams the network refused.
    refused: u64,
}

impl OriginalSchemeSessions {
    /// At most `allowed` sessions, for a zone of `capacity` slots.
    pub(crate) fn new(allowed: u32, capacity: usize) -> Self {
        let allowed = allowed as usize;
        Self {
            allowed,
            sessions: Vec::with_capacity(allowed),
            scheme: if allowed > 0 {
                OriginalScheme::with_capacity(capacity)
            } else {
                OriginalScheme::default()
            },
            ..Self::default()
        }
    }

    /// `session` asks for the original scheme: served from the next frame on (a repeated
    /// request is served once), or refused when the zone serves enough sessions already.
    pub(crate) fn subscribe(&mut self, session: u64) -> Result<(), &'static str> {
        if self.sessions.contains(&session) {
            return Ok(());
        }
        if self.sessions.len() >= self.allowed {
            return Err(NOT_ALLOWED);
        }
        self.sessions.push(session);
        Ok(())
    }

    /// The session closed.
    pub(crate) fn drop_session(&mut self, session: u64) {
        self.sessions.retain(|s| *s != session);
    }

    /// After a frame's ticks: every entity of `zone` to each session, in batches that fit the
    /// smallest of their datagram sizes (`max_len`); `send` returns false when the network
    /// refused a datagram.
    pub(crate) fn run(
        &mut self,
        zone: &Zone,
        max_len: impl Fn(u64) -> usize,
        mut send: impl FnMut(u64, &[u8]) -> bool,
    ) {
        if self.sessions.is_empty() {
            return;
        }
        let smallest = self.sessions.iter().map(|s| max_len(*s)).min().unwrap_or(0);
        self.scheme.encode_tick(zone, smallest);
        for &session in &self.sessions {
            for d in self.scheme.datagrams() {
                if send(session, d) {
                    self.bytes += d.len() as u64;
                } else {
                    self.refused += 1;
                }
            }
            self.rows += self.scheme.rows() as u64;
        }
    }

    /// ` original_scheme_sessions=N original_scheme_bytes=B ...` for the stats line.
    pub(crate) fn stats_fields(&self) -> String {
        format!(
            " original_scheme_sessions={} original_scheme_bytes={} original_scheme_rows={} \
             original_scheme_refused={}",
            self.sessions.len(),
            self.bytes,
            self.rows,
            self.refused
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::config::ZoneConfig;
    use fabric_core::coords::{WorldBounds, metres};
    use fabric_core::entity::Entity;
    use fabric_core::entity_row::RowBatchHeader;
    use fabric_core::zones::ZoneLayout;

    #[test]
    fn served_to_the_allowed_sessions_only_every_entity_each_frame() {
        let mut cfg = ZoneConfig::new(0, ZoneLayout::new(1).unwrap(), WorldBounds::demo());
        cfg.capacity = 32;
        cfg.headroom = 0;
        let mut zone = Zone::new(cfg).unwrap();
        for i in 0..20 {
            zone.spawn(Entity::at(i + 1, [metres(1); 3])).unwrap();
        }
        let mut o = OriginalSchemeSessions::new(2, 32);
        assert_eq!(o.subscribe(7), Ok(()));
        assert_eq!(o.subscribe(7), Ok(()), "a repeat is served once");
        assert_eq!(o.subscribe(8), Ok(()));
        assert_eq!(o.subscribe(9), Err(NOT_ALLOWED));
        let mut sent: Vec<(u64, usize)> = Vec::new();
        o.run(
            &zone,
            |_| 1200,
            |s, d| {
                let (head, _) = RowBatchHeader::decode(d).unwrap();
                sent.push((s, head.count as usize));
                true
            },
        );
        let rows = |s| sent.iter().filter(|x| x.0 == s).map(|x| x.1).sum::<usize>();
        assert_eq!((rows(7), rows(8), rows(9)), (20, 20, 0));
        o.drop_session(7);
        assert_eq!(o.subscribe(9), Ok(()), "a closed session frees its place");
        assert!(o.stats_fields().contains(" original_scheme_rows=40 "));
        assert!(o.stats_fields().contains(" original_scheme_bytes=4016 "));

        let mut none = OriginalSchemeSessions::new(0, 32);
        assert_eq!(none.subscribe(1), Err(NOT_ALLOWED), "none by default");
    }
}
