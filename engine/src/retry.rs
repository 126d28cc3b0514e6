//! Retry policies: exponential backoff with full jitter, bounded attempts.

use rand::Rng;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = never retry).
    pub attempts_max: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub multiplier: f64,
    /// Fraction of the delay that is randomised (0 = none, 1 = full jitter).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 5,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    pub fn never() -> Self {
        RetryPolicy {
            attempts_max: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before attempt `failures + 1`, given `failures` so far (>= 1).
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .multiplier
            .powi(failures.saturating_sub(1).min(30) as i32);
        let base = (self.backoff_initial.as_secs_f64() * exp).min(self.backoff_max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let low = base * (1.0 - jitter);
        let secs = if jitter > 0.0 {
            rng.gen_range(low..=base)
        } else {
            base
        };
        Duration::from_secs_f64(secs)
    }

    /// Whether another attempt is allowed after `failures` failures.
    pub fn allows_retry(&self, failures: u32) -> bool {
        failures < self.attempts_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(p.delay(1, &mut rng), Duration::from_millis(200));
        assert_eq!(p.delay(2, &mut rng), Duration::from_millis(400));
        assert_eq!(p.delay(20, &mut rng), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for f in 1..10 {
            let d = p.delay(f, &mut rng);
            let no_jitter = RetryPolicy {
                jitter: 0.0,
                ..p.clone()
            }
            .delay(f, &mut rng);
            assert!(
                d <= no_jitter && d >= no_jitter / 2,
                "{d:?} vs {no_jitter:?}"
            );
        }
    }
}
