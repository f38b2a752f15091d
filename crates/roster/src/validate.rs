//! Parsing `roster.yaml` from text and checking every invariant at once.

use crate::connector::connector_type_names;
use crate::harness::{harness, harness_names};
use crate::model::{CommsMode, Role, Roster, SCHEMA_VERSION};
use crate::redact::shown;
use crate::spans::{Position, SpanIndex};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// One thing wrong with a roster, pointing at where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path, as in `agents[1].name`.
    pub path: String,
    /// Where in the source text, when known.
    pub position: Option<Position>,
    /// What is wrong and, where useful, what was expected.
    pub message: String,
}

impl Problem {
    /// `LINE:COLUMN PATH MESSAGE` in one line (the position empty when unknown).
    pub fn brief(&self) -> String {
        let pos = self
            .position
            .map(|p| format!("{}:{}", p.line, p.column))
            .unwrap_or_default();
        format!("{pos} {} {}", self.path, self.message)
    }
}

/// Every problem of one roster source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The file name (or `<text>`) the positions refer to.
    pub source_name: String,
    /// Each problem, in document order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.position {
                Some(pos) => writeln!(
                    f,
                    "  {}:{}:{}: {}: {}",
                    self.source_name, pos.line, pos.column, p.path, p.message
                )?,
                None => writeln!(f, "  {}: {}: {}", self.source_name, p.path, p.message)?,
            }
        }
        Ok(())
    }
}

/// Why a roster could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid roster.
    #[error("{0}")]
    Invalid(Problems),
}

impl RosterError {
    /// Each problem as [`Problem::brief`] (nothing for an I/O error).
    pub fn briefs(&self) -> Vec<String> {
        self.problems()
            .map(|p| p.problems.iter().map(Problem::brief).collect())
            .unwrap_or_default()
    }

    /// The problems, when the roster was readable but invalid.
    pub fn problems(&self) -> Option<&Problems> {
        match self {
            RosterError::Invalid(p) => Some(p),
            RosterError::Io { .. } => None,
        }
    }
}

impl Roster {
    /// Reads and validates the roster file at `path`.
    pub fn load(path: &Path) -> Result<Roster, RosterError> {
        let text = Roster::read_text(path)?;
        Roster::parse(&text, &path.display().to_string())
    }

