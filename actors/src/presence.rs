//! Presence (realtime.md, "Presence"): which users of a tenant are online on this node.
//!
//! A user is online while they hold at least one user session (instance-token and API-key
//! sessions do not count). When their last session closes they stay online for a grace period
//! (10 s) so a reconnect shows nothing; only transitions are announced. The tenant supervisor
//! owns one [`Presence`] and its timers; this module is the bookkeeping alone.
//!
//! One node only: announcing per-node counts on a shared bus (so users of a crashed node go
//! offline) arrives with the cross-node bus.

use std::collections::HashMap;

use bytestring::ByteString;
use uuid::Uuid;

/// The online users of one tenant.
#[derive(Debug, Default)]
pub struct Presence {
    /// Open user sessions per online user (0 while in the grace period).
    sessions: HashMap<Uuid, usize>,
    /// Users whose last session closed, with the ticket of their grace timer.
    leaving: HashMap<Uuid, u64>,
    next_ticket: u64,
}

impl Presence {
    /// A user session opened; answers whether the user just came online (to announce).
    pub fn join(&mut self, user: Uuid) -> bool {
        // A user back within the grace period (still listed, with 0 sessions) never went
        // offline, so nothing is announced.
        self.leaving.remove(&user);
        let known = self.sessions.contains_key(&user);
        *self.sessions.entry(user).or_insert(0) += 1;
        !known
    }

    /// A user session closed; answers the grace ticket when it was the user's last one.
    pub fn leave(&mut self, user: Uuid) -> Option<u64> {
        let count = self.sessions.get_mut(&user)?;
        *count = count.saturating_sub(1);
        if *count > 0 {
            return None;
        }
        self.next_ticket += 1;
        self.leaving.insert(user, self.next_ticket);
        Some(self.next_ticket)
    }

    /// The grace period of `ticket` ended; answers whether the user went offline.
    pub fn expire(&mut self, user: Uuid, ticket: u64) -> bool {
        if self.leaving.get(&user) != Some(&ticket) {
            return false;
        }
        self.leaving.remove(&user);
        self.sessions.remove(&user);
        true
    }

    /// The online users (grace periods included).
    pub fn online(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.sessions.keys().copied()
    }

    /// Whether `user` is online.
    pub fn is_online(&self, user: Uuid) -> bool {
        self.sessions.contains_key(&user)
    }
}

/// The `presence.update` frame.
pub fn frame(user: Uuid, online: bool) -> ByteString {
    serde_json::json!({
        "event": "presence.update",
        "user_id": user,
        "status": if online { "online" } else { "offline" },
    })
    .to_string()
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_are_announced_and_reconnects_in_grace_are_silent() {
        let mut presence = Presence::default();
        let ana = Uuid::now_v7();
        assert!(presence.join(ana), "first session: online");
        assert!(!presence.join(ana), "second session: nothing");
        assert_eq!(presence.leave(ana), None, "one session left");
        let ticket = presence.leave(ana).expect("last session closed");
        assert!(presence.is_online(ana), "online during the grace period");
        assert!(!presence.join(ana), "back within the grace period: nothing");
        assert!(!presence.expire(ana, ticket), "the old timer is void");
        let ticket = presence.leave(ana).expect("last session closed again");
        assert!(
            presence.expire(ana, ticket),
            "offline after the grace period"
        );
        assert!(!presence.is_online(ana));
        assert!(presence.join(ana), "online again");
    }
}
