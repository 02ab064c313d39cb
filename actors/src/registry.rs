//! The tenant registry: account id → live [`TenantSupervisor`].
//!
//! One registry per process. It starts a supervisor on first use, on one of a few dedicated
//! arbiters (threads) chosen by account id, so tenant work never runs on the HTTP workers. A
//! supervisor that stops idle removes itself; one that died (a panic unwinds its task and drops
//! its mailbox) is noticed on the next use and replaced, and the restart is logged and counted.
//! Every request to a supervisor goes through [`TenantRegistry::send`], which times out, so a
//! caller gets an error rather than a hang.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Arbiter, ArbiterHandle, Handler, MailboxError, Message};
use uuid::Uuid;

use crate::board::BoardStore;
use crate::outbound::CloseFrame;
use crate::stats::RuntimeStats;
use crate::supervisor::{Shutdown, TenantSupervisor};
use crate::usage::UsageSink;

/// Registry settings.
#[derive(Debug, Clone, Copy)]
pub struct RegistryConfig {
    /// A supervisor with no session for this long stops.
    pub idle_timeout: Duration,
    /// Dedicated arbiter threads for tenant actors.
    pub arbiters: usize,
    /// Deadline of every request to a supervisor (operations.md: actor `send` 5 s → 503).
    pub send_timeout: Duration,
    /// How often supervisors flush usage counters (tenancy.md §5: at least every 60 s).
    pub usage_flush_interval: Duration,
    /// How often supervisors sweep their boards for SLA breaches (kanban.md: 60 s).
    pub sla_check_interval: Duration,
    /// How long a user stays online after their last session closes (realtime.md: 10 s).
    pub presence_grace: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            arbiters: 1,
            send_timeout: Duration::from_secs(5),
            usage_flush_interval: Duration::from_secs(60),
            sla_check_interval: Duration::from_secs(60),
            presence_grace: Duration::from_secs(10),
        }
    }
}

/// Why a request to a tenant supervisor failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantSend {
    /// The node is shutting down and starts no tenant.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The supervisor did not answer in time.
    #[error("the tenant supervisor did not answer in time")]
    Timeout,
    /// The supervisor stopped (or died) before answering; the next request restarts it.
    #[error("the tenant supervisor stopped before answering")]
    Stopped,
}

struct Inner {
    tenants: Mutex<HashMap<Uuid, Addr<TenantSupervisor>>>,
    arbiters: Vec<Arbiter>,
    config: RegistryConfig,
    stats: Arc<RuntimeStats>,
    ports: Ports,
    closing: AtomicBool,
}

/// The ports the tenant actors persist through, implemented by the server. A missing port
/// turns its work off (actor unit tests run without them).
#[derive(Clone, Default)]
pub struct Ports {
    /// Where usage counters are flushed.
    pub usage: Option<Arc<dyn UsageSink>>,
    /// Where board writes run.
    pub boards: Option<Arc<dyn BoardStore>>,
}

/// Shared handle to the process's tenant registry.
#[derive(Clone)]
pub struct TenantRegistry {
    inner: Arc<Inner>,
}

impl TenantRegistry {
    /// Creates the registry and its arbiters. Must run inside an actix `System`.
    pub fn new(config: RegistryConfig, stats: Arc<RuntimeStats>) -> Self {
        Self::with_ports(config, stats, Ports::default())
    }

