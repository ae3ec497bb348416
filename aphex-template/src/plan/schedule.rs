//! The deploy schedule of one environment: the one place that decides which
//! stack may start when. `aphex plan`'s order and waves are this schedule
//! played with every stack succeeding; the deploy stage plays it with the
//! deployer's real outcomes.
//!
//! Pure: it does no IO and keeps no clock. Its caller starts what
//! [`Schedule::start_next`] hands out and reports back with
//! [`Schedule::finished`] and [`Schedule::failed`].

use std::collections::BTreeSet;

use aphex_config::{GraphError, StackGraph};

/// Where one stack is in its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackState {
    /// Not started: a dependency has not succeeded yet, the schedule is
    /// stopped, or all slots are taken.
    Waiting,
    /// Handed out by [`Schedule::start_next`], not reported back yet.
    Running,
    /// Reported with [`Schedule::finished`].
    Succeeded,
    /// Reported with [`Schedule::failed`].
    Failed,
    /// Never to start: a stack it depends on (directly or not) failed.
    Skipped,
}

/// Which stacks of one environment may start, given what has finished.
///
/// A stack starts only after every stack it depends on succeeded, at most
/// `concurrency` run at once, and among the stacks ready to start the one
/// listed first goes first (so with no dependencies and a concurrency of 1
/// stacks start exactly in list order).
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Stack names in list order; a stack is its index here.
    names: Vec<String>,
    /// Per stack, the stacks that depend on it directly.
    dependents: Vec<Vec<usize>>,
    /// Per stack, how many of its dependencies have not succeeded yet.
    unmet: Vec<usize>,
    state: Vec<StackState>,
    /// Waiting stacks whose dependencies all succeeded; list order first.
    ready: BTreeSet<usize>,
    running: usize,
    concurrency: usize,
    stopped: bool,
}

impl Schedule {
    /// The schedule of `graph`'s stacks, `concurrency` at a time (0 counts
    /// as 1). A dependency cycle is an error naming the cycle: such stacks
    /// could never start.
    pub fn new(graph: &StackGraph, concurrency: u32) -> Result<Self, GraphError> {
        if let Some(cycle) = graph.find_cycle() {
            return Err(GraphError::Cycle { cycle });
        }
        let names: Vec<String> = graph.names().map(str::to_owned).collect();
        let mut dependents = vec![Vec::new(); names.len()];
        let mut unmet = vec![0; names.len()];
        for (before, after) in graph.edges() {
            dependents[before].push(after);
            unmet[after] += 1;
        }
        let ready = (0..names.len()).filter(|&i| unmet[i] == 0).collect();
        Ok(Schedule {
            state: vec![StackState::Waiting; names.len()],
            names,
            dependents,
            unmet,
            ready,
            running: 0,
            concurrency: concurrency.max(1) as usize,
            stopped: false,
        })
    }

    /// The stacks that start now, in list order, each marked running: as
    /// many ready stacks as there are free slots, none once stopped.
    pub fn start_next(&mut self) -> Vec<String> {
        let mut started = Vec::new();
        while !self.stopped && self.running < self.concurrency {
            let Some(i) = self.ready.pop_first() else { break };
            self.state[i] = StackState::Running;
            self.running += 1;
            started.push(self.names[i].clone());
        }
        started
    }

    /// `stack` succeeded: its slot frees up and the stacks waiting only for
    /// it become ready. A stack that is not running is ignored.
    pub fn finished(&mut self, stack: &str) {
        let Some(i) = self.running_index(stack) else {
            return;
        };
        self.state[i] = StackState::Succeeded;
        self.running -= 1;
        for &d in &self.dependents[i] {
            self.unmet[d] -= 1;
            if self.unmet[d] == 0 && self.state[d] == StackState::Waiting {
                self.ready.insert(d);
            }
        }
    }

