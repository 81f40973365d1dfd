//! Where in a config file something is: byte spans to `file:line:col` errors, and the
//! "did you mean" hint for a misspelt key.

use std::ops::Range;
use std::path::Path;

use super::ConfigError;

/// Adds "did you mean ...?" to serde's unknown-field message.
pub fn with_suggestion(message: &str) -> String {
    let message = message.trim_end();
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_owned() };
    let Some((unknown, expected)) = rest.split_once('`') else { return message.to_owned() };
    let nearest = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| (strsim::levenshtein(unknown, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min();
    match nearest {
        Some((_, candidate)) => format!("{message}: did you mean `{candidate}`?"),
        None => message.to_owned(),
    }
}

/// Turns byte spans of one file into `file:line:col` errors.
pub struct Place<'a> {
    file: &'a Path,
    text: &'a str,
    /// Where each line starts, for a binary search instead of a scan per lookup.
    line_starts: Vec<usize>,
}

impl<'a> Place<'a> {
    pub fn file(&self) -> &'a Path {
        self.file
    }

    pub fn new(file: &'a Path, text: &'a str) -> Place<'a> {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(at, _)| at + 1)).collect();
        Place { file, text, line_starts }
    }

    fn line_start(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        (line, self.line_starts[line - 1])
    }

    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let (line, start) = self.line_start(offset);
        let column = self.text.get(start..offset).map_or(0, |text| text.chars().count()) + 1;
        (line, column)
    }

    /// The key of a `key = value` line whose value starts at `offset`.
    pub fn key_before(&self, offset: usize) -> Option<&'a str> {
        let (_, start) = self.line_start(offset.min(self.text.len()));
        let key = self.text.get(start..offset)?.trim_end().strip_suffix('=')?.trim();
        (!key.is_empty() && !key.contains(['[', '"', '\''])).then_some(key)
    }

    pub fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError { file: self.file.to_path_buf(), line, column, message }
    }
}