    /// A registry whose actors persist through `ports`.
    pub fn with_ports(config: RegistryConfig, stats: Arc<RuntimeStats>, ports: Ports) -> Self {
        let arbiters = (0..config.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        Self {
            inner: Arc::new(Inner {
                tenants: Mutex::new(HashMap::new()),
                arbiters,
                config,
                stats,
                ports,
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// The runtime counters shared by every actor of this registry.
    pub fn stats(&self) -> Arc<RuntimeStats> {
        self.inner.stats.clone()
    }

    /// The usage port, if any.
    pub(crate) fn usage_sink(&self) -> Option<Arc<dyn UsageSink>> {
        self.inner.ports.usage.clone()
    }

    /// The board store, if any.
    pub(crate) fn board_store(&self) -> Option<Arc<dyn BoardStore>> {
        self.inner.ports.boards.clone()
    }

    /// The registry's settings.
    pub fn config(&self) -> RegistryConfig {
        self.inner.config
    }

    fn tenants(&self) -> MutexGuard<'_, HashMap<Uuid, Addr<TenantSupervisor>>> {
        // A poisoned lock only means another thread panicked while holding it; the map itself
        // is always left consistent (single inserts and removes), so keep using it.
        self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arbiter_for(&self, account_id: Uuid) -> ArbiterHandle {
        let n = self.inner.arbiters.len();
        let index = (account_id.as_u128() % n as u128) as usize;
        self.inner.arbiters[index].handle()
    }

    /// The live supervisor of `account_id`, without starting one.
    pub fn get(&self, account_id: Uuid) -> Option<Addr<TenantSupervisor>> {
        self.tenants()
            .get(&account_id)
            .filter(|a| a.connected())
            .cloned()
    }

    /// The supervisor of `account_id`, started (or restarted after a crash) if needed.
    pub fn get_or_start(&self, account_id: Uuid) -> Result<Addr<TenantSupervisor>, TenantSend> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(TenantSend::ShuttingDown);
        }
        let mut tenants = self.tenants();
        if let Some(addr) = tenants.get(&account_id) {
            if addr.connected() {
                return Ok(addr.clone());
            }
            // Still registered but its mailbox is gone: it died without stopping cleanly.
            tracing::error!(%account_id, "tenant supervisor died; restarting it");
            self.inner
                .stats
                .tenant_restarts
                .fetch_add(1, Ordering::Relaxed);
            self.inner
                .stats
                .tenant_actors_active
                .fetch_sub(1, Ordering::Relaxed);
        }
        let registry = self.clone();
        let addr = TenantSupervisor::start_in_arbiter(&self.arbiter_for(account_id), move |_| {
            TenantSupervisor::new(account_id, registry)
        });
        self.inner
            .stats
            .tenant_actors_active
            .fetch_add(1, Ordering::Relaxed);
        tenants.insert(account_id, addr.clone());
        Ok(addr)
    }

    /// Removes `addr` if it is still the registered supervisor of `account_id` (called by a
    /// supervisor as it stops).
    pub(crate) fn forget(&self, account_id: Uuid, addr: &Addr<TenantSupervisor>) {
        let mut tenants = self.tenants();
        if tenants.get(&account_id) == Some(addr) {
            tenants.remove(&account_id);
            self.inner
                .stats
                .tenant_actors_active
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Live supervisors of this node.
    pub fn live(&self) -> Vec<(Uuid, Addr<TenantSupervisor>)> {
        self.tenants()
            .iter()
            .filter(|(_, a)| a.connected())
            .map(|(id, a)| (*id, a.clone()))
            .collect()
    }

    /// Sends `msg` to the tenant's supervisor (starting it if needed) and waits for the
    /// answer, at most the configured send timeout.
    pub async fn send<M>(&self, account_id: Uuid, msg: M) -> Result<M::Result, TenantSend>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        TenantSupervisor: Handler<M>,
        <TenantSupervisor as Actor>::Context: ToEnvelope<TenantSupervisor, M>,
    {
        let addr = self.get_or_start(account_id)?;
        match addr.send(msg).timeout(self.inner.config.send_timeout).await {
            Ok(result) => Ok(result),
            Err(MailboxError::Timeout) => Err(TenantSend::Timeout),
            Err(MailboxError::Closed) => Err(TenantSend::Stopped),
        }
    }

    /// Stops the tenant's supervisor (its sessions close with `frame`, its timers stop).
    /// Answers whether one was running.
    pub async fn stop(&self, account_id: Uuid, frame: CloseFrame) -> bool {
        match self.get(account_id) {
            Some(addr) => {
                let _ = addr
                    .send(Shutdown { frame })
                    .timeout(self.inner.config.send_timeout)
                    .await;
                self.forget(account_id, &addr);
                true
            }
            None => false,
        }
    }

    /// Stops the tenant's supervisor, closing its sessions with `frame` (they reconnect), and
    /// starts a fresh one. Answers whether one was running.
    pub async fn restart(&self, account_id: Uuid, frame: CloseFrame) -> Result<bool, TenantSend> {
        let was_running = self.stop(account_id, frame).await;
        self.get_or_start(account_id)?;
        Ok(was_running)
    }

    /// Node shutdown: refuses new tenants, closes every session with `frame` and stops every
    /// supervisor, then the arbiters.
    pub async fn shutdown(&self, frame: CloseFrame) {
        self.inner.closing.store(true, Ordering::Release);
        // `Addr::send` enqueues at once, so every supervisor starts closing before we wait
        // for the first answer.
        let pending: Vec<_> = self
            .live()
            .iter()
            .map(|(_, addr)| {
                addr.send(Shutdown { frame })
                    .timeout(self.inner.config.send_timeout)
            })
            .collect();
        for answer in pending {
            if let Err(e) = answer.await {
                tracing::warn!(error = %e, "a tenant supervisor did not stop in time");
            }
        }
    }

    /// Tells every live supervisor that credentials were revoked (their sessions close).
    pub fn broadcast_revoked(&self, ids: std::collections::HashSet<Uuid>) {
        let message = crate::supervisor::Revoked { ids: Arc::new(ids) };
        for (_, addr) in self.live() {
            addr.do_send(message.clone());
        }
    }

    /// Stops the arbiter threads (after [`TenantRegistry::shutdown`]).
    pub fn stop_arbiters(&self) {
        for arbiter in &self.inner.arbiters {
            arbiter.stop();
        }
    }
}
