//! The open connections — how many, from which address, which are idle — so that a peer that
//! holds connections without using them cannot starve the others. At the server's cap, or at
//! a peer's, a new connection evicts the connection idle the longest (one waiting for a
//! request's headers: never sent, half sent, or between requests), that peer's own first; a
//! connection with a request in progress, a streamed reply included, is never evicted.

use crate::sync::lock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// The open connections of one server.
#[derive(Debug)]
pub struct Connections {
    max_total: usize,
    max_per_peer: usize,
    open: Mutex<Open>,
}

/// The connections, by id.
#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, Entry>,
}

/// One open connection.
#[derive(Debug)]
struct Entry {
    peer: IpAddr,
    activity: Arc<Activity>,
    evict: Option<oneshot::Sender<()>>,
}

/// Whether a connection has requests in progress, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    in_progress: AtomicUsize,
    idle_since: Mutex<Instant>,
}

/// A connection the server took: dropping it (when the connection ends) frees its place.
#[derive(Debug)]
pub struct Admitted {
    id: u64,
    connections: Arc<Connections>,
    /// Completes when a newer connection evicts this one.
    pub evicted: oneshot::Receiver<()>,
    /// What the connection is doing, for [`Activity::request`].
    pub activity: Arc<Activity>,
}

/// A request in progress on a connection: while it lives (until its reply's body is done),
/// the connection is not idle.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Connections {
    /// At most `max_total` connections, at most `max_per_peer` of them from one address.
    pub fn new(max_total: usize, max_per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_peer: max_per_peer.max(1),
            open: Mutex::default(),
        })
    }

    /// Takes a new connection from `peer`, evicting the connection idle the longest when a cap
    /// is reached; `None` when every connection in the way has a request in progress.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let mut open = lock(&self.open);
        let from_peer = open.by_id.values().filter(|e| e.peer == peer).count();
        if from_peer >= self.max_per_peer {
            open.evict_idlest(Some(peer))?;
        } else if open.by_id.len() >= self.max_total {
            open.evict_idlest(None)?;
        }
        let (evict, evicted) = oneshot::channel();
        let activity = Arc::new(Activity {
            in_progress: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        });
        let id = open.next_id;
        open.next_id += 1;
        open.by_id.insert(
            id,
            Entry {
                peer,
                activity: activity.clone(),
                evict: Some(evict),
            },
        );
        Some(Admitted {
            id,
            connections: self.clone(),
            evicted,
            activity,
        })
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.open).by_id.len()
    }
}

impl Open {
    /// Tells the connection idle the longest (of `peer`, when given) to close, and forgets it;
    /// `None` when none is idle.
    fn evict_idlest(&mut self, peer: Option<IpAddr>) -> Option<()> {
        let (id, _) = self
            .by_id
            .iter()
            .filter(|(_, e)| peer.is_none_or(|p| e.peer == p))
            .filter_map(|(id, e)| e.activity.idle_since().map(|since| (*id, since)))
            .min_by_key(|(_, since)| *since)?;
        let mut entry = self.by_id.remove(&id)?;
        if let Some(evict) = entry.evict.take() {
            let _ = evict.send(());
        }
        tracing::debug!(peer = %entry.peer, "evicted an idle connection to make room");
        Some(())
    }
}

impl Activity {
    /// Marks a request in progress until the returned guard drops.
    pub fn request(self: &Arc<Self>) -> Busy {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Since when the connection has had no request in progress; `None` while it has one.
    fn idle_since(&self) -> Option<Instant> {
        (self.in_progress.load(Ordering::SeqCst) == 0).then(|| *lock(&self.idle_since))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *lock(&self.0.idle_since) = Instant::now();
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.connections.open).by_id.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn at_a_cap_the_connection_idle_the_longest_makes_room() {
        let connections = Connections::new(3, 2);
        let mut first = connections.admit(A).expect("room for the connection");
        let second = connections.admit(A).expect("room for the connection");
        let _busy = second.activity.request();
        // A's third evicts A's idle first, not its busy second.
        let third = connections.admit(A).expect("room for the connection");
        assert!(first.evicted.try_recv().is_ok());
        drop(first);
        assert_eq!(connections.len(), 2);
        // At the server's cap, B evicts the idlest of all: A's third.
        let _b1 = connections.admit(B).expect("room for the connection");
        let mut third = third;
        let _b2 = connections.admit(B).expect("room for the connection");
        assert!(third.evicted.try_recv().is_ok());
    }

    #[test]
    fn busy_connections_are_never_evicted() {
        let connections = Connections::new(1, 1);
        let only = connections.admit(A).expect("room for the connection");
        let busy = only.activity.request();
        assert!(connections.admit(A).is_none());
        drop(busy);
        assert!(connections.admit(A).is_some());
    }
}
