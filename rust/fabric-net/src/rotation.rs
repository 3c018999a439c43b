//! Certificate rotation: a server replaces its self-signed certificate well before it expires.
//!
//! Pinned certificates are valid for at most 14 days ([`crate::cert::MAX_PINNED_VALIDITY`]), so
//! a server that runs longer than that must change certificate, and so its hash, while it runs.
//! [`CertRotation`] says how often; [`CertRotation::next_in`] decides when (sans-IO: the caller
//! passes the time). The server applies a new certificate to new handshakes only: sessions
//! already open keep theirs (QUIC and TLS do not re-authenticate an open connection).
//!
//! No client is caught out by a rotation: the server makes its *next* certificate one period
//! ahead and announces its hash ([`crate::Server::next_cert_hash`]); clients pin both the
//! current and the next hash ([`crate::ClientConfig::also_pin`]), so a hash pair fetched at any
//! time keeps working across the following rotation. After each rotation the owner learns the
//! new pair from [`crate::ServerEvent::CertRotated`] and publishes it (a zone sends it to the
//! registry, which clients ask before connecting). Each certificate is announced for one
//! period and in use for the next, so a period is at most half the validity.

use std::time::{Duration, SystemTime};

use crate::NetError;
use crate::error::{IdentityError, RotationProblem};

/// The least time between two rotations, whatever the certificate says (a certificate that is
/// about to expire is replaced at once, but never in a tight loop).
pub const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(1);

/// How long before `notAfter` a certificate is replaced at the latest: clients that fetched
/// the hash shortly before the rotation still have this long to connect with it.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

/// How a server rotates its self-signed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRotation {
    /// Host names or IP addresses of each new certificate.
    pub names: Vec<String>,
    /// Time between rotations, at most half the validity: a certificate is announced for one
    /// period and in use for the next.
    pub every: Duration,
    /// Validity of each new certificate in days, 1..=14.
    pub validity_days: u32,
}

impl CertRotation {
    /// New 14-day certificates every 7 days (each announced for 7 days, then in use for 7).
    pub fn weekly(names: &[&str]) -> Self {
        Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            every: Duration::from_secs(7 * 24 * 3600),
            validity_days: 14,
        }
    }

    /// Checks the settings: at least [`MIN_ROTATION_INTERVAL`], at most half the validity,
    /// validity 1..=14 days, at least one name.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |why: RotationProblem| Err(NetError::from(IdentityError::Rotation(why)));
        if !(1..=14).contains(&self.validity_days) {
            return bad(RotationProblem::ValidityDays(self.validity_days));
        }
        let validity = Duration::from_secs(u64::from(self.validity_days) * 24 * 3600);
        if self.every < MIN_ROTATION_INTERVAL || self.every > validity / 2 {
            return bad(RotationProblem::Interval {
                every_s: self.every.as_secs(),
                min_s: MIN_ROTATION_INTERVAL.as_secs(),
                validity_days: self.validity_days,
            });
        }
        if self.names.is_empty() {
            return bad(RotationProblem::NoNames);
        }
        Ok(())
    }

    /// How long from `now` until the certificate installed at `installed` (valid until
    /// `not_after`) is replaced: `every` after it was installed, but at the latest
    /// [`EXPIRY_MARGIN`] before it expires, and never sooner than [`MIN_ROTATION_INTERVAL`].
    pub fn next_in(
        &self,
        now: SystemTime,
        installed: SystemTime,
        not_after: SystemTime,
    ) -> Duration {
        let due = (installed + self.every).min(
            not_after
                .checked_sub(EXPIRY_MARGIN)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        due.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .max(MIN_ROTATION_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn weekly_rotation_is_valid_and_replaces_after_a_week() {
        let r = CertRotation::weekly(&["localhost"]);
        assert_eq!(r.validate().map_err(|e| e.to_string()), Ok(()));
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(r.next_in(t0, t0, t0 + 14 * DAY), 7 * DAY);
        assert_eq!(
            r.next_in(t0 + DAY, t0, t0 + 14 * DAY),
            6 * DAY,
            "counted from install"
        );
    }

    #[test]
    fn a_certificate_close_to_expiry_is_replaced_before_it_expires() {
        let r = CertRotation::weekly(&["localhost"]);
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        // Installed with only one day left (e.g. the caller's own certificate).
        assert_eq!(r.next_in(t0, t0, t0 + DAY), DAY - EXPIRY_MARGIN);
        // Already inside the margin, or expired: replace now (after the minimum interval).
        assert_eq!(
            r.next_in(t0, t0, t0 + EXPIRY_MARGIN / 2),
            MIN_ROTATION_INTERVAL
        );
        assert_eq!(r.next_in(t0, t0, t0 - DAY), MIN_ROTATION_INTERVAL);
        // Overdue rotation (the process was suspended): at once, not in a tight loop.
        assert_eq!(
            r.next_in(t0 + 8 * DAY, t0, t0 + 14 * DAY),
            MIN_ROTATION_INTERVAL
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        use crate::error::{IdentityError, RotationProblem};
        let ok = CertRotation::weekly(&["localhost"]);
        let interval = |every: Duration| RotationProblem::Interval {
            every_s: every.as_secs(),
            min_s: MIN_ROTATION_INTERVAL.as_secs(),
            validity_days: 14,
        };
        let cases = [
            (
                CertRotation {
                    validity_days: 15,
                    ..ok.clone()
                },
                RotationProblem::ValidityDays(15),
            ),
            (
                CertRotation {
                    validity_days: 0,
                    ..ok.clone()
                },
                RotationProblem::ValidityDays(0),
            ),
            (
                CertRotation {
                    every: 7 * DAY + Duration::from_secs(1),
                    ..ok.clone()
                },
                interval(7 * DAY + Duration::from_secs(1)),
            ),
            (
                CertRotation {
                    every: Duration::from_millis(10),
                    ..ok.clone()
                },
                interval(Duration::ZERO),
            ),
            (
                CertRotation {
                    names: vec![],
                    ..ok.clone()
                },
                RotationProblem::NoNames,
            ),
        ];
        for (r, why) in cases {
            assert_eq!(
                r.validate(),
                Err(NetError::Identity(IdentityError::Rotation(why.clone()))),
                "{why}"
            );
        }
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            RotationProblem::ValidityDays(15).to_string(),
            "validity of 15 days is not in 1..=14",
            "the words stay as clear"
        );
    }
}
