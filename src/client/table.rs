//! How the client prints the admin API's JSON: tables of cells.

use std::cmp::Ordering;

use fleetmesh_runtime::files;
use serde_json::Value;

/// A table: a header row and left-aligned columns two spaces apart.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Sorts `rows` by their cells from the left, each in natural order, so
/// that `node-2` comes before `node-10`.
pub(super) fn sort_rows(rows: &mut [Vec<String>]) {
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(a, b)| natural(a, b))
            .find(|order| order.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len()))
    });
}

/// Compares `a` and `b` run by run: runs of digits by their value, other
/// runs as text.
fn natural(mut a: &str, mut b: &str) -> Ordering {
    // Every pass takes at least one character off both: bounded by length.
    while !a.is_empty() && !b.is_empty() {
        let (run_a, rest_a) = leading_run(a);
        let (run_b, rest_b) = leading_run(b);
        let digits = |run: &str| run.starts_with(|c: char| c.is_ascii_digit());
        let order = if digits(run_a) && digits(run_b) {
            let (value_a, value_b) = (run_a.trim_start_matches('0'), run_b.trim_start_matches('0'));
            value_a
                .len()
                .cmp(&value_b.len())
                .then_with(|| value_a.cmp(value_b))
                .then_with(|| run_a.len().cmp(&run_b.len()))
        } else {
            run_a.cmp(run_b)
        };
        if order.is_ne() {
            return order;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.len().cmp(&b.len())
}

/// The leading run of `text` (all ASCII digits, or none) and the rest.
fn leading_run(text: &str) -> (&str, &str) {
    let digits = text.starts_with(|c: char| c.is_ascii_digit());
    let end = text
        .find(|c: char| c.is_ascii_digit() != digits)
        .unwrap_or(text.len());
    text.split_at(end)
}

/// A JSON field as table text: strings bare, absent or null as `-`.
pub(super) fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A time in milliseconds as RFC 3339, `-` when absent.
pub(super) fn time_cell(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".to_owned(), files::format_time)
}

/// `key=value` pairs of a JSON object of tags, comma-separated.
pub(super) fn tags_cell(value: &Value) -> String {
    let tags: Vec<String> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    if tags.is_empty() {
        "-".to_owned()
    } else {
        tags.join(",")
    }
}

/// The first `count` characters of a hex digest or key.
pub(super) fn short(value: &Value, count: usize) -> String {
    value
        .as_str()
        .map_or_else(|| "-".to_owned(), |text| text.chars().take(count).collect())
}

/// Text shortened to `max` characters, on one line.
pub(super) fn brief(value: &Value, max: usize) -> String {
    let text = cell(value).replace(['\n', '\r'], " ");
    if text.chars().count() <= max {
        return text;
    }
    text.chars().take(max - 1).collect::<String>() + "…"
}

/// The array `field` of `value`; empty when absent.
pub(super) fn list<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value[field].as_array().map_or(&[], Vec::as_slice)
}

/// Prints `value` as pretty JSON (`--json`).
pub(super) fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sort_by_their_cells_from_the_left_numbers_by_value() {
        let mut rows: Vec<Vec<String>> = [
            ["node-10", "b"],
            ["node-2", "z"],
            ["node-2", "a"],
            ["-", "x"],
            ["node-1", "q"],
        ]
        .iter()
        .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
        .collect();
        sort_rows(&mut rows);
        let firsts: Vec<String> = rows.iter().map(|row| row.join(" ")).collect();
        assert_eq!(
            firsts,
            ["- x", "node-1 q", "node-2 a", "node-2 z", "node-10 b"]
        );
        assert_eq!(natural("a007", "a7"), Ordering::Greater);
        assert_eq!(natural("a7", "a7x"), Ordering::Less);
    }

    #[test]
    fn a_table_aligns_its_columns_and_shows_absent_values_as_a_dash() {
        let rows = vec![
            vec!["node-10".to_owned(), cell(&Value::Null)],
            vec!["n".to_owned(), cell(&Value::from("alive"))],
        ];
        assert_eq!(
            table(&["NAME", "STATE"], &rows),
            "NAME     STATE\nnode-10  -\nn        alive\n"
        );
    }
}
