//! The typed, normalized Compose project: what everything after `model::load`
//! sees. Field for field it mirrors compose-go's `types.Project` and
//! `types.ServiceConfig`, and it serializes (serde) to exactly the JSON that
//! `docker compose config --format json` prints: Go's `omitempty` becomes
//! `skip_serializing_if`, maps are sorted (Go marshals maps by key), sizes are
//! decimal strings, durations print as Go prints them (`1m30s`).
//!
//! Deserialization is lenient in the ways compose-go's decoders are (a label
//! list becomes a map, `"2g"` becomes bytes, a string command is split like a
//! shell would), because `normalize` builds a `Project` by deserializing the
//! canonical tree. This module owns the types and their wire forms only; it
//! applies no defaults and checks no references.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value as J;

/// Extension values (`x-*` keys): free-form by definition.
pub type Extensions = BTreeMap<String, J>;
/// `KEY: value` mappings whose values are strings (labels, sysctls, options).
pub type Mapping = BTreeMap<String, String>;
/// A mapping whose values may be unset (`environment`, `build.args`).
pub type MappingWithEquals = BTreeMap<String, Option<String>>;

/// A loaded project.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Project {
    pub name: String,
    /// The project directory (relative paths in the model are resolved against it).
    #[serde(skip)]
    pub working_dir: PathBuf,
    pub services: BTreeMap<String, Service>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, Config>,
    /// Docker Compose does not print `models` in `config --format json`.
    #[serde(skip)]
    pub models: BTreeMap<String, Model>,
    /// Top-level `x-*` keys, printed as they are.
    #[serde(flatten)]
    pub extensions: Extensions,
    /// Services present in the files but not enabled by the active profiles.
    #[serde(skip)]
    pub disabled_services: BTreeMap<String, Service>,
    /// The profiles the project was loaded with.
    #[serde(skip)]
    pub profiles: Vec<String>,
    /// The environment the project was interpolated with.
    #[serde(skip)]
    pub environment: Mapping,
    /// The compose files, in `-f` order.
    #[serde(skip)]
    pub compose_files: Vec<PathBuf>,
    /// `--compatibility` (or `COMPOSE_COMPATIBILITY`): containers are named
    /// as Compose v1 named them, `project_service_1`.
    #[serde(skip)]
    pub compatibility: bool,
    /// Where each service and top-level resource was declared, keyed
    /// `services.web`, `volumes.db`, … (the key's position in the last file
    /// that set it), so later stages can point at file:line.
    #[serde(skip)]
    pub origins: BTreeMap<String, super::node::Span>,
}

impl Project {
    /// An enabled service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Enabled service names, sorted.
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}

/// One service, with every attribute compose-go knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    /// The service's key in `services:` (not printed).
    #[serde(skip)]
    pub name: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub profiles: Vec<String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub annotations: Mapping,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub attach: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub cap_add: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub cap_drop: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub cgroup_parent: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub cgroup: String,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub cpu_count: i64,
    #[serde(
        skip_serializing_if = "is_zero_f32",
        serialize_with = "ser_f32",
        deserialize_with = "lenient::f32"
    )]
    pub cpu_percent: f32,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub cpu_period: i64,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub cpu_quota: i64,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub cpu_rt_period: i64,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub cpu_rt_runtime: i64,
    #[serde(
        skip_serializing_if = "is_zero_f32",
        serialize_with = "ser_f32",
        deserialize_with = "lenient::f32"
    )]
    pub cpus: f32,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub cpuset: String,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub cpu_shares: i64,
    /// Always printed: `null` (image default) differs from `[]` (cleared).
    #[serde(deserialize_with = "lenient::shell_command")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileReference>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub container_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, ServiceDependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub device_cgroup_rules: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub dns: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub dns_opt: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub dns_search: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub dockerfile: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub domainname: String,
    /// Always printed, like `command`.
    #[serde(deserialize_with = "lenient::shell_command")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping_with_equals"
    )]
    pub environment: MappingWithEquals,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub external_links: Vec<String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "ser_hosts",
        deserialize_with = "lenient::hosts"
    )]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub hostname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub image: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub init: Option<bool>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub ipc: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub isolation: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub label_file: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub log_driver: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub log_opt: Mapping,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub mem_limit: UnitBytes,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub mem_reservation: UnitBytes,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub memswap_limit: UnitBytes,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub mem_swappiness: UnitBytes,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub mac_address: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::null_map"
    )]
    pub models: BTreeMap<String, Option<ServiceModel>>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub net: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub network_mode: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::null_map"
    )]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub oom_kill_disable: bool,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub oom_score_adj: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub pid: String,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub pids_limit: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub platform: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub privileged: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub pull_policy: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub read_only: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub restart: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub runtime: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_i64"
    )]
    pub scale: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub shm_size: UnitBytes,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub stop_signal: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub storage_opt: Mapping,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub sysctls: Mapping,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub tty: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub use_api_socket: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub user: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub userns_mode: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub uts: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub volume_driver: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub volumes_from: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub working_dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_start: Vec<ServiceHook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<ServiceHook>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<ServiceHook>,
    /// The service's `x-*` keys (Docker Compose does not print them).
    #[serde(skip)]
    pub extensions: Extensions,
}

