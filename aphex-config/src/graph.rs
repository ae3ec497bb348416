//! The stack dependency graph of one environment (petgraph). Used here to
//! reject cycles and unknown `dependsOn` names, and by `aphex-template`'s
//! schedule, the one place that turns it into a deploy order; the deploy
//! stage merges the CDK app's own dependencies with
//! [`StackGraph::add_dependency`] and re-checks.

use std::collections::{HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::Environment;

/// Stacks as nodes (in list order) and "must deploy before" edges.
#[derive(Debug, Clone)]
pub struct StackGraph {
    graph: DiGraph<String, ()>,
    /// Name to node index (the first stack of that name), so lookups stay
    /// O(1) on hostile inputs with many stacks.
    index: HashMap<String, usize>,
}

/// A graph problem, named in terms of stack names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A dependency names a stack that is not in the graph.
    #[error("stack `{stack}` depends on `{missing}`, which is not a stack of this environment")]
    UnknownStack {
        /// The stack declaring the dependency.
        stack: String,
        /// The name that does not exist.
        missing: String,
    },
    /// The dependencies form a cycle; `cycle` starts and ends with the same stack.
    #[error("dependency cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The stacks on the cycle, first repeated at the end (`A -> B -> A`).
        cycle: Vec<String>,
    },
}

/// Whether the "before -> after" `edges` over nodes `0..n` have no cycle.
/// Kahn's algorithm on plain indices: configuration checks run it for every
/// environment, so it must not allocate per node; [`StackGraph::find_cycle`]
/// names the cycle when there is one.
pub(crate) fn is_acyclic(n: usize, mut edges: Vec<(usize, usize)>) -> bool {
    edges.sort_unstable();
    edges.dedup();
    let mut indegree = vec![0usize; n];
    // Edges are sorted by source: `out[v]..out[v + 1]` are v's.
    let mut out = vec![0usize; n + 1];
    for &(from, to) in &edges {
        indegree[to] += 1;
        out[from + 1] += 1;
    }
    for v in 0..n {
        out[v + 1] += out[v];
    }
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut done = 0;
    while let Some(v) = ready.pop() {
        done += 1;
        for &(_, to) in &edges[out[v]..out[v + 1]] {
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push(to);
            }
        }
    }
    done == n
}

