//! A YAML file cut into the parts that can be parsed alone, so that a file
//! with several mistakes is reported whole: each top-level key's block,
//! and each entry of a top-level block list (a registry's monitors). Only
//! the text is cut; each part is parsed by the same typed parser as the
//! whole file, so its first error reads exactly as it would there.

/// One part: the text to parse alone, what to put in front of the paths
/// of its errors, and how its line numbers map to the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub text: String,
    /// For an entry of a list: the list's key and the entry's index; an
    /// error's path `key[0]` in the part is `key[index]` in the file.
    pub entry: Option<(String, usize)>,
    /// Line `n` of `text` (from 1) is line `n + line_offset` of the file.
    pub line_offset: i64,
}

/// The parts of `text`, in order (one, the whole, when it cannot be cut:
/// its fields' errors are still found one after another); empty when it
/// has no top-level key in block style.
pub fn parts(text: &str) -> Vec<Part> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if starts_top_level_key(line) {
            if let Some(last) = blocks.last_mut() {
                last.1 = i;
            }
            blocks.push((i, lines.len()));
        }
    }
    let mut out = Vec::new();
    for (start, end) in blocks {
        match list_entries(&lines[start + 1..end]) {
            Some(entries) => {
                let key = lines[start].split(':').next().unwrap_or_default().trim();
                for (index, (from, to)) in entries.into_iter().enumerate() {
                    let body = lines[start + 1 + from..start + 1 + to].join("\n");
                    out.push(Part {
                        text: format!("{key}:\n{body}\n"),
                        entry: Some((key.to_string(), index)),
                        // Line 2 of the part is the entry's first line.
                        line_offset: (start + 1 + from) as i64 - 1,
                    });
                }
            }
            None => out.push(Part {
                text: lines[start..end].join("\n") + "\n",
                entry: None,
                line_offset: start as i64,
            }),
        }
    }
    out
}

/// Follows `key:` with a block list under it and nothing else (comments
/// and blank lines aside), one line at a time.
struct BlockListCutter<'k> {
    key: &'k str,
    seen_key: bool,
    indent: Option<usize>,
}

/// What a line is to `BlockListCutter`.
enum Cut {
    /// The first line of an entry.
    Entry,
    /// The key, a blank line, a comment, or a line inside an entry.
    Other,
    /// Not what a block list under the key can hold.
    NotAList,
}

impl BlockListCutter<'_> {
    fn line(&mut self, line: &str) -> Cut {
        let bare = line.trim_end_matches(['\n', '\r']);
        let trimmed = bare.trim_start_matches(' ');
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            return Cut::Other;
        }
        if !self.seen_key {
            if bare.trim_end().strip_suffix(':') != Some(self.key) {
                return Cut::NotAList;
            }
            self.seen_key = true;
            return Cut::Other;
        }
        let column = spaces(bare);
        let item = trimmed == "-" || trimmed.starts_with("- ");
        let list = *self.indent.get_or_insert(column);
        if column < list || (column == list && !item) {
            Cut::NotAList
        } else if column == list {
            Cut::Entry
        } else {
            Cut::Other
        }
    }
}

fn cutter(key: &str) -> BlockListCutter<'_> {
    BlockListCutter {
        key,
        seen_key: false,
        indent: None,
    }
}

/// The entries of `text` when it is `key:` with a block list under it and
/// nothing else (comments and blank lines aside), as slices of `text`;
/// `None` otherwise, and for an empty list.
pub fn block_list_entries<'a>(text: &'a str, key: &str) -> Option<Vec<&'a str>> {
    let mut cut = cutter(key);
    let mut entries = Vec::new();
    let mut entry_start = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        match cut.line(line) {
            Cut::NotAList => return None,
            Cut::Entry => {
                if let Some(start) = entry_start.replace(at) {
                    entries.push(&text[start..at]);
                }
            }
            Cut::Other => {}
        }
    }
    entries.push(&text[entry_start?..]);
    Some(entries)
}

/// Each line of `reader` with what it is to the block list under `key`,
/// until its end (true) or until `on` says `false`.
fn each_cut_line(
    mut reader: impl std::io::BufRead,
    key: &str,
    mut on: impl FnMut(Cut, &str) -> bool,
) -> std::io::Result<bool> {
    let mut cut = cutter(key);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(true);
        }
        if !on(cut.line(&line), &line) {
            return Ok(false);
        }
    }
}

