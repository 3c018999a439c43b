//! Reading a running zone process from outside: its Prometheus metrics and state dump over
//! plain HTTP on loopback (`--metrics-addr`), and `key=value` fields of its printed lines.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// `GET path` over a fresh TCP connection; returns the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: zone\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .with_context(|| format!("reading {path} from {addr}"))?;
    if !out.starts_with("HTTP/1.1 200") {
        bail!("GET {path} from {addr}: {out}");
    }
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// Samples of the Prometheus text format: metric name (labels dropped) to value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name.split('{').next()?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// A zone's metrics, read now.
pub fn metrics(addr: SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    Ok(parse_metrics(&http_get(addr, "/metrics")?))
}

/// The value of `key=value` in a printed line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Waits until every zone of `zones` (one process may run several) has printed a line
/// starting with each of `prefixes` (told apart by their `zone_id=` field, in any order);
/// returns them per zone, in the order of `prefixes`. Lines of one zone interleave with its
/// neighbours' in a process that runs several, so none is skipped while waiting.
pub fn wait_for_zone_lines(
    proc: &mut fabric_harness::process::Proc,
    zones: std::ops::Range<u32>,
    prefixes: &[&str],
    timeout: Duration,
) -> anyhow::Result<Vec<Vec<String>>> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got: Vec<Vec<Option<String>>> = vec![vec![None; prefixes.len()]; zones.len()];
    while got.iter().flatten().any(Option::is_none) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = proc
            .wait_for_line(|l| prefixes.iter().any(|p| l.starts_with(p)), left)
            .with_context(|| format!("zones {zones:?}: waiting for {prefixes:?}"))?;
        let zone: Option<u32> = field(&line, "zone_id").and_then(|z| z.parse().ok());
        let (Some(zone), Some(p)) = (zone, prefixes.iter().position(|p| line.starts_with(p)))
        else {
            bail!("a line without a zone: {line}");
        };
        if !zones.contains(&zone) {
            bail!("zone {zone} is not one of {zones:?}: {line}");
        }
        got[(zone - zones.start) as usize][p] = Some(line);
    }
    Ok(got
        .into_iter()
        .map(|z| z.into_iter().flatten().collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_fields_parse() {
        let m = parse_metrics(
            "# HELP x\nfabric_zone_owned{fabric=\"f\",zone=\"1\"} 7\nfabric_zone_links 2\nbad\n",
        );
        assert_eq!(m.get("fabric_zone_owned"), Some(&7.0));
        assert_eq!(m.get("fabric_zone_links"), Some(&2.0));
        assert_eq!(m.len(), 2);
        assert_eq!(
            field("A zone=1 addr=127.0.0.1:9", "addr"),
            Some("127.0.0.1:9")
        );
        assert_eq!(field("A zone=1", "addr"), None);
    }
}