    /// Reads a roster file's text: at most [`MAX_ROSTER_BYTES`], and UTF-8 (the error names the
    /// first invalid byte's position).
    pub fn read_text(path: &Path) -> Result<String, RosterError> {
        use std::io::Read;
        let io = |source| RosterError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_ROSTER_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let source_name = path.display().to_string();
        if bytes.len() > MAX_ROSTER_BYTES {
            return Err(one_problem(&source_name, None, too_big()));
        }
        String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            // Valid up to here, so this slice is text.
            let before = std::str::from_utf8(valid).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            one_problem(
                &source_name,
                Some(Position { line, column }),
                format!(
                    "invalid UTF-8 at byte {} (line {line}, column {column}); save the file as UTF-8",
                    valid.len()
                ),
            )
        })
    }

    /// Parses and validates roster text; `source_name` prefixes error positions.
    pub fn parse(text: &str, source_name: &str) -> Result<Roster, RosterError> {
        let roster: Roster = deserialize(text, source_name)?;
        roster.checked(text, source_name)
    }

    /// Returns the roster when it has no problems, else every problem positioned in `text`
    /// (which is indexed only then: a valid roster costs one parse).
    pub(crate) fn checked(self, text: &str, source_name: &str) -> Result<Roster, RosterError> {
        if self.problems(&SpanIndex::default()).is_empty() {
            return Ok(self);
        }
        Err(RosterError::Invalid(Problems {
            source_name: source_name.to_owned(),
            problems: self.problems(&SpanIndex::new(text)),
        }))
    }

    /// Checks the invariants serde cannot: returns every problem found, empty when valid.
    pub fn validate(&self) -> Vec<Problem> {
        self.problems(&SpanIndex::default())
    }

    fn problems(&self, spans: &SpanIndex) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |path: String, message: String| {
            let position = spans.value(&path);
            out.push(Problem {
                path,
                position,
                message,
            });
        };
        if self.version != SCHEMA_VERSION {
            push(
                "version".into(),
                format!(
                    "unsupported schema version {}; this mosaic reads version {SCHEMA_VERSION}",
                    self.version
                ),
            );
        }
        if let Err(why) = check_name(&self.fleet) {
            push(
                "fleet".into(),
                format!("fleet name {} {why}", shown(&self.fleet)),
            );
        }
        if self.tmux.socket.is_empty()
            || !self
                .tmux
                .socket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            push(
                "tmux.socket".into(),
                format!(
                    "socket name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                    self.tmux.socket
                ),
            );
        }
        if self.agents.is_empty() {
            push(
                "agents".into(),
                "the fleet has no agents; it needs exactly one with role: orchestrator".into(),
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let orchestrators: Vec<usize> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, a)| a.role == Role::Orchestrator)
            .map(|(i, _)| i)
            .collect();
        for (i, agent) in self.agents.iter().enumerate() {
            if let Err(why) = check_name(&agent.name) {
                push(
                    format!("agents[{i}].name"),
                    format!("agent name {} {why}", shown(&agent.name)),
                );
            }
            if let Some(first) = seen.insert(&agent.name, i) {
                let at = spans
                    .value(&format!("agents[{first}].name"))
                    .map(|p| format!(" at line {}", p.line))
                    .unwrap_or_default();
                push(
                    format!("agents[{i}].name"),
                    format!(
                        "duplicate agent name {:?}; first defined as agents[{first}]{at}",
                        agent.name
                    ),
                );
                seen.insert(&agent.name, first);
            }
            if harness(&agent.runtime).is_none() {
                push(
                    format!("agents[{i}].runtime"),
                    format!(
                        "unknown runtime {:?}; expected one of {}",
                        agent.runtime,
                        harness_names().join(", ")
                    ),
                );
            }
            if agent.host.is_empty() {
                push(
                    format!("agents[{i}].host"),
                    "host must not be empty (use `local` for this machine)".into(),
                );
            }
            for key in agent.env.keys() {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    push(
                        format!("agents[{i}].env.{key}"),
                        format!("invalid environment variable name {}", shown(key)),
                    );
                }
            }
        }
        match orchestrators.as_slice() {
            [_] => {}
            [] if !self.agents.is_empty() => push(
                "agents".into(),
                "no agent has role: orchestrator; exactly one must".into(),
            ),
            [] => {}
            [first, rest @ ..] => {
                for i in rest {
                    push(
                        format!("agents[{i}].role"),
                        format!(
                            "a second orchestrator ({:?}); exactly one is allowed and agents[{first}] ({:?}) is already one",
                            self.agents[*i].name, self.agents[*first].name
                        ),
                    );
                }
            }
        }
        if self.comms == CommsMode::Matrix && !self.connectors.iter().any(|c| c.kind == "matrix") {
            push(
                "comms".into(),
                "matrix needs a connector of type matrix".into(),
            );
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, connector) in self.connectors.iter().enumerate() {
            if connector.id() == RESERVED_CONNECTOR_ID {
                push(
                    format!("connectors[{i}].id"),
                    format!(
                        "the connector id {RESERVED_CONNECTOR_ID:?} is mosaic's own chat on this machine (`mosaic chat`); give this connector another `id:`"
                    ),
                );
            }
            if let Some(first) = ids.insert(connector.id(), i) {
                push(
                    format!("connectors[{i}].id"),
                    format!(
                        "connector id {} is already used by connectors[{first}]; give each instance its own `id:`",
                        shown(connector.id())
                    ),
                );
            }
            if let Some(id) = &connector.id
                && let Err(why) = check_name(id)
            {
                push(format!("connectors[{i}].id"), format!("connector id {why}"));
            }
            let Some(schema) = connector.schema() else {
                let known = connector_type_names();
                push(
                    format!("connectors[{i}].type"),
                    format!(
                        "unknown connector type {}; this build of mosaic has: {}",
                        shown(&connector.kind),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                continue;
            };
            for problem in schema.check(&connector.settings) {
                let path = if problem.path.is_empty() {
                    format!("connectors[{i}]")
                } else if problem.path.starts_with('[') {
                    format!("connectors[{i}]{}", problem.path)
                } else {
                    format!("connectors[{i}].{}", problem.path)
                };
                push(path, problem.message);
            }
        }
        for (i, entry) in self.acl.iter().enumerate() {
            if !self.connectors.iter().any(|c| c.id() == entry.connector) {
                let known: Vec<&str> = self.connectors.iter().map(|c| c.id()).collect();
                push(
                    format!("acl[{i}].connector"),
                    format!(
                        "no connector with id {} is configured (connectors: {})",
                        shown(&entry.connector),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known
                                .iter()
                                .map(|k| shown(k))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                );
            }
            if entry.user.trim().is_empty() {
                push(format!("acl[{i}].user"), "user id must not be empty".into());
            } else if let Some(connector) =
                self.connectors.iter().find(|c| c.id() == entry.connector)
                && let Some(schema) = connector.schema()
                && let Err(why) = schema.check_user(&entry.user)
            {
                push(format!("acl[{i}].user"), why);
            }
        }
        if let Err(why) = self.bridge.api_listen.parse::<std::net::SocketAddr>() {
            push(
                "bridge.api_listen".into(),
                format!(
                    "{:?} is not an address like 127.0.0.1:7317 ({why})",
                    self.bridge.api_listen
                ),
            );
        }
        if self.bridge.history_days == 0 {
            push(
                "bridge.history_days".into(),
                "must be at least 1: the bridge drops a platform's repeats by the ids it keeps this long".into(),
            );
        }
        out.sort_by_key(|p| p.position);
        out
    }
}

/// The largest roster text accepted, in bytes (real rosters are a few kilobytes).
pub const MAX_ROSTER_BYTES: usize = 1 << 20;

/// The deepest nesting of mappings and sequences accepted (a roster needs about five).
pub const MAX_ROSTER_DEPTH: usize = 32;

fn too_big() -> String {
    format!(
        "the roster is larger than {} KiB; a roster is a few kilobytes",
        MAX_ROSTER_BYTES / 1024
    )
}

fn one_problem(source_name: &str, position: Option<Position>, message: String) -> RosterError {
    RosterError::Invalid(Problems {
        source_name: source_name.to_owned(),
        problems: vec![Problem {
            path: display_path(""),
            position,
            message,
        }],
    })
}

/// Refuses, before any full parse, text too large or nested too deeply to be a roster (one
/// streaming pass that stops at the first mapping or sequence beyond [`MAX_ROSTER_DEPTH`]).
fn check_shape(text: &str, source_name: &str) -> Result<(), RosterError> {
    use yaml_rust2::parser::{Event, Parser};
    if text.len() > MAX_ROSTER_BYTES {
        return Err(one_problem(source_name, None, too_big()));
    }
    // Flow collections first, by counting brackets: the YAML scanner looks ahead over a whole
    // line of `[[[[…`, which is quadratic.
    if let Some(at) = deep_brackets(text) {
        return Err(one_problem(
            source_name,
            Some(at),
            format!("nested more than {MAX_ROSTER_DEPTH} levels deep; a roster needs a handful"),
        ));
    }
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) | Err(_) => return Ok(()), // syntax errors: reported by the parse
            Ok((Event::MappingStart(..) | Event::SequenceStart(..), mark)) => {
                depth += 1;
                if depth > MAX_ROSTER_DEPTH {
                    return Err(one_problem(
                        source_name,
                        Some(Position {
                            line: mark.line(),
                            column: mark.col() + 1,
                        }),
                        format!(
                            "nested more than {MAX_ROSTER_DEPTH} levels deep; a roster needs a handful"
                        ),
                    ));
                }
            }
            Ok((Event::MappingEnd | Event::SequenceEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
        }
    }
}

