//! The bounded outbound queue of one websocket session.
//!
//! Fan-out never waits: publishers [`Outbound::offer`] a shared, already-serialized frame and
//! move on. A queue that is over its frame or byte budget closes its session with 1013 (slow
//! consumer) instead of growing or blocking the publisher. The socket writer in the server
//! drains the [`OutboundReceiver`] and watches its close signal, which wins over queued frames.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytestring::ByteString;
use tokio::sync::{mpsc, watch};

use crate::stats::RuntimeStats;

/// Websocket close codes used by the hub (realtime.md, "Close codes").
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// A binary frame was received.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Repeated invalid frames.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame over the inbound limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Internal error.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The server is restarting (shutdown, tenant restart).
    pub const SERVICE_RESTART: u16 = 1012;
    /// Slow consumer: the outbound queue overflowed.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Missed heartbeats.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The session's token expired.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// Session revoked, user deactivated or account suspended.
    pub const REVOKED: u16 = 4003;
    /// Op rate abuse.
    pub const OP_ABUSE: u16 = 4029;
}

/// A close frame: code and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame {
    /// The websocket close code.
    pub code: u16,
    /// A short, static reason sent with the code.
    pub reason: &'static str,
}

impl CloseFrame {
    /// Builds a close frame.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

/// A frame waiting for the socket writer.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// A JSON text frame (shared bytes: cloning does not copy).
    Text(ByteString),
    /// A websocket protocol ping.
    Ping,
}

/// Budget of one session's outbound queue.
#[derive(Debug, Clone, Copy)]
pub struct OutboundLimits {
    /// Frames the queue holds before the session is closed as a slow consumer.
    pub max_frames: usize,
    /// Bytes of queued text the queue holds before the same happens.
    pub max_bytes: usize,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        Self {
            max_frames: 1024,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What became of an offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for the writer.
    Queued,
    /// An ephemeral frame dropped because the queue is over half full.
    Dropped,
    /// The session is already closing; the frame was discarded.
    Closed,
    /// The queue overflowed: the session is now closing with 1013.
    Overflow,
}

struct Shared {
    queued_bytes: AtomicUsize,
    limits: OutboundLimits,
    close: watch::Sender<Option<CloseFrame>>,
    stats: Arc<RuntimeStats>,
}

/// The sending half, cloned into every place that publishes to the session.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<OutFrame>,
    shared: Arc<Shared>,
}

/// The receiving half, owned by the socket writer.
pub struct OutboundReceiver {
    rx: mpsc::Receiver<OutFrame>,
    shared: Arc<Shared>,
    close_rx: watch::Receiver<Option<CloseFrame>>,
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Next {
    /// Write this frame.
    Frame(OutFrame),
    /// Send this close frame and stop.
    Close(CloseFrame),
}

impl Outbound {
    /// Creates a queue with the given budget.
    pub fn channel(
        limits: OutboundLimits,
        stats: Arc<RuntimeStats>,
    ) -> (Outbound, OutboundReceiver) {
        let (tx, rx) = mpsc::channel(limits.max_frames.max(1));
        let (close, close_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            queued_bytes: AtomicUsize::new(0),
            limits,
            close,
            stats,
        });
        (
            Outbound {
                tx,
                shared: shared.clone(),
            },
            OutboundReceiver {
                rx,
                shared,
                close_rx,
            },
        )
    }

    /// Offers a state frame. Never blocks; a full queue closes the session with 1013.
    pub fn offer(&self, frame: &ByteString) -> Offer {
        if self.is_closed() {
            return Offer::Closed;
        }
        let len = frame.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.shared.limits.max_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return self.overflow();
        }
        match self.tx.try_send(OutFrame::Text(frame.clone())) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.overflow()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                Offer::Closed
            }
        }
    }

    /// Offers an ephemeral frame (typing, presence): dropped, not queued, while the queue is
    /// more than half full.
    pub fn offer_ephemeral(&self, frame: &ByteString) -> Offer {
        let used = self.shared.limits.max_frames - self.tx.capacity();
        if used * 2 > self.shared.limits.max_frames
            || self.shared.queued_bytes.load(Ordering::Acquire) * 2 > self.shared.limits.max_bytes
        {
            return Offer::Dropped;
        }
        self.offer(frame)
    }

    /// Queues a protocol ping.
    pub fn ping(&self) -> Offer {
        if self.is_closed() {
            return Offer::Closed;
        }
        match self.tx.try_send(OutFrame::Ping) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => self.overflow(),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Asks the writer to close the socket with `frame`. The first close wins; returns
    /// whether this call was it.
    pub fn close(&self, frame: CloseFrame) -> bool {
        self.shared.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(frame);
                true
            } else {
                false
            }
        })
    }

    /// Whether a close was requested (or the writer is gone).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.close.borrow().is_some()
    }

    /// The close frame requested so far, if any.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        *self.shared.close.borrow()
    }

    fn overflow(&self) -> Offer {
        if self.close(CloseFrame::new(
            close_code::TRY_AGAIN_LATER,
            "slow consumer",
        )) {
            RuntimeStats::incr(&self.shared.stats.ws_slow_consumer_closes);
        }
        Offer::Overflow
    }
}

