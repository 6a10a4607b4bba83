//! Counters that survive a configuration update.
//!
//! Envoy 1.40 keeps a dynamic module's counters in the scope of the filter
//! configuration that defined them: when an update (ECDS) replaces the
//! configuration and the old one is destroyed, its counters leave `/stats`,
//! and a later configuration defining the same names starts them from 0.
//! While two configurations defining a name are alive, Envoy shares one
//! counter between them. The wasm filter's counters live on across updates.
//!
//! So the module keeps, per counter name and for the whole process, what
//! the configurations already destroyed counted and how many live
//! configurations define it. A configuration that defines a name no live
//! configuration holds gets a fresh counter from Envoy and raises it at once
//! by what was counted before; one that shares the counter adds nothing.
//! Each configuration tallies its own increments (one relaxed atomic add
//! beside Envoy's increment) and hands them over when it is destroyed. A
//! new configuration also defines the counters of the policies before it
//! ([`others`]), so they stay in `/stats` as the wasm filter's do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Per name: counted by destroyed configurations, live configurations.
static LEDGER: Mutex<Option<HashMap<String, (u64, usize)>>> = Mutex::new(None);

fn with_ledger<T>(f: impl FnOnce(&mut HashMap<String, (u64, usize)>) -> T) -> T {
    let mut g = LEDGER.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Every name defined so far in this process except `own`: a new
/// configuration defines them too, so that a replaced policy's counters
/// stay in `/stats` with their counts, as the wasm filter's do (Envoy shares
/// a counter between the configurations that define its name, and drops it
/// with the last one).
pub fn others(own: &[String]) -> Vec<String> {
    with_ledger(|l| {
        let mut names: Vec<String> = l.keys().filter(|n| !own.contains(n)).cloned().collect();
        names.sort();
        names
    })
}

/// One counter of one configuration.
#[derive(Debug)]
pub struct Counter {
    /// Envoy's id.
    pub id: usize,
    name: String,
    /// What this configuration counted.
    tally: AtomicU64,
}

impl Counter {
    /// Registers a counter Envoy defined as `id`; returns it and how much
    /// to add to Envoy's counter now (what destroyed configurations counted,
    /// when no live configuration shares the counter).
    pub fn define(name: &str, id: usize) -> (Counter, u64) {
        let carry = with_ledger(|l| {
            let e = l.entry(name.to_owned()).or_insert((0, 0));
            e.1 += 1;
            if e.1 == 1 {
                e.0
            } else {
                0
            }
        });
        (
            Counter {
                id,
                name: name.to_owned(),
                tally: AtomicU64::new(0),
            },
            carry,
        )
    }

    /// Notes one increment made on Envoy's counter.
    pub fn add(&self) {
        self.tally.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let n = self.tally.load(Ordering::Relaxed);
        with_ledger(|l| {
            let e = l.entry(core::mem::take(&mut self.name)).or_insert((0, 0));
            e.0 = e.0.saturating_add(n);
            e.1 = e.1.saturating_sub(1);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_counter_carries_what_destroyed_configurations_counted() {
        let name = "portcullis.test-ledger.allowed";
        let (a, carry) = Counter::define(name, 1);
        assert_eq!(carry, 0);
        a.add();
        a.add();
        // A second configuration while the first is alive shares Envoy's counter.
        let (b, carry) = Counter::define(name, 2);
        assert_eq!(carry, 0);
        b.add();
        drop(a);
        drop(b);
        // A fresh one after both are gone: everything counted so far.
        let (c, carry) = Counter::define(name, 3);
        assert_eq!(carry, 3);
        drop(c);
    }
}
