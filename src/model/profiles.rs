//! Profiles and service selection (compose-go's `Project.WithProfiles`,
//! `WithServicesEnabled`, `WithSelectedServices`, `WithServicesDisabled`).
//!
//! A service without `profiles` is always enabled; one with profiles is
//! enabled when one of them is active (`*` activates all). Naming a disabled
//! service on the command line activates its profiles. Selecting services
//! keeps them and, transitively, what they depend on; everything else is
//! disabled and the `depends_on` entries pointing at it are dropped. Disabled
//! services move to `Project::disabled_services`, never silently vanish.

use std::collections::{BTreeMap, BTreeSet};

use super::project::{Project, Service, ServiceDependency};

/// A failure selecting services.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("no such service: {0}")]
    NoSuchService(String),
}

/// Whether `service` is enabled by `profiles`.
pub fn has_profile(service: &Service, profiles: &[String]) -> bool {
    service.profiles.is_empty()
        || profiles
            .iter()
            .any(|p| p == "*" || service.profiles.iter().any(|sp| sp == p))
}

/// Enables exactly the services `profiles` allow; the others move to
/// `disabled_services`.
pub fn apply_profiles(project: &mut Project, profiles: &[String]) {
    let mut all = std::mem::take(&mut project.services);
    all.append(&mut project.disabled_services);
    for (name, service) in all {
        if has_profile(&service, profiles) {
            project.services.insert(name, service);
        } else {
            project.disabled_services.insert(name, service);
        }
    }
    project.profiles = profiles.to_vec();
}

/// Activates the profiles of the named services that are disabled.
pub fn enable_services(project: &mut Project, names: &[String]) {
    let mut profiles = project.profiles.clone();
    let mut changed = false;
    for name in names {
        if project.services.contains_key(name) {
            continue;
        }
        if let Some(s) = project.disabled_services.get(name) {
            profiles.extend(s.profiles.iter().cloned());
            changed = true;
        }
    }
    if changed {
        apply_profiles(project, &profiles);
    }
}

/// Restricts the project to the named services (shell-style patterns, as
/// Docker Compose accepts) and their dependencies.
pub fn select_services(project: &mut Project, names: &[String]) -> Result<(), ProfileError> {
    if names.is_empty() {
        return Ok(());
    }
    let mut keep = BTreeSet::new();
    collect(project, names, &BTreeMap::new(), &mut keep)?;
    let services = std::mem::take(&mut project.services);
    let mut dropped = Vec::new();
    for (name, service) in services {
        if keep.contains(&name) {
            project.services.insert(name, service);
        } else {
            dropped.push((name, service));
        }
    }
    for s in project.services.values_mut() {
        s.depends_on.retain(|d, _| keep.contains(d));
    }
    for (name, service) in dropped {
        project.disabled_services.insert(name, service);
    }
    Ok(())
}

fn collect(
    project: &Project,
    names: &[String],
    via: &BTreeMap<String, ServiceDependency>,
    seen: &mut BTreeSet<String>,
) -> Result<(), ProfileError> {
    for pattern in names {
        let matched: Vec<&String> = project
            .services
            .keys()
            .filter(|n| glob_match(pattern, n))
            .collect();
        if matched.is_empty() {
            // A missing optional dependency is not an error.
            if via.get(pattern).is_none_or(|d| d.required) {
                return Err(ProfileError::NoSuchService(pattern.clone()));
            }
            continue;
        }
        for name in matched {
            if !seen.insert(name.clone()) {
                continue;
            }
            let deps = &project.services[name].depends_on;
            if !deps.is_empty() {
                let dep_names: Vec<String> = deps.keys().cloned().collect();
                collect(project, &dep_names, deps, seen)?;
            }
        }
    }
    Ok(())
}

/// Go's `filepath.Match` for the patterns a service name can take: `*`, `?`,
/// `[...]` classes, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('[', rest)) => {
                let Some(close) = rest.iter().position(|c| *c == ']') else {
                    return false;
                };
                let Some((&c, tail)) = n.split_first() else {
                    return false;
                };
                let (negate, class) = match rest[..close].split_first() {
                    Some(('^', cls)) => (true, cls),
                    _ => (false, &rest[..close]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&rest[close + 1..], tail)
            }
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    if !pattern.contains(['*', '?', '[', '\\']) {
        return pattern == name;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(spec: &[(&str, &[&str], &[&str])]) -> Project {
        let mut p = Project::default();
        for (name, profiles, deps) in spec {
            let s = Service {
                name: (*name).to_owned(),
                profiles: profiles.iter().map(|s| s.to_string()).collect(),
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

    fn names(p: &Project) -> Vec<&str> {
        p.services.keys().map(String::as_str).collect()
    }

    #[test]
    fn profiles_enable_and_disable() {
        let spec: &[(&str, &[&str], &[&str])] = &[
            ("always", &[], &[]),
            ("debug", &["debug"], &[]),
            ("test", &["test", "ci"], &[]),
        ];
        let mut p = project(spec);
        apply_profiles(&mut p, &[]);
        assert_eq!(names(&p), ["always"]);
        assert_eq!(p.disabled_services.len(), 2);
        apply_profiles(&mut p, &["ci".to_owned()]);
        assert_eq!(names(&p), ["always", "test"]);
        apply_profiles(&mut p, &["*".to_owned()]);
        assert_eq!(names(&p), ["always", "debug", "test"]);
        assert!(p.disabled_services.is_empty());
    }

    #[test]
    fn naming_a_service_enables_its_profiles_and_selects_dependencies() {
        let spec: &[(&str, &[&str], &[&str])] = &[
            ("db", &[], &[]),
            ("web", &[], &["db"]),
            ("tool", &["tools"], &["db"]),
            ("other", &[], &[]),
        ];
        let mut p = project(spec);
        apply_profiles(&mut p, &[]);
        let sel = vec!["tool".to_owned()];
        enable_services(&mut p, &sel);
        select_services(&mut p, &sel).unwrap();
        assert_eq!(names(&p), ["db", "tool"]);
        assert!(p.disabled_services.contains_key("web"));
        assert!(p.disabled_services.contains_key("other"));
        assert_eq!(p.profiles, ["tools"]);
    }

    #[test]
    fn selecting_an_unknown_service_fails() {
        let spec: &[(&str, &[&str], &[&str])] = &[("a", &[], &["gone"])];
        let mut p = project(spec);
        let e = select_services(&mut p, &["nope".to_owned()]).unwrap_err();
        assert_eq!(e.to_string(), "no such service: nope");
        let e = select_services(&mut p, &["a".to_owned()]).unwrap_err();
        assert_eq!(e.to_string(), "no such service: gone");
        p.services
            .get_mut("a")
            .unwrap()
            .depends_on
            .get_mut("gone")
            .unwrap()
            .required = false;
        select_services(&mut p, &["a".to_owned()]).unwrap();
        assert_eq!(names(&p), ["a"]);
        assert!(p.services["a"].depends_on.is_empty());
    }

    #[test]
    fn patterns_match_like_filepath_match() {
        assert!(glob_match("web*", "web-1"));
        assert!(glob_match("w?b", "web"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(!glob_match("web", "web2"));
        assert!(glob_match(r"a\*", "a*"));
    }
}