impl OutboundReceiver {
    /// Waits for the next thing to do. A requested close wins over queued frames.
    pub async fn next(&mut self) -> Next {
        loop {
            if let Some(frame) = *self.close_rx.borrow_and_update() {
                return Next::Close(frame);
            }
            tokio::select! {
                biased;
                changed = self.close_rx.changed() => {
                    if changed.is_err() {
                        return Next::Close(CloseFrame::new(close_code::NORMAL, ""));
                    }
                }
                frame = self.rx.recv() => match frame {
                    Some(frame) => {
                        if let OutFrame::Text(text) = &frame {
                            self.shared.queued_bytes.fetch_sub(text.len(), Ordering::AcqRel);
                        }
                        RuntimeStats::incr(&self.shared.stats.ws_messages_out);
                        return Next::Frame(frame);
                    }
                    None => return Next::Close(CloseFrame::new(close_code::NORMAL, "")),
                },
            }
        }
    }

    /// A receiver of the close signal, for racing a write that may block on a stuck socket.
    pub fn close_signal(&self) -> watch::Receiver<Option<CloseFrame>> {
        self.close_rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(frames: usize, bytes: usize) -> (Outbound, OutboundReceiver, Arc<RuntimeStats>) {
        let stats = Arc::new(RuntimeStats::default());
        let (tx, rx) = Outbound::channel(
            OutboundLimits {
                max_frames: frames,
                max_bytes: bytes,
            },
            stats.clone(),
        );
        (tx, rx, stats)
    }

    #[tokio::test]
    async fn frame_budget_overflow_closes_with_1013_and_counts_once() {
        let (tx, mut rx, stats) = queue(2, 1 << 20);
        let frame = ByteString::from_static("{}");
        assert_eq!(tx.offer(&frame), Offer::Queued);
        assert_eq!(tx.offer(&frame), Offer::Queued);
        assert_eq!(tx.offer(&frame), Offer::Overflow);
        assert_eq!(tx.offer(&frame), Offer::Closed);
        assert_eq!(stats.ws_slow_consumer_closes.load(Ordering::Relaxed), 1);
        match rx.next().await {
            Next::Close(f) => assert_eq!(f.code, close_code::TRY_AGAIN_LATER),
            other => panic!("expected close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn byte_budget_overflow_closes() {
        let (tx, _rx, _) = queue(100, 10);
        assert_eq!(tx.offer(&ByteString::from("12345678")), Offer::Queued);
        assert_eq!(tx.offer(&ByteString::from("12345678")), Offer::Overflow);
        assert_eq!(
            tx.close_frame().map(|f| f.code),
            Some(close_code::TRY_AGAIN_LATER)
        );
    }

    #[tokio::test]
    async fn drained_bytes_are_given_back() {
        let (tx, mut rx, _) = queue(100, 10);
        for _ in 0..5 {
            assert_eq!(tx.offer(&ByteString::from("12345678")), Offer::Queued);
            assert!(matches!(rx.next().await, Next::Frame(OutFrame::Text(_))));
        }
    }

    #[tokio::test]
    async fn ephemeral_frames_are_dropped_when_half_full() {
        let (tx, _rx, _) = queue(4, 1 << 20);
        let frame = ByteString::from_static("{}");
        assert_eq!(tx.offer_ephemeral(&frame), Offer::Queued);
        assert_eq!(tx.offer_ephemeral(&frame), Offer::Queued);
        assert_eq!(tx.offer_ephemeral(&frame), Offer::Queued);
        assert_eq!(tx.offer_ephemeral(&frame), Offer::Dropped);
        assert!(!tx.is_closed());
    }

    #[tokio::test]
    async fn first_close_wins() {
        let (tx, mut rx, _) = queue(4, 1 << 20);
        assert!(tx.close(CloseFrame::new(close_code::SERVICE_RESTART, "restart")));
        assert!(!tx.close(CloseFrame::new(close_code::NORMAL, "")));
        assert!(matches!(rx.next().await, Next::Close(f) if f.code == close_code::SERVICE_RESTART));
    }
}
