//! Login brute-force protection (iam.md §4.1).
//!
//! Per (email, client IP): 5 consecutive failures lock that pair for 1 minute, doubling with
//! each further failure up to 60 minutes; success resets. Per client IP: 50 failures within an
//! hour, for any emails, lock the IP until the oldest of them is an hour old. While locked the
//! password is not checked at all. State is per node (in memory): a node restart forgets it,
//! and the per-IP and per-email rate limits still apply.

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

    /// `Err(retry_after)` while the pair or the IP is locked.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(until) = state
            .pairs
            .get(&(email.to_lowercase(), ip))
            .and_then(|p| p.locked_until)
        {
            if until > now {
                return Err(until - now);
            }
        }
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
        Ok(())
    }

    /// Records a failed attempt; returns the lock it caused, if any.
    pub fn failure(&self, email: &str, ip: Option<IpAddr>) -> Option<Duration> {
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

    /// A successful sign-in resets the pair.
    pub fn success(&self, email: &str, ip: Option<IpAddr>) {
        self.state().pairs.remove(&(email.to_lowercase(), ip));
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
            assert_eq!(throttle.failure("a@x.test", ip), None);
        }
        assert!(throttle.check("a@x.test", ip).is_ok());
        assert_eq!(
            throttle.failure("A@x.test", ip),
            Some(Duration::from_secs(60))
        );
        assert!(throttle.check("a@x.test", ip).is_err());
        // Another IP is not locked.
        assert!(throttle
            .check("a@x.test", Some("203.0.113.2".parse().unwrap()))
            .is_ok());
        assert_eq!(
            throttle.failure("a@x.test", ip),
            Some(Duration::from_secs(120))
        );
        throttle.success("a@x.test", ip);
        assert!(throttle.check("a@x.test", ip).is_ok());
    }

    #[test]
    fn fifty_failures_from_one_ip_lock_it_for_any_email() {
        let throttle = LoginThrottle::default();
        let ip = Some("203.0.113.9".parse().unwrap());
        for n in 0..50 {
            throttle.failure(&format!("u{n}@x.test"), ip);
        }
        assert!(throttle.check("fresh@x.test", ip).is_err());
    }
}
