//! The raw-SQL baseline: the statements the server ran for W1–W3, taken from the PostgreSQL
//! log (`log_statement = all`, between the markers `statements --pg-marks` writes), with their
//! parameters inlined, as pgbench scripts. Reads replay as captured; a W3 script gets a fresh
//! version id (`gen_random_uuid()`), the next version number and the next audit sequence
//! number, so it can run again and again.

use anyhow::{Context as _, bail};
use rkflow_store::reads::POSTGRES_READ_PLAN_MODE;
use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _};
use std::path::Path;

/// One log record (a line and its continuation lines).
fn records(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let b = line.as_bytes();
        let starts = b.len() > 11
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' ';
        match out.last_mut() {
            Some(last) if !starts => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// `$1 = '…', $2 = NULL` → literals by number.
fn parse_parameters(text: &str) -> anyhow::Result<BTreeMap<usize, String>> {
    let mut params = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        let number: usize = chars[i + 1..j].iter().collect::<String>().parse()?;
        // " = "
        j += 3;
        if chars[j..].starts_with(&['N', 'U', 'L', 'L']) {
            params.insert(number, "NULL".to_string());
            i = j + 4;
            continue;
        }
        if chars.get(j) != Some(&'\'') {
            bail!("unexpected parameter syntax near ${number}");
        }
        let mut value = String::from("'");
        let mut k = j + 1;
        loop {
            match chars.get(k) {
                None => bail!("unterminated parameter ${number}"),
                Some('\'') if chars.get(k + 1) == Some(&'\'') => {
                    value.push_str("''");
                    k += 2;
                }
                Some('\'') => {
                    value.push('\'');
                    k += 1;
                    break;
                }
                Some(c) => {
                    value.push(*c);
                    k += 1;
                }
            }
        }
        params.insert(number, value);
        i = k;
    }
    Ok(params)
}

/// pgbench reads `:name` as a variable anywhere, also inside literals: literals holding a
/// colon (times, JSON) or a backslash (bytea) become escape strings without either.
fn pgbench_safe(literal: &str) -> String {
    if !literal.starts_with('\'') || !(literal.contains(':') || literal.contains('\\')) {
        return literal.to_string();
    }
    let inner = &literal[1..literal.len() - 1];
    format!("E'{}'", inner.replace('\\', "\\\\").replace(':', "\\x3a"))
}

/// The SQL with `$n` replaced (outside literals).
fn inline(sql: &str, params: &BTreeMap<usize, String>) -> anyhow::Result<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let number: usize = chars[i + 1..j].iter().collect::<String>().parse()?;
            let value = params
                .get(&number)
                .with_context(|| format!("no value for ${number} in {sql}"))?;
            out.push_str(value);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

struct Captured {
    workload: String,
    n: u64,
    statements: Vec<(String, BTreeMap<usize, String>)>,
}

fn capture(text: &str) -> anyhow::Result<Vec<Captured>> {
    let records = records(text);
    let mut captured = Vec::new();
    let mut current: Option<Captured> = None;
    let mut index = 0;
    while index < records.len() {
        let record = &records[index];
        index += 1;
        if let Some(at) = record.find("rkflow-bench-mark ") {
            let words: Vec<&str> = record[at..]
                .trim_end_matches(|c: char| c == '\'' || c.is_whitespace())
                .split_whitespace()
                .collect();
            if words.len() >= 4 {
                let edge = words[3].trim_end_matches('\'');
                if edge == "begin" {
                    current = Some(Captured {
                        workload: words[1].to_string(),
                        n: words[2].parse().unwrap_or(0),
                        statements: Vec::new(),
                    });
                } else if let Some(done) = current.take() {
                    captured.push(done);
                }
            }
            continue;
        }
        let Some(capture) = current.as_mut() else {
            continue;
        };
        let sql = if let Some(at) = record.find("LOG:  statement: ") {
            record[at + "LOG:  statement: ".len()..].to_string()
        } else if let Some(at) = record.find("LOG:  execute ") {
            let rest = &record[at + "LOG:  execute ".len()..];
            match rest.find(": ") {
                Some(colon) => rest[colon + 2..].to_string(),
                None => continue,
            }
        } else {
            continue;
        };
        let mut params = BTreeMap::new();
        if let Some(next) = records.get(index)
            && let Some(at) = next.find("DETAIL:  parameters: ")
        {
            params = parse_parameters(&next[at + "DETAIL:  parameters: ".len()..])?;
            index += 1;
        }
        capture.statements.push((sql, params));
    }
    Ok(captured)
}

/// A logged statement without the plan mode that a read view sends in its `BEGIN`'s simple
/// query (`rkflow_store::reads::POSTGRES_READ_PLAN_MODE`): the mode matters only for statements
/// with parameters, which the replay has none of, and pgbench would send it in a round trip of
/// its own.
fn without_read_plan_mode(sql: &str) -> &str {
    sql.strip_suffix(POSTGRES_READ_PLAN_MODE)
        .and_then(|begin| begin.strip_suffix("; "))
        .unwrap_or(sql)
}

/// Whether a logged statement begins a transaction (`BEGIN`, or `BEGIN` with its modes, as a
/// query's read view on PostgreSQL sends it).
fn begins_transaction(sql: &str) -> bool {
    let sql = sql.trim();
    sql == "BEGIN" || sql.starts_with("BEGIN ")
}

/// Whether a logged statement ends a transaction.
fn ends_transaction(sql: &str) -> bool {
    matches!(sql.trim(), "COMMIT" | "ROLLBACK")
}

/// A replayable script of one captured request.
///
/// A query's read transaction ends with a `ROLLBACK` that the pool sends after the answer
/// (`ReadView::finish`), so it may be logged after the request's end marker — then the next
/// request begins with it, or it falls between two requests. The script therefore drops an
/// end before its first `BEGIN` and ends a transaction left open with `ROLLBACK`.
fn script(captured: &Captured) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut open = false;
    let write = captured.workload == "w3";
    if write {
        out.push_str("SELECT gen_random_uuid() AS vid \\gset\n");
    }
    let mut new_version: Option<String> = None;
    for (sql, params) in &captured.statements {
        let sql = without_read_plan_mode(sql);
        if begins_transaction(sql) {
            open = true;
        } else if ends_transaction(sql) {
            if !open {
                continue;
            }
            open = false;
        }
        let mut params: BTreeMap<usize, String> =
            params.iter().map(|(k, v)| (*k, pgbench_safe(v))).collect();
        if let Some(version) = &new_version {
            for value in params.values_mut() {
                if value == version {
                    *value = "CAST(:vid AS uuid)".into();
                }
            }
        }
        let statement = if write && sql.starts_with("INSERT INTO \"document_version\"") {
            new_version = params.get(&1).cloned();
            let document = params.get(&2).cloned().unwrap_or_default();
            params.insert(1, "CAST(:vid AS uuid)".into());
            params.insert(
                4,
                format!(
                    "(SELECT COALESCE(MAX(\"number\"), 0) + 1 FROM \"document_version\" WHERE \"document_id\" = {document})"
                ),
            );
            format!("{};", inline(sql, &params)?)
        } else if write && sql.starts_with("INSERT INTO \"version_content\"") {
            params.insert(1, "CAST(:vid AS uuid)".into());
            format!("{};", inline(sql, &params)?)
        } else if write && sql.starts_with("SELECT \"audit_head\"") && sql.ends_with("FOR UPDATE") {
            "SELECT \"seq\" + 1 AS seq FROM \"audit_head\" WHERE \"id\" = 1 FOR UPDATE \\gset"
                .to_string()
        } else if write
            && (sql.starts_with("INSERT INTO \"audit_event\"")
                || sql.starts_with("UPDATE \"audit_head\""))
        {
            params.insert(1, ":seq".into());
            format!("{};", inline(sql, &params)?)
        } else {
            format!("{};", inline(sql, &params)?)
        };
        out.push_str(&statement);
        out.push('\n');
    }
    if open {
        out.push_str("ROLLBACK;\n");
    }
    Ok(out)
}