impl Service {
    /// The number of containers to run: `scale`, else `deploy.replicas`, else 1.
    pub fn replicas(&self) -> i64 {
        if let Some(s) = self.scale {
            return s;
        }
        self.deploy.as_ref().and_then(|d| d.replicas).unwrap_or(1)
    }

    /// The service whose namespace `value` (`network_mode`, `ipc`, `pid`…) points at.
    pub fn shared_service(value: &str) -> Option<&str> {
        value.strip_prefix("service:")
    }

    /// The service's networks, highest `priority` first, then by name
    /// (compose-go's `NetworksByPriority`: the order containers join them).
    pub fn networks_by_priority(&self) -> Vec<&str> {
        let mut v: Vec<(&str, i64)> = self
            .networks
            .iter()
            .map(|(k, n)| (k.as_str(), n.as_ref().map_or(0, |n| n.priority)))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(k, _)| k).collect()
    }

    /// What `pull_policy` asks for (compose-go's `GetPullPolicy`).
    pub fn pull_policy(&self) -> Result<PullPolicy, String> {
        Ok(match self.pull_policy.as_str() {
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            "build" => PullPolicy::Build,
            "daily" => PullPolicy::Refresh(Duration(24 * 3_600_000_000_000)),
            "weekly" => PullPolicy::Refresh(Duration(7 * 24 * 3_600_000_000_000)),
            other => match other.strip_prefix("every_") {
                Some(d) => PullPolicy::Refresh(Duration::parse(d)?),
                // `missing`, `if_not_present` and unset all mean "pull if absent".
                None => PullPolicy::Missing,
            },
        })
    }
}

/// When to pull a service's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Never,
    Missing,
    Build,
    /// Pull when the local image is older than this.
    Refresh(Duration),
}

/// `provider:` of a service managed by an external tool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provider {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub r#type: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::multi_options"
    )]
    pub options: BTreeMap<String, Vec<String>>,
}

/// `build:` in its long form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Build {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub context: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub dockerfile: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub dockerfile_inline: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub entitlements: Vec<String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping_with_equals"
    )]
    pub args: MappingWithEquals,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub provenance: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub sbom: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::ssh"
    )]
    pub ssh: Vec<SshKey>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub cache_from: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub cache_to: Vec<String>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub no_cache: bool,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub no_cache_filter: Vec<String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub additional_contexts: Mapping,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub pull: bool,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "ser_hosts",
        deserialize_with = "lenient::hosts"
    )]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub isolation: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub network: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub target: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub shm_size: UnitBytes,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub platforms: Vec<String>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub privileged: bool,
}

/// One `build.ssh` entry: `default` or `id=path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshKey {
    pub id: String,
    pub path: String,
}

impl Serialize for SshKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.path.is_empty() {
            s.serialize_str(&self.id)
        } else {
            s.serialize_str(&format!("{}={}", self.id, self.path))
        }
    }
}

/// `develop:` (watch rules).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Develop {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<WatchTrigger>,
}

/// One `develop.watch` rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchTrigger {
    #[serde(deserialize_with = "lenient::string")]
    pub path: String,
    #[serde(deserialize_with = "lenient::string")]
    pub action: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub target: String,
    pub exec: ServiceHook,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub include: Vec<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub ignore: Vec<String>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub initial_sync: bool,
}

/// A lifecycle hook (`pre_start`, `post_start`, `pre_stop`, `develop.watch.exec`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceHook {
    #[serde(deserialize_with = "lenient::shell_command")]
    pub command: Option<Vec<String>>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub image: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub user: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub privileged: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub working_dir: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping_with_equals"
    )]
    pub environment: MappingWithEquals,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub per_replica: bool,
}

/// `blkio_config:`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioConfig {
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "lenient::u64")]
    pub weight: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<ThrottleDevice>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<ThrottleDevice>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<ThrottleDevice>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<ThrottleDevice>,
}

/// A `path`/`weight` pair. Compose-go has no JSON tags here, so the keys print
/// capitalized (`Path`, `Weight`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightDevice {
    #[serde(rename = "Path", alias = "path", deserialize_with = "lenient::string")]
    pub path: String,
    #[serde(rename = "Weight", alias = "weight", deserialize_with = "lenient::u64")]
    pub weight: u64,
}

/// A `path`/`rate` pair (`Path`, `Rate` when printed, as compose-go does).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottleDevice {
    #[serde(rename = "Path", alias = "path", deserialize_with = "lenient::string")]
    pub path: String,
    #[serde(rename = "Rate", alias = "rate")]
    pub rate: UnitBytes,
}