    /// `stack` failed: its slot frees up and every stack that depends on it,
    /// directly or not, is skipped. Independent stacks go on; call
    /// [`Schedule::stop`] as well to start nothing more. A stack that is not
    /// running is ignored.
    pub fn failed(&mut self, stack: &str) {
        let Some(i) = self.running_index(stack) else {
            return;
        };
        self.state[i] = StackState::Failed;
        self.running -= 1;
        let mut queue = self.dependents[i].clone();
        while let Some(d) = queue.pop() {
            // Only a waiting stack can depend on a failed one: the others
            // needed it to succeed before they started.
            if self.state[d] == StackState::Waiting {
                self.state[d] = StackState::Skipped;
                self.ready.remove(&d);
                queue.extend_from_slice(&self.dependents[d]);
            }
        }
    }

    /// Starts nothing more; running stacks may still be reported.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether nothing runs and nothing more will start.
    pub fn is_done(&self) -> bool {
        self.running == 0 && (self.stopped || self.ready.is_empty())
    }

    /// How many stacks are running.
    pub fn running(&self) -> usize {
        self.running
    }

    /// The state of `stack`, if it is one of the schedule's.
    pub fn state(&self, stack: &str) -> Option<StackState> {
        self.names.iter().position(|n| n == stack).map(|i| self.state[i])
    }

