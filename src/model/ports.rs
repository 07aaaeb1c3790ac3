//! The short `ports:` syntax (`"127.0.0.1:8080-8081:80-81/udp"`) turned into
//! long entries, as Docker Compose does it (compose-go `ParsePortConfig` over
//! Docker's `nat.ParsePortSpecs`): one entry per container port of a range,
//! sorted by `port/proto` as text, `mode: ingress`, the protocol lower-cased,
//! the published port kept as text (it may be a range to pick from).

use std::net::IpAddr;

use crate::model::project::Port;

/// Why a short port spec is invalid; the texts are Docker's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid IP address: {0}")]
    InvalidIp(String),
    #[error("no port specified: {0}<empty>")]
    NoPort(String),
    #[error("invalid containerPort: {0}")]
    InvalidContainerPort(String),
    #[error("invalid hostPort: {0}")]
    InvalidHostPort(String),
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    RangeMismatch { container: String, host: String },
    #[error("invalid proto: {0}")]
    InvalidProto(String),
}

/// Parses one short port spec into its long entries.
pub fn parse_port(spec: &str) -> Result<Vec<Port>, PortError> {
    let (ip, host, container) = split_parts(spec);
    let (proto, container) = split_proto(container);
    let ip = if let Some(inner) = ip.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .ok_or_else(|| PortError::InvalidIp(ip.to_owned()))?
    } else {
        ip
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(PortError::InvalidIp(ip.to_owned()));
    }
    if container.is_empty() {
        return Err(PortError::NoPort(spec.to_owned()));
    }
    let (start, end) = port_range(container)
        .ok_or_else(|| PortError::InvalidContainerPort(container.to_owned()))?;
    let (host_start, host_end) = if host.is_empty() {
        (0, 0)
    } else {
        port_range(host).ok_or_else(|| PortError::InvalidHostPort(host.to_owned()))?
    };
    if !host.is_empty() && end - start != host_end - host_start && end != start {
        return Err(PortError::RangeMismatch {
            container: container.to_owned(),
            host: host.to_owned(),
        });
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(PortError::InvalidProto(proto));
    }
    let mut ports: Vec<(String, Port)> = (0..=(end - start))
        .map(|i| {
            let target = start + i;
            let published = if host.is_empty() {
                String::new()
            } else if start == end && host_start != host_end {
                // One container port and a host range: a range to pick from.
                format!("{}-{}", host_start + i, host_end)
            } else {
                (host_start + i).to_string()
            };
            (
                format!("{target}/{proto}"),
                Port {
                    mode: "ingress".to_owned(),
                    host_ip: ip.to_owned(),
                    target,
                    published,
                    protocol: proto.clone(),
                    ..Port::default()
                },
            )
        })
        .collect();
    ports.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ports.into_iter().map(|(_, p)| p).collect())
}

/// `ip:host:container`, where the IP may itself hold colons (IPv6).
fn split_parts(spec: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    match n {
        1 => ("", "", parts[0]),
        2 => ("", parts[0], parts[1]),
        3 => (parts[0], parts[1], parts[2]),
        _ => {
            let container = parts[n - 1];
            let host = parts[n - 2];
            let ip_len = spec.len() - container.len() - host.len() - 2;
            (&spec[..ip_len], host, container)
        }
    }
}

/// `80/udp` → (`udp`, `80`); no protocol means tcp.
fn split_proto(s: &str) -> (&str, &str) {
    let mut parts = s.splitn(3, '/');
    let port = parts.next().unwrap_or("");
    if s.is_empty() || port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

/// `8080` or `8080-8090`, each a 16-bit port, the end not before the start.
fn port_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once('-') {
        None => s.parse::<u16>().ok().map(|p| (u32::from(p), u32::from(p))),
        Some((a, b)) => {
            let a: u16 = a.parse().ok()?;
            let b: u16 = b.parse().ok()?;
            (b >= a).then_some((u32::from(a), u32::from(b)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/compose-go/port-spec/cases.json"
    );

    /// compose-go's port table, against Docker Compose's recorded answers.
    #[test]
    fn compose_go_port_cases() {
        let text = std::fs::read_to_string(FIXTURES).unwrap_or_else(|e| {
            panic!("{FIXTURES}: {e}: the shared fixtures must sit beside the repository")
        });
        let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut checked = 0;
        for case in cases["cases"].as_array().unwrap() {
            let input = case["input"].as_str().unwrap();
            let reference = &case["reference"];
            let got = parse_port(input);
            if input.is_empty() {
                // Docker Compose's schema refuses "" before the parser sees
                // it; ours refuses it too, with the parser's own words.
                assert!(got.is_err());
                checked += 1;
                continue;
            }
            if reference["rc"] == 0 {
                let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                let json = serde_json::to_value(&got).unwrap();
                assert_eq!(json, reference["ports"], "{input}");
            } else {
                let err = got.expect_err(input).to_string();
                assert_eq!(err, reference["error"].as_str().unwrap(), "{input}");
            }
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} cases");
    }

    #[test]
    fn ipv6_host_ip_and_sorting() {
        let p = parse_port("[::1]:8080:80").unwrap();
        assert_eq!(p[0].host_ip, "::1");
        assert_eq!(p[0].published, "8080");
        let p = parse_port("9998-10001:9998-10001").unwrap();
        let targets: Vec<u32> = p.iter().map(|p| p.target).collect();
        assert_eq!(targets, vec![10000, 10001, 9998, 9999]);
        assert!(parse_port("80-81:90-99").is_err());
    }
}
