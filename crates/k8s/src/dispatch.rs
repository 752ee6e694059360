//! Which write goes next, for a writer that sends many at once: per object only the newest
//! wanted state (a state superseded while queued is never sent) or every job in order (Events),
//! one job per object in flight, objects served first come, first served.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// Which write goes next: per slot, only the newest state (`replaces`) or every job in order;
/// one job per slot in flight; slots served first come, first served.
#[derive(Debug)]
pub struct Dispatch<S, J> {
    waiting: HashMap<S, VecDeque<J>>,
    queue: VecDeque<S>,
    in_flight: HashSet<S>,
}

impl<S, J> Default for Dispatch<S, J> {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
            queue: VecDeque::new(),
            in_flight: HashSet::new(),
        }
    }
}

impl<S: Clone + Eq + Hash, J> Dispatch<S, J> {
    pub fn push(&mut self, slot: S, job: J, replaces: bool) {
        let jobs = self.waiting.entry(slot.clone()).or_default();
        let was_idle = jobs.is_empty();
        if replaces {
            jobs.clear();
        }
        jobs.push_back(job);
        if was_idle && !self.in_flight.contains(&slot) {
            self.queue.push_back(slot);
        }
    }

    /// The next job to start, marking its slot in flight.
    pub fn start_next(&mut self) -> Option<(S, J)> {
        while let Some(slot) = self.queue.pop_front() {
            if self.in_flight.contains(&slot) {
                continue;
            }
            let Some(jobs) = self.waiting.get_mut(&slot) else {
                continue;
            };
            let Some(job) = jobs.pop_front() else {
                continue;
            };
            if jobs.is_empty() {
                self.waiting.remove(&slot);
            }
            self.in_flight.insert(slot.clone());
            return Some((slot, job));
        }
        None
    }

    pub fn done(&mut self, slot: &S) {
        self.in_flight.remove(slot);
        if self.waiting.contains_key(slot) {
            self.queue.push_back(slot.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> String {
        format!("service/{name}")
    }

    #[test]
    fn a_state_superseded_while_queued_is_never_sent() {
        let mut dispatch: Dispatch<String, _> = Dispatch::default();
        dispatch.push(service("a"), 1, true);
        dispatch.push(service("a"), 2, true);
        assert_eq!(dispatch.start_next(), Some((service("a"), 2)));
        assert_eq!(dispatch.start_next(), None);
    }

    #[test]
    fn one_write_per_object_in_flight_and_the_newest_follows() {
        let mut dispatch: Dispatch<String, _> = Dispatch::default();
        dispatch.push(service("a"), 1, true);
        dispatch.push(service("b"), 10, true);
        assert_eq!(dispatch.start_next(), Some((service("a"), 1)));
        dispatch.push(service("a"), 2, true);
        dispatch.push(service("a"), 3, true);
        // a is in flight: b goes, a waits.
        assert_eq!(dispatch.start_next(), Some((service("b"), 10)));
        assert_eq!(dispatch.start_next(), None);
        dispatch.done(&service("a"));
        assert_eq!(dispatch.start_next(), Some((service("a"), 3)));
        dispatch.done(&service("a"));
        assert_eq!(dispatch.start_next(), None);
    }

    #[test]
    fn events_about_one_object_go_out_in_order_one_at_a_time() {
        let mut dispatch: Dispatch<String, _> = Dispatch::default();
        let events = "events/uid-1".to_string();
        dispatch.push(events.clone(), "ClearAssignment", false);
        dispatch.push(events.clone(), "IPAllocated", false);
        assert_eq!(
            dispatch.start_next(),
            Some((events.clone(), "ClearAssignment"))
        );
        assert_eq!(
            dispatch.start_next(),
            None,
            "the second waits for the first"
        );
        dispatch.done(&events);
        assert_eq!(dispatch.start_next(), Some((events.clone(), "IPAllocated")));
        dispatch.done(&events);
        assert_eq!(dispatch.start_next(), None);
    }
}
