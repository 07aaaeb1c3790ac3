//! The service dependency graph (compose-go's `graph` package), on petgraph.
//!
//! An edge goes from a service to each service it `depends_on`. The graph
//! refuses cycles with compose-go's message (`dependency cycle detected: a ->
//! b -> a`, searched in name order so the same file always names the same
//! cycle) and gives the start order (dependencies first) and the stop order
//! (dependents first). Ties are broken by name, so orders are reproducible.
//! It holds names only; the engine looks the services up in the `Project`.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use super::project::{Project, ServiceDependency};

/// A dependency graph that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("dependency cycle detected: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("service {dependency:?} is required by {service:?} but is disabled. Can be enabled by profiles [{}]", profiles.join(" "))]
    DisabledDependency {
        service: String,
        dependency: String,
        profiles: Vec<String>,
    },
    #[error("service {service:?} depends on unknown service {dependency:?}")]
    UnknownDependency { service: String, dependency: String },
}

/// The enabled services and their `depends_on` edges.
#[derive(Clone, Debug)]
pub struct ServiceGraph {
    graph: DiGraph<String, ServiceDependency>,
    index: BTreeMap<String, NodeIndex>,
}

impl ServiceGraph {
    /// Builds the graph of `project`'s enabled services. Optional dependencies
    /// on services that are not enabled are left out.
    pub fn new(project: &Project) -> Result<ServiceGraph, GraphError> {
        let mut graph = DiGraph::with_capacity(project.services.len(), project.services.len());
        let mut index = BTreeMap::new();
        for name in project.services.keys() {
            index.insert(name.clone(), graph.add_node(name.clone()));
        }
        for (name, s) in &project.services {
            for (dep, cfg) in &s.depends_on {
                match index.get(dep) {
                    Some(&to) => {
                        graph.add_edge(index[name], to, cfg.clone());
                    }
                    None if !cfg.required => {}
                    None => {
                        return Err(match project.disabled_services.get(dep) {
                            Some(ds) => GraphError::DisabledDependency {
                                service: name.clone(),
                                dependency: dep.clone(),
                                profiles: ds.profiles.clone(),
                            },
                            None => GraphError::UnknownDependency {
                                service: name.clone(),
                                dependency: dep.clone(),
                            },
                        })
                    }
                }
            }
        }
        let g = ServiceGraph { graph, index };
        g.check_cycle()?;
        Ok(g)
    }

    fn children(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut c: Vec<NodeIndex> = self.graph.neighbors(n).collect();
        c.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
        c.dedup();
        c
    }

    /// Depth-first search from each service in name order, children in name
    /// order: the first back edge found names the cycle.
    fn check_cycle(&self) -> Result<(), GraphError> {
        // A service fully explored without a cycle cannot lead into one.
        let mut clean = vec![false; self.graph.node_count()];
        let mut path = Vec::new();
        for &start in self.index.values() {
            path.push(start);
            self.search(&mut path, &mut clean)?;
            path.pop();
        }
        Ok(())
    }

    fn search(&self, path: &mut Vec<NodeIndex>, clean: &mut [bool]) -> Result<(), GraphError> {
        let Some(&here) = path.last() else {
            return Ok(());
        };
        if clean[here.index()] {
            return Ok(());
        }
        for child in self.children(here) {
            if let Some(i) = path.iter().position(|p| *p == child) {
                let mut names: Vec<String> =
                    path[i..].iter().map(|p| self.graph[*p].clone()).collect();
                names.push(self.graph[child].clone());
                return Err(GraphError::Cycle(names));
            }
            path.push(child);
            self.search(path, clean)?;
            path.pop();
        }
        clean[here.index()] = true;
        Ok(())
    }