/// How many entries `each_block_list_entry` would hand over, without
/// making them.
pub fn count_block_list_entries(
    reader: impl std::io::BufRead,
    key: &str,
) -> std::io::Result<Option<usize>> {
    let mut count = 0;
    let whole = each_cut_line(reader, key, |cut, _| match cut {
        Cut::NotAList => false,
        Cut::Entry => {
            count += 1;
            true
        }
        Cut::Other => true,
    })?;
    Ok((whole && count > 0).then_some(count))
}

/// `block_list_entries` read line by line from `reader`, each entry handed
/// to `take` as soon as it ends, so that memory holds one entry, not the
/// text: how many there were, or `None` where `block_list_entries` says so
/// or `take` says `false` (stop).
pub fn each_block_list_entry(
    reader: impl std::io::BufRead,
    key: &str,
    mut take: impl FnMut(String) -> bool,
) -> std::io::Result<Option<usize>> {
    let (mut entry, mut count, mut room) = (None::<String>, 0, 0);
    let whole = each_cut_line(reader, key, |cut, line| match cut {
        Cut::NotAList => false,
        Cut::Entry => {
            // Entries are alike: each starts with the room the one before
            // took, rather than growing (and copying) line by line.
            let mut next = String::with_capacity(room.max(line.len()));
            next.push_str(line);
            match entry.replace(next) {
                Some(done) => {
                    room = done.len();
                    count += 1;
                    take(done)
                }
                None => true,
            }
        }
        Cut::Other => {
            if let Some(entry) = &mut entry {
                entry.push_str(line);
            }
            true
        }
    })?;
    match entry {
        Some(last) if whole => Ok(take(last).then_some(count + 1)),
        _ => Ok(None),
    }
}

/// `key:` at the first column (not a comment, a list item, or a document marker).
fn starts_top_level_key(line: &str) -> bool {
    let first = line.chars().next();
    !matches!(
        first,
        None | Some(' ' | '\t' | '#' | '-' | '.' | '{' | '[' | '}' | ']')
    ) && line.contains(':')
}

/// The entries of a block list that is the whole of `block` (the lines
/// under a key), as line ranges; `None` when `block` is something else.
fn list_entries(block: &[&str]) -> Option<Vec<(usize, usize)>> {
    let content = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let first = block.iter().position(content)?;
    let indent = spaces(block[first]);
    let is_item = |l: &str| {
        spaces(l) == indent && matches!(l.as_bytes()[indent..], [b'-'] | [b'-', b' ', ..])
    };
    if !is_item(block[first]) {
        return None;
    }
    let mut entries: Vec<(usize, usize)> = Vec::new();
    for (i, line) in block.iter().enumerate().skip(first) {
        if is_item(line) {
            if let Some(last) = entries.last_mut() {
                last.1 = i;
            }
            entries.push((i, block.len()));
        } else if content(line) && spaces(line) <= indent {
            // Something else at the list's own level: not a plain list.
            return None;
        }
    }
    Some(entries)
}

/// The leading spaces of a line (YAML indents with spaces only).
fn spaces(line: &str) -> usize {
    line.bytes().take_while(|b| *b == b' ').count()
}

/// The field of the part's entry or section that an error's `path` (in
/// the part) is in: `parameters` for `monitors[0].parameters.co2`.
pub fn field_of<'a>(part: &Part, path: &'a str) -> Option<&'a str> {
    let rest = match &part.entry {
        Some((key, _)) => path.strip_prefix(&format!("{key}[0].")),
        None => {
            let key = part.text.split(':').next()?;
            path.strip_prefix(&format!("{key}."))
        }
    }?;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|f| !f.is_empty())
}

/// `text` (a part's, or what is left of it) with `field`'s lines made
/// blank, so that the part's next error can be found with line numbers
/// unchanged; `None` when the field is not written in block style there.
pub fn without_field(text: &str, field: &str) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let first = lines.iter().skip(1).position(|l| content(l))? + 1;
    let head = &lines[first];
    // An entry's fields are two columns right of its dash; a section's at
    // the indentation of its first line.
    let item = head.trim_start();
    let (indent, on_dash) = match item == "-" || item.starts_with("- ") {
        true => (spaces(head) + 2, true),
        false => (spaces(head), false),
    };
    let key = format!("{field}:");
    let starts = |i: usize, l: &str| {
        let dash_line = on_dash && i == first;
        let body = if dash_line {
            l.get(indent..).unwrap_or("")
        } else {
            l
        };
        (dash_line || spaces(l) == indent) && body.trim_start().starts_with(&key)
    };
    let at = (first..lines.len()).find(|&i| starts(i, &lines[i]))?;
    let end = (at + 1..lines.len())
        .find(|&i| content(&lines[i]) && spaces(&lines[i]) <= indent)
        .unwrap_or(lines.len());
    lines[at] = if on_dash && at == first {
        // The entry's dash stays, its other fields under it.
        format!("{}-", " ".repeat(indent - 2))
    } else {
        String::new()
    };
    for line in &mut lines[at + 1..end] {
        line.clear();
    }
    Some(lines.join("\n") + "\n")
}

