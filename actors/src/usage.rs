//! Usage metering in the tenant supervisor (tenancy.md §5).
//!
//! Counters accumulate in memory per UTC day (authenticated requests, distinct active users,
//! the day's peak of simultaneous websocket sessions) and are flushed through the
//! [`UsageSink`] port at least every minute with additive writes; a failed flush keeps the
//! counts for the next one, so a crash loses at most one interval.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

/// One day's counts of one tenant, to be added to what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The tenant.
    pub account_id: Uuid,
    /// The UTC day.
    pub date: NaiveDate,
    /// Authenticated REST requests.
    pub api_requests: u64,
    /// Users with a request or a socket that day.
    pub active_users: Vec<Uuid>,
    /// The day's highest number of simultaneous sockets seen here.
    pub ws_connections_peak: u32,
}

/// Where usage goes (the server implements it with the database).
pub trait UsageSink: Send + Sync + 'static {
    /// Adds a delta to the stored usage.
    fn flush(&self, delta: UsageDelta) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

#[derive(Debug, Default)]
struct Day {
    api_requests: u64,
    active_users: HashSet<Uuid>,
    ws_peak: u32,
}

/// The supervisor's unflushed counts.
#[derive(Debug, Default)]
pub struct UsageCounters {
    days: BTreeMap<NaiveDate, Day>,
}

impl UsageCounters {
    fn today(&mut self) -> &mut Day {
        self.days.entry(Utc::now().date_naive()).or_default()
    }

    /// Counts an authenticated request (and its user as active).
    pub fn record_request(&mut self, user_id: Option<Uuid>) {
        let day = self.today();
        day.api_requests += 1;
        if let Some(user) = user_id {
            day.active_users.insert(user);
        }
    }

    /// Notes a user with a socket, and the current number of sockets.
    pub fn record_sessions(&mut self, user_id: Option<Uuid>, open_sessions: usize) {
        let day = self.today();
        if let Some(user) = user_id {
            day.active_users.insert(user);
        }
        day.ws_peak = day.ws_peak.max(open_sessions as u32);
    }

    /// Takes everything unflushed.
    pub fn take(&mut self, account_id: Uuid) -> Vec<UsageDelta> {
        std::mem::take(&mut self.days)
            .into_iter()
            .filter(|(_, d)| d.api_requests > 0 || !d.active_users.is_empty() || d.ws_peak > 0)
            .map(|(date, d)| UsageDelta {
                account_id,
                date,
                api_requests: d.api_requests,
                active_users: d.active_users.into_iter().collect(),
                ws_connections_peak: d.ws_peak,
            })
            .collect()
    }

    /// Puts back a delta whose flush failed.
    pub fn restore(&mut self, delta: UsageDelta) {
        let day = self.days.entry(delta.date).or_default();
        day.api_requests += delta.api_requests;
        day.active_users.extend(delta.active_users);
        day.ws_peak = day.ws_peak.max(delta.ws_connections_peak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accumulate_and_restore_after_a_failed_flush() {
        let account = Uuid::now_v7();
        let user = Uuid::now_v7();
        let mut counters = UsageCounters::default();
        counters.record_request(Some(user));
        counters.record_request(Some(user));
        counters.record_sessions(Some(user), 3);
        counters.record_sessions(None, 2);
        let deltas = counters.take(account);
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].api_requests, 2);
        assert_eq!(deltas[0].active_users, vec![user]);
        assert_eq!(deltas[0].ws_connections_peak, 3);
        assert!(counters.take(account).is_empty());
        counters.restore(deltas[0].clone());
        counters.record_request(None);
        assert_eq!(counters.take(account)[0].api_requests, 3);
    }
}