    /// Kahn's algorithm over `dir`, ties by name.
    fn order(&self, dir: Direction) -> Vec<&str> {
        let mut pending: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| self.graph.neighbors_directed(n, dir).count())
            .collect();
        let mut ready: BTreeSet<(&str, NodeIndex)> = self
            .graph
            .node_indices()
            .filter(|n| pending[n.index()] == 0)
            .map(|n| (self.graph[n].as_str(), n))
            .collect();
        let mut out = Vec::with_capacity(pending.len());
        while let Some((name, n)) = ready.pop_first() {
            out.push(name);
            for m in self.graph.neighbors_directed(n, dir.opposite()) {
                pending[m.index()] -= 1;
                if pending[m.index()] == 0 {
                    ready.insert((self.graph[m].as_str(), m));
                }
            }
        }
        out
    }

    /// Services in start order: every service after all it depends on.
    pub fn start_order(&self) -> Vec<&str> {
        self.order(Direction::Outgoing)
    }

    /// Services in stop order: every service before all it depends on.
    pub fn stop_order(&self) -> Vec<&str> {
        self.order(Direction::Incoming)
    }

    /// The services `service` depends on directly, with the dependency's settings.
    pub fn dependencies(&self, service: &str) -> Vec<(&str, &ServiceDependency)> {
        let Some(&n) = self.index.get(service) else {
            return Vec::new();
        };
        let mut v: Vec<_> = self
            .graph
            .edges_directed(n, Direction::Outgoing)
            .map(|e| {
                use petgraph::visit::EdgeRef;
                (self.graph[e.target()].as_str(), e.weight())
            })
            .collect();
        v.sort_by_key(|(name, _)| *name);
        v
    }

    /// The services that depend directly on `service`.
    pub fn dependents(&self, service: &str) -> Vec<&str> {
        let Some(&n) = self.index.get(service) else {
            return Vec::new();
        };
        let mut v: Vec<&str> = self
            .graph
            .neighbors_directed(n, Direction::Incoming)
            .map(|m| self.graph[m].as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Fails when the enabled services' `depends_on` relation has a cycle, or a
/// required dependency is missing.
pub fn check_cycle(project: &Project) -> Result<(), GraphError> {
    ServiceGraph::new(project).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::project::Service;

    fn project(edges: &[(&str, &[&str])]) -> Project {
        let mut p = Project::default();
        for (name, deps) in edges {
            let s = Service {
                name: (*name).to_owned(),
                depends_on: deps
                    .iter()
                    .map(|d| (d.to_string(), ServiceDependency::default()))
                    .collect(),
                ..Service::default()
            };
            p.services.insert((*name).to_owned(), s);
        }
        p
    }

    #[test]
    fn orders_follow_dependencies() {
        // compose-go graph_test: test1 -> test2 -> test3.
        let p = project(&[("test1", &["test2"]), ("test2", &["test3"]), ("test3", &[])]);
        let g = ServiceGraph::new(&p).unwrap();
        assert_eq!(g.start_order(), ["test3", "test2", "test1"]);
        assert_eq!(g.stop_order(), ["test1", "test2", "test3"]);
        assert_eq!(g.dependents("test3"), ["test2"]);
        assert_eq!(g.dependencies("test1")[0].0, "test2");
    }

    #[test]
    fn independent_services_order_by_name() {
        let p = project(&[("b", &[]), ("a", &[]), ("c", &["b", "a"])]);
        let g = ServiceGraph::new(&p).unwrap();
        assert_eq!(g.start_order(), ["a", "b", "c"]);
        assert_eq!(g.stop_order(), ["c", "a", "b"]);
    }

    #[test]
    fn cycles_are_named_like_compose() {
        let p = project(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        let e = ServiceGraph::new(&p).unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: a -> b -> c -> a");
        let p = project(&[("self", &["self"])]);
        let e = check_cycle(&p).unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: self -> self");
    }

    #[test]
    fn missing_and_disabled_dependencies() {
        let mut p = project(&[("a", &["gone"])]);
        let e = check_cycle(&p).unwrap_err().to_string();
        assert_eq!(e, r#"service "a" depends on unknown service "gone""#);
        let gone = Service {
            profiles: vec!["x".into(), "y".into()],
            ..Service::default()
        };
        p.disabled_services.insert("gone".into(), gone);
        let e = check_cycle(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            r#"service "gone" is required by "a" but is disabled. Can be enabled by profiles [x y]"#
        );
        p.services
            .get_mut("a")
            .unwrap()
            .depends_on
            .get_mut("gone")
            .unwrap()
            .required = false;
        assert_eq!(ServiceGraph::new(&p).unwrap().start_order(), ["a"]);
    }
}
