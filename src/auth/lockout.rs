//! Login brute-force protection (iam.md §4.1).
//!
//! Per (email, client IP): 5 consecutive failures lock that pair for 1 minute, doubling with
//! each further failure up to 60 minutes; success resets. Per client IP: 50 failures within an
//! hour, for any emails, lock the IP until the oldest of them is an hour old. While locked the
//! password is not checked at all. State is per node (in memory): a node restart forgets it,
//! and the per-IP and per-email rate limits still apply.
//!
//! An attempt is reserved before its password is checked ([`LoginThrottle::begin`]) and counts
//! as a failure until it resolves, so concurrent guesses cannot slip past the lock: at most five
//! unresolved or failed attempts per pair are ever checked.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FAILURES_BEFORE_LOCK: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(60);
const MAX_LOCK: Duration = Duration::from_secs(3600);
const IP_FAILURES_PER_HOUR: usize = 50;
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct PairState {
    consecutive_failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    last_failure: Option<Instant>,
}

#[derive(Default)]
struct State {
    pairs: HashMap<(String, Option<IpAddr>), PairState>,
    ips: HashMap<IpAddr, VecDeque<Instant>>,
}

/// The node's login throttle.
#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<State>,
}

impl LoginThrottle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an attempt for (email, IP), or `Err(retry_after)` while the pair or the IP is
    /// locked, or while five attempts are already failed or unresolved. Resolve the attempt
    /// with [`Attempt::failed`] or [`Attempt::succeeded`]; dropping it unresolved releases it.
    pub fn begin(&self, email: &str, ip: Option<IpAddr>) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let key = (email.to_lowercase(), ip);
        let mut state = self.state();
        if let Some(ip) = ip {
            if let Some(failures) = state.ips.get_mut(&ip) {
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= HOUR)
                {
                    failures.pop_front();
                }
                if failures.len() >= IP_FAILURES_PER_HOUR {
                    let oldest = failures.front().copied().unwrap_or(now);
                    return Err(HOUR.saturating_sub(now.duration_since(oldest)));
                }
            }
        }
        let pair = state.pairs.entry(key.clone()).or_default();
        if let Some(until) = pair.locked_until.filter(|until| *until > now) {
            return Err(until - now);
        }
        if pair.consecutive_failures + pair.in_flight >= FAILURES_BEFORE_LOCK {
            return Err(FIRST_LOCK);
        }
        pair.in_flight += 1;
        Ok(Attempt {
            throttle: self,
            key,
            resolved: false,
        })
    }

    fn release(&self, key: &(String, Option<IpAddr>)) {
        if let Some(pair) = self.state().pairs.get_mut(key) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
        }
    }

    fn failure(&self, email: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(ip) = ip {
            state.ips.entry(ip).or_default().push_back(now);
        }
        let pair = state.pairs.entry((email.to_lowercase(), ip)).or_default();
        pair.consecutive_failures += 1;
        pair.last_failure = Some(now);
        let lock = if pair.consecutive_failures >= FAILURES_BEFORE_LOCK {
            let doublings = pair.consecutive_failures - FAILURES_BEFORE_LOCK;
            let lock = FIRST_LOCK
                .checked_mul(1u32 << doublings.min(16))
                .unwrap_or(MAX_LOCK)
                .min(MAX_LOCK);
            pair.locked_until = Some(now + lock);
            Some(lock)
        } else {
            None
        };
        if state.pairs.len() > 100_000 {
            // Forget pairs idle for an hour so the map stays bounded.
            state
                .pairs
                .retain(|_, p| p.last_failure.is_some_and(|t| now.duration_since(t) < HOUR));
            state
                .ips
                .retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < HOUR));
        }
        lock
    }

    fn success(&self, email: &str, ip: Option<IpAddr>) {
        self.state().pairs.remove(&(email.to_lowercase(), ip));
    }
}

/// A reserved sign-in attempt.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    key: (String, Option<IpAddr>),
    resolved: bool,
}

impl Attempt<'_> {
    /// The password was wrong; returns the lock this caused, if any.
    pub fn failed(mut self) -> Option<Duration> {
        self.resolved = true;
        self.throttle.release(&self.key);
        self.throttle.failure(&self.key.0, self.key.1)
    }

    /// The password was right: the pair's failures are forgotten.
    pub fn succeeded(mut self) {
        self.resolved = true;
        self.throttle.success(&self.key.0, self.key.1);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.resolved {
            self.throttle.release(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_pair_then_doubling() {
        let throttle = LoginThrottle::default();
        let ip = Some("203.0.113.1".parse().unwrap());
        for _ in 0..4 {
            assert_eq!(throttle.begin("a@x.test", ip).unwrap().failed(), None);
        }
        let fifth = throttle.begin("A@x.test", ip).unwrap();
        assert_eq!(fifth.failed(), Some(Duration::from_secs(60)));
        assert!(throttle.begin("a@x.test", ip).is_err());
        // Another IP is not locked.
        let other_ip = Some("203.0.113.2".parse().unwrap());
        throttle.begin("a@x.test", other_ip).unwrap().succeeded();
        // A further failure doubles the lock.
        assert_eq!(
            throttle.failure("a@x.test", ip),
            Some(Duration::from_secs(120))
        );
        throttle.success("a@x.test", ip);
        assert!(throttle.begin("a@x.test", ip).is_ok());
    }

    #[test]
    fn fifty_failures_from_one_ip_lock_it_for_any_email() {
        let throttle = LoginThrottle::default();
        let ip = Some("203.0.113.9".parse().unwrap());
        for n in 0..50 {
            throttle
                .begin(&format!("u{n}@x.test"), ip)
                .unwrap()
                .failed();
        }
        assert!(throttle.begin("fresh@x.test", ip).is_err());
    }

    #[test]
    fn concurrent_attempts_count_before_they_resolve() {
        let throttle = LoginThrottle::default();
        let ip = Some("203.0.113.5".parse().unwrap());
        let pending: Vec<_> = (0..5)
            .map(|_| throttle.begin("c@x.test", ip).unwrap())
            .collect();
        assert!(
            throttle.begin("c@x.test", ip).is_err(),
            "a sixth concurrent guess is refused"
        );
        drop(pending);
        assert!(
            throttle.begin("c@x.test", ip).is_ok(),
            "unresolved attempts are released"
        );
    }
}
