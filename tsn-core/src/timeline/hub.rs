//! [`Hub`]: the in-process [`Timeline`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::id::UserId;
use crate::state::TimelineItem;
use crate::timeline::Timeline;

type Watchers = HashMap<UserId, Vec<(u64, mpsc::Sender<TimelineItem>)>>;

/// Routes timeline posts to watchers through bounded channels.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Mutex<HubInner>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct HubInner {
    watchers: Watchers,
    next_id: u64,
}

/// One watcher's feed; dropping it stops the deliveries.
#[derive(Debug)]
pub struct Subscription {
    /// The posts, in delivery order. Ends (`None`) when the watcher was cut off for
    /// falling behind or when the hub closed it.
    pub items: mpsc::Receiver<TimelineItem>,
    user: UserId,
    id: u64,
    hub: Arc<Mutex<HubInner>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut inner = lock(&self.hub);
        if let Some(list) = inner.watchers.get_mut(&self.user) {
            list.retain(|(id, _)| *id != self.id);
        }
    }
}

fn lock(hub: &Mutex<HubInner>) -> std::sync::MutexGuard<'_, HubInner> {
    hub.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Hub {
    /// A hub whose watchers may fall `capacity` posts behind before they are cut off.
    pub fn new(capacity: usize) -> Self {
        Hub {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// Starts watching `user`'s timeline.
    pub fn subscribe(&self, user: UserId) -> Subscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        inner.watchers.entry(user).or_default().push((id, tx));
        Subscription {
            items: rx,
            user,
            id,
            hub: Arc::clone(&self.inner),
        }
    }

    /// Ends every subscription (their streams end), as a master that steps down does.
    pub fn close_all(&self) {
        lock(&self.inner).watchers.clear();
    }

    /// How many watchers `user` has.
    pub fn watchers(&self, user: UserId) -> usize {
        lock(&self.inner).watchers.get(&user).map_or(0, Vec::len)
    }
}

impl Timeline for Hub {
    fn deliver(&self, user: UserId, item: TimelineItem) {
        let mut inner = lock(&self.inner);
        if let Some(list) = inner.watchers.get_mut(&user) {
            list.retain(|(_, tx)| tx.try_send(item.clone()).is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Time;
    use crate::post::{Post, PostId, PostText};

    fn item(index: u64) -> TimelineItem {
        TimelineItem {
            index,
            post: Post {
                id: PostId {
                    origin: 1,
                    seq: index,
                },
                author: UserId::new(4).unwrap(),
                time: Time(index),
                text: PostText::new("hi").unwrap(),
            },
        }
    }

    #[tokio::test]
    async fn every_watcher_of_the_reader_gets_the_post() {
        let hub = Hub::new(8);
        let reader = UserId::new(1).unwrap();
        let mut a = hub.subscribe(reader);
        let mut b = hub.subscribe(reader);
        let mut other = hub.subscribe(UserId::new(2).unwrap());
        hub.deliver(reader, item(1));
        assert_eq!(a.items.recv().await.unwrap().index, 1);
        assert_eq!(b.items.recv().await.unwrap().index, 1);
        assert!(other.items.try_recv().is_err());
        drop(a);
        assert_eq!(hub.watchers(reader), 1);
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_cut_off() {
        let hub = Hub::new(2);
        let reader = UserId::new(1).unwrap();
        let mut slow = hub.subscribe(reader);
        for index in 1..=3 {
            hub.deliver(reader, item(index));
        }
        assert_eq!(slow.items.recv().await.unwrap().index, 1);
        assert_eq!(slow.items.recv().await.unwrap().index, 2);
        assert!(slow.items.recv().await.is_none(), "the feed ends");
        assert_eq!(hub.watchers(reader), 0);
    }
}