impl StackGraph {
    /// A graph of `names` (in list order) with no edges.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for n in names {
            let n: String = n.into();
            let i = graph.add_node(n.clone()).index();
            index.entry(n).or_insert(i);
        }
        StackGraph { graph, index }
    }

    /// The graph of an environment's stacks and their `dependsOn` edges.
    /// Unknown names are errors; cycles are reported by [`StackGraph::find_cycle`].
    pub fn from_environment(env: &Environment) -> Result<Self, GraphError> {
        let mut g = StackGraph::new(env.stacks.iter().map(|s| s.name.clone()));
        for s in &env.stacks {
            for d in &s.depends_on {
                g.add_dependency(&s.name, d)?;
            }
        }
        Ok(g)
    }

    /// Number of stacks.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no stacks.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Stack names in list order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graph.node_weights().map(String::as_str)
    }

    /// Index of `name` in list order.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Records that `stack` must deploy after `depends_on`. Idempotent.
    pub fn add_dependency(&mut self, stack: &str, depends_on: &str) -> Result<(), GraphError> {
        let unknown = |missing: &str| GraphError::UnknownStack {
            stack: stack.to_owned(),
            missing: missing.to_owned(),
        };
        let to = self.index_of(stack).ok_or_else(|| unknown(stack))?;
        let from = self.index_of(depends_on).ok_or_else(|| unknown(depends_on))?;
        let (from, to) = (NodeIndex::new(from), NodeIndex::new(to));
        if self.graph.find_edge(from, to).is_none() {
            self.graph.add_edge(from, to, ());
        }
        Ok(())
    }

    /// Names of the stacks `name` depends on directly, in list order.
    pub fn dependencies_of(&self, name: &str) -> Vec<&str> {
        let Some(i) = self.index_of(name) else {
            return Vec::new();
        };
        let mut deps: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .collect();
        deps.sort();
        deps.into_iter().map(|d| self.graph[d].as_str()).collect()
    }

    /// Every "`before` must deploy before `after`" edge as list indices
    /// `(before, after)`, in the order they were added.
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.graph
            .raw_edges()
            .iter()
            .map(|e| (e.source().index(), e.target().index()))
    }

    /// One dependency cycle, if any, as `[A, B, A]` (A deploys after B, which
    /// deploys after A), starting from the earliest stack in list order.
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        let mut sccs: Vec<Vec<NodeIndex>> = petgraph::algo::kosaraju_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.find_edge(scc[0], scc[0]).is_some())
            .collect();
        // Kosaraju, not Tarjan: petgraph's Tarjan recurses per node and
        // overflows the stack on a long chain; Kosaraju's DFS is iterative.
        // Component order depends on the graph's shape; list order is what users see.
        sccs.sort_by_key(|scc| scc.iter().min().copied());
        if let Some(scc) = sccs.into_iter().next() {
            let start = *scc.iter().min()?;
            let members: HashSet<NodeIndex> = scc.iter().copied().collect();
            // Breadth-first over "depends on" edges inside the component: the
            // shortest way back to `start` is the cycle we show.
            let mut parent: HashMap<NodeIndex, NodeIndex> = Default::default();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut last = None;
            'search: while let Some(cur) = queue.pop_front() {
                let mut next: Vec<NodeIndex> = self
                    .graph
                    .neighbors_directed(cur, petgraph::Direction::Incoming)
                    .filter(|n| members.contains(n))
                    .collect();
                next.sort();
                for n in next {
                    if n == start {
                        last = Some(cur);
                        break 'search;
                    }
                    if n != start && !parent.contains_key(&n) {
                        parent.insert(n, cur);
                        queue.push_back(n);
                    }
                }
            }
            let mut path = vec![start];
            let mut cur = last?;
            let mut back = vec![cur];
            while cur != start {
                cur = parent[&cur];
                back.push(cur);
            }
            back.pop();
            back.reverse();
            path.extend(back);
            path.push(start);
            return Some(path.into_iter().map(|i| self.graph[i].clone()).collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(names: &[&str], deps: &[(&str, &str)]) -> StackGraph {
        let mut g = StackGraph::new(names.iter().copied());
        for (stack, dep) in deps {
            g.add_dependency(stack, dep).unwrap();
        }
        g
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        // Property: the allocation-light check the rules run per environment
        // agrees with the cycle search on every graph (self-loops, repeated
        // edges and disconnected parts included).
        #[test]
        fn is_acyclic_agrees_with_find_cycle(
            n in 1usize..12,
            raw in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
        ) {
            let edges: Vec<(usize, usize)> = raw.into_iter().map(|(a, b)| (a % n, b % n)).collect();
            let names: Vec<String> = (0..n).map(|i| format!("S{i}")).collect();
            let mut g = StackGraph::new(names.iter().cloned());
            for &(before, after) in &edges {
                g.add_dependency(&names[after], &names[before]).unwrap();
            }
            proptest::prop_assert_eq!(is_acyclic(n, edges), g.find_cycle().is_none());
        }
    }

    #[test]
    fn cycles_read_as_depends_on_chains() {
        let g = graph(&["A", "B"], &[("A", "B"), ("B", "A")]);
        assert_eq!(g.find_cycle().unwrap().join(" -> "), "A -> B -> A");
        let g = graph(&["X", "A", "B", "C"], &[("A", "B"), ("B", "C"), ("C", "A")]);
        assert_eq!(g.find_cycle().unwrap().join(" -> "), "A -> B -> C -> A");
        let g = graph(&["A"], &[("A", "A")]);
        assert_eq!(g.find_cycle().unwrap().join(" -> "), "A -> A");
    }

    #[test]
    fn the_cycle_shown_starts_at_the_earliest_stack() {
        let g = graph(
            &["P", "Q", "A", "B"],
            &[("A", "B"), ("B", "A"), ("Q", "P"), ("P", "Q")],
        );
        assert_eq!(g.find_cycle().unwrap().join(" -> "), "P -> Q -> P");
    }

    #[test]
    fn acyclic_graphs_have_no_cycle_and_list_indexed_edges() {
        let g = graph(&["C", "B", "A"], &[("C", "A"), ("C", "A")]);
        assert_eq!(g.find_cycle(), None);
        assert_eq!(g.edges().collect::<Vec<_>>(), [(2, 0)]);
        assert_eq!(g.dependencies_of("C"), ["A"]);
    }

    #[test]
    fn unknown_names_are_errors() {
        let mut g = graph(&["A"], &[]);
        assert_eq!(
            g.add_dependency("A", "Z").unwrap_err().to_string(),
            "stack `A` depends on `Z`, which is not a stack of this environment"
        );
    }
}
