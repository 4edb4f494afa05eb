//! A prefilter for the user's pattern: regex-lite has no literal optimisations (it is small
//! because of that), so a pattern costs a PikeVM pass over every line, about 4 µs for 70 bytes.
//! Most patterns start with literal text (`cust-\d{6}|order#\w+`): a line that contains none of
//! those literals cannot match, and `str::contains` says so in nanoseconds.
//!
//! The literals are read from the pattern's text conservatively: each top-level alternative's
//! leading run of plain characters (letters, digits and `-_#@/:=,;'"` and space), without the
//! last one if a quantifier follows it. If any alternative has no such run, or the pattern sets
//! flags (`(?i)` would make the literals case-insensitive), there is no prefilter and every
//! line goes to the regex.

/// Literals one of which every match of `pattern` contains, if its text shows them.
pub fn required(pattern: &str) -> Option<Vec<String>> {
    if pattern.contains("(?") {
        return None;
    }
    let mut literals = Vec::new();
    for alternative in top_level_alternatives(pattern)? {
        let literal = leading_literal(alternative);
        if literal.is_empty() {
            return None;
        }
        literals.push(literal);
    }
    Some(literals)
}

/// `pattern` split at its `|`s outside groups and classes; `None` if it is unbalanced.
fn top_level_alternatives(pattern: &str) -> Option<Vec<&str>> {
    let (mut depth, mut in_class, mut escaped) = (0usize, false, false);
    let mut parts = Vec::new();
    let mut start = 0;
    for (at, c) in pattern.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth = depth.checked_sub(1)?,
            '|' if !in_class && depth == 0 => {
                parts.push(pattern.get(start..at)?);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(pattern.get(start..)?);
    Some(parts)
}

/// The run of plain characters `alternative` starts with, less a last one made optional or
/// repeated by a quantifier.
fn leading_literal(alternative: &str) -> String {
    let plain = |c: char| c.is_alphanumeric() || "-_#@/:=,;'\" ".contains(c);
    let run: String = alternative.chars().take_while(|&c| plain(c)).collect();
    let next = alternative
        .get(run.len()..)
        .and_then(|rest| rest.chars().next());
    let mut run = run;
    if matches!(next, Some('?' | '*' | '+' | '{')) {
        run.pop();
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_lite::Regex;

    #[test]
    fn literals_come_from_each_alternative() {
        let cases: [(&str, Option<&[&str]>); 10] = [
            (r"cust-\d{6}|order#\w+", Some(&["cust-", "order#"])),
            ("abc?d", Some(&["ab"])),
            ("ab*|x", Some(&["a", "x"])),
            ("(secret|key)=.*", None),
            ("token=(a|b)", Some(&["token="])),
            ("[a-z]+@corp", None),
            ("(?i)password", None),
            (r"\d+", None),
            ("a|", None),
            ("x[|]y|z", Some(&["x", "z"])),
        ];
        for (pattern, expected) in cases {
            let got = required(pattern);
            let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, expected, "{pattern}");
        }
    }

    /// The prefilter never turns away a line the regex matches.
    #[test]
    fn no_line_that_matches_is_filtered_out() {
        let patterns = [
            r"cust-\d{2}",
            "ab?c",
            "a+b|c*d",
            "x{2,}y",
            "(ab)+|ba",
            "a.c|b c",
            "é+x",
            r"a\-b|#1",
            "ab|a",
            "b{0}a",
        ];
        let alphabet = ['a', 'b', 'c', 'd', 'x', 'y', '-', '#', '1', 'é', ' '];
        let mut seed = 0x9e37_79b9_u64;
        for pattern in patterns {
            let regex = Regex::new(pattern).unwrap();
            let literals = required(pattern);
            for _ in 0..5_000 {
                let mut line = String::from("cust-");
                for _ in 0..(seed % 9) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    line.push(alphabet[(seed % alphabet.len() as u64) as usize]);
                }
                let passes = literals
                    .as_ref()
                    .is_none_or(|ls| ls.iter().any(|l| line.contains(l.as_str())));
                assert!(passes || !regex.is_match(&line), "{pattern} on {line:?}");
            }
        }
    }
}
