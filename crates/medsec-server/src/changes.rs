//! What the console's live pages follow: a fingerprint of the fleet's changing state (alerts,
//! incidents, campaigns, the device census) read by one task per server, only while someone
//! is watching, and handed to every watcher through a `watch` channel. The fingerprint says
//! only that something changed; a page then asks the API again, as its viewer, for what it
//! shows.

use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use medsec_store::AnyStore;
use medsec_store::prelude::*;
use tokio::sync::watch;

/// The server's change feed and its count of open streams.
#[derive(Default)]
pub struct Changes {
    feed: OnceLock<watch::Receiver<u64>>,
    streams: Arc<AtomicUsize>,
}

/// A place among the open streams, given back when dropped.
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Changes {
    /// A place for one more stream, unless `max` are open.
    pub fn slot(&self, max: usize) -> Option<StreamSlot> {
        let taken = self
            .streams
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            });
        taken.ok().map(|_| StreamSlot(self.streams.clone()))
    }

    /// The feed, started on first use: a new value whenever the fingerprint changes.
    pub fn subscribe(&self, store: &AnyStore, every: Duration) -> watch::Receiver<u64> {
        self.feed
            .get_or_init(|| {
                let (tx, rx) = watch::channel(0);
                let store = store.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        // Only the feed's own receiver is left: nobody is watching.
                        if tx.receiver_count() <= 1 {
                            continue;
                        }
                        match fingerprint(&store).await {
                            Ok(f) => {
                                tx.send_if_modified(|old| {
                                    let changed = *old != f;
                                    *old = f;
                                    changed
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "the console's change feed could not read the store"),
                        }
                    }
                });
                rx
            })
            .clone()
    }
}

/// A hash of what live pages show: the newest alert, each recent incident's and each
/// campaign's version, and the device census.
async fn fingerprint(store: &AnyStore) -> Result<u64, medsec_store::Error> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    store.max_alert_id().await?.hash(&mut h);
    for i in store.incidents(false, 100).await? {
        (i.id, i.version).hash(&mut h);
    }
    for c in store.campaigns().await? {
        (c.id, c.version).hash(&mut h);
    }
    for c in store.device_census().await? {
        (
            c.state,
            c.quarantined,
            c.model,
            c.installed_version,
            c.count,
        )
            .hash(&mut h);
    }
    Ok(h.finish())
}
