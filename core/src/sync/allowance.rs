//! How many changes the hub takes from one device in a while. Each change a record's history
//! holds costs the hub's disk and every device in scope for good: an altered app that pushed
//! records of thousands of one-operation changes each, a kilobyte on the wire, grew the hub's
//! store by 90 MiB in 40 s and slowed every honest sync tenfold. A device's allowance is a
//! bucket, full at an hour's worth, that fills again at that rate: an honest phone's first
//! push of a whole district, or weeks of offline work, is well within it. Pushes past it wait
//! (the records get no answer, as those a request's time did not reach, and the device sends
//! them again later); pulls go on. Kept in the hub process's memory: a restart refills it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use uuid::Uuid;

/// Every device's allowance, on one hub process.
#[derive(Default)]
pub struct DeviceAllowances {
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

struct Bucket {
    left: f64,
    at: Instant,
}

impl DeviceAllowances {
    /// The changes `device` may have taken from it now, at `per_hour`.
    pub fn left(&self, device: Uuid, per_hour: u64) -> u64 {
        self.left_at(device, per_hour, Instant::now())
    }

    /// Takes `changes` from `device`'s allowance. A record of more changes than it had left
    /// is taken whole, and owed: the device pushes again once the bucket has filled back past
    /// it (else a record of thousands of changes went in at every request).
    pub fn take(&self, device: Uuid, changes: u64, per_hour: u64) {
        self.take_at(device, changes, per_hour, Instant::now())
    }

    fn left_at(&self, device: Uuid, per_hour: u64, now: Instant) -> u64 {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        refilled(&mut buckets, device, per_hour, now).left.max(0.0) as u64
    }

    fn take_at(&self, device: Uuid, changes: u64, per_hour: u64, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = refilled(&mut buckets, device, per_hour, now);
        bucket.left -= changes as f64;
        // Devices with a full bucket are forgotten: the map holds those that pushed lately.
        let full = per_hour as f64;
        buckets.retain(|_, b| b.left + refill(b, now, per_hour) < full);
    }
}

fn refill(bucket: &Bucket, now: Instant, per_hour: u64) -> f64 {
    now.saturating_duration_since(bucket.at).as_secs_f64() * per_hour as f64 / 3600.0
}

fn refilled(
    buckets: &mut HashMap<Uuid, Bucket>,
    device: Uuid,
    per_hour: u64,
    now: Instant,
) -> &mut Bucket {
    let full = per_hour as f64;
    let bucket = buckets.entry(device).or_insert(Bucket {
        left: full,
        at: now,
    });
    bucket.left = (bucket.left + refill(bucket, now, per_hour)).min(full);
    bucket.at = bucket.at.max(now);
    bucket
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_device_takes_its_hour_at_once_then_waits_for_the_bucket_to_fill() {
        const PER_HOUR: u64 = 3_600_000; // 1,000 a second
        let allowances = DeviceAllowances::default();
        let (one, other) = (Uuid::now_v7(), Uuid::now_v7());
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(allowances.left_at(one, PER_HOUR, at(0)), PER_HOUR);
        // 100 more than it had: owed, a tenth of a second's worth.
        allowances.take_at(one, PER_HOUR + 100, PER_HOUR, at(0));
        assert_eq!(allowances.left_at(one, PER_HOUR, at(0)), 0);
        assert_eq!(allowances.left_at(one, PER_HOUR, at(50)), 0, "still owed");
        assert!((29..=30).contains(&allowances.left_at(one, PER_HOUR, at(130))));
        assert_eq!(
            allowances.left_at(one, PER_HOUR, at(10_000_000)),
            PER_HOUR,
            "full"
        );
        assert_eq!(
            allowances.left_at(other, PER_HOUR, at(0)),
            PER_HOUR,
            "each device its own"
        );
        // Full again, a device is forgotten.
        allowances.take_at(other, 0, PER_HOUR, at(0));
        assert!(!allowances.buckets.lock().unwrap().contains_key(&other));
    }
}