/// How flow collections (`[...]`, `{...}`) nest in a YAML text, brackets
/// inside quoted scalars and comments aside.
pub struct FlowNesting {
    /// Collections still open at the end of the text.
    pub open: usize,
    /// The deepest nesting anywhere in it.
    pub deepest: usize,
}

pub fn flow_nesting(text: &str) -> FlowNesting {
    flow_levels(text).fold(
        FlowNesting {
            open: 0,
            deepest: 0,
        },
        |n, (_, open)| FlowNesting {
            open,
            deepest: n.deepest.max(open),
        },
    )
}

/// After each character of `text`: where the next one starts, and how many
/// flow collections are open (brackets in quoted scalars and comments aside).
fn flow_levels(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut open = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    text.char_indices().map(move |(i, c)| {
        match (quote, c) {
            (_, '\n') if comment => comment = false,
            _ if comment => {}
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => comment = true,
            (None, '[' | '{') => open += 1,
            (None, ']' | '}') => open = open.saturating_sub(1),
            _ => {}
        }
        (i + c.len_utf8(), open)
    })
}

/// `text` with the `key: value` pair of a flow mapping whose value starts
/// at byte `at` blanked out, with one comma beside it (spaces in place of
/// its characters, so that every line and column stays where it was);
/// `None` when no such pair starts there.
pub fn without_flow_pair(text: &str, at: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let end = at + flow_value_length(text.get(at..)?)?;
    let before = text[..at].rfind([',', '{'])?;
    if !text[before + 1..at].trim_end().ends_with(':') {
        return None;
    }
    let (from, to) = if bytes[before] == b',' {
        (before, end)
    } else {
        // The mapping's first pair: the comma after it goes with it.
        let next = text[end..]
            .find(|c: char| !c.is_whitespace())
            .map(|i| end + i);
        match next {
            Some(i) if bytes[i] == b',' => (before + 1, i + 1),
            _ => (before + 1, end),
        }
    };
    let blank: String = text[from..to]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    Some(format!("{}{blank}{}", &text[..from], &text[to..]))
}

