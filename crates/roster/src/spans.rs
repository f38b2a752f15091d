//! Where each value of a YAML document sits, keyed by the same path syntax that
//! `serde_path_to_error` prints (`agents[1].name`), so semantic errors found after
//! deserialization can still point at a line and column.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based, columns 0-based.
        Position {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Positions of every node (and of every mapping key) in one YAML document.
#[derive(Debug, Default)]
pub struct SpanIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl SpanIndex {
    /// Indexes `text`; a text that does not parse yields an empty index.
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return SpanIndex::default();
        }
        builder.index
    }

    /// Position of the value at `path`, falling back to the nearest indexed ancestor.
    pub fn value(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            p = parent(p)?;
        }
    }

    /// Position of the key naming the value at `path` (for "unknown field" style errors).
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    index: SpanIndex,
    stack: Vec<Frame>,
}

impl Builder {
    /// The path of the node that starts now, or `None` when the node is a mapping key.
    fn next_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_owned();
                    self.index.keys.insert(join(path, &k), mark.into());
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.next_path(Some(&value), mark) {
                    self.index.values.insert(p, mark.into());
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.next_path(None, mark) {
                    self.index.values.insert(p, mark.into());
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let is_seq = matches!(ev, Event::SequenceStart(..));
                // A complex mapping key is not addressable by a path; index it under "?".
                let path = self.next_path(None, mark).unwrap_or_else(|| "?".into());
                self.index.values.insert(path.clone(), mark.into());
                self.stack.push(if is_seq {
                    Frame::Seq { path, next: 0 }
                } else {
                    Frame::Map { path, key: None }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_paths_with_one_based_positions() {
        let text = "fleet: a\nagents:\n  - name: x\n    env:\n      K: v\n  - name: y\n";
        let idx = SpanIndex::new(text);
        assert_eq!(idx.value("fleet"), Some(Position { line: 1, column: 8 }));
        assert_eq!(
            idx.value("agents[0].name"),
            Some(Position {
                line: 3,
                column: 11
            })
        );
        assert_eq!(
            idx.key("agents[0].name"),
            Some(Position { line: 3, column: 5 })
        );
        assert_eq!(
            idx.value("agents[0].env.K"),
            Some(Position {
                line: 5,
                column: 10
            })
        );
        assert_eq!(
            idx.value("agents[1].name"),
            Some(Position {
                line: 6,
                column: 11
            })
        );
        // An unknown path falls back to its nearest ancestor.
        assert_eq!(idx.value("agents[1].model"), idx.value("agents[1]"));
    }
}