/// Reads the log from `offset` and writes `w1_<n>.sql`, `w2_<n>.sql`, `w3_<n>.sql`.
pub fn scripts(log: &Path, offset: u64, out_dir: &Path) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let captured = capture(&text)?;
    if captured.is_empty() {
        bail!(
            "no marked requests in {} after byte {offset} (was log_statement = all set?)",
            log.display()
        );
    }
    std::fs::create_dir_all(out_dir)?;
    let mut summary: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in &captured {
        let text = script(c)?;
        std::fs::write(out_dir.join(format!("{}_{}.sql", c.workload, c.n)), text)?;
        let entry = summary.entry(c.workload.clone()).or_default();
        entry.0 += 1;
        entry.1 += c.statements.len();
    }
    for (workload, (scripts, statements)) in summary {
        println!(
            "{workload}: {scripts} scripts, {:.1} statements each (as logged, with BEGIN/COMMIT)",
            statements as f64 / scripts as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(statements: &[&str]) -> Captured {
        Captured {
            workload: "w2".into(),
            n: 1,
            statements: statements
                .iter()
                .map(|sql| (sql.to_string(), BTreeMap::new()))
                .collect(),
        }
    }

    /// The previous request's late `ROLLBACK` is dropped and this request's, logged after its
    /// end marker, is added: every script is one whole transaction.
    #[test]
    fn scripts_hold_whole_transactions() {
        let late = captured(&["ROLLBACK", "BEGIN", "SET TRANSACTION READ ONLY", "SELECT 1"]);
        assert_eq!(
            script(&late).expect("script"),
            "BEGIN;\nSET TRANSACTION READ ONLY;\nSELECT 1;\nROLLBACK;\n"
        );
        let whole = captured(&["BEGIN", "SELECT 1", "COMMIT"]);
        assert_eq!(
            script(&whole).expect("script"),
            "BEGIN;\nSELECT 1;\nCOMMIT;\n"
        );
        let snapshot = captured(&[
            "ROLLBACK",
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "SELECT 1",
        ]);
        assert_eq!(
            script(&snapshot).expect("script"),
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT 1;\nROLLBACK;\n"
        );
        // The read view's plan mode is left out (`without_read_plan_mode`).
        let begin =
            format!("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {POSTGRES_READ_PLAN_MODE}");
        let generic = captured(&[&begin, "SELECT 1"]);
        assert_eq!(
            script(&generic).expect("script"),
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT 1;\nROLLBACK;\n"
        );
        let outside = captured(&["SELECT 1"]);
        assert_eq!(script(&outside).expect("script"), "SELECT 1;\n");
    }
}
