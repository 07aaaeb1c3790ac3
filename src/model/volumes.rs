//! The short service `volumes:` syntax (`./data:/var/lib/data:ro,z`) turned
//! into the long form, as Docker Compose does it (compose-go
//! `format.ParseVolume`): `source:target[:options]` split on colons that are
//! neither a Windows drive's nor inside `${…}`; a source that looks like a
//! path (`.`, `/`, `~`, `\\`, `C:`) makes a bind mount whose host path is
//! created when missing, anything else a named volume; one part alone is an
//! anonymous volume's target. Unknown options are ignored, as Compose does.

use crate::model::project::{ServiceVolume, VolumeBind, VolumeVolume};

/// Why a short volume spec is invalid; the texts are compose-go's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid empty volume spec")]
    Empty,
    #[error("invalid spec: {spec}: {reason}")]
    Invalid { spec: String, reason: &'static str },
}

/// Parses one short volume spec.
pub fn parse_volume(spec: &str) -> Result<ServiceVolume, VolumeError> {
    let mut volume = ServiceVolume::default();
    match spec.chars().count() {
        0 => return Err(VolumeError::Empty),
        1 | 2 => {
            volume.target = spec.to_owned();
            volume.r#type = "volume".to_owned();
            return Ok(volume);
        }
        _ => {}
    }
    let chars: Vec<char> = spec.chars().collect();
    let mut buffer: Vec<char> = Vec::new();
    let mut in_var = 0usize;
    // A sentinel past the end closes the last section.
    for i in 0..=chars.len() {
        let c = chars.get(i).copied();
        if c == Some('$') && chars.get(i + 1) == Some(&'{') {
            in_var += 1;
            buffer.push('$');
            continue;
        }
        if c == Some('}') && in_var > 0 {
            in_var -= 1;
            buffer.push('}');
            continue;
        }
        match c {
            Some(':') if is_windows_drive(&buffer) => buffer.push(':'),
            Some(':') | None if in_var == 0 => {
                if let Err(reason) = populate(c.is_none(), &buffer, &mut volume) {
                    return Err(VolumeError::Invalid {
                        spec: spec.to_owned(),
                        reason,
                    });
                }
                buffer.clear();
            }
            Some(ch) => buffer.push(ch),
            None => {}
        }
    }
    populate_type(&mut volume);
    Ok(volume)
}

fn is_windows_drive(buffer: &[char]) -> bool {
    buffer.len() == 1 && buffer[0].is_alphabetic()
}

fn populate(at_end: bool, buffer: &[char], volume: &mut ServiceVolume) -> Result<(), &'static str> {
    let text: String = buffer.iter().collect();
    if buffer.is_empty() {
        return Err("empty section between colons");
    }
    if volume.source.is_empty() && at_end {
        volume.target = text;
        return Ok(());
    }
    if volume.source.is_empty() {
        volume.source = text;
        return Ok(());
    }
    if volume.target.is_empty() {
        volume.target = text;
        return Ok(());
    }
    if !at_end {
        return Err("too many colons");
    }
    for option in text.split(',') {
        match option {
            "ro" => volume.read_only = true,
            "rw" => volume.read_only = false,
            "nocopy" => {
                volume.volume = Some(VolumeVolume {
                    nocopy: true,
                    ..VolumeVolume::default()
                })
            }
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                volume
                    .bind
                    .get_or_insert_with(VolumeBind::default)
                    .propagation = option.to_owned()
            }
            "z" | "Z" => {
                volume.bind.get_or_insert_with(VolumeBind::default).selinux = option.to_owned()
            }
            _ => {}
        }
    }
    Ok(())
}

fn populate_type(volume: &mut ServiceVolume) {
    if is_file_path(&volume.source) {
        volume.r#type = "bind".to_owned();
        // Compose's short syntax has always created a missing host path.
        volume
            .bind
            .get_or_insert_with(VolumeBind::default)
            .create_host_path = true;
    } else {
        volume.r#type = "volume".to_owned();
        volume.volume.get_or_insert_with(VolumeVolume::default);
    }
}

fn is_file_path(source: &str) -> bool {
    let mut chars = source.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if matches!(first, '.' | '/' | '~') || source.starts_with("\\\\") {
        return true;
    }
    chars.next() == Some(':') && first.is_alphabetic()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/compose-go/volume-spec/cases.json"
    );

    /// compose-go's volume table: the result equals Docker Compose's recorded
    /// answer (or compose-go's expectation where none was recorded).
    #[test]
    fn compose_go_volume_cases() {
        let text = std::fs::read_to_string(FIXTURES).unwrap_or_else(|e| {
            panic!("{FIXTURES}: {e}: the shared fixtures must sit beside the repository")
        });
        let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut failures = Vec::new();
        let mut checked = 0;
        for case in cases["cases"].as_array().unwrap() {
            let id = case["id"].as_str().unwrap_or("?");
            let input = case["input"].as_str().unwrap();
            let got = parse_volume(input);
            let reference = &case["reference"];
            checked += 1;
            match (&got, case.get("error_contains")) {
                (Err(e), Some(want)) => {
                    if !e.to_string().contains(want.as_str().unwrap()) {
                        failures.push(format!("{id}: error {e:?}, want {want}"));
                    }
                }
                (Ok(_), None) if case.get("expected").is_none() => {
                    // Only "parses" is asserted (`expect_ok`).
                    assert_eq!(case["expect_ok"], true, "{id}");
                }
                (Ok(v), None) => {
                    let json = serde_json::to_value(v).unwrap();
                    // The recorded output resolves relative sources against
                    // the project directory; compare with compose-go's
                    // expectation where that differs.
                    let want = if reference["rc"] == 0
                        && reference["volume"]["source"] == case["expected"]["source"]
                    {
                        &reference["volume"]
                    } else {
                        &case["expected"]
                    };
                    if &json != want {
                        failures.push(format!("{id}: got {json}, want {want}"));
                    }
                }
                (got, want) => failures.push(format!("{id}: got {got:?}, want error {want:?}")),
            }
        }
        assert!(checked >= 50, "only {checked} cases");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
