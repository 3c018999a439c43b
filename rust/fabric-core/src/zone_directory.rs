//! The zone directory: where clients reach each zone of a fabric (its client address and
//! certificate hashes), as a list of entries `zone@host:port#hash[,hash]` separated by
//! whitespace or `;`.
//!
//! A zone uses it to tell a player where its avatar went (`avatar_moved` carries the new zone's
//! address and hashes); the gateway uses it to open its session to that zone. Both read it from
//! a file that whoever starts the fabric writes once the zones print their ready lines (zones
//! pick their ports at start), and read it again when it changes. Sans-IO: this module only
//! parses text.

use thiserror::Error;

use crate::zones::MAX_ZONES;

/// Most entries a directory text may have.
pub const MAX_ENTRIES: usize = 256;
/// Longest `host:port`.
pub const MAX_ADDRESS_LEN: usize = 64;
/// Longest hash list.
pub const MAX_HASHES_LEN: usize = 200;

/// Where clients reach one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneAddress {
    /// The zone's index.
    pub zone: u32,
    /// `host:port` of its client (WebTransport) listener.
    pub address: String,
    /// Its certificate hashes, comma-separated (current first), as given.
    pub cert_hashes: String,
}

/// Why a directory is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DirectoryError {
    /// An entry is not `zone@host:port#hash[,hash]`.
    #[error("zone directory entry {0:?} is not zone@host:port#hash[,hash]")]
    Syntax(String),
    /// A zone index at or above the most zones a fabric has.
    #[error("zone directory entry names zone {0}, at most {MAX_ZONES} zones exist")]
    Zone(u32),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("zone directory has more than {MAX_ENTRIES} entries")]
    TooMany,
}

impl ZoneAddress {
    /// Parses one entry `zone@host:port#hash[,hash]`.
    pub fn parse(entry: &str) -> Result<Self, DirectoryError> {
        let syntax = || DirectoryError::Syntax(entry.chars().take(80).collect());
        let (zone, rest) = entry.split_once('@').ok_or_else(syntax)?;
        let (address, hashes) = rest.split_once('#').ok_or_else(syntax)?;
        let zone: u32 = zone.parse().map_err(|_| syntax())?;
        if zone >= MAX_ZONES as u32 {
            return Err(DirectoryError::Zone(zone));
        }
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        let hashes_ok = !hashes.is_empty()
            && hashes.len() <= MAX_HASHES_LEN
            && hashes.split(',').all(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=:".contains(&b))
            });
        if !port_ok || address.len() > MAX_ADDRESS_LEN || address.contains('/') || !hashes_ok {
            return Err(syntax());
        }
        Ok(Self {
            zone,
            address: address.to_owned(),
            cert_hashes: hashes.to_owned(),
        })
    }
}

/// Every zone's client address; a later entry for a zone replaces an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneDirectory {
    entries: Vec<ZoneAddress>,
}

impl ZoneDirectory {
    /// Parses the entries of `text` (whitespace or `;` between them).
    pub fn parse(text: &str) -> Result<Self, DirectoryError> {
        let mut d = Self::default();
        let entries = text
            .split([' ', '\t', '\n', '\r', ';'])
            .filter(|e| !e.is_empty());
        for (n, entry) in entries.enumerate() {
            if n == MAX_ENTRIES {
                return Err(DirectoryError::TooMany);
            }
            let a = ZoneAddress::parse(entry)?;
            d.entries.retain(|e| e.zone != a.zone);
            d.entries.push(a);
        }
        Ok(d)
    }

    /// Where zone `zone` is, if listed.
    pub fn get(&self, zone: u32) -> Option<&ZoneAddress> {
        self.entries.iter().find(|e| e.zone == zone)
    }

    /// Zones listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no zone is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "WvlzFa10zR3mNQqWvlzFa10zR3mNQqWvlzFa10zR3mN=";

    #[test]
    fn entries_parse_and_a_later_one_wins() {
        let text = format!("0@127.0.0.1:7443#{H}\n1@[::1]:7444#{H},{H} ; 0@127.0.0.1:9000#{H}");
        let d = ZoneDirectory::parse(&text).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(0).unwrap().address, "127.0.0.1:9000");
        let one = d.get(1).unwrap();
        assert_eq!(one.address, "[::1]:7444");
        assert_eq!(one.cert_hashes, format!("{H},{H}"));
        assert!(d.get(2).is_none());
        assert!(ZoneDirectory::parse("  \n").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "0127.0.0.1:7443#h",
            "0@127.0.0.1:7443",
            "x@127.0.0.1:7443#h",
            "0@127.0.0.1#h",
            "0@:7443#h",
            "0@127.0.0.1:99999#h",
            "0@a/b:1#h",
            "0@127.0.0.1:1#",
            "0@127.0.0.1:1#a,,b",
            "0@127.0.0.1:1#a\"b",
        ] {
            assert!(
                matches!(ZoneDirectory::parse(bad), Err(DirectoryError::Syntax(_))),
                "{bad:?} is refused"
            );
        }
        assert_eq!(
            ZoneDirectory::parse("32@127.0.0.1:1#h"),
            Err(DirectoryError::Zone(32))
        );
        let many: String = (0..=MAX_ENTRIES).map(|_| "0@h:1#h ").collect();
        assert_eq!(ZoneDirectory::parse(&many), Err(DirectoryError::TooMany));
    }
}
