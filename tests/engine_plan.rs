//! Golden tests of the planner: a project and what exists in, the plan's
//! text out — the same text `up --dry-run` prints.

use std::path::PathBuf;

use berth::engine::naming::container_name;
use berth::engine::{plan, ContainerState, Observed, ObservedContainer, Recreate, UpOptions};
use berth::model::hash::service_hash;
use berth::model::load::{load, ConfigDetails, ConfigFile, LoadOptions};
use berth::model::project::Project;

const LAMP: &str = "
name: demo
services:
  web:
    image: php:8-apache
    ports: ['8080:80']
    depends_on:
      db: {condition: service_healthy}
  db:
    image: mariadb:10.11
    volumes: [data:/var/lib/mysql]
    healthcheck: {test: [CMD, healthcheck.sh, --connect]}
  worker:
    image: busybox
    deploy: {replicas: 2}
    depends_on: [db]
volumes:
  data: {}
";

fn project(yaml: &str) -> Project {
    let details = ConfigDetails {
        files: vec![ConfigFile {
            path: PathBuf::from("/srv/demo/compose.yaml"),
            content: yaml.to_owned(),
        }],
        working_dir: PathBuf::from("/srv/demo"),
        environment: Default::default(),
        explicit_name: None,
    };
    load(&details, &LoadOptions::default()).expect("project loads")
}

/// An existing, running, up-to-date container of `service`.
fn existing(p: &Project, service: &str, number: u32) -> ObservedContainer {
    let svc = &p.services[service];
    ObservedContainer {
        id: format!("{service}{number}id"),
        name: container_name(p, svc, number),
        service: service.to_owned(),
        number,
        oneoff: false,
        config_hash: service_hash(svc).unwrap(),
        image_digest: None,
        state: ContainerState::Running,
        created: u64::from(number),
    }
}

/// The plan's text after a newline, so expectations can start on a line
/// of their own.
fn text(p: &Project, o: &Observed, opts: &UpOptions) -> String {
    format!("\n{}", plan(p, o, opts).expect("plan"))
}

#[test]
fn first_up_creates_everything_in_dependency_order() {
    let p = project(LAMP);
    assert_eq!(
        text(&p, &Observed::default(), &UpOptions::default()),
        "
 1. network create demo_default
 2. volume create demo_data
 3. container create demo-db-1  [after 1, 2]
 4. container start demo-db-1  [after 3]
 5. container create demo-web-1  [after 1, 2, 4]
 6. container start demo-web-1  [after 5]
 7. container create demo-worker-1  [after 1, 2, 4]
 8. container start demo-worker-1  [after 7]
 9. container create demo-worker-2  [after 1, 2, 4]
10. container start demo-worker-2  [after 9]
"
    );
}

