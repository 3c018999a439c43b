//! Rate limits: how often one address may call the API, create accounts, and how often one
//! account may have join tokens issued. Each is a keyed GCRA limiter from the `governor` crate
//! (well kept, lock-free per key; hand-writing token buckets buys nothing). A refused call gets
//! 429 `rate_limited` with a `Retry-After` header; the janitor forgets idle keys so a stream of
//! new addresses does not grow memory for ever. A limit of 0 turns that limit off.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::state::Shared;

/// The limits, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// Requests per second from one IP address (bursts of twice that); 0 = no limit.
    pub requests_per_ip_per_s: u32,
    /// Accounts created per minute from one IP address (in a burst or spread); 0 = no limit.
    pub signups_per_ip_per_min: u32,
    /// Join tokens issued per minute to one account (in a burst or spread); 0 = no limit.
    pub tokens_per_account_per_min: u32,
}

/// The running limiters.
pub struct RateLimits {
    requests: Option<DefaultKeyedRateLimiter<IpAddr>>,
    signups: Option<DefaultKeyedRateLimiter<IpAddr>>,
    tokens: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

fn keyed<K: std::hash::Hash + Eq + Clone>(
    rate: u32,
    quota: fn(NonZeroU32) -> Quota,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(RateLimiter::keyed(quota(rate).allow_burst(burst)))
}

impl RateLimits {
    /// Limiters for `s`.
    pub fn new(s: RateSettings) -> Self {
        Self {
            requests: keyed(
                s.requests_per_ip_per_s,
                Quota::per_second,
                s.requests_per_ip_per_s.saturating_mul(2),
            ),
            signups: keyed(
                s.signups_per_ip_per_min,
                Quota::per_minute,
                s.signups_per_ip_per_min,
            ),
            tokens: keyed(
                s.tokens_per_account_per_min,
                Quota::per_minute,
                s.tokens_per_account_per_min,
            ),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
        what: &str,
    ) -> Result<(), RateLimited> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| RateLimited {
            retry_after_s: not_until.wait_time_from(self.clock.now()).as_secs() + 1,
            what: what.to_owned(),
        })
    }

    /// One request from `ip`.
    pub fn request(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.check(self.requests.as_ref(), &ip, "requests from this address")
    }

    /// One account created from `ip`.
    pub fn signup(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.check(
            self.signups.as_ref(),
            &ip,
            "accounts created from this address",
        )
    }

    /// One join token for `account`.
    pub fn token(&self, account: &str) -> Result<(), RateLimited> {
        self.check(
            self.tokens.as_ref(),
            &account.to_owned(),
            "join tokens for this account",
        )
    }

    /// Forgets keys whose limit has fully recovered (called by the janitor).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.requests {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.signups {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.tokens {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// A refused call: 429 `rate_limited` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    /// Whole seconds until a retry can succeed (rounded up).
    pub retry_after_s: u64,
    /// What was limited, for the message.
    pub what: String,
}

impl axum::response::IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many {}: retry in {} s", self.what, self.retry_after_s),
        )
        .into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, self.retry_after_s.into());
        response
    }
}

/// Middleware: the per-address request limit on every route.
pub async fn per_address(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match st.rate.request(peer.ip()) {
        Ok(()) => next.run(request).await,
        Err(limited) => limited.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_refuses_past_its_burst_per_key_and_zero_is_off() {
        let limits = RateLimits::new(RateSettings {
            requests_per_ip_per_s: 5,
            signups_per_ip_per_min: 2,
            tokens_per_account_per_min: 0,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..10 {
            assert!(
                limits.request(a).is_ok(),
                "request {i} within the burst of 10"
            );
        }
        let refused = limits.request(a).expect_err("the 11th at once is refused");
        assert!(refused.retry_after_s >= 1, "{refused:?}");
        assert!(
            limits.request(b).is_ok(),
            "another address has its own budget"
        );
        assert!(limits.signup(a).is_ok() && limits.signup(a).is_ok());
        let refused = limits
            .signup(a)
            .expect_err("third sign-up within the minute");
        assert!(
            (29..=31).contains(&refused.retry_after_s),
            "one sign-up comes back every 30 s: {refused:?}"
        );
        for _ in 0..1_000 {
            assert!(limits.token("ann").is_ok(), "0 = no token limit");
        }
    }
}