/// A `devices:` entry in long form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMapping {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub source: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub target: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub permissions: String,
}

/// A device request (`gpus`, `deploy.resources.reservations.devices`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceRequest {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub capabilities: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub driver: String,
    /// `-1` means `all`.
    #[serde(
        skip_serializing_if = "is_zero_i64",
        deserialize_with = "lenient::device_count"
    )]
    pub count: i64,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub device_ids: Vec<String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub options: Mapping,
}

/// `credential_spec:` (Windows).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialSpec {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub config: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub file: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub registry: String,
}

/// One `depends_on` entry in long form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceDependency {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub condition: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub restart: bool,
    /// Always printed.
    #[serde(deserialize_with = "lenient::bool")]
    pub required: bool,
}

impl Default for ServiceDependency {
    fn default() -> Self {
        ServiceDependency {
            condition: CONDITION_STARTED.to_owned(),
            restart: false,
            required: true,
        }
    }
}

/// `depends_on` conditions.
pub const CONDITION_STARTED: &str = "service_started";
pub const CONDITION_HEALTHY: &str = "service_healthy";
pub const CONDITION_COMPLETED: &str = "service_completed_successfully";

/// `extends:` as declared (resolved before normalization).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extends {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub file: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub service: String,
}

/// An `env_file` entry in long form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvFile {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub path: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub required: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub format: String,
}

impl Default for EnvFile {
    fn default() -> Self {
        EnvFile {
            path: String::new(),
            required: true,
            format: String::new(),
        }
    }
}

/// `healthcheck:`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::healthcheck_test"
    )]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub disable: bool,
}

/// `logging:`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logging {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub driver: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub options: Mapping,
}

/// `deploy:`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deploy {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub mode: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_i64"
    )]
    pub replicas: Option<i64>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// Always printed (a struct, not a pointer, in compose-go).
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Always printed.
    pub placement: Placement,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub endpoint_mode: String,
}

/// `deploy.update_config` / `rollback_config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub parallelism: Option<u64>,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub delay: Duration,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub failure_action: String,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub monitor: Duration,
    #[serde(
        skip_serializing_if = "is_zero_f32",
        serialize_with = "ser_f32",
        deserialize_with = "lenient::f32"
    )]
    pub max_failure_ratio: f32,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub order: String,
}

/// `deploy.resources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

/// `deploy.resources.limits` / `reservations`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resource {
    #[serde(
        skip_serializing_if = "is_zero_f32",
        serialize_with = "ser_f32",
        deserialize_with = "lenient::f32"
    )]
    pub cpus: f32,
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub memory: UnitBytes,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub pids: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<GenericResource>,
}

/// `generic_resources` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenericResource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteResourceSpec>,
}

/// A counted user-defined resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscreteResourceSpec {
    #[serde(deserialize_with = "lenient::string")]
    pub kind: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub value: i64,
}

/// `deploy.restart_policy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub condition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub max_attempts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

/// `deploy.placement`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub constraints: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    #[serde(skip_serializing_if = "is_zero_u64", deserialize_with = "lenient::u64")]
    pub max_replicas_per_node: u64,
}

/// `deploy.placement.preferences` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlacementPreference {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub spread: String,
}

/// A service's attachment to one network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceNetwork {
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub aliases: Vec<String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub driver_opts: Mapping,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub gw_priority: i64,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub interface_name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub ipv4_address: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub ipv6_address: String,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub link_local_ips: Vec<String>,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub mac_address: String,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub priority: i64,
}

/// A `services.*.models` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceModel {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub endpoint_var: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub model_var: String,
}

/// A published or exposed port in long form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Port {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub mode: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub host_ip: String,
    #[serde(skip_serializing_if = "is_zero_u32", deserialize_with = "lenient::u32")]
    pub target: u32,
    /// A port or a range (`8000-8010`), as text.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub published: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub protocol: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub app_protocol: String,
}

/// A `volumes:` entry of a service in long form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceVolume {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub r#type: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub source: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub target: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub read_only: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<VolumeBind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<VolumeTmpfs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<VolumeImage>,
}

/// Volume types.
pub const VOLUME_BIND: &str = "bind";
pub const VOLUME_VOLUME: &str = "volume";
pub const VOLUME_TMPFS: &str = "tmpfs";
pub const VOLUME_IMAGE: &str = "image";

/// `bind:` options of a bind mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeBind {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub selinux: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub propagation: String,
    /// Docker Compose 2.40 prints it only when true (the short syntax sets it).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub create_host_path: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub recursive: String,
}

/// `volume:` options of a named volume mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeVolume {
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub nocopy: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub subpath: String,
}