    /// Every stack with its state, in list order.
    pub fn states(&self) -> impl Iterator<Item = (&str, StackState)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.state.iter().copied())
    }

    /// The stacks in the order they start when each succeeds before the
    /// next starts and all succeed: dependencies first, list order breaking
    /// ties (exactly the list with no dependencies).
    pub fn order(&self) -> Vec<String> {
        let mut one_at_a_time = self.clone();
        one_at_a_time.concurrency = 1;
        one_at_a_time.waves().into_iter().flatten().collect()
    }

    /// The stacks in waves when every stack of a wave starts together and
    /// all succeed before the next wave: at most `concurrency` per wave,
    /// each stack in a later wave than its dependencies.
    pub fn waves(&self) -> Vec<Vec<String>> {
        let mut schedule = self.clone();
        let mut waves = Vec::new();
        loop {
            let wave = schedule.start_next();
            if wave.is_empty() {
                return waves;
            }
            for stack in &wave {
                schedule.finished(stack);
            }
            waves.push(wave);
        }
    }

    fn running_index(&self, stack: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n == stack)
            .filter(|&i| self.state[i] == StackState::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn graph(names: &[&str], deps: &[(&str, &str)]) -> StackGraph {
        let mut g = StackGraph::new(names.iter().copied());
        for (stack, dep) in deps {
            g.add_dependency(stack, dep).unwrap();
        }
        g
    }

    #[test]
    fn order_and_waves_keep_list_order_among_ready_stacks() {
        let s = Schedule::new(&graph(&["C", "B", "A"], &[("C", "A")]), 2).unwrap();
        assert_eq!(s.order(), ["B", "A", "C"]);
        assert_eq!(s.waves(), [vec!["B", "A"], vec!["C"]]);
        let s = Schedule::new(&graph(&["A", "B"], &[]), 1).unwrap();
        assert_eq!(s.order(), ["A", "B"]);
        assert_eq!(s.waves(), [vec!["A"], vec!["B"]]);
    }

    #[test]
    fn a_cycle_is_refused_naming_it() {
        let err = Schedule::new(&graph(&["A", "B"], &[("A", "B"), ("B", "A")]), 1).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: A -> B -> A");
    }

    #[test]
    fn a_failure_skips_its_dependents_and_stop_starts_nothing_more() {
        // B needs A; C is independent; D needs B.
        let g = graph(&["A", "B", "C", "D"], &[("B", "A"), ("D", "B")]);
        let mut s = Schedule::new(&g, 2).unwrap();
        assert_eq!(s.start_next(), ["A", "C"]);
        s.failed("A");
        assert_eq!(s.state("B"), Some(StackState::Skipped));
        assert_eq!(s.state("D"), Some(StackState::Skipped));
        assert!(s.start_next().is_empty());
        assert!(!s.is_done(), "C still runs");
        s.finished("C");
        assert!(s.is_done());

        let mut s = Schedule::new(&g, 1).unwrap();
        assert_eq!(s.start_next(), ["A"]);
        s.stop();
        s.finished("A");
        assert!(s.start_next().is_empty());
        assert!(s.is_done());
        assert_eq!(s.state("B"), Some(StackState::Waiting));
    }

    #[test]
    fn reports_for_stacks_not_running_are_ignored() {
        let mut s = Schedule::new(&graph(&["A", "B"], &[("B", "A")]), 1).unwrap();
        s.finished("A");
        s.failed("B");
        s.finished("Nope");
        assert_eq!(s.start_next(), ["A"]);
        assert_eq!(s.running(), 1);
    }

    /// A random environment: `n` stacks, each depending on some earlier
    /// ones (so acyclic), listed in a shuffled order, so that list order
    /// and dependency order disagree.
    fn arb_graph() -> impl Strategy<Value = (StackGraph, Vec<Vec<String>>)> {
        (1usize..9)
            .prop_flat_map(|n| {
                let deps = (0..n)
                    .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i))
                    .collect::<Vec<_>>();
                (deps, Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
            .prop_map(|(deps, listed)| {
                let name = |i: usize| format!("S{i}");
                let mut g = StackGraph::new(listed.iter().map(|&i| name(i)));
                for (i, d) in deps.iter().enumerate() {
                    for &j in d {
                        g.add_dependency(&name(i), &name(j)).unwrap();
                    }
                }
                let deps = deps
                    .into_iter()
                    .map(|d| d.into_iter().map(name).collect())
                    .collect();
                (g, deps)
            })
    }

    /// What happened when a schedule was played to the end.
    struct Played {
        /// Stacks in the order they started.
        started: Vec<String>,
        /// Whether a stack started before one of its dependencies succeeded.
        early: Option<String>,
        /// The most stacks running at once.
        most_running: usize,
        /// A stack left waiting, ready, while a slot was free.
        idle_slot: Option<String>,
        schedule: Schedule,
    }

    /// Plays `schedule`: each step reports one running stack (picked by
    /// `picks`) as finished, or failed when it is in `failing`.
    fn play(
        mut schedule: Schedule,
        deps: &[Vec<String>],
        failing: &BTreeSet<String>,
        picks: &[prop::sample::Index],
    ) -> Played {
        let mut succeeded: BTreeSet<String> = BTreeSet::new();
        let mut running: Vec<String> = Vec::new();
        let mut played = Played {
            started: Vec::new(),
            early: None,
            most_running: 0,
            idle_slot: None,
            schedule: schedule.clone(),
        };
        let mut picks = picks.iter().cycle();
        loop {
            for stack in schedule.start_next() {
                let i: usize = stack[1..].parse().unwrap();
                if !deps[i].iter().all(|d| succeeded.contains(d)) {
                    played.early.get_or_insert(stack.clone());
                }
                played.started.push(stack.clone());
                running.push(stack);
            }
            played.most_running = played.most_running.max(schedule.running());
            if schedule.running() < schedule.concurrency {
                let ready = schedule.states().find(|(stack, state)| {
                    let i: usize = stack[1..].parse().unwrap();
                    *state == StackState::Waiting && deps[i].iter().all(|d| succeeded.contains(d))
                });
                if let Some((stack, _)) = ready {
                    played.idle_slot.get_or_insert(stack.to_owned());
                }
            }
            if running.is_empty() {
                break;
            }
            let pick = picks.next().map_or(0, |p| p.index(running.len()));
            let stack = running.swap_remove(pick);
            if failing.contains(&stack) {
                schedule.failed(&stack);
            } else {
                schedule.finished(&stack);
                succeeded.insert(stack);
            }
        }
        played.schedule = schedule;
        played
    }

    /// Every stack that depends on `stack`, directly or not.
    fn dependents_of(deps: &[Vec<String>], stack: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::from([stack.to_owned()]);
        // Dependencies point to lower numbers, so one pass in number order
        // sees every chain.
        for (i, d) in deps.iter().enumerate() {
            if d.iter().any(|d| out.contains(d)) {
                out.insert(format!("S{i}"));
            }
        }
        out.remove(stack);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // Property: never before a dependency. Whatever order running
        // stacks finish or fail in, a stack starts only after every stack
        // it depends on succeeded.
        #[test]
        fn never_starts_a_stack_before_its_dependencies(
            (g, deps) in arb_graph(),
            concurrency in 1u32..4,
            failing in proptest::collection::btree_set((0usize..9).prop_map(|i| format!("S{i}")), 0..3),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        ) {
            let played = play(Schedule::new(&g, concurrency).unwrap(), &deps, &failing, &picks);
            prop_assert_eq!(played.early, None);
        }

        // Property: never more than `concurrency` at once, and no slot is
        // left idle while a stack is ready to start.
        #[test]
        fn never_runs_more_than_concurrency_at_once(
            (g, deps) in arb_graph(),
            concurrency in 1u32..4,
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        ) {
            let played = play(Schedule::new(&g, concurrency).unwrap(), &deps, &BTreeSet::new(), &picks);
            prop_assert!(played.most_running <= concurrency as usize);
            prop_assert_eq!(played.idle_slot, None);
        }

        // Property: a failure stops everything that depends on it. No stack
        // depending (directly or not) on a failed one ever starts, each is
        // recorded as skipped, and stacks independent of every failure
        // still all succeed.
        #[test]
        fn a_failure_stops_everything_that_depends_on_it(
            (g, deps) in arb_graph(),
            concurrency in 1u32..4,
            failing in proptest::collection::btree_set((0usize..9).prop_map(|i| format!("S{i}")), 1..3),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        ) {
            let played = play(Schedule::new(&g, concurrency).unwrap(), &deps, &failing, &picks);
            let mut downstream = BTreeSet::new();
            for f in failing.iter().filter(|f| played.started.contains(f)) {
                downstream.extend(dependents_of(&deps, f));
            }
            for (stack, state) in played.schedule.states() {
                if downstream.contains(stack) {
                    prop_assert!(!played.started.iter().any(|s| s == stack), "{} started after a failure upstream", stack);
                    prop_assert_eq!(state, StackState::Skipped, "{}", stack);
                } else if failing.contains(stack) {
                    prop_assert_eq!(state, StackState::Failed, "{}", stack);
                } else {
                    prop_assert_eq!(state, StackState::Succeeded, "{}", stack);
                }
            }
            prop_assert!(played.schedule.is_done());
        }

        // Property: when nothing fails, every stack is eventually started,
        // exactly once, and succeeds; played one at a time, the starts are
        // the schedule's order.
        #[test]
        fn every_stack_starts_once_when_nothing_fails(
            (g, deps) in arb_graph(),
            concurrency in 1u32..4,
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        ) {
            let schedule = Schedule::new(&g, concurrency).unwrap();
            let played = play(schedule.clone(), &deps, &BTreeSet::new(), &picks);
            let mut started = played.started.clone();
            started.sort();
            let mut all: Vec<String> = g.names().map(str::to_owned).collect();
            all.sort();
            prop_assert_eq!(started, all);
            prop_assert!(played.schedule.states().all(|(_, s)| s == StackState::Succeeded));
            let one = play(Schedule::new(&g, 1).unwrap(), &deps, &BTreeSet::new(), &picks);
            prop_assert_eq!(one.started, schedule.order());
        }

        // Property: once stopped, nothing more starts, whatever is reported.
        #[test]
        fn nothing_starts_after_stop(
            (g, _deps) in arb_graph(),
            concurrency in 1u32..4,
        ) {
            let mut s = Schedule::new(&g, concurrency).unwrap();
            let first = s.start_next();
            s.stop();
            for stack in &first {
                s.finished(stack);
            }
            prop_assert!(s.start_next().is_empty());
            prop_assert!(s.is_done());
        }
    }
}
