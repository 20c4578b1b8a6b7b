//! Plain text tables for the command line's output (`stile keys list`): each column as
//! wide as its widest cell, so the columns line up whatever the values are.

use std::io::Write;

/// Writes `header` and `rows` to `out`, left-aligned, two spaces between columns, with
/// no padding after the last column.
pub fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["vk_test_abcdefghijklmnopqrstuv".to_string(), "test".into(), "(all)".into()],
            vec!["vk_live_x".to_string(), "live".into(), "app_01M9565Z96MPDY5K335P4KSJEB".into()],
        ];
        let mut out = Vec::new();
        write_table(&mut out, &["PREFIX", "MODE", "APPLICATION"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PREFIX                          MODE  APPLICATION");
        assert_eq!(lines[1], "vk_test_abcdefghijklmnopqrstuv  test  (all)");
        assert_eq!(lines[2], "vk_live_x                       live  app_01M9565Z96MPDY5K335P4KSJEB");
    }
}
