//! How many changes, and how many bytes of them, the hub takes from one device in a while.
//! Each change a record's history holds costs the hub's disk and every device in scope for
//! good: an altered app that pushed records of thousands of one-operation changes each, a
//! kilobyte on the wire, grew the hub's store by 90 MiB in 40 s and slowed every honest sync
//! tenfold; one that pushed a thousand cases of one change each, a note of 32,000 characters
//! in each, sent 24 MB in 44 s, which every phone of the area then downloaded. A device's
//! allowance of each is a bucket, full at an hour's worth, that fills again at that rate: an
//! honest phone's first push of a whole district, or weeks of offline work, is well within
//! it. Pushes past it wait (the records get no answer, as those a request's time did not
//! reach, and the device sends them again later); pulls go on. Kept in the hub process's
//! memory: a restart refills it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Every device's allowance, on one hub process.
#[derive(Default)]
pub struct DeviceAllowances {
    buckets: Mutex<HashMap<(Uuid, Measure), Bucket>>,
    /// When each device was last said, in the log, to have spent an allowance.
    said: Mutex<HashMap<(Uuid, Measure), Instant>>,
}

/// What an allowance counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// A record's changes (each a step of its history, for good).
    Changes,
    /// The bytes of the changes pushed.
    Bytes,
    /// The bytes of attachments uploaded (photos, documents, voice notes).
    AttachmentBytes,
}

struct Bucket {
    left: f64,
    at: Instant,
    /// Requests holding the bucket now (`Reservation`s not dropped).
    holders: u32,
}

impl DeviceAllowances {
    /// Holds for one request what `device` may push now, at `per_hour`: the bucket is left
    /// empty meanwhile, so that a device's requests at once share one allowance (each read it
    /// whole, and took twice as much). Dropped, the reservation gives back what the request
    /// did not use, or owes what it used past it: a record of more changes than were left is
    /// taken whole, and the device pushes again once the bucket has filled back past it (else
    /// a record of thousands of changes went in at every request).
    pub fn reserve(self: &Arc<Self>, device: Uuid, measure: Measure, per_hour: u64) -> Reservation {
        let key = (device, measure);
        let holders = self.holders(key);
        let reserved = self.adjust_at(key, per_hour, Adjust::TakeAll, Instant::now());
        Reservation {
            allowances: self.clone(),
            key,
            per_hour,
            reserved,
            shared: holders > 0,
            used: 0,
        }
    }

    /// Takes everything left, or gives `n` back (negative: owes it); returns what was taken.
    fn adjust_at(&self, key: (Uuid, Measure), per_hour: u64, adjust: Adjust, now: Instant) -> u64 {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = refilled(&mut buckets, key, per_hour, now);
        let taken = match adjust {
            // Whole changes only: the fraction filled since stays in the bucket (taken and
            // not given back, it was lost at each request, and a device syncing often never
            // got another change in).
            Adjust::TakeAll => {
                let left = bucket.left.max(0.0).floor();
                bucket.left -= left;
                bucket.holders += 1;
                left as u64
            }
            Adjust::GiveBack(n) => {
                bucket.left += n;
                bucket.holders = bucket.holders.saturating_sub(1);
                0
            }
        };
        // Devices with a full bucket are forgotten: the map holds those that pushed lately.
        let full = per_hour as f64;
        buckets.retain(|(_, m), b| *m != key.1 || b.left + refill(b, now, per_hour) < full);
        taken
    }
}

impl DeviceAllowances {
    /// How many requests of a device hold its bucket of a measure now.
    fn holders(&self, key: (Uuid, Measure)) -> u32 {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get(&key).map_or(0, |b| b.holders)
    }

    /// Whether the log should say now that `device` spent its allowance of `measure`: once an
    /// hour at most (a device that keeps sending would write it at each request).
    pub fn say_spent(&self, device: Uuid, measure: Measure) -> bool {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        said.retain(|_, at| now.saturating_duration_since(*at) < hour);
        said.insert((device, measure), now).is_none()
    }
}

enum Adjust {
    TakeAll,
    GiveBack(f64),
}

