//! Seeds: one per test, printed so that a failure can be replayed.

use super::*;

/// The seed of a test: `VIGIE_TEST_SEED` if set, else a fresh one. Printed, so that a failure
/// can be replayed (the harness shows a failing test's output).
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("VIGIE_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("VIGIE_TEST_SEED is a decimal u64"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64;
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    };
    println!("{test}: seed {seed} (replay with VIGIE_TEST_SEED={seed})");
    seed
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A random (v4) id drawn from the test's generator, so that runs with one seed match.
pub fn uuid(rng: &mut impl RngCore) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