/// Where brackets (`[`, `{`) outside quotes and comments first open more than
/// [`MAX_ROSTER_DEPTH`] deep, if they do.
fn deep_brackets(text: &str) -> Option<Position> {
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (col, c) in line.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_ROSTER_DEPTH {
                        return Some(Position {
                            line: i + 1,
                            column: col + 1,
                        });
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    None
}

/// Where the first tab in a line's indentation is, if any.
fn first_indent_tab(text: &str) -> Option<Position> {
    text.lines().enumerate().find_map(|(i, line)| {
        let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
        indent.find('\t').map(|col| Position {
            line: i + 1,
            column: col + 1,
        })
    })
}

/// Deserializes YAML text into `T` straight from the text (positions intact), reporting the first
/// error with its field path and position.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
    source_name: &str,
) -> Result<T, RosterError> {
    check_shape(text, source_name)?;
    match serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)) {
        Ok(value) => Ok(value),
        Err(e) => {
            let spans = SpanIndex::new(text);
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let position = e
                .inner()
                .location()
                .map(|l| Position {
                    line: l.line(),
                    column: l.column(),
                })
                .or_else(|| spans.key(&path));
            let mut message = clean_message(&e.inner().to_string());
            let mut position = position;
            if message.contains("tab character")
                && let Some(tab) = first_indent_tab(text)
            {
                message = "tabs are not allowed for indentation; indent with spaces".into();
                position = Some(tab);
            }
            Err(RosterError::Invalid(Problems {
                source_name: source_name.to_owned(),
                problems: vec![Problem {
                    path: display_path(&path),
                    position,
                    message,
                }],
            }))
        }
    }
}