/// What one request may push of its device's changes (`DeviceAllowances::reserve`).
pub struct Reservation {
    allowances: Arc<DeviceAllowances>,
    key: (Uuid, Measure),
    per_hour: u64,
    reserved: u64,
    /// Whether another request of the device held the bucket when this one took it: what it
    /// found left is what that one left, not what the hour left.
    shared: bool,
    /// What the request has taken so far.
    pub used: u64,
}

impl Reservation {
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Whether another request of the device was holding the bucket (`shared`).
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Gives back what the request did not use (or owes what it used past it), and says how
    /// long until the device's bucket holds a minute's worth again: when it is worth the
    /// device's while to push again (an app told nothing synced again at once, and again).
    pub fn release(self) -> Duration {
        let (allowances, key, per_hour) = (self.allowances.clone(), self.key, self.per_hour);
        drop(self);
        allowances.wait_for_a_minute_s_worth(key, per_hour, Instant::now())
    }
}

impl DeviceAllowances {
    fn wait_for_a_minute_s_worth(
        &self,
        key: (Uuid, Measure),
        per_hour: u64,
        now: Instant,
    ) -> Duration {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.get_mut(&key) else {
            return Duration::ZERO; // Full: forgotten.
        };
        let full = per_hour as f64;
        let left = (bucket.left + refill(bucket, now, per_hour)).min(full);
        let wanted = (full / 60.0).max(1.0).min(full);
        match per_hour {
            0 => Duration::MAX,
            _ if left >= wanted => Duration::ZERO,
            _ => Duration::from_secs_f64((wanted - left) * 3600.0 / full),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let back = self.reserved as f64 - self.used as f64;
        self.allowances.adjust_at(
            self.key,
            self.per_hour,
            Adjust::GiveBack(back),
            Instant::now(),
        );
    }
}

fn refill(bucket: &Bucket, now: Instant, per_hour: u64) -> f64 {
    now.saturating_duration_since(bucket.at).as_secs_f64() * per_hour as f64 / 3600.0
}

fn refilled(
    buckets: &mut HashMap<(Uuid, Measure), Bucket>,
    key: (Uuid, Measure),
    per_hour: u64,
    now: Instant,
) -> &mut Bucket {
    let full = per_hour as f64;
    let bucket = buckets.entry(key).or_insert(Bucket {
        left: full,
        at: now,
        holders: 0,
    });
    bucket.left = (bucket.left + refill(bucket, now, per_hour)).min(full);
    bucket.at = bucket.at.max(now);
    bucket
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER_HOUR: u64 = 3_600_000; // 1,000 a second

    fn left(allowances: &DeviceAllowances, device: Uuid, now: Instant) -> u64 {
        let device = (device, Measure::Changes);
        let taken = allowances.adjust_at(device, PER_HOUR, Adjust::TakeAll, now);
        allowances.adjust_at(device, PER_HOUR, Adjust::GiveBack(taken as f64), now);
        taken
    }

    /// A request that finds another of its device holding the bucket knows it: what it
    /// found left is no sign the hour is spent (a weak link's retry of a chunk).
    #[test]
    fn a_reservation_knows_another_request_holds_the_bucket() {
        let allowances = Arc::new(DeviceAllowances::default());
        let device = Uuid::now_v7();
        let first = allowances.reserve(device, Measure::AttachmentBytes, PER_HOUR);
        let second = allowances.reserve(device, Measure::AttachmentBytes, PER_HOUR);
        assert!(!first.shared() && second.shared());
        assert_eq!(second.reserved(), 0);
        drop(second);
        drop(first);
        let alone = allowances.reserve(device, Measure::AttachmentBytes, PER_HOUR);
        assert!(!alone.shared());
        assert_eq!(alone.reserved(), PER_HOUR);
    }

    #[test]
    fn a_device_takes_its_hour_at_once_then_waits_for_the_bucket_to_fill() {
        let allowances = Arc::new(DeviceAllowances::default());
        let (one, other) = (Uuid::now_v7(), Uuid::now_v7());
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(left(&allowances, one, at(0)), PER_HOUR);
        // 100 more than it had: owed, a tenth of a second's worth.
        allowances.adjust_at((one, Measure::Changes), PER_HOUR, Adjust::TakeAll, at(0));
        allowances.adjust_at(
            (one, Measure::Changes),
            PER_HOUR,
            Adjust::GiveBack(-100.0),
            at(0),
        );
        assert_eq!(left(&allowances, one, at(0)), 0);
        assert_eq!(left(&allowances, one, at(50)), 0, "still owed");
        assert!((29..=30).contains(&left(&allowances, one, at(130))));
        assert_eq!(left(&allowances, one, at(10_000_000)), PER_HOUR, "full");
        assert_eq!(
            left(&allowances, other, at(0)),
            PER_HOUR,
            "each device its own"
        );
        // Full again, a device is forgotten.
        assert!(
            !allowances
                .buckets
                .lock()
                .unwrap()
                .contains_key(&(other, Measure::Changes))
        );
    }

    #[test]
    fn a_device_that_asks_often_gets_the_allowance_s_rate_all_the_same() {
        // 60 an hour: one a minute. Asked every 30 s with nothing left, the halves add up.
        let allowances = Arc::new(DeviceAllowances::default());
        let device = Uuid::now_v7();
        let start = Instant::now();
        allowances.adjust_at((device, Measure::Changes), 60, Adjust::TakeAll, start);
        let mut got = 0;
        for half_minute in 1..=20 {
            let now = start + Duration::from_secs(30 * half_minute);
            got += allowances.adjust_at((device, Measure::Changes), 60, Adjust::TakeAll, now);
        }
        assert_eq!(got, 10, "ten minutes, ten changes");
    }

    #[test]
    fn a_device_s_requests_at_once_share_one_allowance_and_give_back_what_they_leave() {
        let allowances = Arc::new(DeviceAllowances::default());
        let device = Uuid::now_v7();
        let mut first = allowances.reserve(device, Measure::Changes, 100);
        let second = allowances.reserve(device, Measure::Changes, 100);
        assert_eq!((first.reserved(), second.reserved()), (100, 0));
        first.used = 40;
        drop(first);
        drop(second);
        // What the first left is there for the next request (and a few a second more).
        let next = allowances.reserve(device, Measure::Changes, 100);
        assert!((60..=61).contains(&next.reserved()), "{}", next.reserved());
    }

    #[test]
    fn a_device_past_its_allowance_is_told_when_a_minute_s_worth_is_back() {
        let allowances = Arc::new(DeviceAllowances::default());
        let device = Uuid::now_v7();
        let start = Instant::now();
        // 3,600 an hour: a minute's worth is 60, one a second. Used whole, and 30 owed.
        allowances.adjust_at((device, Measure::Changes), 3_600, Adjust::TakeAll, start);
        allowances.adjust_at(
            (device, Measure::Changes),
            3_600,
            Adjust::GiveBack(-30.0),
            start,
        );
        let wait = allowances.wait_for_a_minute_s_worth((device, Measure::Changes), 3_600, start);
        assert_eq!(wait.as_secs(), 90, "30 owed, then 60");
        let later = start + Duration::from_secs(60);
        assert_eq!(
            allowances
                .wait_for_a_minute_s_worth((device, Measure::Changes), 3_600, later)
                .as_secs(),
            30
        );
        let then = start + Duration::from_secs(90);
        assert_eq!(
            allowances.wait_for_a_minute_s_worth((device, Measure::Changes), 3_600, then),
            Duration::ZERO
        );
        // A device with its bucket full is told nothing, nor one that still has a minute's worth.
        let other = Uuid::now_v7();
        assert_eq!(
            allowances.wait_for_a_minute_s_worth((other, Measure::Changes), 3_600, start),
            Duration::ZERO
        );
        let mut some = allowances.reserve(other, Measure::Changes, 3_600);
        some.used = 100;
        assert_eq!(some.release(), Duration::ZERO);
        let mut all = allowances.reserve(other, Measure::Changes, 3_600);
        all.used = all.reserved();
        let wait = all.release();
        assert!((59..=60).contains(&wait.as_secs()), "{wait:?}");
    }
}