#[test]
fn a_converged_project_plans_nothing() {
    let p = project(LAMP);
    let o = Observed {
        containers: vec![
            existing(&p, "db", 1),
            existing(&p, "web", 1),
            existing(&p, "worker", 1),
            existing(&p, "worker", 2),
        ],
        networks: ["demo_default".to_owned()].into(),
        volumes: ["demo_data".to_owned()].into(),
    };
    let plan = plan(&p, &o, &UpOptions::default()).unwrap();
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn a_changed_service_is_recreated_and_a_stopped_one_started() {
    let p = project(LAMP);
    let mut web = existing(&p, "web", 1);
    web.config_hash = "stale".into();
    let mut worker = existing(&p, "worker", 1);
    worker.state = ContainerState::Exited;
    let o = Observed {
        containers: vec![
            existing(&p, "db", 1),
            web,
            worker,
            existing(&p, "worker", 2),
        ],
        networks: ["demo_default".to_owned()].into(),
        volumes: ["demo_data".to_owned()].into(),
    };
    assert_eq!(
        text(&p, &o, &UpOptions::default()),
        "
 1. container recreate demo-web-1 (config changed)
 2. container start demo-web-1  [after 1]
 3. container start demo-worker-1
"
    );
    let forced = UpOptions {
        recreate: Recreate::Force,
        ..UpOptions::default()
    };
    assert_eq!(text(&p, &o, &forced).matches("recreate").count(), 4);
    let never = UpOptions {
        recreate: Recreate::Never,
        ..UpOptions::default()
    };
    assert_eq!(
        text(&p, &o, &never),
        "\n 1. container start demo-worker-1\n"
    );
}

#[test]
fn scaling_keeps_low_numbers_and_drops_obsolete_first() {
    let p = project(LAMP);
    let mut w2 = existing(&p, "worker", 2);
    w2.config_hash = "stale".into();
    let o = Observed {
        containers: vec![
            existing(&p, "db", 1),
            existing(&p, "web", 1),
            existing(&p, "worker", 1),
            w2,
            existing(&p, "worker", 3),
        ],
        networks: ["demo_default".to_owned()].into(),
        volumes: ["demo_data".to_owned()].into(),
    };
    // deploy.replicas 2 of 3: the obsolete #2 goes, #1 and #3 stay.
    assert_eq!(
        text(&p, &o, &UpOptions::default()),
        "\n 1. container remove demo-worker-2 (scale down)\n"
    );
    // --scale worker=4: two new ones after the highest number, the stale
    // one recreated in place.
    let up = UpOptions {
        scale: [("worker".to_owned(), 4)].into(),
        ..UpOptions::default()
    };
    assert_eq!(
        text(&p, &o, &up),
        "
 1. container recreate demo-worker-2 (config changed)
 2. container start demo-worker-2  [after 1]
 3. container create demo-worker-4
 4. container start demo-worker-4  [after 3]
"
    );
}

#[test]
fn orphans_are_reported_or_removed() {
    let p = project(LAMP);
    let mut old = existing(&p, "web", 1);
    old.service = "legacy".into();
    old.name = "demo-legacy-1".into();
    let o = Observed {
        containers: vec![
            existing(&p, "db", 1),
            existing(&p, "web", 1),
            existing(&p, "worker", 1),
            existing(&p, "worker", 2),
            old,
        ],
        networks: ["demo_default".to_owned()].into(),
        volumes: ["demo_data".to_owned()].into(),
    };
    assert_eq!(
        text(&p, &o, &UpOptions::default()),
        "\n 1. warn orphan containers demo-legacy-1 (use --remove-orphans)\n"
    );
    let rm = UpOptions {
        remove_orphans: true,
        ..UpOptions::default()
    };
    assert_eq!(
        text(&p, &o, &rm),
        "\n 1. container remove demo-legacy-1 (orphan)\n"
    );
}

#[test]
fn no_start_external_resources_and_container_name() {
    let p = project(
        "
name: demo
services:
  app:
    image: x
    container_name: the-app
    networks: [outside]
networks:
  outside: {external: true}
",
    );
    let opts = UpOptions {
        no_start: true,
        ..UpOptions::default()
    };
    assert_eq!(
        text(&p, &Observed::default(), &opts),
        "
 1. network check outside (external)
 2. container create the-app  [after 1]
"
    );
    let scaled = UpOptions {
        scale: [("app".to_owned(), 2)].into(),
        ..UpOptions::default()
    };
    let e = plan(&p, &Observed::default(), &scaled).unwrap_err();
    assert!(e.to_string().contains("container_name"), "{e}");
}

#[test]
fn a_recreated_dependency_restarts_its_restart_true_dependents() {
    let p = project(
        "
name: demo
services:
  db:
    image: mariadb
  web:
    image: php
    depends_on:
      db: {condition: service_started, restart: true}
  worker:
    image: busybox
    depends_on: [db]
",
    );
    let mut db = existing(&p, "db", 1);
    db.config_hash = "stale".into();
    let o = Observed {
        containers: vec![db, existing(&p, "web", 1), existing(&p, "worker", 1)],
        networks: ["demo_default".to_owned()].into(),
        volumes: Default::default(),
    };
    // web restarts once db is back; worker (no `restart: true`) is left.
    assert_eq!(
        text(&p, &o, &UpOptions::default()),
        "
 1. container recreate demo-db-1 (config changed)
 2. container start demo-db-1  [after 1]
 3. container restart demo-web-1 (db recreated)  [after 2]
"
    );
    // A dependency only started (not recreated) restarts nothing.
    let mut db = existing(&p, "db", 1);
    db.state = ContainerState::Exited;
    let o = Observed {
        containers: vec![db, existing(&p, "web", 1), existing(&p, "worker", 1)],
        networks: ["demo_default".to_owned()].into(),
        volumes: Default::default(),
    };
    assert_eq!(
        text(&p, &o, &UpOptions::default()),
        "
 1. container start demo-db-1
"
    );
    // `up db` alone: web is outside the project, and still follows db.
    let mut only_db = p.clone();
    for s in ["web", "worker"] {
        let svc = only_db.services.remove(s).unwrap();
        only_db.disabled_services.insert(s.to_owned(), svc);
    }
    let mut db = existing(&p, "db", 1);
    db.config_hash = "stale".into();
    let o = Observed {
        containers: vec![db, existing(&p, "web", 1), existing(&p, "worker", 1)],
        networks: ["demo_default".to_owned()].into(),
        volumes: Default::default(),
    };
    assert_eq!(
        text(&only_db, &o, &UpOptions::default()),
        "
 1. container recreate demo-db-1 (config changed)
 2. container start demo-db-1  [after 1]
 3. container restart demo-web-1 (db recreated)  [after 2]
"
    );
    // With the dependent recreated too, it is not restarted on top.
    let mut db = existing(&p, "db", 1);
    db.config_hash = "stale".into();
    let mut web = existing(&p, "web", 1);
    web.config_hash = "stale".into();
    let o = Observed {
        containers: vec![db, web, existing(&p, "worker", 1)],
        networks: ["demo_default".to_owned()].into(),
        volumes: Default::default(),
    };
    assert_eq!(
        text(&p, &o, &UpOptions::default()),
        "
 1. container recreate demo-db-1 (config changed)
 2. container start demo-db-1  [after 1]
 3. container recreate demo-web-1 (config changed)  [after 2]
 4. container start demo-web-1  [after 3]
"
    );
}

/// `up --no-deps app` (compose-go's IgnoreDependencies): the other
/// services are disabled and no longer depended on.
fn only(mut p: Project, keep: &str) -> Project {
    let names: Vec<String> = p.services.keys().cloned().collect();
    for n in names {
        if n != keep {
            let s = p.services.remove(&n).unwrap();
            p.disabled_services.insert(n, s);
        }
    }
    for s in p.services.values_mut() {
        s.depends_on.clear();
    }
    p
}

#[test]
fn a_shared_network_namespace_needs_its_donor_container() {
    let p = project(
        "
name: demo
services:
  app:
    image: busybox
    network_mode: service:db
  db:
    image: busybox
",
    );
    let app_alone = only(p.clone(), "app");
    // The donor exists (TestNoDepsNetworkMode, step 2): nothing to do.
    let o = Observed {
        containers: vec![existing(&p, "db", 1), existing(&p, "app", 1)],
        ..Observed::default()
    };
    let the_plan = plan(&app_alone, &o, &UpOptions::default()).unwrap();
    assert!(the_plan.is_empty(), "{the_plan}");
    // The donor was removed (step 4): compose's error.
    let o = Observed {
        containers: vec![existing(&p, "app", 1)],
        ..Observed::default()
    };
    let e = plan(&app_alone, &o, &UpOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot share network namespace with service db: container missing"
    );
    // A one-off of the donor is no donor.
    let mut oneoff = existing(&p, "db", 1);
    oneoff.oneoff = true;
    let o = Observed {
        containers: vec![oneoff],
        ..Observed::default()
    };
    assert!(plan(&app_alone, &o, &UpOptions::default()).is_err());
    // With the donor in the same `up`, it is made first.
    assert!(plan(&p, &Observed::default(), &UpOptions::default()).is_ok());
}

#[test]
fn shared_volumes_need_their_donor_container_too() {
    let p = project(
        "
name: demo
services:
  app:
    image: busybox
    volumes_from: [db:ro, container:elsewhere]
  db:
    image: busybox
",
    );
    let app_alone = only(p.clone(), "app");
    let o = Observed {
        containers: vec![existing(&p, "db", 1)],
        ..Observed::default()
    };
    assert!(plan(&app_alone, &o, &UpOptions::default()).is_ok());
    let e = plan(&app_alone, &Observed::default(), &UpOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot share volume with service db: container missing"
    );
}

const HOOKED: &str = "
name: demo
services:
  app:
    image: busybox
    deploy: {replicas: 2}
    pre_start:
      - command: [migrate]
";

#[test]
fn pre_start_hooks_run_once_before_the_first_start_of_a_service() {
    let p = project(HOOKED);
    // First up: once, with the volumes of the lowest-numbered container,
    // after every container is made; both starts wait for the hooks.
    assert_eq!(
        text(&p, &Observed::default(), &UpOptions::default()),
        "
 1. network create demo_default
 2. container create demo-app-1  [after 1]
 3. container create demo-app-2  [after 1]
 4. pre_start hooks of app (volumes of demo-app-1)  [after 2, 3]
 5. container start demo-app-1  [after 4]
 6. container start demo-app-2  [after 4]
"
    );
    let running = Observed {
        containers: vec![existing(&p, "app", 1), existing(&p, "app", 2)],
        networks: ["demo_default".to_owned()].into(),
        ..Observed::default()
    };
    // Converged: nothing, no hooks.
    assert!(plan(&p, &running, &UpOptions::default())
        .unwrap()
        .is_empty());
    // Scaled up beside a running replica: the new one starts without them.
    let opts = UpOptions {
        scale: [("app".to_owned(), 3)].into(),
        ..UpOptions::default()
    };
    assert_eq!(
        text(&p, &running, &opts),
        "
 1. container create demo-app-3
 2. container start demo-app-3  [after 1]
"
    );
    // Recreated (forced, or a changed config): the hooks run again.
    let forced = UpOptions {
        recreate: Recreate::Force,
        ..UpOptions::default()
    };
    assert_eq!(
        text(&p, &running, &forced),
        "
 1. container recreate demo-app-1 (forced)
 2. container recreate demo-app-2 (forced)
 3. pre_start hooks of app (volumes of demo-app-1)  [after 1, 2]
 4. container start demo-app-1  [after 3]
 5. container start demo-app-2  [after 3]
"
    );
    // All stopped: started again, after the hooks.
    let mut stopped = running.clone();
    for c in &mut stopped.containers {
        c.state = ContainerState::Exited;
    }
    assert_eq!(
        text(&p, &stopped, &UpOptions::default()),
        "
 1. pre_start hooks of app (volumes of demo-app-1)
 2. container start demo-app-1  [after 1]
 3. container start demo-app-2  [after 1]
"
    );
    // --no-start: nothing starts, so no hooks.
    let no_start = UpOptions {
        no_start: true,
        ..UpOptions::default()
    };
    assert!(!text(&p, &Observed::default(), &no_start).contains("pre_start"));
}

#[test]
fn a_recreated_volumes_from_donor_recreates_its_sharers() {
    let p = project(
        "
name: demo
services:
  app:
    image: busybox
    volumes_from: [db]
  db:
    image: busybox
",
    );
    // The sharer's hash is taken over the donor's container id.
    let mut resolved = p.services["app"].clone();
    resolved.volumes_from = vec!["container:db1id".into()];
    let mut app = existing(&p, "app", 1);
    app.config_hash = service_hash(&resolved).unwrap();
    let o = Observed {
        containers: vec![existing(&p, "db", 1), app],
        networks: ["demo_default".to_owned()].into(),
        ..Observed::default()
    };
    assert!(plan(&p, &o, &UpOptions::default()).unwrap().is_empty());
    // The donor replaced: the sharer follows.
    let mut changed = p.clone();
    changed.services.get_mut("db").unwrap().command = Some(vec!["other".into()]);
    let t = text(&changed, &o, &UpOptions::default());
    assert!(
        t.contains("container recreate demo-db-1 (config changed)"),
        "{t}"
    );
    assert!(
        t.contains("container recreate demo-app-1 (config changed)"),
        "{t}"
    );
}
