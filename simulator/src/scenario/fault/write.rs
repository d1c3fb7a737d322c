//! Writing a varied fault back into its scenario file entry, so that the
//! entry parses back to exactly that fault: what `sim shrink --swarm`
//! writes a seed's mix down with. The kinds'
//! [`crate::scenario::fault::kind::Kind::write_back`] are written with these.

use crate::network::LinkModel;
use crate::scenario::fleet::Nodes;
use std::time::Duration;
use toml::{Table, Value};

/// Sets `field` to `at` in seconds, exactly.
pub fn seconds(entry: &mut Table, field: &str, at: Duration) {
    entry.insert(field.into(), Value::Float(exact(at, 1.0)));
}

/// Writes a span: `at_s`, and `end_field` when it ends.
pub fn span(entry: &mut Table, at: Duration, end_field: &str, end: Option<Duration>) {
    seconds(entry, "at_s", at);
    if let Some(end) = end {
        seconds(entry, end_field, end);
    }
}

/// Sets `field` to `duration` in milliseconds, exactly.
pub fn millis(entry: &mut Table, field: &str, duration: Duration) {
    entry.insert(field.into(), Value::Float(exact(duration, 1000.0)));
}

/// Writes what a variation changes of the entry's `nodes` set.
pub fn nodes_field(entry: &mut Table, nodes: &Nodes) {
    if let Some(file) = entry.get_mut("nodes") {
        self::nodes(file, nodes);
    }
}

/// Writes what a variation changes of a node set: its count or fraction.
pub fn nodes(file: &mut Value, nodes: &Nodes) {
    let Value::Table(file) = file else {
        return;
    };
    if let Some(count) = nodes.count {
        file.insert("count".into(), Value::Integer(i64::from(count)));
    }
    if let Some(fraction) = nodes.fraction {
        file.insert("fraction".into(), Value::Float(fraction));
    }
}

/// Writes a link model's loss, duplication and reordering rates.
pub fn loss(table: &mut Table, model: &LinkModel) {
    table.insert("loss".into(), Value::Float(model.loss));
    table.insert("duplicate".into(), Value::Float(model.duplicate));
    table.insert("reorder".into(), Value::Float(model.reorder));
}

/// The number that the parser, reading it as `value / scale` seconds, turns
/// back into exactly `duration`: a mix moves faults by arbitrary
/// nanoseconds, and a replay that is a nanosecond off is another run.
pub fn exact(duration: Duration, scale: f64) -> f64 {
    let nearest = duration.as_secs_f64() * scale;
    (0..=8u64)
        .flat_map(|step| {
            let bits = nearest.to_bits();
            [bits.wrapping_add(step), bits.wrapping_sub(step)]
        })
        .map(f64::from_bits)
        .find(|&value| {
            value.is_finite()
                && value >= 0.0
                && Duration::try_from_secs_f64(value / scale).ok() == Some(duration)
        })
        .unwrap_or(nearest)
}

#[cfg(test)]
mod tests {
    use super::exact;
    use std::time::Duration;

    #[test]
    fn written_times_parse_back_to_the_same_nanosecond() {
        for nanos in [
            0,
            1,
            999_999_999,
            12_345_678_901,
            299_999_999_999,
            7_000_000_003,
        ] {
            let duration = Duration::from_nanos(nanos);
            assert_eq!(Duration::from_secs_f64(exact(duration, 1.0)), duration);
            assert_eq!(
                Duration::from_secs_f64(exact(duration, 1000.0) / 1000.0),
                duration
            );
        }
    }
}