/// `tmpfs:` options of a tmpfs mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeTmpfs {
    #[serde(skip_serializing_if = "UnitBytes::is_zero")]
    pub size: UnitBytes,
    #[serde(skip_serializing_if = "is_zero_u32", deserialize_with = "lenient::u32")]
    pub mode: u32,
}

/// `image:` options of an image mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeImage {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub subpath: String,
}

/// A service's reference to a secret or config, in long form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileReference {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub source: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub target: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub uid: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub gid: String,
    /// File mode; printed in octal as a string (`"0440"`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_file_mode",
        deserialize_with = "lenient::file_mode"
    )]
    pub mode: Option<u32>,
}

/// One `ulimits` entry: a single value, or soft/hard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ulimit {
    pub single: i64,
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    /// The (soft, hard) pair the kernel gets.
    pub fn limits(&self) -> (i64, i64) {
        if self.single != 0 {
            (self.single, self.single)
        } else {
            (self.soft, self.hard)
        }
    }
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.single != 0 {
            return s.serialize_i64(self.single);
        }
        let n = usize::from(self.soft != 0) + usize::from(self.hard != 0);
        let mut m = s.serialize_map(Some(n))?;
        if self.soft != 0 {
            m.serialize_entry("soft", &self.soft)?;
        }
        if self.hard != 0 {
            m.serialize_entry("hard", &self.hard)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = J::deserialize(d)?;
        match &v {
            J::Object(m) => {
                let get = |k: &str| -> Result<i64, D::Error> {
                    m.get(k)
                        .map_or(Ok(0), |x| lenient::to_i64(x).map_err(de::Error::custom))
                };
                Ok(Ulimit {
                    single: 0,
                    soft: get("soft")?,
                    hard: get("hard")?,
                })
            }
            other => Ok(Ulimit {
                single: lenient::to_i64(other).map_err(de::Error::custom)?,
                soft: 0,
                hard: 0,
            }),
        }
    }
}

/// A top-level network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub driver: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub driver_opts: Mapping,
    /// Always printed (`"ipam": {}`), as compose-go does.
    pub ipam: Ipam,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub external: bool,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub internal: bool,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub attachable: bool,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub enable_ipv4: Option<bool>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub enable_ipv6: Option<bool>,
    #[serde(skip)]
    pub extensions: Extensions,
}

/// `ipam:` of a network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ipam {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub driver: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub options: Mapping,
}

/// One IPAM pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamPool {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub subnet: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub gateway: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub ip_range: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub aux_addresses: Mapping,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub driver: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub driver_opts: Mapping,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub external: bool,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(skip)]
    pub extensions: Extensions,
}

/// A top-level secret or config (compose-go's `FileObjectConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileObject {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub file: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub environment: String,
    /// Inline content. Never printed for secrets; printed for configs unless it
    /// came from `environment`.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub content: String,
    #[serde(skip_serializing_if = "is_false", deserialize_with = "lenient::bool")]
    pub external: bool,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub labels: Mapping,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub driver: String,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "lenient::mapping"
    )]
    pub driver_opts: Mapping,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub template_driver: String,
    #[serde(skip)]
    pub extensions: Extensions,
}

/// A top-level secret. Its content is never printed.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub FileObject);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.content.is_empty() {
            return self.0.serialize(s);
        }
        let mut shown = self.0.clone();
        shown.content.clear();
        shown.serialize(s)
    }
}

/// A top-level config. Content taken from `environment` is not printed.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Config(pub FileObject);

impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.environment.is_empty() || self.0.content.is_empty() {
            return self.0.serialize(s);
        }
        let mut shown = self.0.clone();
        shown.content.clear();
        shown.serialize(s)
    }
}

/// A top-level model (AI model runner).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Model {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub name: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub model: String,
    #[serde(skip_serializing_if = "is_zero_i64", deserialize_with = "lenient::i64")]
    pub context_size: i64,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::string_list"
    )]
    pub runtime_flags: Vec<String>,
}

/// A size in bytes. Printed as a decimal string (`"2147483648"`), as
/// compose-go does; read from an integer or a size such as `2g`, `512m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitBytes(pub i64);

impl UnitBytes {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// Parses a size the way Docker does (`go-units` `RAMInBytes`): a decimal
    /// number, an optional `k m g t p` suffix (powers of 1024), an optional `b`.
    pub fn parse(s: &str) -> Result<UnitBytes, String> {
        if let Ok(n) = s.parse::<i64>() {
            return Ok(UnitBytes(n));
        }
        let t = s.trim();
        let bad = || format!("invalid size: '{s}'");
        let num_end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, rest) = t.split_at(num_end);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
        let mut chars = rest.chars().peekable();
        let mult: f64 = match chars.peek() {
            Some('k') => 1024f64,
            Some('m') => 1024f64.powi(2),
            Some('g') => 1024f64.powi(3),
            Some('t') => 1024f64.powi(4),
            Some('p') => 1024f64.powi(5),
            _ => 1.0,
        };
        if mult != 1.0 {
            chars.next();
        }
        let tail: String = chars.collect();
        if !matches!(tail.as_str(), "" | "b" | "i" | "ib") {
            return Err(bad());
        }
        Ok(UnitBytes((value * mult) as i64))
    }
}

