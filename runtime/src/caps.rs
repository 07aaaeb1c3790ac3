//! Capability names (`CAP_CHOWN`…) to kernel numbers, and the five sets of a
//! process as bit masks. Names come from the OCI spec as strings; the kernel
//! numbers are from `linux/capability.h`.

use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// Kernel capability numbers by name, in kernel order.
static NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (see DESIGN.md, "Security defaults").
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability name this runtime knows, in kernel order.
pub fn all_names() -> &'static [&'static str] {
    NAMES
}

/// The kernel number of a capability name such as `CAP_NET_RAW`.
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The highest capability number the running kernel knows
/// (`/proc/sys/kernel/cap_last_cap`), or ours if it cannot be read.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
}

/// The spec name of an `oci_spec` capability (`CAP_…`).
pub(crate) fn spec_name(cap: &oci_spec::runtime::Capability) -> String {
    match serde_json::to_value(cap) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("CAP_{cap}"),
    }
}

/// A capability set as a bit mask; unknown names are returned as errors.
pub(crate) fn mask(set: Option<&Capabilities>) -> Result<u64, String> {
    let mut bits = 0u64;
    for cap in set.into_iter().flatten() {
        let name = spec_name(cap);
        let n = number(&name).ok_or(name)?;
        bits |= 1 << n;
    }
    Ok(bits)
}

/// The five capability sets of a process, as masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sets {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

impl Sets {
    /// Converts the spec's sets; an unknown capability name is an error
    /// naming it.
    pub(crate) fn from_spec(caps: Option<&LinuxCapabilities>) -> Result<Self, String> {
        let Some(caps) = caps else {
            return Ok(Self::default());
        };
        Ok(Self {
            bounding: mask(caps.bounding().as_ref())?,
            effective: mask(caps.effective().as_ref())?,
            inheritable: mask(caps.inheritable().as_ref())?,
            permitted: mask(caps.permitted().as_ref())?,
            ambient: mask(caps.ambient().as_ref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    #[test]
    fn numbers_match_the_kernel_header() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_AUDIT_WRITE"), Some(29));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
    }

    #[test]
    fn spec_sets_become_masks() {
        let set: Capabilities = [Capability::Chown, Capability::NetRaw]
            .into_iter()
            .collect();
        assert_eq!(mask(Some(&set)).unwrap(), 1 | 1 << 13);
        assert_eq!(spec_name(&Capability::AuditWrite), "CAP_AUDIT_WRITE");
    }
}