/// The length of the flow value `text` starts with: a bracketed
/// collection, a quoted scalar, or a plain scalar up to the next comma,
/// bracket or line end.
fn flow_value_length(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    match *bytes.first()? {
        b'[' | b'{' => flow_levels(text)
            .find(|&(_, open)| open == 0)
            .map(|(end, _)| end),
        quote @ (b'"' | b'\'') => {
            // Escapes: a backslash in double quotes, a doubled quote in single.
            let mut i = 1;
            while i < bytes.len() {
                match (quote, bytes[i]) {
                    (b'"', b'\\') => i += 1,
                    (b'\'', b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 1,
                    (_, b) if b == quote => return Some(i + 1),
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => Some(
            memchr::memchr3(b',', b'}', b']', bytes)
                .map_or(bytes.len(), |end| text[..end].find('\n').unwrap_or(end)),
        ),
    }
}

/// Where the value of `key` is written in the mapping that starts at byte
/// `at` of `text` (its `{`, or its first key in block style): for an error
/// a field's own check raises (a duration, an address), which the parser
/// places at the mapping, having left the value. The key itself when its
/// value starts on a later line; `None` when `at` already is that key's
/// value, or the mapping has no such key.
pub fn value_of_key(text: &str, at: usize, key: &str) -> Option<usize> {
    let before = text.get(..at)?.trim_end();
    if let Some(head) = before.strip_suffix(':') {
        if head.trim_end().ends_with(key) {
            return None;
        }
    }
    let (key_at, after_colon) = match text[at..].starts_with('{') {
        true => key_in_flow_mapping(text, at, key),
        false => key_in_block_mapping(text, at, key),
    }?;
    let rest = &text[after_colon..];
    let value = after_colon + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
    match text[value..].chars().next() {
        None | Some('\n' | '\r' | '#') => Some(key_at),
        Some(_) => Some(value),
    }
}

/// The length of `key:` at the start of `text` (spaces before the colon
/// allowed), when that is how it starts.
fn key_and_colon(text: &str, key: &str) -> Option<usize> {
    let rest = text.strip_prefix(key)?;
    let after = rest.trim_start_matches(' ').strip_prefix(':')?;
    after
        .chars()
        .next()
        .is_none_or(char::is_whitespace)
        .then_some(text.len() - after.len())
}

/// `key`'s start and the byte after its colon, among the keys of the flow
/// mapping whose `{` is at `at` (not those of mappings inside it).
fn key_in_flow_mapping(text: &str, at: usize, key: &str) -> Option<(usize, usize)> {
    let mapping = &text[at..];
    let levels = mapping.char_indices().zip(flow_levels(mapping));
    for ((_, c), (next, open)) in levels {
        if open == 0 {
            return None;
        }
        if open == 1 && (c == '{' || c == ',') {
            let rest = &mapping[next..];
            let start = at + next + (rest.len() - rest.trim_start().len());
            if let Some(length) = key_and_colon(&text[start..], key) {
                return Some((start, start + length));
            }
        }
    }
    None
}

/// `key`'s start and the byte after its colon, among the keys of the
/// block mapping whose first key is at `at`: that key, then those of the
/// lines indented as far, until a line indented less.
fn key_in_block_mapping(text: &str, at: usize, key: &str) -> Option<(usize, usize)> {
    if let Some(length) = key_and_colon(&text[at..], key) {
        return Some((at, at + length));
    }
    let first_line = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent = at - first_line;
    let mut line_start = first_line;
    for line in text[first_line..].split_inclusive('\n') {
        let here = line_start;
        line_start += line.len();
        let body = line.trim_start_matches(' ');
        if here == first_line || body.trim().is_empty() || body.starts_with('#') {
            continue;
        }
        match spaces(line).cmp(&indent) {
            std::cmp::Ordering::Less => return None,
            std::cmp::Ordering::Greater => {}
            std::cmp::Ordering::Equal => {
                if let Some(length) = key_and_colon(body, key) {
                    let start = here + indent;
                    return Some((start, start + length));
                }
            }
        }
    }
    None
}

/// A path of an error found in `part`, as a path of the whole file.
pub fn file_path(part: &Part, path: &str) -> String {
    match &part.entry {
        Some((key, index)) => match path.strip_prefix(&format!("{key}[0]")) {
            Some(rest) => format!("{key}[{index}]{rest}"),
            None => path.to_string(),
        },
        None => path.to_string(),
    }
}

/// A message of a parser, with `at line N` moved to the file's line.
pub fn file_message(part: &Part, message: &str) -> String {
    let Some((head, tail)) = message.rsplit_once(" at line ") else {
        return message.to_string();
    };
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<i64>() {
        Ok(line) => format!(
            "{head} at line {}{}",
            line + part.line_offset,
            &tail[digits.len()..]
        ),
        Err(_) => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_is_cut_into_its_monitors_and_a_config_into_its_sections() {
        let registry = "# fleet\nmonitors:\n  - connection_id: A\n    module: air\n\n  - {connection_id: B}\n  # done\n";
        let p = parts(registry);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0].text,
            "monitors:\n  - connection_id: A\n    module: air\n\n"
        );
        assert_eq!(p[0].entry, Some(("monitors".to_string(), 0)));
        assert_eq!(p[1].text, "monitors:\n  - {connection_id: B}\n  # done\n");
        assert_eq!(file_path(&p[1], "monitors[0].module"), "monitors[1].module");
        // Line 2 of the second part is line 6 of the file.
        assert_eq!(
            file_message(&p[1], "invalid type: integer at line 2 column 5"),
            "invalid type: integer at line 6 column 5"
        );

        let config = "kafka:\n  topics: x\nreset: {url: y}\nwindowing:\n  allowed_lateness: 5\n";
        let p = parts(config);
        let texts: Vec<&str> = p.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "kafka:\n  topics: x\n",
                "reset: {url: y}\n",
                "windowing:\n  allowed_lateness: 5\n"
            ]
        );
        assert!(p.iter().all(|p| p.entry.is_none()));
        assert_eq!(
            file_message(&p[2], "bad at line 2 column 21"),
            "bad at line 5 column 21"
        );
    }

    #[test]
    fn a_field_is_blanked_out_with_its_block_and_the_lines_keep_their_numbers() {
        let entry =
            "monitors:\n  - connection_id: A\n    parameters:\n      co2: ppm\n    module: air\n";
        let part = Part {
            text: entry.into(),
            entry: Some(("monitors".into(), 3)),
            line_offset: 0,
        };
        assert_eq!(
            field_of(&part, "monitors[0].parameters.co2"),
            Some("parameters")
        );
        assert_eq!(field_of(&part, "monitors[0]"), None);
        assert_eq!(
            without_field(entry, "parameters").unwrap(),
            "monitors:\n  - connection_id: A\n\n\n    module: air\n"
        );
        assert_eq!(
            without_field(entry, "connection_id").unwrap(),
            "monitors:\n  -\n    parameters:\n      co2: ppm\n    module: air\n"
        );
        assert_eq!(without_field(entry, "label"), None);
        // With its first field gone, an entry's other fields are still found.
        let rest = without_field(entry, "connection_id").unwrap();
        assert_eq!(
            without_field(&rest, "module").unwrap(),
            "monitors:\n  -\n    parameters:\n      co2: ppm\n\n"
        );
        assert_eq!(
            without_field("monitors:\n  - {connection_id: A}\n", "connection_id"),
            None
        );
        let section = "windowing:\n  allowed_lateness: x\n  idle_timeout: y\n";
        let part = Part {
            text: section.into(),
            entry: None,
            line_offset: 4,
        };
        assert_eq!(
            field_of(&part, "windowing.idle_timeout"),
            Some("idle_timeout")
        );
        assert_eq!(
            without_field(section, "allowed_lateness").unwrap(),
            "windowing:\n\n  idle_timeout: y\n"
        );
    }

    #[test]
    fn a_flow_pair_is_blanked_out_with_one_comma_and_the_columns_kept() {
        let text = "reset: {a: 1, b: [x, {y: 2}], c: \"q, }\", d: 'it''s'}\n";
        let blanked = |value: &str| {
            let at = text.find(value).unwrap();
            without_flow_pair(text, at).unwrap()
        };
        assert_eq!(
            blanked("1,"),
            "reset: {      b: [x, {y: 2}], c: \"q, }\", d: 'it''s'}\n"
        );
        assert_eq!(
            blanked("[x"),
            "reset: {a: 1                , c: \"q, }\", d: 'it''s'}\n"
        );
        assert_eq!(
            blanked("\"q"),
            "reset: {a: 1, b: [x, {y: 2}]           , d: 'it''s'}\n"
        );
        assert_eq!(
            blanked("'it"),
            "reset: {a: 1, b: [x, {y: 2}], c: \"q, }\"            }\n"
        );
        for (value, parsed) in [("1,", "b"), ("[x", "a"), ("'it", "c")] {
            let left: serde_yaml::Value = serde_yaml::from_str(&blanked(value)).unwrap();
            assert!(left["reset"].get(parsed).is_some(), "{value}");
        }
        // An element of a flow list is no pair; a pair across lines keeps them.
        assert_eq!(without_flow_pair(text, text.find("x,").unwrap()), None);
        let lines = "k: {a: 1,\n  b: 2}\n";
        assert_eq!(
            without_flow_pair(lines, lines.find('2').unwrap()).unwrap(),
            "k: {a: 1 \n      }\n"
        );
    }

    #[test]
    fn a_block_list_and_nothing_else_is_cut_into_its_entries() {
        let text =
            "# fleet\nmonitors:\n  - a: 1\n    b: 2\n\n  # next\n  - {a: 3}\n  -\n    a: 4\n";
        assert_eq!(
            block_list_entries(text, "monitors").unwrap(),
            [
                "  - a: 1\n    b: 2\n\n  # next\n",
                "  - {a: 3}\n",
                "  -\n    a: 4\n"
            ]
        );
        assert_eq!(
            block_list_entries("monitors:\n- a\n- b", "monitors").unwrap(),
            ["- a\n", "- b"]
        );
        for other in [
            "monitors:\n",
            "monitors: []\n",
            "monitors:\n  - a\nother: 1\n",
            "monitors:\n  - a\n ---\n",
            "monitors:\n  x: 1\n",
            "---\nmonitors:\n  - a\n",
            "other:\n  - a\n",
        ] {
            assert_eq!(block_list_entries(other, "monitors"), None, "{other:?}");
        }
    }

    #[test]
    fn a_block_list_read_line_by_line_is_cut_as_its_text_is() {
        let cases = [
            "# fleet\nmonitors:\n  - a: 1\n    b: 2\n\n  # next\n  - {a: 3}\n  -\n    a: 4\n",
            "monitors:\n- a\n- b",
            "monitors:\n",
            "monitors:\n  - a\nother: 1\n",
            "other:\n  - a\n",
        ];
        for text in cases {
            let mut entries = Vec::new();
            let count = each_block_list_entry(text.as_bytes(), "monitors", |e| {
                entries.push(e);
                true
            })
            .unwrap();
            let expected = block_list_entries(text, "monitors");
            assert_eq!(count, expected.as_ref().map(Vec::len), "{text:?}");
            assert_eq!(
                count_block_list_entries(text.as_bytes(), "monitors").unwrap(),
                count,
                "{text:?}"
            );
            if let Some(expected) = expected {
                assert_eq!(entries, expected, "{text:?}");
            }
        }
        // Told to stop: no count.
        let text = "monitors:\n  - a\n  - b\n";
        assert_eq!(
            each_block_list_entry(text.as_bytes(), "monitors", |_| false).unwrap(),
            None
        );
    }

    #[test]
    fn lines_of_any_characters_are_cut_without_a_panic() {
        // Found by fuzzing: a wide character where a list's indentation ends.
        let text = ":[\"\u{1f}\n- \n&\0\0\0\0\0\0\0\u{428a}\n:\n  -\n.\u{428a}\n\u{1a}\n";
        let _ = parts(text);
        let p = parts("a:\n\u{3000}- x\n  - y\nb: 1\n");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn a_file_of_one_part_or_of_flow_style_is_not_cut() {
        let flow = "monitors: [{connection_id: A}, {connection_id: B}]\n";
        let p = parts(flow);
        assert_eq!((p.len(), p[0].text.as_str(), &p[0].entry), (1, flow, &None));
        assert!(parts("{kafka: {}, reset: {}}\n").is_empty());
        assert!(parts("").is_empty());
        // A list with something else at its own level is not cut into entries.
        let p = parts("monitors:\n  - a\n  b: c\nother: 1\n");
        assert_eq!(p.len(), 2);
        assert!(p[0].entry.is_none());
    }

    #[test]
    fn a_key_is_found_in_its_own_mapping_only() {
        // (text, where the mapping starts, key): what the key's value starts with.
        let cases = [
            ("r:\n  a: 1\n  b: 2 s\n", "a: 1", "b", Some("2 s")),
            ("r:\n  a: 1\n  b: 2 s\n", "a: 1", "a", Some("1\n")),
            // In a mapping inside, or after the mapping ends: not its key.
            ("r:\n  a:\n    b: 1\nb: 2\n", "a:", "b", None),
            ("r:\n  a: 1\n  # b: 0\n\n  b: 3\n", "a: 1", "b", Some("3")),
            // The value on a later line: the key.
            ("r:\n  a: 1\n  b:\n    9s\n", "a: 1", "b", Some("b:")),
            // An entry of a list, its first key after the dash.
            ("- a: 1\n  b: x\n- b: y\n", "a: 1", "b", Some("x")),
            (
                "r: {a: {b: 1}, b: 2, c: 'x, b: 3'}\n",
                "{a",
                "b",
                Some("2, c"),
            ),
            ("r: {a: 1,\n    b: 4}\n", "{a", "b", Some("4}")),
            ("r: {a: {b: 1}}\nb: 2\n", "{a", "b", None),
            // A key that only starts like it.
            ("r: {ab: 1, b: 5}\n", "{ab", "b", Some("5}")),
        ];
        for (text, mapping, key, value) in cases {
            let at = text.find(mapping).unwrap();
            let found = value_of_key(text, at, key).map(|i| &text[i..]);
            assert_eq!(
                found.map(|v| &v[..value.map_or(0, str::len).min(v.len())]),
                value,
                "{text:?} {key}"
            );
        }
        // Already at that key's value: nothing to move.
        let text = "r: {a: 1, b: 2}\n";
        assert_eq!(value_of_key(text, text.find('2').unwrap(), "b"), None);
    }
}
