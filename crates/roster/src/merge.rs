//! Re-init without losing the user's changes: a three-way merge of YAML trees.
//!
//! `base` is the roster init generated last time, `ours` is `roster.yaml` as the user left it,
//! `theirs` is what init generates now. Whatever the user changed relative to `base` wins;
//! everything the user left alone follows `theirs`. Agents are matched by `name`, so a user's
//! edit to one agent survives a preset change, a user-added agent is kept, and a generated
//! agent the user deleted stays deleted.

use serde_yaml_ng::{Mapping, Value};

/// Merges `ours` (the user's file) onto `theirs` (newly generated), relative to `base`.
pub fn three_way(base: &Value, ours: &Value, theirs: &Value) -> Value {
    if ours == base {
        return theirs.clone();
    }
    if theirs == base {
        return ours.clone();
    }
    match (ours, theirs) {
        (Value::Mapping(o), Value::Mapping(t)) => {
            Value::Mapping(merge_maps(base.as_mapping(), o, t))
        }
        (Value::Sequence(o), Value::Sequence(t)) if is_named_list(o) && is_named_list(t) => {
            let empty = Vec::new();
            let b = base
                .as_sequence()
                .filter(|b| is_named_list(b))
                .unwrap_or(&empty);
            Value::Sequence(merge_named(b, o, t))
        }
        // Scalars and unnamed lists are atomic: the user's change wins.
        _ => ours.clone(),
    }
}

fn merge_maps(base: Option<&Mapping>, ours: &Mapping, theirs: &Mapping) -> Mapping {
    let mut out = Mapping::new();
    let keys = theirs
        .keys()
        .chain(ours.keys().filter(|k| !theirs.contains_key(*k)));
    for key in keys {
        let b = base.and_then(|m| m.get(key));
        if let Some(v) = merge_entry(b, ours.get(key), theirs.get(key)) {
            out.insert(key.clone(), v);
        }
    }
    out
}

/// One key or named item: `None` means "absent in the result".
fn merge_entry(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Option<Value> {
    match (base, ours, theirs) {
        // The user deleted it: it stays deleted.
        (Some(_), None, _) => None,
        // The user added it, or it is new on both sides: the user's version wins.
        (None, Some(o), _) => Some(o.clone()),
        (None, None, t) => t.cloned(),
        // The generator dropped it: keep it only if the user changed it.
        (Some(b), Some(o), None) => (o != b).then(|| o.clone()),
        (Some(b), Some(o), Some(t)) => Some(three_way(b, o, t)),
    }
}

fn name_of(v: &Value) -> Option<&str> {
    v.as_mapping()?.get("name")?.as_str()
}

fn is_named_list(items: &[Value]) -> bool {
    items.iter().all(|v| name_of(v).is_some())
}

fn find<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items.iter().find(|v| name_of(v) == Some(name))
}

fn merge_named(base: &[Value], ours: &[Value], theirs: &[Value]) -> Vec<Value> {
    let mut names: Vec<&str> = theirs.iter().filter_map(name_of).collect();
    names.extend(
        ours.iter()
            .filter_map(name_of)
            .filter(|n| find(theirs, n).is_none()),
    );
    names
        .into_iter()
        .filter_map(|n| merge_entry(find(base, n), find(ours, n), find(theirs, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn untouched_file_follows_the_generator() {
        let base = y("a: 1\nb: 2");
        assert_eq!(three_way(&base, &base, &y("a: 1\nb: 3")), y("a: 1\nb: 3"));
    }

    #[test]
    fn user_edits_win_and_other_fields_follow() {
        let base = y(
            "fleet: f\nagents:\n- {name: mos, runtime: claude, model: opus}\n- {name: w, runtime: claude}",
        );
        let ours = y(
            "fleet: f\nagents:\n- {name: mos, runtime: claude, model: sonnet}\n- {name: w, runtime: claude}\n- {name: mine, runtime: demo}",
        );
        let theirs = y(
            "fleet: f\nagents:\n- {name: mos, runtime: codex, model: opus}\n- {name: r, runtime: codex}",
        );
        let merged = three_way(&base, &ours, &theirs);
        assert_eq!(
            merged,
            y(
                "fleet: f\nagents:\n- {name: mos, runtime: codex, model: sonnet}\n- {name: r, runtime: codex}\n- {name: mine, runtime: demo}"
            )
        );
    }

    #[test]
    fn deleted_agents_stay_deleted_and_changed_dropped_agents_stay() {
        let base = y("agents:\n- {name: a, model: x}\n- {name: b, model: x}");
        let ours = y("agents:\n- {name: b, model: y}");
        let theirs = y("agents:\n- {name: a, model: z}");
        assert_eq!(
            three_way(&base, &ours, &theirs),
            y("agents:\n- {name: b, model: y}")
        );
    }

    #[test]
    fn merging_twice_is_stable() {
        let base = y("a: 1\nl: [1, 2]");
        let ours = y("a: 5\nl: [1, 2]\nextra: true");
        let theirs = y("a: 1\nl: [3]");
        let once = three_way(&base, &ours, &theirs);
        assert_eq!(three_way(&theirs, &once, &theirs), once);
    }
}
