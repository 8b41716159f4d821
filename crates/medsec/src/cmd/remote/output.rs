//! How the remote commands print: `table` (the columns people scan, times relative), `wide`
//! (more columns, times in RFC 3339), `json` (the server's answer as it is, raw times, for
//! scripts: its fields are the API's, which only grow) and `yaml` (the same data).

use std::io::Write as _;

use anyhow::{Result, bail};
use serde_json::Value;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Columns, relative times.
    Table,
    /// More columns, RFC 3339 times.
    Wide,
    /// The API's JSON.
    Json,
    /// The API's data as YAML.
    Yaml,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "wide" => Ok(Self::Wide),
            "json" => Ok(Self::Json),
            "yaml" => Ok(Self::Yaml),
            other => Err(format!(
                "unknown output format {other:?}: use table, wide, json or yaml"
            )),
        }
    }
}

/// What a column shows.
#[derive(Clone, Copy)]
pub enum Kind {
    /// The value as text (arrays joined with commas).
    Text,
    /// Unix milliseconds, shown as a time.
    Time,
}

/// A column: its header, the dotted path of its value in each row, and whether only `wide`
/// shows it.
pub struct Col {
    /// Header.
    pub header: &'static str,
    /// Dotted path (`risk.score`).
    pub path: &'static str,
    /// How to show it.
    pub kind: Kind,
    /// Only in `wide`.
    pub wide: bool,
}

/// A column shown in both table formats.
pub const fn col(header: &'static str, path: &'static str) -> Col {
    Col {
        header,
        path,
        kind: Kind::Text,
        wide: false,
    }
}

/// A time column.
pub const fn time(header: &'static str, path: &'static str) -> Col {
    Col {
        header,
        path,
        kind: Kind::Time,
        wide: false,
    }
}

/// A column only `wide` shows.
pub const fn wide(mut c: Col) -> Col {
    c.wide = true;
    c
}

fn lookup<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(row, |v, key| v.get(key))
}

/// A time in Unix milliseconds as `table` shows it: relative to now.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let d = (now_ms - ms) / 1000;
    let (n, unit) = match d.abs() {
        s if s < 60 => (s, "s"),
        s if s < 3600 => (s / 60, "m"),
        s if s < 86_400 => (s / 3600, "h"),
        s => (s / 86_400, "d"),
    };
    if d >= 0 {
        format!("{n}{unit} ago")
    } else {
        format!("in {n}{unit}")
    }
}

/// A time in Unix milliseconds in RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn cell(v: Option<&Value>, kind: Kind, format: Format, now: i64) -> String {
    match (v, kind) {
        (None | Some(Value::Null), _) => "-".into(),
        (Some(Value::Number(n)), Kind::Time) => match n.as_i64() {
            Some(ms) if format == Format::Wide => rfc3339(ms),
            Some(ms) => relative(ms, now),
            None => n.to_string(),
        },
        (Some(Value::String(s)), _) if s.is_empty() => "-".into(),
        (Some(Value::String(s)), _) => s.clone(),
        (Some(Value::Array(items)), _) if items.is_empty() => "-".into(),
        (Some(Value::Array(items)), _) => items
            .iter()
            .map(|i| cell(Some(i), Kind::Text, format, now))
            .collect::<Vec<_>>()
            .join(","),
        (Some(other), _) => other.to_string(),
    }
}

/// Writes to standard output (a closed pipe ends the program quietly: `medsec … | head`).
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => bail!("writing to standard output: {e}"),
    }
}

/// Prints `value` (the whole answer) as JSON or YAML, or `rows` under `cols` as a table.
pub fn print(format: Format, value: &Value, rows: &[Value], cols: &[Col]) -> Result<()> {
    match format {
        Format::Json => emit(&format!("{}\n", serde_json::to_string_pretty(value)?)),
        Format::Yaml => emit(&serde_norway::to_string(value)?),
        Format::Table | Format::Wide => emit(&table(format, rows, cols, medsec_util::now_ms())),
    }
}

/// The table text.
pub fn table(format: Format, rows: &[Value], cols: &[Col], now: i64) -> String {
    let cols: Vec<&Col> = cols
        .iter()
        .filter(|c| format == Format::Wide || !c.wide)
        .collect();
    let mut cells: Vec<Vec<String>> = vec![cols.iter().map(|c| c.header.to_owned()).collect()];
    for row in rows {
        cells.push(
            cols.iter()
                .map(|c| cell(lookup(row, c.path), c.kind, format, now))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_relative_times_and_wide_shows_rfc3339() {
        let rows = vec![
            serde_json::json!({"id": "pump-1", "seen": 1_000_000, "groups": ["a", "b"], "x": {"y": 2.5}}),
        ];
        let cols = [
            col("ID", "id"),
            time("SEEN", "seen"),
            col("GROUPS", "groups"),
            wide(col("Y", "x.y")),
        ];
        let t = table(Format::Table, &rows, &cols, 1_000_000 + 3_600_000);
        assert_eq!(t, "ID      SEEN    GROUPS\npump-1  1h ago  a,b\n");
        let w = table(Format::Wide, &rows, &cols, 0);
        assert!(
            w.contains("1970-01-01T00:16:40Z") && w.contains("2.5"),
            "{w}"
        );
        assert_eq!(relative(10_000, 0), "in 10s");
        assert!(
            "xml"
                .parse::<Format>()
                .unwrap_err()
                .contains("table, wide, json or yaml")
        );
    }
}