/// The id of the built-in local connector (`mosaic chat`, whose one user is this machine's
/// owner, an admin): no roster connector may take it.
pub const RESERVED_CONNECTOR_ID: &str = "local";

/// Checks an agent or fleet name against `[a-z][a-z0-9-]{0,31}`.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => Err("is empty; names match [a-z][a-z0-9-]{0,31}"),
        Some(c) if !c.is_ascii_lowercase() => {
            Err("must start with a lowercase letter ([a-z][a-z0-9-]{0,31})")
        }
        _ if name.len() > 32 => Err("is longer than 32 characters ([a-z][a-z0-9-]{0,31})"),
        _ if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') => {
            Err("may contain only a-z, 0-9 and '-' ([a-z][a-z0-9-]{0,31})")
        }
        _ => Ok(()),
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(document)".into()
    } else {
        path.to_owned()
    }
}

/// serde_yaml_ng puts its own path before the message and " at line L column C" inside it;
/// both are printed separately, so they are cut here.
fn clean_message(message: &str) -> String {
    let mut message = match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest.to_owned(),
        _ => message.to_owned(),
    };
    if let Some(start) = message.find(" at line ") {
        let after = &message[start..];
        let end = after
            .find(" column ")
            .map(|c| c + " column ".len())
            .map(|c| {
                c + after[c..]
                    .find(|ch: char| !ch.is_ascii_digit())
                    .unwrap_or(after.len() - c)
            })
            .unwrap_or(after.len());
        message.replace_range(start..start + end, "");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "version: 1\nfleet: f\nagents:\n  - name: mos\n    role: orchestrator\n    runtime: demo\n";

    fn problems(text: &str) -> Vec<String> {
        Roster::parse(text, "r.yaml")
            .err()
            .map(|e| e.briefs())
            .unwrap_or_default()
    }

    #[test]
    fn a_good_roster_parses() {
        let r = Roster::parse(GOOD, "r.yaml").unwrap();
        assert_eq!(r.orchestrator().unwrap().name, "mos");
        assert_eq!(r.tmux.socket, "mosaic");
    }

    #[test]
    fn every_invariant_is_reported_at_once_with_positions() {
        let text = "version: 1\nfleet: f\nagents:\n  - name: mos\n    role: orchestrator\n    runtime: demo\n  - name: Bad_Name\n    runtime: demo\n  - name: mos\n    runtime: gpt\n  - name: two\n    role: orchestrator\n    runtime: demo\n";
        let p = problems(text);
        assert_eq!(
            p,
            vec![
                "7:11 agents[1].name agent name \"Bad_Name\" must start with a lowercase letter ([a-z][a-z0-9-]{0,31})",
                "9:11 agents[2].name duplicate agent name \"mos\"; first defined as agents[0] at line 4",
                "10:14 agents[2].runtime unknown runtime \"gpt\"; expected one of claude, codex, pi, demo",
                "12:11 agents[3].role a second orchestrator (\"two\"); exactly one is allowed and agents[0] (\"mos\") is already one",
            ]
        );
    }

    #[test]
    fn history_days_must_keep_at_least_a_day() {
        let p = problems(&format!("{GOOD}bridge:\n  history_days: 0\n"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("8:17 bridge.history_days must be at least 1"),
            "{p:?}"
        );
        assert!(problems(&format!("{GOOD}bridge:\n  history_days: 1\n")).is_empty());
    }

    #[test]
    fn no_orchestrator_is_an_error() {
        let p = problems("version: 1\nfleet: f\nagents:\n  - name: w\n    runtime: demo\n");
        assert_eq!(
            p,
            vec!["4:3 agents no agent has role: orchestrator; exactly one must"]
        );
    }

    #[test]
    fn unknown_field_names_the_field_path_and_line() {
        let p = problems(
            "version: 1\nfleet: f\nagents:\n  - name: mos\n    role: orchestrator\n    runtime: demo\n    modle: x\n",
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("7:5 agents[0].modle unknown field `modle`, expected one of"),
            "{p:?}"
        );
    }

    #[test]
    fn wrong_type_names_the_field_path_and_line() {
        let p = problems(
            "version: 1\nfleet: f\nagents:\n  - name: mos\n    role: boss\n    runtime: demo\n",
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with(
                "5:11 agents[0].role unknown variant `boss`, expected `orchestrator` or `worker`"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn version_and_yaml_syntax_errors() {
        assert_eq!(
            problems(&GOOD.replace("version: 1", "version: 2")),
            vec!["1:10 version unsupported schema version 2; this mosaic reads version 1"]
        );
        let p = problems("version: 1\nfleet: \"unterminated\n");
        assert_eq!(p.len(), 1);
        assert_eq!(
            p,
            vec![
                "3:1 fleet found unexpected end of stream, while scanning a quoted scalar at line 2 column 8"
            ]
        );
    }

    #[test]
    fn names_follow_the_pattern() {
        assert!(check_name("a").is_ok());
        assert!(check_name("coder-2").is_ok());
        assert!(check_name(&"a".repeat(32)).is_ok());
        assert!(check_name(&"a".repeat(33)).is_err());
        assert!(check_name("2a").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a_b").is_err());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let deep = "[".repeat(MAX_ROSTER_DEPTH + 1);
        assert!(
            deep_brackets(&format!(
                "a: '{deep}'\nb: \"{deep}\"\n# {deep}\nc: x #{deep}"
            ))
            .is_none()
        );
        assert_eq!(
            deep_brackets(&format!("a: b\nc: {deep}")),
            Some(Position {
                line: 2,
                column: 4 + MAX_ROSTER_DEPTH
            })
        );
        assert!(
            deep_brackets(&"[]".repeat(10_000)).is_none(),
            "siblings are not depth"
        );
    }

    #[test]
    fn the_tab_position_is_the_first_tab_in_an_indentation() {
        assert_eq!(
            first_indent_tab("a:\n  b: x\tz\n \tc: 1\n"),
            Some(Position { line: 3, column: 2 })
        );
        assert_eq!(first_indent_tab("a: x\ty\n"), None);
    }
}