impl Serialize for UnitBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UnitBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match J::deserialize(d)? {
            J::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(UnitBytes)
                .ok_or_else(|| de::Error::custom("invalid size")),
            J::String(s) => UnitBytes::parse(&s).map_err(de::Error::custom),
            J::Null => Ok(UnitBytes(0)),
            other => Err(de::Error::custom(format!(
                "invalid type for a size: {other}"
            ))),
        }
    }
}

/// A duration, in nanoseconds like Go's `time.Duration`, printed as Go prints
/// it (`1m30s`, `500ms`, `0s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub i64);

impl Duration {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub fn as_std(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }

    /// Parses `1h30m`, `1.5s`, `100ms`, `2d`, `1w` (Go's `time.ParseDuration`
    /// plus days and weeks, as compose-go's `str2duration`).
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || format!("invalid duration {s:?}");
        let (neg, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Ok(Duration(0));
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: f64 = 0.0;
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
            if n == 0 {
                return Err(bad());
            }
            let value: f64 = rest[..n].parse().map_err(|_| bad())?;
            rest = &rest[n..];
            let u = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = match &rest[..u] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "d" => 86400e9,
                "w" => 7.0 * 86400e9,
                other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
            };
            rest = &rest[u..];
            total += value * unit;
        }
        let ns = total.round() as i64;
        Ok(Duration(if neg { -ns } else { ns }))
    }
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let u = self.0.unsigned_abs();
        let sign = if neg { "-" } else { "" };
        if u < 1_000_000_000 {
            // Sub-second: one unit, fractional.
            let (unit, div) = match u {
                0 => return f.write_str("0s"),
                1..=999 => ("ns", 1),
                1_000..=999_999 => ("µs", 1_000),
                _ => ("ms", 1_000_000),
            };
            return write!(f, "{sign}{}{unit}", frac(u, div));
        }
        let h = u / 3_600_000_000_000;
        let rem = u % 3_600_000_000_000;
        let m = rem / 60_000_000_000;
        let s_ns = rem % 60_000_000_000;
        let secs = frac(s_ns, 1_000_000_000);
        if h > 0 {
            write!(f, "{sign}{h}h{m}m{secs}s")
        } else if m > 0 {
            write!(f, "{sign}{m}m{secs}s")
        } else {
            write!(f, "{sign}{secs}s")
        }
    }
}

/// `v / div` with the fraction's trailing zeros trimmed (`1.5`, `2`).
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = J::deserialize(d)?;
        let text = match &v {
            J::String(s) => s.clone(),
            J::Number(n) => n.to_string(),
            J::Null => return Ok(Duration(0)),
            other => return Err(de::Error::custom(format!("invalid duration {other}"))),
        };
        Duration::parse(&text).map_err(de::Error::custom)
    }
}

/// Go prints a float32 with the fewest digits that round-trip, and integral
/// values without a fraction (`1`, not `1.0`).
fn ser_f32<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f32(*v)
    }
}

fn ser_file_mode<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(m) => s.collect_str(&format_args!("0{m:o}")),
        None => s.serialize_none(),
    }
}

/// `extra_hosts` print as a sorted list of `host=ip`.
fn ser_hosts<S: Serializer>(v: &BTreeMap<String, Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    let mut list: Vec<String> = v
        .iter()
        .flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}={ip}")))
        .collect();
    list.sort();
    s.collect_seq(list)
}

/// Lenient decoders, one per compose-go `DecodeMapstructure`.
pub(crate) mod lenient {
    use super::*;
    pub use serde::de::Error;

    /// A scalar as text (`8080` → `"8080"`), as mapstructure's weak typing does.
    pub fn scalar_text(v: &J) -> Option<String> {
        match v {
            J::String(s) => Some(s.clone()),
            J::Number(n) => Some(n.to_string()),
            J::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn to_i64(v: &J) -> Result<i64, String> {
        match v {
            J::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| format!("expected an integer, got {n}")),
            J::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("expected an integer, got {s:?}")),
            J::Null => Ok(0),
            other => Err(format!("expected an integer, got {other}")),
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let v = J::deserialize(d)?;
        match v {
            J::Null => Ok(String::new()),
            other => scalar_text(&other)
                .ok_or_else(|| D::Error::custom(format!("expected a string, got {other}"))),
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        to_i64(&J::deserialize(d)?).map_err(D::Error::custom)
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(None),
            v => to_i64(&v).map(Some).map_err(D::Error::custom),
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = to_i64(&J::deserialize(d)?).map_err(D::Error::custom)?;
        u64::try_from(n).map_err(|_| D::Error::custom(format!("{n} must not be negative")))
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(None),
            v => {
                let n = to_i64(&v).map_err(D::Error::custom)?;
                u64::try_from(n)
                    .map(Some)
                    .map_err(|_| D::Error::custom(format!("{n} must not be negative")))
            }
        }
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = to_i64(&J::deserialize(d)?).map_err(D::Error::custom)?;
        u32::try_from(n).map_err(|_| D::Error::custom(format!("{n} is out of range")))
    }

    pub fn f32<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        match J::deserialize(d)? {
            J::Number(n) => Ok(n.as_f64().unwrap_or(0.0) as f32),
            J::String(s) => s
                .trim()
                .parse::<f32>()
                .map_err(|_| D::Error::custom(format!("expected a number, got {s:?}"))),
            J::Null => Ok(0.0),
            other => Err(D::Error::custom(format!("expected a number, got {other}"))),
        }
    }

    fn to_bool(v: &J) -> Result<bool, String> {
        match v {
            J::Bool(b) => Ok(*b),
            J::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(true),
                "false" | "0" | "f" | "" => Ok(false),
                _ => Err(format!("expected a boolean, got {s:?}")),
            },
            J::Number(n) => Ok(n.as_f64() != Some(0.0)),
            J::Null => Ok(false),
            other => Err(format!("expected a boolean, got {other}")),
        }
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        to_bool(&J::deserialize(d)?).map_err(D::Error::custom)
    }

    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(None),
            v => to_bool(&v).map(Some).map_err(D::Error::custom),
        }
    }

    /// A string or a list of scalars.
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(Vec::new()),
            J::Array(items) => items
                .iter()
                .map(|e| {
                    scalar_text(e)
                        .ok_or_else(|| D::Error::custom(format!("expected a string, got {e}")))
                })
                .collect(),
            other => scalar_text(&other)
                .map(|s| vec![s])
                .ok_or_else(|| D::Error::custom(format!("expected a string list, got {other}"))),
        }
    }

    /// Labels, sysctls, options: a mapping (null → `""`) or a `k=v` list.
    pub fn mapping<'de, D: Deserializer<'de>>(d: D) -> Result<Mapping, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(Mapping::new()),
            J::Object(m) => Ok(m
                .into_iter()
                .map(|(k, v)| (k, scalar_text(&v).unwrap_or_default()))
                .collect()),
            J::Array(items) => Ok(items
                .iter()
                .map(|e| {
                    let s = scalar_text(e).unwrap_or_default();
                    match s.split_once('=') {
                        Some((k, v)) => (k.to_owned(), v.to_owned()),
                        None => (s, String::new()),
                    }
                })
                .collect()),
            other => Err(D::Error::custom(format!("expected a mapping, got {other}"))),
        }
    }

    /// `environment`, `build.args`: a mapping (null = unset) or a `k[=v]` list.
    pub fn mapping_with_equals<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<MappingWithEquals, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(MappingWithEquals::new()),
            J::Object(m) => Ok(m.into_iter().map(|(k, v)| (k, scalar_text(&v))).collect()),
            J::Array(items) => {
                let mut out = MappingWithEquals::new();
                for e in &items {
                    let s = scalar_text(e).unwrap_or_default();
                    let (k, v) = match s.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (s, None),
                    };
                    if k.ends_with(char::is_whitespace) {
                        return Err(D::Error::custom(format!(
                            "environment variable {k} is declared with a trailing space"
                        )));
                    }
                    out.insert(k, v);
                }
                Ok(out)
            }
            other => Err(D::Error::custom(format!("expected a mapping, got {other}"))),
        }
    }

    pub fn multi_options<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(BTreeMap::new()),
            J::Object(m) => Ok(m
                .into_iter()
                .map(|(k, v)| {
                    let vals = match v {
                        J::Array(items) => items.iter().filter_map(scalar_text).collect(),
                        other => scalar_text(&other).into_iter().collect(),
                    };
                    (k, vals)
                })
                .collect()),
            other => Err(D::Error::custom(format!("expected a mapping, got {other}"))),
        }
    }

    /// A map whose values may be null (`networks: {default: null}`).
    pub fn null_map<'de, D, T>(d: D) -> Result<BTreeMap<String, Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: serde::de::DeserializeOwned,
    {
        match J::deserialize(d)? {
            J::Null => Ok(BTreeMap::new()),
            J::Array(items) => Ok(items
                .iter()
                .filter_map(scalar_text)
                .map(|k| (k, None))
                .collect()),
            J::Object(m) => m
                .into_iter()
                .map(|(k, v)| {
                    if v.is_null() {
                        Ok((k, None))
                    } else {
                        serde_json::from_value(v)
                            .map(|t| (k.clone(), Some(t)))
                            .map_err(|e| D::Error::custom(format!("{k}: {e}")))
                    }
                })
                .collect(),
            other => Err(D::Error::custom(format!("expected a mapping, got {other}"))),
        }
    }

    /// `extra_hosts`: `host=ip` / `host:ip` list, or a `host: ip|[ips]` mapping.
    pub fn hosts<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        match J::deserialize(d)? {
            J::Null => {}
            J::Object(m) => {
                for (k, v) in m {
                    let ips = match v {
                        J::Array(items) => items.iter().filter_map(scalar_text).collect(),
                        other => vec![scalar_text(&other).unwrap_or_default()],
                    };
                    out.insert(k, ips);
                }
            }
            J::Array(items) => {
                for e in &items {
                    let s = scalar_text(e).unwrap_or_default();
                    let (host, ip) =
                        s.split_once('=')
                            .or_else(|| s.split_once(':'))
                            .ok_or_else(|| {
                                D::Error::custom(format!(
                                    "invalid additional host, missing IP: {s}"
                                ))
                            })?;
                    out.entry(host.to_owned())
                        .or_default()
                        .extend(ip.split(',').map(str::to_owned));
                }
            }
            other => {
                return Err(D::Error::custom(format!(
                    "unexpected value type for extra_hosts: {other}"
                )))
            }
        }
        for (host, ips) in out.iter_mut() {
            if host.is_empty() || host.contains([':', '=']) {
                return Err(D::Error::custom(format!("bad host name '{host}'")));
            }
            for ip in ips.iter_mut() {
                if ip.len() > 2 && ip.starts_with('[') && ip.ends_with(']') {
                    *ip = ip[1..ip.len() - 1].to_owned();
                }
            }
        }
        Ok(out)
    }

    /// `command`, `entrypoint`: a list, or a string split like a shell would.
    pub fn shell_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(None),
            J::String(s) => shell_words(&s).map(Some).map_err(D::Error::custom),
            J::Array(items) => Ok(Some(items.iter().filter_map(scalar_text).collect())),
            other => scalar_text(&other)
                .map(|s| Some(vec![s]))
                .ok_or_else(|| D::Error::custom(format!("invalid command {other}"))),
        }
    }

    pub fn healthcheck_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(Vec::new()),
            J::String(s) => Ok(vec!["CMD-SHELL".to_owned(), s]),
            J::Array(items) => Ok(items.iter().filter_map(scalar_text).collect()),
            other => Err(D::Error::custom(format!(
                "unexpected value type for healthcheck.test: {other}"
            ))),
        }
    }

    pub fn device_count<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match J::deserialize(d)? {
            J::String(s) if s.eq_ignore_ascii_case("all") => Ok(-1),
            J::String(s) => s.parse().map_err(|_| {
                D::Error::custom(format!(
                    "invalid value {s:?}, the only value allowed is 'all' or a number"
                ))
            }),
            v => to_i64(&v).map_err(D::Error::custom),
        }
    }

    pub fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(None),
            J::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("invalid file mode {s:?}"))),
            v => to_i64(&v)
                .and_then(|n| u32::try_from(n).map_err(|_| format!("invalid file mode {n}")))
                .map(Some)
                .map_err(D::Error::custom),
        }
    }

    pub fn ssh<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SshKey>, D::Error> {
        match J::deserialize(d)? {
            J::Null => Ok(Vec::new()),
            J::Object(m) => Ok(m
                .into_iter()
                .map(|(id, p)| SshKey {
                    id,
                    path: scalar_text(&p).unwrap_or_default(),
                })
                .collect()),
            J::Array(items) => items
                .iter()
                .map(|e| {
                    let s = scalar_text(e).unwrap_or_default();
                    match s.split_once('=') {
                        Some((id, path)) => Ok(SshKey {
                            id: id.to_owned(),
                            path: path.to_owned(),
                        }),
                        None if s == "default" => Ok(SshKey {
                            id: s,
                            path: String::new(),
                        }),
                        None => Err(D::Error::custom(format!("invalid ssh key {s:?}"))),
                    }
                })
                .collect(),
            other => Err(D::Error::custom(format!("invalid ssh config {other}"))),
        }
    }

    /// Splits a command line into words: whitespace separates, single quotes
    /// are literal, double quotes allow `\` escapes, and an unquoted `;`, `&`,
    /// `|`, `<` or `>` ends the command (as go-shellwords, which compose-go uses).
    pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        let mut chars = s.chars();
        let mut single = false;
        let mut double = false;
        while let Some(c) = chars.next() {
            if single {
                if c == '\'' {
                    single = false;
                } else {
                    cur.push(c);
                }
                continue;
            }
            match c {
                '\\' => {
                    in_word = true;
                    match chars.next() {
                        Some(n) if double && !matches!(n, '"' | '\\' | '$' | '`' | '\n') => {
                            cur.push('\\');
                            cur.push(n);
                        }
                        Some('\n') => {}
                        Some(n) => cur.push(n),
                        None => cur.push('\\'),
                    }
                }
                '"' => {
                    in_word = true;
                    double = !double;
                }
                '\'' if !double => {
                    in_word = true;
                    single = true;
                }
                c if !double && (c == ' ' || c == '\t' || c == '\r' || c == '\n') => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                ';' | '&' | '|' | '<' | '>' if !double => break,
                c => {
                    in_word = true;
                    cur.push(c);
                }
            }
        }
        if single || double {
            return Err(format!("invalid command line string: {s}"));
        }
        if in_word {
            words.push(cur);
        }
        Ok(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_helpers() {
        let mut s = Service::default();
        for (name, priority) in [("b", 0), ("a", 0), ("z", 10)] {
            s.networks.insert(
                name.into(),
                Some(ServiceNetwork {
                    priority,
                    ..ServiceNetwork::default()
                }),
            );
        }
        assert_eq!(s.networks_by_priority(), ["z", "a", "b"]);
        assert_eq!(s.pull_policy().unwrap(), PullPolicy::Missing);
        s.pull_policy = "every_2h".into();
        assert_eq!(
            s.pull_policy().unwrap(),
            PullPolicy::Refresh(Duration(2 * 3_600_000_000_000))
        );
        s.pull_policy = "every_x".into();
        assert!(s.pull_policy().is_err());
        s.scale = None;
        s.deploy = Some(Deploy {
            replicas: Some(3),
            ..Deploy::default()
        });
        assert_eq!(s.replicas(), 3);
    }

    #[test]
    fn durations_print_like_go() {
        let d = |s: &str| Duration::parse(s).unwrap().to_string();
        assert_eq!(d("90s"), "1m30s");
        assert_eq!(d("1m30s"), "1m30s");
        assert_eq!(d("1h"), "1h0m0s");
        assert_eq!(d("1.5s"), "1.5s");
        assert_eq!(d("500ms"), "500ms");
        assert_eq!(d("0"), "0s");
        assert_eq!(d("10us"), "10µs");
        assert_eq!(d("1d"), "24h0m0s");
        assert_eq!(d("2m3.25s"), "2m3.25s");
        assert!(Duration::parse("10").is_err());
        assert!(Duration::parse("5x").is_err());
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(UnitBytes::parse("2g").unwrap().0, 2 << 30);
        assert_eq!(UnitBytes::parse("512m").unwrap().0, 512 << 20);
        assert_eq!(UnitBytes::parse("1kb").unwrap().0, 1024);
        assert_eq!(UnitBytes::parse("1.5GiB").unwrap().0, 3 << 29);
        assert_eq!(UnitBytes::parse("123").unwrap().0, 123);
        assert!(UnitBytes::parse("12x").is_err());
        assert_eq!(
            serde_json::to_value(UnitBytes(1024)).unwrap(),
            J::from("1024")
        );
    }

    #[test]
    fn shell_words_split_like_a_shell() {
        let w = lenient::shell_words;
        assert_eq!(w("echo hello world").unwrap(), ["echo", "hello", "world"]);
        assert_eq!(
            w(r#"sh -c "echo 'a b'""#).unwrap(),
            ["sh", "-c", "echo 'a b'"]
        );
        assert_eq!(w(r"a\ b 'c d'").unwrap(), ["a b", "c d"]);
        assert_eq!(w(r#"x "" y"#).unwrap(), ["x", "", "y"]);
        assert!(w("'open").is_err());
    }

    #[test]
    fn service_prints_command_and_entrypoint_as_null() {
        let s = Service {
            image: "busybox".into(),
            ..Default::default()
        };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"command": null, "entrypoint": null, "image": "busybox"})
        );
    }

    #[test]
    fn lenient_fields_read_compose_shapes() {
        let j = serde_json::json!({
            "labels": ["a=1", "b"],
            "environment": ["X=1", "Y"],
            "mem_limit": "1g",
            "command": "echo hi",
            "extra_hosts": ["h1:1.2.3.4", "h2=[::1]"],
            "ulimits": {"nproc": 65535, "nofile": {"soft": 1, "hard": 2}},
            "healthcheck": {"test": "true", "interval": "1m30s"},
            "secrets": [{"source": "s", "mode": "0440"}],
        });
        let s: Service = serde_json::from_value(j).unwrap();
        assert_eq!(s.labels["b"], "");
        assert_eq!(s.environment["Y"], None);
        assert_eq!(s.mem_limit.0, 1 << 30);
        assert_eq!(s.command.as_deref().unwrap(), ["echo", "hi"]);
        assert_eq!(s.extra_hosts["h2"], ["::1"]);
        assert_eq!(s.ulimits["nofile"].limits(), (1, 2));
        assert_eq!(s.secrets[0].mode, Some(0o440));
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["mem_limit"], "1073741824");
        assert_eq!(out["ulimits"]["nproc"], 65535);
        assert_eq!(
            out["extra_hosts"],
            serde_json::json!(["h1=1.2.3.4", "h2=::1"])
        );
        assert_eq!(out["healthcheck"]["interval"], "1m30s");
        assert_eq!(out["secrets"][0]["mode"], "0440");
    }
}
